//! The operator listener: `/metrics` (Prometheus text) and `/healthz`, with no authentication,
//! which is why the config accepts only a loopback address for it.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use crate::auth::Authenticator;
use crate::metrics::{registry, set_queue};
use crate::queue::Spool;

#[derive(Clone)]
struct Operator {
    /// Asked by `/healthz` whether the store answers.
    authenticator: Arc<Authenticator>,
    /// The relay's spool, measured at each scrape (queue size and age).
    spool: Option<Spool>,
}

fn router(authenticator: Arc<Authenticator>, spool: Option<Spool>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(Operator { authenticator, spool })
}

/// Serves until `shutdown` is cancelled.
pub async fn serve(
    listener: TcpListener,
    authenticator: Arc<Authenticator>,
    shutdown: CancellationToken,
    spool: Option<Spool>,
) {
    let app = router(authenticator, spool);
    if let Err(e) = axum::serve(listener, app).with_graceful_shutdown(shutdown.cancelled_owned()).await {
        tracing::error!(error = %e, "metrics listener failed");
    }
}

async fn metrics(State(op): State<Operator>) -> impl IntoResponse {
    if let Some(spool) = op.spool {
        match tokio::task::spawn_blocking(move || spool.list()).await {
            Ok(Ok(envelopes)) => {
                let now = crate::queue::spool::unix_now();
                let oldest = envelopes.iter().map(|e| e.queued_at).min().map_or(0, |t| now.saturating_sub(t));
                set_queue(envelopes.len() as u64, oldest);
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "metrics: cannot read the spool"),
            Err(e) => tracing::warn!(error = %e, "metrics: spool task failed"),
        }
    }
    ([(CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], registry().render())
}

/// Healthy when the store answers: without it no login can be decided.
async fn healthz(State(op): State<Operator>) -> (StatusCode, &'static str) {
    match op.authenticator.ping().await {
        Ok(()) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::error!(error = %e, "healthz: store unreadable");
            (StatusCode::SERVICE_UNAVAILABLE, "store unavailable\n")
        }
    }
}
