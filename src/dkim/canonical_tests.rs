use proptest::prelude::*;

use super::*;

fn header(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    relaxed_header(field, &mut out);
    out
}

// RFC 6376 §3.4.5, the relaxed column of the example.
#[test]
fn rfc_6376_example() {
    assert_eq!(header(b"A: X\r\n"), b"a:X\r\n");
    assert_eq!(header(b"B : Y\t\r\n\tZ  \r\n"), b"b:Y Z\r\n");
    assert_eq!(relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n"), b" C\r\nD E\r\n");
}

#[test]
fn header_edge_cases() {
    // WSP around the colon, several folds, an empty value, an 8-bit value kept as is.
    assert_eq!(header(b"SUBJECT \t:\t  hello \r\n  \t world\t\r\n"), b"subject:hello world\r\n");
    assert_eq!(header(b"X-Empty:\r\n"), b"x-empty:\r\n");
    assert_eq!(header(b"X-Empty:  \r\n \r\n"), b"x-empty:\r\n");
    assert_eq!(header("Subject: caf\u{e9}  \u{2603}\r\n".as_bytes()), "subject:caf\u{e9} \u{2603}\r\n".as_bytes());
    assert_eq!(header(b"no colon here\r\n"), b":no colon here\r\n");
    assert_eq!(header(b"bad\r\n name: v\r\n"), b"bad name:v\r\n");
}

#[test]
fn body_edge_cases() {
    // An empty body, and one of only empty or blank lines, canonicalize to nothing.
    for empty in [&b""[..], b"\r\n", b"\r\n\r\n", b"  \r\n\t\r\n", b" \t "] {
        assert_eq!(relaxed_body(empty), b"", "{}", empty.escape_ascii());
    }
    // A body not ending in CRLF gets one; its trailing WSP goes too.
    assert_eq!(relaxed_body(b"last line"), b"last line\r\n");
    assert_eq!(relaxed_body(b"last line  \t"), b"last line\r\n");
    // Trailing whitespace-only lines are empty lines (the mail-auth #62 case).
    assert_eq!(relaxed_body(b"text\r\n \r\n\t\r\n"), b"text\r\n");
    // Inner empty and blank lines stay, as empty lines.
    assert_eq!(relaxed_body(b"a\r\n \r\n\r\nb\r\n"), b"a\r\n\r\n\r\nb\r\n");
    // Leading WSP becomes one space; bare CR and LF are ordinary characters.
    assert_eq!(relaxed_body(b"\t\t x\r\n"), b" x\r\n");
    assert_eq!(relaxed_body(b"a\rb\nc \r\n"), b"a\rb\nc\r\n");
    assert_eq!(relaxed_body(b"a\r"), b"a\r\r\n");
    assert_eq!(relaxed_body(b"a \r \r\n"), b"a \r\r\n");
}

/// The rules of §3.4.4 written the plain way, line by line, to compare the stream against.
fn reference_body(body: &[u8]) -> Vec<u8> {
    let mut lines: Vec<Vec<u8>> = Vec::new();
    let mut rest = body;
    while !rest.is_empty() {
        let (line, next) = match memchr::memmem::find(rest, b"\r\n") {
            Some(at) => (&rest[..at], &rest[at + 2..]),
            None => (rest, &b""[..]),
        };
        let mut out = Vec::new();
        let mut space = false;
        for &b in line {
            if b == b' ' || b == b'\t' {
                space = true;
            } else {
                if space {
                    out.push(b' ');
                }
                space = false;
                out.push(b);
            }
        }
        lines.push(out);
        rest = next;
    }
    while lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines.iter().flat_map(|l| l.iter().copied().chain(*b"\r\n")).collect()
}

fn body_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(prop::sample::select(vec![b' ', b'\t', b'\r', b'\n', b'a', b'Z', 0xc3, 0xa9]), 0..200)
}

proptest! {
    #[test]
    fn stream_matches_the_rules_whatever_the_split(body in body_bytes(), cuts in prop::collection::vec(0usize..200, 0..6)) {
        let whole = relaxed_body(&body);
        prop_assert_eq!(&whole, &reference_body(&body));
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(body.len())).collect();
        cuts.sort_unstable();
        let mut out = Vec::new();
        let mut canon = RelaxedBody::new();
        let mut from = 0;
        for cut in cuts.into_iter().chain([body.len()]) {
            canon.feed(&body[from..cut], &mut |p| out.extend_from_slice(p));
            from = cut;
        }
        canon.finish(&mut |p| out.extend_from_slice(p));
        prop_assert_eq!(out, whole);
    }

    #[test]
    fn canonical_body_is_a_fixed_point(body in body_bytes()) {
        let once = relaxed_body(&body);
        prop_assert_eq!(relaxed_body(&once), once.clone());
        // Adding the CRLF an SMTP transfer adds, or more empty lines, changes nothing.
        let mut more = body.clone();
        more.extend_from_slice(b"\r\n\r\n");
        prop_assert_eq!(relaxed_body(&more), once);
    }

    #[test]
    fn canonical_header_is_a_fixed_point(value in "[ \ta-zA-Z:\u{e9}]{0,40}", folds in 0usize..3) {
        let mut field = b"Subject:".to_vec();
        field.extend_from_slice(value.as_bytes());
        for _ in 0..folds {
            field.extend_from_slice(b"\r\n\t x");
        }
        field.extend_from_slice(b"\r\n");
        let once = header(&field);
        prop_assert_eq!(header(&once), once.clone());
        prop_assert!(!once[..once.len() - 2].contains(&b'\n') && !once.contains(&b'\t'));
    }
}
