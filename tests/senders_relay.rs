//! Sender binding on the native relay, over its SMTP port: an authenticated session's
//! `MAIL FROM` must be covered by a verified sender of its account (`553 5.7.1` otherwise, in
//! Postfix's words), and every address of the message's `From:` too (`550 5.7.1` after DATA,
//! nothing queued). `<>` passes; trusted-network clients that did not log in are not bound;
//! `[senders] enforce = false` and `check_header_from = false` turn the checks off.

mod support;

use std::collections::BTreeSet;
use std::path::Path;

use base64::Engine as _;
use relaykey::address::EmailAddress;
use relaykey::senders::SenderEntry;
use relaykey::store::Store;
use support::peers::available;
use support::relay::{Options, Relay, USER};
use support::smtp::{Dialog, swaks};

/// USER's own domain, another account's domain, a domain nobody has, USER's pending domain.
const OWN: &str = "ann.example";
const OTHERS: &str = "bob.example";
const UNKNOWN: &str = "nobody.example";
const PENDING: &str = "pending.example";

fn refusal(address: &str) -> String {
    format!("553 5.7.1 <{address}>: Sender address rejected: not owned by user {USER}")
}

/// A relay whose store has the senders above (added through the store functions the CLI uses).
fn start_relay(extra: &str) -> Relay {
    let relay = Relay::start(Options { relay: extra.into(), ..Options::default() });
    let mut store = Store::open(&relay.dir().join("relaykey.db")).unwrap();
    let ann = EmailAddress::parse(USER).unwrap();
    let bob = EmailAddress::parse("bob@bob.example").unwrap();
    store.add_account(&bob).unwrap();
    for (who, entry, verified) in [(&ann, OWN, true), (&ann, PENDING, false), (&bob, OTHERS, true)] {
        store.add_sender(who, &SenderEntry::parse(entry).unwrap(), verified).unwrap();
    }
    relay
}

/// A plaintext session logged in as USER.
fn logged_in(relay: &Relay) -> Dialog {
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO c\r\n");
    d.reply();
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{}", relay.password));
    d.send(&format!("AUTH PLAIN {plain}\r\n"));
    assert!(d.reply().starts_with("235 "));
    d
}

fn mail_from(d: &mut Dialog, address: &str) -> String {
    d.send(&format!("MAIL FROM:<{address}>\r\n"));
    let reply = d.reply().trim_end().to_string();
    d.send("RSET\r\n");
    assert!(d.reply().starts_with("250 "));
    reply
}

/// MAIL, RCPT, DATA and a message with `head`; the reply to the end of data.
fn message(d: &mut Dialog, sender: &str, head: &str) -> String {
    d.send(&format!("MAIL FROM:<{sender}>\r\nRCPT TO:<rcpt@example.net>\r\nDATA\r\n"));
    assert!(d.reply().starts_with("250 "), "MAIL");
    assert!(d.reply().starts_with("250 "), "RCPT");
    assert!(d.reply().starts_with("354 "), "DATA");
    d.send(&format!("{head}Subject: binding\r\n\r\nbody\r\n.\r\n"));
    d.reply().trim_end().to_string()
}

/// Every file under the spool (queued messages and any half-written one).
fn spool_files(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, out: &mut BTreeSet<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            if e.path().is_dir() {
                walk(&e.path(), out);
            } else {
                out.insert(e.path().display().to_string());
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, &mut out);
    out
}

#[test]
fn mail_from_must_be_an_owned_verified_sender() {
    let relay = start_relay("");
    let mut d = logged_in(&relay);
    for allowed in [&format!("x@{OWN}") as &str, "User+Tag@ANN.Example", USER] {
        assert!(mail_from(&mut d, allowed).starts_with("250 2.1.0"), "{allowed}");
    }
    for refused in [format!("x@{OTHERS}"), format!("x@{UNKNOWN}"), format!("x@{PENDING}")] {
        assert_eq!(mail_from(&mut d, &refused), refusal(&refused));
    }
    // The null sender (bounces) passes, and its message is queued.
    assert!(message(&mut d, "", &format!("From: x@{OWN}\r\n")).starts_with("250 2.0.0 Ok: queued as"));
    assert!(relay.log().contains("reason=\"not_owned\""), "refusals are logged:\n{}", relay.log());
}

#[test]
fn swaks_is_refused_another_accounts_domain_and_sends_from_its_own() {
    if !available(&["swaks"]) {
        return;
    }
    let relay = start_relay("");
    let server = format!("127.0.0.1:{}", relay.starttls);
    let run = |from: &str| {
        swaks(&[
            "-s",
            &server,
            "--tls",
            "-a",
            "PLAIN",
            "-au",
            USER,
            "-ap",
            &relay.password,
            "-f",
            from,
            "-t",
            "r@example.net",
        ])
    };
    let (ok, text) = run(&format!("news@{OWN}"));
    assert!(ok && text.contains("250 2.0.0 Ok: queued as"), "{text}");
    for refused in [format!("news@{OTHERS}"), format!("news@{UNKNOWN}"), format!("news@{PENDING}")] {
        let (ok, text) = run(&refused);
        assert!(!ok && text.contains(&refusal(&refused)), "{refused}:\n{text}");
    }
}

#[test]
fn every_header_from_address_must_be_owned_and_a_refused_message_is_not_queued() {
    let relay = start_relay("");
    let mut d = logged_in(&relay);
    let spool = relay.dir().join("spool");
    for head in [
        format!("From: Boss <boss@{OTHERS}>\r\n"),
        format!("From: me@{OWN}, \"Bob\" <b@{OTHERS}>\r\n"),
        format!("From: x@{PENDING}\r\n"),
        format!("From: x@{UNKNOWN}\r\n"),
    ] {
        let before = spool_files(&spool);
        let reply = message(&mut d, &format!("me@{OWN}"), &head);
        assert!(reply.starts_with("550 5.7.1 <"), "{head}: {reply}");
        assert!(reply.ends_with(&format!("From header address rejected: not owned by user {USER}")), "{reply}");
        let after = spool_files(&spool);
        assert!(after.is_subset(&before), "{head}: the refused message left {:?}", after.difference(&before));
    }
    // A From: a reader could take for another address is refused too; so is a second From:.
    for head in [format!("From: x@{OTHERS} <me@{OWN}>\r\n"), format!("From: me@{OWN}\r\nFrom: x@{OTHERS}\r\n")] {
        let reply = message(&mut d, &format!("me@{OWN}"), &head);
        assert!(reply.starts_with("550 5.7.1 Message rejected"), "{head}: {reply}");
    }
    let ok = message(&mut d, &format!("me@{OWN}"), &format!("From: \"Ann (work)\" <ann+work@{OWN}>,\r\n {USER}\r\n"));
    assert!(ok.starts_with("250 2.0.0 Ok: queued as"), "{ok}");
}

#[test]
fn trusted_clients_without_auth_are_not_bound() {
    let relay = start_relay("");
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO c\r\n");
    d.reply();
    let reply = message(&mut d, &format!("x@{OTHERS}"), &format!("From: x@{OTHERS}\r\n"));
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
}

#[test]
fn enforce_false_and_check_header_from_false_turn_the_checks_off() {
    let relay = start_relay("[senders]\nenforce = false");
    let mut d = logged_in(&relay);
    let reply = message(&mut d, &format!("x@{OTHERS}"), &format!("From: x@{OTHERS}\r\n"));
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");

    let relay = start_relay("[senders]\ncheck_header_from = false");
    let mut d = logged_in(&relay);
    assert_eq!(mail_from(&mut d, &format!("x@{OTHERS}")), refusal(&format!("x@{OTHERS}")));
    let reply = message(&mut d, &format!("x@{OWN}"), &format!("From: x@{OTHERS}\r\n"));
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
}

#[test]
fn a_sender_added_or_removed_counts_from_the_next_mail() {
    let relay = start_relay("");
    let mut d = logged_in(&relay);
    let fresh = "fresh.example";
    assert_eq!(mail_from(&mut d, &format!("x@{fresh}")), refusal(&format!("x@{fresh}")));
    relay.cli(&["sender", "add", USER, fresh]);
    assert!(mail_from(&mut d, &format!("x@{fresh}")).starts_with("250 "), "added through the CLI");
    relay.cli(&["sender", "remove", USER, fresh]);
    assert_eq!(mail_from(&mut d, &format!("x@{fresh}")), refusal(&format!("x@{fresh}")));
}
