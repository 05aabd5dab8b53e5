//! Under systemd (stderr is the stream named by `JOURNAL_STREAM`) the daemon logs to journald
//! with structured fields and no prefix; otherwise plain text on stderr. journald's socket
//! path is fixed, so the test plays journald there when the machine runs none.

mod ops_support;
mod support;

use std::os::unix::fs::MetadataExt;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
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

    let builder = serve();
    // The daemon's stderr is the file the harness logs to: name it as the journal stream.
    let stderr = std::fs::File::create(builder.log_path()).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut daemon = builder.env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino())).spawn();
    daemon.notify.wait_for("READY=1");

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
    daemon.kill9();
    let ready = ready.unwrap();
    let field = |name: &str| ready.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone());
    assert_eq!(field("SYSLOG_IDENTIFIER").as_deref(), Some("relaykey"), "{ready:?}");
    assert_eq!(field("PRIORITY").as_deref(), Some("6"), "{ready:?}");
    assert!(field("FRONT_ENDS").is_some(), "{ready:?}");
    assert_eq!(field("DATABASE"), Some(daemon.dir().join("relaykey.db").display().to_string()), "{ready:?}");
    let text = daemon.log();
    assert!(!text.contains(" ready"), "also logged as text on stderr: {text}");
}

#[test]
fn logs_text_to_stderr_when_stderr_is_not_the_journal_stream() {
    // A wrapper redirected stderr: the inherited JOURNAL_STREAM no longer describes it (the
    // harness removes it).
    let mut daemon = serve().spawn();
    daemon.notify.wait_for("READY=1");
    let line = daemon.wait_log(" ready");
    assert!(line.contains("INFO") && line.contains("front_ends="), "{line}");
    daemon.signal(libc::SIGTERM);
    let _ = daemon.notify.next(Duration::from_secs(5));
    assert_eq!(daemon.wait_exit().code(), Some(0));
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
