//! Schema migrations on PostgreSQL: hosts (here, processes) that start together on an empty
//! database migrate it exactly once, under the advisory lock; a schema newer than this build
//! is refused rather than written to.

mod support;

use std::process::Command;

use support::daemon::{BIN, cli_output};
use support::postgres::{PgServer, needs_postgres};

#[test]
fn processes_starting_together_migrate_once_and_a_newer_schema_is_refused() {
    if !needs_postgres() {
        return;
    }
    let server = PgServer::shared();
    let url = server.create_database();
    let db = url.split('/').nth(3).unwrap().split('?').next().unwrap().to_string();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relaykey.toml");
    std::fs::write(&config, format!("database = {url:?}\n")).unwrap();

    // Started together on the empty database: every one of them finds no schema.
    let spawned: Vec<_> = (0..12)
        .map(|i| {
            Command::new(BIN)
                .arg("--config")
                .arg(&config)
                .args(["account", "add", &format!("user{i}@example.com")])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in spawned {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    assert_eq!(server.psql(&db, "SELECT count(*), min(version) = max(version) FROM relaykey_schema"), "1|t");
    assert_eq!(server.psql(&db, "SELECT count(*) FROM accounts"), "12");

    server.psql(&db, "UPDATE relaykey_schema SET version = version + 100");
    let out = cli_output(&config, &["account", "list"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("is newer than this relaykey"), "{stderr}");
}

/// Another host changing the schema under a running one (a newer relaykey migrating) makes its
/// prepared statements stale: the next call may fail, temporarily, and the one after works.
#[test]
fn a_schema_changed_by_another_host_costs_at_most_one_failed_call() {
    if !needs_postgres() {
        return;
    }
    use relaykey::address::EmailAddress;
    use relaykey::store::{Store, StoreLocation};
    let server = PgServer::shared();
    let url = server.create_database();
    let db = url.split('/').nth(3).unwrap().split('?').next().unwrap().to_string();
    let mut store = Store::connect(&StoreLocation::parse(&url, None, None).unwrap()).unwrap();
    let ann = EmailAddress::parse("ann@example.com").unwrap();
    store.add_account(&ann).unwrap();
    assert!(store.find_account(&ann).unwrap().is_some());
    // The result type of a prepared statement changes.
    server.psql(&db, "ALTER TABLE accounts ALTER COLUMN created_at TYPE integer");
    let first = store.find_account(&ann);
    if let Err(e) = &first {
        assert!(e.is_temporary(), "{e}");
    }
    let second = store.find_account(&ann).unwrap();
    assert_eq!(second.map(|a| a.email), Some(ann));
}
