//! The Postfix policy-delegation wire format, without I/O: bytes in, [`Attributes`] and a typed
//! [`PolicyRequest`] out; an [`Action`] in, reply bytes out.
//!
//! # Format
//! ```text
//! request=smtpd_access_policy
//! protocol_state=RCPT
//! client_address=192.0.2.9
//! ...
//! <empty line>
//! ```
//! One `name=value` per line; the name ends at the **first** `=` (the value may contain `=`);
//! no escaping; an empty line ends the request. Unknown attributes are ignored, a repeated one
//! is resolved last-wins (SMTPD_POLICY_README "Notes"). The reply is `action=<value>` and an
//! empty line. Reference: `postfix-policy-protocol.md` §1–§2.

use std::borrow::Cow;
use std::net::IpAddr;

use memchr::memchr;

use super::action::Action;

/// Longest attribute line accepted (Postfix lines are bounded by SMTP input, 2048 bytes, plus
/// xtext expansion of certificate names; reference §3.3 asks for at least 16 KiB).
pub const MAX_LINE: usize = 32 * 1024;
/// Largest request accepted; more means the peer is not Postfix.
pub const MAX_REQUEST: usize = 64 * 1024;
/// Postfix 3.7 sends 29 attributes; later versions a few more.
pub const MAX_ATTRIBUTES: usize = 256;

/// Why a request could not be read. Each one closes the connection without a reply, as
/// SMTPD_POLICY_README asks: Postfix then retries and, at worst, uses its `default_action`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("attribute line longer than {MAX_LINE} bytes")]
    LineTooLong,
    #[error("request larger than {MAX_REQUEST} bytes")]
    RequestTooLarge,
    #[error("more than {MAX_ATTRIBUTES} attributes")]
    TooManyAttributes,
    #[error("line {0} has no '='")]
    MissingEquals(usize),
    #[error("line {0} has an empty attribute name")]
    EmptyName(usize),
    #[error("NUL byte in the request")]
    Nul,
    #[error("not an smtpd_access_policy request")]
    NotAccessPolicy,
}

/// The attributes of one request, in the order received.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Attributes(pub Vec<(String, String)>);

impl Attributes {
    /// The last value sent for `name`.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.iter().rev().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
    }
}

/// The SMTP command being checked (`protocol_state`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProtocolState {
    Connect,
    Helo,
    Ehlo,
    Mail,
    Rcpt,
    /// DATA, and BDAT since Postfix 3.4: once per message.
    Data,
    EndOfMessage,
    Vrfy,
    Etrn,
    Other(String),
}

impl ProtocolState {
    fn parse(s: &str) -> Self {
        match s {
            "CONNECT" => Self::Connect,
            "HELO" => Self::Helo,
            "EHLO" => Self::Ehlo,
            "MAIL" => Self::Mail,
            "RCPT" => Self::Rcpt,
            "DATA" => Self::Data,
            "END-OF-MESSAGE" => Self::EndOfMessage,
            "VRFY" => Self::Vrfy,
            "ETRN" => Self::Etrn,
            other => Self::Other(other.to_string()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            Self::Connect => "CONNECT",
            Self::Helo => "HELO",
            Self::Ehlo => "EHLO",
            Self::Mail => "MAIL",
            Self::Rcpt => "RCPT",
            Self::Data => "DATA",
            Self::EndOfMessage => "END-OF-MESSAGE",
            Self::Vrfy => "VRFY",
            Self::Etrn => "ETRN",
            Self::Other(s) => s,
        }
    }
}

/// The attributes the rules use, typed. Empty values (Postfix sends every attribute, empty
/// when unknown) become `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyRequest {
    pub protocol_state: ProtocolState,
    pub client_address: Option<IpAddr>,
    pub client_port: Option<u16>,
    pub server_address: Option<IpAddr>,
    pub server_port: Option<u16>,
    pub sasl_username: Option<String>,
    /// The envelope sender as the client gave it, without `<>`; `None` for the null sender
    /// (Postfix sends `sender=` empty) and before MAIL.
    pub sender: Option<String>,
    /// Non-zero only at DATA and END-OF-MESSAGE.
    pub recipient_count: u32,
    /// Per mail transaction; empty before RCPT (reference §1.2).
    pub instance: Option<String>,
    pub policy_context: Option<String>,
}

impl PolicyRequest {
    /// The typed request from decoded attributes (last duplicate wins).
    pub fn from_attributes(attrs: &Attributes) -> Result<Self, CodecError> {
        let mut known = Known::default();
        for (name, value) in &attrs.0 {
            known.note(name.as_bytes(), value.as_bytes());
        }
        known.into_request()
    }
}

/// The raw values of the attributes [`PolicyRequest`] reads, borrowed from the input.
#[derive(Default)]
struct Known<'a> {
    request: Option<Cow<'a, str>>,
    protocol_state: Option<Cow<'a, str>>,
    client_address: Option<Cow<'a, str>>,
    client_port: Option<Cow<'a, str>>,
    server_address: Option<Cow<'a, str>>,
    server_port: Option<Cow<'a, str>>,
    sasl_username: Option<Cow<'a, str>>,
    sender: Option<Cow<'a, str>>,
    recipient_count: Option<Cow<'a, str>>,
    instance: Option<Cow<'a, str>>,
    policy_context: Option<Cow<'a, str>>,
}

impl<'a> Known<'a> {
    /// Keeps `value` if `name` is one the rules read; a later duplicate replaces it.
    fn note(&mut self, name: &[u8], value: &'a [u8]) {
        let slot = match name {
            b"request" => &mut self.request,
            b"protocol_state" => &mut self.protocol_state,
            b"client_address" => &mut self.client_address,
            b"client_port" => &mut self.client_port,
            b"server_address" => &mut self.server_address,
            b"server_port" => &mut self.server_port,
            b"sasl_username" => &mut self.sasl_username,
            b"sender" => &mut self.sender,
            b"recipient_count" => &mut self.recipient_count,
            b"instance" => &mut self.instance,
            b"policy_context" => &mut self.policy_context,
            _ => return,
        };
        *slot = Some(text(value));
    }

    fn into_request(self) -> Result<PolicyRequest, CodecError> {
        if self.request.as_deref() != Some("smtpd_access_policy") {
            return Err(CodecError::NotAccessPolicy);
        }
        fn trimmed<'v>(v: &'v Option<Cow<'_, str>>) -> &'v str {
            v.as_deref().map(str::trim).unwrap_or("")
        }
        let text = |v: &Option<Cow<'a, str>>| Some(trimmed(v)).filter(|t| !t.is_empty()).map(str::to_string);
        let ip = |v: &Option<Cow<'a, str>>| trimmed(v).parse::<IpAddr>().ok();
        let port = |v: &Option<Cow<'a, str>>| trimmed(v).parse::<u16>().ok().filter(|p| *p != 0);
        Ok(PolicyRequest {
            protocol_state: ProtocolState::parse(trimmed(&self.protocol_state)),
            client_address: ip(&self.client_address),
            client_port: port(&self.client_port),
            server_address: ip(&self.server_address),
            server_port: port(&self.server_port),
            sasl_username: text(&self.sasl_username),
            sender: text(&self.sender),
            recipient_count: trimmed(&self.recipient_count).parse().unwrap_or(0),
            instance: text(&self.instance),
            policy_context: text(&self.policy_context),
        })
    }
}

/// Looks for one complete request at the start of `buf`. `Ok(None)`: more bytes are needed.
/// `Ok(Some((attrs, n)))`: the request used the first `n` bytes.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Attributes, usize)>, CodecError> {
    let Some((body, used)) = split_request(buf)? else { return Ok(None) };
    let mut attrs = Vec::new();
    for attribute in attribute_lines(body) {
        let (name, value) = attribute?;
        attrs.push((text(name).into_owned(), text(value).into_owned()));
    }
    Ok(Some((Attributes(attrs), used)))
}

/// [`decode_request`] and [`PolicyRequest::from_attributes`] in one pass, copying only the
/// few values the rules keep: what the server calls for every request.
pub fn decode_policy_request(buf: &[u8]) -> Result<Option<(PolicyRequest, usize)>, CodecError> {
    let Some((body, used)) = split_request(buf)? else { return Ok(None) };
    let mut known = Known::default();
    for attribute in attribute_lines(body) {
        let (name, value) = attribute?;
        known.note(name, value);
    }
    Ok(Some((known.into_request()?, used)))
}

/// The attribute lines of one complete request and the bytes it used, empty line included.
fn split_request(buf: &[u8]) -> Result<Option<(&[u8], usize)>, CodecError> {
    let Some(end) = find_request_end(buf)? else { return Ok(None) };
    let body = &buf[..end];
    if body.contains(&0) {
        return Err(CodecError::Nul);
    }
    // `end` points past the last attribute's LF; the empty line follows it.
    let terminator = if buf.get(end) == Some(&b'\r') { 2 } else { 1 };
    Ok(Some((body, end + terminator)))
}

/// Each `name=value` line of `body` (which ends with a LF), with a trailing CR removed.
fn attribute_lines(body: &[u8]) -> impl Iterator<Item = Result<(&[u8], &[u8]), CodecError>> {
    let mut rest = body;
    let mut line_no = 0;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        line_no += 1;
        if line_no > MAX_ATTRIBUTES {
            rest = &[];
            return Some(Err(CodecError::TooManyAttributes));
        }
        let parsed = match attribute_line(rest) {
            Some(line) if !line.name.is_empty() => {
                rest = line.rest;
                Ok((line.name, strip_cr(line.value)))
            }
            Some(_) => Err(CodecError::EmptyName(line_no)),
            None => Err(CodecError::MissingEquals(line_no)),
        };
        if parsed.is_err() {
            rest = &[];
        }
        Some(parsed)
    })
}

/// The offset just past the last attribute line (where the empty line starts), once the
/// empty line has arrived. Enforces the size limits on what is buffered so far.
fn find_request_end(buf: &[u8]) -> Result<Option<usize>, CodecError> {
    let mut start = 0;
    loop {
        let Some(nl) = memchr(b'\n', &buf[start..]) else {
            if buf.len() - start > MAX_LINE {
                return Err(CodecError::LineTooLong);
            }
            return if buf.len() > MAX_REQUEST { Err(CodecError::RequestTooLarge) } else { Ok(None) };
        };
        let line = &buf[start..start + nl];
        if line.len() > MAX_LINE {
            return Err(CodecError::LineTooLong);
        }
        if strip_cr(line).is_empty() {
            return Ok(Some(start));
        }
        start += nl + 1;
        if start > MAX_REQUEST {
            return Err(CodecError::RequestTooLarge);
        }
    }
}

/// One attribute line: its name and value, and the input after it.
struct AttributeLine<'a> {
    name: &'a [u8],
    value: &'a [u8],
    rest: &'a [u8],
}

/// `name=value\n`: the name runs to the first `=`. `None` when the line has no `=`.
fn attribute_line(input: &[u8]) -> Option<AttributeLine<'_>> {
    let end = memchr(b'\n', input)?;
    let line = &input[..end];
    let eq = memchr(b'=', line)?;
    Some(AttributeLine { name: &line[..eq], value: &line[eq + 1..], rest: &input[end + 1..] })
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Postfix passes client-supplied bytes through; a non-UTF-8 sender must not fail the request.
fn text(bytes: &[u8]) -> Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// Appends the reply for `action`: `action=<value>\n\n`.
pub fn encode_reply(action: &Action, out: &mut Vec<u8>) {
    use std::io::Write;
    out.extend_from_slice(b"action=");
    // Writing into a Vec cannot fail.
    let _ = write!(out, "{action}");
    out.extend_from_slice(b"\n\n");
}

/// Appends a request as Postfix writes it (for tests, benchmarks and the fuzz target).
pub fn encode_request(attrs: &Attributes, out: &mut Vec<u8>) {
    for (name, value) in &attrs.0 {
        out.extend_from_slice(name.as_bytes());
        out.push(b'=');
        out.extend_from_slice(value.as_bytes());
        out.push(b'\n');
    }
    out.push(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What Postfix 3.7.11 sends at RCPT of an authenticated session (29 attributes, reference §1.2).
    pub(crate) const POSTFIX_RCPT: &[u8] = b"request=smtpd_access_policy\nprotocol_state=RCPT\n\
protocol_name=ESMTP\nclient_address=127.0.0.2\nclient_name=localhost\nclient_port=40312\n\
reverse_client_name=localhost\nserver_address=127.0.0.1\nserver_port=2587\nhelo_name=client.example\n\
sender=a@example.com\nrecipient=b@example.net\nrecipient_count=0\nqueue_id=\ninstance=1f2e.5f0a1b2c.d3e4.0\n\
size=0\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_username=alice@example.com\nsasl_sender=\n\
ccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=TLSv1.3\n\
encryption_cipher=TLS_AES_256_GCM_SHA384\nencryption_keysize=256\npolicy_context=session\n\n";

    #[test]
    fn parses_postfix_rcpt_request() {
        let (attrs, used) = decode_request(POSTFIX_RCPT).unwrap().unwrap();
        assert_eq!(used, POSTFIX_RCPT.len());
        assert_eq!(attrs.0.len(), 29);
        let req = PolicyRequest::from_attributes(&attrs).unwrap();
        assert_eq!(req.protocol_state, ProtocolState::Rcpt);
        assert_eq!(req.client_address, Some("127.0.0.2".parse().unwrap()));
        assert_eq!((req.client_port, req.server_port), (Some(40312), Some(2587)));
        assert_eq!(req.sasl_username.as_deref(), Some("alice@example.com"));
        assert_eq!(req.instance.as_deref(), Some("1f2e.5f0a1b2c.d3e4.0"));
        assert_eq!(req.policy_context.as_deref(), Some("session"));
    }

    #[test]
    fn waits_for_the_empty_line() {
        for cut in 0..POSTFIX_RCPT.len() {
            assert_eq!(decode_request(&POSTFIX_RCPT[..cut]).unwrap(), None, "cut at {cut}");
        }
    }

    #[test]
    fn reads_back_to_back_requests_one_at_a_time() {
        let mut two = POSTFIX_RCPT.to_vec();
        two.extend_from_slice(b"request=smtpd_access_policy\nprotocol_state=DATA\n\n");
        let (_, used) = decode_request(&two).unwrap().unwrap();
        let (second, used2) = decode_request(&two[used..]).unwrap().unwrap();
        assert_eq!(used + used2, two.len());
        assert_eq!(second.get("protocol_state"), Some("DATA"));
    }

    #[test]
    fn value_keeps_later_equals_signs_and_last_duplicate_wins() {
        let (attrs, _) = decode_request(b"request=smtpd_access_policy\nsender=a=b@c\nx=1\nx=2\nsasl_username=\n\n")
            .unwrap()
            .unwrap();
        assert_eq!(attrs.get("sender"), Some("a=b@c"));
        assert_eq!(attrs.get("x"), Some("2"));
        let req = PolicyRequest::from_attributes(&attrs).unwrap();
        assert_eq!(req.sasl_username, None, "empty means not authenticated");
        assert_eq!(req.protocol_state, ProtocolState::Other(String::new()));
    }

    #[test]
    fn tolerates_crlf_line_ends() {
        let (attrs, used) =
            decode_request(b"request=smtpd_access_policy\r\nprotocol_state=MAIL\r\n\r\n").unwrap().unwrap();
        assert_eq!(used, 52);
        assert_eq!(attrs.get("protocol_state"), Some("MAIL"));
    }

    #[test]
    fn refuses_what_is_not_a_policy_request() {
        let long = [b"a=".as_slice(), &vec![b'x'; MAX_LINE + 1], b"\n\n"].concat();
        let unterminated = vec![b'x'; MAX_LINE + 1];
        let many: Vec<u8> = (0..=MAX_ATTRIBUTES).flat_map(|i| format!("a{i}=1\n").into_bytes()).chain(*b"\n").collect();
        let huge: Vec<u8> =
            (0..MAX_REQUEST / 100 + 1).flat_map(|_| [vec![b'v'; 98], b"=\n".to_vec()].concat()).collect();
        for (input, want) in [
            (&b"GET / HTTP/1.0\n\n"[..], CodecError::MissingEquals(1)),
            (b"request=smtpd_access_policy\n=x\n\n", CodecError::EmptyName(2)),
            (b"a=\0\n\n", CodecError::Nul),
            (&long, CodecError::LineTooLong),
            (&unterminated, CodecError::LineTooLong),
            (&many, CodecError::TooManyAttributes),
            (&huge, CodecError::RequestTooLarge),
        ] {
            assert_eq!(decode_request(input).unwrap_err(), want, "{:.60}", input.escape_ascii());
        }
        let (attrs, _) = decode_request(b"request=other\n\n").unwrap().unwrap();
        assert_eq!(PolicyRequest::from_attributes(&attrs).unwrap_err(), CodecError::NotAccessPolicy);
    }

    #[test]
    fn encodes_replies_with_the_empty_line() {
        let mut out = Vec::new();
        encode_reply(&Action::Dunno, &mut out);
        encode_reply(&Action::session_expired(), &mut out);
        assert_eq!(out, b"action=DUNNO\n\naction=421 4.4.2 Session time limit exceeded, please reconnect\n\n");
    }

    mod prop {
        use super::super::*;
        use proptest::prelude::*;

        fn attributes() -> impl Strategy<Value = Attributes> {
            let name = "[a-z_][a-z0-9_]{0,20}";
            let value = "[^\n\r\0]{0,80}";
            proptest::collection::vec((name, value), 0..40).prop_map(Attributes)
        }

        /// Requests made of the attributes the rules read, repeated and in any order.
        fn known_attributes() -> impl Strategy<Value = Attributes> {
            let name = proptest::sample::select(vec![
                "request",
                "protocol_state",
                "client_address",
                "client_port",
                "server_address",
                "server_port",
                "sasl_username",
                "recipient_count",
                "instance",
                "policy_context",
                "sender",
            ]);
            let value = prop_oneof![
                Just("smtpd_access_policy".to_string()),
                Just("RCPT".to_string()),
                Just("192.0.2.1".to_string()),
                Just(" 25 ".to_string()),
                "[^\n\r\0]{0,20}",
            ];
            let head = Just(("request".to_string(), "smtpd_access_policy".to_string()));
            (head, proptest::collection::vec((name.prop_map(str::to_string), value), 0..20)).prop_map(|(h, mut v)| {
                v.insert(0, h);
                Attributes(v)
            })
        }

        proptest! {
            #[test]
            fn decode_inverts_encode(attrs in attributes()) {
                let mut wire = Vec::new();
                encode_request(&attrs, &mut wire);
                let (back, used) = decode_request(&wire).unwrap().unwrap();
                prop_assert_eq!(used, wire.len());
                prop_assert_eq!(back, attrs);
            }

            #[test]
            fn the_one_pass_decoder_agrees_with_the_attribute_decoder(attrs in known_attributes()) {
                let mut wire = Vec::new();
                encode_request(&attrs, &mut wire);
                let slow = decode_request(&wire).map(|r| r.map(|(a, n)| (PolicyRequest::from_attributes(&a), n)));
                let fast = decode_policy_request(&wire);
                match (slow, fast) {
                    (Ok(Some((Ok(a), n))), Ok(Some((b, m)))) => prop_assert_eq!((a, n), (b, m)),
                    (Ok(Some((Err(a), _))), Err(b)) => prop_assert_eq!(a, b),
                    (slow, fast) => prop_assert!(false, "{:?} vs {:?}", slow, fast),
                }
            }

            #[test]
            fn arbitrary_bytes_never_panic_and_never_overrun(bytes in proptest::collection::vec(any::<u8>(), 0..2000)) {
                if let Ok(Some((_, used))) = decode_request(&bytes) {
                    prop_assert!(used <= bytes.len());
                }
            }
        }
    }
}
