//! Proving a domain: `_relaykey.<domain>` must have a TXT record `relaykey-verify=<token>`,
//! looked up through the system resolver (`/etc/resolv.conf`) or `[senders] resolver`.
//!
//! A resolver that does not answer, or answers SERVFAIL, is a [`Verification::TemporaryFailure`]:
//! the domain is neither proven nor disproven, and the entry stays pending to be checked again.

use hickory_resolver::TokioResolver;
use subtle::ConstantTimeEq;

use super::record::{TxtRecord, VERIFY_PREFIX};
use crate::config::SendersConfig;

/// The outcome of one check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The record holds the token: mark the entry verified.
    Verified,
    /// `_relaykey.<domain>` has `relaykey-verify=` records, none with this token.
    WrongToken,
    /// No `relaykey-verify=` record at `_relaykey.<domain>` (the name or the record is missing).
    NoRecord,
    /// The resolver did not answer or failed; try again later.
    TemporaryFailure(String),
}

impl Verification {
    /// A fixed snake_case word for logs and JSON.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Verified => "verified",
            Self::WrongToken => "wrong_token",
            Self::NoRecord => "no_record",
            Self::TemporaryFailure(_) => "temporary_failure",
        }
    }
}

/// Decides from the TXT records found at the name (each record's strings joined, as
/// RFC 7208 §3.3 does for long values).
pub fn decide(records: &[Vec<u8>], token: &str) -> Verification {
    let want = format!("{VERIFY_PREFIX}{token}");
    let ours: Vec<&[u8]> =
        records.iter().map(|r| r.trim_ascii()).filter(|r| r.starts_with(VERIFY_PREFIX.as_bytes())).collect();
    if ours.is_empty() {
        return Verification::NoRecord;
    }
    if ours.iter().any(|r| bool::from(r.ct_eq(want.as_bytes()))) {
        Verification::Verified
    } else {
        Verification::WrongToken
    }
}

/// Looks up the proof of `ascii_domain` and decides. Builds a resolver for this check alone, so
/// that no cached answer (a negative one from before the record was published) is reused.
pub async fn verify_domain(config: &SendersConfig, ascii_domain: &str, token: &str) -> Verification {
    let resolver = match resolver(config) {
        Ok(r) => r,
        Err(e) => return Verification::TemporaryFailure(e),
    };
    let record = TxtRecord::for_domain(ascii_domain, token);
    let fqdn = format!("{}.", record.name.trim_end_matches('.'));
    match crate::dns::txt_records(&resolver, &fqdn).await {
        Ok(Some(records)) => decide(&records, token),
        Ok(None) => Verification::NoRecord,
        Err(e) => Verification::TemporaryFailure(e),
    }
}

/// A resolver on `[senders]` settings: its nameserver (or the system's), its time-out, one try.
pub fn resolver(config: &SendersConfig) -> Result<TokioResolver, String> {
    let nameservers: Vec<_> = config.resolver.into_iter().collect();
    let mut builder =
        crate::dns::resolver_builder(&nameservers).map_err(|e| format!("cannot read the system resolver: {e}"))?;
    let options = builder.options_mut();
    options.timeout = config.dns_timeout;
    options.attempts = 1;
    builder.build().map_err(|e| format!("cannot start the resolver: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records(values: &[&str]) -> Vec<Vec<u8>> {
        values.iter().map(|v| v.as_bytes().to_vec()).collect()
    }

    #[test]
    fn decides_from_the_records_found() {
        let t = "00ff00ff";
        assert_eq!(decide(&records(&["relaykey-verify=00ff00ff"]), t), Verification::Verified);
        assert_eq!(decide(&records(&["v=spf1 -all", "relaykey-verify=00ff00ff "]), t), Verification::Verified);
        assert_eq!(decide(&records(&["relaykey-verify=11111111"]), t), Verification::WrongToken);
        assert_eq!(
            decide(&records(&["relaykey-verify=11111111", "relaykey-verify=00ff00ff"]), t),
            Verification::Verified
        );
        assert_eq!(decide(&records(&["v=spf1 -all"]), t), Verification::NoRecord);
        assert_eq!(decide(&[], t), Verification::NoRecord);
        // A prefix of the token is not the token.
        assert_eq!(decide(&records(&["relaykey-verify=00ff"]), t), Verification::WrongToken);
    }
}
