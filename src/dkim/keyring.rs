//! The active DKIM keys of every domain, in memory, loaded into ring once: what signing at
//! enqueue asks for each message. Like the sender directory (`crate::senders::directory`), a
//! [`Keyring`] keeps its own store connection and rebuilds its snapshot when `PRAGMA
//! data_version` moves, so a key activated or retired with the CLI signs (or stops signing)
//! from the next message on, without a query per message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::key::{Algorithm, SigningKey};
use super::signature::{SignatureInput, sign};
use crate::store::{Store, StoreError, StoreLocation};

/// One active key of a domain.
#[derive(Debug)]
pub struct ActiveKey {
    pub selector: String,
    pub key: SigningKey,
}

/// The active keys of one domain, and the account whose verified domain it is: only that
/// account's mail is signed with them.
#[derive(Debug)]
pub struct DomainKeys {
    /// ASCII, lower case: the `d=`.
    pub domain: String,
    pub owner: i64,
    /// RSA first, then Ed25519; by selector within an algorithm.
    pub keys: Vec<ActiveKey>,
}

/// A key as the store hands it to the keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKeyRow {
    pub domain: String,
    pub owner: i64,
    pub selector: String,
    pub private: super::PrivateKey,
}

/// The signature fields for one message, and which selectors made them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signed {
    /// `DKIM-Signature:` fields, each ending in CRLF, to put above the message.
    pub fields: String,
    pub selectors: Vec<String>,
}

impl DomainKeys {
    /// Signs a message with every key; a key that fails to sign is skipped (the others
    /// still sign), so a message is never refused for it.
    pub fn sign(&self, head: &[u8], body_hash: &[u8], timestamp: u64) -> Signed {
        let mut signed = Signed::default();
        for active in &self.keys {
            let input = SignatureInput { domain: &self.domain, selector: &active.selector, timestamp, head, body_hash };
            match sign(&input, &active.key) {
                Ok(field) => {
                    signed.fields.push_str(&field);
                    signed.selectors.push(active.selector.clone());
                }
                Err(e) => {
                    tracing::warn!(domain = %self.domain, selector = %active.selector, error = %e, "dkim signing failed")
                }
            }
        }
        signed
    }
}

/// Every domain's active keys at one store version.
#[derive(Debug, Default)]
pub struct KeySnapshot {
    domains: HashMap<String, Arc<DomainKeys>>,
    /// What it was built from: a reload that reads the same rows keeps this snapshot.
    rows: Vec<ActiveKeyRow>,
}

impl KeySnapshot {
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(Self::from_rows(store.active_dkim_keys()?))
    }

    /// Loads each key into ring; a key ring cannot read is left out and logged (it was
    /// checked at generation, so only a damaged store gets here).
    pub fn from_rows(rows: Vec<ActiveKeyRow>) -> Self {
        let mut domains: HashMap<String, DomainKeys> = HashMap::new();
        for row in rows.iter().cloned() {
            let key = match SigningKey::load(&row.private) {
                Ok(k) => k,
                Err(e) => {
                    tracing::warn!(domain = %row.domain, selector = %row.selector, error = %e, "dkim key skipped");
                    continue;
                }
            };
            let domain = row.domain.to_ascii_lowercase();
            let entry = domains.entry(domain.clone()).or_insert_with(|| DomainKeys {
                domain,
                owner: row.owner,
                keys: Vec::new(),
            });
            entry.keys.push(ActiveKey { selector: row.selector, key });
        }
        for keys in domains.values_mut() {
            keys.keys.sort_by(|a, b| {
                (algorithm_rank(a.key.algorithm()), &a.selector).cmp(&(algorithm_rank(b.key.algorithm()), &b.selector))
            });
        }
        Self { domains: domains.into_iter().map(|(d, k)| (d, Arc::new(k))).collect(), rows }
    }

    /// The active keys of `ascii_domain` (lower case), if it has any.
    pub fn domain(&self, ascii_domain: &str) -> Option<Arc<DomainKeys>> {
        self.domains.get(ascii_domain).cloned()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }
}

fn algorithm_rank(a: Algorithm) -> u8 {
    match a {
        Algorithm::Rsa => 0,
        Algorithm::Ed25519 => 1,
    }
}

struct Inner {
    store: Store,
    data_version: i64,
    snapshot: Arc<KeySnapshot>,
}

/// The keyring the queue signs with (behind an `Arc`).
pub struct Keyring {
    inner: Mutex<Inner>,
}

impl Keyring {
    /// Opens its own connection to the store at `location`.
    pub fn open(location: impl Into<StoreLocation>) -> Result<Self, StoreError> {
        Self::new(Store::connect(&location.into())?)
    }

    /// Takes a connection that nothing else writes through.
    pub fn new(store: Store) -> Result<Self, StoreError> {
        let data_version = store.data_version()?;
        let snapshot = Arc::new(KeySnapshot::load(&store)?);
        Ok(Self { inner: Mutex::new(Inner { store, data_version, snapshot }) })
    }

    /// The current snapshot, rebuilt first if the store changed since the last call. Most
    /// changes are not to keys (a login's last-used time): the rows are read again, and only
    /// when they differ are the keys loaded into ring again.
    pub fn snapshot(&self) -> Result<Arc<KeySnapshot>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let version = inner.store.data_version()?;
        if version != inner.data_version {
            let rows = inner.store.active_dkim_keys()?;
            if rows != inner.snapshot.rows {
                inner.snapshot = Arc::new(KeySnapshot::from_rows(rows));
            }
            inner.data_version = version;
        }
        Ok(inner.snapshot.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::EmailAddress;
    use crate::dkim::{KeyState, key::generate};
    use crate::senders::SenderEntry;

    #[test]
    fn follows_the_store_and_keeps_the_snapshot_when_keys_did_not_change() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut cli = Store::open(&path).unwrap();
        let ann = EmailAddress::parse("ann@example.com").unwrap();
        let ann_id = cli.add_account(&ann).unwrap().id;
        cli.add_sender(&ann, &SenderEntry::parse("example.org").unwrap(), true).unwrap();
        cli.add_dkim_keys("example.org", &[("s1".into(), generate(Algorithm::Ed25519).unwrap())]).unwrap();
        let keyring = Keyring::open(&path).unwrap();
        assert!(keyring.snapshot().unwrap().is_empty(), "a published key does not sign");

        cli.set_dkim_key_state("example.org", "s1", KeyState::Active).unwrap();
        let active = keyring.snapshot().unwrap();
        let keys = active.domain("example.org").unwrap();
        assert_eq!((keys.owner, keys.keys.len(), keys.keys[0].selector.as_str()), (ann_id, 1, "s1"));

        // Another change to the store: same keys, same snapshot.
        cli.add_account(&EmailAddress::parse("bob@example.net").unwrap()).unwrap();
        assert!(Arc::ptr_eq(&active, &keyring.snapshot().unwrap()));

        // Removing the sender domain removes its keys.
        cli.remove_sender(&ann, &SenderEntry::parse("example.org").unwrap()).unwrap();
        assert!(keyring.snapshot().unwrap().is_empty());
        assert!(cli.dkim_keys(None).unwrap().is_empty());
    }
}
