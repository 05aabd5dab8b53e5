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
    /// The account that sent it (relay AUTH or API key): its verified domains' DKIM keys sign
    /// it. `None` (inbound, trusted networks, bounces): never signed.
    pub account_id: Option<i64>,
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
    /// Octets of the message as delivered (the header prefix included).
    pub size: u64,
    /// Header fields made at enqueue (the `DKIM-Signature:` fields) that go above the stored
    /// message whenever it is read: kept here, in the spool file, so a retry sends the same
    /// signature rather than signing again.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub header_prefix: String,
}

impl Envelope {
    pub fn new(id: String, s: &Submission, queued_at: u64, size: u64, header_prefix: String) -> Self {
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
            size: size + header_prefix.len() as u64,
            header_prefix,
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
