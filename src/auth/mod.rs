//! The Authenticator: the one decision path that SASL, policy, relay, the HTTP API and
//! `relaykey auth test` all call.
//!
//! One call costs at most one argon2 verification: a username names one SMTP credential, and an
//! API key used as a password is found by (account, last 5 characters), unique within an account.
//! An unknown user costs one verification against a dummy hash, so timing does not reveal which
//! usernames exist. Verifications run on a fixed pool of `verify_threads` threads (`verifier`).

mod cache;
mod decision;
mod ledger;
mod throttle;
mod verifier;
mod view;

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use decision::{CredentialRef, Decision, DenyReason, Grant};
pub use ledger::LoginLedger;
pub use throttle::{ClientBucket, FailureThrottle};

use cache::LoginCache;
use verifier::VerifierPool;
use view::{NameStanding, ViewSource};

use crate::config::AuthConfig;
use crate::model::{Account, ApiKey, Permission, SmtpCredential};
use crate::restriction::IpCheck;
use crate::secret::Secret;
use crate::store::{Store, StoreError};

/// What a login must be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// SMTP AUTH (SASL or the relay): credentials, or API keys with `smtp`.
    Smtp,
    /// The HTTP API: API keys only, with the given permission.
    Api(Permission),
}

/// A candidate found in the store: what to verify the secret against, and what to grant.
struct Candidate {
    hash: String,
    grant: Grant,
    enabled: bool,
}

struct State {
    store: Store,
    cache: LoginCache,
    data_version: i64,
}

pub struct Authenticator {
    state: Arc<Mutex<State>>,
    /// What `recheck` and `recheck_username` answer from, without a store query.
    views: ViewSource,
    verifier: VerifierPool,
    dummy_hash: Arc<str>,
    verifications: AtomicU64,
    /// When each credential's "last used" was last written: (is API key, id) → time.
    touched: Mutex<HashMap<(bool, i64), Instant>>,
}

/// How often a credential's "last used" time is written at most.
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("cannot prepare the dummy hash: {0}")]
    Hash(String),
    #[error("cannot start the verification threads: {0}")]
    Threads(std::io::Error),
}

impl Authenticator {
    /// Opens its own connection to the store at `path`. Writes made through *other* connections
    /// (the CLI, the HTTP API) invalidate the cache through `PRAGMA data_version`.
    pub fn open(path: &Path, config: &AuthConfig) -> Result<Self, AuthError> {
        Self::new(Store::open(path)?, config)
    }

    pub fn new(store: Store, config: &AuthConfig) -> Result<Self, AuthError> {
        let dummy =
            Secret::generate(crate::secret::SecretKind::SmtpPassword).map_err(|e| AuthError::Hash(e.to_string()))?;
        let dummy_hash = config.hash_params().hash(&dummy).map_err(|e| AuthError::Hash(e.to_string()))?;
        let data_version = store.data_version()?;
        let views = ViewSource::open(&store)?;
        Ok(Self {
            views,
            state: Arc::new(Mutex::new(State {
                store,
                cache: LoginCache::new(config.cache_ttl, config.cache_size),
                data_version,
            })),
            verifier: VerifierPool::new(config.verify_threads()).map_err(AuthError::Threads)?,
            dummy_hash: dummy_hash.into(),
            verifications: AtomicU64::new(0),
            touched: Mutex::new(HashMap::new()),
        })
    }

    /// Decides an SMTP login: `username` with a credential password or an API key.
    pub async fn authenticate(&self, username: &str, secret: &Secret, client_ip: Option<IpAddr>) -> Decision {
        let username = username.trim().to_lowercase();
        let lookup_secret = secret.clone();
        let name = username.clone();
        let decision = self
            .decide("smtp", username, secret, client_ip, Purpose::Smtp, move |store| {
                find_smtp_candidate(store, &name, &lookup_secret)
            })
            .await;
        crate::metrics::record_auth("smtp", decision.kind(), decision.reason());
        decision
    }

    /// Decides an HTTP API call made with `Authorization: Bearer <key>`.
    pub async fn authenticate_api_key(
        &self,
        secret: &Secret,
        client_ip: Option<IpAddr>,
        needs: Permission,
    ) -> Decision {
        let lookup_secret = secret.clone();
        let decision = self
            .decide("api", String::new(), secret, client_ip, Purpose::Api(needs), move |store| {
                find_api_candidate(store, &lookup_secret)
            })
            .await;
        crate::metrics::record_auth("api", decision.kind(), decision.reason());
        decision
    }

    async fn decide<F>(
        &self,
        domain: &'static str,
        username: String,
        secret: &Secret,
        ip: Option<IpAddr>,
        purpose: Purpose,
        find: F,
    ) -> Decision
    where
        F: FnOnce(&Store) -> Result<Option<Candidate>, StoreError> + Send + 'static,
    {
        let state = self.state.clone();
        let secret_for_key = secret.clone();
        let looked_up = tokio::task::spawn_blocking(move || {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            refresh(&mut st)?;
            let key = st.cache.key(domain, &username, &secret_for_key);
            if let Some(grant) = st.cache.get(&key, Instant::now()) {
                return Ok(Lookup::Cached(grant));
            }
            let generation = st.cache.generation();
            Ok::<_, StoreError>(Lookup::Fresh { candidate: find(&st.store)?, key, generation })
        })
        .await;
        let looked_up = match looked_up {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Decision::TempFail(e.to_string()),
            Err(e) => return Decision::TempFail(format!("lookup task failed: {e}")),
        };
        let (candidate, key, generation) = match looked_up {
            Lookup::Cached(mut grant) => {
                grant.cached = true;
                return admit(grant, true, ip, purpose);
            }
            Lookup::Fresh { candidate, key, generation } => (candidate, key, generation),
        };
        let hash = candidate.as_ref().map_or_else(|| self.dummy_hash.to_string(), |c| c.hash.clone());
        let Some(matched) = self.verify(secret, hash).await else {
            return Decision::TempFail("verification pool closed".into());
        };
        let Some(candidate) = candidate else {
            return Decision::Denied(DenyReason::UnknownUser);
        };
        if !matched {
            return Decision::Denied(DenyReason::BadSecret);
        }
        let decision = admit(candidate.grant.clone(), candidate.enabled, ip, purpose);
        if decision.is_granted() {
            self.remember(key, candidate.grant, generation);
        }
        decision
    }

    async fn verify(&self, secret: &Secret, hash: String) -> Option<bool> {
        self.verifications.fetch_add(1, Ordering::Relaxed);
        self.verifier.verify(secret, hash).await
    }

    fn remember(&self, key: cache::CacheKey, grant: Grant, generation: u64) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.cache.insert(key, grant, generation, Instant::now());
    }

    /// Re-checks, without argon2, that a grant still holds: the same secret (not changed or
    /// removed), the account enabled, the permission held, and `client_ip` inside the current
    /// restriction. The policy server calls this at MAIL and RCPT of authenticated sessions, so
    /// it answers from the in-memory view (`view`), which sees every committed change.
    pub async fn recheck(&self, grant: &Grant, client_ip: Option<IpAddr>, purpose: Purpose) -> Decision {
        self.recheck_all([grant], client_ip, purpose).await.pop().unwrap_or(Decision::Denied(DenyReason::SecretRevoked))
    }

    /// [`Authenticator::recheck`] of several grants against one view of the store, in order.
    pub async fn recheck_all<'a>(
        &self,
        grants: impl IntoIterator<Item = &'a Grant>,
        client_ip: Option<IpAddr>,
        purpose: Purpose,
    ) -> Vec<Decision> {
        let view = self.views.current().await;
        grants
            .into_iter()
            .map(|grant| match &view {
                Ok(view) => match view.current(grant) {
                    Some((current, enabled)) => admit(current, enabled, client_ip, purpose),
                    None => Decision::Denied(DenyReason::SecretRevoked),
                },
                Err(e) => Decision::TempFail(e.to_string()),
            })
            .collect()
    }

    /// Checks a login whose grant is not known (the policy server after a restart): the
    /// username must still name an SMTP credential or an account, the account be enabled, and
    /// `client_ip` be inside the credential's restriction. Which secret was used cannot be told.
    /// `Ok(None)`: nothing against it.
    pub async fn recheck_username(
        &self,
        username: &str,
        client_ip: Option<IpAddr>,
    ) -> Result<Option<DenyReason>, StoreError> {
        let view = self.views.current().await?;
        Ok(match view.name(&username.trim().to_lowercase()) {
            NameStanding::Unknown => Some(DenyReason::UnknownUser),
            NameStanding::Credential { enabled: false, .. } | NameStanding::Account { enabled: false } => {
                Some(DenyReason::AccountDisabled)
            }
            NameStanding::Credential { enabled: true, allow } => match allow.check(client_ip) {
                IpCheck::Allowed => None,
                IpCheck::Outside => Some(DenyReason::IpNotAllowed),
                IpCheck::Unknown => Some(DenyReason::IpRequired),
            },
            NameStanding::Account { enabled: true } => None,
        })
    }

    /// Proves the store is readable (watchdog).
    pub async fn ping(&self) -> Result<(), StoreError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || state.lock().unwrap_or_else(|p| p.into_inner()).store.ping())
            .await
            .unwrap_or_else(|e| Err(StoreError::Corrupt(format!("ping task failed: {e}"))))
    }

    /// Records the use of a credential (shown as "last used"). At most one write per credential
    /// per [`TOUCH_EVERY`], so a busy client does not turn every login into an fsync; errors are
    /// not a login's concern.
    pub async fn touch(&self, credential: &CredentialRef) {
        let key = match credential {
            CredentialRef::ApiKey { id, .. } => (true, *id),
            CredentialRef::SmtpCredential { id, .. } => (false, *id),
        };
        {
            let now = Instant::now();
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.get(&key).is_some_and(|at| now.duration_since(*at) < TOUCH_EVERY) {
                return;
            }
            if touched.len() > 100_000 {
                touched.retain(|_, at| now.duration_since(*at) < TOUCH_EVERY);
            }
            touched.insert(key, now);
        }
        let state = self.state.clone();
        let _ = tokio::task::spawn_blocking(move || {
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let _ = match key {
                (true, id) => st.store.touch_api_key(id),
                (false, id) => st.store.touch_smtp_credential(id),
            };
        })
        .await;
    }

    /// Argon2 verifications run since start (real or dummy).
    pub fn verifications(&self) -> u64 {
        self.verifications.load(Ordering::Relaxed)
    }

    /// Logins currently cached (for status lines and metrics).
    pub fn cached_logins(&self) -> usize {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).cache.len()
    }
}

enum Lookup {
    Cached(Grant),
    Fresh { candidate: Option<Candidate>, key: cache::CacheKey, generation: u64 },
}

/// Drops the cache when another connection committed since the last look.
fn refresh(st: &mut State) -> Result<(), StoreError> {
    let version = st.store.data_version()?;
    if version != st.data_version {
        st.cache.clear();
        st.data_version = version;
    }
    Ok(())
}

/// The checks that follow a verified secret (or a cache hit; the cache only holds grants whose
/// account was enabled, and is dropped on any store change).
fn admit(grant: Grant, enabled: bool, ip: Option<IpAddr>, purpose: Purpose) -> Decision {
    if !enabled {
        return Decision::Denied(DenyReason::AccountDisabled);
    }
    let needed = match purpose {
        Purpose::Smtp => Permission::Smtp,
        Purpose::Api(p) => p,
    };
    match (&grant.credential, grant.permissions) {
        (CredentialRef::ApiKey { .. }, Some(perms)) if !perms.contains(needed) => {
            return Decision::Denied(DenyReason::PermissionMissing);
        }
        (CredentialRef::SmtpCredential { .. }, _) if purpose != Purpose::Smtp => {
            return Decision::Denied(DenyReason::PermissionMissing);
        }
        _ => {}
    }
    match grant.allow.check(ip) {
        IpCheck::Allowed => Decision::Granted(grant),
        IpCheck::Outside => Decision::Denied(DenyReason::IpNotAllowed),
        IpCheck::Unknown => Decision::Denied(DenyReason::IpRequired),
    }
}

fn smtp_candidate(cred: SmtpCredential, account: &Account) -> Candidate {
    Candidate {
        hash: cred.hash.clone(),
        enabled: account.enabled,
        grant: Grant {
            username: cred.username.to_string(),
            account_id: account.id,
            account: account.email.to_string(),
            credential: CredentialRef::SmtpCredential { id: cred.id, hash: cred.hash },
            permissions: None,
            allow: cred.allow,
            cached: false,
        },
    }
}

fn key_candidate(key: ApiKey, account: &Account, username: String) -> Candidate {
    Candidate {
        hash: key.hash.clone(),
        enabled: account.enabled,
        grant: Grant {
            username,
            account_id: account.id,
            account: account.email.to_string(),
            credential: CredentialRef::ApiKey { id: key.id, hash: key.hash },
            permissions: Some(key.permissions),
            allow: key.allow,
            cached: false,
        },
    }
}

/// A username names one credential; an API-key-shaped secret is instead looked up among the
/// keys of the account that the username belongs to.
fn find_smtp_candidate(store: &Store, username: &str, secret: &Secret) -> Result<Option<Candidate>, StoreError> {
    if username.is_empty() {
        return Ok(None);
    }
    if secret.looks_like_api_key() {
        let Some(account) = store.account_for_login(username)? else { return Ok(None) };
        let key = store.api_key_by_last5(account.id, &secret.last5())?;
        return Ok(key.map(|k| key_candidate(k, &account, username.to_string())));
    }
    let Some(cred) = store.smtp_credential_by_username(username)? else { return Ok(None) };
    let Some(account) = store.account_by_id(cred.account_id)? else { return Ok(None) };
    Ok(Some(smtp_candidate(cred, &account)))
}

fn find_api_candidate(store: &Store, secret: &Secret) -> Result<Option<Candidate>, StoreError> {
    if !secret.looks_like_api_key() {
        return Ok(None);
    }
    // The locator is 64 bits: more than one match would take a collision nobody can arrange,
    // so the first match with the right last 5 characters is the only candidate.
    let last5 = secret.last5();
    let Some(key) = store.api_keys_by_locator(&secret.locator())?.into_iter().find(|k| k.last5 == last5) else {
        return Ok(None);
    };
    let Some(account) = store.account_by_id(key.account_id)? else { return Ok(None) };
    let username = account.email.to_string();
    Ok(Some(key_candidate(key, &account, username)))
}
