//! A command whose reader goes away (`relaykey … | head`) ends as Unix tools do, killed by
//! SIGPIPE, without a panic message on stderr.

use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};

#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relaykey.toml");
    std::fs::write(&config, format!("database = {:?}\n", dir.path().join("relaykey.db").display().to_string()))
        .unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_relaykey")).arg("--config").arg(&config).args(args).output().unwrap()
    };
    assert!(run(&["account", "add", "ann@example.com"]).status.success());
    let mut child = Command::new(env!("CARGO_BIN_EXE_relaykey"))
        .arg("--config")
        .arg(&config)
        .args(["--json", "account", "list"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The only reader closes before the command writes a byte.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.signal(), Some(libc::SIGPIPE), "{:?} {stderr}", out.status);
}
