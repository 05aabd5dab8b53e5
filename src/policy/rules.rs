//! The policy decision: a pure function of one request and the facts the server gathered for
//! it (session slot and age, the login's current standing, whether the login may use the
//! envelope sender, the account's message counts).
//!
//! Order: session limit at CONNECT, then the session time limit, then the login's standing,
//! then sender binding, then the message rate. Anything else, including unauthenticated
//! traffic, gets `DUNNO`.

use std::fmt;
use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{Decision, DenyReason};

use super::action::{Action, RateWindow};
use super::codec::{PolicyRequest, ProtocolState};
use crate::message_limits::Usage;

/// The result of the session limit at CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Slot {
    Granted,
    Full { live: u32, limit: u32 },
}

/// What is known of the session's login now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Login {
    /// No `sasl_username`: nothing to check.
    Anonymous,
    /// Not checked at this stage (or revocation is off).
    NotChecked,
    /// The login still holds; `account` is the account it belongs to.
    Valid { account: String },
    /// The login no longer holds.
    Revoked(DenyReason),
    /// No record of the login and the config says to ask for a new one.
    Unknown,
    /// The login's standing could not be told.
    Error(LoginError),
}

/// Why a login's standing could not be told: the `error=` log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginError {
    /// The store (or the authenticator's view of it) could not be read.
    StoreUnreadable,
}

impl LoginError {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::StoreUnreadable => "store_unreadable",
        }
    }
}

impl Login {
    /// The standing of a (user, address) pair from the re-checks of every recent grant the
    /// ledger holds for it. Postfix does not say which of them a session used, so one that no
    /// longer holds refuses them all; one that cannot be checked makes the answer unknown.
    pub fn from_rechecks(account: &str, rechecks: impl IntoIterator<Item = Decision>) -> Self {
        let mut standing = Self::Valid { account: account.to_string() };
        for recheck in rechecks {
            match recheck {
                Decision::Granted(_) => {}
                Decision::Denied(why) => return Self::Revoked(why),
                Decision::TempFail(_) => standing = Self::Error(LoginError::StoreUnreadable),
            }
        }
        standing
    }
}

/// Whether the session's login may use the envelope sender (`[policy] sender_binding`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderFact {
    /// Not asked: binding off, no login, the null sender, or a state without a sender.
    NotChecked,
    Allowed,
    /// The login's account owns no verified entry covering the sender (another account does,
    /// nobody does, or only a pending entry does).
    NotOwned {
        login: String,
    },
    /// The sender directory could not be read; the fallback answers.
    Unreadable,
}

/// The account's message counts at a counting point (once per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateFact {
    pub usage: Usage,
    pub limits: Usage,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Facts {
    pub client: Option<IpAddr>,
    /// Set at CONNECT when the session limit is on.
    pub slot: Option<Slot>,
    /// The session's age, when the session limit is on and the session is known.
    pub session_age: Option<Duration>,
    pub session_timeout: Duration,
    pub login: Login,
    pub sender: SenderFact,
    /// Set at the message's counting point when a rate limit is on and the login is known.
    pub rate: Option<RateFact>,
    /// The message counts could not be read (the store failed); the fallback answers.
    pub counts_unreadable: bool,
    /// The answer to internal errors.
    pub fallback: Action,
}

/// Why an action was chosen: the `reason=` log field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    Ok,
    Unauthenticated,
    TooManyConnections,
    SessionExpired,
    Revoked(DenyReason),
    LoginUnknown,
    RateLimited(RateWindow),
    SenderNotOwned,
    InternalError,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Unauthenticated => "unauthenticated",
            Self::TooManyConnections => "too_many_connections",
            Self::SessionExpired => "session_expired",
            Self::Revoked(r) => r.as_str(),
            Self::LoginUnknown => "login_unknown",
            Self::RateLimited(RateWindow::Minute) => "rate_limit_minute",
            Self::RateLimited(RateWindow::Hour) => "rate_limit_hour",
            Self::RateLimited(RateWindow::Day) => "rate_limit_day",
            Self::SenderNotOwned => "sender_not_owned",
            Self::InternalError => "internal_error",
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision and what the server must record because of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    pub action: Action,
    pub reason: Reason,
    /// Count this message against the account's rate limit.
    pub count_message: bool,
}

impl Verdict {
    fn new(action: Action, reason: Reason) -> Self {
        Self { action, reason, count_message: false }
    }
}

/// The states at which an authenticated session's login is re-checked.
pub fn checks_login(state: &ProtocolState) -> bool {
    matches!(state, ProtocolState::Mail | ProtocolState::Rcpt | ProtocolState::Data | ProtocolState::EndOfMessage)
}

/// The states whose requests carry the envelope sender of an open transaction: with
/// `smtpd_delay_reject = no` the sender list runs at MAIL; with the default `yes`, at RCPT.
pub fn checks_sender(state: &ProtocolState) -> bool {
    checks_login(state)
}

/// The states at which a message may be counted: DATA (BDAT too) is sent once per message;
/// END-OF-MESSAGE counts only a message that DATA did not (when only end-of-data
/// restrictions ask us).
pub fn counts_messages(state: &ProtocolState) -> bool {
    matches!(state, ProtocolState::Data | ProtocolState::EndOfMessage)
}

pub fn decide(req: &PolicyRequest, facts: &Facts) -> Verdict {
    if let Some(Slot::Full { limit, .. }) = facts.slot {
        return match facts.client {
            Some(ip) => Verdict::new(Action::too_many_connections(ip, limit), Reason::TooManyConnections),
            None => Verdict::new(facts.fallback.clone(), Reason::InternalError),
        };
    }
    if req.protocol_state != ProtocolState::Connect && facts.session_age.is_some_and(|age| age > facts.session_timeout)
    {
        return Verdict::new(Action::session_expired(), Reason::SessionExpired);
    }
    match &facts.login {
        Login::Anonymous => return Verdict::new(Action::Dunno, Reason::Unauthenticated),
        Login::Revoked(why) => return Verdict::new(Action::login_revoked(*why), Reason::Revoked(*why)),
        Login::Unknown => return Verdict::new(Action::login_unknown(), Reason::LoginUnknown),
        Login::Error(_) => return Verdict::new(facts.fallback.clone(), Reason::InternalError),
        Login::Valid { .. } | Login::NotChecked => {}
    }
    match &facts.sender {
        SenderFact::NotOwned { login } => {
            return Verdict::new(Action::sender_not_owned(login), Reason::SenderNotOwned);
        }
        SenderFact::Unreadable => return Verdict::new(facts.fallback.clone(), Reason::InternalError),
        SenderFact::NotChecked | SenderFact::Allowed => {}
    }
    if facts.counts_unreadable {
        return Verdict::new(facts.fallback.clone(), Reason::InternalError);
    }
    if let Some(rate) = &facts.rate {
        for window in RateWindow::ALL {
            let limit = rate.limits.get(window);
            if limit > 0 && rate.usage.get(window) >= limit {
                return Verdict::new(Action::rate_limited(window, limit), Reason::RateLimited(window));
            }
        }
        return Verdict { action: Action::Dunno, reason: Reason::Ok, count_message: true };
    }
    Verdict::new(Action::Dunno, Reason::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::codec::{Attributes, PolicyRequest};

    fn request(state: &str, user: &str, rcpts: u32) -> PolicyRequest {
        let attrs = Attributes(
            [
                ("request", "smtpd_access_policy"),
                ("protocol_state", state),
                ("client_address", "127.0.0.2"),
                ("sasl_username", user),
                ("recipient_count", &rcpts.to_string()),
            ]
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect(),
        );
        PolicyRequest::from_attributes(&attrs).unwrap()
    }

    fn facts() -> Facts {
        Facts {
            client: Some("127.0.0.2".parse().unwrap()),
            slot: None,
            session_age: Some(Duration::from_secs(1)),
            session_timeout: Duration::from_secs(600),
            login: Login::NotChecked,
            sender: SenderFact::NotChecked,
            rate: None,
            counts_unreadable: false,
            fallback: Action::temporary_failure(),
        }
    }

    fn code(v: &Verdict) -> Option<u16> {
        match &v.action {
            Action::Dunno => None,
            Action::Refuse(r) => Some(r.code()),
        }
    }

    #[test]
    fn connect_over_the_limit_gets_421_and_within_it_dunno() {
        let req = request("CONNECT", "", 0);
        let full = Facts { slot: Some(Slot::Full { live: 20, limit: 20 }), ..facts() };
        let v = decide(&req, &full);
        assert_eq!((code(&v), v.reason), (Some(421), Reason::TooManyConnections));
        let ok = Facts { slot: Some(Slot::Granted), login: Login::Anonymous, ..facts() };
        assert_eq!(decide(&req, &ok).action, Action::Dunno);
    }

    #[test]
    fn old_sessions_get_421_4_4_2_except_at_connect() {
        let old = Facts { session_age: Some(Duration::from_secs(601)), ..facts() };
        assert_eq!(decide(&request("MAIL", "", 0), &old).action, Action::session_expired());
        assert_eq!(decide(&request("CONNECT", "", 0), &old).action, Action::Dunno);
        let young = Facts { session_age: Some(Duration::from_secs(600)), ..facts() };
        assert_eq!(decide(&request("RCPT", "", 0), &young).action, Action::Dunno);
    }

    #[test]
    fn revoked_logins_get_5_7_1_with_the_reason() {
        for why in [DenyReason::SecretRevoked, DenyReason::AccountDisabled, DenyReason::IpNotAllowed] {
            let f = Facts { login: Login::Revoked(why), ..facts() };
            let v = decide(&request("MAIL", "a@example.com", 0), &f);
            let Action::Refuse(r) = &v.action else { panic!("{v:?}") };
            assert_eq!((r.code(), r.status().map(|s| s.to_string())), (554, Some("5.7.1".into())));
            assert_eq!(v.reason.to_string(), why.as_str());
        }
    }

    #[test]
    fn internal_errors_get_the_configured_fallback() {
        let fallback: Action = "DUNNO".parse().unwrap();
        let f = Facts { login: Login::Error(LoginError::StoreUnreadable), fallback: fallback.clone(), ..facts() };
        let v = decide(&request("RCPT", "a@example.com", 0), &f);
        assert_eq!((v.action, v.reason), (fallback, Reason::InternalError));
    }

    #[test]
    fn one_revoked_grant_of_a_user_and_address_refuses_them_all() {
        let granted = || Decision::Granted(grant());
        let revoked = Decision::Denied(DenyReason::SecretRevoked);
        let failed = Decision::TempFail(crate::auth::TempFailReason::Task("disk".into()));
        let valid = Login::Valid { account: "a@example.com".into() };
        for (rechecks, want) in [
            (vec![granted()], valid.clone()),
            (vec![granted(), granted()], valid),
            (vec![granted(), revoked.clone()], Login::Revoked(DenyReason::SecretRevoked)),
            (vec![revoked.clone(), granted()], Login::Revoked(DenyReason::SecretRevoked)),
            (vec![failed.clone(), revoked], Login::Revoked(DenyReason::SecretRevoked)),
            (vec![granted(), failed], Login::Error(LoginError::StoreUnreadable)),
        ] {
            assert_eq!(Login::from_rechecks("a@example.com", rechecks.clone()), want, "{rechecks:?}");
        }
        let v = decide(
            &request("MAIL", "a@example.com", 0),
            &Facts {
                login: Login::from_rechecks(
                    "a@example.com",
                    [granted(), Decision::Denied(DenyReason::AccountDisabled)],
                ),
                ..facts()
            },
        );
        assert_eq!((code(&v), v.reason), (Some(554), Reason::Revoked(DenyReason::AccountDisabled)));
    }

    fn grant() -> crate::auth::Grant {
        crate::auth::Grant {
            username: "a@example.com".into(),
            account_id: 1,
            account: "a@example.com".into(),
            credential: crate::auth::CredentialRef::ApiKey { id: 1, hash: "h".into() },
            permissions: None,
            allow: Default::default(),
            cached: false,
        }
    }

    #[test]
    fn unauthenticated_traffic_gets_dunno() {
        let f = Facts { login: Login::Anonymous, ..facts() };
        let v = decide(&request("RCPT", "", 0), &f);
        assert_eq!((v.action, v.reason), (Action::Dunno, Reason::Unauthenticated));
    }

    #[test]
    fn a_sender_the_login_does_not_own_gets_553_5_7_1_in_postfix_words() {
        // smtpd writes `<x@other.example>: Sender address rejected: ` before the text.
        let f = Facts { sender: SenderFact::NotOwned { login: "ann@example.com".into() }, ..facts() };
        let v = decide(&request("MAIL", "ann@example.com", 0), &f);
        let Action::Refuse(r) = &v.action else { panic!("{v:?}") };
        assert_eq!((r.code(), r.status().map(|s| s.to_string())), (553, Some("5.7.1".into())));
        assert_eq!(r.text(), "not owned by user ann@example.com");
        assert_eq!(v.reason.to_string(), "sender_not_owned");
        let allowed = Facts { sender: SenderFact::Allowed, ..facts() };
        assert_eq!(decide(&request("MAIL", "ann@example.com", 0), &allowed).action, Action::Dunno);
        let unreadable = Facts { sender: SenderFact::Unreadable, ..facts() };
        let v = decide(&request("MAIL", "ann@example.com", 0), &unreadable);
        assert_eq!((v.action, v.reason), (Action::temporary_failure(), Reason::InternalError));
        // A revoked login is told so first: its sender does not matter any more.
        let revoked = Facts { login: Login::Revoked(DenyReason::SecretRevoked), ..f };
        assert_eq!(decide(&request("MAIL", "ann@example.com", 0), &revoked).reason.to_string(), "secret_revoked");
    }

    #[test]
    fn rate_limit_counts_a_message_once_and_refuses_with_4_7_1_when_used_up() {
        let limits = Usage { minute: 0, hour: 2, day: 0 };
        let login = Login::Valid { account: "a@example.com".into() };
        let under = Facts {
            login: login.clone(),
            rate: Some(RateFact { usage: Usage { minute: 1, hour: 1, day: 1 }, limits }),
            ..facts()
        };
        let v = decide(&request("DATA", "a@example.com", 5), &under);
        assert_eq!((v.action, v.count_message), (Action::Dunno, true));
        let used =
            Facts { login, rate: Some(RateFact { usage: Usage { minute: 9, hour: 2, day: 9 }, limits }), ..facts() };
        let v = decide(&request("DATA", "a@example.com", 5), &used);
        assert_eq!((code(&v), v.reason, v.count_message), (Some(450), Reason::RateLimited(RateWindow::Hour), false));
    }

    #[test]
    fn message_counts_that_cannot_be_read_get_the_fallback_not_a_limit() {
        let login = Login::Valid { account: "a@example.com".into() };
        let unreadable = Facts { login, counts_unreadable: true, ..facts() };
        let v = decide(&request("DATA", "a@example.com", 5), &unreadable);
        assert_eq!((code(&v), v.reason, v.count_message), (Some(451), Reason::InternalError, false));
        let dunno = Facts { fallback: Action::Dunno, ..unreadable };
        let v = decide(&request("DATA", "a@example.com", 5), &dunno);
        assert_eq!((v.action, v.reason), (Action::Dunno, Reason::InternalError), "the configured fallback");
    }
}
