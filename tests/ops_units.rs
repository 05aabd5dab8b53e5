//! The systemd units as shipped pass `systemd-analyze verify`, and the service keeps the
//! contract the daemon relies on (notify, watchdog, reload by SIGHUP, socket names).

mod ops_support;
mod support;

use std::path::Path;
use std::process::Command;

use ops_support::*;

const UNITS: &[&str] = &[
    "relaykey.service",
    "relaykey-sasl.socket",
    "relaykey-policy.socket",
    "relaykey-senders.socket",
    "relaykey-relay.socket",
];

fn unit(name: &str) -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("systemd").join(name)).unwrap()
}

#[test]
fn units_pass_systemd_analyze_verify() {
    let found = Command::new("systemd-analyze").arg("--version").output().is_ok_and(|o| o.status.success());
    if !require(found, "systemd-analyze") {
        return;
    }
    // The service names /usr/bin/relaykey, which verify wants to exist: point it at this build.
    let dir = open_tempdir();
    let mut paths = Vec::new();
    for name in UNITS {
        let text = unit(name).replace("/usr/bin/relaykey", relaykey());
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        paths.push(path);
    }
    let out = Command::new("systemd-analyze").args(["verify", "--man=no"]).args(&paths).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && stderr.trim().is_empty(), "systemd-analyze verify: {stderr}");
}

#[test]
fn the_service_keeps_the_daemon_contract() {
    let service = unit("relaykey.service");
    for line in [
        "Type=notify",
        "NotifyAccess=main",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "ProtectSystem=strict",
        "NoNewPrivileges=yes",
        "PrivateTmp=yes",
        "ProtectHome=yes",
    ] {
        assert!(service.lines().any(|l| l == line), "relaykey.service lacks {line}");
    }
    assert!(service.lines().any(|l| l.starts_with("WatchdogSec=")));
    assert!(service.lines().any(|l| l.starts_with("CapabilityBoundingSet=CAP_")));
    // The names the daemon matches inherited sockets by.
    for (socket, name) in
        [("relaykey-sasl.socket", "sasl"), ("relaykey-policy.socket", "policy"), ("relaykey-senders.socket", "senders")]
    {
        let text = unit(socket);
        assert!(text.lines().any(|l| l == format!("FileDescriptorName={name}")), "{socket}");
        assert!(text.lines().any(|l| l == "SocketUser=postfix") && text.lines().any(|l| l == "SocketMode=0660"));
        assert!(text.lines().any(|l| l == "Service=relaykey.service"), "{socket}");
    }
    assert!(unit("relaykey-relay.socket").lines().any(|l| l == "FileDescriptorName=relay"));
}
