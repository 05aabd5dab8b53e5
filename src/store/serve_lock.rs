//! The lock that says "a daemon serves this store": an advisory `flock` on a file beside the
//! database (`relaykey.db.lock`), held shared by every running daemon for its lifetime and
//! taken exclusive by `relaykey restore`.
//!
//! A file's mere existence would say nothing after a crash; a `flock` is released by the
//! kernel when its holder dies, however it dies. It lives on its own file, not the database,
//! because a restore replaces the database file (a lock on the old inode would no longer
//! guard the path) and SQLite's own locks on the database are POSIX record locks, which a
//! process drops when it closes any descriptor of the file.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// A held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct ServeLock {
    _file: File,
}

/// The lock file of the store at `database`.
pub fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

impl ServeLock {
    /// For the daemon: a shared lock (several daemons may serve one store), waiting while a
    /// restore holds the exclusive one, so that the daemon opens the restored file.
    pub fn hold(database: &Path) -> io::Result<Self> {
        let file = open(database)?;
        flock(&file, libc::LOCK_SH)?;
        Ok(Self { _file: file })
    }

    /// For `relaykey restore`: the exclusive lock, or `None` at once when a daemon holds the
    /// shared one.
    pub fn try_exclusive(database: &Path) -> io::Result<Option<Self>> {
        let file = open(database)?;
        match flock(&file, libc::LOCK_EX | libc::LOCK_NB) {
            Ok(()) => Ok(Some(Self { _file: file })),
            Err(e) if e.raw_os_error() == Some(libc::EWOULDBLOCK) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// Opens (creating) the lock file. Read-only and world-readable (0644 whatever the umask): a
/// `flock` needs no write access, and a daemon that runs as its own user must be able to open
/// a lock file that a root CLI created. It holds no data.
fn open(database: &Path) -> io::Result<File> {
    if let Some(dir) = database.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let path = lock_path(database);
    match File::open(&path) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        other => return other,
    }
    // `create` needs write access in the std API; the file is opened read-only again below.
    match OpenOptions::new().write(true).create_new(true).mode(0o644).open(&path) {
        Ok(created) => created.set_permissions(std::fs::Permissions::from_mode(0o644))?,
        // Another process created it meanwhile: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    File::open(&path)
}

fn flock(file: &File, operation: libc::c_int) -> io::Result<()> {
    loop {
        // SAFETY: flock takes a descriptor this File owns and an integer; it touches no memory.
        if unsafe { libc::flock(file.as_raw_fd(), operation) } == 0 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_lock_refuses_restore_until_released() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let daemon = ServeLock::hold(&db).unwrap();
        let second_daemon = ServeLock::hold(&db).unwrap();
        assert!(ServeLock::try_exclusive(&db).unwrap().is_none());
        drop(daemon);
        assert!(ServeLock::try_exclusive(&db).unwrap().is_none());
        drop(second_daemon);
        let mode = std::fs::metadata(lock_path(&db)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644, "a daemon running as its own user must open a lock root made");
        let restore = ServeLock::try_exclusive(&db).unwrap();
        assert!(restore.is_some());
        assert!(ServeLock::try_exclusive(&db).unwrap().is_none(), "two restores at once");
    }
}
