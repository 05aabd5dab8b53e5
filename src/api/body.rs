//! Request extractors that answer in the API's error shape: a JSON body read under a size
//! limit and a time limit, and a numeric id from the path.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::header::CONTENT_LENGTH;
use axum::http::request::Parts;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::error::ApiError;
use super::state::ApiState;

/// A JSON request body. An empty body reads as `{}`, so that calls whose fields are all
/// optional (`POST .../change`) need none.
pub struct JsonBody<T>(pub T);

/// A JSON body of the settings endpoints (keys and credentials): its largest valid form (a name
/// of 128 characters, 64 `allow` entries) is a few kilobytes, so anything near the message-sized
/// limit of [`JsonBody`] is refused before it is read.
pub struct SettingsBody<T>(pub T);

/// The body limit of [`SettingsBody`].
pub const SETTINGS_BODY_LIMIT: usize = 16 * 1024;

impl<T: DeserializeOwned> FromRequest<Arc<ApiState>> for JsonBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let limit = state.config().api.max_body_size;
        read_json(req, state, limit).await.map(JsonBody)
    }
}

impl<T: DeserializeOwned> FromRequest<Arc<ApiState>> for SettingsBody<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &Arc<ApiState>) -> Result<Self, ApiError> {
        let limit = state.config().api.max_body_size.min(SETTINGS_BODY_LIMIT);
        read_json(req, state, limit).await.map(SettingsBody)
    }
}

async fn read_json<T: DeserializeOwned>(req: Request, state: &ApiState, limit: usize) -> Result<T, ApiError> {
    let timeout = state.config().api.body_timeout;
    let declared = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit as u64) {
        return Err(ApiError::body_too_large(limit));
    }
    // The time limit covers the whole body, so a client trickling bytes is cut as surely as
    // one that stops.
    let collected = tokio::time::timeout(timeout, Limited::new(req.into_body(), limit).collect());
    let bytes = match collected.await {
        Err(_) => return Err(ApiError::body_timeout()),
        Ok(Err(e)) if e.downcast_ref::<LengthLimitError>().is_some() => {
            return Err(ApiError::body_too_large(limit));
        }
        Ok(Err(_)) => return Err(ApiError::invalid("could not read the request body")),
        Ok(Ok(c)) => c.to_bytes(),
    };
    let text: &[u8] = if bytes.iter().all(u8::is_ascii_whitespace) { b"{}" } else { &bytes };
    serde_json::from_slice(text).map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
}

/// The `{id}` of a key or credential.
pub struct ItemId(pub i64);

impl<S: Send + Sync> FromRequestParts<S> for ItemId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let Path(raw) =
            Path::<String>::from_request_parts(parts, state).await.map_err(|_| ApiError::invalid("missing id"))?;
        raw.parse::<i64>()
            .map(ItemId)
            .map_err(|_| ApiError::invalid(format!("invalid id {raw:?}: expected an integer")))
    }
}
