//! A real Postfix 3.7 configured from the shipped snippets (`postfix/main.cf.relaykey`,
//! `postfix/master.cf.relaykey`: `smtpd_sender_login_maps` on relaykey's socketmap and
//! `reject_authenticated_sender_login_mismatch` on the SASL services), and swaks: an account's
//! own domain and address get 250; another account's address, an unknown domain and a pending
//! domain get 553 5.7.1 at MAIL FROM; the null sender passes.

mod support;

use support::peers::available;
use support::sidecar::Sidecar;
use support::smtp::swaks_message_from;

/// The reply to MAIL FROM in a swaks transcript (`250 2.1.0 Ok`, `553 5.7.1 …`); after
/// STARTTLS swaks marks lines `~>` and `<~`.
fn mail_reply(transcript: &str) -> String {
    let mut lines = transcript.lines().skip_while(|l| !l.contains("> MAIL FROM:"));
    lines.next();
    lines
        .find(|l| l.starts_with('<'))
        .map(|l| l.trim_start_matches(['<', '~', '-', '*', ' ']).to_string())
        .unwrap_or_default()
}

/// One message over the submission service (STARTTLS), AUTH PLAIN as `user`, from `from`
/// (`<>`: the null sender).
fn send(sc: &Sidecar, user: &str, password: &str, from: &str) -> (bool, String) {
    swaks_message_from(sc.ports.submission, "--tls", user, password, from, &["rcpt@example.org"])
}

#[test]
fn postfix_refuses_senders_the_login_does_not_own() {
    if !available(&["postfix", "swaks", "openssl"]) {
        return;
    }
    let sc = Sidecar::start("");
    let (ann, _) = sc.relaykey.account_with_secrets("ann@example.com");
    let billing =
        sc.relaykey.cli_json(&["smtp", "create", "ann@example.com", "--username", "billing@example.com"])["password"]
            .as_str()
            .unwrap()
            .to_string();
    sc.relaykey(&["sender", "add", "ann@example.com", "example.com"]);
    sc.relaykey(&["sender", "add", "ann@example.com", "pending.example", "--pending"]);
    sc.relaykey(&["account", "add", "bob@example.org"]);

    for (user, password, from) in [
        ("ann@example.com", &ann, "ann@example.com"),
        ("ann@example.com", &ann, "news@example.com"),
        ("ann@example.com", &ann, "Ann+tag@EXAMPLE.com"),
        ("billing@example.com", &billing, "invoices@example.com"),
    ] {
        let (ok, transcript) = send(&sc, user, password, from);
        assert!(mail_reply(&transcript).starts_with("250 "), "{user} as {from}:\n{transcript}");
        assert!(ok, "{user} as {from}:\n{transcript}");
    }
    for from in ["bob@example.org", "x@unknown.example", "x@pending.example"] {
        let (ok, transcript) = send(&sc, "ann@example.com", &ann, from);
        let reply = mail_reply(&transcript);
        assert!(!ok, "{from}:\n{transcript}");
        assert!(
            reply.starts_with(&format!(
                "553 5.7.1 <{from}>: Sender address rejected: not owned by user ann@example.com"
            )),
            "{from}: {reply}\n{transcript}"
        );
    }
    let (ok, transcript) = send(&sc, "ann@example.com", &ann, "<>");
    assert!(transcript.contains("> MAIL FROM:<>"), "{transcript}");
    assert!(mail_reply(&transcript).starts_with("250 "), "<>:\n{transcript}");
    assert!(ok, "<>:\n{transcript}");

    // An entry added or verified counts from the next MAIL FROM.
    sc.relaykey(&["sender", "remove", "ann@example.com", "pending.example"]);
    sc.relaykey(&["sender", "add", "ann@example.com", "pending.example"]);
    let (ok, transcript) = send(&sc, "ann@example.com", &ann, "x@pending.example");
    assert!(ok, "{transcript}\n{}", sc.maillog());
}
