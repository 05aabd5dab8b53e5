//! E-mail addresses used as account names and SMTP usernames, in the one form they are stored
//! and compared in.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};
use unicode_normalization::UnicodeNormalization;

use crate::invisible::is_invisible;

/// A syntactically plausible `local@domain` address in canonical form: the local part in NFC
/// and lower case, the domain in ASCII (IDNA, UTS #46: `Bücher.example` is stored as
/// `xn--bcher-kva.example`).
///
/// Usernames travel through the Dovecot protocol (tab-separated, no escaping on Postfix's side),
/// into logs and onto the operator's terminal, so control characters, whitespace, the
/// protocol's separators, bidi overrides and zero-width characters are refused. Only an
/// address whose canonical form parses back to itself is accepted: a name that changed on the
/// way into the store could not be found, listed or removed by the name it was stored under.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EmailAddress(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    #[error("address is empty")]
    Empty,
    #[error("address {0:?} is longer than 254 characters")]
    TooLong(String),
    #[error("address {0:?} must have the form local@domain")]
    Malformed(String),
    #[error("address {0:?} contains a space or control character")]
    BadCharacter(String),
    #[error("address {0:?} contains a bidirectional override or an invisible character")]
    Invisible(String),
    #[error("address {0:?} has an invalid domain (IDNA: {1})")]
    BadDomain(String, String),
    #[error("address {0:?} does not keep its form when stored (normalised to {1:?}, which reads differently)")]
    NoRoundTrip(String, String),
}

/// The longest address (RFC 5321 §4.5.3.1.3 path, less the brackets).
const MAX_LEN: usize = 254;

impl EmailAddress {
    /// Parses and normalises what a user typed or a client sent.
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let canonical = canonical(input)?;
        match self::canonical(&canonical) {
            Ok(again) if again == canonical => Ok(Self(canonical)),
            _ => Err(AddressError::NoRoundTrip(input.trim().to_string(), canonical)),
        }
    }

    /// Reads a name back from the store. Anything not already in canonical form was written
    /// by something other than [`EmailAddress::parse`] and is refused, because lookups by the
    /// canonical name would never find it.
    pub fn from_stored(stored: &str) -> Result<Self, AddressError> {
        let parsed = Self::parse(stored)?;
        if parsed.0 != stored {
            return Err(AddressError::NoRoundTrip(stored.to_string(), parsed.0));
        }
        Ok(parsed)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part after the last `@`, in ASCII.
    pub fn domain(&self) -> &str {
        self.0.rsplit_once('@').map_or("", |(_, d)| d)
    }
}

/// The form a presented login name is looked up in: the canonical address when it is one (so
/// `x@İ.com` finds the account stored as `x@xn--i-9bb.com`), else trimmed and lower-cased (an
/// unknown user either way).
pub fn login_name(presented: &str) -> String {
    EmailAddress::parse(presented).map_or_else(|_| presented.trim().to_lowercase(), |a| a.0)
}

fn canonical(input: &str) -> Result<String, AddressError> {
    let s = input.trim();
    if s.is_empty() {
        return Err(AddressError::Empty);
    }
    // Bounds the work below; the exact limit is checked on the result.
    if s.len() > 4 * MAX_LEN {
        return Err(AddressError::TooLong(s.chars().take(MAX_LEN).collect()));
    }
    if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AddressError::BadCharacter(s.to_string()));
    }
    if s.chars().any(is_invisible) {
        return Err(AddressError::Invisible(s.to_string()));
    }
    let Some((local, domain)) = s.rsplit_once('@') else {
        return Err(AddressError::Malformed(s.to_string()));
    };
    let local: String = local.nfc().collect::<String>().to_lowercase().nfc().collect();
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.contains('@')
        && !local.contains(['<', '>', '(', ')', ',', ';', ':', '\\', '"', '[', ']']);
    if !local_ok || domain.is_empty() {
        return Err(AddressError::Malformed(s.to_string()));
    }
    let domain = ascii_domain(domain).map_err(|e| AddressError::BadDomain(s.to_string(), e))?;
    let address = format!("{local}@{domain}");
    if address.len() > MAX_LEN {
        return Err(AddressError::TooLong(s.to_string()));
    }
    Ok(address)
}

/// The domain through UTS #46 to ASCII, with the STD3 rules (letters, digits, hyphens) and
/// DNS lengths enforced: what a resolver and Postfix will accept.
fn ascii_domain(domain: &str) -> Result<String, String> {
    let nfc: String = domain.nfc().collect();
    let ascii = Uts46::new()
        .to_ascii(nfc.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Verify)
        .map_err(|_| "not a valid domain name".to_string())?;
    let labels_ok = ascii.split('.').all(|label| {
        !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if !labels_ok {
        return Err("not a valid domain name".into());
    }
    Ok(ascii.into_owned())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lower_cases_and_trims() {
        assert_eq!(EmailAddress::parse(" Ann@Example.COM ").unwrap().as_str(), "ann@example.com");
    }

    #[test]
    fn refuses_what_cannot_be_a_username() {
        for bad in [
            "",
            "ann",
            "@example.com",
            "ann@",
            "a b@example.com",
            "ann@exa mple.com",
            "ann\t@example.com",
            "ann@-example.com",
            "ann@example..com",
            "<ann@example.com>",
            "ann@exa_mple.com",
            "ann@example.com.",
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_plus_and_subdomains() {
        assert!(EmailAddress::parse("ann+tag@mail.example.co.uk").is_ok());
        assert!(EmailAddress::parse("ann@localhost").is_ok());
    }

    #[test]
    fn domains_go_through_idna_to_ascii_and_stay_there() {
        for (input, stored) in [
            ("x@İ.com", "x@xn--i-9bb.com"),
            ("ann@Bücher.Example", "ann@xn--bcher-kva.example"),
            ("ann@xn--bcher-kva.example", "ann@xn--bcher-kva.example"),
            // NFD input is the same name as NFC input.
            ("ann@bu\u{0308}cher.example", "ann@xn--bcher-kva.example"),
        ] {
            let parsed = EmailAddress::parse(input).unwrap();
            assert_eq!(parsed.as_str(), stored, "{input:?}");
            assert_eq!(EmailAddress::parse(parsed.as_str()).unwrap(), parsed, "{input:?} does not round-trip");
            assert_eq!(EmailAddress::from_stored(stored).unwrap(), parsed);
        }
    }

    #[test]
    fn local_parts_are_nfc_lower_case_and_round_trip() {
        let nfd = EmailAddress::parse("Jose\u{0301}@example.com").unwrap();
        assert_eq!(nfd.as_str(), "jos\u{e9}@example.com");
        let dotted = EmailAddress::parse("İ@example.com").unwrap();
        assert_eq!(EmailAddress::parse(dotted.as_str()).unwrap(), dotted);
    }

    #[test]
    fn refuses_bidi_overrides_and_invisible_characters() {
        for bad in ["ann\u{202E}moc.elpmaxe@example.com", "an\u{200B}n@example.com", "ann@exam\u{2066}ple.com"] {
            assert!(matches!(EmailAddress::parse(bad), Err(AddressError::Invisible(_))), "{bad:?}");
        }
    }

    #[test]
    fn stored_names_must_already_be_canonical() {
        assert!(EmailAddress::from_stored("ann@example.com").is_ok());
        for bad in ["Ann@example.com", "x@i\u{0307}.com", "ann@bücher.example"] {
            assert!(EmailAddress::from_stored(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn login_names_find_what_was_stored() {
        assert_eq!(login_name(" X@İ.COM"), "x@xn--i-9bb.com");
        assert_eq!(login_name("Ann@Example.com"), "ann@example.com");
        assert_eq!(login_name(" NotAnAddress "), "notanaddress");
    }

    #[test]
    fn domain_is_the_ascii_part_after_the_last_at() {
        assert_eq!(EmailAddress::parse("a@Bücher.example").unwrap().domain(), "xn--bcher-kva.example");
    }
}
