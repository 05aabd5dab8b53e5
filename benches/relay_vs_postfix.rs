//! relaykey's relay next to Postfix 3.7's smtpd, in one run on this machine: both durable (fsync
//! before 250), both relaying from a trusted network (loopback, no AUTH) to one `smtp-sink`,
//! both driven by `smtp-source` with 10 KB messages at 1, 10 and 50 parallel sessions.
//! Prints messages per second accepted (until smtp-source finishes) and delivered (until the
//! queue is empty again), peak RSS of all processes of each server, and relaykey/Postfix ratios.
//!
//! Run as root with postfix and smtp-sink/smtp-source installed:
//!   cargo bench --bench relay_vs_postfix
//! Set RELAY_BENCH_MESSAGES to change the number of messages per level (default 500).

#[path = "../tests/support/mod.rs"]
mod support;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use support::peers::needs;
use support::ports::{free_port, wait_listening};
use support::postfix::postfix;
use support::relay::{Options, Relay};

const LEVELS: [usize; 3] = [1, 10, 50];
const MESSAGE_BYTES: usize = 10 * 1024;

struct SmtpSink(Child, u16);

impl SmtpSink {
    fn start() -> Self {
        let port = free_port();
        let child = Command::new("smtp-sink")
            .args(["-u", "nobody", &format!("127.0.0.1:{port}"), "1024"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("smtp-sink");
        wait_listening(port, "smtp-sink");
        Self(child, port)
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    accepted_per_s: f64,
    delivered_per_s: f64,
    peak_rss_kib: u64,
}

/// Resident set size of `root` and all its descendants, in KiB.
fn tree_rss_kib(root: u32) -> u64 {
    let mut parent: HashMap<u32, u32> = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return 0 };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the parenthesised command name: state ppid ...
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            parent.insert(pid, ppid);
        }
    }
    let in_tree = |mut pid: u32| loop {
        if pid == root {
            return true;
        }
        match parent.get(&pid) {
            Some(&p) if p != 0 && p != pid => pid = p,
            _ => return false,
        }
    };
    parent
        .keys()
        .filter(|&&pid| in_tree(pid))
        .map(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/status"))
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("VmRSS:"))
                        .and_then(|v| v.split_whitespace().next()?.parse().ok())
                })
                .unwrap_or(0)
        })
        .sum()
}

/// Samples the RSS of `root`'s process tree until dropped; keeps the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(root: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::SeqCst) {
                p.fetch_max(tree_rss_kib(root), Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(250));
            }
        });
        Self { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::SeqCst)
    }
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()
}

/// Drives `port` with smtp-source and waits until `queued` (files in the queue) drops to zero.
fn drive(port: u16, sessions: usize, messages: usize, root_pid: u32, queued: &dyn Fn() -> usize) -> Measure {
    let rss = RssSampler::start(root_pid);
    let start = Instant::now();
    let status = Command::new("smtp-source")
        .args(["-s", &sessions.to_string(), "-m", &messages.to_string(), "-l", &MESSAGE_BYTES.to_string()])
        .args(["-f", "bench@example.com", "-t", "sink@example.net", "-M", "bench.test"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .status()
        .expect("smtp-source");
    assert!(status.success(), "smtp-source failed");
    let accepted = start.elapsed();
    let deadline = Instant::now() + Duration::from_secs(600);
    while queued() > 0 {
        assert!(Instant::now() < deadline, "queue never drained");
        std::thread::sleep(Duration::from_millis(5));
    }
    let delivered = start.elapsed();
    Measure {
        accepted_per_s: messages as f64 / accepted.as_secs_f64(),
        delivered_per_s: messages as f64 / delivered.as_secs_f64(),
        peak_rss_kib: rss.finish(),
    }
}

fn main() {
    if !needs().programs(&["postfix", "smtp-sink", "smtp-source"]).root().met() {
        eprintln!("relay_vs_postfix: needs root, postfix, smtp-sink and smtp-source; skipped");
        return;
    }
    let messages: usize = std::env::var("RELAY_BENCH_MESSAGES").ok().and_then(|v| v.parse().ok()).unwrap_or(500);
    let sink = SmtpSink::start();

    let relay = Relay::start(Options {
        relay: format!("smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\nmax_message_size = 10485760\n", sink.1),
        limits: "max_connections_per_ip = 1000".into(),
        ..Options::default()
    });
    let relay_pid = relay.pid();
    let relay_queue = relay.spool_dir();

    let pf = postfix()
        .relayhost(&format!("[127.0.0.1]:{}", sink.1))
        .main_cf(
            "default_process_limit = 200
smtp_tls_security_level = none
smtpd_client_connection_count_limit = 0
message_size_limit = 10485760
",
        )
        .start();
    let pf_pid = pf.master_pid().expect("postfix master pid");
    let pf_spool = pf.dir.path().join("spool");
    let pf_queued =
        || ["incoming", "active", "deferred", "maildrop", "hold"].iter().map(|q| count_files(&pf_spool.join(q))).sum();

    println!(
        "relay_vs_postfix: {messages} messages of {MESSAGE_BYTES} bytes per level, smtp-source -> server -> smtp-sink"
    );
    println!(
        "{:>8} | {:>14} {:>14} {:>10} | {:>14} {:>14} {:>10} | {:>8} {:>8} {:>8}",
        "sessions",
        "rk accept/s",
        "rk deliver/s",
        "rk RSS MiB",
        "pf accept/s",
        "pf deliver/s",
        "pf RSS MiB",
        "accept x",
        "deliver x",
        "RSS x"
    );
    for sessions in LEVELS {
        let rk = drive(relay.plain, sessions, messages, relay_pid, &|| count_files(&relay_queue));
        let pfm = drive(pf.port(), sessions, messages, pf_pid, &pf_queued);
        println!(
            "{:>8} | {:>14.1} {:>14.1} {:>10.1} | {:>14.1} {:>14.1} {:>10.1} | {:>8.2} {:>8.2} {:>8.2}",
            sessions,
            rk.accepted_per_s,
            rk.delivered_per_s,
            rk.peak_rss_kib as f64 / 1024.0,
            pfm.accepted_per_s,
            pfm.delivered_per_s,
            pfm.peak_rss_kib as f64 / 1024.0,
            rk.accepted_per_s / pfm.accepted_per_s,
            rk.delivered_per_s / pfm.delivered_per_s,
            rk.peak_rss_kib as f64 / pfm.peak_rss_kib.max(1) as f64,
        );
    }
}
