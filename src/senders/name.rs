//! Sender entries as an operator or an account types them: a domain (`example.com`) or one
//! address (`billing@example.org`), normalised to the one form they are stored and compared in.
//!
//! Domains go through IDNA (UTS #46) to ASCII, so `Bücher.example` and `xn--bcher-kva.example`
//! are the same entry; the Unicode form is kept alongside for display. `crate::address` does
//! the same for account names, and the local part of an address entry takes its form from
//! there (NFC, lower case); the domain check stays here because a sender entry also refuses
//! what an account name may be (a bare TLD such as `localhost`, an IP) and says which rule
//! was broken.

use std::fmt;

use idna::uts46::{AsciiDenyList, DnsLength, Hyphens, Uts46};

/// The longest address (RFC 5321 §4.5.3.1.3 path, less the brackets).
const MAX_ADDRESS: usize = 254;
/// RFC 5321 §4.5.3.1.1.
const MAX_LOCAL: usize = 64;

/// Characters a local part may not hold in an entry: they would need quoting on the wire, or
/// separate values in Postfix's lookup tables (`,`) and the protocols' fields.
const LOCAL_FORBIDDEN: &[char] = &['<', '>', '(', ')', ',', ';', ':', '\\', '"', '[', ']', '@'];

/// What kind of entry: every address in a domain, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SenderKind {
    Domain,
    Address,
}

impl SenderKind {
    /// The stored and JSON spelling: `domain` or `address`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domain => "domain",
            Self::Address => "address",
        }
    }

    pub fn from_db(s: &str) -> Option<Self> {
        match s {
            "domain" => Some(Self::Domain),
            "address" => Some(Self::Address),
            _ => None,
        }
    }
}

impl fmt::Display for SenderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A domain name in ASCII (A-labels, lower case) with its Unicode form for display.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain {
    ascii: String,
    unicode: String,
}

impl Domain {
    /// The stored, compared form: `xn--bcher-kva.example`.
    pub fn ascii(&self) -> &str {
        &self.ascii
    }

    /// The display form: `bücher.example` (equal to [`Domain::ascii`] for an ASCII name).
    pub fn unicode(&self) -> &str {
        &self.unicode
    }
}

/// A sender entry in canonical form.
///
/// ```text
/// example.com            Domain: every address @example.com
/// billing@example.org    Address: that address only (local part lower-cased)
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum SenderEntry {
    Domain(Domain),
    Address { local: String, domain: Domain },
}

/// Why a sender entry was refused; each message is one line naming the input.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SenderNameError {
    #[error("sender is empty")]
    Empty,
    #[error("sender {0:?} is longer than 254 characters")]
    TooLong(String),
    #[error("sender {0:?} contains a space or control character")]
    BadCharacter(String),
    #[error("sender {0:?} is an address with no domain")]
    NoDomain(String),
    #[error("sender {0:?} has an invalid local part")]
    BadLocalPart(String),
    #[error("sender {0:?} is an IP literal; give a domain name")]
    IpLiteral(String),
    #[error("sender {0:?} is a bare top-level domain; give a name with a dot")]
    BareTld(String),
    #[error("sender {0:?} is not a valid domain name")]
    InvalidDomain(String),
}

impl SenderEntry {
    /// Parses what an operator or an account typed: `example.com`, `Bücher.Example`,
    /// `Billing@Example.org`.
    pub fn parse(input: &str) -> Result<Self, SenderNameError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(SenderNameError::Empty);
        }
        // Bounds the IDNA work; the exact limit is checked on the result.
        if s.len() > 4 * MAX_ADDRESS {
            return Err(SenderNameError::TooLong(s.chars().take(MAX_ADDRESS).collect()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(SenderNameError::BadCharacter(s.to_string()));
        }
        let entry = match s.rsplit_once('@') {
            None => Self::Domain(parse_domain(s, s)?),
            Some((_, "")) => return Err(SenderNameError::NoDomain(s.to_string())),
            Some((local, domain)) => {
                let local = local.to_lowercase();
                if local.is_empty() || local.len() > MAX_LOCAL || local.contains(LOCAL_FORBIDDEN) {
                    return Err(SenderNameError::BadLocalPart(s.to_string()));
                }
                let domain = parse_domain(domain, s)?;
                // NFC as for account names (`crate::address`), so that an entry and an account's
                // own address spelled alike are the same name.
                let local = crate::address::EmailAddress::parse(&format!("{local}@{}", domain.ascii))
                    .ok()
                    .and_then(|a| a.as_str().rsplit_once('@').map(|(l, _)| l.to_string()))
                    .unwrap_or(local);
                Self::Address { local, domain }
            }
        };
        if entry.as_string().len() > MAX_ADDRESS {
            return Err(SenderNameError::TooLong(s.to_string()));
        }
        Ok(entry)
    }

    /// The entry for an account's own address. Account names may use a single-label domain
    /// (`ann@localhost`) that [`SenderEntry::parse`] refuses for a new entry; the account's
    /// own address is bound to it whatever its form.
    pub fn own_address(address: &crate::address::EmailAddress) -> Self {
        let (local, domain) = address.as_str().rsplit_once('@').unwrap_or(("", address.as_str()));
        let domain = match to_ascii(domain) {
            Some(ascii) => Domain { unicode: to_unicode(&ascii), ascii },
            None => Domain { ascii: domain.to_lowercase(), unicode: domain.to_lowercase() },
        };
        Self::Address { local: local.to_lowercase(), domain }
    }

    pub fn kind(&self) -> SenderKind {
        match self {
            Self::Domain(_) => SenderKind::Domain,
            Self::Address { .. } => SenderKind::Address,
        }
    }

    /// The domain of the entry (the entry itself for a domain).
    pub fn domain(&self) -> &Domain {
        match self {
            Self::Domain(d) | Self::Address { domain: d, .. } => d,
        }
    }

    /// The stored, compared form: `xn--bcher-kva.example`, `billing@example.org`.
    pub fn as_string(&self) -> String {
        match self {
            Self::Domain(d) => d.ascii.clone(),
            Self::Address { local, domain } => format!("{local}@{}", domain.ascii),
        }
    }

    /// The display form: `bücher.example`, `billing@bücher.example`.
    pub fn unicode(&self) -> String {
        match self {
            Self::Domain(d) => d.unicode.clone(),
            Self::Address { local, domain } => format!("{local}@{}", domain.unicode),
        }
    }
}

impl fmt::Display for SenderEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.as_string())
    }
}

/// A domain an entry may name: valid under IDNA with the STD3 rules (letters, digits,
/// hyphens), at least two labels, not an IP address.
fn parse_domain(domain: &str, input: &str) -> Result<Domain, SenderNameError> {
    let bare = domain.trim_end_matches('.');
    if domain.starts_with('[') || bare.parse::<std::net::IpAddr>().is_ok() {
        return Err(SenderNameError::IpLiteral(input.to_string()));
    }
    let ascii = to_ascii(domain).ok_or_else(|| SenderNameError::InvalidDomain(input.to_string()))?;
    let Some((_, tld)) = ascii.rsplit_once('.') else {
        return Err(SenderNameError::BareTld(input.to_string()));
    };
    // A numeric last label is an IPv4 address in another spelling (`10.1`, `127.0.0.01`);
    // no top-level domain is all digits.
    if tld.bytes().all(|b| b.is_ascii_digit()) {
        return Err(SenderNameError::IpLiteral(input.to_string()));
    }
    Ok(Domain { unicode: to_unicode(&ascii), ascii })
}

/// UTS #46 to ASCII with the STD3 rules and DNS lengths: what a resolver and Postfix accept.
/// `None` for a name that is not a valid host name.
pub(crate) fn to_ascii(domain: &str) -> Option<String> {
    let ascii = Uts46::new()
        .to_ascii(domain.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast, DnsLength::Verify)
        .ok()?;
    let labels_ok = ascii.split('.').all(|label| {
        !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    labels_ok.then(|| ascii.into_owned())
}

fn to_unicode(ascii: &str) -> String {
    let (unicode, result) = Uts46::new().to_unicode(ascii.as_bytes(), AsciiDenyList::STD3, Hyphens::CheckFirstLast);
    if result.is_ok() { unicode.into_owned() } else { ascii.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_stored_in_ascii_with_the_unicode_form_alongside() {
        let entry = SenderEntry::parse("Bücher.Example").unwrap();
        assert_eq!(entry.kind(), SenderKind::Domain);
        assert_eq!(entry.as_string(), "xn--bcher-kva.example");
        assert_eq!(entry.unicode(), "bücher.example");
        assert_eq!(SenderEntry::parse("xn--bcher-kva.example").unwrap(), entry);
    }

    #[test]
    fn addresses_are_lower_cased_with_an_ascii_domain() {
        let entry = SenderEntry::parse(" Billing@Bücher.example ").unwrap();
        assert_eq!(entry.kind(), SenderKind::Address);
        assert_eq!(entry.as_string(), "billing@xn--bcher-kva.example");
        assert_eq!(entry.unicode(), "billing@bücher.example");
        assert_eq!(entry.domain().ascii(), "xn--bcher-kva.example");
    }

    #[test]
    fn refuses_each_bad_name_with_its_reason() {
        for (input, want) in [
            ("", SenderNameError::Empty),
            ("   ", SenderNameError::Empty),
            ("billing@", SenderNameError::NoDomain("billing@".into())),
            ("@example.com", SenderNameError::BadLocalPart("@example.com".into())),
            ("a,b@example.com", SenderNameError::BadLocalPart("a,b@example.com".into())),
            ("com", SenderNameError::BareTld("com".into())),
            ("ann@localhost", SenderNameError::BareTld("ann@localhost".into())),
            ("192.0.2.1", SenderNameError::IpLiteral("192.0.2.1".into())),
            ("ann@[192.0.2.1]", SenderNameError::IpLiteral("ann@[192.0.2.1]".into())),
            ("2001:db8::1", SenderNameError::IpLiteral("2001:db8::1".into())),
            ("10.1", SenderNameError::IpLiteral("10.1".into())),
            ("exa_mple.com", SenderNameError::InvalidDomain("exa_mple.com".into())),
            ("-example.com", SenderNameError::InvalidDomain("-example.com".into())),
            ("example..com", SenderNameError::InvalidDomain("example..com".into())),
            ("ann@exa mple.com", SenderNameError::BadCharacter("ann@exa mple.com".into())),
        ] {
            assert_eq!(SenderEntry::parse(input), Err(want), "{input:?}");
        }
        let long = format!("{}.com", "a".repeat(300));
        assert!(matches!(SenderEntry::parse(&long), Err(SenderNameError::InvalidDomain(_))));
        let long_local = format!("{}@example.com", "a".repeat(65));
        assert!(matches!(SenderEntry::parse(&long_local), Err(SenderNameError::BadLocalPart(_))));
    }

    #[test]
    fn an_accounts_own_address_is_bound_even_on_a_single_label_domain() {
        let own = crate::address::EmailAddress::parse("ann@localhost").unwrap();
        let entry = SenderEntry::own_address(&own);
        assert_eq!((entry.kind(), entry.as_string()), (SenderKind::Address, "ann@localhost".to_string()));
    }

    #[test]
    fn messages_are_one_line_naming_the_input() {
        let msg = SenderEntry::parse("ann@localhost").unwrap_err().to_string();
        assert_eq!(msg, "sender \"ann@localhost\" is a bare top-level domain; give a name with a dot");
    }
}
