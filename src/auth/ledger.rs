//! Which secrets recent logins used, so that the policy server can refuse a session whose
//! secret was changed or removed after its AUTH. The SASL server records every grant; the
//! policy server finds them by the (`sasl_username`, `client_address`) pair Postfix sends.
//!
//! Postfix tells the SASL server neither the client's port nor a session id, so two sessions
//! of one user from one address cannot be told apart: one may have logged in with the
//! password and the other with an API key. The ledger therefore keeps every distinct recent
//! grant of a (user, address) pair, and the policy server refuses the pair's sessions when any
//! of them no longer holds. A login made after such a refusal was first decided supersedes
//! the revoked grant: the client has shown a secret that holds now.
//!
//! The daemon's ledger is also kept in the store ([`LoginLedger::stored`]): every grant is
//! recorded in memory at once and written behind to the store (`ledger_writer`), and the
//! policy server looks in memory first and in the store on a miss, so that it knows a login
//! made through another host's SASL server, or before a restart. A ledger without a store
//! ([`LoginLedger::new`]) forgets at a restart: the policy server then falls back to checking
//! the account (see `policy::rules`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use super::ledger_writer::{LedgerWriter, StoreLocation, Write, unix_ms};
use super::{CredentialRef, Grant};
use crate::restriction::{AccessRestriction, canonical_ip};
use crate::store::login_grants::StoredLogin;
use crate::store::{StoreError, shared_state};

/// Keep a record at least as long as a session may last, with a margin.
const DEFAULT_KEEP: Duration = Duration::from_secs(3600);
/// Grants kept in all.
const MAX_RECORDS: usize = 200_000;
/// Distinct grants kept per (user, address): an account has at most 15 API keys and a
/// username one credential, so only changed secrets can add more; the oldest go first.
const MAX_PER_LOGIN: usize = 64;

/// One login's grant and when it was made.
#[derive(Debug)]
struct Recorded {
    grant: Arc<Grant>,
    /// The latest login with this grant.
    at: Instant,
    /// When the policy server first found that the grant no longer holds.
    revoked_at: Option<Instant>,
}

impl Recorded {
    fn same_secret(&self, credential: &CredentialRef) -> bool {
        &self.grant.credential == credential
    }
}

#[derive(Debug, Default)]
struct Records {
    /// Client address → canonical username → grants, oldest login first.
    by_ip: HashMap<Option<IpAddr>, HashMap<String, Vec<Recorded>>>,
    total: usize,
}

pub struct LoginLedger {
    keep: Duration,
    records: Mutex<Records>,
    /// The ledger in the store, for a daemon; `None` keeps it in memory only.
    stored: Option<StoredLedger>,
}

/// The store's side of the ledger: the write-behind thread, and a connection of its own to
/// read misses from (opened on first use and again after a failure).
struct StoredLedger {
    writer: LedgerWriter,
    location: StoreLocation,
    reader: Arc<Mutex<Option<crate::store::Store>>>,
}

impl Default for LoginLedger {
    fn default() -> Self {
        Self::new(DEFAULT_KEEP)
    }
}

/// Usernames as the SASL server records them: trimmed and lower-cased. Postfix sends back what
/// the SASL server answered, so this borrows in practice.
fn canonical_user(username: &str) -> Cow<'_, str> {
    let trimmed = username.trim();
    if trimmed.len() == username.len() && !username.chars().any(char::is_uppercase) {
        Cow::Borrowed(username)
    } else {
        Cow::Owned(trimmed.to_lowercase())
    }
}

impl LoginLedger {
    /// A ledger in memory only.
    pub fn new(keep: Duration) -> Self {
        Self { keep, records: Mutex::new(Records::default()), stored: None }
    }

    /// A ledger kept in the store at `location` as well, shared by every host on that store
    /// and kept across restarts.
    pub fn stored(location: StoreLocation) -> std::io::Result<Self> {
        Self::stored_keeping(location, DEFAULT_KEEP)
    }

    pub fn stored_keeping(location: StoreLocation, keep: Duration) -> std::io::Result<Self> {
        let writer = LedgerWriter::start(location.clone(), keep)?;
        let stored = StoredLedger { writer, location, reader: Arc::default() };
        Ok(Self { keep, records: Mutex::new(Records::default()), stored: Some(stored) })
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a successful login. A repeated login with the same secret refreshes its record
    /// (and clears a revocation: the secret holds again); another secret adds one.
    pub fn record(&self, username: &str, ip: Option<IpAddr>, grant: Grant, now: Instant) {
        if let Some(stored) = &self.stored {
            let login = to_stored(username, ip, &grant, unix_ms(SystemTime::now()), None);
            stored.writer.send(Write::Login(login));
        }
        self.remember(username, ip, grant, now);
    }

    /// Records a login in memory only.
    fn remember(&self, username: &str, ip: Option<IpAddr>, grant: Grant, now: Instant) {
        let keep = self.keep;
        let mut records = self.lock();
        if records.total >= MAX_RECORDS {
            records.forget_older_than(keep, now);
        }
        let user = canonical_user(username).into_owned();
        let grants = records.by_ip.entry(ip.map(canonical_ip)).or_default().entry(user).or_default();
        let before = grants.len();
        match grants.iter().position(|r| r.same_secret(&grant.credential)) {
            Some(i) => {
                let mut again = grants.remove(i);
                again.at = now;
                again.revoked_at = None;
                grants.push(again);
            }
            None => grants.push(Recorded { grant: Arc::new(grant), at: now, revoked_at: None }),
        }
        if grants.len() > MAX_PER_LOGIN {
            grants.remove(0);
        }
        settle(grants, keep, now);
        let after = grants.len();
        records.total = records.total + after - before;
    }

    /// The grants of the recent logins of `username` from `ip`, oldest first, leaving out
    /// revoked grants that a later login superseded. Empty when there is no record.
    pub fn grants(&self, username: &str, ip: Option<IpAddr>, now: Instant) -> Vec<Arc<Grant>> {
        let records = self.lock();
        let Some(grants) =
            records.by_ip.get(&ip.map(canonical_ip)).and_then(|u| u.get(canonical_user(username).as_ref()))
        else {
            return Vec::new();
        };
        let newest = grants.iter().map(|r| r.at).max();
        grants
            .iter()
            .filter(|r| now.saturating_duration_since(r.at) < self.keep && !superseded(r, newest))
            .map(|r| r.grant.clone())
            .collect()
    }

    /// The grant of the latest login of `username` from `ip`, if recent enough. Which of the
    /// pair's sessions used it cannot be told: the policy server reads [`LoginLedger::grants`].
    pub fn lookup(&self, username: &str, ip: Option<IpAddr>, now: Instant) -> Option<Grant> {
        self.grants(username, ip, now).pop().map(|g| (*g).clone())
    }

    /// Notes that `credential`, used by a login of `username` from `ip`, no longer holds. Only
    /// a login after `now` supersedes it.
    pub fn revoked(&self, username: &str, ip: Option<IpAddr>, credential: &CredentialRef, now: Instant) {
        let mut records = self.lock();
        let Some(grants) =
            records.by_ip.get_mut(&ip.map(canonical_ip)).and_then(|u| u.get_mut(canonical_user(username).as_ref()))
        else {
            return;
        };
        let mut found = None;
        for r in grants.iter_mut().filter(|r| r.same_secret(credential)) {
            if r.revoked_at.is_none() {
                found = Some(r.grant.clone());
            }
            r.revoked_at.get_or_insert(now);
        }
        drop(records);
        if let (Some(stored), Some(grant)) = (&self.stored, found) {
            let at = unix_ms(SystemTime::now());
            stored.writer.send(Write::Revoked(to_stored(username, ip, &grant, at, Some(at))));
        }
    }

    /// [`LoginLedger::grants`], and on a miss the grants the store holds for the pair (a
    /// login through another host's SASL server, or before a restart), which are then kept in
    /// memory. A store that cannot be read is an error: the pair's standing is unknown.
    pub async fn grants_or_stored(
        &self,
        username: &str,
        ip: Option<IpAddr>,
        now: Instant,
    ) -> Result<Vec<Arc<Grant>>, StoreError> {
        let found = self.grants(username, ip, now);
        let Some(stored) = self.stored.as_ref().filter(|_| found.is_empty()) else { return Ok(found) };
        let user = canonical_user(username).into_owned();
        let client = ip.map(canonical_ip).map_or_else(String::new, |ip| ip.to_string());
        let wall = SystemTime::now();
        let since = unix_ms(wall.checked_sub(self.keep).unwrap_or(wall));
        let (reader, location) = (stored.reader.clone(), stored.location.clone());
        let rows = tokio::task::spawn_blocking(move || {
            let mut reader = reader.lock().unwrap_or_else(PoisonError::into_inner);
            let store = match &mut *reader {
                Some(store) => store,
                None => reader.insert(shared_state::open(&location)?),
            };
            let rows = store.recorded_logins(&user, &client, since);
            if rows.is_err() {
                *reader = None;
            }
            rows
        })
        .await
        .map_err(|e| StoreError::Corrupt(format!("ledger read task failed: {e}")))??;
        if rows.is_empty() {
            return Ok(found);
        }
        let wall_ms = unix_ms(wall);
        // Store times are wall-clock; memory counts from `now`.
        let instant = |ms: i64| now.checked_sub(Duration::from_millis(wall_ms.saturating_sub(ms).max(0) as u64));
        let mut records = self.lock();
        let key = ip.map(canonical_ip);
        let grants = records.by_ip.entry(key).or_default().entry(canonical_user(username).into_owned()).or_default();
        if grants.is_empty() {
            for row in rows {
                let Some(grant) = from_stored(&row) else { continue };
                let Some(at) = instant(row.login_at) else { continue };
                let revoked_at = row.revoked_at.and_then(instant);
                grants.push(Recorded { grant: Arc::new(grant), at, revoked_at });
            }
            grants.sort_by_key(|r| r.at);
            grants.truncate(MAX_PER_LOGIN);
            settle(grants, self.keep, now);
            let added = grants.len();
            records.total += added;
        }
        drop(records);
        Ok(self.grants(username, ip, now))
    }

    /// Writes every login and revocation recorded so far to the store (at shutdown, so that
    /// the next start knows them); waits at most `patience`.
    pub fn flush(&self, patience: Duration) -> Result<(), String> {
        match &self.stored {
            Some(stored) => stored.writer.flush(patience),
            None => Ok(()),
        }
    }

    /// Grants recorded (for status lines).
    pub fn len(&self) -> usize {
        self.lock().total
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Records {
    fn forget_older_than(&mut self, keep: Duration, now: Instant) {
        let mut total = 0;
        self.by_ip.retain(|_, users| {
            users.retain(|_, grants| {
                settle(grants, keep, now);
                total += grants.len();
                !grants.is_empty()
            });
            !users.is_empty()
        });
        self.total = total;
    }
}

/// A login as the store keeps it. `at` and `revoked_at` are Unix milliseconds.
fn to_stored(username: &str, ip: Option<IpAddr>, grant: &Grant, at: i64, revoked_at: Option<i64>) -> StoredLogin {
    let (kind, credential_id, hash) = match &grant.credential {
        CredentialRef::ApiKey { id, hash } => ("apikey", *id, hash.clone()),
        CredentialRef::SmtpCredential { id, hash } => ("smtp", *id, hash.clone()),
    };
    StoredLogin {
        username: canonical_user(username).into_owned(),
        client: ip.map(canonical_ip).map_or_else(String::new, |ip| ip.to_string()),
        kind,
        credential_id,
        hash,
        account_id: grant.account_id,
        account: grant.account.clone(),
        login_at: at,
        revoked_at,
    }
}

/// The grant of a stored login, as far as the policy server needs it: which secret of which
/// account. What the secret may do now (permissions, address restriction) is what the
/// re-check reads from the store, so none is carried.
fn from_stored(row: &StoredLogin) -> Option<Grant> {
    let credential = match row.kind {
        "apikey" => CredentialRef::ApiKey { id: row.credential_id, hash: row.hash.clone() },
        "smtp" => CredentialRef::SmtpCredential { id: row.credential_id, hash: row.hash.clone() },
        _ => return None,
    };
    Some(Grant {
        username: row.username.clone(),
        account_id: row.account_id,
        account: row.account.clone(),
        credential,
        permissions: None,
        allow: AccessRestriction::default(),
        cached: false,
    })
}

/// Drops the grants of one (user, address) that are too old or superseded.
fn settle(grants: &mut Vec<Recorded>, keep: Duration, now: Instant) {
    let newest = grants.iter().map(|r| r.at).max();
    grants.retain(|r| now.saturating_duration_since(r.at) < keep && !superseded(r, newest));
}

/// A revoked grant is superseded once any login came after the revocation was found.
fn superseded(r: &Recorded, newest_login: Option<Instant>) -> bool {
    matches!((r.revoked_at, newest_login), (Some(revoked), Some(newest)) if newest > revoked)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::restriction::AccessRestriction;

    fn grant(credential: CredentialRef) -> Grant {
        Grant {
            username: "a@example.com".into(),
            account_id: 1,
            account: "a@example.com".into(),
            credential,
            permissions: None,
            allow: AccessRestriction::default(),
            cached: false,
        }
    }

    fn password(hash: &str) -> CredentialRef {
        CredentialRef::SmtpCredential { id: 1, hash: hash.into() }
    }

    fn key() -> CredentialRef {
        CredentialRef::ApiKey { id: 7, hash: "k".into() }
    }

    fn credentials(ledger: &LoginLedger, ip: Option<IpAddr>, now: Instant) -> Vec<CredentialRef> {
        ledger.grants("a@example.com", ip, now).iter().map(|g| g.credential.clone()).collect()
    }

    #[test]
    fn keeps_every_distinct_secret_of_a_user_and_address() {
        let ledger = LoginLedger::default();
        let ip = Some("192.0.2.1".parse().unwrap());
        let t0 = Instant::now();
        ledger.record("a@example.com", ip, grant(password("p")), t0);
        ledger.record("A@Example.com ", ip, grant(key()), t0 + Duration::from_secs(1));
        ledger.record("a@example.com", ip, grant(password("p")), t0 + Duration::from_secs(2));
        assert_eq!(credentials(&ledger, ip, t0 + Duration::from_secs(3)), [key(), password("p")]);
        assert_eq!(ledger.len(), 2, "a repeated login refreshes its record");
        assert!(credentials(&ledger, Some("192.0.2.2".parse().unwrap()), t0).is_empty(), "per address");
    }

    #[test]
    fn a_revoked_grant_stays_until_a_later_login() {
        let ledger = LoginLedger::default();
        let ip = Some("192.0.2.1".parse().unwrap());
        let t0 = Instant::now();
        let at = |s| t0 + Duration::from_secs(s);
        ledger.record("a@example.com", ip, grant(password("p")), at(0));
        ledger.record("a@example.com", ip, grant(key()), at(1));
        ledger.revoked("a@example.com", ip, &password("p"), at(2));
        assert_eq!(credentials(&ledger, ip, at(3)), [password("p"), key()], "still reported");
        ledger.revoked("a@example.com", ip, &password("p"), at(10));
        ledger.record("a@example.com", ip, grant(key()), at(3));
        assert_eq!(credentials(&ledger, ip, at(4)), [key()], "a login after the first finding supersedes it");
        assert_eq!(ledger.len(), 1);
    }

    #[test]
    fn a_login_with_the_revoked_secret_itself_clears_the_revocation() {
        // e.g. the account was disabled and enabled again.
        let ledger = LoginLedger::default();
        let t0 = Instant::now();
        ledger.record("a@example.com", None, grant(password("p")), t0);
        ledger.revoked("a@example.com", None, &password("p"), t0 + Duration::from_secs(1));
        ledger.record("a@example.com", None, grant(password("p")), t0 + Duration::from_secs(2));
        ledger.record("a@example.com", None, grant(key()), t0 + Duration::from_secs(3));
        assert_eq!(credentials(&ledger, None, t0 + Duration::from_secs(4)), [password("p"), key()]);
    }

    #[test]
    fn old_logins_are_forgotten() {
        let ledger = LoginLedger::new(Duration::from_secs(10));
        let t0 = Instant::now();
        ledger.record("a@example.com", None, grant(password("p")), t0);
        ledger.record("a@example.com", None, grant(key()), t0 + Duration::from_secs(5));
        assert_eq!(credentials(&ledger, None, t0 + Duration::from_secs(11)), [key()]);
        ledger.record("a@example.com", None, grant(password("q")), t0 + Duration::from_secs(12));
        assert_eq!(ledger.len(), 2, "the old grant is dropped when the pair is written");
    }

    #[test]
    fn the_number_of_grants_per_login_is_bounded() {
        let ledger = LoginLedger::default();
        let t0 = Instant::now();
        for i in 0..(MAX_PER_LOGIN + 5) {
            ledger.record("a@example.com", None, grant(password(&i.to_string())), t0 + Duration::from_millis(i as u64));
        }
        let kept = credentials(&ledger, None, t0 + Duration::from_secs(1));
        assert_eq!(kept.len(), MAX_PER_LOGIN);
        assert_eq!(kept[0], password("5"), "the oldest went first");
        assert_eq!(ledger.len(), MAX_PER_LOGIN);
    }

    #[tokio::test]
    async fn a_stored_ledger_answers_another_ledger_on_the_same_store() {
        // Another host's policy server, or this one after a restart.
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let ip = Some("192.0.2.1".parse().unwrap());
        let t0 = Instant::now();
        let db = crate::store::StoreLocation::from(&db);
        let a = LoginLedger::stored(db.clone()).unwrap();
        a.record("A@example.com", ip, grant(password("p")), t0);
        a.record("a@example.com", ip, grant(key()), t0);
        a.revoked("a@example.com", ip, &password("p"), t0);
        a.flush(Duration::from_secs(30)).unwrap();

        let b = LoginLedger::stored(db.clone()).unwrap();
        assert!(b.grants("a@example.com", ip, t0).is_empty(), "not in b's memory");
        let found = b.grants_or_stored("a@example.com", ip, Instant::now()).await.unwrap();
        let found: Vec<_> = found.iter().map(|g| g.credential.clone()).collect();
        assert_eq!(found.len(), 2);
        assert!(found.contains(&password("p")) && found.contains(&key()), "{found:?}");
        assert_eq!(b.len(), 2, "kept in memory from then on");
        assert!(b.grants_or_stored("a@example.com", None, Instant::now()).await.unwrap().is_empty(), "per address");

        // The revocation was stored too: a later login through b supersedes it.
        b.record("a@example.com", ip, grant(key()), Instant::now() + Duration::from_secs(1));
        assert_eq!(credentials(&b, ip, Instant::now() + Duration::from_secs(2)), [key()]);
    }

    #[tokio::test]
    async fn a_stored_ledger_that_cannot_read_the_store_says_so() {
        let dir = tempfile::tempdir().unwrap();
        // A file where the database's directory should be.
        std::fs::write(dir.path().join("file"), "").unwrap();
        let ledger = LoginLedger::stored((&dir.path().join("file/relaykey.db")).into()).unwrap();
        assert!(ledger.grants_or_stored("a@example.com", None, Instant::now()).await.is_err());
    }
}
