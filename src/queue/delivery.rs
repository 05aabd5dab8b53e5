//! The delivery side of the queue: picks up new messages at once and due ones on a periodic
//! scan, delivers each pending recipient through its destination (smarthost or MX) with
//! bounded concurrency, records per-recipient results, retries with exponential backoff up
//! to `max_queue_age`, and queues DSNs for what failed for good.
//!
//! Order of writes, for at-least-once across crashes: a DSN is committed before the envelope
//! that marks its recipients failed, and a message is removed only after everything in it is
//! delivered or bounced. A crash in between repeats work; it never loses it.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::join_all;
use mail_send::Credentials;
use tokio::sync::{Semaphore, mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{info, warn};

use super::client::{Connector, HostFailure, RcptOutcome, Reason, TlsPolicy, Transaction};
use super::dsn::{self, Failure};
use super::route::{Destination, RouteError, Router};
use super::spool::unix_now;
use super::{Envelope, RecipientStatus, Spool, SpoolError};
use crate::config::{Config, RelayConfig};
use crate::log_text::LogText;

/// Starts delivery on `tasks` (it stops when `shutdown` is cancelled); send it each newly
/// queued envelope. `config` is read afresh for each attempt, so a reload applies.
pub fn start(
    config: watch::Receiver<Arc<Config>>,
    spool: Spool,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) -> mpsc::UnboundedSender<Envelope> {
    let (tx, rx) = mpsc::unbounded_channel();
    let current = config.borrow().clone();
    let relay = &current.relay;
    let credentials = smarthost_credentials(relay);
    let connector =
        Connector::new(relay.delivery_timeout, relay.smarthost_tls_verify, credentials).unwrap_or_else(|e| {
            warn!(error = %e, "delivery: no verifying TLS client; smarthost certificates will not be checked");
            Connector::new(relay.delivery_timeout, false, smarthost_credentials(relay))
                .expect("a non-verifying TLS config always builds")
        });
    let runner = Arc::new(Runner {
        config,
        shutdown,
        tasks: tasks.clone(),
        spool,
        requeue: tx.clone(),
        in_flight: Mutex::new(HashSet::new()),
        global: Arc::new(Semaphore::new(relay.max_deliveries)),
        per_destination: Mutex::new(HashMap::new()),
        router: Router::new(relay),
        connector,
    });
    tasks.spawn(runner.run(rx));
    tx
}

fn smarthost_credentials(relay: &RelayConfig) -> Option<Credentials<String>> {
    let user = relay.smarthost_username.clone()?;
    let path = relay.smarthost_password_file.as_ref()?;
    match std::fs::read_to_string(path) {
        Ok(p) => Some(Credentials::new(user, p.trim_end_matches(['\r', '\n']).to_string())),
        Err(e) => {
            warn!(file = %path.display(), error = %e, "delivery: cannot read the smarthost password; sending without AUTH");
            None
        }
    }
}

struct Runner {
    config: watch::Receiver<Arc<Config>>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    spool: Spool,
    requeue: mpsc::UnboundedSender<Envelope>,
    in_flight: Mutex<HashSet<String>>,
    global: Arc<Semaphore>,
    per_destination: Mutex<HashMap<Destination, Arc<Semaphore>>>,
    router: Router,
    connector: Connector,
}

impl Runner {
    fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    async fn run(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Envelope>) {
        let every = self.config().relay.queue_scan_interval;
        let mut scan = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = self.shutdown.cancelled() => return,
                Some(env) = rx.recv() => self.dispatch(env.id),
                _ = scan.tick() => self.scan().await,
            }
        }
    }

    /// Dispatches every message that is due (new ones missed, retries, `queue retry`).
    async fn scan(self: &Arc<Self>) {
        let spool = self.spool.clone();
        let listed = tokio::task::spawn_blocking(move || spool.list()).await;
        let envelopes = match listed {
            Ok(Ok(e)) => e,
            Ok(Err(e)) => return warn!(error = %e, "delivery: cannot scan the spool"),
            Err(e) => return warn!(error = %e, "delivery: scan task failed"),
        };
        let now = unix_now();
        // A large backlog is taken in slices, so that it does not become one waiting task per
        // message; the next scan takes the next slice.
        let cap = self.config().relay.max_deliveries.saturating_mul(4);
        for env in envelopes {
            if self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).len() >= cap {
                break;
            }
            if env.next_attempt <= now {
                self.dispatch(env.id);
            }
        }
        let mut map = self.per_destination.lock().unwrap_or_else(|p| p.into_inner());
        let full = self.config().relay.max_deliveries_per_destination;
        map.retain(|_, s| s.available_permits() < full);
    }

    fn dispatch(self: &Arc<Self>, id: String) {
        if !self.in_flight.lock().unwrap_or_else(|p| p.into_inner()).insert(id.clone()) {
            return;
        }
        let me = self.clone();
        self.tasks.spawn(async move {
            if let Ok(_permit) = me.global.clone().acquire_owned().await {
                tokio::select! {
                    // Abandoned mid-attempt: the envelope is unchanged, so it is tried again later.
                    _ = me.shutdown.cancelled() => {}
                    _ = me.attempt(&id) => {}
                }
            }
            me.in_flight.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
        });
    }

    async fn attempt(&self, id: &str) {
        // Reading a just-written message comes from the page cache: done in place rather than
        // paying two thread hand-offs on the blocking pool for it.
        let loaded = (|| {
            let lock = self.spool.lock(id)?;
            let env = self.spool.load(id)?;
            let message = self.spool.read_message(id)?;
            Ok::<_, SpoolError>((lock, env, message))
        })();
        let (lock, mut env, message) = match loaded {
            Ok(x) => x,
            Err(SpoolError::Busy(_) | SpoolError::NotFound(_)) => return,
            Err(e) => return warn!(id, error = %e, "delivery: cannot load message"),
        };
        let now = unix_now();
        if env.next_attempt > now {
            return;
        }
        let config = self.config();
        let relay = &config.relay;
        let mut groups: HashMap<Destination, Vec<String>> = HashMap::new();
        for r in env.pending() {
            groups.entry(Destination::of(relay, &r.address)).or_default().push(r.address.clone());
        }
        let results = join_all(groups.into_iter().map(|(dest, rcpts)| {
            let env = &env;
            let message = &message;
            async move {
                let outcomes = self.deliver_group(relay, &dest, env, &rcpts, message).await;
                (dest, rcpts, outcomes)
            }
        }))
        .await;
        let mut bounced = Vec::new();
        for (dest, rcpts, (remote, outcomes)) in results {
            for (address, outcome) in rcpts.iter().zip(outcomes) {
                let Some(r) = env.recipients.iter_mut().find(|r| &r.address == address) else { continue };
                let text = outcome.text();
                let result = match outcome {
                    RcptOutcome::Delivered(_) => {
                        r.status = RecipientStatus::Delivered;
                        "delivered"
                    }
                    RcptOutcome::Permanent(_) => {
                        r.status = RecipientStatus::Failed;
                        "bounced"
                    }
                    RcptOutcome::Temporary(_) => "deferred",
                };
                info!(id = %env.id, rcpt = %LogText::new(&address.to_string()), destination = dest.label(), remote = remote.as_deref().unwrap_or(""),
                      result, reply = %LogText::new(&text.to_string()), attempt = env.attempts + 1, "delivery");
                crate::metrics::record_delivery(result);
                r.last_result = Some(text);
                r.remote = remote.clone();
                if r.status == RecipientStatus::Failed {
                    bounced.push(r.clone());
                }
            }
        }
        let mut expired = Vec::new();
        if !env.is_finished() && now.saturating_sub(env.queued_at) >= relay.max_queue_age.as_secs() {
            for r in env.recipients.iter_mut().filter(|r| r.status == RecipientStatus::Pending) {
                r.status = RecipientStatus::Failed;
                info!(id = %env.id, rcpt = %LogText::new(&r.address.to_string()), result = "expired", "delivery");
                crate::metrics::record_delivery("expired");
                expired.push(r.clone());
            }
        }
        let headers = dsn::headers_of(&message).to_vec();
        for (failed, why) in [(bounced, Failure::Rejected), (expired, Failure::Expired)] {
            if let Some((sub, bytes)) = dsn::build(&relay.hostname, &env, &failed, why, &headers, now) {
                self.queue_dsn(&env.id, sub, bytes).await;
            }
        }
        env.attempts += 1;
        env.next_attempt = now + backoff(relay, env.attempts).as_secs();
        let saved = if env.is_finished() {
            // Two unlinks, no fsync: cheap enough to do in place.
            let r = self.spool.remove(&env.id);
            drop(lock);
            r
        } else {
            let spool = self.spool.clone();
            tokio::task::spawn_blocking(move || {
                let r = spool.save(&env);
                drop(lock);
                r
            })
            .await
            .unwrap_or_else(|e| Err(SpoolError::Io { path: PathBuf::new(), source: std::io::Error::other(e) }))
        };
        if let Err(e) = saved {
            warn!(id, error = %e, "delivery: cannot update the envelope; the attempt will be repeated");
        }
    }

    /// Delivers one destination's recipients; returns the host that answered and one outcome
    /// per recipient, in order.
    async fn deliver_group(
        &self,
        relay: &RelayConfig,
        dest: &Destination,
        env: &Envelope,
        rcpts: &[String],
        message: &[u8],
    ) -> (Option<String>, Vec<RcptOutcome>) {
        let all = |o: RcptOutcome| rcpts.iter().map(|_| o.clone()).collect::<Vec<_>>();
        let slots = {
            let mut map = self.per_destination.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(dest.clone())
                .or_insert_with(|| Arc::new(Semaphore::new(relay.max_deliveries_per_destination)))
                .clone()
        };
        let Ok(_slot) = slots.acquire_owned().await else {
            return (None, all(RcptOutcome::Temporary(Reason::Closing)));
        };
        let hosts = match self.router.hosts(relay, dest).await {
            Ok(h) => h,
            Err(RouteError::Permanent(m)) => return (None, all(RcptOutcome::Permanent(Reason::Unroutable(m)))),
            Err(RouteError::Temporary(m)) => return (None, all(RcptOutcome::Temporary(Reason::RouteLookup(m)))),
            Err(RouteError::Private(m)) => return (None, all(RcptOutcome::Permanent(Reason::PrivateDestination(m)))),
        };
        let policy = match dest {
            Destination::Smarthost => TlsPolicy::for_smarthost(relay.smarthost_tls),
            Destination::Domain(_) => TlsPolicy::Opportunistic,
        };
        let tx = Transaction {
            helo: &relay.hostname,
            sender: &env.sender,
            recipients: rcpts,
            message,
            eight_bit: env.eight_bit,
            smtputf8: env.smtputf8,
        };
        let mut last = Reason::NoAddress;
        for host in &hosts {
            for addr in &host.addrs {
                match self.connector.deliver(*addr, &host.name, policy, &tx).await {
                    Ok(outcomes) => return (Some(host.name.clone()), outcomes),
                    Err(HostFailure::Permanent(m)) => return (Some(host.name.clone()), all(RcptOutcome::Permanent(m))),
                    Err(HostFailure::Temporary(reason)) => {
                        last = Reason::At { host: host.name.clone(), addr: *addr, reason: Box::new(reason) };
                    }
                }
            }
        }
        (None, all(RcptOutcome::Temporary(last)))
    }

    async fn queue_dsn(&self, original: &str, sub: super::Submission, bytes: Vec<u8>) {
        let spool = self.spool.clone();
        let committed = tokio::task::spawn_blocking(move || {
            let mut incoming = spool.begin()?;
            incoming.write(&bytes)?;
            spool.commit(incoming, &sub, String::new())
        })
        .await;
        match committed {
            Ok(Ok(env)) => {
                let to = env.recipients.first().map(|r| r.address.to_string()).unwrap_or_default();
                info!(id = %env.id, original, to = %LogText::new(&to), "dsn queued");
                let _ = self.requeue.send(env);
            }
            Ok(Err(e)) => warn!(original, error = %e, "delivery: cannot queue a DSN"),
            Err(e) => warn!(original, error = %e, "delivery: DSN task failed"),
        }
    }
}

/// `min_retry_interval` doubled per attempt, capped at `max_retry_interval`.
pub fn backoff(relay: &RelayConfig, attempts: u32) -> Duration {
    let factor = 1u32 << attempts.saturating_sub(1).min(20);
    relay.min_retry_interval.saturating_mul(factor).min(relay.max_retry_interval)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let relay = RelayConfig {
            min_retry_interval: Duration::from_secs(60),
            max_retry_interval: Duration::from_secs(600),
            ..RelayConfig::default()
        };
        let got: Vec<u64> = (1..7).map(|a| backoff(&relay, a).as_secs()).collect();
        assert_eq!(got, vec![60, 120, 240, 480, 600, 600]);
        assert_eq!(backoff(&relay, 1000).as_secs(), 600);
    }
}
