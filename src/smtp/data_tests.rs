use super::*;
use proptest::prelude::*;

fn read_all(input: &[u8]) -> (Vec<u8>, Option<usize>, DataSummary) {
    let mut r = DotReader::new(1 << 20);
    let mut out = Vec::new();
    let end = match r.feed(input, &mut out) {
        Feed::Done { consumed } => Some(consumed),
        Feed::More => None,
    };
    (out, end, r.summary())
}

// The end marker and dot-stuffing (RFC 5321 §4.5.2).
#[test]
fn ends_only_at_crlf_dot_crlf_and_unstuffs() {
    for (input, body, consumed) in [
        (&b".\r\n"[..], &b""[..], 3),
        (b"a\r\n.\r\n", b"a\r\n", 6),
        (b"..a\r\n.\r\nQUIT\r\n", b".a\r\n", 8),
        (b"a\r\n..\r\n.\r\n", b"a\r\n.\r\n", 10),
        (b".x\r\n.\r\n", b"x\r\n", 7),
    ] {
        let (out, end, _) = read_all(input);
        assert_eq!((out.as_slice(), end), (body, Some(consumed)), "{}", input.escape_ascii());
    }
}

// The smuggling variants: none of these may end the message (SMTP smuggling, CVE-2023-51764).
#[test]
fn bare_lf_and_bare_cr_never_end_the_message() {
    for input in [
        &b"a\n.\n"[..],
        b"a\r.\r",
        b"a\n.\r\n",
        b"a\r\n.\n",
        b"a\r\n.\r",
        b"a\r.\r\n",
        b"a\n.\r\nMAIL FROM:<x@y>\r\n",
        b"a\r\n.\rX\r\n",
    ] {
        let (_, end, summary) = read_all(input);
        assert_eq!(end, None, "{} ended the message", input.escape_ascii());
        // A trailing CR is still undecided: the next byte may make it a CRLF.
        assert!(summary.bare_line_break || input.ends_with(b"\r"), "{}", input.escape_ascii());
    }
}

#[test]
fn bare_line_breaks_are_stored_as_crlf() {
    let (out, end, _) = read_all(b"a\nb\rc\r\n.\r\n");
    assert_eq!(end, Some(10));
    assert_eq!(out, b"a\r\nb\r\nc\r\n");
    // A dot line after a bare LF is content, stored as a line that the sender will re-stuff.
    let (out, end, _) = read_all(b"a\n.\r\n.\r\n");
    assert_eq!(end, Some(8));
    assert_eq!(out, b"a\r\n.\r\n");
}

#[test]
fn limits_are_flagged_and_scanning_continues() {
    let mut r = DotReader::new(10);
    let mut out = Vec::new();
    assert_eq!(r.feed(b"0123456789ABCDEF\r\n.\r\n", &mut out), Feed::Done { consumed: 21 });
    assert!(r.summary().too_big && !r.summary().line_too_long);
    assert!(out.len() <= 10);

    let long = [b"x".repeat(999), b"\r\n.\r\n".to_vec()].concat();
    let (_, end, s) = read_all(&long);
    assert_eq!((end, s.line_too_long), (Some(long.len()), true));
    let ok = [b"x".repeat(998), b"\r\n.\r\n".to_vec()].concat();
    let (out, _, s) = read_all(&ok);
    assert!(!s.line_too_long);
    assert_eq!(out.len(), 1000);
}

// Found by the fuzzer: a 999-octet line ended by a bare LF was 1000 octets on the wire but
// 1001 once stored with CRLF. The limit applies to the stored line.
#[test]
fn line_limit_applies_to_the_stored_form() {
    let bare = [b"x".repeat(999), b"\n\r\n.\r\n".to_vec()].concat();
    assert!(read_all(&bare).2.line_too_long);
    let fits = [b"x".repeat(998), b"\n\r\n.\r\n".to_vec()].concat();
    let (out, _, s) = read_all(&fits);
    assert!(!s.line_too_long);
    let mut wire = Vec::new();
    dot_stuff(&out, &mut wire);
    assert!(!read_all(&wire).2.line_too_long);
}

/// A text line: any octets but CR, LF and NUL (a NUL makes the message refused, see below).
fn arb_line() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(any::<u8>().prop_filter("no line breaks or NUL", |b| !matches!(*b, b'\r' | b'\n' | 0)), 0..40)
}

proptest! {
    // Whatever the lines, stuffing then reading gives them back, however the input is chunked.
    #[test]
    fn stuffed_message_reads_back_in_any_chunking(lines in prop::collection::vec(arb_line(), 0..12),
                                                  cut in 1usize..17, trailer in arb_line()) {
        let message: Vec<u8> = lines.iter().flat_map(|l| [l.as_slice(), b"\r\n"].concat()).collect();
        let mut wire = Vec::new();
        dot_stuff(&message, &mut wire);
        let end = wire.len();
        wire.extend_from_slice(&trailer);
        let mut r = DotReader::new(u64::MAX);
        let mut out = Vec::new();
        let mut offset = 0;
        let mut done = None;
        for chunk in wire.chunks(cut) {
            if let Feed::Done { consumed } = r.feed(chunk, &mut out) {
                done = Some(offset + consumed);
                break;
            }
            offset += chunk.len();
        }
        prop_assert_eq!(done, Some(end));
        prop_assert_eq!(out, message);
    }

    // Input without CRLF.CRLF (and not starting with .CRLF) never ends, and the output never
    // holds a bare CR or LF.
    #[test]
    fn no_end_marker_means_no_end(input in prop::collection::vec(prop::sample::select(b"\r\n.ab".to_vec()), 0..60)) {
        let has_marker = input.windows(5).any(|w| w == b"\r\n.\r\n") || input.starts_with(b".\r\n");
        let mut out = Vec::new();
        let fed = DotReader::new(u64::MAX).feed(&input, &mut out);
        if !has_marker {
            prop_assert_eq!(fed, Feed::More);
        }
        for (i, &b) in out.iter().enumerate() {
            if b == b'\r' { prop_assert_eq!(out.get(i + 1), Some(&b'\n')); }
            if b == b'\n' { prop_assert!(i > 0 && out[i - 1] == b'\r'); }
        }
    }

    #[test]
    fn byte_by_byte_equals_all_at_once(input in prop::collection::vec(prop::sample::select(b"\r\n.ab".to_vec()), 0..60)) {
        let (whole, end, _) = read_all(&input);
        let mut r = DotReader::new(1 << 20);
        let mut out = Vec::new();
        let mut done = None;
        for (i, b) in input.iter().enumerate() {
            if let Feed::Done { consumed } = r.feed(std::slice::from_ref(b), &mut out) {
                done = Some(i + consumed);
                break;
            }
        }
        prop_assert_eq!(done, end);
        prop_assert_eq!(out, whole);
    }
}

// Issue 14 item 11: NUL is not text; the message is read to its end, then refused.
#[test]
fn a_nul_octet_is_noted_and_stops_storing() {
    let (out, end, summary) = read_all(b"Subject: a\r\n\r\nx\0y\r\nmore\r\n.\r\nQUIT\r\n");
    assert_eq!(end, Some(28));
    assert!(summary.nul);
    assert!(!out.contains(&0), "a NUL was stored");
    let (_, _, clean) = read_all(b"Subject: a\r\n\r\nxy\r\n.\r\n");
    assert!(!clean.nul);
}
