//! The PostgreSQL engine: a synchronous connection over tokio-postgres, so that the store keeps
//! one blocking interface for both engines (its callers already run it off the async workers,
//! in `spawn_blocking`, or in the CLI).
//!
//! Connections are driven by a small private runtime; a call blocks the calling thread on its
//! own future only (never on a runtime), so it works the same from the CLI, from a blocking
//! pool thread, or from an async worker. A lost connection is a temporary error, and the next
//! call outside a transaction connects again: relaykey recovers by itself when PostgreSQL
//! comes back.

pub mod feed;
pub mod target;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tokio_postgres::types::{FromSql, IsNull, ToSql, Type, to_sql_checked};
use tokio_postgres::{Client, Statement};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use feed::ChangeFeed;
pub use target::{PgTarget, TargetError, is_postgres_url, redact};

use super::db::{Param, Row, Value};
use super::{Result, StoreError};

/// The runtime that drives every PostgreSQL connection of the process (and the change feed).
fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("relaykey-pg")
            .enable_all()
            .build()
            // Without a thread and a timer the process cannot run at all.
            .expect("cannot start the PostgreSQL runtime")
    })
}

/// Waits for `fut` on the calling thread. The futures of a connected client only talk to its
/// connection task (on [`runtime`]) through channels, so they need no runtime of their own.
fn wait<F: Future>(fut: F) -> F::Output {
    futures_executor::block_on(fut)
}

/// Connects to `target`, spawning the connection's task on the private runtime.
pub(super) async fn connect_client(target: &PgTarget) -> Result<Client> {
    let tls = MakeRustlsConnect::new(target.tls_config().map_err(|e| StoreError::Unavailable(e.to_string()))?);
    let (client, connection) = target.config.connect(tls).await?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::warn!(error = %e, "store: PostgreSQL connection lost");
        }
    });
    Ok(client)
}

struct Live {
    client: Client,
    /// Prepared statements by SQL text: each costs a round trip the first time only.
    statements: HashMap<String, Statement>,
}

impl Live {
    fn prepared(&mut self, sql: &str) -> Result<Statement> {
        if let Some(st) = self.statements.get(sql) {
            return Ok(st.clone());
        }
        let st = wait(self.client.prepare(&placeholders(sql)))?;
        self.statements.insert(sql.to_string(), st.clone());
        Ok(st)
    }

    /// A failed statement may have failed because its plan is stale (another host migrated
    /// the schema: "cached plan must not change result type"); preparing again is cheap and
    /// errors are rare, so every error drops the prepared statements.
    fn forget_statements_on_error<T>(&mut self, out: Result<T, tokio_postgres::Error>) -> Result<T> {
        if out.is_err() {
            self.statements.clear();
        }
        Ok(out?)
    }
}

/// One connection to a PostgreSQL store, reconnected on demand.
pub struct PgConn {
    target: Arc<PgTarget>,
    feed: Arc<ChangeFeed>,
    live: Mutex<Option<Live>>,
    /// A transaction is open: a lost connection must fail it rather than carry on in a new
    /// session outside it.
    in_transaction: Mutex<bool>,
    /// When the last connection attempt failed: for [`RECONNECT_PAUSE`] after it, calls fail at
    /// once instead of each waiting out a connect timeout behind the store's lock.
    failed_at: Mutex<Option<(Instant, String)>>,
}

/// How long after a failed connection attempt the next one waits.
const RECONNECT_PAUSE: Duration = Duration::from_millis(500);

impl PgConn {
    pub fn connect(target: Arc<PgTarget>) -> Result<Self> {
        let feed = ChangeFeed::for_target(&target);
        let conn = Self {
            target,
            feed,
            live: Mutex::new(None),
            in_transaction: Mutex::new(false),
            failed_at: Mutex::new(None),
        };
        conn.with_live(|_| Ok(()))?;
        Ok(conn)
    }

    pub fn target(&self) -> &Arc<PgTarget> {
        &self.target
    }

    /// Runs `op` on the live connection, connecting first if there is none. A failure that
    /// closed the connection drops it, so the next call (outside a transaction) connects again.
    fn with_live<T>(&self, op: impl FnOnce(&mut Live) -> Result<T>) -> Result<T> {
        let mut live = self.live.lock().unwrap_or_else(PoisonError::into_inner);
        if live.as_ref().is_some_and(|l| l.client.is_closed()) {
            *live = None;
        }
        let l = match live.as_mut() {
            Some(l) => l,
            None => {
                if *self.in_transaction.lock().unwrap_or_else(PoisonError::into_inner) {
                    return Err(StoreError::Unavailable("the PostgreSQL connection was lost in a transaction".into()));
                }
                let mut failed_at = self.failed_at.lock().unwrap_or_else(PoisonError::into_inner);
                if let Some((at, why)) = failed_at.as_ref().filter(|(at, _)| at.elapsed() < RECONNECT_PAUSE) {
                    let ago = at.elapsed().as_millis();
                    return Err(StoreError::Unavailable(format!("{why} ({ago} ms ago; retrying shortly)")));
                }
                let target = self.target.clone();
                let connected = wait(runtime().spawn(async move { connect_client(&target).await }))
                    .map_err(|e| StoreError::Unavailable(e.to_string()))
                    .and_then(|r| r);
                let client = match connected {
                    Ok(client) => {
                        *failed_at = None;
                        client
                    }
                    Err(e) => {
                        *failed_at = Some((Instant::now(), e.to_string()));
                        return Err(e);
                    }
                };
                live.insert(Live { client, statements: HashMap::new() })
            }
        };
        let out = op(l);
        if l.client.is_closed() {
            *live = None;
        }
        out
    }

    pub fn exec(&self, sql: &str, params: &[Param<'_>]) -> Result<u64> {
        let bound: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        self.with_live(|l| {
            let st = l.prepared(sql)?;
            let out = wait(l.client.execute(&st, &bound));
            l.forget_statements_on_error(out)
        })
    }

    pub fn rows(&self, sql: &str, params: &[Param<'_>]) -> Result<Vec<Row>> {
        let bound: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p as &(dyn ToSql + Sync)).collect();
        let rows = self.with_live(|l| {
            let st = l.prepared(sql)?;
            let out = wait(l.client.query(&st, &bound));
            l.forget_statements_on_error(out)
        })?;
        rows.iter()
            .map(|r| {
                (0..r.len())
                    .map(|i| r.try_get::<_, Cell>(i).map(|c| c.0).map_err(StoreError::from))
                    .collect::<Result<Vec<_>>>()
                    .map(Row)
            })
            .collect()
    }

    pub fn batch(&self, sql: &str) -> Result<()> {
        self.with_live(|l| Ok(wait(l.client.batch_execute(sql))?))
    }

    /// Opens a transaction with `sql` (`BEGIN …`).
    pub fn begin(&self, sql: &str) -> Result<()> {
        self.batch(sql)?;
        *self.in_transaction.lock().unwrap_or_else(PoisonError::into_inner) = true;
        Ok(())
    }

    /// Ends the open transaction with `sql` (`COMMIT` or `ROLLBACK`).
    pub fn end(&self, sql: &str) -> Result<()> {
        let out = self.batch(sql);
        *self.in_transaction.lock().unwrap_or_else(PoisonError::into_inner) = false;
        out
    }

    /// Queues the change notification; PostgreSQL delivers it to every listener at commit.
    pub fn notify_in_transaction(&self) -> Result<()> {
        self.batch(&format!("SELECT pg_notify('{}', '')", feed::CHANNEL))
    }

    /// This process committed a change: its own caches need not wait for the notification.
    pub fn committed_locally(&self) {
        self.feed.bump();
    }

    /// The process's change counter (see [`ChangeFeed::version`]).
    pub fn data_version(&self) -> i64 {
        self.feed.version(&self.target)
    }
}

/// Rewrites SQLite's `?N` placeholders into PostgreSQL's `$N`, outside quoted text.
fn placeholders(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let mut quoted = false;
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted && chars.peek().is_some_and(char::is_ascii_digit) => out.push('$'),
            _ => out.push(c),
        }
    }
    out
}

impl ToSql for Param<'_> {
    fn to_sql(
        &self,
        ty: &Type,
        out: &mut bytes::BytesMut,
    ) -> std::result::Result<IsNull, Box<dyn std::error::Error + Sync + Send>> {
        match *self {
            Self::Int(v) => match *ty {
                Type::INT4 => i32::try_from(v)?.to_sql(ty, out),
                Type::INT2 => i16::try_from(v)?.to_sql(ty, out),
                Type::BOOL => (v != 0).to_sql(ty, out),
                _ => v.to_sql(ty, out),
            },
            Self::Text(v) => {
                out.extend_from_slice(v.as_bytes());
                Ok(IsNull::No)
            }
            Self::Blob(v) => {
                out.extend_from_slice(v);
                Ok(IsNull::No)
            }
            Self::Null => Ok(IsNull::Yes),
        }
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A column read whatever its type, into the store's four kinds of value.
struct Cell(Value);

impl<'a> FromSql<'a> for Cell {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(match *ty {
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::INT4 => Value::Int(i64::from(i32::from_sql(ty, raw)?)),
            Type::INT2 => Value::Int(i64::from(i16::from_sql(ty, raw)?)),
            Type::BOOL => Value::Int(i64::from(bool::from_sql(ty, raw)?)),
            Type::BYTEA => Value::Blob(raw.to_vec()),
            // text, varchar, citext, name: UTF-8 bytes.
            _ => Value::Text(std::str::from_utf8(raw)?.to_string()),
        }))
    }

    fn from_sql_null(_: &Type) -> std::result::Result<Self, Box<dyn std::error::Error + Sync + Send>> {
        Ok(Cell(Value::Null))
    }

    fn accepts(_: &Type) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_rewritten_outside_quotes() {
        assert_eq!(
            placeholders("SELECT a FROM t WHERE b = ?1 AND c = '?2' OR d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' OR d = $12"
        );
        assert_eq!(placeholders("SELECT '?' , ?"), "SELECT '?' , ?");
    }
}
