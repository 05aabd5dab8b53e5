//! What the DKIM end-to-end tests share: a relay (the `relaykey serve` of
//! [`crate::support::relay`]) delivering to a smarthost sink, whose account owns a verified
//! sender domain with DKIM keys made by the CLI (`relaykey dkim generate`, `activate`, `list`),
//! a client that sends several messages in one authenticated session, and the checks every
//! signed message must pass besides the two verifiers: what `h=` covers, the tags, line lengths.
//!
//! The test crate provides `crate::sink` (tests/support/relay_sink.rs) and `crate::support`:
//! `#[path = "support/relay_sink.rs"] mod sink;`, or `use api_common::relay_sink as sink;`
//! where api_common already includes it (a file may be a module only once per crate).
#![allow(dead_code)]

use std::time::Duration;

use base64::Engine as _;
use serde_json::Value;

use crate::sink::{Delivered, Sink};
use crate::support::dkim_verify::{Checked, Keys, assert_verifies, keys_from_list};
use crate::support::relay::{Options, Relay, USER};
use crate::support::smtp::Dialog;

/// The verified sender domain of USER that gets keys.
pub const DOMAIN: &str = "ann.example";
/// A sender domain of USER without keys: its mail goes out unsigned.
pub const KEYLESS: &str = "plain.example";

pub const WAIT: Duration = Duration::from_secs(60);

/// A relay delivering to `sink`, with `extra` in `[relay]`, USER owning DOMAIN and KEYLESS.
pub fn relay_to(sink: &Sink, extra: &str) -> Relay {
    start(sink.port, extra, false)
}

/// [`relay_to`], also serving the HTTP API ([`Relay::api`]).
pub fn relay_with_api_to(sink: &Sink) -> Relay {
    start(sink.port, "", true)
}

fn start(smarthost_port: u16, extra: &str, api: bool) -> Relay {
    let relay = Relay::start(Options {
        relay: format!("smarthost = \"127.0.0.1:{smarthost_port}\"\nsmarthost_tls = \"none\"\n{extra}"),
        api,
        ..Options::default()
    });
    for domain in [DOMAIN, KEYLESS] {
        relay.cli(&["sender", "add", USER, domain]);
    }
    relay
}

/// `relaykey dkim list DOMAIN --json`.
pub fn list(relay: &Relay, domain: &str) -> Vec<Value> {
    let listed = relay.cli_json(&["dkim", "list", domain]);
    listed.as_array().unwrap_or_else(|| panic!("dkim list is not an array: {listed}")).clone()
}

/// Generates keys for `domain` with `args` (`--selector S`, `--algorithm A`); each starts
/// `published` (shown, not signing) and is then activated. Returns them as `list` shows them.
pub fn generate_active(relay: &Relay, domain: &str, args: &[&str]) -> Vec<Value> {
    let before: Vec<Value> = list(relay, domain);
    let mut all = vec!["dkim", "generate", domain];
    all.extend_from_slice(args);
    relay.cli(&all);
    let fresh: Vec<Value> = list(relay, domain).into_iter().filter(|k| !before.contains(k)).collect();
    assert!(!fresh.is_empty(), "dkim generate {domain} {args:?} made no key");
    for key in &fresh {
        assert_eq!(key["state"], "published", "a new key does not sign before it is activated: {key}");
        relay.cli(&["dkim", "activate", domain, key["selector"].as_str().unwrap()]);
    }
    let selectors: Vec<&Value> = fresh.iter().map(|k| &k["selector"]).collect();
    let now: Vec<Value> = list(relay, domain).into_iter().filter(|k| selectors.contains(&&k["selector"])).collect();
    assert!(now.iter().all(|k| k["state"] == "active"), "not all active after activate: {now:?}");
    now
}

/// A relay delivering to `sink` whose DOMAIN has an active Ed25519 and an active RSA key;
/// returns it with the published keys.
pub fn signing_relay(sink: &Sink, extra: &str) -> (Relay, Keys) {
    with_keys(relay_to(sink, extra))
}

/// [`signing_relay`] with its smarthost on 127.0.0.1:`port`, where nothing need listen yet.
pub fn signing_relay_on(port: u16) -> (Relay, Keys) {
    with_keys(start(port, "", false))
}

/// [`signing_relay`], also serving the HTTP API.
pub fn signing_api_relay(sink: &Sink) -> (Relay, Keys) {
    with_keys(relay_with_api_to(sink))
}

/// Active keys of both algorithms for DOMAIN on `relay`.
fn with_keys(relay: Relay) -> (Relay, Keys) {
    let keys = generate_active(&relay, DOMAIN, &[]);
    let mut algorithms: Vec<&str> = keys.iter().map(|k| k["algorithm"].as_str().unwrap()).collect();
    algorithms.sort();
    assert_eq!(algorithms, ["ed25519", "rsa"], "dkim generate makes both by default: {keys:?}");
    let published = keys_from_list(&Value::Array(list(&relay, DOMAIN)));
    (relay, published)
}

/// An SMTP session on the relay's plaintext port, logged in as USER.
pub fn session(relay: &Relay) -> Dialog {
    let mut d = Dialog::connect(relay.plain);
    assert!(d.reply().starts_with("220 "));
    d.send("EHLO client.test\r\n");
    assert!(d.reply().contains("SMTPUTF8"));
    let plain = base64::engine::general_purpose::STANDARD.encode(format!("\0{USER}\0{}", relay.password));
    d.send(&format!("AUTH PLAIN {plain}\r\n"));
    let reply = d.reply();
    assert!(reply.starts_with("235 "), "{reply}");
    d
}

/// Sends `message` (CRLF lines; the final CRLF is added when missing, as SMTP needs) from
/// `sender` to `rcpt`; returns the reply to the end of data. `SMTPUTF8` and `BODY=8BITMIME`
/// are declared when the message is not ASCII.
pub fn send(d: &mut Dialog, sender: &str, rcpt: &str, message: &str) -> String {
    let params = if message.is_ascii() { "" } else { " SMTPUTF8 BODY=8BITMIME" };
    d.send(&format!("MAIL FROM:<{sender}>{params}\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n"));
    for step in ["MAIL", "RCPT"] {
        let reply = d.reply();
        assert!(reply.starts_with("250 "), "{step}: {reply}");
    }
    let reply = d.reply();
    assert!(reply.starts_with("354 "), "DATA: {reply}");
    d.send(&dot_stuffed(message));
    d.reply().trim_end().to_string()
}

/// `message` dot-stuffed with its terminating `.` line (RFC 5321 §4.5.2).
pub fn dot_stuffed(message: &str) -> String {
    let mut out = String::with_capacity(message.len() + 8);
    for line in message.split_inclusive("\r\n") {
        if line.starts_with('.') {
            out.push('.');
        }
        out.push_str(line);
    }
    if !message.is_empty() && !message.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    out.push_str(".\r\n");
    out
}

/// The message delivered to `rcpt` (waits for `count` deliveries in all).
pub fn delivered_to(sink: &Sink, count: usize, rcpt: &str) -> Delivered {
    let got = sink.wait_for(count, WAIT);
    got.iter()
        .find(|m| m.rcpts.iter().any(|r| r == rcpt))
        .unwrap_or_else(|| panic!("nothing for {rcpt} among {} deliveries", got.len()))
        .clone()
}

/// The header fields of `message` named `name` (any case), unfolded.
pub fn fields(message: &[u8], name: &str) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let head = match text.find("\r\n\r\n") {
        Some(at) => &text[..at + 2],
        None => &text[..],
    };
    let mut all: Vec<String> = Vec::new();
    for line in head.split_inclusive("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = all.last_mut() {
                last.push_str(line);
            }
        } else {
            all.push(line.to_string());
        }
    }
    let prefix = format!("{}:", name.to_ascii_lowercase());
    all.into_iter().filter(|f| f.to_ascii_lowercase().starts_with(&prefix)).collect()
}

/// Everything the issue asks of a signed message besides verifying: both verifiers pass each
/// signature; one `ed25519-sha256` and one `rsa-sha256` signature, `d=DOMAIN`,
/// relaxed/relaxed, no `l=`; `h=` covers every present From, To, Cc, Subject, Date, Reply-To,
/// Message-ID and MIME field and names the key ones once more than they occur (oversigned),
/// never a trace field; and no line of the message is longer than RFC 5322's 998 characters.
pub fn assert_signed(message: &[u8], keys: &Keys) -> Vec<Checked> {
    let checked = assert_verifies(message, keys);
    let mut algorithms: Vec<&str> = checked.iter().map(Checked::algorithm).collect();
    algorithms.sort();
    assert_eq!(algorithms, ["ed25519-sha256", "rsa-sha256"], "{}", String::from_utf8_lossy(message));
    for c in &checked {
        assert!(c.domain().eq_ignore_ascii_case(DOMAIN), "d={}", c.domain());
        assert_eq!(c.tag("c"), "relaxed/relaxed");
        assert!(!c.tags.contains_key("l"), "l= must not be used: {:?}", c.tags);
        let h = c.signed_headers();
        for name in [
            "from",
            "to",
            "cc",
            "subject",
            "date",
            "reply-to",
            "message-id",
            "mime-version",
            "content-type",
            "content-transfer-encoding",
        ] {
            let present = fields(message, name).len();
            let signed = h.iter().filter(|n| *n == name).count();
            assert_eq!(signed, present + 1, "{name} occurs {present} times; h={h:?}");
        }
        for name in ["list-unsubscribe", "list-unsubscribe-post"] {
            let present = fields(message, name).len();
            let signed = h.iter().filter(|n| *n == name).count();
            assert!(present == 0 || signed == present + 1, "{name} occurs {present} times; h={h:?}");
        }
        for trace in ["received", "return-path", "dkim-signature"] {
            assert!(!h.iter().any(|n| n == trace), "{trace} must not be signed: {h:?}");
        }
    }
    let long: Vec<usize> =
        message.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l).len()).filter(|&n| n > 998).collect();
    assert!(long.is_empty(), "lines over 998 characters: {long:?}");
    checked
}

/// No DKIM-Signature in `message`.
pub fn assert_unsigned(message: &[u8]) {
    assert!(fields(message, "dkim-signature").is_empty(), "signed:\n{}", String::from_utf8_lossy(message));
}
