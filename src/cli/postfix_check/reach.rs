//! Whether Postfix's `mail_owner` can connect to a socket: every directory on the way must let
//! it search, and the socket must let it write (connect(2) needs both). Also whether relaykey
//! listens there at all.

use std::ffi::CString;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

/// A user's ids, as the kernel checks permissions with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Principal {
    /// Looks up `user` and all its groups.
    pub fn of_user(user: &str) -> Option<Self> {
        let name = CString::new(user).ok()?;
        let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
        let mut buf = vec![0 as libc::c_char; 16 * 1024];
        let mut result: *mut libc::passwd = std::ptr::null_mut();
        // SAFETY: all pointers are valid for their sizes; strings land in buf.
        let rc = unsafe { libc::getpwnam_r(name.as_ptr(), &mut pwd, buf.as_mut_ptr(), buf.len(), &mut result) };
        if rc != 0 || result.is_null() {
            return None;
        }
        let mut gids = vec![0 as libc::gid_t; 256];
        let mut count = gids.len() as libc::c_int;
        // SAFETY: gids holds `count` entries; getgrouplist writes at most that many.
        let rc = unsafe { libc::getgrouplist(name.as_ptr(), pwd.pw_gid, gids.as_mut_ptr(), &mut count) };
        gids.truncate(if rc < 0 { 0 } else { count.max(0) as usize });
        if !gids.contains(&pwd.pw_gid) {
            gids.push(pwd.pw_gid);
        }
        Some(Self { uid: pwd.pw_uid, gids })
    }

    /// The permission bits (of `rwx`, as 0o4/0o2/0o1) this principal gets on a file.
    fn bits(&self, meta: &std::fs::Metadata) -> u32 {
        if self.uid == 0 {
            return 0o7;
        }
        let mode = meta.mode();
        if meta.uid() == self.uid {
            (mode >> 6) & 0o7
        } else if self.gids.contains(&meta.gid()) {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        }
    }
}

/// Why `who` (named `user`) cannot reach the socket at `path`, or `None` when it can.
pub fn unreachable_reason(path: &Path, user: &str, who: &Principal) -> Option<String> {
    let mut dir = std::path::PathBuf::new();
    let parent = path.parent().unwrap_or(Path::new("/"));
    for component in parent.components() {
        dir.push(component);
        let meta = match std::fs::metadata(&dir) {
            Ok(m) => m,
            Err(e) => return Some(format!("{}: {e}", dir.display())),
        };
        if who.bits(&meta) & 0o1 == 0 {
            return Some(format!(
                "user {user} cannot enter the directory {} (mode {:04o}, owner {}:{})",
                dir.display(),
                meta.mode() & 0o7777,
                meta.uid(),
                meta.gid()
            ));
        }
    }
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Some("the socket does not exist (is relaykey running?)".into());
        }
        Err(e) => return Some(e.to_string()),
    };
    if !meta.file_type().is_socket() {
        return Some("it is not a socket".into());
    }
    if who.bits(&meta) & 0o2 == 0 {
        return Some(format!(
            "user {user} may not write to the socket (mode {:04o}, owner {}:{}); give it to {user}'s group with \
             mode 0660",
            meta.mode() & 0o7777,
            meta.uid(),
            meta.gid()
        ));
    }
    if let Err(e) = std::os::unix::net::UnixStream::connect(path) {
        return Some(format!("nobody accepts connections on it ({e}); is relaykey running?"));
    }
    None
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    #[test]
    fn checks_directories_and_socket_modes() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let path = dir.path().join("sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let meta = std::fs::metadata(&path).unwrap();
        let owner = Principal { uid: meta.uid(), gids: vec![] };
        let stranger = Principal { uid: meta.uid().wrapping_add(4242), gids: vec![meta.gid().wrapping_add(4242)] };
        let member = Principal { uid: meta.uid().wrapping_add(4242), gids: vec![meta.gid()] };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
        assert_eq!(unreachable_reason(&path, "owner", &owner), None);
        assert_eq!(unreachable_reason(&path, "member", &member), None);
        let why = unreachable_reason(&path, "stranger", &stranger).unwrap();
        assert!(why.contains("may not write"), "{why}");
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let why = unreachable_reason(&path, "member", &member).unwrap();
        assert!(why.contains("cannot enter"), "{why}");
        let why = unreachable_reason(&dir.path().join("none"), "owner", &owner).unwrap();
        assert!(why.contains("does not exist"), "{why}");
    }
}
