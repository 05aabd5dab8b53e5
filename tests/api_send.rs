//! `POST /v1/email/send` through the relay's durable queue to a smarthost: the message that
//! arrives is the one that was sent (fields composed, or raw MIME byte for byte after the
//! trace header), with the envelope the API was given.

mod api_common;

use std::time::Duration;

use api_common::OWNER;
use api_common::relay_sink::Sink;
use api_common::send::{api_to_sink, wait_for};
use base64::Engine;
use relaykey::model::Permission::Send;
use serde_json::json;

#[tokio::test(flavor = "multi_thread")]
async fn a_composed_message_reaches_the_smarthost_intact() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    let text = "Hello from the API.\r\n.a line with a leading dot\r\nGrüße";
    let reply = server
        .call(
            "POST",
            "/v1/email/send",
            Some(&key),
            Some(json!({"from": OWNER, "to": ["rcpt@example.net"], "cc": ["copy@example.org"],
                        "subject": "Grüße aus der API", "text": text, "html": "<p>Hello</p>"})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let id = reply.json["id"].as_str().unwrap().to_string();

    let got = wait_for(&sink, 1).await;
    let m = &got[0];
    assert_eq!(m.from, OWNER);
    assert_eq!(m.rcpts, ["rcpt@example.net", "copy@example.org"]);
    let data = m.text();
    assert!(data.starts_with("Received: from api ([127.0.0.1])\r\n\tby relay.test (relaykey) with HTTP id "), "{data}");
    assert!(data.contains(&format!(" id {id}")), "the queue id is not in the trace header");
    assert!(data.contains("\r\nSubject: =?UTF-8?B?"), "{data}");
    assert!(data.contains("\r\nCc: copy@example.org\r\n"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(text.as_bytes());
    let body: String = data.lines().filter(|l| !l.contains(':') && !l.starts_with("--")).collect::<Vec<_>>().concat();
    assert!(body.contains(&encoded), "the text part did not arrive intact:\n{data}");

    // The operator endpoint counts the delivery and sees the queue drain.
    api_common::wait_until("the delivery to be counted", || {
        relaykey::metrics::registry().get("relaykey_deliveries_total", &[("result", "delivered")]) >= 2
    })
    .await;
    let mut drained = false;
    for _ in 0..600 {
        if server.metrics_text().await.contains("\nrelaykey_queue_messages 0\n") {
            drained = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(drained, "the queue gauge never showed an empty queue");
}

#[tokio::test(flavor = "multi_thread")]
async fn raw_mime_arrives_byte_for_byte_with_the_given_envelope() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    let raw = "From: Owner <owner@example.com>\r\nTo: someone@example.net\r\nSubject: raw\r\nMIME-Version: 1.0\r\n\
               Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
               line one\r\n.\r\n..two dots\r\nüñí\r\n";
    let reply = server
        .call(
            "POST",
            "/v1/email/send",
            Some(&key),
            Some(json!({"raw": raw, "envelope": {"from": "bounces@example.com", "to": ["bcc@example.org"]}})),
        )
        .await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let got = wait_for(&sink, 1).await;
    assert_eq!(got[0].from, "bounces@example.com");
    assert_eq!(got[0].rcpts, ["bcc@example.org"]);
    let data = got[0].text();
    let (trace, rest) = data.split_once(";\r\n\t").unwrap();
    assert!(trace.starts_with("Received: from api"), "{trace}");
    let (_, message) = rest.split_once("\r\n").unwrap();
    assert_eq!(message, raw, "the raw message changed on the way");
}

#[tokio::test(flavor = "multi_thread")]
async fn send_refusals_are_400_and_nothing_is_queued() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    for body in [
        json!({"to": ["a@example.net"], "text": "no from"}),
        json!({"from": OWNER, "text": "no recipient"}),
        json!({"raw": "Subject: x\r\n\r\nbody"}),
        json!({"from": OWNER, "to": ["a@example.net"], "subject": "a\r\nBcc: x@example.org", "text": "x"}),
    ] {
        let reply = server.call("POST", "/v1/email/send", Some(&key), Some(body.clone())).await;
        assert_eq!((reply.status, reply.code()), (400, "invalid_request"), "{body}: {}", reply.text);
    }
    let queued = relaykey::queue::Spool::open_existing(spool.path()).unwrap().ids().unwrap();
    assert!(queued.is_empty(), "refused sends were queued: {queued:?}");
    assert!(sink.all().is_empty());
}
