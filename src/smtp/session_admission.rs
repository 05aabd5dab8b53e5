//! What MAIL, RCPT and DATA of an authenticated session must pass after their own checks, as
//! the policy server makes Postfix do: the login must still hold (a secret changed or removed,
//! an account disabled or a narrowed restriction ends it mid-session), and at DATA the message
//! must fit the account's message limits. The session only asks ([`Step::Recheck`],
//! [`Step::CountMessage`]); the server carries the question out and reports back.

use crate::message_limits::RetryAfter;

use super::*;

/// A command waiting for the login re-check.
#[derive(Debug)]
pub(super) enum Pending {
    Mail(MailFrom),
    Rcpt(String),
    Data,
}

impl Session {
    /// Re-checks the login before `pending` goes on; a session without one (a trusted
    /// client) goes on at once.
    pub(super) fn admit(&mut self, pending: Pending) -> Step {
        match &self.grant {
            Some(grant) => {
                let grant = grant.clone();
                self.phase = Phase::Rechecking(pending);
                Step::Recheck(grant)
            }
            None => self.proceed(pending),
        }
    }

    fn proceed(&mut self, pending: Pending) -> Step {
        match pending {
            Pending::Mail(mail) => self.accept_mail(mail),
            Pending::Rcpt(recipient) => self.accept_rcpt(recipient),
            Pending::Data => match &self.grant {
                Some(grant) => {
                    let account = grant.account.clone();
                    self.phase = Phase::Counting;
                    Step::CountMessage { account }
                }
                None => self.start_data(),
            },
        }
    }

    /// The Authenticator's answer to [`Step::Recheck`]. A login that no longer holds ends the
    /// session's authentication and its transaction: the client may log in again with a
    /// secret that works. A store that cannot be read refuses for now rather than passing.
    pub fn on_recheck(&mut self, decision: Decision) -> Step {
        let Phase::Rechecking(pending) = std::mem::replace(&mut self.phase, Phase::Command) else {
            return Step::Reply(Reply::local_error());
        };
        match decision {
            Decision::Granted(_) => self.proceed(pending),
            Decision::Denied(why) => {
                self.grant = None;
                self.transaction = None;
                Step::Reply(Reply::login_revoked(why))
            }
            Decision::TempFail(_) => Step::Reply(Reply::login_check_failed()),
        }
    }

    /// The answer to [`Step::CountMessage`]: 354, or `450 4.7.1`, which ends the transaction
    /// like any other refused message (the client tries again later).
    pub fn on_message_counted(&mut self, counted: Result<(), RetryAfter>) -> Step {
        if !matches!(self.phase, Phase::Counting) {
            return Step::Reply(Reply::local_error());
        }
        self.phase = Phase::Command;
        match counted {
            Ok(()) => self.start_data(),
            Err(r) => {
                self.transaction = None;
                Step::Reply(Reply::message_limit(r.window, r.limit))
            }
        }
    }

    /// [`Step::CountMessage`] could not be answered (the store failed): `451 4.3.0`, which ends
    /// the transaction; the client tries again later. Never a refusal for a full limit.
    pub fn on_message_count_failed(&mut self) -> Step {
        if !matches!(self.phase, Phase::Counting) {
            return Step::Reply(Reply::local_error());
        }
        self.phase = Phase::Command;
        self.transaction = None;
        Step::Reply(Reply::local_error())
    }
}
