//! `relaykey store copy` and `relaykey store check` through the binary: a one-host SQLite store
//! moved up to PostgreSQL keeps every account, key, credential, sender and DKIM key, and every
//! secret shown before the copy still logs in; a non-empty target is refused; the check finds
//! rows that break a rule.

mod support;

use std::path::{Path, PathBuf};
use std::process::Output;

use support::daemon::{cli_json, cli_output};
use support::postgres::{PgServer, needs_postgres};

const CHEAP: &str = "[auth]\nargon2_memory_kib = 256\nargon2_iterations = 1\n";

fn config(dir: &Path, name: &str, database: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, format!("database = {database:?}\n{CHEAP}")).unwrap();
    path
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A store with two accounts, keys, credentials, a sender domain with DKIM keys; returns the
/// secrets shown at creation, as (login, secret).
fn populate(config: &Path) -> Vec<(String, String)> {
    let mut secrets = Vec::new();
    for account in ["ann@example.com", "bob@example.org"] {
        ok(cli_output(config, &["account", "add", account]));
        let cred = cli_json(config, &["smtp", "create", account]);
        secrets.push((account.to_string(), cred["password"].as_str().unwrap().to_string()));
        let key = cli_json(config, &["apikey", "create", account, "--name", "ci", "--permission", "smtp"]);
        secrets.push((account.to_string(), key["key"].as_str().unwrap().to_string()));
    }
    let extra = cli_json(config, &["smtp", "create", "ann@example.com", "--username", "billing@example.com"]);
    secrets.push(("billing@example.com".into(), extra["password"].as_str().unwrap().to_string()));
    ok(cli_output(config, &["sender", "add", "ann@example.com", "example.com"]));
    ok(cli_output(config, &["dkim", "generate", "example.com"]));
    secrets
}

fn logs_in(config: &Path, user: &str, secret: &str) -> bool {
    cli_output(config, &["auth", "test", user, secret]).status.success()
}

fn listing(config: &Path) -> Vec<serde_json::Value> {
    let mut all = Vec::new();
    for account in ["ann@example.com", "bob@example.org"] {
        all.push(cli_json(config, &["apikey", "list", account]));
        all.push(cli_json(config, &["smtp", "list", account]));
        all.push(cli_json(config, &["sender", "list", account]));
    }
    all.push(cli_json(config, &["dkim", "list"]));
    all
}

fn copy_and_compare(source: &Path, target: &Path, target_database: &str) {
    let secrets = populate(source);
    let out = ok(cli_output(source, &["store", "copy", "--to", target_database]));
    for line in ["accounts\t2", "api_keys\t2", "smtp_credentials\t3", "senders\t3", "dkim_keys\t2"] {
        assert!(out.lines().any(|l| l == line), "{line:?} missing from:\n{out}");
    }
    assert_eq!(listing(source), listing(target), "the copy lists the same rows, masks and times");
    for (user, secret) in &secrets {
        assert!(logs_in(target, user, secret), "{user} logs in on the copy with the secret shown before it");
    }
    assert!(!logs_in(target, "ann@example.com", "0000000000000000000000000000000000000000"));
    let check = cli_json(target, &["store", "check"]);
    assert_eq!(check["ok"], true, "{check}");
    assert_eq!((check["accounts"].as_u64(), check["api_keys"].as_u64()), (Some(2), Some(2)));

    // Rows added after the copy get fresh ids (the copy moved the target's id sequences on).
    ok(cli_output(target, &["account", "add", "carol@example.net"]));
    let cred = cli_json(target, &["smtp", "create", "carol@example.net"]);
    assert!(cred["id"].as_i64().unwrap() > 3, "{cred}");

    // A second copy into the same (now non-empty) target is refused, and changes nothing.
    let again = cli_output(source, &["store", "copy", "--to", target_database]);
    assert_eq!(again.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("is not empty") && stderr.lines().count() == 1, "{stderr}");
    assert_eq!(cli_json(target, &["store", "check"])["accounts"], 3);
}

#[test]
fn a_sqlite_store_copies_into_an_empty_sqlite_store() {
    let dir = tempfile::tempdir().unwrap();
    let source = config(dir.path(), "source.toml", &dir.path().join("one.db").display().to_string());
    let copy_db = dir.path().join("two.db").display().to_string();
    let target = config(dir.path(), "target.toml", &copy_db);
    copy_and_compare(&source, &target, &copy_db);
}

#[test]
fn a_sqlite_store_moves_up_to_postgresql() {
    if !needs_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let source = config(dir.path(), "source.toml", &dir.path().join("one.db").display().to_string());
    let url = PgServer::shared().create_database();
    let target = config(dir.path(), "target.toml", &url);
    copy_and_compare(&source, &target, &url);
}

#[test]
fn the_check_reports_rows_that_break_a_rule() {
    if !needs_postgres() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let server = PgServer::shared();
    let url = server.create_database();
    let config = config(dir.path(), "relaykey.toml", &url);
    populate(&config);
    assert!(cli_output(&config, &["store", "check"]).status.success());
    let db = url.split('/').nth(3).unwrap().split('?').next().unwrap().to_string();
    // Written by hand, around every rule the store enforces on writes.
    server.psql(
        &db,
        "INSERT INTO api_keys (account_id, name, permissions, allow, last5, locator, hash, created_at)
           SELECT id, 'x' || n, 'smtp', '', lpad(n::text, 5, '0'), 'l', 'not-a-hash', 0
           FROM accounts, generate_series(1, 15) n WHERE email = 'bob@example.org';
         DELETE FROM senders WHERE entry = 'ann@example.com';",
    );
    let out = cli_output(&config, &["store", "check"]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("16 API keys, more than 15"), "{stdout}");
    assert!(stdout.contains("neither argon2id nor a kept imported scheme"), "{stdout}");
    assert!(stdout.contains("ann@example.com does not own its own address"), "{stdout}");
    let json = cli_json_failing(&config);
    assert_eq!(json["ok"], false);
}

fn cli_json_failing(config: &Path) -> serde_json::Value {
    let out = cli_output(config, &["--json", "store", "check"]);
    assert_eq!(out.status.code(), Some(1));
    serde_json::from_slice(&out.stdout).unwrap()
}
