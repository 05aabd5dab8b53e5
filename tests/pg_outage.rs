//! PostgreSQL going away under load (issue 13, "Faults"): one `relaykey serve` on its own
//! throwaway PostgreSQL server, with SASL, policy, relay and API clients running throughout;
//! the server is stopped as a crash would stop it (`pg_ctl stop -m immediate`) and started
//! again. While it is down every answer that needs the store is a temporary failure (SASL
//! `FAIL … code=temp_fail`, policy `451 4.3.0`, relay 4xx, API 503), never a permanent refusal
//! and never "wrong password", and the systemd watchdog keeps being petted (systemd must not
//! restart the daemon for as long as the database is away); afterwards the same daemon
//! process serves fully again and nothing written before is lost.

#[path = "support/relay_sink.rs"]
mod relay_sink;
#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use relay_sink::Sink;
use relaykey::sasl::codec::{FailCode, Reply};
use sasl_client::Client;
use support::daemon::{Daemon, serve};
use support::http::try_request;
use support::ports::free_port;
use support::postgres::{PgServer, needs_postgres};
use support::smtp::{Dialog, auth_plain};

const ANN: &str = "ann@example.com";
const CLIENT: &str = "192.0.2.10";
/// The policy server's default `fallback_action`.
const FALLBACK: &str = "451 4.3.0 ";

/// What one request got.
#[derive(Debug, Clone, PartialEq)]
enum Outcome {
    /// What a healthy daemon answers (login granted, DUNNO, 250, 200).
    Served,
    /// A temporary failure: the client is to try again later.
    Temporary(String),
    /// A permanent refusal or "wrong password": never acceptable here, since every request
    /// carries valid secrets.
    Refused(String),
    /// No answer at all (connection refused or cut): the daemon is not serving.
    Broken(String),
}

/// Where the test stands; each request records the phase when it started and when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[repr(u8)]
enum Phase {
    Before,
    /// `pg_ctl stop` was run; the daemon may not have noticed yet.
    Stopping,
    /// The daemon has answered a login with a temporary failure.
    Down,
    /// `pg_ctl start` was run; the daemon may not have reconnected yet.
    Restarting,
    /// Every front end has served a request again.
    After,
}

impl Phase {
    fn from(n: u8) -> Phase {
        [Phase::Before, Phase::Stopping, Phase::Down, Phase::Restarting, Phase::After][usize::from(n)]
    }
}

/// The daemon's front ends and the valid secrets the clients use.
#[derive(Clone)]
struct Target {
    sasl: PathBuf,
    policy: PathBuf,
    relay: u16,
    api: u16,
    password: String,
    view_key: String,
}

fn sasl_login(socket: &Path, id: u32, password: &str) -> Outcome {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let mut client = match Client::connect(socket).await {
            Ok(c) => c,
            Err(e) => return Outcome::Broken(format!("SASL connect: {e}")),
        };
        client.send_plain(id, ANN, password, Some(CLIENT)).await;
        match client.read_reply().await {
            Ok(Some(Reply::Ok { .. })) => Outcome::Served,
            Ok(Some(Reply::Fail { code: Some(FailCode::TempFail), reason, .. })) => {
                Outcome::Temporary(format!("SASL FAIL temp {reason:?}"))
            }
            Ok(Some(other)) => Outcome::Refused(format!("SASL {other:?}")),
            Ok(None) => Outcome::Broken("SASL: connection closed".into()),
            Err(e) => Outcome::Broken(format!("SASL: {e}")),
        }
    })
}

/// The RCPT of a Postfix session of `CLIENT` logged in as ANN (through SASL, by the load).
fn policy_rcpt(socket: &Path, session: u16) -> Outcome {
    let request = format!(
        "request=smtpd_access_policy\nprotocol_state=RCPT\nprotocol_name=ESMTP\nclient_address={CLIENT}\n\
         client_name=unknown\nclient_port={session}\nserver_address=127.0.0.1\nserver_port=587\nhelo_name=x\n\
         sender={ANN}\nrecipient=rcpt@example.net\nrecipient_count=0\nqueue_id=\ninstance=out.{session}\nsize=0\n\
         sasl_method=PLAIN\nsasl_username={ANN}\n\n"
    );
    let answer = (|| -> std::io::Result<String> {
        let mut s = UnixStream::connect(socket)?;
        s.set_read_timeout(Some(Duration::from_secs(60)))?;
        s.write_all(request.as_bytes())?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\n\n") {
            if s.read(&mut byte)? == 0 {
                return Err(std::io::Error::other("closed"));
            }
            reply.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_string())
    })();
    match answer {
        Err(e) => Outcome::Broken(format!("policy: {e}")),
        Ok(text) => match text.strip_prefix("action=") {
            Some("DUNNO") => Outcome::Served,
            Some(action) if action.starts_with('4') => Outcome::Temporary(format!("policy {action}")),
            _ => Outcome::Refused(format!("policy {text}")),
        },
    }
}

/// One relay session: EHLO, AUTH PLAIN, one message. The first reply that is not a success
/// settles it.
fn relay_message(port: u16, password: &str) -> Outcome {
    let mut d = Dialog::connect(port);
    let steps: [(Option<String>, &str); 7] = [
        (None, "220"),
        (Some("EHLO client.example\r\n".into()), "250"),
        (Some(format!("{}\r\n", auth_plain(ANN, password))), "235"),
        (Some(format!("MAIL FROM:<{ANN}>\r\n")), "250"),
        (Some("RCPT TO:<rcpt@example.net>\r\n".into()), "250"),
        (Some("DATA\r\n".into()), "354"),
        (Some(format!("From: {ANN}\r\nSubject: outage\r\n\r\nhello\r\n.\r\n")), "250"),
    ];
    for (command, want) in steps {
        if let Some(command) = &command {
            d.send(command);
        }
        let reply = d.reply();
        let what = command.as_deref().map_or("greeting", |c| c.split_whitespace().next().unwrap_or(""));
        if reply.is_empty() {
            return Outcome::Broken(format!("relay: closed after {what}"));
        }
        if !reply.starts_with(want) {
            let settled = format!("relay {what}: {}", reply.trim_end());
            return if reply.starts_with('4') { Outcome::Temporary(settled) } else { Outcome::Refused(settled) };
        }
    }
    d.send("QUIT\r\n");
    Outcome::Served
}

fn api_account(port: u16, key: &str) -> Outcome {
    match try_request(port, "GET", "/v1/account", key, None) {
        Err(e) => Outcome::Broken(format!("API: {e}")),
        Ok((200, _)) => Outcome::Served,
        Ok((503, body)) => Outcome::Temporary(format!("API 503 {body}")),
        Ok((status, body)) => Outcome::Refused(format!("API {status} {body}")),
    }
}

/// A request kind of the load, by name.
type Probe = fn(&Target, u32) -> Outcome;

const PROBES: [(&str, Probe); 4] = [
    ("sasl", |t, n| sasl_login(&t.sasl, n, &t.password)),
    ("policy", |t, n| policy_rcpt(&t.policy, 41000 + (n % 1000) as u16)),
    ("relay", |t, _| relay_message(t.relay, &t.password)),
    ("api", |t, _| api_account(t.api, &t.view_key)),
];

/// One request's record: the phase when it began and when it ended, and what it got.
type Record = (Phase, Phase, Outcome);

/// Clients running one kind of request each, in a loop, until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    records: Vec<(&'static str, Arc<Mutex<Vec<Record>>>)>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(target: &Target, phase: &Arc<AtomicU8>) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let mut load = Load { stop: stop.clone(), records: Vec::new(), threads: Vec::new() };
        for (name, probe) in PROBES {
            let records = Arc::new(Mutex::new(Vec::new()));
            load.records.push((name, records.clone()));
            let (target, phase, stop) = (target.clone(), phase.clone(), stop.clone());
            load.threads.push(std::thread::spawn(move || {
                let mut n = 1000;
                while !stop.load(Ordering::SeqCst) {
                    n += 1;
                    let began = Phase::from(phase.load(Ordering::SeqCst));
                    let outcome = probe(&target, n);
                    let ended = Phase::from(phase.load(Ordering::SeqCst));
                    records.lock().unwrap().push((began, ended, outcome));
                    // A light load: a few requests a second per kind.
                    std::thread::sleep(Duration::from_millis(50));
                }
            }));
        }
        load
    }

    /// Waits (bounded) until every kind has `n` requests that began and ended in `phase`.
    fn wait_for(&self, phase: Phase, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        for (name, records) in &self.records {
            while records.lock().unwrap().iter().filter(|(b, e, _)| *b == phase && *e == phase).count() < n {
                assert!(Instant::now() < deadline, "{name}: fewer than {n} requests in {phase:?}");
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    fn finish(mut self) -> Vec<(&'static str, Vec<Record>)> {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            t.join().expect("a load thread panicked");
        }
        self.records.iter().map(|(name, r)| (*name, r.lock().unwrap().clone())).collect()
    }
}

/// Polls `probe` until it gives what `done` wants; returns that outcome. Panics, with the
/// daemon's log, when that takes longer than any reconnection should (a hang, not a timing).
fn wait_for_outcome(
    daemon: &Daemon,
    what: &str,
    probe: impl Fn() -> Outcome,
    done: impl Fn(&Outcome) -> bool,
) -> Outcome {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut last = None;
    while Instant::now() < deadline {
        let outcome = probe();
        if done(&outcome) {
            return outcome;
        }
        last = Some(outcome);
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("{what}: still {last:?} after 120 s; log:\n{}", daemon.log());
}

/// Waits (bounded) for `n` `WATCHDOG=1` datagrams; other datagrams (STATUS=…) are skipped.
/// Panics if they do not come within a minute, while the daemon asks for one a second.
fn wait_for_pets(daemon: &Daemon, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut pets = 0;
    while pets < n {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "{pets} of {n} watchdog pets within a minute; log:\n{}", daemon.log());
        if let Some(lines) = daemon.notify.next(left) {
            pets += lines.iter().filter(|l| *l == "WATCHDOG=1").count();
        }
    }
}

/// Throws away the datagrams queued on the daemon's notify socket.
fn drain_notify(daemon: &Daemon) {
    while daemon.notify.next(Duration::from_millis(1)).is_some() {}
}

#[test]
fn postgresql_stopped_under_load_gives_only_temporary_failures_and_service_comes_back() {
    if !needs_postgres() {
        return;
    }
    let pg = PgServer::start();
    let url = pg.create_database();
    let sink = Sink::start();
    let (relay_port, api_port) = (free_port(), free_port());
    let builder = serve().database(&url);
    let spool = toml::Value::String(builder.dir().join("spool").display().to_string());
    let builder = builder.toml(&format!(
        "[auth]\nfailure_delay = \"10ms\"\nmax_failure_delay = \"20ms\"\n[policy]\ntcp_table = false\n\
             [api]\nenabled = true\nlisten = \"127.0.0.1:{api_port}\"\n\
             [relay]\nenabled = true\nhostname = \"relay.test\"\nspool = {spool}\n\
             smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\nqueue_scan_interval = \"1s\"\n\
             min_retry_interval = \"1s\"\nmax_retry_interval = \"2s\"\n\
             [[relay.listen]]\naddress = \"127.0.0.1:{relay_port}\"\ntls = \"none\"\n",
        sink.port
    ));
    let daemon = builder.start();
    let pid = daemon.pid();

    daemon.cli(&["account", "add", ANN]);
    let password = daemon.cli_json(&["smtp", "create", ANN])["password"].as_str().unwrap().to_string();
    let view_key = daemon.cli_json(&["apikey", "create", ANN, "--name", "view", "--permission", "view"])["key"]
        .as_str()
        .unwrap()
        .to_string();
    let before: Vec<String> = (0..3)
        .map(|i| daemon.cli_json(&["apikey", "create", ANN, "--name", &format!("kept{i}")])["id"].to_string())
        .collect();
    let target = Target {
        sasl: daemon.sasl_socket(),
        policy: daemon.socket("policy"),
        relay: relay_port,
        api: api_port,
        password: password.clone(),
        view_key: view_key.clone(),
    };

    let phase = Arc::new(AtomicU8::new(Phase::Before as u8));
    let load = Load::start(&target, &phase);
    load.wait_for(Phase::Before, 3);

    // PostgreSQL goes away as in a crash.
    phase.store(Phase::Stopping as u8, Ordering::SeqCst);
    pg.stop_immediate();
    // The daemon notices at its next login that needs the store (answers from before the
    // outage may still come from memory until then).
    wait_for_outcome(
        &daemon,
        "a login while PostgreSQL is down",
        || sasl_login(&target.sasl, 1, &password),
        |o| matches!(o, Outcome::Temporary(_)),
    );
    phase.store(Phase::Down as u8, Ordering::SeqCst);
    load.wait_for(Phase::Down, 3);

    // Every front end, asked once more by the test itself, with the exact answers.
    let sasl = sasl_login(&target.sasl, 2, &password);
    assert!(matches!(sasl, Outcome::Temporary(_)), "SASL while down: {sasl:?}");
    match policy_rcpt(&target.policy, 40999) {
        Outcome::Temporary(action) => assert!(action.starts_with(&format!("policy {FALLBACK}")), "{action}"),
        other => panic!("policy while down: {other:?}"),
    }
    match relay_message(target.relay, &password) {
        Outcome::Temporary(reply) => assert!(reply.starts_with("relay AUTH: 454 "), "{reply}"),
        other => panic!("relay while down: {other:?}"),
    }
    assert!(matches!(api_account(target.api, &view_key), Outcome::Temporary(_)), "API while down");
    let cli = daemon.cli_output(&["apikey", "list", ANN]);
    assert_eq!(cli.status.code(), Some(75), "the CLI while down: {}", String::from_utf8_lossy(&cli.stderr));
    assert!(!daemon.has_exited(), "the daemon exited while PostgreSQL was down; log:\n{}", daemon.log());

    // PostgreSQL comes back; the same daemon process reconnects by itself.
    phase.store(Phase::Restarting as u8, Ordering::SeqCst);
    pg.start_again();
    for (name, probe) in PROBES {
        wait_for_outcome(
            &daemon,
            &format!("{name} after PostgreSQL is back"),
            || probe(&target, 3),
            |o| *o == Outcome::Served,
        );
    }
    phase.store(Phase::After as u8, Ordering::SeqCst);
    load.wait_for(Phase::After, 3);
    let records = load.finish();

    assert_eq!(daemon.pid(), pid);
    assert!(!daemon.has_exited(), "no restart: the first process serves on; log:\n{}", daemon.log());
    for (name, records) in &records {
        for (began, ended, outcome) in records {
            assert!(
                !matches!(outcome, Outcome::Refused(_) | Outcome::Broken(_)),
                "{name}, {began:?}..{ended:?}: {outcome:?} (only temporary failures are allowed); log:\n{}",
                daemon.log()
            );
            if (*began, *ended) == (Phase::Down, Phase::Down) {
                assert!(matches!(outcome, Outcome::Temporary(_)), "{name} while down: {outcome:?}");
            }
            if *began == Phase::After || (*began, *ended) == (Phase::Before, Phase::Before) {
                assert_eq!(*outcome, Outcome::Served, "{name}, {began:?}..{ended:?}");
            }
        }
    }

    // Nothing lost: what was written before the outage is there, and writes work again.
    let listed = daemon.cli_json(&["apikey", "list", ANN]);
    let ids: Vec<String> = listed.as_array().unwrap().iter().map(|k| k["id"].to_string()).collect();
    for id in &before {
        assert!(ids.contains(id), "key {id} written before the outage is gone: {listed}");
    }
    daemon.cli(&["apikey", "create", ANN, "--name", "after"]);
    assert!(!sink.wait_for(1, Duration::from_secs(60)).is_empty(), "messages accepted by the relay are delivered");
}

#[test]
fn the_watchdog_is_petted_while_postgresql_is_down() {
    if !needs_postgres() {
        return;
    }
    let pg = PgServer::start();
    let url = pg.create_database();
    // The harness passes no watchdog; this daemon is asked for a pet every second, as systemd
    // does with WatchdogSec=2s.
    let daemon = serve().database(&url).env("WATCHDOG_USEC", "2000000").toml("[policy]\nenabled = false\n").start();
    daemon.cli(&["account", "add", ANN]);
    let password = daemon.cli_json(&["smtp", "create", ANN])["password"].as_str().unwrap().to_string();
    let sasl = daemon.sasl_socket();
    wait_for_pets(&daemon, 1);

    pg.stop_immediate();
    wait_for_outcome(
        &daemon,
        "a login while PostgreSQL is down",
        || sasl_login(&sasl, 1, &password),
        |o| matches!(o, Outcome::Temporary(_)),
    );
    // Pets sent before the daemon knew are gone; these two come from checks made while down.
    // Without them systemd would kill the daemon (WatchdogSec) and restart it over and over
    // for as long as the database is away, dropping every SMTP session each time.
    drain_notify(&daemon);
    wait_for_pets(&daemon, 2);
    assert!(!daemon.has_exited(), "log:\n{}", daemon.log());

    pg.start_again();
    wait_for_outcome(
        &daemon,
        "a login after PostgreSQL is back",
        || sasl_login(&sasl, 2, &password),
        |o| *o == Outcome::Served,
    );
    drain_notify(&daemon);
    wait_for_pets(&daemon, 1);
}
