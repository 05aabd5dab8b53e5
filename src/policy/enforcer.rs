//! Answers one policy request: gathers the facts the rules need (session slot and age, the
//! login's standing from the ledger and the authenticator, whether the login may use the
//! envelope sender (the sender directory), the account's message counts),
//! calls [`rules::decide`], records what the verdict implies, and logs the decision. Nothing
//! is decided here.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, RwLock};
use std::time::{Instant, SystemTime};

use tokio::sync::watch;
use tracing::{Level, debug, info, warn};

use crate::auth::{Authenticator, LoginLedger, Purpose};
use crate::config::{Config, UnknownLogin};
use crate::message_limits::MessageLimits;
use crate::senders::Directory;

use super::action::Action;
use super::codec::{PolicyRequest, ProtocolState};
use super::rules::{self, Facts, Login, LoginError, RateFact, Reason, SenderFact, Slot, Verdict};
use super::sessions::{ConnId, SessionKey, SessionTable};
use super::settings::{Settings, TcpCheck};
use super::tcp_table::Established;
use crate::log_text::LogText;

pub struct Enforcer {
    config: watch::Receiver<Arc<Config>>,
    /// Prepared from the latest config seen; replaced when a reload publishes another.
    settings: RwLock<Arc<Settings>>,
    authenticator: Arc<Authenticator>,
    ledger: Arc<LoginLedger>,
    sessions: Mutex<SessionTable>,
    /// Per-account message counters, shared with the relay and the API.
    message_limits: Arc<MessageLimits>,
    /// Who may send as which address (`[policy] sender_binding`).
    senders: Arc<Directory>,
    started: Instant,
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
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the session table knows of a request's session.
#[derive(Default)]
struct SessionFacts {
    key: Option<SessionKey>,
    /// The transaction whose message was counted already.
    counted: Option<String>,
}

impl Enforcer {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        authenticator: Arc<Authenticator>,
        ledger: Arc<LoginLedger>,
        message_limits: Arc<MessageLimits>,
        senders: Arc<Directory>,
    ) -> Self {
        let settings = RwLock::new(Arc::new(Settings::new(config.borrow().clone())));
        Self {
            config,
            settings,
            authenticator,
            ledger,
            sessions: Mutex::new(SessionTable::new()),
            message_limits,
            senders,
            started: Instant::now(),
        }
    }

    /// Decides `req`, received on policy connection `conn`, and logs the decision.
    pub async fn answer(&self, conn: ConnId, req: &PolicyRequest) -> Verdict {
        let settings = self.settings();
        let now = Instant::now();
        let mut facts = Facts {
            client: req.client_address,
            slot: None,
            session_age: None,
            session_timeout: settings.session_timeout(),
            login: Login::NotChecked,
            sender: SenderFact::NotChecked,
            rate: None,
            counts_unreadable: false,
            fallback: settings.fallback().clone(),
        };
        let session = self.follow_session(conn, req, &settings, now, &mut facts).await;
        let account = self.check_login(req, &settings, now, &mut facts).await;
        if settings.policy().sender_binding {
            facts.sender = self.check_sender(req);
        }
        let verdict = self.decide_and_count(req, &settings, &mut facts, account.as_deref(), &session).await;
        if let Some(key) = session.key {
            // smtpd hangs up after a 421: free the slot now rather than at its next CONNECT.
            if verdict.action.ends_session() {
                lock(&self.sessions).end(&key);
            }
            if verdict.count_message {
                lock(&self.sessions).mark_counted(&key, req.instance.as_deref());
            }
        }
        log_decision(req, &verdict, &facts);
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

    /// The settings of the current config, prepared again only when a reload published another.
    fn settings(&self) -> Arc<Settings> {
        let config = self.config.borrow();
        let current = self.settings.read().unwrap_or_else(PoisonError::into_inner).clone();
        if current.prepared_from(&config) {
            return current;
        }
        let fresh = Arc::new(Settings::new(config.clone()));
        *self.settings.write().unwrap_or_else(PoisonError::into_inner) = fresh.clone();
        fresh
    }

    /// Opens the session at CONNECT (filling `facts.slot`) or follows it (its age).
    async fn follow_session(
        &self,
        conn: ConnId,
        req: &PolicyRequest,
        settings: &Settings,
        now: Instant,
        facts: &mut Facts,
    ) -> SessionFacts {
        let Some(key) = SessionKey::of(req) else { return SessionFacts::default() };
        if req.protocol_state == ProtocolState::Connect {
            let limit = settings.connection_limits.as_ref().map_or(u32::MAX, |t| t.limit_for(key.client));
            lock(&self.sessions).set_ipv6_prefix(settings.ipv6_prefix());
            let slot = self.open_session(conn, key, limit, settings.tcp, now).await;
            facts.slot = settings.connection_limits.is_some().then_some(slot);
            return SessionFacts { key: Some(key), counted: None };
        }
        let view = lock(&self.sessions).follow(conn, key, now);
        facts.session_age = settings.policy().session_limit.then_some(view.age);
        SessionFacts { key: Some(key), counted: view.counted }
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
        settings: &Settings,
        now: Instant,
        facts: &mut Facts,
    ) -> Option<String> {
        let Some(user) = req.sasl_username.as_deref() else {
            facts.login = Login::Anonymous;
            return None;
        };
        let pc = settings.policy();
        let ip = req.client_address;
        let checks = pc.revocation && rules::checks_login(&req.protocol_state);
        let grants = match self.ledger.grants_or_stored(user, ip, now).await {
            Ok(grants) => grants,
            Err(e) => {
                warn!(proto = "policy", error = %e, "cannot read the login ledger");
                facts.login = if checks { Login::Error(LoginError::StoreUnreadable) } else { Login::NotChecked };
                return Some(user.trim().to_lowercase());
            }
        };
        let account = grants.last().map_or_else(|| user.trim().to_lowercase(), |g| g.account.clone());
        if !checks {
            facts.login = Login::NotChecked;
            return Some(account);
        }
        facts.login = if grants.is_empty() {
            // No record, in memory or in the store: the AUTH is older than the ledger keeps,
            // or went to another SASL server. See `UnknownLogin`.
            match pc.unknown_login {
                UnknownLogin::Dunno => Login::Valid { account: account.clone() },
                UnknownLogin::Defer => Login::Unknown,
                UnknownLogin::CheckAccount => match self.authenticator.recheck_username(user, ip).await {
                    Ok(None) => Login::Valid { account: account.clone() },
                    Ok(Some(why)) => Login::Revoked(why),
                    Err(e) => {
                        warn!(proto = "policy", error = %e, "cannot check a login against its account");
                        Login::Error(LoginError::StoreUnreadable)
                    }
                },
            }
        } else {
            let rechecks = self.authenticator.recheck_all(grants.iter().map(|g| g.as_ref()), ip, Purpose::Smtp).await;
            for (grant, recheck) in grants.iter().zip(&rechecks) {
                match recheck {
                    crate::auth::Decision::Denied(_) => self.ledger.revoked(user, ip, &grant.credential, now),
                    crate::auth::Decision::TempFail(e) => {
                        warn!(proto = "policy", error = %e, "cannot re-check a login");
                    }
                    crate::auth::Decision::Granted(_) => {}
                }
            }
            Login::from_rechecks(&account, rechecks)
        };
        Some(account)
    }

    /// May the session's login use the envelope sender? Like Postfix's
    /// `smtpd_sender_login_maps`, the login decides (its account's verified entries); the
    /// null sender and requests without a login are not checked.
    fn check_sender(&self, req: &PolicyRequest) -> SenderFact {
        let (Some(login), Some(sender)) = (req.sasl_username.as_deref(), req.sender.as_deref()) else {
            return SenderFact::NotChecked;
        };
        if !rules::checks_sender(&req.protocol_state) {
            return SenderFact::NotChecked;
        }
        match self.senders.may_login_send(login, sender) {
            Ok(check) if check.is_allowed() => SenderFact::Allowed,
            Ok(_) => SenderFact::NotOwned { login: login.to_string() },
            Err(e) => {
                warn!(proto = "policy", error = %e, "cannot read the sender directory");
                SenderFact::Unreadable
            }
        }
    }

    /// Decides; at a message's counting point, with the account's counts read, compared and
    /// updated in one store transaction, so that concurrent messages of one account (through
    /// any host) cannot both take the last slot.
    async fn decide_and_count(
        &self,
        req: &PolicyRequest,
        settings: &Settings,
        facts: &mut Facts,
        account: Option<&str>,
        session: &SessionFacts,
    ) -> Verdict {
        let limits = settings.rate_limits;
        let already_counted = req.protocol_state == ProtocolState::EndOfMessage
            && req.instance.is_some()
            && session.counted.as_deref() == req.instance.as_deref();
        let counting = !limits.is_unlimited() && rules::counts_messages(&req.protocol_state) && !already_counted;
        let Some(account) = account.filter(|_| counting) else { return rules::decide(req, facts) };
        // A message refused for another reason (or an error) is decided without the counts:
        // only one that passes every other rule gets as far as the rate.
        let without_counts = rules::decide(req, facts);
        if without_counts.reason != Reason::Ok {
            return without_counts;
        }
        let (request, mut seen) = (req.clone(), facts.clone());
        let counted = self
            .message_limits
            .decide(account, SystemTime::now(), move |counts, t| {
                seen.rate = Some(RateFact { usage: counts.usage(t), limits });
                let verdict = rules::decide(&request, &seen);
                let count = verdict.count_message;
                ((verdict, seen.rate), count)
            })
            .await;
        match counted {
            Ok((verdict, rate)) => {
                facts.rate = rate;
                verdict
            }
            Err(e) => {
                warn!(proto = "policy", error = %e, "cannot count the message");
                facts.counts_unreadable = true;
                rules::decide(req, facts)
            }
        }
    }
}

/// One line per decision: `decision=dunno|refuse action=... reason=...`.
fn log_decision(req: &PolicyRequest, verdict: &Verdict, facts: &Facts) {
    crate::metrics::record_policy(verdict.action.kind(), verdict.reason.as_str());
    let level = decision_level(verdict);
    let enabled = match level {
        Level::DEBUG => tracing::enabled!(Level::DEBUG),
        _ => tracing::enabled!(Level::INFO),
    };
    if !enabled {
        return;
    }
    let error = LogText::or_dash(match (&facts.login, &facts.sender) {
        (Login::Error(e), _) => Some(e.as_str()),
        (_, SenderFact::Unreadable) => Some("sender_directory_unreadable"),
        _ if facts.counts_unreadable => Some("message_counts_unreadable"),
        _ => None,
    });
    let ip = req.client_address.map(|ip| ip.to_string()).unwrap_or_default();
    let user = LogText::or_dash(req.sasl_username.as_deref());
    macro_rules! decision {
        ($level:ident) => {
            $level!(
                proto = "policy",
                decision = verdict.action.kind(),
                action = %verdict.action,
                reason = %verdict.reason,
                state = req.protocol_state.as_str(),
                ip = %ip,
                user = %user,
                error = %error,
                "policy"
            )
        };
    }
    match level {
        Level::DEBUG => decision!(debug),
        _ => decision!(info),
    }
}

/// Refusals and errors at info; a pass (`DUNNO`, most requests) at debug, so that the default
/// log shows what was refused and what went wrong without a line per request.
fn decision_level(verdict: &Verdict) -> Level {
    let passed = verdict.action == Action::Dunno && verdict.reason != Reason::InternalError;
    if passed { Level::DEBUG } else { Level::INFO }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::DenyReason;

    #[test]
    fn passes_are_logged_at_debug_and_refusals_and_errors_at_info() {
        let verdict = |action, reason| Verdict { action, reason, count_message: false };
        let revoked = Action::login_revoked(DenyReason::SecretRevoked);
        for (v, want) in [
            (verdict(Action::Dunno, Reason::Ok), Level::DEBUG),
            (verdict(Action::Dunno, Reason::Unauthenticated), Level::DEBUG),
            (verdict(revoked, Reason::Revoked(DenyReason::SecretRevoked)), Level::INFO),
            (verdict(Action::session_expired(), Reason::SessionExpired), Level::INFO),
            (verdict(Action::temporary_failure(), Reason::InternalError), Level::INFO),
            // A fallback of DUNNO still reports the error.
            (verdict(Action::Dunno, Reason::InternalError), Level::INFO),
        ] {
            assert_eq!(decision_level(&v), want, "{v:?}");
        }
    }
}
