//! `relaykey dkim check`: is each key's record in DNS, and does it publish the stored key?
//! Looked up through the resolver sender verification uses (`[senders] resolver`, or the
//! system's), a fresh one per check so no cached negative answer hides a new record.

use hickory_resolver::TokioResolver;
use serde::Serialize;

use super::record::published_key;
use super::stored::DkimKey;

/// What DNS says about one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DnsCheck {
    /// A record at the name publishes this key.
    Match,
    /// A DKIM record is there, with another (or an empty, revoked) `p=`.
    Stale,
    /// No DKIM record at the name.
    Missing,
    /// The resolver failed; nothing is known.
    TemporaryFailure,
}

impl DnsCheck {
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Match => "match",
            Self::Stale => "stale",
            Self::Missing => "missing",
            Self::TemporaryFailure => "temporary_failure",
        }
    }
}

/// Decides from the TXT records at the key's name (each record's strings joined).
pub fn decide(records: &[Vec<u8>], public: &[u8]) -> DnsCheck {
    let keys: Vec<Vec<u8>> = records.iter().filter_map(|r| published_key(r)).collect();
    if keys.iter().any(|k| k == public) {
        DnsCheck::Match
    } else if keys.is_empty() {
        DnsCheck::Missing
    } else {
        DnsCheck::Stale
    }
}

/// Looks up `key`'s record and decides; the error text of a failed lookup comes along.
pub async fn check_key(resolver: &TokioResolver, key: &DkimKey) -> (DnsCheck, Option<String>) {
    let name = format!("{}.", key.dns_record().name);
    match crate::dns::txt_records(resolver, &name).await {
        Ok(Some(records)) => (decide(&records, &key.public), None),
        Ok(None) => (DnsCheck::Missing, None),
        Err(e) => (DnsCheck::TemporaryFailure, Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::key::Algorithm;
    use crate::dkim::record::txt_value;

    #[test]
    fn decides_match_stale_missing() {
        let ours = txt_value(Algorithm::Ed25519, &[1; 32]).into_bytes();
        let other = txt_value(Algorithm::Ed25519, &[2; 32]).into_bytes();
        assert_eq!(decide(std::slice::from_ref(&ours), &[1; 32]), DnsCheck::Match);
        assert_eq!(decide(&[other.clone(), ours], &[1; 32]), DnsCheck::Match);
        assert_eq!(decide(&[other], &[1; 32]), DnsCheck::Stale);
        assert_eq!(decide(&[b"v=DKIM1; k=ed25519; p=".to_vec()], &[1; 32]), DnsCheck::Stale);
        assert_eq!(decide(&[b"v=spf1 -all".to_vec()], &[1; 32]), DnsCheck::Missing);
        assert_eq!(decide(&[], &[1; 32]), DnsCheck::Missing);
    }
}
