//! `relaykey backup` and `relaykey restore` over the CLI binary and the daemon's SASL socket:
//! a backup taken while 20 CLI processes create and remove secrets and the daemon serves
//! logins restores to a store where every secret that existed at backup time still logs in;
//! restore refuses a running daemon and files that cannot become the store.

#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use relaykey::sasl::codec::Reply;
use sasl_client::Client;
use support::daemon::{cli, cli_json, cli_output, sasl_only};

/// CLI processes writing at once while the backup runs.
const WRITERS: usize = 20;
/// Secrets a writer keeps at most (creations beyond it remove its oldest first): under the
/// 15-per-account caps, with room for both kinds.
const KEPT_PER_WRITER: usize = 6;

/// A secret a writer made: the login that proves it exists, and when its life began and ended
/// as seen from outside the CLI processes.
#[derive(Debug, Clone)]
struct Made {
    user: String,
    secret: String,
    created: Instant,
    removal_began: Option<Instant>,
    removed: Option<Instant>,
}

/// Runs the CLI and requires success. No retry on exit 75: a writer holds the store's write
/// lock only for its checks and its insert (the argon2 hash is made before), so 20 writers do
/// not wait past the busy timeout. Returns stdout.
fn cli_ok(config: &Path, args: &[&str]) -> String {
    let out = cli_output(config, args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "relaykey {args:?} failed ({:?}): {stderr}", out.status.code());
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn cli_json_ok(config: &Path, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    serde_json::from_str(&cli_ok(config, &all)).expect("JSON output")
}

/// One writer: its own account, creating SMTP credentials and API keys in turn and removing
/// its oldest, until told to stop (and at least `min_ops` operations).
fn writer(config: PathBuf, n: usize, stop: Arc<AtomicBool>, done_ops: Arc<AtomicUsize>, log: Arc<Mutex<Vec<Made>>>) {
    let email = format!("writer{n}@example.com");
    cli_ok(&config, &["account", "add", &email]);
    let mut mine: Vec<(usize, &'static str, i64)> = Vec::new(); // (index in log, kind, id)
    let mut ops = 0;
    while !stop.load(Ordering::SeqCst) || ops < 4 {
        if mine.len() >= KEPT_PER_WRITER {
            let (index, kind, id) = mine.remove(0);
            log.lock().unwrap()[index].removal_began = Some(Instant::now());
            cli_ok(&config, &[kind, "remove", &email, &id.to_string()]);
            log.lock().unwrap()[index].removed = Some(Instant::now());
        } else if ops % 2 == 0 {
            let username = format!("w{n}-{ops}@example.com");
            let made = cli_json_ok(&config, &["smtp", "create", &email, "--username", &username]);
            let created = Instant::now();
            let secret = made["password"].as_str().unwrap().to_string();
            let mut log = log.lock().unwrap();
            log.push(Made { user: username, secret, created, removal_began: None, removed: None });
            mine.push((log.len() - 1, "smtp", made["id"].as_i64().unwrap()));
        } else {
            let made = cli_json_ok(&config, &["apikey", "create", &email, "--name", &format!("k{ops}")]);
            let created = Instant::now();
            let secret = made["key"].as_str().unwrap().to_string();
            let mut log = log.lock().unwrap();
            // An API key with the smtp permission is a password for the account's address.
            log.push(Made { user: email.clone(), secret, created, removal_began: None, removed: None });
            mine.push((log.len() - 1, "apikey", made["id"].as_i64().unwrap()));
        }
        ops += 1;
        done_ops.fetch_add(1, Ordering::SeqCst);
    }
}

async fn logs_in(socket: &Path, id: u32, user: &str, secret: &str) -> bool {
    let mut c = Client::connect(socket).await.expect("connect to the SASL socket");
    matches!(c.plain(id, user, secret, None).await, Reply::Ok { .. })
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn integrity(path: &Path) -> String {
    let conn = rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
    conn.query_row("PRAGMA integrity_check", [], |r| r.get(0)).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_under_load_restores_every_secret_that_existed() {
    // Failed logins are expected below (removed secrets); their delay only slows the test.
    let mut rk = sasl_only("").table("auth", "failure_delay = \"1ms\"\nmax_failure_delay = \"1ms\"").start();
    let socket = rk.sasl_socket();
    let config = rk.config_path().to_path_buf();
    let (steady_pw, _) = rk.account_with_secrets("steady@example.com");

    // Logins go on through the whole run, and every one of them succeeds.
    let stop_logins = Arc::new(AtomicBool::new(false));
    let logins = {
        let (socket, stop, pw) = (socket.clone(), stop_logins.clone(), steady_pw.clone());
        tokio::spawn(async move {
            let mut c = Client::connect(&socket).await.unwrap();
            let mut n = 0u32;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let reply = c.plain(n, "steady@example.com", &pw, None).await;
                assert!(matches!(reply, Reply::Ok { .. }), "login {n} during the load: {reply:?}");
            }
            n
        })
    };

    let stop = Arc::new(AtomicBool::new(false));
    let done_ops = Arc::new(AtomicUsize::new(0));
    let made = Arc::new(Mutex::new(Vec::new()));
    let writers: Vec<_> = (0..WRITERS)
        .map(|n| {
            let (config, stop, done_ops, made) = (config.clone(), stop.clone(), done_ops.clone(), made.clone());
            std::thread::spawn(move || writer(config, n, stop, done_ops, made))
        })
        .collect();
    // Back up once the writers are well under way (each has had time to create and remove),
    // while they go on.
    while done_ops.load(Ordering::SeqCst) < WRITERS * (KEPT_PER_WRITER + 2) {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let backup = rk.dir().join("backups/relaykey-backup.db");
    std::fs::create_dir_all(backup.parent().unwrap()).unwrap();
    let began = Instant::now();
    let ops_before = done_ops.load(Ordering::SeqCst);
    let out = cli_output(&config, &["backup", backup.to_str().unwrap()]);
    let ended = Instant::now();
    assert!(out.status.success(), "backup failed: {}", String::from_utf8_lossy(&out.stderr));
    stop.store(true, Ordering::SeqCst);
    for w in writers {
        w.join().expect("a writer failed");
    }
    stop_logins.store(true, Ordering::SeqCst);
    let logins_done = logins.await.expect("a login failed during the load");
    assert!(logins_done > 0);
    assert!(done_ops.load(Ordering::SeqCst) > ops_before, "no writer wrote after the backup began");

    assert_eq!(mode(&backup), 0o600, "the backup holds every hash: owner only");
    assert_eq!(integrity(&backup), "ok");
    let leftovers: Vec<_> =
        std::fs::read_dir(backup.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "temporary files left beside the backup: {leftovers:?}");

    // A secret made after the backup, to tell the restored store from the live one.
    let late = rk.cli_json(&["smtp", "create", "steady@example.com", "--username", "late@example.com"]);
    let late_pw = late["password"].as_str().unwrap().to_string();
    assert!(logs_in(&socket, 1, "late@example.com", &late_pw).await);

    // Refused while the daemon runs, and the store is untouched.
    let refused = cli_output(&config, &["restore", backup.to_str().unwrap()]);
    assert!(!refused.status.success(), "restore ran under a live daemon");
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("daemon is using"), "unclear refusal: {stderr}");
    assert!(logs_in(&socket, 2, "late@example.com", &late_pw).await);

    rk.signal(libc::SIGTERM);
    assert!(rk.wait_exit().success(), "{}", rk.log());
    let restored = cli_json(&config, &["restore", backup.to_str().unwrap()]);
    let replaced = PathBuf::from(restored["replaced"].as_str().expect("the replaced store is kept"));
    assert!(replaced.exists() && replaced.starts_with(rk.dir()), "{restored}");
    assert_eq!(mode(&rk.dir().join("relaykey.db")), 0o600);
    rk.restart();

    let made = made.lock().unwrap().clone();
    let existed: Vec<&Made> =
        made.iter().filter(|m| m.created < began && m.removal_began.is_none_or(|r| r > ended)).collect();
    let gone: Vec<&Made> = made.iter().filter(|m| m.removed.is_some_and(|r| r < began)).collect();
    assert!(existed.len() >= WRITERS, "too few secrets existed at backup time: {}", existed.len());
    assert!(!gone.is_empty(), "no removal finished before the backup");
    for (i, m) in existed.iter().enumerate() {
        assert!(logs_in(&socket, i as u32 + 1, &m.user, &m.secret).await, "{} no longer logs in", m.user);
    }
    assert!(logs_in(&socket, 1, "steady@example.com", &steady_pw).await);
    // Removals that ended before the backup stay removed (the last few: failed logins are
    // throttled), and what came after it is not there.
    for m in gone.iter().rev().take(5) {
        assert!(!logs_in(&socket, 1, &m.user, &m.secret).await, "removed {} came back", m.user);
    }
    assert!(!logs_in(&socket, 1, "late@example.com", &late_pw).await, "the live store was kept");
}

/// A store with one account, its config, and a good backup of it, in a fresh directory.
struct Fixture {
    dir: tempfile::TempDir,
    config: PathBuf,
    backup: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relaykey.toml");
    std::fs::write(&config, format!("database = \"{}/store/relaykey.db\"\n", dir.path().display())).unwrap();
    cli(&config, &["account", "add", "kept@example.com"]);
    let backup = dir.path().join("good.db");
    cli(&config, &["backup", backup.to_str().unwrap()]);
    Fixture { dir, config, backup }
}

impl Fixture {
    fn store_dir(&self) -> PathBuf {
        self.dir.path().join("store")
    }

    /// Restores `file`, expecting one refusal line containing `reason`, and checks that the
    /// store is as it was, with nothing left beside it.
    fn refuses(&self, file: &Path, reason: &str) {
        let before: Vec<_> = std::fs::read_dir(self.store_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        let out = cli_output(&self.config, &["restore", file.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "restored {}", file.display());
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(reason), "expected {reason:?}: {stderr}");
        let mut after: Vec<_> = std::fs::read_dir(self.store_dir()).unwrap().map(|e| e.unwrap().file_name()).collect();
        // The lock file is made by the first restore; it holds nothing.
        after.retain(|n| n != "relaykey.db.lock");
        let mut before = before;
        before.retain(|n| n != "relaykey.db.lock");
        before.sort();
        after.sort();
        assert_eq!(after, before, "restore of {} left files", file.display());
        assert!(cli(&self.config, &["account", "list"]).contains("kept@example.com"));
    }
}

#[test]
fn restore_refuses_files_that_cannot_become_the_store() {
    let f = fixture();
    let dir = f.dir.path();

    let text = dir.join("notes.txt");
    std::fs::write(&text, "not a database\n").unwrap();
    f.refuses(&text, "is not a SQLite database");

    let foreign = dir.join("foreign.db");
    rusqlite::Connection::open(&foreign)
        .unwrap()
        .execute_batch("CREATE TABLE t (x); INSERT INTO t VALUES (1);")
        .unwrap();
    f.refuses(&foreign, "not a relaykey store");

    let newer = dir.join("newer.db");
    std::fs::copy(&f.backup, &newer).unwrap();
    let conn = rusqlite::Connection::open(&newer).unwrap();
    conn.pragma_update(None, "user_version", 9999).unwrap();
    drop(conn);
    f.refuses(&newer, "schema version 9999, newer than this relaykey");

    // Damage a table page (every page after the first holds tables or indexes).
    let corrupt = dir.join("corrupt.db");
    let mut bytes = std::fs::read(&f.backup).unwrap();
    let page = u16::from_be_bytes([bytes[16], bytes[17]]) as usize;
    assert!(bytes.len() >= 3 * page, "backup too small to damage: {}", bytes.len());
    bytes[page..3 * page].iter_mut().enumerate().for_each(|(i, b)| *b = (i * 7) as u8);
    std::fs::write(&corrupt, bytes).unwrap();
    let out = cli_output(&f.config, &["restore", corrupt.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("integrity check") || stderr.contains("malformed") || stderr.contains("not a SQLite"),
        "{stderr}"
    );
    f.refuses(&corrupt, "corrupt.db");

    // The good one restores; the old store is kept beside it, and the data is the backup's.
    // The restored file takes the owner of the one it replaces (the packaged daemon's user).
    cli(&f.config, &["account", "add", "later@example.com"]);
    let store = f.store_dir().join("relaykey.db");
    std::os::unix::fs::chown(&store, Some(65534), Some(65534)).unwrap();
    let out = cli(&f.config, &["restore", f.backup.to_str().unwrap()]);
    assert!(out.contains("restored"), "{out}");
    let meta = std::fs::metadata(&store).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((meta.uid(), meta.gid(), meta.mode() & 0o7777), (65534, 65534, 0o600));
    let list = cli(&f.config, &["account", "list"]);
    assert!(list.contains("kept@example.com") && !list.contains("later@example.com"), "{list}");
    let kept: Vec<String> = std::fs::read_dir(f.store_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("relaykey.db.replaced-"))
        .collect();
    assert!(kept.iter().any(|n| !n.ends_with("-wal") && !n.ends_with("-shm")), "{kept:?}");
    let replaced = f.store_dir().join(kept.iter().find(|n| !n.ends_with("-wal") && !n.ends_with("-shm")).unwrap());
    let old = format!("database = \"{}\"\n", replaced.display());
    let old_config = dir.join("old.toml");
    std::fs::write(&old_config, old).unwrap();
    assert!(cli(&old_config, &["account", "list"]).contains("later@example.com"), "the replaced store lost data");
}

#[test]
fn backup_refuses_to_replace_a_file_unless_forced() {
    let f = fixture();
    assert_eq!(mode(&f.backup), 0o600);
    let out = cli_output(&f.config, &["backup", f.backup.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("exists; use --force"));
    cli(&f.config, &["account", "add", "second@example.com"]);
    cli(&f.config, &["backup", "--force", f.backup.to_str().unwrap()]);
    assert_eq!(mode(&f.backup), 0o600);
    assert_eq!(integrity(&f.backup), "ok");
    let copy = format!("database = \"{}\"\n", f.backup.display());
    let copy_config = f.dir.path().join("copy.toml");
    std::fs::write(&copy_config, copy).unwrap();
    assert!(cli(&copy_config, &["account", "list"]).contains("second@example.com"));

    let missing = f.dir.path().join("none.toml");
    std::fs::write(&missing, format!("database = \"{}/nothing/relaykey.db\"\n", f.dir.path().display())).unwrap();
    let out = cli_output(&missing, &["backup", f.dir.path().join("x.db").to_str().unwrap()]);
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stderr).contains("no database at"));
}
