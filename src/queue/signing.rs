//! DKIM at enqueue: the message an authenticated account sends is signed once, over the bytes
//! just spooled (trace header, any `Message-ID:`/`Date:` the front end added, dot-unstuffed
//! data), with the active keys of its `From:` domain, if that domain is a verified sender
//! domain of the same account. The signatures are stored with the envelope and go above the
//! message at every delivery attempt.
//!
//! Signing never refuses a message: what cannot be signed (no key, a header section too
//! large to read, an unreadable `From:`, a store that cannot be read) goes out unsigned, and
//! the `queued` log line says `dkim=none`.

use crate::dkim::{Digested, Keyring, Signed};
use crate::header_from::from_addresses;

use super::Submission;

/// Signs `digest` (the message as spooled) for `submission`, or says why not.
pub fn sign(keyring: &Keyring, digest: Option<Digested>, submission: &Submission, now: u64) -> Signed {
    let (Some(account), Some(digest)) = (submission.account_id, digest) else { return Signed::default() };
    let Some(domain) = from_domain(&digest.head) else { return Signed::default() };
    let snapshot = match keyring.snapshot() {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "dkim: cannot read the keys; message not signed");
            return Signed::default();
        }
    };
    match snapshot.domain(&domain) {
        Some(keys) if keys.owner == account => keys.sign(&digest.head, &digest.body_hash, now),
        _ => Signed::default(),
    }
}

/// The one domain of the `From:` mailboxes, ASCII and lower case; `None` when there is no
/// readable `From:` or its mailboxes are in different domains (no single `d=` aligns).
pub fn from_domain(head: &[u8]) -> Option<String> {
    let mailboxes = from_addresses(head).ok()?;
    let mut domains = mailboxes.iter().map(|m| {
        let d = m.domain.trim_end_matches('.');
        if d.is_ascii() { Some(d.to_ascii_lowercase()) } else { crate::senders::name::to_ascii(d) }
    });
    let first = domains.next()??;
    domains.all(|d| d.as_deref() == Some(first.as_str())).then_some(first)
}

/// The `dkim=` value of the `queued` log line: the selectors that signed, or `none`.
pub fn log_value(signed: &Signed) -> String {
    if signed.selectors.is_empty() { "none".to_string() } else { signed.selectors.join(",") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_from_domain_is_one_ascii_domain() {
        assert_eq!(from_domain(b"From: Ann <ann@Example.COM>\r\n"), Some("example.com".into()));
        assert_eq!(from_domain("From: a@b\u{fc}cher.example\r\n".as_bytes()), Some("xn--bcher-kva.example".into()));
        assert_eq!(from_domain(b"From: a@x.example, b@X.example\r\n"), Some("x.example".into()));
        assert_eq!(from_domain(b"From: a@x.example, b@y.example\r\n"), None);
        assert_eq!(from_domain(b"Subject: no from\r\n"), None);
        assert_eq!(from_domain(b"From: a@x.example\r\nFrom: b@x.example\r\n"), None);
    }
}

#[cfg(test)]
#[path = "signing_tests.rs"]
mod outbox_tests;
