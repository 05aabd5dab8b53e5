//! Sender binding through the HTTP API: `/v1/senders` (list with `view`; add a domain, verify
//! it by DNS, remove with `manage`), and `POST /v1/email/send` refusing a `from` the account
//! may not use (`403 sender_not_owned`, nothing queued).

mod api_common;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use api_common::relay_sink::Sink;
use api_common::{OWNER, TestServer, wait_until};
use relaykey::address::EmailAddress;
use relaykey::model::Permission::{Manage, Send, View};
use relaykey::senders::SenderEntry;
use serde_json::json;

const BOB: &str = "bob@bob.example";

fn add(server: &TestServer, account: &str, entry: &str, verified: bool) {
    let email = EmailAddress::parse(account).unwrap();
    server.store().add_sender(&email, &SenderEntry::parse(entry).unwrap(), verified).unwrap();
}

fn add_account(server: &TestServer, account: &str) {
    server.store().add_account(&EmailAddress::parse(account).unwrap()).unwrap();
}

#[tokio::test]
async fn senders_are_listed_added_as_pending_domains_and_removed() {
    let server = TestServer::start("").await;
    let (_, view) = server.key(&[View]);
    let (_, manage) = server.key(&[View, Manage]);

    let listed = server.call("GET", "/v1/senders", Some(&view), None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    assert_eq!(
        listed.json,
        json!([{"entry": OWNER, "unicode": OWNER, "kind": "address", "verified": true, "token": null, "dns": null}]),
        "an account starts with its own address, verified"
    );

    let added = server.call("POST", "/v1/senders", Some(&manage), Some(json!({"domain": "Ann.Example"}))).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let token = added.json["token"].as_str().unwrap().to_string();
    assert!(token.len() == 32 && token.bytes().all(|b| b.is_ascii_hexdigit()), "{token}");
    assert_eq!(
        added.json,
        json!({"entry": "ann.example", "unicode": "ann.example", "kind": "domain", "verified": false, "token": token,
               "dns": {"name": "_relaykey.ann.example", "type": "TXT", "value": format!("relaykey-verify={token}")}})
    );
    let idn = server.call("POST", "/v1/senders", Some(&manage), Some(json!({"domain": "bücher.example"}))).await;
    assert_eq!(
        (idn.status, &idn.json["entry"], &idn.json["unicode"]),
        (201, &json!("xn--bcher-kva.example"), &json!("bücher.example"))
    );

    // Refusals: an address, names that are no domain, a second claim, another account's claim,
    // a key without `manage`.
    for (body, status, code) in [
        (json!({"domain": "billing@ann.example"}), 400, "invalid_request"),
        (json!({"domain": "localhost"}), 400, "invalid_request"),
        (json!({"domain": "[192.0.2.1]"}), 400, "invalid_request"),
        (json!({"domain": "ann.example"}), 409, "sender_exists"),
    ] {
        let r = server.call("POST", "/v1/senders", Some(&manage), Some(body.clone())).await;
        assert_eq!((r.status, r.code()), (status, code), "{body}: {}", r.text);
    }
    add_account(&server, BOB);
    let (_, bobs) = server.key_for(BOB, &[Manage], &[]);
    let taken = server.call("POST", "/v1/senders", Some(&bobs), Some(json!({"domain": "ANN.example"}))).await;
    assert_eq!((taken.status, taken.code()), (409, "sender_taken"), "{}", taken.text);
    let r = server.call("POST", "/v1/senders", Some(&view), Some(json!({"domain": "c.example"}))).await;
    assert_eq!(r.status, 403);

    let removed = server.call("DELETE", "/v1/senders/b%C3%BCcher.example", Some(&manage), None).await;
    assert_eq!(
        (removed.status, &removed.json),
        (200, &json!({"removed": "xn--bcher-kva.example"})),
        "{}",
        removed.text
    );
    let again = server.call("DELETE", "/v1/senders/xn--bcher-kva.example", Some(&manage), None).await;
    assert_eq!(again.status, 404, "{}", again.text);
    let own = server.call("DELETE", &format!("/v1/senders/{OWNER}"), Some(&manage), None).await;
    assert_eq!((own.status, own.code()), (409, "conflict"), "{}", own.text);
    let bobs_view = server.call("GET", "/v1/senders", Some(&bobs), None).await;
    assert_eq!(bobs_view.status, 403, "bob's key has no view");
    let listed = server.call("GET", "/v1/senders", Some(&view), None).await;
    let entries: Vec<&str> = listed.json.as_array().unwrap().iter().map(|s| s["entry"].as_str().unwrap()).collect();
    assert_eq!(entries, ["ann.example", OWNER]);
}

/// dnsmasq on a free loopback port, serving `records` (name, TXT value) and answering
/// NXDOMAIN for every other name under `.example`.
struct Dnsmasq(Child);

impl Dnsmasq {
    fn start(port: u16, records: &[(String, String)]) -> Self {
        let mut cmd = Command::new("dnsmasq");
        cmd.args(["--keep-in-foreground", "--conf-file=/dev/null", "--pid-file", "--no-resolv", "--no-hosts"])
            .args(["--listen-address=127.0.0.1", "--bind-interfaces", "--user=root", "--local=/example/"])
            .arg(format!("--port={port}"));
        for (name, value) in records {
            cmd.arg(format!("--txt-record={name},{value}"));
        }
        let child = cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).spawn().expect("dnsmasq");
        Self(child)
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn udp_listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/udp")
        .is_ok_and(|t| t.lines().any(|l| l.split_whitespace().nth(1) == Some(&want)))
}

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

async fn pending(server: &TestServer, key: &str, domain: &str) -> String {
    let r = server.call("POST", "/v1/senders", Some(key), Some(json!({"domain": domain}))).await;
    assert_eq!(r.status, 201, "{}", r.text);
    r.json["token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn verify_reports_what_dns_holds_and_a_silent_resolver_is_503() {
    if std::path::Path::new("/usr/sbin/dnsmasq").exists() {
        let port = free_udp_port();
        let server =
            TestServer::start(&format!("[senders]\nresolver = \"127.0.0.1:{port}\"\ndns_timeout = \"5s\"")).await;
        let (_, key) = server.key(&[View, Manage]);
        let token = pending(&server, &key, "ok.example").await;
        pending(&server, &key, "wrong.example").await;
        pending(&server, &key, "missing.example").await;
        let _dns = Dnsmasq::start(
            port,
            &[
                ("_relaykey.ok.example".into(), format!("relaykey-verify={token}")),
                ("_relaykey.wrong.example".into(), "relaykey-verify=00000000000000000000000000000000".into()),
            ],
        );
        wait_until("dnsmasq", || udp_listening(port)).await;
        for (domain, verified, result) in [
            ("ok.example", true, None),
            ("ok.example", true, None),
            ("wrong.example", false, Some("wrong_token")),
            ("missing.example", false, Some("no_record")),
        ] {
            let r = server.call("POST", &format!("/v1/senders/{domain}/verify"), Some(&key), None).await;
            assert_eq!(r.status, 200, "{domain}: {}", r.text);
            assert_eq!(r.json["verified"], verified, "{domain}: {}", r.text);
            assert_eq!(r.json["check"]["result"].as_str(), result, "{domain}: {}", r.text);
        }
        let unknown = server.call("POST", "/v1/senders/other.example/verify", Some(&key), None).await;
        assert_eq!(unknown.status, 404, "{}", unknown.text);
        let own = server.call("POST", &format!("/v1/senders/{OWNER}/verify"), Some(&key), None).await;
        assert_eq!((own.status, &own.json["verified"]), (200, &json!(true)), "{}", own.text);
    } else if std::env::var("CI").as_deref() == Ok("true") {
        panic!("dnsmasq is required under CI=true");
    }

    // A resolver that never answers: a temporary failure, and the domain stays pending.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let server = TestServer::start(&format!("[senders]\nresolver = \"127.0.0.1:{port}\"\ndns_timeout = \"1s\"")).await;
    let (_, key) = server.key(&[View, Manage]);
    pending(&server, &key, "slow.example").await;
    let r = server.call("POST", "/v1/senders/slow.example/verify", Some(&key), None).await;
    assert_eq!((r.status, r.code()), (503, "dns_unavailable"), "{}", r.text);
    let listed = server.call("GET", "/v1/senders", Some(&key), None).await;
    assert!(listed.json.as_array().unwrap().iter().any(|s| s["entry"] == "slow.example" && s["verified"] == false));
}

async fn relay_server(sink: &Sink, spool: &std::path::Path, senders: &str) -> TestServer {
    TestServer::start(&format!(
        "[relay]\nenabled = true\nhostname = \"relay.test\"\nspool = {spool:?}\nsmarthost = \"127.0.0.1:{}\"\n\
         smarthost_tls = \"none\"\nlisten = []\n[senders]\n{senders}\n",
        sink.port
    ))
    .await
}

fn queued(spool: &std::path::Path) -> usize {
    relaykey::queue::Spool::open_existing(spool).unwrap().ids().unwrap().len()
}

#[tokio::test(flavor = "multi_thread")]
async fn send_refuses_a_from_the_account_may_not_use_and_queues_nothing() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = relay_server(&sink, spool.path(), "").await;
    add_account(&server, BOB);
    add(&server, OWNER, "owner.example", true);
    add(&server, OWNER, "pending.example", false);
    add(&server, BOB, "bob.example", true);
    let (_, key) = server.key(&[Send]);
    let send = |from: &str| json!({"from": from, "to": ["rcpt@example.net"], "subject": "s", "text": "t"});

    for from in [OWNER, "news@owner.example", "News+Tag@Owner.Example"] {
        let r = server.call("POST", "/v1/email/send", Some(&key), Some(send(from))).await;
        assert_eq!(r.status, 202, "{from}: {}", r.text);
    }
    for from in ["x@bob.example", "x@nobody.example", "x@pending.example"] {
        let r = server.call("POST", "/v1/email/send", Some(&key), Some(send(from))).await;
        assert_eq!((r.status, r.code()), (403, "sender_not_owned"), "{from}: {}", r.text);
        assert!(r.message().contains(from), "{}", r.message());
    }
    // Raw MIME: the envelope sender and every From: address are checked.
    let raw = |head_from: &str| format!("From: {head_from}\r\nSubject: raw\r\n\r\nbody\r\n");
    for (envelope, head_from, status) in [
        ("bounce@owner.example", "Owner <owner@example.com>", 202),
        ("bounce@owner.example", "Bob <x@bob.example>", 403),
        ("bounce@owner.example", "a@owner.example, x@bob.example", 403),
        ("x@bob.example", "owner@example.com", 403),
    ] {
        let body = json!({"raw": raw(head_from), "envelope": {"from": envelope, "to": ["rcpt@example.net"]}});
        let r = server.call("POST", "/v1/email/send", Some(&key), Some(body)).await;
        assert_eq!(r.status, status, "{envelope} / {head_from}: {}", r.text);
    }
    let unreadable =
        json!({"raw": raw("x@bob.example <owner@example.com>"), "envelope": {"from": OWNER, "to": ["r@example.net"]}});
    let r = server.call("POST", "/v1/email/send", Some(&key), Some(unreadable)).await;
    assert_eq!(r.status, 400, "{}", r.text);
    // Once the queue is empty, the smarthost has every message that was queued: the four allowed.
    let delivered = sink.wait_for(4, Duration::from_secs(60));
    assert_eq!(delivered.len(), 4, "{delivered:?}");
    wait_until("the queue to drain", || queued(spool.path()) == 0).await;
    assert_eq!(sink.all().len(), 4, "a refused message was queued");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_binding_follows_enforce_and_check_header_from() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let off = relay_server(&sink, spool.path(), "enforce = false").await;
    let (_, key) = off.key(&[Send]);
    let r = off
        .call(
            "POST",
            "/v1/email/send",
            Some(&key),
            Some(json!({"from": "x@else.example", "to": ["r@example.net"], "text": "t"})),
        )
        .await;
    assert_eq!(r.status, 202, "{}", r.text);

    let spool = tempfile::tempdir().unwrap();
    let envelope_only = relay_server(&sink, spool.path(), "check_header_from = false").await;
    let (_, key) = envelope_only.key(&[Send]);
    let raw =
        json!({"raw": "From: x@else.example\r\n\r\nbody\r\n", "envelope": {"from": OWNER, "to": ["r@example.net"]}});
    let r = envelope_only.call("POST", "/v1/email/send", Some(&key), Some(raw)).await;
    assert_eq!(r.status, 202, "{}", r.text);
    let r = envelope_only
        .call(
            "POST",
            "/v1/email/send",
            Some(&key),
            Some(json!({"from": "x@else.example", "to": ["r@example.net"], "text": "t"})),
        )
        .await;
    assert_eq!((r.status, r.code()), (403, "sender_not_owned"), "{}", r.text);
}

#[tokio::test]
async fn smtp_usernames_may_lie_in_the_accounts_verified_senders() {
    let server = TestServer::start("").await;
    add_account(&server, BOB);
    add(&server, OWNER, "owner.example", true);
    add(&server, OWNER, "pending.example", false);
    add(&server, OWNER, "billing@other.example", true);
    add(&server, BOB, "bob.example", true);
    let (_, key) = server.key(&[View, Manage]);
    // The hardening rule (own address, own domain) holds, widened to verified senders.
    for username in ["app@example.com", "app@owner.example", "App+Tag@Owner.Example", "billing@other.example"] {
        let r = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": username}))).await;
        assert_eq!(r.status, 201, "{username}: {}", r.text);
    }
    for username in ["app@pending.example", "app@bob.example", "x@other.example", "app@nobody.example"] {
        let r = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": username}))).await;
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{username}: {}", r.text);
        assert!(r.message().contains("verified"), "{}", r.message());
    }
}
