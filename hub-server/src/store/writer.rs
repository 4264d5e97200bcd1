//! The writer thread: drains the store's queue into group commits on its own connection,
//! one SAVEPOINT per request, and publishes the stream heads after each COMMIT.

use std::panic::AssertUnwindSafe;
use std::sync::{Arc, mpsc};

use tokio::sync::watch;

use super::{
    Backend, Db, Delivery, Job, MAX_GROUP, StoreError, StreamHeads, Target, WriteTx, WriterMetrics,
    WriterMsg, replicas,
};
use crate::clock::SharedClock;

/// The writer thread: drains the queue into group commits on its own connection.
pub(super) struct Writer {
    pub(super) target: Target,
    pub(super) clock: SharedClock,
    pub(super) metrics: WriterMetrics,
    pub(super) heads_tx: Arc<watch::Sender<StreamHeads>>,
    pub(super) state: Arc<replicas::DbState>,
    pub(super) epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Writer {
    pub(super) fn run(
        self,
        mut db: Db,
        rx: mpsc::Receiver<WriterMsg>,
        mut seq: i64,
        mut heads: StreamHeads,
    ) {
        let mut closing = false;
        while !closing {
            let mut batch: Vec<Job> = Vec::new();
            match rx.recv() {
                Ok(WriterMsg::Job(job)) => batch.push(job),
                Ok(WriterMsg::Close) | Err(_) => break,
            }
            while batch.len() < MAX_GROUP {
                match rx.try_recv() {
                    Ok(WriterMsg::Job(job)) => batch.push(job),
                    Ok(WriterMsg::Close) => {
                        closing = true;
                        break;
                    }
                    Err(_) => break,
                }
            }
            if db.conn.is_closed()
                || db.epoch < self.epoch.load(std::sync::atomic::Ordering::Acquire)
            {
                db = self.reconnect(db);
            }
            let (seq_before, heads_before) = (seq, heads);
            self.metrics.queue_depth.dec_by(batch.len() as i64);
            self.metrics.group_size.observe(batch.len() as f64);
            let started = std::time::Instant::now();
            let deliveries = self.run_group(&db, batch, &mut seq, &mut heads);
            self.metrics
                .commit_seconds
                .observe(started.elapsed().as_secs_f64());
            match deliveries {
                Ok(deliveries) => {
                    self.state.record_ok();
                    if heads != heads_before {
                        self.heads_tx
                            .send_if_modified(|published| published.merge(&heads));
                    }
                    for deliver in deliveries {
                        deliver(Ok(()));
                    }
                }
                Err((error, deliveries)) => {
                    tracing::error!(%error, "group commit failed; rolling back");
                    self.state.record_error(&error);
                    let _ = db.conn.rollback();
                    seq = seq_before;
                    heads = heads_before;
                    let message = error.to_string();
                    for deliver in deliveries {
                        deliver(Err(StoreError::Internal(format!(
                            "commit failed: {message}"
                        ))));
                    }
                }
            }
        }
        tracing::debug!("store writer stopped");
    }

    /// Replaces a lost connection, retrying with backoff (100 ms doubling to 5 s) until the
    /// database answers again. Queued writes wait meanwhile; none is acknowledged unwritten.
    fn reconnect(&self, lost: Db) -> Db {
        drop(lost);
        let mut delay = std::time::Duration::from_millis(100);
        loop {
            match self
                .target
                .connect(false, self.epoch.load(std::sync::atomic::Ordering::Acquire))
            {
                Ok(db) => {
                    tracing::info!("database connection restored");
                    self.state.record_ok();
                    return db;
                }
                Err(error) => {
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "database unreachable");
                    self.state.record_error(&error);
                    std::thread::sleep(delay);
                    delay = (delay * 2).min(std::time::Duration::from_secs(5));
                }
            }
        }
    }

    fn run_group(
        &self,
        db: &Db,
        batch: Vec<Job>,
        seq: &mut i64,
        heads: &mut StreamHeads,
    ) -> Result<Vec<Delivery>, GroupFailure> {
        let conn = &db.conn;
        let mut deliveries: Vec<Delivery> = Vec::with_capacity(batch.len());
        if let Err(error) = conn.begin_write() {
            // Without a transaction nothing can run. Dropping the jobs drops their reply
            // channels, so every waiting caller gets `StoreError::Closed` rather than hanging.
            drop(batch);
            return Err((error.into(), deliveries));
        }
        // Shared database: take the sequence lock and what other replicas committed.
        if let Err(error) = replicas::lock_sequence(db, seq, heads) {
            return Err((error, deliveries));
        }
        let (seq_at_start, heads_at_start) = (*seq, *heads);
        for job in batch {
            let (seq_mark, heads_mark) = (*seq, *heads);
            if let Err(error) = conn.execute_batch("SAVEPOINT request") {
                return Err((error.into(), deliveries));
            }
            let mut tx = WriteTx {
                db,
                seq,
                heads,
                now_ms: self.clock.now_ms(),
            };
            let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| job(&mut tx)));
            let (keep, deliver) = match outcome {
                Ok(pair) => pair,
                Err(_) => {
                    tracing::error!("a store write panicked; its changes are rolled back");
                    let deliver: Delivery = Box::new(|_| {});
                    (false, deliver)
                }
            };
            let finish = if keep {
                "RELEASE request"
            } else {
                *seq = seq_mark;
                *heads = heads_mark;
                "ROLLBACK TO request; RELEASE request"
            };
            deliveries.push(deliver);
            if let Err(error) = conn.execute_batch(finish) {
                return Err((error.into(), deliveries));
            }
        }
        if *seq != seq_at_start {
            let saved = match db.backend() {
                Backend::Sqlite => conn
                    .execute("UPDATE hub_meta SET value = ?1 WHERE key = 'seq'", [*seq])
                    .map(drop)
                    .map_err(StoreError::from),
                Backend::Postgres => replicas::publish(db, *seq, heads, &heads_at_start),
            };
            if let Err(error) = saved {
                return Err((error, deliveries));
            }
        }
        match conn.commit() {
            Ok(()) => Ok(deliveries),
            Err(error) => Err((error.into(), deliveries)),
        }
    }
}

type GroupFailure = (StoreError, Vec<Delivery>);
