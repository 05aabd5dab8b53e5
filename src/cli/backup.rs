//! `relaykey backup FILE [--force]`: a consistent copy of the SQLite store, taken while the
//! daemon and other CLI processes go on writing (`store::backup`).
//!
//! The copy is written to a temporary name beside FILE (mode 0600: it holds every secret's
//! hash), checked with `PRAGMA integrity_check`, synced, then renamed to FILE. An existing FILE
//! is refused unless `--force`: a backup command that silently replaces yesterday's good
//! backup with today's is how both get lost.

use std::path::Path;
use std::process::ExitCode;

use super::args::store::BackupArgs;
use super::output::print_json;
use super::staged_file::StagedFile;
use super::{CliError, CliResult, EXIT_TEMPFAIL};
use crate::config::Config;
use crate::store::backup::{CopyError, backup_into};

impl From<CopyError> for CliError {
    fn from(e: CopyError) -> Self {
        let exit = if e.is_temporary() { EXIT_TEMPFAIL } else { 1 };
        Self { message: e.to_string(), exit }
    }
}

pub fn backup(args: &BackupArgs, config: &Config, json: bool) -> CliResult {
    let Some(database) = config.sqlite_path() else {
        return Err(CliError::refused("the store is PostgreSQL: back it up with pg_dump (see the README)"));
    };
    let file = &args.file;
    if !database.is_file() {
        return Err(CliError::refused(format!("no database at {}", database.display())));
    }
    if file.is_dir() {
        return Err(CliError::refused(format!("{} is a directory; name the backup file", file.display())));
    }
    if same_file(database, file) {
        return Err(CliError::refused(format!("{} is the store itself", file.display())));
    }
    if file.exists() && !args.force {
        return Err(CliError::refused(format!("{} exists; use --force to replace it", file.display())));
    }
    let staged = StagedFile::create(file).map_err(|e| io_error(file, e))?;
    let facts = backup_into(database, staged.path(), file)?;
    staged.sync().map_err(|e| io_error(file, e))?;
    staged.install(file, args.force).map_err(|e| match e.kind() {
        std::io::ErrorKind::AlreadyExists => {
            CliError::refused(format!("{} appeared meanwhile; use --force to replace it", file.display()))
        }
        _ => io_error(file, e),
    })?;
    let bytes = std::fs::metadata(file).map(|m| m.len()).unwrap_or(0);
    if json {
        print_json(&serde_json::json!({
            "backup": file.display().to_string(),
            "database": database.display().to_string(),
            "schema_version": facts.schema_version,
            "bytes": bytes,
        }));
    } else {
        println!(
            "backup of {} written to {} ({bytes} bytes, schema version {})",
            database.display(),
            file.display(),
            facts.schema_version
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// True when `a` and `b` name one existing file (a hard link or another spelling of a path).
pub(crate) fn same_file(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

pub(crate) fn io_error(path: &Path, e: std::io::Error) -> CliError {
    CliError::refused(format!("{}: {e}", path.display()))
}
