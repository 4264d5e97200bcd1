//! Observability and operations tools (spec tools-more §4): get_activity_log,
//! get_kpi_snapshot, get_transport_snapshot, evaluate_slo_alerts, list_slo_alerts,
//! get_auth_coverage, run_maintenance — their arguments and views. The figures are
//! `service::observability`; the pass is `crate::maintenance`.
//!
//! Every tool's caller is `requesting_agent` (D6/defect 17: `agent_id` of get_activity_log is
//! a filter, never the caller). The numbers are swarm-wide coordination data, readable by
//! any authenticated agent; running the maintenance pass changes other agents' state
//! (requeues, deletions), so under enforce it needs a role that lifts ownership.

use std::sync::Arc;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{
    Activity, Category, Hub, OpCtx, ToolDef, ToolError, ToolResult, WaitFuture, int_arg, non_blank,
};
use crate::config::AuthMode;
use crate::domain::observability::{normalize_windows, pct};
use crate::maintenance::MaintenanceReport;
use crate::service::observability::{
    self as service, AuthCoverage, KpiQuery, KpiSnapshot, SloEvaluation, TransportSnapshot, Window,
    valid_coverage_pct,
};
use crate::store::kpi::{Backlog, Queue};
use crate::store::slo::AlertRow;
use crate::store::stats::AuthCounts;
use crate::store::{Db, WriteTx};
use crate::tool_args;

pub fn tools() -> Vec<ToolDef> {
    vec![
        super::reading(
            "get_activity_log",
            Category::Observability,
            "Recent activity, newest first; quiet reads are sampled.",
            get_activity_log,
        ),
        super::reading(
            "get_kpi_snapshot",
            Category::Observability,
            "Swarm KPIs per window; tiny for loops.",
            get_kpi_snapshot,
        ),
        super::reading(
            "get_transport_snapshot",
            Category::Observability,
            "Long-poll health over one window.",
            get_transport_snapshot,
        ),
        super::mutating_rendered(
            "evaluate_slo_alerts",
            Category::Observability,
            "Evaluate the SLO rules now.",
            Activity::Quiet,
            evaluate_slo_alerts,
            render_evaluation,
        ),
        super::reading(
            "list_slo_alerts",
            Category::Observability,
            "SLO alerts, latest first.",
            list_slo_alerts,
        ),
        super::reading(
            "get_auth_coverage",
            Category::Observability,
            "Share of calls with a valid token, per tool.",
            get_auth_coverage,
        ),
        // Awaited like a wait (the pass runs its own writer requests), but it writes.
        super::waiting(
            "run_maintenance",
            Category::Observability,
            "Run the maintenance pass now (dry_run:true describes it).",
            run_maintenance,
        )
        .with_kind(super::ToolKind::Writes),
    ]
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum ActivityMode {
    #[default]
    Full,
    Compact,
    Summary,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetActivityLogArgs {
    // The caller (touched when given).
    pub requesting_agent: Option<String>,
    // Filter: rows of this agent (not the caller).
    pub agent_id: Option<String>,
    // Page size, 1-500 (default 50).
    pub limit: Option<f64>,
    // Rows to skip (default 0).
    pub offset: Option<f64>,
    // full (default), compact or summary.
    pub response_mode: Option<ActivityMode>,
    pub auth_token: Option<String>,
}
tool_args!(GetActivityLogArgs, optional_caller = requesting_agent);

fn get_activity_log(db: &Db, _ctx: &mut OpCtx, args: GetActivityLogArgs) -> ToolResult {
    let limit = int_arg(args.limit, 50, 1, 500);
    let offset = int_arg(args.offset, 0, 0, i64::MAX);
    let rows = service::activity_page(db, non_blank(args.agent_id.as_deref()), limit, offset)?;
    let mode = args.response_mode.unwrap_or_default();
    Ok(match mode {
        ActivityMode::Full => {
            let rows: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({"id": r.id, "agent_id": r.agent_id, "action": r.action,
                           "details": r.details, "created_at": r.created_at})
                })
                .collect();
            json!({"success": true, "log": rows, "entries": rows})
        }
        ActivityMode::Compact => {
            let entries: Vec<Value> = rows
                .iter()
                .map(|r| {
                    json!({"id": r.id, "agent_id": r.agent_id, "action": r.action,
                           "created_at": r.created_at,
                           "details_preview": super::text::prefix(&r.details, 120),
                           "details_chars": r.details.encode_utf16().count()})
                })
                .collect();
            json!({"success": true, "log": [], "entries": entries})
        }
        ActivityMode::Summary => {
            let mut actions: Vec<(String, i64)> = Vec::new();
            for row in &rows {
                match actions.iter_mut().find(|(a, _)| *a == row.action) {
                    Some((_, n)) => *n += 1,
                    None => actions.push((row.action.clone(), 1)),
                }
            }
            actions.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
            let mut agents: Vec<&str> = rows.iter().map(|r| r.agent_id.as_str()).collect();
            agents.sort_unstable();
            agents.dedup();
            json!({"success": true, "log": [], "entries": [], "summary": {
                "count": rows.len(),
                "unique_agents": agents.len(),
                "top_actions": pairs(&actions[..actions.len().min(8)], "action"),
            }})
        }
    })
}

fn pairs(pairs: &[(String, i64)], name: &str) -> Vec<Value> {
    pairs
        .iter()
        .map(|(key, count)| json!({name: key, "count": count}))
        .collect()
}

#[derive(Debug, Clone, Copy, Default, Deserialize, JsonSchema, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum KpiMode {
    #[default]
    Full,
    Tiny,
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetKpiSnapshotArgs {
    // The caller (touched when given).
    pub requesting_agent: Option<String>,
    // Window lengths in seconds (positive, first 6 distinct; default [60,300,1800]).
    pub windows_sec: Option<Vec<f64>>,
    // full (default) or tiny (queue, first window, collective accuracy).
    pub response_mode: Option<KpiMode>,
    // Add auth_coverage_30m (default false).
    pub include_auth: Option<bool>,
    // Add open_slo_alerts (default false).
    pub include_slo: Option<bool>,
    // Add top_actions_5m (default true).
    pub include_top_actions: Option<bool>,
    // Add namespace_backlog (default true).
    pub include_namespace: Option<bool>,
    // Add execution_backlog (default true).
    pub include_execution: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(GetKpiSnapshotArgs, optional_caller = requesting_agent);

fn get_kpi_snapshot(db: &Db, ctx: &mut OpCtx, args: GetKpiSnapshotArgs) -> ToolResult {
    let mode = args.response_mode.unwrap_or_default();
    let query = KpiQuery {
        windows_sec: normalize_windows(args.windows_sec.as_deref()),
        include_top_actions: args.include_top_actions.unwrap_or(true),
        include_backlogs: (
            args.include_namespace.unwrap_or(true),
            args.include_execution.unwrap_or(true),
        ),
        include_auth: args.include_auth.unwrap_or(false),
        include_slo: args.include_slo.unwrap_or(false),
        first_window_only: mode == KpiMode::Tiny,
    };
    let windows_sec = query.windows_sec.clone();
    let snapshot = service::kpi_snapshot(db, ctx, query)?;
    Ok(render_kpi(&snapshot, &windows_sec, mode))
}

fn render_kpi(snapshot: &KpiSnapshot, windows_sec: &[i64], mode: KpiMode) -> Value {
    let mut body = Map::new();
    body.insert("success".into(), json!(true));
    body.insert("generated_at".into(), json!(snapshot.generated_at));
    body.insert("windows_sec".into(), json!(windows_sec));
    body.insert("queue".into(), queue_view(&snapshot.queue));
    let windows: Vec<Value> = snapshot.windows.iter().map(window_view).collect();
    match mode {
        KpiMode::Tiny => {
            body.insert(
                "latest_window".into(),
                windows.first().cloned().unwrap_or(Value::Null),
            );
        }
        KpiMode::Full => {
            body.insert("windows".into(), Value::Array(windows));
        }
    }
    body.insert(
        "collective_accuracy".into(),
        collective_accuracy(snapshot.largest.as_ref()),
    );
    if let Some(top) = &snapshot.top_actions_5m {
        body.insert("top_actions_5m".into(), json!(pairs(top, "action")));
    }
    if let Some(backlog) = &snapshot.namespace_backlog {
        body.insert(
            "namespace_backlog".into(),
            backlog_view(backlog, "namespace"),
        );
    }
    if let Some(backlog) = &snapshot.execution_backlog {
        body.insert(
            "execution_backlog".into(),
            backlog_view(backlog, "execution_mode"),
        );
    }
    if let Some(coverage) = &snapshot.auth_coverage_30m {
        body.insert("auth_coverage_30m".into(), coverage_view(coverage));
    }
    if let Some(alerts) = &snapshot.open_slo_alerts {
        body.insert(
            "open_slo_alerts".into(),
            json!(alerts.iter().map(alert_view).collect::<Vec<_>>()),
        );
    }
    Value::Object(body)
}

fn queue_view(queue: &Queue) -> Value {
    json!({
        "tasks_pending": queue.tasks_pending,
        "tasks_in_progress": queue.tasks_in_progress,
        "tasks_done": queue.tasks_done,
        "claims_active": queue.claims_active,
        "agents_online_5m": queue.agents_online_5m,
    })
}

fn transport_view(t: &service::Transport) -> Value {
    json!({
        "wait_calls": t.wait_calls,
        "wait_hits": t.wait_hits,
        "wait_timeouts": t.wait_timeouts,
        "wait_hit_rate_pct": t.wait_hit_rate_pct,
        "wait_retry_after_avg_ms": t.wait_retry_after_avg_ms,
        "wait_retry_after_p95_ms": t.wait_retry_after_p95_ms,
        "polling_calls": t.polling_calls,
    })
}

fn window_view(w: &Window) -> Value {
    let t = &w.table;
    let mut view = json!({
        "window_ms": w.window_ms,
        "activity_events": w.activity_events,
        "messages_created": t.messages_created,
        "tasks_updated": t.tasks_updated,
        "done_tasks_updated": t.done_tasks_updated,
        "avg_message_chars": t.avg_message_chars,
        "profile_mismatch_claims": w.profile_mismatch_claims,
        "artifact_uploads": w.artifact_uploads,
        "artifact_downloads": w.artifact_downloads,
        "artifact_shares": w.artifact_shares,
        "task_artifact_attaches": w.task_artifact_attaches,
        "task_artifact_queries": w.task_artifact_queries,
        "claim_with_artifact_hints": w.claim_with_artifact_hints,
        "status_transitions": t.status_transitions,
        "done_transitions": t.done_transitions,
        "reopen_transitions": t.reopen_transitions,
        "reopen_rate_pct": w.reopen_rate_pct(),
        "done_with_evidence": t.done_with_evidence,
        "done_with_evidence_rate_pct": w.done_with_evidence_rate_pct(),
        "consensus_decisions": t.consensus_decisions,
        "consensus_escalations": t.consensus_escalations,
        "consensus_escalation_pct": w.consensus_escalation_pct(),
        "consensus_estimated_tokens_total": t.consensus_estimated_tokens_total,
        "consensus_estimated_tokens_per_decision": w.tokens_per_decision(),
        "consensus_estimated_tokens_per_finalized_decision": w.tokens_per_finalized_decision(),
    });
    if let (Value::Object(view), Value::Object(transport)) =
        (&mut view, transport_view(&w.transport))
    {
        view.extend(transport);
    }
    view
}

fn collective_accuracy(largest: Option<&Window>) -> Value {
    match largest {
        Some(w) => json!({
            "window_ms": w.window_ms,
            "reopen_rate_pct": w.reopen_rate_pct(),
            "done_with_evidence_rate_pct": w.done_with_evidence_rate_pct(),
            "consensus_escalation_pct": w.consensus_escalation_pct(),
            "consensus_estimated_tokens_per_finalized_decision": w.tokens_per_finalized_decision(),
        }),
        None => json!({
            "window_ms": 0, "reopen_rate_pct": 0, "done_with_evidence_rate_pct": 100,
            "consensus_escalation_pct": 0,
            "consensus_estimated_tokens_per_finalized_decision": null,
        }),
    }
}

fn backlog_view(rows: &[Backlog], key: &str) -> Value {
    json!(
        rows.iter()
            .map(
                |b| json!({key: b.key, "total": b.total, "pending": b.pending,
                            "in_progress": b.in_progress})
            )
            .collect::<Vec<_>>()
    )
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetTransportSnapshotArgs {
    // The caller (touched when given).
    pub requesting_agent: Option<String>,
    // Window in seconds, 30-604800 (default 300).
    pub window_sec: Option<f64>,
    // tiny (default) or full (adds queue and latest_window).
    pub response_mode: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(GetTransportSnapshotArgs, optional_caller = requesting_agent);

fn get_transport_snapshot(db: &Db, ctx: &mut OpCtx, args: GetTransportSnapshotArgs) -> ToolResult {
    let window_sec = int_arg(args.window_sec, 300, 30, 604_800);
    // Anything but "full" is tiny (spec §4.3).
    let full = args.response_mode.as_deref() == Some("full");
    let snapshot = service::transport_snapshot(db, ctx, window_sec, full)?;
    Ok(render_transport(&snapshot))
}

fn render_transport(s: &TransportSnapshot) -> Value {
    let mut body = json!({
        "success": true,
        "generated_at": s.generated_at,
        "window_sec": s.window_sec,
        "transport": transport_view(&s.transport),
    });
    if let Some((queue, window)) = &s.full {
        body["queue"] = queue_view(queue);
        body["latest_window"] = window_view(window);
    }
    body
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct EvaluateSloAlertsArgs {
    // The caller (logged when given).
    pub requesting_agent: Option<String>,
    pub auth_token: Option<String>,
}
tool_args!(EvaluateSloAlertsArgs, optional_caller = requesting_agent);

fn evaluate_slo_alerts(
    tx: &mut WriteTx<'_>,
    ctx: &mut OpCtx,
    _args: EvaluateSloAlertsArgs,
) -> Result<SloEvaluation, ToolError> {
    let evaluation = service::evaluate_slo(tx, &ctx.config.slo)?;
    if ctx.caller.agent_id().is_some() {
        ctx.log(
            "evaluate_slo_alerts",
            format!(
                "triggered={} resolved={} open={}",
                evaluation.triggered,
                evaluation.resolved,
                evaluation.open_alerts.len()
            ),
        );
    }
    Ok(evaluation)
}

fn render_evaluation(evaluation: SloEvaluation) -> Value {
    json!({"success": true, "evaluation": evaluation_view(&evaluation, true)})
}

fn evaluation_view(e: &SloEvaluation, with_rows: bool) -> Value {
    let open_alerts = if with_rows {
        json!(e.open_alerts.iter().map(alert_view).collect::<Vec<_>>())
    } else {
        json!(e.open_alerts.len())
    };
    let mut view = json!({
        "evaluated_at": e.evaluated_at,
        "triggered": e.triggered,
        "resolved": e.resolved,
        "open_alerts": open_alerts,
    });
    if with_rows {
        view["events"] = json!(
            e.events
                .iter()
                .map(
                    |ev| json!({"code": ev.code, "state": ev.state, "severity": ev.severity,
                                 "message": ev.message})
                )
                .collect::<Vec<_>>()
        );
    }
    view
}

fn alert_view(a: &AlertRow) -> Value {
    json!({
        "id": a.id,
        "code": a.code,
        "severity": a.severity,
        "message": a.message,
        "details_json": a.details_json,
        "created_at": a.created_at,
        "updated_at": a.updated_at,
        "resolved_at": a.resolved_at,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct ListSloAlertsArgs {
    // The caller (touched when given).
    pub requesting_agent: Option<String>,
    // Only unresolved alerts (default false).
    pub open_only: Option<bool>,
    // Filter: high_pending_age, stale_in_progress or claim_churn.
    pub code: Option<String>,
    // Page size, 1-500 (default 100).
    pub limit: Option<f64>,
    // Rows to skip (default 0).
    pub offset: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(ListSloAlertsArgs, optional_caller = requesting_agent);

fn list_slo_alerts(db: &Db, _ctx: &mut OpCtx, args: ListSloAlertsArgs) -> ToolResult {
    let alerts = service::list_slo_alerts(
        db,
        args.open_only.unwrap_or(false),
        non_blank(args.code.as_deref()),
        int_arg(args.limit, 100, 1, 500),
        int_arg(args.offset, 0, 0, i64::MAX),
    )?;
    let alerts: Vec<Value> = alerts.iter().map(alert_view).collect();
    Ok(json!({"success": true, "alerts": alerts}))
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct GetAuthCoverageArgs {
    // The caller (touched when given).
    pub requesting_agent: Option<String>,
    // Window in seconds, 60-604800 (default 1800).
    pub window_sec: Option<f64>,
    pub auth_token: Option<String>,
}
tool_args!(GetAuthCoverageArgs, optional_caller = requesting_agent);

fn get_auth_coverage(db: &Db, ctx: &mut OpCtx, args: GetAuthCoverageArgs) -> ToolResult {
    let window_sec = int_arg(args.window_sec, 1800, 60, 604_800);
    let coverage = service::auth_coverage(db, ctx, window_sec)?;
    Ok(json!({"success": true, "coverage": coverage_view(&coverage)}))
}

fn counts_view(c: &AuthCounts) -> Map<String, Value> {
    let view = json!({
        "total": c.total(),
        "valid": c.valid,
        "missing": c.missing,
        "invalid": c.invalid,
        "skipped": c.skipped,
        "valid_coverage_pct": valid_coverage_pct(c),
    });
    match view {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}

fn coverage_view(c: &AuthCoverage) -> Value {
    let by_tool: Vec<Value> = c
        .by_tool
        .iter()
        .map(|row| {
            let mut view = counts_view(row);
            view.insert("tool_name".into(), json!(row.key));
            Value::Object(view)
        })
        .collect();
    json!({
        "window_ms": c.window_ms,
        "from_ts": c.from_ts,
        "to_ts": c.to_ts,
        "total_events": c.total.total(),
        "valid_events": c.total.valid,
        "missing_events": c.total.missing,
        "invalid_events": c.total.invalid,
        "skipped_events": c.total.skipped,
        "valid_coverage_pct": pct(
            c.total.valid,
            c.total.valid + c.total.missing + c.total.invalid,
            100.0
        ),
        "by_tool": by_tool,
    })
}

#[derive(Debug, Deserialize, JsonSchema)]
pub struct RunMaintenanceArgs {
    // The caller (logged when given).
    pub requesting_agent: Option<String>,
    // Only describe the pass; change nothing (default false).
    pub dry_run: Option<bool>,
    pub auth_token: Option<String>,
}
tool_args!(RunMaintenanceArgs, optional_caller = requesting_agent);

/// A waiting op: the pass flushes the bookkeeping and runs several writer requests (batched
/// retention), which a single writer closure cannot await.
fn run_maintenance(
    hub: Arc<Hub>,
    mut ctx: OpCtx,
    args: RunMaintenanceArgs,
    _cancel: tokio_util::sync::CancellationToken,
) -> WaitFuture {
    Box::pin(async move {
        if args.dry_run == Some(true) {
            let note = "dry_run: nothing ran; without dry_run the pass evaluates SLOs, sweeps \
                        expired claims, updates presence, archives done tasks and purges \
                        expired rows";
            let value = json!({"success": true, "maintenance": {"dry_run": true, "note": note}});
            return (Ok(value), ctx);
        }
        if hub.config.auth_mode == AuthMode::Enforce && !ctx.caller.lifts_ownership() {
            let refusal = ToolError::new(
                "ROLE_NOT_GRANTED",
                "run_maintenance: the pass requeues and deletes other agents' work; under \
                 enforce only a granted orchestrator (MCP_HUB_PRIVILEGED_AGENTS or admin_token \
                 at registration) may run it. dry_run:true is open to all",
            );
            return (Err(refusal), ctx);
        }
        let result = match crate::maintenance::run_once(&hub).await {
            Ok(report) => {
                let summary = maintenance_view(&report);
                if ctx.caller.agent_id().is_some() {
                    ctx.log_quiet("run_maintenance", summary.to_string());
                }
                Ok(json!({"success": true, "maintenance": summary}))
            }
            Err(error) => Err(ToolError::from(error)),
        };
        (result, ctx)
    })
}

fn maintenance_view(r: &MaintenanceReport) -> Value {
    json!({
        "slo": evaluation_view(&r.slo, false),
        // Artifacts land with the artifact tools; until then nothing expires here.
        "artifacts_cleaned": 0,
        "claims_cleaned": r.claims_cleaned,
        "agents_marked_offline": r.agents_marked_offline,
        "ephemeral_claims_reaped": r.ephemeral_claims_reaped,
        "agents_deleted": r.agents_purged,
        "orphaned_assignments_requeued": r.orphaned_assignments_requeued
            + r.stale_agent_tasks_requeued,
        "idempotency_cleaned": r.idempotency_purged,
        "messages_cleaned": r.messages_purged,
        "activity_log_cleaned": r.activity_purged,
        "activity_aggregates_cleaned": r.aggregates_purged,
        "protocol_blobs_cleaned": r.protocol_blobs_purged,
        "tasks_archived": r.tasks_archived,
        "auth_events_cleaned": r.auth_events_purged,
        "resolved_slo_cleaned": r.resolved_slo_purged,
    })
}
