//! The Dovecot auth-client protocol (v1.x) as bytes ↔ values: line framing, `\x01`
//! tab-escaping, client requests and server replies, both ways. No I/O, clock or state.
//!
//! ```text
//! client: VERSION\t1\t0          server: VERSION\t1\t2
//!         CPID\t<pid>                    MECH\tPLAIN\tplaintext
//!         AUTH\t<id>\t<mech>\t…           SPID / CUID / COOKIE / DONE
//!         CONT\t<id>\t<base64>            OK\t<id>\tuser=… | FAIL\t<id>… | CONT\t<id>\t<base64>
//! ```
//!
//! Facts and sources: `reference/dovecot-auth-protocol.md` §1–§4.

use std::net::IpAddr;

use nom::bytes::complete::{tag, take_till};
use nom::character::complete::u32 as decimal;
use nom::combinator::all_consuming;
use nom::multi::separated_list1;
use nom::{IResult, Parser};

/// Longest line we accept, without its LF (Dovecot's `AUTH_CLIENT_MAX_LINE_LENGTH`).
pub const MAX_LINE: usize = 16384;

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("line longer than {MAX_LINE} bytes")]
    TooLong,
    #[error("empty line")]
    Empty,
    #[error("unknown command")]
    UnknownCommand,
    #[error("malformed {0} line")]
    Malformed(&'static str),
    #[error("request id 0")]
    ZeroId,
    #[error("AUTH without service")]
    MissingService,
    #[error("AUTH parameters after resp")]
    ParamAfterResp,
    #[error("field is not UTF-8")]
    NotUtf8,
    /// Carries the id so that the request can be answered with FAIL.
    #[error("unsupported mechanism")]
    UnsupportedMechanism { id: u32 },
}

/// Cuts a byte stream into lines, refusing one that grows past [`MAX_LINE`].
#[derive(Debug, Default)]
pub struct LineBuffer {
    buf: Vec<u8>,
    /// How much of `buf` is already known to hold no LF.
    scanned: usize,
}

impl LineBuffer {
    pub fn extend(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next complete line without its LF, `Ok(None)` when more bytes are needed.
    pub fn next_line(&mut self) -> Result<Option<Vec<u8>>, CodecError> {
        match self.buf[self.scanned..].iter().position(|&b| b == b'\n') {
            Some(pos) => {
                let end = self.scanned + pos;
                if end > MAX_LINE {
                    return Err(CodecError::TooLong);
                }
                let mut line: Vec<u8> = self.buf.drain(..=end).collect();
                line.pop();
                self.scanned = 0;
                Ok(Some(line))
            }
            None if self.buf.len() > MAX_LINE => Err(CodecError::TooLong),
            None => {
                self.scanned = self.buf.len();
                Ok(None)
            }
        }
    }

    /// Bytes of an unfinished line.
    pub fn pending(&self) -> usize {
        self.buf.len()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Login,
}

impl Mechanism {
    pub const ALL: [Mechanism; 2] = [Mechanism::Plain, Mechanism::Login];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "PLAIN",
            Self::Login => "LOGIN",
        }
    }

    /// Clients send the mechanism as their user typed it (`plain`); Dovecot upper-cases it.
    fn parse(name: &[u8]) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str().as_bytes().eq_ignore_ascii_case(name))
    }
}

/// `AUTH\t<id>\t<mech>\tservice=smtp\tnologin\tlip=…\trip=…[\tsecured][\tresp=…]`
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRequest {
    pub id: u32,
    pub mechanism: Mechanism,
    pub service: String,
    pub local_ip: Option<IpAddr>,
    /// The SMTP client's address (`rip=`); empty or unparsable counts as absent.
    pub remote_ip: Option<IpAddr>,
    pub secured: bool,
    /// The raw `resp=` value (base64, `=` for an empty response); `None` when absent.
    pub initial_response: Option<String>,
}

/// A line from the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Version {
        major: u32,
        minor: u32,
    },
    /// `CPID\t<pid>`: the value is not used (plain auth-client sockets ignore it too).
    Cpid(u32),
    Auth(AuthRequest),
    /// `CONT\t<id>\t<base64>`
    Cont {
        id: u32,
        data: String,
    },
    Cancel {
        id: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailCode {
    /// Our fault (store unreadable, overloaded): the client should retry later.
    TempFail,
    InvalidBase64,
}

impl FailCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::TempFail => "temp_fail",
            Self::InvalidBase64 => "invalid_base64",
        }
    }
}

/// A line from the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Version {
        major: u32,
        minor: u32,
    },
    Mech {
        name: String,
        flags: Vec<String>,
    },
    Spid(u32),
    Cuid(u32),
    /// 32 lowercase hex characters.
    Cookie(String),
    Done,
    Ok {
        id: u32,
        user: String,
    },
    /// No reason on a refused login: it must not tell which part was wrong.
    Fail {
        id: u32,
        user: Option<String>,
        code: Option<FailCode>,
        reason: Option<String>,
    },
    /// The challenge is base64; the tab before it is written even when it is empty.
    Cont {
        id: u32,
        challenge: String,
    },
}

impl Reply {
    /// `FAIL` for a request the client may not retry as such (login refused).
    pub fn fail(id: u32, user: Option<String>) -> Self {
        Self::Fail { id, user, code: None, reason: None }
    }

    pub fn temp_fail(id: u32) -> Self {
        Self::Fail { id, user: None, code: Some(FailCode::TempFail), reason: None }
    }

    pub fn invalid_base64(id: u32) -> Self {
        Self::Fail {
            id,
            user: None,
            code: Some(FailCode::InvalidBase64),
            reason: Some("Invalid base64 data in response".into()),
        }
    }

    /// Dovecot's answer to a CONT for an id it does not know (expired or never sent).
    pub fn timed_out(id: u32) -> Self {
        Self::Fail { id, user: None, code: None, reason: Some("Authentication request timed out".into()) }
    }

    /// The full handshake, in the order Dovecot 2.3 writes it: MECH lines before SPID, which
    /// Postfix and Exim use to tell an auth-client socket from an auth-master one.
    pub fn handshake(spid: u32, cuid: u32, cookie: &[u8; 16]) -> Vec<Reply> {
        let mut lines = vec![Reply::Version { major: 1, minor: 2 }];
        lines.extend(
            Mechanism::ALL.iter().map(|m| Reply::Mech { name: m.as_str().into(), flags: vec!["plaintext".into()] }),
        );
        lines.extend([Reply::Spid(spid), Reply::Cuid(cuid), Reply::Cookie(hex::encode(cookie)), Reply::Done]);
        lines
    }
}

/// Appends `value` with Dovecot's tab-escaping: `\x01` is the escape byte (not backslash).
pub fn escape_into(out: &mut Vec<u8>, value: &[u8]) {
    for &b in value {
        match b {
            0 => out.extend_from_slice(b"\x010"),
            1 => out.extend_from_slice(b"\x011"),
            b'\t' => out.extend_from_slice(b"\x01t"),
            b'\r' => out.extend_from_slice(b"\x01r"),
            b'\n' => out.extend_from_slice(b"\x01n"),
            _ => out.push(b),
        }
    }
}

/// Reverses [`escape_into`]; an unknown byte after `\x01` stands for itself.
pub fn unescape(field: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(field.len());
    let mut bytes = field.iter();
    while let Some(&b) = bytes.next() {
        if b != 1 {
            out.push(b);
            continue;
        }
        match bytes.next() {
            Some(b'0') => out.push(0),
            Some(b'1') => out.push(1),
            Some(b't') => out.push(b'\t'),
            Some(b'r') => out.push(b'\r'),
            Some(b'n') => out.push(b'\n'),
            Some(&other) => out.push(other),
            None => {}
        }
    }
    out
}

fn fields(line: &[u8]) -> IResult<&[u8], Vec<&[u8]>> {
    all_consuming(separated_list1(tag(&b"\t"[..]), take_till(|c| c == b'\t'))).parse(line)
}

fn number(field: &[u8], what: &'static str) -> Result<u32, CodecError> {
    all_consuming(decimal::<_, nom::error::Error<&[u8]>>)
        .parse(field)
        .map(|(_, n)| n)
        .map_err(|_| CodecError::Malformed(what))
}

fn id(field: &[u8], what: &'static str) -> Result<u32, CodecError> {
    match number(field, what)? {
        0 => Err(CodecError::ZeroId),
        n => Ok(n),
    }
}

fn text(field: &[u8]) -> Result<String, CodecError> {
    String::from_utf8(unescape(field)).map_err(|_| CodecError::NotUtf8)
}

/// Lenient like Dovecot: an empty or unparsable address counts as absent.
fn ip(value: &str) -> Option<IpAddr> {
    value.parse().ok()
}

/// Parses one client line (without its LF).
pub fn parse_request(line: &[u8]) -> Result<Request, CodecError> {
    if line.len() > MAX_LINE {
        return Err(CodecError::TooLong);
    }
    if line.is_empty() {
        return Err(CodecError::Empty);
    }
    let (_, f) = fields(line).map_err(|_| CodecError::Malformed("request"))?;
    match f.as_slice() {
        [b"VERSION", major, minor] => {
            Ok(Request::Version { major: number(major, "VERSION")?, minor: number(minor, "VERSION")? })
        }
        [b"VERSION", ..] => Err(CodecError::Malformed("VERSION")),
        [b"CPID", pid] => Ok(Request::Cpid(number(pid, "CPID")?)),
        [b"CPID", ..] => Err(CodecError::Malformed("CPID")),
        [b"CONT", n, data] => Ok(Request::Cont { id: id(n, "CONT")?, data: text(data)? }),
        [b"CONT", ..] => Err(CodecError::Malformed("CONT")),
        [b"CANCEL", n] => Ok(Request::Cancel { id: id(n, "CANCEL")? }),
        [b"CANCEL", ..] => Err(CodecError::Malformed("CANCEL")),
        [b"AUTH", n, mech, params @ ..] => parse_auth(id(n, "AUTH")?, mech, params).map(Request::Auth),
        [b"AUTH", ..] => Err(CodecError::Malformed("AUTH")),
        _ => Err(CodecError::UnknownCommand),
    }
}

fn parse_auth(id: u32, mech: &[u8], params: &[&[u8]]) -> Result<AuthRequest, CodecError> {
    let mut service = None;
    let (mut local_ip, mut remote_ip, mut secured, mut initial_response) = (None, None, false, None);
    for (i, raw) in params.iter().enumerate() {
        let param = text(raw)?;
        let (name, value) = param.split_once('=').unwrap_or((&param, ""));
        match name {
            "service" | "protocol" => service = Some(value.to_string()),
            "lip" => local_ip = ip(value),
            "rip" => remote_ip = ip(value),
            "secured" => secured = true,
            "resp" if i + 1 != params.len() => return Err(CodecError::ParamAfterResp),
            "resp" => initial_response = Some(value.to_string()),
            // nologin, final-resp-ok, debug, lport, session, …: nothing we act on.
            _ => {}
        }
    }
    // Checked after the service so that a request Dovecot would refuse is refused here too.
    let service = service.ok_or(CodecError::MissingService)?;
    let mechanism = Mechanism::parse(mech).ok_or(CodecError::UnsupportedMechanism { id })?;
    Ok(AuthRequest { id, mechanism, service, local_ip, remote_ip, secured, initial_response })
}

fn push_field(out: &mut Vec<u8>, value: &str) {
    out.push(b'\t');
    escape_into(out, value.as_bytes());
}

impl Request {
    /// Appends the line, LF included (the client side: tests, the benchmark).
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Version { major, minor } => out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes()),
            Self::Cpid(pid) => out.extend_from_slice(format!("CPID\t{pid}").as_bytes()),
            Self::Cont { id, data } => {
                out.extend_from_slice(format!("CONT\t{id}").as_bytes());
                push_field(out, data);
            }
            Self::Cancel { id } => out.extend_from_slice(format!("CANCEL\t{id}").as_bytes()),
            Self::Auth(a) => {
                out.extend_from_slice(format!("AUTH\t{}\t{}", a.id, a.mechanism.as_str()).as_bytes());
                push_field(out, &format!("service={}", a.service));
                out.extend_from_slice(b"\tnologin");
                let addr = |ip: Option<IpAddr>| ip.map(|i| i.to_string()).unwrap_or_default();
                push_field(out, &format!("lip={}", addr(a.local_ip)));
                push_field(out, &format!("rip={}", addr(a.remote_ip)));
                if a.secured {
                    out.extend_from_slice(b"\tsecured");
                }
                if let Some(resp) = &a.initial_response {
                    push_field(out, &format!("resp={resp}"));
                }
            }
        }
        out.push(b'\n');
    }
}

impl Reply {
    /// Appends the line, LF included. The id is plain decimal: Postfix reads it with
    /// `strtoul(…, 0)`, which would take a leading zero for octal.
    pub fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Self::Version { major, minor } => out.extend_from_slice(format!("VERSION\t{major}\t{minor}").as_bytes()),
            Self::Mech { name, flags } => {
                out.extend_from_slice(b"MECH");
                for f in std::iter::once(name).chain(flags) {
                    push_field(out, f);
                }
            }
            Self::Spid(n) => out.extend_from_slice(format!("SPID\t{n}").as_bytes()),
            Self::Cuid(n) => out.extend_from_slice(format!("CUID\t{n}").as_bytes()),
            Self::Cookie(c) => {
                out.extend_from_slice(b"COOKIE");
                push_field(out, c);
            }
            Self::Done => out.extend_from_slice(b"DONE"),
            Self::Ok { id, user } => {
                out.extend_from_slice(format!("OK\t{id}").as_bytes());
                push_field(out, &format!("user={user}"));
            }
            Self::Fail { id, user, code, reason } => {
                out.extend_from_slice(format!("FAIL\t{id}").as_bytes());
                if let Some(u) = user {
                    push_field(out, &format!("user={u}"));
                }
                if let Some(c) = code {
                    push_field(out, &format!("code={}", c.as_str()));
                }
                if let Some(r) = reason {
                    push_field(out, &format!("reason={r}"));
                }
            }
            Self::Cont { id, challenge } => {
                out.extend_from_slice(format!("CONT\t{id}").as_bytes());
                push_field(out, challenge);
            }
        }
        out.push(b'\n');
    }
}

/// Parses one server line (without its LF): what a client such as Postfix reads.
pub fn parse_reply(line: &[u8]) -> Result<Reply, CodecError> {
    if line.is_empty() {
        return Err(CodecError::Empty);
    }
    let (_, f) = fields(line).map_err(|_| CodecError::Malformed("reply"))?;
    match f.as_slice() {
        [b"VERSION", major, minor] => {
            Ok(Reply::Version { major: number(major, "VERSION")?, minor: number(minor, "VERSION")? })
        }
        [b"MECH", name, flags @ ..] => {
            Ok(Reply::Mech { name: text(name)?, flags: flags.iter().map(|f| text(f)).collect::<Result<_, _>>()? })
        }
        [b"SPID", n] => Ok(Reply::Spid(number(n, "SPID")?)),
        [b"CUID", n] => Ok(Reply::Cuid(number(n, "CUID")?)),
        [b"COOKIE", c] => Ok(Reply::Cookie(text(c)?)),
        [b"DONE"] => Ok(Reply::Done),
        [b"CONT", n, challenge] => Ok(Reply::Cont { id: number(n, "CONT")?, challenge: text(challenge)? }),
        [b"OK", n, args @ ..] => {
            let user = args
                .iter()
                .map(|a| text(a))
                .filter_map(Result::ok)
                .find_map(|a| a.strip_prefix("user=").map(str::to_string));
            Ok(Reply::Ok { id: number(n, "OK")?, user: user.ok_or(CodecError::Malformed("OK"))? })
        }
        [b"FAIL", n, args @ ..] => {
            let (mut user, mut code, mut reason) = (None, None, None);
            for arg in args {
                let arg = text(arg)?;
                if let Some(u) = arg.strip_prefix("user=") {
                    user = Some(u.to_string());
                } else if let Some(c) = arg.strip_prefix("code=") {
                    code = [FailCode::TempFail, FailCode::InvalidBase64].into_iter().find(|k| k.as_str() == c);
                } else if let Some(r) = arg.strip_prefix("reason=") {
                    reason = Some(r.to_string());
                }
            }
            Ok(Reply::Fail { id: number(n, "FAIL")?, user, code, reason })
        }
        _ => Err(CodecError::UnknownCommand),
    }
}

#[cfg(test)]
#[path = "codec_tests.rs"]
mod tests;
