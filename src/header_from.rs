//! The addresses a message claims to be from: its `From:` header field, found in the header
//! section (RFC 5322 §2.2, §3.6.2), unfolded, and read as an address list (§3.4) with display
//! names, comments, quoted strings, groups (RFC 6854) and UTF-8 (RFC 6532). No I/O.
//!
//! Sender binding refuses what it cannot read: a header that a lenient reader downstream could
//! show as another address (`a@x.example <b@y.example>`, an unclosed comment) is an error here,
//! not a guess.
//!
//! # Format
//! ```text
//! From: "Billing, Inc." <billing@example.com> (invoices), ops@example.com
//! From: Team: a@example.com, b@example.com;
//! ```

use std::fmt;

/// The most header bytes kept while a message streams in. Postfix's `header_size_limit` is
/// 100 KiB per field; a header section beyond this is refused when the From: must be read.
pub const MAX_HEAD: usize = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FromHeaderError {
    /// RFC 5322 §3.6: exactly one From: field. Two let a reader pick the one not checked.
    #[error("the message has more than one From: header")]
    Repeated,
    #[error("the From: header cannot be read: {0}")]
    Malformed(&'static str),
    #[error("the header section is larger than {MAX_HEAD} bytes")]
    HeadTooLarge,
}

/// One mailbox of the address list, `local@domain` as written (quoted where it must be).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    pub local: String,
    pub domain: String,
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.local, self.domain)
    }
}

/// Keeps the header section of a message (everything before the first empty line) as the
/// message's bytes arrive in pieces of any size. Input is CRLF-only (the DATA reader makes it so).
#[derive(Debug, Clone, Default)]
pub struct HeadCapture {
    buf: Vec<u8>,
    complete: bool,
    too_large: bool,
}

impl HeadCapture {
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes the next bytes of the message.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.complete || self.too_large || bytes.is_empty() {
            return;
        }
        // The empty line may straddle two pieces: look back three bytes.
        let from = self.buf.len().saturating_sub(3);
        self.buf.extend_from_slice(bytes);
        if self.buf.starts_with(b"\r\n") {
            self.buf.clear();
            self.complete = true;
            return;
        }
        if let Some(at) = find(&self.buf[from..], b"\r\n\r\n") {
            self.buf.truncate(from + at + 2);
            self.complete = true;
        } else if self.buf.len() > MAX_HEAD {
            self.buf = Vec::new();
            self.too_large = true;
        }
    }

    /// The header section, once the message has ended (a message with no body is all header).
    pub fn head(&self) -> Result<&[u8], FromHeaderError> {
        if self.too_large {
            return Err(FromHeaderError::HeadTooLarge);
        }
        Ok(&self.buf)
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The mailboxes of the From: field of `head` (a header section). No From: field, or a From:
/// holding only an empty group, gives an empty list: there is nothing to impersonate with.
pub fn from_addresses(head: &[u8]) -> Result<Vec<Mailbox>, FromHeaderError> {
    let mut value: Option<String> = None;
    let mut in_from = false;
    for line in head.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.first().is_some_and(|b| *b == b' ' || *b == b'\t') {
            // A folded continuation of the previous field (§2.2.3): unfolding removes the CRLF.
            if in_from && let Some(v) = value.as_mut() {
                v.push_str(&String::from_utf8_lossy(line));
            }
            continue;
        }
        in_from = false;
        let Some(colon) = line.iter().position(|&b| b == b':') else { continue };
        // obs-optional (§4.5.4): white space may come before the colon.
        let name = line[..colon].trim_ascii_end();
        if name.eq_ignore_ascii_case(b"from") {
            if value.is_some() {
                return Err(FromHeaderError::Repeated);
            }
            value = Some(String::from_utf8_lossy(&line[colon + 1..]).into_owned());
            in_from = true;
        }
    }
    match value {
        Some(v) => parse_address_list(&v),
        None => Ok(Vec::new()),
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    /// An atom (§3.2.3), UTF-8 allowed.
    Atom(String),
    /// A quoted string, unescaped.
    Quoted(String),
    /// A domain literal `[...]`, as written.
    Literal(String),
    Special(char),
}

fn malformed(why: &'static str) -> FromHeaderError {
    FromHeaderError::Malformed(why)
}

fn is_atext(c: char) -> bool {
    c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~".contains(c) || !c.is_ascii() && !c.is_control()
}

/// Splits a field value into tokens, dropping comments and folding white space (CFWS).
fn tokenize(value: &str) -> Result<Vec<Token>, FromHeaderError> {
    let mut tokens = Vec::new();
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' | '\r' | '\n' => {}
            '(' => {
                let mut depth = 1u32;
                while depth > 0 {
                    match chars.next() {
                        None => return Err(malformed("a comment is not closed")),
                        Some('\\') => {
                            chars.next();
                        }
                        Some('(') => depth += 1,
                        Some(')') => depth -= 1,
                        Some(_) => {}
                    }
                }
            }
            '"' => {
                let mut s = String::new();
                loop {
                    match chars.next() {
                        None => return Err(malformed("a quoted string is not closed")),
                        Some('\\') => s.push(chars.next().ok_or(malformed("a quoted string is not closed"))?),
                        Some('"') => break,
                        Some(c) => s.push(c),
                    }
                }
                tokens.push(Token::Quoted(s));
            }
            '[' => {
                let mut s = String::from("[");
                loop {
                    match chars.next() {
                        None => return Err(malformed("a domain literal is not closed")),
                        // Kept in its written form: a quoted-pair of a character dtext
                        // excludes stays escaped, so the literal reads back the same.
                        Some('\\') => {
                            let c = chars.next().ok_or(malformed("a domain literal is not closed"))?;
                            if matches!(c, '\\' | '[' | ']') {
                                s.push('\\');
                            }
                            s.push(c);
                        }
                        Some(']') => break,
                        Some('[') => return Err(malformed("'[' inside a domain literal")),
                        Some(c) => s.push(c),
                    }
                }
                s.push(']');
                tokens.push(Token::Literal(s));
            }
            '<' | '>' | ':' | ';' | '@' | ',' | '.' => tokens.push(Token::Special(c)),
            c if is_atext(c) => {
                let mut s = String::from(c);
                while let Some(&n) = chars.peek().filter(|n| is_atext(**n)) {
                    s.push(n);
                    chars.next();
                }
                tokens.push(Token::Atom(s));
            }
            _ => return Err(malformed("a character that has no place in an address list")),
        }
    }
    Ok(tokens)
}

/// A cursor over the tokens of one field value.
struct Parser {
    tokens: Vec<Token>,
    pos: usize,
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn at(&self, c: char) -> bool {
        self.peek() == Some(&Token::Special(c))
    }

    fn expect(&mut self, c: char, why: &'static str) -> Result<(), FromHeaderError> {
        if !self.at(c) {
            return Err(malformed(why));
        }
        self.pos += 1;
        Ok(())
    }

    /// Words and dots: a display name, or the local part when '@' follows.
    fn words(&mut self) -> Vec<Token> {
        let start = self.pos;
        while matches!(self.peek(), Some(Token::Atom(_) | Token::Quoted(_) | Token::Special('.'))) {
            self.pos += 1;
        }
        self.tokens[start..self.pos].to_vec()
    }

    /// `address *("," address)`, empty elements allowed (obs-addr-list, §4.4).
    fn address_list(&mut self, out: &mut Vec<Mailbox>) -> Result<(), FromHeaderError> {
        loop {
            while self.at(',') {
                self.pos += 1;
            }
            if self.peek().is_none() {
                return Ok(());
            }
            self.address(out, true)?;
            if self.peek().is_some() {
                self.expect(',', "addresses must be separated by commas")?;
            }
        }
    }

    /// A mailbox, or (when `groups`) a group `name: mailbox, ...;`.
    fn address(&mut self, out: &mut Vec<Mailbox>, groups: bool) -> Result<(), FromHeaderError> {
        let words = self.words();
        match self.peek() {
            Some(Token::Special('<')) => out.push(self.angle_addr()?),
            Some(Token::Special('@')) => {
                self.pos += 1;
                out.push(Mailbox { local: local_part(&words)?, domain: self.domain()? });
            }
            Some(Token::Special(':')) if groups && !words.is_empty() => {
                self.pos += 1;
                loop {
                    while self.at(',') {
                        self.pos += 1;
                    }
                    if self.at(';') {
                        self.pos += 1;
                        return Ok(());
                    }
                    if self.peek().is_none() {
                        return Err(malformed("a group is not closed with ';'"));
                    }
                    self.address(out, false)?;
                    if !self.at(';') {
                        self.expect(',', "group members must be separated by commas")?;
                    }
                }
            }
            _ => return Err(malformed("an address has no '@domain'")),
        }
        Ok(())
    }

    /// `<[route:]local@domain>`; an obsolete source route (§4.4) is skipped.
    fn angle_addr(&mut self) -> Result<Mailbox, FromHeaderError> {
        self.expect('<', "expected '<'")?;
        if self.at('@') {
            while !self.at(':') {
                if self.peek().is_none() || self.at('>') {
                    return Err(malformed("a source route has no ':'"));
                }
                self.pos += 1;
            }
            self.pos += 1;
        }
        let words = self.words();
        self.expect('@', "an address has no '@domain'")?;
        let mailbox = Mailbox { local: local_part(&words)?, domain: self.domain()? };
        self.expect('>', "'<' is not closed with '>'")?;
        Ok(mailbox)
    }

    /// `atom *("." atom)` or a domain literal.
    fn domain(&mut self) -> Result<String, FromHeaderError> {
        if let Some(Token::Literal(l)) = self.peek() {
            let l = l.clone();
            self.pos += 1;
            return Ok(l);
        }
        let mut domain = String::new();
        loop {
            match self.peek() {
                Some(Token::Atom(a)) => domain.push_str(a),
                _ => return Err(malformed("a domain is empty or has an empty label")),
            }
            self.pos += 1;
            if !self.at('.') {
                return Ok(domain);
            }
            self.pos += 1;
            domain.push('.');
        }
    }
}

/// `word *("." word)`, written back as a dot-atom where it is one and quoted where it is not.
fn local_part(words: &[Token]) -> Result<String, FromHeaderError> {
    let mut parts = Vec::new();
    let mut expect_word = true;
    for t in words {
        match (t, expect_word) {
            (Token::Atom(a), true) => parts.push(a.clone()),
            (Token::Quoted(q), true) => parts.push(q.clone()),
            (Token::Special('.'), false) => {}
            _ => return Err(malformed("a local part is not a dot-separated list of words")),
        }
        expect_word = !expect_word;
    }
    if expect_word {
        return Err(malformed("a local part is empty or ends with '.'"));
    }
    let joined = parts.join(".");
    if joined.split('.').all(|p| !p.is_empty() && p.chars().all(is_atext)) {
        return Ok(joined);
    }
    let escaped: String =
        joined.chars().flat_map(|c| (c == '"' || c == '\\').then_some('\\').into_iter().chain([c])).collect();
    Ok(format!("\"{escaped}\""))
}

/// Reads one field value as an address list.
pub fn parse_address_list(value: &str) -> Result<Vec<Mailbox>, FromHeaderError> {
    let mut parser = Parser { tokens: tokenize(value)?, pos: 0 };
    let mut out = Vec::new();
    parser.address_list(&mut out)?;
    Ok(out)
}

#[cfg(test)]
#[path = "header_from_tests.rs"]
mod tests;
