//! The one error shape of the API, `{"error": {"code", "message"}}`, and how store refusals map
//! onto HTTP statuses. Refusal messages are the store's own texts, the ones the CLI prints.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::message_limits::RetryAfter;
use crate::store::StoreError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds for a `Retry-After` header (a limit that frees up at a known time).
    pub retry_after: Option<u64>,
}

#[derive(Serialize)]
struct Body<'a> {
    error: Inner<'a>,
}

#[derive(Serialize)]
struct Inner<'a> {
    code: &'a str,
    message: &'a str,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// Unknown, wrong, removed and missing keys all get exactly this, so a client cannot tell
    /// them apart.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", "a valid API key is required (Authorization: Bearer KEY)")
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_request", message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "conflict", message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn too_many_requests(limit: u32) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            format!("too many concurrent requests from this address (limit {limit})"),
        )
    }

    /// The account's message limit for a window is used up (the same counters as the relay
    /// and the policy server).
    pub fn message_limit(r: RetryAfter) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "message_limit",
            format!("message limit reached ({} per {}); retry in {} s", r.limit, r.window.as_str(), r.seconds()),
        );
        e.retry_after = Some(r.seconds());
        e
    }

    pub fn body_too_large(limit: usize) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", format!("request body exceeds {limit} bytes"))
    }

    pub fn body_timeout() -> Self {
        Self::new(StatusCode::REQUEST_TIMEOUT, "body_timeout", "request body did not arrive in time")
    }

    /// Our fault, not the client's; the detail goes to the log only.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", message)
    }

    pub fn internal() -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "internal error; see the server log")
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        let message = e.to_string();
        match e {
            StoreError::UnknownApiKey { .. }
            | StoreError::UnknownSmtpCredential { .. }
            | StoreError::UnknownSender { .. } => Self::not_found(message),
            StoreError::SenderTaken(_) => Self::new(StatusCode::CONFLICT, "sender_taken", message),
            StoreError::SenderExists { .. } => Self::new(StatusCode::CONFLICT, "sender_exists", message),
            // The caller's own account vanished between authentication and the write.
            StoreError::UnknownAccount(_) => Self::unauthorized(),
            StoreError::LimitReached { .. } => Self::new(StatusCode::CONFLICT, "limit_reached", message),
            StoreError::UsernameTaken(_) => Self::new(StatusCode::CONFLICT, "username_taken", message),
            StoreError::AccountExists(_) => Self::conflict(message),
            StoreError::Name(_) | StoreError::NoPermission => Self::invalid(message),
            e if e.is_temporary() => {
                tracing::error!(error = %e, "api: store error");
                Self::unavailable("the store is temporarily unavailable; retry later")
            }
            e => {
                tracing::error!(error = %e, "api: store error");
                Self::internal()
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Body { error: Inner { code: self.code, message: &self.message } };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        if let Some(seconds) = self.retry_after {
            response.headers_mut().insert("retry-after", axum::http::HeaderValue::from(seconds));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_refusals_keep_their_text_and_get_a_status() {
        let e = ApiError::from(StoreError::LimitReached { account: "a@b.c".into(), what: "API keys", max: 15 });
        assert_eq!((e.status, e.code), (StatusCode::CONFLICT, "limit_reached"));
        assert_eq!(e.message, "account a@b.c already has 15 API keys (the maximum)");
        let e = ApiError::from(StoreError::UnknownApiKey { account: "a@b.c".into(), id: 9 });
        assert_eq!(e.status, StatusCode::NOT_FOUND);
        assert_eq!(ApiError::from(StoreError::NoPermission).status, StatusCode::BAD_REQUEST);
    }

    #[test]
    fn a_used_up_message_limit_is_429_with_retry_after_in_whole_seconds() {
        use crate::message_limits::RateWindow;
        let r = RetryAfter { window: RateWindow::Hour, limit: 10, after: std::time::Duration::from_millis(90_500) };
        let response = ApiError::message_limit(r).into_response();
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()["retry-after"], "91");
        assert!(ApiError::too_many_requests(20).into_response().headers().get("retry-after").is_none());
    }
}
