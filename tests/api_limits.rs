//! The provider's API limits over real sockets: 20 concurrent requests per client IP (the 21st
//! gets 429 at once), the connection time-out, slowloris headers, slow bodies and the body
//! size limit.

mod api_common;

use std::net::IpAddr;
use std::time::Duration;

use api_common::{TestServer, call_from, connect_from, wait_until};
use relaykey::model::Permission::{Manage, View};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Reads until the peer closes; returns what arrived. Bounded so that a bug fails, not hangs.
async fn read_to_close(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), stream.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "the server kept the connection open");
    String::from_utf8_lossy(&out).into_owned()
}

/// Sends the headers of a POST whose body never completes, so the request stays in progress.
async fn hold_request(server: &TestServer, from: IpAddr, key: &str) -> TcpStream {
    let mut stream = connect_from(server.addr, from).await;
    let head = format!(
        "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{{"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream
}

#[tokio::test]
async fn the_21st_concurrent_request_from_one_ip_gets_429_while_another_ip_is_served() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[View, Manage]);
    let held_ip: IpAddr = "127.0.0.2".parse().unwrap();
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(hold_request(&server, held_ip, &key).await);
    }
    let requests = server.requests.clone();
    wait_until("20 requests in progress", || requests.count(held_ip) == 20).await;

    let refused = call_from(server.addr, held_ip, "GET", "/v1/account", Some(&key), None).await;
    assert_eq!((refused.status, refused.code()), (429, "too_many_requests"));
    let other = call_from(server.addr, "127.0.0.3".parse().unwrap(), "GET", "/v1/account", Some(&key), None).await;
    assert_eq!(other.status, 200, "{}", other.text);

    // Finishing one held request frees its slot.
    let mut first = held.remove(0);
    first.write_all(&[b' '; 99][..]).await.unwrap();
    let requests = server.requests.clone();
    wait_until("a slot to free", || requests.count(held_ip) == 19).await;
    let served = call_from(server.addr, held_ip, "GET", "/v1/account", Some(&key), None).await;
    assert_eq!(served.status, 200, "{}", served.text);
}

#[tokio::test]
async fn a_connection_is_closed_after_the_connection_timeout() {
    let server = TestServer::start("connection_timeout = \"1s\"\nheader_read_timeout = \"10m\"").await;
    let (_, key) = server.key(&[View]);
    let mut stream = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
    let request = format!("GET /v1/account HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    // A keep-alive connection that got its answer is still closed at the deadline.
    let text = read_to_close(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
}

#[tokio::test]
async fn slowloris_headers_are_cut() {
    let server = TestServer::start("header_read_timeout = \"1s\"").await;
    let mut stream = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
    stream.write_all(b"GET /v1/account HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let (mut reader, mut writer) = stream.into_split();
    // Trickle a header line now and then: each byte arrives, the headers never end.
    let trickle = tokio::spawn(async move {
        for i in 0.. {
            if writer.write_all(format!("X-Slow-{i}: y\r\n").as_bytes()).await.is_err() {
                return i;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        unreachable!()
    });
    let mut out = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(60), reader.read_to_end(&mut out)).await;
    assert!(read.is_ok(), "slow headers were not cut");
    let text = String::from_utf8_lossy(&out);
    assert!(text.is_empty() || text.starts_with("HTTP/1.1 408"), "{text}");
    trickle.abort();
}

#[tokio::test]
async fn a_slow_body_is_cut_with_408() {
    let server = TestServer::start("body_timeout = \"1s\"").await;
    let (_, key) = server.key(&[Manage]);
    let mut stream = hold_request(&server, "127.0.0.1".parse().unwrap(), &key).await;
    let text = read_to_close(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains(r#""code":"body_timeout""#), "{text}");
}

#[tokio::test]
async fn a_body_over_the_limit_gets_413() {
    let server = TestServer::start("max_body_size = 2048").await;
    let (_, key) = server.key(&[Manage]);
    let name = "n".repeat(4096);
    let reply = server.call("POST", "/v1/api-keys", Some(&key), Some(serde_json::json!({ "name": name }))).await;
    assert_eq!((reply.status, reply.code()), (413, "body_too_large"));

    // Without a Content-Length (chunked), the limit is enforced while reading.
    let mut stream = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
    let chunk = "x".repeat(3000);
    let request = format!(
        "POST /v1/api-keys HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{chunk}\r\n0\r\n\r\n",
        chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let text = read_to_close(&mut stream).await;
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
}
