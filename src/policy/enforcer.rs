//! Answers one policy request: gathers the facts the rules need (session slot and age, the
//! login's standing from the ledger and the store, the account's message counts), calls
//! [`rules::decide`], records what the verdict implies, and logs the decision.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::watch;
use tracing::{info, warn};

use crate::auth::{Authenticator, Decision, LoginLedger, Purpose};
use crate::config::{Config, PolicyConfig, UnknownLogin};
use crate::limits::LimitTable;

use super::action::Action;
use super::codec::{PolicyRequest, ProtocolState};
use super::rates::{MessageRates, Usage};
use super::rules::{self, Facts, Login, RateFact, Slot, Verdict};
use super::sessions::{ConnId, SessionKey, SessionTable};
use super::tcp_table::Established;
use crate::log_text::LogText;

pub struct Enforcer {
    config: watch::Receiver<Arc<Config>>,
    authenticator: Arc<Authenticator>,
    ledger: Arc<LoginLedger>,
    sessions: Mutex<SessionTable>,
    rates: Mutex<MessageRates>,
    started: Instant,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TcpCheck {
    Off,
    On { startup_window: Duration },
}

/// The kernel's TCP table, or `None` (logged) when it cannot be read: then tracked sessions
/// are all we count.
async fn read_tcp_table() -> Option<Established> {
    match tokio::task::spawn_blocking(Established::read).await {
        Ok(Ok(alive)) => Some(alive),
        Ok(Err(e)) => {
            warn!(proto = "policy", error = %e, "cannot read the TCP table; counting tracked sessions");
            None
        }
        Err(e) => {
            warn!(proto = "policy", error = %e, "TCP table task failed; counting tracked sessions");
            None
        }
    }
}

/// Locks a table; a panic elsewhere while holding it leaves counts that are still usable.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Enforcer {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        authenticator: Arc<Authenticator>,
        ledger: Arc<LoginLedger>,
    ) -> Self {
        Self {
            config,
            authenticator,
            ledger,
            sessions: Mutex::new(SessionTable::new()),
            rates: Mutex::new(MessageRates::new(Instant::now())),
            started: Instant::now(),
        }
    }

    /// Decides `req`, received on policy connection `conn`, and logs the decision.
    pub async fn answer(&self, conn: ConnId, req: &PolicyRequest) -> Verdict {
        let config = self.config.borrow().clone();
        let pc = &config.policy;
        let now = Instant::now();
        let key = SessionKey::of(req);
        let mut facts = Facts {
            client: req.client_address,
            slot: None,
            session_age: None,
            session_timeout: config.limits.session_timeout,
            login: Login::NotChecked,
            rate: None,
            fallback: pc.fallback().unwrap_or_else(|_| Action::temporary_failure()),
        };
        let mut counted = None;
        if let Some(key) = key {
            if req.protocol_state == ProtocolState::Connect {
                let limit =
                    if pc.connection_limit { LimitTable::new(&config.limits).limit_for(key.client) } else { u32::MAX };
                let tcp = match pc.tcp_table {
                    // Sessions begun before a restart last at most this long.
                    true => {
                        TcpCheck::On { startup_window: config.limits.session_timeout + config.limits.command_timeout }
                    }
                    false => TcpCheck::Off,
                };
                let slot = self.open_session(conn, key, limit, tcp, now).await;
                facts.slot = pc.connection_limit.then_some(slot);
            } else {
                let view = lock(&self.sessions).follow(conn, key, now);
                facts.session_age = pc.session_limit.then_some(view.age);
                counted = view.counted;
            }
        }
        let account = self.check_login(req, pc, now, &mut facts).await;
        let verdict = self.decide_and_count(req, pc, &mut facts, account.as_deref(), counted.as_deref(), now);
        if let Some(key) = key {
            // smtpd hangs up after a 421: free the slot now rather than at its next CONNECT.
            if verdict.action.ends_session() {
                lock(&self.sessions).end(&key);
            }
            if verdict.count_message {
                lock(&self.sessions).mark_counted(&key, req.instance.as_deref());
            }
        }
        log_decision(req, &verdict, &facts.login);
        verdict
    }

    /// The policy connection closed: the sessions it held are over.
    pub fn connection_closed(&self, conn: ConnId) {
        lock(&self.sessions).release_conn(conn);
    }

    /// Live sessions from `ip` (for tests and status lines).
    pub fn live_sessions(&self, ip: IpAddr) -> u32 {
        lock(&self.sessions).live(ip)
    }

    /// Admits a CONNECT if a slot is free; if not, asks the kernel which of the address's
    /// sessions are really still connected and tries once more. Until every session begun
    /// before this process started must have ended (`startup_window`), the kernel's count of
    /// connections to the same server endpoint is a floor, so a restart does not reset counts.
    async fn open_session(&self, conn: ConnId, key: SessionKey, limit: u32, tcp: TcpCheck, now: Instant) -> Slot {
        let mut snapshot = None;
        if let TcpCheck::On { startup_window } = tcp
            && now.saturating_duration_since(self.started) < startup_window
        {
            snapshot = read_tcp_table().await;
        }
        let floor = snapshot.as_ref().map_or(0, |alive| SessionTable::kernel_count(&key, alive));
        let full = match lock(&self.sessions).open(conn, key, limit, floor, now) {
            Ok(()) => return Slot::Granted,
            Err(full) => full,
        };
        if tcp == TcpCheck::Off {
            return Slot::Full { live: full.live, limit };
        }
        let alive = match snapshot {
            Some(alive) => alive,
            None => match read_tcp_table().await {
                Some(alive) => alive,
                None => return Slot::Full { live: full.live, limit },
            },
        };
        let mut sessions = lock(&self.sessions);
        sessions.forget_dead(key.client, &alive);
        match sessions.open(conn, key, limit, floor, now) {
            Ok(()) => Slot::Granted,
            Err(full) => Slot::Full { live: full.live, limit },
        }
    }

    /// Fills `facts.login`; returns the account whose messages the rate limit counts.
    async fn check_login(
        &self,
        req: &PolicyRequest,
        pc: &PolicyConfig,
        now: Instant,
        facts: &mut Facts,
    ) -> Option<String> {
        let Some(user) = req.sasl_username.as_deref() else {
            facts.login = Login::Anonymous;
            return None;
        };
        let ip = req.client_address;
        let grant = self.ledger.lookup(user, ip, now);
        let account = grant.as_ref().map_or_else(|| user.trim().to_lowercase(), |g| g.account.clone());
        if !(pc.revocation && rules::checks_login(&req.protocol_state)) {
            facts.login = Login::NotChecked;
            return Some(account);
        }
        facts.login = match grant {
            Some(grant) => match self.authenticator.recheck(&grant, ip, Purpose::Smtp).await {
                Decision::Granted(_) => Login::Valid { account: account.clone() },
                Decision::Denied(why) => Login::Revoked(why),
                Decision::TempFail(e) => Login::Error(e.to_string()),
            },
            // No record: relaykey restarted since this session's AUTH (the ledger is in memory),
            // or the AUTH went to another SASL server. See `UnknownLogin`.
            None => match pc.unknown_login {
                UnknownLogin::Dunno => Login::Valid { account: account.clone() },
                UnknownLogin::Defer => Login::Unknown,
                UnknownLogin::CheckAccount => match self.authenticator.recheck_username(user, ip).await {
                    Ok(None) => Login::Valid { account: account.clone() },
                    Ok(Some(why)) => Login::Revoked(why),
                    Err(e) => Login::Error(e.to_string()),
                },
            },
        };
        Some(account)
    }

    /// Decides, holding the rate table while the message counts are read, compared and
    /// updated, so that concurrent messages of one account cannot both take the last slot.
    fn decide_and_count(
        &self,
        req: &PolicyRequest,
        pc: &PolicyConfig,
        facts: &mut Facts,
        account: Option<&str>,
        counted: Option<&str>,
        now: Instant,
    ) -> Verdict {
        let limits = Usage { minute: pc.messages_per_minute, hour: pc.messages_per_hour, day: pc.messages_per_day };
        let already_counted = req.protocol_state == ProtocolState::EndOfMessage
            && req.instance.is_some()
            && counted == req.instance.as_deref();
        let counting = limits != Usage::default() && rules::counts_messages(&req.protocol_state) && !already_counted;
        let Some(account) = account.filter(|_| counting) else { return rules::decide(req, facts) };
        let mut rates = lock(&self.rates);
        facts.rate = Some(RateFact { usage: rates.usage(account, now), limits });
        let verdict = rules::decide(req, facts);
        if verdict.count_message {
            rates.record(account, now);
        }
        verdict
    }
}

/// One line per decision: `decision=dunno|refuse action=... reason=...`.
fn log_decision(req: &PolicyRequest, verdict: &Verdict, login: &Login) {
    let ip = req.client_address.map(|ip| ip.to_string()).unwrap_or_default();
    let user = LogText::or_dash(req.sasl_username.as_deref());
    let detail = LogText::or_dash(match login {
        Login::Error(e) => Some(e.as_str()),
        _ => None,
    });
    crate::metrics::record_policy(verdict.action.kind(), &verdict.reason.to_string());
    info!(
        proto = "policy",
        decision = verdict.action.kind(),
        action = %verdict.action,
        reason = %verdict.reason,
        state = req.protocol_state.as_str(),
        ip = %ip,
        user = %user,
        error = %detail,
        "policy"
    );
}
