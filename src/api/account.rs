//! `GET /v1/account`: the account the calling key belongs to.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;

use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use super::views::AccountOut;
use crate::model::PermissionSet;

pub async fn show(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::View>,
) -> Result<Json<AccountOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let (account, counts) = state
        .store
        .run(move |s| {
            let account = s.account(&email)?;
            let counts = s.account_counts(account.id)?;
            Ok((account, counts))
        })
        .await?;
    let permissions = caller.grant.permissions.unwrap_or(PermissionSet::EMPTY);
    Ok(Json(AccountOut::new(&account, counts, permissions, caller.key_id())))
}
