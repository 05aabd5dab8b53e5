//! Issue 14, items 4 and 5, over the interfaces of one real `relaykey serve`: the relay's SMTP,
//! the HTTP API and the policy socket.
//!
//! - Item 4: per-account message limits hold on every way out, with one set of counters: a
//!   message sent through one path counts against the others.
//! - Item 5: the relay re-checks a session's login at MAIL and RCPT, so a disabled account or
//!   a removed credential stops the session that is already logged in.

mod api_common;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use api_common::relay_sink::Sink;
use base64::Engine as _;
use serde_json::{Value, json};
use support::relay::{Options, Relay, USER};
use support::smtp::Dialog;

fn auth_plain(user: &str, secret: &str) -> String {
    let token = base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{secret}"));
    format!("AUTH PLAIN {token}\r\n")
}

/// A relay session on the plaintext listener, logged in as `user`.
fn logged_in(relay: &Relay, user: &str, secret: &str) -> Dialog {
    let mut d = Dialog::connect(relay.plain);
    assert!(d.reply().starts_with("220 "));
    d.send("EHLO client.test\r\n");
    assert!(d.reply().starts_with("250"));
    d.send(&auth_plain(user, secret));
    let reply = d.reply();
    assert!(reply.starts_with("235 "), "login as {user}: {reply}");
    d
}

/// Sends one message in an open session; returns the reply that settled it: the one after
/// the body, or the first refusal of MAIL, RCPT or DATA.
fn send_message(d: &mut Dialog, from: &str) -> String {
    for command in [format!("MAIL FROM:<{from}>\r\n"), "RCPT TO:<rcpt@example.net>\r\n".to_string()] {
        d.send(&command);
        let reply = d.reply();
        if !reply.starts_with("250 ") {
            return reply;
        }
    }
    d.send("DATA\r\n");
    let reply = d.reply();
    if !reply.starts_with("354 ") {
        return reply;
    }
    d.send(&format!("From: {from}\r\nSubject: limits\r\n\r\nhello\r\n.\r\n"));
    d.reply()
}

/// An account with an SMTP credential (its own address as username) and a `send` API key;
/// returns (SMTP password, API key).
fn account(relay: &Relay, email: &str) -> (String, String) {
    relay.cli(&["account", "add", email]);
    let password = cli_json(relay, &["smtp", "create", email])["password"].as_str().unwrap().to_string();
    (password, api_key(relay, email))
}

fn api_key(relay: &Relay, email: &str) -> String {
    let key = cli_json(relay, &["apikey", "create", email, "--name", "sender", "--permission", "send"]);
    key["key"].as_str().unwrap().to_string()
}

fn cli_json(relay: &Relay, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&relay.cli(&all)).unwrap()
}

/// `POST /v1/email/send` as `key`.
fn api_send(relay: &Relay, key: &str, from: &str) -> api_common::Reply {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], relay.api.expect("API enabled")));
    let body = json!({"from": from, "to": ["rcpt@example.net"], "subject": "limits", "text": "hello"});
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(api_common::call_from(
        addr,
        "127.0.0.1".parse().unwrap(),
        "POST",
        "/v1/email/send",
        Some(key),
        Some(body),
    ))
}

/// The policy server's answer to the DATA of a Postfix session logged in as `user`.
fn policy_data(relay: &Relay, user: &str, instance: &str) -> String {
    let mut s = UnixStream::connect(relay.policy_socket()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let request = format!(
        "request=smtpd_access_policy\nprotocol_state=DATA\nprotocol_name=ESMTP\nclient_address=192.0.2.9\n\
         client_name=unknown\nclient_port=4000\nserver_address=127.0.0.1\nserver_port=25\nhelo_name=x\n\
         sender={user}\nrecipient=\nrecipient_count=1\nqueue_id=\ninstance={instance}\nsize=0\n\
         sasl_method=PLAIN\nsasl_username={user}\n\n"
    );
    s.write_all(request.as_bytes()).unwrap();
    let mut reply = Vec::new();
    let mut byte = [0u8; 1];
    while !reply.ends_with(b"\n\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "policy server closed the connection");
        reply.push(byte[0]);
    }
    let text = String::from_utf8(reply).unwrap();
    text.trim_end().strip_prefix("action=").expect("action=").to_string()
}

fn limited_relay(sink: &Sink, limits: &str, policy: &str) -> Relay {
    Relay::start(Options {
        limits: limits.into(),
        relay: format!("smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n", sink.port),
        api: true,
        policy: Some(format!("tcp_table = false\n{policy}")),
        ..Options::default()
    })
}

fn assert_limited_by_the_api(reply: &api_common::Reply, what: &str) {
    assert_eq!((reply.status, reply.code()), (429, "message_limit"), "{what}: {}", reply.text);
    let retry: u64 = reply
        .headers
        .get("retry-after")
        .unwrap_or_else(|| panic!("{what}: 429 without Retry-After"))
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{what}: Retry-After {retry} is not within the minute window");
}

#[test]
fn item_04_message_limits_apply_on_the_relay_the_api_and_the_policy_socket_with_one_count() {
    let sink = Sink::start();
    // The key where the issue found it: `[policy] messages_per_minute`.
    let relay = limited_relay(&sink, "", "messages_per_minute = 1\n");

    // The relay: three messages in one session; only the first is accepted.
    let mut d = logged_in(&relay, USER, &relay.password);
    let first = send_message(&mut d, USER);
    assert!(first.starts_with("250 "), "first message: {first}");
    for n in 2..=3 {
        let refused = send_message(&mut d, USER);
        assert!(refused.starts_with("450 4.7.1 "), "message {n} in the relay session: {refused}");
    }

    // The API: three sends; only the first is accepted, the others get 429 with Retry-After.
    let bob = "bob@example.com";
    let (bob_password, bob_key) = account(&relay, bob);
    assert_eq!(api_send(&relay, &bob_key, bob).status, 202);
    for n in 2..=3 {
        assert_limited_by_the_api(&api_send(&relay, &bob_key, bob), &format!("API send {n}"));
    }

    // One count for every way out: what the API sent limits the relay and the policy socket...
    let mut d = logged_in(&relay, bob, &bob_password);
    let refused = send_message(&mut d, bob);
    assert!(refused.starts_with("450 4.7.1 "), "relay after the API's message: {refused}");
    let action = policy_data(&relay, bob, "b.1");
    assert!(action.starts_with("450 4.7.1 "), "policy after the API's message: {action}");
    // ...what the relay sent limits the API...
    let ann_key = api_key(&relay, USER);
    assert_limited_by_the_api(&api_send(&relay, &ann_key, USER), "API after the relay's message");
    // ...and what the policy server counted for Postfix limits the relay and the API.
    let carol = "carol@example.com";
    let (carol_password, carol_key) = account(&relay, carol);
    assert_eq!(policy_data(&relay, carol, "c.1"), "DUNNO", "carol's first message, through Postfix");
    let mut d = logged_in(&relay, carol, &carol_password);
    let refused = send_message(&mut d, carol);
    assert!(refused.starts_with("450 4.7.1 "), "relay after the policy's count: {refused}");
    assert_limited_by_the_api(&api_send(&relay, &carol_key, carol), "API after the policy's count");

    // Two messages were accepted (ann's through the relay, bob's through the API).
    assert_eq!(sink.wait_for(2, Duration::from_secs(60)).len(), 2, "the accepted messages were delivered");
}

#[test]
fn item_04_the_limits_table_holds_the_message_limits() {
    let sink = Sink::start();
    let relay = limited_relay(&sink, "messages_per_minute = 1\n", "");
    let mut d = logged_in(&relay, USER, &relay.password);
    assert!(send_message(&mut d, USER).starts_with("250 "));
    let refused = send_message(&mut d, USER);
    assert!(refused.starts_with("450 4.7.1 "), "second message in the relay session: {refused}");
    let key = api_key(&relay, USER);
    assert_limited_by_the_api(&api_send(&relay, &key, USER), "API after the relay's message");
    let action = policy_data(&relay, USER, "a.2");
    assert!(action.starts_with("450 4.7.1 "), "policy after the relay's message: {action}");
}

#[test]
fn item_05_the_relay_rechecks_the_login_at_mail_and_rcpt() {
    let sink = Sink::start();
    let relay = Relay::start(Options {
        relay: format!("smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\n", sink.port),
        ..Options::default()
    });

    // `relaykey account disable`: the next MAIL of a session logged in before is refused.
    let mut d = logged_in(&relay, USER, &relay.password);
    d.send(&format!("MAIL FROM:<{USER}>\r\n"));
    assert!(d.reply().starts_with("250 "));
    d.send("RSET\r\n");
    assert!(d.reply().starts_with("250 "));
    relay.cli(&["account", "disable", USER]);
    d.send(&format!("MAIL FROM:<{USER}>\r\n"));
    let refused = d.reply();
    assert!(refused.starts_with("554 5.7.1 "), "MAIL after account disable: {refused}");
    relay.cli(&["account", "enable", USER]);

    // `relaykey smtp remove` of the credential in use: the next RCPT is refused, and the
    // transaction begun under that login goes no further.
    let second = cli_json(&relay, &["smtp", "create", USER, "--username", "second@example.com"]);
    let (id, password) = (second["id"].to_string(), second["password"].as_str().unwrap().to_string());
    let mut d = logged_in(&relay, "second@example.com", &password);
    d.send(&format!("MAIL FROM:<{USER}>\r\n"));
    assert!(d.reply().starts_with("250 "));
    d.send("RCPT TO:<one@example.net>\r\n");
    assert!(d.reply().starts_with("250 "));
    relay.cli(&["smtp", "remove", USER, &id]);
    d.send("RCPT TO:<two@example.net>\r\n");
    let refused = d.reply();
    assert!(refused.starts_with("554 5.7.1 "), "RCPT after smtp remove: {refused}");
    d.send("DATA\r\n");
    let data = d.reply();
    assert!(data.starts_with("503 "), "DATA after the revoked login: {data}");

    // The refusals are about those logins only: the account's other credential still sends.
    let mut d = logged_in(&relay, USER, &relay.password);
    let sent = send_message(&mut d, USER);
    assert!(sent.starts_with("250 "), "{sent}");
    assert_eq!(sink.wait_for(1, Duration::from_secs(60)).len(), 1);
    let log = relay.log();
    assert!(log.contains("reason=\"account_disabled\"") || log.contains("reason=account_disabled"), "{log}");
    assert!(log.contains("secret_revoked"), "{log}");
}
