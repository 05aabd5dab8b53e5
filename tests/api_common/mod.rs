//! A relaykey API served in-process on loopback ports, with a store seeded through the same
//! functions the CLI uses, and a small HTTP client that can pick its source address. The store
//! is SQLite, or PostgreSQL under `RELAYKEY_TEST_STORE=postgresql`.
#![allow(dead_code)]

#[path = "../support/relay_sink.rs"]
pub mod relay_sink;
pub mod send;
#[allow(clippy::duplicate_mod)]
#[path = "../support/test_store.rs"]
pub mod test_store;

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use relaykey::address::EmailAddress;
use relaykey::api::{Api, operator};
use relaykey::auth::Authenticator;
use relaykey::config::Config;
use relaykey::daemon::Shared;
use relaykey::limits::ConnectionLimiter;
use relaykey::model::{Permission, PermissionSet};
use relaykey::restriction::AccessRestriction;
use relaykey::secret::Secret;
use relaykey::store::{NewApiKey, Store, StoreLocation};
use serde_json::Value;
use tempfile::TempDir;
use tokio::net::{TcpListener, TcpSocket, TcpStream};

pub const OWNER: &str = "owner@example.com";

pub struct TestServer {
    pub addr: SocketAddr,
    pub metrics: SocketAddr,
    pub shared: Arc<Shared>,
    pub requests: ConnectionLimiter,
    /// The SQLite file, for tests that look into it (they run on SQLite only: under
    /// `RELAYKEY_TEST_STORE=postgresql` the store is [`TestServer::location`]'s database).
    pub db: PathBuf,
    pub location: StoreLocation,
    pub config: Config,
    _dir: TempDir,
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

impl TestServer {
    /// Starts the API with cheap argon2 parameters, no failure delay, and `extra` TOML lines
    /// appended to `[api]` (or after it, for other tables).
    pub async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let database = test_store::test_database(dir.path());
        let text = format!(
            "database = {database:?}\nlog_level = \"warn\"\n[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n\
             failure_delay = \"0s\"\nmax_failure_delay = \"0s\"\n[api]\nenabled = true\nlisten = \"127.0.0.1:0\"\n{extra}\n"
        );
        let config = Config::parse(&text).unwrap();
        let location = config.store_location().unwrap();
        let authenticator = Authenticator::open(&location, &config.auth).unwrap();
        let (shared, _publish) = Shared::new(config.clone(), authenticator);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        // With `[relay] enabled`, the relay (no listeners: only its queue and delivery) runs too.
        let outbox = if config.relay.enabled {
            let outbox = shared.start_queue().await.unwrap();
            relaykey::smtp::serve_relay(shared.relay_deps().unwrap(), outbox.clone(), Vec::new()).unwrap();
            Some(outbox)
        } else {
            None
        };
        let spool = outbox.as_ref().map(|o| o.spool().clone());
        let api = Api::new(shared.api_deps().unwrap(), outbox).unwrap();
        let requests = api.requests_in_progress();
        shared.tasks.spawn(api.serve(listener));
        let ops = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let metrics = ops.local_addr().unwrap();
        shared.tasks.spawn(operator::serve(ops, shared.authenticator.clone(), shared.shutdown.clone(), spool));
        let mut store = Store::connect(&location).unwrap();
        store.add_account(&EmailAddress::parse(OWNER).unwrap()).unwrap();
        Self { addr, metrics, shared, requests, db, location, config, _dir: dir }
    }

    /// The server's private temporary directory (for sockets of other front ends).
    pub fn dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    pub fn store(&self) -> Store {
        Store::connect(&self.location).unwrap()
    }

    /// A key of `account` with `permissions`, created the way `relaykey apikey create` does.
    pub fn key_for(&self, account: &str, permissions: &[Permission], allow: &[&str]) -> (i64, String) {
        let new = NewApiKey {
            name: "test".into(),
            permissions: permissions.iter().copied().collect::<PermissionSet>(),
            allow: AccessRestriction::parse_all(allow).unwrap(),
        };
        let email = EmailAddress::parse(account).unwrap();
        let (key, secret) = self.store().create_api_key(&email, new, &self.config.auth.hash_params()).unwrap();
        (key.id, secret.expose().to_string())
    }

    pub fn key(&self, permissions: &[Permission]) -> (i64, String) {
        self.key_for(OWNER, permissions, &[])
    }

    pub async fn call(&self, method: &str, path: &str, key: Option<&str>, body: Option<Value>) -> Reply {
        call_from(self.addr, "127.0.0.1".parse().unwrap(), method, path, key, body).await
    }

    pub async fn metrics_text(&self) -> String {
        let reply = call_from(self.metrics, "127.0.0.1".parse().unwrap(), "GET", "/metrics", None, None).await;
        reply.text
    }

    /// SMTP AUTH's decision path (the one the SASL server calls).
    pub async fn smtp_auth(&self, user: &str, secret: &str) -> bool {
        let ip = Some("127.0.0.1".parse().unwrap());
        self.shared.authenticator.authenticate(user, &Secret::from_presented(secret), ip).await.is_granted()
    }
}

#[derive(Debug)]
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub text: String,
    pub json: Value,
}

impl Reply {
    pub fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("")
    }
    pub fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("")
    }
}

/// A TCP connection to `addr` from source address `from` (any 127.0.0.0/8 address works on
/// Linux loopback).
pub async fn connect_from(addr: SocketAddr, from: IpAddr) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::new(from, 0)).unwrap();
    socket.connect(addr).await.unwrap()
}

pub async fn call_from(
    addr: SocketAddr,
    from: IpAddr,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: Option<Value>,
) -> Reply {
    let stream = connect_from(addr, from).await;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await.unwrap();
    tokio::spawn(conn);
    let mut req = Request::builder().method(method).uri(path).header("host", "localhost");
    if let Some(k) = key {
        req = req.header("authorization", format!("Bearer {k}"));
    }
    let payload = match body {
        Some(v) => {
            req = req.header("content-type", "application/json");
            Bytes::from(v.to_string())
        }
        None => Bytes::new(),
    };
    let response =
        tokio::time::timeout(Duration::from_secs(60), sender.send_request(req.body(Full::new(payload)).unwrap()))
            .await
            .expect("no answer within 60 s")
            .unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_str(&text).unwrap_or(Value::Null);
    Reply { status, headers, text, json }
}

/// Waits (bounded) until `check` holds; a readiness check, not a timing assertion.
pub async fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..3000 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}
