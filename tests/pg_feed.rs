//! A change committed through another change feed (another "host": the same database under
//! another name, in this process) is seen by the authenticator's next login: the old password
//! is refused and the new one granted, 50 times in a row, each login right after the commit.
//!
//! This passes with or without the sync round of `ChangeFeed::version`, since in one quiet
//! process the notification usually arrives first. The case that fails without the round is
//! `pg_hosts::every_key_change_on_a_is_refused_by_b_at_its_very_next_login`: two daemons,
//! 300 rounds, where a busy host read the notification too late in 3 of them.

mod support;

use relaykey::address::EmailAddress;
use relaykey::auth::{Authenticator, Decision};
use relaykey::config::AuthConfig;
use relaykey::secret::{HashParams, Secret};
use relaykey::store::{NewSmtpCredential, Store, StoreLocation};
use support::postgres::{PgServer, needs_postgres};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_login_after_a_change_on_another_host_sees_it() {
    if !needs_postgres() {
        return;
    }
    let url = PgServer::shared().create_database();
    let daemon_side = StoreLocation::parse(&url, None, None).unwrap();
    // Another "host": the same database under another name, so another change feed.
    let other_host = StoreLocation::parse(&format!("{url}&application_name=host-a"), None, None).unwrap();
    let config = AuthConfig { argon2_memory_kib: 256, argon2_iterations: 1, ..AuthConfig::default() };
    let params = HashParams { memory_kib: 256, iterations: 1, parallelism: 1 };

    let mut writer = Store::connect(&other_host).unwrap();
    let email = EmailAddress::parse("ann@example.com").unwrap();
    writer.add_account(&email).unwrap();
    let new = NewSmtpCredential { username: None, allow: Default::default() };
    let (cred, mut secret) = writer.create_smtp_credential(&email, new, &params).unwrap();

    let auth = Authenticator::open(&daemon_side, &config).unwrap();
    assert!(matches!(auth.authenticate("ann@example.com", &secret, None).await, Decision::Granted(_)));
    for round in 0..50 {
        // Cached now: the second login of a secret is answered from memory.
        assert!(
            matches!(auth.authenticate("ann@example.com", &secret, None).await, Decision::Granted(_)),
            "round {round}"
        );
        let (_, changed) =
            tokio::task::block_in_place(|| writer.change_smtp_credential(&email, cred.id, &params)).unwrap();
        let old = Secret::from_presented(secret.expose().to_string());
        assert!(
            matches!(auth.authenticate("ann@example.com", &old, None).await, Decision::Denied(_)),
            "round {round}: the old password still worked"
        );
        assert!(
            matches!(auth.authenticate("ann@example.com", &changed, None).await, Decision::Granted(_)),
            "round {round}: the new one did not"
        );
        secret = changed;
    }
}
