//! The DATA reader (RFC 5321 §4.1.1.4, §4.5.2): undoes dot-stuffing and finds the end of the
//! message, incrementally, over chunks of any size. No I/O.
//!
//! Only `CRLF . CRLF` ends the message (the opening CRLF may be the one that ended the DATA
//! command). A bare LF or bare CR never ends it and never starts a line that could: that is what
//! stops SMTP smuggling (a second message hidden behind `LF . LF` or `CR . CR` that a server
//! downstream would split off). Bare line breaks are stored as CRLF, so the stored message has
//! only CRLF lines and the outbound client's dot-stuffing covers every line that starts with a
//! dot. Text lines are limited to 1000 octets including CRLF (§4.5.3.1.6), the whole message
//! to `max_size`; past either limit the reader keeps scanning for the end but stores nothing more.
//! A NUL octet (never text, RFC 5322 §2.3) likewise stops the storing: the message is refused.
//!
//! # Format
//! ```text
//! Subject: hi<CRLF>
//! ..starts with a dot<CRLF>
//! .<CRLF>
//! ```

/// RFC 5321 §4.5.3.1.6: 1000 octets including CRLF.
pub const MAX_TEXT_LINE: usize = 1000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// At the start of a line that followed a real CRLF (or the DATA command).
    LineStart,
    /// `.` at a line start.
    Dot,
    /// `.` CR at a line start: LF now ends the message.
    DotCr,
    /// Inside a line, or at the start of one that followed a bare line break.
    Text,
    /// CR seen inside a line.
    Cr,
}

/// How the message ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DataSummary {
    /// Octets of unstuffed, normalized message (counted even past the limit).
    pub size: u64,
    pub too_big: bool,
    pub line_too_long: bool,
    /// A bare CR or LF was seen (and stored as CRLF).
    pub bare_line_break: bool,
    /// A NUL octet was seen: the message is refused after the terminating dot.
    pub nul: bool,
}

#[derive(Debug, Clone)]
pub struct DotReader {
    state: State,
    max_size: u64,
    line_len: usize,
    summary: DataSummary,
}

/// The result of one [`DotReader::feed`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feed {
    /// All input consumed; the message goes on.
    More,
    /// The message ended after `consumed` bytes of this input; the rest is the next command.
    Done { consumed: usize },
}

impl DotReader {
    pub fn new(max_size: u64) -> Self {
        Self { state: State::LineStart, max_size, line_len: 0, summary: DataSummary::default() }
    }

    pub fn summary(&self) -> DataSummary {
        self.summary
    }

    /// Consumes `input`, appending message bytes to `out`.
    pub fn feed(&mut self, input: &[u8], out: &mut Vec<u8>) -> Feed {
        let mut i = 0;
        while i < input.len() {
            let b = input[i];
            // `reprocess` leaves `i` in place: the byte is looked at again in the new state.
            let mut reprocess = false;
            match (self.state, b) {
                (State::LineStart, b'.') => self.state = State::Dot,
                (State::Dot, b'\r') => self.state = State::DotCr,
                (State::DotCr, b'\n') => {
                    self.state = State::LineStart;
                    return Feed::Done { consumed: i + 1 };
                }
                (State::DotCr, _) => {
                    // `.` then a bare CR: a line holding one dot; the byte after starts the next.
                    self.emit(out, b".\r\n");
                    self.bare_break();
                    reprocess = true;
                }
                (State::Dot, b'\n') => {
                    self.emit(out, b".\r\n");
                    self.bare_break();
                }
                // §4.5.2: a leading dot with more on the line is removed; the byte is content.
                (State::Dot, _) => {
                    self.emit(out, &[b]);
                    self.state = State::Text;
                }
                (State::LineStart | State::Text, b'\r') => self.state = State::Cr,
                (State::LineStart | State::Text, b'\n') => {
                    self.emit(out, b"\r\n");
                    self.bare_break();
                }
                (State::LineStart | State::Text, _) => {
                    self.emit(out, &[b]);
                    self.state = State::Text;
                }
                (State::Cr, b'\n') => {
                    self.emit(out, b"\r\n");
                    self.state = State::LineStart;
                }
                (State::Cr, _) => {
                    // A bare CR: stored as a line break, and the byte is looked at again.
                    self.emit(out, b"\r\n");
                    self.bare_break();
                    reprocess = true;
                }
            }
            if !reprocess {
                i += 1;
            }
        }
        Feed::More
    }

    fn bare_break(&mut self) {
        self.summary.bare_line_break = true;
        self.state = State::Text;
    }

    /// Stores bytes of the message. Line length is counted as stored (after unstuffing, bare
    /// breaks made CRLF), so whatever is stored passes the same limit when it is sent on.
    fn emit(&mut self, out: &mut Vec<u8>, bytes: &[u8]) {
        for &b in bytes {
            self.summary.nul |= b == 0;
            match b {
                b'\n' => self.line_len = 0,
                b'\r' => {}
                _ => {
                    self.line_len += 1;
                    if self.line_len + 2 > MAX_TEXT_LINE {
                        self.summary.line_too_long = true;
                    }
                }
            }
        }
        self.summary.size += bytes.len() as u64;
        if self.summary.size > self.max_size {
            self.summary.too_big = true;
        }
        if !self.summary.too_big && !self.summary.line_too_long && !self.summary.nul {
            out.extend_from_slice(bytes);
        }
    }
}

/// Dot-stuffs a message for sending (the inverse of [`DotReader`] on CRLF-only input), with the
/// terminating `.` line. Used by tests and the benchmark client.
pub fn dot_stuff(message: &[u8], out: &mut Vec<u8>) {
    let mut at_line_start = true;
    for &b in message {
        if at_line_start && b == b'.' {
            out.push(b'.');
        }
        out.push(b);
        at_line_start = b == b'\n';
    }
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

#[cfg(test)]
#[path = "data_tests.rs"]
mod tests;
