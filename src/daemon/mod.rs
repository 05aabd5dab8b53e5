//! `relaykey serve`: start the front ends on one shared authenticator, tell systemd, reload on
//! SIGHUP and drain on SIGTERM.
//!
//! This is the top of the dependency graph: the daemon binds the listeners, opens the queue,
//! and hands each front end only what it needs (its config view, the authenticator, the
//! throttle or ledger, a shutdown token, the task tracker). No front end refers back to it
//! (`tests/architecture.rs`).

mod listeners;
mod notify;
mod privileges;
mod unix_socket;

use std::io;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use listeners::{listen_tcp, listen_unix};
pub use unix_socket::{bind_unix, chown, group_id, is_socket};

use crate::api::{ApiDeps, ApiStartError};
use crate::auth::{AuthError, Authenticator, FailureThrottle, LoginLedger, LoginPipeline};
use crate::config::Config;
use crate::dkim::Keyring;
use crate::limits::ConnectionLimiter;
use crate::logging::{self, LogHandle};
use crate::message_limits::MessageLimits;
use crate::policy::enforcer::Enforcer;
use crate::queue::{Outbox, SpoolError};
use crate::sasl::server::SaslServer;
use crate::senders::Directory;
use crate::smtp::RelayDeps;
use crate::smtp::tls::TlsError;
use crate::store::StoreError;
use crate::store::serve_lock::{self, ServeLock};

/// Why the daemon could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("cannot watch {signal}: {source}")]
    Signal { signal: &'static str, source: io::Error },
    #[error("cannot open the store {path}: {source}")]
    Store { path: String, source: AuthError },
    #[error("cannot lock {path}: {source}")]
    Lock { path: PathBuf, source: io::Error },
    /// A front end's socket could not be bound (or taken from systemd).
    #[error("{front_end}: {source}")]
    Listen { front_end: &'static str, source: io::Error },
    #[error("relay: {0}")]
    Queue(#[from] SpoolError),
    #[error("relay: {0}")]
    RelayTls(#[from] TlsError),
    #[error(transparent)]
    Api(#[from] ApiStartError),
    #[error(transparent)]
    Config(#[from] crate::config::Invalid),
    #[error(transparent)]
    Privileges(#[from] privileges::PrivilegeError),
    #[error("senders: cannot read the store: {0}")]
    Senders(StoreError),
}

/// What every front end shares: one config, one authenticator, one limits table.
pub struct Shared {
    /// The current config; SIGHUP publishes a new one. Front ends read it per connection.
    pub config: watch::Receiver<Arc<Config>>,
    pub authenticator: Arc<Authenticator>,
    /// Which secret each login used (SASL writes, policy reads).
    pub ledger: Arc<LoginLedger>,
    /// Failed-login delays per client address (every front end).
    pub throttle: Arc<Mutex<FailureThrottle>>,
    /// Every login of every front end goes through it.
    pub logins: Arc<LoginPipeline>,
    /// Per-IP connection permits.
    pub limiter: ConnectionLimiter,
    /// Per-account message counters: one instance for the policy server, the relay and the API.
    pub message_limits: Arc<MessageLimits>,
    /// Cancelled on SIGTERM: accept loops stop, connections finish their request and close.
    pub shutdown: CancellationToken,
    /// Every listener and connection task, so that shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Who may send as which address; opened on first use ([`Shared::sender_directory`]).
    senders: OnceLock<Arc<Directory>>,
}

impl Shared {
    pub fn new(config: Config, authenticator: Authenticator) -> (Arc<Self>, watch::Sender<Arc<Config>>) {
        let throttle = FailureThrottle::new(config.auth.failure_delay, config.auth.max_failure_delay)
            .with_ipv6_prefix(config.limits.ipv6_prefix);
        let limiter = ConnectionLimiter::new(&config.limits);
        let location = authenticator.location();
        let ledger = Arc::new(LoginLedger::stored(location.clone()).unwrap_or_else(|e| {
            warn!(error = %e, "cannot start the login ledger's store writer; the ledger is kept in memory only");
            LoginLedger::default()
        }));
        let message_limits = Arc::new(MessageLimits::new(location));
        let (tx, rx) = watch::channel(Arc::new(config));
        let authenticator = Arc::new(authenticator);
        let throttle = Arc::new(Mutex::new(throttle));
        let tasks = TaskTracker::new();
        let logins =
            Arc::new(LoginPipeline::new(authenticator.clone(), ledger.clone(), throttle.clone(), tasks.clone()));
        let shared = Self {
            config: rx,
            authenticator,
            ledger,
            throttle,
            logins,
            limiter,
            message_limits,
            shutdown: CancellationToken::new(),
            tasks,
            senders: OnceLock::new(),
        };
        (Arc::new(shared), tx)
    }

    /// A snapshot of the current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }

    /// The sender directory every front end that binds senders shares (the socketmap, the
    /// policy server, the relay, the API): one store connection, one snapshot. Opened on
    /// first use on the configured database; later calls return the same one.
    pub fn sender_directory(&self) -> Result<Arc<Directory>, StoreError> {
        if let Some(d) = self.senders.get() {
            return Ok(d.clone());
        }
        let opened = Arc::new(Directory::open(self.config().store()?)?);
        Ok(self.senders.get_or_init(|| opened).clone())
    }

    /// The SASL front end, on this daemon's login pipeline.
    pub fn sasl_server(&self) -> SaslServer {
        SaslServer::new(self.config.clone(), self.logins.clone(), self.shutdown.clone(), self.tasks.clone())
    }

    /// The policy front end's decision maker.
    pub fn policy_enforcer(&self) -> Result<Enforcer, StoreError> {
        Ok(Enforcer::new(
            self.config.clone(),
            self.authenticator.clone(),
            self.ledger.clone(),
            self.message_limits.clone(),
            self.sender_directory()?,
        ))
    }

    /// Opens the relay's spool and starts the queue's delivery runner.
    pub async fn start_queue(&self) -> Result<Outbox, SpoolError> {
        let root = self.config().relay.spool.clone();
        crate::queue::start(root, self.config.clone(), self.shutdown.clone(), self.tasks.clone()).await
    }

    /// The DKIM keys the queue signs with: their own store connection and snapshot.
    pub fn dkim_keyring(&self) -> Result<Arc<Keyring>, StoreError> {
        Ok(Arc::new(Keyring::open(self.config().store()?)?))
    }

    /// What the relay needs.
    pub fn relay_deps(&self) -> Result<RelayDeps, StoreError> {
        Ok(RelayDeps {
            config: self.config.clone(),
            logins: self.logins.clone(),
            authenticator: self.authenticator.clone(),
            limiter: self.limiter.clone(),
            message_limits: self.message_limits.clone(),
            senders: self.sender_directory()?,
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        })
    }

    /// What the HTTP API needs.
    pub fn api_deps(&self) -> Result<ApiDeps, StoreError> {
        Ok(ApiDeps {
            config: self.config.clone(),
            authenticator: self.authenticator.clone(),
            logins: self.logins.clone(),
            limiter: self.limiter.clone(),
            message_limits: self.message_limits.clone(),
            senders: self.sender_directory()?,
            shutdown: self.shutdown.clone(),
            tasks: self.tasks.clone(),
        })
    }
}

/// How long shutdown waits for the login ledger's last write.
const LEDGER_FLUSH_PATIENCE: Duration = Duration::from_secs(5);

/// Runs the daemon until SIGTERM or SIGINT. `path` is re-read on SIGHUP.
pub fn run(path: Option<PathBuf>, config: Config) -> ExitCode {
    let log = logging::init(&config.log_level);
    // SAFETY: no thread has started yet (the runtime is built below).
    match unsafe { listeners::inherit_from_systemd() } {
        Ok(names) if !names.is_empty() => info!(sockets = %names.join(","), "sockets passed by systemd"),
        Ok(_) => {}
        Err(e) => warn!(error = %e, "ignoring the sockets passed by systemd"),
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            error!(error = %e, "cannot start the runtime");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(path, config, log)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            error!("{e}");
            eprintln!("relaykey: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: Option<PathBuf>, config: Config, log: LogHandle) -> Result<(), ServeError> {
    // Handlers before anything listens: a client (or systemd, once it reads READY=1) may send
    // SIGTERM or SIGHUP as soon as a socket accepts, and must not find the default action.
    let signals = Signals::install()?;
    // Held until `serve` returns, so that `relaykey restore` refuses while this daemon runs.
    // Taken before the store opens: a restore in progress finishes first (the wait blocks
    // this thread, but nothing else runs yet), and the daemon then opens the restored file.
    // (A PostgreSQL store has no file to restore over: `pg_restore` is the operator's own.)
    let _serve_lock = match config.sqlite_path() {
        Some(path) => Some(
            ServeLock::hold(path).map_err(|source| ServeError::Lock { path: serve_lock::lock_path(path), source })?,
        ),
        None => None,
    };
    let mut signals = signals;
    if !wait_for_database(&config, &mut signals).await {
        info!("stopped while waiting for the database");
        return Ok(());
    }
    let authenticator = config
        .store()
        .map_err(AuthError::from)
        .and_then(|location| Authenticator::open(&location, &config.auth))
        .map_err(|source| ServeError::Store { path: config.database_shown(), source })?;
    // SQLite: the shared state's file is opened now, as the user that opened the store, so
    // that dropping root gives it away with the database, and held until the end, so that its
    // WAL files stay (as the store's do); the counters and the ledger open their own
    // connections to it.
    let location = authenticator.location();
    let _shared_state = match location {
        crate::store::StoreLocation::Sqlite(_) => Some(
            crate::store::shared_state::open(&location)
                .map_err(|e| ServeError::Store { path: config.database_shown(), source: AuthError::Store(e) })?,
        ),
        crate::store::StoreLocation::Postgres(_) => None,
    };
    let (shared, publish) = Shared::new(config.clone(), authenticator);

    // Front ends start here: each gets its listeners from `listen_unix` / `listen_tcp` (so that
    // socket activation works; failing startup on error), runs on `shared.tasks`, and its name
    // is pushed.
    let mut started: Vec<&str> = Vec::new();
    if config.policy.enabled {
        let p = &config.policy;
        let listener = listen_unix("policy", &p.socket, p.socket_mode, p.socket_group.as_deref())
            .map_err(|source| ServeError::Listen { front_end: "policy", source })?;
        let enforcer = Arc::new(shared.policy_enforcer().map_err(ServeError::Senders)?);
        shared.tasks.spawn(crate::policy::server::run(
            listener,
            enforcer,
            shared.shutdown.clone(),
            shared.tasks.clone(),
        ));
        started.push("policy");
    }
    if config.senders.socketmap {
        let s = &config.senders;
        let listener = listen_unix("senders", &s.socket, s.socket_mode, s.socket_group.as_deref())
            .map_err(|source| ServeError::Listen { front_end: "senders", source })?;
        let directory = shared.sender_directory().map_err(ServeError::Senders)?;
        shared.tasks.spawn(crate::senders::socketmap::server::run(
            listener,
            directory,
            s.map_name.clone(),
            shared.shutdown.clone(),
            shared.tasks.clone(),
        ));
        started.push("senders");
    }
    if config.sasl.enabled {
        let s = &config.sasl;
        let listener = listen_unix("sasl", &s.socket, s.socket_mode, s.socket_group.as_deref())
            .map_err(|source| ServeError::Listen { front_end: "sasl", source })?;
        shared.tasks.spawn(Arc::new(shared.sasl_server()).run(listener));
        started.push("sasl");
    }
    let mut outbox = None;
    if config.relay.enabled {
        let mut listeners = Vec::new();
        for l in &config.relay.listen {
            let listener = listen_tcp(&format!("relay:{}", l.address), l.address)
                .await
                .map_err(|source| ServeError::Listen { front_end: "relay", source })?;
            listeners.push(crate::smtp::RelayListener { listener, tls: l.tls });
        }
        // The queue first: the relay and the API both put messages into it.
        let queue = shared.start_queue().await?.with_keyring(shared.dkim_keyring().map_err(ServeError::Senders)?);
        crate::smtp::serve_relay(shared.relay_deps().map_err(ServeError::Senders)?, queue.clone(), listeners)?;
        outbox = Some(queue);
        started.push("relay");
    }
    if config.api.enabled {
        let address = config.api.listen_addr()?;
        if !address.ip().is_loopback() && config.api.tls_cert.is_none() {
            warn!(listen = %address, "api: plain HTTP on a non-loopback address; API keys cross the network in clear (set api.tls_cert and api.tls_key)");
        }
        let listener =
            listen_tcp("api", address).await.map_err(|source| ServeError::Listen { front_end: "api", source })?;
        let operator = match config.api.metrics_addr()? {
            Some(address) => Some(
                listen_tcp("metrics", address)
                    .await
                    .map_err(|source| ServeError::Listen { front_end: "metrics", source })?,
            ),
            None => None,
        };
        crate::api::start(shared.api_deps().map_err(ServeError::Senders)?, outbox, listener, operator)?;
        started.push("api");
    }
    if started.is_empty() {
        warn!("no front end is enabled; serving nothing");
    }

    // Every listener is bound: leave root before anything is announced.
    privileges::drop_root(&config.daemon, config.sqlite_path(), &listeners::bound_unix())?;
    for name in listeners::unclaimed() {
        warn!(socket = %name, "systemd passed a socket no enabled front end uses");
    }

    notify::ready();
    let database = config.database_shown();
    info!(front_ends = %started.join(","), %database, "ready");
    spawn_watchdog(&shared);
    spawn_status(&shared);

    wait_for_signals(signals, &shared, path.as_deref(), &publish, &log).await;

    notify::stopping();
    info!("shutting down");
    shared.shutdown.cancel();
    shared.tasks.close();
    let grace = shared.config().daemon.shutdown_grace;
    if tokio::time::timeout(grace, shared.tasks.wait()).await.is_err() {
        warn!(open = shared.tasks.len(), "shutdown grace expired");
    }
    // The logins of the sessions still open go to the store, so that the next start (or
    // another host) knows them.
    let ledger = shared.ledger.clone();
    match tokio::task::spawn_blocking(move || ledger.flush(LEDGER_FLUSH_PATIENCE)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => warn!(error = %e, "login ledger: not all logins were written to the store"),
        Err(e) => warn!(error = %e, "login ledger: the final write failed"),
    }
    Ok(())
}

/// How often a daemon started while its database is unreachable tries again.
const DATABASE_RETRY: Duration = Duration::from_secs(2);

/// Waits until the store can be opened, when it is a database server that cannot be reached
/// (a PostgreSQL host down or booting): exiting would have systemd restart the daemon until
/// its start limit, and then leave it dead when the database returns. Every other failure is
/// left to the open that follows, which reports it. Keeps systemd's start timeout extended
/// meanwhile. `false` when SIGTERM or SIGINT came first.
async fn wait_for_database(config: &Config, signals: &mut Signals) -> bool {
    let Ok(location @ crate::store::StoreLocation::Postgres(_)) = config.store() else { return true };
    let mut said = false;
    loop {
        let attempt = location.clone();
        let outcome = tokio::task::spawn_blocking(move || crate::store::Store::connect(&attempt)).await;
        match outcome {
            Ok(Err(e)) if e.is_database_outage() => {
                if !std::mem::replace(&mut said, true) {
                    warn!(database = %location, error = %e, "the database cannot be reached; waiting for it before listening");
                }
                notify::status(&format!("waiting for the database: {e}"));
                notify::extend_start_timeout(DATABASE_RETRY * 3);
            }
            _ => return true,
        }
        tokio::select! {
            _ = signals.term.recv() => return false,
            _ = signals.int.recv() => return false,
            () = tokio::time::sleep(DATABASE_RETRY) => {}
        }
    }
}

/// The signals the daemon answers, watched from before READY=1 on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, ServeError> {
        let watch = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| ServeError::Signal { signal: name, source })
        };
        Ok(Self {
            term: watch(SignalKind::terminate(), "SIGTERM")?,
            int: watch(SignalKind::interrupt(), "SIGINT")?,
            hup: watch(SignalKind::hangup(), "SIGHUP")?,
        })
    }
}

/// Handles SIGHUP (reload) until SIGTERM or SIGINT arrives.
async fn wait_for_signals(
    signals: Signals,
    shared: &Shared,
    path: Option<&Path>,
    publish: &watch::Sender<Arc<Config>>,
    log: &LogHandle,
) {
    let Signals { mut term, mut int, mut hup } = signals;
    loop {
        tokio::select! {
            _ = term.recv() => return,
            _ = int.recv() => return,
            _ = hup.recv() => {
                notify::reloading();
                reload(shared, path, publish, log);
                notify::ready();
            }
        }
    }
}

/// Loads and validates the whole config; a bad one is refused and the old one kept.
fn reload(shared: &Shared, path: Option<&Path>, publish: &watch::Sender<Arc<Config>>, log: &LogHandle) {
    let Some(path) = path else {
        info!("reload: no config file, keeping built-in defaults");
        return;
    };
    let new = match Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            error!(error = %e, "reload refused; keeping the running config");
            return;
        }
    };
    let old = shared.config();
    if new.database != old.database
        || new.postgresql != old.postgresql
        || new.sasl.socket != old.sasl.socket
        || new.policy.socket != old.policy.socket
        || new.senders.socket != old.senders.socket
        || new.senders.socketmap != old.senders.socketmap
        || new.senders.map_name != old.senders.map_name
    {
        warn!("reload: database, socket paths or the socketmap changed; restart required for those");
    }
    let (r, o) = (&new.relay, &old.relay);
    if r.enabled != o.enabled || r.listen != o.listen || r.spool != o.spool || r.nameservers != o.nameservers {
        warn!("reload: relay enabled, listen, spool or nameservers changed; restart required for those");
    }
    if let Err(e) = log.set_level(&new.log_level) {
        warn!(error = %e, "reload: log level unchanged");
    }
    shared.limiter.reconfigure(&new.limits);
    if let Ok(mut t) = shared.throttle.lock() {
        *t = FailureThrottle::new(new.auth.failure_delay, new.auth.max_failure_delay)
            .with_ipv6_prefix(new.limits.ipv6_prefix);
    }
    publish.send_replace(Arc::new(new));
    info!(config = %path.display(), "reloaded");
}

/// Sends WATCHDOG=1 while the store answers, so systemd restarts a daemon that can no longer
/// read its SQLite file. A PostgreSQL server that cannot be reached is another matter: a
/// restart would not bring it back, and every front end already answers with temporary
/// failures and reconnects by itself, so the daemon stays (and says so once per outage).
fn spawn_watchdog(shared: &Arc<Shared>) {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let shared2 = shared.clone();
    shared.tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        let mut in_outage = false;
        loop {
            tokio::select! {
                _ = shared2.shutdown.cancelled() => return,
                _ = tick.tick() => match shared2.authenticator.ping().await {
                    Ok(()) => {
                        if std::mem::take(&mut in_outage) {
                            info!("watchdog: the database answers again");
                        }
                        notify::watchdog();
                    }
                    Err(e) if e.is_database_outage() => {
                        if !std::mem::replace(&mut in_outage, true) {
                            warn!(error = %e, "watchdog: the database is unreachable; answering with temporary failures until it is back");
                        }
                        notify::watchdog();
                    }
                    Err(e) => error!(error = %e, "watchdog: store unreadable; not petting the watchdog"),
                },
            }
        }
    });
}

fn spawn_status(shared: &Arc<Shared>) {
    let shared2 = shared.clone();
    shared.tasks.spawn(async move {
        let mut tick = tokio::time::interval(shared2.config().daemon.status_interval.max(Duration::from_secs(1)));
        loop {
            tokio::select! {
                _ = shared2.shutdown.cancelled() => return,
                _ = tick.tick() => {
                    let text = format!(
                        "connections: {}, cached logins: {}, tracked logins: {}",
                        shared2.limiter.total(),
                        shared2.authenticator.cached_logins(),
                        shared2.ledger.len(),
                    );
                    notify::status(&text);
                }
            }
        }
    });
}
