//! relaykey's policy server behind a real Postfix 3.7 configured with `postfix/*.relaykey`.
//! Needs root and /usr/sbin/postfix; skipped locally without them, fails under CI=true.

mod support;

use std::time::{Duration, Instant};

use support::peers::needs;
use support::sidecar::Sidecar;
use support::smtp::{Smtp, TlsSmtp, auth_plain, smtpd_pid_for, swaks_message as swaks};

/// Is a Postfix we can drive here (with swaks and openssl for the clients)?
fn available() -> bool {
    needs().programs(&["postfix", "swaks", "openssl"]).root().met()
}

/// Connects from `from` until the greeting is a 220, for at most `within` (the bound).
async fn accepted_within(from: &str, port: u16, within: Duration) -> (Smtp, Duration) {
    let start = Instant::now();
    loop {
        let (s, greeting) = Smtp::connect(from, port).await;
        if greeting.starts_with("220 ") {
            return (s, start.elapsed());
        }
        assert!(greeting.starts_with("421 4.7.0"), "unexpected greeting {greeting:?}");
        assert!(start.elapsed() < within, "no slot for {from} within {within:?}: {greeting}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_ip_session_limit_at_connect() {
    if !available() {
        return;
    }
    let pf = Sidecar::start("[limits]\nmax_connections_per_ip = 20\n");
    let port = pf.ports.smtp;
    let mut held = Vec::new();
    for i in 0..20 {
        let (s, greeting) = Smtp::connect("127.0.0.2", port).await;
        assert!(greeting.starts_with("220 "), "session {i}: {greeting}");
        held.push(s);
    }
    let (_, refused) = Smtp::connect("127.0.0.2", port).await;
    assert!(refused.starts_with("421 4.7.0 "), "21st session: {refused}");
    let (mut other, greeting) = Smtp::connect("127.0.0.3", port).await;
    assert!(greeting.starts_with("220 "), "another IP: {greeting}");
    // The 20 held sessions still work.
    assert!(held[0].command("EHLO client.example").await.starts_with("250 "));

    // One client leaves. Its smtpd goes idle and keeps its policy connection open; the kernel's
    // TCP table tells relaykey the session is over.
    let leaving = held.remove(0);
    assert!(leaving.local.port() > 0);
    drop(leaving);
    let (s, took) = accepted_within("127.0.0.2", port, Duration::from_secs(2)).await;
    eprintln!("slot reused after {took:?}");
    held.push(s);
    let (_, refused) = Smtp::connect("127.0.0.2", port).await;
    assert!(refused.starts_with("421 4.7.0 "), "back at 20: {refused}");

    // An smtpd process is killed: its slot comes free too.
    let victim = held.remove(3);
    let pid = smtpd_pid_for(victim.local, port).expect("smtpd of a held session");
    // SAFETY: kill(2) with a pid read from /proc.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGKILL) }, 0);
    let (s, took) = accepted_within("127.0.0.2", port, Duration::from_secs(5)).await;
    eprintln!("slot of the killed smtpd reused after {took:?}");
    held.push(s);
    drop(victim);
    assert!(other.command("QUIT").await.starts_with("221 "));
    assert!(pf.relaykey_log().contains("reason=too_many_connections"), "decisions are logged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_counts_survive_a_relaykey_crash() {
    if !available() {
        return;
    }
    let mut pf = Sidecar::start("[limits]\nmax_connections_per_ip = 3\n");
    let port = pf.ports.p2525;
    let mut held = Vec::new();
    for _ in 0..3 {
        let (s, greeting) = Smtp::connect("127.0.0.5", port).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        held.push(s);
    }
    pf.crash_and_restart_relaykey();
    let (_, refused) = Smtp::connect("127.0.0.5", port).await;
    assert!(refused.starts_with("421 4.7.0 "), "sessions begun before the crash still count: {refused}");
    let (_, greeting) = Smtp::connect("127.0.0.6", port).await;
    assert!(greeting.starts_with("220 "), "another IP: {greeting}");
    // The sessions in progress go on with the new process.
    assert!(held[0].command("EHLO client.example").await.starts_with("250 "));
    assert!(held[0].command("MAIL FROM:<a@example.com>").await.starts_with("250 "));
    drop(held.remove(1));
    let (_, took) = accepted_within("127.0.0.5", port, Duration::from_secs(2)).await;
    eprintln!("slot reused after {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_time_limit_ends_old_sessions() {
    if !available() {
        return;
    }
    let pf = Sidecar::start("[limits]\nsession_timeout = \"2s\"\n");
    for port in [pf.ports.smtp, pf.ports.p2525] {
        let (mut young, greeting) = Smtp::connect("127.0.0.4", port).await;
        assert!(greeting.starts_with("220 "), "{greeting}");
        assert!(young.command("EHLO client.example").await.starts_with("250 "));
        assert!(young.command("MAIL FROM:<a@example.com>").await.starts_with("250 "), "young session");
        assert!(young.command("RSET").await.starts_with("250 "));
        // The clock is what is tested: let the session outgrow its limit.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let reply = young.command("MAIL FROM:<a@example.com>").await;
        assert!(reply.starts_with("421 4.4.2 "), "old session: {reply}");
        assert_eq!(young.reply().await, "", "smtpd hangs up after 421");
    }
    let log = pf.maillog();
    assert!(!log.contains("warning:") && !log.contains("fatal:"), "the snippets make Postfix complain:\n{log}");
}

/// Creates an account with an SMTP credential through the CLI; returns (id, password).
fn credential(pf: &Sidecar, email: &str) -> (i64, String) {
    pf.relaykey(&["account", "add", email]);
    let json: serde_json::Value = serde_json::from_str(&pf.relaykey(&["--json", "smtp", "create", email])).unwrap();
    (json["id"].as_i64().unwrap(), json["password"].as_str().unwrap().to_string())
}

#[test]
fn changed_credential_refuses_the_next_mail_from_of_a_logged_in_session() {
    if !available() {
        return;
    }
    let pf = Sidecar::start("");
    let (id, password) = credential(&pf, "alice@example.com");
    let (mut s, greeting) = TlsSmtp::connect(pf.ports.submissions);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(s.command("EHLO client.example").starts_with("250 "));
    assert!(s.command(&auth_plain("alice@example.com", &password)).starts_with("235 "), "login");
    assert!(s.command("MAIL FROM:<alice@example.com>").starts_with("250 "), "before the change");
    assert!(s.command("RCPT TO:<bob@example.net>").starts_with("250 "));
    assert!(s.command("RSET").starts_with("250 "));
    pf.relaykey(&["smtp", "change", "alice@example.com", &id.to_string()]);
    let refused = s.command("MAIL FROM:<alice@example.com>");
    assert!(refused.starts_with("554 5.7.1 "), "after the change: {refused}");
    assert!(refused.contains("changed or removed"), "{refused}");
    assert!(pf.relaykey_log().contains("reason=secret_revoked"));
}

#[test]
fn message_rate_limit_counts_messages_not_recipients() {
    if !available() {
        return;
    }
    let pf = Sidecar::start("messages_per_minute = 2\n");
    let (_, password) = credential(&pf, "carol@example.com");
    let five = ["r1@example.net", "r2@example.net", "r3@example.net", "r4@example.net", "r5@example.net"];
    // Two messages to five recipients each, over STARTTLS on 587 and implicit TLS on 465.
    for (port, tls) in [(pf.ports.submission, "--tls"), (pf.ports.submissions, "--tls-on-connect")] {
        let (ok, transcript) = swaks(port, tls, "carol@example.com", &password, &five);
        assert!(ok, "message within the limit refused:\n{transcript}");
    }
    let (ok, transcript) = swaks(pf.ports.smtp, "--tls", "carol@example.com", &password, &five[..1]);
    assert!(!ok, "third message accepted:\n{transcript}");
    assert!(transcript.contains("450 4.7.1"), "{transcript}");
    assert_eq!(pf.relaykey_log().matches("reason=rate_limit_minute").count(), 1, "one refusal, at DATA");
}

#[test]
fn after_a_relaykey_crash_logged_in_sessions_are_checked_against_their_account() {
    if !available() {
        return;
    }
    let mut pf = Sidecar::start("");
    let (_, password) = credential(&pf, "dave@example.com");
    let (mut s, greeting) = TlsSmtp::connect(pf.ports.submissions);
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(s.command("EHLO client.example").starts_with("250 "));
    assert!(s.command(&auth_plain("dave@example.com", &password)).starts_with("235 "), "login");
    // The new process has no record of this login (unknown_login = "check_account").
    pf.crash_and_restart_relaykey();
    assert!(s.command("MAIL FROM:<dave@example.com>").starts_with("250 "), "account still fine");
    assert!(s.command("RSET").starts_with("250 "));
    pf.relaykey(&["account", "disable", "dave@example.com"]);
    let refused = s.command("MAIL FROM:<dave@example.com>");
    assert!(refused.starts_with("554 5.7.1 ") && refused.contains("disabled"), "{refused}");
}
