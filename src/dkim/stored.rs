//! A DKIM key as the store keeps it (without its private half, which only the keyring reads)
//! and as `relaykey dkim … --json` and the API show it:
//! `{"domain","selector","algorithm","state","dns":{"name","type","value"}}`.

use std::fmt;

use serde::Serialize;

use super::key::Algorithm;
use super::record::txt_record;
use crate::senders::TxtRecord;

/// Where a key stands.
///
/// A new key is `published`: generated, its record given to the operator to put in DNS, not
/// yet signing (a signature whose key is not in DNS yet fails every verifier). `activate`
/// makes it sign; `retire` stops it signing while its record may stay in DNS a while for mail
/// already sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyState {
    Published,
    Active,
    Retired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Published => "published",
            Self::Active => "active",
            Self::Retired => "retired",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "published" => Some(Self::Published),
            "active" => Some(Self::Active),
            "retired" => Some(Self::Retired),
            _ => None,
        }
    }
}

impl fmt::Display for KeyState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One stored key, public half only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DkimKey {
    /// ASCII (A-labels), lower case.
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub state: KeyState,
    /// What `p=` publishes, before base64.
    pub public: Vec<u8>,
    /// Unix seconds.
    pub created_at: i64,
}

/// The JSON shape of one key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct KeyView {
    pub domain: String,
    pub selector: String,
    pub algorithm: Algorithm,
    pub state: KeyState,
    pub dns: TxtRecord,
}

impl DkimKey {
    pub fn dns_record(&self) -> TxtRecord {
        txt_record(&self.domain, &self.selector, self.algorithm, &self.public)
    }

    pub fn to_view(&self) -> KeyView {
        KeyView {
            domain: self.domain.clone(),
            selector: self.selector.clone(),
            algorithm: self.algorithm,
            state: self.state,
            dns: self.dns_record(),
        }
    }
}

/// The selector `generate` picks when none is given: `rk<year><letter>`, the first letter
/// from `a` not in `taken` (then `rk<year>a1`, … should all 26 be used).
pub fn default_selector(year: i64, taken: &[String]) -> String {
    let free = |s: &String| !taken.iter().any(|t| t.eq_ignore_ascii_case(s));
    let letters = (b'a'..=b'z').map(|c| format!("rk{year}{}", c as char));
    let numbered = (1u32..).map(|n| format!("rk{year}a{n}"));
    letters.chain(numbered).find(free).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_selectors_take_the_next_free_letter() {
        assert_eq!(default_selector(2026, &[]), "rk2026a");
        let taken = vec!["rk2026a".to_string(), "RK2026B".to_string(), "other".to_string()];
        assert_eq!(default_selector(2026, &taken), "rk2026c");
        let all: Vec<String> = (b'a'..=b'z').map(|c| format!("rk2027{}", c as char)).collect();
        assert_eq!(default_selector(2027, &all), "rk2027a1");
    }

    #[test]
    fn the_json_shape_is_the_contract() {
        let key = DkimKey {
            domain: "example.com".into(),
            selector: "rk2026a".into(),
            algorithm: Algorithm::Ed25519,
            state: KeyState::Published,
            public: vec![0; 32],
            created_at: 0,
        };
        let json = serde_json::to_value(key.to_view()).unwrap();
        assert_eq!(
            json,
            serde_json::json!({
                "domain": "example.com", "selector": "rk2026a", "algorithm": "ed25519", "state": "published",
                "dns": {"name": "rk2026a._domainkey.example.com", "type": "TXT",
                        "value": format!("v=DKIM1; k=ed25519; p={}=", "A".repeat(43))}
            })
        );
    }
}
