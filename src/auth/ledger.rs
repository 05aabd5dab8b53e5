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
//! It lives in memory only: after a restart, sessions logged in before it are unknown, and the
//! policy server falls back to checking the account (see `policy::rules`).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use super::{CredentialRef, Grant};
use crate::restriction::canonical_ip;

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
    pub fn new(keep: Duration) -> Self {
        Self { keep, records: Mutex::new(Records::default()) }
    }

    fn lock(&self) -> MutexGuard<'_, Records> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records a successful login. A repeated login with the same secret refreshes its record
    /// (and clears a revocation: the secret holds again); another secret adds one.
    pub fn record(&self, username: &str, ip: Option<IpAddr>, grant: Grant, now: Instant) {
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
        for r in grants.iter_mut().filter(|r| r.same_secret(credential)) {
            r.revoked_at.get_or_insert(now);
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
}
