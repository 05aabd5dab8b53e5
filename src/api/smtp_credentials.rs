//! `/v1/smtp-credentials`: list (`view`), create, edit, change and delete (`manage`), through
//! the same store functions as the CLI, held to what the calling key may give (`authority`)
//! and to the account's own names.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::api_keys::{log_write, restriction};
use super::authority::Authority;
use super::body::{ItemId, SettingsBody};
use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use super::views::{Removed, SmtpCredentialOut, WithSecret};
use crate::address::EmailAddress;
use crate::senders::Directory;
use crate::store::{NewSmtpCredential, SmtpCredentialEdit};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateSmtpCredential {
    /// Absent: the account's own address. Otherwise an address in the account's domain.
    pub username: Option<String>,
    /// Absent: the calling key's restriction.
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
    SettingsBody(req): SettingsBody<CreateSmtpCredential>,
) -> Result<WithSecret<SmtpCredentialOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let authority = Authority::of(&caller.grant);
    let username = req
        .username
        .as_deref()
        .map(|u| EmailAddress::parse(u).map_err(|e| ApiError::invalid(format!("invalid address: {e}"))))
        .transpose()?;
    let allow = req.allow.as_deref().map(restriction).transpose()?.unwrap_or_else(|| authority.reach().clone());
    if let Some(username) = &username {
        may_use_username(&email, username, &state.senders, caller.grant.account_id)?;
    }
    authority.may_give_reach(&allow)?;
    let new = NewSmtpCredential { username, allow };
    let params = state.config().auth.hash_params();
    let (cred, secret) = state.store.run(move |s| s.create_smtp_credential(&email, new, &params)).await?;
    log_write("smtp_create", &caller.grant.account, cred.id);
    Ok(WithSecret(StatusCode::CREATED, SmtpCredentialOut::new(&cred, Some(&secret))))
}

/// An account owner may name credentials only inside what the account already is: its own
/// address, its own domain, or an address its verified senders cover (a domain it proved by
/// DNS, an address the operator gave it). Anything else would squat a name that belongs to
/// another tenant (`postmaster@victim.example` blocks `relaykey account add
/// postmaster@victim.example`); only the operator, through the CLI, may hand out other names.
fn may_use_username(
    account: &EmailAddress,
    username: &EmailAddress,
    senders: &Directory,
    account_id: i64,
) -> Result<(), ApiError> {
    if username == account || username.domain() == account.domain() {
        return Ok(());
    }
    match senders.may_send(account_id, username.as_str()) {
        Ok(check) if check.is_allowed() => Ok(()),
        Ok(_) => Err(ApiError::forbidden(format!(
            "an SMTP username must be the account's address, an address in its domain {} or in one of its verified \
             senders (/v1/senders; the operator can set others)",
            account.domain()
        ))),
        Err(e) => {
            tracing::error!(error = %e, "api: sender directory unavailable");
            Err(ApiError::unavailable("the sender directory is temporarily unavailable; retry later"))
        }
    }
}

pub async fn edit(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
    SettingsBody(req): SettingsBody<EditSmtpCredential>,
) -> Result<Json<SmtpCredentialOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let edit = SmtpCredentialEdit { allow: req.allow.as_deref().map(restriction).transpose()? };
    if let Some(allow) = &edit.allow {
        Authority::of(&caller.grant).may_give_reach(allow)?;
    }
    let cred = state.store.run(move |s| s.edit_smtp_credential(&email, id, edit)).await?;
    log_write("smtp_edit", &caller.grant.account, id);
    Ok(Json(SmtpCredentialOut::new(&cred, None)))
}

pub async fn change(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<WithSecret<SmtpCredentialOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let authority = Authority::of(&caller.grant);
    let params = state.config().auth.hash_params();
    // Read and rotate under one hold of the store, so the restriction checked is the one rotated.
    let (cred, secret) = state
        .store
        .run(move |s| {
            let current = s.smtp_credential(&email, id)?;
            if let Err(refusal) = authority.may_change_secret_of(&current.allow) {
                return Ok(Err(refusal));
            }
            s.change_smtp_credential(&email, id, &params).map(Ok)
        })
        .await??;
    log_write("smtp_change", &caller.grant.account, id);
    Ok(WithSecret(StatusCode::OK, SmtpCredentialOut::new(&cred, Some(&secret))))
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
