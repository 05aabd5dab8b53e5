//! The store a test runs on (`RELAYKEY_TEST_STORE`, see [`postgres::test_database`]), for test
//! files and fixtures that do not include the whole harness (`mod support;`):
//! `#[path = "support/test_store.rs"] mod test_store;`. Files that include the harness use
//! `support::postgres` instead, so that the binary has one shared server.
#![allow(dead_code)]

// A test binary that also includes the harness has these files twice, and so two shared
// servers at most (one per copy), which costs a second `initdb` and nothing else.
#[allow(clippy::duplicate_mod)]
#[path = "peers.rs"]
mod peers;
#[allow(clippy::duplicate_mod)]
#[path = "ports.rs"]
mod ports;
#[allow(clippy::duplicate_mod)]
#[path = "postgres.rs"]
pub mod postgres;

/// See [`postgres::test_database`].
pub fn test_database(dir: &std::path::Path) -> String {
    postgres::test_database(dir)
}

/// See [`postgres::on_postgres`].
pub fn on_postgres() -> bool {
    postgres::on_postgres()
}
