//! State the daemon keeps in the store rather than in memory (issue 13, "Shared, durable
//! state"): the per-account message counts, the login ledger the policy server consults, and
//! the "last used" time of a secret. Over the real interfaces: `relaykey serve` with its SASL
//! and policy sockets, restarted on one store, changed through the CLI. On SQLite unless
//! `RELAYKEY_TEST_STORE=postgresql` (see `support::postgres`).

#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::sasl::codec::Reply;
use relaykey::store::{Store, StoreLocation};
use sasl_client::Client;
use support::daemon::{Daemon, PATIENCE, cli, cli_json, serve};
use support::policy::{ask_once, request};
use support::postgres::{PgServer, needs_postgres};

const ANN: &str = "ann@example.com";
const CLIENT: &str = "192.0.2.10";

/// One PLAIN login of `ANN` over the SASL socket, from the test's client address.
async fn login(daemon: &Daemon, id: u32, secret: &str) {
    let mut sasl = Client::connect(&daemon.sasl_socket()).await.unwrap();
    let reply = sasl.plain(id, ANN, secret, Some(CLIENT)).await;
    assert_eq!(reply, Reply::Ok { id, user: ANN.into() }, "login {id}");
}

/// SIGTERM, wait for the exit, start again on the same store.
fn restart(daemon: &mut Daemon) {
    daemon.signal(libc::SIGTERM);
    assert!(daemon.wait_exit().success(), "clean exit; log:\n{}", daemon.log());
    daemon.restart();
}

#[tokio::test]
async fn a_restart_keeps_the_days_message_counts() {
    let mut daemon = serve().table("limits", "messages_per_day = 2").table("policy", "tcp_table = false").start();
    cli(daemon.config_path(), &["account", "add", ANN]);
    for (n, port) in [(1, 41001), (2, 41002)] {
        let action = ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, port, &format!("m.{n}"))).await;
        assert_eq!(action, "DUNNO", "message {n} of 2");
    }

    restart(&mut daemon);

    // In memory, the counts would start again at 0 and this message would pass.
    let action = ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, 41003, "m.3")).await;
    assert!(action.starts_with("450 4.7.1 "), "the third message of the day after a restart: {action}");
    assert!(action.contains("per day"), "{action}");
}

#[tokio::test]
async fn a_restart_keeps_the_login_ledger() {
    let mut daemon = serve().table("policy", "tcp_table = false").start();
    let config = daemon.config_path().to_path_buf();
    cli(&config, &["account", "add", ANN]);
    let password = cli_json(&config, &["smtp", "create", ANN])["password"].as_str().expect("password").to_string();
    let credential = cli_json(&config, &["smtp", "list", ANN])[0]["id"].as_i64().expect("credential id");
    login(&daemon, 1, &password).await;
    assert_eq!(
        ask_once(&daemon.socket("policy"), &request("MAIL", ANN, CLIENT, 42001, "")).await,
        "DUNNO",
        "the login holds"
    );

    // The session logged in before the restart; its password changes after it.
    restart(&mut daemon);
    cli(&config, &["smtp", "change", ANN, &credential.to_string()]);

    // Without the ledger, the policy server would only see that the username still exists.
    let refused = ask_once(&daemon.socket("policy"), &request("MAIL", ANN, CLIENT, 42001, "")).await;
    assert!(refused.starts_with("554 5.7.1 "), "a session of the changed password after a restart: {refused}");
}

#[tokio::test]
async fn a_login_sets_last_used() {
    let daemon = serve().start();
    let config = daemon.config_path().to_path_buf();
    cli(&config, &["account", "add", ANN]);
    let password = cli_json(&config, &["smtp", "create", ANN])["password"].as_str().expect("password").to_string();
    let created = cli_json(&config, &["apikey", "create", ANN, "--name", "main"]);
    let (key, key_id) = (created["key"].as_str().expect("key").to_string(), created["id"].as_i64().expect("id"));
    // What the API and the settings page show (the CLI's lists do not show it), read from the
    // store the daemon uses, whichever engine it is.
    let database: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let database = database["database"].as_str().expect("database").to_string();
    let store = Store::connect(&StoreLocation::parse(&database, None, None).unwrap()).unwrap();
    let ann = EmailAddress::parse(ANN).unwrap();
    let last_used = |what: &str| -> Option<i64> {
        match what {
            "smtp" => store.smtp_credential_by_username(ANN).unwrap().expect("the credential").last_used_at,
            _ => store.api_key(&ann, key_id).unwrap().last_used_at,
        }
    };
    assert_eq!(last_used("smtp"), None, "never used yet");
    assert_eq!(last_used("apikey"), None, "never used yet");

    login(&daemon, 1, &password).await;
    login(&daemon, 2, &key).await;

    // Written behind the reply: wait for it (a hang fails at the deadline).
    let deadline = Instant::now() + PATIENCE;
    for what in ["smtp", "apikey"] {
        let at = loop {
            if let Some(at) = last_used(what) {
                break at;
            }
            assert!(Instant::now() < deadline, "{what}: last_used_at still empty after the login");
            std::thread::sleep(Duration::from_millis(50));
        };
        assert!(at > 1_600_000_000, "{what}: {at}");
    }
}

#[tokio::test]
async fn postgresql_down_the_counts_answer_the_fallback_not_a_full_limit() {
    if !needs_postgres() {
        return;
    }
    let server = PgServer::start();
    let database = server.create_database();
    // Revocation off: the login is not checked, so the answer is the counts' alone.
    let daemon = serve()
        .database(&database)
        .table("limits", "messages_per_day = 1")
        .table("policy", "tcp_table = false\nrevocation = false")
        .start();
    cli(daemon.config_path(), &["account", "add", ANN]);
    assert_eq!(
        ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, 43001, "m.1")).await,
        "DUNNO",
        "the first message"
    );
    let full = ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, 43002, "m.2")).await;
    assert!(full.starts_with("450 4.7.1 "), "the day's limit is used up: {full}");

    // Counts are committed without waiting for the WAL (the test server commits everything so,
    // and the counters' connections do on any server): a crash may forget the last moment's.
    // Make them durable first: this test is about the answers while the database is away.
    server.psql(&database, "CHECKPOINT");
    server.stop_immediate();
    let down = ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, 43003, "m.3")).await;
    assert!(down.starts_with("451 4.3.0 "), "the database is down: {down}");
    daemon.wait_log("message_counts_unreadable");

    server.start_again();
    let deadline = Instant::now() + PATIENCE;
    let back = loop {
        let action = ask_once(&daemon.socket("policy"), &request("DATA", ANN, CLIENT, 43004, "m.4")).await;
        if !action.starts_with("451 ") || Instant::now() > deadline {
            break action;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(back.starts_with("450 4.7.1 "), "back, with the day's count kept: {back}");
}
