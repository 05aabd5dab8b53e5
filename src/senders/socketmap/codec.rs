//! The socketmap wire format (Sendmail's, as Postfix ≥ 2.10 speaks it): netstrings, no I/O.
//!
//! ```text
//! request:  <len>:<name> <key>,        24:senders ann@example.com,
//! reply:    <len>:OK <data>,           22:OK ann@example.com,bob,
//!           <len>:NOTFOUND ,           9:NOTFOUND ,
//!           <len>:TEMP <reason>,       PERM <reason>, TIMEOUT <reason>
//! ```
//! Postfix reads the length up to the `:` (digits only; it tolerates leading zeros), reads
//! exactly that many bytes, then needs a `,`. The name ends at the first space; the key (which
//! may hold spaces, in a quoted local part) is the rest. Replies are at most 100 000 bytes
//! (`DICT_SOCKMAP_DEF_MAX_REPLY`); requests are capped here at [`MAX_REQUEST`].

/// The largest request payload accepted: an address is at most 254 bytes, a map name short.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The largest reply payload Postfix reads.
pub const MAX_REPLY: usize = 100_000;
/// Digits in a length that could still be within [`MAX_REPLY`] (replies are decoded too).
const MAX_DIGITS: usize = 6;

/// A lookup: `name` is the map name Postfix was configured with, `key` what it looks up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub name: String,
    pub key: String,
}

/// A reply. Built by constructors that keep it writable: `OK` data is never empty (Postfix
/// reads an empty result as a configuration error) and no text holds a byte that would
/// confuse a log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    Ok(String),
    NotFound,
    Temp(String),
    Timeout(String),
    Perm(String),
}

/// The peer sent something that is not a socketmap request; the connection is closed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodecError {
    #[error("netstring length is not a decimal number")]
    BadLength,
    #[error("netstring of {0} bytes is over the limit")]
    TooLong(usize),
    #[error("netstring does not end with a comma")]
    MissingComma,
    #[error("request has no space between the map name and the key")]
    NoSpace,
    #[error("reply has an unknown status")]
    UnknownStatus,
}

impl Reply {
    /// `OK` with the values joined by commas, or `NOTFOUND` when there are none.
    pub fn found<S: AsRef<str>>(values: &[S]) -> Self {
        let joined = values.iter().map(|v| clean(v.as_ref())).filter(|v| !v.is_empty()).collect::<Vec<_>>().join(",");
        if joined.is_empty() {
            Self::NotFound
        } else if joined.len() + 3 > MAX_REPLY {
            Self::Temp("reply too long".into())
        } else {
            Self::Ok(joined)
        }
    }

    pub fn temp(reason: &str) -> Self {
        Self::Temp(clean(reason))
    }

    pub fn perm(reason: &str) -> Self {
        Self::Perm(clean(reason))
    }

    /// The status word.
    pub fn status(&self) -> &'static str {
        match self {
            Self::Ok(_) => "OK",
            Self::NotFound => "NOTFOUND",
            Self::Temp(_) => "TEMP",
            Self::Timeout(_) => "TIMEOUT",
            Self::Perm(_) => "PERM",
        }
    }
}

/// Values and reasons are single-line printable text within the reply limit.
fn clean(s: &str) -> String {
    let mut out: String = s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    if out.len() > MAX_REPLY / 2 {
        let mut end = MAX_REPLY / 2;
        while !out.is_char_boundary(end) {
            end -= 1;
        }
        out.truncate(end);
    }
    out
}

/// One netstring from the front of `buf`: `Ok(Some((payload, used)))`, `Ok(None)` when more
/// bytes are needed.
fn decode_netstring(buf: &[u8], max: usize) -> Result<Option<(&[u8], usize)>, CodecError> {
    let digits = buf.iter().take_while(|b| b.is_ascii_digit()).count();
    if digits > MAX_DIGITS {
        return Err(CodecError::TooLong(usize::MAX));
    }
    let Some(&next) = buf.get(digits) else { return Ok(None) };
    if next != b':' || digits == 0 {
        return Err(CodecError::BadLength);
    }
    let len = buf[..digits].iter().fold(0usize, |n, d| n * 10 + usize::from(d - b'0'));
    if len > max {
        return Err(CodecError::TooLong(len));
    }
    let start = digits + 1;
    let Some(payload) = buf.get(start..start + len) else { return Ok(None) };
    match buf.get(start + len) {
        None => Ok(None),
        Some(b',') => Ok(Some((payload, start + len + 1))),
        Some(_) => Err(CodecError::MissingComma),
    }
}

fn encode_netstring(payload: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(payload.len().to_string().as_bytes());
    out.push(b':');
    out.extend_from_slice(payload);
    out.push(b',');
}

/// Decodes one request from the front of `buf`: `Ok(Some((request, used)))`, or `Ok(None)`
/// when it is not complete yet.
pub fn decode_request(buf: &[u8]) -> Result<Option<(Request, usize)>, CodecError> {
    let Some((payload, used)) = decode_netstring(buf, MAX_REQUEST)? else { return Ok(None) };
    let space = payload.iter().position(|&b| b == b' ').ok_or(CodecError::NoSpace)?;
    let (name, key) = (&payload[..space], &payload[space + 1..]);
    // A key that is not UTF-8 cannot name any entry; it is looked up (and not found) as is.
    let request =
        Request { name: String::from_utf8_lossy(name).into_owned(), key: String::from_utf8_lossy(key).into_owned() };
    Ok(Some((request, used)))
}

/// Appends `reply` to `out`.
pub fn encode_reply(reply: &Reply, out: &mut Vec<u8>) {
    let payload = match reply {
        Reply::Ok(data) => format!("OK {data}"),
        Reply::NotFound => "NOTFOUND ".to_string(),
        Reply::Temp(r) => format!("TEMP {r}"),
        Reply::Timeout(r) => format!("TIMEOUT {r}"),
        Reply::Perm(r) => format!("PERM {r}"),
    };
    encode_netstring(payload.as_bytes(), out);
}

/// Appends a request (the client side: tests, the bench).
pub fn encode_request(request: &Request, out: &mut Vec<u8>) {
    encode_netstring(format!("{} {}", request.name, request.key).as_bytes(), out);
}

/// Decodes one reply (the client side: tests, the bench, the fuzz target's round trip).
pub fn decode_reply(buf: &[u8]) -> Result<Option<(Reply, usize)>, CodecError> {
    let Some((payload, used)) = decode_netstring(buf, MAX_REPLY)? else { return Ok(None) };
    let text = String::from_utf8_lossy(payload);
    let (status, rest) = text.split_once(' ').unwrap_or((&text, ""));
    let reply = match status {
        "OK" => Reply::Ok(rest.to_string()),
        "NOTFOUND" => Reply::NotFound,
        "TEMP" => Reply::Temp(rest.to_string()),
        "TIMEOUT" => Reply::Timeout(rest.to_string()),
        "PERM" => Reply::Perm(rest.to_string()),
        _ => return Err(CodecError::UnknownStatus),
    };
    Ok(Some((reply, used)))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    // What `postmap -q 'User+tag@EXAMPLE.com' socketmap:unix:PATH:senders` sends.
    const POSTMAP: &[u8] = b"28:senders User+tag@EXAMPLE.com,";

    #[test]
    fn parses_what_postmap_sends() {
        let (req, used) = decode_request(POSTMAP).unwrap().unwrap();
        assert_eq!((req.name.as_str(), req.key.as_str(), used), ("senders", "User+tag@EXAMPLE.com", POSTMAP.len()));
    }

    #[test]
    fn the_key_is_everything_after_the_first_space() {
        let (req, _) = decode_request(b"25:senders \"a b\"@example.com,").unwrap().unwrap();
        assert_eq!(req.key, "\"a b\"@example.com");
    }

    #[test]
    fn waits_for_a_whole_netstring() {
        for cut in 0..POSTMAP.len() {
            assert_eq!(decode_request(&POSTMAP[..cut]), Ok(None), "cut at {cut}");
        }
        let mut two = POSTMAP.to_vec();
        two.extend_from_slice(POSTMAP);
        let (_, used) = decode_request(&two).unwrap().unwrap();
        assert_eq!(used, POSTMAP.len());
    }

    #[test]
    fn refuses_what_is_not_a_request() {
        for (input, want) in [
            (&b":senders a,"[..], CodecError::BadLength),
            (b"x:senders a,", CodecError::BadLength),
            (b"3 :abc,", CodecError::BadLength),
            (b"9:senders a;", CodecError::MissingComma),
            (b"7:senders,", CodecError::NoSpace),
            (b"9999999:", CodecError::TooLong(usize::MAX)),
            (b"8193:", CodecError::TooLong(8193)),
        ] {
            assert_eq!(decode_request(input), Err(want), "{}", input.escape_ascii());
        }
    }

    #[test]
    fn replies_as_postfix_reads_them() {
        let mut out = Vec::new();
        encode_reply(&Reply::found(&["ann@example.com", "bob@example.com"]), &mut out);
        assert_eq!(out, b"34:OK ann@example.com,bob@example.com,");
        out.clear();
        encode_reply(&Reply::NotFound, &mut out);
        assert_eq!(out, b"9:NOTFOUND ,");
        out.clear();
        encode_reply(&Reply::temp("store\nlocked"), &mut out);
        assert_eq!(out, b"17:TEMP store locked,");
    }

    #[test]
    fn an_empty_result_is_notfound_never_an_empty_ok() {
        assert_eq!(Reply::found::<&str>(&[]), Reply::NotFound);
        assert_eq!(Reply::found(&[""]), Reply::NotFound);
    }

    proptest! {
        #[test]
        fn requests_round_trip(name in "[a-z]{1,10}", key in "[ -~]{0,300}") {
            let mut out = Vec::new();
            encode_request(&Request { name: name.clone(), key: key.clone() }, &mut out);
            let (req, used) = decode_request(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(req, Request { name, key });
        }

        #[test]
        fn replies_round_trip(values in proptest::collection::vec("[!-+--~]{1,40}", 0..5)) {
            let reply = Reply::found(&values);
            let mut out = Vec::new();
            encode_reply(&reply, &mut out);
            let (back, used) = decode_reply(&out).unwrap().unwrap();
            prop_assert_eq!(used, out.len());
            prop_assert_eq!(back, reply);
        }
    }
}
