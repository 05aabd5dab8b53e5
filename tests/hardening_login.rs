//! Issue 14, the items about logins: 7 (rehash on login) and 8 (log injection), over the relay's
//! SMTP and, for what a socket cannot show, the login pipeline in-process.

mod support;

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use relaykey::address::EmailAddress;
use relaykey::auth::mechanism::Credentials;
use relaykey::auth::{
    Authenticator, Decision, FailureThrottle, FrontEnd, Login, LoginLedger, LoginMechanism, LoginPipeline, Presented,
    Purpose,
};
use relaykey::config::AuthConfig;
use relaykey::secret::{self, HashParams, Secret};
use relaykey::store::{NewSmtpCredential, Store};
use support::relay::{Options, Relay, USER};
use support::smtp::Dialog;
use tokio_util::task::TaskTracker;

fn b64(s: &str) -> String {
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// What the relay harness hashes with, and what the test raises it to.
const LOW: HashParams = HashParams { memory_kib: 1024, iterations: 1, parallelism: 1 };
const HIGH: HashParams = HashParams { memory_kib: 2048, iterations: 2, parallelism: 1 };

fn stored_hash(db: &Path, username: &str) -> String {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT hash FROM smtp_credentials WHERE username = ?1", [username], |r| r.get(0)).unwrap()
}

fn auth_plain(relay: &Relay, user: &str, password: &str) -> String {
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO client.test\r\n");
    d.reply();
    d.send(&format!("AUTH PLAIN {}\r\n", b64(&format!("\0{user}\0{password}"))));
    d.reply()
}

/// Raised argon2 parameters: a successful login over the relay rehashes the stored hash with
/// them (keeping its salt), and the password keeps working against the new hash.
#[test]
fn item_07_rehash_on_login_over_the_relay() {
    let mut relay = Relay::start(Options::default());
    let db = relay.dir().join("relaykey.db");
    let before = stored_hash(&db, USER);
    assert_eq!(HashParams::of_phc(&before), Some(LOW));

    relay.kill9();
    let config = std::fs::read_to_string(relay.config_path()).unwrap();
    let raised = config
        .replace("argon2_memory_kib = 1024", &format!("argon2_memory_kib = {}", HIGH.memory_kib))
        .replace("argon2_iterations = 1", &format!("argon2_iterations = {}", HIGH.iterations));
    assert_ne!(raised, config);
    std::fs::write(relay.config_path(), raised).unwrap();
    relay.restart();

    let password = relay.password.clone();
    assert!(auth_plain(&relay, USER, &password).starts_with("235"));
    // The rehash runs after the reply; wait (bounded) for it to land.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut after = stored_hash(&db, USER);
    while HashParams::of_phc(&after) != Some(HIGH) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
        after = stored_hash(&db, USER);
    }
    assert_eq!(HashParams::of_phc(&after), Some(HIGH), "stored hash: {after}");
    assert!(secret::same_generation(&before, &after), "a rehash keeps the secret's generation");

    // A fresh process (no login cache) verifies against the new hash.
    relay.kill9();
    relay.restart();
    assert!(auth_plain(&relay, USER, &password).starts_with("235"));
    assert!(auth_plain(&relay, USER, "wrong-password").starts_with("535"));
}

/// The same through the pipeline in-process, where shutdown can be awaited instead of polled:
/// the rehash runs on the task tracker, a session logged in before it is not taken for revoked
/// by the policy recheck, the dummy verification follows the stored hashes' parameters, and a
/// `change` made before the rehash lands wins (compare-and-set).
#[tokio::test]
async fn item_07_rehash_on_login_keeps_sessions_and_moves_the_dummy() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("relaykey.db");
    let low = AuthConfig { argon2_memory_kib: 64, argon2_iterations: 1, ..AuthConfig::default() };
    let high = AuthConfig { argon2_memory_kib: 128, argon2_iterations: 2, ..AuthConfig::default() };
    let mut admin = Store::open(&db).unwrap();
    let ann = EmailAddress::parse("ann@example.com").unwrap();
    admin.add_account(&ann).unwrap();
    let new = || NewSmtpCredential { username: None, allow: Default::default() };
    let (cred, password) = admin.create_smtp_credential(&ann, new(), &low.hash_params()).unwrap();

    let auth = Arc::new(Authenticator::open(&db, &high).unwrap());
    assert_eq!(auth.dummy_params(), low.hash_params(), "the dummy costs what the stored hashes cost");
    let tasks = TaskTracker::new();
    let throttle = Arc::new(Mutex::new(FailureThrottle::new(Duration::ZERO, Duration::ZERO)));
    let pipeline = LoginPipeline::new(auth.clone(), Arc::new(LoginLedger::default()), throttle, tasks.clone());
    let ip: Option<IpAddr> = Some("192.0.2.7".parse().unwrap());
    let login = |password: &Secret| Login {
        front_end: FrontEnd::Sasl,
        mechanism: LoginMechanism::Plain,
        client_ip: ip,
        presented: Presented::Smtp(Credentials { username: ann.to_string(), secret: password.clone() }),
    };
    let Decision::Granted(grant) = pipeline.login(login(&password)).await.decision else { panic!("login refused") };
    tasks.close();
    tasks.wait().await;

    let after = admin.smtp_credential(&ann, cred.id).unwrap().hash;
    assert_eq!(HashParams::of_phc(&after), Some(high.hash_params()));
    assert!(matches!(auth.recheck(&grant, ip, Purpose::Smtp).await, Decision::Granted(_)), "not a revocation");
    assert_eq!(auth.dummy_params(), high.hash_params(), "the dummy follows the rehash");

    // A `change` between verification and rehash wins: the rehash must not write over it.
    let (other, other_password) = admin
        .create_smtp_credential(
            &ann,
            NewSmtpCredential {
                username: Some(EmailAddress::parse("b@example.com").unwrap()),
                allow: Default::default(),
            },
            &low.hash_params(),
        )
        .unwrap();
    let stale = admin.smtp_credential(&ann, other.id).unwrap().hash;
    let (_, _) = admin.change_smtp_credential(&ann, other.id, &low.hash_params()).unwrap();
    let changed = admin.smtp_credential(&ann, other.id).unwrap().hash;
    let fresh = high.hash_params().rehash(&other_password, &stale).unwrap();
    assert!(!admin.update_smtp_credential_hash(other.id, &stale, &fresh).unwrap());
    assert_eq!(admin.smtp_credential(&ann, other.id).unwrap().hash, changed);
}

/// An AUTH LOGIN username carrying a newline and a forged record must not start a line of its
/// own in the daemon's log: it is written escaped, inside the one `auth` record.
#[test]
fn item_08_log_injection_through_auth_login_username() {
    let relay = Relay::start(Options::default());
    let forged = "2026-12-03T10:00:00.000000Z  INFO auth: proto=\"relay\" decision=\"allow\" reason=\"ok\" \
                  user=\"victim@example.com\" credential=smtp:1 ip=1.2.3.4";
    let mut d = Dialog::connect(relay.plain);
    d.reply();
    d.send("EHLO client.test\r\n");
    d.reply();
    d.send("AUTH LOGIN\r\n");
    assert!(d.reply().starts_with("334"));
    d.send(&format!("{}\r\n", b64(&format!("mallory\n{forged}\r\n"))));
    assert!(d.reply().starts_with("334"));
    d.send(&format!("{}\r\n", b64("some-password")));
    assert!(d.reply().starts_with("535"));
    d.send("QUIT\r\n");
    d.rest();

    let log = relay.log();
    assert!(log.contains(r#"user="mallory\n2026-12-03T10:00:00"#), "the name is logged, escaped: {log}");
    for line in log.lines() {
        assert!(!line.starts_with("2026-12-03T10:00:00"), "forged line in the log: {line:?}\n{log}");
        assert!(!line.contains("ip=1.2.3.4") || line.contains(r#"user="mallory\n"#), "forged line: {line:?}");
    }
}
