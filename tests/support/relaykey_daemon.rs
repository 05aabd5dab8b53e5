//! `relaykey serve` as a child process on a throwaway config and store, plus the CLI against
//! the same config. Stopped with SIGTERM on drop.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_relaykey");

pub struct Daemon {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub socket: PathBuf,
    log: PathBuf,
    child: Child,
}

impl Daemon {
    /// Starts the daemon with cheap argon2 and a short failure delay; `extra` is appended to
    /// the `[sasl]` table. Returns once the socket accepts connections.
    pub fn start(extra: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-daemon").tempdir().unwrap();
        // Postfix's smtpd runs as `postfix` and must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("auth");
        let config = dir.path().join("relaykey.toml");
        std::fs::write(
            &config,
            format!(
                "database = \"{db}\"
log_level = \"info\"
[auth]
argon2_memory_kib = 1024
argon2_iterations = 1
failure_delay = \"100ms\"
max_failure_delay = \"400ms\"
[policy]
enabled = false
[sasl]
socket = \"{socket}\"
socket_mode = \"0666\"
{extra}
",
                db = dir.path().join("relaykey.db").display(),
                socket = socket.display(),
            ),
        )
        .unwrap();
        let log = dir.path().join("relaykey.log");
        let child = Command::new(BIN)
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn relaykey serve");
        let d = Self { dir, config, socket, log, child };
        d.wait_ready();
        d
    }

    fn wait_ready(&self) {
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relaykey never listened on {}; log:\n{}", self.socket.display(), self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs the CLI against this daemon's config; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = Command::new(BIN).arg("--config").arg(&self.config).args(args).output().expect("run relaykey");
        assert!(out.status.success(), "relaykey {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.cli(&all)).expect("JSON output")
    }

    /// Creates an account and returns (its first SMTP password, a full-access API key).
    pub fn account_with_secrets(&self, email: &str) -> (String, String) {
        self.cli(&["account", "add", email]);
        let smtp = self.cli_json(&["smtp", "create", email]);
        let key = self.cli_json(&["apikey", "create", email, "--name", "main"]);
        (smtp["password"].as_str().unwrap().into(), key["key"].as_str().unwrap().into())
    }

    /// Connections accepted on the SASL socket and still open, by server-side socket inode
    /// (`ss -x`), so a test can tell that the same connections survive.
    pub fn open_connections(&self) -> Vec<u64> {
        let out = Command::new("ss").args(["-xHn", "state", "connected"]).output().expect("run ss");
        let path = self.socket.to_string_lossy();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Netid State Recv-Q Send-Q Local-Address Port Peer-Address Port (state filter drops State)
                let pos = f.iter().position(|x| *x == path)?;
                f.get(pos + 1)?.parse().ok()
            })
            .collect()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}
