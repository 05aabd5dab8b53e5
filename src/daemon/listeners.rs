//! Where front ends get their listening sockets: inherited from systemd (socket activation,
//! matched by name) when present, otherwise bound here.
//!
//! systemd passes sockets as fds 3.. with `LISTEN_FDS` and names them with `LISTEN_FDNAMES`
//! (`FileDescriptorName=` in the socket unit). They are taken once, before any thread starts
//! (the variables are then removed so no child inherits them), into a process-wide table that
//! `listen_unix` / `listen_tcp` consult first. A front end's name is `sasl`, `policy`, `senders`,
//! `api`, or `relay:ADDRESS`; systemd names cannot hold `:`, so a TCP socket is matched by the part
//! before the first `:` and then by its address.

use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use tokio::net::{TcpListener, UnixListener};
use tracing::{info, warn};

use super::unix_socket::bind_unix;

/// A listening socket systemd handed over, until a front end claims it.
struct Inherited {
    name: String,
    fd: Option<OwnedFd>,
}

/// A Unix socket this process bound itself (its file gets the daemon user as owner when
/// privileges are dropped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BoundUnix {
    pub path: PathBuf,
    pub group: Option<String>,
}

static INHERITED: Mutex<Vec<Inherited>> = Mutex::new(Vec::new());
static BOUND_UNIX: Mutex<Vec<BoundUnix>> = Mutex::new(Vec::new());

/// Takes the sockets systemd passed, if any, and returns their names.
///
/// # Safety
/// Removes `LISTEN_*` from the environment: call it while the process has a single thread.
pub unsafe fn inherit_from_systemd() -> io::Result<Vec<String>> {
    // SAFETY: the caller guarantees no other thread reads or writes the environment.
    let fds = unsafe { sd_notify::listen_fds_with_names_and_unset_env() }?;
    let fds: Vec<(OwnedFd, String)> = fds
        // SAFETY: systemd (or systemd-socket-activate) hands these fds to this process, which
        // owns them from here on; nothing else in the process refers to fds 3.. at startup.
        .map(|(raw, name)| (unsafe { OwnedFd::from_raw_fd(raw) }, name))
        .collect();
    let names = fds.iter().map(|(_, n)| n.clone()).collect();
    adopt(fds);
    Ok(names)
}

/// Puts sockets into the table (also used by tests, with sockets they made).
pub(crate) fn adopt(fds: Vec<(OwnedFd, String)>) {
    let mut table = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    table.extend(fds.into_iter().map(|(fd, name)| Inherited { name, fd: Some(fd) }));
}

/// Names of inherited sockets no front end claimed (a socket unit for a disabled front end).
pub fn unclaimed() -> Vec<String> {
    let table = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    table.iter().filter(|s| s.fd.is_some()).map(|s| s.name.clone()).collect()
}

/// The Unix sockets bound by `listen_unix` so far.
pub fn bound_unix() -> Vec<BoundUnix> {
    BOUND_UNIX.lock().unwrap_or_else(|p| p.into_inner()).clone()
}

/// The Unix listener for front end `name` (`sasl`, `policy`, `senders`): the socket systemd passed under
/// that name, else one bound at `path` with `mode` and `group`.
pub fn listen_unix(name: &str, path: &Path, mode: u32, group: Option<&str>) -> io::Result<UnixListener> {
    if let Some(fd) = claim(name, is_unix) {
        let listener = std::os::unix::net::UnixListener::from(fd);
        let at = listener.local_addr().ok().and_then(|a| a.as_pathname().map(Path::to_path_buf));
        match &at {
            Some(at) if at != path => info!(
                front_end = name, socket = %at.display(), configured = %path.display(),
                "using the socket systemd passed; the configured path is ignored"
            ),
            _ => info!(front_end = name, socket = %path.display(), "using the socket systemd passed"),
        }
        listener.set_nonblocking(true)?;
        return UnixListener::from_std(listener);
    }
    let listener = bind_unix(path, mode, group)?;
    BOUND_UNIX
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(BoundUnix { path: path.to_path_buf(), group: group.map(str::to_string) });
    Ok(listener)
}

/// The TCP listener for front end `name` (`relay:0.0.0.0:587`, `api`) at `address`: the socket
/// systemd passed under the name's first part with that address, else one bound here.
pub async fn listen_tcp(name: &str, address: SocketAddr) -> io::Result<TcpListener> {
    let fd_name = name.split(':').next().unwrap_or(name);
    if let Some(fd) = claim(fd_name, |fd| tcp_addr(fd).is_some_and(|a| same_endpoint(a, address))) {
        info!(front_end = name, address = %address, "using the socket systemd passed");
        let listener = std::net::TcpListener::from(fd);
        listener.set_nonblocking(true)?;
        return TcpListener::from_std(listener);
    }
    TcpListener::bind(address).await.map_err(|e| io::Error::other(format!("cannot listen on {address}: {e}")))
}

/// Takes the first inherited socket named `name` that `fits`. One with the right name that does
/// not fit (a datagram socket, another address) is left alone with a warning.
fn claim(name: &str, fits: impl Fn(BorrowedFd<'_>) -> bool) -> Option<OwnedFd> {
    let mut table = INHERITED.lock().unwrap_or_else(|p| p.into_inner());
    let mut named = false;
    for socket in table.iter_mut().filter(|s| s.name == name) {
        let Some(fd) = socket.fd.as_ref() else { continue };
        named = true;
        if fits(fd.as_fd()) && is_listening_stream(fd.as_fd()) {
            return socket.fd.take();
        }
    }
    if named {
        warn!(front_end = name, "systemd passed a socket with this name that does not fit; binding instead");
    }
    None
}

fn sockopt_int(fd: BorrowedFd<'_>, option: libc::c_int) -> Option<libc::c_int> {
    let mut value: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: value and len point to a c_int and its size, as getsockopt requires.
    let rc =
        unsafe { libc::getsockopt(fd.as_raw_fd(), libc::SOL_SOCKET, option, (&raw mut value).cast(), &raw mut len) };
    (rc == 0).then_some(value)
}

/// A stream socket in the listening state (not a datagram socket or an accepted connection).
fn is_listening_stream(fd: BorrowedFd<'_>) -> bool {
    sockopt_int(fd, libc::SO_TYPE) == Some(libc::SOCK_STREAM) && sockopt_int(fd, libc::SO_ACCEPTCONN) == Some(1)
}

fn family(fd: BorrowedFd<'_>) -> Option<libc::c_int> {
    sockopt_int(fd, libc::SO_DOMAIN)
}

fn is_unix(fd: BorrowedFd<'_>) -> bool {
    family(fd) == Some(libc::AF_UNIX)
}

fn tcp_addr(fd: BorrowedFd<'_>) -> Option<SocketAddr> {
    let f = family(fd)?;
    if f != libc::AF_INET && f != libc::AF_INET6 {
        return None;
    }
    // A duplicate, so that reading the address through std does not close the original.
    let fd = fd.try_clone_to_owned().ok()?;
    std::net::TcpListener::from(fd).local_addr().ok()
}

/// Whether an inherited socket bound at `have` serves the configured `want`. systemd's
/// `ListenStream=587` binds `[::]:587`, which also takes IPv4; it serves `0.0.0.0:587`.
fn same_endpoint(have: SocketAddr, want: SocketAddr) -> bool {
    have.port() == want.port() && (have.ip() == want.ip() || (have.ip().is_unspecified() && want.ip().is_unspecified()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // The table is process-wide; each test uses names no other test uses.

    #[tokio::test]
    async fn an_inherited_unix_socket_is_used_instead_of_binding() {
        let dir = tempfile::tempdir().unwrap();
        let passed = dir.path().join("passed");
        let std = std::os::unix::net::UnixListener::bind(&passed).unwrap();
        adopt(vec![(OwnedFd::from(std), "t-unix".into())]);
        let configured = dir.path().join("configured");
        let listener = listen_unix("t-unix", &configured, 0o660, None).unwrap();
        assert!(!configured.exists(), "bound a new socket although one was passed");
        assert_eq!(listener.local_addr().unwrap().as_pathname(), Some(passed.as_path()));
        assert!(!unclaimed().contains(&"t-unix".to_string()));
        // Taken once: a second call binds.
        listen_unix("t-unix", &configured, 0o660, None).unwrap();
        assert!(configured.exists());
        assert!(bound_unix().iter().any(|b| b.path == configured));
    }

    #[tokio::test]
    async fn unix_sockets_are_matched_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let other = std::os::unix::net::UnixListener::bind(dir.path().join("other")).unwrap();
        adopt(vec![(OwnedFd::from(other), "t-other".into())]);
        let mine = dir.path().join("mine");
        listen_unix("t-mine", &mine, 0o600, None).unwrap();
        assert!(mine.exists());
        assert!(unclaimed().contains(&"t-other".to_string()));
    }

    #[tokio::test]
    async fn tcp_sockets_are_matched_by_name_and_address() {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let (addr_a, addr_b) = (a.local_addr().unwrap(), b.local_addr().unwrap());
        adopt(vec![(OwnedFd::from(a), "t-relay".into()), (OwnedFd::from(b), "t-relay".into())]);
        let got = listen_tcp(&format!("t-relay:{addr_b}"), addr_b).await.unwrap();
        assert_eq!(got.local_addr().unwrap(), addr_b);
        let got = listen_tcp(&format!("t-relay:{addr_a}"), addr_a).await.unwrap();
        assert_eq!(got.local_addr().unwrap(), addr_a);
    }

    #[tokio::test]
    async fn a_unix_socket_does_not_serve_a_tcp_front_end() {
        let dir = tempfile::tempdir().unwrap();
        let unix = std::os::unix::net::UnixListener::bind(dir.path().join("s")).unwrap();
        adopt(vec![(OwnedFd::from(unix), "t-api".into())]);
        let got = listen_tcp("t-api", "127.0.0.1:0".parse().unwrap()).await.unwrap();
        assert!(got.local_addr().unwrap().ip().is_loopback());
        assert!(unclaimed().contains(&"t-api".to_string()));
    }

    #[test]
    fn wildcard_addresses_match_across_families() {
        let v6: SocketAddr = "[::]:587".parse().unwrap();
        assert!(same_endpoint(v6, "0.0.0.0:587".parse().unwrap()));
        assert!(!same_endpoint(v6, "0.0.0.0:465".parse().unwrap()));
        assert!(!same_endpoint(v6, "127.0.0.1:587".parse().unwrap()));
        assert!(same_endpoint("127.0.0.1:25".parse().unwrap(), "127.0.0.1:25".parse().unwrap()));
    }
}
