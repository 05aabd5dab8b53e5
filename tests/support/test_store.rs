//! The store a test runs on (`RELAYKEY_TEST_STORE`, see [`postgres::test_database`]), for test
//! files and fixtures that do not include the whole harness (`mod support;`):
//! `#[path = "support/test_store.rs"] mod test_store;`. Files that include the harness use
//! `support::postgres` instead, so that the binary has one shared server.
#![allow(dead_code)]

#[path = "peers.rs"]
mod peers;
#[path = "ports.rs"]
mod ports;
#[path = "postgres.rs"]
pub mod postgres;

pub use postgres::{on_postgres, test_database};
