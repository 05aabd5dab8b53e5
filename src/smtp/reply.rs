//! SMTP replies as values: a code, an optional enhanced status (RFC 3463, advertised with
//! ENHANCEDSTATUSCODES per RFC 2034) and text lines, built only by the named constructors
//! below. Encoding (continuation dashes, CRLF, stripping line breaks) lives in [`Reply::encode`].
//!
//! # Format
//! ```text
//! 250-relay.example
//! 250 PIPELINING
//! 550 5.7.0 Authentication required
//! ```

use std::borrow::Cow;
use std::fmt;

use crate::auth::DenyReason;
use crate::message_limits::RateWindow;

/// An enhanced status code `class.subject.detail`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Status(pub u8, pub u16, pub u16);

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.0, self.1, self.2)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub status: Option<Status>,
    pub lines: Vec<Cow<'static, str>>,
}

impl Reply {
    fn one(code: u16, status: Status, text: impl Into<Cow<'static, str>>) -> Self {
        Self { code, status: Some(status), lines: vec![text.into()] }
    }

    /// True for 4xx and 5xx: the replies that count toward the session's error limit.
    pub fn is_error(&self) -> bool {
        self.code >= 400
    }

    // 2xx and 3xx

    pub fn greeting(hostname: &str) -> Self {
        Self { code: 220, status: None, lines: vec![format!("{hostname} ESMTP relaykey").into()] }
    }
    pub fn helo(hostname: &str) -> Self {
        Self { code: 250, status: None, lines: vec![hostname.to_string().into()] }
    }
    /// The EHLO reply: our name first, then one extension per line (no enhanced status,
    /// RFC 2034 §3 leaves it off the EHLO response).
    pub fn ehlo(hostname: &str, extensions: Vec<Cow<'static, str>>) -> Self {
        let mut lines = vec![Cow::Owned(hostname.to_string())];
        lines.extend(extensions);
        Self { code: 250, status: None, lines }
    }
    pub fn ok() -> Self {
        Self::one(250, Status(2, 0, 0), "Ok")
    }
    pub fn sender_ok() -> Self {
        Self::one(250, Status(2, 1, 0), "Sender ok")
    }
    pub fn recipient_ok() -> Self {
        Self::one(250, Status(2, 1, 5), "Recipient ok")
    }
    pub fn queued(id: &str) -> Self {
        Self::one(250, Status(2, 0, 0), format!("Ok: queued as {id}"))
    }
    pub fn bye() -> Self {
        Self::one(221, Status(2, 0, 0), "Bye")
    }
    pub fn ready_for_tls() -> Self {
        Self::one(220, Status(2, 0, 0), "Ready to start TLS")
    }
    pub fn start_data() -> Self {
        Self { code: 354, status: None, lines: vec!["End data with <CR><LF>.<CR><LF>".into()] }
    }
    /// RFC 5321 §3.5.3: 252 when the server will not verify but will try to deliver.
    pub fn cannot_verify() -> Self {
        Self::one(252, Status(2, 5, 0), "Cannot VRFY user, but will accept message and attempt delivery")
    }
    pub fn help() -> Self {
        Self::one(214, Status(2, 0, 0), "See RFC 5321")
    }
    /// A 334 challenge; `challenge` is already base64 (empty for PLAIN without initial response).
    pub fn auth_challenge(challenge: impl Into<Cow<'static, str>>) -> Self {
        Self { code: 334, status: None, lines: vec![challenge.into()] }
    }
    pub fn auth_ok() -> Self {
        Self::one(235, Status(2, 7, 0), "Authentication successful")
    }

    // 4xx: try again later

    pub fn too_many_connections() -> Self {
        Self::one(421, Status(4, 7, 0), "Too many connections from your address")
    }
    /// `[limits] max_connections` reached, all clients together.
    pub fn server_busy() -> Self {
        Self::one(421, Status(4, 3, 2), "Too many connections, try again later")
    }
    pub fn command_timeout() -> Self {
        Self::one(421, Status(4, 4, 2), "Timeout exceeded, closing connection")
    }
    pub fn session_timeout() -> Self {
        Self::one(421, Status(4, 4, 2), "Session time limit exceeded, closing connection")
    }
    pub fn shutting_down() -> Self {
        Self::one(421, Status(4, 3, 2), "Service shutting down")
    }
    pub fn too_many_errors() -> Self {
        Self::one(421, Status(4, 7, 0), "Too many errors, closing connection")
    }
    pub fn too_many_recipients() -> Self {
        Self::one(452, Status(4, 5, 3), "Too many recipients")
    }
    pub fn insufficient_storage() -> Self {
        Self::one(452, Status(4, 3, 1), "Insufficient system storage")
    }
    pub fn local_error() -> Self {
        Self::one(451, Status(4, 3, 0), "Local error in processing")
    }
    pub fn auth_temp_failure() -> Self {
        Self::one(454, Status(4, 7, 0), "Temporary authentication failure")
    }
    /// The sender directory could not answer (Postfix: `451 4.3.0 Temporary lookup failure`).
    pub fn sender_lookup_failed() -> Self {
        Self::one(451, Status(4, 3, 0), "Temporary lookup failure")
    }
    /// The login could not be re-checked (the store is unreadable): no pass on a guess.
    pub fn login_check_failed() -> Self {
        Self::one(451, Status(4, 3, 0), "Cannot check the login now, try again later")
    }
    /// The account's message limit for `window` is used up (the policy server's wording).
    pub fn message_limit(window: RateWindow, limit: u32) -> Self {
        let text = format!("Message rate limit exceeded ({limit} per {}), try again later", window.as_str());
        Self::one(450, Status(4, 7, 1), text)
    }
    pub fn tls_unavailable() -> Self {
        Self::one(454, Status(4, 7, 0), "TLS not available")
    }

    // 5xx: refused

    pub fn unrecognized() -> Self {
        Self::one(500, Status(5, 5, 2), "Command unrecognized")
    }
    pub fn line_too_long() -> Self {
        Self::one(500, Status(5, 5, 0), "Line too long")
    }
    pub fn syntax(usage: &'static str) -> Self {
        Self::one(501, Status(5, 5, 4), usage)
    }
    pub fn bad_sender() -> Self {
        Self::one(501, Status(5, 1, 7), "Bad sender address syntax")
    }
    pub fn bad_recipient() -> Self {
        Self::one(501, Status(5, 1, 3), "Bad recipient address syntax")
    }
    pub fn bad_base64() -> Self {
        Self::one(501, Status(5, 5, 2), "Cannot decode response")
    }
    pub fn auth_cancelled() -> Self {
        Self::one(501, Status(5, 7, 0), "Authentication cancelled")
    }
    pub fn not_implemented() -> Self {
        Self::one(502, Status(5, 5, 1), "Command not implemented")
    }
    pub fn bad_sequence(why: &'static str) -> Self {
        Self::one(503, Status(5, 5, 1), why)
    }
    pub fn mechanism_unsupported() -> Self {
        Self::one(504, Status(5, 5, 4), "Unrecognized authentication type")
    }
    pub fn parameter_unsupported() -> Self {
        Self::one(555, Status(5, 5, 4), "Unsupported MAIL or RCPT parameter")
    }
    /// RFC 4954 §6: 530 5.7.0 when a command needs authentication first.
    pub fn auth_required() -> Self {
        Self::one(530, Status(5, 7, 0), "Authentication required")
    }
    /// RFC 3207 §4: AUTH refused until TLS on a TLS-capable listener.
    pub fn tls_required() -> Self {
        Self::one(530, Status(5, 7, 0), "Must issue a STARTTLS command first")
    }
    pub fn auth_failed() -> Self {
        Self::one(535, Status(5, 7, 8), "Authentication credentials invalid")
    }
    /// Sender binding at MAIL, in Postfix's words (`reject_authenticated_sender_login_mismatch`).
    pub fn sender_not_owned(address: &str, login: &str) -> Self {
        Self::one(553, Status(5, 7, 1), format!("<{address}>: Sender address rejected: not owned by user {login}"))
    }
    /// Sender binding after DATA: an address of the `From:` header.
    pub fn header_from_not_owned(address: &str, login: &str) -> Self {
        Self::one(550, Status(5, 7, 1), format!("<{address}>: From header address rejected: not owned by user {login}"))
    }
    /// Sender binding after DATA: the `From:` header could not be read, so it cannot be allowed.
    pub fn header_from_unreadable(why: &crate::header_from::FromHeaderError) -> Self {
        Self::one(550, Status(5, 7, 1), format!("Message rejected: {why}"))
    }
    /// The session's login no longer holds (secret changed or removed, account disabled,
    /// address outside a narrowed restriction, permission withdrawn).
    pub fn login_revoked(why: DenyReason) -> Self {
        Self::one(554, Status(5, 7, 1), format!("Authentication revoked ({why}), authenticate again"))
    }
    pub fn message_too_big() -> Self {
        Self::one(552, Status(5, 3, 4), "Message size exceeds fixed maximum message size")
    }
    /// RFC 5321 §4.1.1.4 refusal after DATA: NUL is not text (RFC 5322 §2.3, Postfix and
    /// chasquid refuse it too), and stripping it would alter a signed message.
    pub fn nul_in_message() -> Self {
        Self::one(554, Status(5, 6, 0), "Message contains NUL characters")
    }
    /// `[relay] allow_private_destinations = false`.
    pub fn private_destination() -> Self {
        Self::one(550, Status(5, 7, 1), "Recipient address literal is in a private or loopback network")
    }
    pub fn http_refused() -> Self {
        Self::one(554, Status(5, 7, 0), "This is an SMTP server")
    }
}

impl Reply {
    /// Appends the wire form. A line break inside a text line would let a value split the
    /// reply into two, so CR and LF are replaced by spaces; an empty reply still gets one line.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let code = self.code.clamp(200, 599);
        let empty: [Cow<'static, str>; 1] = [Cow::Borrowed("")];
        let lines: &[Cow<'static, str>] = if self.lines.is_empty() { &empty } else { &self.lines };
        for (i, line) in lines.iter().enumerate() {
            let sep = if i + 1 == lines.len() { ' ' } else { '-' };
            out.extend_from_slice(format!("{code}{sep}").as_bytes());
            if let Some(status) = self.status {
                out.extend_from_slice(format!("{status} ").as_bytes());
            }
            out.extend(line.bytes().map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }));
            out.extend_from_slice(b"\r\n");
        }
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode(&mut v);
        v
    }
}

impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(String::from_utf8_lossy(&self.to_bytes()).trim_end())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn encodes_multiline_with_dashes_and_status_on_each_line() {
        let r = Reply { code: 250, status: Some(Status(2, 0, 0)), lines: vec!["a".into(), "b".into()] };
        assert_eq!(r.to_bytes(), b"250-2.0.0 a\r\n250 2.0.0 b\r\n");
    }

    #[test]
    fn ehlo_reply_has_no_status() {
        let r = Reply::ehlo("mx.example", vec!["PIPELINING".into(), "SIZE 10".into()]);
        assert_eq!(r.to_bytes(), b"250-mx.example\r\n250-PIPELINING\r\n250 SIZE 10\r\n");
    }

    #[test]
    fn empty_challenge_is_code_and_space() {
        assert_eq!(Reply::auth_challenge("").to_bytes(), b"334 \r\n");
    }

    proptest! {
        #[test]
        fn every_encoded_line_is_one_well_formed_reply_line(lines in prop::collection::vec(".*", 0..5)) {
            let r = Reply { code: 550, status: Some(Status(5, 7, 1)),
                            lines: lines.into_iter().map(Cow::Owned).collect() };
            let bytes = r.to_bytes();
            let text = String::from_utf8(bytes).unwrap();
            let out: Vec<&str> = text.split_terminator("\r\n").collect();
            prop_assert_eq!(out.len(), r.lines.len().max(1));
            for (i, l) in out.iter().enumerate() {
                prop_assert!(!l.contains('\r') && !l.contains('\n'));
                let want = if i + 1 == out.len() { "550 5.7.1 " } else { "550-5.7.1 " };
                prop_assert!(l.starts_with(want));
            }
        }
    }
}
