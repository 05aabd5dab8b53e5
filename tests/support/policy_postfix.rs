//! A throwaway Postfix 3.7 (`postfix -c DIR`) configured from the very files
//! `postfix/main.cf.relaykey` and `postfix/master.cf.relaykey`, plus a `relaykey serve` whose
//! sockets sit where those files point (`$queue_directory/private/relaykey-{auth,policy}`).
//!
//! Templating is limited to what a test host needs: the service names `smtp`, `2525`,
//! `submission` and `submissions` become `127.0.0.1:<free port>`, and the TLS chain points at a
//! certificate made for the test. Recipe: `reference/postfix-policy-protocol.md` §7.2.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader as AsyncBufReader};
use tokio::net::TcpSocket;
use tokio::net::TcpStream;

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// Is a Postfix we can drive here? Under `CI=true` its absence fails the test.
pub fn available() -> bool {
    let ok = Path::new("/usr/sbin/postfix").exists() && unsafe_is_root();
    if !ok && std::env::var("CI").as_deref() == Ok("true") {
        panic!("Postfix (/usr/sbin/postfix) and root are required under CI=true");
    }
    if !ok {
        eprintln!("skipping: needs /usr/sbin/postfix and root");
    }
    ok
}

fn unsafe_is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The four services of master.cf.relaykey, on free loopback ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub smtp: u16,
    pub p2525: u16,
    pub submission: u16,
    pub submissions: u16,
}

pub struct Options<'a> {
    /// Appended to the generated relaykey.toml, whose last table is `[policy]`: keys before any
    /// table header are policy keys (`messages_per_minute = 2\n[limits]\nsession_timeout = "2s"`).
    pub relaykey_toml: &'a str,
}

pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub ports: Ports,
    pub config_path: PathBuf,
    daemon: Option<Child>,
    started: bool,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn postfix_uid() -> u32 {
    run(Command::new("id").args(["-u", "postfix"])).trim().parse().unwrap()
}

/// Base main.cf of §7.2, without restriction lists (those come from main.cf.relaykey).
fn base_main_cf(t: &Path) -> String {
    let t = t.display();
    format!(
        "compatibility_level = 3.6\nqueue_directory = {t}/spool\ndata_directory = {t}/data\nmail_owner = postfix\n\
         setgid_group = postdrop\nsyslog_name = pftest\nmaillog_file = {t}/maillog\nmaillog_file_prefixes = {t}\n\
         myhostname = pftest.example\nmydestination =\ninet_interfaces = 127.0.0.1\ninet_protocols = ipv4\n\
         mynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\ndefault_transport = discard:\n\
         local_transport = discard:\nrelay_transport = discard:\n\n"
    )
}

const BASE_MASTER_CF: &str = "\
pickup    unix n - n 60 1 pickup
cleanup   unix n - n -  0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n -  - trivial-rewrite
bounce    unix - - n -  0 bounce
defer     unix - - n -  0 bounce
trace     unix - - n -  0 bounce
verify    unix - - n -  1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -  - proxymap
showq     unix n - n -  - showq
error     unix - - n -  - error
retry     unix - - n -  - error
discard   unix - - n -  - discard
anvil     unix - - n -  1 anvil
scache    unix - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
";

/// master.cf.relaykey with each service name replaced by `127.0.0.1:<port>`.
pub fn templated_master_cf(ports: Ports) -> String {
    let text = std::fs::read_to_string(Path::new(REPO).join("postfix/master.cf.relaykey")).unwrap();
    let mut seen = 0;
    let out: Vec<String> = text
        .lines()
        .map(|line| {
            let first = line.split_whitespace().next().unwrap_or("");
            if line.starts_with(|c: char| c.is_whitespace() || c == '#') || line.is_empty() {
                return line.to_string();
            }
            let port = match first {
                "smtp" => ports.smtp,
                "2525" => ports.p2525,
                "submission" => ports.submission,
                "submissions" => ports.submissions,
                other => panic!("unexpected service {other:?} in master.cf.relaykey"),
            };
            seen += 1;
            format!("127.0.0.1:{port}{}", &line[first.len()..])
        })
        .collect();
    assert_eq!(seen, 4, "master.cf.relaykey should define 4 services");
    out.join("\n") + "\n"
}

impl Postfix {
    pub fn start(opts: Options<'_>) -> Self {
        let dir = tempfile::Builder::new().prefix("rkpf").tempdir_in("/tmp").unwrap();
        let t = dir.path().to_path_buf();
        std::fs::set_permissions(&t, std::fs::Permissions::from_mode(0o755)).unwrap();
        for sub in ["etc", "spool", "tls"] {
            std::fs::create_dir(t.join(sub)).unwrap();
        }
        let private = t.join("spool/private");
        std::fs::create_dir(&private).unwrap();
        std::os::unix::fs::chown(&private, Some(postfix_uid()), None).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();

        let (key, cert) = (t.join("tls/key.pem"), t.join("tls/cert.pem"));
        run(Command::new("openssl")
            .args(["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj"])
            .arg("/CN=pftest.example")
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stderr(Stdio::null()));

        let snippet = std::fs::read_to_string(Path::new(REPO).join("postfix/main.cf.relaykey")).unwrap();
        std::fs::write(t.join("etc/main.cf"), base_main_cf(&t) + &snippet).unwrap();
        let ports = Ports { smtp: free_port(), p2525: free_port(), submission: free_port(), submissions: free_port() };
        std::fs::write(t.join("etc/master.cf"), BASE_MASTER_CF.to_string() + &templated_master_cf(ports)).unwrap();
        let etc = t.join("etc");
        for setting in [
            format!("smtpd_tls_chain_files = {}, {}", key.display(), cert.display()),
            // A killed smtpd makes master throttle the service for this long (reference §7.2).
            "service_throttle_time = 1s".to_string(),
        ] {
            run(Command::new("postconf").arg("-c").arg(&etc).arg("-e").arg(setting));
        }

        let config_path = t.join("relaykey.toml");
        let toml = format!(
            "database = \"{t}/relaykey.db\"\nlog_level = \"info\"\n[auth]\nargon2_memory_kib = 1024\n\
             argon2_iterations = 1\n[sasl]\nsocket = \"{t}/spool/private/relaykey-auth\"\n\
             socket_mode = \"0666\"\n[senders]\nsocketmap = true\nsocket = \"{t}/spool/private/relaykey-senders\"\n\
             socket_mode = \"0666\"\n[policy]\nsocket = \"{t}/spool/private/relaykey-policy\"\nsocket_mode = \"0666\"\n{extra}\n",
            t = t.display(),
            extra = opts.relaykey_toml,
        );
        std::fs::write(&config_path, toml).unwrap();
        let mut pf = Self { dir, ports, config_path, daemon: None, started: false };
        pf.start_daemon();
        let mut start = Command::new("postfix");
        start.arg("-c").arg(&etc).arg("start").stdout(Stdio::null()).stderr(Stdio::null());
        let status = start.status().unwrap();
        pf.started = true;
        assert!(status.success(), "postfix start failed:\n{}", pf.maillog());
        for port in [ports.smtp, ports.p2525, ports.submission, ports.submissions] {
            pf.wait_for(&format!("Postfix listening on {port}"), || listening(port));
        }
        pf
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Runs the relaykey CLI against this instance's config.
    pub fn relaykey(&self, args: &[&str]) -> String {
        run(Command::new(env!("CARGO_BIN_EXE_relaykey")).arg("--config").arg(&self.config_path).args(args))
    }

    fn start_daemon(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.root().join("relaykey.log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_relaykey"))
            .arg("--config")
            .arg(&self.config_path)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.daemon = Some(child);
        for name in ["relaykey-policy", "relaykey-auth", "relaykey-senders"] {
            let socket = self.root().join("spool/private").join(name);
            self.wait_for(name, || std::os::unix::net::UnixStream::connect(&socket).is_ok());
        }
    }

    /// Kills relaykey with SIGKILL (no chance to clean up) and starts it again.
    pub fn crash_and_restart_relaykey(&mut self) {
        if let Some(mut child) = self.daemon.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
        self.start_daemon();
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.root().join("maillog")).unwrap_or_default()
    }

    pub fn relaykey_log(&self) -> String {
        std::fs::read_to_string(self.root().join("relaykey.log")).unwrap_or_default()
    }

    /// Polls a readiness condition (not a timing assertion: the deadline only bounds a hang).
    fn wait_for(&mut self, what: &str, mut ready: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !ready() {
            if let Some(Ok(Some(status))) = self.daemon.as_mut().map(|c| c.try_wait()) {
                panic!("relaykey exited ({status}) before {what}:\n{}", self.relaykey_log());
            }
            assert!(
                Instant::now() < deadline,
                "{what} not ready\nmaillog:\n{}\nrelaykey:\n{}",
                self.maillog(),
                self.relaykey_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.started {
            let _ = Command::new("postfix")
                .arg("-c")
                .arg(self.root().join("etc"))
                .arg("stop")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if let Some(mut child) = self.daemon.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
            let _ = child.wait();
        }
        if std::thread::panicking() {
            eprintln!("--- maillog ---\n{}\n--- relaykey.log ---\n{}", self.maillog(), self.relaykey_log());
        }
    }
}

/// Is something listening on 127.0.0.1:`port`? (Read from the kernel, so that probing does
/// not open an SMTP session.)
fn listening(port: u16) -> bool {
    let want = format!("0100007F:{port:04X}");
    std::fs::read_to_string("/proc/net/tcp")
        .map(|t| {
            t.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.len() > 3 && cols[1] == want && cols[3] == "0A"
            })
        })
        .unwrap_or(false)
}

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

/// Runs swaks against 127.0.0.1:`port`; returns (success, transcript).
pub fn swaks(port: u16, tls: &str, user: &str, password: &str, to: &[&str]) -> (bool, String) {
    let out = Command::new("swaks")
        .arg("--server")
        .arg(format!("127.0.0.1:{port}"))
        .arg(tls)
        .args(["--auth", "PLAIN", "--auth-user", user, "--auth-password", password, "--from", user, "--to"])
        .arg(to.join(","))
        .args(["--timeout", "60"])
        .stdin(Stdio::null())
        .output()
        .expect("swaks");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr))
}
