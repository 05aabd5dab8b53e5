//! What a DKIM key publishes: the TXT record `<selector>._domainkey.<domain>` with
//! `v=DKIM1; k=<rsa|ed25519>; p=<base64>` (RFC 6376 §3.6.1), its value whole (for JSON and
//! the API) or split into the ≤255-byte character-strings a zone file needs (RFC 1035 §3.3),
//! and the selector syntax.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::key::Algorithm;
use crate::senders::TxtRecord;

/// The label between the selector and the domain (RFC 6376 §3.6.2.1).
pub const DOMAINKEY_LABEL: &str = "_domainkey";

/// The longest character-string a TXT record holds (RFC 1035 §3.3).
const MAX_TXT_STRING: usize = 255;

/// The TXT value that publishes `public` (raw Ed25519 key or RSA SubjectPublicKeyInfo).
pub fn txt_value(algorithm: Algorithm, public: &[u8]) -> String {
    format!("v=DKIM1; k={}; p={}", algorithm.as_str(), STANDARD.encode(public))
}

/// The record to publish for a key.
pub fn txt_record(ascii_domain: &str, selector: &str, algorithm: Algorithm, public: &[u8]) -> TxtRecord {
    TxtRecord { name: record_name(ascii_domain, selector), record_type: "TXT", value: txt_value(algorithm, public) }
}

/// `<selector>._domainkey.<domain>`.
pub fn record_name(ascii_domain: &str, selector: &str) -> String {
    format!("{selector}.{DOMAINKEY_LABEL}.{ascii_domain}")
}

/// A TXT value as a zone file writes it: quoted character-strings of at most 255 bytes,
/// separated by spaces (`"v=DKIM1; k=rsa; p=MIIB…" "…"`). The value is ASCII (tags and
/// base64), so no split falls inside a character and nothing needs escaping but `"` and `\`.
pub fn zone_strings(value: &str) -> String {
    value
        .as_bytes()
        .chunks(MAX_TXT_STRING)
        .map(|chunk| {
            let text = String::from_utf8_lossy(chunk);
            format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Reads the `p=` of a published record value (the character-strings already joined). `None`
/// when the record has no `p=` or it is not base64. An empty `p=` is a revoked key (§3.6.1):
/// `Some(vec![])`.
pub fn published_key(value: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(value).ok()?;
    let p = text.split(';').find_map(|tag| {
        let (name, v) = tag.split_once('=')?;
        (name.trim() == "p").then_some(v)
    })?;
    // FWS may fold a long p= (§3.6.1): whitespace inside the base64 is not part of it.
    let compact: String = p.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    STANDARD.decode(compact).ok()
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad selector {0:?}: use DNS labels of letters, digits and hyphens (like rk2026a)")]
pub struct SelectorError(pub String);

/// A selector (RFC 6376 §3.1: `sub-domain *("." sub-domain)`), lower-cased: labels of ASCII
/// letters, digits and inner hyphens, each 1 to 63 bytes, at most 200 bytes in all so the
/// record name stays within 253.
pub fn parse_selector(input: &str) -> Result<String, SelectorError> {
    let s = input.trim().to_ascii_lowercase();
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if s.is_empty() || s.len() > 200 || !s.split('.').all(label_ok) {
        return Err(SelectorError(input.to_string()));
    }
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ed25519_record_carries_the_raw_key() {
        let r = txt_record("example.com", "rk2026a", Algorithm::Ed25519, &[0u8; 32]);
        assert_eq!(r.name, "rk2026a._domainkey.example.com");
        assert_eq!(r.value, format!("v=DKIM1; k=ed25519; p={}", "A".repeat(43) + "="));
        assert_eq!(zone_strings(&r.value), format!("\"{}\"", r.value));
    }

    #[test]
    fn a_long_value_splits_into_255_byte_strings() {
        let value = txt_value(Algorithm::Rsa, &[7u8; 294]);
        let zone = zone_strings(&value);
        let parts: Vec<&str> = zone.split("\" \"").collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0].len(), 1 + 255);
        assert_eq!(zone.replace("\" \"", "").trim_matches('"'), value);
    }

    #[test]
    fn reads_the_published_key_back() {
        let value = txt_value(Algorithm::Rsa, b"public key bytes");
        assert_eq!(published_key(value.as_bytes()), Some(b"public key bytes".to_vec()));
        assert_eq!(published_key(b"v=DKIM1; k=rsa; p=cHVi bGlj"), Some(b"public".to_vec()));
        assert_eq!(published_key(b"v=DKIM1; p="), Some(Vec::new()));
        assert_eq!(published_key(b"v=DKIM1; k=rsa"), None);
        assert_eq!(published_key(b"v=DKIM1; p=!!"), None);
    }

    #[test]
    fn selectors_are_dns_labels() {
        assert_eq!(parse_selector("RK2026a").unwrap(), "rk2026a");
        assert_eq!(parse_selector("mail.2026-b").unwrap(), "mail.2026-b");
        for bad in ["", "-a", "a-", "a..b", "a_b", "a b", "é", &"a".repeat(64), "a.", ".a"] {
            assert!(parse_selector(bad).is_err(), "{bad:?}");
        }
    }
}
