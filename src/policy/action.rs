//! What the policy server answers: `DUNNO`, or a refusal with an SMTP code, an enhanced status
//! and a text. Built only through named constructors (or parsed from the config), so the two
//! replies Postfix reads as "permit" — an empty action and a bare code — cannot be written.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use crate::auth::DenyReason;

/// The longest reply text we send; Postfix wraps long SMTP replies, but a short one is clearer.
const MAX_TEXT: usize = 200;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// No opinion: Postfix goes on with the next restriction.
    Dunno,
    /// `action=<code> <status> <text>`.
    Refuse(Refusal),
}

/// A 4xx/5xx reply. `421` makes smtpd hang up after sending it (reference §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    code: u16,
    status: Option<Status>,
    text: Text,
}

/// An enhanced status code (RFC 3463) whose class matches the reply code's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u16, pub u16);

/// Reply text: non-empty, printable, one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Text(String);

pub use crate::message_limits::RateWindow;

impl Text {
    /// Control characters (LF would end the reply early, NUL is refused by Postfix) become
    /// spaces; an empty text becomes a generic one, because Postfix needs a text after a code.
    pub fn new(text: &str) -> Self {
        let cleaned: String = text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
        let trimmed = cleaned.trim();
        let mut out: String = trimmed.chars().take(MAX_TEXT).collect();
        if out.is_empty() {
            out = "Policy rejection".into();
        }
        Self(out)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Refusal {
    fn new(code: u16, status: Status, text: &str) -> Self {
        Self { code, status: Some(status), text: Text::new(text) }
    }

    pub fn code(&self) -> u16 {
        self.code
    }

    pub fn status(&self) -> Option<Status> {
        self.status
    }

    pub fn text(&self) -> &str {
        self.text.as_str()
    }
}

impl Action {
    /// The per-client-IP session limit was reached at CONNECT.
    pub fn too_many_connections(ip: IpAddr, limit: u32) -> Self {
        Self::Refuse(Refusal::new(421, Status(4, 7, 0), &format!("Too many connections from {ip} (limit {limit})")))
    }

    /// The session is older than `session_timeout`.
    pub fn session_expired() -> Self {
        Self::Refuse(Refusal::new(421, Status(4, 4, 2), "Session time limit exceeded, please reconnect"))
    }

    /// The login of this session no longer holds (secret changed or removed, account disabled,
    /// permission withdrawn, client address outside the restriction).
    pub fn login_revoked(reason: DenyReason) -> Self {
        let why = match reason {
            DenyReason::SecretRevoked => "the credential used to log in was changed or removed",
            DenyReason::AccountDisabled => "the account is disabled",
            DenyReason::IpNotAllowed | DenyReason::IpRequired => "the credential may not be used from this address",
            DenyReason::PermissionMissing => "the credential no longer has the smtp permission",
            DenyReason::UnknownUser | DenyReason::BadSecret | DenyReason::MalformedCredentials => {
                "the login is no longer valid"
            }
        };
        Self::Refuse(Refusal::new(554, Status(5, 7, 1), &format!("Authentication revoked: {why}")))
    }

    /// No record of this session's login (e.g. relaykey restarted since) and the config says
    /// to ask the client to log in again.
    pub fn login_unknown() -> Self {
        Self::Refuse(Refusal::new(450, Status(4, 7, 1), "Login not recognised, please reconnect and authenticate"))
    }

    /// The account's message rate limit for `window` is used up.
    pub fn rate_limited(window: RateWindow, limit: u32) -> Self {
        Self::Refuse(Refusal::new(
            450,
            Status(4, 7, 1),
            &format!("Message rate limit exceeded ({limit} per {}), try again later", window.as_str()),
        ))
    }

    /// Sender binding: the session's login may not use the envelope sender. smtpd puts
    /// `<addr>: Sender address rejected: ` before the text of an access action returned to
    /// its sender restrictions (`check_table_result` in `smtpd_check.c`), so the client reads
    /// `553 5.7.1 <addr>: Sender address rejected: not owned by user <login>`: the very line
    /// `reject_authenticated_sender_login_mismatch` writes, whichever of the two enforces it.
    pub fn sender_not_owned(login: &str) -> Self {
        Self::Refuse(Refusal::new(553, Status(5, 7, 1), &format!("not owned by user {login}")))
    }

    /// The default fallback for internal errors.
    pub fn temporary_failure() -> Self {
        Self::Refuse(Refusal::new(451, Status(4, 3, 0), "Temporary policy failure, try again later"))
    }

    /// `dunno` or `refuse`, for logs.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Dunno => "dunno",
            Self::Refuse(_) => "refuse",
        }
    }

    /// Whether smtpd hangs up after this reply, ending the session.
    pub fn ends_session(&self) -> bool {
        matches!(self, Self::Refuse(r) if r.code == 421 || r.code == 521)
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

/// The value after `action=`, exactly as written on the wire.
impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Dunno => f.write_str("DUNNO"),
            Self::Refuse(r) => match r.status {
                Some(s) => write!(f, "{} {s} {}", r.code, r.text.0),
                None => write!(f, "{} {}", r.code, r.text.0),
            },
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ActionError {
    #[error("empty action (Postfix would read it as OK)")]
    Empty,
    #[error("expected DUNNO or \"4xx/5xx [x.y.z] text\", got {0:?}")]
    Unrecognised(String),
    #[error("a reply code needs a text after it (a bare code means OK to Postfix)")]
    MissingText,
    #[error("enhanced status {0:?} does not match the reply code's class")]
    StatusClass(String),
}

/// Parses a configured action (`fallback_action`): `DUNNO`, or `4NN|5NN [x.y.z] text`.
impl FromStr for Action {
    type Err = ActionError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() {
            return Err(ActionError::Empty);
        }
        if s.eq_ignore_ascii_case("dunno") {
            return Ok(Self::Dunno);
        }
        let (code, rest) = s.split_once(char::is_whitespace).unwrap_or((s, ""));
        let code: u16 = match code.parse() {
            Ok(c) if code.len() == 3 && (400..600).contains(&c) => c,
            _ => return Err(ActionError::Unrecognised(s.into())),
        };
        let rest = rest.trim_start();
        let (status, text) = match rest.split_once(char::is_whitespace) {
            Some((first, text)) => match parse_status(first) {
                Some(st) => (Some(st), text.trim()),
                None => (None, rest),
            },
            None => match parse_status(rest) {
                Some(_) => return Err(ActionError::MissingText),
                None => (None, rest),
            },
        };
        if text.is_empty() {
            return Err(ActionError::MissingText);
        }
        if let Some(st) = status
            && u16::from(st.0) != code / 100
        {
            return Err(ActionError::StatusClass(st.to_string()));
        }
        Ok(Self::Refuse(Refusal { code, status, text: Text::new(text) }))
    }
}

fn parse_status(s: &str) -> Option<Status> {
    let mut parts = s.split('.');
    let class: u8 = parts.next()?.parse().ok()?;
    let subject: u16 = parts.next()?.parse().ok()?;
    let detail: u16 = parts.next()?.parse().ok()?;
    if parts.next().is_some() || !(class == 4 || class == 5) || subject > 999 || detail > 999 {
        return None;
    }
    Some(Status(class, subject, detail))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_carry_the_codes_the_issue_names() {
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let cases = [
            (Action::too_many_connections(ip, 20), 421, Status(4, 7, 0)),
            (Action::session_expired(), 421, Status(4, 4, 2)),
            (Action::login_revoked(DenyReason::SecretRevoked), 554, Status(5, 7, 1)),
            (Action::rate_limited(RateWindow::Hour, 5), 450, Status(4, 7, 1)),
            (Action::sender_not_owned("c@d.example"), 553, Status(5, 7, 1)),
        ];
        for (action, code, status) in cases {
            let Action::Refuse(r) = &action else { panic!("{action:?} is not a refusal") };
            assert_eq!((r.code(), r.status()), (code, Some(status)));
            assert!(!r.text().is_empty());
        }
        assert!(Action::too_many_connections(ip, 1).ends_session());
        assert!(!Action::rate_limited(RateWindow::Day, 1).ends_session());
    }

    #[test]
    fn parses_configured_actions_and_prints_them_back() {
        for (text, wire) in [
            ("dunno", "DUNNO"),
            ("451 4.3.0 Try later", "451 4.3.0 Try later"),
            ("450 please retry", "450 please retry"),
            ("  554   5.7.1   go away ", "554 5.7.1 go away"),
        ] {
            assert_eq!(text.parse::<Action>().unwrap().to_string(), wire, "{text:?}");
        }
    }

    #[test]
    fn refuses_actions_postfix_would_read_as_ok() {
        for (text, want) in [
            ("", ActionError::Empty),
            ("450", ActionError::MissingText),
            ("450 4.7.1", ActionError::MissingText),
            ("OK", ActionError::Unrecognised("OK".into())),
            ("250 fine", ActionError::Unrecognised("250 fine".into())),
            ("4500 x", ActionError::Unrecognised("4500 x".into())),
            ("450 5.7.1 mixed", ActionError::StatusClass("5.7.1".into())),
        ] {
            assert_eq!(text.parse::<Action>().unwrap_err(), want, "{text:?}");
        }
    }

    #[test]
    fn text_is_one_non_empty_line() {
        assert_eq!(Text::new("a\nb\r\0c").as_str(), "a b  c");
        assert_eq!(Text::new(" \n ").as_str(), "Policy rejection");
        assert_eq!(Text::new(&"x".repeat(500)).as_str().len(), MAX_TEXT);
    }
}
