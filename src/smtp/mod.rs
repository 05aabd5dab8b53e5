//! The native SMTP submission relay: a sans-I/O codec ([`codec`], [`data`], [`reply`]), the
//! session state machine ([`session`]), and the tokio server around them ([`server`], [`tls`]).

pub mod codec;
pub mod data;
pub mod received;
pub mod reply;
pub mod server;
pub mod session;
pub mod tls;

use std::sync::Arc;

use tokio::net::TcpListener;
use tracing::{error, info};

use crate::config::TlsMode;
use crate::daemon::Shared;
use crate::queue::{Outbox, Spool, SpoolError, delivery};

use server::RelayContext;
use tls::{CertStore, TlsError};

/// A bound listener and how it uses TLS (`[[relay.listen]]`).
pub struct RelayListener {
    pub listener: TcpListener,
    pub tls: TlsMode,
}

#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    #[error(transparent)]
    Tls(#[from] TlsError),
    #[error(transparent)]
    Spool(#[from] SpoolError),
}

/// Starts the relay: opens (and recovers) the spool, loads the certificate, starts delivery,
/// and spawns one accept loop per listener on `shared.tasks`. Returns once all is running;
/// everything stops when `shared.shutdown` is cancelled. The returned [`Outbox`] lets other
/// front ends (the HTTP API) queue messages too.
pub async fn serve_relay(shared: Arc<Shared>, listeners: Vec<RelayListener>) -> Result<Outbox, RelayError> {
    let config = shared.config();
    let root = config.relay.spool.clone();
    let spool = tokio::task::spawn_blocking(move || Spool::open(&root))
        .await
        .map_err(|e| SpoolError::Io { path: config.relay.spool.clone(), source: std::io::Error::other(e) })??;
    let certs = Arc::new(CertStore::load(&config.relay)?);
    let queued = delivery::start(shared.clone(), spool.clone());
    spawn_cert_reload(&shared, certs.clone());
    let outbox = Outbox { spool: spool.clone(), queued: queued.clone() };
    let logins = Arc::new(crate::auth::LoginPipeline::new(
        shared.authenticator.clone(),
        shared.ledger.clone(),
        shared.throttle.clone(),
        shared.tasks.clone(),
    ));
    let ctx = Arc::new(RelayContext { shared: shared.clone(), logins, spool, certs, queued });
    for l in listeners {
        shared.tasks.spawn(server::accept_loop(ctx.clone(), l.listener, l.tls));
    }
    Ok(outbox)
}

/// SIGHUP publishes a new config; the certificate files are read again each time, so a renewed
/// certificate is picked up without dropping sessions.
fn spawn_cert_reload(shared: &Arc<Shared>, certs: Arc<CertStore>) {
    let mut rx = shared.config.clone();
    let shutdown = shared.shutdown.clone();
    shared.tasks.spawn(async move {
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
