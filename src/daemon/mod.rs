//! `relaykey serve`: start the front ends on one shared authenticator, tell systemd, reload on
//! SIGHUP and drain on SIGTERM.

mod listeners;
mod notify;
mod privileges;
mod unix_socket;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{error, info, warn};

pub use listeners::{listen_tcp, listen_unix};
pub use unix_socket::{bind_unix, chown, group_id, is_socket};

use crate::auth::{Authenticator, FailureThrottle, LoginLedger};
use crate::config::Config;
use crate::limits::ConnectionLimiter;
use crate::logging::{self, LogHandle};
use crate::message_limits::MessageLimits;

/// What every front end shares: one config, one authenticator, one limits table.
pub struct Shared {
    /// The current config; SIGHUP publishes a new one. Front ends read it per connection.
    pub config: watch::Receiver<Arc<Config>>,
    pub authenticator: Arc<Authenticator>,
    /// Which secret each login used (SASL writes, policy reads).
    pub ledger: Arc<LoginLedger>,
    /// Failed-AUTH delays per client address (SASL and relay).
    pub throttle: Arc<Mutex<FailureThrottle>>,
    /// Per-IP connection permits.
    pub limiter: ConnectionLimiter,
    /// Per-account message counters: one instance for the policy server, the relay and the API.
    pub message_limits: Arc<MessageLimits>,
    /// Cancelled on SIGTERM: accept loops stop, connections finish their request and close.
    pub shutdown: CancellationToken,
    /// Every listener and connection task, so that shutdown can wait for them.
    pub tasks: TaskTracker,
}

impl Shared {
    pub fn new(config: Config, authenticator: Authenticator) -> (Arc<Self>, watch::Sender<Arc<Config>>) {
        let throttle = FailureThrottle::new(config.auth.failure_delay, config.auth.max_failure_delay);
        let limiter = ConnectionLimiter::new(&config.limits);
        let (tx, rx) = watch::channel(Arc::new(config));
        let shared = Self {
            config: rx,
            authenticator: Arc::new(authenticator),
            ledger: Arc::new(LoginLedger::default()),
            throttle: Arc::new(Mutex::new(throttle)),
            limiter,
            message_limits: Arc::new(MessageLimits::new()),
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
        };
        (Arc::new(shared), tx)
    }

    /// A snapshot of the current config.
    pub fn config(&self) -> Arc<Config> {
        self.config.borrow().clone()
    }
}

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
        Err(message) => {
            error!("{message}");
            eprintln!("relaykey: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(path: Option<PathBuf>, config: Config, log: LogHandle) -> Result<(), String> {
    // Handlers before anything listens: a client (or systemd, once it reads READY=1) may send
    // SIGTERM or SIGHUP as soon as a socket accepts, and must not find the default action.
    let signals = Signals::install()?;
    let authenticator = Authenticator::open(&config.database, &config.auth)
        .map_err(|e| format!("cannot open the store {}: {e}", config.database.display()))?;
    let (shared, publish) = Shared::new(config.clone(), authenticator);

    // Front ends start here: each gets its listeners from `listen_unix` / `listen_tcp` (so that
    // socket activation works; failing startup on error), spawns its accept loop on
    // `shared.tasks` and pushes its name.
    let mut started: Vec<&str> = Vec::new();
    if config.policy.enabled {
        let p = &config.policy;
        let listener = listen_unix("policy", &p.socket, p.socket_mode, p.socket_group.as_deref())
            .map_err(|e| format!("policy: {e}"))?;
        shared.tasks.spawn(crate::policy::server::serve(listener, shared.clone()));
        started.push("policy");
    }
    if config.sasl.enabled {
        let s = &config.sasl;
        let listener = listen_unix("sasl", &s.socket, s.socket_mode, s.socket_group.as_deref())
            .map_err(|e| format!("sasl: {e}"))?;
        shared.tasks.spawn(crate::sasl::server::serve(listener, shared.clone()));
        started.push("sasl");
    }
    let mut outbox = None;
    if config.relay.enabled {
        let mut listeners = Vec::new();
        for l in &config.relay.listen {
            let listener = listen_tcp(&format!("relay:{}", l.address), l.address).await.map_err(|e| e.to_string())?;
            listeners.push(crate::smtp::RelayListener { listener, tls: l.tls });
        }
        outbox = Some(crate::smtp::serve_relay(shared.clone(), listeners).await.map_err(|e| format!("relay: {e}"))?);
        started.push("relay");
    }
    if config.api.enabled {
        crate::api::start(&shared, outbox).await.map_err(|e| e.to_string())?;
        started.push("api");
    }
    if started.is_empty() {
        warn!("no front end is enabled; serving nothing");
    }

    // Every listener is bound: leave root before anything is announced.
    privileges::drop_root(&config.daemon, &config.database, &listeners::bound_unix()).map_err(|e| e.to_string())?;
    for name in listeners::unclaimed() {
        warn!(socket = %name, "systemd passed a socket no enabled front end uses");
    }

    notify::ready();
    info!(front_ends = %started.join(","), database = %config.database.display(), "ready");
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
    Ok(())
}

/// The signals the daemon answers, watched from before READY=1 on.
struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> Result<Self, String> {
        Ok(Self {
            term: signal(SignalKind::terminate()).map_err(|e| format!("cannot watch SIGTERM: {e}"))?,
            int: signal(SignalKind::interrupt()).map_err(|e| format!("cannot watch SIGINT: {e}"))?,
            hup: signal(SignalKind::hangup()).map_err(|e| format!("cannot watch SIGHUP: {e}"))?,
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
    if new.database != old.database || new.sasl.socket != old.sasl.socket || new.policy.socket != old.policy.socket {
        warn!("reload: database or socket paths changed; restart required for those");
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
        *t = FailureThrottle::new(new.auth.failure_delay, new.auth.max_failure_delay);
    }
    publish.send_replace(Arc::new(new));
    info!(config = %path.display(), "reloaded");
}

/// Sends WATCHDOG=1 only while the store answers, so systemd restarts a daemon that can no
/// longer decide logins.
fn spawn_watchdog(shared: &Arc<Shared>) {
    let Some(interval) = sd_notify::watchdog_enabled() else { return };
    let shared2 = shared.clone();
    shared.tasks.spawn(async move {
        let mut tick = tokio::time::interval(interval / 2);
        loop {
            tokio::select! {
                _ = shared2.shutdown.cancelled() => return,
                _ = tick.tick() => match shared2.authenticator.ping().await {
                    Ok(()) => notify::watchdog(),
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
