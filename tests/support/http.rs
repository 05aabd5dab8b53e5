//! A blocking HTTP/1.1 client for the daemon's API on a loopback port: one request per
//! connection, JSON in and out, no runtime needed.

use std::io::{Read, Write};
use std::time::Duration;

use serde_json::Value;

/// `method path` with `Authorization: Bearer key` and an optional JSON body; returns the
/// status and the body as JSON (`Null` when it is not JSON), or the I/O error.
pub fn try_request(
    port: u16,
    method: &str,
    path: &str,
    key: &str,
    body: Option<&Value>,
) -> std::io::Result<(u16, Value)> {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(60)))?;
    let body = body.map(Value::to_string).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {key}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let status = text.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(text.clone()))?;
    let json = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok()).unwrap_or(Value::Null);
    Ok((status, json))
}

/// As [`try_request`]; panics when the exchange fails.
pub fn request(port: u16, method: &str, path: &str, key: &str, body: Option<&Value>) -> (u16, Value) {
    try_request(port, method, path, key, body).unwrap_or_else(|e| panic!("{method} {path}: {e}"))
}
