//! The nouns of the credential model: accounts, API keys, SMTP credentials and permissions.

use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::address::EmailAddress;
use crate::invisible::is_invisible;
use crate::restriction::AccessRestriction;

/// How many API keys, and separately how many SMTP credentials, one account may hold.
pub const MAX_PER_ACCOUNT: usize = 15;

/// The longest name an API key may have, in characters.
pub const MAX_NAME_CHARS: usize = 128;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("name must not be empty")]
    Empty,
    #[error("name is longer than {MAX_NAME_CHARS} characters")]
    TooLong,
    #[error("name must not contain control characters, bidirectional overrides or invisible characters")]
    Invisible,
}

/// An API key's name as it will be stored: trimmed, non-empty, at most [`MAX_NAME_CHARS`]
/// characters, nothing that could rewrite a terminal line or reorder a list.
pub fn key_name(input: &str) -> Result<String, NameError> {
    let name = input.trim();
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.chars().nth(MAX_NAME_CHARS).is_some() {
        return Err(NameError::TooLong);
    }
    if name.chars().any(is_invisible) {
        return Err(NameError::Invisible);
    }
    Ok(name.to_string())
}

/// What an API key may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    /// Use the key as an SMTP password.
    Smtp,
    /// Send mail through the HTTP API.
    Send,
    /// Read the account, its keys and credentials.
    View,
    /// Create, edit, change and remove keys and credentials.
    Manage,
}

impl Permission {
    pub const ALL: [Permission; 4] = [Self::Smtp, Self::Send, Self::View, Self::Manage];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Smtp => "smtp",
            Self::Send => "send",
            Self::View => "view",
            Self::Manage => "manage",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown permission {0:?} (expected smtp, send, view or manage)")]
pub struct UnknownPermission(pub String);

impl FromStr for Permission {
    type Err = UnknownPermission;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| UnknownPermission(s.to_string()))
    }
}

/// A set of [`Permission`]s; the default for a new key is all of them ("full access").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PermissionSet(u8);

impl PermissionSet {
    pub const EMPTY: Self = Self(0);

    pub fn all() -> Self {
        Self::from_iter(Permission::ALL)
    }

    pub fn contains(self, p: Permission) -> bool {
        self.0 & p.bit() != 0
    }

    pub fn insert(&mut self, p: Permission) {
        self.0 |= p.bit();
    }

    pub fn remove(&mut self, p: Permission) {
        self.0 &= !p.bit();
    }

    pub fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The permissions of `self` that `holder` lacks.
    pub fn beyond(self, holder: Self) -> Self {
        Self(self.0 & !holder.0)
    }

    pub fn iter(self) -> impl Iterator<Item = Permission> {
        Permission::ALL.into_iter().filter(move |p| self.contains(*p))
    }

    /// The stored form: `smtp,send,view,manage`.
    pub fn to_db(self) -> String {
        self.iter().map(Permission::as_str).collect::<Vec<_>>().join(",")
    }

    pub fn from_db(s: &str) -> Result<Self, UnknownPermission> {
        s.split(',').filter(|p| !p.is_empty()).map(str::parse).collect()
    }
}

impl FromIterator<Permission> for PermissionSet {
    fn from_iter<I: IntoIterator<Item = Permission>>(iter: I) -> Self {
        let mut set = Self::EMPTY;
        for p in iter {
            set.insert(p);
        }
        set
    }
}

impl Serialize for PermissionSet {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(self.iter())
    }
}

/// An account, named by its e-mail address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    pub id: i64,
    pub email: EmailAddress,
    pub enabled: bool,
    /// Unix seconds.
    pub created_at: i64,
}

/// An API key as stored: never the secret, only its hash and last 5 characters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    pub id: i64,
    pub account_id: i64,
    pub name: String,
    pub permissions: PermissionSet,
    pub allow: AccessRestriction,
    pub last5: String,
    pub hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

/// An SMTP credential as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpCredential {
    pub id: i64,
    pub account_id: i64,
    pub username: EmailAddress,
    pub allow: AccessRestriction,
    pub last5: String,
    pub hash: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl SmtpCredential {
    /// Imported from another server and not logged in with since: its hash is in the imported
    /// scheme and its last 5 characters are not known (`last5` is empty).
    pub fn is_imported(&self) -> bool {
        crate::legacy_hash::is_imported(&self.hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permission_set_round_trips_through_db_form() {
        let set: PermissionSet = [Permission::Manage, Permission::Smtp].into_iter().collect();
        assert_eq!(set.to_db(), "smtp,manage");
        assert_eq!(PermissionSet::from_db("smtp,manage").unwrap(), set);
        assert_eq!(PermissionSet::from_db("").unwrap(), PermissionSet::EMPTY);
    }

    #[test]
    fn key_names_are_bounded_and_visible() {
        assert_eq!(key_name("  ci  ").unwrap(), "ci");
        assert_eq!(key_name(&"é".repeat(MAX_NAME_CHARS)).unwrap().chars().count(), MAX_NAME_CHARS);
        assert_eq!(key_name(&"a".repeat(MAX_NAME_CHARS + 1)), Err(NameError::TooLong));
        assert_eq!(key_name(" "), Err(NameError::Empty));
        for bad in ["a\x1b[2Jb", "a\nb", "a\tb", "x\u{202E}y", "x\u{200B}y", "\u{9b}31m"] {
            assert_eq!(key_name(bad), Err(NameError::Invisible), "{bad:?}");
        }
    }

    #[test]
    fn unknown_permission_is_refused() {
        assert!("admin".parse::<Permission>().is_err());
        assert_eq!("SMTP".parse::<Permission>().unwrap(), Permission::Smtp);
    }
}
