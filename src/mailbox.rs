//! Mailboxes as RFC 5321 §4.1.2 defines them (with RFC 6531's UTF-8): a local part that is a
//! dot-string or one whole quoted string, `@`, and a domain that is a name or an address
//! literal. The one parser for envelope addresses, shared by MAIL, RCPT and the send API. No I/O.
//!
//! # Format
//! ```text
//! Mixed.Case+tag@example.net
//! "with space"@example.net
//! postmaster@[192.0.2.1]
//! postmaster@[IPv6:2001:db8::1]
//! ```
//!
//! The local part is kept exactly as given: only the receiving host may interpret it
//! (§2.4), so `Ann` and `ann` can be two mailboxes. The domain is case-insensitive and is
//! stored with ASCII lower-cased (non-ASCII labels are left as given: lower-casing them can
//! produce text that is no longer a valid name).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// RFC 5321 §4.5.3.1.1.
pub const MAX_LOCAL_PART: usize = 64;
/// RFC 5321 §4.5.3.1.2.
pub const MAX_DOMAIN: usize = 255;
/// RFC 5321 §4.5.3.1.3: a path is at most 256 octets with its angle brackets.
pub const MAX_MAILBOX: usize = 254;
/// RFC 1035 §2.3.4.
const MAX_LABEL: usize = 63;

/// A parsed `local@domain`; [`Mailbox::as_str`] gives it back in a form that parses to itself.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Mailbox {
    text: String,
    /// Byte offset of the `@` that separates local part and domain.
    at: usize,
    literal: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MailboxError {
    #[error("address is empty")]
    Empty,
    #[error("address is longer than {MAX_MAILBOX} octets")]
    TooLong,
    #[error("address has no @ after its local part")]
    NoAt,
    #[error("the local part must be a dot-string or one quoted string of at most {MAX_LOCAL_PART} octets")]
    LocalPart,
    #[error("the domain must be a host name or an address literal such as [192.0.2.1]")]
    Domain,
    #[error("the address literal is not an IPv4 or IPv6 address")]
    AddressLiteral,
}

impl Mailbox {
    pub fn parse(input: &str) -> Result<Self, MailboxError> {
        if input.is_empty() {
            return Err(MailboxError::Empty);
        }
        if input.len() > MAX_MAILBOX {
            return Err(MailboxError::TooLong);
        }
        let local_len = local_part_len(input)?;
        let (local, rest) = input.split_at(local_len);
        let domain = rest.strip_prefix('@').ok_or(MailboxError::NoAt)?;
        if local.is_empty() || local.len() > MAX_LOCAL_PART {
            return Err(MailboxError::LocalPart);
        }
        let literal = parse_domain(domain)?;
        let text = format!("{local}@{}", domain.to_ascii_lowercase());
        Ok(Self { text, at: local.len(), literal })
    }

    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The local part as given (quotes included when it is a quoted string).
    pub fn local_part(&self) -> &str {
        &self.text[..self.at]
    }

    /// The domain, ASCII lower-cased; an address literal keeps its brackets.
    pub fn domain(&self) -> &str {
        &self.text[self.at + 1..]
    }

    /// The address of an address-literal domain (`[192.0.2.1]`, `[IPv6:2001:db8::1]`).
    pub fn literal(&self) -> Option<IpAddr> {
        self.literal
    }

    /// Non-ASCII anywhere: the address needs SMTPUTF8 (RFC 6531).
    pub fn needs_smtputf8(&self) -> bool {
        !self.text.is_ascii()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A domain name (RFC 5321 `Domain`, with U-labels) or an address literal: `None` for a name,
/// the address for a literal. Also used for the domains of a source route.
pub fn parse_domain(domain: &str) -> Result<Option<IpAddr>, MailboxError> {
    if domain.is_empty() || domain.len() > MAX_DOMAIN {
        return Err(MailboxError::Domain);
    }
    if let Some(inner) = domain.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(MailboxError::AddressLiteral)?;
        return address_literal(inner).map(Some).ok_or(MailboxError::AddressLiteral);
    }
    if domain.split('.').all(is_label) { Ok(None) } else { Err(MailboxError::Domain) }
}

/// `IPv4-address-literal` or `"IPv6:" IPv6-addr`. General literals (`tag:content`, §4.1.3)
/// name no address this relay could deliver to, so they are refused.
fn address_literal(inner: &str) -> Option<IpAddr> {
    let ipv6 = inner.get(..5).filter(|tag| tag.eq_ignore_ascii_case("IPv6:")).map(|_| &inner[5..]);
    match ipv6 {
        Some(v6) => v6.parse::<Ipv6Addr>().ok().map(IpAddr::V6),
        // Only the dotted quad: `[127.1]` or `[0x7f.0.0.1]` are not RFC 5321 literals.
        None if inner.split('.').count() == 4 && inner.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            inner.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
        }
        None => None,
    }
}

/// `Let-dig [Ldh-str]` of at most 63 octets; RFC 6531 adds non-ASCII letters and digits.
fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label.len() <= MAX_LABEL
        && !label.starts_with('-')
        && !label.ends_with('-')
        && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()))
}

/// The length of the local part at the start of `s`: a whole quoted string, or a dot-string
/// (which cannot hold `@`, so it ends at the first one).
fn local_part_len(s: &str) -> Result<usize, MailboxError> {
    if let Some(quoted) = s.strip_prefix('"') {
        let mut escaped = false;
        for (i, c) in quoted.char_indices() {
            match c {
                // quoted-pairSMTP: a backslash and one printable ASCII character (§4.1.2).
                _ if escaped => {
                    if !(' '..='~').contains(&c) {
                        return Err(MailboxError::LocalPart);
                    }
                    escaped = false;
                }
                '\\' => escaped = true,
                '"' => return Ok(i + 2),
                _ if !is_qtext(c) => return Err(MailboxError::LocalPart),
                _ => {}
            }
        }
        return Err(MailboxError::LocalPart);
    }
    let local = s.split('@').next().unwrap_or_default();
    if local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(is_atext)) {
        Ok(local.len())
    } else {
        Err(MailboxError::LocalPart)
    }
}

/// RFC 5322 `atext`, plus RFC 6531 `UTF8-non-ascii` (without control or space characters,
/// which would reach headers and logs).
fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || is_utf8_text(c)
}

/// `qtextSMTP`: printable ASCII and space, but not `"` or `\`; plus UTF-8 as above.
fn is_qtext(c: char) -> bool {
    matches!(c, ' '..='~') && c != '"' && c != '\\' || is_utf8_text(c)
}

fn is_utf8_text(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && !c.is_whitespace()
}

#[cfg(test)]
#[path = "mailbox_tests.rs"]
pub(crate) mod tests;
