//! The JSON the API returns: the CLI's objects (`id, name, key, last5, masked, permissions,
//! allow`) plus `created_at` and `last_used_at`. A secret appears only in the answer to
//! create and change.

use axum::Json;
use axum::http::StatusCode;
use axum::http::header::CACHE_CONTROL;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::model::{Account, ApiKey, PermissionSet, SmtpCredential};
use crate::secret::{self, API_KEY_LEN, SMTP_PASSWORD_LEN, Secret};

#[derive(Debug, Serialize)]
pub struct ApiKeyOut {
    pub id: i64,
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub last5: String,
    pub masked: String,
    pub permissions: PermissionSet,
    pub allow: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
}

impl ApiKeyOut {
    pub fn new(key: &ApiKey, secret: Option<&Secret>) -> Self {
        Self {
            id: key.id,
            name: key.name.clone(),
            key: secret.map(|s| s.expose().to_string()),
            last5: key.last5.clone(),
            masked: secret::mask(&key.last5, API_KEY_LEN),
            permissions: key.permissions,
            allow: key.allow.to_strings(),
            created_at: key.created_at,
            last_used_at: key.last_used_at,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SmtpCredentialOut {
    pub id: i64,
    pub username: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    pub last5: String,
    pub masked: String,
    pub allow: Vec<String>,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    /// Imported and not logged in with since: `last5` is empty and `masked` shows nothing.
    /// Present (`true`) only then, so an ordinary credential's object is as it always was.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub imported: bool,
}

impl SmtpCredentialOut {
    pub fn new(cred: &SmtpCredential, secret: Option<&Secret>) -> Self {
        let imported = cred.is_imported();
        Self {
            id: cred.id,
            username: cred.username.to_string(),
            password: secret.map(|s| s.expose().to_string()),
            last5: cred.last5.clone(),
            masked: if imported { secret::IMPORTED_MASK.into() } else { secret::mask(&cred.last5, SMTP_PASSWORD_LEN) },
            allow: cred.allow.to_strings(),
            created_at: cred.created_at,
            last_used_at: cred.last_used_at,
            imported,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct AccountOut {
    pub id: i64,
    pub email: String,
    pub enabled: bool,
    pub created_at: i64,
    pub api_keys: usize,
    pub smtp_credentials: usize,
    /// What the calling key may do, so that a page can show only what will work.
    pub permissions: PermissionSet,
    /// The id of the calling key (it cannot delete itself or drop its own `manage`).
    pub key_id: Option<i64>,
}

impl AccountOut {
    pub fn new(
        a: &Account,
        (api_keys, smtp_credentials): (usize, usize),
        permissions: PermissionSet,
        key_id: Option<i64>,
    ) -> Self {
        Self {
            id: a.id,
            email: a.email.to_string(),
            enabled: a.enabled,
            created_at: a.created_at,
            api_keys,
            smtp_credentials,
            permissions,
            key_id,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Removed {
    pub removed: i64,
}

/// An answer that carries a new secret: `Cache-Control: no-store`, so that no cache on the way
/// (a proxy, the browser's back button) keeps a copy (RFC 9111 §5.2.2.5).
pub struct WithSecret<T>(pub StatusCode, pub T);

impl<T: Serialize> IntoResponse for WithSecret<T> {
    fn into_response(self) -> Response {
        (self.0, [(CACHE_CONTROL, "no-store")], Json(self.1)).into_response()
    }
}
