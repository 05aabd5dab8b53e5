//! The SASL mechanisms PLAIN (RFC 4616) and LOGIN, decoded one way for every front end: the
//! Dovecot-protocol SASL server and the relay's AUTH both call these functions, so a credential
//! is accepted or refused identically whichever way it arrives. Pure: bytes in, typed
//! credentials or a typed error out; no I/O, no clock.
//!
//! The rules:
//! - base64 as RFC 4648 §4 writes it: standard alphabet, padding required, no whitespace and
//!   no trailing bits; a lone `=` is RFC 4954's empty response.
//! - the authorization id is empty, or names the authentication id under the same
//!   normalisation as usernames ([`normalize_username`]); anything else would be a
//!   master-user login, which is not offered.
//! - a username or password is non-empty valid UTF-8 without NUL.

use base64::Engine as _;
use base64::engine::general_purpose;
use zeroize::Zeroizing;

use crate::secret::Secret;

/// The LOGIN mechanism's challenges, as every client expects them (draft-murchison-sasl-login).
pub const LOGIN_USERNAME_PROMPT: &str = "Username:";
pub const LOGIN_PASSWORD_PROMPT: &str = "Password:";

/// A login name and the secret presented with it.
#[derive(Debug)]
pub struct Credentials {
    pub username: String,
    pub secret: Secret,
}

/// Why a client's response is not a credential. Everything but [`Self::InvalidBase64`] is a
/// well-formed response holding a bad credential, and counts like a wrong password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MechanismError {
    #[error("invalid base64")]
    InvalidBase64,
    /// PLAIN without the two NUL separators.
    #[error("missing field")]
    MissingField,
    /// A NUL inside a username or password (PLAIN: a fourth field).
    #[error("NUL inside a credential")]
    NulInCredential,
    #[error("invalid UTF-8")]
    InvalidUtf8,
    #[error("empty username")]
    EmptyUsername,
    #[error("empty password")]
    EmptyPassword,
    /// An authorization id other than the authentication id.
    #[error("authorization id differs from the login name")]
    AuthzidMismatch,
}

impl MechanismError {
    /// The log label (`reason=`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidBase64 => "invalid_base64",
            Self::MissingField => "missing_field",
            Self::NulInCredential => "nul_in_credential",
            Self::InvalidUtf8 => "invalid_utf8",
            Self::EmptyUsername => "empty_username",
            Self::EmptyPassword => "empty_password",
            Self::AuthzidMismatch => "authzid_mismatch",
        }
    }

    /// A credential was presented but cannot be right: counted and delayed like a wrong
    /// password, so a malformed guess teaches nothing sooner than a wrong one.
    pub fn is_guess(self) -> bool {
        self != Self::InvalidBase64
    }
}

/// Usernames compare after this: the form a login name is looked up in
/// ([`crate::address::login_name`]: the canonical address, or trimmed and lower-cased).
pub fn normalize_username(username: &str) -> String {
    crate::address::login_name(username)
}

/// Decodes a client response; `=` is the empty response (RFC 4954 §4).
pub fn decode_base64(text: &[u8]) -> Result<Zeroizing<Vec<u8>>, MechanismError> {
    if text == b"=" {
        return Ok(Zeroizing::new(Vec::new()));
    }
    general_purpose::STANDARD.decode(text).map(Zeroizing::new).map_err(|_| MechanismError::InvalidBase64)
}

/// Base64 for challenges and for clients building responses.
pub fn encode_base64(bytes: &[u8]) -> String {
    general_purpose::STANDARD.encode(bytes)
}

/// PLAIN: `authzid NUL authcid NUL passwd` (RFC 4616 §2), already base64-decoded.
pub fn decode_plain(payload: &[u8]) -> Result<Credentials, MechanismError> {
    let mut parts = payload.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(MechanismError::MissingField);
    };
    if parts.next().is_some() {
        return Err(MechanismError::NulInCredential);
    }
    let authzid = std::str::from_utf8(authzid).map_err(|_| MechanismError::InvalidUtf8)?;
    let username = decode_login_username(authcid)?;
    let secret = decode_login_password(password)?;
    if !authzid.is_empty() && normalize_username(authzid) != normalize_username(&username) {
        return Err(MechanismError::AuthzidMismatch);
    }
    Ok(Credentials { username, secret })
}

/// LOGIN's answer to [`LOGIN_USERNAME_PROMPT`], already base64-decoded.
pub fn decode_login_username(bytes: &[u8]) -> Result<String, MechanismError> {
    decode_text(bytes, MechanismError::EmptyUsername).map(|u| u.to_string())
}

/// LOGIN's answer to [`LOGIN_PASSWORD_PROMPT`], already base64-decoded.
pub fn decode_login_password(bytes: &[u8]) -> Result<Secret, MechanismError> {
    decode_text(bytes, MechanismError::EmptyPassword).map(Secret::from_presented)
}

fn decode_text(bytes: &[u8], empty: MechanismError) -> Result<&str, MechanismError> {
    if bytes.is_empty() {
        return Err(empty);
    }
    if bytes.contains(&0) {
        return Err(MechanismError::NulInCredential);
    }
    std::str::from_utf8(bytes).map_err(|_| MechanismError::InvalidUtf8)
}

#[cfg(test)]
#[path = "mechanism_cases.rs"]
pub(crate) mod cases;

#[cfg(test)]
mod tests {
    use super::cases::{CASES, Expect, Mech, Response};
    use super::*;

    const USER: &str = "ann@example.com";
    const PASSWORD: &str = "correct horse";

    /// Runs one case's responses through the decoder as a server would, response by response:
    /// `Ok` with what would be verified, or the error that refuses it.
    fn run(mech: Mech, responses: &[Response]) -> Result<Credentials, MechanismError> {
        let mut decoded = responses.iter().map(|r| decode_base64(r.wire(USER, PASSWORD).as_bytes()));
        let mut next = || decoded.next().expect("a case with too few responses");
        match mech {
            Mech::Plain => decode_plain(&next()?),
            Mech::Login => {
                let username = decode_login_username(&next()?)?;
                Ok(Credentials { username, secret: decode_login_password(&next()?)? })
            }
        }
    }

    #[test]
    fn every_case_decodes_to_its_outcome() {
        for case in CASES {
            let got = run(case.mech, case.responses);
            match (case.expect, &got) {
                (Expect::Granted, Ok(c)) => {
                    assert_eq!(normalize_username(&c.username), USER, "{}", case.name);
                    assert_eq!(c.secret.expose(), PASSWORD, "{}", case.name);
                }
                (Expect::Denied, Ok(c)) => {
                    let right = normalize_username(&c.username) == USER && c.secret.expose() == PASSWORD;
                    assert!(!right, "{}: decodes to the right credentials", case.name);
                }
                (Expect::Refused(want), Err(e)) => assert_eq!(*e, want, "{}", case.name),
                (want, got) => panic!("{}: want {want:?}, got {got:?}", case.name),
            }
        }
    }

    #[test]
    fn login_prompts_are_the_usual_ones() {
        assert_eq!(encode_base64(LOGIN_USERNAME_PROMPT.as_bytes()), "VXNlcm5hbWU6");
        assert_eq!(encode_base64(LOGIN_PASSWORD_PROMPT.as_bytes()), "UGFzc3dvcmQ6");
    }
}
