//! The durable queue: a spool directory of message and envelope files ([`spool`]), written and
//! fsynced before the SMTP `250`, and the delivery side that empties it ([`delivery`]).

pub mod client;
pub mod delivery;
mod dir_sync;
pub mod dsn;
pub mod envelope;
pub mod route;
pub mod spool;
mod trailer;

pub use envelope::{Envelope, Recipient, RecipientStatus, Submission};
pub use spool::{Incoming, Spool, SpoolError};

/// The queue as another producer (the HTTP API) sees it: the spool to write messages into and
/// the delivery side to tell about each one committed.
#[derive(Clone)]
pub struct Outbox {
    pub spool: Spool,
    pub queued: tokio::sync::mpsc::UnboundedSender<Envelope>,
}

/// Why a message could not be queued.
#[derive(Debug, thiserror::Error)]
pub enum EnqueueError {
    /// ENOSPC or EDQUOT: `452 4.3.1`, and nothing of the message is left behind.
    #[error("spool is full")]
    DiskFull,
    #[error("spool I/O error: {0}")]
    Io(String),
}
