//! `POST /v1/email/send` (`send`): a message given as fields or as raw MIME, queued durably
//! through the relay's queue; the reply is the queue id. With `[senders] enforce`, the
//! envelope sender and (with `check_header_from`) every `From:` address must be covered by a
//! verified sender entry of the caller's account, or the answer is `403 sender_not_owned`.

use std::sync::Arc;
use std::time::SystemTime;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use super::body::JsonBody;
use super::caller::{Caller, perm};
use super::compose::{Outgoing, Stamp, compose};
use super::enqueue::{Submitter, enqueue};
use super::error::ApiError;
use super::state::ApiState;
use crate::header_from::{self, HeadCapture};
use crate::log_text::LogText;
use crate::queue::EnqueueError;
use crate::senders::Directory;

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
) -> Result<(StatusCode, Json<Queued>), ApiError> {
    let config = state.config();
    if !config.relay.enabled {
        return Err(relay_disabled());
    }
    let Some(outbox) = &state.outbox else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "relay_unavailable",
            "sending is not available: the relay queue is not running (restart after enabling the relay)",
        ));
    };
    let unique = message_unique()?;
    let stamp =
        Stamp { unix_seconds: crate::queue::spool::unix_now(), unique: &unique, hostname: &config.relay.hostname };
    let outgoing = compose(&req, &stamp).map_err(|e| ApiError::invalid(e.to_string()))?;
    if !config.relay.allow_private_destinations
        && let Some(rcpt) = outgoing.rcpt_to.iter().find(|r| r.literal().is_some_and(crate::ip_scope::is_internal))
    {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "private_destination",
            format!(
                "{rcpt}: the address literal is in a loopback or private network ([relay] allow_private_destinations = false)"
            ),
        ));
    }
    if outgoing.rcpt_to.len() > config.relay.max_recipients {
        return Err(ApiError::invalid(format!("too many recipients (at most {})", config.relay.max_recipients)));
    }
    if outgoing.message.len() as u64 > config.relay.max_message_size {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "message_too_large",
            format!("the message exceeds the relay's limit of {} bytes", config.relay.max_message_size),
        ));
    }
    if config.senders.enforce {
        check_senders(&state.senders, caller.grant.account_id, &outgoing, config.senders.check_header_from)?;
    }
    // Counted last, once the message is known to be acceptable: a refused request costs nothing.
    let account = &caller.grant.account;
    match state.message_limits.try_take(account, &config.message_quota(), SystemTime::now()).await {
        Ok(Ok(())) => {}
        Ok(Err(r)) => {
            tracing::info!(proto = "api", decision = "refuse", reason = %format_args!("rate_limit_{}", r.window.as_str()),
                           account = %account, retry_after = r.seconds(), "send");
            return Err(ApiError::message_limit(r));
        }
        Err(e) => {
            tracing::warn!(proto = "api", error = %e, account = %account, "cannot count the message");
            return Err(ApiError::unavailable("the message limits cannot be checked now; retry later"));
        }
    }
    let client_ip = caller.ip.unwrap_or(std::net::Ipv4Addr::LOCALHOST.into());
    let by = Submitter {
        account: &caller.grant.account,
        account_id: caller.grant.account_id,
        client_ip,
        hostname: &config.relay.hostname,
    };
    match enqueue(outbox, outgoing, &by).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(Queued { id }))),
        Err(EnqueueError::DiskFull) => Err(ApiError::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "queue_full",
            "the relay queue has no space left; retry later",
        )),
        Err(_) => Err(ApiError::unavailable("the message could not be queued; retry later")),
    }
}

/// Sender binding: may the account send as the envelope sender and, when `header` is set, as
/// every address of the message's `From:`?
fn check_senders(directory: &Directory, account_id: i64, outgoing: &Outgoing, header: bool) -> Result<(), ApiError> {
    let mut addresses = vec![outgoing.mail_from.to_string()];
    if header {
        let mut head = HeadCapture::new();
        head.feed(&outgoing.message);
        let found = head.head().and_then(header_from::from_addresses).map_err(|e| ApiError::invalid(e.to_string()))?;
        addresses.extend(found.iter().map(|m| m.to_string()));
    }
    for address in &addresses {
        match directory.may_send(account_id, address) {
            Ok(check) if check.is_allowed() => {}
            Ok(check) => {
                tracing::info!(proto = "api", decision = "reject", reason = check.kind(), sender = %LogText::new(address), "sender");
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "sender_not_owned",
                    format!("this account may not send as {address}: add and verify its domain first (/v1/senders)"),
                ));
            }
            Err(e) => {
                tracing::error!(error = %e, "api: sender directory unavailable");
                return Err(ApiError::unavailable("the sender directory is temporarily unavailable; retry later"));
            }
        }
    }
    Ok(())
}

#[derive(Debug, Serialize)]
pub struct Queued {
    /// The relay queue id (`relaykey queue show ID`).
    pub id: String,
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
