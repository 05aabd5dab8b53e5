//! A small, bounded load generator for the HTTP API: `CONNS` keep-alive connections from
//! loopback, each sending `REQS` `GET /v1/account` requests in turn; prints throughput and
//! latency percentiles. Used for the figures in the API report; not a test.
//!
//! ```text
//! cargo run --release --example api_load -- 127.0.0.1:8025 KEY [CONNS=8] [REQS=2000]
//! ```

use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (Some(addr), Some(key)) = (args.get(1).cloned(), args.get(2).cloned()) else {
        eprintln!("usage: api_load ADDR KEY [CONNS] [REQS]");
        std::process::exit(2);
    };
    let conns: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(8);
    let reqs: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(2000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..conns {
        let (addr, key) = (addr.clone(), key.clone());
        tasks.push(tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&addr).await.expect("connect");
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.expect("handshake");
            tokio::spawn(conn);
            let mut latencies = Vec::with_capacity(reqs);
            let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
            for _ in 0..reqs {
                let req = hyper::Request::get("/v1/account")
                    .header("host", "localhost")
                    .header("authorization", format!("Bearer {key}"))
                    .body(Empty::<Bytes>::new())
                    .expect("request");
                let t = Instant::now();
                let response = sender.send_request(req).await.expect("send");
                *statuses.entry(response.status().as_u16()).or_default() += 1;
                let _ = response.into_body().collect().await;
                latencies.push(t.elapsed());
            }
            (latencies, statuses)
        }));
    }
    let mut all: Vec<Duration> = Vec::new();
    let mut statuses = std::collections::BTreeMap::<u16, usize>::new();
    for t in tasks {
        let (l, s) = t.await.expect("task");
        all.extend(l);
        for (k, v) in s {
            *statuses.entry(k).or_default() += v;
        }
    }
    let elapsed = started.elapsed();
    all.sort();
    let pct = |p: f64| all[((all.len() as f64 * p) as usize).min(all.len() - 1)];
    println!(
        "{} requests over {conns} connections in {:.2?}: {:.0} req/s; p50 {:.2?} p99 {:.2?} max {:.2?}; statuses {statuses:?}",
        all.len(),
        elapsed,
        all.len() as f64 / elapsed.as_secs_f64(),
        pct(0.50),
        pct(0.99),
        all[all.len() - 1]
    );
}
