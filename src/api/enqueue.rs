//! Puts a composed message into the relay's durable queue through the same [`Outbox::enqueue`]
//! as the SMTP server's DATA: a `Received:` trace line, the message, fsync, then the delivery
//! side is told.

use std::net::IpAddr;

use super::compose::Outgoing;
use crate::queue::Trace;
use crate::queue::{EnqueueError, Outbox, Submission};

/// Who submitted the message, for the trace header, the envelope and the log.
pub struct Submitter<'a> {
    pub account: &'a str,
    pub account_id: i64,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
}

/// Queues `outgoing` durably and returns its queue id; only then may the API answer `202`.
pub async fn enqueue(outbox: &Outbox, outgoing: Outgoing, by: &Submitter<'_>) -> Result<String, EnqueueError> {
    let submission = Submission {
        sender: Some(outgoing.mail_from.to_string()),
        recipients: outgoing.rcpt_to.iter().map(|a| a.to_string()).collect(),
        smtputf8: outgoing
            .mail_from
            .as_str()
            .chars()
            .chain(outgoing.rcpt_to.iter().flat_map(|a| a.as_str().chars()))
            .any(|c| !c.is_ascii()),
        eight_bit: outgoing.message.iter().any(|b| !b.is_ascii()),
        auth_user: Some(by.account.to_string()),
        account_id: Some(by.account_id),
        client_ip: Some(by.client_ip),
    };
    let incoming = outbox.begin(true)?;
    let mut bytes = Trace {
        helo: "api",
        client_ip: by.client_ip,
        hostname: by.hostname,
        protocol: "HTTP",
        id: incoming.id(),
        single_recipient: None,
        unix_time: crate::queue::spool::unix_now(),
    }
    .header()
    .into_bytes();
    bytes.extend_from_slice(&outgoing.message);
    outbox.enqueue(incoming, bytes, submission, "api").await
}
