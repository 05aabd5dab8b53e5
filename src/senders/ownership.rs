//! The ownership rule, pure: how a sender address is normalised, which entries can own it
//! (most specific first), and what that means for one account.
//!
//! ```text
//! User+Tag@EXAMPLE.com  →  user+tag@example.com, then user@example.com, then example.com
//! ```
//! The first *verified* entry among those keys owns the address. A pending entry owns
//! nothing yet (it only reserves its name), so it neither authorizes its own account nor takes
//! an address away from a verified, less specific owner. The null sender `<>` (bounces) is
//! always allowed, as in Postfix.

use super::name::{SenderKind, to_ascii};

/// The separator of an address extension (`user+tag`), Postfix's `recipient_delimiter`.
pub const EXTENSION_DELIMITER: char = '+';

/// A sender as a client gave it, normalised for lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Sender {
    /// `<>` or an empty address: bounces and other automatic replies.
    Null,
    Address(SenderAddress),
}

/// An address with the local part and domain lower-cased and the domain in ASCII, and the
/// lookup keys derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderAddress {
    /// `user+tag@example.com`
    exact: String,
    /// `user@example.com`, when the local part has an extension.
    without_extension: Option<String>,
    /// `example.com`; `None` for an address with no `@`.
    domain: Option<String>,
}

impl Sender {
    /// Normalises what a client sent (`<User+Tag@EXAMPLE.com>`, `user@example.com`, `<>`).
    /// Never fails: an address that cannot be any entry's simply finds no owner.
    pub fn parse(raw: &str) -> Self {
        let trimmed = raw.trim();
        let inner = trimmed.strip_prefix('<').and_then(|s| s.strip_suffix('>')).unwrap_or(trimmed).trim();
        if inner.is_empty() {
            return Self::Null;
        }
        // The form account names and SMTP usernames are stored in (NFC, lower case, ASCII
        // domain), so an account's own address matches however the client spelled it.
        // An ASCII address needs no NFC or IDNA: lower case is its canonical form (the hot path).
        let canonical = if inner.is_ascii() { inner.to_ascii_lowercase() } else { crate::address::login_name(inner) };
        let Some((local, domain)) = canonical.rsplit_once('@') else {
            return Self::Address(SenderAddress { exact: canonical, without_extension: None, domain: None });
        };
        let domain = domain.trim_end_matches('.');
        let domain = if domain.is_ascii() {
            domain.to_ascii_lowercase()
        } else {
            to_ascii(domain).unwrap_or_else(|| domain.to_lowercase())
        };
        let without_extension = match local.split_once(EXTENSION_DELIMITER) {
            Some((base, _)) if !base.is_empty() => Some(format!("{base}@{domain}")),
            _ => None,
        };
        Self::Address(SenderAddress { exact: format!("{local}@{domain}"), without_extension, domain: Some(domain) })
    }
}

impl SenderAddress {
    /// The normalised address: `user+tag@example.com`.
    pub fn as_str(&self) -> &str {
        &self.exact
    }

    /// The entries that could own this address, most specific first: the exact address, the
    /// address without its extension, its domain.
    pub fn lookup_keys(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.exact.as_str()).chain(self.without_extension.as_deref()).chain(self.domain.as_deref())
    }
}

/// What the store holds about one entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EntryState {
    pub account_id: i64,
    pub kind: SenderKind,
    pub verified: bool,
}

/// The entry that decided who owns an address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decisive {
    /// The stored entry: `example.com` or `billing@example.com`.
    pub entry: String,
    pub state: EntryState,
}

/// May an account send as an address? The answer the enforcing front ends act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderCheck {
    /// The null sender `<>`: allowed for everyone.
    NullSender,
    /// The account's verified entry `entry` covers the address.
    Allowed { entry: String },
    /// The account's entry `entry` covers the address but is not verified yet; refuse.
    Pending { entry: String },
    /// No verified entry of this account covers the address (another account owns it, or
    /// nobody does); refuse.
    NotOwned,
}

impl SenderCheck {
    pub fn is_allowed(&self) -> bool {
        matches!(self, Self::NullSender | Self::Allowed { .. })
    }

    /// A fixed snake_case word for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::NullSender => "null_sender",
            Self::Allowed { .. } => "allowed",
            Self::Pending { .. } => "pending",
            Self::NotOwned => "not_owned",
        }
    }
}

/// The verified owner of `address`: the first verified entry among its lookup keys.
pub fn owner<'a>(address: &SenderAddress, entry: impl Fn(&str) -> Option<&'a EntryState>) -> Option<Decisive> {
    address.lookup_keys().find_map(|key| {
        entry(key).filter(|s| s.verified).map(|state| Decisive { entry: key.to_string(), state: *state })
    })
}

/// Whether `account_id` may send as `sender`, given how entries are looked up.
pub fn check<'a>(sender: &Sender, account_id: i64, entry: impl Fn(&str) -> Option<&'a EntryState>) -> SenderCheck {
    let Sender::Address(address) = sender else { return SenderCheck::NullSender };
    let mut pending = None;
    for key in address.lookup_keys() {
        let Some(state) = entry(key) else { continue };
        if state.verified {
            return if state.account_id == account_id {
                SenderCheck::Allowed { entry: key.to_string() }
            } else {
                SenderCheck::NotOwned
            };
        }
        if state.account_id == account_id && pending.is_none() {
            pending = Some(key.to_string());
        }
    }
    match pending {
        Some(entry) => SenderCheck::Pending { entry },
        None => SenderCheck::NotOwned,
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn state(account_id: i64, kind: SenderKind, verified: bool) -> EntryState {
        EntryState { account_id, kind, verified }
    }

    fn table() -> HashMap<&'static str, EntryState> {
        HashMap::from([
            ("example.com", state(1, SenderKind::Domain, true)),
            ("ceo@example.com", state(2, SenderKind::Address, true)),
            ("pending.example", state(1, SenderKind::Domain, false)),
            ("intern@example.com", state(3, SenderKind::Address, false)),
            ("other.example", state(2, SenderKind::Domain, true)),
        ])
    }

    fn check_for(account: i64, raw: &str) -> SenderCheck {
        let t = table();
        check(&Sender::parse(raw), account, |k| t.get(k))
    }

    #[test]
    fn normalises_case_brackets_and_extension() {
        let Sender::Address(a) = Sender::parse("<User+Tag@EXAMPLE.com.>") else { panic!("null") };
        assert_eq!(a.lookup_keys().collect::<Vec<_>>(), ["user+tag@example.com", "user@example.com", "example.com"]);
        let Sender::Address(a) = Sender::parse("ann@Bücher.example") else { panic!("null") };
        assert_eq!(a.lookup_keys().collect::<Vec<_>>(), ["ann@xn--bcher-kva.example", "xn--bcher-kva.example"]);
        // A leading `+` is not an extension.
        let Sender::Address(a) = Sender::parse("+x@example.com") else { panic!("null") };
        assert_eq!(a.lookup_keys().count(), 2);
    }

    #[test]
    fn null_sender_is_always_allowed() {
        for raw in ["<>", "", "  "] {
            assert_eq!(check_for(99, raw), SenderCheck::NullSender, "{raw:?}");
        }
    }

    #[test]
    fn most_specific_verified_entry_decides() {
        assert_eq!(check_for(1, "anyone@example.com"), SenderCheck::Allowed { entry: "example.com".into() });
        assert_eq!(check_for(1, "User+tag@EXAMPLE.com"), SenderCheck::Allowed { entry: "example.com".into() });
        // The exact address belongs to account 2, even under account 1's domain.
        assert_eq!(check_for(1, "ceo@example.com"), SenderCheck::NotOwned);
        assert_eq!(check_for(2, "CEO+x@example.com"), SenderCheck::Allowed { entry: "ceo@example.com".into() });
        assert_eq!(check_for(2, "anyone@example.com"), SenderCheck::NotOwned);
        assert_eq!(check_for(1, "ann@unknown.example"), SenderCheck::NotOwned);
        assert_eq!(check_for(1, "no-domain"), SenderCheck::NotOwned);
    }

    #[test]
    fn pending_entries_authorize_nothing_and_take_nothing_away() {
        assert_eq!(check_for(1, "ann@pending.example"), SenderCheck::Pending { entry: "pending.example".into() });
        assert_eq!(check_for(2, "ann@pending.example"), SenderCheck::NotOwned);
        // Account 3's pending address does not shadow account 1's verified domain.
        assert_eq!(check_for(1, "intern@example.com"), SenderCheck::Allowed { entry: "example.com".into() });
        assert_eq!(check_for(3, "intern@example.com"), SenderCheck::NotOwned);
    }

    #[test]
    fn owner_is_the_first_verified_entry() {
        let t = table();
        let owner_of = |raw: &str| match Sender::parse(raw) {
            Sender::Address(a) => owner(&a, |k| t.get(k)).map(|d| (d.entry, d.state.account_id)),
            Sender::Null => None,
        };
        assert_eq!(owner_of("Ceo+x@Example.com"), Some(("ceo@example.com".into(), 2)));
        assert_eq!(owner_of("intern@example.com"), Some(("example.com".into(), 1)));
        assert_eq!(owner_of("a@pending.example"), None);
        assert_eq!(owner_of("a@nowhere.example"), None);
    }
}
