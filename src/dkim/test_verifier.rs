//! A verifier for tests, written from RFC 6376 §6 apart from the signer: it reads a
//! `DKIM-Signature:` field back (tags, `h=`, `b=` emptied), recomputes the body hash and checks
//! the signature with ring's verification.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, RSA_PKCS1_2048_8192_SHA256, UnparsedPublicKey};

use super::canonical::{relaxed_body, relaxed_header};
use super::header_fields::{select, split_fields};

/// The tags of a field, whitespace removed from the values.
pub fn tags(field: &str) -> Vec<(String, String)> {
    let value = field.split_once(':').map_or("", |(_, v)| v);
    value
        .split(';')
        .filter_map(|t| {
            let (k, v) = t.split_once('=')?;
            Some((k.trim().to_string(), v.chars().filter(|c| !c.is_whitespace()).collect()))
        })
        .collect()
}

pub fn tag(field: &str, name: &str) -> Option<String> {
    tags(field).into_iter().find(|(k, _)| k == name).map(|(_, v)| v)
}

/// What a verifier hashes for `field` over the header section `head`.
pub fn header_data(head: &[u8], field: &str) -> Vec<u8> {
    let h = tag(field, "h").unwrap_or_default();
    let names: Vec<&str> = h.split(':').collect();
    let fields = split_fields(head);
    let mut data = Vec::new();
    for f in select(&fields, &names).into_iter().flatten() {
        relaxed_header(f.raw, &mut data);
    }
    // b= is the last tag: everything after "b=" is its value.
    let at = field.rfind("b=").unwrap_or(field.len());
    let without_b = format!("{}b=", &field[..at]);
    relaxed_header(without_b.trim_end().as_bytes(), &mut data);
    data.truncate(data.len() - 2);
    data
}

/// Does `field` verify over `head` and `body` with `public` (`p=` bytes: raw Ed25519, or a
/// PKCS#1 RSA key)?
pub fn verifies(head: &[u8], body: &[u8], field: &str, public: &[u8]) -> bool {
    let bh = STANDARD.encode(ring::digest::digest(&ring::digest::SHA256, &relaxed_body(body)));
    if tag(field, "bh").as_deref() != Some(bh.as_str()) {
        return false;
    }
    let Ok(sig) = STANDARD.decode(tag(field, "b").unwrap_or_default()) else { return false };
    let data = header_data(head, field);
    match tag(field, "a").as_deref() {
        Some("rsa-sha256") => UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, public).verify(&data, &sig).is_ok(),
        Some("ed25519-sha256") => {
            let digest = ring::digest::digest(&ring::digest::SHA256, &data);
            UnparsedPublicKey::new(&ED25519, public).verify(digest.as_ref(), &sig).is_ok()
        }
        _ => false,
    }
}

/// Splits a signed message into its `DKIM-Signature:` fields (at the top) and the rest, then
/// the rest into header section and body.
pub fn split_signed(message: &[u8]) -> (Vec<String>, Vec<u8>, Vec<u8>) {
    let (head, body) = match memchr::memmem::find(message, b"\r\n\r\n") {
        Some(at) => (&message[..at + 2], &message[at + 4..]),
        None => (message, &b""[..]),
    };
    let mut sigs = Vec::new();
    let mut rest = Vec::new();
    for f in split_fields(head) {
        if f.name.eq_ignore_ascii_case(b"DKIM-Signature") {
            sigs.push(String::from_utf8_lossy(f.raw).into_owned());
        } else {
            rest.extend_from_slice(f.raw);
        }
    }
    (sigs, rest, body.to_vec())
}
