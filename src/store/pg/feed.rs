//! The change feed: how every host learns, within one notification, that another host (or the
//! CLI, or the API) changed the store, so that its caches drop what they hold.
//!
//! Every write transaction sends `NOTIFY relaykey_changes` before it commits; PostgreSQL
//! delivers it to every listener when (and only if) the transaction commits. Each process
//! keeps one dedicated listening connection (never a pooled one: a notification arrives on the
//! connection that listens, between queries) and one counter. The store's `data_version()`
//! returns that counter, so the caches built for SQLite's `PRAGMA data_version` (the
//! authenticator's cache, the credential view, the senders directory, the DKIM keyring) drop
//! themselves the same way on PostgreSQL.
//!
//! Missed notifications are never redelivered. So while the listening connection is down,
//! `data_version()` returns a new value at every call: nothing is served from a cache, every
//! read goes to the database (and fails, temporarily, while it is away). When the connection
//! is back and listening, the counter moves once more, which flushes whatever was cached
//! before the loss.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Once, OnceLock, PoisonError};
use std::time::Duration;

use tokio_postgres::AsyncMessage;

use super::{PgTarget, runtime};

/// The notification channel of every relaykey change.
pub const CHANNEL: &str = "relaykey_changes";

/// How often an idle listening connection proves it is alive.
const HEARTBEAT: Duration = Duration::from_secs(10);
/// How long a heartbeat may take before the connection counts as lost.
const HEARTBEAT_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause between attempts to listen again.
const RETRY: Duration = Duration::from_secs(1);

/// How long a caller waits for a sync round before reading through instead.
const SYNC_TIMEOUT: Duration = Duration::from_secs(2);
/// A sync round that started this recently serves a caller without a new one: the bound on
/// how stale an answer from memory can be, whatever delays the notifications.
const SYNC_FRESH: Duration = Duration::from_millis(2);

/// Sync rounds (see [`ChangeFeed::version`]): how many the listener has started and finished,
/// and up to which one callers wait.
#[derive(Debug, Default)]
struct Rounds {
    started: u64,
    completed: u64,
    wanted: u64,
    /// When the last completed round began.
    completed_began: Option<std::time::Instant>,
}

/// One process's view of one store's changes.
#[derive(Debug)]
pub struct ChangeFeed {
    version: AtomicI64,
    listening: AtomicBool,
    started: Once,
    rounds: Mutex<Rounds>,
    round_done: Condvar,
    round_wanted: tokio::sync::Notify,
}

impl Default for ChangeFeed {
    fn default() -> Self {
        Self {
            version: AtomicI64::new(0),
            listening: AtomicBool::new(false),
            started: Once::new(),
            rounds: Mutex::new(Rounds::default()),
            round_done: Condvar::new(),
            round_wanted: tokio::sync::Notify::new(),
        }
    }
}

impl ChangeFeed {
    /// The process-wide feed of `target` (created on first use; it listens only once asked
    /// for a version, so a CLI command that never caches opens no listening connection).
    pub fn for_target(target: &PgTarget) -> Arc<ChangeFeed> {
        static FEEDS: OnceLock<Mutex<HashMap<String, Arc<ChangeFeed>>>> = OnceLock::new();
        let mut feeds = FEEDS.get_or_init(Default::default).lock().unwrap_or_else(PoisonError::into_inner);
        feeds.entry(target.shown().to_string()).or_default().clone()
    }

    /// Something changed, or may have.
    pub fn bump(&self) {
        self.version.fetch_add(1, Ordering::SeqCst);
    }

    /// Is the listening connection up (all changes since are being seen)?
    pub fn is_listening(&self) -> bool {
        self.listening.load(Ordering::SeqCst)
    }

    /// The change counter. Starts the listener on first call; while it is not listening, every
    /// call returns a new value, so that no cache serves anything.
    ///
    /// A notification reaches this process a little after its transaction committed (longer
    /// when this process is busy), so a request that follows a change at once (the CLI revokes
    /// a key, then a client uses it) could still find the old state cached. The caller
    /// therefore needs a round trip on the listening connection that began at most
    /// [`SYNC_FRESH`] before the call: PostgreSQL delivers a session's pending notifications
    /// before it answers its next query, so every change committed before the round began has
    /// been counted when it ends. Callers share rounds: under load one round serves every
    /// request of the next [`SYNC_FRESH`], so answers still come from memory.
    pub fn version(self: &Arc<Self>, target: &Arc<PgTarget>) -> i64 {
        self.started.call_once(|| {
            let feed = self.clone();
            let target = target.clone();
            runtime().spawn(async move { feed.listen_forever(&target).await });
        });
        if self.is_listening() && self.sync() {
            self.version.load(Ordering::SeqCst)
        } else {
            self.version.fetch_add(1, Ordering::SeqCst) + 1
        }
    }

    /// Waits for a sync round that starts after this call; `false` when the listener is not
    /// up or does not answer in time (the caller then reads through).
    fn sync(&self) -> bool {
        let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        if rounds.completed_began.is_some_and(|at| at.elapsed() <= SYNC_FRESH) {
            return true;
        }
        let need = rounds.started + 1;
        rounds.wanted = rounds.wanted.max(need);
        self.round_wanted.notify_one();
        let deadline = std::time::Instant::now() + SYNC_TIMEOUT;
        while rounds.completed < need {
            if !self.is_listening() {
                return false;
            }
            let Some(left) = deadline.checked_duration_since(std::time::Instant::now()) else { return false };
            rounds = self.round_done.wait_timeout(rounds, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// Runs the sync rounds callers are waiting for, one after another, on the listening
    /// connection; counts the notifications each one flushed out before releasing its waiters.
    async fn run_rounds(
        &self,
        client: &tokio_postgres::Client,
        notes: &mut tokio::sync::mpsc::UnboundedReceiver<()>,
    ) -> Result<(), String> {
        loop {
            let (round, began) = {
                let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
                if rounds.wanted <= rounds.started {
                    return Ok(());
                }
                rounds.started += 1;
                (rounds.started, std::time::Instant::now())
            };
            match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.batch_execute("SELECT 1")).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => return Err(e.to_string()),
                Err(_) => return Err("the listening connection stopped answering".to_string()),
            }
            // The connection task forwards a notification before the reply that follows it.
            while notes.try_recv().is_ok() {
                self.bump();
            }
            let mut rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
            rounds.completed = round;
            rounds.completed_began = Some(began);
            self.round_done.notify_all();
        }
    }

    /// Wakes every caller waiting for a round (the connection is gone: they read through).
    fn release_waiters(&self) {
        let _rounds = self.rounds.lock().unwrap_or_else(PoisonError::into_inner);
        self.round_done.notify_all();
    }

    async fn listen_forever(&self, target: &PgTarget) {
        let mut attempts = 0_u64;
        loop {
            let Err(error) = self.listen_once(target).await else { continue };
            if self.listening.swap(false, Ordering::SeqCst) {
                // What changed while the connection was going down is unknown.
                self.bump();
                self.release_waiters();
                attempts = 0;
            }
            // Said once per outage, not once per retry.
            if attempts == 0 {
                tracing::warn!(
                    database = target.shown(),
                    %error,
                    "store: not listening for changes; every read goes to the database until it is back"
                );
            }
            attempts += 1;
            tokio::time::sleep(RETRY).await;
        }
    }

    /// Connects, listens, and counts notifications until the connection fails.
    async fn listen_once(&self, target: &PgTarget) -> Result<(), String> {
        let tls = tokio_postgres_rustls::MakeRustlsConnect::new(target.tls_config().map_err(|e| e.to_string())?);
        let (client, mut connection) = target.config.connect(tls).await.map_err(|e| e.to_string())?;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The connection's messages, notifications among them, come from polling it directly
        // (a spawned `connection.await` would throw the notifications away).
        let driver = tokio::spawn(async move {
            loop {
                match std::future::poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(_))) => {
                        if tx.send(()).is_err() {
                            break;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => break,
                }
            }
        });
        let outcome = async {
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(|e| e.to_string())?;
            // Listening from here on; what happened before is unknown, so drop everything once.
            self.listening.store(true, Ordering::SeqCst);
            self.bump();
            tracing::info!(database = target.shown(), "store: listening for changes");
            loop {
                tokio::select! {
                    note = rx.recv() => match note {
                        Some(()) => self.bump(),
                        None => return Err("the listening connection closed".to_string()),
                    },
                    () = self.round_wanted.notified() => self.run_rounds(&client, &mut rx).await?,
                    () = tokio::time::sleep(HEARTBEAT) => {
                        match tokio::time::timeout(HEARTBEAT_TIMEOUT, client.simple_query("SELECT 1")).await {
                            Ok(Ok(_)) => {}
                            Ok(Err(e)) => return Err(e.to_string()),
                            Err(_) => return Err("the listening connection stopped answering".to_string()),
                        }
                    }
                }
            }
        }
        .await;
        driver.abort();
        outcome
    }
}
