//! E-mail addresses used as account names and SMTP usernames.

use std::fmt;

/// A syntactically plausible `local@domain` address, stored lower-cased.
///
/// Usernames travel through the Dovecot protocol (tab-separated, no escaping on Postfix's side)
/// and into logs, so control characters, whitespace and the protocol's separators are refused.
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
}

impl EmailAddress {
    pub fn parse(input: &str) -> Result<Self, AddressError> {
        let s = input.trim();
        if s.is_empty() {
            return Err(AddressError::Empty);
        }
        if s.len() > 254 {
            return Err(AddressError::TooLong(s.to_string()));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control() || c == '\u{1}') {
            return Err(AddressError::BadCharacter(s.to_string()));
        }
        let Some((local, domain)) = s.rsplit_once('@') else {
            return Err(AddressError::Malformed(s.to_string()));
        };
        let domain_ok = !domain.is_empty()
            && domain.len() <= 253
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_alphanumeric() || c == '-')
            });
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.contains('@')
            && !local.contains(['<', '>', '(', ')', ',', ';', ':', '\\', '"', '[', ']']);
        if !domain_ok || !local_ok {
            return Err(AddressError::Malformed(s.to_string()));
        }
        Ok(Self(s.to_lowercase()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
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
        ] {
            assert!(EmailAddress::parse(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn accepts_plus_and_subdomains() {
        assert!(EmailAddress::parse("ann+tag@mail.example.co.uk").is_ok());
        assert!(EmailAddress::parse("ann@localhost").is_ok());
    }
}
