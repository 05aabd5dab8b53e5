//! The header fields of a message and which of them a signature covers (RFC 6376 §5.4).
//!
//! `h=` names the fields in the order the verifier hashes them; each name takes the last
//! instance not yet used, from the bottom up (§5.4.2). A name listed once more than it occurs
//! ("oversigning") takes an empty instance, so a field added later breaks the signature: that
//! is what stops a second `From:` or `Subject:` from being slipped above a signed message.

/// One header field as it stands in the message, folding and trailing CRLF included.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Field<'a> {
    pub name: &'a [u8],
    pub raw: &'a [u8],
}

/// Splits a header section (lines ending in CRLF, without the empty line that ends it) into
/// fields. A line that starts with WSP continues the field before it. A first line that is a
/// continuation, or a line without a colon, is kept as a field whose name matches nothing we
/// sign.
pub fn split_fields(head: &[u8]) -> Vec<Field<'_>> {
    let mut fields = Vec::new();
    let mut start = 0;
    let mut at = 0;
    while at < head.len() {
        let line_end = match memchr::memmem::find(&head[at..], b"\r\n") {
            Some(i) => at + i + 2,
            None => head.len(),
        };
        let next_continues = head.get(line_end).is_some_and(|&b| b == b' ' || b == b'\t');
        if !next_continues {
            fields.push(field(&head[start..line_end]));
            start = line_end;
        }
        at = line_end;
    }
    if start < head.len() {
        fields.push(field(&head[start..]));
    }
    fields
}

fn field(raw: &[u8]) -> Field<'_> {
    let name = match raw.iter().position(|&b| b == b':') {
        Some(at) => raw[..at].trim_ascii_end(),
        None => &b""[..],
    };
    Field { name, raw }
}

/// The fields RFC 6376 §5.4.1 says a signer should sign, plus the MIME fields; each is signed
/// as often as it occurs.
const SIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "Content-Disposition",
    "Content-ID",
    "Content-Description",
    "Sender",
    "Resent-Date",
    "Resent-From",
    "Resent-Sender",
    "Resent-To",
    "Resent-Cc",
    "Resent-Message-ID",
    "List-Id",
    "List-Help",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "List-Subscribe",
    "List-Post",
    "List-Owner",
    "List-Archive",
];

/// The fields whose addition would change what a reader sees: listed once more than they
/// occur, so they are also protected when absent.
const OVERSIGNED: &[&str] = &[
    "From",
    "Reply-To",
    "Subject",
    "Date",
    "To",
    "Cc",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
];

/// `List-Unsubscribe` and `List-Unsubscribe-Post` (RFC 8058 one-click) are oversigned when
/// present: absent, adding them later is what a mailing list does, and is harmless.
const OVERSIGNED_WHEN_PRESENT: &[&str] = &["List-Unsubscribe", "List-Unsubscribe-Post"];

/// The `h=` list for a message with these fields: each signed name as often as it occurs,
/// oversigned names once more.
pub fn signed_names(fields: &[Field<'_>]) -> Vec<&'static str> {
    let mut names = Vec::new();
    for &name in SIGNED {
        let present = fields.iter().filter(|f| f.name.eq_ignore_ascii_case(name.as_bytes())).count();
        let extra = usize::from(OVERSIGNED.contains(&name) || (present > 0 && OVERSIGNED_WHEN_PRESENT.contains(&name)));
        names.extend(std::iter::repeat_n(name, present + extra));
    }
    names
}

/// The instances `names` select, in `h=` order: for each name, the last instance not yet
/// taken; `None` where the name has no instance left (it contributes nothing to the hash).
pub fn select<'a>(fields: &[Field<'a>], names: &[&str]) -> Vec<Option<Field<'a>>> {
    let mut used = vec![false; fields.len()];
    names
        .iter()
        .map(|name| {
            let at =
                (0..fields.len()).rev().find(|&i| !used[i] && fields[i].name.eq_ignore_ascii_case(name.as_bytes()))?;
            used[at] = true;
            Some(fields[at])
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEAD: &[u8] = b"Received: from x\r\n\tby y\r\nFrom: a@example.com\r\nSubject: one\r\n two\r\n\
        To: b@example.net\r\nSubject: second\r\nX-Other: z\r\n";

    #[test]
    fn splits_folded_fields() {
        let f = split_fields(HEAD);
        let names: Vec<&[u8]> = f.iter().map(|f| f.name).collect();
        assert_eq!(names, [&b"Received"[..], b"From", b"Subject", b"To", b"Subject", b"X-Other"]);
        assert_eq!(f[2].raw, b"Subject: one\r\n two\r\n");
        assert_eq!(f[0].raw, b"Received: from x\r\n\tby y\r\n");
    }

    #[test]
    fn a_field_without_colon_or_crlf_is_kept() {
        let f = split_fields(b"garbage line\r\nFrom : a@b.example");
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].name, b"");
        assert_eq!((f[1].name, f[1].raw), (&b"From"[..], &b"From : a@b.example"[..]));
        assert!(split_fields(b"").is_empty());
    }

    #[test]
    fn oversigns_the_key_fields_and_never_signs_received() {
        let names = signed_names(&split_fields(HEAD));
        assert_eq!(
            names,
            [
                "From",
                "From",
                "Reply-To",
                "Subject",
                "Subject",
                "Subject",
                "Date",
                "To",
                "To",
                "Cc",
                "Message-ID",
                "MIME-Version",
                "Content-Type",
                "Content-Transfer-Encoding"
            ]
        );
        let with_list = split_fields(b"From: a@b.example\r\nList-Unsubscribe: <https://x>\r\n");
        let names = signed_names(&with_list);
        assert_eq!(names.iter().filter(|n| **n == "List-Unsubscribe").count(), 2);
        assert!(!names.contains(&"List-Unsubscribe-Post"));
        assert!(!names.iter().any(|n| n.eq_ignore_ascii_case("received")));
    }

    #[test]
    fn selects_bottom_up_and_runs_dry() {
        let fields = split_fields(HEAD);
        let picked = select(&fields, &["Subject", "subject", "SUBJECT", "From"]);
        assert_eq!(picked[0].map(|f| f.raw), Some(&b"Subject: second\r\n"[..]));
        assert_eq!(picked[1].map(|f| f.raw), Some(&b"Subject: one\r\n two\r\n"[..]));
        assert_eq!(picked[2], None);
        assert_eq!(picked[3].map(|f| f.raw), Some(&b"From: a@example.com\r\n"[..]));
    }
}
