//! Turns a `POST /v1/email/send` body into an SMTP envelope and RFC 5322 message bytes: either
//! raw MIME passed through (line endings made CRLF), or a message built from fields. Pure: no
//! I/O, no clock (the caller passes the time and the unique part of the Message-ID).

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::send::SendEmail;
use crate::mail_date::rfc5322_date;
use crate::mailbox::Mailbox;

/// More recipients than this in one call is refused (the relay's RCPT limit is of this order).
pub const MAX_RECIPIENTS: usize = 100;
/// RFC 5322 §2.1.1: a line is at most 998 characters without its CRLF.
pub const MAX_LINE: usize = 998;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub mail_from: Mailbox,
    pub rcpt_to: Vec<Mailbox>,
    /// The message with CRLF line endings.
    pub message: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ComposeError {
    #[error("give either raw or the message fields (from, to, cc, subject, text, html), not both")]
    RawAndFields,
    #[error("raw needs an envelope (from and to)")]
    RawWithoutEnvelope,
    #[error("raw is not a message: it needs header lines, an empty line, then the body")]
    RawMalformed,
    #[error("from is required")]
    NoFrom,
    #[error("at least one recipient is required")]
    NoRecipients,
    #[error("too many recipients (at most {MAX_RECIPIENTS})")]
    TooManyRecipients,
    #[error("text or html is required")]
    NoBody,
    #[error("subject must not contain line breaks or control characters")]
    BadSubject,
    #[error("raw has a line longer than {MAX_LINE} characters (RFC 5322 §2.1.1)")]
    RawLineTooLong,
    #[error("raw contains a NUL character")]
    RawNul,
    #[error("raw has a header line with a control character")]
    RawHeaderControl,
    #[error("invalid address in {field}: {message}")]
    BadAddress { field: &'static str, message: String },
}

/// An envelope address as RFC 5321 §4.1.2 has it; the local part keeps its case.
fn address(field: &'static str, s: &str) -> Result<Mailbox, ComposeError> {
    Mailbox::parse(s.trim_matches(' ')).map_err(|e| ComposeError::BadAddress { field, message: e.to_string() })
}

fn addresses(field: &'static str, items: &[String]) -> Result<Vec<Mailbox>, ComposeError> {
    items.iter().map(|s| address(field, s)).collect()
}

/// What makes a Message-ID and a Date: supplied by the caller so that this stays pure.
pub struct Stamp<'a> {
    pub unix_seconds: u64,
    pub unique: &'a str,
    pub hostname: &'a str,
}

pub fn compose(req: &SendEmail, stamp: &Stamp<'_>) -> Result<Outgoing, ComposeError> {
    let has_fields = req.from.is_some()
        || !req.to.is_empty()
        || !req.cc.is_empty()
        || req.subject.is_some()
        || req.text.is_some()
        || req.html.is_some();
    let envelope = match &req.envelope {
        Some(e) => Some((address("envelope.from", &e.from)?, addresses("envelope.to", &e.to)?)),
        None => None,
    };
    let outgoing = if let Some(raw) = &req.raw {
        if has_fields {
            return Err(ComposeError::RawAndFields);
        }
        let (mail_from, rcpt_to) = envelope.ok_or(ComposeError::RawWithoutEnvelope)?;
        check_raw(raw)?;
        Outgoing { mail_from, rcpt_to, message: crlf(raw).ok_or(ComposeError::RawMalformed)? }
    } else {
        let from = address("from", req.from.as_deref().ok_or(ComposeError::NoFrom)?)?;
        let to = addresses("to", &req.to)?;
        let cc = addresses("cc", &req.cc)?;
        let message = build(&from, &to, &cc, req, stamp)?;
        let (mail_from, rcpt_to) = envelope.unwrap_or_else(|| (from, to.iter().chain(&cc).cloned().collect()));
        Outgoing { mail_from, rcpt_to, message }
    };
    if outgoing.rcpt_to.is_empty() {
        return Err(ComposeError::NoRecipients);
    }
    if outgoing.rcpt_to.len() > MAX_RECIPIENTS {
        return Err(ComposeError::TooManyRecipients);
    }
    Ok(outgoing)
}

/// What the relay would refuse or a receiver could misread: NUL anywhere, a line over the
/// RFC 5322 limit, a control character (other than the tab of folding) in a header.
fn check_raw(raw: &str) -> Result<(), ComposeError> {
    if raw.contains('\0') {
        return Err(ComposeError::RawNul);
    }
    let mut in_header = true;
    for line in raw.replace("\r\n", "\n").split(['\n', '\r']) {
        if line.len() > MAX_LINE {
            return Err(ComposeError::RawLineTooLong);
        }
        if in_header && line.chars().any(is_header_control) {
            return Err(ComposeError::RawHeaderControl);
        }
        in_header &= !line.is_empty();
    }
    Ok(())
}

/// Control characters that have no place in a header value; HTAB is folding white space.
fn is_header_control(c: char) -> bool {
    c.is_control() && c != '\t'
}

/// Raw MIME with every line ending made CRLF; `None` without a header section.
fn crlf(raw: &str) -> Option<Vec<u8>> {
    let normalized = raw.replace("\r\n", "\n").replace('\r', "\n");
    let (head, _) = normalized.split_once("\n\n")?;
    let first = head.lines().next()?;
    if !first.contains(':') || first.starts_with([' ', '\t']) {
        return None;
    }
    let mut out = normalized.replace('\n', "\r\n");
    if !out.ends_with("\r\n") {
        out.push_str("\r\n");
    }
    Some(out.into_bytes())
}

fn build(
    from: &Mailbox,
    to: &[Mailbox],
    cc: &[Mailbox],
    req: &SendEmail,
    stamp: &Stamp<'_>,
) -> Result<Vec<u8>, ComposeError> {
    let subject = req.subject.as_deref().unwrap_or("");
    if subject.chars().any(is_header_control) {
        return Err(ComposeError::BadSubject);
    }
    let join = |list: &[Mailbox]| list.iter().map(|a| a.as_str()).collect::<Vec<_>>().join(", ");
    let mut m = String::new();
    m.push_str(&format!("From: {}\r\n", from.as_str()));
    if !to.is_empty() {
        m.push_str(&format!("To: {}\r\n", join(to)));
    }
    if !cc.is_empty() {
        m.push_str(&format!("Cc: {}\r\n", join(cc)));
    }
    m.push_str(&format!("Subject: {}\r\n", encode_header(subject)));
    m.push_str(&format!("Date: {}\r\n", rfc5322_date(stamp.unix_seconds)));
    m.push_str(&format!("Message-ID: <{}@{}>\r\n", stamp.unique, stamp.hostname));
    m.push_str("MIME-Version: 1.0\r\n");
    match (&req.text, &req.html) {
        (None, None) => return Err(ComposeError::NoBody),
        (Some(text), None) => m.push_str(&part("text/plain", text)),
        (None, Some(html)) => m.push_str(&part("text/html", html)),
        (Some(text), Some(html)) => {
            let boundary = format!("=_relaykey_{}", stamp.unique);
            m.push_str(&format!("Content-Type: multipart/alternative; boundary=\"{boundary}\"\r\n\r\n"));
            for (kind, body) in [("text/plain", text), ("text/html", html)] {
                m.push_str(&format!("--{boundary}\r\n{}", part(kind, body)));
            }
            m.push_str(&format!("--{boundary}--\r\n"));
        }
    }
    Ok(m.into_bytes())
}

/// A body part in base64, which carries any text safely through 7-bit hops.
fn part(kind: &str, body: &str) -> String {
    let encoded = STANDARD.encode(body.as_bytes());
    let mut out = format!("Content-Type: {kind}; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n");
    for chunk in encoded.as_bytes().chunks(76) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push_str("\r\n");
    }
    out
}

/// ASCII stays as is; anything else becomes RFC 2047 encoded words of at most 75 characters.
fn encode_header(text: &str) -> String {
    if text.is_ascii() {
        return text.to_string();
    }
    let mut words = Vec::new();
    let mut chunk = String::new();
    for c in text.chars() {
        // 45 bytes of UTF-8 encode to 60 base64 characters, plus 12 for `=?UTF-8?B??=`.
        if chunk.len() + c.len_utf8() > 45 {
            words.push(std::mem::take(&mut chunk));
        }
        chunk.push(c);
    }
    words.push(chunk);
    words.iter().map(|w| format!("=?UTF-8?B?{}?=", STANDARD.encode(w.as_bytes()))).collect::<Vec<_>>().join("\r\n ")
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp<'static> = Stamp { unix_seconds: 1_796_032_346, unique: "abc123", hostname: "relay.example" };

    fn req(json: serde_json::Value) -> SendEmail {
        serde_json::from_value(json).unwrap()
    }

    fn text(o: &Outgoing) -> String {
        String::from_utf8(o.message.clone()).unwrap()
    }

    #[test]
    fn fields_build_a_message_and_the_envelope_defaults_to_to_and_cc() {
        let o = compose(
            &req(serde_json::json!({"from": "a@example.com", "to": ["b@example.net"], "cc": ["c@example.org"],
                                    "subject": "Hello", "text": "Hi there"})),
            &STAMP,
        )
        .unwrap();
        assert_eq!(o.mail_from.as_str(), "a@example.com");
        assert_eq!(o.rcpt_to.iter().map(|a| a.as_str()).collect::<Vec<_>>(), ["b@example.net", "c@example.org"]);
        let m = text(&o);
        assert!(
            m.starts_with("From: a@example.com\r\nTo: b@example.net\r\nCc: c@example.org\r\nSubject: Hello\r\n"),
            "{m}"
        );
        assert!(m.contains("Message-ID: <abc123@relay.example>\r\n"));
        assert!(m.contains("Content-Type: text/plain; charset=utf-8\r\n"));
        assert!(m.contains(&STANDARD.encode("Hi there")));
        assert!(!m.replace("\r\n", "").contains('\n'), "bare LF in the message");
    }

    #[test]
    fn text_and_html_make_multipart_alternative_and_unicode_subjects_are_encoded() {
        let o = compose(
            &req(serde_json::json!({"from": "a@example.com", "to": ["b@example.net"], "subject": "Grüße",
                                    "text": "t", "html": "<p>h</p>"})),
            &STAMP,
        )
        .unwrap();
        let m = text(&o);
        assert!(m.contains("Subject: =?UTF-8?B?R3LDvMOfZQ==?=\r\n"), "{m}");
        assert!(m.contains("multipart/alternative; boundary=\"=_relaykey_abc123\""));
        assert!(m.ends_with("--=_relaykey_abc123--\r\n"));
    }

    #[test]
    fn raw_passes_through_with_crlf_and_needs_an_envelope() {
        let raw = "Subject: x\nFrom: a@example.com\n\nbody\n";
        let with = compose(
            &req(serde_json::json!({"raw": raw, "envelope": {"from": "a@example.com", "to": ["b@example.net"]}})),
            &STAMP,
        )
        .unwrap();
        assert_eq!(text(&with), "Subject: x\r\nFrom: a@example.com\r\n\r\nbody\r\n");
        assert_eq!(
            compose(&req(serde_json::json!({"raw": raw})), &STAMP).unwrap_err(),
            ComposeError::RawWithoutEnvelope
        );
    }

    #[test]
    fn refusals() {
        for (body, want) in [
            (
                serde_json::json!({"raw": "a: b\n\nc", "subject": "x", "envelope": {"from": "a@b.c", "to": ["d@e.f"]}}),
                ComposeError::RawAndFields,
            ),
            (
                serde_json::json!({"raw": "no header", "envelope": {"from": "a@b.c", "to": ["d@e.f"]}}),
                ComposeError::RawMalformed,
            ),
            (serde_json::json!({"to": ["b@example.net"], "text": "x"}), ComposeError::NoFrom),
            (serde_json::json!({"from": "a@example.com", "text": "x"}), ComposeError::NoRecipients),
            (serde_json::json!({"from": "a@example.com", "to": ["b@example.net"]}), ComposeError::NoBody),
            (
                serde_json::json!({"from": "a@example.com", "to": ["b@example.net"], "text": "x", "subject": "a\r\nBcc: evil@x.y"}),
                ComposeError::BadSubject,
            ),
        ] {
            assert_eq!(compose(&req(body.clone()), &STAMP).unwrap_err(), want, "{body}");
        }
        let bad = compose(&req(serde_json::json!({"from": "a@example.com", "to": ["x\r\ny@z"], "text": "x"})), &STAMP);
        assert!(matches!(bad, Err(ComposeError::BadAddress { field: "to", .. })));
    }

    // Issue 14 item 11: only the domain is case-insensitive (RFC 5321 §2.4).
    #[test]
    fn local_parts_keep_their_case() {
        let o = compose(
            &req(serde_json::json!({"from": "Ann.Lee@Example.COM", "to": ["Mixed.Case@Example.NET", "\"Q u\"@x.org"],
                                    "text": "x"})),
            &STAMP,
        )
        .unwrap();
        assert_eq!(o.mail_from.as_str(), "Ann.Lee@example.com");
        assert_eq!(
            o.rcpt_to.iter().map(|a| a.as_str()).collect::<Vec<_>>(),
            ["Mixed.Case@example.net", "\"Q u\"@x.org"]
        );
        assert!(text(&o).starts_with("From: Ann.Lee@example.com\r\nTo: Mixed.Case@example.net, \"Q u\"@x.org\r\n"));
    }

    // Issue 14 item 11: what a receiver could misread or the relay would refuse.
    #[test]
    fn raw_with_nul_long_lines_or_header_controls_and_subjects_with_controls_are_refused() {
        let env = serde_json::json!({"from": "a@example.com", "to": ["b@example.net"]});
        let long = format!("Subject: x\n\n{}\n", "y".repeat(999));
        for (raw, want) in [
            ("Subject: x\n\nbo\0dy\n".to_string(), ComposeError::RawNul),
            ("Subject: x\0y\n\nbody\n".to_string(), ComposeError::RawNul),
            (long, ComposeError::RawLineTooLong),
            (format!("Subject: {}\n\nbody\n", "y".repeat(990)), ComposeError::RawLineTooLong),
            ("Subject: a\u{1b}[2Jb\n\nbody\n".to_string(), ComposeError::RawHeaderControl),
            ("Subject: a\r\nX-A: \u{7f}\r\n\r\nbody\r\n".to_string(), ComposeError::RawHeaderControl),
        ] {
            let got = compose(&req(serde_json::json!({"raw": raw, "envelope": env})), &STAMP);
            assert_eq!(got.unwrap_err(), want, "{}", raw.escape_debug());
        }
        let ok = format!("Subject: a\r\n\tfolded\r\n\r\n{}\r\nbell \u{7} in the body\r\n", "y".repeat(998));
        assert!(compose(&req(serde_json::json!({"raw": ok, "envelope": env})), &STAMP).is_ok());
        for subject in ["a\0b", "a\u{1b}]0;title\u{7}", "a\u{85}b"] {
            let body =
                serde_json::json!({"from": "a@example.com", "to": ["b@example.net"], "text": "x", "subject": subject});
            assert_eq!(
                compose(&req(body), &STAMP).unwrap_err(),
                ComposeError::BadSubject,
                "{}",
                subject.escape_debug()
            );
        }
    }
}
