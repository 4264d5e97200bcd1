//! The periodic maintenance pass: lease expiry (forced sweep), presence (offline marking,
//! ephemeral claim reaping, stale-agent purge, orphan requeue) and retention (idempotency
//! records, messages, activity, done-task archive, auth events, unreferenced protocol
//! blobs, expired artifacts with their files, expired artifact tickets), plus pruning of
//! in-memory rate-limit buckets and poll miss streaks. One writer transaction per pass.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::store::{self, StoreResult};
use crate::tools::Hub;

/// What one pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
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
    pub auth_events_purged: usize,
    pub protocol_blobs_purged: usize,
    pub artifacts_purged: usize,
    pub artifact_tickets_purged: usize,
}

/// Runs one pass now.
pub async fn run_once(hub: &Hub) -> StoreResult<MaintenanceReport> {
    let config = hub.config.clone();
    hub.rate_limiter.prune();
    hub.tasks.prune(hub.store.now_ms());
    hub.inbox_gates.prune();
    // Presence decisions must see every heartbeat taken so far.
    hub.bookkeeper.flush().await?;
    let (report, artifact_files) = hub
        .store
        .write(move |tx| {
            let now = tx.now_ms();
            let before = |ttl: Option<i64>| ttl.map(|ttl| now - ttl);
            // 1. Forced lease sweep: expired claims go, their tasks return to the queue.
            let mut report = MaintenanceReport {
                claims_cleaned: store::claims::sweep_expired(tx)?,
                ..Default::default()
            };
            // 2. Presence.
            report.agents_marked_offline = store::agents::mark_stale_offline(
                tx,
                before(config.agent_offline_after_ms),
                before(config.ephemeral_offline_after_ms),
            )?;
            // 3. Claims of vanished ephemeral workers.
            if let Some(cutoff) = before(config.ephemeral_claim_reap_after_ms) {
                report.ephemeral_claims_reaped = store::claims::reap_ephemeral(tx, cutoff)?;
            }
            // 4. Stale agents: release their work, then delete them.
            let persistent_cutoff = before(config.agent_retention_ms);
            let ephemeral_cutoff = before(config.ephemeral_agent_retention_ms);
            for agent_id in store::agents::stale_ids(tx.db(), persistent_cutoff, ephemeral_cutoff)?
            {
                report.stale_agent_tasks_requeued += store::claims::release_agent(tx, &agent_id)?;
            }
            report.agents_purged =
                store::agents::purge_stale(tx, persistent_cutoff, ephemeral_cutoff)?;
            // 5. In-progress work of agents that are gone (pending pre-assignments stay, D33).
            report.orphaned_assignments_requeued = store::claims::requeue_orphans(tx)?;
            // 6. Done tasks nothing depends on move to the archive.
            if let Some(cutoff) = before(config.done_task_ttl_ms) {
                for task in
                    store::tasks::archivable_done(tx.db(), cutoff, config.archive_batch_limit)?
                {
                    store::tasks::delete(tx, &task, Some("ttl_cleanup"))?;
                    report.tasks_archived += 1;
                }
            }
            if let Some(cutoff) = before(config.idempotency_ttl_ms) {
                report.idempotency_purged = store::idempotency::purge_before(tx, cutoff)?;
            }
            if let Some(cutoff) = before(config.message_ttl_ms) {
                report.messages_purged = store::messages::purge_before(tx, cutoff)?;
            }
            if let Some(cutoff) = before(config.activity_log_ttl_ms) {
                report.activity_purged = store::activity::purge_before(tx, cutoff)?;
            }
            if let Some(cutoff) = before(config.auth_events_ttl_ms) {
                report.auth_events_purged = store::auth::purge_events_before(tx, cutoff)?;
            }
            // After the message purge, so blobs only expired messages referenced can go too.
            if let Some(cutoff) = before(config.protocol_blob_ttl_ms) {
                report.protocol_blobs_purged = store::blobs::purge_unreferenced_before(tx, cutoff)?;
            }
            // Artifact rows (shares, task links and tickets cascade); their files go after
            // the commit, and a crash in between leaves them to the startup sweep.
            let (purged, artifact_files) =
                store::artifacts::purge_expired(tx, before(config.artifact_ttl_ms))?;
            report.artifacts_purged = purged;
            report.artifact_tickets_purged = store::artifacts::purge_expired_tickets(tx)?;
            Ok((report, artifact_files))
        })
        .await?;
    if !artifact_files.is_empty() {
        let dir = hub.config.artifacts_dir.clone();
        let _ = tokio::task::spawn_blocking(move || {
            crate::artifact_files::remove(&dir, &artifact_files)
        })
        .await;
    }
    Ok(report)
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
                Ok(report) if report != MaintenanceReport::default() => {
                    tracing::debug!(?report, "maintenance pass");
                }
                Ok(_) => {}
                Err(error) => tracing::warn!(%error, "maintenance pass failed"),
            },
        }
    }
}
