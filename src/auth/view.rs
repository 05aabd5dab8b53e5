//! The accounts, SMTP credentials and API keys as the store holds them, in memory, so that
//! re-checking a login (the policy server does it at every MAIL, RCPT and DATA of an
//! authenticated session) costs a map lookup instead of store queries under a lock.
//!
//! Freshness: before each use, [`ViewSource::current`] reads `PRAGMA data_version` on a
//! connection of its own, which changes whenever another connection (the CLI, the HTTP API,
//! the authenticator's own writes) has committed. When it moved, the view is loaded again in
//! one read transaction begun after that read, so a change committed before a request is
//! always seen by that request. Loading runs off the async threads; requests that need the
//! new view wait for it, and the new view replaces the old one in one pointer swap, so nobody
//! reading the old one is held up.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use tracing::warn;

use super::Grant;
use super::decision::CredentialRef;
use crate::model::{Account, ApiKey, SmtpCredential};
use crate::restriction::AccessRestriction;
use crate::store::{Store, StoreError};

/// One snapshot of the store's credentials.
#[derive(Debug, Default)]
pub(crate) struct CredentialView {
    /// The `data_version` (of [`ViewSource`]'s probe connection) read before loading.
    version: i64,
    accounts: HashMap<i64, Account>,
    /// Account address → id. Keys are ASCII-lower-cased, as the store's `COLLATE NOCASE` compares.
    account_by_email: HashMap<String, i64>,
    smtp_credentials: HashMap<i64, SmtpCredential>,
    /// SMTP username → credential id, keyed like `account_by_email`.
    smtp_by_username: HashMap<String, i64>,
    api_keys: HashMap<i64, ApiKey>,
}

/// What a login name stands for now, without knowing which secret it used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NameStanding<'a> {
    Unknown,
    /// An SMTP credential's username: its account's state and the credential's restriction.
    Credential {
        enabled: bool,
        allow: &'a AccessRestriction,
    },
    /// An account's own address (usable with its API keys).
    Account {
        enabled: bool,
    },
}

impl CredentialView {
    /// Reads every account, credential and key; rows that cannot be read are left out (a login
    /// that used one is then refused) and logged.
    fn load(store: &Store, version: i64) -> Result<Self, StoreError> {
        let mut view = Self { version, ..Self::default() };
        for account in store.all_accounts()?.into_iter().filter_map(readable) {
            view.account_by_email.insert(account.email.as_str().to_ascii_lowercase(), account.id);
            view.accounts.insert(account.id, account);
        }
        for cred in store.all_smtp_credentials()?.into_iter().filter_map(readable) {
            view.smtp_by_username.insert(cred.username.as_str().to_ascii_lowercase(), cred.id);
            view.smtp_credentials.insert(cred.id, cred);
        }
        for key in store.all_api_keys()?.into_iter().filter_map(readable) {
            view.api_keys.insert(key.id, key);
        }
        Ok(view)
    }

    /// The grant as the store has it now, and whether its account is enabled; `None` when its
    /// secret was changed or removed, or its account removed.
    pub fn current(&self, grant: &Grant) -> Option<(Grant, bool)> {
        let account = self.accounts.get(&grant.account_id)?;
        // A rehash on login rewrites the stored hash but keeps its salt: the same secret, not a
        // revocation. Equal strings (the usual case) skip parsing the PHC strings.
        let same = |stored: &str, hash: &str| stored == hash || grant.credential.is_generation_of(stored);
        let (permissions, allow) = match &grant.credential {
            CredentialRef::SmtpCredential { id, hash } => {
                let cred =
                    self.smtp_credentials.get(id).filter(|c| same(&c.hash, hash) && c.account_id == account.id)?;
                (None, &cred.allow)
            }
            CredentialRef::ApiKey { id, hash } => {
                let key = self.api_keys.get(id).filter(|k| same(&k.hash, hash) && k.account_id == account.id)?;
                (Some(key.permissions), &key.allow)
            }
        };
        let now = Grant {
            account: account.email.to_string(),
            permissions,
            allow: allow.clone(),
            cached: false,
            ..grant.clone()
        };
        Some((now, account.enabled))
    }

    /// What `username` (trimmed and lower-cased) names: an SMTP credential first, as logins
    /// look it up, else an account's own address.
    pub fn name(&self, username: &str) -> NameStanding<'_> {
        let enabled = |account_id| self.accounts.get(&account_id).map(|a: &Account| a.enabled);
        if let Some(cred) = self.smtp_by_username.get(username).and_then(|id| self.smtp_credentials.get(id)) {
            return match enabled(cred.account_id) {
                Some(enabled) => NameStanding::Credential { enabled, allow: &cred.allow },
                None => NameStanding::Unknown,
            };
        }
        match self.account_by_email.get(username).and_then(|id| enabled(*id)) {
            Some(enabled) => NameStanding::Account { enabled },
            None => NameStanding::Unknown,
        }
    }
}

fn readable<T>(row: Result<T, StoreError>) -> Option<T> {
    row.map_err(|e| warn!(error = %e, "a stored credential cannot be read; logins that used it are refused")).ok()
}

/// Keeps a [`CredentialView`] in step with the store.
pub(crate) struct ViewSource {
    /// Used for nothing but `PRAGMA data_version`, so that the check never waits behind a
    /// login's queries or a "last used" write.
    probe: Mutex<Store>,
    /// Loads views, on a blocking thread.
    loader: Arc<Mutex<Store>>,
    published: RwLock<Arc<CredentialView>>,
    /// One load at a time; requests that find the view stale wait here for it.
    loading: tokio::sync::Mutex<()>,
}

impl ViewSource {
    /// Opens two more connections to `store`'s database and loads the first view.
    pub fn open(store: &Store) -> Result<Self, StoreError> {
        let probe = store.open_again()?;
        let loader = store.open_again()?;
        let version = probe.data_version()?;
        let view = loader.read_snapshot(|s| CredentialView::load(s, version))?;
        Ok(Self {
            probe: Mutex::new(probe),
            loader: Arc::new(Mutex::new(loader)),
            published: RwLock::new(Arc::new(view)),
            loading: tokio::sync::Mutex::new(()),
        })
    }

    /// A view that includes every change committed before this call.
    ///
    /// The `data_version` read runs on the calling thread: it takes microseconds (SQLite reads
    /// the WAL index in shared memory) and cannot wait behind our own connections.
    pub async fn current(&self) -> Result<Arc<CredentialView>, StoreError> {
        let version = self.probe.lock().unwrap_or_else(PoisonError::into_inner).data_version()?;
        let view = self.published();
        if view.version == version {
            return Ok(view);
        }
        let _one_load = self.loading.lock().await;
        let view = self.published();
        if view.version == version {
            return Ok(view);
        }
        let loader = self.loader.clone();
        let view = tokio::task::spawn_blocking(move || {
            let store = loader.lock().unwrap_or_else(PoisonError::into_inner);
            store.read_snapshot(|s| CredentialView::load(s, version))
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("credential load task failed: {e}")))??;
        let view = Arc::new(view);
        *self.published.write().unwrap_or_else(PoisonError::into_inner) = view.clone();
        Ok(view)
    }

    fn published(&self) -> Arc<CredentialView> {
        self.published.read().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::EmailAddress;
    use crate::model::PermissionSet;
    use crate::secret::HashParams;
    use crate::store::{NewApiKey, NewSmtpCredential};

    fn cheap() -> HashParams {
        crate::config::AuthConfig { argon2_memory_kib: 1024, argon2_iterations: 1, ..Default::default() }.hash_params()
    }

    struct Fixture {
        _dir: tempfile::TempDir,
        store: Store,
        source: ViewSource,
        email: EmailAddress,
    }

    fn fixture() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let email = EmailAddress::parse("Alice@Example.com").unwrap();
        store.add_account(&email).unwrap();
        let source = ViewSource::open(&store).unwrap();
        Fixture { _dir: dir, store, source, email }
    }

    fn grant_of(cred: &SmtpCredential, account: &Account) -> Grant {
        Grant {
            username: cred.username.to_string(),
            account_id: account.id,
            account: account.email.to_string(),
            credential: CredentialRef::SmtpCredential { id: cred.id, hash: cred.hash.clone() },
            permissions: None,
            allow: cred.allow.clone(),
            cached: true,
        }
    }

    #[tokio::test]
    async fn sees_each_commit_of_another_connection_at_the_next_call() {
        let mut f = fixture();
        let new = NewSmtpCredential { username: None, allow: AccessRestriction::default() };
        let (cred, _) = f.store.create_smtp_credential(&f.email, new, &cheap()).unwrap();
        let account = f.store.account(&f.email).unwrap();
        let grant = grant_of(&cred, &account);
        let (now, enabled) = f.source.current().await.unwrap().current(&grant).expect("created before the call");
        assert!(enabled && !now.cached);
        f.store.set_account_enabled(&f.email, false).unwrap();
        assert_eq!(f.source.current().await.unwrap().current(&grant).map(|(_, e)| e), Some(false));
        f.store.change_smtp_credential(&f.email, cred.id, &cheap()).unwrap();
        assert_eq!(f.source.current().await.unwrap().current(&grant), None, "a changed secret is gone");
    }

    #[tokio::test]
    async fn an_unchanged_store_keeps_the_same_view() {
        let f = fixture();
        let (a, b) = (f.source.current().await.unwrap(), f.source.current().await.unwrap());
        assert!(Arc::ptr_eq(&a, &b));
    }

    #[tokio::test]
    async fn api_keys_carry_their_current_permissions_and_restriction() {
        let mut f = fixture();
        let account = f.store.account(&f.email).unwrap();
        let new =
            NewApiKey { name: "k".into(), permissions: PermissionSet::all(), allow: AccessRestriction::default() };
        let (key, _) = f.store.create_api_key(&f.email, new, &cheap()).unwrap();
        let grant = Grant {
            username: "alice@example.com".into(),
            account_id: account.id,
            account: account.email.to_string(),
            credential: CredentialRef::ApiKey { id: key.id, hash: key.hash.clone() },
            permissions: Some(key.permissions),
            allow: AccessRestriction::default(),
            cached: false,
        };
        let narrowed = crate::store::ApiKeyEdit {
            allow: Some(AccessRestriction::parse_all(&["192.0.2.0/24"]).unwrap()),
            ..Default::default()
        };
        f.store.edit_api_key(&f.email, key.id, narrowed).unwrap();
        let (now, _) = f.source.current().await.unwrap().current(&grant).unwrap();
        assert!(!now.allow.is_unrestricted());
        f.store.remove_api_key(&f.email, key.id).unwrap();
        assert_eq!(f.source.current().await.unwrap().current(&grant), None);
    }

    #[tokio::test]
    async fn names_are_found_like_the_store_finds_them() {
        let mut f = fixture();
        let username = EmailAddress::parse("bob@example.com").unwrap();
        let new = NewSmtpCredential { username: Some(username), allow: AccessRestriction::default() };
        f.store.create_smtp_credential(&f.email, new, &cheap()).unwrap();
        let view = f.source.current().await.unwrap();
        assert!(matches!(view.name("bob@example.com"), NameStanding::Credential { enabled: true, .. }));
        assert_eq!(view.name("alice@example.com"), NameStanding::Account { enabled: true });
        assert_eq!(view.name("carol@example.com"), NameStanding::Unknown);
    }
}
