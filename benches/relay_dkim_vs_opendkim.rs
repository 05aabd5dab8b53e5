//! relaykey's relay signing with DKIM next to Postfix 3.7 signing through OpenDKIM as a milter
//! (the setup small hosts run today), in one run on this machine.
//!
//! Both sides get the same authenticated submissions and both are durable:
//! - relaykey: `relaykey serve` with the relay on a plaintext loopback listener, no trusted
//!   networks (every message must log in), its spool fsynced before 250; the account may send
//!   as `example.com` (rsa-sha256 and ed25519-sha256 keys made with `relaykey dkim generate`,
//!   both active) and as `nokey.example` (no key: goes out unsigned).
//! - Postfix: smtpd with `smtpd_sasl_type = dovecot` against an auth-only Dovecot holding the
//!   very same argon2id PHC string (auth_cache on, as relaykey's login cache), relaying for
//!   authenticated clients only, `reject_sender_login_mismatch` (relaykey's sender binding),
//!   its queue on disk with Postfix's default fsync before 250. One smtpd listener has
//!   `smtpd_milters` naming OpenDKIM on unix sockets: RSA-2048 and Ed25519 keys of its own for
//!   `example.com`, relaxed/relaxed, relaykey's signed and oversigned header fields, one
//!   instance per algorithm because Debian 12's OpenDKIM signs with one algorithm per process
//!   (`support/opendkim.rs`). A second smtpd of the same instance has no milter.
//! - One load client (`support/smtp_load.rs`): N sessions, each EHLO, AUTH PLAIN, then
//!   MAIL/RCPT/DATA of a 10 KB text message one command at a time, `per_connection` messages
//!   per connection (default 1, like smtp-source), QUIT. Every reply is checked.
//! - Both relay to one loopback sink; each point waits until the queue is empty again.
//!   Everything listens on loopback only and lives in temporary directories removed on exit.
//!
//! Before timing, one message through each signing path is checked by dkimpy (/usr/bin/python3,
//! python3-dkim): every DKIM-Signature (rsa-sha256 and ed25519-sha256, each on its own) must
//! verify against the published key, and the unsigned paths must carry none.
//!
//! Per point (sessions x variant) it prints accepted messages/s (until the client finished) and
//! the CPU seconds the server spent per message (the whole process tree, until its queue was
//! empty: relaykey; Postfix + OpenDKIM + Dovecot), with the load average. The signing cost of
//! each side is the difference between its signed and unsigned variant in the same round.
//! Rounds alternate the order of the variants; the tables show the median and [min-max] over
//! rounds. Last, relaykey's signing path is timed in-process (`support/dkim_sign_cost.rs`).
//! On a shared machine the accept rates are noisy; CPU per message is the steadier figure.
//!
//! Run as root with postfix, opendkim, dovecot-core, openssl and python3-dkim installed:
//!   cargo bench --bench relay_dkim_vs_opendkim
//! Knobs (env): DKIM_BENCH_MESSAGES (per point, default 2000), DKIM_BENCH_ROUNDS (default 3),
//! DKIM_BENCH_LEVELS (default 10,50), DKIM_BENCH_PER_CONNECTION (default 1),
//! DKIM_BENCH_ALGORITHMS (both, rsa or ed25519; default both, the same on both sides).

#[path = "support/dkim_sign_cost.rs"]
mod dkim_sign_cost;
#[path = "support/dovecot_auth.rs"]
mod dovecot_auth;
#[path = "support/opendkim.rs"]
mod opendkim;
#[path = "support/proc_cpu.rs"]
mod proc_cpu;
#[path = "../tests/support/relay_sink.rs"]
mod relay_sink;
#[path = "support/smtp_load.rs"]
mod smtp_load;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dovecot_auth::DovecotAuth;
use opendkim::OpenDkim;
use relay_sink::{Delivered, Sink};
use relaykey::dkim::Algorithm;
use relaykey::store::Store;
use smtp_load::Load;
use support::peers::needs;
use support::postfix::postfix;
use support::relay::{Options, Relay, USER};

const MESSAGE_BYTES: usize = 10 * 1024;
const SIGNED: &str = "example.com";
const UNSIGNED: &str = "nokey.example";
const RCPT: &str = "sink@example.net";
const VERIFIER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/benches/support/dkimpy_verify.py");

/// The four things timed at each level.
#[derive(Clone, Copy, PartialEq, Debug)]
enum Variant {
    RelaykeySigned,
    RelaykeyUnsigned,
    PostfixOpenDkim,
    PostfixNoMilter,
}

const VARIANTS: [Variant; 4] =
    [Variant::RelaykeySigned, Variant::RelaykeyUnsigned, Variant::PostfixOpenDkim, Variant::PostfixNoMilter];

impl Variant {
    /// The domain of MAIL FROM and `From:`.
    fn sender_domain(self) -> &'static str {
        match self {
            Self::RelaykeySigned | Self::PostfixOpenDkim => SIGNED,
            Self::RelaykeyUnsigned => UNSIGNED,
            // Same sender as the milter listener: only the milter differs.
            Self::PostfixNoMilter => SIGNED,
        }
    }
}

#[derive(Clone, Copy)]
struct Point {
    accepted_per_s: f64,
    cpu_ms_per_msg: f64,
}

fn env_num(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `DKIM_BENCH_ALGORITHMS`: `both` (default), `rsa` or `ed25519`; the same on both sides.
fn algorithms() -> Vec<Algorithm> {
    match std::env::var("DKIM_BENCH_ALGORITHMS").as_deref() {
        Ok("rsa") => vec![Algorithm::Rsa],
        Ok("ed25519") => vec![Algorithm::Ed25519],
        Ok("both") | Err(_) => vec![Algorithm::Rsa, Algorithm::Ed25519],
        Ok(other) => panic!("DKIM_BENCH_ALGORITHMS={other:?}: expected both, rsa or ed25519"),
    }
}

fn levels() -> Vec<usize> {
    std::env::var("DKIM_BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|l: &Vec<usize>| !l.is_empty())
        .unwrap_or_else(|| vec![10, 50])
}

/// Everything under test, started once.
struct Bench {
    sink: Sink,
    relay: Relay,
    relay_queue: PathBuf,
    username: String,
    password: String,
    /// relaykey's published keys, (record name, TXT value).
    relay_records: Vec<(String, String)>,
    opendkim: OpenDkim,
    dovecot: DovecotAuth,
    pf: support::postfix::Postfix,
    algorithms: Vec<Algorithm>,
    per_connection: usize,
    body: Arc<Vec<u8>>,
    _dir: tempfile::TempDir,
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no such flag: stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("relay_dkim_vs_opendkim: run with `cargo bench --bench relay_dkim_vs_opendkim`");
        return;
    }
    let met = needs()
        .programs(&["postfix", "opendkim", "dovecot", "doveadm", "openssl", "/usr/bin/python3"])
        .condition(dkimpy_installed(), "python3-dkim and python3-nacl")
        .root()
        .met();
    if !met {
        eprintln!("relay_dkim_vs_opendkim: needs root, postfix, opendkim, dovecot, openssl and python3-dkim; skipped");
        return;
    }
    let messages = env_num("DKIM_BENCH_MESSAGES", 2000);
    let rounds = env_num("DKIM_BENCH_ROUNDS", 3).max(1);
    let levels = levels();
    let bench = Bench::start(algorithms(), env_num("DKIM_BENCH_PER_CONNECTION", 1).max(1));
    bench.verify_signatures();

    println!(
        "relay_dkim_vs_opendkim: {messages} authenticated messages of {MESSAGE_BYTES} bytes per point, \
         {} per connection, {rounds} rounds, signing with {:?}, client -> server -> sink",
        bench.per_connection, bench.algorithms
    );
    let mut results: Vec<(usize, Variant, Vec<Point>)> = Vec::new();
    for round in 0..rounds {
        for &sessions in &levels {
            // Every other round runs the variants backwards, so a drift in the machine's load
            // does not always favour the same side.
            let order: Vec<Variant> =
                if round % 2 == 0 { VARIANTS.to_vec() } else { VARIANTS.iter().rev().copied().collect() };
            for variant in order {
                let p = bench.drive(variant, sessions, messages, &format!("r{round}s{sessions}"));
                // Each point as it comes, with the machine's load: a shared machine's noise shows.
                println!(
                    "  round {round} sessions {sessions:>3} {:<18} {:>8.1} msg/s {:>7.3} ms CPU/msg  load {}",
                    format!("{variant:?}"),
                    p.accepted_per_s,
                    p.cpu_ms_per_msg,
                    load_average()
                );
                match results.iter_mut().find(|(s, v, _)| *s == sessions && *v == variant) {
                    Some((_, _, points)) => points.push(p),
                    None => results.push((sessions, variant, vec![p])),
                }
            }
        }
    }
    print_table(&levels, &results);
    print_sign_cost(&bench);
}

/// relaykey's signing path in this process, over the message the load sends.
fn print_sign_cost(bench: &Bench) {
    let load = bench.load(Variant::RelaykeySigned, 1, 1, "micro");
    let mut message = smtp_load::head(&load, 0).into_bytes();
    message.extend_from_slice(&bench.body);
    let cost = dkim_sign_cost::measure(&message, &bench.algorithms);
    let signs: Vec<String> = cost
        .sign_us
        .iter()
        .map(|(a, whole, primitive)| format!("{} {whole:.1} µs (ring's primitive alone {primitive:.1} µs)", a.tag()))
        .collect();
    let total = cost.digest_us + cost.sign_us.iter().map(|(_, us, _)| us).sum::<f64>();
    println!();
    println!(
        "relaykey's signing path in-process (thread CPU time, median of batches), one {} byte message: \
         body pass {:.1} µs (SHA-256 alone {:.1} µs), {}; {total:.1} µs per message",
        message.len(),
        cost.digest_us,
        cost.sha256_us,
        signs.join(", "),
    );
    println!(
        "loading a domain's keys into ring (the keyring does it when the active keys change) costs {:.1} µs",
        cost.reload_us
    );
}

impl Bench {
    fn start(algorithms: Vec<Algorithm>, per_connection: usize) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-dkim-bench").tempdir().expect("tempdir");
        // Dovecot's unprivileged auth process reads its passwd-file in here.
        std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let sink = Sink::start();
        // The harness reads the notify socket only until READY=1, and a unix datagram queue
        // holds 10: STATUS= every 10 s fills it after ~100 s, which this bench outlives (before
        // main's b5ec99d the daemon's next send then blocked, and the relay stopped greeting).
        // One STATUS an hour keeps the run independent of that.
        let relay = Relay::start(Options {
            relay: format!(
                "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\nmax_message_size = 10485760\n\
                 trusted_networks = []\n[daemon]\nstatus_interval = \"1h\"\n",
                sink.port
            ),
            limits: "max_connections_per_ip = 1000".into(),
            ..Options::default()
        });
        // The credential Relay::start made: its username is the account's address.
        let (username, password) = (USER.to_string(), relay.password.clone());
        for domain in [SIGNED, UNSIGNED] {
            relay.cli(&["sender", "add", USER, domain]);
        }
        let relay_records = relaykey_keys(&relay, &algorithms);
        let relay_queue = relay.spool_dir();

        let phc = Store::open(&relay.dir().join("relaykey.db"))
            .expect("open relaykey's store")
            .smtp_credential_by_username(&username)
            .expect("read the credential")
            .expect("the credential exists")
            .hash
            .to_string();
        let dovecot = DovecotAuth::start(dir.path(), &[(username.clone(), phc)]);
        let opendkim = OpenDkim::start(SIGNED, &algorithms);
        let logins = dir.path().join("sender_logins");
        std::fs::write(&logins, format!("@{SIGNED} {username}\n@{UNSIGNED} {username}\n")).expect("sender_logins");
        let pf = postfix()
            .relayhost(&format!("[127.0.0.1]:{}", sink.port))
            .sasl_socket(&dovecot.socket)
            .main_cf(&format!(
                "default_process_limit = 200
smtp_tls_security_level = none
smtpd_client_connection_count_limit = 0
message_size_limit = 10485760
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_sender_login_maps = texthash:{logins}
smtpd_sender_restrictions = reject_sender_login_mismatch
smtpd_milters = {milters}
milter_default_action = tempfail
milter_protocol = 6
",
                logins = logins.display(),
                milters = opendkim.milters(),
            ))
            .smtpd("opendkim", "")
            .smtpd("nomilter", "-o smtpd_milters=")
            .start();
        let body = Arc::new(smtp_load::text_body(MESSAGE_BYTES));
        Self {
            sink,
            relay,
            relay_queue,
            username,
            password,
            relay_records,
            opendkim,
            dovecot,
            pf,
            algorithms,
            per_connection,
            body,
            _dir: dir,
        }
    }

    fn port(&self, variant: Variant) -> u16 {
        match variant {
            Variant::RelaykeySigned | Variant::RelaykeyUnsigned => self.relay.plain,
            Variant::PostfixOpenDkim => self.pf.port_of("opendkim"),
            Variant::PostfixNoMilter => self.pf.port_of("nomilter"),
        }
    }

    /// The server's whole process tree.
    fn server_pids(&self, variant: Variant) -> Vec<u32> {
        match variant {
            Variant::RelaykeySigned | Variant::RelaykeyUnsigned => vec![self.relay.pid()],
            Variant::PostfixOpenDkim | Variant::PostfixNoMilter => {
                let mut pids = self.opendkim.pids();
                pids.extend(self.pf.master_pid());
                pids.extend(self.dovecot.master_pid());
                pids
            }
        }
    }

    fn queued(&self, variant: Variant) -> usize {
        match variant {
            Variant::RelaykeySigned | Variant::RelaykeyUnsigned => count_files(&self.relay_queue),
            Variant::PostfixOpenDkim | Variant::PostfixNoMilter => {
                let spool = self.pf.dir.path().join("spool");
                ["incoming", "active", "deferred", "maildrop", "hold"].iter().map(|q| count_files(&spool.join(q))).sum()
            }
        }
    }

    fn load(&self, variant: Variant, sessions: usize, messages: usize, run: &str) -> Load {
        let domain = variant.sender_domain();
        Load {
            port: self.port(variant),
            sessions,
            messages,
            per_connection: self.per_connection,
            username: self.username.clone(),
            password: self.password.clone(),
            mail_from: format!("bench@{domain}"),
            rcpt_to: RCPT.into(),
            from_domain: domain.into(),
            run: run.into(),
            body: self.body.clone(),
        }
    }

    /// One point: `messages` over `sessions`, then wait for the queue to drain.
    fn drive(&self, variant: Variant, sessions: usize, messages: usize, run: &str) -> Point {
        let pids = self.server_pids(variant);
        let cpu_before = proc_cpu::tree_cpu_secs(&pids);
        let accepted = smtp_load::run(self.load(variant, sessions, messages, run));
        self.wait_drained(variant);
        let cpu = proc_cpu::tree_cpu_secs(&pids) - cpu_before;
        self.sink.clear();
        Point { accepted_per_s: messages as f64 / accepted.as_secs_f64(), cpu_ms_per_msg: cpu * 1e3 / messages as f64 }
    }

    fn wait_drained(&self, variant: Variant) {
        let deadline = Instant::now() + Duration::from_secs(600);
        while self.queued(variant) > 0 {
            assert!(Instant::now() < deadline, "the queue never drained");
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Sends one message down each path (untimed) and has dkimpy check what reached the sink.
    fn verify_signatures(&self) {
        for variant in VARIANTS {
            smtp_load::run(self.load(variant, 1, 1, "verify"));
            let got = self.sink.wait_for(1, Duration::from_secs(60));
            let [message]: [Delivered; 1] = got
                .try_into()
                .unwrap_or_else(|g: Vec<Delivered>| panic!("expected one message at the sink, got {}", g.len()));
            self.wait_drained(variant);
            self.sink.clear();
            let text = message.text();
            let signatures = text.lines().filter(|l| l.to_ascii_lowercase().starts_with("dkim-signature:")).count();
            match variant {
                Variant::RelaykeySigned => dkimpy_verify("relaykey", &message.data, &self.relay_records),
                Variant::PostfixOpenDkim => dkimpy_verify("Postfix+OpenDKIM", &message.data, &self.opendkim.records),
                Variant::RelaykeyUnsigned | Variant::PostfixNoMilter => {
                    assert_eq!(signatures, 0, "an unsigned path signed:\n{text}");
                }
            }
            if matches!(variant, Variant::RelaykeySigned | Variant::PostfixOpenDkim) {
                assert_eq!(signatures, self.algorithms.len(), "expected one signature per algorithm:\n{text}");
            }
        }
    }
}

/// Makes relaykey's keys for SIGNED, activates them, and returns their DNS records.
fn relaykey_keys(relay: &Relay, algorithms: &[Algorithm]) -> Vec<(String, String)> {
    let which = match algorithms {
        [Algorithm::Rsa] => "rsa",
        [Algorithm::Ed25519] => "ed25519",
        _ => "both",
    };
    let made = relay.cli_json(&["dkim", "generate", SIGNED, "--algorithm", which, "--json"]);
    let made = made.as_array().cloned().unwrap_or_else(|| vec![made]);
    let mut selectors: Vec<String> = made.iter().filter_map(|k| k["selector"].as_str().map(str::to_string)).collect();
    selectors.dedup();
    for selector in &selectors {
        relay.cli(&["dkim", "activate", SIGNED, selector]);
    }
    let listed = relay.cli_json(&["dkim", "list", "--json"]);
    let keys: Vec<(String, String)> = listed
        .as_array()
        .into_iter()
        .flatten()
        .filter(|k| k["domain"] == SIGNED && k["state"] == "active")
        .filter_map(|k| Some((k["dns"]["name"].as_str()?.to_string(), k["dns"]["value"].as_str()?.to_string())))
        .collect();
    assert_eq!(keys.len(), algorithms.len(), "expected one active key per algorithm for {SIGNED}: {listed}");
    keys
}

/// dkimpy and the Ed25519 it needs import in the system Python.
fn dkimpy_installed() -> bool {
    Command::new("/usr/bin/python3").args(["-c", "import dkim, nacl"]).status().is_ok_and(|s| s.success())
}

/// Every DKIM-Signature of `message` verifies with dkimpy against `records`.
fn dkimpy_verify(who: &str, message: &[u8], records: &[(String, String)]) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (msg, keys) = (dir.path().join("message.eml"), dir.path().join("keys.json"));
    std::fs::write(&msg, message).expect("write message");
    let map: serde_json::Map<String, serde_json::Value> =
        records.iter().map(|(n, v)| (n.clone(), serde_json::Value::from(v.as_str()))).collect();
    std::fs::write(&keys, serde_json::Value::Object(map).to_string()).expect("write keys");
    let out = Command::new("/usr/bin/python3").arg(VERIFIER).arg(&msg).arg(&keys).output().expect("run dkimpy");
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{who}: dkimpy does not verify:\n{report}{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(message)
    );
    println!("dkimpy, {who}: {}", report.trim().replace('\n', ", "));
}

/// The 1-minute load average.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| Some(l.split_whitespace().next()?.to_string()))
        .unwrap_or_default()
}

fn count_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries.flatten().map(|e| if e.path().is_dir() { count_files(&e.path()) } else { 1 }).sum()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 { v[n / 2] } else { (v[n / 2 - 1] + v[n / 2]) / 2.0 }
}

/// `median [min-max]`.
fn spread(v: &[f64], decimals: usize) -> String {
    let (lo, hi) = v.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
    format!("{:.d$} [{:.d$}-{:.d$}]", median(v.to_vec()), lo, hi, d = decimals)
}

fn print_table(levels: &[usize], results: &[(usize, Variant, Vec<Point>)]) {
    let points = |s: usize, v: Variant| -> &[Point] {
        results.iter().find(|(ls, lv, _)| *ls == s && *lv == v).map_or(&[], |(_, _, p)| p.as_slice())
    };
    let per_round = |s: usize, v: Variant, f: fn(&Point) -> f64| -> Vec<f64> { points(s, v).iter().map(f).collect() };
    let zip = |a: Vec<f64>, b: Vec<f64>, f: fn(f64, f64) -> f64| -> Vec<f64> {
        a.into_iter().zip(b).map(|(x, y)| f(x, y)).collect()
    };
    let rate = |p: &Point| p.accepted_per_s;
    let cpu = |p: &Point| p.cpu_ms_per_msg;
    println!();
    println!("accepted messages/s, median [min-max] over rounds");
    println!(
        "{:>8} | {:>22} {:>22} | {:>22} {:>22} | {:>18}",
        "sessions",
        "relaykey signed",
        "relaykey unsigned",
        "Postfix+OpenDKIM",
        "Postfix no milter",
        "signed ratio rk/pf"
    );
    for &s in levels {
        let ratio =
            zip(per_round(s, Variant::RelaykeySigned, rate), per_round(s, Variant::PostfixOpenDkim, rate), |a, b| {
                a / b
            });
        println!(
            "{:>8} | {:>22} {:>22} | {:>22} {:>22} | {:>18}",
            s,
            spread(&per_round(s, Variant::RelaykeySigned, rate), 1),
            spread(&per_round(s, Variant::RelaykeyUnsigned, rate), 1),
            spread(&per_round(s, Variant::PostfixOpenDkim, rate), 1),
            spread(&per_round(s, Variant::PostfixNoMilter, rate), 1),
            spread(&ratio, 2),
        );
    }
    println!();
    println!(
        "server CPU ms per message (accept + deliver), the signing cost = signed - unsigned (same round), \
         and Postfix+OpenDKIM's CPU per signed message / relaykey's"
    );
    println!(
        "{:>8} | {:>20} {:>20} {:>20} | {:>20} {:>20} {:>20} | {:>18}",
        "sessions",
        "relaykey signed",
        "relaykey unsigned",
        "rk signing cost",
        "Postfix+OpenDKIM",
        "Postfix no milter",
        "pf milter+signing",
        "signed CPU pf/rk"
    );
    for &s in levels {
        let rk = (per_round(s, Variant::RelaykeySigned, cpu), per_round(s, Variant::RelaykeyUnsigned, cpu));
        let pf = (per_round(s, Variant::PostfixOpenDkim, cpu), per_round(s, Variant::PostfixNoMilter, cpu));
        println!(
            "{:>8} | {:>20} {:>20} {:>20} | {:>20} {:>20} {:>20} | {:>18}",
            s,
            spread(&rk.0, 3),
            spread(&rk.1, 3),
            spread(&zip(rk.0.clone(), rk.1.clone(), |a, b| a - b), 3),
            spread(&pf.0, 3),
            spread(&pf.1, 3),
            spread(&zip(pf.0.clone(), pf.1.clone(), |a, b| a - b), 3),
            spread(&zip(pf.0.clone(), rk.0.clone(), |a, b| a / b), 2),
        );
    }
    println!();
    println!("wall time per accepted message, signed - unsigned (ms, from the accept rates of the same round)");
    for &s in levels {
        let wall = |v: Variant| per_round(s, v, rate).into_iter().map(|r| 1e3 / r).collect::<Vec<_>>();
        println!(
            "{:>8} | relaykey {:>20} | Postfix+OpenDKIM vs no milter {:>20}",
            s,
            spread(&zip(wall(Variant::RelaykeySigned), wall(Variant::RelaykeyUnsigned), |a, b| a - b), 3),
            spread(&zip(wall(Variant::PostfixOpenDkim), wall(Variant::PostfixNoMilter), |a, b| a - b), 3),
        );
    }
}
