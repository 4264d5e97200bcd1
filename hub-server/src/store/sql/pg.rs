//! The PostgreSQL side of [`super::Connection`]: a blocking `postgres::Client` (the sync
//! face of tokio-postgres, with its own small runtime per connection) used from the store's
//! own threads, statements cached by text, and values bound and read by the column's real
//! type so the SQLite-typed verbs above need no per-backend code.

use std::cell::RefCell;
use std::collections::HashMap;
use std::error::Error as StdError;

use bytes::{BufMut, BytesMut};
use postgres::types::{FromSql as PgFromSql, IsNull, Kind, ToSql as PgToSql, Type, to_sql_checked};
use postgres::{Client, NoTls};
use rusqlite::types::{FromSql, ToSql, ToSqlOutput, Value, ValueRef};

use super::{Error, Result};

/// Statements kept per connection; dynamic SQL (variable `IN` lists) can exceed it, in which
/// case the cache starts over rather than growing without bound.
const STATEMENT_CACHE: usize = 256;

#[derive(Debug, thiserror::Error)]
#[error("connecting to PostgreSQL: {0}")]
pub struct PgConnectError(#[from] postgres::Error);

pub struct PgConn {
    /// Always `Some` until dropped (see `Drop`).
    client: RefCell<Option<Client>>,
    statements: RefCell<HashMap<String, postgres::Statement>>,
}

impl PgConn {
    pub fn connect(url: &str) -> Result<PgConn, PgConnectError> {
        let client = Client::connect(url, NoTls)?;
        Ok(PgConn {
            client: RefCell::new(Some(client)),
            statements: RefCell::new(HashMap::new()),
        })
    }

    fn client(&self) -> std::cell::RefMut<'_, Client> {
        std::cell::RefMut::map(self.client.borrow_mut(), |c| {
            c.as_mut()
                .expect("the client lives as long as the connection")
        })
    }

    pub fn is_closed(&self) -> bool {
        self.client().is_closed()
    }

    pub fn prepare(&self, sql: &str) -> Result<postgres::Statement> {
        if let Some(statement) = self.statements.borrow().get(sql) {
            return Ok(statement.clone());
        }
        let (translated, unused) = translate(sql);
        let statement = if unused.is_empty() {
            self.client().prepare(&translated)
        } else {
            // A parameter the text never names (one variant of a query binds the same list
            // as another) cannot be typed by PostgreSQL: declare it text, infer the rest.
            let inferred = Type::new("unspecified".into(), 0, Kind::Simple, "pg_catalog".into());
            let max = placeholder_count(&translated);
            let types: Vec<Type> = (1..=max)
                .map(|i| {
                    if unused.contains(&i) {
                        Type::TEXT
                    } else {
                        inferred.clone()
                    }
                })
                .collect();
            self.client().prepare_typed(&translated, &types)
        }
        .map_err(|e| with_statement(e, sql))?;
        let mut cache = self.statements.borrow_mut();
        if cache.len() >= STATEMENT_CACHE {
            cache.clear();
        }
        cache.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    pub fn execute(&self, statement: &postgres::Statement, params: &[&dyn ToSql]) -> Result<usize> {
        let values = outputs(bound(statement, params))?;
        let binds = binds(&values)?;
        let refs: Vec<&(dyn PgToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        Ok(self.client().execute(statement, &refs)? as usize)
    }

    pub fn query(
        &self,
        statement: &postgres::Statement,
        params: &[&dyn ToSql],
    ) -> Result<Vec<postgres::Row>> {
        let values = outputs(bound(statement, params))?;
        let binds = binds(&values)?;
        let refs: Vec<&(dyn PgToSql + Sync)> = binds.iter().map(|b| b as _).collect();
        Ok(self.client().query(statement, &refs)?)
    }

    pub fn batch_execute(&self, sql: &str) -> Result<()> {
        Ok(self.client().batch_execute(sql)?)
    }
}

impl Drop for PgConn {
    /// Closing a client blocks on its runtime, which panics on an async worker (where the
    /// last handle of a store may be dropped): close it on a thread of its own there.
    fn drop(&mut self) {
        if let Some(client) = self.client.get_mut().take()
            && tokio::runtime::Handle::try_current().is_ok()
        {
            let _ = std::thread::Builder::new()
                .name("hub-store-close".into())
                .spawn(move || drop(client));
        }
    }
}

/// The server's own message (`db error` alone says nothing), with its SQLSTATE.
pub fn describe(error: &postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} ({}): {}",
            db.message(),
            db.code().code(),
            db.detail().unwrap_or_default()
        ),
        None => match error.source() {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

/// A statement PostgreSQL refused, named (a lost connection stays a plain error so the
/// caller can tell it apart).
fn with_statement(error: postgres::Error, sql: &str) -> Error {
    if is_connection_lost(&error) {
        return Error::Postgres(error);
    }
    let sql: String = sql.split_whitespace().collect::<Vec<_>>().join(" ");
    Error::Other(format!("{} in: {sql}", describe(&error)))
}

/// The error means the session is gone, not that the statement was wrong.
pub fn is_connection_lost(error: &postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    match error.code() {
        // Class 08 (connection exception) and 57P01..57P03 (shutdown, crash, not yet up).
        Some(code) => code.code().starts_with("08") || code.code().starts_with("57P"),
        None => error.source().is_some_and(|s| s.is::<std::io::Error>()),
    }
}

/// The store's SQL as PostgreSQL takes it: SQLite's `INDEXED BY` hints dropped (the
/// planner picks the same partial index by itself), optional filters written
/// `(?N IS NULL OR col = ?N)` turned around so the placeholder's first use types it, and
/// placeholders renumbered.
pub fn translate(sql: &str) -> (String, Vec<usize>) {
    static INDEXED_BY: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"\s+INDEXED BY\s+\w+").expect("valid"));
    static OPTIONAL_FILTER: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r"\((\?\d+) IS NULL OR ([^()]+)\)").expect("valid")
    });
    let sql = INDEXED_BY.replace_all(sql, "");
    let sql = OPTIONAL_FILTER.replace_all(&sql, "($2 OR $1 IS NULL)");
    let sql = renumber_placeholders(&sql);
    let used = placeholders(&sql);
    let unused = (1..=used.iter().copied().max().unwrap_or(0))
        .filter(|i| !used.contains(i))
        .collect();
    (sql, unused)
}

/// The `$N` a statement names (outside quoted text).
fn placeholders(sql: &str) -> Vec<usize> {
    static PLACEHOLDER: std::sync::LazyLock<regex::Regex> =
        std::sync::LazyLock::new(|| regex::Regex::new(r"'[^']*'|\$(\d+)").expect("valid"));
    PLACEHOLDER
        .captures_iter(sql)
        .filter_map(|c| c.get(1)?.as_str().parse().ok())
        .collect()
}

fn placeholder_count(sql: &str) -> usize {
    placeholders(sql).into_iter().max().unwrap_or(0)
}

/// `?N` → `$N` and bare `?` → `$k` (k counting up), outside quoted text.
pub fn renumber_placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len() + 8);
    let mut chars = sql.chars().peekable();
    let mut quote: Option<char> = None;
    let mut bare = 0;
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                if c == q {
                    quote = None;
                }
                out.push(c);
            }
            None if c == '\'' || c == '"' => {
                quote = Some(c);
                out.push(c);
            }
            None if c == '?' => {
                out.push('$');
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    while let Some(d) = chars.next_if(char::is_ascii_digit) {
                        out.push(d);
                    }
                } else {
                    bare += 1;
                    out.push_str(&bare.to_string());
                }
            }
            None => out.push(c),
        }
    }
    out
}

/// The parameters a statement takes: trailing ones its text never names are left out (a
/// query variant without a cursor still gets the cursor's slot in the shared list).
fn bound<'a, 'p>(
    statement: &postgres::Statement,
    params: &'a [&'p dyn ToSql],
) -> &'a [&'p dyn ToSql] {
    &params[..params.len().min(statement.params().len())]
}

fn outputs<'p>(params: &'p [&dyn ToSql]) -> Result<Vec<ToSqlOutput<'p>>> {
    params
        .iter()
        .map(|p| p.to_sql().map_err(Error::from))
        .collect()
}

fn binds<'v>(values: &'v [ToSqlOutput<'_>]) -> Result<Vec<Bind<'v>>> {
    values
        .iter()
        .map(|output| match output {
            ToSqlOutput::Borrowed(value) => Ok(Bind(*value)),
            ToSqlOutput::Owned(value) => Ok(Bind(ValueRef::from(value))),
            _ => Err(Error::Other("unsupported parameter kind".into())),
        })
        .collect()
}

/// A parameter encoded for whatever type PostgreSQL inferred for its placeholder: the
/// store binds i64s where a column is `BIGINT`, `INTEGER` or `BOOLEAN` alike.
#[derive(Debug)]
struct Bind<'a>(ValueRef<'a>);

type BoxError = Box<dyn StdError + Sync + Send>;

impl PgToSql for Bind<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let mismatch = || -> BoxError { format!("cannot bind {:?} as {ty}", self.0).into() };
        match (self.0, ty) {
            (ValueRef::Null, _) => return Ok(IsNull::Yes),
            (ValueRef::Integer(v), t) if *t == Type::INT8 => PgToSql::to_sql(&v, ty, out)?,
            (ValueRef::Integer(v), t) if *t == Type::INT4 => {
                PgToSql::to_sql(&i32::try_from(v)?, ty, out)?
            }
            (ValueRef::Integer(v), t) if *t == Type::INT2 => {
                PgToSql::to_sql(&i16::try_from(v)?, ty, out)?
            }
            (ValueRef::Integer(v), t) if *t == Type::FLOAT8 => {
                PgToSql::to_sql(&(v as f64), ty, out)?
            }
            (ValueRef::Integer(v), t) if *t == Type::BOOL => PgToSql::to_sql(&(v != 0), ty, out)?,
            (ValueRef::Real(v), t) if *t == Type::FLOAT8 => PgToSql::to_sql(&v, ty, out)?,
            (ValueRef::Real(v), t) if *t == Type::FLOAT4 => PgToSql::to_sql(&(v as f32), ty, out)?,
            (ValueRef::Text(text), t) if *t == Type::JSONB => {
                out.put_u8(1);
                out.put_slice(text);
                IsNull::No
            }
            (ValueRef::Text(text) | ValueRef::Blob(text), t) if is_text(t) || *t == Type::BYTEA => {
                out.put_slice(text);
                IsNull::No
            }
            (ValueRef::Integer(v), t) if is_text(t) => {
                out.put_slice(v.to_string().as_bytes());
                IsNull::No
            }
            (ValueRef::Real(v), t) if is_text(t) => {
                out.put_slice(v.to_string().as_bytes());
                IsNull::No
            }
            _ => return Err(mismatch()),
        };
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

fn is_text(ty: &Type) -> bool {
    [
        Type::TEXT,
        Type::VARCHAR,
        Type::BPCHAR,
        Type::NAME,
        Type::UNKNOWN,
        Type::JSON,
    ]
    .contains(ty)
}

/// A column's bytes and type, taken as they are.
struct Raw<'a> {
    ty: Type,
    bytes: Option<&'a [u8]>,
}

impl<'a> PgFromSql<'a> for Raw<'a> {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Self, BoxError> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: Some(raw),
        })
    }

    fn from_sql_null(ty: &Type) -> Result<Self, BoxError> {
        Ok(Raw {
            ty: ty.clone(),
            bytes: None,
        })
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

fn value_ref(row: &postgres::Row, column: usize) -> Result<ValueRef<'_>> {
    let conversion = |message: String| Error::Conversion { column, message };
    let raw: Raw<'_> = row.try_get(column)?;
    let Some(bytes) = raw.bytes else {
        return Ok(ValueRef::Null);
    };
    let ty = &raw.ty;
    // One binary decoder per column type, its error named with the column.
    fn decode<'b, T: PgFromSql<'b>>(ty: &Type, bytes: &'b [u8], column: usize) -> Result<T> {
        T::from_sql(ty, bytes).map_err(|e| Error::Conversion {
            column,
            message: e.to_string(),
        })
    }
    let decoded = if *ty == Type::INT8 {
        ValueRef::Integer(decode::<i64>(ty, bytes, column)?)
    } else if *ty == Type::INT4 {
        ValueRef::Integer(decode::<i32>(ty, bytes, column)?.into())
    } else if *ty == Type::INT2 {
        ValueRef::Integer(decode::<i16>(ty, bytes, column)?.into())
    } else if *ty == Type::OID {
        ValueRef::Integer(decode::<u32>(ty, bytes, column)?.into())
    } else if *ty == Type::BOOL {
        ValueRef::Integer(decode::<bool>(ty, bytes, column)?.into())
    } else if *ty == Type::FLOAT8 {
        ValueRef::Real(decode::<f64>(ty, bytes, column)?)
    } else if *ty == Type::FLOAT4 {
        ValueRef::Real(decode::<f32>(ty, bytes, column)?.into())
    } else if *ty == Type::NUMERIC {
        numeric(bytes).ok_or_else(|| conversion("malformed numeric".into()))?
    } else if *ty == Type::BYTEA {
        ValueRef::Blob(bytes)
    } else if *ty == Type::JSONB {
        ValueRef::Text(bytes.get(1..).unwrap_or_default())
    } else if is_text(ty) {
        ValueRef::Text(bytes)
    } else {
        return Err(conversion(format!("unsupported column type {ty}")));
    };
    Ok(decoded)
}

pub fn get<T: FromSql>(row: &postgres::Row, column: usize) -> Result<T> {
    T::column_result(value_ref(row, column)?).map_err(|e| Error::Conversion {
        column,
        message: e.to_string(),
    })
}

pub fn get_value(row: &postgres::Row, column: usize) -> Result<Value> {
    Ok(value_ref(row, column)?.into())
}

/// PostgreSQL's binary NUMERIC (what `SUM`/`AVG` of integers return): base-10000 digits.
/// A whole number that fits is an integer, anything else a float.
fn numeric(bytes: &[u8]) -> Option<ValueRef<'static>> {
    let word = |i: usize| -> Option<i16> {
        Some(i16::from_be_bytes(
            bytes.get(i * 2..i * 2 + 2)?.try_into().ok()?,
        ))
    };
    let (ndigits, weight, sign, scale) = (word(0)?, word(1)?, word(2)? as u16, word(3)?);
    if sign == 0xC000 {
        return Some(ValueRef::Real(f64::NAN));
    }
    let mut value = 0f64;
    for i in 0..ndigits as usize {
        let digit = f64::from(word(4 + i)?);
        value += digit * 10000f64.powi(i32::from(weight) - i as i32);
    }
    if sign == 0x4000 {
        value = -value;
    }
    if scale == 0 && value.abs() < 9.0e15 {
        Some(ValueRef::Integer(value as i64))
    } else {
        Some(ValueRef::Real(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_hints_are_dropped_and_optional_filters_typed_by_their_column() {
        assert_eq!(
            translate(
                "SELECT id FROM tasks INDEXED BY tasks_poll_queue WHERE (?1 IS NULL OR a = ?1)"
            ),
            (
                "SELECT id FROM tasks WHERE (a = $1 OR $1 IS NULL)".to_string(),
                vec![]
            )
        );
        assert_eq!(
            translate("SELECT 1 WHERE a = ?2 AND b = '?3' LIMIT ?4").1,
            vec![1, 3],
            "placeholders the text never names are reported"
        );
    }

    #[test]
    fn placeholders_are_renumbered_outside_quotes() {
        assert_eq!(
            renumber_placeholders("SELECT ?1, ?12 WHERE a = '?' AND b = ?"),
            "SELECT $1, $12 WHERE a = '?' AND b = $1"
        );
        assert_eq!(renumber_placeholders("VALUES (?, ?)"), "VALUES ($1, $2)");
    }

    #[test]
    fn numerics_decode_to_integers_or_floats() {
        // 12345678 = digits [1234, 5678], weight 1, positive, scale 0.
        let bytes = [0, 2, 0, 1, 0, 0, 0, 0, 0x04, 0xD2, 0x16, 0x2E];
        assert_eq!(numeric(&bytes), Some(ValueRef::Integer(12_345_678)));
        // -1.5 = digits [1, 5000], weight 0, negative, scale 1.
        let bytes = [0, 2, 0, 0, 0x40, 0, 0, 1, 0, 1, 0x13, 0x88];
        assert_eq!(numeric(&bytes), Some(ValueRef::Real(-1.5)));
        // 0 has no digits.
        assert_eq!(
            numeric(&[0, 0, 0, 0, 0, 0, 0, 0]),
            Some(ValueRef::Integer(0))
        );
    }
}
