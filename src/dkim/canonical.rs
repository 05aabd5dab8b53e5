//! The "relaxed" canonicalizations of RFC 6376: a header field (§3.4.2) and the body (§3.4.4),
//! the body as a stream, since the relay hands a message to the spool in pieces.
//!
//! Only CRLF ends a line. A bare CR or LF (which the relay's DATA reader never stores, but an
//! API message could carry) is an ordinary character, as it is to dkimpy and OpenDKIM.

/// WSP of RFC 5234: space and horizontal tab. Nothing else is whitespace to DKIM.
fn is_wsp(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// One header field canonicalized the relaxed way, as `name:value\r\n`: the name lower-cased
/// and stripped of the WSP before the colon, the value unfolded (CRLF removed), each run of WSP
/// made one space, WSP at both ends removed. `field` is the whole field as it stands in the
/// message (`Subject: a\r\n b\r\n`). Malformed fields (never selected for signing, but the
/// function takes any bytes) stay on one line too: a fold inside the name is unfolded, and a
/// field without a colon is a value with an empty name.
pub fn relaxed_header(field: &[u8], out: &mut Vec<u8>) {
    let (name, value) = match field.iter().position(|&b| b == b':') {
        Some(at) => (&field[..at], &field[at + 1..]),
        None => (&b""[..], field),
    };
    out.extend(name.trim_ascii_end().iter().filter(|&&b| b != b'\r' && b != b'\n').map(u8::to_ascii_lowercase));
    out.push(b':');
    let mut pending_space = false;
    let mut wrote = false;
    for &b in value {
        match b {
            b'\r' | b'\n' => {}
            _ if is_wsp(b) => pending_space = true,
            _ => {
                if pending_space && wrote {
                    out.push(b' ');
                }
                pending_space = false;
                wrote = true;
                out.push(b);
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

/// The relaxed body canonicalization (RFC 6376 §3.4.4) as a stream: [`RelaxedBody::feed`]
/// takes the body in pieces of any size and hands each canonical piece to a sink (the hash),
/// [`RelaxedBody::finish`] ends it. The output is the same whatever the split.
///
/// - WSP at the end of a line is dropped, other runs of WSP become one space;
/// - empty lines (after that) at the end of the body are dropped, so they are held back until
///   something follows them;
/// - a non-empty body that does not end in CRLF gets one; an empty body stays empty (dkimpy's
///   `correct_empty_body`, OpenDKIM alike), so its `bh=` is the SHA-256 of nothing.
#[derive(Debug, Clone, Default)]
pub struct RelaxedBody {
    /// A CR was the last byte seen: a CRLF if the next one is LF.
    pending_cr: bool,
    /// WSP seen since the last character of the line: one space if a character follows.
    pending_space: bool,
    /// The current line has a character other than WSP.
    line_has_text: bool,
    /// Empty lines held back: written only if text follows them.
    held_empty_lines: usize,
    /// Staging buffer, handed to the sink in large pieces.
    out: Vec<u8>,
}

const FLUSH_AT: usize = 16 * 1024;
const CRLF: &[u8] = b"\r\n";

impl RelaxedBody {
    pub fn new() -> Self {
        Self { out: Vec::with_capacity(FLUSH_AT + 64), ..Self::default() }
    }

    /// Canonicalizes the next piece of the body. Runs of ordinary bytes (anything but SP,
    /// HTAB and CR) are copied whole, found with `memchr`: most of a body is such runs.
    pub fn feed(&mut self, mut bytes: &[u8], sink: &mut impl FnMut(&[u8])) {
        while let Some(&first) = bytes.first() {
            if self.pending_cr {
                self.pending_cr = false;
                if first == b'\n' {
                    self.end_line();
                    bytes = &bytes[1..];
                    continue;
                }
                self.text(b"\r");
            }
            let run = memchr::memchr3(b' ', b'\t', b'\r', bytes).unwrap_or(bytes.len());
            if run > 0 {
                self.text(&bytes[..run]);
                bytes = &bytes[run..];
            } else {
                if first == b'\r' {
                    self.pending_cr = true;
                } else {
                    self.pending_space = true;
                }
                bytes = &bytes[1..];
            }
            if self.out.len() >= FLUSH_AT {
                sink(&self.out);
                self.out.clear();
            }
        }
    }

    /// Ends the body: the last line gets its CRLF, empty lines at the end are dropped.
    pub fn finish(mut self, sink: &mut impl FnMut(&[u8])) {
        if self.pending_cr {
            self.text(b"\r");
        }
        if self.line_has_text {
            self.out.extend_from_slice(CRLF);
        }
        sink(&self.out);
    }

    /// Characters of a line (no SP, HTAB or line end among them).
    fn text(&mut self, run: &[u8]) {
        for _ in 0..self.held_empty_lines {
            self.out.extend_from_slice(CRLF);
        }
        self.held_empty_lines = 0;
        if self.pending_space {
            self.out.push(b' ');
            self.pending_space = false;
        }
        self.out.extend_from_slice(run);
        self.line_has_text = true;
    }

    fn end_line(&mut self) {
        // WSP before the line break is dropped.
        self.pending_space = false;
        if self.line_has_text {
            self.out.extend_from_slice(CRLF);
            self.line_has_text = false;
        } else {
            self.held_empty_lines += 1;
        }
    }
}

/// The whole body canonicalized at once (tests, and short bodies).
pub fn relaxed_body(body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut canon = RelaxedBody::new();
    canon.feed(body, &mut |piece| out.extend_from_slice(piece));
    canon.finish(&mut |piece| out.extend_from_slice(piece));
    out
}

#[cfg(test)]
#[path = "canonical_tests.rs"]
mod tests;
