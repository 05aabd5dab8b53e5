//! The shared state's store side on either engine (`RELAYKEY_TEST_STORE=postgresql` for
//! PostgreSQL, see `support::postgres`): two `MessageLimits` and two `LoginLedger`s on one
//! store stand for two hosts.

#[path = "support/test_store.rs"]
mod test_store;

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use relaykey::auth::{CredentialRef, Grant, LoginLedger};
use relaykey::message_limits::{MessageLimits, RateWindow, Usage};
use relaykey::restriction::AccessRestriction;
use relaykey::store::{Store, StoreLocation};

fn location(dir: &tempfile::TempDir) -> StoreLocation {
    let database = test_store::test_database(dir.path());
    let location = StoreLocation::parse(&database, None, None).unwrap();
    // Created and migrated once, as the daemon's start does.
    Store::connect(&location).unwrap();
    location
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hosts_racing_take_exactly_the_limit() {
    let dir = tempfile::tempdir().unwrap();
    let location = location(&dir);
    let hosts = [Arc::new(MessageLimits::new(location.clone())), Arc::new(MessageLimits::new(location))];
    let quota = Usage { minute: 10, hour: 0, day: 0 };
    let now = SystemTime::now();
    let mut racing = Vec::new();
    for i in 0..30 {
        let host = hosts[i % 2].clone();
        racing.push(tokio::spawn(async move { host.try_take("a@example.com", &quota, now).await.unwrap() }));
    }
    let mut taken = 0;
    for r in racing {
        match r.await.unwrap() {
            Ok(()) => taken += 1,
            Err(refused) => assert_eq!((refused.window, refused.limit), (RateWindow::Minute, 10)),
        }
    }
    assert_eq!(taken, 10, "one count for both hosts");
    assert_eq!(hosts[1].usage("a@example.com", now).await.unwrap().minute, 10);
    assert_eq!(hosts[0].usage("b@example.com", now).await.unwrap(), Usage::default(), "per account");
}

#[tokio::test]
async fn a_login_recorded_on_one_host_is_found_on_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let location = location(&dir);
    let ip = Some("192.0.2.1".parse().unwrap());
    let grant = Grant {
        username: "a@example.com".into(),
        account_id: 1,
        account: "a@example.com".into(),
        credential: CredentialRef::SmtpCredential { id: 3, hash: "h".into() },
        permissions: None,
        allow: AccessRestriction::default(),
        cached: false,
    };
    let a = LoginLedger::stored(location.clone()).unwrap();
    a.record("a@example.com", ip, grant.clone(), Instant::now());
    a.flush(Duration::from_secs(60)).unwrap();
    let b = LoginLedger::stored(location).unwrap();
    let found = b.grants_or_stored("a@example.com", ip, Instant::now()).await.unwrap();
    assert_eq!(found.len(), 1);
    assert_eq!((found[0].credential.clone(), found[0].account.as_str()), (grant.credential, "a@example.com"));
    assert!(b.grants_or_stored("b@example.com", ip, Instant::now()).await.unwrap().is_empty());
}
