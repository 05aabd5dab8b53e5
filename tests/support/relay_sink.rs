//! A test SMTP sink: accepts every message and keeps it (envelope and data, dot-stuffing
//! undone), but answers RCPT for local parts starting with `reject` with `550 5.1.1` and
//! `defer` with `450 4.2.0`. Runs on std threads so tests need no runtime.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct Delivered {
    pub from: String,
    pub rcpts: Vec<String>,
    pub data: Vec<u8>,
}

impl Delivered {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.data).into_owned()
    }
}

#[derive(Clone)]
pub struct Sink {
    pub port: u16,
    store: Arc<(Mutex<Vec<Delivered>>, Condvar)>,
    /// Hang up right after each message (a server that times idle clients out early).
    close_after_data: bool,
    connections: Arc<std::sync::atomic::AtomicUsize>,
}

impl Sink {
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    pub fn start_on(addr: &str) -> Self {
        Self::start_with(addr, false)
    }

    /// A sink that closes the connection after every message.
    pub fn start_closing() -> Self {
        Self::start_with("127.0.0.1:0", true)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> usize {
        self.connections.load(std::sync::atomic::Ordering::SeqCst)
    }

    fn start_with(addr: &str, close_after_data: bool) -> Self {
        let listener = TcpListener::bind(addr).unwrap();
        let port = listener.local_addr().unwrap().port();
        let sink = Self {
            port,
            store: Arc::new((Mutex::new(Vec::new()), Condvar::new())),
            close_after_data,
            connections: Arc::default(),
        };
        let s2 = sink.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                let Ok(conn) = conn else { continue };
                s2.connections.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let s3 = s2.clone();
                std::thread::spawn(move || {
                    let _ = s3.serve(conn);
                });
            }
        });
        sink
    }

    fn serve(&self, conn: std::net::TcpStream) -> std::io::Result<()> {
        let mut out = conn.try_clone()?;
        let mut input = BufReader::new(conn);
        out.write_all(b"220 sink.test ESMTP\r\n")?;
        let (mut from, mut rcpts) = (String::new(), Vec::new());
        loop {
            let mut line = Vec::new();
            if input.read_until(b'\n', &mut line)? == 0 {
                return Ok(());
            }
            let text = String::from_utf8_lossy(&line).trim_end().to_string();
            let upper = text.to_ascii_uppercase();
            let reply: String = if upper.starts_with("EHLO") {
                "250-sink.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 ENHANCEDSTATUSCODES\r\n".into()
            } else if upper.starts_with("HELO") || upper.starts_with("NOOP") || upper.starts_with("RSET") {
                if upper.starts_with("RSET") {
                    from.clear();
                    rcpts.clear();
                }
                "250 2.0.0 ok\r\n".into()
            } else if upper.starts_with("MAIL FROM:") {
                from = path(&text);
                rcpts.clear();
                "250 2.1.0 ok\r\n".into()
            } else if upper.starts_with("RCPT TO:") {
                let r = path(&text);
                if r.starts_with("reject") {
                    "550 5.1.1 no such user\r\n".into()
                } else if r.starts_with("defer") {
                    "450 4.2.0 try later\r\n".into()
                } else {
                    rcpts.push(r);
                    "250 2.1.5 ok\r\n".into()
                }
            } else if upper == "DATA" {
                out.write_all(b"354 go ahead\r\n")?;
                let data = read_data(&mut input)?;
                let mut guard = self.store.0.lock().unwrap();
                guard.push(Delivered { from: from.clone(), rcpts: std::mem::take(&mut rcpts), data });
                self.store.1.notify_all();
                drop(guard);
                if self.close_after_data {
                    out.write_all(b"250 2.0.0 stored\r\n")?;
                    return Ok(());
                }
                "250 2.0.0 stored\r\n".into()
            } else if upper == "QUIT" {
                out.write_all(b"221 2.0.0 bye\r\n")?;
                return Ok(());
            } else {
                "502 5.5.1 not here\r\n".into()
            };
            out.write_all(reply.as_bytes())?;
        }
    }

    /// Waits until at least `n` messages arrived, for at most `limit`; returns them all.
    pub fn wait_for(&self, n: usize, limit: Duration) -> Vec<Delivered> {
        let deadline = Instant::now() + limit;
        let mut guard = self.store.0.lock().unwrap();
        while guard.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            guard = self.store.1.wait_timeout(guard, left).unwrap().0;
        }
        guard.clone()
    }

    pub fn all(&self) -> Vec<Delivered> {
        self.store.0.lock().unwrap().clone()
    }

    /// Forgets the messages kept so far (a bench keeps thousands).
    pub fn clear(&self) {
        self.store.0.lock().unwrap().clear();
    }
}

fn path(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

fn read_data(input: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        if input.read_until(b'\n', &mut line)? == 0 {
            return Ok(data);
        }
        if line == b".\r\n" {
            return Ok(data);
        }
        let line = if line.starts_with(b"..") { &line[1..] } else { &line[..] };
        data.extend_from_slice(line);
    }
}
