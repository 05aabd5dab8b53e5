//! AUTH in the SMTP session (RFC 4954): PLAIN (RFC 4616) and LOGIN, with or without an
//! initial response, refused before TLS on TLS-capable listeners. The session only collects
//! what the client presents, decoded by `auth::mechanism` exactly as the SASL server decodes
//! it; the server hands it to the login pipeline and reports the verdict.

use super::*;
use crate::auth::mechanism::{
    self, LOGIN_PASSWORD_PROMPT, LOGIN_USERNAME_PROMPT, decode_login_password, decode_login_username, decode_plain,
};

impl Session {
    pub(super) fn on_auth(&mut self, mechanism: Mechanism, initial: Option<String>) -> Step {
        if self.helo.is_none() {
            return self.refuse(Reply::bad_sequence("Send EHLO first"));
        }
        if !self.auth_allowed_here() {
            return self.refuse(Reply::tls_required());
        }
        if self.grant.is_some() {
            return self.refuse(Reply::bad_sequence("Already authenticated"));
        }
        if self.transaction.is_some() {
            return self.refuse(Reply::bad_sequence("AUTH not allowed during a mail transaction"));
        }
        let initial = match initial.map(|i| codec::decode_base64(i.as_bytes())).transpose() {
            Ok(i) => i,
            Err(_) => return self.refuse(Reply::bad_base64()),
        };
        match (mechanism, initial) {
            (Mechanism::Plain, Some(data)) => self.plain(&data),
            (Mechanism::Plain, None) => {
                self.phase = Phase::AuthPlain;
                Step::Reply(Reply::auth_challenge(""))
            }
            (Mechanism::Login, Some(user)) => self.login_user(&user),
            (Mechanism::Login, None) => {
                self.phase = Phase::AuthLoginUser;
                Step::Reply(login_challenge(LOGIN_USERNAME_PROMPT))
            }
            (Mechanism::Other(_), _) => self.refuse(Reply::mechanism_unsupported()),
        }
    }

    pub(super) fn on_auth_response(&mut self, response: AuthResponse) -> Step {
        let data = match response {
            AuthResponse::Cancel => {
                self.phase = Phase::Command;
                return self.refuse(Reply::auth_cancelled());
            }
            AuthResponse::Data(d) => zeroize::Zeroizing::new(d),
        };
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AuthPlain => self.plain(&data),
            Phase::AuthLoginUser => self.login_user(&data),
            Phase::AuthLoginPassword(username) => match decode_login_password(&data) {
                Ok(secret) => self.verify(username, secret, LoginMechanism::Login),
                Err(error) => self.refuse_credentials(Some(username), LoginMechanism::Login, error),
            },
            other => {
                self.phase = other;
                self.refuse(Reply::bad_sequence("Command out of sequence"))
            }
        }
    }

    fn plain(&mut self, data: &[u8]) -> Step {
        match decode_plain(data) {
            Ok(c) => self.verify(c.username, c.secret, LoginMechanism::Plain),
            Err(error) => self.refuse_credentials(None, LoginMechanism::Plain, error),
        }
    }

    fn login_user(&mut self, data: &[u8]) -> Step {
        match decode_login_username(data) {
            Ok(user) => {
                self.phase = Phase::AuthLoginPassword(user);
                Step::Reply(login_challenge(LOGIN_PASSWORD_PROMPT))
            }
            Err(error) => self.refuse_credentials(None, LoginMechanism::Login, error),
        }
    }

    fn verify(&mut self, username: String, secret: Secret, mechanism: LoginMechanism) -> Step {
        self.phase = Phase::Verifying;
        Step::Authenticate(AuthAttempt { username, secret, mechanism })
    }

    fn refuse_credentials(
        &mut self,
        username: Option<String>,
        mechanism: LoginMechanism,
        error: mechanism::MechanismError,
    ) -> Step {
        self.phase = Phase::Verifying;
        Step::RefuseCredentials(CredentialRefusal { username, mechanism, error })
    }

    /// The login pipeline's verdict on the pending [`AuthAttempt`] or [`CredentialRefusal`].
    pub fn on_verdict(&mut self, decision: Decision) -> Step {
        self.phase = Phase::Command;
        match decision {
            Decision::Granted(grant) => {
                self.grant = Some(grant);
                Step::Reply(Reply::auth_ok())
            }
            Decision::Denied(_) => self.refuse(Reply::auth_failed()),
            Decision::TempFail(_) => Step::Reply(Reply::auth_temp_failure()),
        }
    }
}

fn login_challenge(prompt: &str) -> Reply {
    Reply::auth_challenge(mechanism::encode_base64(prompt.as_bytes()))
}
