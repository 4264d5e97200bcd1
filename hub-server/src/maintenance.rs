//! The periodic maintenance pass: presence (offline marking, stale-agent purge) and
//! retention (idempotency records, messages, activity, auth events, unreferenced protocol
//! blobs), plus pruning of in-memory rate-limit buckets. One writer transaction per pass.

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

use crate::store::{self, StoreResult};
use crate::tools::Hub;

/// What one pass changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MaintenanceReport {
    pub agents_marked_offline: usize,
    pub agents_purged: usize,
    pub idempotency_purged: usize,
    pub messages_purged: usize,
    pub activity_purged: usize,
    pub auth_events_purged: usize,
    pub protocol_blobs_purged: usize,
}

/// Runs one pass now.
pub async fn run_once(hub: &Hub) -> StoreResult<MaintenanceReport> {
    let config = hub.config.clone();
    hub.rate_limiter.prune();
    hub.store
        .write(move |tx| {
            let now = tx.now_ms();
            let before = |ttl: Option<i64>| ttl.map(|ttl| now - ttl);
            let mut report = MaintenanceReport {
                agents_marked_offline: store::agents::mark_stale_offline(
                    tx,
                    before(config.agent_offline_after_ms),
                    before(config.ephemeral_offline_after_ms),
                )?,
                ..Default::default()
            };
            report.agents_purged = store::agents::purge_stale(
                tx,
                before(config.agent_retention_ms),
                before(config.ephemeral_agent_retention_ms),
            )?;
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
            Ok(report)
        })
        .await
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
