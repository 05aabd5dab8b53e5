//! The DKIM verifier harness ([`support::dkim_verify`]) proved on signatures relaykey did not
//! make: dkimpy signs with keys from openssl (RSA-2048 and Ed25519), and both dkimpy and
//! OpenDKIM (test mode, `TestPublicKeys`) must pass each signature, fail it after the body or
//! the Subject changes, and judge each signature apart from the others on the same message.

mod support;

use support::dkim_verify::{
    TestKey, assert_fails, assert_verifies, available, keys_of, report, sign_with_dkimpy, verify, with_body_changed,
    with_subject_changed,
};

const DOMAIN: &str = "signed.example";

fn message() -> Vec<u8> {
    b"From: Ann <ann@signed.example>\r\nTo: rcpt@example.net\r\nSubject: harness\r\n\
      Date: Thu, 03 Dec 2026 12:00:00 +0000\r\nMessage-ID: <harness@signed.example>\r\n\r\n\
      first line\r\n\r\n  indented line with trailing space \r\n"
        .to_vec()
}

/// The message signed by an Ed25519 key (on top) and an RSA key, with both keys.
fn doubly_signed() -> (Vec<u8>, TestKey, TestKey) {
    let rsa = TestKey::rsa("rsa1", DOMAIN);
    let ed = TestKey::ed25519("ed1", DOMAIN);
    let signed = sign_with_dkimpy(&sign_with_dkimpy(&message(), &rsa), &ed);
    (signed, rsa, ed)
}

#[test]
fn both_verifiers_pass_each_dkimpy_signature_of_either_algorithm() {
    if !available() {
        return;
    }
    let (signed, rsa, ed) = doubly_signed();
    let checked = assert_verifies(&signed, &keys_of(&[&rsa, &ed]));
    let seen: Vec<(&str, &str, &str)> = checked.iter().map(|c| (c.domain(), c.selector(), c.algorithm())).collect();
    assert_eq!(seen, [(DOMAIN, "ed1", "ed25519-sha256"), (DOMAIN, "rsa1", "rsa-sha256")]);
    for c in &checked {
        // OpenDKIM's result was matched to this very signature (its selector and b= start).
        assert!(c.opendkim.detail.starts_with("dkim=pass"), "{}", c.opendkim.detail);
        assert!(c.opendkim.detail.contains(&format!("header.s={}", c.selector())), "{}", c.opendkim.detail);
        assert_eq!(c.signed_headers(), ["from", "to", "subject", "date", "message-id"]);
    }
}

#[test]
fn a_changed_body_or_subject_fails_every_signature_in_both_verifiers() {
    if !available() {
        return;
    }
    let (signed, rsa, ed) = doubly_signed();
    let keys = keys_of(&[&rsa, &ed]);
    let body = with_body_changed(&signed);
    assert!(String::from_utf8_lossy(&body).contains("\r\n\r\ntampered first line\r\n"));
    let failed = assert_fails(&body, &keys);
    assert!(failed.iter().all(|c| c.dkimpy.detail.contains("body hash mismatch")), "{failed:?}");
    let subject = with_subject_changed(&signed);
    assert!(String::from_utf8_lossy(&subject).contains("\r\nSubject: Re: harness\r\n"));
    assert_fails(&subject, &keys);
    // A message without a body gets one, which breaks its (empty) body hash.
    let empty = sign_with_dkimpy(b"From: ann@signed.example\r\nSubject: empty\r\n\r\n", &rsa);
    assert_verifies(&empty, &keys);
    assert_fails(&with_body_changed(&empty), &keys);
}

#[test]
fn each_signature_is_judged_on_its_own() {
    if !available() {
        return;
    }
    let (signed, rsa, ed) = doubly_signed();
    // Only the Ed25519 key is known: its signature passes, the RSA one fails, in both verifiers.
    let checked = verify(&signed, &keys_of(&[&ed]));
    assert_eq!(checked.len(), 2);
    assert!(checked[0].passes(), "{}", report(&checked[0]));
    assert!(!checked[1].dkimpy.pass && !checked[1].opendkim.pass, "{}", report(&checked[1]));
    // A stale RSA key (another key under the same name) fails that signature only.
    let stale = TestKey::rsa("rsa1", DOMAIN);
    let checked = verify(&signed, &keys_of(&[&stale, &ed]));
    assert!(checked[0].passes(), "{}", report(&checked[0]));
    assert!(checked[1].fails_in_both(), "{}", report(&checked[1]));
    let _ = rsa;
}
