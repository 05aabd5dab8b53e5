//! Under systemd (stderr is the stream named by `JOURNAL_STREAM`) the daemon logs to journald
//! with structured fields and no prefix; otherwise plain text on stderr. journald's socket
//! path is fixed, so the test plays journald there when the machine runs none.

mod ops_support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use ops_support::*;

const JOURNAL: &str = "/run/systemd/journal/socket";

#[test]
fn logs_structured_fields_to_journald_under_systemd() {
    if !require(is_root(), "root (to play journald at its fixed path)") {
        return;
    }
    if Path::new(JOURNAL).exists() {
        eprintln!("skipping: a real journald runs here");
        return;
    }
    let made_dir = !Path::new("/run/systemd/journal").exists();
    std::fs::create_dir_all("/run/systemd/journal").unwrap();
    let journal = UnixDatagram::bind(JOURNAL).unwrap();
    let _cleanup = Cleanup(made_dir);

    let dir = open_tempdir();
    let config = write_config(dir.path(), "");
    let notify = NotifySocket::bind(dir.path());
    let stderr_path = dir.path().join("stderr");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut child = Command::new(relaykey())
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .env("NOTIFY_SOCKET", &notify.path)
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    notify.wait_for("READY=1");

    journal.set_read_timeout(Some(PATIENCE)).unwrap();
    let mut ready = None;
    let mut buf = vec![0u8; 64 * 1024];
    while ready.is_none() {
        let n = journal.recv(&mut buf).expect("no journal entry");
        let entry = parse_entry(&buf[..n]);
        if entry.iter().any(|(k, v)| k == "MESSAGE" && v == "ready") {
            ready = Some(entry);
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let ready = ready.unwrap();
    let field = |name: &str| ready.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("SYSLOG_IDENTIFIER").as_deref(), Some("relaykey"), "{ready:?}");
    assert_eq!(field("PRIORITY").as_deref(), Some("6"), "{ready:?}");
    assert!(field("FRONT_ENDS").is_some(), "{ready:?}");
    assert_eq!(field("DATABASE"), Some(dir.path().join("relaykey.db").display().to_string()), "{ready:?}");
    let text = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(!text.contains(" ready"), "also logged as text on stderr: {text}");
}

#[test]
fn logs_text_to_stderr_when_stderr_is_not_the_journal_stream() {
    let dir = open_tempdir();
    let config = write_config(dir.path(), "");
    let notify = NotifySocket::bind(dir.path());
    let mut cmd = Command::new(relaykey());
    // A wrapper redirected stderr: the inherited JOURNAL_STREAM no longer describes it.
    cmd.arg("--config").arg(&config).arg("serve").env("NOTIFY_SOCKET", &notify.path);
    let mut daemon = Daemon::spawn(cmd);
    notify.wait_for("READY=1");
    let line = daemon.wait_log(" ready");
    assert!(line.contains("INFO") && line.contains("front_ends="), "{line}");
    daemon.signal(libc::SIGTERM);
    let _ = notify.next(Duration::from_secs(5));
    assert_eq!(daemon.wait_exit(), Some(0));
}

/// journald's native protocol: `KEY=value\n`, or `KEY\n` + 64-bit LE length + bytes + `\n`.
fn parse_entry(mut data: &[u8]) -> Vec<(String, String)> {
    let mut fields = Vec::new();
    while let Some(end) = data.iter().position(|&b| b == b'\n') {
        let line = &data[..end];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            let value = String::from_utf8_lossy(&line[eq + 1..]).into_owned();
            fields.push((String::from_utf8_lossy(&line[..eq]).into_owned(), value));
            data = &data[end + 1..];
        } else {
            let key = String::from_utf8_lossy(line).into_owned();
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            fields.push((key, String::from_utf8_lossy(&rest[8..8 + len]).into_owned()));
            data = &rest[8 + len + 1..];
        }
    }
    fields
}

struct Cleanup(bool);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(JOURNAL);
        if self.0 {
            let _ = std::fs::remove_dir("/run/systemd/journal");
        }
    }
}
