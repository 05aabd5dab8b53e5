//! One SQL interface over the two engines the store runs on: SQLite (one file, one host) and
//! PostgreSQL (several hosts). The store's queries are written once, in the subset of SQL both
//! understand, with `?1`-style placeholders; values go in as [`Param`] and come out as [`Row`].
//!
//! Write transactions are serialized on both engines: SQLite's `BEGIN IMMEDIATE` takes the
//! database's write lock before the first read, and PostgreSQL's take one store-wide advisory
//! lock first. Every check-then-write rule (15 keys, 15 credentials, unique usernames, one
//! owner per sender) therefore reads the committed state of every earlier writer, whichever
//! host it ran on.

use std::cell::Cell as StdCell;

use rusqlite::types::{ToSqlOutput, ValueRef};

use super::pg::PgConn;
use super::{Result, StoreError};

/// One value bound to a placeholder.
#[derive(Debug, Clone, Copy)]
pub enum Param<'a> {
    Int(i64),
    Text(&'a str),
    Blob(&'a [u8]),
    Null,
}

impl From<i64> for Param<'_> {
    fn from(v: i64) -> Self {
        Self::Int(v)
    }
}

impl From<u32> for Param<'_> {
    fn from(v: u32) -> Self {
        Self::Int(i64::from(v))
    }
}

impl From<bool> for Param<'_> {
    fn from(v: bool) -> Self {
        Self::Int(i64::from(v))
    }
}

impl<'a> From<&'a str> for Param<'a> {
    fn from(v: &'a str) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a String> for Param<'a> {
    fn from(v: &'a String) -> Self {
        Self::Text(v)
    }
}

impl<'a> From<&'a [u8]> for Param<'a> {
    fn from(v: &'a [u8]) -> Self {
        Self::Blob(v)
    }
}

impl<'a> From<&'a Vec<u8>> for Param<'a> {
    fn from(v: &'a Vec<u8>) -> Self {
        Self::Blob(v)
    }
}

impl From<Option<i64>> for Param<'_> {
    fn from(v: Option<i64>) -> Self {
        v.map_or(Self::Null, Self::Int)
    }
}

impl<'a> From<Option<&'a str>> for Param<'a> {
    fn from(v: Option<&'a str>) -> Self {
        v.map_or(Self::Null, Self::Text)
    }
}

/// `params![a, b]`: the placeholders' values, in order.
macro_rules! params {
    () => { &[] as &[$crate::store::db::Param<'_>] };
    ($($v:expr),+ $(,)?) => { &[$($crate::store::db::Param::from($v)),+] as &[$crate::store::db::Param<'_>] };
}
pub(crate) use params;

impl rusqlite::ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match *self {
            Self::Int(v) => ToSqlOutput::Borrowed(ValueRef::Integer(v)),
            Self::Text(v) => ToSqlOutput::Borrowed(ValueRef::Text(v.as_bytes())),
            Self::Blob(v) => ToSqlOutput::Borrowed(ValueRef::Blob(v)),
            Self::Null => ToSqlOutput::Borrowed(ValueRef::Null),
        })
    }
}

/// One column's value as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Int(i64),
    Text(String),
    Blob(Vec<u8>),
    Null,
}

/// One row of a result, with typed getters that call a wrong type `Corrupt`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Row(pub(super) Vec<Value>);

impl Row {
    fn cell(&self, i: usize) -> Result<&Value> {
        self.0.get(i).ok_or_else(|| StoreError::Corrupt(format!("a result has no column {i}")))
    }

    fn wrong(&self, i: usize, want: &str) -> StoreError {
        StoreError::Corrupt(format!("column {i} is not {want}: {:?}", self.0.get(i)))
    }

    pub fn int(&self, i: usize) -> Result<i64> {
        match self.cell(i)? {
            Value::Int(v) => Ok(*v),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    pub fn opt_int(&self, i: usize) -> Result<Option<i64>> {
        match self.cell(i)? {
            Value::Int(v) => Ok(Some(*v)),
            Value::Null => Ok(None),
            _ => Err(self.wrong(i, "an integer")),
        }
    }

    /// An integer used as a boolean (0 is false), as both engines store flags.
    pub fn flag(&self, i: usize) -> Result<bool> {
        Ok(self.int(i)? != 0)
    }

    pub fn text(&self, i: usize) -> Result<String> {
        match self.cell(i)? {
            Value::Text(v) => Ok(v.clone()),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub fn opt_text(&self, i: usize) -> Result<Option<String>> {
        match self.cell(i)? {
            Value::Text(v) => Ok(Some(v.clone())),
            Value::Null => Ok(None),
            _ => Err(self.wrong(i, "text")),
        }
    }

    pub fn blob(&self, i: usize) -> Result<Vec<u8>> {
        match self.cell(i)? {
            Value::Blob(v) => Ok(v.clone()),
            _ => Err(self.wrong(i, "bytes")),
        }
    }
}

/// A connection to one of the two engines.
pub enum Db {
    Sqlite(rusqlite::Connection),
    Postgres(PgConn),
}

/// Advisory-lock class (first of two int keys) of the store-wide write lock.
const WRITE_LOCK: i32 = 0x726b_0001;

impl Db {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Self::Postgres(_))
    }

    /// Runs one statement; returns how many rows it changed.
    pub fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        match self {
            Self::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                Ok(stmt.execute(rusqlite::params_from_iter(params.iter()))? as u64)
            }
            Self::Postgres(pg) => pg.exec(sql, params),
        }
    }

    /// Every row a query returns.
    pub fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        match self {
            Self::Sqlite(conn) => {
                let mut stmt = conn.prepare_cached(sql)?;
                let width = stmt.column_count();
                let mut rows = stmt.query(rusqlite::params_from_iter(params.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    let mut row = Vec::with_capacity(width);
                    for i in 0..width {
                        row.push(match r.get_ref(i)? {
                            ValueRef::Null => Value::Null,
                            ValueRef::Integer(v) => Value::Int(v),
                            // No column holds reals; a stray one reads as text and fails its getter.
                            ValueRef::Real(v) => Value::Text(v.to_string()),
                            ValueRef::Text(v) => Value::Text(String::from_utf8_lossy(v).into_owned()),
                            ValueRef::Blob(v) => Value::Blob(v.to_vec()),
                        });
                    }
                    out.push(Row(row));
                }
                Ok(out)
            }
            Self::Postgres(pg) => pg.rows(sql, params),
        }
    }

    /// The first row, if any.
    pub fn row(&self, sql: &str, params: &[Param<'_>]) -> Result<Option<Row>> {
        Ok(self.rows(sql, params)?.into_iter().next())
    }

    /// The one row a query must return.
    pub fn one(&self, sql: &str, params: &[Param<'_>]) -> Result<Row> {
        self.row(sql, params)?.ok_or_else(|| StoreError::Corrupt(format!("no row from {sql}")))
    }

    /// The first column of the one row a query returns (`count(*)`, an id).
    pub fn int(&self, sql: &str, params: &[Param<'_>]) -> Result<i64> {
        self.one(sql, params)?.int(0)
    }

    /// Runs statements with no parameters (migrations).
    pub fn batch(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Self::Postgres(pg) => pg.batch(sql),
        }
    }

    /// A write transaction, serialized with every other writer of the store. On PostgreSQL its
    /// commit also tells every host's change feed (see `pg::feed`).
    pub fn write(&self) -> Result<Tx<'_>> {
        match self {
            Self::Sqlite(_) => self.begin("BEGIN IMMEDIATE", Kind::Write),
            Self::Postgres(_) => {
                let tx = self.begin("BEGIN", Kind::Write)?;
                tx.exec("SELECT pg_advisory_xact_lock(?1, 0)", params![i64::from(WRITE_LOCK)])?;
                Ok(tx)
            }
        }
    }

    /// A write transaction for state no cache holds (message counters, the login ledger): on
    /// PostgreSQL it serializes only with writers of the same `key` and notifies nobody.
    pub fn write_keyed(&self, key: i64) -> Result<Tx<'_>> {
        match self {
            Self::Sqlite(_) => self.begin("BEGIN IMMEDIATE", Kind::Quiet),
            Self::Postgres(_) => {
                let tx = self.begin("BEGIN", Kind::Quiet)?;
                // The one-bigint lock space: apart from the store-wide lock's two-int space.
                tx.exec("SELECT pg_advisory_xact_lock(?1)", params![key])?;
                Ok(tx)
            }
        }
    }

    /// A read-only transaction: what it reads from several tables is one snapshot.
    pub fn read(&self) -> Result<Tx<'_>> {
        match self {
            Self::Sqlite(_) => self.begin("BEGIN DEFERRED", Kind::Quiet),
            Self::Postgres(_) => self.begin("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", Kind::Quiet),
        }
    }

    fn begin(&self, sql: &str, kind: Kind) -> Result<Tx<'_>> {
        match self {
            Self::Sqlite(conn) => conn.execute_batch(sql)?,
            Self::Postgres(pg) => pg.begin(sql)?,
        }
        Ok(Tx { db: self, kind, open: StdCell::new(true) })
    }

    fn end(&self, sql: &str) -> Result<()> {
        match self {
            Self::Sqlite(conn) => Ok(conn.execute_batch(sql)?),
            Self::Postgres(pg) => pg.end(sql),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Write,
    Quiet,
}

/// An open transaction; derefs to its connection. Dropped without [`Tx::commit`], it rolls back.
pub struct Tx<'a> {
    db: &'a Db,
    kind: Kind,
    open: StdCell<bool>,
}

impl Tx<'_> {
    pub fn commit(self) -> Result<()> {
        let notifies = match self.db {
            Db::Postgres(pg) if self.kind == Kind::Write => Some(pg),
            _ => None,
        };
        if let Some(pg) = notifies {
            pg.notify_in_transaction()?;
        }
        self.open.set(false);
        self.db.end("COMMIT")?;
        if let Some(pg) = notifies {
            pg.committed_locally();
        }
        Ok(())
    }

    /// A savepoint inside this transaction: dropped without [`Savepoint::release`], it undoes
    /// only what ran since it was taken.
    pub fn savepoint(&self) -> Result<Savepoint<'_>> {
        self.db.batch("SAVEPOINT relaykey_sp")?;
        Ok(Savepoint { db: self.db, open: true })
    }
}

impl std::ops::Deref for Tx<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Tx<'_> {
    fn drop(&mut self) {
        if self.open.get() {
            // Nothing to report: a failed rollback means the connection is gone, and the
            // server has rolled back already.
            let _ = self.db.end("ROLLBACK");
        }
    }
}

pub struct Savepoint<'a> {
    db: &'a Db,
    open: bool,
}

impl Savepoint<'_> {
    pub fn release(mut self) -> Result<()> {
        self.open = false;
        self.db.batch("RELEASE SAVEPOINT relaykey_sp")
    }
}

impl std::ops::Deref for Savepoint<'_> {
    type Target = Db;
    fn deref(&self) -> &Db {
        self.db
    }
}

impl Drop for Savepoint<'_> {
    fn drop(&mut self) {
        if self.open {
            let _ = self.db.batch("ROLLBACK TO SAVEPOINT relaykey_sp; RELEASE SAVEPOINT relaykey_sp");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sqlite() -> Db {
        Db::Sqlite(rusqlite::Connection::open_in_memory().unwrap())
    }

    #[test]
    fn values_round_trip_and_getters_check_types() {
        let db = sqlite();
        db.batch("CREATE TABLE t (i INTEGER, s TEXT, b BLOB, n INTEGER)").unwrap();
        db.exec("INSERT INTO t VALUES (?1, ?2, ?3, ?4)", params![7_i64, "x", &b"\x00\xff"[..], None::<i64>]).unwrap();
        let row = db.one("SELECT i, s, b, n FROM t", params![]).unwrap();
        assert_eq!((row.int(0).unwrap(), row.text(1).unwrap()), (7, "x".to_string()));
        assert_eq!((row.blob(2).unwrap(), row.opt_int(3).unwrap()), (vec![0, 255], None));
        assert!(matches!(row.text(0), Err(StoreError::Corrupt(_))));
        assert!(matches!(row.int(9), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn an_uncommitted_transaction_and_a_dropped_savepoint_roll_back() {
        let db = sqlite();
        db.batch("CREATE TABLE t (i INTEGER)").unwrap();
        {
            let tx = db.write().unwrap();
            tx.exec("INSERT INTO t VALUES (1)", params![]).unwrap();
        }
        assert_eq!(db.int("SELECT count(*) FROM t", params![]).unwrap(), 0);
        let tx = db.write().unwrap();
        tx.exec("INSERT INTO t VALUES (1)", params![]).unwrap();
        {
            let sp = tx.savepoint().unwrap();
            sp.exec("INSERT INTO t VALUES (2)", params![]).unwrap();
        }
        let sp = tx.savepoint().unwrap();
        sp.exec("INSERT INTO t VALUES (3)", params![]).unwrap();
        sp.release().unwrap();
        tx.commit().unwrap();
        let rows = db.rows("SELECT i FROM t ORDER BY i", params![]).unwrap();
        assert_eq!(rows.iter().map(|r| r.int(0).unwrap()).collect::<Vec<_>>(), [1, 3]);
    }
}
