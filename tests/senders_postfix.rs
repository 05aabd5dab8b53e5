//! A real Postfix with the shipped sender-binding lines (`smtpd_sender_login_maps` on
//! relaykey's socketmap, `reject_authenticated_sender_login_mismatch`) and swaks: an account's
//! own domain and address get 250; another account's address, an unknown domain and a pending
//! domain get 553 5.7.1; the null sender passes.

mod senders_support;

use senders_support::available;
use senders_support::postfix::{Postfix, mail_reply};

#[test]
fn postfix_refuses_senders_the_login_does_not_own() {
    if !available(&["postfix", "swaks"]) {
        return;
    }
    let (dir, env) = Postfix::env();
    let ann = env.account("ann@example.com");
    let billing = env.json(&["smtp", "create", "ann@example.com", "--username", "billing@example.com"])["password"]
        .as_str()
        .unwrap()
        .to_string();
    env.cli(&["sender", "add", "ann@example.com", "example.com"]);
    env.cli(&["sender", "add", "ann@example.com", "pending.example", "--pending"]);
    env.account("bob@example.org");
    let _daemon = env.serve();
    let pf = Postfix::start(dir);

    for (user, password, from) in [
        ("ann@example.com", &ann, "ann@example.com"),
        ("ann@example.com", &ann, "news@example.com"),
        ("ann@example.com", &ann, "Ann+tag@EXAMPLE.com"),
        ("billing@example.com", &billing, "invoices@example.com"),
    ] {
        let (ok, transcript) = pf.send(user, password, from);
        assert!(mail_reply(&transcript).starts_with("250 "), "{user} as {from}:\n{transcript}");
        assert!(ok, "{user} as {from}:\n{transcript}");
    }
    for from in ["bob@example.org", "x@unknown.example", "x@pending.example"] {
        let (ok, transcript) = pf.send("ann@example.com", &ann, from);
        let reply = mail_reply(&transcript);
        assert!(!ok, "{from}:\n{transcript}");
        assert!(
            reply.starts_with(&format!(
                "553 5.7.1 <{from}>: Sender address rejected: not owned by user ann@example.com"
            )),
            "{from}: {reply}\n{transcript}"
        );
    }
    let (ok, transcript) = pf.send("ann@example.com", &ann, "<>");
    assert!(transcript.contains("-> MAIL FROM:<>"), "{transcript}");
    assert!(mail_reply(&transcript).starts_with("250 "), "<>:\n{transcript}");
    assert!(ok, "<>:\n{transcript}");

    // Verifying the pending domain lets it through at once.
    env.cli(&["sender", "remove", "ann@example.com", "pending.example"]);
    env.cli(&["sender", "add", "ann@example.com", "pending.example"]);
    let (ok, transcript) = pf.send("ann@example.com", &ann, "x@pending.example");
    assert!(ok, "{transcript}\n{}", pf.maillog());
}
