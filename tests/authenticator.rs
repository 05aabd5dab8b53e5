//! The decision path at module level: every rule of the Authenticator, the one-verification
//! budget, the cache and its invalidation by another connection's commit, and temporary
//! failures. Runs on SQLite, or on PostgreSQL under `RELAYKEY_TEST_STORE=postgresql`.

#[path = "support/test_store.rs"]
mod test_store;

use std::net::IpAddr;
use std::path::Path;

use relaykey::address::EmailAddress;
use relaykey::auth::{Authenticator, CredentialRef, Decision, DenyReason, Grant};
use relaykey::config::AuthConfig;
use relaykey::model::{Permission, PermissionSet};
use relaykey::restriction::AccessRestriction;
use relaykey::secret::Secret;
use relaykey::store::{NewApiKey, NewSmtpCredential, Store, StoreLocation};

fn cheap() -> AuthConfig {
    AuthConfig { argon2_memory_kib: 256, argon2_iterations: 1, ..AuthConfig::default() }
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

fn ip(s: &str) -> Option<IpAddr> {
    Some(s.parse().unwrap())
}

struct Fixture {
    _dir: tempfile::TempDir,
    /// The `database` value: an SQLite file or a `postgresql://` URL.
    database: String,
    location: StoreLocation,
    admin: Store,
    auth: Authenticator,
}

impl Fixture {
    /// On the store of this run.
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = test_store::test_database(dir.path());
        Self::on(dir, database)
    }

    /// On an SQLite file whatever the run, for what only a file can show.
    fn sqlite() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let database = dir.path().join("relaykey.db").display().to_string();
        Self::on(dir, database)
    }

    fn on(dir: tempfile::TempDir, database: String) -> Self {
        let location = StoreLocation::parse(&database, None, None).unwrap();
        let admin = Store::connect(&location).unwrap();
        let auth = Authenticator::open(&location, &cheap()).unwrap();
        Self { _dir: dir, database, location, admin, auth }
    }

    /// Runs `sql` on the store behind the store's back (as another program would).
    fn execute_directly(&self, sql: &str) {
        match self.location.sqlite_path() {
            Some(path) => {
                rusqlite::Connection::open(path).unwrap().execute(sql, []).unwrap();
            }
            None => {
                test_store::postgres::PgServer::shared().psql(&self.database, sql);
            }
        }
    }

    fn account(&mut self, email: &str) -> EmailAddress {
        let a = addr(email);
        self.admin.add_account(&a).unwrap();
        a
    }

    fn credential(&mut self, account: &EmailAddress, username: Option<&str>, allow: &[&str]) -> (i64, Secret) {
        let new =
            NewSmtpCredential { username: username.map(addr), allow: AccessRestriction::parse_all(allow).unwrap() };
        let (c, s) = self.admin.create_smtp_credential(account, new, &cheap().hash_params()).unwrap();
        (c.id, s)
    }

    fn key(&mut self, account: &EmailAddress, perms: &[Permission], allow: &[&str]) -> (i64, Secret) {
        let new = NewApiKey {
            name: "test".into(),
            permissions: perms.iter().copied().collect(),
            allow: AccessRestriction::parse_all(allow).unwrap(),
        };
        let (k, s) = self.admin.create_api_key(account, new, &cheap().hash_params()).unwrap();
        (k.id, s)
    }

    async fn login(&self, user: &str, secret: &Secret, from: Option<IpAddr>) -> Decision {
        self.auth.authenticate(user, secret, from).await
    }
}

fn granted(d: &Decision) -> &Grant {
    match d {
        Decision::Granted(g) => g,
        other => panic!("expected a grant, got {other:?}"),
    }
}

fn denied(d: &Decision) -> DenyReason {
    match d {
        Decision::Denied(r) => *r,
        other => panic!("expected a denial, got {other:?}"),
    }
}

#[tokio::test]
async fn credential_username_with_its_password_succeeds_case_insensitively() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (id, pw) = f.credential(&ann, Some("Relay@Example.com"), &[]);
    let d = f.login("RELAY@example.COM", &pw, ip("192.0.2.1")).await;
    let g = granted(&d);
    assert_eq!(g.username, "relay@example.com");
    assert_eq!(g.account, "ann@example.com");
    assert!(matches!(g.credential, CredentialRef::SmtpCredential { id: got, .. } if got == id));
    assert_eq!(
        denied(&f.login("relay@example.com", &Secret::from_presented("wrong"), None).await),
        DenyReason::BadSecret
    );
}

#[tokio::test]
async fn a_password_only_works_for_its_own_username() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &[]);
    f.credential(&ann, Some("other@example.com"), &[]);
    assert_eq!(denied(&f.login("other@example.com", &pw, None).await), DenyReason::BadSecret);
}

#[tokio::test]
async fn api_key_with_smtp_works_for_the_account_address_and_its_usernames() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    f.credential(&ann, Some("app@example.com"), &[]);
    let (_, key) = f.key(&ann, &[Permission::Smtp], &[]);
    let g = f.login("ann@example.com", &key, None).await;
    assert_eq!(granted(&g).username, "ann@example.com");
    let g = f.login("APP@example.com", &key, None).await;
    assert_eq!(granted(&g).username, "app@example.com");
    assert_eq!(denied(&f.login("nobody@example.com", &key, None).await), DenyReason::UnknownUser);
}

#[tokio::test]
async fn api_key_without_smtp_or_of_another_account_fails() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let bob = f.account("bob@example.com");
    let (_, view_only) = f.key(&ann, &[Permission::View, Permission::Send, Permission::Manage], &[]);
    let (_, bobs) = f.key(&bob, &[Permission::Smtp], &[]);
    assert_eq!(denied(&f.login("ann@example.com", &view_only, None).await), DenyReason::PermissionMissing);
    assert!(!f.login("ann@example.com", &bobs, None).await.is_granted());
}

#[tokio::test]
async fn disabled_account_fails_for_both_kinds_and_enabling_restores() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &[]);
    let (_, key) = f.key(&ann, &[Permission::Smtp], &[]);
    assert!(f.login("ann@example.com", &pw, None).await.is_granted());
    f.admin.set_account_enabled(&ann, false).unwrap();
    assert_eq!(denied(&f.login("ann@example.com", &pw, None).await), DenyReason::AccountDisabled);
    assert_eq!(denied(&f.login("ann@example.com", &key, None).await), DenyReason::AccountDisabled);
    f.admin.set_account_enabled(&ann, true).unwrap();
    assert!(f.login("ann@example.com", &key, None).await.is_granted());
}

#[tokio::test]
async fn removed_secrets_fail_at_once_even_when_cached() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (cid, pw) = f.credential(&ann, None, &[]);
    let (kid, key) = f.key(&ann, &[Permission::Smtp], &[]);
    for _ in 0..2 {
        assert!(f.login("ann@example.com", &pw, None).await.is_granted());
        assert!(f.login("ann@example.com", &key, None).await.is_granted());
    }
    assert!(granted(&f.login("ann@example.com", &pw, None).await).cached);
    f.admin.remove_smtp_credential(&ann, cid).unwrap();
    f.admin.remove_api_key(&ann, kid).unwrap();
    assert!(!f.login("ann@example.com", &pw, None).await.is_granted());
    assert!(!f.login("ann@example.com", &key, None).await.is_granted());
}

#[tokio::test]
async fn rotation_kills_the_old_secret_on_the_next_call_and_keeps_settings() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (kid, old) = f.key(&ann, &[Permission::Smtp, Permission::View], &["10.0.0.0/8"]);
    assert!(f.login("ann@example.com", &old, ip("10.1.1.1")).await.is_granted());
    assert!(f.login("ann@example.com", &old, ip("10.1.1.1")).await.is_granted()); // cached now
    let (key, new) = f.admin.change_api_key(&ann, kid, &cheap().hash_params()).unwrap();
    assert_eq!(key.id, kid);
    assert_eq!(key.permissions, [Permission::Smtp, Permission::View].into_iter().collect::<PermissionSet>());
    assert_eq!(key.allow.to_strings(), ["10.0.0.0/8"]);
    assert!(!f.login("ann@example.com", &old, ip("10.1.1.1")).await.is_granted());
    assert!(f.login("ann@example.com", &new, ip("10.1.1.1")).await.is_granted());
    assert_eq!(denied(&f.login("ann@example.com", &new, ip("11.0.0.1")).await), DenyReason::IpNotAllowed);

    let (cid, old_pw) = f.credential(&ann, None, &[]);
    assert!(f.login("ann@example.com", &old_pw, None).await.is_granted());
    let (_, new_pw) = f.admin.change_smtp_credential(&ann, cid, &cheap().hash_params()).unwrap();
    assert_eq!(denied(&f.login("ann@example.com", &old_pw, None).await), DenyReason::BadSecret);
    assert!(f.login("ann@example.com", &new_pw, None).await.is_granted());
}

#[tokio::test]
async fn restrictions_apply_in_both_families_with_mapped_addresses_and_without_an_ip() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &["192.0.2.0/24", "2001:db8::/32", "198.51.100.10-198.51.100.20"]);
    for ok in ["192.0.2.9", "::ffff:192.0.2.9", "2001:db8::1", "198.51.100.15"] {
        assert!(f.login("ann@example.com", &pw, ip(ok)).await.is_granted(), "{ok}");
    }
    for no in ["192.0.3.1", "2001:db9::1", "198.51.100.21", "::ffff:192.0.3.1"] {
        assert_eq!(denied(&f.login("ann@example.com", &pw, ip(no)).await), DenyReason::IpNotAllowed, "{no}");
    }
    assert_eq!(denied(&f.login("ann@example.com", &pw, None).await), DenyReason::IpRequired);
}

#[tokio::test]
async fn each_call_costs_at_most_one_verification_and_unknown_users_cost_one() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &[]);
    for _ in 0..14 {
        f.key(&ann, &[Permission::Smtp], &[]);
    }
    let (_, key) = f.key(&ann, &[Permission::Smtp], &[]);
    let mut before = f.auth.verifications();
    for (user, secret, expect_cost) in [
        ("nobody@example.com", Secret::from_presented("x"), 1),
        ("nobody@example.com", key.clone(), 1),
        ("ann@example.com", Secret::from_presented("wrong"), 1),
        ("ann@example.com", key.clone(), 1),
        ("ann@example.com", key.clone(), 0), // cached
        ("ann@example.com", pw.clone(), 1),
        ("ann@example.com", pw.clone(), 0), // cached
    ] {
        f.login(user, &secret, None).await;
        let now = f.auth.verifications();
        assert_eq!(now - before, expect_cost, "{user} with {secret}");
        before = now;
    }
}

#[tokio::test]
async fn failures_are_never_cached() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    f.credential(&ann, None, &[]);
    let wrong = Secret::from_presented("wrong");
    let before = f.auth.verifications();
    f.login("ann@example.com", &wrong, None).await;
    f.login("ann@example.com", &wrong, None).await;
    assert_eq!(f.auth.verifications() - before, 2);
}

#[tokio::test]
async fn recheck_sees_rotation_disabling_and_new_restrictions_without_argon2() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (cid, pw) = f.credential(&ann, None, &[]);
    let grant = granted(&f.login("ann@example.com", &pw, ip("192.0.2.1")).await).clone();
    let purpose = relaykey::auth::Purpose::Smtp;
    assert!(f.auth.recheck(&grant, ip("192.0.2.1"), purpose).await.is_granted());
    let before = f.auth.verifications();
    f.admin
        .edit_smtp_credential(
            &ann,
            cid,
            relaykey::store::SmtpCredentialEdit { allow: Some(AccessRestriction::parse_all(&["10.0.0.1"]).unwrap()) },
        )
        .unwrap();
    assert_eq!(denied(&f.auth.recheck(&grant, ip("192.0.2.1"), purpose).await), DenyReason::IpNotAllowed);
    f.admin.set_account_enabled(&ann, false).unwrap();
    assert_eq!(denied(&f.auth.recheck(&grant, ip("10.0.0.1"), purpose).await), DenyReason::AccountDisabled);
    f.admin.set_account_enabled(&ann, true).unwrap();
    f.admin.change_smtp_credential(&ann, cid, &cheap().hash_params()).unwrap();
    assert_eq!(denied(&f.auth.recheck(&grant, ip("10.0.0.1"), purpose).await), DenyReason::SecretRevoked);
    assert_eq!(f.auth.verifications(), before);
}

#[tokio::test]
async fn api_bearer_keys_need_the_permission_and_smtp_passwords_are_not_keys() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &[]);
    let (_, key) = f.key(&ann, &[Permission::View], &["127.0.0.0/8"]);
    let view = f.auth.authenticate_api_key(&key, ip("127.0.0.2"), Permission::View).await;
    assert_eq!(granted(&view).account, "ann@example.com");
    assert_eq!(
        denied(&f.auth.authenticate_api_key(&key, ip("127.0.0.2"), Permission::Manage).await),
        DenyReason::PermissionMissing
    );
    assert_eq!(
        denied(&f.auth.authenticate_api_key(&key, ip("10.0.0.1"), Permission::View).await),
        DenyReason::IpNotAllowed
    );
    assert_eq!(denied(&f.auth.authenticate_api_key(&pw, None, Permission::View).await), DenyReason::UnknownUser);
}

fn corrupt(path: &Path) {
    use std::io::{Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
    file.seek(SeekFrom::Start(0)).unwrap();
    file.write_all(&[0x55; 100]).unwrap();
    file.sync_all().unwrap();
}

#[tokio::test]
async fn an_unreadable_store_is_a_temporary_failure_not_a_wrong_password() {
    // A broken file is SQLite's case (PostgreSQL down: tests/pg_outage.rs).
    let mut f = Fixture::sqlite();
    let path = f.location.sqlite_path().unwrap().to_path_buf();
    let ann = f.account("ann@example.com");
    let (_, pw) = f.credential(&ann, None, &[]);
    // Push everything out of the WAL into the main file, then break the main file's header.
    f.admin.ping().unwrap();
    drop(f.admin);
    let checkpoint = rusqlite::Connection::open(&path).unwrap();
    checkpoint.pragma_update(None, "wal_checkpoint", "TRUNCATE").unwrap();
    drop(checkpoint);
    corrupt(&path);
    let d = f.auth.authenticate("ann@example.com", &pw, None).await;
    assert!(matches!(d, Decision::TempFail(_)), "{d:?}");
    assert_eq!(d.kind(), "tempfail");
}

#[tokio::test]
async fn touch_records_last_use_once_per_interval() {
    let mut f = Fixture::new();
    let ann = f.account("ann@example.com");
    let (kid, key) = f.key(&ann, &[Permission::Smtp], &[]);
    let grant = granted(&f.login("ann@example.com", &key, None).await).clone();
    assert_eq!(f.admin.api_key(&ann, kid).unwrap().last_used_at, None);
    f.auth.touch(&grant.credential).await;
    let first = f.admin.api_key(&ann, kid).unwrap().last_used_at;
    assert!(first.is_some());
    // A second use within the interval writes nothing: clear the column and check it stays so.
    f.execute_directly("UPDATE api_keys SET last_used_at = NULL");
    f.auth.touch(&grant.credential).await;
    assert_eq!(f.admin.api_key(&ann, kid).unwrap().last_used_at, None);
}
