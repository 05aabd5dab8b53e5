//! A daemon started while its PostgreSQL server is down waits for it instead of exiting (an
//! exit would have systemd restart it until its start limit, then leave it dead when the
//! database returns): it says so, keeps systemd's start timeout extended, and becomes ready
//! once the database answers; SIGTERM while waiting stops it cleanly.

mod support;

use std::time::{Duration, Instant};

use support::daemon::serve;
use support::postgres::{PgServer, needs_postgres};

#[test]
fn a_daemon_waits_for_a_database_that_is_down_at_start() {
    if !needs_postgres() {
        return;
    }
    let server = PgServer::start();
    let url = server.create_database();
    server.stop_immediate();

    let daemon = serve().database(&url).toml("[policy]\nenabled = false\n").spawn();
    let waiting = daemon.wait_log("the database cannot be reached; waiting for it");
    assert!(waiting.contains("WARN"), "{waiting}");
    // systemd hears why, and gives the start more time.
    let before = daemon.notify.wait_for("EXTEND_TIMEOUT_USEC=6000000");
    let status = before.iter().any(|l| l.starts_with("STATUS=waiting for the database"));
    assert!(status, "{before:?}");
    // Still there a while later (several retries), not ready, not exited.
    let until = Instant::now() + Duration::from_secs(5);
    while Instant::now() < until {
        assert!(!daemon.has_exited(), "the daemon exited while waiting:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }
    server.start_again();
    daemon.wait_ready();
    daemon.cli(&["account", "add", "ann@example.com"]);
    assert!(!daemon.has_exited());

    // Stopping while waiting: a clean exit, without ever listening.
    server.stop_immediate();
    let mut second = serve().database(&url).toml("[policy]\nenabled = false\n").spawn();
    second.wait_log("the database cannot be reached; waiting for it");
    second.signal(libc::SIGTERM);
    let status = second.wait_exit();
    assert!(status.success(), "{status:?}\n{}", second.log());
    assert!(second.log().contains("stopped while waiting for the database"), "{}", second.log());
}
