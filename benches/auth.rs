//! Authentications per second through the Authenticator, cold (one argon2 verification each:
//! every login a different credential) and cached, next to the bare argon2 crate verifying on
//! one core in the same run. Run: `cargo bench --bench auth` (env BENCH_LOGINS, BENCH_ARGON2_M,
//! BENCH_ARGON2_T override the defaults).

use std::sync::Arc;
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::auth::Authenticator;
use relaykey::config::AuthConfig;
use relaykey::secret::{self, Secret};
use relaykey::store::{NewSmtpCredential, Store};

fn env_or(name: &str, default: u32) -> u32 {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn per_second(n: usize, elapsed: Duration) -> f64 {
    n as f64 / elapsed.as_secs_f64()
}

async fn run_logins(auth: &Arc<Authenticator>, logins: &[(String, Secret)], concurrency: usize) -> (Duration, u64) {
    let before = auth.verifications();
    let start = Instant::now();
    let chunks: Vec<Vec<(String, Secret)>> =
        (0..concurrency).map(|c| logins.iter().skip(c).step_by(concurrency).cloned().collect()).collect();
    let mut tasks = Vec::new();
    for chunk in chunks {
        let auth = auth.clone();
        tasks.push(tokio::spawn(async move {
            for (user, secret) in chunk {
                assert!(auth.authenticate(&user, &secret, None).await.is_granted());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (start.elapsed(), auth.verifications() - before)
}

fn main() {
    let logins = env_or("BENCH_LOGINS", 64) as usize;
    let config = AuthConfig {
        argon2_memory_kib: env_or("BENCH_ARGON2_M", AuthConfig::default().argon2_memory_kib),
        argon2_iterations: env_or("BENCH_ARGON2_T", AuthConfig::default().argon2_iterations),
        ..AuthConfig::default()
    };
    let params = config.hash_params();
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "argon2id m={} KiB t={} p={}; {} CPUs; verify_threads={}; {} logins per run",
        params.memory_kib,
        params.iterations,
        params.parallelism,
        cpus,
        config.verify_threads(),
        logins
    );

    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bench.db");
    let mut store = Store::open(&path).unwrap();
    let account = EmailAddress::parse("bench@example.com").unwrap();
    let mut creds = Vec::new();
    // Accounts hold at most 15 credentials, so spread them over several.
    for i in 0..logins {
        if i % 15 == 0 {
            let a = EmailAddress::parse(&format!("bench{i}@example.com")).unwrap();
            store.add_account(&a).unwrap();
        }
        let owner = EmailAddress::parse(&format!("bench{}@example.com", i - i % 15)).unwrap();
        let username = EmailAddress::parse(&format!("user{i}@example.com")).unwrap();
        let new = NewSmtpCredential { username: Some(username.clone()), allow: Default::default() };
        let (_, secret) = store.create_smtp_credential(&owner, new, &params).unwrap();
        creds.push((username.to_string(), secret));
    }
    let _ = account;

    // The peer: the argon2 crate itself, one verification after another on one core.
    let hashes: Vec<String> = creds.iter().map(|(_, s)| params.hash(s).unwrap()).collect();
    let start = Instant::now();
    for ((_, s), h) in creds.iter().zip(&hashes) {
        assert!(secret::verify(s, h));
    }
    let bare = per_second(creds.len(), start.elapsed());
    println!("{:<34} {:>10.1} /s", "bare argon2 verify, 1 core", bare);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        for concurrency in [1usize, 2, 8] {
            // A fresh authenticator each time, so every login is cold.
            let auth = Arc::new(Authenticator::open(&path, &config).unwrap());
            let (elapsed, verifications) = run_logins(&auth, &creds, concurrency).await;
            let rate = per_second(creds.len(), elapsed);
            assert_eq!(verifications as usize, creds.len(), "one verification per cold login");
            println!(
                "{:<34} {:>10.1} /s  ({:.2}x bare argon2)",
                format!("cold, {concurrency} concurrent"),
                rate,
                rate / bare
            );
        }
        let auth = Arc::new(Authenticator::open(&path, &config).unwrap());
        run_logins(&auth, &creds, 8).await; // warm the cache
        let rounds = 200;
        let many: Vec<(String, Secret)> = (0..rounds).flat_map(|_| creds.iter().cloned()).collect();
        for concurrency in [1usize, 8] {
            let (elapsed, verifications) = run_logins(&auth, &many, concurrency).await;
            assert_eq!(verifications, 0, "cached logins verify nothing");
            let rate = per_second(many.len(), elapsed);
            println!(
                "{:<34} {:>10.0} /s  ({:.0}x bare argon2)",
                format!("cached, {concurrency} concurrent"),
                rate,
                rate / bare
            );
        }
    });
}
