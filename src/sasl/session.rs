//! One auth-client connection's state: the handshake phase, the pending requests by id and the
//! LOGIN steps. It decides what to answer and when to authenticate; it never awaits, reads a
//! clock or touches a socket (the server passes `now` and the verdicts in).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use super::codec::{AuthRequest, CodecError, Mechanism, Reply, Request};
use crate::auth::Decision;
use crate::auth::mechanism::{
    self, LOGIN_PASSWORD_PROMPT, LOGIN_USERNAME_PROMPT, MechanismError, decode_base64, decode_login_password,
    decode_login_username, decode_plain,
};
use crate::secret::Secret;

/// Pending requests waiting for a client CONT are dropped silently after this long
/// (Dovecot's `MASTER_AUTH_SERVER_TIMEOUT_SECS`); Postfix never sends CANCEL.
pub const PENDING_TIMEOUT: Duration = Duration::from_secs(150);
/// Requests one connection may have open at once; Postfix uses one at a time.
pub const MAX_PENDING: usize = 128;

/// Longest login name echoed back in `FAIL … user=`.
const MAX_ECHOED_USER: usize = 256;

/// What the server hands the session.
#[derive(Debug)]
pub enum Input {
    Line(Result<Request, CodecError>),
    /// The in-flight limit for this request's client address is reached.
    Busy {
        id: u32,
    },
}

/// A login to decide: the server awaits the Authenticator and calls [`Session::on_verdict`].
#[derive(Debug)]
pub struct AuthAttempt {
    pub id: u32,
    pub username: String,
    pub secret: Secret,
    pub remote_ip: Option<IpAddr>,
    pub mechanism: Mechanism,
}

/// A request refused before any verification; `reason` is for the log only.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub id: u32,
    pub user: Option<String>,
    /// The mechanism of the refused request, when it got as far as naming a known one.
    pub mechanism: Option<Mechanism>,
    pub remote_ip: Option<IpAddr>,
    pub reason: RefuseReason,
    pub reply: Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The response holds no well-formed credential (`auth::mechanism`): an authorization id
    /// other than the login name, an empty or NUL-bearing field, invalid UTF-8.
    Credentials(MechanismError),
    InvalidBase64,
    /// `require_secured` is set and the SMTP session was not over TLS.
    NotSecured,
    UnsupportedMechanism,
    TooManyPending,
    /// The client address has too many logins in flight.
    Busy,
}

impl RefuseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Credentials(e) => e.as_str(),
            Self::InvalidBase64 => "invalid_base64",
            Self::NotSecured => "not_secured",
            Self::UnsupportedMechanism => "unsupported_mechanism",
            Self::TooManyPending => "too_many_pending",
            Self::Busy => "busy",
        }
    }

    /// Refusals of a presented credential count as failed guesses and wait like one.
    pub fn is_guess(self) -> bool {
        matches!(self, Self::Credentials(e) if e.is_guess())
    }
}

/// The server's next move.
#[derive(Debug)]
pub enum Step {
    Nothing,
    Reply(Reply),
    Authenticate(AuthAttempt),
    Refuse(Refusal),
    /// A protocol violation Dovecot also disconnects for.
    Close(CodecError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    ExpectVersion,
    ExpectCpid,
    Ready,
}

#[derive(Debug)]
enum Waiting {
    PlainResponse,
    LoginUsername,
    LoginPassword {
        username: String,
    },
    /// Handed to the server to authenticate; only a verdict ends it.
    Verdict,
}

#[derive(Debug)]
struct Pending {
    waiting: Waiting,
    mechanism: Mechanism,
    remote_ip: Option<IpAddr>,
    since: Instant,
}

#[derive(Debug)]
pub struct Session {
    phase: Phase,
    client_minor: u32,
    require_secured: bool,
    pending: HashMap<u32, Pending>,
}

impl Session {
    pub fn new(require_secured: bool) -> Self {
        Self { phase: Phase::ExpectVersion, client_minor: 0, require_secured, pending: HashMap::new() }
    }

    /// A reloaded config applies to the next request of a connection that stays open.
    pub fn set_require_secured(&mut self, on: bool) {
        self.require_secured = on;
    }

    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    pub fn on_input(&mut self, input: Input, now: Instant) -> Step {
        match input {
            Input::Busy { id } => self.refuse_pending(id, RefuseReason::Busy, None),
            Input::Line(Err(CodecError::UnsupportedMechanism { id })) if self.phase == Phase::Ready => {
                self.refusal(id, None, RefuseReason::UnsupportedMechanism, now)
            }
            Input::Line(Err(e)) => Step::Close(e),
            Input::Line(Ok(request)) => self.on_request(request, now),
        }
    }

    fn on_request(&mut self, request: Request, now: Instant) -> Step {
        match (self.phase, request) {
            (Phase::ExpectVersion, Request::Version { major: 1, minor }) => {
                self.client_minor = minor;
                self.phase = Phase::ExpectCpid;
                Step::Nothing
            }
            (Phase::ExpectVersion, _) => Step::Close(CodecError::Malformed("VERSION")),
            (Phase::ExpectCpid, Request::Cpid(_)) => {
                self.phase = Phase::Ready;
                Step::Nothing
            }
            (Phase::ExpectCpid, _) => Step::Close(CodecError::Malformed("CPID")),
            (Phase::Ready, Request::Auth(auth)) => self.on_auth(auth, now),
            (Phase::Ready, Request::Cont { id, data }) => self.on_cont(id, &data, now),
            (Phase::Ready, Request::Cancel { id }) => {
                self.pending.remove(&id);
                Step::Nothing
            }
            (Phase::Ready, Request::Version { .. } | Request::Cpid(_)) => Step::Close(CodecError::UnknownCommand),
        }
    }

    fn on_auth(&mut self, auth: AuthRequest, now: Instant) -> Step {
        if self.pending.contains_key(&auth.id) {
            // Dovecot: "sent a duplicate ID" → disconnect.
            return Step::Close(CodecError::Malformed("AUTH (duplicate id)"));
        }
        let (id, rip) = (auth.id, auth.remote_ip);
        if self.pending.len() >= MAX_PENDING {
            return self.refusal(id, rip, RefuseReason::TooManyPending, now);
        }
        if self.require_secured && !auth.secured {
            return self.refusal(id, rip, RefuseReason::NotSecured, now);
        }
        // Exim (minor 0) always sends resp=, empty when the SMTP client gave none (§3.3).
        let initial = auth.initial_response.filter(|r| !(r.is_empty() && self.client_minor < 2));
        let waiting = match auth.mechanism {
            Mechanism::Plain => Waiting::PlainResponse,
            Mechanism::Login => Waiting::LoginUsername,
        };
        self.pending.insert(id, Pending { waiting, mechanism: auth.mechanism, remote_ip: rip, since: now });
        match initial {
            None if auth.mechanism == Mechanism::Plain => Step::Reply(Reply::Cont { id, challenge: String::new() }),
            None => Step::Reply(login_challenge(id, LOGIN_USERNAME_PROMPT)),
            // An empty LOGIN initial response asks for the username as if there were none.
            Some(r) if auth.mechanism == Mechanism::Login && (r.is_empty() || r == "=") => {
                Step::Reply(login_challenge(id, LOGIN_USERNAME_PROMPT))
            }
            Some(r) => self.on_response(id, &r, now),
        }
    }

    fn on_cont(&mut self, id: u32, data: &str, now: Instant) -> Step {
        match self.pending.get(&id) {
            None => Step::Reply(Reply::timed_out(id)),
            Some(p) if matches!(p.waiting, Waiting::Verdict) => {
                // One CONT per challenge; the verdict that follows is dropped.
                self.pending.remove(&id);
                Step::Reply(Reply::Fail { id, user: None, code: None, reason: Some("Unexpected continuation".into()) })
            }
            Some(_) => self.on_response(id, data, now),
        }
    }

    /// A client response (initial or CONT) to the pending request `id`.
    fn on_response(&mut self, id: u32, data: &str, now: Instant) -> Step {
        let Ok(decoded) = decode_base64(data.as_bytes()) else {
            let rip = self.pending.remove(&id).and_then(|p| p.remote_ip);
            return self.refusal(id, rip, RefuseReason::InvalidBase64, now);
        };
        let Some(p) = self.pending.get_mut(&id) else { return Step::Nothing };
        p.since = now;
        let (remote_ip, mechanism) = (p.remote_ip, p.mechanism);
        let attempt = |username, secret| Step::Authenticate(AuthAttempt { id, username, secret, remote_ip, mechanism });
        match std::mem::replace(&mut p.waiting, Waiting::Verdict) {
            Waiting::PlainResponse => match decode_plain(&decoded) {
                Ok(c) => attempt(c.username, c.secret),
                Err(e) => self.refuse_pending(id, RefuseReason::Credentials(e), None),
            },
            Waiting::LoginUsername => match decode_login_username(&decoded) {
                Ok(username) => {
                    p.waiting = Waiting::LoginPassword { username };
                    Step::Reply(login_challenge(id, LOGIN_PASSWORD_PROMPT))
                }
                Err(e) => self.refuse_pending(id, RefuseReason::Credentials(e), None),
            },
            Waiting::LoginPassword { username } => match decode_login_password(&decoded) {
                Ok(secret) => attempt(username, secret),
                Err(e) => self.refuse_pending(id, RefuseReason::Credentials(e), Some(username)),
            },
            Waiting::Verdict => Step::Nothing,
        }
    }

    /// The verdict for `id`, or `None` when the request was cancelled or expired meanwhile.
    pub fn on_verdict(&mut self, id: u32, username: &str, decision: &Decision) -> Option<Reply> {
        self.pending.remove(&id)?;
        Some(match decision {
            Decision::Granted(grant) => Reply::Ok { id, user: grant.username.clone() },
            // Echoed for the client's log, as Dovecot does; a name too long for Exim's 8 KiB
            // line limit is left out.
            Decision::Denied(_) => Reply::fail(id, Some(username.to_string()).filter(|u| u.len() <= MAX_ECHOED_USER)),
            Decision::TempFail(_) => Reply::temp_fail(id),
        })
    }

    /// The reply to a refusal whose wait is over, or `None` when `id` is gone meanwhile.
    pub fn on_refusal_due(&mut self, refusal: Refusal) -> Option<Reply> {
        self.pending.remove(&refusal.id).map(|_| refusal.reply)
    }

    /// Drops requests left waiting for a client CONT; nothing is sent, as in Dovecot.
    pub fn expire(&mut self, now: Instant) -> usize {
        let before = self.pending.len();
        self.pending
            .retain(|_, p| matches!(p.waiting, Waiting::Verdict) || now.duration_since(p.since) < PENDING_TIMEOUT);
        before - self.pending.len()
    }

    /// `user`: the login name, when the mechanism got as far as one (for the log).
    fn refuse_pending(&mut self, id: u32, reason: RefuseReason, user: Option<String>) -> Step {
        let Some(p) = self.pending.get_mut(&id) else { return Step::Nothing };
        p.waiting = Waiting::Verdict;
        let (rip, mechanism) = (p.remote_ip, Some(p.mechanism));
        let reply = match reason {
            RefuseReason::Busy => Reply::temp_fail(id),
            _ => Reply::fail(id, None),
        };
        Step::Refuse(Refusal { id, user, mechanism, remote_ip: rip, reason, reply })
    }

    /// A refusal of a request that is not (or no longer) pending: answered at once.
    fn refusal(&mut self, id: u32, remote_ip: Option<IpAddr>, reason: RefuseReason, now: Instant) -> Step {
        if self.pending.contains_key(&id) {
            return Step::Close(CodecError::Malformed("AUTH (duplicate id)"));
        }
        let reply = match reason {
            RefuseReason::InvalidBase64 => Reply::invalid_base64(id),
            RefuseReason::TooManyPending | RefuseReason::Busy => Reply::temp_fail(id),
            _ => Reply::fail(id, None),
        };
        // Parked as waiting for a verdict, so `on_refusal_due` finds it.
        self.pending
            .insert(id, Pending { waiting: Waiting::Verdict, mechanism: Mechanism::Plain, remote_ip, since: now });
        Step::Refuse(Refusal { id, user: None, mechanism: None, remote_ip, reason, reply })
    }
}

fn login_challenge(id: u32, prompt: &str) -> Reply {
    Reply::Cont { id, challenge: mechanism::encode_base64(prompt.as_bytes()) }
}

/// Standard base64, for clients and tests building responses.
pub fn encode_response(bytes: &[u8]) -> String {
    mechanism::encode_base64(bytes)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
