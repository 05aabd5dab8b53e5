//! Issue 14, items 11, 13, 14 and 15, over the real interfaces: the relay's SMTP (a `relaykey
//! serve` process), the HTTP send API (in process, delivering to a smarthost sink), the policy
//! socket, and the SMTP codec as its fuzz target drives it. Each test fails on the code before
//! the fix.

mod api_common;
mod support;

use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use api_common::OWNER;
use api_common::relay_sink::Sink;
use api_common::send::{api_to_sink, wait_for};
use base64::Engine as _;
use relaykey::model::Permission::Send;
use serde_json::json;
use support::dns::dnsmasq;
use support::relay::{Options, Relay, USER};
use support::smtp::Dialog;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const WAIT: Duration = Duration::from_secs(60);

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// A dialog on the relay's plaintext listener, past EHLO and an authenticated MAIL FROM.
fn authenticated_transaction(relay: &Relay) -> Dialog {
    let mut d = Dialog::connect(relay.plain);
    assert!(d.reply().starts_with("220"));
    d.send("EHLO client.test\r\n");
    assert!(d.reply().starts_with("250"));
    d.send(&format!("AUTH PLAIN {}\r\n", b64(&format!("\0{USER}\0{}", relay.password))));
    assert!(d.reply().starts_with("235"));
    d.send(&format!("MAIL FROM:<{USER}>\r\n"));
    assert!(d.reply().starts_with("250"));
    d
}

// ---- item 11: messages ----

#[test]
fn item_11_relay_refuses_nul_in_data_after_the_dot_and_queues_nothing() {
    let relay = Relay::start(Options::default());
    let mut d = authenticated_transaction(&relay);
    d.send("RCPT TO:<b@example.net>\r\n");
    assert!(d.reply().starts_with("250"));
    d.send("DATA\r\n");
    assert!(d.reply().starts_with("354"));
    d.send("Subject: nul\r\n\r\nbefore\0after\r\nmore\r\n.\r\n");
    let reply = d.reply();
    assert!(reply.starts_with("554 5.6.0 "), "{reply:?}");
    // The session goes on, and the next command is a command, not message text.
    d.send("NOOP\r\n");
    assert!(d.reply().starts_with("250"));
    assert_eq!(relay.cli(&["--json", "queue", "list"]).trim(), "[]", "a message with NUL was queued");
}

#[test]
fn item_11_relay_limits_the_ehlo_name_to_255_octets() {
    let relay = Relay::start(Options::default());
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send(&format!("EHLO {}\r\n", "a".repeat(256)));
    let reply = d.reply();
    assert!(reply.starts_with("501 5.5.4 "), "{reply:?}");
    d.send(&format!("HELO {}\r\n", "b".repeat(4000)));
    assert!(d.reply().starts_with("501 5.5.4 "));
    d.send(&format!("EHLO {}\r\n", "c".repeat(255)));
    assert!(d.reply().starts_with("250"));
}

#[tokio::test(flavor = "multi_thread")]
async fn item_11_send_api_keeps_the_local_part_as_given() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    let body = json!({"from": OWNER, "to": ["Mixed.Case@Example.NET"], "subject": "case", "text": "x"});
    let reply = server.call("POST", "/v1/email/send", Some(&key), Some(body)).await;
    assert_eq!(reply.status, 202, "{}", reply.text);
    let got = wait_for(&sink, 1).await;
    assert_eq!(got[0].rcpts, ["Mixed.Case@example.net"], "only the domain is case-insensitive");
    assert!(got[0].text().contains("\r\nTo: Mixed.Case@example.net\r\n"), "{}", got[0].text());
}

#[tokio::test(flavor = "multi_thread")]
async fn item_11_send_api_refuses_long_raw_lines_and_control_characters() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    let envelope = json!({"from": OWNER, "to": ["b@example.net"]});
    let raw = |raw: String| json!({"raw": raw, "envelope": envelope});
    let fields = |subject: &str| json!({"from": OWNER, "to": ["b@example.net"], "subject": subject, "text": "x"});
    for (what, body) in [
        ("a raw line of 999 characters", raw(format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(999)))),
        ("NUL in raw", raw("Subject: x\r\n\r\nnul\0here\r\n".into())),
        ("ESC in a raw header", raw("Subject: \u{1b}[2J\u{1b}[Hforged\r\n\r\nbody\r\n".into())),
        ("NUL in the subject", fields("a\0b")),
        ("a control character in the subject", fields("a\u{7}b")),
    ] {
        let reply = server.call("POST", "/v1/email/send", Some(&key), Some(body)).await;
        assert_eq!(reply.status, 400, "{what}: {}", reply.text);
    }
    let ok = raw(format!("Subject: x\r\n\r\n{}\r\n", "y".repeat(998)));
    let reply = server.call("POST", "/v1/email/send", Some(&key), Some(ok)).await;
    assert_eq!(reply.status, 202, "a 998-character line is allowed: {}", reply.text);
    let got = wait_for(&sink, 1).await;
    assert_eq!(got.len(), 1, "a refused message was sent");
}

// ---- item 13: private destinations ----

#[test]
fn item_13_rcpt_to_a_loopback_address_literal_is_refused_by_default() {
    let relay = Relay::start(Options::default());
    let mut d = authenticated_transaction(&relay);
    for rcpt in ["x@[127.0.0.1]", "x@[10.0.0.1]", "x@[IPv6:::1]", "x@[169.254.169.254]"] {
        d.send(&format!("RCPT TO:<{rcpt}>\r\n"));
        let reply = d.reply();
        assert!(reply.starts_with("550 5.7.1 "), "{rcpt}: {reply:?}");
    }
    d.send("RCPT TO:<x@example.net>\r\n");
    assert!(d.reply().starts_with("250"));
}

#[tokio::test(flavor = "multi_thread")]
async fn item_13_send_api_refuses_a_loopback_address_literal() {
    let sink = Sink::start();
    let spool = tempfile::tempdir().unwrap();
    let server = api_to_sink(&sink, spool.path()).await;
    let (_, key) = server.key(&[Send]);
    let body = json!({"from": OWNER, "to": ["x@[127.0.0.1]"], "subject": "probe", "text": "x"});
    let reply = server.call("POST", "/v1/email/send", Some(&key), Some(body)).await;
    assert_eq!((reply.status, reply.code()), (422, "private_destination"), "{}", reply.text);
}

/// Waits until the relay's log holds `n` lines containing every part of `want`.
fn wait_for_log(relay: &Relay, want: &[&str], n: usize) -> String {
    let start = Instant::now();
    loop {
        let log = relay.log();
        let count = log.lines().filter(|l| want.iter().all(|w| l.contains(w))).count();
        if count >= n {
            return log;
        }
        assert!(start.elapsed() < WAIT, "no {n} log lines with {want:?}:\n{log}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn item_13_an_mx_that_resolves_to_loopback_bounces_without_a_connection() {
    let Some(dns) = dnsmasq(&[
        "--mx-host=inside.example,mx.inside.example,10",
        "--host-record=mx.inside.example,127.0.0.2",
        "--host-record=a-only.example,127.0.0.1",
        // The sender's domain too, so the DSN would go to the sink if anything did.
        "--mx-host=example.com,mx.inside.example,10",
        "--local=/example/",
    ]) else {
        return;
    };
    let sink = Sink::start();
    // Default: allow_private_destinations = false.
    let relay = Relay::start(Options {
        relay: format!("nameservers = [\"127.0.0.1:{}\"]\nmx_port = {}\n", dns.port, sink.port),
        ..Options::default()
    });
    let mut d = authenticated_transaction(&relay);
    for rcpt in ["user@inside.example", "other@a-only.example"] {
        d.send(&format!("RCPT TO:<{rcpt}>\r\n"));
        assert!(d.reply().starts_with("250"));
    }
    d.send("DATA\r\n");
    assert!(d.reply().starts_with("354"));
    d.send("Subject: probe\r\n\r\nbody\r\n.\r\n");
    assert!(d.reply().starts_with("250"));
    d.send("QUIT\r\n");
    // Both recipients bounce, then the DSN to the sender (also private) bounces too.
    let log = wait_for_log(&relay, &["result=\"bounced\"", "5.7.1", "allow_private_destinations"], 3);
    assert!(log.contains("rcpt=\"user@inside.example\"") || log.contains("rcpt=user@inside.example"), "{log}");
    assert!(log.contains("127.0.0.2"), "the bounce names the refused address: {log}");
    assert_eq!(sink.connections(), 0, "the relay connected to a loopback MX:\n{log}");
}

// ---- item 14: IPv6 prefixes and the global cap ----

/// The policy server in process, as tests/policy_server.rs starts it.
struct PolicyServer {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    _shared: Arc<relaykey::daemon::Shared>,
    _publish: tokio::sync::watch::Sender<Arc<relaykey::config::Config>>,
    /// Policy connections stay open, as smtpd's do, so that their sessions stay counted.
    open: Vec<tokio::net::UnixStream>,
}

impl PolicyServer {
    async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let socket = dir.path().join("policy.sock");
        let text = format!("database = {db:?}\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n{extra}");
        let config = relaykey::config::Config::parse(&text).unwrap();
        relaykey::store::Store::open(&db).unwrap();
        let authenticator = relaykey::auth::Authenticator::open(&db, &config.auth).unwrap();
        let (shared, publish) = relaykey::daemon::Shared::new(config, authenticator);
        let listener = tokio::net::UnixListener::bind(&socket).unwrap();
        let enforcer = Arc::new(shared.policy_enforcer());
        tokio::spawn(relaykey::policy::server::run(listener, enforcer, shared.shutdown.clone(), shared.tasks.clone()));
        Self { _dir: dir, socket, _shared: shared, _publish: publish, open: Vec::new() }
    }

    /// The CONNECT request Postfix sends for a client at `ip`, on a new policy connection.
    async fn connect(&mut self, ip: &str, port: u16) -> String {
        let mut stream = tokio::net::UnixStream::connect(&self.socket).await.unwrap();
        let req = format!(
            "request=smtpd_access_policy\nprotocol_state=CONNECT\nprotocol_name=SMTP\nclient_address={ip}\n\
             client_name=unknown\nclient_port={port}\nserver_address=2001:db8:ffff::25\nserver_port=25\n\
             helo_name=\nsender=\nrecipient=\nrecipient_count=0\nqueue_id=\ninstance=\nsize=0\n\
             sasl_method=\nsasl_username=\n\n"
        );
        stream.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        while !buf.ends_with(b"\n\n") {
            let mut byte = [0u8; 1];
            assert_eq!(stream.read(&mut byte).await.unwrap(), 1, "policy server closed the connection");
            buf.push(byte[0]);
        }
        self.open.push(stream);
        String::from_utf8(buf).unwrap().trim_end().to_string()
    }
}

#[tokio::test]
async fn item_14_ipv6_clients_in_one_64_share_the_per_ip_limit_at_the_policy_socket() {
    let mut policy = PolicyServer::start("[policy]\ntcp_table = false\n[limits]\nmax_connections_per_ip = 2\n").await;
    assert_eq!(policy.connect("2001:db8::1", 1).await, "action=DUNNO");
    assert_eq!(policy.connect("2001:db8::2", 2).await, "action=DUNNO");
    let refused = policy.connect("2001:db8::ffff:3", 3).await;
    assert!(refused.starts_with("action=421 4.7.0 "), "a third address in the same /64: {refused}");
    assert_eq!(policy.connect("2001:db8:0:1::1", 4).await, "action=DUNNO", "another /64 goes on");

    let mut policy =
        PolicyServer::start("[policy]\ntcp_table = false\n[limits]\nmax_connections_per_ip = 1\nipv6_prefix = 128\n")
            .await;
    assert_eq!(policy.connect("2001:db8::1", 1).await, "action=DUNNO");
    assert_eq!(policy.connect("2001:db8::2", 2).await, "action=DUNNO", "128 counts per address");
    assert!(policy.connect("2001:db8::2", 3).await.starts_with("action=421 4.7.0 "));
}

/// Connects and reads the greeting (or whatever the relay says first).
fn greeting(port: u16) -> (Dialog, String) {
    let mut d = Dialog::connect(port);
    let first = d.reply();
    (d, first)
}

#[test]
fn item_14_max_connections_caps_all_listeners_together() {
    let relay = Relay::start(Options { limits: "max_connections = 2".into(), ..Options::default() });
    let (_a, first) = greeting(relay.plain);
    assert!(first.starts_with("220"), "{first:?}");
    let b = TcpStream::connect(("127.0.0.1", relay.starttls)).unwrap();
    let mut b = std::io::BufReader::new(b);
    let mut line = String::new();
    std::io::BufRead::read_line(&mut b, &mut line).unwrap();
    assert!(line.starts_with("220"), "{line:?}");
    for port in [relay.plain, relay.starttls] {
        let (mut d, refused) = greeting(port);
        assert!(refused.starts_with("421 4.3.2 "), "a third connection was served: {refused:?}");
        assert_eq!(d.rest(), "", "the connection was not closed after 421");
    }
    drop(b);
    // A freed slot serves again (the close is seen asynchronously; retry until it is).
    let start = Instant::now();
    loop {
        let (_d, first) = greeting(relay.plain);
        if first.starts_with("220") {
            break;
        }
        assert!(start.elapsed() < WAIT, "the slot never came free: {first:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

// ---- item 15: the SMTP codec and mailboxes ----

#[test]
fn item_15_the_fuzz_finding_is_refused_and_mailboxes_round_trip() {
    use relaykey::smtp::codec::{Command, RcptTo, parse_command};
    assert!(parse_command(b"rcpT To:\"OOOD@T@Tttttttt").is_err(), "the fuzz finding parses");
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/smtp_codec");
    let mut checked = 0;
    for entry in std::fs::read_dir(&corpus).expect("fuzz/corpus/smtp_codec is in the repository") {
        let input = std::fs::read(entry.unwrap().path()).unwrap();
        if let Ok(cmd) = parse_command(&input) {
            let mut wire = Vec::new();
            cmd.encode(&mut wire);
            assert_eq!(parse_command(&wire), Ok(cmd), "{}", input.escape_ascii());
        }
        checked += 1;
    }
    assert!(checked >= 10, "the corpus has only {checked} inputs");
    for text in ["\"b c\"@example.net", "\"a>b\"@example.net", "Mixed.Case@Example.NET", "x@[IPv6:2001:db8::1]"] {
        let cmd = Command::Rcpt(RcptTo { recipient: text.into() });
        let mut wire = Vec::new();
        cmd.encode(&mut wire);
        assert_eq!(parse_command(&wire), Ok(cmd), "{text}");
    }
}

#[test]
fn item_15_relay_answers_the_fuzz_finding_with_501() {
    let relay = Relay::start(Options::default());
    let mut d = authenticated_transaction(&relay);
    d.send("rcpT To:\"OOOD@T@Tttttttt\r\n");
    let reply = d.reply();
    assert!(reply.starts_with("501 5.1.3 "), "{reply:?}");
    d.send("RCPT TO:<a..b@example.net>\r\n");
    assert!(d.reply().starts_with("501 5.1.3 "));
}
