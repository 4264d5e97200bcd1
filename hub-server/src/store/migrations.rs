//! Schema migrations: an append-only list tracked by `PRAGMA user_version`.
//!
//! Never edit an entry that has shipped; add a new one. Entry `i` moves the schema from
//! version `i` to `i + 1`, inside the same transaction as the version bump.

use rusqlite::Connection;

const MIGRATIONS: &[&str] = &[
    // 1: agents, auth, messages, activity, idempotency, hub metadata.
    r#"
    CREATE TABLE hub_meta (
        key   TEXT PRIMARY KEY,
        value INTEGER NOT NULL
    );
    INSERT INTO hub_meta (key, value) VALUES ('seq', 0);

    CREATE TABLE agents (
        id                   TEXT PRIMARY KEY,
        name                 TEXT NOT NULL,
        type                 TEXT NOT NULL,
        capabilities         TEXT NOT NULL DEFAULT '',
        role                 TEXT NOT NULL DEFAULT 'worker',
        lifecycle            TEXT NOT NULL DEFAULT 'persistent',
        runtime_mode         TEXT NOT NULL DEFAULT 'unknown',
        runtime_profile_json TEXT NOT NULL DEFAULT '{}',
        status               TEXT NOT NULL DEFAULT 'online',
        last_seen            INTEGER NOT NULL,
        created_at           INTEGER NOT NULL
    );
    CREATE INDEX agents_last_seen ON agents (last_seen);

    CREATE TABLE agent_tokens (
        agent_id     TEXT PRIMARY KEY,
        token_sha256 BLOB NOT NULL,
        created_at   INTEGER NOT NULL,
        last_used_at INTEGER NOT NULL
    );

    CREATE TABLE auth_events (
        id         INTEGER PRIMARY KEY,
        agent_id   TEXT,
        tool_name  TEXT NOT NULL,
        status     TEXT NOT NULL,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX auth_events_created ON auth_events (created_at);

    CREATE TABLE messages (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        seq        INTEGER NOT NULL,
        from_agent TEXT NOT NULL,
        to_agent   TEXT,
        content    TEXT NOT NULL,
        metadata   TEXT NOT NULL DEFAULT '{}',
        trace_id   TEXT,
        span_id    TEXT,
        created_at INTEGER NOT NULL,
        read       INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX messages_to_seq ON messages (to_agent, seq);
    CREATE INDEX messages_to_created ON messages (to_agent, created_at);
    CREATE INDEX messages_created ON messages (created_at);

    CREATE TABLE message_reads (
        message_id INTEGER NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
        agent_id   TEXT NOT NULL,
        read_at    INTEGER NOT NULL,
        PRIMARY KEY (message_id, agent_id)
    ) WITHOUT ROWID;
    CREATE INDEX message_reads_agent ON message_reads (agent_id, read_at);

    CREATE TABLE activity_log (
        id         INTEGER PRIMARY KEY,
        seq        INTEGER NOT NULL,
        agent_id   TEXT NOT NULL,
        action     TEXT NOT NULL,
        details    TEXT NOT NULL DEFAULT '',
        quiet      INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL
    );
    CREATE INDEX activity_created ON activity_log (created_at);
    CREATE INDEX activity_agent_created ON activity_log (agent_id, created_at);

    CREATE TABLE idempotency_keys (
        agent_id        TEXT NOT NULL,
        tool_name       TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        fingerprint     TEXT NOT NULL,
        response_json   TEXT NOT NULL,
        created_at      INTEGER NOT NULL,
        PRIMARY KEY (agent_id, tool_name, idempotency_key)
    );
    CREATE INDEX idempotency_created ON idempotency_keys (created_at);
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database up to [`latest_version`]; refuses a database from a newer build.
pub fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > latest_version() {
        return Err(rusqlite::Error::InvalidParameterName(format!(
            "database schema version {current} is newer than this hub understands ({}); \
             upgrade hub-server",
            latest_version()
        )));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}
