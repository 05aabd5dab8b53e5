//! The durable queue: a spool directory of message and envelope files ([`spool`]), written and
//! fsynced before the SMTP `250`, and the delivery side that empties it ([`delivery`]).
//! Producers (the relay's DATA, the API's send) put messages in through one [`Outbox`]; the
//! daemon opens it with [`start`]. Nothing here knows about the front ends.

pub mod client;
pub mod delivery;
mod dir_sync;
pub mod dsn;
pub mod envelope;
pub mod route;
mod signing;
pub mod spool;
mod trace;
mod trailer;

pub use envelope::{Envelope, Recipient, RecipientStatus, Submission};
pub use spool::{Incoming, Spool, SpoolError};
pub use trace::Trace;

use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use crate::config::Config;
use crate::dkim::Keyring;
use crate::log_text::LogText;

/// How messages get into the queue: the spool they are written to, and the delivery side to
/// tell about each one committed. The relay's DATA and the API's send both go through
/// [`Outbox::enqueue`].
#[derive(Clone)]
pub struct Outbox {
    spool: Spool,
    queued: mpsc::UnboundedSender<Envelope>,
    /// The DKIM keys messages are signed with at enqueue; none, nothing is signed.
    keyring: Option<Arc<Keyring>>,
}

impl Outbox {
    pub fn new(spool: Spool, queued: mpsc::UnboundedSender<Envelope>) -> Self {
        Self { spool, queued, keyring: None }
    }

    /// Signs what authenticated accounts send with `keyring` (see `queue/signing.rs`).
    pub fn with_keyring(mut self, keyring: Arc<Keyring>) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// The spool (the operator listener measures it).
    pub fn spool(&self) -> &Spool {
        &self.spool
    }

    /// Starts a message: creates its file, which is not queued until [`Outbox::enqueue`].
    /// Creating one file does not wait for the disk, so this runs in place. `authenticated`:
    /// an account sends it (relay AUTH, API key), so it may be DKIM-signed; inbound mail is not.
    pub fn begin(&self, authenticated: bool) -> Result<Incoming, EnqueueError> {
        let mut incoming = self.spool.begin()?;
        // Reading the message for DKIM as it is written costs a pass over it: only for an
        // account's mail, and when some domain has an active key (one PRAGMA; the snapshot is
        // shared).
        if authenticated && self.keyring.as_ref().is_some_and(|k| k.snapshot().is_ok_and(|s| !s.is_empty())) {
            incoming.digest_for_dkim();
        }
        Ok(incoming)
    }

    /// Appends a chunk of a message being received, on the blocking pool. On error the
    /// message is gone.
    pub async fn write(&self, mut incoming: Incoming, chunk: Vec<u8>) -> Result<Incoming, EnqueueError> {
        let spool = self.spool.clone();
        tokio::task::spawn_blocking(move || match incoming.write(&chunk) {
            Ok(()) => Ok(incoming),
            Err(e) => {
                spool.abort(incoming);
                Err(e)
            }
        })
        .await?
    }

    /// Drops a message that will not be queued.
    pub async fn abort(&self, incoming: Incoming) {
        let spool = self.spool.clone();
        let _ = tokio::task::spawn_blocking(move || spool.abort(incoming)).await;
    }

    /// Writes the message's last bytes, signs it (DKIM, for an authenticated account whose
    /// `From:` domain has active keys), makes it durable, tells delivery, logs `queued` with
    /// `proto` (`smtp`, `api`) and `dkim` (the selectors, or `none`) and returns its queue id. Only after `Ok` may the client be told
    /// the message is accepted; on error nothing of it remains.
    pub async fn enqueue(
        &self,
        mut incoming: Incoming,
        rest: Vec<u8>,
        submission: Submission,
        proto: &'static str,
    ) -> Result<String, EnqueueError> {
        let spool = self.spool.clone();
        let keyring = self.keyring.clone();
        let log_sub = submission.clone();
        // The last chunk, the signature and the commit in one trip to the blocking pool: it is
        // the latency every acknowledged message waits for.
        let committed = tokio::task::spawn_blocking(move || match incoming.write(&rest) {
            Ok(()) => {
                let digest = incoming.take_digest();
                let signed = match &keyring {
                    Some(k) => signing::sign(k, digest, &submission, spool::unix_now()),
                    None => Default::default(),
                };
                let dkim = signing::log_value(&signed);
                spool.commit(incoming, &submission, signed.fields).map(|env| (env, dkim))
            }
            Err(e) => {
                spool.abort(incoming);
                Err(e)
            }
        })
        .await
        .unwrap_or_else(|e| Err(e.into()));
        let ip = log_sub.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        match committed {
            Ok((env, dkim)) => {
                info!(proto, id = %env.id, from = %LogText::new(&env.sender), rcpts = env.recipients.len(),
                      size = env.size, user = %LogText::or_dash(log_sub.auth_user.as_deref()), ip = %ip, dkim = %dkim, "queued");
                let id = env.id.clone();
                // A closed channel means delivery is shutting down; the periodic scan picks the
                // message up after a restart, so queueing has still succeeded.
                let _ = self.queued.send(env);
                Ok(id)
            }
            Err(e) => {
                warn!(proto, error = %e, ip = %ip, "queueing failed");
                Err(e)
            }
        }
    }
}

/// Opens (and recovers) the spool under `root` and starts delivery on `tasks`; everything
/// stops when `shutdown` is cancelled. The daemon calls this once, before the front ends
/// that queue messages start.
pub async fn start(
    root: PathBuf,
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) -> Result<Outbox, SpoolError> {
    let dir = root.clone();
    let spool = tokio::task::spawn_blocking(move || Spool::open(&root))
        .await
        .map_err(|e| SpoolError::Io { path: dir, source: io::Error::other(e) })??;
    let queued = delivery::start(config, spool.clone(), shutdown, tasks);
    Ok(Outbox::new(spool, queued))
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// ENOSPC or EDQUOT: `452 4.3.1`, and nothing of the message is left behind.
    #[error("spool is full")]
    DiskFull,
    #[error("spool I/O error while {doing}: {source}")]
    Io {
        /// What the spool was doing: `creating the message file`, `writing`, `committing`.
        doing: &'static str,
        #[source]
        source: io::Error,
    },
    #[error("spool: no free queue id")]
    NoFreeId,
    /// The blocking task that wrote the message panicked or was cancelled.
    #[error("spool: the writing task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// An enqueue was asked for with no message begun.
    #[error("no message in progress")]
    NoMessage,
}

impl EnqueueError {
    /// Classifies an I/O error of the spool while `doing` something.
    pub fn io(doing: &'static str, e: io::Error) -> Self {
        // ENOSPC and EDQUOT: the client should come back later (RFC 3463 X.3.1).
        match e.raw_os_error() {
            Some(libc::ENOSPC) | Some(libc::EDQUOT) => Self::DiskFull,
            _ if e.kind() == io::ErrorKind::StorageFull || e.kind() == io::ErrorKind::QuotaExceeded => Self::DiskFull,
            _ => Self::Io { doing, source: e },
        }
    }
}
