//! `/v1/senders`: the domains and addresses an account may send as. List, and the DNS records
//! a domain publishes (`view`); add a domain, verify it by DNS, remove an entry (`manage`).
//!
//! Through the API an account adds **domains only**, and pending: the answer carries the TXT
//! record to publish (`_relaykey.<domain> TXT "relaykey-verify=<token>"`). `verify` looks the
//! record up now, through the system resolver (or `[senders] resolver`):
//! - found with the right token: the domain is verified (`200`, `"verified": true`);
//! - no record, or the wrong token: `200` with `"verified": false` and a `check` saying which,
//!   because the request did what it was asked (run the check) and the entry's state is the
//!   answer; the client publishes the record and asks again;
//! - the resolver did not answer: `503 dns_unavailable`, a temporary failure, never
//!   "unverified".

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::body::JsonBody;
use super::caller::{Caller, perm};
use super::error::ApiError;
use super::state::{ApiState, account_address};
use crate::dkim::publish::DomainRecords;
use crate::senders::verify::{self, Verification};
use crate::senders::{SenderEntry, SenderKind, SenderView};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AddSender {
    /// A domain name (`example.com`, `bücher.example`).
    pub domain: String,
}

/// An entry, and after `verify`, what the DNS check found.
#[derive(Debug, Serialize)]
pub struct SenderOut {
    #[serde(flatten)]
    pub view: SenderView,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub check: Option<CheckOut>,
}

/// The outcome of a DNS check that did not verify the domain.
#[derive(Debug, Serialize)]
pub struct CheckOut {
    /// `no_record` or `wrong_token`.
    pub result: &'static str,
    pub message: String,
}

#[derive(Debug, Serialize)]
pub struct SenderRemoved {
    pub removed: String,
}

fn entry_of(raw: &str) -> Result<SenderEntry, ApiError> {
    SenderEntry::parse(raw).map_err(|e| ApiError::invalid(e.to_string()))
}

pub async fn list(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::View>,
) -> Result<Json<Vec<SenderView>>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let senders = state.store.run(move |s| s.senders(&email)).await?;
    Ok(Json(senders.iter().map(|s| s.to_view()).collect()))
}

pub async fn add(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    JsonBody(req): JsonBody<AddSender>,
) -> Result<(StatusCode, Json<SenderView>), ApiError> {
    let email = account_address(&caller.grant.account)?;
    let entry = entry_of(&req.domain)?;
    if entry.kind() != SenderKind::Domain {
        return Err(ApiError::invalid(
            "only domains can be added through the API; ask the operator for a single address",
        ));
    }
    let name = entry.as_string();
    let sender = state.store.run(move |s| s.add_sender(&email, &entry, false)).await?;
    log_sender_write("sender_add", &caller.grant.account, &name);
    Ok((StatusCode::CREATED, Json(sender.to_view())))
}

pub async fn verify(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    Path(raw): Path<String>,
) -> Result<Json<SenderOut>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let entry = entry_of(&raw)?;
    let sender = {
        let (email, entry) = (email.clone(), entry.clone());
        state.store.run(move |s| s.sender(&email, &entry)).await?
    };
    if sender.verified {
        return Ok(Json(SenderOut { view: sender.to_view(), check: None }));
    }
    let (Some(record), Some(token)) = (sender.dns_record(), sender.token.clone()) else {
        return Err(ApiError::conflict("only a pending domain can be verified by DNS; ask the operator"));
    };
    let config = state.config();
    let domain = entry.domain().ascii().to_string();
    let check = match verify::verify_domain(&config.senders, &domain, &token).await {
        Verification::Verified => {
            let verified = state.store.run(move |s| s.mark_sender_verified(&email, &entry)).await?;
            log_sender_write("sender_verify", &caller.grant.account, &domain);
            return Ok(Json(SenderOut { view: verified.to_view(), check: None }));
        }
        Verification::NoRecord => CheckOut {
            result: "no_record",
            message: format!("no TXT record {:?} found at {}", record.value, record.name),
        },
        Verification::WrongToken => CheckOut {
            result: "wrong_token",
            message: format!("the TXT records at {} do not include {:?}", record.name, record.value),
        },
        Verification::TemporaryFailure(e) => {
            tracing::warn!(error = %e, domain = %domain, "api: DNS check failed");
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "dns_unavailable",
                format!("the DNS lookup of {} failed temporarily; retry later", record.name),
            ));
        }
    };
    Ok(Json(SenderOut { view: sender.to_view(), check: Some(check) }))
}

/// What the domain publishes: its verification TXT, its DKIM key records, an SPF suggestion.
pub async fn dns(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::View>,
    Path(raw): Path<String>,
) -> Result<Json<DomainRecords>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let entry = entry_of(&raw)?;
    if entry.kind() != SenderKind::Domain {
        return Err(ApiError::invalid("DNS records are published for a domain; an address has none"));
    }
    let domain = entry.domain().ascii().to_string();
    let (sender, keys) = state
        .store
        .run(move |s| {
            let sender = s.sender(&email, &entry)?;
            Ok((sender, s.dkim_keys(Some(&domain))?))
        })
        .await?;
    Ok(Json(DomainRecords::new(&sender, &keys, &state.config().relay)))
}

pub async fn remove(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Manage>,
    Path(raw): Path<String>,
) -> Result<Json<SenderRemoved>, ApiError> {
    let email = account_address(&caller.grant.account)?;
    let entry = entry_of(&raw)?;
    if entry == SenderEntry::own_address(&email) {
        return Err(ApiError::conflict("the account's own address cannot be removed"));
    }
    let name = entry.as_string();
    state.store.run(move |s| s.remove_sender(&email, &entry)).await?;
    log_sender_write("sender_remove", &caller.grant.account, &name);
    Ok(Json(SenderRemoved { removed: name }))
}

/// One line per change an account owner made to its senders.
fn log_sender_write(action: &str, account: &str, entry: &str) {
    tracing::info!(proto = "api", action, account, entry, "manage");
}
