//! Writes the login ledger to the store behind the logins' backs: the SASL reply never waits
//! for a write. Records go down a channel to one thread with its own store connection, which
//! writes whatever has arrived in one transaction (so batches grow with the load, and an idle
//! daemon's login reaches the store, and the other hosts, a moment after its reply), purges
//! logins older than the ledger keeps them, and keeps a failed batch (bounded) to write when
//! the store is back.

use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender, SyncSender, TryRecvError, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tracing::warn;

use crate::store::login_grants::StoredLogin;
use crate::store::{Store, StoreError, shared_state};

/// Records written in one transaction at most.
const MAX_BATCH: usize = 1000;
/// After a failed write, how long before trying again.
const RETRY: Duration = Duration::from_secs(1);
/// Records waiting in the channel; beyond that, logins are kept in memory only (and a warning
/// says so) rather than making a login wait.
const QUEUE: usize = 65_536;
/// Records kept for a store that is down; the oldest go first.
const MAX_PENDING: usize = 65_536;
/// How often logins older than the keep time are deleted.
const PURGE_EVERY: Duration = Duration::from_secs(60);

pub(crate) use crate::store::shared_state::StoreLocation;

pub(super) enum Write {
    Login(StoredLogin),
    Revoked(StoredLogin),
    /// Write everything received so far, then answer.
    Flush(Sender<Result<(), String>>),
}

/// The sending end; dropping it lets the thread write what is left and end.
pub(super) struct LedgerWriter {
    tx: SyncSender<Write>,
}

/// Unix milliseconds of `t`.
pub(super) fn unix_ms(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis().min(i64::MAX as u128) as i64)
}

impl LedgerWriter {
    /// Starts the writing thread on its own connection to `location` (opened on first write).
    pub(super) fn start(location: StoreLocation, keep: Duration) -> std::io::Result<Self> {
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("relaykey-ledger".into())
            .spawn(move || Thread { location, keep, store: None, pending: Vec::new(), revoked: Vec::new() }.run(rx))?;
        Ok(Self { tx })
    }

    pub(super) fn send(&self, write: Write) {
        match self.tx.try_send(write) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                warn!("login ledger: the store writer is behind; a login is kept in memory only")
            }
            Err(TrySendError::Disconnected(_)) => warn!("login ledger: the store writer is gone"),
        }
    }

    /// Writes everything sent so far; waits at most `patience`.
    pub(super) fn flush(&self, patience: Duration) -> Result<(), String> {
        let (ack, done) = mpsc::channel();
        self.tx.send(Write::Flush(ack)).map_err(|_| "the store writer is gone".to_string())?;
        done.recv_timeout(patience).map_err(|_| "the store writer did not answer".to_string())?
    }
}

struct Thread {
    location: StoreLocation,
    keep: Duration,
    store: Option<Store>,
    pending: Vec<StoredLogin>,
    revoked: Vec<StoredLogin>,
}

impl Thread {
    fn run(mut self, rx: Receiver<Write>) {
        let mut purged: Option<Instant> = None;
        let mut acks: Vec<Sender<Result<(), String>>> = Vec::new();
        loop {
            let idle = if self.pending.is_empty() && self.revoked.is_empty() { PURGE_EVERY } else { RETRY };
            let closed = match rx.recv_timeout(idle) {
                Ok(w) => {
                    self.take(w, &mut acks);
                    // Whatever else is waiting goes in the same transaction; what comes while
                    // it is written goes in the next. Under load, batches grow by themselves;
                    // when idle, a login is in the store a moment after its reply.
                    let mut closed = false;
                    while pending_len(&self.pending, &self.revoked) < MAX_BATCH {
                        match rx.try_recv() {
                            Ok(w) => self.take(w, &mut acks),
                            Err(TryRecvError::Empty) => break,
                            Err(TryRecvError::Disconnected) => {
                                closed = true;
                                break;
                            }
                        }
                    }
                    closed
                }
                Err(RecvTimeoutError::Timeout) => false,
                Err(RecvTimeoutError::Disconnected) => true,
            };
            let written = self.write();
            if let Err(e) = &written {
                warn!(error = %e, pending = self.pending.len() + self.revoked.len(), "login ledger: cannot write to the store; will retry");
            }
            for ack in acks.drain(..) {
                let _ = ack.send(written.as_ref().map(|_| ()).map_err(|e| e.to_string()));
            }
            if written.is_ok() && purged.is_none_or(|at| at.elapsed() >= PURGE_EVERY) {
                purged = Some(Instant::now());
                let now = SystemTime::now();
                let before = unix_ms(now.checked_sub(self.keep).unwrap_or(UNIX_EPOCH));
                if let Err(e) = self.connected().and_then(|s| s.purge_logins(before)) {
                    warn!(error = %e, "login ledger: cannot purge old logins");
                    self.store = None;
                }
            }
            if closed {
                return;
            }
        }
    }

    fn take(&mut self, w: Write, acks: &mut Vec<Sender<Result<(), String>>>) {
        match w {
            Write::Login(l) => push_bounded(&mut self.pending, l),
            Write::Revoked(l) => push_bounded(&mut self.revoked, l),
            Write::Flush(ack) => acks.push(ack),
        }
    }

    fn connected(&mut self) -> Result<&mut Store, StoreError> {
        if self.store.is_none() {
            self.store = Some(shared_state::open(&self.location)?);
        }
        self.store.as_mut().ok_or_else(|| StoreError::Corrupt("the ledger's connection is gone".into()))
    }

    /// Logins before revocations: a revocation found for a login still waiting here must
    /// find its row.
    fn write(&mut self) -> Result<(), StoreError> {
        if self.pending.is_empty() && self.revoked.is_empty() {
            return Ok(());
        }
        let (pending, revoked) = (std::mem::take(&mut self.pending), std::mem::take(&mut self.revoked));
        let result = self.connected().and_then(|store| {
            if !pending.is_empty() {
                store.record_logins(&pending)?;
            }
            if !revoked.is_empty() {
                store.revoke_logins(&revoked)?;
            }
            Ok(())
        });
        if result.is_err() {
            // Written again, whole, next time: the upserts do not count twice.
            self.store = None;
            self.pending = pending;
            self.revoked = revoked;
        }
        result
    }
}

fn pending_len(pending: &[StoredLogin], revoked: &[StoredLogin]) -> usize {
    pending.len() + revoked.len()
}

fn push_bounded(list: &mut Vec<StoredLogin>, l: StoredLogin) {
    if list.len() >= MAX_PENDING {
        list.remove(0);
    }
    list.push(l);
}
