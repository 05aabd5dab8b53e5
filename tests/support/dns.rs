//! A throwaway dnsmasq on loopback that serves the records a test names, so that delivery's
//! MX and A look-ups can be pointed at test sinks.

use std::process::{Child, Command, Stdio};

use super::peers::{needs, which};
use super::ports::{free_port, wait_listening};

/// The running dnsmasq; dropping it stops it.
pub struct Dnsmasq {
    child: Child,
    /// The loopback port it answers on.
    pub port: u16,
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts dnsmasq on a free loopback port with only `records` (dnsmasq options such as
/// `--mx-host=…` and `--host-record=…`) and waits until it listens. `None` when dnsmasq or
/// root is missing: the test skips, under the one skip rule of [`needs`].
pub fn dnsmasq(records: &[&str]) -> Option<Dnsmasq> {
    if !needs().programs(&["dnsmasq"]).root().met() {
        return None;
    }
    let port = free_port();
    let mut cmd = Command::new(which("dnsmasq").expect("dnsmasq is installed (checked above)"));
    cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", &format!("--port={port}"), "--user=root", "--pid-file="])
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let dns = Dnsmasq { child: cmd.spawn().expect("dnsmasq starts"), port };
    wait_listening(port, "dnsmasq");
    Some(dns)
}
