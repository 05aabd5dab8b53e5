//! Scripted dialogs against a running relay: the session time limit, the error limit, failed
//! AUTH (535, then throttled), STARTTLS dropping pipelined plaintext, and shutdown (421 4.3.2
//! to a client in the middle of a session).

mod support;

use base64::Engine as _;
use support::relay::{Options, Relay, USER};
use support::smtp::Dialog;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

#[test]
fn session_time_limit_ends_even_a_busy_session() {
    let relay = Relay::start(Options { limits: "session_timeout = \"1s\"".into(), ..Options::default() });
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    // A client that keeps talking is still cut off once the session limit passes.
    let mut last = String::new();
    for _ in 0..1_000_000 {
        d.send("NOOP\r\n");
        last = d.reply();
        if !last.starts_with("250") {
            break;
        }
    }
    assert!(last.starts_with("421 4.4.2") && last.contains("Session time limit"), "{last:?}");
}

#[test]
fn too_many_errors_close_the_session() {
    let relay = Relay::start(Options { relay: "max_errors = 3".into(), ..Options::default() });
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("BOGUS\r\nBOGUS\r\nBOGUS\r\n");
    assert!(d.reply().starts_with("500 5.5.2"));
    assert!(d.reply().starts_with("500 5.5.2"));
    let last = d.rest();
    assert!(last.starts_with("421 4.7.0"), "{last:?}");
}

#[test]
fn failed_auth_gets_535_and_is_logged_as_a_denial() {
    let relay = Relay::start(Options::default());
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO c\r\n");
    assert!(d.reply().contains("AUTH PLAIN LOGIN"), "AUTH is offered on a plaintext-only listener");
    for _ in 0..2 {
        d.send(&format!("AUTH PLAIN {}\r\n", b64(&format!("\0{USER}\0wrong-password"))));
        assert!(d.reply().starts_with("535 5.7.8"));
    }
    d.send(&format!("AUTH PLAIN {}\r\n", b64(&format!("\0{USER}\0{}", relay.password))));
    assert!(d.reply().starts_with("235 2.7.0"));
    let log = relay.log();
    assert_eq!(log.matches("decision=\"deny\" reason=\"bad_secret\"").count(), 2, "{log}");
}

#[test]
fn plaintext_pipelined_after_starttls_is_discarded() {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    use std::io::{Read, Write};

    let relay = Relay::start(Options::default());
    let mut tcp = std::net::TcpStream::connect(("127.0.0.1", relay.starttls)).unwrap();
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(30))).unwrap();
    let read_reply = |tcp: &mut std::net::TcpStream| {
        // Byte by byte, so nothing after the reply is consumed before the handshake.
        let (mut all, mut line) = (String::new(), Vec::new());
        let mut b = [0u8; 1];
        loop {
            tcp.read_exact(&mut b).unwrap();
            line.push(b[0]);
            if line.ends_with(b"\r\n") {
                all.push_str(&String::from_utf8_lossy(&line));
                if line.get(3) == Some(&b' ') {
                    return all;
                }
                line.clear();
            }
        }
    };
    read_reply(&mut tcp);
    tcp.write_all(b"EHLO c\r\n").unwrap();
    read_reply(&mut tcp);
    // The injected NOOP must not be executed after the handshake (CVE-2011-0411).
    tcp.write_all(b"STARTTLS\r\nNOOP\r\n").unwrap();
    assert!(read_reply(&mut tcp).starts_with("220 2.0.0"));

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(relay.dir().join("cert.pem")).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(relaykey::tls_provider::provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls_pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(config), name).unwrap();
    let mut tls = rustls::Stream::new(&mut conn, &mut tcp);
    tls.write_all(b"EHLO again\r\n").unwrap();
    let mut first = [0u8; 4];
    tls.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"250-", "the first reply over TLS must be EHLO's, not the injected NOOP's");
}

#[test]
fn shutdown_tells_open_sessions_421_4_3_2() {
    let relay = Relay::start(Options::default());
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO c\r\n");
    d.reply();
    relay.signal(libc::SIGTERM);
    let last = d.rest();
    assert!(last.starts_with("421 4.3.2"), "{last:?}");
}

#[test]
fn an_over_long_command_line_gets_500_and_the_session_goes_on() {
    let relay = Relay::start(Options::default());
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send(&format!("NOOP {}\r\n", "A".repeat(20_000)));
    assert!(d.reply().starts_with("500 5.5.0"));
    d.send("NOOP\r\n");
    assert!(d.reply().starts_with("250 "));
}
