//! Binding the Unix sockets Postfix connects to: replace a stale file left by a crash, refuse
//! to steal a socket another live process serves, and set the mode and group Postfix needs.

use std::ffi::CString;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

fn err(path: &Path, what: impl std::fmt::Display) -> io::Error {
    io::Error::other(format!("socket {}: {what}", path.display()))
}

/// Binds `path`, then applies `mode` and, when given, `group`.
pub fn bind_unix(path: &Path, mode: u32, group: Option<&str>) -> io::Result<UnixListener> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => match std::os::unix::net::UnixStream::connect(path) {
            Ok(_) => return Err(err(path, "in use by another running process (is relaykey already running?)")),
            // Nobody listens: a crashed run left it behind.
            Err(_) => std::fs::remove_file(path).map_err(|e| err(path, format!("cannot remove stale socket: {e}")))?,
        },
        Ok(_) => return Err(err(path, "exists and is not a socket; refusing to replace it")),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(path, e)),
    }
    let listener = UnixListener::bind(path).map_err(|e| err(path, format!("cannot bind: {e}")))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| err(path, format!("cannot set mode {mode:o}: {e}")))?;
    if let Some(group) = group {
        let gid = group_id(group).ok_or_else(|| err(path, format!("unknown group {group:?}")))?;
        chown(path, None, Some(gid)).map_err(|e| err(path, format!("cannot give it to group {group}: {e}")))?;
    }
    Ok(listener)
}

/// The numeric id of a group name (or a number given as text).
pub fn group_id(name: &str) -> Option<u32> {
    if let Ok(n) = name.parse() {
        return Some(n);
    }
    let c = CString::new(name).ok()?;
    // SAFETY: getgrnam reads a NUL-terminated string and returns a pointer into static storage
    // (or null), which is read at once, before any other getgr* call on this thread.
    let grp = unsafe { libc::getgrnam(c.as_ptr()) };
    if grp.is_null() {
        return None;
    }
    // SAFETY: non-null result of getgrnam points to a valid `group`.
    Some(unsafe { (*grp).gr_gid })
}

pub fn chown(path: &Path, uid: Option<u32>, gid: Option<u32>) -> io::Result<()> {
    std::os::unix::fs::chown(path, uid, gid)
}

/// Whether `path` names a socket file (used by tests and `postfix check`).
pub fn is_socket(path: &Path) -> bool {
    std::fs::symlink_metadata(path).map(|m| m.file_type().is_socket()).unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn replaces_a_stale_socket_and_refuses_a_live_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        let live = bind_unix(&path, 0o660, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o660);
        let e = bind_unix(&path, 0o660, None).unwrap_err();
        assert!(e.to_string().contains("in use"), "{e}");
        drop(live); // the file stays, as after a crash
        assert!(is_socket(&path));
        bind_unix(&path, 0o600, None).unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o7777, 0o600);
    }

    #[tokio::test]
    async fn refuses_to_replace_a_regular_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("auth");
        std::fs::write(&path, b"x").unwrap();
        assert!(bind_unix(&path, 0o660, None).unwrap_err().to_string().contains("not a socket"));
    }

    #[test]
    fn resolves_group_names_and_numbers() {
        assert_eq!(group_id("root"), Some(0));
        assert_eq!(group_id("42"), Some(42));
        assert_eq!(group_id("no-such-group-relaykey"), None);
    }
}
