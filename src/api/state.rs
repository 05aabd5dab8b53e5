//! What every request handler can reach: the config, the authenticator and throttle the
//! daemon handed over, the API's own store connection, and the per-IP request limiter.

use std::sync::{Arc, Mutex};

use crate::address::EmailAddress;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::LoginPipeline;
use crate::config::{Config, LimitsConfig};
use crate::limits::ConnectionLimiter;
use crate::message_limits::MessageLimits;
use crate::queue::Outbox;
use crate::senders::Directory;
use crate::store::{Store, StoreError};

use super::ApiDeps;
use super::error::ApiError;

pub struct ApiState {
    config: watch::Receiver<Arc<Config>>,
    /// Every request's API key goes through it: decision, delay, bookkeeping, the `auth` record.
    pub logins: Arc<LoginPipeline>,
    pub message_limits: Arc<MessageLimits>,
    /// Who owns which sender addresses.
    pub senders: Arc<Directory>,
    pub shutdown: CancellationToken,
    pub tasks: TaskTracker,
    pub store: StoreHandle,
    /// Requests in progress per client IP (`max_concurrent_requests_per_ip`).
    pub requests: ConnectionLimiter,
    /// Open connections per client IP (`max_connections_per_ip`).
    pub connections: ConnectionLimiter,
    /// The relay's queue, for `POST /v1/email/send`; `None` when the relay is not enabled.
    pub outbox: Option<Outbox>,
}

impl ApiState {
    pub fn new(deps: ApiDeps, store: Store, outbox: Option<Outbox>) -> Self {
        let current = deps.config.borrow().clone();
        let ApiDeps { config, logins, limiter, message_limits, senders, shutdown, tasks, authenticator: _ } = deps;
        Self {
            config,
            logins,
            message_limits,
            senders,
            shutdown,
            tasks,
            requests: ConnectionLimiter::new(&request_limits(&current)),
            // One `max_connections` for the relay's listeners and the API's.
            connections: ConnectionLimiter::new(&connection_limits(&current)).sharing_total_with(&limiter),
            store: StoreHandle(Arc::new(Mutex::new(store))),
            outbox,
        }
    }

    /// A snapshot of the current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// Applies a reloaded `[api]` section to the limiters (live requests keep their permits).
    pub fn reconfigure(&self, config: &Config) {
        self.requests.reconfigure(&request_limits(config));
        self.connections.reconfigure(&connection_limits(config));
    }
}

/// Requests in progress are limited per client group (`[limits] ipv6_prefix`), not in all.
fn request_limits(config: &Config) -> LimitsConfig {
    LimitsConfig {
        max_connections_per_ip: config.api.max_concurrent_requests_per_ip,
        ipv6_prefix: config.limits.ipv6_prefix,
        ..LimitsConfig::default()
    }
}

fn connection_limits(config: &Config) -> LimitsConfig {
    LimitsConfig {
        max_connections_per_ip: config.api.max_connections_per_ip,
        ipv6_prefix: config.limits.ipv6_prefix,
        max_connections: config.limits.max_connections,
        ..LimitsConfig::default()
    }
}

/// The API's own connection to the store. Writes go through the same `Store` functions as the
/// CLI. It is deliberately not the authenticator's connection: a commit here bumps the
/// authenticator's `PRAGMA data_version`, which drops its cache, so a changed or removed key
/// stops working at once.
#[derive(Clone)]
pub struct StoreHandle(Arc<Mutex<Store>>);

impl StoreHandle {
    /// Runs `f` on the blocking pool (SQLite and argon2 hashing block).
    pub async fn run<T, F>(&self, f: F) -> Result<T, ApiError>
    where
        T: Send + 'static,
        F: FnOnce(&mut Store) -> Result<T, StoreError> + Send + 'static,
    {
        let store = self.0.clone();
        let joined = tokio::task::spawn_blocking(move || {
            let mut store = store.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut store)
        })
        .await;
        match joined {
            Ok(result) => result.map_err(ApiError::from),
            Err(e) => {
                tracing::error!(error = %e, "api: store task failed");
                Err(ApiError::internal())
            }
        }
    }
}

/// The caller's account address, as the authenticator granted it.
pub fn account_address(account: &str) -> Result<EmailAddress, ApiError> {
    EmailAddress::parse(account).map_err(|e| {
        tracing::error!(error = %e, "api: granted account has an invalid address");
        ApiError::internal()
    })
}
