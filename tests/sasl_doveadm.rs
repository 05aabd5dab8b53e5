//! Dovecot's own auth client (`doveadm auth test -a SOCKET`) against `relaykey serve`: its
//! client library is the strictest about the handshake (§2.4 of the protocol notes).

mod support;

use std::process::Command;

use support::daemon::{Daemon, sasl_only};
use support::peers::available;

/// Runs `doveadm auth test`; returns (exit code, stdout).
fn doveadm(rk: &Daemon, extra: &[&str], user: &str, pass: &str) -> (i32, String) {
    let out = Command::new("doveadm")
        .args(["auth", "test", "-a"])
        .arg(rk.sasl_socket())
        .args(extra)
        .args([user, pass])
        .output()
        .expect("run doveadm");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.code().unwrap_or(-1), text)
}

#[test]
fn doveadm_auth_test_succeeds_and_fails_as_it_should() {
    if !available(&["doveadm"]) {
        return;
    }
    let rk = sasl_only("").start();
    let (pw, key) = rk.account_with_secrets("dave@example.com");

    let (code, out) = doveadm(&rk, &[], "dave@example.com", &pw);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("auth succeeded") && out.contains("user=dave@example.com"), "{out}");

    let (code, out) = doveadm(&rk, &[], "DAVE@example.com", &key);
    assert_eq!(code, 0, "API key as password, any case of the name: {out}");

    let (code, out) = doveadm(&rk, &[], "dave@example.com", "not-the-password");
    assert_eq!(code, 77, "EX_NOPERM on failure: {out}");
    assert!(out.contains("auth failed"), "{out}");

    let (code, out) = doveadm(&rk, &[], "nobody@example.com", &pw);
    assert_eq!(code, 77, "{out}");

    // A restricted credential: the remote address comes from -x rip=.
    let ops = rk.cli_json(&[
        "smtp",
        "create",
        "dave@example.com",
        "--username",
        "ops@example.com",
        "--allow",
        "192.0.2.0/24",
    ]);
    let ops_pw = ops["password"].as_str().unwrap();
    assert_eq!(doveadm(&rk, &["-x", "rip=192.0.2.9"], "ops@example.com", ops_pw).0, 0);
    assert_eq!(doveadm(&rk, &["-x", "rip=198.51.100.9"], "ops@example.com", ops_pw).0, 77);
    assert_eq!(doveadm(&rk, &[], "ops@example.com", ops_pw).0, 77, "no address, restricted credential");
}
