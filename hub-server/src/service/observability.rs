//! Observability operations (spec tools-more §4): the activity log page, KPI and transport
//! snapshots, SLO evaluation and listing, auth coverage. Counts of calls and activity come
//! from the per-minute aggregates (`store::stats`), so they lag the calls by at most one
//! bookkeeping flush (250 ms); the other figures come from their tables.

use crate::domain::observability::{
    self as obs, CLAIM_CHURN_ACTIONS, POLLING_ACTIONS, Severity, SloCode, SloThresholds, pct,
    round2,
};
use crate::store::activity::LoggedRow;
use crate::store::kpi::{self, Backlog, BacklogBy, Queue};
use crate::store::slo::{self as slo_store, AlertRow};
use crate::store::stats::{self, AuthCounts};
use crate::store::{Db, StoreResult, WriteTx};

use super::{Ctx, Refusal};

pub fn activity_page(
    db: &Db,
    agent_id: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<LoggedRow>, Refusal> {
    Ok(crate::store::activity::list(db, agent_id, limit, offset)?)
}

/// One KPI window (spec §4.2).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Window {
    pub window_ms: i64,
    pub activity_events: i64,
    pub table: kpi::TableWindow,
    pub polling_calls: i64,
    pub profile_mismatch_claims: i64,
    pub artifact_uploads: i64,
    pub artifact_downloads: i64,
    pub artifact_shares: i64,
    pub task_artifact_attaches: i64,
    pub task_artifact_queries: i64,
    pub claim_with_artifact_hints: i64,
    pub transport: Transport,
}

/// Long-poll figures of one window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Transport {
    pub wait_calls: i64,
    pub wait_hits: i64,
    pub wait_timeouts: i64,
    pub wait_hit_rate_pct: f64,
    pub wait_retry_after_avg_ms: Option<i64>,
    pub wait_retry_after_p95_ms: Option<i64>,
    pub polling_calls: i64,
}

impl Window {
    pub fn reopen_rate_pct(&self) -> f64 {
        pct(
            self.table.reopen_transitions,
            self.table.done_transitions,
            0.0,
        )
    }

    pub fn done_with_evidence_rate_pct(&self) -> f64 {
        pct(
            self.table.done_with_evidence,
            self.table.done_transitions,
            100.0,
        )
    }

    pub fn consensus_escalation_pct(&self) -> f64 {
        pct(
            self.table.consensus_escalations,
            self.table.consensus_decisions,
            0.0,
        )
    }

    pub fn tokens_per_decision(&self) -> Option<f64> {
        (self.table.consensus_decisions > 0).then(|| {
            round2(
                self.table.consensus_estimated_tokens_total / self.table.consensus_decisions as f64,
            )
        })
    }

    pub fn tokens_per_finalized_decision(&self) -> Option<f64> {
        (self.table.consensus_finalized > 0).then(|| {
            round2(
                self.table.consensus_estimated_tokens_total / self.table.consensus_finalized as f64,
            )
        })
    }
}

fn transport(db: &Db, from: i64) -> StoreResult<Transport> {
    let wait_calls = stats::tool_calls(db, from, "wait_for_updates")?;
    let wait_hits = stats::action_count(db, from, "wait_for_updates_hit", None)?;
    let retry_hints: Vec<(i64, i64)> = stats::action_tags(db, from, "wait_for_updates_timeout")?
        .into_iter()
        .filter_map(|(tag, n)| Some((tag.parse().ok()?, n)))
        .collect();
    let timeout_rows = stats::action_count(db, from, "wait_for_updates_timeout", None)?;
    let wait_timeouts = timeout_rows.max(wait_calls - wait_hits).max(0);
    let (avg, p95) = obs::mean_and_p95(&retry_hints);
    Ok(Transport {
        wait_calls,
        wait_hits,
        wait_timeouts,
        wait_hit_rate_pct: pct(wait_hits, wait_hits + wait_timeouts, 0.0),
        wait_retry_after_avg_ms: avg,
        wait_retry_after_p95_ms: p95,
        polling_calls: stats::actions_count(db, from, &POLLING_ACTIONS)?,
    })
}

pub fn window(db: &Db, now: i64, window_sec: i64) -> StoreResult<Window> {
    let window_ms = window_sec * 1000;
    let from = now - window_ms;
    let count = |actions: &[&str]| stats::actions_count(db, from, actions);
    let hints = |action: &str| stats::action_count(db, from, action, Some(obs::ARTIFACT_HINTS_TAG));
    let transport = transport(db, from)?;
    Ok(Window {
        window_ms,
        activity_events: stats::activity_total(db, from)?,
        table: kpi::table_window(db, from)?,
        polling_calls: transport.polling_calls,
        profile_mismatch_claims: stats::action_count(
            db,
            from,
            "claim_task_failed",
            Some("PROFILE_MISMATCH"),
        )?,
        artifact_uploads: count(&["create_artifact_upload", "artifact_upload_http"])?,
        artifact_downloads: count(&[
            "create_artifact_download",
            "create_task_artifact_downloads",
            "artifact_download_http",
        ])?,
        artifact_shares: count(&["share_artifact"])?,
        task_artifact_attaches: count(&["attach_task_artifact"])?,
        task_artifact_queries: count(&["list_task_artifacts"])?,
        claim_with_artifact_hints: hints("poll_and_claim")? + hints("claim_task")?,
        transport,
    })
}

/// What `get_kpi_snapshot` asked for.
#[derive(Debug, Clone)]
pub struct KpiQuery {
    pub windows_sec: Vec<i64>,
    pub include_top_actions: bool,
    pub include_backlogs: (bool, bool),
    pub include_auth: bool,
    pub include_slo: bool,
    /// Tiny mode needs only the first window.
    pub first_window_only: bool,
}

#[derive(Debug, Clone, Default)]
pub struct KpiSnapshot {
    pub generated_at: i64,
    pub queue: Queue,
    pub windows: Vec<Window>,
    /// The largest window (collective accuracy is read from it).
    pub largest: Option<Window>,
    pub top_actions_5m: Option<Vec<(String, i64)>>,
    pub namespace_backlog: Option<Vec<Backlog>>,
    pub execution_backlog: Option<Vec<Backlog>>,
    pub auth_coverage_30m: Option<AuthCoverage>,
    pub open_slo_alerts: Option<Vec<AlertRow>>,
}

pub fn kpi_snapshot(db: &Db, ctx: &Ctx, query: KpiQuery) -> Result<KpiSnapshot, Refusal> {
    Ok(kpi_snapshot_at(db, ctx.now_ms, query)?)
}

/// [`kpi_snapshot`] at `now` (benchmarks call it without a tool call's context).
pub fn kpi_snapshot_at(db: &Db, now: i64, query: KpiQuery) -> StoreResult<KpiSnapshot> {
    let mut snapshot = KpiSnapshot {
        generated_at: now,
        queue: kpi::queue(db, now)?,
        ..Default::default()
    };
    let wanted = if query.first_window_only {
        &query.windows_sec[..query.windows_sec.len().min(1)]
    } else {
        &query.windows_sec[..]
    };
    for &sec in wanted {
        snapshot.windows.push(window(db, now, sec)?);
    }
    if let Some(&largest) = query.windows_sec.iter().max() {
        snapshot.largest = match snapshot
            .windows
            .iter()
            .find(|w| w.window_ms == largest * 1000)
        {
            Some(found) => Some(found.clone()),
            None => Some(window(db, now, largest)?),
        };
    }
    if query.first_window_only {
        return Ok(snapshot);
    }
    if query.include_top_actions {
        snapshot.top_actions_5m = Some(stats::top_actions(db, now - 300_000, 12)?);
    }
    if query.include_backlogs.0 {
        snapshot.namespace_backlog = Some(kpi::backlog(db, BacklogBy::Namespace, 20)?);
    }
    if query.include_backlogs.1 {
        snapshot.execution_backlog = Some(kpi::backlog(db, BacklogBy::ExecutionMode, 10)?);
    }
    if query.include_auth {
        snapshot.auth_coverage_30m = Some(auth_coverage_at(db, now, 1800)?);
    }
    if query.include_slo {
        snapshot.open_slo_alerts = Some(slo_store::list(db, true, None, 100, 0)?);
    }
    Ok(snapshot)
}

#[derive(Debug, Clone)]
pub struct TransportSnapshot {
    pub generated_at: i64,
    pub window_sec: i64,
    pub transport: Transport,
    /// Full mode: the queue and the whole window object.
    pub full: Option<(Queue, Window)>,
}

pub fn transport_snapshot(
    db: &Db,
    ctx: &Ctx,
    window_sec: i64,
    full: bool,
) -> Result<TransportSnapshot, Refusal> {
    let now = ctx.now_ms;
    let full = if full {
        Some((kpi::queue(db, now)?, window(db, now, window_sec)?))
    } else {
        None
    };
    let transport = match &full {
        Some((_, window)) => window.transport,
        None => transport(db, now - window_sec * 1000)?,
    };
    Ok(TransportSnapshot {
        generated_at: now,
        window_sec,
        transport,
        full,
    })
}

/// Auth coverage over the last `window_sec` (spec §4.5).
#[derive(Debug, Clone)]
pub struct AuthCoverage {
    pub window_ms: i64,
    pub from_ts: i64,
    pub to_ts: i64,
    pub total: AuthCounts,
    pub by_tool: Vec<AuthCounts>,
}

/// `round2(valid / (valid + missing + invalid) · 100)`, 100 with no checked calls.
pub fn valid_coverage_pct(counts: &AuthCounts) -> f64 {
    pct(
        counts.valid,
        counts.valid + counts.missing + counts.invalid,
        100.0,
    )
}

fn auth_coverage_at(db: &Db, now: i64, window_sec: i64) -> StoreResult<AuthCoverage> {
    let from = now - window_sec * 1000;
    Ok(AuthCoverage {
        window_ms: window_sec * 1000,
        from_ts: from,
        to_ts: now,
        total: stats::auth_total(db, from, i64::MAX)?,
        by_tool: stats::auth_by_tool(db, from, i64::MAX, 20)?,
    })
}

pub fn auth_coverage(db: &Db, ctx: &Ctx, window_sec: i64) -> Result<AuthCoverage, Refusal> {
    Ok(auth_coverage_at(db, ctx.now_ms, window_sec)?)
}

/// One alert transition of an evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SloEvent {
    pub code: &'static str,
    pub state: &'static str,
    pub severity: &'static str,
    pub message: String,
}

#[derive(Debug, Clone, Default)]
pub struct SloEvaluation {
    pub evaluated_at: i64,
    pub triggered: usize,
    pub resolved: usize,
    pub open_alerts: Vec<AlertRow>,
    pub events: Vec<SloEvent>,
}

/// Opens, updates and resolves the SLO alerts at the write's time (spec §4.4). Run by every
/// maintenance pass and by `evaluate_slo_alerts`.
pub fn evaluate_slo(tx: &mut WriteTx<'_>, t: &SloThresholds) -> StoreResult<SloEvaluation> {
    let now = tx.now_ms();
    let mut inputs = slo_store::task_inputs(tx.db(), now, t.stale_in_progress_ms)?;
    inputs.claim_events =
        stats::actions_count(tx.db(), now - t.claim_churn_window_ms, &CLAIM_CHURN_ACTIONS)?;
    let fired = obs::firing(now, &inputs, t);
    let mut evaluation = SloEvaluation {
        evaluated_at: now,
        ..Default::default()
    };
    for code in SloCode::ALL {
        let open = slo_store::open_alert(tx.db(), code.as_str())?;
        match (fired.iter().find(|f| f.code == code), open) {
            (Some(firing), open) => {
                let severity = code.severity().as_str();
                let details = firing.details.to_string();
                let state = match open {
                    Some(alert) => {
                        slo_store::update(tx, alert.id, severity, &firing.message, &details)?;
                        "updated"
                    }
                    None => {
                        slo_store::open(tx, code.as_str(), severity, &firing.message, &details)?;
                        evaluation.triggered += 1;
                        "triggered"
                    }
                };
                evaluation.events.push(SloEvent {
                    code: code.as_str(),
                    state,
                    severity,
                    message: firing.message.clone(),
                });
            }
            (None, Some(alert)) => {
                slo_store::resolve(tx, alert.id)?;
                evaluation.resolved += 1;
                evaluation.events.push(SloEvent {
                    code: code.as_str(),
                    state: "resolved",
                    severity: Severity::Low.as_str(),
                    message: format!("{} recovered", code.as_str()),
                });
            }
            (None, None) => {}
        }
    }
    evaluation.open_alerts = slo_store::list(tx.db(), true, None, 100, 0)?;
    Ok(evaluation)
}

pub fn list_slo_alerts(
    db: &Db,
    open_only: bool,
    code: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<Vec<AlertRow>, Refusal> {
    Ok(slo_store::list(db, open_only, code, limit, offset)?)
}
