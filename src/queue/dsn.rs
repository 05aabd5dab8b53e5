//! Delivery status notifications (RFC 3464, in a multipart/report of RFC 6522): the bounce sent
//! to the envelope sender for recipients that failed permanently or expired in the queue.
//! Bounces go out with the null sender, so they are never bounced themselves.

use super::{Envelope, Recipient, Submission};
use crate::mail_date::rfc5322_date;

/// Why the listed recipients failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// A 5xx reply or a permanent routing error.
    Rejected,
    /// Still undelivered after `max_queue_age`.
    Expired,
}

/// The DSN's envelope and message, or `None` for a bounce (never bounce a bounce).
pub fn build(
    hostname: &str,
    original: &Envelope,
    failed: &[Recipient],
    why: Failure,
    original_headers: &[u8],
    now: u64,
) -> Option<(Submission, Vec<u8>)> {
    if original.is_bounce() || failed.is_empty() {
        return None;
    }
    let boundary = format!("{}/{}", original.id, hostname);
    let date = rfc5322_date(now);
    let mut m = String::new();
    m.push_str(&format!("From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"));
    m.push_str(&format!("To: <{}>\r\n", original.sender));
    m.push_str("Subject: Undelivered Mail Returned to Sender\r\n");
    m.push_str(&format!("Date: {date}\r\n"));
    m.push_str(&format!("Message-ID: <{}.dsn@{hostname}>\r\n", original.id));
    m.push_str("Auto-Submitted: auto-replied\r\n");
    m.push_str("MIME-Version: 1.0\r\n");
    m.push_str(&format!(
        "Content-Type: multipart/report; report-type=delivery-status;\r\n\tboundary=\"{boundary}\"\r\n\r\n"
    ));
    m.push_str("This is a MIME-encapsulated message.\r\n\r\n");
    m.push_str(&format!("--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"));
    let reason = match why {
        Failure::Rejected => "could not be delivered to the following recipients",
        Failure::Expired => "could not be delivered in time and has been given up on",
    };
    m.push_str(&format!("This is the mail system at {hostname}.\r\n\r\nYour message {reason}:\r\n\r\n"));
    for r in failed {
        m.push_str(&format!("<{}>: {}\r\n", r.address, one_line(r.last_result.as_deref().unwrap_or("failed"))));
    }
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Type: message/delivery-status\r\n\r\n"));
    m.push_str(&format!("Reporting-MTA: dns; {hostname}\r\nX-Queue-ID: {}\r\n", original.id));
    m.push_str(&format!("Arrival-Date: {}\r\n", rfc5322_date(original.queued_at)));
    for r in failed {
        m.push_str(&format!("\r\nFinal-Recipient: rfc822; {}\r\nAction: failed\r\n", r.address));
        m.push_str(&format!("Status: {}\r\n", status_of(r, why)));
        if let Some(remote) = &r.remote {
            m.push_str(&format!("Remote-MTA: dns; {remote}\r\n"));
        }
        if let Some(result) = &r.last_result {
            m.push_str(&format!("Diagnostic-Code: smtp; {}\r\n", one_line(result)));
        }
    }
    m.push_str(&format!("\r\n--{boundary}\r\nContent-Type: text/rfc822-headers\r\n\r\n"));
    let mut bytes = m.into_bytes();
    bytes.extend_from_slice(original_headers);
    if !original_headers.ends_with(b"\r\n") {
        bytes.extend_from_slice(b"\r\n");
    }
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let submission = Submission {
        sender: None,
        recipients: vec![original.sender.clone()],
        smtputf8: original.smtputf8,
        eight_bit: true,
        auth_user: None,
        account_id: None,
        client_ip: None,
    };
    Some((submission, bytes))
}

/// The header section of a stored message (up to the first empty line), capped at 64 KiB.
pub fn headers_of(message: &[u8]) -> &[u8] {
    let end = message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |p| p + 2);
    &message[..end.min(64 * 1024)]
}

/// The enhanced status in a reply like `550 5.1.1 no such user`, else a generic one.
fn status_of(r: &Recipient, why: Failure) -> String {
    if why == Failure::Expired {
        return "4.4.7".into();
    }
    let found = r.last_result.as_deref().and_then(|text| {
        let word = text.split_whitespace().nth(1)?;
        let parts: Vec<&str> = word.split('.').collect();
        (parts.len() == 3
            && parts[0] == "5"
            && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit())))
        .then(|| word.to_string())
    });
    found.unwrap_or_else(|| "5.0.0".into())
}

fn one_line(s: &str) -> String {
    s.replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::queue::RecipientStatus;

    fn envelope(sender: &str) -> Envelope {
        let s = Submission {
            sender: (!sender.is_empty()).then(|| sender.to_string()),
            recipients: vec!["ok@example.net".into(), "bad@example.net".into()],
            smtputf8: false,
            eight_bit: false,
            auth_user: None,
            account_id: None,
            client_ip: None,
        };
        Envelope::new("0123456789ABCDEF".into(), &s, 0, 10, String::new())
    }

    fn failed() -> Recipient {
        Recipient {
            address: "bad@example.net".into(),
            status: RecipientStatus::Failed,
            last_result: Some("550 5.1.1 no such user".into()),
            remote: Some("mx.example.net".into()),
        }
    }

    #[test]
    fn dsn_goes_to_the_sender_from_the_null_sender_with_a_delivery_status_part() {
        let original = envelope("ann@example.com");
        let (sub, msg) =
            build("relay.test", &original, &[failed()], Failure::Rejected, b"Subject: hi\r\n", 60).unwrap();
        assert_eq!(sub.sender, None);
        assert_eq!(sub.recipients, vec!["ann@example.com".to_string()]);
        let text = String::from_utf8(msg).unwrap();
        assert!(text.contains("Content-Type: multipart/report; report-type=delivery-status;"));
        assert!(text.contains("Final-Recipient: rfc822; bad@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n"));
        assert!(text.contains("Diagnostic-Code: smtp; 550 5.1.1 no such user"));
        assert!(text.contains("Remote-MTA: dns; mx.example.net"));
        assert!(text.contains("Subject: hi"));
        assert!(!text.contains("ok@example.net"));
        assert!(text.ends_with("--\r\n"));
        assert!(!text.replace("\r\n", "").contains('\n'), "bare LF in the DSN");
    }

    #[test]
    fn a_bounce_is_never_bounced() {
        assert!(build("relay.test", &envelope(""), &[failed()], Failure::Rejected, b"", 0).is_none());
    }

    #[test]
    fn expiry_reports_4_4_7_and_headers_stop_at_the_blank_line() {
        let (_, msg) = build("r", &envelope("a@b.c"), &[failed()], Failure::Expired, b"", 0).unwrap();
        assert!(String::from_utf8(msg).unwrap().contains("Status: 4.4.7"));
        assert_eq!(headers_of(b"A: 1\r\nB: 2\r\n\r\nbody\r\n"), b"A: 1\r\nB: 2\r\n");
    }
}
