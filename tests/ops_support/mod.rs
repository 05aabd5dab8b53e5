//! Shared by the ops_* tests: a notify socket the test owns (as systemd's would be), a daemon
//! process with its stderr collected, and small readiness waits.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Deadline for events that normally take milliseconds; only a hang reaches it.
pub const PATIENCE: Duration = Duration::from_secs(20);

pub fn relaykey() -> &'static str {
    env!("CARGO_BIN_EXE_relaykey")
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Whether a test that needs `what` must fail (CI) or may skip (a local run) without it.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is required under CI=true");
    }
    eprintln!("skipping: {what} is not available");
    false
}

/// A world-readable temporary directory (the daemon may run as another user).
pub fn open_tempdir() -> tempfile::TempDir {
    let dir = tempfile::Builder::new().prefix("relaykey-ops-").tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    dir
}

/// The datagram socket systemd would own; `NOTIFY_SOCKET` points at it.
pub struct NotifySocket {
    pub path: PathBuf,
    socket: UnixDatagram,
}

impl NotifySocket {
    pub fn bind(dir: &Path) -> Self {
        let path = dir.join("notify");
        let socket = UnixDatagram::bind(&path).unwrap();
        // Reachable after the daemon drops root, as systemd's socket is.
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
        Self { path, socket }
    }

    /// The next datagram's lines, or `None` when nothing came before the deadline.
    pub fn next(&self, patience: Duration) -> Option<Vec<String>> {
        self.socket.set_read_timeout(Some(patience)).unwrap();
        let mut buf = [0u8; 4096];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(String::from_utf8_lossy(&buf[..n]).lines().map(str::to_string).collect())
    }

    /// Reads datagrams until one holds `line`; returns every line seen before it.
    pub fn wait_for(&self, line: &str) -> Vec<String> {
        let deadline = Instant::now() + PATIENCE;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(lines) = self.next(left) else { break };
            if lines.iter().any(|l| l == line) {
                return seen;
            }
            seen.extend(lines);
        }
        panic!("no {line} from the daemon within {PATIENCE:?}; saw {seen:?}");
    }
}

/// A running `relaykey serve` whose stderr is collected; killed when dropped.
pub struct Daemon {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Daemon {
    pub fn spawn(mut cmd: Command) -> Self {
        cmd.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::piped()).env_remove("JOURNAL_STREAM");
        let mut child = cmd.spawn().expect("cannot start relaykey");
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let pipe = child.stderr.take().unwrap();
        let sink = stderr.clone();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        Self { child, stderr, reader: Some(reader) }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill on the pid of our own child.
        assert_eq!(unsafe { libc::kill(self.pid() as libc::pid_t, signal) }, 0);
    }

    pub fn log(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits for the log line containing `needle`.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(l) = self.log().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("no log line with {needle:?}; log: {:#?}", self.log());
    }

    /// Waits for the process to end and returns its exit code.
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().unwrap() {
                // The pipe is closed now: collect the last lines.
                if let Some(reader) = self.reader.take() {
                    let _ = reader.join();
                }
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relaykey did not exit; log: {:#?}", self.log());
    }

    /// The front ends the daemon reported at READY (`front_ends=sasl,policy`).
    pub fn front_ends(&self) -> Vec<String> {
        let line = self.wait_log(" ready");
        let Some(rest) = line.split("front_ends=").nth(1) else { return Vec::new() };
        let list = rest.split(' ').next().unwrap_or("").trim_matches('"');
        list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config in `dir` with its database and both Postfix sockets inside `dir`, plus `extra`.
pub fn write_config(dir: &Path, extra: &str) -> PathBuf {
    let path = dir.join("relaykey.toml");
    let text = format!(
        "database = \"{db}\"\nlog_level = \"info\"\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
         [sasl]\nsocket = \"{dir}/sasl.sock\"\n[policy]\nsocket = \"{dir}/policy.sock\"\n{extra}\n",
        db = dir.join("relaykey.db").display(),
        dir = dir.display(),
    );
    std::fs::write(&path, text).unwrap();
    path
}

/// `/proc/PID/status` as (name, value) lines.
pub fn proc_status(pid: u32) -> Vec<(String, String)> {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap()
        .lines()
        .filter_map(|l| l.split_once(':').map(|(k, v)| (k.to_string(), v.trim().to_string())))
        .collect()
}

pub fn status_field(pid: u32, name: &str) -> String {
    proc_status(pid).into_iter().find(|(k, _)| k == name).map(|(_, v)| v).unwrap_or_default()
}

/// An account and an SMTP credential made with the CLI; returns (username, password).
pub fn smtp_credential(config: &Path) -> (String, String) {
    let run = |args: &[&str]| {
        let out = Command::new(relaykey()).arg("--config").arg(config).arg("--json").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    run(&["account", "add", "ops@example.com"]);
    let cred = run(&["smtp", "create", "ops@example.com"]);
    (cred["username"].as_str().unwrap().to_string(), cred["password"].as_str().unwrap().to_string())
}

/// Reads until the text received so far ends with `end`.
pub fn read_until(stream: &mut UnixStream, end: &str) -> String {
    let mut text = Vec::new();
    let mut byte = [0u8; 1];
    while !text.ends_with(end.as_bytes()) {
        let n = stream.read(&mut byte).unwrap();
        assert_eq!(n, 1, "connection closed after {:?}", String::from_utf8_lossy(&text));
        text.push(byte[0]);
    }
    String::from_utf8(text).unwrap()
}

/// Sends a Dovecot `AUTH` with PLAIN and returns the reply line.
pub fn auth_plain(stream: &mut UnixStream, id: u32, username: &str, password: &str) -> String {
    use base64::Engine;
    let resp = base64::engine::general_purpose::STANDARD.encode(format!("\0{username}\0{password}"));
    let line = format!("AUTH\t{id}\tPLAIN\tservice=smtp\trip=127.0.0.1\tresp={resp}\n");
    stream.write_all(line.as_bytes()).unwrap();
    read_until(stream, "\n")
}
