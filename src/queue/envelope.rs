//! The envelope of a queued message: who sent it, to whom, and how delivery to each recipient
//! stands. Stored as JSON next to the message body; the body never changes after it is queued.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What the SMTP session hands the spool when a message's data is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// `None` is the null reverse path (a bounce).
    pub sender: Option<String>,
    pub recipients: Vec<String>,
    pub smtputf8: bool,
    pub eight_bit: bool,
    /// The login that sent it, for the log and `queue show`.
    pub auth_user: Option<String>,
    pub client_ip: Option<IpAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecipientStatus {
    Pending,
    Delivered,
    /// Permanently refused; a DSN has been queued (or the message was a bounce itself).
    Failed,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub address: String,
    pub status: RecipientStatus,
    /// The last reply or error, e.g. `550 5.1.1 no such user`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_result: Option<String>,
    /// The host that answered last (for the DSN's `Remote-MTA`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    pub id: String,
    /// Empty string for the null reverse path.
    pub sender: String,
    pub recipients: Vec<Recipient>,
    #[serde(default)]
    pub smtputf8: bool,
    #[serde(default)]
    pub eight_bit: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<IpAddr>,
    /// Unix seconds.
    pub queued_at: u64,
    pub attempts: u32,
    /// Unix seconds; 0 means "now" (set by `relaykey queue retry`).
    pub next_attempt: u64,
    /// Octets of the stored message.
    pub size: u64,
}

impl Envelope {
    pub fn new(id: String, s: &Submission, queued_at: u64, size: u64) -> Self {
        Self {
            id,
            sender: s.sender.clone().unwrap_or_default(),
            recipients: s
                .recipients
                .iter()
                .map(|a| Recipient {
                    address: a.clone(),
                    status: RecipientStatus::Pending,
                    last_result: None,
                    remote: None,
                })
                .collect(),
            smtputf8: s.smtputf8,
            eight_bit: s.eight_bit,
            auth_user: s.auth_user.clone(),
            client_ip: s.client_ip,
            queued_at,
            attempts: 0,
            next_attempt: queued_at,
            size,
        }
    }

    /// A bounce (null sender) is never bounced again (RFC 5321 §4.5.5).
    pub fn is_bounce(&self) -> bool {
        self.sender.is_empty()
    }

    pub fn pending(&self) -> impl Iterator<Item = &Recipient> {
        self.recipients.iter().filter(|r| r.status == RecipientStatus::Pending)
    }

    pub fn is_finished(&self) -> bool {
        self.pending().next().is_none()
    }
}
