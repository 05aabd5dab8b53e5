//! The HTTP API (`/v1`, authenticated by API key), the self-service settings page at `/`, and
//! the operator endpoints (`/metrics`, `/healthz`) on their own listener.
//!
//! Layout: `server` moves connections and enforces the provider's limits; `routes` maps URLs
//! to thin handlers (`account`, `api_keys`, `smtp_credentials`, `send`); `caller` authenticates
//! through the shared Authenticator; `body` reads JSON under limits; `error` is the one error
//! shape; writes go through `crate::store`, the functions the CLI uses.

mod account;
mod api_keys;
mod assets;
mod authority;
mod body;
mod caller;
mod compose;
mod enqueue;
mod error;
pub mod operator;
mod routes;
mod send;
mod server;
mod smtp_credentials;
mod state;
mod tls;
mod views;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

pub use error::ApiError;
pub use routes::OPENAPI;

use crate::daemon::{Shared, listen_tcp};
use crate::queue::Outbox;
use crate::store::Store;
use state::ApiState;

#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("api: cannot open the store {path}: {source}")]
    Store { path: String, source: crate::store::StoreError },
    #[error("{0}")]
    Config(String),
    #[error("{0}")]
    Listen(std::io::Error),
}

/// The API front end, ready to serve a listener.
pub struct Api {
    state: Arc<ApiState>,
    tls: Option<TlsAcceptor>,
}

impl Api {
    /// Opens the API's own store connection and loads TLS material from the current config.
    /// `outbox` is the relay's queue (absent when the relay is not enabled).
    pub fn new(shared: Arc<Shared>, outbox: Option<Outbox>) -> Result<Self, ApiStartError> {
        let config = shared.config();
        let store = Store::open(&config.database)
            .map_err(|source| ApiStartError::Store { path: config.database.display().to_string(), source })?;
        let tls = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(ApiStartError::Config)?),
            _ => None,
        };
        Ok(Self { state: Arc::new(ApiState::new(shared, store, outbox)), tls })
    }

    /// Requests in progress per client address (for status lines and tests).
    pub fn requests_in_progress(&self) -> crate::limits::ConnectionLimiter {
        self.state.requests.clone()
    }

    /// Serves `listener` until shutdown.
    pub async fn serve(self, listener: TcpListener) {
        server::accept_loop(listener, self.state, self.tls).await;
    }
}

/// Starts the API listener, and the operator listener when `metrics_listen` is set, on the
/// shared task tracker. Called by the daemon when `[api] enabled = true`.
pub async fn start(shared: &Arc<Shared>, outbox: Option<Outbox>) -> Result<(), ApiStartError> {
    let config = shared.config();
    let spool = outbox.as_ref().map(|o| o.spool.clone());
    let api = Api::new(shared.clone(), outbox)?;
    let address = config.api.listen_addr().map_err(ApiStartError::Config)?;
    if !address.ip().is_loopback() && config.api.tls_cert.is_none() {
        tracing::warn!(listen = %address, "api: plain HTTP on a non-loopback address; API keys cross the network in clear (set api.tls_cert and api.tls_key)");
    }
    let listener = listen_tcp("api", address).await.map_err(ApiStartError::Listen)?;
    shared.tasks.spawn(api.serve(listener));
    if let Some(address) = config.api.metrics_addr().map_err(ApiStartError::Config)? {
        let listener = listen_tcp("metrics", address).await.map_err(ApiStartError::Listen)?;
        shared.tasks.spawn(operator::serve(listener, shared.clone(), spool));
    }
    tracing::info!(listen = %address, tls = config.api.tls_cert.is_some(), "api: listening");
    Ok(())
}
