//! relaykey's SASL socket against Dovecot 2.3's auth service, side by side in one run: the same
//! load client (AUTH PLAIN, one request at a time per connection, like Postfix's smtpd) against
//! both sockets, at 1, 8 and 64 connections, cold (every login a credential never seen) and
//! warm (a few credentials over and over: relaykey's cache against Dovecot's auth_cache), with
//! the peak RSS of both. Both verify the very same argon2id PHC strings.
//!
//! Run as root with dovecot-core installed:  cargo bench --bench sasl_vs_dovecot
//! Knobs (env): BENCH_WARM_SECS (default 3), BENCH_COLD_PER_CONN (default 4, at least 64 per
//! level), BENCH_LEVELS (default 1,8,64).

#[path = "support/dovecot_auth.rs"]
mod dovecot_auth;
#[path = "../tests/support/sasl_client.rs"]
mod sasl_client;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dovecot_auth::DovecotAuth;
use relaykey::address::EmailAddress;
use relaykey::sasl::codec::Reply;
use relaykey::secret::HashParams;
use relaykey::store::{NewSmtpCredential, Store};
use sasl_client::Client;
use support::daemon::{Daemon, serve};

const LEVELS: [usize; 3] = [1, 8, 64];

/// `BENCH_LEVELS=8,64` runs only those connection counts.
fn levels() -> Vec<usize> {
    std::env::var("BENCH_LEVELS")
        .ok()
        .map(|v| v.split(',').filter_map(|n| n.trim().parse().ok()).collect())
        .filter(|l: &Vec<usize>| !l.is_empty())
        .unwrap_or_else(|| LEVELS.to_vec())
}

struct User {
    name: String,
    password: String,
}

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` runs us with no such flag: stay quick.
    if !std::env::args().any(|a| a == "--bench") {
        println!("sasl_vs_dovecot: run with `cargo bench --bench sasl_vs_dovecot`");
        return;
    }
    if Command::new("dovecot").arg("--version").output().is_err() {
        eprintln!("sasl_vs_dovecot: dovecot is not installed; nothing to compare against");
        std::process::exit(1);
    }
    let dir = tempfile::Builder::new().prefix("relaykey-bench").tempdir().unwrap();
    // Dovecot's auth process runs unprivileged and reads the passwd-file in here.
    std::fs::set_permissions(dir.path(), std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let params = HashParams::default();
    let cold_per_conn = env_num("BENCH_COLD_PER_CONN", 4) as usize;
    let levels = levels();
    let cold_counts: Vec<usize> = levels.iter().map(|&c| (c * cold_per_conn).max(64)).collect();
    let total = cold_counts.iter().sum::<usize>() + 8;
    println!(
        "creating {total} credentials (argon2id m={} KiB, t={}, p={}) ...",
        params.memory_kib, params.iterations, params.parallelism
    );
    let (users, phcs) = create_users(dir.path(), total, &params);
    let (warm_users, mut cold_pool) = (&users[..8], &users[8..]);

    let relaykey = RelaykeyProc::start(dir.path());
    let dovecot = DovecotProc { auth: DovecotAuth::start(dir.path(), &phcs) };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    let mut rows = Vec::new();
    for (&conns, &count) in levels.iter().zip(&cold_counts) {
        let (batch, rest) = cold_pool.split_at(count);
        cold_pool = rest;
        let r = rt.block_on(run_cold(&relaykey.socket, conns, batch, relaykey.pids()));
        let d = rt.block_on(run_cold(&dovecot.auth.socket, conns, batch, dovecot.pids()));
        rows.push(("cold", conns, r, d));
    }
    let warm_secs = Duration::from_secs(env_num("BENCH_WARM_SECS", 3));
    rt.block_on(prime(&relaykey.socket, warm_users));
    rt.block_on(prime(&dovecot.auth.socket, warm_users));
    for &conns in &levels {
        let r = rt.block_on(run_warm(&relaykey.socket, conns, warm_users, warm_secs, relaykey.pids()));
        let d = rt.block_on(run_warm(&dovecot.auth.socket, conns, warm_users, warm_secs, dovecot.pids()));
        rows.push(("warm", conns, r, d));
    }
    print_table(&rows);
}

/// One account per credential (an account holds at most 15); the same PHC strings go into
/// Dovecot's passwd-file, so both servers pay exactly the same argon2 cost.
fn create_users(dir: &Path, n: usize, params: &HashParams) -> (Vec<User>, Vec<(String, String)>) {
    let mut store = Store::open(&dir.join("relaykey.db")).unwrap();
    let mut users = Vec::with_capacity(n);
    let mut phcs = Vec::with_capacity(n);
    for i in 0..n {
        let email = EmailAddress::parse(&format!("user{i}@bench.example")).unwrap();
        store.add_account(&email).unwrap();
        let (cred, secret) = store
            .create_smtp_credential(&email, NewSmtpCredential { username: None, allow: Default::default() }, params)
            .unwrap();
        phcs.push((cred.username.to_string(), cred.hash.clone()));
        users.push(User { name: cred.username.to_string(), password: secret.expose().to_string() });
    }
    (users, phcs)
}

/// `relaykey serve` with the SASL front end only, over the store `create_users` filled, with the
/// production argon2 parameters (as the PHC strings).
struct RelaykeyProc {
    daemon: Daemon,
    socket: PathBuf,
}

impl RelaykeyProc {
    fn start(dir: &Path) -> Self {
        let p = HashParams::default();
        let daemon = serve()
            .toml(&format!(
                "database = \"{db}\"\nlog_level = \"warn\"\n[auth]\nargon2_memory_kib = {m}\nargon2_iterations = {t}\n\
                 argon2_parallelism = {par}\n[policy]\nenabled = false\n[sasl]\nsocket_mode = \"0600\"\n\
                 max_in_flight_per_ip = 1000\n",
                db = dir.join("relaykey.db").display(),
                m = p.memory_kib,
                t = p.iterations,
                par = p.parallelism,
            ))
            .start();
        let socket = daemon.sasl_socket();
        Self { daemon, socket }
    }

    fn pids(&self) -> (Vec<u32>, Vec<u32>) {
        (vec![self.daemon.pid()], Vec::new())
    }
}

/// The shared auth-only Dovecot, with the process accounting this bench reports.
struct DovecotProc {
    auth: DovecotAuth,
}

impl DovecotProc {
    /// The master and all its children (auth, log, config, anvil, ...), and the auth process.
    fn pids(&self) -> (Vec<u32>, Vec<u32>) {
        let all = self.all_pids();
        let auth = all
            .iter()
            .copied()
            .filter(|p| std::fs::read_to_string(format!("/proc/{p}/comm")).is_ok_and(|c| c.trim() == "auth"))
            .collect();
        (all, auth)
    }

    fn all_pids(&self) -> Vec<u32> {
        let Some(master) = self.auth.master_pid() else { return Vec::new() };
        let mut pids = vec![master];
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            let ppid = stat.rsplit(')').next().and_then(|s| s.split_whitespace().nth(1)).and_then(|p| p.parse().ok());
            if ppid == Some(master) {
                pids.push(pid);
            }
        }
        pids
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:").and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()))
        .unwrap_or(0)
}

/// Samples the summed RSS of `pids` until dropped; keeps the peak.
struct RssSampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl RssSampler {
    fn start(pids: Vec<u32>) -> Self {
        let (stop, peak) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicU64::new(0)));
        let (s, p) = (stop.clone(), peak.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                p.fetch_max(pids.iter().map(|&pid| rss_kib(pid)).sum(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Self { stop, peak, thread: Some(thread) }
    }

    fn finish(mut self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.peak.load(Ordering::Relaxed)
    }
}

#[derive(Clone, Copy)]
struct Stats {
    per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    failures: usize,
    rss_kib: u64,
    /// Dovecot only: the auth process alone.
    auth_rss_kib: u64,
}

fn stats(mut lat: Vec<Duration>, failures: usize, elapsed: Duration, rss_kib: u64) -> Stats {
    lat.sort();
    let pick = |q: f64| lat.get(((lat.len() as f64 - 1.0) * q).round() as usize).map_or(0.0, |d| d.as_secs_f64() * 1e3);
    Stats {
        per_sec: lat.len() as f64 / elapsed.as_secs_f64(),
        p50_ms: pick(0.50),
        p99_ms: pick(0.99),
        failures,
        rss_kib,
        auth_rss_kib: 0,
    }
}

async fn login(c: &mut Client, id: u32, u: &User) -> bool {
    matches!(c.plain(id, &u.name, &u.password, Some("127.0.0.1")).await, Reply::Ok { .. })
}

/// One load task's logins: their latencies, how many failed, and the last request id.
#[derive(Default)]
struct Tally {
    lat: Vec<Duration>,
    failed: usize,
    id: u32,
}

impl Tally {
    /// Logs in once on `c` under the next request id and records the outcome.
    async fn login(&mut self, c: &mut Client, name: &str, password: &str) {
        self.id += 1;
        let t = Instant::now();
        let ok = login(c, self.id, &User { name: name.to_owned(), password: password.to_owned() }).await;
        self.lat.push(t.elapsed());
        self.failed += usize::from(!ok);
    }

    /// What [`collect`] sums over the tasks.
    fn into_parts(self) -> (Vec<Duration>, usize) {
        (self.lat, self.failed)
    }
}

/// Every credential in `batch` logs in once, spread over `conns` connections.
async fn run_cold(socket: &Path, conns: usize, batch: &[User], pids: (Vec<u32>, Vec<u32>)) -> Stats {
    let users: Arc<Vec<(String, String)>> =
        Arc::new(batch.iter().map(|u| (u.name.clone(), u.password.clone())).collect());
    let next = Arc::new(AtomicU64::new(0));
    let clients = connect_all(socket, conns).await;
    let sampler = (RssSampler::start(pids.0), RssSampler::start(pids.1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mut c in clients {
        let (users, next) = (users.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let Some((name, password)) = users.get(i) else { break };
                tally.login(&mut c, name, password).await;
            }
            tally.into_parts()
        }));
    }
    collect(tasks, started, sampler).await
}

/// All connections are up before the clock starts, as Postfix's smtpd processes keep theirs:
/// a server slow to accept must not look faster by having fewer requests in flight.
async fn connect_all(socket: &Path, conns: usize) -> Vec<Client> {
    let mut clients = Vec::with_capacity(conns);
    for _ in 0..conns {
        clients.push(Client::connect(socket).await.expect("connect"));
    }
    clients
}

/// Logs in once with each warm credential so that both caches hold them.
async fn prime(socket: &Path, users: &[User]) {
    let mut c = Client::connect(socket).await.expect("connect");
    for (i, u) in users.iter().enumerate() {
        assert!(login(&mut c, i as u32 + 1, u).await, "warm-up login failed for {}", u.name);
    }
}

/// The warm credentials over and over for `secs`.
async fn run_warm(socket: &Path, conns: usize, users: &[User], secs: Duration, pids: (Vec<u32>, Vec<u32>)) -> Stats {
    let users: Arc<Vec<(String, String)>> =
        Arc::new(users.iter().map(|u| (u.name.clone(), u.password.clone())).collect());
    let clients = connect_all(socket, conns).await;
    let sampler = (RssSampler::start(pids.0), RssSampler::start(pids.1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (k, mut c) in clients.into_iter().enumerate() {
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            while started.elapsed() < secs {
                let (name, password) = &users[(k + tally.id as usize) % users.len()];
                tally.login(&mut c, name, password).await;
            }
            tally.into_parts()
        }));
    }
    collect(tasks, started, sampler).await
}

async fn collect(
    tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>,
    started: Instant,
    sampler: (RssSampler, RssSampler),
) -> Stats {
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.expect("load task");
        lat.extend(l);
        failed += f;
    }
    let elapsed = started.elapsed();
    let mut s = stats(lat, failed, elapsed, sampler.0.finish());
    s.auth_rss_kib = sampler.1.finish();
    s
}

fn print_table(rows: &[(&str, usize, Stats, Stats)]) {
    println!();
    println!(
        "| scenario | conns | relaykey logins/s | p50 ms | p99 ms | RSS MiB | Dovecot logins/s | p50 ms | p99 ms | RSS MiB all (auth) | speed ratio | p99 ratio |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (name, conns, r, d) in rows {
        println!(
            "| {name} | {conns} | {:.0} | {:.1} | {:.1} | {:.1} | {:.0} | {:.1} | {:.1} | {:.1} ({:.1}) | {:.2}x | {:.2}x |",
            r.per_sec,
            r.p50_ms,
            r.p99_ms,
            r.rss_kib as f64 / 1024.0,
            d.per_sec,
            d.p50_ms,
            d.p99_ms,
            d.rss_kib as f64 / 1024.0,
            d.auth_rss_kib as f64 / 1024.0,
            r.per_sec / d.per_sec.max(f64::EPSILON),
            d.p99_ms / r.p99_ms.max(f64::EPSILON),
        );
        if r.failures + d.failures > 0 {
            println!("  (failed logins: relaykey {}, dovecot {})", r.failures, d.failures);
        }
    }
    println!(
        "\nspeed ratio = relaykey logins/s ÷ Dovecot logins/s; p99 ratio = Dovecot p99 ÷ relaykey p99 (both >1 favour relaykey)."
    );
}
