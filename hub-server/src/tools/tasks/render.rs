//! Response views of the task tools: service outcomes → the JSON objects of spec §4, and the
//! four list_tasks response modes. `render_task_page` is public so read_snapshot can compose
//! a typed [`TaskPage`] instead of re-parsing rendered JSON. Must not read or write the store.

use serde_json::{Map, Value, json};

use super::super::text::{char_count, prefix};
use super::args::TaskListMode;
use crate::config::NamespaceGovernance;
use crate::domain::task::{Consistency, RuntimeMode};
use crate::service::claims::{ClaimOutcome, Claimed, PollOutcome, PollResult, RenewOutcome};
use crate::service::tasks::{
    CreateTaskOutcome, DeleteTaskOutcome, DoneOutcome, TaskItem, TaskPage, claim_view, task_view,
};
use crate::store::claims::ClaimListing;
use crate::store::tasks::TaskRow;

pub fn created(outcome: CreateTaskOutcome) -> Value {
    let mut policy = json!({"mode": NamespaceGovernance::as_str(outcome.governance)});
    if let Some(warning) = outcome.warning {
        policy["warning"] = json!(warning);
    }
    json!({"success": true, "task": task_view(&outcome.task), "namespace_policy": policy})
}

/// update_task and release_task_claim: the task, the gate's bar when it ran, evidence counts.
pub fn done(outcome: DoneOutcome) -> Value {
    let mut body = json!({
        "success": true,
        "task": task_view(&outcome.task),
        "evidence_refs_added": outcome.evidence_added,
        "evidence_refs_total": outcome.evidence_total,
    });
    if let Some(gate) = outcome.gate {
        body["required_confidence"] = json!(gate.required_confidence);
        body["required_evidence_refs"] = json!(gate.required_evidence_refs);
    }
    body
}

pub fn deleted(outcome: DeleteTaskOutcome) -> Value {
    json!({"success": true, "archived": outcome.archived})
}

fn claimed(claimed: &Claimed, viewer: Option<&str>, include_artifacts: bool) -> Value {
    let mut body = json!({
        "success": true,
        "task": task_view(&claimed.task),
        "claim": claim_view(&claimed.claim, viewer),
        "depends_on": claimed.depends_on,
    });
    if include_artifacts {
        body["task_artifacts"] =
            crate::tools::artifacts::claim_hints(claimed.artifacts.as_deref().unwrap_or(&[]));
    }
    body
}

pub fn polled(outcome: PollOutcome, viewer: Option<&str>, include_artifacts: bool) -> Value {
    let runtime_mode: RuntimeMode = outcome.runtime_mode;
    let mut body = match &outcome.result {
        PollResult::Claimed(hit) => {
            let mut body = claimed(hit, viewer, include_artifacts);
            body["runtime_mode"] = json!(runtime_mode.as_str());
            body
        }
        PollResult::Miss {
            message,
            retry_after_ms,
        } => json!({
            "success": true,
            "task": null,
            "message": message,
            "retry_after_ms": retry_after_ms,
            "runtime_mode": runtime_mode.as_str(),
        }),
    };
    if let Some(warning) = outcome.warning {
        body["warning"] = json!(warning);
    }
    body
}

pub fn claimed_task(outcome: ClaimOutcome, viewer: Option<&str>, include_artifacts: bool) -> Value {
    let mut body = claimed(&outcome.claimed, viewer, include_artifacts);
    if let Some(warning) = outcome.warning {
        body["warning"] = json!(warning);
    }
    body
}

pub fn renewed(outcome: RenewOutcome, viewer: Option<&str>) -> Value {
    json!({
        "success": true,
        "task": task_view(&outcome.task),
        "claim": claim_view(&outcome.claim, viewer),
    })
}

pub fn claim_list(claims: &[ClaimListing], viewer: Option<&str>) -> Value {
    let items: Vec<Value> = claims
        .iter()
        .map(|listing| {
            let mut item = claim_view(&listing.claim, viewer);
            item["task_title"] = json!(listing.task_title);
            item["task_status"] = json!(listing.task_status.as_str());
            item["task_priority"] = json!(listing.task_priority.as_str());
            item
        })
        .collect();
    json!({"claims": items})
}

/// One page of list_tasks in `mode`: `{tasks, has_more, next_cursor}` (nano `{t, h, n}`),
/// plus `next_offset` when an offset page has more.
pub fn render_task_page(page: &TaskPage, mode: TaskListMode) -> Value {
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|item| list_item(item, mode))
        .collect();
    let mut body = Map::new();
    if mode == TaskListMode::Nano {
        body.insert("t".into(), Value::Array(items));
        body.insert("h".into(), json!(u8::from(page.has_more)));
        body.insert("n".into(), json!(page.next_cursor));
    } else {
        body.insert("tasks".into(), Value::Array(items));
        body.insert("has_more".into(), json!(page.has_more));
        body.insert("next_cursor".into(), json!(page.next_cursor));
    }
    if let Some(next_offset) = page.next_offset {
        body.insert("next_offset".into(), json!(next_offset));
    }
    Value::Object(body)
}

/// The nano rows of `page` (list_tasks' `t`); read_snapshot embeds the same array.
pub fn nano_items(page: &TaskPage) -> Value {
    page.items
        .iter()
        .map(|item| list_item(item, TaskListMode::Nano))
        .collect()
}

fn short(value: Option<&str>) -> Value {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => json!(prefix(v, 12)),
        None => Value::Null,
    }
}

fn compact(task: &TaskRow) -> Value {
    json!({
        "id": task.id,
        "title": task.title,
        "status": task.status.as_str(),
        "assigned_to": task.assigned_to,
        "priority": task.priority.as_str(),
        "namespace": task.namespace,
        "execution_mode": task.execution_mode.as_str(),
        "consistency_mode": task.consistency_mode.as_str(),
        "trace_id": task.trace_id,
        "span_id": task.span_id,
        "updated_at": task.updated_at,
    })
}

fn tiny(task: &TaskRow) -> Value {
    json!({
        "id": task.id,
        "status": task.status.as_str(),
        "assigned_to": task.assigned_to,
        "priority": task.priority.as_str(),
        "namespace": task.namespace,
        "execution_mode": task.execution_mode.as_str(),
        "consistency_mode": task.consistency_mode.as_str(),
        "trace_id": short(task.trace_id.as_deref()),
        "span_id": short(task.span_id.as_deref()),
        "updated_at": task.updated_at,
        "title_preview": prefix(&task.title, 72),
        "title_chars": char_count(&task.title),
    })
}

fn nano(task: &TaskRow) -> Value {
    let mut item = json!({
        "i": task.id,
        "s": task.status.as_str(),
        "a": task.assigned_to,
        "p": task.priority.as_str(),
        "n": task.namespace,
        "e": task.execution_mode.as_str(),
        "cm": if task.consistency_mode == Consistency::Strict { "s" } else { "c" },
        "u": task.updated_at,
        "tc": char_count(&task.title),
        "t": prefix(&task.title, 40),
    });
    if let Some(trace) = task.trace_id.as_deref().filter(|t| !t.is_empty()) {
        item["x"] = json!(prefix(trace, 12));
    }
    if let Some(span) = task.span_id.as_deref().filter(|s| !s.is_empty()) {
        item["y"] = json!(prefix(span, 12));
    }
    item
}

fn list_item(item: &TaskItem, mode: TaskListMode) -> Value {
    let task = &item.task;
    let deps = item.depends_on.as_ref();
    let (mut value, deps_key, deps_value) = match mode {
        TaskListMode::Full => (task_view(task), "depends_on", deps.map(|d| json!(d))),
        TaskListMode::Compact => (compact(task), "depends_on", deps.map(|d| json!(d))),
        TaskListMode::Tiny => (tiny(task), "depends_on_count", deps.map(|d| json!(d.len()))),
        TaskListMode::Nano => (nano(task), "dc", deps.map(|d| json!(d.len()))),
    };
    if let Some(deps_value) = deps_value {
        value[deps_key] = deps_value;
    }
    value
}
