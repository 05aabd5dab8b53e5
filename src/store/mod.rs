//! The SQLite store: one file, WAL mode, `synchronous=FULL`, migrations at open.
//!
//! Every write that checks a limit (15 keys, 15 credentials, unique usernames) runs inside one
//! `BEGIN IMMEDIATE` transaction, which takes the database's write lock before the first read,
//! so two processes racing cannot both pass the check.

mod accounts;
mod api_keys;
pub mod backup;
mod dkim_keys;
mod imports;
mod listing;
pub mod login_grants;
pub mod message_counts;
mod schema;
mod senders;
pub mod serve_lock;
pub mod shared_state;
mod smtp_credentials;

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OpenFlags, Transaction, TransactionBehavior};

pub use api_keys::{ApiKeyEdit, NewApiKey};
pub use imports::{ImportWritten, ImportedCredential};
pub use listing::{Listing, UnreadableRow};
pub use smtp_credentials::{NewSmtpCredential, SmtpCredentialEdit};

use crate::address::EmailAddress;
use crate::model::NameError;
use crate::restriction::RestrictionError;

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
        matches!(self, Self::Sqlite(_) | Self::Create { .. } | Self::Random(_))
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// A connection to the store. `Connection` is `Send` but not `Sync`: share it behind a mutex.
pub struct Store {
    conn: Connection,
}

pub(crate) fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs() as i64).unwrap_or(0)
}

impl Store {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
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
        let mut store = Self { conn };
        store.migrate()?;
        Ok(store)
    }

    fn migrate(&mut self) -> Result<()> {
        let target = schema::MIGRATIONS.len() as i64;
        // A current schema needs no write: taking the write lock at every open would make
        // racing CLI processes queue behind each other, and each commit would move every other
        // connection's `data_version` (dropping the daemon's login cache for a mere `list`).
        let current: i64 = self.conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if current == target {
            return Ok(());
        }
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Read again under the lock: another process may have migrated in between.
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > target {
            return Err(StoreError::Corrupt(format!(
                "database schema version {version} is newer than this relaykey ({target})"
            )));
        }
        if version == target {
            return Ok(());
        }
        for (i, sql) in schema::MIGRATIONS.iter().enumerate().skip(version as usize) {
            tx.execute_batch(sql)?;
            if i + 1 == schema::SENDERS_BACKFILL_AT {
                senders::bind_own_addresses(&tx)?;
            }
        }
        tx.pragma_update(None, "user_version", target)?;
        tx.commit()?;
        Ok(())
    }

    /// Changes whenever *another* connection commits (SQLite's `PRAGMA data_version`). The
    /// authenticator polls it to drop its cache the moment the CLI changes a secret.
    pub fn data_version(&self) -> Result<i64> {
        // Cached: it runs before every login and every policy re-check, and compiling the
        // statement would cost more than running it.
        Ok(self.conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?)
    }

    /// Another connection to the same database file.
    pub fn open_again(&self) -> Result<Self> {
        match self.conn.path().filter(|p| !p.is_empty()) {
            Some(path) => Self::open(Path::new(path)),
            None => Err(StoreError::Corrupt("an in-memory database cannot be opened again".into())),
        }
    }

    /// Runs `f` in one read transaction, so that what it reads from several tables is one
    /// snapshot of the database.
    pub fn read_snapshot<T>(&self, f: impl FnOnce(&Self) -> Result<T>) -> Result<T> {
        self.conn.execute_batch("BEGIN DEFERRED")?;
        let out = f(self);
        // A read transaction has nothing to keep: ending it can only fail if it never began.
        let end = self.conn.execute_batch("COMMIT");
        let out = out?;
        end?;
        Ok(out)
    }

    /// Every stored secret hash (SMTP credentials and API keys), for the census of argon2
    /// parameters that the dummy verification of unknown users follows.
    pub fn secret_hashes(&self) -> Result<Vec<String>> {
        let mut stmt = self.conn.prepare("SELECT hash FROM smtp_credentials UNION ALL SELECT hash FROM api_keys")?;
        let hashes = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
        Ok(hashes)
    }

    /// A cheap read that proves the database is still readable (for the watchdog).
    pub fn ping(&self) -> Result<()> {
        self.conn.query_row("SELECT count(*) FROM accounts", [], |r| r.get::<_, i64>(0))?;
        Ok(())
    }

    fn write(&mut self) -> Result<Transaction<'_>> {
        Ok(self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?)
    }
}

/// Runs `sql` with `params` and reads every row it returns with `read`.
fn query_all<T, P: rusqlite::Params>(
    conn: &Connection,
    sql: &str,
    params: P,
    read: impl FnMut(&rusqlite::Row<'_>) -> rusqlite::Result<T>,
) -> Result<Vec<T>> {
    let mut stmt = conn.prepare(sql)?;
    let rows = stmt.query_map(params, read)?.collect::<rusqlite::Result<Vec<_>>>()?;
    Ok(rows)
}

/// Looks up an account id by address inside a transaction, or fails with `UnknownAccount`.
fn account_id(tx: &Connection, email: &EmailAddress) -> Result<i64> {
    use rusqlite::OptionalExtension;
    tx.query_row("SELECT id FROM accounts WHERE email = ?1", [email.as_str()], |r| r.get(0))
        .optional()?
        .ok_or_else(|| StoreError::UnknownAccount(email.to_string()))
}

/// Is `username` free for a credential of account `owner`? Another account's address or another
/// credential's username is taken; the owner's own address is not.
fn username_is_free(tx: &Connection, username: &EmailAddress, owner: i64, except_cred: Option<i64>) -> Result<bool> {
    let other_account: i64 = tx.query_row(
        "SELECT count(*) FROM accounts WHERE email = ?1 AND id != ?2",
        rusqlite::params![username.as_str(), owner],
        |r| r.get(0),
    )?;
    let other_cred: i64 = tx.query_row(
        "SELECT count(*) FROM smtp_credentials WHERE username = ?1 AND id != ?2",
        rusqlite::params![username.as_str(), except_cred.unwrap_or(-1)],
        |r| r.get(0),
    )?;
    Ok(other_account == 0 && other_cred == 0)
}
