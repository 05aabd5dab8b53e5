//! The one way to run `relaykey serve` in a test: [`serve()`] gives a builder over a fresh,
//! world-traversable temporary directory holding the config, the store and the Unix sockets;
//! TOML fragments override the base config (merged table by table, a later value wins).
//! [`ServeBuilder::start`] returns once the daemon said `READY=1` on a notify socket the test
//! owns (the daemon sends it when every listener accepts), the daemon's stdout and stderr go
//! to `relaykey.log` in that directory, and dropping the [`Daemon`] stops it.

use std::ffi::OsString;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_relaykey");

/// Deadline for events that normally take milliseconds; only a hang reaches it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Runs the relaykey CLI on `config`; panics unless it succeeds. Returns stdout.
pub fn cli(config: &Path, args: &[&str]) -> String {
    let out = cli_output(config, args);
    assert!(out.status.success(), "relaykey {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Runs the relaykey CLI on `config` with `--json`; returns the parsed output.
pub fn cli_json(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli(config, &all)).expect("JSON output")
}

/// Runs the relaykey CLI on `config`, whatever its outcome.
pub fn cli_output(config: &Path, args: &[&str]) -> Output {
    Command::new(BIN).arg("--config").arg(config).args(args).stdin(Stdio::null()).output().expect("run relaykey")
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
        self.socket.set_read_timeout(Some(patience.max(Duration::from_millis(1)))).unwrap();
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

    /// Throws away whatever is queued (a restarted daemon's READY=1 must be its own).
    fn drain(&self) {
        while self.next(Duration::from_millis(1)).is_some() {}
    }
}

/// A `relaykey serve` to be started; see the module documentation.
#[must_use]
pub struct ServeBuilder {
    dir: tempfile::TempDir,
    config: toml::Table,
    env: Vec<(OsString, OsString)>,
    launcher: Vec<OsString>,
}

/// Starts describing a `relaykey serve`: store, SASL socket (`sasl.sock`) and policy socket
/// (`policy.sock`) in its own directory, cheap argon2, logging at info. The store is
/// `relaykey.db` in that directory, or under `RELAYKEY_TEST_STORE=postgresql` a fresh database
/// on the test binary's PostgreSQL server ([`super::postgres::test_database`]);
/// [`ServeBuilder::database`] names another.
pub fn serve() -> ServeBuilder {
    let dir = tempfile::Builder::new().prefix("relaykey-serve").tempdir().unwrap();
    // Postfix (user postfix) and a daemon that dropped root must reach the sockets.
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let database = toml::Value::String(super::postgres::test_database(dir.path()));
    let d = dir.path().display();
    let base = format!(
        "database = {database}\nlog_level = \"info\"\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
         [sasl]\nsocket = \"{d}/sasl.sock\"\n[policy]\nsocket = \"{d}/policy.sock\"\n"
    );
    let builder = ServeBuilder { dir, config: toml::Table::new(), env: Vec::new(), launcher: Vec::new() };
    builder.toml(&base)
}

/// `relaykey serve` with only the SASL front end, a short failure delay, and a socket anyone
/// may connect to (mode 0666) unless `sasl` (keys of `[sasl]`) says otherwise.
pub fn sasl_only(sasl: &str) -> ServeBuilder {
    serve()
        .toml(
            "[auth]\nfailure_delay = \"100ms\"\nmax_failure_delay = \"8s\"\n[policy]\nenabled = false\n\
             [sasl]\nsocket_mode = \"0666\"\n",
        )
        .table("sasl", sasl)
}

impl ServeBuilder {
    /// Merges a TOML fragment into the config: tables merge key by key, a value replaces.
    pub fn toml(mut self, fragment: &str) -> Self {
        let overrides: toml::Table =
            fragment.parse().unwrap_or_else(|e| panic!("test config fragment is not TOML: {e}\n{fragment}"));
        merge(&mut self.config, overrides);
        self.write_config();
        self
    }

    /// Merges `fragment` as the body of `[table]`: its keys before any header belong to `table`.
    pub fn table(self, table: &str, fragment: &str) -> Self {
        self.toml(&format!("[{table}]\n{fragment}"))
    }

    /// The store: an SQLite file or a `postgresql://` URL (two daemons on one database).
    pub fn database(self, database: &str) -> Self {
        self.toml(&format!("database = {}\n", toml::Value::String(database.to_string())))
    }

    /// An environment variable for the daemon (the harness clears systemd's and `RUST_LOG`).
    pub fn env(mut self, name: impl Into<OsString>, value: impl Into<OsString>) -> Self {
        self.env.push((name.into(), value.into()));
        self
    }

    /// Runs the daemon under `program` (e.g. `systemd-socket-activate -l …`): the command is
    /// `program args… relaykey --config FILE serve`.
    pub fn launcher<S: Into<OsString>>(mut self, program_and_args: impl IntoIterator<Item = S>) -> Self {
        self.launcher = program_and_args.into_iter().map(Into::into).collect();
        self
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> PathBuf {
        self.dir.path().join("relaykey.toml")
    }

    /// Where the daemon's stdout and stderr go (created, or appended to, at spawn).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("relaykey.log")
    }

    /// The path the notify socket will have (for a launcher that must pass it on).
    pub fn notify_path(&self) -> PathBuf {
        self.dir.path().join("notify")
    }

    /// The socket of front end `name` (`sasl`, `policy`) as configured.
    pub fn socket(&self, name: &str) -> PathBuf {
        socket_of(&self.config, name)
    }

    /// Spawns the daemon and waits for `READY=1`; panics with its log if it exits first.
    pub fn start(self) -> Daemon {
        let daemon = self.spawn();
        daemon.wait_ready();
        daemon
    }

    /// Spawns the daemon without waiting (a test of its startup reads `daemon.notify` itself).
    pub fn spawn(self) -> Daemon {
        let notify = NotifySocket::bind(self.dir.path());
        let config_path = self.config_path();
        let log = self.log_path();
        let mut daemon = Daemon {
            child: None,
            notify,
            config_path,
            log,
            config: self.config,
            env: self.env,
            launcher: self.launcher,
            dir: self.dir,
        };
        daemon.spawn_child();
        daemon
    }

    fn write_config(&self) {
        std::fs::write(self.config_path(), toml::to_string(&self.config).unwrap()).unwrap();
    }
}

fn merge(into: &mut toml::Table, from: toml::Table) {
    for (key, value) in from {
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(more)) => merge(existing, more),
            (_, value) => {
                into.insert(key, value);
            }
        }
    }
}

fn socket_of(config: &toml::Table, name: &str) -> PathBuf {
    let socket = config.get(name).and_then(|t| t.get("socket")).and_then(|s| s.as_str());
    PathBuf::from(socket.unwrap_or_else(|| panic!("no [{name}] socket in the test config")))
}

/// A running (or exited) `relaykey serve`. Dropping it sends SIGTERM, then SIGKILL if the
/// daemon has not exited after a while.
pub struct Daemon {
    dir: tempfile::TempDir,
    config_path: PathBuf,
    config: toml::Table,
    env: Vec<(OsString, OsString)>,
    launcher: Vec<OsString>,
    log: PathBuf,
    /// Where the daemon sends READY=1, WATCHDOG=1, STATUS=…, as to systemd.
    pub notify: NotifySocket,
    child: Option<Child>,
}

impl Daemon {
    fn spawn_child(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log).unwrap();
        let mut cmd = match self.launcher.split_first() {
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(BIN);
                cmd
            }
            None => Command::new(BIN),
        };
        cmd.arg("--config").arg(&self.config_path).arg("serve");
        for name in ["JOURNAL_STREAM", "WATCHDOG_USEC", "WATCHDOG_PID", "LISTEN_FDS", "LISTEN_PID", "RUST_LOG"] {
            cmd.env_remove(name);
        }
        cmd.env("NOTIFY_SOCKET", &self.notify.path);
        cmd.envs(self.env.iter().map(|(name, value)| (name, value)));
        cmd.stdin(Stdio::null()).stdout(log.try_clone().unwrap()).stderr(log);
        self.child = Some(cmd.spawn().expect("spawn relaykey serve"));
    }

    fn child(&mut self) -> &mut Child {
        self.child.as_mut().expect("the daemon was started")
    }

    /// Waits for `READY=1`; panics with the log if the daemon exits first.
    pub fn wait_ready(&self) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(lines) = self.notify.next(Duration::from_millis(200))
                && lines.iter().any(|l| l == "READY=1")
            {
                return;
            }
            assert!(!self.has_exited(), "relaykey exited before READY=1; log:\n{}", self.log());
            assert!(Instant::now() < deadline, "relaykey never became ready; log:\n{}", self.log());
        }
    }

    /// Has the process ended? (Peeks without reaping, so `&self` is enough.)
    pub fn has_exited(&self) -> bool {
        let Some(child) = &self.child else { return true };
        // SAFETY: waitid with WNOWAIT on our own child only reads its state into a zeroed
        // siginfo_t; si_pid stays 0 while the child runs.
        unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            let flags = libc::WEXITED | libc::WNOHANG | libc::WNOWAIT;
            libc::waitid(libc::P_PID, child.id(), &mut info, flags) != 0 || info.si_pid() != 0
        }
    }

    /// Kills the daemon with SIGKILL: no chance to flush or clean up.
    pub fn kill9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the daemon again on the same config, store and log, and waits for READY=1.
    pub fn restart(&mut self) {
        assert!(self.child.is_none() || self.has_exited(), "restart while the daemon runs");
        self.child = None;
        self.notify.drain();
        self.spawn_child();
        self.wait_ready();
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("the daemon was started").id()
    }

    /// Sends `signal` to the daemon.
    pub fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on the pid of our own child.
        assert_eq!(unsafe { libc::kill(self.pid() as libc::pid_t, signal) }, 0);
    }

    /// Waits for the process to end and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(status) = self.child().try_wait().unwrap() {
                return status;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("relaykey did not exit; log:\n{}", self.log());
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    pub fn config_path(&self) -> &Path {
        &self.config_path
    }

    /// The socket of front end `name` (`sasl`, `policy`) as configured.
    pub fn socket(&self, name: &str) -> PathBuf {
        socket_of(&self.config, name)
    }

    pub fn sasl_socket(&self) -> PathBuf {
        self.socket("sasl")
    }

    /// Writes the config the daemon started with, plus `fragment` (before a SIGHUP).
    pub fn rewrite_config(&self, fragment: &str) {
        let mut config = self.config.clone();
        merge(&mut config, fragment.parse().expect("TOML fragment"));
        std::fs::write(&self.config_path, toml::to_string(&config).unwrap()).unwrap();
    }

    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// Everything the daemon wrote to stdout and stderr, over all its runs.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn log_lines(&self) -> Vec<String> {
        self.log().lines().map(str::to_string).collect()
    }

    /// Waits for a log line containing `needle`; returns it.
    pub fn wait_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if let Some(line) = self.log().lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("no log line with {needle:?}; log:\n{}", self.log());
    }

    /// Waits until the log contains `needle` `count` times.
    pub fn wait_log_count(&self, needle: &str, count: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.log().matches(needle).count() < count {
            assert!(Instant::now() < deadline, "log never showed {needle:?} {count} times:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The front ends the daemon reported when ready (`front_ends=sasl,policy`).
    pub fn front_ends(&self) -> Vec<String> {
        let line = self.wait_log(" ready");
        let Some(rest) = line.split("front_ends=").nth(1) else { return Vec::new() };
        let list = rest.split(' ').next().unwrap_or("").trim_matches('"');
        list.split(',').filter(|s| !s.is_empty()).map(str::to_string).collect()
    }

    /// Runs the CLI on this daemon's config; panics unless it succeeds. Returns stdout.
    pub fn cli(&self, args: &[&str]) -> String {
        cli(&self.config_path, args)
    }

    pub fn cli_json(&self, args: &[&str]) -> serde_json::Value {
        cli_json(&self.config_path, args)
    }

    pub fn cli_output(&self, args: &[&str]) -> Output {
        cli_output(&self.config_path, args)
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
        let socket = self.sasl_socket();
        let path = socket.to_string_lossy();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split_whitespace().collect();
                // Netid Recv-Q Send-Q Local-Address Port Peer-Address Port (the state filter drops State)
                let pos = f.iter().position(|x| *x == path)?;
                f.get(pos + 1)?.parse().ok()
            })
            .collect()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let Some(mut child) = self.child.take() else { return };
        if matches!(child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child, which has not been reaped.
            unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
            let deadline = Instant::now() + Duration::from_secs(10);
            while matches!(child.try_wait(), Ok(None)) && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
        }
        let _ = child.wait();
        if std::thread::panicking() {
            eprintln!("--- relaykey log ({}) ---\n{}", self.log.display(), self.log());
        }
    }
}
