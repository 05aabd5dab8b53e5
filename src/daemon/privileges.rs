//! Leaving root for good once everything that needs it is done.
//!
//! Started as root (the packaged unit does this when no socket units are used), the daemon
//! binds its sockets and opens the store first, then gives the sockets and the database files
//! to the configured user and switches to that user and group: supplementary groups, then gid,
//! then uid. glibc applies each of these calls to every thread of the process. If any step
//! fails, or root could be regained afterwards, the daemon refuses to run.

use std::ffi::CString;
use std::io;
use std::path::{Path, PathBuf};

use tracing::{info, warn};

use super::listeners::BoundUnix;
use super::unix_socket::{chown, group_id};
use crate::config::DaemonConfig;

#[derive(Debug, thiserror::Error)]
pub enum PrivilegeError {
    #[error("daemon.user: no such user {0:?}")]
    UnknownUser(String),
    #[error("daemon.group: no such group {0:?}")]
    UnknownGroup(String),
    #[error("socket {path}: group {group:?} does not exist")]
    UnknownSocketGroup { path: PathBuf, group: String },
    #[error("daemon.user is {user:?}, but relaykey runs as uid {uid} and only root can switch users")]
    NotRoot { user: String, uid: u32 },
    #[error("cannot give {path} to {user}: {source}")]
    Chown { path: PathBuf, user: String, source: io::Error },
    #[error("cannot switch to user {user} and group {group}: {call} failed: {source}")]
    Switch { user: String, group: String, call: &'static str, source: io::Error },
    #[error("switched to user {0}, but root could be regained; refusing to run")]
    RootRegainable(String),
}

/// Who the daemon becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user: String,
    pub uid: u32,
    pub group: String,
    pub gid: u32,
}

/// Looks up `user` and, when given, `group` (else the user's primary group).
pub fn resolve(user: &str, group: Option<&str>) -> Result<Identity, PrivilegeError> {
    let (uid, primary) = user_ids(user).ok_or_else(|| PrivilegeError::UnknownUser(user.to_string()))?;
    let (group, gid) = match group {
        Some(g) => (g.to_string(), group_id(g).ok_or_else(|| PrivilegeError::UnknownGroup(g.to_string()))?),
        None => (group_name(primary).unwrap_or_else(|| primary.to_string()), primary),
    };
    Ok(Identity { user: user.to_string(), uid, group, gid })
}

/// Drops root as `config` says, after giving `sockets` and the SQLite files at `database` (none
/// for a PostgreSQL store) to the new user. Returns who the daemon now is, or `None` when no user is configured.
pub fn drop_root(
    config: &DaemonConfig,
    database: Option<&Path>,
    sockets: &[BoundUnix],
) -> Result<Option<Identity>, PrivilegeError> {
    // SAFETY: geteuid cannot fail and touches no memory.
    let euid = unsafe { libc::geteuid() };
    let Some(user) = config.user.as_deref() else {
        if euid == 0 {
            warn!("running as root: set daemon.user so that relaykey drops root after binding");
        }
        return Ok(None);
    };
    let id = resolve(user, config.group.as_deref())?;
    if euid != 0 {
        if euid == id.uid {
            return Ok(Some(id));
        }
        return Err(PrivilegeError::NotRoot { user: id.user, uid: euid });
    }
    for socket in sockets {
        let gid = match &socket.group {
            Some(g) => group_id(g)
                .ok_or_else(|| PrivilegeError::UnknownSocketGroup { path: socket.path.clone(), group: g.clone() })?,
            None => id.gid,
        };
        give(&socket.path, &id, gid)?;
    }
    for path in database.map(database_files).unwrap_or_default() {
        if path.exists() {
            give(&path, &id, id.gid)?;
        }
    }
    switch(&id)?;
    info!(user = %id.user, uid = id.uid, group = %id.group, gid = id.gid, "dropped root");
    Ok(Some(id))
}

/// SQLite's database file and the WAL files beside it (created by the connection opened as root),
/// then the same of the shared-state file (`store::shared_state`).
fn database_files(database: &Path) -> Vec<PathBuf> {
    let state = crate::store::shared_state::state_file(database);
    let mut files = Vec::new();
    for file in [database, state.as_path()] {
        files.push(file.to_path_buf());
        for suffix in ["-wal", "-shm"] {
            let mut name = file.as_os_str().to_owned();
            name.push(suffix);
            files.push(PathBuf::from(name));
        }
    }
    files
}

fn give(path: &Path, id: &Identity, gid: u32) -> Result<(), PrivilegeError> {
    chown(path, Some(id.uid), Some(gid)).map_err(|source| PrivilegeError::Chown {
        path: path.to_path_buf(),
        user: id.user.clone(),
        source,
    })
}

fn switch(id: &Identity) -> Result<(), PrivilegeError> {
    let fail = |call: &'static str| PrivilegeError::Switch {
        user: id.user.clone(),
        group: id.group.clone(),
        call,
        source: io::Error::last_os_error(),
    };
    let name = CString::new(id.user.as_str()).map_err(|_| PrivilegeError::UnknownUser(id.user.clone()))?;
    // SAFETY: plain system calls on integers and a NUL-terminated name. Order matters: groups
    // and gid can only be changed while still root.
    unsafe {
        if libc::initgroups(name.as_ptr(), id.gid) != 0 {
            return Err(fail("initgroups"));
        }
        if libc::setresgid(id.gid, id.gid, id.gid) != 0 {
            return Err(fail("setresgid"));
        }
        if libc::setresuid(id.uid, id.uid, id.uid) != 0 {
            return Err(fail("setresuid"));
        }
        // Only a uid-0 target (a misconfiguration) would pass this; then refuse to go on.
        if libc::setuid(0) == 0 || libc::geteuid() == 0 {
            return Err(PrivilegeError::RootRegainable(id.user.clone()));
        }
    }
    Ok(())
}

/// The name of group `gid`, for messages.
fn group_name(gid: u32) -> Option<String> {
    let mut grp: libc::group = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::group = std::ptr::null_mut();
    // SAFETY: every pointer is valid for its stated size; getgrgid_r writes the strings into buf.
    let rc = unsafe { libc::getgrgid_r(gid, &mut grp, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc != 0 || result.is_null() {
        return None;
    }
    // SAFETY: gr_name is a NUL-terminated string inside buf, which is still alive.
    Some(unsafe { std::ffi::CStr::from_ptr(grp.gr_name) }.to_string_lossy().into_owned())
}

/// `(uid, primary gid)` of a user name, or of a number given as text.
fn user_ids(name: &str) -> Option<(u32, u32)> {
    let c = CString::new(name).ok()?;
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 16 * 1024];
    let mut result: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: every pointer is valid for its stated size; getpwnam_r writes the strings into buf.
    let rc = unsafe { libc::getpwnam_r(c.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    if rc == 0 && !result.is_null() {
        return Some((pwd.pw_uid, pwd.pw_gid));
    }
    let uid: u32 = name.parse().ok()?;
    // SAFETY: as above.
    let rc = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
    (rc == 0 && !result.is_null()).then_some((pwd.pw_uid, pwd.pw_gid))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_users_and_groups() {
        let root = resolve("root", None).unwrap();
        assert_eq!((root.uid, root.gid, root.group.as_str()), (0, 0, "root"));
        assert_eq!(resolve("0", Some("root")).unwrap().gid, 0);
        assert!(matches!(resolve("no-such-user-relaykey", None), Err(PrivilegeError::UnknownUser(_))));
        assert!(matches!(resolve("root", Some("no-such-group-relaykey")), Err(PrivilegeError::UnknownGroup(_))));
    }

    #[test]
    fn without_a_user_nothing_changes() {
        let config = DaemonConfig::default();
        assert_eq!(drop_root(&config, Some(Path::new("/nonexistent/db")), &[]).unwrap(), None);
    }

    #[test]
    fn lists_the_wal_files() {
        let files = database_files(Path::new("/var/lib/relaykey/relaykey.db"));
        assert_eq!(files[1], Path::new("/var/lib/relaykey/relaykey.db-wal"));
        assert_eq!(files[2], Path::new("/var/lib/relaykey/relaykey.db-shm"));
        assert_eq!(files[3], Path::new("/var/lib/relaykey/relaykey.db-state"));
        assert_eq!(files[5], Path::new("/var/lib/relaykey/relaykey.db-state-shm"));
    }
}
