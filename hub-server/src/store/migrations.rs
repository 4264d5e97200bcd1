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
    // 2 (context branch): shared context with a change sequence, protocol blobs, consensus
    // decisions. Self-contained; agent_quality is also created by the task-board migration,
    // hence IF NOT EXISTS.
    r#"
    CREATE TABLE context (
        id         INTEGER PRIMARY KEY AUTOINCREMENT,
        seq        INTEGER NOT NULL,
        agent_id   TEXT NOT NULL,
        key        TEXT NOT NULL,
        value      TEXT NOT NULL,
        namespace  TEXT NOT NULL DEFAULT 'default',
        trace_id   TEXT,
        span_id    TEXT,
        updated_at INTEGER NOT NULL,
        UNIQUE (agent_id, key)
    );
    CREATE INDEX context_seq ON context (seq);
    CREATE INDEX context_updated ON context (updated_at);
    CREATE INDEX context_namespace_updated ON context (namespace, updated_at);

    CREATE TABLE protocol_blobs (
        hash         TEXT PRIMARY KEY,
        value        TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        access_count INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX protocol_blobs_updated ON protocol_blobs (updated_at);

    CREATE TABLE consensus_decisions (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        proposal_id      TEXT NOT NULL,
        requesting_agent TEXT NOT NULL,
        outcome          TEXT NOT NULL,
        stats_json       TEXT NOT NULL,
        reasons_json     TEXT NOT NULL DEFAULT '[]',
        created_at       INTEGER NOT NULL
    );
    CREATE INDEX consensus_proposal_created ON consensus_decisions (proposal_id, created_at DESC);
    CREATE INDEX consensus_created ON consensus_decisions (created_at DESC);

    CREATE TABLE IF NOT EXISTS agent_quality (
        agent_id        TEXT PRIMARY KEY,
        completed_count INTEGER NOT NULL DEFAULT 0,
        rollback_count  INTEGER NOT NULL DEFAULT 0,
        last_updated    INTEGER NOT NULL DEFAULT 0
    );
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
