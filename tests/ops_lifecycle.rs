//! The daemon's conversation with systemd, seen from a NOTIFY_SOCKET the test owns: READY=1
//! once the listeners accept, WATCHDOG=1 at half the configured interval, RELOADING=1 and
//! READY=1 around a SIGHUP (also a refused one), STOPPING=1 and a clean exit on SIGTERM.

mod ops_support;
mod support;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use ops_support::*;

#[test]
fn notifies_systemd_through_its_lifecycle() {
    let watchdog = Duration::from_millis(1000);
    let builder =
        serve().toml("[daemon]\nstatus_interval = \"1s\"").env("WATCHDOG_USEC", watchdog.as_micros().to_string());
    let started = Instant::now();
    let mut daemon = builder.spawn();
    let notify = &daemon.notify;

    let before_ready = notify.wait_for("READY=1");
    let to_ready = started.elapsed();
    assert!(!before_ready.iter().any(|l| l.starts_with("WATCHDOG")), "pets before READY: {before_ready:?}");
    // Every front end the daemon says it started accepts at once.
    let front_ends = daemon.front_ends();
    assert!(front_ends.iter().any(|f| f == "sasl"), "{front_ends:?}");
    for front_end in front_ends {
        let path = daemon.dir().join(format!("{front_end}.sock"));
        if path.exists() {
            UnixStream::connect(&path).unwrap_or_else(|e| panic!("{front_end} does not accept at READY: {e}"));
        }
    }
    eprintln!("READY=1 after {to_ready:?} (debug build)");

    // The watchdog: three pets, none later than the interval systemd would enforce.
    let mut last = Instant::now();
    let mut pets = 0;
    let mut status = Vec::new();
    while pets < 3 {
        let lines = notify.next(PATIENCE).expect("no WATCHDOG=1");
        if lines.iter().any(|l| l == "WATCHDOG=1") {
            assert!(last.elapsed() < watchdog, "a watchdog pet came {:?} after the previous one", last.elapsed());
            last = Instant::now();
            pets += 1;
        }
        status.extend(lines.into_iter().filter(|l| l.starts_with("STATUS=")));
    }
    assert!(status.iter().any(|l| l.contains("connections: ")), "no STATUS= with counts: {status:?}");

    // A good reload.
    daemon.signal(libc::SIGHUP);
    let seen = notify.wait_for("READY=1");
    assert!(seen.iter().any(|l| l == "RELOADING=1"), "no RELOADING=1 before READY=1: {seen:?}");
    assert!(seen.iter().any(|l| l.starts_with("MONOTONIC_USEC=")), "RELOADING=1 without MONOTONIC_USEC: {seen:?}");
    daemon.wait_log("reloaded");

    // A bad config is refused, the old one kept, and the daemon stays ready.
    std::fs::write(daemon.config_path(), "[auth]\nbogus = 1\n").unwrap();
    daemon.signal(libc::SIGHUP);
    let seen = notify.wait_for("READY=1");
    assert!(seen.iter().any(|l| l == "RELOADING=1"), "{seen:?}");
    daemon.wait_log("reload refused");
    assert!(!daemon.has_exited(), "a bad reload stopped the daemon");

    daemon.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0), "log: {:#?}", daemon.log_lines());
}

#[test]
fn sends_no_watchdog_pets_when_systemd_asks_for_none() {
    // The harness passes no WATCHDOG_USEC.
    let mut daemon = serve().toml("[daemon]\nstatus_interval = \"1s\"").spawn();
    let notify = &daemon.notify;
    notify.wait_for("READY=1");
    // Two STATUS= rounds (1 s apart) give any pet loop time to show itself.
    let mut rounds = 0;
    while rounds < 2 {
        let lines = notify.next(PATIENCE).expect("no STATUS=");
        assert!(!lines.iter().any(|l| l == "WATCHDOG=1"), "pet without WATCHDOG_USEC");
        rounds += lines.iter().filter(|l| l.starts_with("STATUS=")).count();
    }
    daemon.signal(libc::SIGTERM);
    notify.wait_for("STOPPING=1");
    assert_eq!(daemon.wait_exit().code(), Some(0));
}

#[test]
fn a_systemd_that_stops_reading_stalls_neither_logins_nor_shutdown() {
    // A notify socket holds net.unix.max_dgram_qlen (10) unread datagrams; at one STATUS= a
    // second, the daemon's sends find it full after about 11 s. They must not block a worker.
    let mut daemon = serve().toml("[daemon]\nstatus_interval = \"1s\"").spawn();
    daemon.notify.wait_for("READY=1");
    std::thread::sleep(Duration::from_secs(14));

    let mut sasl = UnixStream::connect(daemon.sasl_socket()).unwrap();
    sasl.set_read_timeout(Some(PATIENCE)).unwrap();
    sasl.write_all(b"VERSION\t1\t2\nCPID\t1\n").unwrap();
    let mut greeting = String::new();
    BufReader::new(&sasl).read_line(&mut greeting).unwrap();
    assert!(greeting.starts_with("VERSION\t1\t"), "{greeting:?}");

    daemon.signal(libc::SIGTERM);
    assert_eq!(daemon.wait_exit().code(), Some(0), "log: {:#?}", daemon.log_lines());
    assert!(daemon.log().contains("systemd is not reading notifications"), "{}", daemon.log());
}
