//! `/v1/api-keys`: list (`view`), create, edit, change and delete (`manage`). Every write is
//! the store function the CLI calls; this file translates JSON and holds each write to what the
//! calling key may give (`authority`).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tracing::info;

use super::authority::Authority;
use super::body::{ItemId, SettingsBody};
use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use super::views::{ApiKeyOut, Removed, WithSecret};
use crate::model::{Permission, PermissionSet};
use crate::restriction::AccessRestriction;
use crate::store::{ApiKeyEdit, NewApiKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: Option<String>,
    /// Absent: the calling key's permissions (all of them for a full-access key).
    pub permissions: Option<Vec<String>>,
    /// Absent: the calling key's restriction.
    pub allow: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditApiKey {
    pub name: Option<String>,
    pub permissions: Option<Vec<String>>,
    /// Replaces the restriction; `[]` removes it.
    pub allow: Option<Vec<String>>,
}

fn permissions(items: &[String]) -> Result<PermissionSet, ApiError> {
    items.iter().map(|s| s.parse::<Permission>().map_err(|e| ApiError::invalid(e.to_string()))).collect()
}

pub(super) fn restriction(items: &[String]) -> Result<AccessRestriction, ApiError> {
    AccessRestriction::parse_all(items).map_err(|e| ApiError::invalid(e.to_string()))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::View>,
) -> Result<Json<Vec<ApiKeyOut>>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    // Unreadable rows are skipped (and logged by the store): one bad row hides nothing else.
    let keys = state.store.run(move |s| s.api_keys(&email)).await?;
    Ok(Json(keys.iter().map(|k| ApiKeyOut::new(k, None)).collect()))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    SettingsBody(req): SettingsBody<CreateApiKey>,
) -> Result<WithSecret<ApiKeyOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let authority = Authority::of(&caller.grant);
    let new = NewApiKey {
        name: req.name.unwrap_or_else(|| "API key".into()),
        permissions: req.permissions.as_deref().map(permissions).transpose()?.unwrap_or(authority.permissions()),
        allow: req.allow.as_deref().map(restriction).transpose()?.unwrap_or_else(|| authority.reach().clone()),
    };
    authority.may_give_permissions(new.permissions)?;
    authority.may_give_reach(&new.allow)?;
    let params = state.config().auth.hash_params();
    let (key, secret) = state.store.run(move |s| s.create_api_key(&email, new, &params)).await?;
    log_write("apikey_create", &caller.grant.account, key.id);
    Ok(WithSecret(StatusCode::CREATED, ApiKeyOut::new(&key, Some(&secret))))
}

pub async fn edit(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
    SettingsBody(req): SettingsBody<EditApiKey>,
) -> Result<Json<ApiKeyOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let edit = ApiKeyEdit {
        name: req.name,
        permissions: req.permissions.as_deref().map(permissions).transpose()?,
        allow: req.allow.as_deref().map(restriction).transpose()?,
    };
    let authority = Authority::of(&caller.grant);
    if caller.key_id() == Some(id) {
        if edit.permissions.is_some_and(|p| !p.contains(Permission::Manage)) {
            return Err(ApiError::conflict("an API key cannot remove its own manage permission"));
        }
        authority.may_edit_itself(edit.permissions, edit.allow.as_ref())?;
    }
    if let Some(p) = edit.permissions {
        authority.may_give_permissions(p)?;
    }
    if let Some(allow) = &edit.allow {
        authority.may_give_reach(allow)?;
    }
    let key = state.store.run(move |s| s.edit_api_key(&email, id, edit)).await?;
    log_write("apikey_edit", &caller.grant.account, id);
    Ok(Json(ApiKeyOut::new(&key, None)))
}

pub async fn change(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<WithSecret<ApiKeyOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let authority = Authority::of(&caller.grant);
    let params = state.config().auth.hash_params();
    // Read and rotate under one hold of the store, so the restriction checked is the one rotated.
    let (key, secret) = state
        .store
        .run(move |s| {
            let current = s.api_key(&email, id)?;
            if let Err(refusal) = authority.may_change_secret_of(&current.allow) {
                return Ok(Err(refusal));
            }
            s.change_api_key(&email, id, &params).map(Ok)
        })
        .await??;
    log_write("apikey_change", &caller.grant.account, id);
    Ok(WithSecret(StatusCode::OK, ApiKeyOut::new(&key, Some(&secret))))
}

pub async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<Json<Removed>, ApiError> {
    if caller.key_id() == Some(id) {
        return Err(ApiError::conflict("an API key cannot delete itself"));
    }
    let email = account_address(&caller.grant.account)?;
    state.store.run(move |s| s.remove_api_key(&email, id)).await?;
    log_write("apikey_remove", &caller.grant.account, id);
    Ok(Json(Removed { removed: id }))
}

/// One line per change an account owner made.
pub(super) fn log_write(action: &str, account: &str, id: i64) {
    info!(proto = "api", action, account, id, "manage");
}
