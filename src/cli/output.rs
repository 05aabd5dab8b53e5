//! What the CLI prints: JSON views with exactly the documented fields, and plain text tables.

use serde::Serialize;

use crate::model::{Account, ApiKey, PermissionSet, SmtpCredential};
use crate::secret::{self, API_KEY_LEN, SMTP_PASSWORD_LEN, Secret};

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
}

impl<'a> SmtpCredentialView<'a> {
    pub fn new(cred: &'a SmtpCredential, secret: Option<&'a Secret>) -> Self {
        Self {
            id: cred.id,
            username: cred.username.as_str(),
            password: secret.map(Secret::expose),
            last5: &cred.last5,
            masked: secret::mask(&cred.last5, SMTP_PASSWORD_LEN),
            allow: cred.allow.to_strings(),
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
    println!("{}", serde_json::to_string_pretty(value).unwrap_or_default());
}

pub fn allow_text(allow: &[String]) -> String {
    if allow.is_empty() { "any".into() } else { allow.join(",") }
}

pub fn permissions_text(p: PermissionSet) -> String {
    p.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(",")
}

/// The show-once notice printed under a new secret.
pub const SHOW_ONCE: &str = "Store it now: it cannot be shown again.";
