//! An authenticated SMTP submission load: `sessions` concurrent clients share a count of
//! messages; each connects, says EHLO, logs in with AUTH PLAIN, sends up to `per_connection`
//! messages (MAIL, RCPT, DATA, one command at a time, like smtp-source) and says QUIT. Any
//! reply other than the expected one fails the run: a bench must not time refusals.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// What to send, where, and as whom.
pub struct Load {
    pub port: u16,
    pub sessions: usize,
    pub messages: usize,
    pub per_connection: usize,
    pub username: String,
    pub password: String,
    pub mail_from: String,
    pub rcpt_to: String,
    /// The `From:` header's domain; the header block names it, the body is shared.
    pub from_domain: String,
    /// Tags the Message-IDs of this run (they stay unique across runs).
    pub run: String,
    pub body: Arc<Vec<u8>>,
}

const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The wall time from the first connection until the last message was accepted.
pub fn run(load: Load) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("load runtime");
    runtime.block_on(async move {
        let load = Arc::new(load);
        let next = Arc::new(AtomicUsize::new(0));
        let start = Instant::now();
        let tasks: Vec<_> = (0..load.sessions).map(|_| tokio::spawn(client(load.clone(), next.clone()))).collect();
        for task in tasks {
            match task.await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => panic!("port {}: {e}", load.port),
                Err(e) => panic!("load task: {e}"),
            }
        }
        start.elapsed()
    })
}

async fn client(load: Arc<Load>, next: Arc<AtomicUsize>) -> Result<(), String> {
    let mut open: Option<(Conn, usize)> = None;
    loop {
        let n = next.fetch_add(1, Ordering::Relaxed);
        if n >= load.messages {
            break;
        }
        let (conn, sent) = match open.as_mut() {
            Some(o) => o,
            None => open.insert((Conn::login(&load).await?, 0)),
        };
        conn.send(&load, n).await?;
        *sent += 1;
        if *sent >= load.per_connection
            && let Some((mut conn, _)) = open.take()
        {
            conn.quit().await?;
        }
    }
    if let Some((mut conn, _)) = open.take() {
        conn.quit().await?;
    }
    Ok(())
}

struct Conn {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
    line: String,
}

impl Conn {
    async fn login(load: &Load) -> Result<Self, String> {
        let stream = TcpStream::connect(("127.0.0.1", load.port)).await.map_err(|e| format!("connect: {e}"))?;
        stream.set_nodelay(true).map_err(|e| e.to_string())?;
        let (r, w) = stream.into_split();
        let mut c = Self { reader: BufReader::new(r), writer: w, line: String::new() };
        c.expect("greeting", "220").await?;
        c.command(b"EHLO load.bench.test\r\n", "250").await?;
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{}\0{}", load.username, load.password).as_bytes());
        c.command(format!("AUTH PLAIN {token}\r\n").as_bytes(), "235").await?;
        Ok(c)
    }

    async fn send(&mut self, load: &Load, n: usize) -> Result<(), String> {
        self.command(format!("MAIL FROM:<{}>\r\n", load.mail_from).as_bytes(), "250").await?;
        self.command(format!("RCPT TO:<{}>\r\n", load.rcpt_to).as_bytes(), "250").await?;
        self.command(b"DATA\r\n", "354").await?;
        let head = head(load, n);
        self.write(head.as_bytes()).await?;
        self.write(&load.body).await?;
        self.command(b".\r\n", "250").await
    }

    async fn quit(&mut self) -> Result<(), String> {
        self.command(b"QUIT\r\n", "221").await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), String> {
        self.writer.write_all(bytes).await.map_err(|e| format!("write: {e}"))
    }

    async fn command(&mut self, bytes: &[u8], code: &str) -> Result<(), String> {
        self.write(bytes).await?;
        let what = String::from_utf8_lossy(bytes.split(|&b| b == b' ' || b == b'\r').next().unwrap_or_default());
        self.expect(&what, code).await
    }

    /// Reads one reply (all its lines) and checks its code.
    async fn expect(&mut self, what: &str, code: &str) -> Result<(), String> {
        loop {
            self.line.clear();
            match tokio::time::timeout(REPLY_TIMEOUT, self.reader.read_line(&mut self.line)).await {
                Ok(Ok(0)) => return Err(format!("{what}: connection closed")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(format!("{what}: {e}")),
                Err(_) => return Err(format!("{what}: no reply within {REPLY_TIMEOUT:?}")),
            }
            if self.line.as_bytes().get(3) != Some(&b'-') {
                break;
            }
        }
        if self.line.starts_with(code) {
            Ok(())
        } else {
            Err(format!("{what}: expected {code}, got {:?}", self.line.trim_end()))
        }
    }
}

/// The header section of message `n` of `load`, with the empty line that ends it.
pub fn head(load: &Load, n: usize) -> String {
    let d = &load.from_domain;
    format!(
        "From: Bench Sender <bench@{d}>\r\nTo: <{to}>\r\nSubject: relay bench {run} message {n}\r\n\
         Date: {date}\r\nMessage-ID: <{n}.{run}@{d}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=us-ascii\r\n\r\n",
        to = load.rcpt_to,
        run = load.run,
        date = relaykey::mail_date::rfc5322_date(unix_now()),
    )
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// A plain-text body of about `bytes` bytes in 72-column lines, none starting with a dot.
pub fn text_body(bytes: usize) -> Vec<u8> {
    let mut body = Vec::with_capacity(bytes + 80);
    let mut i = 0;
    while body.len() < bytes {
        body.extend_from_slice(
            format!("Line {i:05}: the quick brown fox jumps over the lazy dog, then does it again.\r\n").as_bytes(),
        );
        i += 1;
    }
    body
}
