//! A sender entry as an account holds it, and the DNS record that proves a pending domain.

use serde::Serialize;

use super::name::{SenderEntry, SenderKind};

/// The label under a domain that holds its proof: `_relaykey.example.com`.
pub const VERIFY_LABEL: &str = "_relaykey";
/// The TXT value's prefix: `relaykey-verify=<token>`.
pub const VERIFY_PREFIX: &str = "relaykey-verify=";
/// Random bytes in a token (hex-encoded: 32 characters, 128 bits).
const TOKEN_BYTES: usize = 16;

/// One entry of one account, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountSender {
    pub id: i64,
    pub account_id: i64,
    pub entry: SenderEntry,
    /// Only verified entries authorize sending.
    pub verified: bool,
    /// What a pending domain must publish; `None` for entries added verified and for
    /// addresses.
    pub token: Option<String>,
    /// Unix seconds.
    pub created_at: i64,
}

impl AccountSender {
    /// The TXT record that proves this entry, when it is a domain with a token.
    pub fn dns_record(&self) -> Option<TxtRecord> {
        match (&self.entry, &self.token) {
            (SenderEntry::Domain(domain), Some(token)) => Some(TxtRecord::for_domain(domain.ascii(), token)),
            _ => None,
        }
    }

    /// The JSON shape of the CLI and the API:
    /// `{"entry","unicode","kind","verified","token","dns":{"name","type","value"}|null}`.
    pub fn to_view(&self) -> SenderView {
        SenderView {
            entry: self.entry.as_string(),
            unicode: self.entry.unicode(),
            kind: self.entry.kind(),
            verified: self.verified,
            token: self.token.clone(),
            dns: self.dns_record(),
        }
    }
}

/// What `relaykey sender … --json` and `/v1/senders` print for an entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SenderView {
    pub entry: String,
    /// The entry with its domain in Unicode (`bücher.example`), for display.
    pub unicode: String,
    #[serde(serialize_with = "kind_str")]
    pub kind: SenderKind,
    pub verified: bool,
    pub token: Option<String>,
    pub dns: Option<TxtRecord>,
}

fn kind_str<S: serde::Serializer>(kind: &SenderKind, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(kind.as_str())
}

/// A DNS record to publish: `_relaykey.example.com TXT "relaykey-verify=<token>"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TxtRecord {
    pub name: String,
    #[serde(rename = "type")]
    pub record_type: &'static str,
    pub value: String,
}

impl TxtRecord {
    pub fn for_domain(ascii_domain: &str, token: &str) -> Self {
        Self {
            name: format!("{VERIFY_LABEL}.{ascii_domain}"),
            record_type: "TXT",
            value: format!("{VERIFY_PREFIX}{token}"),
        }
    }
}

/// A new verification token from the OS CSPRNG.
pub fn new_token() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut bytes)?;
    Ok(hex::encode(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pending_domain_shows_the_record_to_publish() {
        let sender = AccountSender {
            id: 1,
            account_id: 1,
            entry: SenderEntry::parse("bücher.example").unwrap(),
            verified: false,
            token: Some("00ff".into()),
            created_at: 0,
        };
        let json = serde_json::to_value(sender.to_view()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "entry": "xn--bcher-kva.example", "unicode": "bücher.example", "kind": "domain",
                "verified": false, "token": "00ff",
                "dns": {"name": "_relaykey.xn--bcher-kva.example", "type": "TXT", "value": "relaykey-verify=00ff"}
            })
        );
    }

    #[test]
    fn an_address_has_no_record() {
        let sender = AccountSender {
            id: 1,
            account_id: 1,
            entry: SenderEntry::parse("a@example.com").unwrap(),
            verified: true,
            token: None,
            created_at: 0,
        };
        assert_eq!(sender.dns_record(), None);
        assert_eq!(serde_json::to_value(sender.to_view()).unwrap()["kind"], "address");
    }

    #[test]
    fn tokens_are_random_hex() {
        let (a, b) = (new_token().unwrap(), new_token().unwrap());
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
