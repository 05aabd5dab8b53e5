//! Copies of the SQLite file: an online backup taken while the daemon and the CLI write, and
//! the checks a copy must pass before it may become the store.
//!
//! The store runs in WAL mode. The backup pins one read snapshot of the source (`BEGIN` and a
//! read) for its whole run, then copies it with SQLite's online backup API in small steps. In
//! WAL mode a reader never blocks a writer, so the daemon and the CLI keep writing meanwhile;
//! and because the snapshot stays open, their commits cannot make the backup restart (an
//! unpinned backup restarts at every foreign commit and, under a steady stream of writes,
//! might never finish). The cost is that no checkpoint can pass the snapshot until the
//! backup ends: the WAL grows by what is written during the copy.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use rusqlite::backup::Backup;
use rusqlite::{Connection, OpenFlags};

use super::{BUSY_TIMEOUT, schema};

/// Pages copied per backup step (4 KiB each): small, so a step never holds SQLite's locks on
/// the destination long, with no pause between steps (the source is not blocked by them).
const PAGES_PER_STEP: i32 = 256;

/// The 16 bytes every SQLite 3 database file starts with.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("{0} is not a SQLite database")]
    NotADatabase(String),
    #[error("{path} fails SQLite's integrity check: {detail}")]
    Corrupt { path: String, detail: String },
    #[error(
        "{path} has schema version {found}, newer than this relaykey's ({supported}); restore it with a newer relaykey"
    )]
    NewerSchema { path: String, found: i64, supported: i64 },
    #[error("{0} is a SQLite database but not a relaykey store")]
    NotRelaykey(String),
    #[error("cannot read {path}: {source}")]
    Io { path: String, source: std::io::Error },
    #[error("{path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
}

impl CopyError {
    /// Errors that may pass on a retry (a locked or busy database, a full disk), as opposed
    /// to a file that is and stays unusable.
    pub fn is_temporary(&self) -> bool {
        matches!(self, Self::Io { .. } | Self::Sqlite { .. })
    }
}

/// What a checked copy holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CopyFacts {
    /// `PRAGMA user_version`: how many migrations the copy has.
    pub schema_version: i64,
}

/// Copies the store at `source` into the existing, empty file `dest` while others write, and
/// checks the copy. `dest` ends as a self-contained rollback-journal database (no `-wal`
/// needed beside it); opening it as the store turns WAL mode back on. Errors about `dest`
/// call it `name` (the file it will become, not its temporary name).
pub fn backup_into(source: &Path, dest: &Path, name: &Path) -> Result<CopyFacts, CopyError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let src = Connection::open_with_flags(source, flags).map_err(sqlite(source))?;
    src.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(source))?;
    // Pin the snapshot: the first read of a transaction fixes what it sees.
    src.execute_batch("BEGIN DEFERRED").map_err(sqlite(source))?;
    src.query_row("SELECT count(*) FROM sqlite_schema", [], |r| r.get::<_, i64>(0)).map_err(sqlite(source))?;

    let mut dst = Connection::open_with_flags(dest, flags).map_err(sqlite(name))?;
    {
        let backup = Backup::new(&src, &mut dst).map_err(sqlite(name))?;
        backup.run_to_completion(PAGES_PER_STEP, Duration::ZERO, None).map_err(sqlite(source))?;
    }
    // The read transaction only pinned the snapshot; it has nothing to commit.
    src.execute_batch("COMMIT").map_err(sqlite(source))?;
    drop(src);
    // The copied header says WAL, like the source; a backup is one file, so switch it back.
    dst.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0)).map_err(sqlite(name))?;
    let facts = check_open(&dst, name)?;
    dst.close().map_err(|(_, e)| sqlite(name)(e))?;
    Ok(facts)
}

/// The error for a failed SQLite call on the file at `path`.
fn sqlite(path: &Path) -> impl Fn(rusqlite::Error) -> CopyError + '_ {
    move |source| CopyError::Sqlite { path: path.display().to_string(), source }
}

/// Checks that the file at `path` may become the store: a SQLite database, passing
/// `PRAGMA integrity_check`, with a relaykey schema not newer than this build's (an older
/// one is migrated when the store next opens). Writes to it: it leaves the copy in
/// rollback-journal mode, so run it on a private copy, never on a live store. Errors call the
/// file `name` (where the copy came from).
pub fn check_copy(path: &Path, name: &Path) -> Result<CopyFacts, CopyError> {
    let shown = name.display().to_string();
    let mut header = [0u8; 16];
    std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header)).map_err(|source| match source.kind() {
        std::io::ErrorKind::UnexpectedEof => CopyError::NotADatabase(shown.clone()),
        _ => CopyError::Io { path: shown.clone(), source },
    })?;
    if &header != SQLITE_HEADER {
        return Err(CopyError::NotADatabase(shown));
    }
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags).map_err(sqlite(name))?;
    conn.busy_timeout(BUSY_TIMEOUT).map_err(sqlite(name))?;
    // A damaged header or page 1 fails here already; report it as what it is.
    conn.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get::<_, String>(0))
        .map_err(|e| corrupt_or(e, name))?;
    let facts = check_open(&conn, name)?;
    conn.close().map_err(|(_, e)| sqlite(name)(e))?;
    Ok(facts)
}

/// The checks of [`check_copy`] on an open connection; errors call the file `name`.
fn check_open(conn: &Connection, name: &Path) -> Result<CopyFacts, CopyError> {
    let shown = name.display().to_string();
    let problems = (|| {
        let mut stmt = conn.prepare("PRAGMA integrity_check")?;
        stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()
    })()
    .map_err(|e| corrupt_or(e, name))?;
    if problems != ["ok"] {
        let detail = problems.into_iter().take(3).collect::<Vec<_>>().join("; ");
        return Err(CopyError::Corrupt { path: shown, detail });
    }
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|source| CopyError::Sqlite { path: shown.clone(), source })?;
    let supported = schema::MIGRATIONS.len() as i64;
    if found > supported {
        return Err(CopyError::NewerSchema { path: shown, found, supported });
    }
    let has_accounts: i64 = conn
        .query_row("SELECT count(*) FROM sqlite_schema WHERE type = 'table' AND name = 'accounts'", [], |r| r.get(0))
        .map_err(|source| CopyError::Sqlite { path: shown.clone(), source })?;
    if found == 0 || has_accounts == 0 {
        return Err(CopyError::NotRelaykey(shown));
    }
    Ok(CopyFacts { schema_version: found })
}

/// SQLite says "malformed" or "not a database" for damage it finds while reading; that is a
/// property of the file, not a passing failure.
fn corrupt_or(e: rusqlite::Error, path: &Path) -> CopyError {
    let shown = path.display().to_string();
    match e.sqlite_error_code() {
        Some(rusqlite::ErrorCode::DatabaseCorrupt) => CopyError::Corrupt { path: shown, detail: e.to_string() },
        Some(rusqlite::ErrorCode::NotADatabase) => CopyError::NotADatabase(shown),
        _ => CopyError::Sqlite { path: shown, source: e },
    }
}

/// Moves what the WAL of the store at `path` holds into the database file, so that the file
/// alone is the whole store. Best effort: a store that cannot be opened (the damaged one a
/// restore replaces) keeps its `-wal`, which the caller moves along with it.
pub fn checkpoint(path: &Path) -> Result<(), rusqlite::Error> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    conn.close().map_err(|(_, e)| e)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Store;

    fn store_with_account(dir: &Path) -> std::path::PathBuf {
        let db = dir.join("relaykey.db");
        let mut store = Store::open(&db).unwrap();
        store.add_account(&crate::address::EmailAddress::parse("ann@example.com").unwrap()).unwrap();
        db
    }

    #[test]
    fn a_backup_is_one_checked_file_with_the_data() {
        let dir = tempfile::tempdir().unwrap();
        let db = store_with_account(dir.path());
        let copy = dir.path().join("copy.db");
        std::fs::File::create(&copy).unwrap();
        let facts = backup_into(&db, &copy, &copy).unwrap();
        assert_eq!(facts.schema_version, schema::MIGRATIONS.len() as i64);
        assert!(!dir.path().join("copy.db-wal").exists());
        let store = Store::open(&copy).unwrap();
        assert_eq!(store.accounts().unwrap().len(), 1);
    }

    /// A store of many backup steps, copied while another connection commits one row after
    /// another: the copy is whole, and it is one snapshot (its row count is one the writer
    /// committed, and ids have no gap), however the writes fall between the steps.
    #[test]
    fn a_backup_of_many_steps_is_one_snapshot_while_a_writer_commits() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        drop(Store::open(&db).unwrap());
        let conn = Connection::open(&db).unwrap();
        let pad = "x".repeat(180);
        conn.execute_batch("BEGIN").unwrap();
        for i in 0..10_000 {
            conn.execute("INSERT INTO accounts (email, created_at) VALUES (?1, 0)", [format!("{i}-{pad}@a.example")])
                .unwrap();
        }
        conn.execute_batch("COMMIT").unwrap();
        let pages: i64 = conn.query_row("PRAGMA page_count", [], |r| r.get(0)).unwrap();
        assert!(pages > 4 * PAGES_PER_STEP as i64, "only {pages} pages: one step would copy it all");

        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let writer = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    conn.execute(
                        "INSERT INTO accounts (email, created_at) VALUES (?1, 0)",
                        [format!("w{n}@a.example")],
                    )
                    .unwrap();
                    n += 1;
                }
                n
            })
        };
        for round in 0..3 {
            let copy = dir.path().join(format!("copy{round}.db"));
            std::fs::File::create(&copy).unwrap();
            backup_into(&db, &copy, &copy).unwrap();
            let c = Connection::open(&copy).unwrap();
            let (count, max): (i64, i64) =
                c.query_row("SELECT count(*), max(id) FROM accounts", [], |r| Ok((r.get(0)?, r.get(1)?))).unwrap();
            assert!(count >= 10_000 && count == max, "not one snapshot: {count} rows, last id {max}");
        }
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert!(writer.join().unwrap() > 0, "the writer never committed");
    }

    #[test]
    fn check_refuses_what_cannot_become_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "SQLite format 2, honestly").unwrap();
        assert!(matches!(check_copy(&text, &text), Err(CopyError::NotADatabase(_))));
        let empty = dir.path().join("empty");
        std::fs::write(&empty, "").unwrap();
        assert!(matches!(check_copy(&empty, &empty), Err(CopyError::NotADatabase(_))));

        let other = dir.path().join("other.db");
        Connection::open(&other).unwrap().execute_batch("CREATE TABLE t (x)").unwrap();
        assert!(matches!(check_copy(&other, &other), Err(CopyError::NotRelaykey(_))));

        let newer = store_with_account(dir.path());
        let conn = Connection::open(&newer).unwrap();
        conn.pragma_update(None, "user_version", schema::MIGRATIONS.len() as i64 + 1).unwrap();
        drop(conn);
        assert!(matches!(check_copy(&newer, &newer), Err(CopyError::NewerSchema { .. })));
    }
}
