//! One connection type over two databases: the embedded SQLite file and PostgreSQL.
//!
//! The store verbs are written once, against this module's rusqlite-shaped surface
//! (`prepare_cached`, `query_row`, `query_map`, `execute`, `Row::get`, `params!`). SQL text is
//! written in the dialect both accept (`?N` placeholders, `ON CONFLICT`, `RETURNING`, `CASE`);
//! for PostgreSQL the placeholders are renumbered once per statement and cached with it.
//! Values cross the boundary as rusqlite's value model (`ToSql` → `ValueRef`, `ValueRef` →
//! `FromSql`), so a typed column (a task status, a byte digest) converts the same way on
//! both. Where the dialects truly differ a verb asks [`Connection::backend`].

mod pg;

use std::cell::Cell;

pub use rusqlite::params;
pub use rusqlite::types;
use rusqlite::types::{FromSql, ToSql, Value};

pub use pg::PgConnectError;

/// Which database a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// A database error from either backend, or a row that did not convert.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("{}", pg::describe(.0))]
    Postgres(#[from] postgres::Error),
    #[error("query returned no rows")]
    QueryReturnedNoRows,
    #[error("column {column}: {message}")]
    Conversion { column: usize, message: String },
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The connection itself is gone (server restarted, network cut): worth reconnecting.
    pub fn is_connection_lost(&self) -> bool {
        match self {
            Error::Postgres(error) => pg::is_connection_lost(error),
            _ => false,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a typed column's `ToSql` returns (rusqlite's value model, shared by both backends).
pub type ToSqlResult<T> = rusqlite::Result<T>;

/// `Result<T>` → `Result<Option<T>>` for queries that may match nothing.
pub trait OptionalExtension<T> {
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(value) => Ok(Some(value)),
            Err(Error::QueryReturnedNoRows) => Ok(None),
            Err(Error::Sqlite(rusqlite::Error::QueryReturnedNoRows)) => Ok(None),
            Err(error) => Err(error),
        }
    }
}

/// Statement parameters: `params![…]`, `[a, b]`, `[]`, or [`params_from_iter`].
pub trait Params {
    fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R;
}

impl Params for &[&dyn ToSql] {
    fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        f(self)
    }
}

impl Params for [&(dyn ToSql + Send + Sync); 0] {
    fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        f(&[])
    }
}

impl Params for () {
    fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        f(&[])
    }
}

macro_rules! array_params {
    ($($n:literal)*) => {$(
        impl<T: ToSql> Params for [T; $n] {
            fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
                let refs: [&dyn ToSql; $n] = self.each_ref().map(|v| v as &dyn ToSql);
                f(&refs)
            }
        }
    )*};
}
array_params!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16);

/// Parameters built at run time (an `IN (…)` list, optional filters).
pub struct ParamsFromIter(Vec<Value>);

pub fn params_from_iter<I>(values: I) -> ParamsFromIter
where
    I: IntoIterator,
    I::Item: Into<Value>,
{
    ParamsFromIter(values.into_iter().map(Into::into).collect())
}

impl Params for ParamsFromIter {
    fn with_refs<R>(&self, f: impl FnOnce(&[&dyn ToSql]) -> R) -> R {
        let refs: Vec<&dyn ToSql> = self.0.iter().map(|v| v as &dyn ToSql).collect();
        f(&refs)
    }
}

/// A column index (by position).
pub trait RowIndex {
    fn index(&self) -> usize;
}

impl RowIndex for usize {
    fn index(&self) -> usize {
        *self
    }
}

/// One result row of either backend.
pub enum Row<'a> {
    Sqlite(&'a rusqlite::Row<'a>),
    Postgres(&'a postgres::Row),
}

impl Row<'_> {
    pub fn get<I: RowIndex, T: FromSql>(&self, idx: I) -> Result<T> {
        let column = idx.index();
        match self {
            Row::Sqlite(row) => Ok(row.get(column)?),
            Row::Postgres(row) => pg::get(row, column),
        }
    }

    /// The column as a plain value, whatever its type (for ad-hoc inspection).
    pub fn get_value(&self, column: usize) -> Result<Value> {
        match self {
            Row::Sqlite(row) => Ok(row.get_ref(column)?.into()),
            Row::Postgres(row) => pg::get_value(row, column),
        }
    }

    pub fn column_count(&self) -> usize {
        match self {
            Row::Sqlite(row) => row.as_ref().column_count(),
            Row::Postgres(row) => row.len(),
        }
    }
}

enum Inner {
    Sqlite(rusqlite::Connection),
    // Boxed: a PostgreSQL client is three times a SQLite handle, and connections are few.
    Postgres(Box<pg::PgConn>),
}

/// A connection to either backend. Used by one thread at a time (the writer, or a reader
/// while it holds the connection), never shared.
pub struct Connection {
    inner: Inner,
    /// Set while an explicit transaction is open (PostgreSQL does not expose it per call).
    in_transaction: Cell<bool>,
}

impl Connection {
    pub fn from_sqlite(conn: rusqlite::Connection) -> Connection {
        Connection {
            inner: Inner::Sqlite(conn),
            in_transaction: Cell::new(false),
        }
    }

    pub fn connect_postgres(url: &str) -> Result<Connection, PgConnectError> {
        Ok(Connection {
            inner: Inner::Postgres(Box::new(pg::PgConn::connect(url)?)),
            in_transaction: Cell::new(false),
        })
    }

    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    pub(in crate::store) fn sqlite_mut(&mut self) -> Option<&mut rusqlite::Connection> {
        match &mut self.inner {
            Inner::Sqlite(conn) => Some(conn),
            Inner::Postgres(_) => None,
        }
    }

    /// The connection was lost (PostgreSQL only; a SQLite file cannot go away).
    pub fn is_closed(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(_) => false,
            Inner::Postgres(conn) => conn.is_closed(),
        }
    }

    pub fn prepare_cached(&self, sql: &str) -> Result<Statement<'_>> {
        match &self.inner {
            Inner::Sqlite(conn) => Ok(Statement::Sqlite(conn.prepare_cached(sql)?)),
            Inner::Postgres(conn) => Ok(Statement::Postgres {
                conn,
                statement: conn.prepare(sql)?,
            }),
        }
    }

    /// Same as [`Connection::prepare_cached`]: statements are cached by their text either way.
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_>> {
        self.prepare_cached(sql)
    }

    pub fn execute<P: Params>(&self, sql: &str, params: P) -> Result<usize> {
        self.prepare_cached(sql)?.execute(params)
    }

    pub fn query_row<T, P: Params>(
        &self,
        sql: &str,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        self.prepare_cached(sql)?.query_row(params, f)
    }

    /// Runs statements without parameters (DDL, transaction control).
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Inner::Postgres(conn) => conn.batch_execute(sql),
        }
    }

    /// Starts the writer's transaction: SQLite takes its write lock now; PostgreSQL starts
    /// a read-committed transaction (the caller then locks the sequence row).
    pub fn begin_write(&self) -> Result<()> {
        self.execute_batch(match self.backend() {
            Backend::Sqlite => "BEGIN IMMEDIATE",
            Backend::Postgres => "BEGIN",
        })?;
        self.in_transaction.set(true);
        Ok(())
    }

    /// Starts a read transaction in which every query sees the same committed state.
    pub fn begin_snapshot(&self) -> Result<()> {
        self.execute_batch(match self.backend() {
            Backend::Sqlite => "BEGIN DEFERRED",
            Backend::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        })?;
        self.in_transaction.set(true);
        Ok(())
    }

    pub fn commit(&self) -> Result<()> {
        let result = self.execute_batch("COMMIT");
        self.in_transaction.set(false);
        result
    }

    pub fn rollback(&self) -> Result<()> {
        let result = self.execute_batch("ROLLBACK");
        self.in_transaction.set(false);
        result
    }

    /// Runs an ad-hoc query (operator inspection): column names and at most `max_rows` rows.
    pub fn query_table(
        &self,
        sql: &str,
        max_rows: usize,
    ) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        let mut rows = Vec::new();
        match &self.inner {
            Inner::Sqlite(conn) => {
                let mut stmt = conn.prepare(sql)?;
                let columns: Vec<String> =
                    stmt.column_names().iter().map(|c| c.to_string()).collect();
                let mut cursor = stmt.query([])?;
                while let Some(row) = cursor.next()?
                    && rows.len() < max_rows
                {
                    let row = Row::Sqlite(row);
                    rows.push(
                        (0..columns.len())
                            .map(|i| row.get_value(i))
                            .collect::<Result<_>>()?,
                    );
                }
                Ok((columns, rows))
            }
            Inner::Postgres(conn) => {
                let statement = conn.prepare(sql)?;
                let columns = statement
                    .columns()
                    .iter()
                    .map(|c| c.name().to_string())
                    .collect();
                for row in conn.query(&statement, &[])?.iter().take(max_rows) {
                    let row = Row::Postgres(row);
                    rows.push(
                        (0..row.column_count())
                            .map(|i| row.get_value(i))
                            .collect::<Result<_>>()?,
                    );
                }
                Ok((columns, rows))
            }
        }
    }

    /// A transaction is open (a read that failed half-way must end it before the next use).
    pub fn in_transaction(&self) -> bool {
        match &self.inner {
            Inner::Sqlite(conn) => !conn.is_autocommit(),
            Inner::Postgres(_) => self.in_transaction.get(),
        }
    }
}

/// A prepared statement of either backend.
pub enum Statement<'c> {
    Sqlite(rusqlite::CachedStatement<'c>),
    Postgres {
        conn: &'c pg::PgConn,
        statement: postgres::Statement,
    },
}

impl Statement<'_> {
    pub fn execute<P: Params>(&mut self, params: P) -> Result<usize> {
        match self {
            Statement::Sqlite(stmt) => params.with_refs(|p| Ok(stmt.execute(p)?)),
            Statement::Postgres { conn, statement } => {
                params.with_refs(|p| conn.execute(statement, p))
            }
        }
    }

    pub fn query_map<T, P: Params>(
        &mut self,
        params: P,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let mut out = Vec::new();
        match self {
            Statement::Sqlite(stmt) => params.with_refs(|p| -> Result<()> {
                let mut rows = stmt.query(p)?;
                while let Some(row) = rows.next()? {
                    out.push(f(&Row::Sqlite(row)));
                }
                Ok(())
            })?,
            Statement::Postgres { conn, statement } => {
                for row in params.with_refs(|p| conn.query(statement, p))? {
                    out.push(f(&Row::Postgres(&row)));
                }
            }
        }
        Ok(out.into_iter())
    }

    pub fn query_row<T, P: Params>(
        &mut self,
        params: P,
        f: impl FnOnce(&Row<'_>) -> Result<T>,
    ) -> Result<T> {
        match self {
            Statement::Sqlite(stmt) => params.with_refs(|p| {
                let mut rows = stmt.query(p)?;
                match rows.next()? {
                    Some(row) => f(&Row::Sqlite(row)),
                    None => Err(Error::QueryReturnedNoRows),
                }
            }),
            Statement::Postgres { conn, statement } => {
                let rows = params.with_refs(|p| conn.query(statement, p))?;
                match rows.first() {
                    Some(row) => f(&Row::Postgres(row)),
                    None => Err(Error::QueryReturnedNoRows),
                }
            }
        }
    }

    /// The query matches at least one row.
    pub fn exists<P: Params>(&mut self, params: P) -> Result<bool> {
        match self {
            Statement::Sqlite(stmt) => params.with_refs(|p| Ok(stmt.exists(p)?)),
            Statement::Postgres { conn, statement } => {
                Ok(!params.with_refs(|p| conn.query(statement, p))?.is_empty())
            }
        }
    }
}
