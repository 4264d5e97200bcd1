//! What the hub tells an agent about itself: the onboarding payload (protocol, quickstart,
//! rules, tool catalog), role and runtime guidance, and capability negotiation.
//!
//! The catalog is built from the tool registry, so it lists exactly the tools this build
//! serves; the rules report the effective configuration, not constants (D41).

use serde_json::{Map, Value, json};

use super::{Category, registry};
use crate::config::{Config, OnboardingMode};

pub const PROTOCOL_VERSION: &str = "hub-protocol-2026.02";

const QUICKSTART: [&str; 7] = [
    "initialize, then notifications/initialized; on -32000 reinitialize_required redo both and retry once",
    "register_agent with a runtime_profile",
    "send auth.token as auth_token or Authorization: Bearer on every call",
    "get_onboarding once for the manual",
    "poll_and_claim (lease 300 s); on task:null wait retry_after_ms",
    "renew_task_claim while working; report with send_message / share_context",
    "release_task_claim next_status done with confidence, verification_passed:true, evidence_refs",
];

pub fn onboarding(config: &Config, mode: OnboardingMode) -> Value {
    let tools = &registry().tools;
    let mut body = Map::new();
    body.insert("protocol_version".into(), json!(PROTOCOL_VERSION));
    body.insert("tool_count".into(), json!(tools.len()));
    body.insert("quickstart".into(), json!(QUICKSTART));
    match mode {
        OnboardingMode::None => {}
        OnboardingMode::Compact => {
            body.insert("rules".into(), compact_rules(config));
            let names: Vec<&str> = tools.iter().map(|t| t.name).collect();
            body.insert("tool_names".into(), json!(names));
        }
        OnboardingMode::Full => {
            body.insert("rules".into(), rules(config));
            let mut catalog = Map::new();
            for category in Category::ALL {
                let entries: Vec<Value> = tools
                    .iter()
                    .filter(|t| t.category == category)
                    .map(|t| json!({"name": t.name, "purpose": t.description}))
                    .collect();
                if !entries.is_empty() {
                    catalog.insert(category.as_str().into(), Value::Array(entries));
                }
            }
            body.insert("tool_catalog".into(), Value::Object(catalog));
        }
    }
    Value::Object(body)
}

/// The rules an agent breaks without being told, one sentence each; [`rules`] is the manual.
fn compact_rules(config: &Config) -> Value {
    json!({
        "done_gate": format!(
            "done needs confidence, verification_passed:true and at least {} evidence_refs; below \
             the required confidence or in strict mode verified_by must name another registered \
             agent",
            config.done_evidence_min_refs
        ),
        "cursor_loops": "pass next_cursor back as cursor; polling reads refuse full mode: use \
            compact/tiny/nano, with include_content:true for whole messages",
        "idle": "wait_for_updates on a cursor instead of polling reads",
        "idempotency": "a retried write with the same idempotency_key and arguments returns the \
            first reply; the same key with other arguments is refused",
        "votes": "share_context key vote:<proposal_id>, value {\"decision\":\"accept|reject|abstain\",\
            \"confidence\":0-1}, in your own name only",
        "auth_mode": config.auth_mode.as_str(),
    })
}

fn rules(config: &Config) -> Value {
    let strict_refs = config.done_evidence_min_refs.max(2);
    json!({
        "done_gate": {
            "confidence_floor": 0.75,
            "base_threshold": 0.9,
            "required_fields_for_done": ["confidence", "verification_passed", "evidence_refs"],
            "min_evidence_refs": config.done_evidence_min_refs,
            "strict_min_evidence_refs": strict_refs,
            "verifier_rule": "below the required confidence, or in strict mode, verified_by must name another registered agent"
        },
        "idempotency": {
            "supported_tools": ["create_task", "update_task", "poll_and_claim", "claim_task",
                "renew_task_claim", "release_task_claim", "send_message", "send_blob_message",
                "share_context", "share_blob_context"],
            "rule": "retry a mutating call with the same idempotency_key and the same arguments to get the stored response; a key reused with other arguments is refused (IDEMPOTENCY_KEY_REUSED)",
            "ttl_ms": config.idempotency_ttl_ms.unwrap_or(0)
        },
        "hash_blob_exchange": "send large payloads as blob references (send_blob_message / share_blob_context) and read them with resolve_blob_refs",
        "namespace_isolation": "set namespace on every swarm or experiment task operation",
        "pagination": {
            "delta_tools": ["read_messages", "list_tasks"],
            "rule": "pass next_cursor back as cursor (a plain first read returns one); has_more tells whether another page follows; read_messages/read_snapshot include_content:true carries whole messages in compact/tiny/nano"
        },
        "event_driven": {
            "rule": "idle with wait_for_updates on a cursor instead of polling reads",
            "server_defaults_env": ["MCP_HUB_WAIT_DEFAULT_MS", "MCP_HUB_WAIT_MAX_MS",
                "MCP_HUB_WAIT_DEFAULT_RESPONSE_MODE", "MCP_HUB_WAIT_DEFAULT_TIMEOUT_RESPONSE"]
        },
        "push_transport": {"endpoint": "/events", "modes": ["compact", "nano"]},
        "batch_snapshot": {
            "tool": "read_snapshot",
            "cursor_shape": "<message>.<task>.<context>.<activity> (base36)"
        },
        "capability_negotiation": {
            "keys": ["response_modes", "blob_resolve", "artifact_tickets", "snapshot_reads", "push_transports"]
        },
        "collective_accuracy": "resolve disagreements with resolve_consensus; votes are weighted by agent quality",
        "transport_monitoring": "get_transport_snapshot shows wait hits, timeouts and retry hints",
        "retention": {
            "defaults": {
                "agent_offline_after_ms": config.agent_offline_after_ms.unwrap_or(0),
                "agent_retention_ms": config.agent_retention_ms.unwrap_or(0),
                "message_ttl_ms": config.message_ttl_ms.unwrap_or(0),
                "activity_log_ttl_ms": config.activity_log_ttl_ms.unwrap_or(0),
                "artifact_ttl_ms": config.artifact_ttl_ms
            }
        },
        "dependency_scheduling": "tasks with unfinished depends_on are not claimable; poll_and_claim prefers tasks that unblock others",
        "token_economy": {
            "message_limit_chars": config.max_message_content_chars,
            "context_limit_chars": config.max_context_value_chars,
            "rule": "prefer nano/tiny response modes in loops"
        },
        "namespace_quotas": {
            "env": ["MCP_HUB_NAMESPACE_QUOTA_MODE", "MCP_HUB_NAMESPACE_QUOTA_RPS",
                "MCP_HUB_NAMESPACE_QUOTA_BURST", "MCP_HUB_NAMESPACE_TOKEN_BUDGET_PER_MIN"],
            "mode": config.namespace_quota_mode.as_str()
        },
        "compact_protocol": {
            "auto_policy_env": ["MCP_HUB_AUTO_PACK_MIN_PAYLOAD_CHARS", "MCP_HUB_AUTO_PACK_MIN_GAIN_PCT"]
        },
        "repo_isolated_execution": "isolated workers never edit project files; they hand off intent, evidence, patch_plan, verification_plan and risk_notes",
        "consensus_handoff": {
            "voter": "share_context key vote:<proposal_id>, value {\"decision\":\"accept|reject|abstain\",\"confidence\":0-1}; vote in your own name only",
            "reviewer": "one resolve_consensus_from_context call with proposal_id and agent_ids (optional min_votes): each voter's own entry is its vote; missing_voters lists who did not vote; a vote naming anyone but its entry's author is refused (VOTE_AUTHOR_MISMATCH)"
        },
        "auth": {
            "mode_env": "MCP_HUB_AUTH_MODE",
            "mode": config.auth_mode.as_str(),
            "token_transport": ["auth_token argument", "Authorization: Bearer header"]
        },
        "lifecycle": {
            "values": ["persistent", "ephemeral"],
            "env": ["MCP_HUB_AGENT_OFFLINE_AFTER_MS", "MCP_HUB_EPHEMERAL_OFFLINE_AFTER_MS",
                "MCP_HUB_AGENT_RETENTION_MS", "MCP_HUB_EPHEMERAL_AGENT_RETENTION_MS"]
        },
        "runtime_profile": {
            "modes": ["repo", "isolated", "unknown"],
            "rule": "send runtime_profile with register_agent; call update_runtime_profile when it changes"
        },
        "adaptive_consistency": {
            "env": ["MCP_HUB_CONSISTENCY_DEFAULT", "MCP_HUB_STRICT_DONE_CONFIDENCE_MIN",
                "MCP_HUB_STRICT_DONE_EVIDENCE_MIN_REFS"]
        },
        "role_launcher": "hub-launch --role orchestrator|reviewer|assistant --backend claude|codex",
        "session_recovery": {
            "error_code": -32000,
            "server_flag_path": "error.data.reinitialize_required",
            "retryable_reasons": ["unknown_or_expired_session", "server_not_initialized", "no_active_session"],
            "recovery_sequence": ["initialize", "notifications/initialized", "retry_original_request_once"],
            "idempotency_rule": "retry mutating calls with the same idempotency_key"
        },
        "bootstrap_contract": {
            "startup_sequence": ["initialize", "notifications/initialized", "register_agent", "get_onboarding"],
            "token_source": "register_agent -> auth.token",
            "token_usage": "pass auth_token on every later call, or send Authorization: Bearer <token>"
        },
        "namespace_governance": {"mode_env": "MCP_HUB_NAMESPACE_GOVERNANCE"},
        // The warnings tools/list no longer repeats on each tool (issue 15 cut descriptions
        // to one trap each); the manual keeps them.
        "tool_traps": {
            "shared_arguments": "every tool takes auth_token (or Authorization: Bearer); writes take idempotency_key; trace_id/span_id tag rows. They are not repeated in each tool's schema",
            "claims": "lease_seconds is 30-86400 (default 300) on poll_and_claim, claim_task and renew_task_claim; claiming a task you hold rotates claim_id",
            "create_task": "assigned_to pre-assigns: the task stays pending and only that agent (or the creator) can claim it",
            "list_task_claims": "claim_id is shown only to the claim's owner (requesting_agent)",
            "share_context": "values over the context limit belong in share_blob_context; json, whitespace and auto compression are lossy",
            "resolve_consensus_from_message": "from_agent refuses a message sent by anyone else",
            "get_kpi_snapshot": "counts use whole-minute buckets",
            "operator_tools": "run_maintenance and evaluate_slo_alerts change hub state; under enforce run_maintenance needs a granted orchestrator"
        }
    })
}

pub fn role_guidance(role: &str) -> Value {
    let (objective, primary_tools, playbook): (&str, &[&str], &[&str]) = match role {
        "orchestrator" => (
            "decompose goals into dependency-aware tasks, route them and keep the queue healthy",
            &[
                "create_task",
                "list_tasks",
                "poll_and_claim",
                "send_message",
                "get_kpi_snapshot",
                "evaluate_slo_alerts",
            ],
            &[
                "read inbox and context first",
                "always set namespace and execution_mode",
                "require evidence refs before completion",
            ],
        ),
        "reviewer" => (
            "validate correctness and risk of worker output and settle disagreements",
            &[
                "get_task_handoff",
                "resolve_consensus",
                "resolve_consensus_from_context",
                "resolve_consensus_from_message",
                "send_message",
            ],
            &[
                "gather evidence from context, messages and artifacts",
                "settle a group vote in one resolve_consensus_from_context call listing agent_ids",
                "record a judgement with remediation",
                "enforce the done gate",
            ],
        ),
        "assistant" => (
            "execute claimed tasks quickly and safely, keeping status current",
            &[
                "poll_and_claim",
                "get_task_handoff",
                "share_context",
                "send_message",
                "release_task_claim",
            ],
            &[
                "claim via poll_and_claim or claim_task",
                "one concise progress message per state change",
                "complete with the done-gate fields",
            ],
        ),
        _ => (
            "claim tasks, do the work, report with evidence",
            &[
                "poll_and_claim",
                "get_task_handoff",
                "share_context",
                "release_task_claim",
            ],
            &[
                "poll_and_claim with a lease",
                "renew while working",
                "release with confidence and evidence",
                "vote with share_context key vote:<proposal_id>",
            ],
        ),
    };
    let role = match role {
        "orchestrator" | "reviewer" | "assistant" => role,
        _ => "worker",
    };
    json!({"role": role, "objective": objective, "primary_tools": primary_tools, "playbook": playbook})
}

pub fn runtime_guidance(mode: &str, empty_dir: bool) -> Value {
    match mode {
        "repo" => json!({
            "mode": "repo",
            "strategy": "direct_repo_execution",
            "recommendations": ["work directly in the repository", "attach artifacts for large outputs"],
            "suggested_calls": [
                {"tool": "poll_and_claim", "args_template": {"include_artifacts": true}},
                {"tool": "get_task_handoff", "args_template": {"response_mode": "tiny"}}
            ],
            "cautions": []
        }),
        "isolated" => {
            let mut cautions = vec![json!(
                "do not write project files: hand off changes as structured proposals"
            )];
            if empty_dir {
                cautions.push(json!(
                    "empty_dir=true: no repository here; fetch inputs through artifacts and task handoffs"
                ));
            }
            json!({
                "mode": "isolated",
                "strategy": "repo_isolated_handoff",
                "recommendations": ["send handoffs as blob references", "use download tickets for task artifacts"],
                "suggested_calls": [
                    {"tool": "get_task_handoff", "args_template": {"response_mode": "tiny", "include_downloads": true}},
                    {"tool": "create_task_artifact_downloads", "args_template": {"only_ready": true}}
                ],
                "cautions": cautions
            })
        }
        _ => json!({
            "mode": "unknown",
            "strategy": "runtime_discovery",
            "recommendations": ["detect whether this directory is a repository and report it"],
            "suggested_calls": [
                {"tool": "update_runtime_profile", "args_template": {"runtime_profile": {"mode": "repo|isolated|unknown"}}}
            ],
            "cautions": ["runtime mode unknown: only execution_mode=any tasks will be routed to this agent"]
        }),
    }
}

const SERVER_RESPONSE_MODES: [&str; 4] = ["full", "compact", "tiny", "nano"];
const SERVER_PUSH_TRANSPORTS: [&str; 2] = ["wait_for_updates", "sse_events"];

/// `{client, server, negotiated}` for the client capabilities sent with register_agent.
pub fn negotiate(client: Option<&Value>) -> Value {
    let list = |key: &str| -> Vec<String> {
        client
            .and_then(|c| c.get(key))
            .and_then(Value::as_array)
            .map(|items| {
                items
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|s| s.trim().to_ascii_lowercase())
                    .collect()
            })
            .unwrap_or_default()
    };
    let flag = |key: &str| client.and_then(|c| c.get(key)) == Some(&Value::Bool(true));
    let mut response_modes: Vec<String> = Vec::new();
    for mode in list("response_modes") {
        if SERVER_RESPONSE_MODES.contains(&mode.as_str()) && !response_modes.contains(&mode) {
            response_modes.push(mode);
        }
    }
    if response_modes.is_empty() {
        response_modes.push("compact".into());
    }
    let mut push_transports: Vec<String> = Vec::new();
    for transport in list("push_transports") {
        let transport = match transport.as_str() {
            "ws" => "websocket".to_string(),
            "sse" => "sse_events".to_string(),
            _ => transport,
        };
        if ["wait_for_updates", "sse_events", "websocket"].contains(&transport.as_str())
            && !push_transports.contains(&transport)
        {
            push_transports.push(transport);
        }
    }
    if push_transports.is_empty() {
        push_transports.push("wait_for_updates".into());
    }
    let has = |mode: &str| response_modes.iter().any(|m| m == mode);
    let preferred_read_mode = if has("nano") {
        "nano"
    } else if has("tiny") {
        "tiny"
    } else {
        "compact"
    };
    // Only transports both sides speak (D35: the hub serves no websocket).
    let push_transport = if push_transports.iter().any(|t| t == "sse_events") {
        "sse_events"
    } else {
        "wait_for_updates"
    };
    let client_view = json!({
        "response_modes": response_modes,
        "blob_resolve": flag("blob_resolve"),
        "artifact_tickets": flag("artifact_tickets"),
        "snapshot_reads": flag("snapshot_reads"),
        "push_transports": push_transports,
    });
    json!({
        "client": client_view,
        "server": {
            "response_modes": SERVER_RESPONSE_MODES,
            "blob_resolve": true,
            "artifact_tickets": true,
            "snapshot_reads": true,
            "push_transports": SERVER_PUSH_TRANSPORTS,
        },
        "negotiated": {
            "snapshot_tool": if flag("snapshot_reads") { "read_snapshot" } else { "manual_reads" },
            "preferred_read_mode": preferred_read_mode,
            "wait_for_updates_mode": if has("nano") { "nano" } else { "micro" },
            "blob_handoff_mode": if flag("blob_resolve") { "hash_ref" } else { "inline_compact" },
            "push_transport": push_transport,
        }
    })
}
