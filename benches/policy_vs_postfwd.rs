//! Policy requests per second and latency: relaykey against postfwd (Debian's postfwd2)
//! running the equivalent rule — a per-`sasl_username` message rate limit checked at DATA, set
//! high enough never to trigger — and against a do-nothing server that answers `DUNNO` to
//! everything (the floor, `support/policy_floor.rs`). relaykey runs its default rules on top
//! (session limit and age, revocation) with its default logging.
//!
//! Two kinds of requests: unauthenticated (no `sasl_username`), and authenticated ones whose
//! `sasl_username` and client address belong to a login made over relaykey's SASL socket
//! before measuring, so that every request re-checks that login. Each is driven by the same
//! load client over Unix sockets at 1, 8 and 64 persistent connections, one request in flight
//! per connection (as smtpd does).
//!
//! Run: `cargo bench --bench policy_vs_postfwd` (postfwd columns need /usr/sbin/postfwd2;
//! `BENCH_SECS=N` sets the measuring time per point, default 3; `BENCH_REQUESTS=unauth|sasl_user`
//! and `BENCH_CONNS=N` run one kind or one connection count). The servers log to /dev/null.

#[path = "support/policy_floor.rs"]
mod policy_floor;
#[path = "../tests/support/sasl_client.rs"]
mod sasl_client;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::sasl::codec::Reply;
use relaykey::store::{NewSmtpCredential, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const USERS: usize = 100;
const POSTFWD: &str = "/usr/sbin/postfwd2";
/// The argument that makes this binary the floor server instead of the benchmark.
const FLOOR_ARG: &str = "--policy-floor";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Unauthenticated,
    Authenticated,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Self::Unauthenticated => "unauth",
            Self::Authenticated => "sasl_user",
        }
    }
}

fn user(u: usize) -> String {
    format!("user{u}@example.com")
}

/// Each user logs in from an address of its own, and its requests come from there.
fn address_of(u: usize) -> String {
    format!("192.0.2.{}", 1 + u % 200)
}

fn request(n: u64, kind: Kind) -> Vec<u8> {
    let u = n as usize % USERS;
    let sasl_username = match kind {
        Kind::Unauthenticated => String::new(),
        Kind::Authenticated => user(u),
    };
    format!(
        "request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\nclient_address={ip}\n\
         client_name=unknown\nclient_port={port}\nreverse_client_name=unknown\nserver_address=127.0.0.1\nserver_port=587\n\
         helo_name=client.example\nsender={sender}\nrecipient=rcpt@example.net\nrecipient_count=1\n\
         queue_id=ABC{n}\ninstance=bench.{n}\nsize=1024\netrn_domain=\nstress=\nsasl_method=PLAIN\n\
         sasl_username={sasl_username}\nsasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n\
         ccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n\
         encryption_keysize=256\npolicy_context=session\n\n",
        ip = address_of(u),
        port = 1024 + n % 60000,
        sender = user(u),
    )
    .into_bytes()
}

async fn read_reply(stream: &mut UnixStream, buf: &mut Vec<u8>) -> String {
    buf.clear();
    let mut chunk = [0u8; 512];
    while !buf.ends_with(b"\n\n") {
        let n = stream.read(&mut chunk).await.expect("read");
        assert!(n > 0, "server closed the connection");
        buf.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(buf).trim_end().to_string()
}

struct Point {
    rps: f64,
    p50: Duration,
    p99: Duration,
}

/// `conns` connections, each sending requests back to back for `secs` after a short warm-up.
fn load(socket: &Path, kind: Kind, conns: usize, secs: f64) -> Point {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut streams = Vec::new();
        for _ in 0..conns {
            streams.push(UnixStream::connect(socket).await.expect("connect"));
        }
        let warmup = Instant::now() + Duration::from_millis(500);
        let end = warmup + Duration::from_secs_f64(secs);
        let tasks: Vec<_> = streams
            .into_iter()
            .enumerate()
            .map(|(i, mut s)| {
                tokio::spawn(async move {
                    let mut lat = Vec::new();
                    let mut buf = Vec::new();
                    let mut n = (i as u64) << 32;
                    loop {
                        let t0 = Instant::now();
                        if t0 >= end {
                            return lat;
                        }
                        s.write_all(&request(n, kind)).await.expect("write");
                        let reply = read_reply(&mut s, &mut buf).await;
                        assert_eq!(reply, "action=DUNNO", "the rules must not trigger");
                        if t0 >= warmup {
                            lat.push(t0.elapsed());
                        }
                        n += 1;
                    }
                })
            })
            .collect();
        let mut all = Vec::new();
        for t in tasks {
            all.extend(t.await.unwrap());
        }
        all.sort();
        let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
        Point { rps: all.len() as f64 / secs, p50: pct(0.50), p99: pct(0.99) }
    })
}

fn wait_until_answers(socket: &Path, child: &mut Child, what: &str, detached: bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
            use std::io::{Read, Write};
            s.write_all(&request(0, Kind::Unauthenticated)).unwrap();
            let mut buf = [0u8; 256];
            if s.read(&mut buf).unwrap_or(0) > 0 {
                return;
            }
        }
        // postfwd forks into the background: its first process exits at once.
        if !detached && let Ok(Some(status)) = child.try_wait() {
            panic!("{what} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Servers {
    dir: tempfile::TempDir,
    children: Vec<Child>,
    postfwd_pid: Option<i32>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        // SAFETY: signals to our own children and to postfwd's process group (it daemonizes with
        // setsid, so its pid is the group id of its cache and policy children).
        unsafe {
            for child in &self.children {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            if let Some(pid) = self.postfwd_pid {
                libc::kill(-pid, libc::SIGTERM);
                std::thread::sleep(Duration::from_secs(2));
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        for child in &mut self.children {
            let _ = child.wait();
        }
        let _ = &self.dir;
    }
}

/// A server to measure: its socket and, for the CPU time it spends, its process.
struct Target {
    socket: PathBuf,
    pid: Option<u32>,
}

struct Sockets {
    floor: Target,
    relaykey: Target,
    postfwd: Option<PathBuf>,
}

/// CPU time (user and system, all threads) that process `pid` has used, in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces; fields count from after its closing parenthesis.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// The server's CPU time per answered request, in microseconds, over one [`load`] run.
fn measure(target: &Target, kind: Kind, conns: usize, secs: f64) -> (Point, Option<f64>) {
    let before = target.pid.and_then(cpu_ticks);
    let started = Instant::now();
    let point = load(&target.socket, kind, conns, secs);
    let elapsed = started.elapsed().as_secs_f64();
    let after = target.pid.and_then(cpu_ticks);
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    // The whole run (warm-up included) against the requests of the whole run.
    let cpu = before.zip(after).map(|(b, a)| (a - b) as f64 / hz * 1e6 / (point.rps * elapsed));
    (point, cpu)
}

/// The accounts the requests name, each with an SMTP credential (cheap hashes: only the
/// logins before measuring verify them). Returns the passwords.
fn create_users(db: &Path) -> Vec<String> {
    let mut store = Store::open(db).unwrap();
    let cheap = relaykey::config::AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() };
    (0..USERS)
        .map(|u| {
            let email = EmailAddress::parse(&user(u)).unwrap();
            store.add_account(&email).unwrap();
            let new = NewSmtpCredential { username: None, allow: Default::default() };
            let (_, password) = store.create_smtp_credential(&email, new, &cheap.hash_params()).unwrap();
            password.expose().to_string()
        })
        .collect()
}

/// `relaykey serve` with SASL and policy on, default rules plus the rate rule, default logging.
fn start_relaykey(t: &Path) -> (Child, PathBuf, PathBuf) {
    let (policy, sasl) = (t.join("relaykey-policy.sock"), t.join("relaykey-auth.sock"));
    let config = t.join("relaykey.toml");
    std::fs::write(
        &config,
        format!(
            "database = \"{t}/relaykey.db\"\n[sasl]\nsocket = \"{sasl}\"\nsocket_mode = \"0600\"\n\
             [policy]\nsocket = \"{policy}\"\nmessages_per_minute = 1000000000\n",
            t = t.display(),
            sasl = sasl.display(),
            policy = policy.display(),
        ),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_relaykey"))
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_until_answers(&policy, &mut child, "relaykey", false);
    (child, policy, sasl)
}

/// Each user logs in once over the SASL socket from its own address, as smtpd would before
/// its session's requests; the policy server then re-checks that login at every request.
fn log_everyone_in(sasl: &Path, passwords: &[String]) {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let mut c = sasl_client::Client::connect(sasl).await.expect("connect to relaykey's SASL socket");
        for (u, password) in passwords.iter().enumerate() {
            let id = u as u32 + 1;
            let reply = c.plain(id, &user(u), password, Some(&address_of(u))).await;
            assert!(matches!(reply, Reply::Ok { .. }), "login of {} failed: {reply:?}", user(u));
        }
    });
}

fn start_floor(t: &Path) -> (Child, PathBuf) {
    let socket = t.join("floor.sock");
    let mut child = Command::new(std::env::current_exe().expect("own path"))
        .arg(FLOOR_ARG)
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the floor server");
    wait_until_answers(&socket, &mut child, "the floor server", false);
    (child, socket)
}

/// postfwd with the rate rule; `None` when it is not installed.
fn start_postfwd(t: &Path) -> Option<(i32, PathBuf)> {
    if !Path::new(POSTFWD).exists() {
        return None;
    }
    let socket = t.join("postfwd.sock");
    let rules = t.join("postfwd.cf");
    std::fs::write(
        &rules,
        "id=RATE; protocol_state==DATA; sasl_username=~.; \
         action=rate(sasl_username/1000000000/60/450 4.7.1 message rate limit exceeded)\n",
    )
    .unwrap();
    let pid_file = t.join("postfwd.pid");
    let mut postfwd = Command::new(POSTFWD)
        .arg("--daemon")
        .arg("--file")
        .arg(&rules)
        .args(["--proto", "unix", "--port"])
        .arg(&socket)
        .args(["-u", "root", "-g", "root", "--pidfile"])
        .arg(&pid_file)
        // No request cache (every request is distinct anyway), no DNS, log to stdout (/dev/null)
        // rather than a syslog socket that a container may lack.
        .args(["--cache=0", "--nodns", "--noidlestats", "--norulestats", "--stdout"])
        // One child per persistent connection, all forked before measuring.
        .args(["--min_servers", "70", "--max_servers", "100"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("postfwd2");
    wait_until_answers(&socket, &mut postfwd, "postfwd", true);
    let _ = postfwd.wait();
    let pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok())?;
    Some((pid, socket))
}

fn start() -> (Servers, Sockets) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().to_path_buf();
    let passwords = create_users(&t.join("relaykey.db"));
    let (relaykey_child, relaykey_sock, sasl_sock) = start_relaykey(&t);
    let (floor_child, floor_sock) = start_floor(&t);
    let relaykey = Target { socket: relaykey_sock, pid: Some(relaykey_child.id()) };
    let floor = Target { socket: floor_sock, pid: Some(floor_child.id()) };
    let mut servers = Servers { dir, children: vec![relaykey_child, floor_child], postfwd_pid: None };
    log_everyone_in(&sasl_sock, &passwords);
    let postfwd = start_postfwd(&t);
    servers.postfwd_pid = postfwd.as_ref().map(|(pid, _)| *pid);
    (servers, Sockets { floor, relaykey, postfwd: postfwd.map(|(_, s)| s) })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map_or_else(|_| "?".into(), |l| l.split(' ').take(3).collect::<Vec<_>>().join(" "))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == FLOOR_ARG) {
        let socket = args.get(i + 1).expect("the floor's socket path");
        policy_floor::serve(Path::new(socket));
        return;
    }
    if args.iter().any(|a| a == "--list") {
        return;
    }
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let (servers, sockets) = start();
    if sockets.postfwd.is_none() {
        eprintln!("policy_vs_postfwd: {POSTFWD} missing (apt-get install postfwd); no postfwd columns");
    }
    println!("policy DATA requests, per-sasl_username rate rule; {secs} s per point; same load client");
    println!("load average before: {}", load_average());
    println!("CPU µs/req: the server's own CPU time (all threads) per request, from /proc");
    println!(
        "{:<9} {:>5} | {:>10} {:>10} | {:>12} {:>8} {:>10} {:>9} {:>9} | {:>11} {:>9} | {:>9}",
        "requests",
        "conns",
        "floor r/s",
        "CPU µs/req",
        "relaykey r/s",
        "of floor",
        "CPU µs/req",
        "p50",
        "p99",
        "postfwd r/s",
        "p99",
        "× postfwd"
    );
    let micros = |cpu: Option<f64>| cpu.map_or_else(|| "-".to_string(), |c| format!("{c:.1}"));
    // Knobs for profiling one point: BENCH_REQUESTS=unauth|sasl_user, BENCH_CONNS=8.
    let only = std::env::var("BENCH_REQUESTS").ok();
    let kinds = [Kind::Unauthenticated, Kind::Authenticated]
        .into_iter()
        .filter(|k| only.as_deref().is_none_or(|o| o == k.label()));
    let conn_counts: Vec<usize> =
        std::env::var("BENCH_CONNS").ok().and_then(|c| c.parse().ok()).map_or(vec![1, 8, 64], |c| vec![c]);
    for kind in kinds {
        for &conns in &conn_counts {
            let (floor, floor_cpu) = measure(&sockets.floor, kind, conns, secs);
            let (r, r_cpu) = measure(&sockets.relaykey, kind, conns, secs);
            let p = sockets.postfwd.as_ref().map(|s| load(s, kind, conns, secs));
            let (p_rps, p_p99, times) = match &p {
                Some(p) => (format!("{:.0}", p.rps), format!("{:.1?}", p.p99), format!("{:.1}x", r.rps / p.rps)),
                None => ("-".into(), "-".into(), "-".into()),
            };
            println!(
                "{:<9} {conns:>5} | {:>10.0} {:>10} | {:>12.0} {:>7.0}% {:>10} {:>9.1?} {:>9.1?} | {p_rps:>11} {p_p99:>9} | {times:>9}",
                kind.label(),
                floor.rps,
                micros(floor_cpu),
                r.rps,
                100.0 * r.rps / floor.rps,
                micros(r_cpu),
                r.p50,
                r.p99,
            );
        }
    }
    println!("load average after: {}", load_average());
    drop(servers);
}
