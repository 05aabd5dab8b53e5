//! Puts a composed message into the relay's durable queue, as the SMTP server does for DATA:
//! a `Received:` trace line, the message, fsync, then the delivery side is told.

use std::net::IpAddr;

use tracing::{info, warn};

use super::compose::Outgoing;
use crate::log_text::LogText;
use crate::queue::{EnqueueError, Outbox, Submission};
use crate::smtp::received::Trace;

/// Who submitted the message, for the trace header, the envelope and the log.
pub struct Submitter<'a> {
    pub account: &'a str,
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
        client_ip: Some(by.client_ip),
    };
    let (spool, client_ip, hostname) = (outbox.spool.clone(), by.client_ip, by.hostname.to_string());
    let committed = tokio::task::spawn_blocking(move || {
        let mut incoming = spool.begin()?;
        let trace = Trace {
            helo: "api",
            client_ip,
            hostname: &hostname,
            protocol: "HTTP",
            id: incoming.id(),
            single_recipient: None,
            unix_time: crate::queue::spool::unix_now(),
        }
        .header();
        match incoming.write(trace.as_bytes()).and_then(|()| incoming.write(&outgoing.message)) {
            Ok(()) => spool.commit(incoming, &submission),
            Err(e) => {
                spool.abort(incoming);
                Err(e)
            }
        }
    })
    .await
    .unwrap_or_else(|e| Err(EnqueueError::Io(e.to_string())));
    match committed {
        Ok(envelope) => {
            info!(proto = "api", id = %envelope.id, from = %LogText::new(&envelope.sender),
                  rcpts = envelope.recipients.len(), size = envelope.size, user = %LogText::new(&by.account),
                  ip = %by.client_ip, "queued");
            let id = envelope.id.clone();
            // A closed channel means delivery is shutting down; the periodic scan picks the
            // message up after a restart, so queueing has still succeeded.
            let _ = outbox.queued.send(envelope);
            Ok(id)
        }
        Err(e) => {
            warn!(proto = "api", error = %e, ip = %by.client_ip, "queueing failed");
            Err(e)
        }
    }
}
