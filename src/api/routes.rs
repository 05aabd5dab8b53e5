//! The URL map of the API listener.

use std::sync::Arc;

use axum::Router;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{delete, get, patch, post};

use super::error::ApiError;
use super::state::ApiState;
use super::{account, api_keys, assets, send, senders, smtp_credentials};

/// The OpenAPI 3.1 description of `/v1`, kept in the repository and served as is.
pub const OPENAPI: &str = include_str!("../../openapi/relaykey.json");

pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/app.js", get(assets::app_js))
        .route("/assets/app.css", get(assets::app_css))
        .route("/assets/icon.svg", get(assets::icon))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/account", get(account::show))
        .route("/v1/api-keys", get(api_keys::list).post(api_keys::create))
        .route("/v1/api-keys/{id}", patch(api_keys::edit).delete(api_keys::remove))
        .route("/v1/api-keys/{id}/change", post(api_keys::change))
        .route("/v1/smtp-credentials", get(smtp_credentials::list).post(smtp_credentials::create))
        .route("/v1/smtp-credentials/{id}", patch(smtp_credentials::edit).delete(smtp_credentials::remove))
        .route("/v1/smtp-credentials/{id}/change", post(smtp_credentials::change))
        .route("/v1/senders", get(senders::list).post(senders::add))
        .route("/v1/senders/{entry}", delete(senders::remove))
        .route("/v1/senders/{entry}/verify", post(senders::verify))
        .route("/v1/senders/{entry}/dns", get(senders::dns))
        .route("/v1/email/send", post(send::send))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI)
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
}
