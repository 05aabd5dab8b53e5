//! A minimal auth-client (the Postfix side of the Dovecot protocol) for tests and the benchmark.
#![allow(dead_code)]

use std::path::Path;

use relaykey::sasl::codec::{AuthRequest, LineBuffer, Mechanism, Reply, Request, parse_reply};
use relaykey::sasl::session::encode_response;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

pub struct Client {
    stream: UnixStream,
    lines: LineBuffer,
    /// The handshake as received, for order checks.
    pub handshake: Vec<Reply>,
}

impl Client {
    /// Connects, reads the whole handshake before writing anything (as Exim ≤ 4.98 does), then
    /// sends VERSION and CPID.
    pub async fn connect(path: &Path) -> std::io::Result<Self> {
        let stream = UnixStream::connect(path).await?;
        let mut c = Self { stream, lines: LineBuffer::default(), handshake: Vec::new() };
        loop {
            let r = c.read_reply().await?.ok_or_else(|| std::io::Error::other("eof in handshake"))?;
            let done = r == Reply::Done;
            c.handshake.push(r);
            if done {
                break;
            }
        }
        c.send(&Request::Version { major: 1, minor: 0 }).await?;
        c.send(&Request::Cpid(std::process::id())).await?;
        Ok(c)
    }

    pub async fn send(&mut self, req: &Request) -> std::io::Result<()> {
        let mut out = Vec::new();
        req.encode(&mut out);
        self.stream.write_all(&out).await
    }

    pub async fn send_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await
    }

    /// The next reply, or `None` at EOF.
    pub async fn read_reply(&mut self) -> std::io::Result<Option<Reply>> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(line) = self.lines.next_line().map_err(std::io::Error::other)? {
                return parse_reply(&line).map(Some).map_err(std::io::Error::other);
            }
            let n = self.stream.read(&mut buf).await?;
            if n == 0 {
                return Ok(None);
            }
            self.lines.extend(&buf[..n]);
        }
    }

    pub async fn expect_reply(&mut self) -> Reply {
        self.read_reply().await.expect("read").expect("server closed the connection")
    }

    /// AUTH PLAIN with an initial response, sent without waiting for the answer.
    pub async fn send_plain(&mut self, id: u32, user: &str, pass: &str, rip: Option<&str>) {
        let resp = encode_response(format!("\0{user}\0{pass}").as_bytes());
        self.send(&auth(id, Mechanism::Plain, rip, Some(resp))).await.expect("send");
    }

    /// One PLAIN login, waiting for its answer.
    pub async fn plain(&mut self, id: u32, user: &str, pass: &str, rip: Option<&str>) -> Reply {
        self.send_plain(id, user, pass, rip).await;
        self.expect_reply().await
    }
}

pub fn auth(id: u32, mechanism: Mechanism, rip: Option<&str>, resp: Option<String>) -> Request {
    Request::Auth(AuthRequest {
        id,
        mechanism,
        service: "smtp".into(),
        local_ip: Some("127.0.0.1".parse().unwrap()),
        remote_ip: rip.map(|r| r.parse().unwrap()),
        secured: false,
        initial_response: resp,
    })
}
