//! Socketmap lookups per second at 1 and 8 persistent connections (each connection one request
//! at a time, as Postfix's smtpd processes use it), relaykey's senders socketmap next to a
//! do-nothing server (`benches/socketmap/floor.rs`) in the same run and runtime. The target is
//! at least 50 % of the floor. Run: `cargo bench --bench socketmap` (env BENCH_LOOKUPS: lookups
//! per run, default 100000).

#[path = "socketmap/floor.rs"]
mod floor;

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::senders::socketmap::codec::{Reply, Request, decode_reply, encode_request};
use relaykey::senders::socketmap::server;
use relaykey::senders::{Directory, SenderEntry};
use relaykey::store::Store;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// 100 accounts, each with its own domain and address; lookups hit an address, an address
/// under a domain with an extension, and an unowned address, in turn.
fn populate(db: &Path) -> Vec<String> {
    let mut store = Store::open(db).unwrap();
    for i in 0..100 {
        let account = EmailAddress::parse(&format!("user{i}@domain{i}.example")).unwrap();
        store.add_account(&account).unwrap();
        store.add_sender(&account, &SenderEntry::parse(&format!("brand{i}.example")).unwrap(), true).unwrap();
    }
    (0..300)
        .map(|i| match i % 3 {
            0 => format!("user{}@domain{}.example", i % 100, i % 100),
            1 => format!("News+{i}@Brand{}.EXAMPLE", i % 100),
            _ => format!("nobody{i}@unowned.example"),
        })
        .collect()
}

/// `lookups` requests spread over `connections` persistent connections; returns lookups/s.
async fn measure(socket: &Path, keys: Arc<Vec<String>>, connections: usize, lookups: usize) -> f64 {
    let mut streams = Vec::new();
    for _ in 0..connections {
        streams.push(UnixStream::connect(socket).await.unwrap());
    }
    let per_connection = lookups / connections;
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (c, mut stream) in streams.into_iter().enumerate() {
        let keys = keys.clone();
        tasks.push(tokio::spawn(async move {
            let (mut out, mut buf) = (Vec::with_capacity(256), Vec::with_capacity(512));
            for n in 0..per_connection {
                out.clear();
                let key = keys[(c * 7 + n) % keys.len()].clone();
                encode_request(&Request { name: "senders".into(), key }, &mut out);
                stream.write_all(&out).await.unwrap();
                loop {
                    if let Some((reply, used)) = decode_reply(&buf).unwrap() {
                        assert!(matches!(reply, Reply::Ok(_) | Reply::NotFound), "{reply:?}");
                        buf.drain(..used);
                        break;
                    }
                    assert!(stream.read_buf(&mut buf).await.unwrap() > 0, "server closed");
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    (per_connection * connections) as f64 / start.elapsed().as_secs_f64()
}

fn main() {
    let lookups: usize = std::env::var("BENCH_LOOKUPS").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let dir = tempfile::tempdir().unwrap();
    let keys = Arc::new(populate(&dir.path().join("relaykey.db")));
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let floor_socket = dir.path().join("floor");
        tokio::spawn(floor::run(UnixListener::bind(&floor_socket).unwrap()));
        let relaykey_socket = dir.path().join("senders");
        let directory = Arc::new(Directory::open(&dir.path().join("relaykey.db")).unwrap());
        let shutdown = CancellationToken::new();
        tokio::spawn(server::run(
            UnixListener::bind(&relaykey_socket).unwrap(),
            directory,
            "senders".into(),
            shutdown.clone(),
            TaskTracker::new(),
        ));
        // Warm up both (connections, allocator, the directory's first snapshot).
        measure(&floor_socket, keys.clone(), 1, 2_000).await;
        measure(&relaykey_socket, keys.clone(), 1, 2_000).await;

        let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        println!("{lookups} lookups per run, {cpus} CPUs, 100 accounts with 2 entries each");
        println!("| connections | floor (lookups/s) | relaykey (lookups/s) | relaykey / floor |");
        println!("|---|---|---|---|");
        for connections in [1, 8] {
            let floor = measure(&floor_socket, keys.clone(), connections, lookups).await;
            let ours = measure(&relaykey_socket, keys.clone(), connections, lookups).await;
            println!("| {connections} | {floor:.0} | {ours:.0} | {:.0} % |", 100.0 * ours / floor);
        }
        shutdown.cancel();
        tokio::time::sleep(Duration::from_millis(10)).await;
    });
}
