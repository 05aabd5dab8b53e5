//! The same daemon on its two stores, side by side in one run: one `relaykey serve` on SQLite
//! and one on PostgreSQL 15 (a throwaway cluster on a Unix socket), with the same credentials
//! (the production argon2id parameters) and the same load at 8 connections:
//! - SASL cold: every login a credential not seen before (bounded by argon2 on both);
//! - SASL warm: a few credentials over and over (both answer from memory);
//! - policy: authenticated requests at DATA whose login was made over the SASL socket, so
//!   that each one re-checks the login.
//!
//! The ratio is PostgreSQL ÷ SQLite (1.0 = as fast). Run as root with postgresql-15 installed:
//! `cargo bench --bench store_pg_vs_sqlite` (`BENCH_SECS`, default 3, per warm/policy point;
//! `BENCH_COLD`, default 96, logins per cold point).

#[path = "../tests/support/sasl_client.rs"]
mod sasl_client;
#[path = "../tests/support/mod.rs"]
mod support;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::sasl::codec::Reply;
use relaykey::secret::HashParams;
use relaykey::store::{NewSmtpCredential, Store, StoreLocation};
use sasl_client::Client;
use support::daemon::{Daemon, serve};
use support::postgres::{PgServer, needs_postgres};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

const CONNS: usize = 8;
const WARM_USERS: usize = 8;

fn env_num(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

struct User {
    name: String,
    password: String,
}

/// (login, password, client address) of each user under load.
type Users = Arc<Vec<(String, String, String)>>;

/// The same users in `location`: one account and credential each.
fn create_users(location: &StoreLocation, n: usize, params: &HashParams) -> Vec<User> {
    let mut store = Store::connect(location).unwrap();
    (0..n)
        .map(|i| {
            let email = EmailAddress::parse(&format!("user{i}@bench.example")).unwrap();
            store.add_account(&email).unwrap();
            let new = NewSmtpCredential { username: None, allow: Default::default() };
            let (cred, secret) = store.create_smtp_credential(&email, new, params).unwrap();
            User { name: cred.username.to_string(), password: secret.expose().to_string() }
        })
        .collect()
}

fn start(database: &str) -> Daemon {
    let p = HashParams::default();
    serve()
        .database(database)
        .toml(&format!(
            "log_level = \"warn\"\n[auth]\nargon2_memory_kib = {}\nargon2_iterations = {}\nargon2_parallelism = {}\n\
             [sasl]\nsocket_mode = \"0600\"\nmax_in_flight_per_ip = 1000\n[policy]\nconnection_limit = false\n",
            p.memory_kib, p.iterations, p.parallelism
        ))
        .start()
}

/// Each user logs in from an address of its own; policy requests come from there.
fn address_of(i: usize) -> String {
    format!("192.0.2.{}", 1 + i % 200)
}

struct Point {
    per_sec: f64,
    p50: Duration,
    p99: Duration,
    failed: usize,
}

fn point(mut lat: Vec<Duration>, failed: usize, elapsed: Duration) -> Point {
    lat.sort();
    let pick = |q: f64| lat.get(((lat.len().max(1) - 1) as f64 * q) as usize).copied().unwrap_or_default();
    Point { per_sec: lat.len() as f64 / elapsed.as_secs_f64(), p50: pick(0.5), p99: pick(0.99), failed }
}

/// The load tasks' latencies and failures, as one point of the table.
async fn gather(tasks: Vec<tokio::task::JoinHandle<(Vec<Duration>, usize)>>, started: Instant) -> Point {
    let (mut lat, mut failed) = (Vec::new(), 0);
    for t in tasks {
        let (l, f) = t.await.unwrap();
        lat.extend(l);
        failed += f;
    }
    point(lat, failed, started.elapsed())
}

async fn connect_all(socket: &Path) -> Vec<Client> {
    let mut clients = Vec::new();
    for _ in 0..CONNS {
        clients.push(Client::connect(socket).await.expect("connect"));
    }
    clients
}

/// Every user of `users` logs in once (cold) or, with `until`, the users over and over.
async fn sasl(socket: &Path, users: Users, until: Option<Duration>) -> Point {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for (k, mut c) in connect_all(socket).await.into_iter().enumerate() {
        let (users, next) = (users.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut failed, mut id) = (Vec::new(), 0, 0u32);
            loop {
                let i = match until {
                    Some(secs) if started.elapsed() >= secs => break,
                    Some(_) => (k + id as usize) % users.len(),
                    None => next.fetch_add(1, Ordering::Relaxed),
                };
                let Some((name, password, ip)) = users.get(i) else { break };
                id += 1;
                let t = Instant::now();
                let ok = matches!(c.plain(id, name, password, Some(ip)).await, Reply::Ok { .. });
                lat.push(t.elapsed());
                failed += usize::from(!ok);
            }
            (lat, failed)
        }));
    }
    gather(tasks, started).await
}

fn policy_request(n: usize, user: &str, ip: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\nclient_address={ip}\n\
         client_name=unknown\nclient_port={port}\nserver_address=127.0.0.1\nserver_port=587\nhelo_name=client.example\n\
         sender={user}\nrecipient=rcpt@example.net\nrecipient_count=1\nqueue_id=Q{n}\ninstance=bench.{n}\nsize=1024\n\
         sasl_method=PLAIN\nsasl_username={user}\nencryption_protocol=TLSv1.3\npolicy_context=session\n\n",
        port = 1024 + n % 60000,
    )
    .into_bytes()
}

async fn policy(socket: &Path, users: Users, secs: Duration) -> Point {
    let started = Instant::now();
    let mut tasks = Vec::new();
    for k in 0..CONNS {
        let mut stream = UnixStream::connect(socket).await.expect("connect");
        let users = users.clone();
        tasks.push(tokio::spawn(async move {
            let (mut lat, mut failed, mut buf, mut n) = (Vec::new(), 0, Vec::new(), k);
            while started.elapsed() < secs {
                let (user, _, ip) = &users[n % users.len()];
                let t = Instant::now();
                stream.write_all(&policy_request(n, user, ip)).await.expect("write");
                buf.clear();
                let mut chunk = [0u8; 512];
                while !buf.ends_with(b"\n\n") {
                    let got = stream.read(&mut chunk).await.expect("read");
                    assert!(got > 0, "the policy server closed the connection");
                    buf.extend_from_slice(&chunk[..got]);
                }
                lat.push(t.elapsed());
                failed += usize::from(buf != b"action=DUNNO\n\n");
                n += CONNS;
            }
            (lat, failed)
        }));
    }
    gather(tasks, started).await
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("store_pg_vs_sqlite: run with `cargo bench --bench store_pg_vs_sqlite`");
        return;
    }
    if !needs_postgres() {
        eprintln!("store_pg_vs_sqlite: needs root and PostgreSQL 15 (Debian's postgresql)");
        std::process::exit(1);
    }
    let secs = Duration::from_secs(env_num("BENCH_SECS", 3));
    let cold = env_num("BENCH_COLD", 96) as usize;
    let params = HashParams::default();
    let dir = tempfile::tempdir().unwrap();
    let sqlite = dir.path().join("relaykey.db").display().to_string();
    let pg = PgServer::shared().create_database();
    println!("creating {} users in each store (argon2id m={} KiB) ...", cold + WARM_USERS, params.memory_kib);
    let mut stores = Vec::new();
    for database in [&sqlite, &pg] {
        let location = StoreLocation::parse(database, None, None).unwrap();
        let users: Vec<_> = create_users(&location, cold + WARM_USERS, &params)
            .into_iter()
            .enumerate()
            .map(|(i, u)| (u.name, u.password, address_of(i)))
            .collect();
        stores.push((start(database), users));
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let mut rows: Vec<(&str, Vec<Point>)> = Vec::new();
    let mut results = |name: &'static str, f: &dyn Fn(&Daemon, Users) -> Point| {
        let points = stores.iter().map(|(d, users)| f(d, Arc::new(users.clone()))).collect();
        rows.push((name, points));
    };
    results("SASL cold", &|d, users| {
        let batch = Arc::new(users[WARM_USERS..].to_vec());
        rt.block_on(sasl(&d.sasl_socket(), batch, None))
    });
    results("SASL warm", &|d, users| {
        let warm = Arc::new(users[..WARM_USERS].to_vec());
        rt.block_on(sasl(&d.sasl_socket(), warm, Some(secs)))
    });
    results("policy, authenticated", &|d, users| {
        let warm = Arc::new(users[..WARM_USERS].to_vec());
        rt.block_on(policy(&d.socket("policy"), warm, secs))
    });
    println!(
        "\n| load ({CONNS} connections) | SQLite /s | p50 ms | p99 ms | PostgreSQL /s | p50 ms | p99 ms | PostgreSQL ÷ SQLite |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    for (name, p) in &rows {
        let (s, g) = (&p[0], &p[1]);
        println!(
            "| {name} | {:.0} | {:.2} | {:.2} | {:.0} | {:.2} | {:.2} | {:.2} |",
            s.per_sec,
            ms(s.p50),
            ms(s.p99),
            g.per_sec,
            ms(g.p50),
            ms(g.p99),
            g.per_sec / s.per_sec.max(f64::EPSILON)
        );
        if s.failed + g.failed > 0 {
            println!("  (failed: SQLite {}, PostgreSQL {})", s.failed, g.failed);
        }
    }
}
