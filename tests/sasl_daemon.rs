//! `relaykey serve` as a process: the SASL socket's lifecycle (stale and live socket files,
//! SIGHUP without dropping connections, SIGTERM finishing requests in flight).

#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use relaykey::sasl::codec::Reply;
use sasl_client::Client;
use support::daemon::sasl_only;

#[test]
fn stale_socket_file_is_replaced_and_a_live_one_refused() {
    let builder = sasl_only("");
    // A socket file nobody listens on, as a crashed run leaves behind.
    drop(std::os::unix::net::UnixListener::bind(builder.socket("sasl")).unwrap());
    let rk = builder.start();
    let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(rk.sasl_socket()).unwrap().permissions());
    assert_eq!(mode & 0o7777, 0o666, "socket_mode applied");
    let second = rk.cli_output(&["serve"]);
    assert!(!second.status.success(), "a second daemon must not steal a live socket");
    let stderr = String::from_utf8_lossy(&second.stderr);
    let last = stderr.trim().lines().last().unwrap_or_default();
    assert!(last.starts_with("relaykey: ") && last.contains("in use"), "unclear refusal: {stderr}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_to_open_connections_without_dropping_them() {
    let rk = sasl_only("").start();
    let (pw, _) = rk.account_with_secrets("hal@example.com");
    let mut c = Client::connect(&rk.sasl_socket()).await.unwrap();
    assert_eq!(c.plain(1, "hal@example.com", &pw, None).await, Reply::Ok { id: 1, user: "hal@example.com".into() });
    rk.rewrite_config("[sasl]\nrequire_secured = true");
    rk.signal(libc::SIGHUP);
    rk.wait_log_count("reloaded", 1);
    // Same connection, new rule: plaintext sessions are refused now.
    assert_eq!(c.plain(2, "hal@example.com", &pw, None).await, Reply::fail(2, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_answers_requests_in_flight_then_exits() {
    let mut rk = sasl_only("").table("auth", "failure_delay = \"3s\"").start();
    rk.account_with_secrets("ivy@example.com");
    let mut idle = Client::connect(&rk.sasl_socket()).await.unwrap();
    let mut c = Client::connect(&rk.sasl_socket()).await.unwrap();
    c.send_plain(1, "ivy@example.com", "wrong", None).await;
    // The decision is logged before its failure delay: the reply is still owed.
    rk.wait_log_count("reason=\"bad_secret\"", 1);
    rk.signal(libc::SIGTERM);
    assert_eq!(c.expect_reply().await, Reply::fail(1, Some("ivy@example.com".into())));
    assert_eq!(c.read_reply().await.ok().flatten(), None, "closed after its last answer");
    assert_eq!(idle.read_reply().await.ok().flatten(), None, "idle connections close at shutdown");
    assert!(rk.wait_exit().success(), "{}", rk.log());
}
