//! A real `relaykey serve` with the relay enabled, for end-to-end tests: a temp directory with
//! the store, a throwaway certificate (rcgen), one account with an SMTP credential, and three
//! loopback listeners (STARTTLS, implicit TLS, plaintext). Stopped on drop.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_relaykey");
pub const USER: &str = "ann@example.com";

/// Are the programs the test needs installed? Under CI=true their absence fails the test.
pub fn available(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| which(p).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required programs missing under CI: {missing:?}");
    }
    eprintln!("skipping: {missing:?} not installed");
    false
}

pub fn which(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

pub fn is_root() -> bool {
    // SAFETY: getuid has no preconditions.
    unsafe { libc::getuid() == 0 }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something accepts on `port`, or panics after `limit`.
pub fn wait_listening(port: u16, limit: Duration, what: &str) {
    let start = Instant::now();
    while start.elapsed() < limit {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("{what} never listened on {port}");
}

pub struct Relay {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub starttls: u16,
    pub implicit: u16,
    pub plain: u16,
    pub password: String,
    /// The HTTP API's port, with [`Options::api`].
    pub api: Option<u16>,
    child: Option<Child>,
}

/// Extra TOML for the `[relay]` and `[limits]` tables.
#[derive(Default, Clone)]
pub struct Options {
    pub relay: String,
    pub limits: String,
    pub spool: Option<PathBuf>,
    /// Also serve the HTTP API (plain HTTP on a loopback port).
    pub api: bool,
    /// Also serve the policy socket ([`Relay::policy_socket`]), with these `[policy]` keys.
    pub policy: Option<String>,
}

impl Relay {
    pub fn start(options: Options) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-relay").tempdir().unwrap();
        let d = dir.path();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "relay.test".into()]).unwrap();
        std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let (starttls, implicit, plain) = (free_port(), free_port(), free_port());
        let api = options.api.then(free_port);
        let policy = match &options.policy {
            Some(keys) => format!("enabled = true\nsocket = \"{}/policy.sock\"\n{keys}", d.display()),
            None => "enabled = false".into(),
        };
        let api_table = match api {
            Some(port) => format!("[api]\nenabled = true\nlisten = \"127.0.0.1:{port}\"\n"),
            None => String::new(),
        };
        let spool = options.spool.clone().unwrap_or_else(|| d.join("spool"));
        let config = d.join("relaykey.toml");
        std::fs::write(
            &config,
            format!(
                r#"database = "{d}/relaykey.db"
log_level = "info"
[auth]
failure_delay = "100ms"
max_failure_delay = "200ms"
argon2_memory_kib = 1024
argon2_iterations = 1
[sasl]
enabled = false
[policy]
{policy}
{api_table}[limits]
{limits}
[relay]
enabled = true
hostname = "relay.test"
tls_cert = "{d}/cert.pem"
tls_key = "{d}/key.pem"
spool = "{spool}"
queue_scan_interval = "1s"
min_retry_interval = "1s"
max_retry_interval = "2s"
{relay}
[[relay.listen]]
address = "127.0.0.1:{starttls}"
tls = "starttls"
[[relay.listen]]
address = "127.0.0.1:{implicit}"
tls = "implicit"
[[relay.listen]]
address = "127.0.0.1:{plain}"
tls = "none"
"#,
                d = d.display(),
                spool = spool.display(),
                limits = options.limits,
                relay = options.relay,
            ),
        )
        .unwrap();
        let mut relay = Self { dir, config, starttls, implicit, plain, password: String::new(), api, child: None };
        relay.cli(&["account", "add", USER]);
        relay.password = relay.create_credential(&[]).1;
        relay.spawn();
        relay
    }

    /// Runs the CLI against this instance; panics unless it succeeds. Returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).env("RELAYKEY_CONFIG", &self.config).args(args).output().unwrap();
        assert!(out.status.success(), "relaykey {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Creates an SMTP credential (`extra`: e.g. `--username x --allow 127.0.0.5`); returns
    /// (username, password).
    pub fn create_credential(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["--json", "smtp", "create", USER];
        args.extend_from_slice(extra);
        let v: serde_json::Value = serde_json::from_str(&self.cli(&args)).unwrap();
        (v["username"].as_str().unwrap().to_string(), v["password"].as_str().unwrap().to_string())
    }

    pub fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.log_path()).unwrap();
        let child = Command::new(BIN)
            .env("RELAYKEY_CONFIG", &self.config)
            .env_remove("RUST_LOG")
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        for port in [self.starttls, self.implicit, self.plain].into_iter().chain(self.api) {
            wait_listening(port, Duration::from_secs(30), "relaykey");
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("relaykey.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }

    /// The policy socket, with [`Options::policy`].
    pub fn policy_socket(&self) -> PathBuf {
        self.dir.path().join("policy.sock")
    }

    pub fn spool_dir(&self) -> PathBuf {
        self.dir.path().join("spool").join("queue")
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on our own child's pid.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = c.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A plaintext SMTP client for dialogs swaks cannot script (pipelining, several messages).
pub struct Dialog {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Dialog {
    pub fn connect(port: u16) -> Self {
        Self::connect_from(port, None)
    }

    pub fn connect_from(port: u16, local: Option<&str>) -> Self {
        let stream = match local {
            Some(ip) => socket2_connect(ip, port),
            None => TcpStream::connect(("127.0.0.1", port)).unwrap(),
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
fn socket2_connect(local: &str, port: u16) -> TcpStream {
    // SAFETY: plain socket(2)/bind(2)/connect(2) on a descriptor we own, with sockaddr_in
    // structures built on the stack; the fd is handed to TcpStream, which closes it.
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
        TcpStream::from_raw_fd(fd)
    }
}

/// Runs swaks with `args`; returns (exit success, transcript).
pub fn swaks(args: &[&str]) -> (bool, String) {
    let out = Command::new("swaks").args(args).stdin(Stdio::null()).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}
