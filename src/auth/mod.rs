//! The Authenticator: the one decision path that SASL, policy, relay, the HTTP API and
//! `relaykey auth test` all call.
//!
//! One call costs at most one argon2 verification: a username names one SMTP credential, and an
//! API key used as a password is found by (account, last 5 characters), unique within an account.
//! An unknown user costs one verification against a dummy hash, so timing does not reveal which
//! usernames exist. Verifications run on a fixed pool of `verify_threads` threads (`verifier`).

mod cache;
mod decision;
mod dummy;
mod ledger;
mod ledger_writer;
pub mod mechanism;
pub mod pipeline;
mod throttle;
mod verifier;
mod view;

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use decision::{CredentialRef, Decision, DenyReason, Grant, TempFailReason};
pub use ledger::LoginLedger;
pub use mechanism::normalize_username;
pub use pipeline::{FrontEnd, Login, LoginMechanism, LoginOutcome, LoginPipeline, Presented};
pub use throttle::{ClientBucket, FailureThrottle};
/// The argon2 memory cost above which a stored hash is refused rather than computed.
pub use verifier::MAX_MEMORY_KIB as MAX_ARGON2_MEMORY_KIB;

use cache::LoginCache;
use dummy::DummyHashes;
use verifier::VerifierPool;
use view::{NameStanding, ViewSource};

use crate::config::AuthConfig;
use crate::legacy_hash;
use crate::model::{Account, ApiKey, Permission, SmtpCredential};
use crate::restriction::IpCheck;
use crate::secret::{HashParams, Secret};
use crate::store::{Store, StoreError, StoreLocation};

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
    dummies: DummyHashes,
}

pub struct Authenticator {
    state: Arc<Mutex<State>>,
    /// What `recheck` and `recheck_username` answer from, without a store query.
    views: ViewSource,
    verifier: VerifierPool,
    /// The argon2 parameters new hashes get; a login whose hash has others is rehashed.
    params: HashParams,
    /// Credentials being rehashed now: (is API key, id).
    rehashing: Arc<Mutex<HashSet<(bool, i64)>>>,
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
    #[error("invalid argon2 parameters: {0}")]
    Hash(String),
    #[error("cannot start the verification threads: {0}")]
    Threads(std::io::Error),
}

impl Authenticator {
    /// Opens its own connection to the store at `location`. Writes made through *other*
    /// connections (the CLI, the HTTP API, other hosts) invalidate the cache through
    /// `Store::data_version`.
    pub fn open(location: impl Into<StoreLocation>, config: &AuthConfig) -> Result<Self, AuthError> {
        Self::new(Store::connect(&location.into())?, config)
    }

    pub fn new(store: Store, config: &AuthConfig) -> Result<Self, AuthError> {
        let params = config.hash_params();
        params.validate().map_err(|e| AuthError::Hash(e.to_string()))?;
        let mut dummies = DummyHashes::new(params, store.secret_hashes()?.iter().map(String::as_str));
        // Made now rather than at the first unknown user, so that login's time is not spent here.
        dummies.hash().map_err(|e| AuthError::Hash(e.to_string()))?;
        let data_version = store.data_version()?;
        let views = ViewSource::open(&store)?;
        Ok(Self {
            views,
            state: Arc::new(Mutex::new(State {
                store,
                cache: LoginCache::new(config.cache_ttl, config.cache_size),
                data_version,
                dummies,
            })),
            verifier: VerifierPool::new(config.verify_threads()).map_err(AuthError::Threads)?,
            params,
            rehashing: Arc::default(),
            verifications: AtomicU64::new(0),
            touched: Mutex::new(HashMap::new()),
        })
    }

    /// Decides an SMTP login: `username` with a credential password or an API key.
    pub async fn authenticate(&self, username: &str, secret: &Secret, client_ip: Option<IpAddr>) -> Decision {
        self.verify_smtp(username, secret, client_ip).await.decision
    }

    /// Decides an HTTP API call made with `Authorization: Bearer <key>`.
    pub async fn authenticate_api_key(
        &self,
        secret: &Secret,
        client_ip: Option<IpAddr>,
        needs: Permission,
    ) -> Decision {
        self.verify_api_key(secret, client_ip, needs).await.decision
    }

    /// [`Self::authenticate`], with the rehash the login pipeline should run after it.
    pub(crate) async fn verify_smtp(&self, username: &str, secret: &Secret, client_ip: Option<IpAddr>) -> Verified {
        let username = normalize_username(username);
        let lookup_secret = secret.clone();
        let name = username.clone();
        self.decide("smtp", username, secret, client_ip, Purpose::Smtp, move |store| {
            find_smtp_candidate(store, &name, &lookup_secret)
        })
        .await
    }

    /// [`Self::authenticate_api_key`], with the rehash the login pipeline should run after it.
    pub(crate) async fn verify_api_key(
        &self,
        secret: &Secret,
        client_ip: Option<IpAddr>,
        needs: Permission,
    ) -> Verified {
        let lookup_secret = secret.clone();
        self.decide("api", String::new(), secret, client_ip, Purpose::Api(needs), move |store| {
            find_api_candidate(store, &lookup_secret)
        })
        .await
    }

    async fn decide<F>(
        &self,
        domain: &'static str,
        username: String,
        secret: &Secret,
        ip: Option<IpAddr>,
        purpose: Purpose,
        find: F,
    ) -> Verified
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
            let candidate = find(&st.store)?;
            let hash = match &candidate {
                Some(c) => c.hash.clone(),
                None => st.dummies.hash().map_err(|e| TempFailReason::Store(e.to_string()))?.to_string(),
            };
            Ok::<_, TempFailReason>(Lookup::Fresh { candidate, hash, key, generation })
        })
        .await;
        let looked_up = match looked_up {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => return Decision::TempFail(e).into(),
            Err(e) => return Decision::TempFail(TempFailReason::Task(e.to_string())).into(),
        };
        let (candidate, hash, key, generation) = match looked_up {
            Lookup::Cached(mut grant) => {
                grant.cached = true;
                return admit(grant, true, ip, purpose).into();
            }
            Lookup::Fresh { candidate, hash, key, generation } => (candidate, hash, key, generation),
        };
        let Some(matched) = self.verify(secret, hash).await else {
            return Decision::TempFail(TempFailReason::VerifierClosed).into();
        };
        let Some(candidate) = candidate else {
            return Decision::Denied(DenyReason::UnknownUser).into();
        };
        if !matched {
            return Decision::Denied(DenyReason::BadSecret).into();
        }
        let decision = admit(candidate.grant.clone(), candidate.enabled, ip, purpose);
        if !decision.is_granted() {
            return decision.into();
        }
        let rehash = (HashParams::of_phc(&candidate.hash) != Some(self.params))
            .then(|| Rehash { credential: candidate.grant.credential.clone(), secret: secret.clone() });
        self.remember(key, candidate.grant, generation);
        Verified { decision, rehash }
    }

    /// Hashes a secret just verified again with the configured parameters and stores the new
    /// hash, unless the stored one changed meanwhile (a `change` wins). The new hash keeps the
    /// salt, so the secret's generation, and every session logged in with it, is unaffected
    /// (see [`CredentialRef`]). An imported hash (Dovecot's schemes) becomes an argon2id hash
    /// whose salt is derived from it, and the credential gets its last 5 characters: from then
    /// on it is an ordinary credential. Errors only mean that a later login tries again.
    pub(crate) async fn rehash(&self, job: Rehash) -> Result<bool, RehashError> {
        let key = credential_key(&job.credential);
        if !self.rehashing.lock().unwrap_or_else(|p| p.into_inner()).insert(key) {
            return Ok(false);
        }
        let _done = RehashGuard { set: self.rehashing.clone(), key };
        let (state, params) = (self.state.clone(), self.params);
        tokio::task::spawn_blocking(move || {
            let old = match &job.credential {
                CredentialRef::ApiKey { hash, .. } | CredentialRef::SmtpCredential { hash, .. } => hash,
            };
            let imported = legacy_hash::is_imported(old);
            let new = if imported {
                params.hash_with_salt(&job.secret, &legacy_hash::rehash_salt(key.1, old))
            } else {
                params.rehash(&job.secret, old)
            }
            .map_err(|e| RehashError::Hash(e.to_string()))?;
            let mut st = state.lock().unwrap_or_else(|p| p.into_inner());
            let written = match key {
                (true, id) => st.store.update_api_key_hash(id, old, &new)?,
                // The secret is known now: its last 5 characters are filled in with the hash.
                (false, id) if imported => {
                    st.store.finish_imported_smtp_credential(id, old, &new, &job.secret.last5())?
                }
                (false, id) => st.store.update_smtp_credential_hash(id, old, &new)?,
            };
            if written {
                st.dummies.moved(HashParams::of_phc(old), params);
            }
            Ok(written)
        })
        .await
        .map_err(|e| RehashError::Task(e.to_string()))?
    }

    /// The argon2 parameters an unknown user's dummy verification costs now.
    pub fn dummy_params(&self) -> HashParams {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).dummies.params()
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
        let view = self.views.current().await.map_err(TempFailReason::from);
        grants
            .into_iter()
            .map(|grant| match &view {
                Ok(view) => match view.current(grant) {
                    Some((current, enabled)) => admit(current, enabled, client_ip, purpose),
                    None => Decision::Denied(DenyReason::SecretRevoked),
                },
                Err(e) => Decision::TempFail(e.clone()),
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

    /// Where the store is, for the daemon's other connections to it.
    pub fn location(&self) -> StoreLocation {
        self.state.lock().unwrap_or_else(|p| p.into_inner()).store.location().clone()
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
        let key = credential_key(credential);
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

/// A decision, and for a fresh login whose stored hash has other argon2 parameters than the
/// configured ones, the rehash to run off the reply's path.
pub(crate) struct Verified {
    pub decision: Decision,
    pub rehash: Option<Rehash>,
}

impl From<Decision> for Verified {
    fn from(decision: Decision) -> Self {
        Self { decision, rehash: None }
    }
}

/// A secret just verified against `credential`'s hash, to be hashed again.
pub(crate) struct Rehash {
    credential: CredentialRef,
    secret: Secret,
}

#[derive(Debug, thiserror::Error)]
pub enum RehashError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("hashing failed: {0}")]
    Hash(String),
    #[error("rehash task failed: {0}")]
    Task(String),
}

/// Frees a credential for the next rehash whichever way [`Authenticator::rehash`] ends.
struct RehashGuard {
    set: Arc<Mutex<HashSet<(bool, i64)>>>,
    key: (bool, i64),
}

impl Drop for RehashGuard {
    fn drop(&mut self) {
        self.set.lock().unwrap_or_else(|p| p.into_inner()).remove(&self.key);
    }
}

/// (is API key, id): one credential across the tables.
fn credential_key(credential: &CredentialRef) -> (bool, i64) {
    match credential {
        CredentialRef::ApiKey { id, .. } => (true, *id),
        CredentialRef::SmtpCredential { id, .. } => (false, *id),
    }
}

enum Lookup {
    Cached(Grant),
    Fresh { candidate: Option<Candidate>, hash: String, key: cache::CacheKey, generation: u64 },
}

/// Drops the cache, and takes the census of hash parameters again, when another connection
/// committed since the last look.
fn refresh(st: &mut State) -> Result<(), StoreError> {
    let version = st.store.data_version()?;
    if version != st.data_version {
        st.cache.clear();
        let hashes = st.store.secret_hashes()?;
        st.dummies.recount(hashes.iter().map(String::as_str));
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
