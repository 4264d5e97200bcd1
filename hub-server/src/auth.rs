//! Agent authentication: token issue and verification, and what each auth mode does with
//! the outcome.
//!
//! Tokens are random, shown to the agent once by `register_agent`, and kept only as a
//! SHA-256 digest compared in constant time. The token is checked against the tool's
//! declared caller field — never against a filter argument — and the result is one
//! [`Caller`], handed to every op: private data is read and changed through it.

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::config::{AuthMode, Config};
use crate::domain::role::{self, Role, RoleGrant};
use crate::store::auth::{Credentials, TokenDigest, credentials};
use crate::store::{Db, StoreResult};

/// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive).
pub fn bearer_token(authorization: Option<&str>) -> Option<String> {
    let value = authorization?.trim();
    let (scheme, token) = value.split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then(|| token.to_string())
}

/// A new token: two random UUIDv4 joined by `-` (73 characters).
pub fn new_token() -> String {
    format!("{}-{}", uuid::Uuid::new_v4(), uuid::Uuid::new_v4())
}

pub fn digest(token: &str) -> TokenDigest {
    Sha256::digest(token.as_bytes()).into()
}

/// What the token check found; recorded as an auth event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthOutcome {
    Valid,
    Invalid,
    Missing,
    /// No check applies (register_agent, or no caller outside enforce mode).
    Skipped,
}

impl AuthOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            AuthOutcome::Valid => "valid",
            AuthOutcome::Invalid => "invalid",
            AuthOutcome::Missing => "missing",
            AuthOutcome::Skipped => "skipped",
        }
    }
}

/// Who is making a call, as the pipeline established it. Ops act for this agent only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    agent_id: Option<String>,
    role: Role,
    authentication: AuthOutcome,
}

impl Caller {
    /// No acting agent (a tool whose caller field is optional, or register_agent).
    pub fn anonymous(authentication: AuthOutcome) -> Caller {
        Caller {
            agent_id: None,
            role: Role::Worker,
            authentication,
        }
    }

    /// The acting agent's id, when the call named one.
    pub fn agent_id(&self) -> Option<&str> {
        self.agent_id.as_deref()
    }

    /// The id activity rows are written under: the agent, else `system`.
    pub fn actor(&self) -> &str {
        self.agent_id().unwrap_or("system")
    }

    /// The role in force for this call (a privileged role only while it is granted).
    pub fn role(&self) -> Role {
        self.role
    }

    pub fn authentication(&self) -> AuthOutcome {
        self.authentication
    }

    /// Whether this caller may change other agents' tasks.
    pub fn lifts_ownership(&self) -> bool {
        self.role.lifts_ownership()
    }

    /// Whether `agent_id` names this caller.
    pub fn is(&self, agent_id: &str) -> bool {
        self.agent_id() == Some(agent_id)
    }
}

/// The role the operator's allowlist gives `agent_id`.
pub fn allowlisted_role(config: &Config, agent_id: &str) -> Option<Role> {
    config
        .privileged_agents
        .get(agent_id)
        .and_then(|role| Role::parse(role))
}

/// Whether `presented` is the operator's admin token.
pub fn admin_token_valid(config: &Config, presented: Option<&str>) -> bool {
    match (&config.admin_token_sha256, presented) {
        (Some(expected), Some(token)) => digest(token).ct_eq(expected).into(),
        _ => false,
    }
}

/// Checks `token` against `agent_id`'s stored digest (constant time).
fn check_token(stored: Option<&Credentials>, token: Option<&str>) -> AuthOutcome {
    let Some(token) = token else {
        return AuthOutcome::Missing;
    };
    match stored.and_then(|c| c.token_sha256.as_ref()) {
        Some(expected) if bool::from(digest(token).ct_eq(expected)) => AuthOutcome::Valid,
        _ => AuthOutcome::Invalid,
    }
}

/// Resolves the caller named `agent_id` presenting `token`: one lookup of its credentials.
pub fn authenticate(
    db: &Db,
    config: &Config,
    agent_id: &str,
    token: Option<&str>,
) -> StoreResult<Caller> {
    let stored = credentials(db, agent_id)?;
    let authentication = check_token(stored.as_ref(), token);
    let role = stored
        .as_ref()
        .and_then(|c| Some((Role::parse(&c.role)?, RoleGrant::parse(&c.role_grant))))
        .map(|(stored_role, grant)| {
            role::effective_role(
                config.auth_mode,
                stored_role,
                grant,
                allowlisted_role(config, agent_id),
            )
        })
        .unwrap_or(Role::Worker);
    Ok(Caller {
        agent_id: Some(agent_id.to_string()),
        role,
        authentication,
    })
}

/// Checks `token` against the stored digest of `agent_id`.
pub fn verify(db: &Db, agent_id: &str, token: Option<&str>) -> StoreResult<AuthOutcome> {
    Ok(check_token(credentials(db, agent_id)?.as_ref(), token))
}

#[cfg(test)]
mod tests {
    use super::bearer_token;

    #[test]
    fn bearer_header_values() {
        assert_eq!(bearer_token(Some("Bearer abc")), Some("abc".into()));
        assert_eq!(bearer_token(Some("bearer  abc ")), Some("abc".into()));
        assert_eq!(bearer_token(Some("Basic abc")), None);
        assert_eq!(bearer_token(Some("Bearer ")), None);
        assert_eq!(bearer_token(None), None);
    }
}

/// The guard's verdict for one call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthDecision {
    Allow { warning: Option<String> },
    Refuse { code: &'static str, message: String },
}

/// Applies the mode to an outcome. `caller_field` names the argument that identifies the
/// caller of this tool (for the error text).
pub fn decide(
    mode: AuthMode,
    outcome: AuthOutcome,
    tool: &str,
    caller_field: Option<&str>,
) -> AuthDecision {
    let problem = match outcome {
        AuthOutcome::Valid | AuthOutcome::Skipped => return AuthDecision::Allow { warning: None },
        AuthOutcome::Missing => "auth_token is missing",
        AuthOutcome::Invalid => "auth_token is invalid for this agent",
    };
    match mode {
        AuthMode::Observe => AuthDecision::Allow { warning: None },
        AuthMode::Warn => AuthDecision::Allow {
            warning: Some(format!(
                "[auth_warn] {tool}: {problem}; this call will fail once MCP_HUB_AUTH_MODE=enforce"
            )),
        },
        AuthMode::Enforce => {
            let code = if outcome == AuthOutcome::Missing {
                "AUTH_TOKEN_REQUIRED"
            } else {
                "AUTH_TOKEN_INVALID"
            };
            let who = caller_field
                .map(|field| format!(" for the agent named in `{field}`"))
                .unwrap_or_default();
            AuthDecision::Refuse {
                code,
                message: format!(
                    "{tool}: {problem}{who}. Pass the token from register_agent as `auth_token` \
                     or as `Authorization: Bearer <token>`."
                ),
            }
        }
    }
}
