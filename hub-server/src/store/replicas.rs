//! What a shared PostgreSQL database adds to the store: replicas that see each other.
//!
//! - **Order.** Every writer group starts with `SELECT … FOR UPDATE` on the `seq` row of
//!   `hub_meta`. The lock is held to COMMIT, so groups of all replicas commit one after
//!   another and each takes its sequence numbers after the previous group's are committed:
//!   sequence order is commit order. A cursor reader on any replica that sees row N can
//!   therefore never later see a row below N appear (the classic gap where a slow
//!   transaction commits a lower number after a faster one cannot happen), and claims stay
//!   exactly-once because claim transactions of different replicas never interleave.
//! - **Heads.** The newest sequence per stream is kept in `hub_meta` (`head.<stream>`),
//!   updated by each group that moved one, followed by one `NOTIFY hub_heads` per group.
//! - **Wake-ups.** A listener thread per replica (its own connection, `LISTEN hub_heads`)
//!   reads the heads on each notification and merges them into the local watch channel, so
//!   waiters and `/events` streams wake on writes made through any replica. It also re-reads
//!   them every second, which covers a notification lost with a dropped connection.
//!
//! On SQLite (one process owns the file) every function here is a no-op.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use postgres::fallible_iterator::FallibleIterator;
use tokio::sync::watch;

use super::sql::{Backend, Connection, params};
use super::{Db, STREAM_COUNT, StoreError, StoreResult, StreamHeads};

const CHANNEL: &str = "hub_heads";
/// How often the listener re-reads the heads without a notification.
const RECHECK: Duration = Duration::from_secs(1);

fn head_key(stream: usize) -> String {
    format!("head.{stream}")
}

/// Makes sure the shared head rows exist (first start of a database) and returns the
/// committed sequence.
pub(super) fn seed_shared_heads(db: &Db, computed: &StreamHeads) -> StoreResult<i64> {
    if db.backend() == Backend::Postgres {
        for (stream, head) in computed.heads.iter().enumerate() {
            db.conn.execute(
                "INSERT INTO hub_meta (key, value) VALUES (?1, ?2) ON CONFLICT (key) DO NOTHING",
                params![head_key(stream), *head],
            )?;
        }
    }
    Ok(db
        .conn
        .query_row("SELECT value FROM hub_meta WHERE key = 'seq'", [], |r| {
            r.get(0)
        })?)
}

/// The heads every replica agrees on (PostgreSQL), or `None` on SQLite.
pub(super) fn shared_heads(db: &Db) -> StoreResult<Option<StreamHeads>> {
    if db.backend() != Backend::Postgres {
        return Ok(None);
    }
    read_heads(&db.conn).map(Some)
}

fn read_heads(conn: &Connection) -> StoreResult<StreamHeads> {
    let mut heads = StreamHeads::default();
    let rows = conn
        .prepare_cached("SELECT key, value FROM hub_meta WHERE key LIKE 'head.%'")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
    for row in rows {
        let (key, value) = row?;
        let index = key
            .strip_prefix("head.")
            .and_then(|i| i.parse::<usize>().ok())
            .filter(|i| *i < STREAM_COUNT);
        if let Some(index) = index {
            heads.heads[index] = value;
        }
    }
    Ok(heads)
}

/// At the start of a group on PostgreSQL: waits for the sequence lock, then takes the
/// committed sequence and heads (other replicas may have moved both).
pub(super) fn lock_sequence(db: &Db, seq: &mut i64, heads: &mut StreamHeads) -> StoreResult<()> {
    if db.backend() != Backend::Postgres {
        return Ok(());
    }
    *seq = db.conn.query_row(
        "SELECT value FROM hub_meta WHERE key = 'seq' FOR UPDATE",
        [],
        |r| r.get(0),
    )?;
    heads.merge(&read_heads(&db.conn)?);
    Ok(())
}

/// At the end of a group on PostgreSQL that took sequence numbers: stores the sequence and
/// the heads it moved, and notifies the other replicas (delivered at COMMIT).
pub(super) fn publish(
    db: &Db,
    seq: i64,
    heads: &StreamHeads,
    before: &StreamHeads,
) -> StoreResult<()> {
    let conn = &db.conn;
    let mut update = conn.prepare_cached("UPDATE hub_meta SET value = ?2 WHERE key = ?1")?;
    update.execute(params!["seq", seq])?;
    for (stream, (now, then)) in heads.heads.iter().zip(before.heads).enumerate() {
        if *now != then {
            update.execute(params![head_key(stream), *now])?;
        }
    }
    conn.execute_batch(&format!("NOTIFY {CHANNEL}"))?;
    Ok(())
}

/// Starts the thread that follows other replicas' commits.
pub(super) fn spawn_listener(
    url: String,
    heads_tx: Arc<watch::Sender<StreamHeads>>,
    stopping: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
) -> StoreResult<()> {
    std::thread::Builder::new()
        .name("hub-store-listener".into())
        .spawn(move || listen(&url, &heads_tx, &stopping, &epoch))
        .map(drop)
        .map_err(|e| StoreError::Internal(format!("spawning listener thread: {e}")))
}

fn listen(
    url: &str,
    heads_tx: &watch::Sender<StreamHeads>,
    stopping: &AtomicBool,
    epoch: &AtomicU64,
) {
    let mut delay = Duration::from_millis(100);
    while !stopping.load(Ordering::Relaxed) {
        match follow(url, heads_tx, stopping) {
            Ok(()) => return,
            Err(error) => {
                // Whatever killed this connection (a server restart, a network cut) likely
                // killed the store's others too: they are replaced before their next use.
                epoch.fetch_add(1, Ordering::AcqRel);
                tracing::warn!(%error, "change listener lost its connection; reconnecting");
                std::thread::sleep(delay);
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Runs until the store stops (Ok) or the connection fails (Err).
fn follow(
    url: &str,
    heads_tx: &watch::Sender<StreamHeads>,
    stopping: &AtomicBool,
) -> Result<(), String> {
    let mut client = postgres::Client::connect(url, postgres::NoTls).map_err(|e| e.to_string())?;
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|e| e.to_string())?;
    let reader = Connection::connect_postgres(url).map_err(|e| e.to_string())?;
    loop {
        // Read first: whatever committed before LISTEN took effect is seen too.
        let heads = read_heads(&reader).map_err(|e| e.to_string())?;
        heads_tx.send_if_modified(|published| published.merge(&heads));
        if stopping.load(Ordering::Relaxed) {
            return Ok(());
        }
        {
            let mut notifications = client.notifications();
            notifications
                .timeout_iter(RECHECK)
                .next()
                .map_err(|e| e.to_string())?;
            // Many commits may have notified meanwhile; one read covers them all.
            let mut pending = notifications.iter();
            while pending.next().map_err(|e| e.to_string())?.is_some() {}
        }
        if client.is_closed() {
            return Err("connection closed".into());
        }
    }
}

/// The database connection's health, for `/health` and `/metrics`.
#[derive(Debug)]
pub struct DbState {
    backend: Backend,
    connected: AtomicBool,
    errors: AtomicU64,
    last_error: Mutex<Option<String>>,
}

/// A copy of [`DbState`] at one moment.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DbStateSnapshot {
    pub backend: &'static str,
    pub connected: bool,
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl DbState {
    pub(super) fn new(backend: Backend) -> DbState {
        DbState {
            backend,
            connected: AtomicBool::new(true),
            errors: AtomicU64::new(0),
            last_error: Mutex::new(None),
        }
    }

    pub(super) fn record_ok(&self) {
        self.connected.store(true, Ordering::Relaxed);
    }

    pub(super) fn record_error(&self, error: &StoreError) {
        self.errors.fetch_add(1, Ordering::Relaxed);
        let lost = match error {
            StoreError::Database(e) => e.is_connection_lost(),
            StoreError::Internal(_) | StoreError::Closed => true,
            _ => false,
        };
        if lost {
            self.connected.store(false, Ordering::Relaxed);
        }
        *self.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(error.to_string());
    }

    pub fn snapshot(&self) -> DbStateSnapshot {
        DbStateSnapshot {
            backend: self.backend.as_str(),
            connected: self.connected.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            last_error: self
                .last_error
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        }
    }
}
