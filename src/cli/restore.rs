//! `relaykey restore FILE`: makes a backup the store, for the daemon to serve at its next start.
//!
//! In order, each step refusing with one line before anything is changed:
//! 1. no daemon serves the store: `relaykey restore` takes the exclusive side of the lock every
//!    running daemon holds shared (`store::serve_lock`), and keeps it to the end, so a daemon
//!    started meanwhile waits and then opens the restored file;
//! 2. FILE is copied beside the store under a temporary name (mode 0600), and the copy must be
//!    a SQLite database passing `PRAGMA integrity_check`, with a relaykey schema no newer than
//!    this build's (an older one is migrated when the store next opens);
//! 3. the copy gets the owner of the file it replaces (the packaged daemon runs as `relaykey`),
//!    or of the store's directory when there is none.
//!
//! Then the store is checkpointed (its WAL folded into the file) and kept beside itself as
//! `relaykey.db.replaced-<UTC time>`, with whatever `-wal`/`-shm` remain moved along under the
//! matching names (SQLite finds a database's WAL by name, so the pair stays one database, and
//! a stale WAL must never sit beside the restored file), and the copy is renamed into place.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use super::args::store::RestoreArgs;
use super::backup::{io_error, same_file};
use super::output::print_json;
use super::staged_file::{StagedFile, parent_dir, sync_dir};
use super::{CliError, CliResult};
use crate::config::Config;
use crate::mail_date::compact_utc;
use crate::store::backup::{check_copy, checkpoint};
use crate::store::serve_lock::{ServeLock, lock_path};

pub fn restore(args: &RestoreArgs, config: &Config, json: bool) -> CliResult {
    let Some(database) = config.sqlite_path() else {
        return Err(CliError::refused("the store is PostgreSQL: restore it with pg_restore (see the README)"));
    };
    let file = &args.file;
    if !file.is_file() {
        return Err(CliError::refused(format!("{}: no such file", file.display())));
    }
    if same_file(database, file) {
        return Err(CliError::refused(format!("{} is the store itself", file.display())));
    }
    let _lock =
        ServeLock::try_exclusive(database).map_err(|e| io_error(&lock_path(database), e))?.ok_or_else(|| {
            CliError::refused(format!(
                "a relaykey daemon is using {} (it holds {}); stop it first",
                database.display(),
                lock_path(database).display()
            ))
        })?;

    let staged = StagedFile::create(database).map_err(|e| io_error(database, e))?;
    copy_contents(file, staged.path())?;
    let facts = check_copy(staged.path(), file)?;
    give_owner(staged.path(), database)?;
    staged.sync().map_err(|e| io_error(database, e))?;

    let replaced = if database.exists() { Some(set_aside(database)?) } else { None };
    staged.install(database, true).map_err(|e| io_error(database, e))?;

    let replaced_text = replaced.as_ref().map(|p| p.display().to_string());
    if json {
        print_json(&serde_json::json!({
            "restored": database.display().to_string(),
            "from": file.display().to_string(),
            "schema_version": facts.schema_version,
            "replaced": replaced_text,
        }));
    } else {
        println!("restored {} from {} (schema version {})", database.display(), file.display(), facts.schema_version);
        if let Some(r) = replaced_text {
            println!("the replaced database is kept at {r}");
        }
        println!("start the daemon to serve it");
    }
    Ok(ExitCode::SUCCESS)
}

/// Gives `copy` the owner and group of the store it replaces, or of the store's directory.
fn give_owner(copy: &Path, database: &Path) -> Result<(), CliError> {
    let reference = if database.exists() { database } else { parent_dir(database) };
    let meta = std::fs::metadata(reference).map_err(|e| io_error(reference, e))?;
    std::os::unix::fs::chown(copy, Some(meta.uid()), Some(meta.gid())).map_err(|e| {
        CliError::refused(format!(
            "cannot give the restored database to uid {} gid {} (the owner of {}): {e}; run restore as root or as that user",
            meta.uid(),
            meta.gid(),
            reference.display()
        ))
    })
}

/// Keeps the store at `database` as `<database>.replaced-<time>` (with its `-wal`/`-shm`, if
/// any remain) and returns that name. The store's own name is left on the old file (a hard
/// link) until the restored one is renamed over it, so it never goes missing.
fn set_aside(database: &Path) -> Result<PathBuf, CliError> {
    // Best effort: the store being replaced may be the damaged one. Whatever WAL it cannot
    // fold in is moved along below.
    let _ = checkpoint(database);
    let stamp = compact_utc(crate::store::now().max(0) as u64);
    for n in 1..100 {
        let kept =
            sibling(database, &if n == 1 { format!(".replaced-{stamp}") } else { format!(".replaced-{stamp}-{n}") });
        match std::fs::hard_link(database, &kept) {
            Ok(()) => {
                for suffix in ["-wal", "-shm"] {
                    let (from, to) = (sibling(database, suffix), sibling(&kept, suffix));
                    if from.exists() {
                        std::fs::rename(&from, &to).map_err(|e| io_error(&from, e))?;
                    }
                }
                sync_dir(parent_dir(database)).map_err(|e| io_error(database, e))?;
                return Ok(kept);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(io_error(database, e)),
        }
    }
    Err(CliError::refused(format!("{}: no free name to keep the replaced database", database.display())))
}

/// Copies the bytes of `from` into the existing file `to`, keeping `to`'s mode (0600), which
/// `std::fs::copy` would replace with the backup's.
fn copy_contents(from: &Path, to: &Path) -> Result<(), CliError> {
    let mut source = std::fs::File::open(from).map_err(|e| io_error(from, e))?;
    let mut dest = std::fs::OpenOptions::new().write(true).open(to).map_err(|e| io_error(to, e))?;
    std::io::copy(&mut source, &mut dest).map_err(|e| io_error(from, e))?;
    Ok(())
}

/// `path` with `suffix` appended to its file name.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}
