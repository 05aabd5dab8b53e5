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
        Self::start_with(extra, "100ms", |_| {})
    }

    /// Like [`Daemon::start`] with another `failure_delay` (≤ 8 s), running `before` with the
    /// socket path before the daemon starts.
    pub fn start_with(extra: &str, failure_delay: &str, before: impl FnOnce(&std::path::Path)) -> Self {
        Self::spawn(extra, failure_delay, false, before)
    }

    /// Like [`Daemon::start`] with the policy server on as well, at [`Daemon::policy_socket`].
    pub fn start_with_policy(extra: &str) -> Self {
        Self::spawn(extra, "100ms", true, |_| {})
    }

    /// The policy server's socket (when started with it).
    pub fn policy_socket(&self) -> PathBuf {
        self.dir.path().join("policy")
    }

    fn spawn(extra: &str, failure_delay: &str, policy: bool, before: impl FnOnce(&std::path::Path)) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-daemon").tempdir().unwrap();
        // Postfix's smtpd runs as `postfix` and must reach the socket.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let socket = dir.path().join("auth");
        let config = dir.path().join("relaykey.toml");
        let policy = policy.then(|| dir.path().join("policy"));
        write_config(&config, &dir.path().join("relaykey.db"), &socket, policy.as_deref(), extra, failure_delay);
        before(&socket);
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
        d.wait_ready(&d.socket);
        if let Some(policy) = &policy {
            d.wait_ready(policy);
        }
        d
    }

    /// Rewrites the config file with another `[sasl]` tail (for SIGHUP tests).
    pub fn rewrite_config(&self, extra: &str) {
        let policy = Some(self.policy_socket()).filter(|p| p.exists());
        write_config(
            &self.config,
            &self.dir.path().join("relaykey.db"),
            &self.socket,
            policy.as_deref(),
            extra,
            "100ms",
        );
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: signalling our own child by its pid.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits (bounded) until the log contains `needle` `count` times.
    pub fn wait_log(&self, needle: &str, count: usize) {
        for _ in 0..1000 {
            if self.log().matches(needle).count() >= count {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("log never showed {needle:?} {count} times:\n{}", self.log());
    }

    /// Waits for the daemon to exit (after SIGTERM) and returns its status.
    pub fn wait_exit(&mut self) -> std::process::ExitStatus {
        for _ in 0..1000 {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("relaykey did not exit; log:\n{}", self.log());
    }

    /// Runs a second `serve` on the same config, which must refuse to start.
    pub fn second_serve(&self) -> std::process::Output {
        Command::new(BIN).arg("--config").arg(&self.config).arg("serve").output().expect("run relaykey serve")
    }

    fn wait_ready(&self, socket: &std::path::Path) {
        for _ in 0..500 {
            if std::os::unix::net::UnixStream::connect(socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("relaykey never listened on {}; log:\n{}", socket.display(), self.log());
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

fn write_config(
    config: &std::path::Path,
    db: &std::path::Path,
    socket: &std::path::Path,
    policy: Option<&std::path::Path>,
    extra: &str,
    delay: &str,
) {
    let policy = match policy {
        Some(p) => format!("socket = \"{}\"\nsocket_mode = \"0666\"\ntcp_table = false", p.display()),
        None => "enabled = false".into(),
    };
    std::fs::write(
        config,
        format!(
            "database = \"{db}\"
log_level = \"info\"
[auth]
argon2_memory_kib = 1024
argon2_iterations = 1
failure_delay = \"{delay}\"
max_failure_delay = \"8s\"
[policy]
{policy}
[sasl]
socket = \"{socket}\"
{mode}{extra}
",
            db = db.display(),
            socket = socket.display(),
            mode = if extra.contains("socket_mode") { "" } else { "socket_mode = \"0666\"\n" },
        ),
    )
    .unwrap();
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
