//! Importing users from another SASL server's password file (Dovecot's passwd-file), so that an
//! operator switches without re-issuing a single password.
//!
//! Three steps, two of them without I/O: [`passwd_file`] reads the lines, [`plan`] decides per
//! user what to do (the address, the account, the weak-scheme rule, a user named twice), and
//! the store writes what the plan allows in one transaction (`Store::import_smtp_credentials`),
//! which holds the limits and the system-wide uniqueness of usernames.

pub mod passwd_file;

use std::collections::HashMap;

use crate::address::EmailAddress;
use crate::legacy_hash::{Scheme, Strength};
use passwd_file::{Entry, LineError, Password};

/// What the operator asked for.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// One account for every user; `None`: an account per user address.
    pub account: Option<EmailAddress>,
    /// Import weak schemes (flagged for rehash at the first login) instead of refusing them.
    pub allow_weak: bool,
}

/// A user the plan lets through to the store.
#[derive(Debug, Clone)]
pub struct Planned {
    pub line: usize,
    pub username: EmailAddress,
    pub account: EmailAddress,
    /// The account is created if missing (an account per user address).
    pub create_account: bool,
    pub password: Password,
}

impl Planned {
    /// The scheme the hash is kept in until the first login; `None` for a plaintext (hashed
    /// with argon2id at import).
    pub fn scheme(&self) -> Option<Scheme> {
        match &self.password {
            Password::Hash(h) => Some(h.scheme),
            Password::Plain(_) => None,
        }
    }
}

/// A user (or line) refused before the store is asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub line: usize,
    pub user: Option<String>,
    pub reason: String,
}

/// Decides, per parsed line, what the import does with it.
pub fn plan(lines: Vec<Result<Entry, LineError>>, options: &ImportOptions) -> Vec<Result<Planned, Refused>> {
    let mut first_line: HashMap<String, usize> = HashMap::new();
    lines
        .into_iter()
        .map(|line| {
            let entry = line.map_err(|e| Refused { line: e.line, user: e.user, reason: e.reason.to_string() })?;
            let refuse = |reason: String| Refused { line: entry.line, user: Some(entry.user.clone()), reason };
            let username =
                EmailAddress::parse(&entry.user).map_err(|e| refuse(format!("not an email address: {e}")))?;
            if let Some(first) = first_line.get(&username.as_str().to_ascii_lowercase()) {
                return Err(refuse(format!("named again (first on line {first})")));
            }
            first_line.insert(username.as_str().to_ascii_lowercase(), entry.line);
            match &entry.password {
                Password::Hash(h) if h.scheme.strength() == Strength::Weak && !options.allow_weak => {
                    return Err(refuse(format!("weak password scheme {} (--allow-weak imports it)", h.scheme)));
                }
                Password::Plain(secret) if secret.looks_like_api_key() => {
                    // Logins look such a secret up among the account's API keys, never here.
                    return Err(refuse("the password has the form of an API key and could never log in".into()));
                }
                _ => {}
            }
            let (account, create_account) = match &options.account {
                Some(account) => (account.clone(), false),
                None => (username.clone(), true),
            };
            Ok(Planned { line: entry.line, username, account, create_account, password: entry.password })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::passwd_file::{DefaultScheme, parse};
    use super::*;

    const MAX_KIB: u32 = 1024 * 1024;

    fn planned(text: &str, options: &ImportOptions) -> Vec<Result<Planned, Refused>> {
        plan(parse(text.as_bytes(), &DefaultScheme::default(), MAX_KIB), options)
    }

    #[test]
    fn weak_schemes_need_allow_weak() {
        let text = "a@example.com:{PLAIN-MD5}3cb4e732631f47e6eb961f34554b7cde\n";
        let refused = planned(text, &ImportOptions::default());
        assert!(matches!(&refused[0], Err(r) if r.reason.contains("weak") && r.line == 1), "{refused:?}");
        let allowed = planned(text, &ImportOptions { allow_weak: true, ..Default::default() });
        assert_eq!(allowed[0].as_ref().map(Planned::scheme).ok(), Some(Some(Scheme::PlainMd5)));
    }

    #[test]
    fn users_are_addresses_named_once_and_get_their_own_account_by_default() {
        let text = "a@example.com:{PLAIN}one\nnot-an-address:{PLAIN}two\nA@Example.com:{PLAIN}three\n";
        let out = planned(text, &ImportOptions::default());
        let first = out[0].as_ref().expect("imported");
        assert_eq!((first.account.as_str(), first.create_account), ("a@example.com", true));
        assert!(matches!(&out[1], Err(r) if r.line == 2 && r.reason.contains("address")));
        assert!(matches!(&out[2], Err(r) if r.line == 3 && r.reason.contains("first on line 1")), "{out:?}");
    }

    #[test]
    fn one_account_for_all_with_account() {
        let account = EmailAddress::parse("team@example.com").unwrap();
        let out = planned("a@example.com:{PLAIN}one\n", &ImportOptions { account: Some(account), allow_weak: false });
        let first = out[0].as_ref().expect("imported");
        assert_eq!((first.account.as_str(), first.create_account), ("team@example.com", false));
    }

    #[test]
    fn an_api_key_shaped_plaintext_is_refused() {
        let key = "A".repeat(crate::secret::API_KEY_LEN);
        let out = planned(&format!("a@example.com:{{PLAIN}}{key}\n"), &ImportOptions::default());
        assert!(matches!(&out[0], Err(r) if r.reason.contains("API key")));
    }
}
