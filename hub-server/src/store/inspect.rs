//! Read-only access to a hub database file for operator tools (`hubctl db`, reports): the
//! file is opened read-only, so nothing here can change the hub's state.

use std::path::Path;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags};

use super::{Db, StoreResult};

/// A read-only connection to a hub database.
pub type ReadOnlyConnection = super::Db;

/// Opens `path` read-only (the hub may be running; WAL lets both proceed).
pub fn open_read_only(path: &Path) -> StoreResult<super::Db> {
    let conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    Ok(super::Db { conn })
}

/// The result of one ad-hoc query, every value rendered as text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

/// Runs an operator's SQL statement on a read-only connection, returning at most `max_rows`.
pub fn query(db: &Db, sql: &str, max_rows: usize) -> StoreResult<QueryResult> {
    let mut stmt = db.conn.prepare(sql)?;
    let columns: Vec<String> = stmt.column_names().iter().map(|c| c.to_string()).collect();
    let width = columns.len();
    let mut rows = Vec::new();
    let mut cursor = stmt.query([])?;
    while let Some(row) = cursor.next()? {
        if rows.len() >= max_rows {
            break;
        }
        let mut values = Vec::with_capacity(width);
        for index in 0..width {
            values.push(match row.get_ref(index)? {
                ValueRef::Null => "NULL".to_string(),
                ValueRef::Integer(v) => v.to_string(),
                ValueRef::Real(v) => v.to_string(),
                ValueRef::Text(v) => String::from_utf8_lossy(v).into_owned(),
                ValueRef::Blob(v) => format!("<{} bytes>", v.len()),
            });
        }
        rows.push(values);
    }
    Ok(QueryResult { columns, rows })
}

/// Names of the user tables, for `.tables`.
pub fn table_names(db: &Db) -> StoreResult<Vec<String>> {
    let mut stmt = db.conn.prepare(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )?;
    let names = stmt
        .query_map([], |r| r.get(0))?
        .collect::<rusqlite::Result<Vec<String>>>()?;
    Ok(names)
}
