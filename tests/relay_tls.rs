//! TLS on the relay's listeners, checked with `openssl s_client`: TLS 1.2 and 1.3 are both
//! offered, and SIGHUP loads a renewed certificate for new connections while a session that
//! is already encrypted goes on. Needs openssl; skipped locally without it, a failure under
//! CI=true.

mod support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use support::peers::available;
use support::relay::{Options, Relay};

/// The PEM certificate and protocol the server presents on a fresh implicit-TLS connection.
fn handshake(port: u16, version: &str) -> (String, String) {
    let out = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{port}"), version, "-showcerts"])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let cert = text
        .find("-----BEGIN CERTIFICATE-----")
        .and_then(|a| text[a..].find("-----END CERTIFICATE-----").map(|b| text[a..a + b + 25].to_string()))
        .unwrap_or_default();
    // "New, TLSv1.3, Cipher is TLS_AES_256_GCM_SHA384"
    let protocol =
        text.lines().find_map(|l| l.strip_prefix("New, ")).and_then(|l| l.split(',').next()).unwrap_or("").to_string();
    (cert, protocol)
}

fn normalize(pem: &str) -> String {
    pem.split_whitespace().collect()
}

#[test]
fn tls_12_and_13_are_offered() {
    if !available(&["openssl"]) {
        return;
    }
    let relay = Relay::start(Options::default());
    for (flag, want) in [("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")] {
        let (cert, protocol) = handshake(relay.implicit, flag);
        assert!(!cert.is_empty(), "no certificate with {flag}");
        assert_eq!(protocol, want);
    }
}

#[test]
fn sighup_reloads_the_certificate_without_dropping_sessions() {
    if !available(&["openssl"]) {
        return;
    }
    let relay = Relay::start(Options::default());
    let old_pem = std::fs::read_to_string(relay.dir().join("cert.pem")).unwrap();
    let (served, _) = handshake(relay.implicit, "-tls1_3");
    assert_eq!(normalize(&served), normalize(&old_pem));

    // An encrypted session that stays open across the reload.
    let mut session = Command::new("openssl")
        .args(["s_client", "-connect", &format!("127.0.0.1:{}", relay.implicit), "-quiet", "-crlf"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut to_server = session.stdin.take().unwrap();
    let mut from_server = BufReader::new(session.stdout.take().unwrap());
    let mut line = String::new();
    from_server.read_line(&mut line).unwrap();
    assert!(line.starts_with("220 "), "{line:?}");

    let fresh = rcgen::generate_simple_self_signed(vec!["renewed.test".into()]).unwrap();
    std::fs::write(relay.dir().join("cert.pem"), fresh.cert.pem()).unwrap();
    std::fs::write(relay.dir().join("key.pem"), fresh.signing_key.serialize_pem()).unwrap();
    relay.signal(libc::SIGHUP);
    let mut reloaded = false;
    for _ in 0..500 {
        if relay.log().contains("relay certificate reloaded") {
            reloaded = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert!(reloaded, "{}", relay.log());

    to_server.write_all(b"NOOP\n").unwrap();
    line.clear();
    from_server.read_line(&mut line).unwrap();
    assert!(line.starts_with("250 "), "old session dropped: {line:?}");
    to_server.write_all(b"QUIT\n").unwrap();
    let _ = session.wait();

    let (served, _) = handshake(relay.implicit, "-tls1_3");
    assert_eq!(normalize(&served), normalize(&fresh.cert.pem()), "new connections still get the old certificate");
}
