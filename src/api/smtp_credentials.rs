//! `/v1/smtp-credentials`: list (`view`), create, edit, change and delete (`manage`), through
//! the same store functions as the CLI.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::api_keys::{log_write, restriction};
use super::body::{ItemId, JsonBody};
use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use super::views::{Removed, SmtpCredentialOut};
use crate::address::EmailAddress;
use crate::store::{NewSmtpCredential, SmtpCredentialEdit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSmtpCredential {
    /// Absent: the account's own address.
    pub username: Option<String>,
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditSmtpCredential {
    /// Replaces the restriction; `[]` removes it.
    pub allow: Option<Vec<String>>,
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::View>,
) -> Result<Json<Vec<SmtpCredentialOut>>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let creds = state.store.run(move |s| s.smtp_credentials(&email)).await?;
    Ok(Json(creds.iter().map(|c| SmtpCredentialOut::new(c, None)).collect()))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    JsonBody(req): JsonBody<CreateSmtpCredential>,
) -> Result<(StatusCode, Json<SmtpCredentialOut>), ApiError> {
    let email = account_address(&caller.grant.account)?;
    let username = req
        .username
        .as_deref()
        .map(|u| EmailAddress::parse(u).map_err(|e| ApiError::invalid(format!("invalid address: {e}"))))
        .transpose()?;
    let new = NewSmtpCredential { username, allow: restriction(req.allow.as_deref().unwrap_or_default())? };
    let params = state.config().auth.hash_params();
    let (cred, secret) = state.store.run(move |s| s.create_smtp_credential(&email, new, &params)).await?;
    log_write("smtp_create", &caller.grant.account, cred.id);
    Ok((StatusCode::CREATED, Json(SmtpCredentialOut::new(&cred, Some(&secret)))))
}

pub async fn edit(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
    JsonBody(req): JsonBody<EditSmtpCredential>,
) -> Result<Json<SmtpCredentialOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let edit = SmtpCredentialEdit { allow: req.allow.as_deref().map(restriction).transpose()? };
    let cred = state.store.run(move |s| s.edit_smtp_credential(&email, id, edit)).await?;
    log_write("smtp_edit", &caller.grant.account, id);
    Ok(Json(SmtpCredentialOut::new(&cred, None)))
}

pub async fn change(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<Json<SmtpCredentialOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let params = state.config().auth.hash_params();
    let (cred, secret) = state.store.run(move |s| s.change_smtp_credential(&email, id, &params)).await?;
    log_write("smtp_change", &caller.grant.account, id);
    Ok(Json(SmtpCredentialOut::new(&cred, Some(&secret))))
}

pub async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<Json<Removed>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    state.store.run(move |s| s.remove_smtp_credential(&email, id)).await?;
    log_write("smtp_remove", &caller.grant.account, id);
    Ok(Json(Removed { removed: id }))
}
