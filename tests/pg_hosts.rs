//! Two hosts, one truth (issue 13): two `relaykey serve` daemons, each with its own directory,
//! sockets and ports, on ONE PostgreSQL database, driven only over their real interfaces (the
//! HTTP API, the SASL and policy sockets, the CLI binary).

#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use std::process::{Command, Output, Stdio};

use relaykey::sasl::codec::{FailCode, Reply};
use sasl_client::Client;
use serde_json::json;
use support::daemon::{BIN, Daemon, serve};
use support::http::request as http;
use support::policy::ask;
use support::ports::free_port;
use support::postgres::{PgServer, needs_postgres};
use tokio::net::UnixStream;

const ANN: &str = "ann@example.com";
const CLIENT: &str = "192.0.2.10";

/// Host A and host B on one fresh database of the test binary's PostgreSQL server.
struct Hosts {
    a: Daemon,
    b: Daemon,
    /// The HTTP API's port of each host.
    a_api: u16,
    b_api: u16,
    url: String,
}

impl Hosts {
    /// Starts both daemons at the same time on an empty database (their migrations meet),
    /// with SASL, policy and the API on each, and `extra` TOML on both.
    fn start(extra: &str) -> Self {
        let url = PgServer::shared().create_database();
        let host = |api: u16| {
            serve()
                .database(&url)
                .toml(&format!("[api]\nenabled = true\nlisten = \"127.0.0.1:{api}\"\n[policy]\ntcp_table = false\n"))
                .toml(extra)
        };
        let (a_api, b_api) = (free_port(), free_port());
        let (a, b) = (host(a_api).spawn(), host(b_api).spawn());
        a.wait_ready();
        b.wait_ready();
        Hosts { a, b, a_api, b_api, url }
    }
}

/// A request of `user`'s session `port` from the test's client address.
fn policy_request(state: &str, user: &str, port: u16) -> Vec<u8> {
    support::policy::request(state, user, CLIENT, port, &format!("pg.{port}"))
}

fn is_ok(reply: &Reply) -> bool {
    matches!(reply, Reply::Ok { .. })
}

/// A refusal that says "wrong secret", not "try again later".
fn is_plain_refusal(reply: &Reply) -> bool {
    matches!(reply, Reply::Fail { code, .. } if *code != Some(FailCode::TempFail))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_key_created_through_a_api_authenticates_through_b_sasl_at_once() {
    if !needs_postgres() {
        return;
    }
    let hosts = Hosts::start("");
    hosts.a.cli(&["account", "add", ANN]);
    let manager = hosts.a.cli_json(&[
        "apikey",
        "create",
        ANN,
        "--name",
        "manager",
        "--permission",
        "manage",
        "--permission",
        "smtp",
        "--permission",
        "view",
    ]);
    let manager = manager["key"].as_str().unwrap().to_string();
    // B has served the account before the new secrets exist: whatever it holds in memory
    // about the account is older than them.
    let password = hosts.a.cli_json(&["smtp", "create", ANN])["password"].as_str().unwrap().to_string();
    let mut b_sasl = Client::connect(&hosts.b.sasl_socket()).await.unwrap();
    assert!(is_ok(&b_sasl.plain(1, ANN, &password, Some(CLIENT)).await), "B knows the account's first password");

    let (status, key) =
        http(hosts.a_api, "POST", "/v1/api-keys", &manager, Some(&json!({"name": "app", "permissions": ["smtp"]})));
    assert_eq!(status, 201, "{key}");
    let key = key["key"].as_str().expect("the new key, shown once").to_string();
    let reply = b_sasl.plain(2, ANN, &key, Some(CLIENT)).await;
    assert!(is_ok(&reply), "a key created through A's API, at B's SASL socket: {reply:?}");

    let (status, credential) =
        http(hosts.a_api, "POST", "/v1/smtp-credentials", &manager, Some(&json!({"username": "app@example.com"})));
    assert_eq!(status, 201, "{credential}");
    let (username, secret) =
        (credential["username"].as_str().unwrap().to_string(), credential["password"].as_str().unwrap().to_string());
    let reply = b_sasl.plain(3, &username, &secret, Some(CLIENT)).await;
    assert!(is_ok(&reply), "an SMTP credential created through A's API, at B's SASL socket: {reply:?}");

    // And the other way round: B's API lists what A's created.
    let (status, keys) = http(hosts.b_api, "GET", "/v1/api-keys", &manager, None);
    assert_eq!(status, 200);
    assert_eq!(keys.as_array().map(Vec::len), Some(2), "B's API lists A's keys: {keys}");
}

#[tokio::test(flavor = "multi_thread")]
async fn smtp_change_on_a_is_refused_by_b_policy_and_b_sasl_at_the_next_request() {
    if !needs_postgres() {
        return;
    }
    let hosts = Hosts::start("");
    hosts.a.cli(&["account", "add", ANN]);
    let created = hosts.a.cli_json(&["smtp", "create", ANN]);
    let (id, old) = (created["id"].to_string(), created["password"].as_str().unwrap().to_string());

    // A Postfix session on host B: logged in through B's SASL socket (B's ledger holds the
    // login), then its MAIL passes B's policy server.
    let mut b_sasl = Client::connect(&hosts.b.sasl_socket()).await.unwrap();
    assert!(is_ok(&b_sasl.plain(1, ANN, &old, Some(CLIENT)).await));
    assert!(is_ok(&b_sasl.plain(2, ANN, &old, Some(CLIENT)).await), "a second login (B's cache)");
    let mut b_policy = UnixStream::connect(hosts.b.socket("policy")).await.unwrap();
    assert_eq!(ask(&mut b_policy, &policy_request("MAIL", ANN, 40001)).await, "DUNNO");

    // The operator changes the password on host A.
    let changed = hosts.a.cli_json(&["smtp", "change", ANN, &id]);
    let new = changed["password"].as_str().unwrap().to_string();

    let refused = ask(&mut b_policy, &policy_request("RCPT", ANN, 40001)).await;
    assert!(refused.starts_with("554 5.7.1 "), "B's policy server at the session's next request: {refused}");
    let reply = b_sasl.plain(3, ANN, &old, Some(CLIENT)).await;
    assert!(is_plain_refusal(&reply), "B's SASL with the old password: {reply:?}");
    assert!(is_ok(&b_sasl.plain(4, ANN, &new, Some(CLIENT)).await), "B's SASL with the new password");
    // A session logged in with the new password passes B's policy server again.
    assert_eq!(ask(&mut b_policy, &policy_request("MAIL", ANN, 40002)).await, "DUNNO");
}

/// Runs `relaykey --json ARGS` on each config at once, all processes started before any is
/// waited for; returns their outputs.
fn race(configs: &[&std::path::Path], args: &[&str]) -> Vec<Output> {
    let children: Vec<_> = configs
        .iter()
        .map(|config| {
            Command::new(BIN)
                .arg("--config")
                .arg(config)
                .arg("--json")
                .args(args)
                .env_remove("RUST_LOG")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("spawn relaykey")
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().expect("wait for relaykey")).collect()
}

#[test]
fn twenty_two_cli_processes_on_two_hosts_leave_exactly_fifteen_keys() {
    if !needs_postgres() {
        return;
    }
    let hosts = Hosts::start("");
    hosts.a.cli(&["account", "add", ANN]);
    let configs: Vec<&std::path::Path> =
        (0..22).map(|i| if i % 2 == 0 { hosts.a.config_path() } else { hosts.b.config_path() }).collect();
    let outputs = race(&configs, &["apikey", "create", ANN]);

    let created: Vec<&Output> = outputs.iter().filter(|o| o.status.success()).collect();
    assert_eq!(created.len(), 15, "{outputs:#?}");
    for refused in outputs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&refused.stderr);
        assert_eq!(refused.status.code(), Some(1), "a refusal, not a failure: {err}");
        assert!(err.contains("already has 15 API keys"), "{err}");
    }
    let listed = hosts.b.cli_json(&["apikey", "list", ANN]);
    assert_eq!(listed.as_array().map(Vec::len), Some(15), "{listed}");
    // Both hosts wrote some of them (the race really was across hosts).
    let by_host = |config: &std::path::Path| {
        outputs.iter().zip(&configs).filter(|(o, c)| o.status.success() && **c == config).count()
    };
    assert!(by_host(hosts.a.config_path()) > 0 && by_host(hosts.b.config_path()) > 0, "{outputs:#?}");
    assert_eq!(
        hosts.a.cli_json(&["apikey", "list", ANN]).as_array().map(Vec::len),
        Some(15),
        "A sees the same 15 keys"
    );
    assert_eq!(PgServer::shared().psql(&hosts.url, "SELECT count(*) FROM api_keys"), "15", "in the database");
}

#[test]
fn one_username_raced_from_two_hosts_is_given_once() {
    if !needs_postgres() {
        return;
    }
    let hosts = Hosts::start("");
    let accounts: Vec<String> = (0..8).map(|i| format!("user{i}@example.com")).collect();
    for account in &accounts {
        hosts.a.cli(&["account", "add", account]);
    }
    // Eight accounts on two hosts each ask for the same SMTP username at once.
    let children: Vec<_> = accounts
        .iter()
        .enumerate()
        .map(|(i, account)| {
            let config = if i % 2 == 0 { hosts.a.config_path() } else { hosts.b.config_path() };
            Command::new(BIN)
                .arg("--config")
                .arg(config)
                .args(["smtp", "create", account, "--username", "shared@example.com"])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    assert_eq!(outputs.iter().filter(|o| o.status.success()).count(), 1, "{outputs:#?}");
    for refused in outputs.iter().filter(|o| !o.status.success()) {
        let err = String::from_utf8_lossy(&refused.stderr);
        assert!(err.contains("already used"), "{err}");
    }
}

/// Asks `host`'s policy server, on a connection of its own, about the DATA of message
/// `instance` of a Postfix session logged in as ANN; returns the action.
async fn policy_data(host: &Daemon, port: u16) -> String {
    let mut policy = UnixStream::connect(host.socket("policy")).await.unwrap();
    ask(&mut policy, &policy_request("DATA", ANN, port)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn a_per_minute_message_limit_is_counted_across_both_hosts() {
    if !needs_postgres() {
        return;
    }
    const LIMIT: u16 = 4;
    let hosts = Hosts::start(&format!("[limits]\nmessages_per_minute = {LIMIT}\n"));
    hosts.a.cli(&["account", "add", ANN]);
    // The account's messages reach A and B in turn: each host lets through what the other
    // has not used up.
    for n in 0..LIMIT {
        let (name, host) = if n % 2 == 0 { ("A", &hosts.a) } else { ("B", &hosts.b) };
        assert_eq!(policy_data(host, 42000 + n).await, "DUNNO", "message {} through {name}", n + 1);
    }
    // The next one is deferred whichever host it reaches.
    for (name, host, port) in [("A", &hosts.a, 42100), ("B", &hosts.b, 42101)] {
        let action = policy_data(host, port).await;
        assert!(action.starts_with("450 4.7.1 "), "message {} through {name}: {action}", LIMIT + 1);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_login_on_a_is_known_to_b_policy_and_refused_there_after_a_change_on_a() {
    if !needs_postgres() {
        return;
    }
    // B defers a session whose login it cannot find: a DUNNO from B proves it found A's login.
    let hosts = Hosts::start("[policy]\nunknown_login = \"defer\"\n");
    hosts.a.cli(&["account", "add", ANN]);
    let created = hosts.a.cli_json(&["smtp", "create", ANN]);
    let (id, password) = (created["id"].to_string(), created["password"].as_str().unwrap().to_string());

    let mut b_policy = UnixStream::connect(hosts.b.socket("policy")).await.unwrap();
    let unknown = ask(&mut b_policy, &policy_request("MAIL", ANN, 43000)).await;
    assert!(unknown.starts_with('4'), "B knows no login yet: {unknown}");

    let mut a_sasl = Client::connect(&hosts.a.sasl_socket()).await.unwrap();
    assert!(is_ok(&a_sasl.plain(1, ANN, &password, Some(CLIENT)).await));
    // The ledger is written just after the login's reply: wait (bounded) until B sees it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let action = ask(&mut b_policy, &policy_request("MAIL", ANN, 43001)).await;
        if action == "DUNNO" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "B's policy server never saw A's login: {action}");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }

    hosts.a.cli_json(&["smtp", "change", ANN, &id]);
    let refused = ask(&mut b_policy, &policy_request("RCPT", ANN, 43001)).await;
    assert!(refused.starts_with("554 5.7.1 "), "B's policy server after the change on A: {refused}");
}

#[tokio::test(flavor = "multi_thread")]
async fn every_key_change_on_a_is_refused_by_b_at_its_very_next_login() {
    if !needs_postgres() {
        return;
    }
    // Refusals are expected here: no delay after them.
    let hosts = Hosts::start("[auth]\nfailure_delay = \"1ms\"\nmax_failure_delay = \"2ms\"\n");
    hosts.a.cli(&["account", "add", ANN]);
    let manager = hosts.a.cli_json(&[
        "apikey",
        "create",
        ANN,
        "--name",
        "manager",
        "--permission",
        "manage",
        "--permission",
        "smtp",
    ]);
    let manager = manager["key"].as_str().unwrap().to_string();
    let (status, created) =
        http(hosts.a_api, "POST", "/v1/api-keys", &manager, Some(&json!({"name": "app", "permissions": ["smtp"]})));
    assert_eq!(status, 201, "{created}");
    let id = created["id"].as_i64().unwrap();
    let mut secret = created["key"].as_str().unwrap().to_string();
    let mut b_sasl = Client::connect(&hosts.b.sasl_socket()).await.unwrap();
    // A change is one commit; each round gives B a chance to answer before it has heard of
    // it. "At B's next login" must hold every time, not most times.
    let mut stale = Vec::new();
    for round in 0..300u32 {
        let reply = b_sasl.plain(round * 2 + 1, ANN, &secret, Some(CLIENT)).await;
        assert!(is_ok(&reply), "round {round}: the current key at B: {reply:?}");
        let (status, changed) = http(hosts.a_api, "POST", &format!("/v1/api-keys/{id}/change"), &manager, None);
        assert_eq!(status, 200, "{changed}");
        let reply = b_sasl.plain(round * 2 + 2, ANN, &secret, Some(CLIENT)).await;
        if !is_plain_refusal(&reply) {
            stale.push((round, reply));
        }
        secret = changed["key"].as_str().unwrap().to_string();
    }
    assert!(stale.is_empty(), "B accepted a key A had changed, in {} of 300 rounds: {stale:?}", stale.len());
}
