//! The durable state of the hub: one SQLite file, or one PostgreSQL database shared by any
//! number of hub replicas.
//!
//! Owns every SQL statement in the crate. Knows nothing of MCP or HTTP: callers pass closures
//! that call the per-domain functions in the submodules and get plain rows back.
//!
//! Concurrency model:
//! - one writer thread owns the only read-write connection. [`Store::write`] sends it a closure;
//!   the thread drains whatever is queued into one transaction (group commit), runs each closure
//!   inside its own SAVEPOINT so a failing one rolls back alone, commits once, and only then
//!   replies. Every acknowledged write is therefore durable (`synchronous=FULL` by default).
//! - reads run on a small pool of read-only connections on blocking threads ([`Store::read`]);
//!   WAL lets them proceed beside the writer. No SQLite call ever runs on a tokio worker.
//! - every change takes the next value of one hub-wide, gap-free sequence (`seq`), assigned by
//!   the writer in commit order. Cursors are built from it, never from timestamps.
//! - on PostgreSQL each replica has its own writer; a group transaction starts by locking the
//!   sequence row, so groups of all replicas commit one after another and sequence order is
//!   commit order across replicas too (see `replicas.rs`).

pub mod activity;
pub mod agents;
pub mod artifacts;
pub mod auth;
pub mod blobs;
pub mod bookkeeping;
pub mod claims;
pub mod consensus;
pub mod context;
pub mod idempotency;
pub mod inspect;
pub mod kpi;
pub mod messages;
mod migrations;
pub mod quality;
mod replicas;
pub mod reports;
pub mod retention;
pub mod slo;
pub mod sql;
pub mod stats;
pub mod tasks;
mod writer;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use rusqlite::OpenFlags;
use tokio::sync::{Semaphore, oneshot, watch};

use crate::clock::SharedClock;
pub use sql::Backend;
use sql::Connection;

pub use migrations::latest_version as schema_version;

/// Expected failures of store operations. Business refusals with a wire error code are
/// `Conflict`; the tools layer turns each into a JSON error result.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0} not found")]
    NotFound(String),
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    #[error("database error: {0}")]
    Database(#[from] sql::Error),
    #[error("the store is shut down")]
    Closed,
    #[error("internal error: {0}")]
    Internal(String),
}

pub type StoreResult<T> = Result<T, StoreError>;

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::Database(error.into())
    }
}

impl From<postgres::Error> for StoreError {
    fn from(error: postgres::Error) -> Self {
        StoreError::Database(error.into())
    }
}

/// Durability of a commit: FULL survives power loss, NORMAL survives a process crash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncMode {
    Full,
    Normal,
}

impl SyncMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncMode::Full => "full",
            SyncMode::Normal => "normal",
        }
    }
}

/// The change streams that waiters and cursors follow. `Broadcasts` is not a stream of its
/// own: it tracks the newest broadcast message, which every agent can see, so a waiter can
/// tell a broadcast woke it without querying its inbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Messages = 0,
    Tasks = 1,
    Context = 2,
    Activity = 3,
    /// Artifacts created, uploaded, shared, attached or expired.
    Artifacts = 4,
    Broadcasts = 5,
}

pub const STREAM_COUNT: usize = 6;

/// The latest sequence number committed on each stream, published after every commit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamHeads {
    pub heads: [i64; STREAM_COUNT],
}

impl StreamHeads {
    pub fn get(&self, stream: Stream) -> i64 {
        self.heads[stream as usize]
    }

    /// Raises each head to `other`'s where that is newer; true if any moved.
    pub fn merge(&mut self, other: &StreamHeads) -> bool {
        let mut moved = false;
        for (mine, theirs) in self.heads.iter_mut().zip(other.heads) {
            if theirs > *mine {
                *mine = theirs;
                moved = true;
            }
        }
        moved
    }
}

/// A database connection owned by the store. Code above `store/` passes it to store verbs
/// but cannot run SQL on it: the connection inside is private to this module tree, so no
/// database type leaks out.
pub struct Db {
    conn: Connection,
    /// The connection epoch this connection was opened in (see `Inner::epoch`).
    epoch: u64,
}

impl Db {
    pub fn backend(&self) -> Backend {
        self.conn.backend()
    }

    /// Runs `op` in one read transaction: every query in it sees the same committed state,
    /// and no commit can fall between them (a snapshot's rows and its cursor agree).
    pub fn in_snapshot<T, E: From<StoreError>>(
        &self,
        op: impl FnOnce(&Db) -> Result<T, E>,
    ) -> Result<T, E> {
        self.conn.begin_snapshot().map_err(|e| E::from(e.into()))?;
        let result = op(self);
        // A read transaction has nothing to keep; ending it cannot lose anything.
        let _ = self.conn.commit();
        result
    }
}

/// The writer's view of one request inside the group transaction.
pub struct WriteTx<'a> {
    db: &'a Db,
    seq: &'a mut i64,
    heads: &'a mut StreamHeads,
    now_ms: i64,
}

impl<'a> WriteTx<'a> {
    /// The connection, for store verbs that only read.
    pub fn db(&self) -> &Db {
        self.db
    }

    pub(in crate::store) fn conn(&self) -> &Connection {
        &self.db.conn
    }

    /// The time of this write: one value for the whole request so rows written together agree.
    pub fn now_ms(&self) -> i64 {
        self.now_ms
    }

    /// The stream heads as of this point of the group transaction.
    pub fn heads(&self) -> StreamHeads {
        *self.heads
    }

    /// Takes the next hub-wide sequence number for a change on `stream`.
    pub fn next_seq(&mut self, stream: Stream) -> i64 {
        *self.seq += 1;
        self.heads.heads[stream as usize] = *self.seq;
        *self.seq
    }

    /// Records that the change numbered `seq` also belongs to `stream` (e.g. a message that
    /// is a broadcast), without taking a new number.
    pub fn mark_head(&mut self, stream: Stream, seq: i64) {
        let head = &mut self.heads.heads[stream as usize];
        *head = (*head).max(seq);
    }

    /// Takes the next sequence number without advancing any stream head: for rows that are
    /// recorded but must not wake waiters.
    pub fn next_seq_quiet(&mut self) -> i64 {
        *self.seq += 1;
        *self.seq
    }

    /// Runs `op` inside a nested savepoint: on `Err` its writes are undone (and its sequence
    /// numbers returned) while everything the request wrote before stays.
    pub fn nested<T, E>(
        &mut self,
        op: impl FnOnce(&mut WriteTx<'_>) -> Result<T, E>,
    ) -> Result<T, E>
    where
        E: From<StoreError>,
    {
        let seq_mark = *self.seq;
        let heads_mark = *self.heads;
        self.conn()
            .execute_batch("SAVEPOINT nested_op")
            .map_err(|e| E::from(StoreError::from(e)))?;
        let result = op(self);
        let finish = if result.is_ok() {
            "RELEASE nested_op"
        } else {
            *self.seq = seq_mark;
            *self.heads = heads_mark;
            "ROLLBACK TO nested_op; RELEASE nested_op"
        };
        self.conn()
            .execute_batch(finish)
            .map_err(|e| E::from(StoreError::from(e)))?;
        result
    }
}

type Delivery = Box<dyn FnOnce(StoreResult<()>) + Send>;
type Job = Box<dyn FnOnce(&mut WriteTx<'_>) -> (bool, Delivery) + Send>;

enum WriterMsg {
    Job(Job),
    /// Sent by `close`: finish what is queued, then exit.
    Close,
}

/// Most requests folded into one commit; bounds the latency a queue burst adds.
const MAX_GROUP: usize = 512;
const READERS: usize = 4;

/// What the writer thread reports about itself: requests queued, group size and commit time.
/// Plain Prometheus metric handles (shared counters), registered by `crate::metrics`.
#[derive(Debug, Clone)]
pub struct WriterMetrics {
    pub queue_depth: prometheus_client::metrics::gauge::Gauge,
    pub group_size: prometheus_client::metrics::histogram::Histogram,
    pub commit_seconds: prometheus_client::metrics::histogram::Histogram,
}

impl Default for WriterMetrics {
    fn default() -> Self {
        use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
        WriterMetrics {
            queue_depth: Default::default(),
            group_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            commit_seconds: Histogram::new(exponential_buckets(0.000_1, 2.0, 14)),
        }
    }
}

struct Inner {
    metrics: WriterMetrics,
    writer: Mutex<Option<mpsc::Sender<WriterMsg>>>,
    writer_thread: Mutex<Option<JoinHandle<()>>>,
    readers: Mutex<Vec<Db>>,
    reader_permits: Semaphore,
    heads: watch::Receiver<StreamHeads>,
    clock: SharedClock,
    target: Target,
    state: Arc<replicas::DbState>,
    /// Stops the PostgreSQL change listener.
    stopping: Arc<std::sync::atomic::AtomicBool>,
    /// Bumped by the listener whenever its connection to PostgreSQL drops: connections opened
    /// before are presumed dead (a server restart kills them all) and replaced before use,
    /// so a restart costs no failed call once the listener has noticed it.
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

/// Where the data lives.
#[derive(Debug, Clone)]
pub enum Target {
    Sqlite { path: PathBuf, sync: SyncMode },
    Postgres { url: String },
}

impl Target {
    fn connect(&self, read_only: bool, epoch: u64) -> StoreResult<Db> {
        let conn = match self {
            Target::Sqlite { path, sync } => {
                Connection::from_sqlite(open_connection(path, read_only, *sync)?)
            }
            Target::Postgres { url } => Connection::connect_postgres(url)
                .map_err(|e| StoreError::Internal(e.to_string()))?,
        };
        Ok(Db { conn, epoch })
    }
}

/// Handle to the database; cheap to clone.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

fn open_connection(
    path: &Path,
    read_only: bool,
    sync: SyncMode,
) -> rusqlite::Result<rusqlite::Connection> {
    let flags = if read_only {
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX
    } else {
        OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
    };
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    // 32 MiB of page cache per connection (SQLite's default is 2 MiB): a board of 100k tasks
    // with its indexes stays in memory, so claim-path index updates do not re-read pages.
    conn.pragma_update(None, "cache_size", -32_768)?;
    if !read_only {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", sync.as_str())?;
    }
    conn.set_prepared_statement_cache_capacity(64);
    Ok(conn)
}

impl Store {
    /// Opens (creating if needed) the SQLite database at `path`, migrates it and starts the
    /// writer.
    pub fn open(path: &Path, sync: SyncMode, clock: SharedClock) -> StoreResult<Store> {
        let target = Target::Sqlite {
            path: path.to_path_buf(),
            sync,
        };
        Self::open_target(target, clock)
    }

    /// Connects to the PostgreSQL database at `url` (migrating it under an advisory lock, so
    /// replicas starting together migrate once) and starts the writer and change listener.
    pub fn open_postgres(url: &str, clock: SharedClock) -> StoreResult<Store> {
        Self::open_target(
            Target::Postgres {
                url: url.to_string(),
            },
            clock,
        )
    }

    /// Opens the store `target` names: [`Store::open`] or [`Store::open_postgres`].
    pub fn open_target(target: Target, clock: SharedClock) -> StoreResult<Store> {
        if let Target::Sqlite { path, .. } = &target
            && let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::Internal(format!("creating {}: {e}", parent.display())))?;
        }
        let epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let mut writer_db = target.connect(false, 0)?;
        migrations::migrate(&mut writer_db.conn)?;
        let initial_heads = load_heads(&writer_db)?;
        let seq = replicas::seed_shared_heads(&writer_db, &initial_heads)?;
        let initial_heads = replicas::shared_heads(&writer_db)?.unwrap_or(initial_heads);
        let readers = (0..READERS)
            .map(|_| target.connect(true, 0))
            .collect::<StoreResult<Vec<_>>>()?;

        let (heads_tx, heads_rx) = watch::channel(initial_heads);
        let heads_tx = Arc::new(heads_tx);
        let (tx, rx) = mpsc::channel::<WriterMsg>();
        let state = Arc::new(replicas::DbState::new(writer_db.backend()));
        let stopping = Arc::new(std::sync::atomic::AtomicBool::new(false));
        if let Target::Postgres { url } = &target {
            replicas::spawn_listener(
                url.clone(),
                heads_tx.clone(),
                stopping.clone(),
                epoch.clone(),
            )?;
        }
        let writer = writer::Writer {
            target: target.clone(),
            clock: clock.clone(),
            metrics: WriterMetrics::default(),
            heads_tx,
            state: state.clone(),
            epoch: epoch.clone(),
        };
        let metrics = writer.metrics.clone();
        let thread = std::thread::Builder::new()
            .name("hub-store-writer".into())
            .spawn(move || writer.run(writer_db, rx, seq, initial_heads))
            .map_err(|e| StoreError::Internal(format!("spawning writer thread: {e}")))?;

        Ok(Store {
            inner: Arc::new(Inner {
                metrics,
                writer: Mutex::new(Some(tx)),
                writer_thread: Mutex::new(Some(thread)),
                readers: Mutex::new(readers),
                reader_permits: Semaphore::new(READERS),
                heads: heads_rx,
                clock,
                target,
                state,
                stopping,
                epoch,
            }),
        })
    }

    /// Which database this store uses.
    pub fn backend(&self) -> Backend {
        match self.inner.target {
            Target::Sqlite { .. } => Backend::Sqlite,
            Target::Postgres { .. } => Backend::Postgres,
        }
    }

    /// The SQLite file, or `None` on PostgreSQL.
    pub fn path(&self) -> Option<&Path> {
        match &self.inner.target {
            Target::Sqlite { path, .. } => Some(path),
            Target::Postgres { .. } => None,
        }
    }

    /// SQLite's commit durability; PostgreSQL's is the server's `synchronous_commit`.
    pub fn sync_mode(&self) -> Option<SyncMode> {
        match &self.inner.target {
            Target::Sqlite { sync, .. } => Some(*sync),
            Target::Postgres { .. } => None,
        }
    }

    /// Whether the writer's connection is up, and the last connection error.
    pub fn database_state(&self) -> replicas::DbStateSnapshot {
        self.inner.state.snapshot()
    }

    pub fn now_ms(&self) -> i64 {
        self.inner.clock.now_ms()
    }

    /// The heads published by the latest commit.
    pub fn heads(&self) -> StreamHeads {
        *self.inner.heads.borrow()
    }

    /// Follows the per-stream heads; changes after every commit that touched a stream.
    pub fn subscribe(&self) -> watch::Receiver<StreamHeads> {
        self.inner.heads.clone()
    }

    /// The writer's queue depth, group sizes and commit latency.
    pub fn writer_metrics(&self) -> &WriterMetrics {
        &self.inner.metrics
    }

    fn send(&self, job: Job) -> StoreResult<()> {
        let guard = self.inner.writer.lock().unwrap_or_else(|p| p.into_inner());
        let sender = guard.as_ref().ok_or(StoreError::Closed)?;
        // Counted before the send so the writer never sees its own dequeue first.
        self.inner.metrics.queue_depth.inc();
        sender.send(WriterMsg::Job(job)).map_err(|_| {
            self.inner.metrics.queue_depth.dec();
            StoreError::Closed
        })
    }

    /// Runs `op` on the writer thread inside the next group commit and returns its result
    /// once that commit is durable. On `Err` the op's writes are rolled back. The op is
    /// queued when this is called, not when the future is first polled, so writes queued
    /// one after another commit in that order.
    pub fn write<T, F>(&self, op: F) -> impl Future<Output = StoreResult<T>> + Send + use<T, F>
    where
        T: Send + 'static,
        F: FnOnce(&mut WriteTx<'_>) -> StoreResult<T> + Send + 'static,
    {
        let (reply_tx, reply_rx) = oneshot::channel();
        let job: Job = Box::new(move |tx| {
            let result = op(tx);
            let keep = result.is_ok();
            let deliver: Delivery = Box::new(move |commit| {
                let _ = reply_tx.send(commit.and(result));
            });
            (keep, deliver)
        });
        let queued = self.send(job);
        async move {
            queued?;
            reply_rx.await.map_err(|_| StoreError::Closed)?
        }
    }

    /// Queues `op` for the next group commit without waiting for it: bookkeeping (heartbeats,
    /// auth events, activity rows of read tools) that must not slow the read it belongs to.
    pub fn write_detached<F>(&self, op: F)
    where
        F: FnOnce(&mut WriteTx<'_>) -> StoreResult<()> + Send + 'static,
    {
        let job: Job = Box::new(move |tx| {
            let result = op(tx);
            if let Err(error) = &result {
                tracing::warn!(%error, "detached write failed");
            }
            let deliver: Delivery = Box::new(|_| {});
            (result.is_ok(), deliver)
        });
        if self.send(job).is_err() {
            tracing::debug!("detached write dropped: store closed");
        }
    }

    /// Runs `op` on a read-only connection on a blocking thread.
    pub async fn read<T, F>(&self, op: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&Db) -> StoreResult<T> + Send + 'static,
    {
        let _permit = self
            .inner
            .reader_permits
            .acquire()
            .await
            .map_err(|_| StoreError::Closed)?;
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop()
                .ok_or_else(|| StoreError::Internal("reader pool empty".into()))?;
            let epoch = inner.epoch.load(std::sync::atomic::Ordering::Acquire);
            if conn.conn.is_closed() || conn.epoch < epoch {
                // The server restarted or the network dropped: one new connection, and if
                // that fails too the read fails (the lost one stays in the pool to retry).
                match inner.target.connect(true, epoch) {
                    Ok(fresh) => conn = fresh,
                    Err(error) => {
                        inner
                            .readers
                            .lock()
                            .unwrap_or_else(|p| p.into_inner())
                            .push(conn);
                        return Err(error);
                    }
                }
            }
            let result = std::panic::catch_unwind(AssertUnwindSafe(|| op(&conn)))
                .unwrap_or_else(|_| Err(StoreError::Internal("read panicked".into())));
            if let Err(StoreError::Database(error)) = &result
                && error.is_connection_lost()
            {
                // Found dead in use: the next read through this slot reconnects.
                conn.epoch = 0;
                inner
                    .epoch
                    .fetch_max(1, std::sync::atomic::Ordering::AcqRel);
            }
            // A read that panicked inside `Db::in_snapshot` must not hand the next reader a
            // connection stuck in its old snapshot.
            if conn.conn.in_transaction() {
                let _ = conn.conn.rollback();
            }
            inner
                .readers
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(conn);
            result
        })
        .await
        .map_err(|e| StoreError::Internal(format!("read task failed: {e}")))?
    }

    /// Finishes every queued write, then stops the writer thread. Idempotent.
    pub fn close(&self) {
        self.inner
            .stopping
            .store(true, std::sync::atomic::Ordering::Relaxed);
        let sender = self
            .inner
            .writer
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(sender) = sender {
            let _ = sender.send(WriterMsg::Close);
        }
        let thread = self
            .inner
            .writer_thread
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }
}

fn load_heads(db: &Db) -> StoreResult<StreamHeads> {
    let conn = &db.conn;
    let mut heads = StreamHeads::default();
    heads.heads[Stream::Messages as usize] =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM messages", [], |r| {
            r.get(0)
        })?;
    heads.heads[Stream::Tasks as usize] = tasks::stream_head(db)?;
    heads.heads[Stream::Broadcasts as usize] = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM messages WHERE to_agent IS NULL",
        [],
        |r| r.get(0),
    )?;
    heads.heads[Stream::Context as usize] =
        conn.query_row("SELECT COALESCE(MAX(seq), 0) FROM context", [], |r| {
            r.get(0)
        })?;
    heads.heads[Stream::Activity as usize] = conn.query_row(
        "SELECT COALESCE(MAX(seq), 0) FROM activity_log WHERE quiet = 0",
        [],
        |r| r.get(0),
    )?;
    // Artifact rows keep no sequence of their own: after a restart the head starts at the
    // hub's sequence, so a watcher may wake once spuriously but never misses a change.
    heads.heads[Stream::Artifacts as usize] =
        conn.query_row("SELECT value FROM hub_meta WHERE key = 'seq'", [], |r| {
            r.get(0)
        })?;
    Ok(heads)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    fn open_temp() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(
            &dir.path().join("hub.db"),
            SyncMode::Normal,
            ManualClock::new(1_000),
        )
        .unwrap();
        (dir, store)
    }

    #[tokio::test]
    async fn failed_write_rolls_back_alone_and_returns_its_sequence_numbers() {
        let (_dir, store) = open_temp();
        let first = store
            .write(|tx| Ok(tx.next_seq(Stream::Messages)))
            .await
            .unwrap();
        let failed: StoreResult<i64> = store
            .write(|tx| {
                tx.conn()
                    .execute("UPDATE hub_meta SET value = 99 WHERE key = 'other'", [])?;
                tx.next_seq(Stream::Messages);
                Err(StoreError::Conflict {
                    code: "X",
                    message: "refused".into(),
                })
            })
            .await;
        assert!(failed.is_err());
        let second = store
            .write(|tx| Ok(tx.next_seq(Stream::Messages)))
            .await
            .unwrap();
        assert_eq!(second, first + 1, "sequence must stay gap-free");
        assert_eq!(store.subscribe().borrow().get(Stream::Messages), second);
    }

    #[tokio::test]
    async fn concurrent_writes_are_group_committed_without_loss() {
        let (_dir, store) = open_temp();
        let mut joins = Vec::new();
        for _ in 0..200 {
            let store = store.clone();
            joins.push(tokio::spawn(async move {
                store.write(|tx| Ok(tx.next_seq(Stream::Tasks))).await
            }));
        }
        let mut seen = Vec::new();
        for join in joins {
            seen.push(join.await.unwrap().unwrap());
        }
        seen.sort();
        assert_eq!(seen, (1..=200).collect::<Vec<i64>>());
        let persisted = store
            .read(|db| {
                Ok(db
                    .conn
                    .query_row("SELECT value FROM hub_meta WHERE key='seq'", [], |r| {
                        r.get::<_, i64>(0)
                    })?)
            })
            .await
            .unwrap();
        assert_eq!(persisted, 200);
    }

    #[tokio::test]
    async fn a_panicked_snapshot_read_leaves_no_stale_snapshot_behind() {
        let (_dir, store) = open_temp();
        for _ in 0..READERS {
            let failed = store
                .read(|db| db.in_snapshot(|_| -> StoreResult<()> { panic!("boom") }))
                .await;
            assert!(failed.is_err());
        }
        let seq = store
            .write(|tx| Ok(tx.next_seq(Stream::Messages)))
            .await
            .unwrap();
        for _ in 0..READERS {
            let seen = store
                .read(|db| {
                    db.in_snapshot(|db| {
                        Ok(db.conn.query_row(
                            "SELECT value FROM hub_meta WHERE key='seq'",
                            [],
                            |r| r.get::<_, i64>(0),
                        )?)
                    })
                })
                .await
                .unwrap();
            assert_eq!(seen, seq, "every reader sees the latest commit");
        }
    }
}
