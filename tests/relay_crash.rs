//! Crash test: while a client sends messages in a loop, relaykey is killed with SIGKILL several
//! times and restarted on the same spool. Every message that got `250` must reach the sink;
//! duplicates (allowed: delivery is at-least-once) are counted and printed.

#[path = "support/relay_sink.rs"]
mod sink;
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sink::Sink;
use support::relay::{Options, Relay};

const KILLS: usize = 5;
const ACKS_BETWEEN_KILLS: usize = 12;

/// One message in one session; `Ok(true)` only when the server said 250 after DATA.
fn send_one(port: u16, seq: usize) -> std::io::Result<bool> {
    let stream = TcpStream::connect(("127.0.0.1", port))?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut w = stream.try_clone()?;
    let mut r = BufReader::new(stream);
    let mut reply = || -> std::io::Result<String> {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if r.read_line(&mut line)? == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            all.push_str(&line);
            if line.as_bytes().get(3) != Some(&b'-') {
                return Ok(all);
            }
        }
    };
    reply()?;
    let filler = "The quick brown fox jumps over the lazy dog.\r\n".repeat(40);
    write!(w, "EHLO crash.test\r\nMAIL FROM:<ann@example.com>\r\nRCPT TO:<sink@example.net>\r\nDATA\r\n")?;
    for _ in 0..4 {
        reply()?;
    }
    write!(w, "Subject: crash {seq}\r\nX-Seq: {seq}\r\n\r\n{filler}\r\n.\r\n")?;
    let done = reply()?;
    let _ = w.write_all(b"QUIT\r\n");
    Ok(done.starts_with("250 "))
}

fn seq_of(text: &str) -> Option<usize> {
    text.lines().find_map(|l| l.strip_prefix("X-Seq: ")).and_then(|s| s.trim().parse().ok())
}

#[test]
fn every_acknowledged_message_survives_repeated_kill_9() {
    let sink = Sink::start();
    let mut relay = Relay::start(Options {
        relay: format!("smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n", sink.port),
        ..Options::default()
    });
    let port = relay.plain;
    let acked = Arc::new(Mutex::new(BTreeSet::new()));
    let ack_count = Arc::new(AtomicUsize::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    let client = {
        let (acked, ack_count, stop) = (acked.clone(), ack_count.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut seq = 0;
            let mut failures = 0u64;
            let mut failing_since: Option<std::time::Instant> = None;
            while !stop.load(Ordering::SeqCst) {
                seq += 1;
                match send_one(port, seq) {
                    Ok(true) => {
                        acked.lock().unwrap().insert(seq);
                        ack_count.fetch_add(1, Ordering::SeqCst);
                        failing_since = None;
                    }
                    // Killed mid-session, or not restarted yet: try again with a new number.
                    other => {
                        if failures.is_multiple_of(200) {
                            eprintln!("send {seq}: {other:?}");
                        }
                        failures += 1;
                        let since = *failing_since.get_or_insert_with(std::time::Instant::now);
                        assert!(since.elapsed() < Duration::from_secs(120), "relaykey never came back");
                        std::thread::sleep(Duration::from_millis(5));
                    }
                }
            }
            seq
        })
    };
    for kill in 1..=KILLS {
        let target = kill * ACKS_BETWEEN_KILLS;
        while ack_count.load(Ordering::SeqCst) < target {
            assert!(!client.is_finished(), "client thread died");
            std::thread::sleep(Duration::from_millis(2));
        }
        relay.kill9();
        relay.restart();
    }
    while ack_count.load(Ordering::SeqCst) < (KILLS + 1) * ACKS_BETWEEN_KILLS {
        std::thread::sleep(Duration::from_millis(2));
    }
    stop.store(true, Ordering::SeqCst);
    let sent = client.join().unwrap();
    let acked = acked.lock().unwrap().clone();

    // Wait until every acknowledged message arrived (bounded).
    let mut delivered: BTreeMap<usize, usize> = BTreeMap::new();
    for _ in 0..600 {
        delivered.clear();
        for m in sink.all() {
            if let Some(seq) = seq_of(&m.text()) {
                *delivered.entry(seq).or_default() += 1;
            }
        }
        if acked.iter().all(|s| delivered.contains_key(s)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let missing: Vec<&usize> = acked.iter().filter(|s| !delivered.contains_key(s)).collect();
    let duplicates: usize = delivered.values().map(|n| n - 1).sum();
    let unacked_delivered = delivered.keys().filter(|s| !acked.contains(s)).count();
    println!(
        "crash test: {KILLS} kill -9, {sent} attempts, {} acknowledged, {} delivered, {duplicates} duplicates, \
         {unacked_delivered} delivered without acknowledgement, {} missing",
        acked.len(),
        delivered.len(),
        missing.len()
    );
    assert!(missing.is_empty(), "acknowledged but lost: {missing:?}\n{}", relay.log());
}
