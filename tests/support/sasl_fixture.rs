//! An in-process SASL server on a tempdir socket, over a store with a few accounts (SQLite, or
//! PostgreSQL under `RELAYKEY_TEST_STORE=postgresql`).
#![allow(dead_code)]

#[allow(clippy::duplicate_mod)]
#[path = "test_store.rs"]
mod test_store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use relaykey::address::EmailAddress;
use relaykey::auth::Authenticator;
use relaykey::config::Config;
use relaykey::daemon::Shared;
use relaykey::sasl::server::SaslServer;
use relaykey::secret::Secret;
use relaykey::store::{NewSmtpCredential, Store};

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub shared: Arc<Shared>,
    pub server: Arc<SaslServer>,
    /// alice@example.com's SMTP password.
    pub password: Secret,
}

/// Cheap argon2 so that tests are fast; `tweak` adjusts the rest.
pub fn test_config(dir: &std::path::Path, tweak: impl FnOnce(&mut Config)) -> Config {
    let database = PathBuf::from(test_store::test_database(dir));
    let mut config = Config { database, ..Config::default() };
    config.auth.argon2_memory_kib = 1024;
    config.auth.argon2_iterations = 1;
    config.auth.failure_delay = Duration::from_millis(100);
    config.auth.max_failure_delay = Duration::from_millis(400);
    config.sasl.socket = dir.join("auth");
    tweak(&mut config);
    config
}

pub async fn start(tweak: impl FnOnce(&mut Config)) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path(), tweak);
    let location = config.store_location().unwrap();
    let mut store = Store::connect(&location).unwrap();
    let alice = EmailAddress::parse("alice@example.com").unwrap();
    store.add_account(&alice).unwrap();
    let (_, password) = store
        .create_smtp_credential(
            &alice,
            NewSmtpCredential { username: None, allow: Default::default() },
            &config.auth.hash_params(),
        )
        .unwrap();
    let authenticator = Authenticator::new(Store::connect(&location).unwrap(), &config.auth).unwrap();
    let socket = config.sasl.socket.clone();
    let listener = relaykey::daemon::bind_unix(&socket, 0o600, None).unwrap();
    let (shared, _publish) = Shared::new(config, authenticator);
    let server = Arc::new(shared.sasl_server());
    tokio::spawn(server.clone().run(listener));
    Fixture { dir, socket, shared, server, password }
}

impl Fixture {
    /// Waits (bounded) until the server counts `n` open connections.
    pub async fn wait_connections(&self, n: usize) {
        for _ in 0..500 {
            if self.server.connections() == n {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("server has {} connections, expected {n}", self.server.connections());
    }

    /// Waits (bounded) until a failed login without a client address is being held back.
    pub async fn wait_for_pending_failure(&self) {
        for _ in 0..500 {
            if self.shared.throttle.lock().unwrap().failures(None, std::time::Instant::now()) > 0 {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("no failure recorded");
    }
}
