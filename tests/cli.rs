//! The `relaykey` binary as an operator uses it: JSON contracts, refusals (one line on stderr,
//! non-zero exit), the 15-item caps under concurrent processes, masking and rotation. Runs on
//! SQLite, or on PostgreSQL under `RELAYKEY_TEST_STORE=postgresql` (what only a file can show
//! stays on SQLite).

#[path = "support/test_store.rs"]
mod test_store;

use std::path::{Path, PathBuf};
use std::process::Output;

use assert_cmd::Command;
use serde_json::Value;

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    /// The `database` value: an SQLite file or a `postgresql://` URL.
    database: String,
}

impl Env {
    /// On the store of this run.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = test_store::test_database(dir.path());
        Self::on(dir, database)
    }

    /// On an SQLite file whatever the run, for what only a file can show.
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("relaykey.db").display().to_string();
        Self::on(dir, database)
    }

    fn on(dir: tempfile::TempDir, database: String) -> Self {
        let config = dir.path().join("relaykey.toml");
        std::fs::write(
            &config,
            format!("database = {database:?}\n[auth]\nargon2_memory_kib = 256\nargon2_iterations = 1\n"),
        )
        .unwrap();
        Self { dir, config, database }
    }

    /// The SQLite file ([`Env::sqlite`]).
    fn db(&self) -> PathBuf {
        assert!(!self.database.contains("://"), "an SQLite-only check on {}", self.database);
        PathBuf::from(&self.database)
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("relaykey").unwrap();
        c.env("RELAYKEY_CONFIG", &self.config).env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    /// Runs a command that must succeed and returns its JSON.
    fn json(&self, args: &[&str]) -> Value {
        let out = self.cmd().arg("--json").args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// Runs a command that must be refused with one line on stderr containing `want`.
    fn refused(&self, args: &[&str], want: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
        assert!(out.stdout.is_empty(), "{args:?} printed {:?}", String::from_utf8_lossy(&out.stdout));
    }
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort();
    k
}

#[test]
fn create_and_list_print_exactly_the_documented_json() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    let key = env.json(&[
        "apikey",
        "create",
        "ann@example.com",
        "--name",
        "ci",
        "--permission",
        "smtp",
        "--allow",
        "10.0.0.0/8",
    ]);
    assert_eq!(keys(&key), ["allow", "id", "key", "last5", "masked", "name", "permissions"]);
    let secret = key["key"].as_str().unwrap();
    assert_eq!(secret.len(), 96);
    assert!(secret.bytes().all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)));
    assert_eq!(key["last5"], secret[91..]);
    assert_eq!(key["masked"].as_str().unwrap(), format!("{}{}", "*".repeat(91), &secret[91..]));
    assert_eq!(key["permissions"], serde_json::json!(["smtp"]));
    assert_eq!(key["allow"], serde_json::json!(["10.0.0.0/8"]));

    let cred = env.json(&["smtp", "create", "ann@example.com"]);
    assert_eq!(keys(&cred), ["allow", "id", "last5", "masked", "password", "username"]);
    assert_eq!(cred["username"], "ann@example.com", "the first credential defaults to the account address");
    let password = cred["password"].as_str().unwrap();
    assert!(password.len() * 4 >= 128 && password.len() != 96);

    let list = env.json(&["apikey", "list", "ann@example.com"]);
    assert_eq!(keys(&list[0]), ["allow", "id", "last5", "masked", "name", "permissions"]);
    let list = env.json(&["smtp", "list", "ann@example.com"]);
    assert_eq!(keys(&list[0]), ["allow", "id", "last5", "masked", "username"]);
}

#[test]
fn no_secret_reaches_list_output_logs_or_the_database_files() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    let key = env.json(&["apikey", "create", "ann@example.com"]);
    let cred = env.json(&["smtp", "create", "ann@example.com"]);
    let secrets = [key["key"].as_str().unwrap().to_string(), cred["password"].as_str().unwrap().to_string()];
    let mut seen = Vec::new();
    for args in [
        &["apikey", "list", "ann@example.com"][..],
        &["--json", "apikey", "list", "ann@example.com"],
        &["smtp", "list", "ann@example.com"],
        &["--json", "smtp", "list", "ann@example.com"],
        &["account", "show", "ann@example.com"],
    ] {
        let out = env.cmd().env("RUST_LOG", "trace").args(args).output().unwrap();
        seen.extend(out.stdout);
        seen.extend(out.stderr);
    }
    for secret in &secrets {
        let out =
            env.cmd().env("RUST_LOG", "trace").args(["auth", "test", "ann@example.com", secret]).output().unwrap();
        assert!(out.status.success());
        seen.extend(out.stdout);
        seen.extend(out.stderr);
    }
    let seen = String::from_utf8_lossy(&seen);
    for secret in &secrets {
        assert!(!seen.contains(secret.as_str()), "secret printed");
        assert!(!seen.contains(&secret[..20]), "part of a secret printed");
    }
    // Every row PostgreSQL holds.
    if env.database.contains("://") {
        let dump = test_store::postgres::PgServer::shared().dump(&env.database);
        assert!(dump.contains("ann@example.com"), "the dump holds the rows");
        for secret in &secrets {
            assert!(!dump.contains(secret.as_str()), "secret stored in the database");
            assert!(!dump.contains(&secret.to_lowercase()), "secret stored in the database");
        }
    }
    // Every file SQLite writes: the database, its WAL and shared-memory index.
    for entry in std::fs::read_dir(env.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        for secret in &secrets {
            assert!(!contains(&bytes, secret.as_bytes()), "secret stored in {}", path.display());
            assert!(!contains(&bytes, secret.to_lowercase().as_bytes()), "secret stored in {}", path.display());
        }
    }
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn database_file_is_created_private() {
    use std::os::unix::fs::PermissionsExt;
    let env = Env::sqlite();
    env.json(&["account", "add", "ann@example.com"]);
    let mode = std::fs::metadata(env.db()).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
}

#[test]
fn refusals_are_one_clear_line_with_a_non_zero_exit() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    env.json(&["account", "add", "bob@example.com"]);
    env.json(&["smtp", "create", "bob@example.com", "--username", "shared@example.com"]);
    env.refused(&["account", "add", "ann@example.com"], "already exists");
    env.refused(&["account", "add", "not-an-address"], "invalid address");
    env.refused(&["account", "add", ""], "invalid address");
    env.refused(&["account", "show", "carl@example.com"], "unknown account carl@example.com");
    env.refused(&["apikey", "create", "carl@example.com"], "unknown account");
    env.refused(&["apikey", "create", "ann@example.com", "--allow", "10.0.0.300"], "10.0.0.300");
    env.refused(&["apikey", "create", "ann@example.com", "--allow", "10.0.0.0/33"], "10.0.0.0/33");
    env.refused(&["apikey", "create", "ann@example.com", "--allow", "a-b"], "a-b");
    env.refused(&["smtp", "create", "ann@example.com", "--allow", "10.0.0.9-10.0.0.1"], "range");
    env.refused(&["apikey", "create", "ann@example.com", "--permission", "admin"], "unknown permission");
    env.refused(&["apikey", "create", "ann@example.com", "--name", "  "], "name must not be empty");
    env.refused(&["smtp", "create", "ann@example.com", "--username", "shared@example.com"], "already used");
    env.refused(&["smtp", "create", "ann@example.com", "--username", "SHARED@example.com"], "already used");
    env.refused(&["smtp", "create", "ann@example.com", "--username", "bob@example.com"], "already used");
    env.refused(&["account", "add", "shared@example.com"], "already used");
    env.refused(&["apikey", "change", "ann@example.com", "999"], "no API key with id 999");
    env.refused(&["smtp", "remove", "ann@example.com", "999"], "no SMTP credential with id 999");
    env.refused(&["auth", "test", "ann@example.com", "x", "--ip", "10.0.0.300"], "invalid IP");
    // An id of another account is unknown to this one.
    let bobs = env.json(&["apikey", "create", "bob@example.com"]);
    env.refused(&["apikey", "remove", "ann@example.com", &bobs["id"].to_string()], "no API key");
}

#[test]
fn the_sixteenth_key_or_credential_is_refused() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    for i in 0..15 {
        env.json(&["apikey", "create", "ann@example.com"]);
        env.json(&["smtp", "create", "ann@example.com", "--username", &format!("u{i}@example.com")]);
    }
    env.refused(&["apikey", "create", "ann@example.com"], "already has 15 API keys");
    env.refused(
        &["smtp", "create", "ann@example.com", "--username", "u99@example.com"],
        "already has 15 SMTP credentials",
    );
    // Removing one makes room again.
    let first = env.json(&["apikey", "list", "ann@example.com"])[0]["id"].to_string();
    env.json(&["apikey", "remove", "ann@example.com", &first]);
    env.json(&["apikey", "create", "ann@example.com"]);
}

/// Starts `n` CLI processes at once and returns their outputs.
fn race(env: &Env, n: usize, args: impl Fn(usize) -> Vec<String>) -> Vec<Output> {
    let children: Vec<_> = (0..n)
        .map(|i| {
            std::process::Command::new(assert_cmd::cargo::cargo_bin("relaykey"))
                .env("RELAYKEY_CONFIG", &env.config)
                .args(args(i))
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    children.into_iter().map(|c| c.wait_with_output().unwrap()).collect()
}

#[test]
fn concurrent_processes_cannot_exceed_the_caps_or_share_a_username() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    env.json(&["account", "add", "bob@example.com"]);

    let outs = race(&env, 22, |_| vec!["apikey".into(), "create".into(), "ann@example.com".into()]);
    let ok = outs.iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 15, "{:?}", outs.iter().map(|o| String::from_utf8_lossy(&o.stderr).to_string()).collect::<Vec<_>>());
    for o in outs.iter().filter(|o| !o.status.success()) {
        assert!(String::from_utf8_lossy(&o.stderr).contains("already has 15 API keys"));
    }
    assert_eq!(env.json(&["apikey", "list", "ann@example.com"]).as_array().unwrap().len(), 15);

    let outs = race(&env, 20, |i| {
        vec!["smtp".into(), "create".into(), "ann@example.com".into(), "--username".into(), format!("c{i}@example.com")]
    });
    assert_eq!(outs.iter().filter(|o| o.status.success()).count(), 15);
    assert_eq!(env.json(&["smtp", "list", "ann@example.com"]).as_array().unwrap().len(), 15);

    // Two accounts race for one username, several times each: exactly one wins.
    let outs = race(&env, 8, |i| {
        let account = if i % 2 == 0 { "bob@example.com" } else { "ann@example.com" };
        vec!["smtp".into(), "create".into(), account.into(), "--username".into(), "contested@example.com".into()]
    });
    assert_eq!(outs.iter().filter(|o| o.status.success()).count(), 1);
}

fn auth_test(env: &Env, user: &str, secret: &str, ip: Option<&str>) -> (bool, String) {
    let mut args = vec!["auth", "test", user, secret];
    if let Some(ip) = ip {
        args.extend(["--ip", ip]);
    }
    let out = env.run(&args);
    (out.status.success(), String::from_utf8_lossy(&out.stdout).trim().to_string())
}

#[test]
fn auth_test_prints_the_decision_and_exits_zero_only_on_success() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    let cred = env.json(&["smtp", "create", "ann@example.com", "--allow", "192.0.2.0/24", "--allow", "2001:db8::/32"]);
    let pw = cred["password"].as_str().unwrap();
    assert!(auth_test(&env, "Ann@Example.com", pw, Some("192.0.2.7")).0);
    assert!(auth_test(&env, "ann@example.com", pw, Some("::ffff:192.0.2.7")).0);
    assert!(auth_test(&env, "ann@example.com", pw, Some("2001:db8::7")).0);
    assert_eq!(auth_test(&env, "ann@example.com", pw, Some("2001:db9::7")), (false, "deny ip_not_allowed".into()));
    assert_eq!(auth_test(&env, "ann@example.com", pw, Some("198.51.100.1")), (false, "deny ip_not_allowed".into()));
    assert_eq!(auth_test(&env, "ann@example.com", pw, None), (false, "deny ip_required".into()));
    assert_eq!(auth_test(&env, "ann@example.com", "wrong", Some("192.0.2.7")), (false, "deny bad_secret".into()));
    assert_eq!(auth_test(&env, "who@example.com", pw, None), (false, "deny unknown_user".into()));
    let (ok, text) = auth_test(&env, "ann@example.com", pw, Some("192.0.2.7"));
    assert!(ok && text.starts_with("allow ok user=ann@example.com credential=smtp:"), "{text}");

    env.json(&["account", "disable", "ann@example.com"]);
    assert_eq!(auth_test(&env, "ann@example.com", pw, Some("192.0.2.7")), (false, "deny account_disabled".into()));
    env.json(&["account", "enable", "ann@example.com"]);
    assert!(auth_test(&env, "ann@example.com", pw, Some("192.0.2.7")).0);
}

#[test]
fn api_key_rotation_and_permissions_through_the_cli() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    env.json(&["smtp", "create", "ann@example.com", "--username", "app@example.com"]);
    let key = env.json(&["apikey", "create", "ann@example.com", "--permission", "smtp", "--permission", "view"]);
    let id = key["id"].to_string();
    let old = key["key"].as_str().unwrap().to_string();
    assert!(auth_test(&env, "ann@example.com", &old, None).0);
    assert!(auth_test(&env, "app@example.com", &old, None).0, "any SMTP username of the account");
    let changed = env.json(&["apikey", "change", "ann@example.com", &id]);
    assert_eq!(changed["id"], key["id"]);
    assert_eq!(changed["permissions"], key["permissions"]);
    let new = changed["key"].as_str().unwrap();
    assert_ne!(new, old);
    assert!(!auth_test(&env, "ann@example.com", &old, None).0);
    assert!(auth_test(&env, "ann@example.com", new, None).0);

    let edited = env.json(&["apikey", "edit", "ann@example.com", &id, "--permission", "view", "--name", "viewer"]);
    assert_eq!(edited["name"], "viewer");
    assert_eq!(auth_test(&env, "ann@example.com", new, None), (false, "deny permission_missing".into()));
    env.json(&["apikey", "edit", "ann@example.com", &id, "--permission", "smtp", "--allow", "10.0.0.1-10.0.0.5"]);
    assert!(auth_test(&env, "ann@example.com", new, Some("10.0.0.3")).0);
    assert!(!auth_test(&env, "ann@example.com", new, Some("10.0.0.6")).0);
    env.json(&["apikey", "edit", "ann@example.com", &id, "--no-allow"]);
    assert!(auth_test(&env, "ann@example.com", new, Some("10.0.0.6")).0);
    env.json(&["apikey", "remove", "ann@example.com", &id]);
    assert!(!auth_test(&env, "ann@example.com", new, None).0);
}

#[test]
fn removing_an_account_removes_its_secrets_and_frees_its_usernames() {
    let env = Env::new();
    env.json(&["account", "add", "ann@example.com"]);
    let cred = env.json(&["smtp", "create", "ann@example.com", "--username", "app@example.com"]);
    env.json(&["account", "remove", "ann@example.com"]);
    assert!(!auth_test(&env, "app@example.com", cred["password"].as_str().unwrap(), None).0);
    env.json(&["account", "add", "bob@example.com"]);
    env.json(&["smtp", "create", "bob@example.com", "--username", "app@example.com"]);
}

#[test]
fn a_locked_or_unreadable_database_is_a_temporary_failure() {
    // SQLite's locks and files (PostgreSQL down: tests/pg_outage.rs).
    let env = Env::sqlite();
    env.json(&["account", "add", "ann@example.com"]);
    // Another process holds the write lock past the busy timeout.
    let holder = rusqlite::Connection::open(env.db()).unwrap();
    holder.execute_batch("BEGIN IMMEDIATE; UPDATE accounts SET enabled = enabled;").unwrap();
    let out = env.run(&["apikey", "create", "ann@example.com"]);
    assert_eq!(out.status.code(), Some(75), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("locked"));
    holder.execute_batch("ROLLBACK").unwrap();
    drop(holder);

    let broken = env.dir.path().join("broken.toml");
    let garbage = env.dir.path().join("garbage.db");
    std::fs::write(&garbage, vec![0x55u8; 8192]).unwrap();
    std::fs::write(&broken, format!("database = {:?}\n", garbage.display().to_string())).unwrap();
    let out =
        env.cmd().env("RELAYKEY_CONFIG", &broken).args(["auth", "test", "ann@example.com", "x"]).output().unwrap();
    assert_eq!(out.status.code(), Some(75));
}

#[test]
fn bad_configs_are_refused_naming_the_key() {
    let env = Env::new();
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/bad_configs");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "toml") {
            continue;
        }
        let want = std::fs::read_to_string(path.with_extension("err")).unwrap();
        let out = env.cmd().args(["config", "check"]).arg(&path).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{} accepted", path.display());
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(want.trim()), "{}: {err:?} lacks {want:?}", path.display());
        checked += 1;
    }
    assert!(checked >= 5);
    let good = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/relaykey.toml");
    env.cmd().args(["config", "check"]).arg(&good).assert().success();
}
