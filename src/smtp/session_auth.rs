//! AUTH in the SMTP session (RFC 4954): PLAIN (RFC 4616) and LOGIN, with or without an
//! initial response, refused before TLS on TLS-capable listeners. The session only collects
//! the username and secret; the server asks the Authenticator and reports the verdict.

use super::*;

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
            (Mechanism::Login, Some(user)) => self.login_user(user),
            (Mechanism::Login, None) => {
                self.phase = Phase::AuthLoginUser;
                Step::Reply(Reply::auth_challenge("VXNlcm5hbWU6"))
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
            AuthResponse::Data(d) => d,
        };
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::AuthPlain => self.plain(&data),
            Phase::AuthLoginUser => self.login_user(data),
            Phase::AuthLoginPassword(username) => match String::from_utf8(data) {
                Ok(password) => self.verify(username, password),
                Err(_) => self.auth_denied(),
            },
            other => {
                self.phase = other;
                self.refuse(Reply::bad_sequence("Command out of sequence"))
            }
        }
    }

    /// RFC 4616: `authzid NUL authcid NUL passwd`. Acting for another identity is not offered.
    fn plain(&mut self, data: &[u8]) -> Step {
        let mut parts = data.splitn(3, |&b| b == 0);
        let (Some(authzid), Some(authcid), Some(passwd)) = (parts.next(), parts.next(), parts.next()) else {
            return self.refuse(Reply::bad_base64());
        };
        let (Ok(authzid), Ok(user), Ok(passwd)) =
            (std::str::from_utf8(authzid), std::str::from_utf8(authcid), std::str::from_utf8(passwd))
        else {
            return self.auth_denied();
        };
        if !authzid.is_empty() && authzid != user {
            return self.auth_denied();
        }
        self.verify(user.to_string(), passwd.to_string())
    }

    fn login_user(&mut self, data: Vec<u8>) -> Step {
        match String::from_utf8(data) {
            Ok(user) => {
                self.phase = Phase::AuthLoginPassword(user);
                Step::Reply(Reply::auth_challenge("UGFzc3dvcmQ6"))
            }
            Err(_) => self.auth_denied(),
        }
    }

    fn verify(&mut self, username: String, password: String) -> Step {
        self.phase = Phase::Verifying;
        Step::Authenticate(AuthAttempt { username, secret: Secret::from_presented(password) })
    }

    fn auth_denied(&mut self) -> Step {
        self.phase = Phase::Command;
        self.refuse(Reply::auth_failed())
    }

    /// The Authenticator's verdict on the pending [`AuthAttempt`].
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
