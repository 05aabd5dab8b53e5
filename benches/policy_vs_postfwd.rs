//! Policy requests per second and p99 latency, relaykey against postfwd (Debian's postfwd2)
//! running the equivalent rule — a per-`sasl_username` message rate limit checked at DATA,
//! set high enough never to trigger — driven by the same load client over Unix sockets at 1, 8
//! and 64 persistent connections, one request in flight per connection (as smtpd does).
//!
//! Run: `cargo bench --bench policy_vs_postfwd` (needs /usr/sbin/postfwd2; `BENCH_SECS=N` sets
//! the measuring time per point, default 3). Both servers log each decision to /dev/null.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const USERS: usize = 100;

fn request(n: u64) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\nclient_address=192.0.2.{}\n\
         client_name=unknown\nclient_port={}\nreverse_client_name=unknown\nserver_address=127.0.0.1\nserver_port=587\n\
         helo_name=client.example\nsender=user{u}@example.com\nrecipient=rcpt@example.net\nrecipient_count=1\n\
         queue_id=ABC{n}\ninstance=bench.{n}\nsize=1024\netrn_domain=\nstress=\nsasl_method=PLAIN\n\
         sasl_username=user{u}@example.com\nsasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\n\
         ccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\nencryption_cipher=TLS_AES_256_GCM_SHA384\n\
         encryption_keysize=256\npolicy_context=session\n\n",
        1 + n % 200,
        1024 + n % 60000,
        u = n as usize % USERS,
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
fn load(socket: &Path, conns: usize, secs: f64) -> Point {
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
                        s.write_all(&request(n)).await.expect("write");
                        let reply = read_reply(&mut s, &mut buf).await;
                        assert_eq!(reply, "action=DUNNO", "the rule must not trigger");
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

fn wait_until_answers(socket: &Path, child: &mut Child, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(mut s) = std::os::unix::net::UnixStream::connect(socket) {
            use std::io::{Read, Write};
            s.write_all(&request(0)).unwrap();
            let mut buf = [0u8; 256];
            if s.read(&mut buf).unwrap_or(0) > 0 {
                return;
            }
        }
        if let Ok(Some(status)) = child.try_wait()
            && what == "relaykey"
        {
            panic!("{what} exited: {status}");
        }
        assert!(Instant::now() < deadline, "{what} did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
}

struct Servers {
    dir: tempfile::TempDir,
    relaykey: Vec<Child>,
    postfwd_pid: Option<i32>,
}

impl Drop for Servers {
    fn drop(&mut self) {
        // SAFETY: signals to our own child and to postfwd's process group (it daemonizes with
        // setsid, so its pid is the group id of its cache and policy children).
        unsafe {
            for child in &self.relaykey {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            if let Some(pid) = self.postfwd_pid {
                libc::kill(-pid, libc::SIGTERM);
                std::thread::sleep(Duration::from_secs(2));
                libc::kill(-pid, libc::SIGKILL);
            }
        }
        for child in &mut self.relaykey {
            let _ = child.wait();
        }
        let _ = &self.dir;
    }
}

/// Starts `relaykey serve` with its policy socket at `<dir>/<name>.sock` and `policy` keys.
fn start_relaykey(t: &Path, name: &str, policy: &str) -> (Child, PathBuf) {
    let sock = t.join(format!("{name}.sock"));
    let config = t.join(format!("{name}.toml"));
    std::fs::write(
        &config,
        format!(
            "database = \"{t}/relaykey.db\"\nlog_level = \"{level}\"\n[sasl]\nenabled = false\n[policy]\n\
             socket = \"{s}\"\nmessages_per_minute = 1000000000\n{policy}",
            t = t.display(),
            s = sock.display(),
            level = std::env::var("BENCH_LOG").unwrap_or_else(|_| "info".into()),
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
    wait_until_answers(&sock, &mut child, "relaykey");
    (child, sock)
}

/// relaykey with the equivalent rule only, relaykey with its default rules on top (revocation:
/// a store lookup per request), and postfwd.
fn start() -> (Servers, [PathBuf; 3]) {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().to_path_buf();
    let pf_sock = t.join("postfwd.sock");
    // The accounts the requests name, so that the revocation check finds them enabled.
    let mut store = relaykey::store::Store::open(&t.join("relaykey.db")).unwrap();
    for u in 0..USERS {
        store.add_account(&relaykey::address::EmailAddress::parse(&format!("user{u}@example.com")).unwrap()).unwrap();
    }
    drop(store);
    let (rate_only, rk_sock) = start_relaykey(&t, "relaykey", "revocation = false\n");
    let (full, full_sock) = start_relaykey(&t, "relaykey-full", "");

    let rules = t.join("postfwd.cf");
    std::fs::write(
        &rules,
        "id=RATE; protocol_state==DATA; sasl_username=~.; \
         action=rate(sasl_username/1000000000/60/450 4.7.1 message rate limit exceeded)\n",
    )
    .unwrap();
    let pid_file = t.join("postfwd.pid");
    let mut postfwd = Command::new("/usr/sbin/postfwd2")
        .arg("--daemon")
        .arg("--file")
        .arg(&rules)
        .args(["--proto", "unix", "--port"])
        .arg(&pf_sock)
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
    let mut servers = Servers { dir, relaykey: vec![rate_only, full], postfwd_pid: None };
    wait_until_answers(&pf_sock, &mut postfwd, "postfwd");
    servers.postfwd_pid = std::fs::read_to_string(&pid_file).ok().and_then(|p| p.trim().parse().ok());
    let _ = postfwd.wait();
    (servers, [rk_sock, full_sock, pf_sock])
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if !Path::new("/usr/sbin/postfwd2").exists() {
        eprintln!("policy_vs_postfwd: /usr/sbin/postfwd2 missing (apt-get install postfwd); skipped");
        return;
    }
    let secs: f64 = std::env::var("BENCH_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(3.0);
    let (servers, [rk, full, pf]) = start();
    println!("policy DATA request, per-sasl_username rate rule; {secs} s per point; same load client");
    println!(
        "{:>5} | {:>12} {:>9} {:>9} | {:>12} {:>9} {:>9} | {:>8} {:>9} | {:>14} {:>9}",
        "conns", "relaykey r/s", "p50", "p99", "postfwd r/s", "p50", "p99", "r/s x", "p99 x", "+revocation r/s", "p99"
    );
    for conns in [1, 8, 64] {
        let r = load(&rk, conns, secs);
        let p = load(&pf, conns, secs);
        let f = load(&full, conns, secs);
        println!(
            "{conns:>5} | {:>12.0} {:>9.1?} {:>9.1?} | {:>12.0} {:>9.1?} {:>9.1?} | {:>7.1}x {:>8.1}x | {:>14.0} {:>9.1?}",
            r.rps,
            r.p50,
            r.p99,
            p.rps,
            p.p50,
            p.p99,
            r.rps / p.rps,
            p.p99.as_secs_f64() / r.p99.as_secs_f64(),
            f.rps,
            f.p99,
        );
    }
    drop(servers);
}
