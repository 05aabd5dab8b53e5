//! Talking to systemd through `NOTIFY_SOCKET` (a no-op when it is unset).
//!
//! Every send is non-blocking. These calls run on the runtime's workers (the status and
//! watchdog tasks), and a datagram socket whose reader has stopped reading blocks the sender
//! once `net.unix.max_dgram_qlen` messages wait: a blocking send would freeze a worker, and with
//! it shutdown, which waits for the status task. A message systemd has no room for is dropped
//! and logged; the next status or watchdog message follows within its interval.
//! `sd_notify::notify` sends blocking, so only its formatting of the states is used here.

use std::io;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

use sd_notify::NotifyState;

/// The socket systemd listens on: a path, or an abstract name written with a leading `@`.
fn notify_address(raw: &std::ffi::OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    match raw.as_bytes() {
        [b'@', name @ ..] => SocketAddr::from_abstract_name(name),
        path => SocketAddr::from_pathname(std::ffi::OsStr::from_bytes(path)),
    }
}

fn message(states: &[NotifyState<'_>]) -> String {
    states.iter().map(|s| format!("{s}\n")).collect()
}

fn try_send(states: &[NotifyState<'_>]) -> io::Result<()> {
    let Some(raw) = std::env::var_os("NOTIFY_SOCKET") else { return Ok(()) };
    let socket = UnixDatagram::unbound()?;
    socket.set_nonblocking(true)?;
    socket.connect_addr(&notify_address(&raw)?)?;
    let msg = message(states);
    let sent = socket.send(msg.as_bytes())?;
    if sent != msg.len() {
        return Err(io::Error::new(io::ErrorKind::WriteZero, "incomplete datagram"));
    }
    Ok(())
}

fn send(states: &[NotifyState<'_>]) {
    match try_send(states) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
            tracing::warn!("systemd is not reading notifications; one was dropped")
        }
        Err(e) => tracing::warn!(error = %e, "cannot notify systemd"),
    }
}

pub fn ready() {
    send(&[NotifyState::Ready]);
}

pub fn reloading() {
    // systemd needs MONOTONIC_USEC with RELOADING=1 for Type=notify-reload units.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}

pub fn watchdog() {
    send(&[NotifyState::Watchdog]);
}

/// Asks systemd for `by` more time to finish starting (or stopping).
pub fn extend_start_timeout(by: std::time::Duration) {
    let usec = u32::try_from(by.as_micros()).unwrap_or(u32::MAX);
    send(&[NotifyState::ExtendTimeoutUsec(usec)]);
}

pub fn status(text: &str) {
    send(&[NotifyState::Status(text)]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_are_one_line_each() {
        assert_eq!(message(&[NotifyState::Ready, NotifyState::Status("a b")]), "READY=1\nSTATUS=a b\n");
    }

    #[test]
    fn an_at_sign_names_an_abstract_socket() {
        let addr = notify_address(std::ffi::OsStr::new("@relaykey-test")).unwrap();
        assert_eq!(addr.as_abstract_name(), Some(&b"relaykey-test"[..]));
        let addr = notify_address(std::ffi::OsStr::new("/run/systemd/notify")).unwrap();
        assert_eq!(addr.as_pathname(), Some(std::path::Path::new("/run/systemd/notify")));
    }
}
