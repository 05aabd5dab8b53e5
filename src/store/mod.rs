//! The SQLite store: one file, WAL mode, `synchronous=FULL`, migrations at open.
//!
//! Every write that checks a limit (15 keys, 15 credentials, unique usernames) runs inside one
//! `BEGIN IMMEDIATE` transaction, which takes the database's write lock before the first read,
//! so two processes racing cannot both pass the check.

mod accounts;
mod api_keys;
pub mod backup;
mod check;
mod copy;
pub(crate) mod db;
mod dkim_keys;
mod imports;
mod listing;
mod location;
pub mod login_grants;
pub mod message_counts;
pub mod pg;
mod pg_schema;
mod schema;
mod senders;
pub mod serve_lock;
pub mod shared_state;
mod smtp_credentials;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags};

pub use api_keys::{ApiKeyEdit, NewApiKey};
pub use check::{StoreCheck, StoreProblem};
pub use copy::CopyCounts;
pub use imports::{ImportWritten, ImportedCredential};
pub use listing::{Listing, UnreadableRow};
pub use location::StoreLocation;
pub use pg::{PgTarget, is_postgres_url};
pub use smtp_credentials::{NewSmtpCredential, SmtpCredentialEdit};

use crate::address::EmailAddress;
use crate::model::NameError;
use crate::restriction::RestrictionError;
use db::{Db, params};

/// How long a writer waits for another process's write lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("unknown account {0}")]
    UnknownAccount(String),
    #[error("account {0} already exists")]
    AccountExists(String),
    #[error("account {account} has no API key with id {id}")]
    UnknownApiKey { account: String, id: i64 },
    #[error("account {account} has no SMTP credential with id {id}")]
    UnknownSmtpCredential { account: String, id: i64 },
    #[error("account {account} already has {max} {what} (the maximum)")]
    LimitReached { account: String, what: &'static str, max: usize },
    #[error("username {0} is already used by another SMTP credential or account")]
    UsernameTaken(String),
    /// Another account holds this sender entry (a domain or address has one owner).
    #[error("sender {0} belongs to another account")]
    SenderTaken(String),
    #[error("account {account} already has sender {entry}")]
    SenderExists { account: String, entry: String },
    #[error("account {account} has no sender {entry}")]
    UnknownSender { account: String, entry: String },
    #[error("{0} is not a sender domain of any account (add it with `relaykey sender add`)")]
    UnknownSenderDomain(String),
    #[error("sender domain {0} is not verified yet (publish its TXT record, then `relaykey sender verify`)")]
    UnverifiedSenderDomain(String),
    #[error("domain {domain} already has a DKIM key with selector {selector}")]
    DkimSelectorTaken { domain: String, selector: String },
    #[error("domain {domain} has no DKIM key with selector {selector}")]
    UnknownDkimKey { domain: String, selector: String },
    #[error(transparent)]
    Name(#[from] NameError),
    #[error("an API key needs at least one permission")]
    NoPermission,
    #[error("could not generate a secret: {0}")]
    Random(String),
    #[error("could not hash the secret: {0}")]
    Hash(String),
    #[error("stored data is corrupt: {0}")]
    Corrupt(String),
    #[error("cannot create database {path}: {source}")]
    Create { path: String, source: std::io::Error },
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("database error: {}", with_causes(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// `store copy` writes only into a store that holds nothing yet.
    #[error("the target store is not empty ({0} rows): copy into a new, empty database")]
    TargetNotEmpty(u64),
    /// The config names a store that cannot be used (a password file gone since startup).
    #[error("{0}")]
    Config(String),
    /// The database cannot be reached (PostgreSQL down, a connection lost mid-transaction).
    #[error("database unavailable: {0}")]
    Unavailable(String),
}

impl From<RestrictionError> for StoreError {
    fn from(e: RestrictionError) -> Self {
        Self::Corrupt(e.to_string())
    }
}

impl StoreError {
    /// Errors that say "try again later" rather than "no". Corrupt data is not one of them:
    /// retrying reads the same bytes.
    pub fn is_temporary(&self) -> bool {
        matches!(
            self,
            Self::Sqlite(_) | Self::Postgres(_) | Self::Unavailable(_) | Self::Create { .. } | Self::Random(_)
        )
    }
}

impl StoreError {
    /// A database server that cannot be reached (PostgreSQL down, a network failure) or that
    /// says it cannot serve yet (starting up, shutting down, out of connections): the daemon
    /// waits for it rather than restarting, since a restart would not bring it back. An error
    /// the server answered with otherwise (a wrong password, no such database) is not one:
    /// waiting would not mend the config.
    pub fn is_database_outage(&self) -> bool {
        match self {
            Self::Unavailable(_) => true,
            Self::Postgres(e) => e.as_db_error().is_none_or(|db| {
                let code = db.code().code();
                // 57P: operator intervention (shutdown, starting up); 53: insufficient resources.
                code.starts_with("57P") || code.starts_with("53")
            }),
            _ => false,
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connection to the store (SQLite or PostgreSQL). Not `Sync`: share it behind a mutex.
pub struct Store {
    db: Db,
    location: StoreLocation,
}

pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    /// Opens the store `location` names, migrating it if needed.
    pub fn connect(location: &StoreLocation) -> Result<Self> {
        match location {
            StoreLocation::Sqlite(path) => Self::open(path),
            StoreLocation::Postgres(target) => Self::connect_postgres(target.clone()),
        }
    }

    fn connect_postgres(target: Arc<PgTarget>) -> Result<Self> {
        let location = StoreLocation::Postgres(target.clone());
        let store = Self { db: Db::Postgres(pg::PgConn::connect(target)?), location };
        store.migrate_postgres()?;
        Ok(store)
    }

    /// Opens (creating with mode 0600 if needed) and migrates the SQLite database at `path`.
    pub fn open(path: &Path) -> Result<Self> {
        if !path.exists() {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|source| StoreError::Create { path: path.display().to_string(), source })?;
            }
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o600)
                .open(path)
                .map_err(|source| StoreError::Create { path: path.display().to_string(), source })?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let store = Self { db: Db::Sqlite(conn), location: StoreLocation::Sqlite(path.to_path_buf()) };
        store.migrate_sqlite()?;
        Ok(store)
    }

    /// Where this store is.
    pub fn location(&self) -> &StoreLocation {
        &self.location
    }

    pub fn is_postgres(&self) -> bool {
        self.db.is_postgres()
    }

    fn sqlite(&self) -> Result<&Connection> {
        match &self.db {
            Db::Sqlite(conn) => Ok(conn),
            Db::Postgres(_) => Err(StoreError::Corrupt("an SQLite operation on a PostgreSQL store".into())),
        }
    }

    fn migrate_sqlite(&self) -> Result<()> {
        let target = schema::MIGRATIONS.len() as i64;
        let conn = self.sqlite()?;
        // A current schema needs no write: taking the write lock at every open would make
        // racing CLI processes queue behind each other, and each commit would move every other
        // connection's `data_version` (dropping the daemon's login cache for a mere `list`).
        let current: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current == target {
            return Ok(());
        }
        let tx = self.db.write()?;
        // Read again under the lock: another process may have migrated in between.
        let version: i64 = self.sqlite()?.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > target {
            return Err(newer_schema(version, target));
        }
        if version == target {
            return Ok(());
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.batch(sql)?;
            if i + 1 == schema::SENDERS_BACKFILL_AT {
                senders::bind_own_addresses(&tx)?;
            }
        }
        self.sqlite()?.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        Ok(())
    }

    /// PostgreSQL: the same migrations in its dialect, under the store-wide write lock, so
    /// hosts that start together apply each exactly once.
    fn migrate_postgres(&self) -> Result<()> {
        let target = pg_schema::MIGRATIONS.len() as i64;
        let version_sql = "SELECT CASE WHEN to_regclass('relaykey_schema') IS NULL THEN -1
                                  ELSE (SELECT coalesce(max(version), 0) FROM relaykey_schema) END";
        // A query, not a DO block: a missing table must not abort anything.
        if self.db.int(version_sql, params![]).unwrap_or(-1) == target {
            return Ok(());
        }
        let tx = self.db.write()?;
        tx.batch("CREATE TABLE IF NOT EXISTS relaykey_schema (version BIGINT NOT NULL)")?;
        let version = tx.int("SELECT coalesce(max(version), 0) FROM relaykey_schema", params![])?;
        if version > target {
            return Err(newer_schema(version, target));
        }
        if version == target {
            return tx.commit();
        }
        for sql in pg_schema::MIGRATIONS.iter().skip(version as usize) {
            tx.batch(sql)?;
        }
        tx.exec("DELETE FROM relaykey_schema", params![])?;
        tx.exec("INSERT INTO relaykey_schema (version) VALUES (?1)", params![target])?;
        tx.commit()
    }

    /// The schema version this store is at and the one this build writes.
    pub fn schema_versions(&self) -> Result<(i64, i64)> {
        match &self.db {
            Db::Sqlite(conn) => {
                let v: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
                Ok((v, schema::MIGRATIONS.len() as i64))
            }
            Db::Postgres(_) => Ok((
                self.db.int("SELECT coalesce(max(version), 0) FROM relaykey_schema", params![])?,
                pg_schema::MIGRATIONS.len() as i64,
            )),
        }
    }

    /// Changes whenever another connection commits a change: SQLite's `PRAGMA data_version`,
    /// or on PostgreSQL the change feed's counter (`pg::feed`). The caches poll it to drop
    /// what they hold the moment the CLI, the API or another host changes a secret.
    pub fn data_version(&self) -> Result<i64> {
        match &self.db {
            // Cached: it runs before every login and every policy re-check, and compiling the
            // statement would cost more than running it.
            Db::Sqlite(conn) => Ok(conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?),
            Db::Postgres(pg) => Ok(pg.data_version()),
        }
    }

    /// Another connection to the same store.
    pub fn open_again(&self) -> Result<Self> {
        match (&self.db, &self.location) {
            (Db::Sqlite(conn), _) => match conn.path().filter(|p| !p.is_empty()) {
                Some(path) => Self::open(Path::new(path)),
                None => Err(StoreError::Corrupt("an in-memory database cannot be opened again".into())),
            },
            (Db::Postgres(_), location) => Self::connect(location),
        }
    }

    /// Runs `f` in one read transaction, so that what it reads from several tables is one
    /// snapshot of the database.
    pub fn read_snapshot<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        let tx = self.db.read()?;
        let out = f(self);
        // A read transaction has nothing to keep: ending it can only fail if it never began.
        let end = tx.commit();
        let out = out?;
        end?;
        Ok(out)
    }

    /// Every stored secret hash (SMTP credentials and API keys), for the census of argon2
    /// parameters that the dummy verification of unknown users follows.
    pub fn secret_hashes(&self) -> Result<Vec<String>> {
        let rows = self.db.rows("SELECT hash FROM smtp_credentials UNION ALL SELECT hash FROM api_keys", params![])?;
        rows.iter().map(|r| r.text(0)).collect()
    }

    /// A cheap read that proves the database is still readable (for the watchdog).
    pub fn ping(&self) -> Result<()> {
        self.db.int("SELECT count(*) FROM accounts", params![])?;
        Ok(())
    }

    fn write(&mut self) -> Result<db::Tx<'_>> {
        self.db.write()
    }
}

/// An error and its causes on one line ("error connecting to server: Connection refused"):
/// tokio-postgres keeps the useful part in `source()`.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

fn newer_schema(version: i64, target: i64) -> StoreError {
    StoreError::Corrupt(format!("database schema version {version} is newer than this relaykey ({target})"))
}

/// Looks up an account id by address inside a transaction, or fails with `UnknownAccount`.
fn account_id(tx: &Db, email: &EmailAddress) -> Result<i64> {
    tx.row("SELECT id FROM accounts WHERE email = ?1", params![email.as_str()])?
        .map(|r| r.int(0))
        .transpose()?
        .ok_or_else(|| StoreError::UnknownAccount(email.to_string()))
}

/// Is `username` free for a credential of account `owner`? Another account's address or another
/// credential's username is taken; the owner's own address is not.
fn username_is_free(tx: &Db, username: &EmailAddress, owner: i64, except_cred: Option<i64>) -> Result<bool> {
    let other_account =
        tx.int("SELECT count(*) FROM accounts WHERE email = ?1 AND id != ?2", params![username.as_str(), owner])?;
    let other_cred = tx.int(
        "SELECT count(*) FROM smtp_credentials WHERE username = ?1 AND id != ?2",
        params![username.as_str(), except_cred.unwrap_or(-1)],
    )?;
    Ok(other_account == 0 && other_cred == 0)
}
