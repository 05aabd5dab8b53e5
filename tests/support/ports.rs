//! The one port allocator, and the one way to wait for a TCP listener.
//!
//! Ports come from below the kernel's ephemeral range, so that no outgoing connection takes a
//! port between its allocation and the server's bind. Each port handed out is claimed for the
//! life of the test process with an `flock` on a file under /tmp, so that test processes
//! running side by side on this machine (several test binaries, several checkouts) never get
//! the same port.

use std::fs::File;
use std::net::{TcpListener, UdpSocket};
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const CLAIMS: &str = "/tmp/relaykey-test-ports";

/// Locks held until the process exits (the kernel drops them then, even after a crash).
static HELD: Mutex<Vec<File>> = Mutex::new(Vec::new());

/// A loopback port (TCP and UDP) that nothing listens on and no other test process holds.
pub fn free_port() -> u16 {
    let (low, high) = candidate_range();
    let span = u32::from(high - low);
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    for i in 0..span {
        let port = low + ((seed.wrapping_add(i)) % span) as u16;
        let Some(claim) = claim(port) else { continue };
        if TcpListener::bind(("127.0.0.1", port)).is_ok() && UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            HELD.lock().unwrap_or_else(|e| e.into_inner()).push(claim);
            return port;
        }
    }
    panic!("no free loopback port in {low}..{high}");
}

/// Ports below the ephemeral range (or above it, when it starts too low to leave room).
fn candidate_range() -> (u16, u16) {
    let text = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range").unwrap_or_default();
    let mut bounds = text.split_whitespace().filter_map(|n| n.parse::<u16>().ok());
    let (first, last) = (bounds.next().unwrap_or(32768), bounds.next().unwrap_or(60999));
    if first > 12_000 { (10_000, first) } else { (last.saturating_add(1).max(1025), u16::MAX) }
}

/// An exclusive lock on this port's claim file, or `None` when another live process holds it.
fn claim(port: u16) -> Option<File> {
    let dir = Path::new(CLAIMS);
    if std::fs::create_dir(dir).is_ok() {
        // Shared by every user's test runs, like /tmp itself.
        let _ = std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o1777));
    }
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join(port.to_string()));
    let file = file.ok()?;
    // SAFETY: flock on a descriptor this function owns.
    let locked = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0;
    locked.then_some(file)
}

/// Is a TCP socket listening on 127.0.0.1:`port` (or on any address)? Read from the kernel's
/// table, so that asking does not open a session the server would see.
pub fn listening(port: u16) -> bool {
    let wanted = [format!("0100007F:{port:04X}"), format!("00000000:{port:04X}")];
    std::fs::read_to_string("/proc/net/tcp").is_ok_and(|table| {
        table.lines().any(|line| {
            let cols: Vec<&str> = line.split_whitespace().collect();
            cols.len() > 3 && wanted.iter().any(|w| w == cols[1]) && cols[3] == "0A"
        })
    })
}

/// Waits until something listens on `port`. The deadline only bounds a hang (a readiness wait,
/// not a timing assertion).
pub fn wait_listening(port: u16, what: &str) {
    wait_until(&format!("{what} listening on port {port}"), || listening(port));
}

/// Polls `ready` until it holds; panics naming `what` if it never does.
pub fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !ready() {
        assert!(Instant::now() < deadline, "not ready: {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}
