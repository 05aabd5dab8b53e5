//! The throwaway PostgreSQL harness itself (tests/support/postgres.rs): a cluster of its own
//! on a private socket, fresh databases, a crash-like stop and a start on the same data, and
//! nothing left behind.

mod support;

use support::postgres::{PgServer, needs_postgres};

#[test]
fn a_server_survives_an_immediate_stop_and_is_removed_when_dropped() {
    if !needs_postgres() {
        return;
    }
    let server = PgServer::start();
    let dir = server.socket_dir().to_path_buf();
    assert!(dir.join(format!(".s.PGSQL.{}", server.port())).exists(), "the socket is in the private directory");
    let db = server.create_database();
    assert!(db.starts_with("postgresql://postgres@/"), "{db}");
    assert_eq!(server.psql(&db, "SELECT 1"), "1");
    server.psql(&db, "CREATE TABLE t (n INTEGER); INSERT INTO t VALUES (41), (1)");

    // A second database is another one.
    let other = server.create_database();
    assert_ne!(other, db);
    assert!(server.try_psql(&other, "SELECT sum(n) FROM t").is_err(), "the table belongs to the first database");

    server.stop_immediate();
    assert!(!server.is_running());
    let refused = server.try_psql(&db, "SELECT 1").expect_err("a stopped server answers nothing");
    assert!(!refused.is_empty());

    server.start_again();
    assert!(server.is_running());
    assert_eq!(server.psql(&db, "SELECT sum(n) FROM t"), "42", "committed data survives the crash-like stop");

    drop(server);
    assert!(!dir.exists(), "dropping the server removes its directory");
}

#[test]
fn the_shared_server_gives_each_caller_a_fresh_database() {
    if !needs_postgres() {
        return;
    }
    let shared = PgServer::shared();
    assert!(std::ptr::eq(shared, PgServer::shared()), "one server per test binary");
    let a = shared.create_database();
    let b = shared.create_database();
    assert_ne!(a, b);
    shared.psql(&a, "CREATE TABLE only_in_a (n INTEGER)");
    assert_eq!(shared.psql(&b, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "0");
    assert_eq!(shared.psql(&a, "SELECT count(*) FROM pg_tables WHERE tablename = 'only_in_a'"), "1");
}
