//! DKIM signing in the native relay, proved by verifiers nobody here wrote: messages sent by
//! swaks (STARTTLS, implicit TLS, no TLS) and several in one session reach a smarthost sink
//! with an Ed25519 and an RSA signature that dkimpy and OpenDKIM each verify on its own; a
//! change to the body, the Subject or an added From breaks them; edge messages (8-bit and
//! SMTPUTF8 headers, trailing whitespace lines, long folded headers, dot lines, no body, exactly
//! the size limit, an IDN From domain) verify; a From domain without a key goes out unsigned;
//! a retry sends the signature made at enqueue.
//! Needs swaks, dkimpy and OpenDKIM: skipped locally without them, a failure under CI=true.

mod dkim_support;
#[path = "support/relay_sink.rs"]
mod sink;
mod support;

use dkim_support::{
    DOMAIN, KEYLESS, assert_signed, assert_unsigned, delivered_to, generate_active, list, relay_to, send, session,
    signing_relay, signing_relay_on,
};
use serde_json::Value;
use sink::Sink;
use support::dkim_verify::{
    Keys, assert_fails, assert_verifies, available as verifiers_available, keys_from_list, signature_fields,
    with_body_changed, with_subject_changed,
};
use support::peers::available;
use support::relay::USER;
use support::smtp::swaks;

fn peers() -> bool {
    verifiers_available() && available(&["swaks"])
}

#[test]
fn swaks_mail_with_and_without_tls_is_signed_with_both_algorithms() {
    if !peers() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, "");
    let from = format!("news@{DOMAIN}");
    let cases = [
        (relay.starttls, Some("--tls"), "starttls"),
        (relay.implicit, Some("--tlsc"), "implicit"),
        (relay.plain, None, "plain"),
    ];
    for (port, tls, name) in cases {
        let server = format!("127.0.0.1:{port}");
        let to = format!("{name}@example.net");
        let mut args = vec!["-s", &server, "-a", "PLAIN", "-au", USER, "-ap", &relay.password, "-f", &from, "-t", &to];
        args.extend(tls);
        args.extend(["--header", "Subject: signed by the relay", "--body", "Hello over swaks.\n"]);
        let (ok, text) = swaks(&args);
        assert!(ok && text.contains("250 2.0.0 Ok: queued as"), "{name}:\n{text}");
    }
    for (_, _, name) in &cases {
        let m = delivered_to(&sink, cases.len(), &format!("{name}@example.net"));
        let checked = assert_signed(&m.data, &keys);
        assert!(m.text().contains("Hello over swaks."), "{}", m.text());
        // Each signature names a key the CLI listed.
        for c in &checked {
            assert!(keys.contains_key(&format!("{}._domainkey.{DOMAIN}", c.selector())), "{}", c.selector());
        }
    }
}

#[test]
fn several_messages_in_one_session_are_each_signed() {
    if !peers() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, "");
    let mut d = session(&relay);
    for i in 0..3 {
        let message = format!(
            "From: News <news@{DOMAIN}>\r\nTo: m{i}@example.net\r\nSubject: message {i}\r\n\
             Date: Thu, 03 Dec 2026 12:00:0{i} +0000\r\nMessage-ID: <m{i}@{DOMAIN}>\r\n\r\nBody of message {i}.\r\n"
        );
        let reply = send(&mut d, &format!("news@{DOMAIN}"), &format!("m{i}@example.net"), &message);
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    }
    d.send("QUIT\r\n");
    let mut signatures = Vec::new();
    for i in 0..3 {
        let m = delivered_to(&sink, 3, &format!("m{i}@example.net"));
        assert!(m.text().contains(&format!("Body of message {i}.")));
        signatures.extend(assert_signed(&m.data, &keys).into_iter().map(|c| c.tag("b").to_string()));
    }
    signatures.sort();
    signatures.dedup();
    assert_eq!(signatures.len(), 6, "every message has its own two signatures");
}

#[test]
fn a_from_domain_without_a_key_goes_out_unsigned_and_is_delivered() {
    if !peers() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, "");
    let mut d = session(&relay);
    let mut unsigned_ids = Vec::new();
    for (sender, rcpt) in [(format!("news@{KEYLESS}"), "keyless@example.net"), (USER.to_string(), "own@example.net")] {
        let message = format!("From: {sender}\r\nTo: {rcpt}\r\nSubject: no key\r\n\r\nnot signed\r\n");
        unsigned_ids.push(queue_id(&send(&mut d, &sender, rcpt, &message)));
    }
    // A signed one in the same session, for contrast.
    let message = format!("From: news@{DOMAIN}\r\nTo: signed@example.net\r\nSubject: key\r\n\r\nsigned\r\n");
    let signed_id = queue_id(&send(&mut d, &format!("news@{DOMAIN}"), "signed@example.net", &message));
    for rcpt in ["keyless@example.net", "own@example.net"] {
        let m = delivered_to(&sink, 3, rcpt);
        assert_unsigned(&m.data);
        assert!(m.text().ends_with("Subject: no key\r\n\r\nnot signed\r\n"), "{}", m.text());
    }
    let checked = assert_signed(&delivered_to(&sink, 3, "signed@example.net").data, &keys);
    // The `queued` log line says which selectors signed, or `dkim=none`.
    for id in &unsigned_ids {
        let line = queued_line(&relay, id);
        assert!(line.contains("dkim=none"), "{line}");
    }
    let line = queued_line(&relay, &signed_id);
    for c in &checked {
        assert!(line.contains(c.selector()), "{} not in {line}", c.selector());
    }
    assert!(!line.contains("dkim=none"), "{line}");
}

/// The `queued` log line of message `id`. Delivery may log the message first: a queue scan
/// can find it between the commit and the `queued` line.
fn queued_line(relay: &support::relay::Relay, id: &str) -> String {
    let find = || {
        relay.log().lines().find(|l| l.contains(" queued ") && l.contains(&format!(" id={id} "))).map(str::to_string)
    };
    support::ports::wait_until(&format!("the queued line of {id}"), || find().is_some());
    find().unwrap_or_default()
}

/// The queue id in a `250 2.0.0 Ok: queued as ID` reply.
fn queue_id(reply: &str) -> String {
    assert!(reply.starts_with("250 2.0.0 Ok: queued as "), "{reply}");
    reply.rsplit(' ').next().unwrap().to_string()
}

/// A signed message as delivered, with the keys to verify it.
fn one_signed(message: &str) -> (Vec<u8>, Keys) {
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, "");
    let mut d = session(&relay);
    let reply = send(&mut d, &format!("news@{DOMAIN}"), "tamper@example.net", message);
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    (delivered_to(&sink, 1, "tamper@example.net").data, keys)
}

#[test]
fn changing_the_body_or_the_subject_or_adding_a_from_breaks_both_signatures() {
    if !peers() {
        return;
    }
    let (signed, keys) = one_signed(&format!(
        "From: News <news@{DOMAIN}>\r\nTo: tamper@example.net\r\nSubject: original\r\n\
         Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <tamper@{DOMAIN}>\r\n\r\nThe original body.\r\n"
    ));
    assert_signed(&signed, &keys);
    let body = with_body_changed(&signed);
    assert!(String::from_utf8_lossy(&body).contains("\r\n\r\ntampered The original body.\r\n"));
    assert_fails(&body, &keys);
    let subject = with_subject_changed(&signed);
    assert!(String::from_utf8_lossy(&subject).contains("\r\nSubject: Re: original\r\n"));
    assert_fails(&subject, &keys);
    // From is oversigned: a second From put on top breaks the signatures too.
    assert_fails(&[b"From: Boss <boss@example.org>\r\n".as_slice(), &signed].concat(), &keys);
    // A trace field added on the way (as the next MTA does) is not signed: still verifies.
    assert_verifies(
        &[b"Received: from relay.test by mx.example.net; Thu, 3 Dec 2026\r\n".as_slice(), &signed].concat(),
        &keys,
    );
}

/// Edge messages, each with its own recipient.
fn edge_messages() -> Vec<(&'static str, String)> {
    let from = format!("news@{DOMAIN}");
    let references: String =
        (0..150).map(|i| format!("<thread-{i}-aaaaaaaaaaaaaaaa@{DOMAIN}>")).collect::<Vec<_>>().join("\r\n ");
    let to: String =
        (0..60).map(|i| format!("\"Recipient Number {i}\" <r{i}@example.net>")).collect::<Vec<_>>().join(",\r\n\t");
    let long_subject: String =
        (0..40).map(|i| format!("word{i} with some more words to make it long")).collect::<Vec<_>>().join("\r\n ");
    vec![
        (
            "eightbit@example.net",
            format!(
                "From: Ännchen Müller <{from}>\r\nTo: Jürgen Groß <eightbit@example.net>\r\n\
                 Subject: Grüße aus Köln — ✓ 日本語\r\nMIME-Version: 1.0\r\n\
                 Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n\
                 Grüße, ünïcödé body — ✓\r\n"
            ),
        ),
        (
            "utf8@example.net",
            format!(
                "From: Änne <änne@{DOMAIN}>\r\nTo: utf8@example.net\r\nSubject: SMTPUTF8 sender\r\n\r\nA UTF-8 address.\r\n"
            ),
        ),
        (
            "whitespace@example.net",
            format!(
                "From: {from}\r\nTo: whitespace@example.net\r\nSubject:   spaced \t out   \r\n\r\n\
                 line with trailing blanks  \t\r\n\tindented\tline\r\n \r\n\t\r\n\r\n   \r\n\r\n"
            ),
        ),
        (
            "folded@example.net",
            format!(
                "From: {from}\r\nTo: {to}\r\nSubject: {long_subject}\r\nReferences: {references}\r\n\
                 In-Reply-To: <thread-149-aaaaaaaaaaaaaaaa@{DOMAIN}>\r\n\r\nLong headers above.\r\n"
            ),
        ),
        (
            "dots@example.net",
            format!(
                "From: {from}\r\nTo: dots@example.net\r\nSubject: dots\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nend\r\n"
            ),
        ),
        ("nobody@example.net", format!("From: {from}\r\nTo: nobody@example.net\r\nSubject: no body\r\n\r\n")),
        ("headonly@example.net", format!("From: {from}\r\nTo: headonly@example.net\r\nSubject: no empty line\r\n")),
        (
            "mime@example.net",
            format!(
                "From: News <{from}>\r\nReply-To: replies@{DOMAIN}\r\nTo: mime@example.net\r\nCc: copy@example.org\r\n\
                 Subject: multipart\r\nList-Unsubscribe: <https://{DOMAIN}/u/1>, <mailto:u@{DOMAIN}>\r\n\
                 List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\nMIME-Version: 1.0\r\n\
                 Content-Type: multipart/alternative; boundary=\"b1\"\r\n\r\n\
                 --b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nplain\r\n\
                 --b1\r\nContent-Type: text/html; charset=us-ascii\r\n\r\n<p>html</p>\r\n--b1--\r\n"
            ),
        ),
        // The From: domain in capitals, folded over two lines, with a comment.
        (
            "from-shapes@example.net",
            "From: \"The News Desk of Ann, with a display name long enough to fold\"\r\n\t<news@ANN.Example> (desk)\r\n\
             To: from-shapes@example.net\r\nSubject: From shapes\r\n\r\nfolded From\r\n"
                .to_string(),
        ),
        // Neither Date nor Message-ID: whatever the relay sends is what is signed.
        ("bare@example.net", format!("From: {from}\r\nTo: bare@example.net\r\nSubject: bare\r\n\r\nno date\r\n")),
    ]
}

#[test]
fn edge_messages_verify() {
    if !peers() {
        return;
    }
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, "");
    let messages = edge_messages();
    let mut d = session(&relay);
    for (rcpt, message) in &messages {
        let sender = if rcpt.starts_with("utf8") { format!("änne@{DOMAIN}") } else { format!("news@{DOMAIN}") };
        let reply = send(&mut d, &sender, rcpt, message);
        assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{rcpt}: {reply}");
    }
    d.send("QUIT\r\n");
    // Every message is checked before the test fails, so one run names all that do not verify.
    let mut failed = Vec::new();
    for (rcpt, message) in &messages {
        let m = delivered_to(&sink, messages.len(), rcpt);
        let text = m.text();
        // The message arrives whole (the relay only adds fields on top).
        assert!(text.ends_with(message.as_str()), "{rcpt}: changed in transit:\n{text}");
        if std::panic::catch_unwind(|| assert_signed(&m.data, &keys)).is_err() {
            failed.push(*rcpt);
        }
    }
    assert!(failed.is_empty(), "these did not verify (reasons above): {failed:?}");
}

#[test]
fn a_message_of_exactly_the_size_limit_is_signed() {
    if !peers() {
        return;
    }
    const LIMIT: usize = 6000;
    let sink = Sink::start();
    let (relay, keys) = signing_relay(&sink, &format!("max_message_size = {LIMIT}"));
    let head = format!("From: news@{DOMAIN}\r\nTo: limit@example.net\r\nSubject: exactly the limit\r\n\r\n");
    let line = format!("{}\r\n", "x".repeat(76));
    let mut message = head.clone();
    while message.len() + line.len() <= LIMIT {
        message.push_str(&line);
    }
    let rest = LIMIT - message.len();
    assert!(rest >= 2, "room for a last line");
    message.push_str(&"y".repeat(rest - 2));
    message.push_str("\r\n");
    assert_eq!(message.len(), LIMIT);
    let mut d = session(&relay);
    let over = format!("{}z\r\n", &message[..message.len() - 2]);
    assert_eq!(over.len(), LIMIT + 1);
    let reply = send(&mut d, &format!("news@{DOMAIN}"), "over@example.net", &over);
    assert!(reply.starts_with("552 5.3.4"), "one byte over the limit: {reply}");
    let reply = send(&mut d, &format!("news@{DOMAIN}"), "limit@example.net", &message);
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let m = delivered_to(&sink, 1, "limit@example.net");
    assert!(m.text().ends_with(&message), "changed in transit");
    assert_signed(&m.data, &keys);
    assert_eq!(sink.all().len(), 1, "the oversized message was not delivered");
}

#[test]
fn an_internationalized_from_domain_is_signed_as_its_a_label() {
    if !peers() {
        return;
    }
    const IDN: &str = "bücher.example";
    const A_LABEL: &str = "xn--bcher-kva.example";
    let sink = Sink::start();
    let relay = relay_to(&sink, "");
    relay.cli(&["sender", "add", USER, IDN]);
    generate_active(&relay, IDN, &[]);
    let keys = keys_from_list(&Value::Array(list(&relay, IDN)));
    assert!(keys.keys().all(|name| name.ends_with(&format!("._domainkey.{A_LABEL}"))), "{keys:?}");
    let mut d = session(&relay);
    let message = format!("From: Bücherei <news@{IDN}>\r\nTo: idn@example.net\r\nSubject: IDN ✓\r\n\r\nHallo\r\n");
    let reply = send(&mut d, &format!("news@{IDN}"), "idn@example.net", &message);
    assert!(reply.starts_with("250 2.0.0 Ok: queued as"), "{reply}");
    let checked = assert_verifies(&delivered_to(&sink, 1, "idn@example.net").data, &keys);
    assert_eq!(checked.len(), 2);
    assert!(checked.iter().all(|c| c.domain() == A_LABEL), "d= is the A-label: {checked:?}");
}

#[test]
fn a_retry_sends_the_signature_made_at_enqueue() {
    if !peers() {
        return;
    }
    // The smarthost is down at first: the message is signed and queued, and its first
    // delivery attempt fails.
    let port = support::ports::free_port();
    let (relay, keys) = signing_relay_on(port);
    let mut d = session(&relay);
    let message = format!("From: news@{DOMAIN}\r\nTo: retry@example.net\r\nSubject: retried\r\n\r\nlater\r\n");
    let id = queue_id(&send(&mut d, &format!("news@{DOMAIN}"), "retry@example.net", &message));
    d.send("QUIT\r\n");
    let show = || relay.cli_json(&["queue", "show", &id]);
    support::ports::wait_until("a failed first attempt", || show()["attempts"].as_u64() >= Some(1));
    let queued = show()["headers"].as_str().unwrap_or_default().as_bytes().to_vec();
    let stored = signature_fields(&queued);
    assert_eq!(
        stored.len(),
        2,
        "the signatures are stored with the queued message:\n{}",
        String::from_utf8_lossy(&queued)
    );

    // Signatures are deterministic (RSA PKCS#1 v1.5, Ed25519): one made again in the same
    // second would be the same bytes. Let t= move on first, so that re-signing would show.
    let t: u64 =
        stored[0].split("t=").nth(1).and_then(|v| v.split(';').next()).and_then(|v| v.trim().parse().ok()).unwrap();
    let now = || std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    support::ports::wait_until("the clock to pass the signature's t=", || now() > t);
    let sink = Sink::start_on(&format!("127.0.0.1:{port}"));
    relay.cli(&["queue", "retry", &id]);
    let delivered = delivered_to(&sink, 1, "retry@example.net").data;
    assert_eq!(signature_fields(&delivered), stored, "the retry re-signed the message");
    assert_signed(&delivered, &keys);
}
