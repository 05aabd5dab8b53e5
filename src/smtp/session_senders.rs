//! Sender binding in the session: an authenticated session may use as `MAIL FROM`, and (with
//! `check_header_from`) in the message's `From:`, only addresses its account owns. The session
//! only asks ([`Step::CheckSenders`]); the server asks the sender directory and reports back
//! with [`Session::on_senders_checked`]. Clients of `trusted_networks` that did not log in are
//! not bound.

use crate::header_from::{self, HeadCapture};

use super::*;

/// Sender binding on the relay (`[senders] enforce`, `check_header_from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderBinding {
    Off,
    /// `MAIL FROM` only.
    MailFrom,
    /// `MAIL FROM` and every address of the message's `From:` header.
    MailFromAndHeader,
}

/// Addresses the session's login wants to use: the server asks the sender directory whether the
/// login's account may send as each one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderQuery {
    pub account_id: i64,
    pub login: String,
    pub addresses: Vec<String>,
}

/// The sender directory's answer to a [`SenderQuery`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SenderAnswer {
    /// The account may send as every address.
    Allowed,
    /// The first address the account may not send as.
    NotOwned(String),
    /// The directory could not answer (store error).
    Unavailable,
}

impl Session {
    /// What to ask the sender directory about `addresses`, if this session is bound at all.
    pub(super) fn sender_query(&self, addresses: Vec<String>) -> Option<SenderQuery> {
        let grant = self.grant.as_ref().filter(|_| self.config.sender_binding != SenderBinding::Off)?;
        Some(SenderQuery { account_id: grant.account_id, login: grant.username.clone(), addresses })
    }

    /// The message is complete: queue it, or first have every `From:` address checked. A
    /// `From:` that cannot be read unambiguously (two of them, an address a reader could take
    /// for another) is refused: it cannot be shown to be the account's.
    pub(super) fn check_header_from(&mut self, submission: Submission, head: &HeadCapture) -> Step {
        if self.config.sender_binding == SenderBinding::MailFromAndHeader
            && let Some(query) = self.sender_query(Vec::new())
        {
            let addresses = match head.head().and_then(header_from::from_addresses) {
                Ok(found) => found.iter().map(|m| m.to_string()).collect::<Vec<_>>(),
                Err(e) => return self.refuse(Reply::header_from_unreadable(&e)),
            };
            if !addresses.is_empty() {
                self.phase = Phase::CheckingHeaderFrom(submission);
                return Step::CheckSenders(SenderQuery { addresses, ..query });
            }
        }
        self.phase = Phase::Queueing;
        Step::Enqueue(submission)
    }

    /// The sender directory's answer to the pending [`SenderQuery`].
    pub fn on_senders_checked(&mut self, answer: SenderAnswer) -> Step {
        let login = self.grant.as_ref().map(|g| g.username.clone()).unwrap_or_default();
        match std::mem::replace(&mut self.phase, Phase::Command) {
            Phase::CheckingMailFrom(tx) => match answer {
                SenderAnswer::Allowed => {
                    self.transaction = Some(tx);
                    Step::Reply(Reply::sender_ok())
                }
                SenderAnswer::NotOwned(address) => self.refuse(Reply::sender_not_owned(&address, &login)),
                SenderAnswer::Unavailable => Step::Reply(Reply::sender_lookup_failed()),
            },
            Phase::CheckingHeaderFrom(submission) => match answer {
                SenderAnswer::Allowed => {
                    self.phase = Phase::Queueing;
                    Step::Enqueue(submission)
                }
                SenderAnswer::NotOwned(address) => self.refuse(Reply::header_from_not_owned(&address, &login)),
                SenderAnswer::Unavailable => Step::Reply(Reply::sender_lookup_failed()),
            },
            other => {
                self.phase = other;
                self.refuse(Reply::bad_sequence("Command out of sequence"))
            }
        }
    }
}
