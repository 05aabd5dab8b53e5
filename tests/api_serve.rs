//! `relaykey serve` with `[api] enabled = true`: the daemon starts the API and the operator
//! listener, a key made by the CLI works over HTTP at once, and SIGTERM ends the process
//! cleanly.

mod support;

use std::time::Duration;

use support::daemon::{cli, serve};
use support::ports::free_port;

/// One HTTP/1.1 request on a fresh connection; returns the status and the body.
fn get(port: u16, path: &str, key: Option<&str>) -> Option<(u16, String)> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    let auth = key.map(|k| format!("Authorization: Bearer {k}\r\n")).unwrap_or_default();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\n{auth}Connection: close\r\n\r\n").ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let status = text.get(9..12)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Some((status, body))
}

#[test]
fn serve_starts_the_api_and_stops_on_sigterm() {
    let (api, ops) = (free_port(), free_port());
    let builder = serve().toml(&format!(
        "[sasl]\nenabled = false\n[policy]\nenabled = false\n[api]\nenabled = true\nlisten = \"127.0.0.1:{api}\"\n\
         metrics_listen = \"127.0.0.1:{ops}\"\n"
    ));
    let config = builder.config_path();
    let cli = |args: &[&str]| cli(&config, args);
    cli(&["account", "add", "owner@example.com"]);
    let created: serde_json::Value =
        serde_json::from_str(&cli(&["--json", "apikey", "create", "owner@example.com", "--permission", "view"]))
            .unwrap();
    let key = created["key"].as_str().unwrap().to_string();

    let mut daemon = builder.start();
    let mut healthy = false;
    for _ in 0..600 {
        if get(ops, "/healthz", None).is_some_and(|(s, _)| s == 200) {
            healthy = true;
            break;
        }
        assert!(!daemon.has_exited(), "relaykey serve exited");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(healthy, "the operator listener never answered /healthz");

    let (status, body) = get(api, "/v1/account", Some(&key)).unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("owner@example.com"));
    let (status, _) = get(api, "/", None).unwrap();
    assert_eq!(status, 200);

    // A key removed by the CLI stops working at once in the running daemon.
    let id = created["id"].as_i64().unwrap().to_string();
    cli(&["apikey", "remove", "owner@example.com", &id]);
    assert_eq!(get(api, "/v1/account", Some(&key)).unwrap().0, 401);

    daemon.signal(libc::SIGTERM);
    let status = daemon.wait_exit();
    assert!(status.success(), "relaykey serve exited with {status}");
}
