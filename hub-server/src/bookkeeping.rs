//! Coalesces the call pipeline's bookkeeping in memory — heartbeats, token last-use, the
//! per-minute call and activity counts, a bounded sample of quiet activity rows — and hands
//! it to the writer in one batch at most [`FLUSH_INTERVAL`] later, and at shutdown. A tool
//! call thus costs the writer thread only its own SQL, and the database grows with the
//! number of distinct (minute, tool, outcome, auth, namespace, agent) keys, not with calls.
//!
//! Nothing here decides anything: losing a batch to a crash loses presence and audit detail
//! of the last moments, never an acknowledged change (those commit with their op).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::auth::AuthOutcome;
use crate::domain::observability::{CallOutcome, activity_tag, minute_of};
use crate::metrics::Metrics;
use crate::store::activity::ActivityRow;
use crate::store::bookkeeping::Batch;
use crate::store::stats::{ActivityKey, CallKey};
use crate::store::{self, Store, StoreResult};

/// The staleness bound of heartbeats, token use and counts in the database.
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// Quiet rows kept raw per action and minute; the rest are only counted. Bounds the raw
/// activity log of read-heavy swarms (a few rows a second in all) while every rare action
/// (an audit row such as `cross_agent_read`) is still kept in full.
pub const QUIET_SAMPLE_PER_ACTION_MINUTE: u32 = 30;

/// One guarded call, as counted in `call_minutes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallStat {
    pub tool: &'static str,
    pub agent_id: Option<String>,
    pub namespace: String,
    pub auth: AuthOutcome,
    pub outcome: CallOutcome,
    pub at_ms: i64,
}

#[derive(Default)]
struct Pending {
    heartbeats: HashMap<String, i64>,
    token_uses: HashMap<String, i64>,
    calls: HashMap<CallKey, i64>,
    activity_counts: HashMap<ActivityKey, i64>,
    activity: Vec<(ActivityRow, i64)>,
}

impl Pending {
    fn take(&mut self) -> Batch {
        let pending = std::mem::take(self);
        Batch {
            heartbeats: pending.heartbeats.into_iter().collect(),
            token_uses: pending.token_uses.into_iter().collect(),
            calls: pending.calls.into_iter().collect(),
            activity_counts: pending.activity_counts.into_iter().collect(),
            activity: pending.activity,
        }
    }

    fn count_activity(&mut self, row: &ActivityRow, at_ms: i64) {
        let key = ActivityKey {
            minute_ms: minute_of(at_ms),
            action: row.action.clone(),
            agent_id: row.agent_id.clone(),
            tag: activity_tag(&row.action, &row.details),
        };
        *self.activity_counts.entry(key).or_default() += 1;
    }
}

/// What one call leaves for the bookkeeper.
#[derive(Debug, Default)]
pub struct CallRecord {
    pub call: Option<CallStat>,
    pub token_used_by: Option<String>,
    pub heartbeat: Option<String>,
    /// Quiet rows: counted, and kept raw up to the sample bound.
    pub quiet_activity: Vec<ActivityRow>,
    /// Rows already committed with their op (they advance the stream): only counted.
    pub stream_activity: Vec<ActivityRow>,
}

impl CallRecord {
    /// Sets how the call ended from its answer: `success:false` is a refusal unless the
    /// guard already classified it (rate limit, quota).
    pub fn settle(&mut self, answer: &serde_json::Value) {
        if let Some(call) = &mut self.call
            && call.outcome == CallOutcome::Ok
            && answer.get("success") == Some(&serde_json::Value::Bool(false))
        {
            call.outcome = CallOutcome::Refused;
        }
    }
}

pub struct Bookkeeper {
    store: Store,
    metrics: Option<Arc<Metrics>>,
    pending: Mutex<Pending>,
    /// Quiet rows kept raw per (minute, action) so far; reset each minute.
    sampled: Mutex<(i64, HashMap<String, u32>)>,
    /// Serialises flushes so batches reach the writer in order.
    flushing: tokio::sync::Mutex<()>,
}

impl Bookkeeper {
    pub fn new(store: Store, metrics: Option<Arc<Metrics>>) -> Bookkeeper {
        Bookkeeper {
            store,
            metrics,
            pending: Mutex::new(Pending::default()),
            sampled: Mutex::new((0, HashMap::new())),
            flushing: tokio::sync::Mutex::new(()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether a quiet row of `action` at `now` is kept raw (within the minute's sample).
    fn keep_raw(&self, action: &str, now: i64) -> bool {
        let mut sampled = self.sampled.lock().unwrap_or_else(|p| p.into_inner());
        let minute = minute_of(now);
        if sampled.0 != minute {
            *sampled = (minute, HashMap::new());
        }
        let kept = sampled.1.entry(action.to_string()).or_default();
        *kept += 1;
        *kept <= QUIET_SAMPLE_PER_ACTION_MINUTE
    }

    /// Queues one call's bookkeeping, dated now.
    pub fn record(&self, call: CallRecord) {
        let now = self.store.now_ms();
        let raw: Vec<bool> = call
            .quiet_activity
            .iter()
            .map(|row| self.keep_raw(&row.action, now))
            .collect();
        let mut pending = self.lock();
        if let (Some(stat), Some(metrics)) = (&call.call, &self.metrics) {
            metrics.count_call(stat);
        }
        if let Some(stat) = call.call {
            let key = CallKey {
                minute_ms: minute_of(stat.at_ms),
                tool: stat.tool,
                outcome: stat.outcome,
                auth: stat.auth.as_str(),
                namespace: stat.namespace,
                agent_id: stat.agent_id.unwrap_or_default(),
            };
            *pending.calls.entry(key).or_default() += 1;
        }
        if let Some(agent) = call.token_used_by {
            pending.token_uses.insert(agent, now);
        }
        if let Some(agent) = call.heartbeat {
            pending.heartbeats.insert(agent, now);
        }
        for row in &call.stream_activity {
            pending.count_activity(row, now);
        }
        for (row, keep) in call.quiet_activity.into_iter().zip(raw) {
            pending.count_activity(&row, now);
            if keep {
                pending.activity.push((row, now));
            }
        }
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
