//! The native SMTP submission relay: a sans-I/O codec ([`codec`], [`data`], [`reply`]), the
//! session state machine ([`session`]), and the tokio server around them ([`server`], [`tls`]).
//! Accepted messages go into the queue through its [`Outbox`].

pub mod codec;
pub mod data;
pub mod reply;
pub mod server;
pub mod session;
pub mod tls;

use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info};

use crate::auth::{Authenticator, LoginPipeline};
use crate::config::{Config, TlsMode};
use crate::limits::ConnectionLimiter;
use crate::message_limits::MessageLimits;
use crate::queue::Outbox;

use server::RelayContext;
use tls::{CertStore, TlsError};

/// A bound listener and how it uses TLS (`[[relay.listen]]`).
pub struct RelayListener {
    pub listener: TcpListener,
    pub tls: TlsMode,
}

/// What the relay needs from the daemon.
pub struct RelayDeps {
    /// The current config; SIGHUP publishes a new one, read per connection.
    pub config: watch::Receiver<Arc<Config>>,
    /// Every AUTH goes through it (throttle, bookkeeping, the `auth` record).
    pub logins: Arc<LoginPipeline>,
    /// Re-checks a logged-in session's grant at MAIL, RCPT and DATA.
    pub authenticator: Arc<Authenticator>,
    /// Per-IP connection permits.
    pub limiter: ConnectionLimiter,
    /// Per-account message counters, shared with the policy server and the API.
    pub message_limits: Arc<MessageLimits>,
    /// Cancelled at shutdown: accept loops stop, sessions finish their transaction.
    pub shutdown: CancellationToken,
    /// Where accept loops and connections run, so that shutdown can wait for them.
    pub tasks: TaskTracker,
}

/// Starts the relay: loads the certificate and spawns one accept loop per listener on
/// `deps.tasks`; accepted messages go into `outbox`. Returns once all is running; everything
/// stops when `deps.shutdown` is cancelled.
pub fn serve_relay(deps: RelayDeps, outbox: Outbox, listeners: Vec<RelayListener>) -> Result<(), TlsError> {
    let certs = Arc::new(CertStore::load(&deps.config.borrow().relay)?);
    spawn_cert_reload(&deps, certs.clone());
    let ctx = Arc::new(RelayContext { deps, outbox, certs });
    for l in listeners {
        ctx.deps.tasks.spawn(server::accept_loop(ctx.clone(), l.listener, l.tls));
    }
    Ok(())
}

/// SIGHUP publishes a new config; the certificate files are read again each time, so a renewed
/// certificate is picked up without dropping sessions.
fn spawn_cert_reload(deps: &RelayDeps, certs: Arc<CertStore>) {
    let mut rx = deps.config.clone();
    let shutdown = deps.shutdown.clone();
    deps.tasks.spawn(async move {
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                changed = rx.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    let config = rx.borrow_and_update().clone();
                    match certs.reload(&config.relay) {
                        Ok(()) => info!(proto = "smtp", "relay certificate reloaded"),
                        Err(e) => error!(proto = "smtp", error = %e, "relay certificate reload failed; keeping the old one"),
                    }
                }
            }
        }
    });
}
