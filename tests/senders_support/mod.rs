//! A `relaykey serve` child serving the senders socketmap (and SASL) on a throwaway store,
//! the CLI against the same config, and Postfix's own `postmap` as the socketmap client.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_relaykey");

/// Are the programs the test needs installed? Under CI=true their absence is a failure.
pub fn available(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs
        .iter()
        .copied()
        .filter(|p| !["/usr/sbin", "/usr/bin"].iter().any(|d| Path::new(d).join(p).exists()))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required peer programs missing under CI: {missing:?}");
    }
    eprintln!("skipping: {missing:?} not installed");
    false
}

/// A throwaway config and store, for the CLI alone or with a running daemon.
pub struct Env {
    pub dir: tempfile::TempDir,
    pub config: PathBuf,
    pub senders_socket: PathBuf,
    pub sasl_socket: PathBuf,
}

impl Env {
    /// A config with cheap argon2, SASL and the socketmap in the temp dir; `extra` is appended
    /// to the `[senders]` table.
    pub fn new(extra: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-senders").tempdir().unwrap();
        // Postfix's smtpd runs as `postfix` and must reach the sockets.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let env = Self {
            config: dir.path().join("relaykey.toml"),
            senders_socket: dir.path().join("senders"),
            sasl_socket: dir.path().join("auth"),
            dir,
        };
        env.write_config(extra);
        env
    }

    pub fn write_config(&self, extra: &str) {
        let text = format!(
            "database = \"{db}\"\nlog_level = \"info,relaykey::senders=debug\"\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n\
             failure_delay = \"100ms\"\n[policy]\nenabled = false\n[sasl]\nsocket = \"{sasl}\"\nsocket_mode = \"0666\"\n\
             [senders]\nsocketmap = true\nsocket = \"{senders}\"\nsocket_mode = \"0666\"\n{extra}\n",
            db = self.dir.path().join("relaykey.db").display(),
            sasl = self.sasl_socket.display(),
            senders = self.senders_socket.display(),
        );
        std::fs::write(&self.config, text).unwrap();
    }

    pub fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.arg("--config").arg(&self.config).env_remove("RUST_LOG");
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run relaykey")
    }

    /// Runs the CLI; panics unless it succeeds.
    pub fn cli(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(out.status.success(), "relaykey {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        serde_json::from_str(&self.cli(&all)).expect("JSON output")
    }

    /// Runs a command that must be refused: exit 1, nothing on stdout, one line on stderr
    /// containing `want`.
    pub fn refused(&self, args: &[&str], want: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }

    /// Creates an account with one SMTP credential; returns its password.
    pub fn account(&self, email: &str) -> String {
        self.cli(&["account", "add", email]);
        self.json(&["smtp", "create", email])["password"].as_str().unwrap().to_string()
    }

    /// Starts `relaykey serve` on this config.
    pub fn serve(&self) -> Daemon {
        let log = self.dir.path().join("relaykey.log");
        let child = self
            .command()
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("spawn relaykey serve");
        let d = Daemon { child, log };
        for socket in [&self.senders_socket, &self.sasl_socket] {
            d.wait_for(socket);
        }
        d
    }

    /// `postmap -q KEY socketmap:unix:SOCKET:NAME`: (exit code, stdout).
    pub fn postmap(&self, key: &str, name: &str) -> (i32, String) {
        let (code, out, _) = self.postmap_with_errors(key, name);
        (code, out)
    }

    /// Like [`Env::postmap`], with stderr.
    pub fn postmap_with_errors(&self, key: &str, name: &str) -> (i32, String, String) {
        let out = self
            .postmap_command(name)
            .args(["-q", key])
            .arg(self.map(name))
            .stdin(Stdio::null())
            .output()
            .expect("run postmap");
        let stdout = String::from_utf8_lossy(&out.stdout).trim_end().to_string();
        (out.status.code().unwrap_or(-1), stdout, String::from_utf8_lossy(&out.stderr).into_owned())
    }

    /// `postmap -q - socketmap:… < keys`: every key over one connection; stdout is
    /// `key<TAB>value` for each key found.
    pub fn postmap_many(&self, keys: &[&str]) -> (i32, String) {
        use std::io::Write;
        let mut child = self
            .postmap_command("senders")
            .args(["-q", "-"])
            .arg(self.map("senders"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("run postmap");
        child.stdin.take().unwrap().write_all((keys.join("\n") + "\n").as_bytes()).unwrap();
        let out = child.wait_with_output().unwrap();
        (out.status.code().unwrap_or(-1), String::from_utf8_lossy(&out.stdout).into_owned())
    }

    fn map(&self, name: &str) -> String {
        format!("socketmap:unix:{}:{name}", self.senders_socket.display())
    }

    /// postmap reads main.cf from `-c DIR`; an empty one is enough for a socketmap query.
    fn postmap_command(&self, _name: &str) -> Command {
        let conf = self.dir.path().join("postmap-etc");
        if !conf.exists() {
            std::fs::create_dir(&conf).unwrap();
            std::fs::write(conf.join("main.cf"), "compatibility_level = 3.6\n").unwrap();
        }
        let mut c = Command::new("/usr/sbin/postmap");
        c.arg("-c").arg(conf);
        c
    }
}

pub struct Daemon {
    child: Child,
    log: PathBuf,
}

impl Daemon {
    fn wait_for(&self, socket: &Path) {
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

    /// Waits (bounded) until the log contains `needle`.
    pub fn wait_log(&self, needle: &str) {
        for _ in 0..1000 {
            if self.log().contains(needle) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        panic!("log never showed {needle:?}:\n{}", self.log());
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
