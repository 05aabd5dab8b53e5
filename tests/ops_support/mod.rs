//! Shared by the ops_* tests (which also declare `mod support;`): the harness's daemon builder
//! and peer check, plus what only these tests need (process status, a raw Dovecot AUTH).
#![allow(dead_code, unused_imports)]

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::Path;

pub use crate::support::daemon::{BIN, Daemon, NotifySocket, PATIENCE, serve};
pub use crate::support::peers::{is_root, require};

pub fn relaykey() -> &'static str {
    BIN
}

/// A world-readable temporary directory (the daemon may run as another user).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("relaykey-ops-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// `/proc/PID/status` as (name, value) lines.
pub fn proc_status(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect()
}

pub fn status_field(pid: u32, name: &str) -> String {
    proc_status(pid).into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_default()
}

/// An account and an SMTP credential made with the CLI; returns (username, password).
pub fn smtp_credential(config: &Path) -> (String, String) {
    let run = |args: &[&str]| crate::support::daemon::cli_json(config, args);
    run(&["account", "add", "ops@example.com"]);
    let cred = run(&["smtp", "create", "ops@example.com"]);
    (cred["username"].as_str().unwrap().to_string(), cred["password"].as_str().unwrap().to_string())
}

/// Reads until the text received so far ends with `end`.
pub fn read_until(stream: &mut UnixStream, end: &str) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(end.as_bytes()) {
        let n = stream.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed after {:?}", String::from_utf8_lossy(&text));
        text.push(byte[0]);
    }
    String::from_utf8(text).unwrap()
}

/// Sends a Dovecot `AUTH` with PLAIN and returns the reply line.
pub fn auth_plain(stream: &mut UnixStream, id: u32, username: &str, password: &str) -> String {
    use base64::Engine;
    let resp = base64::engine::general_purpose::STANDARD.encode(format!("\0{username}\0{password}"));
    let line = format!("AUTH\t{id}\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp={resp}\n");
    stream.write_all(line.as_bytes()).unwrap();
    read_until(stream, "\n")
}
