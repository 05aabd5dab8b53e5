//! SMTP clients for tests: an async session from a chosen loopback address ([`Smtp`]), a
//! session over implicit TLS through `openssl s_client` ([`TlsSmtp`]), a blocking plaintext
//! dialog ([`Dialog`]), and swaks, run one way ([`swaks`]) with a few shapes of arguments.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream as StdTcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::{TcpSocket, TcpStream};

/// An SMTP client session from a chosen loopback address.
pub struct Smtp {
    reader: AsyncBufReader<tokio::net::tcp::OwnedReadHalf>,
    writer: tokio::net::tcp::OwnedWriteHalf,
    pub local: SocketAddr,
}

impl Smtp {
    /// Connects from `from` to 127.0.0.1:`port` and returns the session with its greeting.
    pub async fn connect(from: &str, port: u16) -> (Self, String) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.bind(SocketAddr::new(from.parse::<IpAddr>().unwrap(), 0)).unwrap();
        let stream: TcpStream = socket.connect(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap();
        let local = stream.local_addr().unwrap();
        let (r, w) = stream.into_split();
        let mut s = Self { reader: AsyncBufReader::new(r), writer: w, local };
        let greeting = s.reply().await;
        (s, greeting)
    }

    /// Reads one (possibly multi-line) reply; returns its last line, or "" on EOF.
    pub async fn reply(&mut self) -> String {
        let mut line = String::new();
        loop {
            line.clear();
            let read = tokio::time::timeout(Duration::from_secs(60), self.reader.read_line(&mut line)).await;
            match read {
                Ok(Ok(0)) | Ok(Err(_)) => return String::new(),
                Ok(Ok(_)) => {}
                Err(_) => panic!("no SMTP reply within 60 s"),
            }
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return line.trim_end().to_string();
            }
        }
    }

    pub async fn command(&mut self, cmd: &str) -> String {
        self.writer.write_all(format!("{cmd}\r\n").as_bytes()).await.unwrap();
        self.reply().await
    }
}

/// The pid of the smtpd process serving the TCP session whose client end is `client`.
pub fn smtpd_pid_for(client: SocketAddr, server_port: u16) -> Option<i32> {
    let hex = |a: SocketAddr| match a.ip() {
        IpAddr::V4(v4) => format!("{:08X}:{:04X}", u32::from_le_bytes(v4.octets()), a.port()),
        IpAddr::V6(_) => String::new(),
    };
    let (local, remote) = (hex(SocketAddr::from(([127, 0, 0, 1], server_port))), hex(client));
    let table = std::fs::read_to_string("/proc/net/tcp").ok()?;
    let inode = table.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.len() > 9 && cols[1] == local && cols[2] == remote).then(|| cols[9].to_string())
    })?;
    let target = format!("socket:[{inode}]");
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Ok(pid) = proc_entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target) {
                return Some(pid);
            }
        }
    }
    None
}

/// An SMTP session over implicit TLS (port 465) driven through `openssl s_client`, so that a
/// test can pause between commands (swaks runs a whole session at once).
pub struct TlsSmtp {
    child: Child,
    stdin: std::process::ChildStdin,
    lines: std::sync::mpsc::Receiver<String>,
}

impl TlsSmtp {
    pub fn connect(port: u16) -> (Self, String) {
        let mut child = Command::new("openssl")
            .args(["s_client", "-quiet", "-crlf", "-connect"])
            .arg(format!("127.0.0.1:{port}"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("openssl s_client");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let mut s = Self { child, stdin, lines };
        let greeting = s.reply();
        (s, greeting)
    }

    /// The last line of one reply, or "" when the server closed.
    pub fn reply(&mut self) -> String {
        loop {
            match self.lines.recv_timeout(Duration::from_secs(60)) {
                Ok(line) => {
                    let line = line.trim_end().to_string();
                    if line.len() < 4 || line.as_bytes()[3] != b'-' {
                        return line;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return String::new(),
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => panic!("no SMTP reply within 60 s"),
            }
        }
    }

    pub fn command(&mut self, cmd: &str) -> String {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        self.reply()
    }
}

impl Drop for TlsSmtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `AUTH PLAIN` initial response for `user` and `password`.
pub fn auth_plain(user: &str, password: &str) -> String {
    use base64::Engine;
    format!("AUTH PLAIN {}", base64::engine::general_purpose::STANDARD.encode(format!("\0{user}\0{password}")))
}

/// A plaintext SMTP client for dialogs swaks cannot script (pipelining, several messages).
pub struct Dialog {
    reader: BufReader<StdTcpStream>,
    writer: StdTcpStream,
}

impl Dialog {
    pub fn connect(port: u16) -> Self {
        Self::connect_from(port, None)
    }

    pub fn connect_from(port: u16, local: Option<&str>) -> Self {
        let stream = match local {
            Some(ip) => socket2_connect(ip, port),
            None => StdTcpStream::connect(("127.0.0.1", port)).unwrap(),
        };
        stream.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Self { reader: BufReader::new(stream.try_clone().unwrap()), writer: stream }
    }

    pub fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).unwrap();
    }

    /// Reads one (possibly multi-line) reply; returns its lines joined with `\n`.
    pub fn reply(&mut self) -> String {
        let mut all = String::new();
        loop {
            let mut line = String::new();
            if self.reader.read_line(&mut line).unwrap_or(0) == 0 {
                return all;
            }
            all.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return all;
            }
        }
    }

    /// Reads until the server closes; returns everything.
    pub fn rest(&mut self) -> String {
        let mut s = String::new();
        let _ = self.reader.read_to_string(&mut s);
        s
    }
}

/// Connects from a chosen loopback address (127.0.0.0/8 is all local on Linux).
fn socket2_connect(local: &str, port: u16) -> StdTcpStream {
    // SAFETY: plain socket(2)/bind(2)/connect(2) on a descriptor we own, with sockaddr_in
    // structures built on the stack; the fd is handed to StdTcpStream, which closes it.
    unsafe {
        use std::os::unix::io::FromRawFd;
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let ip: std::net::Ipv4Addr = local.parse().unwrap();
        let mut sa: libc::sockaddr_in = std::mem::zeroed();
        sa.sin_family = libc::AF_INET as u16;
        sa.sin_addr.s_addr = u32::from_ne_bytes(ip.octets());
        let rc =
            libc::bind(fd, &sa as *const _ as *const libc::sockaddr, std::mem::size_of::<libc::sockaddr_in>() as u32);
        assert_eq!(rc, 0, "bind {local}");
        let mut to: libc::sockaddr_in = std::mem::zeroed();
        to.sin_family = libc::AF_INET as u16;
        to.sin_port = port.to_be();
        to.sin_addr.s_addr = u32::from_ne_bytes([127, 0, 0, 1]);
        let rc = libc::connect(
            fd,
            &to as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "connect to {port}");
        StdTcpStream::from_raw_fd(fd)
    }
}

/// Runs swaks with `args`; returns (exit success, transcript).
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks").args(args).stdin(Stdio::null()).output().expect("run swaks");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// The outcome of one swaks run.
pub struct Swaks {
    pub ok: bool,
    pub transcript: String,
}

impl Swaks {
    /// The SMTP code the server gave to AUTH (235, 535, 454…), if it got that far.
    pub fn auth_code(&self) -> Option<u16> {
        let mut after_auth = false;
        for line in self.transcript.lines() {
            if line.contains("-> AUTH") {
                after_auth = true;
            } else if after_auth && line.starts_with("<") {
                let code = line.trim_start_matches(['<', '-', '~', '*', ' ']).get(..3)?;
                if code != "334" {
                    return code.parse().ok();
                }
            }
        }
        None
    }
}

/// Sends one message through 127.0.0.1:`port` with AUTH `mech` (PLAIN or LOGIN), from `local_ip`.
pub fn swaks_login(port: u16, mech: &str, user: &str, password: &str, local_ip: &str) -> Swaks {
    let target =
        ["--server", "127.0.0.1", "--port", &port.to_string(), "--local-interface", local_ip].map(String::from);
    swaks_auth(&target, mech, user, password)
}

/// Sends one message to the SMTP server named by swaks arguments `target` (`--server …` or
/// `--pipe CMD`) with AUTH `mech`.
pub fn swaks_auth(target: &[String], mech: &str, user: &str, password: &str) -> Swaks {
    let mut args: Vec<&str> = target.iter().map(String::as_str).collect();
    args.extend(["--auth", mech, "--auth-user", user, "--auth-password", password]);
    args.extend(["--from", "sender@example.com", "--to", "rcpt@example.org", "--timeout", "30"]);
    let (ok, transcript) = swaks(&args);
    Swaks { ok, transcript }
}

/// Sends one message from `user` (AUTH PLAIN) to `to` through 127.0.0.1:`port`, with `tls`
/// (`--tls` or `--tls-on-connect`); returns (success, transcript).
pub fn swaks_message(port: u16, tls: &str, user: &str, password: &str, to: &[&str]) -> (bool, String) {
    swaks_message_from(port, tls, user, password, user, to)
}

/// As [`swaks_message`], with the envelope sender `from` (`<>`: the null sender).
pub fn swaks_message_from(port: u16, tls: &str, user: &str, password: &str, from: &str, to: &[&str]) -> (bool, String) {
    let server = format!("127.0.0.1:{port}");
    let to = to.join(",");
    swaks(&[
        "--server",
        &server,
        tls,
        "--auth",
        "PLAIN",
        "--auth-user",
        user,
        "--auth-password",
        password,
        "--from",
        from,
        "--to",
        &to,
        "--timeout",
        "60",
    ])
}
