//! Round trips through ring's own verification: the test verifier reads the emitted field back
//! the way a verifier does (tags parsed, `b=` emptied, `h=` fields picked bottom-up), so it
//! checks the field's text as well as the crypto.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::*;
use crate::dkim::canonical::relaxed_body;
use crate::dkim::key::{Algorithm, PrivateKey, generate};
use crate::dkim::test_verifier::{tags, verifies as verify};

const MESSAGE_HEAD: &[u8] = b"Received: from c ([192.0.2.1])\r\n\tby relay (relaykey) with ESMTPSA id X;\r\n\tThu, 3 Dec 2026 12:00:00 +0000\r\n\
    From: \"Ann\" <ann@example.com>\r\nTo: bob@example.net\r\nSubject: a very long subject that goes on and on\r\n \
    folded once and \t twice\r\nDate: Thu, 3 Dec 2026 12:00:00 +0000\r\nMessage-ID: <1@example.com>\r\n";

fn sign_with(algorithm: Algorithm) -> (String, Vec<u8>, Vec<u8>) {
    let generated = generate(algorithm).unwrap();
    let key = SigningKey::load(&generated.private).unwrap();
    let body_hash = ring::digest::digest(&ring::digest::SHA256, &relaxed_body(b"hello\r\n")).as_ref().to_vec();
    let input = SignatureInput {
        domain: "example.com",
        selector: "rk2026a",
        timestamp: 1_764_763_200,
        head: MESSAGE_HEAD,
        body_hash: &body_hash,
    };
    (sign(&input, &key).unwrap(), key.public_key().to_vec(), body_hash)
}

fn verifies(_algorithm: Algorithm, head: &[u8], field: &str, public: &[u8]) -> bool {
    verify(head, b"hello\r\n", field, public)
}

#[test]
fn both_algorithms_round_trip_and_tampering_fails() {
    for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
        let (field, public, body_hash) = sign_with(algorithm);
        assert!(verifies(algorithm, MESSAGE_HEAD, &field, &public), "{algorithm}: {field}");
        let t = tags(&field);
        let get = |k: &str| t.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("v"), Some("1"));
        assert_eq!(get("a"), Some(algorithm.tag()));
        assert_eq!(get("c"), Some("relaxed/relaxed"));
        assert_eq!((get("d"), get("s"), get("t")), (Some("example.com"), Some("rk2026a"), Some("1764763200")));
        assert_eq!(get("bh"), Some(STANDARD.encode(&body_hash).as_str()));
        assert_eq!(get("l"), None);
        assert!(
            get("h")
                .unwrap()
                .starts_with("From:From:Reply-To:Subject:Subject:Date:Date:To:To:Cc:Message-ID:Message-ID:")
        );
        assert!(!get("h").unwrap().to_ascii_lowercase().contains("received"));
        // A changed Subject, or one added above, breaks it; a new Received does not.
        let changed = String::from_utf8_lossy(MESSAGE_HEAD).replace("very long", "very short");
        assert!(!verifies(algorithm, changed.as_bytes(), &field, &public));
        let mut added = MESSAGE_HEAD.to_vec();
        added.extend_from_slice(b"Subject: injected\r\n");
        assert!(!verifies(algorithm, &added, &field, &public));
        let mut traced = b"Received: from elsewhere\r\n".to_vec();
        traced.extend_from_slice(MESSAGE_HEAD);
        assert!(verifies(algorithm, &traced, &field, &public));
    }
}

#[test]
fn the_field_is_folded_within_78_columns() {
    for algorithm in [Algorithm::Ed25519, Algorithm::Rsa] {
        let (field, _, _) = sign_with(algorithm);
        assert!(field.starts_with("DKIM-Signature: v=1; a=") && field.ends_with("\r\n"));
        for line in field.trim_end_matches("\r\n").split("\r\n") {
            let width = line.replace('\t', "        ").len();
            assert!(width <= 78, "{width}: {line}");
            assert!(!line.trim().is_empty());
        }
        assert!(!field.trim_end_matches("\r\n").contains('\n') || field.contains("\r\n\t"));
    }
}

#[test]
fn private_keys_never_show_in_debug() {
    let generated = generate(Algorithm::Ed25519).unwrap();
    let shown = format!("{generated:?} {:?}", SigningKey::load(&generated.private).unwrap());
    assert!(shown.contains("redacted"));
    let pkcs8_b64 = STANDARD.encode(generated.private.pkcs8());
    assert!(!shown.contains(&pkcs8_b64[..16]));
    let hexed: String = generated.private.pkcs8().iter().map(|b| format!("{b}, ")).collect();
    assert!(!shown.contains(&hexed[..20]));
    assert_eq!(format!("{:?}", PrivateKey::from_pkcs8(Algorithm::Rsa, vec![1, 2, 3])), "PrivateKey(rsa, redacted)");
}

#[test]
fn rsa_keys_publish_spki_that_ring_reads() {
    let generated = generate(Algorithm::Rsa).unwrap();
    // SubjectPublicKeyInfo with rsaEncryption: "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA…".
    let p = STANDARD.encode(&generated.public);
    assert!(p.starts_with("MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"), "{p}");
    let key = SigningKey::load(&generated.private).unwrap();
    // The SPKI ends with the PKCS#1 key ring uses.
    assert!(generated.public.ends_with(key.public_key()));
}

mod round_trip {
    use proptest::prelude::*;

    use super::*;
    use crate::dkim::MessageDigest;
    use crate::dkim::test_verifier::split_signed;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        /// Any message, fed in any pieces, signed with Ed25519, verifies as a whole: header
        /// values with folds and 8-bit text, bodies with trailing whitespace, blank lines, or
        /// no final CRLF.
        #[test]
        fn any_message_signed_in_pieces_verifies(
            subject in "[ -~\u{e9}\u{2603}\t]{0,120}",
            folds in 0usize..3,
            body in prop::collection::vec(prop::sample::select(vec![b' ', b'\t', b'\r', b'\n', b'a', b'.', 0xc3, 0xa9]), 0..300),
            chunk in 1usize..50,
        ) {
            let mut message = format!("From: Ann <ann@example.com>\r\nTo: b@example.net\r\nSubject: {subject}").into_bytes();
            for _ in 0..folds {
                message.extend_from_slice(b"\r\n\tmore");
            }
            message.extend_from_slice(b"\r\n\r\n");
            message.extend_from_slice(&body);
            let mut digest = MessageDigest::new();
            for piece in message.chunks(chunk) {
                digest.feed(piece);
            }
            let digested = digest.finish().unwrap();
            let key = SigningKey::load(&generate(Algorithm::Ed25519).unwrap().private).unwrap();
            let input = SignatureInput {
                domain: "example.com",
                selector: "s",
                timestamp: 1_764_763_200,
                head: &digested.head,
                body_hash: &digested.body_hash,
            };
            let mut signed = sign(&input, &key).unwrap().into_bytes();
            signed.extend_from_slice(&message);
            let (fields, head, rest) = split_signed(&signed);
            prop_assert_eq!(fields.len(), 1);
            prop_assert!(verify(&head, &rest, &fields[0], key.public_key()));
        }
    }
}
