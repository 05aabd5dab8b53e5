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
mod senders;
mod server;
mod smtp_credentials;
mod state;
mod tls;
mod views;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use error::ApiError;
pub use routes::OPENAPI;

use crate::auth::{Authenticator, LoginPipeline};
use crate::config::Config;
use crate::limits::ConnectionLimiter;
use crate::message_limits::MessageLimits;
use crate::queue::Outbox;
use crate::senders::Directory;
use crate::store::Store;
use state::ApiState;

#[derive(Debug, thiserror::Error)]
pub enum ApiStartError {
    #[error("api: cannot open the store {path}: {source}")]
    Store { path: String, source: crate::store::StoreError },
    /// The certificate or key named by `api.tls_cert` / `api.tls_key` is unusable.
    #[error("{0}")]
    Tls(String),
}

/// What the API needs from the daemon.
pub struct ApiDeps {
    /// The current config; SIGHUP publishes a new one.
    pub config: watch::Receiver<Arc<Config>>,
    /// For the operator endpoints (status, cache figures).
    pub authenticator: Arc<Authenticator>,
    /// Every request's API key goes through it (throttle, bookkeeping, the `auth` record).
    pub logins: Arc<LoginPipeline>,
    /// The relay's connection limiter: the API's connections count toward its
    /// `[limits] max_connections` too (one cap for all TCP listeners).
    pub limiter: ConnectionLimiter,
    /// Per-account message counters, shared with the relay and the policy server.
    pub message_limits: Arc<MessageLimits>,
    /// Who owns which sender addresses (`POST /v1/email/send`, SMTP usernames).
    pub senders: Arc<Directory>,
    /// Cancelled at shutdown: the listeners stop and connections close.
    pub shutdown: CancellationToken,
    /// Where connections run, so that shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// The API front end, ready to serve a listener.
pub struct Api {
    state: Arc<ApiState>,
    tls: Option<TlsAcceptor>,
}

impl Api {
    /// Opens the API's own store connection and loads TLS material from the current config.
    /// `outbox` is the relay's queue (absent when the relay is not enabled).
    pub fn new(deps: ApiDeps, outbox: Option<Outbox>) -> Result<Self, ApiStartError> {
        let config = deps.config.borrow().clone();
        let store = config
            .store()
            .and_then(|location| Store::connect(&location))
            .map_err(|source| ApiStartError::Store { path: config.database_shown(), source })?;
        let tls = match (&config.api.tls_cert, &config.api.tls_key) {
            (Some(cert), Some(key)) => Some(tls::acceptor(cert, key).map_err(ApiStartError::Tls)?),
            _ => None,
        };
        Ok(Self { state: Arc::new(ApiState::new(deps, store, outbox)), tls })
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

/// Starts serving the API on `listener`, and the operator endpoints on `operator` when given,
/// on the task tracker. Called by the daemon when `[api] enabled = true`.
pub fn start(
    deps: ApiDeps,
    outbox: Option<Outbox>,
    listener: TcpListener,
    operator: Option<TcpListener>,
) -> Result<(), ApiStartError> {
    let tls = deps.config.borrow().api.tls_cert.is_some();
    let (tasks, authenticator, shutdown) = (deps.tasks.clone(), deps.authenticator.clone(), deps.shutdown.clone());
    let spool = outbox.as_ref().map(|o| o.spool().clone());
    let address = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    let api = Api::new(deps, outbox)?;
    tasks.spawn(api.serve(listener));
    if let Some(listener) = operator {
        tasks.spawn(operator::serve(listener, authenticator, shutdown, spool));
    }
    tracing::info!(listen = %address, tls, "api: listening");
    Ok(())
}
