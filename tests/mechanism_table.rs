//! The one table of PLAIN and LOGIN cases (`src/auth/mechanism_cases.rs`), run against the
//! SASL socket (Dovecot protocol) and the relay's AUTH: each case must come to its outcome, the
//! same on both, and every malformed credential must be counted like a wrong password on both.

#[path = "support/sasl_client.rs"]
mod sasl_client;
#[path = "support/sasl_fixture.rs"]
mod sasl_fixture;
mod support;

#[path = "../src/auth/mechanism_cases.rs"]
mod cases;

use std::net::IpAddr;
use std::time::Instant;

pub use relaykey::auth::mechanism::{MechanismError, encode_base64};
use relaykey::metrics::registry;
use relaykey::sasl::codec::{FailCode, Mechanism, Reply, Request};

use cases::{CASES, Case, Expect, Mech};
use sasl_client::{Client, auth};
use support::relay::{Options, Relay};
use support::smtp::Dialog;

/// What a client sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Success,
    AuthFailure,
    /// The response itself was refused (bad base64): a syntax error, not a failed login.
    Malformed,
}

fn expected(case: &Case) -> Outcome {
    match case.expect {
        Expect::Granted => Outcome::Success,
        Expect::Refused(MechanismError::InvalidBase64) => Outcome::Malformed,
        Expect::Denied | Expect::Refused(_) => Outcome::AuthFailure,
    }
}

/// Counted by the failure throttle: a wrong password or a malformed credential.
fn counts_as_failure(case: &Case) -> bool {
    expected(case) == Outcome::AuthFailure
}

/// Each case over its own connection, from its own client address (`rip`).
async fn run_sasl(fx: &sasl_fixture::Fixture, n: usize, case: &Case) -> Outcome {
    let (user, password) = ("alice@example.com", fx.password.expose());
    let rip = format!("192.0.2.{}", n + 1);
    let mut c = Client::connect(&fx.socket).await.unwrap();
    let mechanism = match case.mech {
        Mech::Plain => Mechanism::Plain,
        Mech::Login => Mechanism::Login,
    };
    c.send(&auth(1, mechanism, Some(&rip), None)).await.unwrap();
    let mut reply = c.expect_reply().await;
    for response in case.responses {
        let Reply::Cont { .. } = reply else { break };
        c.send(&Request::Cont { id: 1, data: response.wire(user, password) }).await.unwrap();
        reply = c.expect_reply().await;
    }
    match reply {
        Reply::Ok { .. } => Outcome::Success,
        Reply::Fail { code: Some(FailCode::InvalidBase64), .. } => Outcome::Malformed,
        Reply::Fail { code: None, .. } => Outcome::AuthFailure,
        other => panic!("{}: unexpected SASL reply {other:?}", case.name),
    }
}

fn run_relay(relay: &Relay, case: &Case) -> Outcome {
    let (user, password) = (support::relay::USER, relay.password.as_str());
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO client.test\r\n");
    d.reply();
    d.send(match case.mech {
        Mech::Plain => "AUTH PLAIN\r\n",
        Mech::Login => "AUTH LOGIN\r\n",
    });
    let mut reply = d.reply();
    for response in case.responses {
        if !reply.starts_with("334") {
            break;
        }
        d.send(&format!("{}\r\n", response.wire(user, password)));
        reply = d.reply();
    }
    match &reply[..3.min(reply.len())] {
        "235" => Outcome::Success,
        "535" => Outcome::AuthFailure,
        "501" => Outcome::Malformed,
        _ => panic!("{}: unexpected SMTP reply {reply:?}", case.name),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_case_has_the_same_outcome_over_sasl_and_the_relay() {
    let fx = sasl_fixture::start(|_| {}).await;
    let mut over_sasl = Vec::new();
    for (n, case) in CASES.iter().enumerate() {
        over_sasl.push(run_sasl(&fx, n, case).await);
    }
    let over_relay = tokio::task::spawn_blocking(|| {
        let relay = Relay::start(Options::default());
        let outcomes: Vec<Outcome> = CASES.iter().map(|case| run_relay(&relay, case)).collect();
        (outcomes, relay.log())
    });
    let (over_relay, relay_log) = over_relay.await.unwrap();

    for (n, case) in CASES.iter().enumerate() {
        let want = expected(case);
        assert_eq!((over_sasl[n], over_relay[n]), (want, want), "{}: (sasl, relay)", case.name);
        // Counted like a wrong password: the SASL throttle holds one failure for the case's
        // client address (each case has its own), and none for what is not a failed login.
        let rip: IpAddr = format!("192.0.2.{}", n + 1).parse().unwrap();
        let failures = fx.shared.throttle.lock().unwrap().failures(Some(rip), Instant::now());
        assert_eq!(failures, u32::from(counts_as_failure(case)), "{}: failures counted over SASL", case.name);
    }
    // The SASL front end's logins are counted under its own label, not under `smtp`.
    let counted = |result: &str, reason: &str| {
        registry()
            .get("relaykey_authentications_total", &[("front_end", "sasl"), ("result", result), ("reason", reason)])
    };
    let granted = CASES.iter().filter(|c| c.expect == Expect::Granted).count();
    assert_eq!(counted("allow", "ok") + counted("allow", "cached"), granted as i64);
    let malformed_over_sasl = CASES.iter().filter(|c| matches!(c.expect, Expect::Refused(e) if e.is_guess())).count();
    assert_eq!(counted("deny", "malformed_credentials"), malformed_over_sasl as i64);
    // The relay logs each malformed credential as a denial by the same pipeline.
    let malformed = CASES.iter().filter(|c| matches!(c.expect, Expect::Refused(e) if e.is_guess())).count();
    assert_eq!(
        relay_log.matches("decision=\"deny\" reason=\"malformed_credentials\"").count(),
        malformed,
        "{relay_log}"
    );
    assert_eq!(
        relay_log.matches("proto=\"relay\"").count(),
        CASES.iter().filter(|c| expected(c) != Outcome::Malformed).count(),
        "{relay_log}"
    );
}
