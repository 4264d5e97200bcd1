//! Agent tools: register_agent, update_runtime_profile, list_agents, get_onboarding.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::onboarding::{self, negotiate, role_guidance, runtime_guidance};
use super::{
    Activity, Category, OpCtx, ToolArgs, ToolDef, ToolError, ToolResult, int_arg, non_blank,
};
use crate::auth::{self, AuthOutcome};
use crate::config::{AuthMode, OnboardingMode};
use crate::domain::role::{self, OperatorWord, Role};
use crate::store::agents::{self as agent_store, AgentRow, Registration};
use crate::store::{Db, WriteTx, auth as auth_store};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::mutating(
            "register_agent",
            Category::Agents,
            "Call first; returns auth.token. Re-registering an id needs its token.",
            Activity::Stream,
            register_agent,
        ),
        super::mutating(
            "update_runtime_profile",
            Category::Agents,
            "Replace your runtime_profile (cwd or mode changed).",
            Activity::Stream,
            update_runtime_profile,
        ),
        super::reading(
            "list_agents",
            Category::Agents,
            "Registered agents, most recently seen first.",
            list_agents,
        ),
        super::reading(
            "get_onboarding",
            Category::Agents,
            "The manual: rules, tool catalog, role and runtime guidance.",
            get_onboarding,
        ),
    ]
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnboardingModeArg {
    Full,
    Compact,
    None,
}

impl From<OnboardingModeArg> for OnboardingMode {
    fn from(mode: OnboardingModeArg) -> Self {
        match mode {
            OnboardingModeArg::Full => OnboardingMode::Full,
            OnboardingModeArg::Compact => OnboardingMode::Compact,
            OnboardingModeArg::None => OnboardingMode::None,
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Lifecycle {
    Persistent,
    Ephemeral,
}

impl Lifecycle {
    fn as_str(self) -> &'static str {
        match self {
            Lifecycle::Persistent => "persistent",
            Lifecycle::Ephemeral => "ephemeral",
        }
    }
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum RuntimeMode {
    Repo,
    Isolated,
    Unknown,
}

/// Where the agent runs; the hub routes repo/isolated tasks by it.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
pub struct RuntimeProfileArg {
    // repo | isolated | unknown; unknown (or absent) is inferred from the hints below.
    pub mode: Option<Value>,
    // Working directory (kept to 512 characters).
    pub cwd: Option<Value>,
    pub has_git: Option<Value>,
    pub file_count: Option<Value>,
    pub empty_dir: Option<Value>,
    // client_auto | client_declared | server_inferred (default server_inferred).
    pub source: Option<Value>,
    // When the profile was detected, ms since the epoch (default now).
    pub detected_at: Option<Value>,
    pub notes: Option<Value>,
}

/// The stored form of a runtime profile (spec §2.1 normalization): the final mode plus the
/// profile JSON with invalid-typed fields dropped.
fn normalize_profile(
    input: Option<&RuntimeProfileArg>,
    now_ms: i64,
) -> (String, Map<String, Value>) {
    let empty = RuntimeProfileArg::default();
    let input = input.unwrap_or(&empty);
    let text = |value: &Option<Value>| {
        value
            .as_ref()
            .and_then(Value::as_str)
            .map(|s| super::text::prefix(s, 512).to_string())
    };
    let boolean = |value: &Option<Value>| value.as_ref().and_then(Value::as_bool);
    let number = |value: &Option<Value>| {
        value
            .as_ref()
            .and_then(Value::as_f64)
            .filter(|n| n.is_finite())
            .map(f64::floor)
    };
    let has_git = boolean(&input.has_git);
    let empty_dir = boolean(&input.empty_dir);
    let file_count = number(&input.file_count).map(|n| n.max(0.0) as i64);
    let declared = match input.mode.as_ref().and_then(Value::as_str) {
        Some("repo") => "repo",
        Some("isolated") => "isolated",
        _ => "unknown",
    };
    let mode = if declared != "unknown" {
        declared
    } else if has_git == Some(true) || file_count.is_some_and(|n| n > 0) {
        "repo"
    } else if empty_dir == Some(true) || (has_git == Some(false) && file_count == Some(0)) {
        "isolated"
    } else {
        "unknown"
    };
    let source = input
        .source
        .as_ref()
        .and_then(Value::as_str)
        .filter(|s| ["client_auto", "client_declared", "server_inferred"].contains(s))
        .unwrap_or("server_inferred");
    let detected_at = number(&input.detected_at)
        .map(|n| n as i64)
        .filter(|&n| n > 0)
        .unwrap_or(now_ms);
    let mut profile = Map::new();
    profile.insert("mode".into(), json!(mode));
    if let Some(cwd) = text(&input.cwd) {
        profile.insert("cwd".into(), json!(cwd));
    }
    if let Some(has_git) = has_git {
        profile.insert("has_git".into(), json!(has_git));
    }
    if let Some(file_count) = file_count {
        profile.insert("file_count".into(), json!(file_count));
    }
    if let Some(empty_dir) = empty_dir {
        profile.insert("empty_dir".into(), json!(empty_dir));
    }
    profile.insert("source".into(), json!(source));
    profile.insert("detected_at".into(), json!(detected_at));
    if let Some(notes) = text(&input.notes) {
        profile.insert("notes".into(), json!(notes));
    }
    (mode.to_string(), profile)
}

fn stored_profile(row: &AgentRow) -> Value {
    serde_json::from_str(&row.runtime_profile_json).unwrap_or_else(|_| json!({}))
}

fn agent_json(row: &AgentRow) -> Value {
    json!({
        "id": row.id,
        "name": row.name,
        "type": row.agent_type,
        "capabilities": row.capabilities,
        "role": row.role,
        "lifecycle": row.lifecycle,
        "runtime_mode": row.runtime_mode,
        "runtime_profile_json": row.runtime_profile_json,
        "status": row.status,
        "last_seen": row.last_seen,
    })
}

fn runtime_warnings(mode: &str) -> Value {
    match mode {
        "isolated" => json!([
            "isolated_runtime_detected: no project files here; hand off work through messages, blobs and artifacts, and claim only execution_mode any|isolated tasks"
        ]),
        "unknown" => json!([
            "runtime_mode_unknown: send runtime_profile (or call update_runtime_profile) so repo and isolated tasks can be routed to you"
        ]),
        _ => json!([]),
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RegisterAgentArgs {
    // Agent id, unique in the hub (e.g. "claude-frontend").
    pub id: String,
    // Display name.
    pub name: String,
    // Agent kind, free text (claude, codex, ...).
    #[serde(rename = "type")]
    pub agent_type: String,
    // Comma-separated capabilities, stored verbatim (kept on re-registration when omitted).
    pub capabilities: Option<String>,
    // Client capabilities for negotiation: response_modes, blob_resolve, artifact_tickets,
    // snapshot_reads, push_transports.
    pub client_capabilities: Option<Value>,
    /// Default full; none saves tokens.
    pub onboarding_mode: Option<OnboardingModeArg>,
    /// orchestrator needs an operator grant under enforce.
    pub role: Option<Role>,
    // Operator's MCP_HUB_ADMIN_TOKEN: grants the role asked for.
    pub admin_token: Option<String>,
    // persistent (default) or ephemeral (kept on re-registration when omitted).
    pub lifecycle: Option<Lifecycle>,
    // mode repo|isolated|unknown plus hints; routes tasks.
    pub runtime_profile: Option<RuntimeProfileArg>,
    // Required to re-register an existing id when auth is enforced: that id's token.
    pub auth_token: Option<String>,
}

impl ToolArgs for RegisterAgentArgs {
    // register_agent has no caller: it creates one. Its op checks re-registrations itself.
    const CALLER_FIELD: Option<&'static str> = None;
    fn caller(&self) -> Option<&str> {
        None
    }
    fn auth_token(&self) -> Option<&str> {
        non_blank(self.auth_token.as_deref())
    }
}

fn register_agent(tx: &mut WriteTx<'_>, ctx: &mut OpCtx, args: RegisterAgentArgs) -> ToolResult {
    let id = args.id.trim().to_string();
    if id.is_empty() || args.name.trim().is_empty() {
        return Err(ToolError::new(
            "INVALID_ARGUMENT",
            "register_agent: id and name must not be blank",
        ));
    }
    let existing = agent_store::get(tx.db(), &id)?;
    let mode = ctx.config.auth_mode;
    let mut rotated = false;
    let token = match &existing {
        None => None,
        Some(_) => match auth::verify(tx.db(), &id, ctx.token.as_deref())? {
            AuthOutcome::Valid => ctx.token.clone(),
            outcome if mode == AuthMode::Enforce => {
                let code = if outcome == AuthOutcome::Missing {
                    "AUTH_TOKEN_REQUIRED"
                } else {
                    "AUTH_TOKEN_INVALID"
                };
                return Err(ToolError::new(
                    code,
                    format!(
                        "register_agent: agent {id:?} is already registered; re-registering it \
                         needs its auth_token"
                    ),
                )
                .with("auth_mode", mode.as_str())
                .logged("register_agent_rejected", format!("id={id} ({code})")));
            }
            _ => {
                // observe/warn: the old token is never disclosed; a new one replaces it.
                rotated = true;
                if mode == AuthMode::Warn {
                    ctx.warn(format!(
                        "[auth_warn] register_agent: {id:?} re-registered without its token; a \
                         new token was issued and the old one revoked. Under enforce mode this \
                         call would be refused."
                    ));
                }
                None
            }
        },
    };
    let token = match token {
        Some(token) => token,
        None => {
            let token = auth::new_token();
            auth_store::set_token(tx, &id, &auth::digest(&token))?;
            token
        }
    };

    let runtime_profile = args.runtime_profile.as_ref().map(|profile| {
        let (mode, profile) = normalize_profile(Some(profile), ctx.now_ms);
        (mode, Value::Object(profile).to_string())
    });
    let runtime_profile = match (&existing, runtime_profile) {
        (_, Some(profile)) => Some(profile),
        // A new agent without a profile gets the inferred default one.
        (None, None) => {
            let (mode, profile) = normalize_profile(None, ctx.now_ms);
            Some((mode, Value::Object(profile).to_string()))
        }
        (Some(_), None) => None,
    };
    // A re-registration that names no role keeps the stored one (and its grant).
    let role_decision = (existing.is_none() || args.role.is_some()).then(|| {
        let operator = OperatorWord {
            allowlisted: auth::allowlisted_role(&ctx.config, &id),
            admin_token_valid: auth::admin_token_valid(
                &ctx.config,
                non_blank(args.admin_token.as_deref()),
            ),
        };
        role::decide_role(mode, &id, args.role, operator)
    });
    if let Some(warning) = role_decision.as_ref().and_then(|d| d.warning.clone()) {
        ctx.warn(warning);
    }
    let registration = Registration {
        id: id.clone(),
        name: args.name.trim().to_string(),
        agent_type: args.agent_type.trim().to_string(),
        capabilities: args.capabilities.clone(),
        role: role_decision.as_ref().map(|d| d.role.as_str().to_string()),
        role_grant: role_decision.as_ref().map(|d| d.grant.as_str()),
        lifecycle: args.lifecycle.map(|l| l.as_str().to_string()),
        runtime_profile,
    };
    let (row, is_new) = agent_store::register(tx, &registration)?;

    let config = ctx.config.clone();
    let onboarding_mode: OnboardingMode = match args.onboarding_mode {
        Some(mode) => mode.into(),
        None if !is_new => config.reregister_onboarding_mode,
        None if row.lifecycle == "ephemeral" => config.ephemeral_default_onboarding_mode,
        None => config.default_onboarding_mode,
    };
    let profile = stored_profile(&row);
    let empty_dir = profile.get("empty_dir") == Some(&Value::Bool(true));
    let negotiation = negotiate(args.client_capabilities.as_ref());
    ctx.log_as(
        &id,
        "register_agent",
        format!(
            "name={} type={} role={} lifecycle={} runtime_mode={} is_new={} onboarding_mode={}{}",
            row.name,
            row.agent_type,
            row.role,
            row.lifecycle,
            row.runtime_mode,
            u8::from(is_new),
            onboarding_mode.as_str(),
            if rotated { " token_rotated=1" } else { "" }
        ),
    );
    let note = if rotated {
        "New token issued; the previous one is revoked."
    } else {
        "Keep it private: the hub cannot show it again."
    };
    // What every mode carries: who you are now, the token, and what to fix.
    let mut reply = json!({
        "success": true,
        "agent": agent_json(&row),
        "auth": {"token": token, "note": note, "rotated": rotated},
        "registration": {
            "role": row.role,
            "lifecycle": row.lifecycle,
            "onboarding_mode": onboarding_mode.as_str(),
            "is_new": is_new,
        },
        "warnings": runtime_warnings(&row.runtime_mode),
        "onboarding": onboarding::onboarding(&config, onboarding_mode),
    });
    // The guidance scales with the onboarding asked for: none is the essentials (plus the
    // negotiation the client asked for), compact adds the role and runtime guidance, full
    // is the manual.
    let negotiated = negotiation["negotiated"].clone();
    let extra = match onboarding_mode {
        OnboardingMode::None => match args.client_capabilities {
            Some(_) => json!({"capability_negotiation": {"negotiated": negotiated}}),
            None => json!({}),
        },
        OnboardingMode::Compact => json!({
            "role_guidance": role_guidance(&row.role),
            "runtime_guidance": runtime_guidance(&row.runtime_mode, empty_dir),
            "capability_negotiation": {"negotiated": negotiated},
        }),
        OnboardingMode::Full => json!({
            "runtime_profile": profile,
            "role_guidance": role_guidance(&row.role),
            "runtime_guidance": runtime_guidance(&row.runtime_mode, empty_dir),
            "capability_negotiation": negotiation,
            "client_runtime": {
                "session_recovery": {
                    "error_code": -32000,
                    "reinitialize_required_path": "error.data.reinitialize_required",
                    "recovery_sequence": ["initialize", "notifications/initialized", "retry_original_request_once"]
                },
                "bootstrap_sequence": ["initialize", "notifications/initialized", "register_agent", "get_onboarding"]
            },
        }),
    };
    if let (Some(reply), Value::Object(extra)) = (reply.as_object_mut(), extra) {
        reply.extend(extra);
        if onboarding_mode == OnboardingMode::Full {
            reply["registration"]["contract_profile"] = negotiated;
        }
    }
    Ok(reply)
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateRuntimeProfileArgs {
    // The registered agent (the caller).
    pub agent_id: String,
    // The new profile; replaces the stored one wholesale.
    pub runtime_profile: RuntimeProfileArg,
    pub auth_token: Option<String>,
}
tool_args!(UpdateRuntimeProfileArgs, caller = agent_id);

fn update_runtime_profile(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    args: UpdateRuntimeProfileArgs,
) -> ToolResult {
    let (mode, profile) = normalize_profile(Some(&args.runtime_profile), ctx.now_ms);
    let profile_json = Value::Object(profile).to_string();
    let agent_id = args.agent_id.trim();
    let Some(row) = agent_store::set_runtime_profile(tx, agent_id, &mode, &profile_json)? else {
        return Err(ToolError::new(
            "AGENT_NOT_FOUND",
            format!("update_runtime_profile: no agent {agent_id:?}; call register_agent first"),
        ));
    };
    ctx.log("update_runtime_profile", format!("runtime_mode={mode}"));
    let profile = stored_profile(&row);
    let empty_dir = profile.get("empty_dir") == Some(&Value::Bool(true));
    Ok(json!({
        "success": true,
        "agent": agent_json(&row),
        "runtime_profile": profile,
        "runtime_guidance": runtime_guidance(&row.runtime_mode, empty_dir),
    }))
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum AgentListMode {
    #[default]
    Full,
    Compact,
    Summary,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListAgentsArgs {
    // The caller (optional outside enforce mode; heartbeat).
    pub agent_id: Option<String>,
    // Page size, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip (default 0).
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    // full (default), compact, or summary (counts over the whole registry).
    pub response_mode: Option<AgentListMode>,
    pub auth_token: Option<String>,
}
tool_args!(ListAgentsArgs, optional_caller = agent_id);

fn list_agents(db: &Db, ctx: &mut OpCtx, args: ListAgentsArgs) -> ToolResult {
    let limit = int_arg(args.limit, 100, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let mode = args.response_mode.unwrap_or_default();
    let rows = agent_store::list(db, limit, offset)?;
    ctx.log(
        "list_agents",
        format!("count={} offset={offset} limit={limit}", rows.len()),
    );
    Ok(match mode {
        AgentListMode::Full => json!({"agents": rows.iter().map(agent_json).collect::<Vec<_>>()}),
        AgentListMode::Compact => json!({
            "agents": rows.iter().map(|row| json!({
                "id": row.id,
                "name": row.name,
                "type": row.agent_type,
                "lifecycle": row.lifecycle,
                "runtime_mode": row.runtime_mode,
                "status": row.status,
                "last_seen": row.last_seen,
            })).collect::<Vec<_>>()
        }),
        AgentListMode::Summary => {
            let summary = agent_store::summary(db, ctx.now_ms)?;
            json!({
                "agents": [],
                "summary": {
                    "total": summary.total,
                    "online": summary.online,
                    "offline": summary.offline,
                    "online_5m": summary.online_5m,
                    "persistent": summary.persistent,
                    "ephemeral": summary.ephemeral,
                    "runtime_repo": summary.runtime_repo,
                    "runtime_isolated": summary.runtime_isolated,
                    "runtime_unknown": summary.runtime_unknown,
                }
            })
        }
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetOnboardingArgs {
    // The caller.
    pub agent_id: String,
    // full (default), compact or none.
    pub mode: Option<OnboardingModeArg>,
    // Role whose guidance to include (default worker).
    pub role: Option<Role>,
    // Runtime mode whose guidance to include (default unknown).
    pub runtime_mode: Option<RuntimeMode>,
    pub empty_dir: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(GetOnboardingArgs, caller = agent_id);

fn get_onboarding(_db: &Db, ctx: &mut OpCtx, args: GetOnboardingArgs) -> ToolResult {
    let mode: OnboardingMode = args.mode.map(Into::into).unwrap_or(OnboardingMode::Full);
    let role = args.role.unwrap_or(Role::Worker).as_str();
    let runtime_mode = match args.runtime_mode.unwrap_or(RuntimeMode::Unknown) {
        RuntimeMode::Repo => "repo",
        RuntimeMode::Isolated => "isolated",
        RuntimeMode::Unknown => "unknown",
    };
    ctx.log(
        "get_onboarding",
        format!(
            "mode={} role={role} runtime_mode={runtime_mode}",
            mode.as_str()
        ),
    );
    Ok(json!({
        "success": true,
        "onboarding": onboarding::onboarding(&ctx.config, mode),
        "role_guidance": role_guidance(role),
        "runtime_guidance": runtime_guidance(runtime_mode, args.empty_dir == Some(true)),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(value: Value) -> RuntimeProfileArg {
        serde_json::from_value(value).unwrap()
    }

    #[test]
    fn profile_inference_follows_the_hints_and_explicit_mode_wins() {
        let cases = [
            (json!({"has_git": true}), "repo"),
            (json!({"file_count": 3}), "repo"),
            (json!({"empty_dir": true}), "isolated"),
            (json!({"has_git": false, "file_count": 0}), "isolated"),
            (json!({}), "unknown"),
            (json!({"mode": "isolated", "has_git": true}), "isolated"),
            (json!({"mode": "bogus", "has_git": true}), "repo"),
        ];
        for (input, expected) in cases {
            let (mode, _) = normalize_profile(Some(&profile(input.clone())), 5);
            assert_eq!(mode, expected, "{input}");
        }
    }

    #[test]
    fn profile_drops_invalid_types_and_defaults_source_and_time() {
        let (_, stored) = normalize_profile(
            Some(&profile(
                json!({"has_git": "yes", "file_count": 2.9, "detected_at": 0}),
            )),
            42,
        );
        assert!(!stored.contains_key("has_git"));
        assert_eq!(stored["file_count"], json!(2));
        assert_eq!(stored["source"], json!("server_inferred"));
        assert_eq!(stored["detected_at"], json!(42));
    }
}
