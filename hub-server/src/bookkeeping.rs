//! Coalesces the call pipeline's bookkeeping in memory — heartbeats, token last-use, auth
//! events, quiet activity rows — and hands it to the writer in one batch at most
//! [`FLUSH_INTERVAL`] later, and at shutdown. A tool call thus costs the writer thread only
//! its own SQL; reports and presence lag by at most the flush interval.
//!
//! Nothing here decides anything: losing a batch to a crash loses presence and audit detail
//! of the last moments, never an acknowledged change (those commit with their op).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::store::activity::ActivityRow;
use crate::store::bookkeeping::{AuthEvent, Batch};
use crate::store::{self, Store, StoreResult};

/// The staleness bound of heartbeats, token use and auth events in the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Pending {
    heartbeats: HashMap<String, i64>,
    token_uses: HashMap<String, i64>,
    auth_events: Vec<AuthEvent>,
    activity: Vec<(ActivityRow, i64)>,
}

impl Pending {
    fn take(&mut self) -> Batch {
        let pending = std::mem::take(self);
        Batch {
            heartbeats: pending.heartbeats.into_iter().collect(),
            token_uses: pending.token_uses.into_iter().collect(),
            auth_events: pending.auth_events,
            activity: pending.activity,
        }
    }
}

/// What one call leaves for the bookkeeper.
#[derive(Debug, Default)]
pub struct CallRecord {
    pub auth_event: Option<AuthEvent>,
    pub token_used_by: Option<String>,
    pub heartbeat: Option<String>,
    /// Quiet rows only; rows that advance the activity stream commit with their op.
    pub quiet_activity: Vec<ActivityRow>,
}

pub struct Bookkeeper {
    store: Store,
    pending: Mutex<Pending>,
    /// Serialises flushes so batches reach the writer in order.
    flushing: tokio::sync::Mutex<()>,
}

impl Bookkeeper {
    pub fn new(store: Store) -> Bookkeeper {
        Bookkeeper {
            store,
            pending: Mutex::new(Pending::default()),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues one call's bookkeeping, dated now.
    pub fn record(&self, call: CallRecord) {
        let now = self.store.now_ms();
        let mut pending = self.lock();
        if let Some(event) = call.auth_event {
            pending.auth_events.push(event);
        }
        if let Some(agent) = call.token_used_by {
            pending.token_uses.insert(agent, now);
        }
        if let Some(agent) = call.heartbeat {
            pending.heartbeats.insert(agent, now);
        }
        pending
            .activity
            .extend(call.quiet_activity.into_iter().map(|row| (row, now)));
    }

    /// Queues a quiet activity row (e.g. an event stream's unsubscribe).
    pub fn activity(&self, row: ActivityRow) {
        self.record(CallRecord {
            quiet_activity: vec![row],
            ..CallRecord::default()
        });
    }

    /// Writes everything queued so far; returns once it is committed.
    pub async fn flush(&self) -> StoreResult<()> {
        let _order = self.flushing.lock().await;
        let batch = self.lock().take();
        if batch.is_empty() {
            return Ok(());
        }
        self.store
            .write(move |tx| store::bookkeeping::apply(tx, &batch))
            .await
    }

    /// Flushes every [`FLUSH_INTERVAL`] until `shutdown`, then once more.
    pub async fn run(&self, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(FLUSH_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(error) = self.flush().await {
                tracing::warn!(%error, "bookkeeping flush failed");
            }
        }
        if let Err(error) = self.flush().await {
            tracing::warn!(%error, "final bookkeeping flush failed");
        }
    }
}
