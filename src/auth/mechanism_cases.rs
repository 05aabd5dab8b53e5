//! The one table of PLAIN and LOGIN cases with their outcomes. The mechanism's unit test runs
//! it through the decoder; `tests/mechanism_table.rs` runs it against the SASL socket and the
//! relay's AUTH and checks that both answer each case the same way.
//!
//! Responses are templates: `{U}` is a valid login name, `{UU}` the same in upper case and `{P}`
//! its password. The includer provides `MechanismError` and `encode_base64` in the parent module.

use super::{MechanismError, encode_base64};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mech {
    Plain,
    Login,
}

/// What the case must come to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Decodes to the valid credentials: the login succeeds.
    Granted,
    /// Decodes, but to credentials the store refuses: an authentication failure.
    Denied,
    /// Refused by the mechanism itself. [`MechanismError::InvalidBase64`] is a malformed
    /// response; every other error is an authentication failure, delayed like `Denied`.
    Refused(MechanismError),
}

/// One client response (after `AUTH PLAIN`/`AUTH LOGIN` without an initial response).
#[derive(Debug, Clone, Copy)]
pub enum Response {
    /// Template bytes, sent base64-encoded.
    Encoded(&'static [u8]),
    /// Sent as written: for the base64 rules themselves.
    Raw(&'static str),
}

impl Response {
    /// The line the client sends.
    pub fn wire(&self, user: &str, password: &str) -> String {
        match self {
            Self::Raw(text) => (*text).to_string(),
            Self::Encoded(template) => encode_base64(&fill(template, user, password)),
        }
    }
}

fn fill(template: &[u8], user: &str, password: &str) -> Vec<u8> {
    let upper = user.to_uppercase();
    let mut out = Vec::new();
    let mut rest = template;
    while !rest.is_empty() {
        let (value, skip): (&[u8], usize) = if rest.starts_with(b"{UU}") {
            (upper.as_bytes(), 4)
        } else if rest.starts_with(b"{U}") {
            (user.as_bytes(), 3)
        } else if rest.starts_with(b"{P}") {
            (password.as_bytes(), 3)
        } else {
            (&rest[..1], 1)
        };
        out.extend_from_slice(value);
        rest = &rest[skip..];
    }
    out
}

pub struct Case {
    pub name: &'static str,
    pub mech: Mech,
    pub responses: &'static [Response],
    pub expect: Expect,
}

use Expect::{Denied, Granted, Refused};
use MechanismError::*;
use Response::{Encoded as E, Raw as R};

const fn plain(name: &'static str, responses: &'static [Response], expect: Expect) -> Case {
    Case { name, mech: Mech::Plain, responses, expect }
}

const fn login(name: &'static str, responses: &'static [Response], expect: Expect) -> Case {
    Case { name, mech: Mech::Login, responses, expect }
}

pub const CASES: &[Case] = &[
    // PLAIN, well-formed.
    plain("plain", &[E(b"\0{U}\0{P}")], Granted),
    plain("plain_authzid_same", &[E(b"{U}\0{U}\0{P}")], Granted),
    plain("plain_authzid_other_case", &[E(b"{UU}\0{U}\0{P}")], Granted),
    plain("plain_username_other_case", &[E(b"\0{UU}\0{P}")], Granted),
    plain("plain_wrong_password", &[E(b"\0{U}\0{P}x")], Denied),
    plain("plain_unknown_user", &[E(b"\0nobody@example.com\0{P}")], Denied),
    // PLAIN, a credential that cannot be right.
    plain("plain_authzid_other_user", &[E(b"boss@example.com\0{U}\0{P}")], Refused(AuthzidMismatch)),
    plain("plain_empty_username", &[E(b"\0\0{P}")], Refused(EmptyUsername)),
    plain("plain_empty_password", &[E(b"\0{U}\0")], Refused(EmptyPassword)),
    plain("plain_nul_in_password", &[E(b"\0{U}\0{P}\0x")], Refused(NulInCredential)),
    plain("plain_missing_field", &[E(b"{U}\0{P}")], Refused(MissingField)),
    plain("plain_empty_response", &[R("=")], Refused(MissingField)),
    plain("plain_invalid_utf8_password", &[E(b"\0{U}\0{P}\xff")], Refused(InvalidUtf8)),
    plain("plain_invalid_utf8_authzid", &[E(b"\xff\0{U}\0{P}")], Refused(InvalidUtf8)),
    // Base64 (RFC 4648): padding required, no white space, no stray bits.
    plain("plain_unpadded", &[R("AGEAYg")], Refused(InvalidBase64)),
    plain("plain_inner_space", &[R("AGEA Yg==")], Refused(InvalidBase64)),
    plain("plain_trailing_bits", &[R("AGEAYh==")], Refused(InvalidBase64)),
    plain("plain_not_base64", &[R("!!!")], Refused(InvalidBase64)),
    // LOGIN: the server stops at the first response that fails.
    login("login", &[E(b"{U}"), E(b"{P}")], Granted),
    login("login_username_other_case", &[E(b"{UU}"), E(b"{P}")], Granted),
    login("login_wrong_password", &[E(b"{U}"), E(b"{P}x")], Denied),
    login("login_empty_username", &[R("="), E(b"{P}")], Refused(EmptyUsername)),
    login("login_empty_password", &[E(b"{U}"), R("=")], Refused(EmptyPassword)),
    login("login_nul_in_username", &[E(b"{U}\0x"), E(b"{P}")], Refused(NulInCredential)),
    login("login_nul_in_password", &[E(b"{U}"), E(b"{P}\0x")], Refused(NulInCredential)),
    login("login_invalid_utf8_username", &[E(b"\xff{U}"), E(b"{P}")], Refused(InvalidUtf8)),
    login("login_invalid_utf8_password", &[E(b"{U}"), E(b"\xff{P}")], Refused(InvalidUtf8)),
    login("login_password_not_base64", &[E(b"{U}"), R("!!")], Refused(InvalidBase64)),
];
