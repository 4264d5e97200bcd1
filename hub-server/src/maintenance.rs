//! The periodic maintenance pass (spec tools-more §4.6): SLO evaluation, lease expiry
//! (forced sweep), presence (offline marking, ephemeral claim reaping, stale-agent purge,
//! orphan requeue) and the done-task archive in one writer transaction; then retention
//! (idempotency records, messages, activity rows and aggregates, auth events, resolved SLO
//! alerts, unreferenced protocol blobs) in batches of [`PURGE_BATCH`] rows, one writer
//! request each, so a large purge never holds the writer for more than one batch. Also
//! prunes the in-memory rate-limit buckets, quota windows and poll miss streaks. Expired
//! artifacts and tickets go in one writer request, their files after its commit.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::service::observability::{self as observability, SloEvaluation};
use crate::store::retention::{self, Purge};
use crate::store::{self, StoreResult};
use crate::tools::Hub;

/// Rows one retention request deletes at most: a few milliseconds of writer time (see
/// BENCHMARKS.md, "purge stall").
pub const PURGE_BATCH: i64 = 1_000;

/// What one pass changed.
#[derive(Debug, Clone, Default)]
pub struct MaintenanceReport {
    pub slo: SloEvaluation,
    pub claims_cleaned: usize,
    pub agents_marked_offline: usize,
    pub ephemeral_claims_reaped: usize,
    pub stale_agent_tasks_requeued: usize,
    pub orphaned_assignments_requeued: usize,
    pub tasks_archived: usize,
    pub agents_purged: usize,
    pub idempotency_purged: usize,
    pub messages_purged: usize,
    pub activity_purged: usize,
    pub aggregates_purged: usize,
    pub auth_events_purged: usize,
    pub resolved_slo_purged: usize,
    pub protocol_blobs_purged: usize,
    pub artifacts_purged: usize,
    pub artifact_tickets_purged: usize,
}

impl MaintenanceReport {
    /// Whether the pass did something worth a log line.
    pub fn noteworthy(&self) -> bool {
        self.slo.triggered + self.slo.resolved + self.claims_cleaned + self.tasks_archived > 0
    }
}

/// Runs one pass now.
pub async fn run_once(hub: &Hub) -> StoreResult<MaintenanceReport> {
    let config = hub.config.clone();
    let now = hub.store.now_ms();
    hub.rate_limiter.prune();
    hub.quotas.prune(now);
    hub.tasks.prune(now);
    hub.inbox_gates.prune();
    // Presence decisions and SLO counts must see every call taken so far.
    hub.bookkeeper.flush().await?;
    let mut report = hub
        .store
        .write(move |tx| {
            let now = tx.now_ms();
            let before = |ttl: Option<i64>| ttl.map(|ttl| now - ttl);
            // 1. SLOs, on the board as it was before this pass changed it.
            let mut report = MaintenanceReport {
                slo: observability::evaluate_slo(tx, &config.slo)?,
                ..Default::default()
            };
            // 2. Forced lease sweep: expired claims go, their tasks return to the queue.
            report.claims_cleaned = store::claims::sweep_expired(tx)?;
            // 3. Presence.
            report.agents_marked_offline = store::agents::mark_stale_offline(
                tx,
                before(config.agent_offline_after_ms),
                before(config.ephemeral_offline_after_ms),
            )?;
            // 4. Claims of vanished ephemeral workers.
            if let Some(cutoff) = before(config.ephemeral_claim_reap_after_ms) {
                report.ephemeral_claims_reaped = store::claims::reap_ephemeral(tx, cutoff)?;
            }
            // 5. Stale agents: release their work, then delete them.
            let persistent_cutoff = before(config.agent_retention_ms);
            let ephemeral_cutoff = before(config.ephemeral_agent_retention_ms);
            for agent_id in store::agents::stale_ids(tx.db(), persistent_cutoff, ephemeral_cutoff)?
            {
                report.stale_agent_tasks_requeued += store::claims::release_agent(tx, &agent_id)?;
            }
            report.agents_purged =
                store::agents::purge_stale(tx, persistent_cutoff, ephemeral_cutoff)?;
            // 6. In-progress work of agents that are gone (pending pre-assignments stay, D33).
            report.orphaned_assignments_requeued = store::claims::requeue_orphans(tx)?;
            // 7. Done tasks nothing depends on move to the archive (bounded per pass).
            if let Some(cutoff) = before(config.done_task_ttl_ms) {
                for task in
                    store::tasks::archivable_done(tx.db(), cutoff, config.archive_batch_limit)?
                {
                    store::tasks::delete(tx, &task, Some("ttl_cleanup"))?;
                    report.tasks_archived += 1;
                }
            }
            Ok(report)
        })
        .await?;
    purge_expired(hub, now, &mut report).await?;
    Ok(report)
}

/// Retention, oldest rows first, in batches: each batch is its own writer request, so writes
/// queued meanwhile commit between batches.
async fn purge_expired(hub: &Hub, now: i64, report: &mut MaintenanceReport) -> StoreResult<()> {
    let config = &hub.config;
    let before = |ttl: Option<i64>| ttl.map(|ttl| now - ttl);
    // Aggregates serve both activity KPIs and auth coverage: kept as long as either.
    let aggregates_ttl = match (config.activity_log_ttl_ms, config.auth_events_ttl_ms) {
        (Some(a), Some(b)) => Some(a.max(b)),
        _ => None,
    };
    let plan = [
        (Purge::IdempotencyKeys, before(config.idempotency_ttl_ms)),
        (Purge::Messages, before(config.message_ttl_ms)),
        (Purge::ActivityLog, before(config.activity_log_ttl_ms)),
        (Purge::ActivityMinutes, before(aggregates_ttl)),
        (Purge::CallMinutes, before(aggregates_ttl)),
        (Purge::AuthEvents, before(config.auth_events_ttl_ms)),
        (Purge::ResolvedSloAlerts, before(config.resolved_slo_ttl_ms)),
    ];
    for (table, cutoff) in plan {
        let Some(cutoff) = cutoff else { continue };
        let purged = purge_table(&hub.store, table, cutoff).await?;
        let counter = match table {
            Purge::IdempotencyKeys => &mut report.idempotency_purged,
            Purge::Messages => &mut report.messages_purged,
            Purge::ActivityLog => &mut report.activity_purged,
            Purge::ActivityMinutes | Purge::CallMinutes => &mut report.aggregates_purged,
            Purge::AuthEvents => &mut report.auth_events_purged,
            Purge::ResolvedSloAlerts => &mut report.resolved_slo_purged,
        };
        *counter += purged;
    }
    // After the message purge, so blobs only expired messages referenced can go too.
    if let Some(cutoff) = before(config.protocol_blob_ttl_ms) {
        report.protocol_blobs_purged = hub
            .store
            .write(move |tx| store::blobs::purge_unreferenced_before(tx, cutoff))
            .await?;
    }
    // Artifact rows (shares, task links and tickets cascade); their files go after the
    // commit, and a crash in between leaves them to the startup sweep.
    let artifact_cutoff = before(config.artifact_ttl_ms);
    let (artifacts, tickets, files) = hub
        .store
        .write(move |tx| {
            let (purged, files) = store::artifacts::purge_expired(tx, artifact_cutoff)?;
            Ok((purged, store::artifacts::purge_expired_tickets(tx)?, files))
        })
        .await?;
    report.artifacts_purged = artifacts;
    report.artifact_tickets_purged = tickets;
    if !files.is_empty() {
        let dir = config.artifacts_dir.clone();
        let _ =
            tokio::task::spawn_blocking(move || crate::artifact_files::remove(&dir, &files)).await;
    }
    Ok(())
}

/// Deletes every row of `table` older than `cutoff`, one batch per writer request.
pub async fn purge_table(store: &store::Store, table: Purge, cutoff: i64) -> StoreResult<usize> {
    let mut total = 0;
    loop {
        let purged = store
            .write(move |tx| retention::purge_batch(tx, table, cutoff, PURGE_BATCH))
            .await?;
        total += purged;
        if purged < PURGE_BATCH as usize {
            return Ok(total);
        }
    }
}

/// Runs a pass every `MCP_HUB_MAINTENANCE_INTERVAL_MS` until shutdown. Errors are logged
/// and the timer continues.
pub async fn run_periodically(hub: Arc<Hub>, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(hub.config.maintenance_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => match run_once(&hub).await {
                Ok(report) if report.noteworthy() => tracing::info!(
                    claims_cleaned = report.claims_cleaned,
                    tasks_archived = report.tasks_archived,
                    slo_triggered = report.slo.triggered,
                    slo_resolved = report.slo.resolved,
                    "maintenance pass"
                ),
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "maintenance pass failed"),
            },
        }
    }
}
