//! The store's rules through its public interface, on the backend of the run: SQLite, or
//! PostgreSQL under `RELAYKEY_TEST_STORE=postgresql` (`.ci/test` runs both). Every rule of the
//! README holds in both: 15 + 15 per account, usernames unique system-wide and without regard
//! to case, show-once secrets and masking, last-5 uniqueness within an account, one owner per
//! sender entry, removal freeing usernames, and the caps under writers racing on separate
//! connections. Another connection's commit moves `data_version` (what drops the caches).

#[path = "support/test_store.rs"]
mod test_store;

use std::collections::HashSet;
use std::sync::{Arc, Barrier};

use relaykey::address::EmailAddress;
use relaykey::config::AuthConfig;
use relaykey::model::Permission;
use relaykey::restriction::AccessRestriction;
use relaykey::secret::{HashParams, Secret, mask};
use relaykey::senders::SenderEntry;
use relaykey::store::{NewApiKey, NewSmtpCredential, Store, StoreError, StoreLocation};

fn cheap() -> HashParams {
    AuthConfig { argon2_memory_kib: 256, argon2_iterations: 1, ..AuthConfig::default() }.hash_params()
}

fn addr(s: &str) -> EmailAddress {
    EmailAddress::parse(s).unwrap()
}

/// A fresh store of this run's backend, and how to open more connections to it.
struct Fixture {
    _dir: tempfile::TempDir,
    location: StoreLocation,
    store: Store,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let location = StoreLocation::parse(&test_store::test_database(dir.path()), None, None).unwrap();
        let store = Store::connect(&location).unwrap();
        assert_eq!(store.is_postgres(), test_store::on_postgres(), "the run's backend");
        Self { _dir: dir, location, store }
    }

    /// Another connection, as another process or host has.
    fn other(&self) -> Store {
        Store::connect(&self.location).unwrap()
    }
}

fn key(store: &mut Store, account: &str) -> Result<(i64, Secret), StoreError> {
    let new = NewApiKey {
        name: "k".into(),
        permissions: [Permission::Smtp].into_iter().collect(),
        allow: AccessRestriction::default(),
    };
    store.create_api_key(&addr(account), new, &cheap()).map(|(k, s)| (k.id, s))
}

fn credential(store: &mut Store, account: &str, username: Option<&str>) -> Result<(i64, Secret), StoreError> {
    let new = NewSmtpCredential { username: username.map(addr), allow: AccessRestriction::default() };
    store.create_smtp_credential(&addr(account), new, &cheap()).map(|(c, s)| (c.id, s))
}

#[test]
fn an_account_holds_fifteen_keys_and_fifteen_credentials() {
    let mut f = Fixture::new();
    f.store.add_account(&addr("ann@example.com")).unwrap();
    for i in 0..15 {
        key(&mut f.store, "ann@example.com").unwrap();
        credential(&mut f.store, "ann@example.com", Some(&format!("u{i}@example.com"))).unwrap();
    }
    let refused = key(&mut f.store, "ann@example.com").unwrap_err();
    assert!(matches!(refused, StoreError::LimitReached { max: 15, .. }), "{refused}");
    let refused = credential(&mut f.store, "ann@example.com", Some("u99@example.com")).unwrap_err();
    assert!(matches!(refused, StoreError::LimitReached { max: 15, .. }), "{refused}");
    let account = f.store.account(&addr("ann@example.com")).unwrap();
    assert_eq!(f.store.account_counts(account.id).unwrap(), (15, 15));

    // A removal makes room for exactly one more.
    let first = f.store.api_keys(&addr("ann@example.com")).unwrap().items[0].id;
    f.store.remove_api_key(&addr("ann@example.com"), first).unwrap();
    key(&mut f.store, "ann@example.com").unwrap();
    assert!(key(&mut f.store, "ann@example.com").is_err());
}

#[test]
fn usernames_are_unique_system_wide_whatever_their_case() {
    let mut f = Fixture::new();
    f.store.add_account(&addr("ann@example.com")).unwrap();
    f.store.add_account(&addr("bob@example.com")).unwrap();
    credential(&mut f.store, "bob@example.com", Some("shared@example.com")).unwrap();
    for taken in ["shared@example.com", "SHARED@Example.COM", "bob@example.com", "Bob@example.com"] {
        let refused = credential(&mut f.store, "ann@example.com", Some(taken)).unwrap_err();
        assert!(matches!(refused, StoreError::UsernameTaken(_)), "{taken}: {refused}");
    }
    let refused = f.store.add_account(&addr("Shared@example.com")).unwrap_err();
    assert!(matches!(refused, StoreError::UsernameTaken(_) | StoreError::AccountExists(_)), "{refused}");
    let refused = f.store.add_account(&addr("ANN@example.com")).unwrap_err();
    assert!(matches!(refused, StoreError::AccountExists(_) | StoreError::UsernameTaken(_)), "{refused}");
    // Found whatever the case it is asked in.
    let found = f.store.smtp_credential_by_username("Shared@EXAMPLE.com").unwrap().expect("case-insensitive lookup");
    assert_eq!(found.username.as_str(), "shared@example.com");
}

#[test]
fn secrets_are_shown_once_stored_hashed_and_listed_masked_with_distinct_last_five() {
    let mut f = Fixture::new();
    f.store.add_account(&addr("ann@example.com")).unwrap();
    let mut secrets = Vec::new();
    for _ in 0..15 {
        let (id, secret) = key(&mut f.store, "ann@example.com").unwrap();
        secrets.push((id, secret.expose().to_string()));
    }
    let listed = f.store.api_keys(&addr("ann@example.com")).unwrap().items;
    assert_eq!(listed.len(), 15);
    let last5: HashSet<&str> = listed.iter().map(|k| k.last5.as_str()).collect();
    assert_eq!(last5.len(), 15, "last 5 characters unique within the account");
    for (id, secret) in &secrets {
        let stored = listed.iter().find(|k| k.id == *id).unwrap();
        assert_eq!(stored.last5, secret[secret.len() - 5..]);
        assert!(stored.hash.starts_with("$argon2id$"), "{}", stored.hash);
        assert!(!stored.hash.contains(secret.as_str()));
        assert_eq!(mask(&stored.last5, secret.len()), format!("{}{}", "*".repeat(secret.len() - 5), stored.last5));
        // The key is found again by (account, last 5) alone.
        let found = f.store.api_key_by_last5(stored.account_id, &stored.last5).unwrap().unwrap();
        assert_eq!(found.id, *id);
    }
    // A change gives a new secret under the same id; the old one is gone from the store.
    let (id, old) = &secrets[0];
    let (changed, new) = f.store.change_api_key(&addr("ann@example.com"), *id, &cheap()).unwrap();
    assert_eq!(changed.id, *id);
    assert_ne!(new.expose(), old.as_str());
    assert_eq!(changed.last5, new.expose()[new.expose().len() - 5..]);
}

#[test]
fn a_sender_entry_has_one_owner() {
    let mut f = Fixture::new();
    let ann = addr("ann@example.com");
    let bob = addr("bob@example.com");
    f.store.add_account(&ann).unwrap();
    f.store.add_account(&bob).unwrap();
    let domain = SenderEntry::parse("brand.example").unwrap();
    f.store.add_sender(&ann, &domain, true).unwrap();
    let refused = f.store.add_sender(&bob, &domain, true).unwrap_err();
    assert!(matches!(refused, StoreError::SenderTaken(_)), "{refused}");
    let (_, owner) = f.store.sender_owner("news@brand.example").unwrap().expect("an owner");
    assert_eq!(owner.email, ann);
    // Each account owns its own address from the start.
    let (_, owner) = f.store.sender_owner("bob@example.com").unwrap().expect("an owner");
    assert_eq!(owner.email, bob);
}

#[test]
fn removing_an_account_removes_its_secrets_and_frees_its_usernames() {
    let mut f = Fixture::new();
    f.store.add_account(&addr("ann@example.com")).unwrap();
    credential(&mut f.store, "ann@example.com", Some("app@example.com")).unwrap();
    let (kid, _) = key(&mut f.store, "ann@example.com").unwrap();
    f.store.remove_account(&addr("ann@example.com")).unwrap();
    assert!(f.store.api_key_by_id(kid).unwrap().is_none());
    assert!(f.store.smtp_credential_by_username("app@example.com").unwrap().is_none());
    f.store.add_account(&addr("bob@example.com")).unwrap();
    credential(&mut f.store, "bob@example.com", Some("app@example.com")).unwrap();
    f.store.add_account(&addr("ann@example.com")).unwrap();
}

#[test]
fn writers_on_separate_connections_cannot_pass_the_caps_or_share_a_username() {
    let f = Fixture::new();
    let mut admin = f.other();
    admin.add_account(&addr("ann@example.com")).unwrap();
    for i in 0..8 {
        admin.add_account(&addr(&format!("user{i}@example.com"))).unwrap();
    }
    let threads = 12;
    let start = Arc::new(Barrier::new(threads));
    let handles: Vec<_> = (0..threads)
        .map(|i| {
            let (mut store, start) = (f.other(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                let keys: Vec<bool> = (0..2).map(|_| key(&mut store, "ann@example.com").is_ok()).collect();
                let account = format!("user{}@example.com", i % 8);
                let username = credential(&mut store, &account, Some("contested@example.com"));
                if let Err(e) = &username {
                    assert!(matches!(e, StoreError::UsernameTaken(_)), "{e}");
                }
                (keys.iter().filter(|k| **k).count(), username.is_ok())
            })
        })
        .collect();
    let results: Vec<(usize, bool)> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results.iter().map(|r| r.0).sum::<usize>(), 15, "24 attempts, 15 keys");
    assert_eq!(results.iter().filter(|r| r.1).count(), 1, "one username, one owner");
    assert_eq!(admin.api_keys(&addr("ann@example.com")).unwrap().items.len(), 15);
}

#[test]
fn another_connections_commit_moves_the_data_version() {
    let mut f = Fixture::new();
    let watcher = f.other();
    f.store.add_account(&addr("ann@example.com")).unwrap();
    // PostgreSQL: until the change feed listens, every call gives a new value (nothing may be
    // cached); wait (bounded) until it settles.
    let mut before = watcher.data_version().unwrap();
    for _ in 0..3000 {
        let now = watcher.data_version().unwrap();
        if now == before {
            break;
        }
        before = now;
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // Reading moves nothing.
    f.store.accounts().unwrap();
    assert_eq!(watcher.data_version().unwrap(), before, "the version settles and reads leave it");
    credential(&mut f.store, "ann@example.com", None).unwrap();
    let after = watcher.data_version().unwrap();
    assert_ne!(before, after, "a commit elsewhere is seen");
    assert!(watcher.smtp_credential_by_username("ann@example.com").unwrap().is_some());
}
