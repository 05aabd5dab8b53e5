//! What the CLI prints: JSON views with exactly the documented fields, and plain text tables.
//!
//! Names, addresses and headers come from account owners and SMTP clients, and the operator
//! reads them on a terminal. Everything printed goes through one rule, [`escape`]: a character
//! that could move the cursor, recolour, clear the screen, reorder the line or hide itself
//! (`crate::invisible`) is printed as a visible escape (`\x1b`, `\u{202e}`) instead.

use std::borrow::Cow;
use std::fmt::Write as _;

use serde::Serialize;

use super::table::Table;
use crate::invisible::is_invisible;
use crate::model::{Account, ApiKey, PermissionSet, SmtpCredential};
use crate::secret::{self, API_KEY_LEN, SMTP_PASSWORD_LEN, Secret};
use crate::store::{Listing, UnreadableRow};

/// The one escaping rule for text bound for the operator's terminal.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(is_invisible) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_ascii_control() => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c if is_invisible(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[derive(Serialize)]
pub struct ApiKeyView<'a> {
    pub id: i64,
    pub name: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<&'a str>,
    pub last5: &'a str,
    pub masked: String,
    pub permissions: PermissionSet,
    pub allow: Vec<String>,
}

impl<'a> ApiKeyView<'a> {
    pub fn new(key: &'a ApiKey, secret: Option<&'a Secret>) -> Self {
        Self {
            id: key.id,
            name: &key.name,
            key: secret.map(Secret::expose),
            last5: &key.last5,
            masked: secret::mask(&key.last5, API_KEY_LEN),
            permissions: key.permissions,
            allow: key.allow.to_strings(),
        }
    }
}

#[derive(Serialize)]
pub struct SmtpCredentialView<'a> {
    pub id: i64,
    pub username: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<&'a str>,
    pub last5: &'a str,
    pub masked: String,
    pub allow: Vec<String>,
    /// Imported and not logged in with since: `last5` is empty and `masked` shows nothing.
    /// Present (`true`) only then, so an ordinary credential's object is as it always was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl<'a> SmtpCredentialView<'a> {
    pub fn new(cred: &'a SmtpCredential, secret: Option<&'a Secret>) -> Self {
        let imported = cred.is_imported();
        Self {
            id: cred.id,
            username: cred.username.as_str(),
            password: secret.map(Secret::expose),
            last5: &cred.last5,
            masked: if imported { secret::IMPORTED_MASK.into() } else { secret::mask(&cred.last5, SMTP_PASSWORD_LEN) },
            allow: cred.allow.to_strings(),
            imported,
        }
    }
}

#[derive(Serialize)]
pub struct AccountView<'a> {
    pub id: i64,
    pub email: &'a str,
    pub enabled: bool,
    pub created_at: i64,
    pub api_keys: usize,
    pub smtp_credentials: usize,
}

impl<'a> AccountView<'a> {
    pub fn new(a: &'a Account, (api_keys, smtp_credentials): (usize, usize)) -> Self {
        Self {
            id: a.id,
            email: a.email.as_str(),
            enabled: a.enabled,
            created_at: a.created_at,
            api_keys,
            smtp_credentials,
        }
    }
}

pub fn print_json<T: Serialize + ?Sized>(value: &T) {
    // Serializing these plain structs cannot fail.
    println!("{}", json_text(&serde_json::to_string_pretty(value).unwrap_or_default()));
}

/// What a `list` prints: a warning for each row it skipped, then the rows' views as one JSON
/// array, or as a [`Table`] with `headers` whose cells `cells` makes from each view.
pub fn print_list<'a, T, V: Serialize>(
    listing: &'a Listing<T>,
    view: impl Fn(&'a T) -> V,
    headers: &[&'static str],
    cells: impl Fn(&V) -> Vec<String>,
    json: bool,
) {
    warn_unreadable(&listing.unreadable);
    print_rows(listing.iter().map(view).collect(), headers, cells, json);
}

/// What a list without unreadable rows prints: `views` as one JSON array, or as a [`Table`].
pub fn print_rows<V: Serialize>(
    views: Vec<V>,
    headers: &[&'static str],
    cells: impl Fn(&V) -> Vec<String>,
    json: bool,
) {
    if json {
        print_json(&views);
        return;
    }
    let mut table = Table::new(headers);
    for v in &views {
        table.push(cells(v));
    }
    table.print();
}

/// What a `remove` prints: `{"removed": id}` in JSON, a sentence naming `what` otherwise.
pub fn print_removed(id: i64, what: &str, json: bool) {
    if json {
        print_json(&serde_json::json!({ "removed": id }));
    } else {
        println!("removed {what} {id}");
    }
}

/// serde_json escapes C0 controls but writes DEL, C1 controls (U+009B is a CSI) and bidi
/// overrides raw. They can only occur inside JSON strings, where `\uXXXX` means the same; the
/// line breaks of pretty printing are structure and stay.
fn json_text(json: &str) -> Cow<'_, str> {
    let needs_escape = |c: char| c != '\n' && is_invisible(c);
    if !json.chars().any(needs_escape) {
        return Cow::Borrowed(json);
    }
    let mut out = String::with_capacity(json.len() + 8);
    for c in json.chars() {
        if needs_escape(c) {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                let _ = write!(out, "\\u{unit:04x}");
            }
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Says, on stderr, which rows a list skipped, so that a partial list is never mistaken for a
/// whole one.
pub fn warn_unreadable(rows: &[UnreadableRow]) {
    for row in rows {
        eprintln!("relaykey: warning: skipped unreadable row {} of {}: {}", row.id, row.table, escape(&row.reason));
    }
}

pub fn allow_text(allow: &[String]) -> String {
    if allow.is_empty() { "any".into() } else { allow.join(",") }
}

pub fn permissions_text(p: PermissionSet) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

/// The show-once notice printed under a new secret.
pub const SHOW_ONCE: &str = "Store it now: it cannot be shown again.";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_a_terminal_would_act_on_and_nothing_else() {
        assert!(matches!(escape("plain name, é, 你好"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("1\t****\tforged\r\n"), "1\\t****\\tforged\\r\\n");
        assert_eq!(escape("x\u{202e}y\u{9b}z\x7f"), "x\\u{202e}y\\u{9b}z\\x7f");
    }

    #[test]
    fn json_keeps_its_value_without_raw_invisible_characters() {
        let value = serde_json::json!({"name": "a\u{9b}2J\u{202e}b\x1b", "n": 1});
        let text = json_text(&serde_json::to_string_pretty(&value).unwrap()).into_owned();
        assert!(!text.chars().any(|c| c != '\n' && is_invisible(c)), "{text:?}");
        assert_eq!(serde_json::from_str::<serde_json::Value>(&text).unwrap(), value);
    }
}
