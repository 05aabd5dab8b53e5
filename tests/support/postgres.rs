//! A throwaway PostgreSQL 15 server for tests: its own cluster (`initdb` as user `postgres`),
//! listening only on a Unix socket in a private directory, with a socket name (port) no other
//! test server uses, so it never meets the system cluster or another test's server.
//!
//! [`PgServer::start`] gives a server owned by one test (it may stop and restart it);
//! [`PgServer::shared`] gives one server per test binary, for tests that only need a fresh
//! database ([`PgServer::create_database`]).
//!
//! Cleanup does not rely on `Drop` alone, since a static is never dropped and a test process
//! may be killed: each server has a janitor, a small shell process reading a pipe whose only
//! writer is this test process. When the pipe closes (the server is dropped, or the process
//! ends in any way) the janitor stops the server and removes its directory. Directories left
//! by a test process that died before its janitor could run are removed at the next start.

use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, Once, OnceLock};

use super::{peers, ports};

/// Where Debian's `postgresql-15` puts its programs (not on PATH).
pub const BIN_DIR: &str = "/usr/lib/postgresql/15/bin";

/// Every test server's directory lives under this one, named `<test pid>-<sequence>`.
const ROOT: &str = "/tmp/relaykey-test-pg";

/// The peer check for a test that needs PostgreSQL 15: root (to run it as `postgres`), the
/// `postgres` user, `runuser`, and Debian's PostgreSQL 15 programs.
pub fn needs_postgres() -> bool {
    peers::needs()
        .programs(&["runuser"])
        .root()
        .condition(Path::new(BIN_DIR).join("initdb").exists(), "PostgreSQL 15")
        .condition(postgres_ids().is_some(), "the postgres user")
        .met()
}

/// The environment variable that moves the store, authenticator, CLI and API suites onto
/// PostgreSQL: `RELAYKEY_TEST_STORE=postgresql` (unset or `sqlite`: the SQLite file).
pub const STORE_VARIABLE: &str = "RELAYKEY_TEST_STORE";

/// Do the tests of this run use PostgreSQL for their store? Panics on a value that names
/// neither backend, so that a typo cannot make a run test SQLite twice.
pub fn on_postgres() -> bool {
    match std::env::var(STORE_VARIABLE).as_deref() {
        Err(_) | Ok("" | "sqlite") => false,
        Ok("postgresql") => true,
        Ok(other) => panic!("{STORE_VARIABLE}={other:?}: expected \"postgresql\" or \"sqlite\""),
    }
}

/// The `database` of a test whose files live in `dir`: the SQLite file `dir/relaykey.db`, or
/// under `RELAYKEY_TEST_STORE=postgresql` a fresh database on the [`PgServer::shared`] server.
pub fn test_database(dir: &Path) -> String {
    if on_postgres() {
        assert!(needs_postgres(), "{STORE_VARIABLE}=postgresql, but PostgreSQL 15 cannot run here");
        PgServer::shared().create_database()
    } else {
        dir.join("relaykey.db").display().to_string()
    }
}

/// A PostgreSQL 15 server of this test process; see the module documentation.
pub struct PgServer {
    dir: PathBuf,
    port: u16,
    databases: AtomicUsize,
    /// The write end of the janitor's pipe (closing it stops the server and removes `dir`).
    janitor: Mutex<Option<(Child, ChildStdin)>>,
}

impl PgServer {
    /// Creates a cluster in a fresh private directory and starts it. The caller has checked
    /// [`needs_postgres`].
    pub fn start() -> PgServer {
        static STALE: Once = Once::new();
        STALE.call_once(remove_stale_servers);
        let dir = fresh_dir();
        let janitor = spawn_janitor(&dir);
        let server = PgServer {
            dir,
            port: ports::free_port(),
            databases: AtomicUsize::new(0),
            janitor: Mutex::new(Some(janitor)),
        };
        let data = server.data_dir();
        let initdb = as_postgres(&format!("{BIN_DIR}/initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .expect("run initdb");
        assert!(initdb.status.success(), "initdb failed: {}", describe(&initdb));
        server.start_again();
        server
    }

    /// One server for the whole test binary, started on first use; every test takes its own
    /// database on it. Never stop it: other tests of the binary use it at the same time.
    pub fn shared() -> &'static PgServer {
        static SHARED: OnceLock<PgServer> = OnceLock::new();
        SHARED.get_or_init(PgServer::start)
    }

    /// The socket directory (`host=` in a connection URL).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    /// The port, which here only names the socket file (`.s.PGSQL.<port>`).
    pub fn port(&self) -> u16 {
        self.port
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The server's own log (startup, shutdown, errors).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }

    /// The connection URL of database `name` as superuser `postgres` over the socket.
    pub fn url(&self, name: &str) -> String {
        format!("postgresql://postgres@/{name}?host={}&port={}", self.dir.display(), self.port)
    }

    /// Creates an empty database with a name no other test used on this server; returns its
    /// connection URL.
    pub fn create_database(&self) -> String {
        let name = format!("relaykey_{}", self.databases.fetch_add(1, Ordering::Relaxed));
        self.psql("postgres", &format!("CREATE DATABASE {name}"));
        self.url(&name)
    }

    /// Runs `sql` with `psql` on `db` (a database name or a connection URL); returns its output,
    /// one row a line, columns separated by `|`, without headers. Panics when psql fails.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        self.try_psql(db, sql).unwrap_or_else(|e| panic!("psql {sql:?} failed: {e}\nserver log:\n{}", self.log()))
    }

    /// As [`PgServer::psql`], but returns psql's error (e.g. while the server is stopped).
    pub fn try_psql(&self, db: &str, sql: &str) -> Result<String, String> {
        let mut cmd = Command::new(format!("{BIN_DIR}/psql"));
        cmd.args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql]);
        if db.contains("://") {
            cmd.args(["-d", db]);
        } else {
            cmd.args(["-U", "postgres", "-p", &self.port.to_string(), "-d", db]).arg("-h").arg(&self.dir);
        }
        let out = cmd.stdin(Stdio::null()).output().map_err(|e| format!("cannot run psql: {e}"))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim_end().to_string())
        } else {
            Err(describe(&out))
        }
    }

    /// Everything database `db` (a name or a connection URL) holds, as `pg_dump` writes it
    /// (schema and rows as SQL text), to look for what must not be stored.
    pub fn dump(&self, db: &str) -> String {
        let mut cmd = Command::new(format!("{BIN_DIR}/pg_dump"));
        if db.contains("://") {
            cmd.args(["-d", db]);
        } else {
            cmd.args(["-U", "postgres", "-p", &self.port.to_string(), "-d", db]).arg("-h").arg(&self.dir);
        }
        let out = cmd.stdin(Stdio::null()).output().expect("run pg_dump");
        assert!(out.status.success(), "pg_dump failed: {}", describe(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Stops the server as a crash would (`pg_ctl stop -m immediate`: no checkpoint, clients
    /// cut off). Never call it on the [`PgServer::shared`] server.
    pub fn stop_immediate(&self) {
        let out = self.pg_ctl(&["-m", "immediate", "-w", "stop"]);
        assert!(out.status.success(), "pg_ctl stop failed: {}\nserver log:\n{}", describe(&out), self.log());
    }

    /// Starts the server on its data directory, socket directory and port (at creation, or
    /// after [`PgServer::stop_immediate`]); returns once it accepts connections.
    pub fn start_again(&self) {
        // fsync off: the data only has to survive the server process, not the machine (an
        // immediate stop leaves the kernel's buffers). synchronous_commit stays on, so that a
        // commit reported to a client is in the WAL before an immediate stop can come.
        let options = format!(
            "-c listen_addresses='' -k {} -p {} -c fsync=off -c full_page_writes=off -c max_connections=300",
            self.dir.display(),
            self.port
        );
        let log = self.dir.join("log");
        let out = self.pg_ctl(&["-l", &log.to_string_lossy(), "-w", "-t", "120", "-o", &options, "start"]);
        assert!(out.status.success(), "pg_ctl start failed: {}\nserver log:\n{}", describe(&out), self.log());
    }

    /// Is the server accepting connections?
    pub fn is_running(&self) -> bool {
        Command::new(format!("{BIN_DIR}/pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(&self.dir)
            .args(["-p", &self.port.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn pg_ctl(&self, args: &[&str]) -> Output {
        // Output goes to the log (-l) or nowhere: pg_ctl's postmaster must not hold our pipes.
        as_postgres(&format!("{BIN_DIR}/pg_ctl"))
            .arg("-D")
            .arg(self.data_dir())
            .args(args)
            .stdin(Stdio::null())
            .output()
            .expect("run pg_ctl")
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        // Closing the pipe tells the janitor to stop the server and remove the directory;
        // waiting for it keeps the directory's end inside the test.
        let janitor = self.janitor.get_mut().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((mut child, stdin)) = janitor {
            drop(stdin);
            let _ = child.wait();
        }
    }
}

/// A command run as user `postgres` (initdb and the server refuse root).
fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--", program]);
    cmd
}

/// The uid and gid of user `postgres`.
fn postgres_ids() -> Option<(u32, u32)> {
    let passwd = std::fs::read_to_string("/etc/passwd").ok()?;
    let line = passwd.lines().find(|l| l.starts_with("postgres:"))?;
    let fields: Vec<&str> = line.split(':').collect();
    Some((fields.get(2)?.parse().ok()?, fields.get(3)?.parse().ok()?))
}

/// A new directory `ROOT/<pid>-<n>`, owned by `postgres`, that others may traverse (a daemon
/// that dropped root must reach the socket in it).
fn fresh_dir() -> PathBuf {
    static SEQUENCE: AtomicUsize = AtomicUsize::new(0);
    let root = Path::new(ROOT);
    std::fs::create_dir_all(root).expect("create the test servers' directory");
    let dir = root.join(format!("{}-{}", std::process::id(), SEQUENCE.fetch_add(1, Ordering::Relaxed)));
    // A directory of a dead process with our pid (pid reuse) is stale: start afresh.
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir(&dir).expect("create the server's directory");
    let (uid, gid) = postgres_ids().expect("the postgres user");
    std::os::unix::fs::chown(&dir, Some(uid), Some(gid)).expect("chown the server's directory");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).expect("chmod the server's directory");
    dir
}

/// The janitor of `dir`: waits for end of file on its stdin, then stops the server (if it
/// runs) and removes `dir`. It ignores the signals a terminal or a test runner sends to the
/// whole group, and has its own process group anyway, so that it outlives the test process.
fn spawn_janitor(dir: &Path) -> (Child, ChildStdin) {
    use std::os::unix::process::CommandExt;
    let script = r#"trap '' INT TERM HUP QUIT
cat >/dev/null
if [ -f "$1/data/postmaster.pid" ]; then
  runuser -u postgres -- "$2/pg_ctl" -D "$1/data" -m immediate -w stop >/dev/null 2>&1
fi
rm -rf -- "$1""#;
    let mut child = Command::new("sh")
        .args(["-c", script, "relaykey-test-pg-janitor"])
        .arg(dir)
        .arg(BIN_DIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("spawn the server's janitor");
    let stdin = child.stdin.take().expect("the janitor's stdin");
    (child, stdin)
}

/// Stops the servers and removes the directories of test processes that are gone without
/// their janitor having cleaned up (e.g. the machine lost power).
fn remove_stale_servers() {
    let Ok(entries) = std::fs::read_dir(ROOT) else { return };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().and_then(|n| n.split('-').next()).and_then(|p| p.parse::<i32>().ok()) else {
            continue;
        };
        if pid as u32 == std::process::id() || process_alive(pid) {
            continue;
        }
        let dir = entry.path();
        if dir.join("data/postmaster.pid").exists() {
            let _ = as_postgres(&format!("{BIN_DIR}/pg_ctl"))
                .arg("-D")
                .arg(dir.join("data"))
                .args(["-m", "immediate", "-w", "stop"])
                .stdin(Stdio::null())
                .output();
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

fn process_alive(pid: i32) -> bool {
    // SAFETY: kill(2) with signal 0 only checks that the process exists.
    unsafe { libc::kill(pid, 0) == 0 || *libc::__errno_location() == libc::EPERM }
}

fn describe(out: &Output) -> String {
    format!("{} {}{}", out.status, String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
