//! The task tools' arguments as they arrive on the wire (their doc comments are the JSON
//! schema) and their parsing into service commands: clamping, trimming, blank-as-absent and
//! dependency-id normalisation. Must not look anything up or decide anything.

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::Value;

use super::super::text::optional_text;
use super::super::{int_arg, non_blank, non_blank_string};
use crate::domain::done_gate::DoneClaim;
pub use crate::domain::task::{
    Consistency, CreateConsistency, ExecutionMode, NextStatus, Priority, TaskStatus,
};
use crate::service::claims::{ClaimCommand, PollCommand, ReleaseCommand, RenewCommand};
use crate::service::tasks::{CreateTaskCommand, DeleteTaskCommand, TaskRef, UpdateTaskCommand};
use crate::store::tasks::TaskUpdate;
use crate::tool_args;

/// Dependency ids as accepted: integers > 0, without the task's own id, de-duplicated,
/// ascending. Anything else is dropped silently (spec §4.1).
pub fn normalize_dependencies(values: &[Value], own_id: Option<i64>) -> Vec<i64> {
    let mut ids: Vec<i64> = values
        .iter()
        .filter_map(|v| match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64)),
            _ => None,
        })
        .filter(|&id| id > 0 && Some(id) != own_id)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Lease in ms: seconds absent/non-finite → 300, floored, clamped to [30, 86400].
pub fn lease_ms(seconds: Option<f64>) -> i64 {
    int_arg(seconds, 300, 30, 86_400) * 1000
}

// The done-gate inputs, shared by update_task and release_task_claim. A doc comment here
// would become the description of both tools' whole schema (schemars flattening).
#[derive(Debug, Default, Deserialize, JsonSchema)]
pub struct DoneGateArgs {
    // Done gate: your confidence that the task is complete (0-1).
    pub confidence: Option<f64>,
    // Done gate: must be true.
    pub verification_passed: Option<Value>,
    // A registered agent other than you and the assignee.
    pub verified_by: Option<String>,
    // Evidence (test names, commits, paths), stored with the task on every successful call.
    pub evidence_refs: Option<Vec<String>>,
}

impl DoneGateArgs {
    pub fn claim(self) -> DoneClaim {
        DoneClaim {
            confidence: self.confidence,
            verification_passed: self.verification_passed == Some(Value::Bool(true)),
            verified_by: self.verified_by,
            evidence_refs: self.evidence_refs.unwrap_or_default(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct CreateTaskArgs {
    // Short title (required, not blank).
    pub title: String,
    // Details (default "").
    pub description: Option<String>,
    // The creator (the caller).
    pub created_by: String,
    // Pre-assign to an agent: the task stays pending and only that agent (or you) can claim it.
    pub assigned_to: Option<String>,
    // low | medium (default) | high | critical.
    pub priority: Option<Priority>,
    // Namespace (default "default"); required for swarm/experiment work when governance says so.
    pub namespace: Option<String>,
    // any (default) | repo | isolated: which workers may run it.
    pub execution_mode: Option<ExecutionMode>,
    // auto (default: strict for critical, else the hub default) | cheap | strict done gate.
    pub consistency_mode: Option<CreateConsistency>,
    pub trace_id: Option<String>,
    pub span_id: Option<String>,
    // Ids of tasks that must be done before this one can be claimed.
    pub depends_on: Option<Vec<Value>>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(CreateTaskArgs, caller = created_by, idempotent);

impl CreateTaskArgs {
    pub fn command(self) -> CreateTaskCommand {
        CreateTaskCommand {
            title: self.title,
            description: self.description,
            assigned_to: non_blank_string(self.assigned_to.as_deref()),
            priority: self.priority,
            namespace: non_blank_string(self.namespace.as_deref()),
            execution_mode: self.execution_mode,
            consistency: self.consistency_mode,
            trace_id: optional_text(self.trace_id.as_deref()),
            span_id: optional_text(self.span_id.as_deref()),
            depends_on: normalize_dependencies(self.depends_on.as_deref().unwrap_or(&[]), None),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct UpdateTaskArgs {
    // The task id.
    #[schemars(with = "i64")]
    pub id: f64,
    // The caller: the task's creator, assignee or claim holder, or an orchestrator.
    pub agent_id: String,
    // pending | blocked | done (in_progress is entered and left through the claim tools).
    pub status: Option<TaskStatus>,
    /// "" clears.
    pub assigned_to: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub priority: Option<Priority>,
    pub namespace: Option<String>,
    pub execution_mode: Option<ExecutionMode>,
    // cheap | strict. Raising is allowed; lowering only by the creator and not when marking done.
    pub consistency_mode: Option<Consistency>,
    // "" clears it.
    pub trace_id: Option<String>,
    // "" clears it.
    pub span_id: Option<String>,
    /// Replaces the whole list.
    pub depends_on: Option<Vec<Value>>,
    #[serde(flatten)]
    pub done: DoneGateArgs,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(UpdateTaskArgs, caller = agent_id, idempotent);

impl UpdateTaskArgs {
    pub fn command(self) -> UpdateTaskCommand {
        let task = TaskRef(self.id);
        UpdateTaskCommand {
            task,
            status: self.status,
            fields: TaskUpdate {
                title: self.title,
                description: self.description,
                namespace: self
                    .namespace
                    .as_deref()
                    .map(|ns| non_blank(Some(ns)).unwrap_or("default").to_string()),
                execution_mode: self.execution_mode,
                consistency_mode: None,
                priority: self.priority,
                assigned_to: self
                    .assigned_to
                    .as_deref()
                    .map(|a| non_blank_string(Some(a))),
                trace_id: self.trace_id.as_deref().map(|t| optional_text(Some(t))),
                span_id: self.span_id.as_deref().map(|s| optional_text(Some(s))),
            },
            consistency: self.consistency_mode,
            depends_on: self
                .depends_on
                .as_deref()
                .map(|values| normalize_dependencies(values, task.id())),
            done: self.done.claim(),
        }
    }
}

// Response modes of list_tasks (and the task part of read_snapshot).
#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum TaskListMode {
    #[default]
    Full,
    Compact,
    Tiny,
    Nano,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTasksArgs {
    // The caller (heartbeat only; not a filter).
    pub agent_id: Option<String>,
    // Filter: pending | in_progress | done | blocked.
    pub status: Option<TaskStatus>,
    // Filter: exact assignee.
    pub assigned_to: Option<String>,
    // Filter: exact namespace.
    pub namespace: Option<String>,
    // Filter: any | repo | isolated.
    pub execution_mode: Option<ExecutionMode>,
    // Only tasks whose dependencies are all done (any status).
    pub ready_only: Option<bool>,
    // Add dependency ids per task.
    pub include_dependencies: Option<bool>,
    // Page size, 1-500 (default 100).
    #[schemars(with = "Option<i64>")]
    pub limit: Option<f64>,
    // Rows to skip, newest-first listing only.
    #[schemars(with = "Option<i64>")]
    pub offset: Option<f64>,
    // Delta: tasks changed after this time (ms).
    pub updated_after: Option<f64>,
    // Delta: the next_cursor of the previous call (opaque; wins over updated_after).
    pub cursor: Option<String>,
    // full (default), compact, tiny or nano.
    pub response_mode: Option<TaskListMode>,
    // Set in polling loops; full mode is then refused.
    pub polling: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(ListTasksArgs, optional_caller = agent_id);

#[derive(Debug, Deserialize, JsonSchema)]
pub struct DeleteTaskArgs {
    // The task id.
    #[schemars(with = "i64")]
    pub id: f64,
    // The caller: the task's creator or an orchestrator.
    pub agent_id: String,
    // Keep a copy in the archive (default true).
    pub archive: Option<bool>,
    // Archive reason (default manual_delete).
    pub reason: Option<String>,
    // Delete even though unfinished tasks depend on it (they lose that dependency).
    pub force: Option<bool>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(DeleteTaskArgs, caller = agent_id, idempotent);

impl DeleteTaskArgs {
    pub fn command(self) -> DeleteTaskCommand {
        DeleteTaskCommand {
            task: TaskRef(self.id),
            archive: self.archive != Some(false),
            reason: non_blank_string(self.reason.as_deref()),
            force: self.force == Some(true),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct PollAndClaimArgs {
    // The worker (the caller). Routing uses its registered runtime profile.
    pub agent_id: String,
    /// 30-86400, default 300.
    pub lease_seconds: Option<f64>,
    // Only tasks of this namespace.
    pub namespace: Option<String>,
    // Also return the task's artifact hints.
    pub include_artifacts: Option<bool>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(PollAndClaimArgs, caller = agent_id, idempotent);

impl PollAndClaimArgs {
    pub fn command(self) -> PollCommand {
        PollCommand {
            lease_ms: lease_ms(self.lease_seconds),
            namespace: non_blank_string(self.namespace.as_deref()),
            include_artifacts: self.include_artifacts == Some(true),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ClaimTaskArgs {
    // The task id.
    #[schemars(with = "i64")]
    pub task_id: f64,
    // The worker (the caller).
    pub agent_id: String,
    // Lease in seconds, 30-86400 (default 300).
    pub lease_seconds: Option<f64>,
    // Expected namespace of the task; a different one is refused.
    pub namespace: Option<String>,
    // Also return the task's artifact hints.
    pub include_artifacts: Option<bool>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ClaimTaskArgs, caller = agent_id, idempotent);

impl ClaimTaskArgs {
    pub fn command(self) -> ClaimCommand {
        ClaimCommand {
            task: TaskRef(self.task_id),
            lease_ms: lease_ms(self.lease_seconds),
            namespace: non_blank_string(self.namespace.as_deref()),
            include_artifacts: self.include_artifacts == Some(true),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RenewTaskClaimArgs {
    // The task id.
    #[schemars(with = "i64")]
    pub task_id: f64,
    // The claim holder (the caller).
    pub agent_id: String,
    // New lease from now, seconds 30-86400 (default 300).
    pub lease_seconds: Option<f64>,
    // The claim_id from your claim; a stale one is refused (CLAIM_ID_MISMATCH).
    pub claim_id: Option<String>,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(RenewTaskClaimArgs, caller = agent_id, idempotent);

impl RenewTaskClaimArgs {
    pub fn command(self) -> RenewCommand {
        RenewCommand {
            task: TaskRef(self.task_id),
            lease_ms: lease_ms(self.lease_seconds),
            claim_id: non_blank_string(self.claim_id.as_deref()),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ReleaseTaskClaimArgs {
    // The task id.
    #[schemars(with = "i64")]
    pub task_id: f64,
    // The claim holder (the caller).
    pub agent_id: String,
    // pending (default: back to the queue) | blocked | done (runs the done gate).
    pub next_status: Option<NextStatus>,
    // The claim_id from your claim; a stale one is refused (CLAIM_ID_MISMATCH).
    pub claim_id: Option<String>,
    // cheap | strict for this call's gate; it can only raise the task's own mode.
    pub consistency_mode: Option<Consistency>,
    #[serde(flatten)]
    pub done: DoneGateArgs,
    // Retrying with the same key and arguments returns the first response.
    pub idempotency_key: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ReleaseTaskClaimArgs, caller = agent_id, idempotent);

impl ReleaseTaskClaimArgs {
    pub fn command(self) -> ReleaseCommand {
        ReleaseCommand {
            task: TaskRef(self.task_id),
            next_status: self.next_status.unwrap_or_default(),
            claim_id: non_blank_string(self.claim_id.as_deref()),
            consistency: self.consistency_mode,
            done: self.done.claim(),
        }
    }
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListTaskClaimsArgs {
    // The caller; sees the claim_id of its own claims only.
    pub requesting_agent: Option<String>,
    // Filter: claims held by this agent.
    pub agent_id: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(ListTaskClaimsArgs, optional_caller = requesting_agent);

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dependency_ids_are_normalized() {
        let values = vec![
            json!(3),
            json!(1),
            json!(3),
            json!(2.5),
            json!("4"),
            json!(-1),
            json!(7.0),
            json!(9),
        ];
        assert_eq!(normalize_dependencies(&values, Some(9)), vec![1, 3, 7]);
    }

    #[test]
    fn leases_are_clamped() {
        assert_eq!(lease_ms(None), 300_000);
        assert_eq!(lease_ms(Some(1.0)), 30_000);
        assert_eq!(lease_ms(Some(1e12)), 86_400_000);
        assert_eq!(lease_ms(Some(f64::NAN)), 300_000);
    }

    /// The done-gate arguments deserialize the same inside both tools that take them.
    #[test]
    fn done_gate_args_flatten_into_both_tools() {
        let done = json!({"confidence": 0.95, "verification_passed": true,
                          "verified_by": "rev", "evidence_refs": ["a"]});
        let mut update = json!({"id": 1, "agent_id": "a"});
        let mut release = json!({"task_id": 1, "agent_id": "a"});
        for (key, value) in done.as_object().unwrap() {
            update[key] = value.clone();
            release[key] = value.clone();
        }
        let update: UpdateTaskArgs = serde_json::from_value(update).unwrap();
        let release: ReleaseTaskClaimArgs = serde_json::from_value(release).unwrap();
        let (update, release) = (update.done.claim(), release.done.claim());
        assert_eq!(update, release);
        assert!(update.verification_passed);
        let text_true: DoneGateArgs =
            serde_json::from_value(json!({"verification_passed": "true"})).unwrap();
        assert!(!text_true.claim().verification_passed);
    }
}
