//! The SASL server over a real Unix socket, driven by a raw protocol client: what Postfix,
//! Exim and doveadm do, and what a broken or hostile client might do.

#[path = "support/sasl_client.rs"]
mod sasl_client;
#[path = "support/sasl_fixture.rs"]
mod sasl_fixture;

use std::time::{Duration, Instant};

use relaykey::sasl::codec::{FailCode, Mechanism, Reply, Request};
use relaykey::sasl::session::encode_response;
use sasl_client::{Client, auth};
use sasl_fixture::start;

const ALICE: &str = "alice@example.com";

#[tokio::test]
async fn handshake_is_sent_at_once_in_dovecot_order() {
    let fx = start(|_| {}).await;
    let c = Client::connect(&fx.socket).await.unwrap();
    let names: Vec<&str> = c
        .handshake
        .iter()
        .map(|r| match r {
            Reply::Version { major: 1, .. } => "VERSION",
            Reply::Mech { name, flags } if flags == &["plaintext"] => name.as_str(),
            Reply::Spid(_) => "SPID",
            Reply::Cuid(_) => "CUID",
            Reply::Cookie(c) if c.len() == 32 => "COOKIE",
            Reply::Done => "DONE",
            other => panic!("unexpected handshake line {other:?}"),
        })
        .collect();
    assert_eq!(names, ["VERSION", "PLAIN", "LOGIN", "SPID", "CUID", "COOKIE", "DONE"]);
}

#[tokio::test]
async fn plain_login_grants_and_is_recorded() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let reply = c.plain(1, "Alice@Example.com", fx.password.expose(), Some("192.0.2.7")).await;
    assert_eq!(reply, Reply::Ok { id: 1, user: ALICE.into() }, "user= is the canonical name");
    let grant = fx.shared.ledger.lookup(ALICE, Some("192.0.2.7".parse().unwrap()), Instant::now());
    assert!(grant.is_some_and(|g| g.username == ALICE));
}

#[tokio::test]
async fn wrong_password_fails_without_saying_why() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let wrong = c.plain(1, ALICE, "0000000000000000000000000000000000000000", Some("192.0.2.7")).await;
    let unknown = c.plain(2, "nobody@example.com", fx.password.expose(), Some("192.0.2.7")).await;
    assert_eq!(wrong, Reply::Fail { id: 1, user: Some(ALICE.into()), code: None, reason: None });
    assert_eq!(unknown, Reply::Fail { id: 2, user: Some("nobody@example.com".into()), code: None, reason: None });
}

#[tokio::test]
async fn login_mechanism_with_challenges() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    c.send(&auth(5, Mechanism::Login, Some("192.0.2.7"), None)).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Cont { id: 5, challenge: encode_response(b"Username:") });
    c.send(&Request::Cont { id: 5, data: encode_response(ALICE.as_bytes()) }).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Cont { id: 5, challenge: encode_response(b"Password:") });
    c.send(&Request::Cont { id: 5, data: encode_response(fx.password.expose().as_bytes()) }).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Ok { id: 5, user: ALICE.into() });
}

#[tokio::test]
async fn interleaved_requests_on_one_connection_are_answered_by_id() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    // 1 waits for its username; 2 fails (delayed); 3 succeeds; then 1 finishes.
    c.send(&auth(1, Mechanism::Login, Some("192.0.2.7"), None)).await.unwrap();
    c.send_plain(2, ALICE, "wrong", Some("192.0.2.8")).await;
    c.send(&auth(3, Mechanism::Plain, Some("192.0.2.7"), None)).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(c.expect_reply().await);
    }
    assert!(seen.contains(&Reply::Cont { id: 1, challenge: encode_response(b"Username:") }), "{seen:?}");
    assert!(seen.contains(&Reply::Cont { id: 3, challenge: String::new() }), "{seen:?}");
    c.send(&Request::Cont { id: 3, data: encode_response(format!("\0{ALICE}\0{}", fx.password.expose()).as_bytes()) })
        .await
        .unwrap();
    c.send(&Request::Cont { id: 1, data: encode_response(ALICE.as_bytes()) }).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(c.expect_reply().await);
    }
    assert!(seen.contains(&Reply::Ok { id: 3, user: ALICE.into() }), "{seen:?}");
    assert!(seen.contains(&Reply::fail(2, Some(ALICE.into()))), "{seen:?}");
    assert!(seen.contains(&Reply::Cont { id: 1, challenge: encode_response(b"Password:") }), "{seen:?}");
}

#[tokio::test]
async fn unknown_parameters_and_lowercase_mechanism_are_accepted() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let resp = encode_response(format!("{ALICE}\0{ALICE}\0{}", fx.password.expose()).as_bytes());
    let line = format!(
        "AUTH\t7\tplain\tservice=smtp\tnologin\tfinal-resp-ok\tsession=abc\tfuture-flag\tlip=\trip=192.0.2.7\tsecured\tresp={resp}\n"
    );
    c.send_raw(line.as_bytes()).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Ok { id: 7, user: ALICE.into() });
}

#[tokio::test]
async fn authzid_other_than_authcid_fails() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let resp = encode_response(format!("admin@example.com\0{ALICE}\0{}", fx.password.expose()).as_bytes());
    c.send(&auth(1, Mechanism::Plain, Some("192.0.2.7"), Some(resp))).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::fail(1, None));
}

#[tokio::test]
async fn invalid_base64_fails_and_keeps_the_connection() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    c.send(&auth(1, Mechanism::Plain, None, Some("%%%not base64".into()))).await.unwrap();
    match c.expect_reply().await {
        Reply::Fail { id: 1, code: Some(FailCode::InvalidBase64), .. } => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(c.plain(2, ALICE, fx.password.expose(), None).await, Reply::Ok { id: 2, user: ALICE.into() });
}

#[tokio::test]
async fn overlong_line_disconnects_only_that_client() {
    let fx = start(|_| {}).await;
    let mut bystander = Client::connect(&fx.socket).await.unwrap();
    let mut attacker = Client::connect(&fx.socket).await.unwrap();
    attacker.send_raw(&vec![b'A'; 20_000]).await.unwrap();
    assert_eq!(attacker.read_reply().await.ok().flatten(), None, "the server hangs up");
    fx.wait_connections(1).await;
    assert_eq!(bystander.plain(1, ALICE, fx.password.expose(), None).await, Reply::Ok { id: 1, user: ALICE.into() });
}

#[tokio::test]
async fn a_line_of_16_kib_is_accepted() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let mut line = b"AUTH\t1\tLOGIN\tservice=smtp\tpadding=".to_vec();
    line.resize(16384, b'x');
    line.push(b'\n');
    c.send_raw(&line).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Cont { id: 1, challenge: encode_response(b"Username:") });
}

#[tokio::test]
async fn client_that_disconnects_mid_request_leaves_the_server_healthy() {
    let fx = start(|_| {}).await;
    {
        let mut c = Client::connect(&fx.socket).await.unwrap();
        c.send_plain(1, ALICE, fx.password.expose(), None).await; // in flight when we leave
        c.send(&auth(2, Mechanism::Login, None, None)).await.unwrap(); // waiting for a CONT
        c.send_raw(b"AUTH\t3\tPLAIN\tserv").await.unwrap(); // half a line
    }
    fx.wait_connections(0).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    assert_eq!(c.plain(1, ALICE, fx.password.expose(), None).await, Reply::Ok { id: 1, user: ALICE.into() });
}

#[tokio::test]
async fn protocol_violation_closes_the_connection() {
    let fx = start(|_| {}).await;
    for bad in [&b"HELLO\n"[..], b"AUTH\t0\tPLAIN\tservice=smtp\n", b"AUTH\t1\tPLAIN\tresp=AA==\tservice=smtp\n"] {
        let mut c = Client::connect(&fx.socket).await.unwrap();
        c.send_raw(bad).await.unwrap();
        assert_eq!(c.read_reply().await.ok().flatten(), None, "{}", bad.escape_ascii());
    }
}

#[tokio::test]
async fn require_secured_refuses_plaintext_sessions() {
    let fx = start(|c| c.sasl.require_secured = true).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    assert_eq!(c.plain(1, ALICE, fx.password.expose(), None).await, Reply::fail(1, None));
    let resp = encode_response(format!("\0{ALICE}\0{}", fx.password.expose()).as_bytes());
    c.send_raw(format!("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp={resp}\n").as_bytes()).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Ok { id: 2, user: ALICE.into() });
}

#[tokio::test]
async fn in_flight_logins_per_address_are_bounded() {
    let fx = start(|c| {
        c.sasl.max_in_flight_per_ip = 1;
        c.auth.failure_delay = Duration::from_secs(1);
        c.auth.max_failure_delay = Duration::from_secs(1);
    })
    .await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    // Both lines arrive together: the first holds the address's only slot.
    c.send_plain(1, ALICE, "wrong", Some("192.0.2.9")).await;
    c.send_plain(2, ALICE, "wrong", Some("192.0.2.9")).await;
    c.send_plain(3, ALICE, fx.password.expose(), Some("192.0.2.10")).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        seen.push(c.expect_reply().await);
    }
    assert!(seen.contains(&Reply::temp_fail(2)), "{seen:?}");
    assert!(seen.contains(&Reply::fail(1, Some(ALICE.into()))), "{seen:?}");
    assert!(seen.contains(&Reply::Ok { id: 3, user: ALICE.into() }), "other addresses are not affected: {seen:?}");
}

#[tokio::test]
async fn repeated_failures_are_delayed_but_answered() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    for id in 1..=6 {
        assert_eq!(c.plain(id, ALICE, "wrong", Some("192.0.2.66")).await, Reply::fail(id, Some(ALICE.into())));
    }
    let failures = fx.shared.throttle.lock().unwrap().failures(Some("192.0.2.66".parse().unwrap()), Instant::now());
    assert_eq!(failures, 6);
    assert_eq!(
        c.plain(7, ALICE, fx.password.expose(), Some("192.0.2.66")).await,
        Reply::Ok { id: 7, user: ALICE.into() }
    );
}

#[tokio::test]
async fn shutdown_answers_in_flight_requests_then_closes() {
    let fx = start(|c| {
        c.auth.failure_delay = Duration::from_millis(300);
    })
    .await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    c.send_plain(1, ALICE, "wrong", None).await;
    fx.wait_for_pending_failure().await;
    fx.shared.shutdown.cancel();
    assert_eq!(c.expect_reply().await, Reply::fail(1, Some(ALICE.into())));
    assert_eq!(c.read_reply().await.ok().flatten(), None);
}

#[tokio::test(start_paused = true)]
async fn idle_connections_stay_open_and_abandoned_requests_expire() {
    let fx = start(|_| {}).await;
    let mut c = Client::connect(&fx.socket).await.unwrap();
    c.send(&auth(1, Mechanism::Login, None, None)).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Cont { id: 1, challenge: encode_response(b"Username:") });
    tokio::time::sleep(Duration::from_secs(3600)).await;
    c.send(&Request::Cont { id: 1, data: encode_response(ALICE.as_bytes()) }).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::timed_out(1), "the abandoned request expired");
    c.send(&auth(2, Mechanism::Login, None, None)).await.unwrap();
    assert_eq!(c.expect_reply().await, Reply::Cont { id: 2, challenge: encode_response(b"Username:") });
}
