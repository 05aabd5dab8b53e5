//! A full disk: the spool on a 512 KiB tmpfs. A message that does not fit gets `452 4.3.1` and
//! leaves no partial file; a small one afterwards is queued and delivered.
//! Needs root (mount); skipped locally without it, a failure under CI=true.

#[path = "support/relay_sink.rs"]
mod sink;
mod support;

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use sink::Sink;
use support::peers::{is_root, require};
use support::relay::{Options, Relay};
use support::smtp::Dialog;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(size: &str) -> Option<(tempfile::TempDir, Self)> {
        let dir = tempfile::Builder::new().prefix("relaykey-full").tempdir().unwrap();
        let at = dir.path().join("spool");
        std::fs::create_dir(&at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(&at)
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| (dir, Self(at)))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn queue_files(spool: &std::path::Path) -> Vec<String> {
    std::fs::read_dir(spool.join("queue"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect()
}

#[test]
fn a_full_spool_answers_452_and_keeps_no_partial_message() {
    let mounted = if is_root() { Tmpfs::mount("512k") } else { None };
    if !require(mounted.is_some(), "a 512 KiB tmpfs (root, to mount it)") {
        return;
    }
    let Some((_dir, tmpfs)) = mounted else { return };
    let sink = Sink::start();
    let relay = Relay::start(Options {
        relay: format!("smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n", sink.port),
        spool: Some(tmpfs.0.clone()),
        ..Options::default()
    });
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO c\r\nMAIL FROM:<ann@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n");
    for _ in 0..4 {
        d.reply();
    }
    let line = format!("{}\r\n", "y".repeat(98));
    for _ in 0..12_000 {
        d.send(&line);
    }
    d.send(".\r\n");
    let reply = d.reply();
    assert!(reply.starts_with("452 4.3.1"), "{reply}");
    assert!(queue_files(&tmpfs.0).is_empty(), "partial files left: {:?}", queue_files(&tmpfs.0));
    // The session goes on, and a message that fits is queued and delivered.
    d.send("MAIL FROM:<ann@example.com>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: small\r\n\r\nfits\r\n.\r\n");
    for _ in 0..3 {
        d.reply();
    }
    let reply = d.reply();
    assert!(reply.starts_with("250 2.0.0"), "{reply}");
    let got = sink.wait_for(1, Duration::from_secs(60));
    assert_eq!(got.len(), 1);
    assert!(got[0].text().contains("Subject: small"));
    drop(relay);
}
