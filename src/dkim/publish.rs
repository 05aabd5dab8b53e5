//! Everything a sender domain publishes in DNS, in one answer (`GET /v1/senders/{domain}/dns`,
//! `relaykey sender list`): the TXT record that proves the domain, its DKIM key records, and
//! an SPF record suggested from `[relay]`.

use serde::Serialize;

use super::stored::{DkimKey, KeyView};
use crate::config::RelayConfig;
use crate::senders::{AccountSender, TxtRecord};

/// What to publish for one domain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DomainRecords {
    pub domain: String,
    /// `_relaykey.<domain> TXT "relaykey-verify=<token>"`; `null` for a domain the operator
    /// added verified (it has no token).
    pub verification: Option<TxtRecord>,
    /// Every DKIM key of the domain with its record; a `retired` key's record may be removed
    /// once mail signed with it has been read (a few days).
    pub dkim: Vec<KeyView>,
    /// A suggestion: the relay's addresses (`[relay] spf_addresses`) or its host name.
    pub spf: TxtRecord,
}

impl DomainRecords {
    pub fn new(sender: &AccountSender, keys: &[DkimKey], relay: &RelayConfig) -> Self {
        let domain = sender.entry.domain().ascii().to_string();
        Self {
            verification: sender.dns_record(),
            dkim: keys.iter().map(DkimKey::to_view).collect(),
            spf: spf_record(&domain, relay),
            domain,
        }
    }
}

/// `v=spf1 ip4:… ip6:… ~all` from the addresses the relay sends from, else
/// `v=spf1 a:<hostname> ~all`. `~all` (soft fail) rather than `-all`: the domain may also send
/// from elsewhere, which only its owner knows.
pub fn spf_record(ascii_domain: &str, relay: &RelayConfig) -> TxtRecord {
    let mechanisms: Vec<String> = if relay.spf_addresses.is_empty() {
        vec![format!("a:{}", relay.hostname)]
    } else {
        relay
            .spf_addresses
            .iter()
            .map(|ip| match ip {
                std::net::IpAddr::V4(v4) => format!("ip4:{v4}"),
                std::net::IpAddr::V6(v6) => format!("ip6:{v6}"),
            })
            .collect()
    };
    TxtRecord {
        name: ascii_domain.to_string(),
        record_type: "TXT",
        value: format!("v=spf1 {} ~all", mechanisms.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spf_names_the_relay() {
        let mut relay = RelayConfig { hostname: "mail.example.net".into(), ..RelayConfig::default() };
        assert_eq!(spf_record("example.com", &relay).value, "v=spf1 a:mail.example.net ~all");
        relay.spf_addresses = vec!["192.0.2.7".parse().unwrap(), "2001:db8::7".parse().unwrap()];
        let spf = spf_record("example.com", &relay);
        assert_eq!(
            (spf.name.as_str(), spf.value.as_str()),
            ("example.com", "v=spf1 ip4:192.0.2.7 ip6:2001:db8::7 ~all")
        );
    }
}
