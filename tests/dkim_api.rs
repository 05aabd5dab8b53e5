//! DKIM signing of `POST /v1/email/send`, proved by dkimpy and OpenDKIM: messages composed
//! from fields and given raw (8-bit headers, a body without a final newline, trailing
//! whitespace lines, long folded headers, LF line ends, no body) reach the smarthost sink with an Ed25519
//! and an RSA signature that each verify on its own; changing the body or the Subject breaks
//! them; a From domain without a key goes out unsigned. The API is the one `relaykey serve`
//! runs next to its relay, so the keys are the ones the CLI made in its store.
//! Needs dkimpy and OpenDKIM: skipped locally without them, a failure under CI=true.

mod api_common;
mod dkim_support;
mod support;

use api_common::relay_sink as sink;
use api_common::{Reply, call_from};
use dkim_support::{DOMAIN, KEYLESS, assert_signed, assert_unsigned, delivered_to, signing_api_relay};
use serde_json::{Value, json};
use sink::Sink;
use support::dkim_verify::{assert_fails, available, with_body_changed, with_subject_changed};
use support::relay::{Relay, USER};

/// A key of USER that may send.
fn send_key(relay: &Relay) -> String {
    relay.cli_json(&["apikey", "create", USER, "--name", "dkim"])["key"].as_str().unwrap().to_string()
}

fn post(relay: &Relay, key: &str, body: Value) -> Reply {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], relay.api.expect("the API is served")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(call_from(addr, "127.0.0.1".parse().unwrap(), "POST", "/v1/email/send", Some(key), Some(body)))
}

/// A raw message from DOMAIN to `rcpt`, with its envelope.
fn raw(rcpt: &str, message: &str) -> Value {
    json!({"raw": message, "envelope": {"from": format!("news@{DOMAIN}"), "to": [rcpt]}})
}

#[test]
fn composed_and_raw_api_messages_are_signed_and_verify() {
    if !available() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_api_relay(&sink);
    let key = send_key(&relay);
    let from = format!("news@{DOMAIN}");
    let references: String =
        (0..150).map(|i| format!("<thread-{i}-bbbbbbbbbbbbbbbb@{DOMAIN}>")).collect::<Vec<_>>().join("\r\n ");
    let requests: Vec<(&str, Value)> = vec![
        (
            "composed@example.net",
            json!({"from": from, "to": ["composed@example.net"], "cc": ["cc@example.org"],
                   "subject": "Grüße aus der API", "text": "Hello from the API.\r\n.a dot line\r\nno newline at the end",
                   "html": "<p>Hello</p>"}),
        ),
        (
            "text-only@example.net",
            json!({"from": from, "to": ["text-only@example.net"], "subject": "plain", "text": "one line, no newline"}),
        ),
        (
            "raw-8bit@example.net",
            raw(
                "raw-8bit@example.net",
                &format!(
                    "From: Ännchen <{from}>\r\nTo: Jürgen <raw-8bit@example.net>\r\nSubject: Grüße — ✓ 日本語\r\n\
                     MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                     üñí line\r\nthe last line has no newline"
                ),
            ),
        ),
        (
            "raw-whitespace@example.net",
            raw(
                "raw-whitespace@example.net",
                &format!(
                    "From: {from}\r\nTo: raw-whitespace@example.net\r\nSubject:  spaced\t \r\n\r\n\
                     text  \t\r\n \r\n\t\r\n\r\n"
                ),
            ),
        ),
        (
            "raw-folded@example.net",
            raw(
                "raw-folded@example.net",
                &format!(
                    "From: {from}\r\nTo: raw-folded@example.net\r\nSubject: folded\r\nReferences: {references}\r\n\r\nlong\r\n"
                ),
            ),
        ),
        (
            "raw-lf@example.net",
            raw(
                "raw-lf@example.net",
                &format!("From: {from}\nTo: raw-lf@example.net\nSubject: LF line ends\n\n.dot line\nlast\n"),
            ),
        ),
        (
            "raw-empty@example.net",
            raw(
                "raw-empty@example.net",
                &format!("From: {from}\r\nTo: raw-empty@example.net\r\nSubject: empty\r\n\r\n"),
            ),
        ),
    ];
    for (rcpt, body) in &requests {
        let reply = post(&relay, &key, body.clone());
        assert_eq!(reply.status, 202, "{rcpt}: {}", reply.text);
    }
    // Every message is checked before the test fails, so one run names all that do not verify.
    let mut failed = Vec::new();
    for (rcpt, _) in &requests {
        let m = delivered_to(&sink, requests.len(), rcpt);
        if std::panic::catch_unwind(|| assert_signed(&m.data, &keys)).is_err() {
            failed.push(*rcpt);
        }
    }
    assert!(failed.is_empty(), "these did not verify (reasons above): {failed:?}");
    let composed = delivered_to(&sink, requests.len(), "composed@example.net").text();
    assert!(composed.contains("\r\nSubject: =?UTF-8?B?"), "{composed}");
    let eightbit = delivered_to(&sink, requests.len(), "raw-8bit@example.net").text();
    assert!(eightbit.contains("Subject: Grüße — ✓ 日本語\r\n"), "the 8-bit header arrives as it was: {eightbit}");
}

#[test]
fn changing_an_api_message_after_signing_breaks_both_signatures() {
    if !available() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_api_relay(&sink);
    let key = send_key(&relay);
    let reply = post(
        &relay,
        &key,
        json!({"from": format!("news@{DOMAIN}"), "to": ["tamper@example.net"], "subject": "original", "text": "The body."}),
    );
    assert_eq!(reply.status, 202, "{}", reply.text);
    let signed = delivered_to(&sink, 1, "tamper@example.net").data;
    assert_signed(&signed, &keys);
    assert_fails(&with_body_changed(&signed), &keys);
    let subject = with_subject_changed(&signed);
    assert!(String::from_utf8_lossy(&subject).contains("\r\nSubject: Re: original\r\n"));
    assert_fails(&subject, &keys);
}

#[test]
fn api_mail_from_a_domain_without_a_key_goes_out_unsigned() {
    if !available() {
        return;
    }
    let sink = Sink::start();
    let (relay, _) = signing_api_relay(&sink);
    let key = send_key(&relay);
    for (from, rcpt) in [(format!("news@{KEYLESS}"), "keyless@example.net"), (USER.to_string(), "own@example.net")] {
        let reply = post(&relay, &key, json!({"from": from, "to": [rcpt], "subject": "no key", "text": "unsigned"}));
        assert_eq!(reply.status, 202, "{}", reply.text);
    }
    for rcpt in ["keyless@example.net", "own@example.net"] {
        assert_unsigned(&delivered_to(&sink, 2, rcpt).data);
    }
}
