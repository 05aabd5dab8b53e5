//! `/v1/api-keys`: list (`view`), create, edit, change and delete (`manage`). Every write is
//! the store function the CLI calls; this file only translates JSON.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;
use tracing::info;

use super::body::{ItemId, JsonBody};
use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use super::views::{ApiKeyOut, Removed};
use crate::model::{Permission, PermissionSet};
use crate::restriction::AccessRestriction;
use crate::store::{ApiKeyEdit, NewApiKey};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateApiKey {
    pub name: Option<String>,
    /// Absent: all permissions ("full access"), as in the CLI.
    pub permissions: Option<Vec<String>>,
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
    let keys = state.store.run(move |s| s.api_keys(&email)).await?;
    Ok(Json(keys.iter().map(|k| ApiKeyOut::new(k, None)).collect()))
}

pub async fn create(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    JsonBody(req): JsonBody<CreateApiKey>,
) -> Result<(StatusCode, Json<ApiKeyOut>), ApiError> {
    let email = account_address(&caller.grant.account)?;
    let new = NewApiKey {
        name: req.name.unwrap_or_else(|| "API key".into()),
        permissions: req.permissions.as_deref().map(permissions).transpose()?.unwrap_or_else(PermissionSet::all),
        allow: restriction(req.allow.as_deref().unwrap_or_default())?,
    };
    let params = state.config().auth.hash_params();
    let (key, secret) = state.store.run(move |s| s.create_api_key(&email, new, &params)).await?;
    log_write("apikey_create", &caller.grant.account, key.id);
    Ok((StatusCode::CREATED, Json(ApiKeyOut::new(&key, Some(&secret)))))
}

pub async fn edit(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
    JsonBody(req): JsonBody<EditApiKey>,
) -> Result<Json<ApiKeyOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let edit = ApiKeyEdit {
        name: req.name,
        permissions: req.permissions.as_deref().map(permissions).transpose()?,
        allow: req.allow.as_deref().map(restriction).transpose()?,
    };
    if caller.key_id() == Some(id) && edit.permissions.is_some_and(|p| !p.contains(Permission::Manage)) {
        return Err(ApiError::conflict("an API key cannot remove its own manage permission"));
    }
    let key = state.store.run(move |s| s.edit_api_key(&email, id, edit)).await?;
    log_write("apikey_edit", &caller.grant.account, id);
    Ok(Json(ApiKeyOut::new(&key, None)))
}

pub async fn change(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    ItemId(id): ItemId,
) -> Result<Json<ApiKeyOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let params = state.config().auth.hash_params();
    let (key, secret) = state.store.run(move |s| s.change_api_key(&email, id, &params)).await?;
    log_write("apikey_change", &caller.grant.account, id);
    Ok(Json(ApiKeyOut::new(&key, Some(&secret))))
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
