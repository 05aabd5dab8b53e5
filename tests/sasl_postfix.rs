//! End to end: swaks → a real Postfix 3.7 (`smtpd_sasl_type = dovecot`) → `relaykey serve`.
//! Needs root, postfix, swaks and ss; skipped locally when absent, a failure under CI=true.

mod support;

use support::daemon::{Daemon, sasl_only};
use support::peers::needs;
use support::postfix::{Postfix, postfix};
use support::smtp::swaks_login as swaks;

fn peers_available() -> bool {
    needs().programs(&["postfix", "swaks", "ss"]).root().met()
}

/// A Postfix whose smtpd authenticates through relaykey's SASL socket.
fn postfix_for(rk: &Daemon) -> Postfix {
    postfix().sasl_socket(&rk.sasl_socket()).start()
}

#[track_caller]
fn accepted(pf: &Postfix, mech: &str, user: &str, pass: &str, from: &str) {
    let s = swaks(pf.port(), mech, user, pass, from);
    assert!(s.ok && s.auth_code() == Some(235), "expected success for {user} via {mech}:\n{}", s.transcript);
    assert!(s.transcript.contains("250 2.0.0 Ok: queued"), "message not accepted:\n{}", s.transcript);
}

#[track_caller]
fn refused(pf: &Postfix, mech: &str, user: &str, pass: &str, from: &str) {
    let s = swaks(pf.port(), mech, user, pass, from);
    assert!(!s.ok && s.auth_code() == Some(535), "expected 535 for {user} via {mech}:\n{}", s.transcript);
}

#[test]
fn postfix_authenticates_through_relaykey() {
    if !peers_available() {
        return;
    }
    // As deployed: the socket is reachable by the postfix group only.
    let rk = sasl_only("socket_mode = \"0660\"\nsocket_group = \"postfix\"").start();
    let pf = postfix_for(&rk);
    let (alice_pw, alice_key) = rk.account_with_secrets("alice@example.com");

    // SMTP credential with PLAIN and LOGIN; the account address with an API key.
    accepted(&pf, "PLAIN", "alice@example.com", &alice_pw, "127.0.0.1");
    accepted(&pf, "LOGIN", "alice@example.com", &alice_pw, "127.0.0.1");
    accepted(&pf, "PLAIN", "alice@example.com", &alice_key, "127.0.0.1");
    accepted(&pf, "LOGIN", "Alice@Example.com", &alice_key, "127.0.0.1");

    // A wrong password.
    refused(&pf, "PLAIN", "alice@example.com", "0123456789ABCDEF0123456789ABCDEF01234567", "127.0.0.1");

    // A removed key.
    let gone = rk.cli_json(&["apikey", "create", "alice@example.com", "--name", "gone"]);
    rk.cli(&["apikey", "remove", "alice@example.com", &gone["id"].to_string()]);
    refused(&pf, "PLAIN", "alice@example.com", gone["key"].as_str().unwrap(), "127.0.0.1");

    // A key without the smtp permission.
    let nosmtp = rk.cli_json(&["apikey", "create", "alice@example.com", "--name", "api", "--permission", "send"]);
    refused(&pf, "PLAIN", "alice@example.com", nosmtp["key"].as_str().unwrap(), "127.0.0.1");

    // A disabled account: its password and its key both stop working.
    let (bob_pw, bob_key) = rk.account_with_secrets("bob@example.com");
    accepted(&pf, "PLAIN", "bob@example.com", &bob_pw, "127.0.0.1");
    rk.cli(&["account", "disable", "bob@example.com"]);
    refused(&pf, "PLAIN", "bob@example.com", &bob_pw, "127.0.0.1");
    refused(&pf, "LOGIN", "bob@example.com", &bob_key, "127.0.0.1");

    // A restricted credential: fine from its address, refused from another 127.x address.
    let ops =
        rk.cli_json(&["smtp", "create", "alice@example.com", "--username", "ops@example.com", "--allow", "127.0.0.1"]);
    let ops_pw = ops["password"].as_str().unwrap();
    accepted(&pf, "PLAIN", "ops@example.com", ops_pw, "127.0.0.1");
    refused(&pf, "PLAIN", "ops@example.com", ops_pw, "127.0.0.2");

    // Never a secret in the log; one decision line per login.
    let log = rk.log();
    for secret in [&alice_pw, &alice_key, &bob_pw, &bob_key] {
        assert!(!log.contains(secret.as_str()), "a secret reached the log");
    }
    assert!(log.contains("decision=\"allow\"") || log.contains("decision=allow"), "{log}");
    assert!(log.contains("reason=\"ip_not_allowed\"") || log.contains("reason=ip_not_allowed"), "{log}");
    assert!(log.contains("reason=\"permission_missing\"") || log.contains("reason=permission_missing"), "{log}");
}

#[test]
fn changed_password_fails_at_once_while_postfix_stays_connected() {
    if !peers_available() {
        return;
    }
    let rk = sasl_only("").start();
    let pf = postfix_for(&rk);
    let (old_pw, _) = rk.account_with_secrets("carol@example.com");
    accepted(&pf, "PLAIN", "carol@example.com", &old_pw, "127.0.0.1");
    // The smtpd that served it keeps its auth connection for its next SMTP sessions.
    let before = rk.open_connections();
    assert!(!before.is_empty(), "Postfix holds no connection to relaykey");

    let creds = rk.cli_json(&["smtp", "list", "carol@example.com"]);
    let id = creds[0]["id"].to_string();
    let changed = rk.cli_json(&["smtp", "change", "carol@example.com", &id]);
    refused(&pf, "PLAIN", "carol@example.com", &old_pw, "127.0.0.1");
    accepted(&pf, "PLAIN", "carol@example.com", changed["password"].as_str().unwrap(), "127.0.0.1");

    let after = rk.open_connections();
    for conn in &before {
        assert!(after.contains(conn), "relaykey or Postfix dropped auth connection {conn}: {before:?} → {after:?}");
    }
    assert!(!pf.maillog().contains("Connection lost to authentication server"), "{}", pf.maillog());
}
