//! `POST /v1/email/send` (`send`): a message given as fields or as raw MIME, queued durably
//! through the relay's queue; the reply is the queue id.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::body::JsonBody;
use super::caller::{Caller, perm};
use super::compose::{Stamp, compose};
use super::error::ApiError;
use super::state::ApiState;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Envelope {
    pub from: String,
    pub to: Vec<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendEmail {
    /// Required with `raw`; otherwise taken from `from`, `to` and `cc`.
    pub envelope: Option<Envelope>,
    pub from: Option<String>,
    #[serde(default)]
    pub to: Vec<String>,
    #[serde(default)]
    pub cc: Vec<String>,
    pub subject: Option<String>,
    pub text: Option<String>,
    pub html: Option<String>,
    /// A complete RFC 5322 message, instead of the fields above.
    pub raw: Option<String>,
}

fn relay_disabled() -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay_disabled",
        "sending is not available: the relay is not enabled on this server ([relay] enabled = false)",
    )
}

pub async fn send(
    State(state): State<Arc<ApiState>>,
    caller: Caller<perm::Send>,
    JsonBody(req): JsonBody<SendEmail>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let config = state.shared.config();
    if !config.relay.enabled {
        return Err(relay_disabled());
    }
    let unique = message_unique()?;
    let stamp = Stamp { unix_seconds: unix_now(), unique: &unique, hostname: &config.relay.hostname };
    let outgoing = compose(&req, &stamp).map_err(|e| ApiError::invalid(e.to_string()))?;
    let _ = (&caller.grant, outgoing);
    Err(ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "relay_unavailable",
        "sending is not available: this build has no relay queue",
    ))
}

/// The random part of a Message-ID.
fn message_unique() -> Result<String, ApiError> {
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes).map_err(|e| {
        tracing::error!(error = %e, "api: no randomness for a Message-ID");
        ApiError::internal()
    })?;
    Ok(hex::encode(bytes))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}
