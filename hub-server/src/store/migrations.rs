//! Schema migrations: an append-only list tracked by `PRAGMA user_version`.
//!
//! Never edit an entry that has shipped; add a new one. Entry `i` moves the schema from
//! version `i` to `i + 1`, inside the same transaction as the version bump.

use super::sql::{Backend, Connection};
use super::{StoreError, StoreResult};

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
    // 2: shared context with a change sequence, protocol blobs, consensus
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
    // 3: the task board — tasks, dependencies, claims (leases), evidence, status history,
    // archive, agent quality. Self-contained: it only adds tables, indexes and one meta row.
    r#"
    INSERT OR IGNORE INTO hub_meta (key, value) VALUES ('tasks_delete_seq', 0);

    CREATE TABLE tasks (
        id               INTEGER PRIMARY KEY AUTOINCREMENT,
        seq              INTEGER NOT NULL,
        title            TEXT NOT NULL,
        description      TEXT NOT NULL DEFAULT '',
        namespace        TEXT NOT NULL DEFAULT 'default',
        execution_mode   TEXT NOT NULL DEFAULT 'any',
        consistency_mode TEXT NOT NULL DEFAULT 'cheap',
        status           TEXT NOT NULL DEFAULT 'pending',
        assigned_to      TEXT,
        created_by       TEXT NOT NULL,
        priority         TEXT NOT NULL DEFAULT 'medium',
        -- critical 0, high 1, medium 2, low 3: the first key of the poll order.
        priority_rank    INTEGER NOT NULL DEFAULT 2,
        trace_id         TEXT,
        span_id          TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        -- Denormalized so that poll_and_claim is one index walk: how many of this task's
        -- dependencies are not done (0 = ready), and how many not-done tasks depend on it.
        unmet_deps       INTEGER NOT NULL DEFAULT 0,
        unblocks         INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX tasks_seq ON tasks (seq);
    CREATE INDEX tasks_created ON tasks (created_at, id);
    CREATE INDEX tasks_status_assigned ON tasks (status, assigned_to);
    CREATE INDEX tasks_ns_status_assigned ON tasks (namespace, status, assigned_to);
    CREATE INDEX tasks_status_updated ON tasks (status, updated_at);
    CREATE INDEX tasks_assigned ON tasks (assigned_to) WHERE assigned_to IS NOT NULL;
    -- The poll queue: ready, pending, unassigned tasks in claim order, per execution mode
    -- (and per namespace). A poll reads the first entry of at most two of these ranges.
    CREATE INDEX tasks_poll_queue ON tasks
        (execution_mode, priority_rank, unblocks DESC, created_at, id)
        WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0;
    CREATE INDEX tasks_poll_queue_ns ON tasks
        (namespace, execution_mode, priority_rank, unblocks DESC, created_at, id)
        WHERE status = 'pending' AND assigned_to IS NULL AND unmet_deps = 0;
    -- Ready pending tasks pre-assigned to an agent, in claim order.
    CREATE INDEX tasks_poll_assigned ON tasks
        (assigned_to, priority_rank, unblocks DESC, created_at, id)
        WHERE status = 'pending' AND assigned_to IS NOT NULL AND unmet_deps = 0;

    CREATE TABLE task_dependencies (
        task_id            INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        depends_on_task_id INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        created_at         INTEGER NOT NULL,
        PRIMARY KEY (task_id, depends_on_task_id)
    ) WITHOUT ROWID;
    CREATE INDEX task_dependencies_reverse ON task_dependencies (depends_on_task_id, task_id);

    CREATE TABLE task_claims (
        task_id          INTEGER PRIMARY KEY REFERENCES tasks (id) ON DELETE CASCADE,
        agent_id         TEXT NOT NULL,
        claim_id         TEXT NOT NULL,
        claimed_at       INTEGER NOT NULL,
        lease_expires_at INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL
    );
    CREATE INDEX task_claims_agent ON task_claims (agent_id);
    CREATE INDEX task_claims_expiry ON task_claims (lease_expires_at);

    CREATE TABLE task_evidence (
        task_id      INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        evidence_ref TEXT NOT NULL,
        added_by     TEXT NOT NULL,
        created_at   INTEGER NOT NULL,
        PRIMARY KEY (task_id, evidence_ref)
    ) WITHOUT ROWID;

    CREATE TABLE task_status_history (
        id          INTEGER PRIMARY KEY,
        task_id     INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        from_status TEXT NOT NULL,
        to_status   TEXT NOT NULL,
        changed_by  TEXT NOT NULL,
        source      TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX task_status_history_task ON task_status_history (task_id, id);
    CREATE INDEX task_status_history_created ON task_status_history (created_at);

    CREATE TABLE tasks_archive (
        id               INTEGER PRIMARY KEY,
        title            TEXT NOT NULL,
        description      TEXT NOT NULL,
        namespace        TEXT NOT NULL,
        execution_mode   TEXT NOT NULL,
        consistency_mode TEXT NOT NULL,
        status           TEXT NOT NULL,
        assigned_to      TEXT,
        created_by       TEXT NOT NULL,
        priority         TEXT NOT NULL,
        trace_id         TEXT,
        span_id          TEXT,
        created_at       INTEGER NOT NULL,
        updated_at       INTEGER NOT NULL,
        archived_at      INTEGER NOT NULL,
        archive_reason   TEXT NOT NULL
    );

    CREATE TABLE IF NOT EXISTS agent_quality (
        agent_id        TEXT PRIMARY KEY,
        completed_count INTEGER NOT NULL DEFAULT 0,
        rollback_count  INTEGER NOT NULL DEFAULT 0,
        last_updated    INTEGER NOT NULL
    );
    "#,
    // 4: who vouched for an agent's role (privileged roles are granted, not declared).
    r#"
    ALTER TABLE agents ADD COLUMN role_grant TEXT NOT NULL DEFAULT 'declared';
    "#,
    // 5: each consensus decision records the votes it counted and the source each was
    // proven by (a JSON array of {agent_id, decision, confidence, weight, source, proven}).
    r#"
    ALTER TABLE consensus_decisions ADD COLUMN votes_json TEXT NOT NULL DEFAULT '[]';
    "#,
    // 6: artifacts, their shares and task links, and durable hashed tickets (tools-more §3).
    r#"
    CREATE TABLE artifacts (
        id             TEXT PRIMARY KEY,
        created_by     TEXT NOT NULL,
        name           TEXT NOT NULL,
        mime_type      TEXT NOT NULL DEFAULT 'application/octet-stream',
        size_bytes     INTEGER NOT NULL DEFAULT 0,
        sha256         TEXT,
        -- File name inside MCP_HUB_ARTIFACTS_DIR; set once, by the committed upload.
        storage_path   TEXT,
        namespace      TEXT NOT NULL DEFAULT 'default',
        summary        TEXT NOT NULL DEFAULT '',
        created_at     INTEGER NOT NULL,
        updated_at     INTEGER NOT NULL,
        access_count   INTEGER NOT NULL DEFAULT 0,
        ttl_expires_at INTEGER
    );
    CREATE INDEX artifacts_created ON artifacts (created_at, id);
    CREATE INDEX artifacts_ns_created ON artifacts (namespace, created_at);
    CREATE INDEX artifacts_creator_created ON artifacts (created_by, created_at);
    CREATE INDEX artifacts_ttl ON artifacts (ttl_expires_at);
    CREATE INDEX artifacts_updated ON artifacts (updated_at) WHERE ttl_expires_at IS NULL;

    CREATE TABLE artifact_shares (
        artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
        to_agent    TEXT NOT NULL,
        granted_by  TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (artifact_id, to_agent)
    ) WITHOUT ROWID;
    CREATE INDEX artifact_shares_to ON artifact_shares (to_agent, artifact_id);

    CREATE TABLE task_artifacts (
        task_id     INTEGER NOT NULL REFERENCES tasks (id) ON DELETE CASCADE,
        artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
        added_by    TEXT NOT NULL,
        created_at  INTEGER NOT NULL,
        PRIMARY KEY (task_id, artifact_id)
    ) WITHOUT ROWID;
    CREATE INDEX task_artifacts_artifact ON task_artifacts (artifact_id, task_id);

    -- Only the SHA-256 of a ticket is kept; consuming one is a single DELETE.
    CREATE TABLE artifact_tickets (
        token_hash  BLOB PRIMARY KEY,
        kind        TEXT NOT NULL,
        artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
        agent_id    TEXT NOT NULL,
        expires_at  INTEGER NOT NULL,
        max_bytes   INTEGER NOT NULL
    ) WITHOUT ROWID;
    CREATE INDEX artifact_tickets_expiry ON artifact_tickets (expires_at);
    CREATE INDEX artifact_tickets_artifact ON artifact_tickets (artifact_id);
    "#,
    // 7 (observability): per-minute call and activity aggregates (what KPIs, SLOs and auth
    // coverage count, at a bounded cost per call), SLO alerts, and the index KPI windows
    // over task updates need. Raw auth_events are no longer written.
    r#"
    CREATE TABLE call_minutes (
        minute_ms INTEGER NOT NULL,
        tool      TEXT NOT NULL,
        outcome   TEXT NOT NULL,
        auth      TEXT NOT NULL,
        namespace TEXT NOT NULL,
        agent_id  TEXT NOT NULL,
        calls     INTEGER NOT NULL,
        PRIMARY KEY (minute_ms, tool, outcome, auth, namespace, agent_id)
    ) WITHOUT ROWID;

    CREATE TABLE activity_minutes (
        minute_ms INTEGER NOT NULL,
        action    TEXT NOT NULL,
        agent_id  TEXT NOT NULL,
        tag       TEXT NOT NULL,
        events    INTEGER NOT NULL,
        PRIMARY KEY (minute_ms, action, agent_id, tag)
    ) WITHOUT ROWID;
    CREATE INDEX activity_minutes_action ON activity_minutes (action, minute_ms);

    CREATE TABLE IF NOT EXISTS slo_alerts (
        id           INTEGER PRIMARY KEY AUTOINCREMENT,
        code         TEXT NOT NULL,
        severity     TEXT NOT NULL,
        message      TEXT NOT NULL,
        details_json TEXT NOT NULL DEFAULT '{}',
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL,
        resolved_at  INTEGER
    );
    CREATE UNIQUE INDEX IF NOT EXISTS slo_alerts_open ON slo_alerts (code) WHERE resolved_at IS NULL;
    CREATE INDEX IF NOT EXISTS slo_alerts_updated ON slo_alerts (updated_at);
    CREATE INDEX IF NOT EXISTS slo_alerts_resolved ON slo_alerts (resolved_at) WHERE resolved_at IS NOT NULL;

    CREATE INDEX IF NOT EXISTS tasks_updated ON tasks (updated_at);
    "#,
];

/// The schema version this build writes.
pub fn latest_version() -> i64 {
    MIGRATIONS.len() as i64
}

/// Brings the database up to [`latest_version`]; refuses a database from a newer build.
/// SQLite tracks the version in `PRAGMA user_version`; PostgreSQL in `hub_schema`, with
/// the whole migration under an advisory lock so replicas starting together migrate once.
pub fn migrate(conn: &mut Connection) -> StoreResult<()> {
    match conn.backend() {
        Backend::Sqlite => migrate_sqlite(conn),
        Backend::Postgres => migrate_postgres(conn),
    }
}

fn too_new(current: i64) -> StoreError {
    StoreError::Internal(format!(
        "database schema version {current} is newer than this hub understands ({}); \
         upgrade hub-server",
        latest_version()
    ))
}

fn migrate_sqlite(conn: &mut Connection) -> StoreResult<()> {
    let conn = conn.sqlite_mut().expect("a SQLite connection");
    let current: i64 = conn.query_row("PRAGMA user_version", [], |row| row.get(0))?;
    if current > latest_version() {
        return Err(too_new(current));
    }
    for (index, sql) in MIGRATIONS.iter().enumerate().skip(current as usize) {
        let tx = conn.transaction()?;
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", (index + 1) as i64)?;
        tx.commit()?;
    }
    Ok(())
}

/// Any hub replica's key for `pg_advisory_xact_lock` while migrating.
const MIGRATION_LOCK: i64 = 0x0068_7562_5f6d_6967; // "hub_mig"

/// SQLite's conveniences the store's SQL uses, defined once for PostgreSQL so every
/// statement is written once: counting a condition (`SUM(status = 'done')`,
/// `SUM(calls * (auth = 'valid'))`), the two-argument scalar `max`, `instr` and `hex`.
const POSTGRES_COMPAT: &str = r#"
    CREATE OR REPLACE FUNCTION hub_count_true(acc BIGINT, v BOOLEAN) RETURNS BIGINT
        LANGUAGE sql IMMUTABLE AS 'SELECT acc + CASE WHEN v THEN 1 ELSE 0 END';
    CREATE OR REPLACE AGGREGATE sum(BOOLEAN) (SFUNC = hub_count_true, STYPE = BIGINT, INITCOND = '0');
    CREATE OR REPLACE FUNCTION hub_times_bool(n BIGINT, v BOOLEAN) RETURNS BIGINT
        LANGUAGE sql IMMUTABLE AS 'SELECT CASE WHEN v THEN n ELSE 0 END';
    DO $$ BEGIN
        CREATE OPERATOR * (LEFTARG = BIGINT, RIGHTARG = BOOLEAN, FUNCTION = hub_times_bool);
    EXCEPTION WHEN duplicate_function THEN NULL;
    END $$;
    CREATE OR REPLACE FUNCTION max(a BIGINT, b BIGINT) RETURNS BIGINT
        LANGUAGE sql IMMUTABLE AS 'SELECT GREATEST(a, b)';
    CREATE OR REPLACE FUNCTION hex(bytes BYTEA) RETURNS TEXT
        LANGUAGE sql IMMUTABLE AS 'SELECT upper(encode(bytes, ''hex''))';
    CREATE OR REPLACE FUNCTION instr(haystack TEXT, needle TEXT) RETURNS BIGINT
        LANGUAGE sql IMMUTABLE AS 'SELECT strpos(haystack, needle)';
"#;

fn migrate_postgres(conn: &mut Connection) -> StoreResult<()> {
    conn.execute_batch("CREATE TABLE IF NOT EXISTS hub_schema (version BIGINT NOT NULL)")?;
    conn.begin_write()?;
    let result = (|| -> StoreResult<()> {
        conn.execute("SELECT pg_advisory_xact_lock(?1)", [MIGRATION_LOCK])?;
        conn.execute_batch(POSTGRES_COMPAT)?;
        let current: Option<i64> =
            conn.query_row("SELECT MAX(version) FROM hub_schema", [], |r| r.get(0))?;
        let current = current.unwrap_or(0);
        if current > latest_version() {
            return Err(too_new(current));
        }
        for sql in MIGRATIONS.iter().skip(current as usize) {
            conn.execute_batch(&postgres_ddl(sql))?;
        }
        conn.execute("DELETE FROM hub_schema", [])?;
        conn.execute(
            "INSERT INTO hub_schema (version) VALUES (?1)",
            [latest_version()],
        )?;
        Ok(())
    })();
    match result {
        Ok(()) => Ok(conn.commit()?),
        Err(error) => {
            let _ = conn.rollback();
            Err(error)
        }
    }
}

/// The same migration in PostgreSQL's words: 64-bit integers, identity keys, byte arrays,
/// byte-order (`"C"`) collation so text sorts exactly as in SQLite, and no `WITHOUT ROWID`.
pub fn postgres_ddl(sql: &str) -> String {
    const IDENTITY: &str = "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY";
    let mut out = String::with_capacity(sql.len() + 256);
    for line in sql.lines() {
        let mut line = line.replace(") WITHOUT ROWID;", ");");
        // A rowid key (`id INTEGER PRIMARY KEY [AUTOINCREMENT]`) is filled in when omitted.
        if line.trim_start().starts_with("id ") {
            line = line
                .replace("INTEGER PRIMARY KEY AUTOINCREMENT", IDENTITY)
                .replace("INTEGER PRIMARY KEY", IDENTITY);
        }
        for (from, to) in [
            (" INTEGER", " BIGINT"),
            (" REAL", " DOUBLE PRECISION"),
            (" BLOB", " BYTEA"),
            (" TEXT", " TEXT COLLATE \"C\""),
        ] {
            line = line.replace(from, to);
        }
        if let Some(rest) = line.trim_start().strip_prefix("INSERT OR IGNORE INTO ") {
            let body = rest.trim_end().trim_end_matches(';');
            line = format!("INSERT INTO {body} ON CONFLICT DO NOTHING;");
        }
        out.push_str(&line);
        out.push('\n');
    }
    out
}
