//! Read-only access to a hub database file for operator tools (`hubctl db`, reports): the
//! file is opened read-only, so nothing here can change the hub's state.

use std::path::Path;

use crate::store::sql::types::Value;
use crate::store::sql::{Backend, Connection};

use super::{Db, StoreError, StoreResult};

/// A read-only connection to a hub database.
pub type ReadOnlyConnection = super::Db;

/// Opens `path` read-only (the hub may be running; WAL lets both proceed).
pub fn open_read_only(path: &Path) -> StoreResult<super::Db> {
    let conn = rusqlite::Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(super::Db {
        conn: Connection::from_sqlite(conn),
        epoch: 0,
    })
}

/// Connects to a hub's PostgreSQL database in read-only transactions.
pub fn open_read_only_url(url: &str) -> StoreResult<super::Db> {
    let conn =
        Connection::connect_postgres(url).map_err(|e| StoreError::Internal(e.to_string()))?;
    conn.execute_batch("SET default_transaction_read_only = on")?;
    Ok(super::Db { conn, epoch: 0 })
}

/// Where a hub keeps its data, as operator tools name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File(std::path::PathBuf),
    Postgres(String),
}

impl Location {
    /// For messages: the file, or the URL without its password.
    pub fn describe(&self) -> String {
        match self {
            Location::File(path) => path.display().to_string(),
            Location::Postgres(url) => crate::config::redact_url(url),
        }
    }

    pub fn open_read_only(&self) -> StoreResult<Db> {
        match self {
            Location::File(path) => open_read_only(path),
            Location::Postgres(url) => open_read_only_url(url),
        }
    }
}

/// The result of one ad-hoc query, every value rendered as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Runs an operator's SQL statement on a read-only connection, returning at most `max_rows`.
pub fn query(db: &Db, sql: &str, max_rows: usize) -> StoreResult<QueryResult> {
    let (columns, values) = db.conn.query_table(sql, max_rows)?;
    let rows = values
        .into_iter()
        .map(|row| {
            row.into_iter()
                .map(|value| match value {
                    Value::Null => "NULL".to_string(),
                    Value::Integer(v) => v.to_string(),
                    Value::Real(v) => v.to_string(),
                    Value::Text(v) => v,
                    Value::Blob(v) => format!("<{} bytes>", v.len()),
                })
                .collect()
        })
        .collect();
    Ok(QueryResult { columns, rows })
}

/// Names of the user tables, for `.tables`.
pub fn table_names(db: &Db) -> StoreResult<Vec<String>> {
    let mut stmt = db.conn.prepare(match db.backend() {
        Backend::Sqlite => {
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
             ORDER BY name"
        }
        Backend::Postgres => {
            "SELECT table_name FROM information_schema.tables \
             WHERE table_schema = current_schema() ORDER BY table_name"
        }
    })?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<crate::store::sql::Result<Vec<String>>>()?;
    Ok(names)
}
