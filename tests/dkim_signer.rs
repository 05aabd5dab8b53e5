//! The signer on its own (`relaykey::dkim`, as the queue calls it), checked by dkimpy and
//! OpenDKIM: messages of many shapes, fed to the body hasher in pieces of 1, 7 and all bytes
//! (the relay hands a message to the spool in pieces), signed with fresh RSA and Ed25519 keys.
//! The end-to-end tests (`dkim_relay`, `dkim_api`) prove the same through the relay and the
//! API; this one covers the piece boundaries they cannot choose.
//! Needs dkimpy and OpenDKIM: skipped locally without them, a failure under CI=true.

mod support;

use std::time::{SystemTime, UNIX_EPOCH};

use relaykey::dkim::key::generate;
use relaykey::dkim::record::txt_value;
use relaykey::dkim::signature::{SignatureInput, sign};
use relaykey::dkim::{Algorithm, MessageDigest, SigningKey};
use support::dkim_verify::{Keys, available, record_name, report, verify};

const DOMAIN: &str = "signer.example";

fn messages() -> Vec<(&'static str, Vec<u8>)> {
    let references: String =
        (0..150).map(|i| format!("<t-{i}-aaaaaaaaaaaa@{DOMAIN}>")).collect::<Vec<_>>().join("\r\n ");
    vec![
        ("simple", b"From: a@signer.example\r\nTo: b@example.net\r\nSubject: hi\r\n\r\nbody\r\n".to_vec()),
        ("8-bit", "From: Ännchen <a@signer.example>\r\nSubject: Grüße ✓ 日本語\r\n\r\nüñí\r\n".into()),
        (
            "whitespace",
            b"From: a@signer.example\r\nSubject:   spaced \t out   \r\n\r\ntext  \t\r\n\tin\tx\r\n \r\n\t\r\n\r\n   \r\n\r\n"
                .to_vec(),
        ),
        ("no body", b"From: a@signer.example\r\nSubject: e\r\n\r\n".to_vec()),
        ("no empty line", b"From: a@signer.example\r\nSubject: e\r\n".to_vec()),
        ("only empty lines", b"From: a@signer.example\r\n\r\n\r\n\r\n".to_vec()),
        ("only a blank line", b"From: a@signer.example\r\n\r\n \r\n".to_vec()),
        ("long folded", format!("From: a@signer.example\r\nSubject: s\r\nReferences: {references}\r\n\r\nb\r\n").into()),
        ("two subjects", b"From: a@signer.example\r\nSubject: one\r\nSubject: two\r\n\r\nb\r\n".to_vec()),
        ("empty values", b"From: a@signer.example\r\nSubject:\r\nCc: \r\n\r\nb\r\n".to_vec()),
        ("folded first line", b"From: a@signer.example\r\nSubject:\r\n folded start\r\n\r\nb\r\n".to_vec()),
        ("blank continuation", b"From: a@signer.example\r\nSubject: a\r\n \r\n\tb\r\n\r\nb\r\n".to_vec()),
        ("name case", b"FROM: a@signer.example\r\nsubject: lower\r\nTO: b@example.net\r\n\r\nb\r\n".to_vec()),
        ("latin-1 bytes", b"From: \xc4nne <a@signer.example>\r\nSubject: Gr\xfc\xdfe\r\n\r\nb\xe4r\r\n".to_vec()),
        (
            "mime and list",
            b"From: a@signer.example\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative;\r\n\tboundary=\"b\"\r\n\
              List-Unsubscribe: <mailto:u@signer.example>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n\r\n\
              --b\r\n\r\nx\r\n--b--\r\n"
                .to_vec(),
        ),
    ]
}

#[test]
fn every_signature_verifies_whatever_the_pieces() {
    if !available() {
        return;
    }
    let mut keys = Keys::new();
    let mut signers = Vec::new();
    for (selector, algorithm) in [("r1", Algorithm::Rsa), ("e1", Algorithm::Ed25519)] {
        let generated = generate(algorithm).unwrap();
        keys.insert(record_name(selector, DOMAIN), txt_value(algorithm, &generated.public));
        signers.push((selector, SigningKey::load(&generated.private).unwrap()));
    }
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs();
    let mut failed = Vec::new();
    for (name, message) in messages() {
        for piece in [1, 7, message.len()] {
            let mut digest = MessageDigest::new();
            message.chunks(piece).for_each(|p| digest.feed(p));
            let digested = digest.finish().expect("a small header section is kept");
            let mut signed = String::new();
            for (selector, key) in &signers {
                let input = SignatureInput {
                    domain: DOMAIN,
                    selector,
                    timestamp: now,
                    head: &digested.head,
                    body_hash: &digested.body_hash,
                };
                signed.push_str(&sign(&input, key).unwrap());
            }
            let mut full = [signed.as_bytes(), &message].concat();
            // As sent over SMTP: the last line ends in CRLF.
            if !full.ends_with(b"\r\n") {
                full.extend_from_slice(b"\r\n");
            }
            let checked = verify(&full, &keys);
            assert_eq!(checked.len(), 2, "{name}");
            for c in checked.iter().filter(|c| !c.passes()) {
                failed.push(format!("{name}, pieces of {piece}: s={} {}", c.selector(), report(c)));
            }
        }
    }
    assert!(failed.is_empty(), "{}", failed.join("\n"));
}
