//! A throwaway dnsmasq on loopback that serves the records a test names, so that delivery's
//! MX and A look-ups can be pointed at test sinks.

use std::process::{Child, Command, Stdio};

use super::peers::which;
use super::ports::wait_listening;

/// The running dnsmasq; dropping it stops it.
pub struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts dnsmasq on 127.0.0.1:`port` with only `records` (dnsmasq options such as
/// `--mx-host=…` and `--address=…`) and waits until it listens. The caller checks first that
/// dnsmasq is installed (`needs().programs(&["dnsmasq"])`).
pub fn dnsmasq(port: u16, records: &[&str]) -> Dnsmasq {
    let mut cmd = Command::new(which("dnsmasq").expect("dnsmasq is installed (checked by the caller)"));
    cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", &format!("--port={port}"), "--user=root", "--pid-file="])
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = Dnsmasq(cmd.spawn().expect("dnsmasq starts"));
    wait_listening(port, "dnsmasq");
    child
}
