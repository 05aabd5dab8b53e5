//! SMTP command codec (RFC 5321, RFC 4954 AUTH, RFC 3207 STARTTLS): one framed line in, a
//! typed [`Command`] out, and back. No I/O; the framer ([`next_line`]) caps line length.
//!
//! # Format
//! ```text
//! EHLO client.example
//! MAIL FROM:<a@example.com> SIZE=1024 BODY=8BITMIME SMTPUTF8
//! RCPT TO:<b@example.net>
//! AUTH PLAIN AGFAYgBj
//! ```

use std::fmt::Write as _;

use nom::IResult;
use nom::Parser;
use nom::branch::alt;
use nom::bytes::complete::{tag, tag_no_case, take_while1};
use nom::character::complete::space0;
use nom::combinator::{map, rest};
use nom::sequence::preceded;

use crate::mailbox::{self, Mailbox};

/// RFC 5321 §4.5.3.1.4 allows 512 octets; RFC 4954 §4 asks servers to take AUTH lines of at
/// least 12288 octets, so the command line limit is that one.
pub const MAX_COMMAND_LINE: usize = 12_288;
/// RFC 5321 §4.5.3.1.2: a path is at most 256 octets.
pub const MAX_PATH: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Helo(String),
    Ehlo(String),
    Mail(MailFrom),
    Rcpt(RcptTo),
    Data,
    Rset,
    Noop,
    Quit,
    Vrfy(String),
    Expn(String),
    Help,
    StartTls,
    /// The initial response stays base64 text: the session decodes it, as it does later lines.
    Auth {
        mechanism: Mechanism,
        initial: Option<String>,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
    /// Named by the client but not offered; the session answers 504.
    Other(String),
}

/// `MAIL FROM:<path>` with the parameters this server advertises (SIZE, BODY, SMTPUTF8) and
/// AUTH= (RFC 4954 §5), which a submission client may send and which is ignored.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MailFrom {
    /// `None` is the null reverse path `<>` (bounces).
    pub sender: Option<String>,
    pub size: Option<u64>,
    pub body: Option<Body>,
    pub smtputf8: bool,
    pub auth: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcptTo {
    pub recipient: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    SevenBit,
    EightBitMime,
    /// RFC 3030; not advertised, so refused by the session.
    BinaryMime,
}

/// The client sent something this codec cannot turn into a command.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("empty line")]
    Empty,
    #[error("unknown command")]
    UnknownCommand,
    /// A browser or proxy speaking HTTP to the SMTP port (cross-protocol attack).
    #[error("HTTP request on the SMTP port")]
    Http,
    #[error("syntax error in {0} arguments")]
    Syntax(&'static str),
    #[error("malformed sender address")]
    BadSender,
    #[error("malformed recipient address")]
    BadRecipient,
    #[error("unknown or malformed parameter {0:?}")]
    BadParameter(String),
    #[error("line too long")]
    LineTooLong,
    #[error("invalid base64")]
    BadBase64,
}

/// What the framer found at the start of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// A whole line: `len` bytes of content (terminator stripped), `consumed` with it.
    Line { len: usize, consumed: usize },
    /// No line terminator yet.
    Incomplete,
    /// More than `max` bytes without a terminator; the caller discards through the next LF.
    TooLong,
}

/// Finds the next command line. Commands end at LF (a CR before it is stripped): only DATA
/// needs the strict CRLF rule, and refusing bare-LF commands would break old clients.
pub fn next_line(buf: &[u8], max: usize) -> Frame {
    match buf.iter().position(|&b| b == b'\n') {
        Some(pos) if pos + 1 > max + 2 => Frame::TooLong,
        Some(pos) => {
            let len = if pos > 0 && buf[pos - 1] == b'\r' { pos - 1 } else { pos };
            Frame::Line { len, consumed: pos + 1 }
        }
        None if buf.len() > max + 1 => Frame::TooLong,
        None => Frame::Incomplete,
    }
}

/// Parses one command line (without its terminator).
pub fn parse_command(line: &[u8]) -> Result<Command, CodecError> {
    let line = trim_end(line);
    if line.is_empty() {
        return Err(CodecError::Empty);
    }
    let verb_len = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let verb = line[..verb_len].to_ascii_uppercase();
    let args = &line[verb_len..];
    match verb.as_slice() {
        b"HELO" => text_arg(args, "HELO").map(Command::Helo),
        b"EHLO" => text_arg(args, "EHLO").map(Command::Ehlo),
        b"MAIL" => parse_mail(args),
        b"RCPT" => parse_rcpt(args),
        b"DATA" => no_arg(args, "DATA", Command::Data),
        b"RSET" => no_arg(args, "RSET", Command::Rset),
        b"QUIT" => no_arg(args, "QUIT", Command::Quit),
        b"STARTTLS" => no_arg(args, "STARTTLS", Command::StartTls),
        // RFC 5321 §4.1.1.9: NOOP and HELP may carry a string, which is ignored.
        b"NOOP" => Ok(Command::Noop),
        b"HELP" => Ok(Command::Help),
        b"VRFY" => text_arg(args, "VRFY").map(Command::Vrfy),
        b"EXPN" => text_arg(args, "EXPN").map(Command::Expn),
        b"AUTH" => parse_auth(args),
        b"GET" | b"POST" | b"HEAD" | b"PUT" | b"CONNECT" | b"OPTIONS" => Err(CodecError::Http),
        _ => Err(CodecError::UnknownCommand),
    }
}

/// A line sent in answer to a 334 challenge (RFC 4954 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthResponse {
    /// `*`: the client gives up.
    Cancel,
    Data(Vec<u8>),
}

pub fn parse_auth_response(line: &[u8]) -> Result<AuthResponse, CodecError> {
    let line = trim_end(line);
    if line == b"*" {
        return Ok(AuthResponse::Cancel);
    }
    decode_base64(line).map(AuthResponse::Data)
}

/// Decodes an AUTH initial response or continuation by the one base64 rule of
/// [`crate::auth::mechanism::decode_base64`]; `=` is the empty response.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, CodecError> {
    let mut decoded = crate::auth::mechanism::decode_base64(text).map_err(|_| CodecError::BadBase64)?;
    // Moved out whole: the zeroizing wrapper is left empty, and `AuthResponse` owns the bytes.
    Ok(std::mem::take(&mut *decoded))
}

fn trim_end(mut line: &[u8]) -> &[u8] {
    while let [rest @ .., b' ' | b'\t' | b'\r'] = line {
        line = rest;
    }
    line
}

fn no_arg(args: &[u8], _verb: &'static str, cmd: Command) -> Result<Command, CodecError> {
    if args.iter().all(|&b| b == b' ') { Ok(cmd) } else { Err(CodecError::Syntax(_verb)) }
}

fn text_arg(args: &[u8], verb: &'static str) -> Result<String, CodecError> {
    let text = std::str::from_utf8(args).map_err(|_| CodecError::Syntax(verb))?.trim();
    if text.is_empty() || text.chars().any(char::is_control) {
        return Err(CodecError::Syntax(verb));
    }
    Ok(text.to_string())
}

fn parse_auth(args: &[u8]) -> Result<Command, CodecError> {
    let text = std::str::from_utf8(args).map_err(|_| CodecError::Syntax("AUTH"))?;
    let mut words = text.split_ascii_whitespace();
    let name = words.next().ok_or(CodecError::Syntax("AUTH"))?;
    let initial = words.next().map(str::to_string);
    if words.next().is_some() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
        return Err(CodecError::Syntax("AUTH"));
    }
    let mechanism = match name.to_ascii_uppercase().as_str() {
        "PLAIN" => Mechanism::Plain,
        "LOGIN" => Mechanism::Login,
        other => Mechanism::Other(other.to_string()),
    };
    Ok(Command::Auth { mechanism, initial })
}

/// `" FROM:" [SP] path params`: the optional space is what Postfix tolerates too; clients that
/// write `MAIL FROM: <a@b>` exist.
fn path_prefix<'a>(
    keyword: &'static str,
) -> impl Parser<&'a [u8], Output = &'a [u8], Error = nom::error::Error<&'a [u8]>> {
    preceded((tag(&b" "[..]), tag_no_case(keyword.as_bytes()), tag(&b":"[..]), space0), rest)
}

fn parse_mail(args: &[u8]) -> Result<Command, CodecError> {
    let (_, after) = path_prefix("FROM").parse(args).map_err(|_: nom::Err<_>| CodecError::Syntax("MAIL"))?;
    let (params, path) = parse_path(after).map_err(|_| CodecError::BadSender)?;
    let sender = match path {
        Path::Null => None,
        Path::Address(a) => Some(a),
    };
    let mut mail = MailFrom { sender, ..MailFrom::default() };
    for (key, value) in parse_params(params)? {
        match (key.as_str(), value) {
            ("SIZE", Some(v)) => {
                mail.size = Some(v.parse().map_err(|_| CodecError::BadParameter(key.clone()))?);
            }
            ("BODY", Some(v)) => {
                mail.body = Some(match v.to_ascii_uppercase().as_str() {
                    "7BIT" => Body::SevenBit,
                    "8BITMIME" => Body::EightBitMime,
                    "BINARYMIME" => Body::BinaryMime,
                    _ => return Err(CodecError::BadParameter(key)),
                });
            }
            ("SMTPUTF8", None) => mail.smtputf8 = true,
            ("AUTH", Some(v)) => mail.auth = Some(v),
            _ => return Err(CodecError::BadParameter(key)),
        }
    }
    Ok(Command::Mail(mail))
}

fn parse_rcpt(args: &[u8]) -> Result<Command, CodecError> {
    let (_, after) = path_prefix("TO").parse(args).map_err(|_: nom::Err<_>| CodecError::Syntax("RCPT"))?;
    let (params, path) = parse_path(after).map_err(|_| CodecError::BadRecipient)?;
    let Path::Address(recipient) = path else { return Err(CodecError::BadRecipient) };
    if let Some((key, _)) = parse_params(params)?.into_iter().next() {
        return Err(CodecError::BadParameter(key));
    }
    Ok(Command::Rcpt(RcptTo { recipient }))
}

enum Path {
    Null,
    Address(String),
}

/// `<>` or `<[@route,@route:]local@domain>`. A bare `local@domain` without brackets is taken
/// too (RFC 821 clients). The source route is checked, then dropped (RFC 5321 §4.1.1.3). The
/// mailbox is kept as the client wrote it, once [`Mailbox::parse`] has accepted it.
fn parse_path(input: &[u8]) -> Result<(&[u8], Path), ()> {
    let (rest_, inner) = bracketed(input).map_err(|_| ())?;
    if inner.is_empty() {
        return Ok((rest_, Path::Null));
    }
    if inner.len() > MAX_PATH {
        return Err(());
    }
    let text = std::str::from_utf8(inner).map_err(|_| ())?;
    let mailbox = match text.strip_prefix('@') {
        Some(routed) => {
            let (route, mailbox) = routed.split_once(':').ok_or(())?;
            let hops =
                route.split(',').enumerate().map(|(i, hop)| if i == 0 { Some(hop) } else { hop.strip_prefix('@') });
            for hop in hops {
                mailbox::parse_domain(hop.ok_or(())?).map_err(|_| ())?;
            }
            mailbox
        }
        None => text,
    };
    Mailbox::parse(mailbox).map_err(|_| ())?;
    Ok((rest_, Path::Address(mailbox.to_string())))
}

fn bracketed(input: &[u8]) -> IResult<&[u8], &[u8]> {
    alt((
        preceded(tag(&b"<"[..]), quoted_until_gt),
        map(take_while1(|b: u8| b != b' ' && b != b'<' && b != b'>'), |s| s),
    ))
    .parse(input)
}

/// The inside of `<...>`: `>` ends it unless inside a quoted local part.
fn quoted_until_gt(input: &[u8]) -> IResult<&[u8], &[u8]> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in input.iter().enumerate() {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Ok((&input[i + 1..], &input[..i])),
            _ => {}
        }
    }
    Err(nom::Err::Error(nom::error::Error::new(input, nom::error::ErrorKind::Char)))
}

fn parse_params(input: &[u8]) -> Result<Vec<(String, Option<String>)>, CodecError> {
    let text = std::str::from_utf8(input).map_err(|_| CodecError::BadParameter(String::new()))?;
    if !text.is_empty() && !text.starts_with(' ') {
        return Err(CodecError::BadParameter(text.chars().take(32).collect()));
    }
    text.split_ascii_whitespace()
        .map(|word| {
            let (key, value) = match word.split_once('=') {
                Some((k, v)) => (k, Some(v.to_string())),
                None => (word, None),
            };
            let key = key.to_ascii_uppercase();
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
                return Err(CodecError::BadParameter(key));
            }
            if value.as_deref().is_some_and(|v| v.is_empty() || v.chars().any(char::is_control)) {
                return Err(CodecError::BadParameter(key));
            }
            Ok((key, value))
        })
        .collect()
}

impl Command {
    /// The wire form, without CRLF (used by tests, the fuzz target and the benchmark client).
    pub fn encode(&self, out: &mut Vec<u8>) {
        let mut s = String::new();
        // Writing to a String cannot fail.
        let _ = match self {
            Self::Helo(h) => write!(s, "HELO {h}"),
            Self::Ehlo(h) => write!(s, "EHLO {h}"),
            Self::Mail(m) => {
                let _ = write!(s, "MAIL FROM:<{}>", m.sender.as_deref().unwrap_or(""));
                if let Some(size) = m.size {
                    let _ = write!(s, " SIZE={size}");
                }
                match m.body {
                    Some(Body::SevenBit) => s.push_str(" BODY=7BIT"),
                    Some(Body::EightBitMime) => s.push_str(" BODY=8BITMIME"),
                    Some(Body::BinaryMime) => s.push_str(" BODY=BINARYMIME"),
                    None => {}
                }
                if m.smtputf8 {
                    s.push_str(" SMTPUTF8");
                }
                if let Some(a) = &m.auth {
                    let _ = write!(s, " AUTH={a}");
                }
                Ok(())
            }
            Self::Rcpt(r) => write!(s, "RCPT TO:<{}>", r.recipient),
            Self::Data => write!(s, "DATA"),
            Self::Rset => write!(s, "RSET"),
            Self::Noop => write!(s, "NOOP"),
            Self::Quit => write!(s, "QUIT"),
            Self::Vrfy(v) => write!(s, "VRFY {v}"),
            Self::Expn(v) => write!(s, "EXPN {v}"),
            Self::Help => write!(s, "HELP"),
            Self::StartTls => write!(s, "STARTTLS"),
            Self::Auth { mechanism, initial } => {
                let name = match mechanism {
                    Mechanism::Plain => "PLAIN",
                    Mechanism::Login => "LOGIN",
                    Mechanism::Other(o) => o.as_str(),
                };
                match initial {
                    Some(i) => write!(s, "AUTH {name} {i}"),
                    None => write!(s, "AUTH {name}"),
                }
            }
        };
        out.extend_from_slice(s.as_bytes());
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
