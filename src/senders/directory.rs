//! The sender directory: every entry and every account's logins in memory, for the hot paths
//! (the socketmap, the policy server, the relay, the API's send).
//!
//! A [`Directory`] holds its own store connection and a [`Snapshot`]. Each call first reads
//! `PRAGMA data_version`, which moves whenever another connection (the CLI, the API) commits;
//! when it moved, the snapshot is rebuilt before answering. So a lookup costs one PRAGMA and a
//! few hash lookups, and an entry added, verified or removed anywhere counts from the next
//! lookup on, like the authenticator's cache (`crate::auth`).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use super::name::SenderKind;
use super::ownership::{self, EntryState, Sender, SenderCheck};
use crate::store::{Store, StoreError, StoreLocation};

/// Who may send as an address, and which entry decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    pub account_id: i64,
    /// The owning account's address.
    pub account: String,
    /// The verified entry that decided: `example.com` or `billing@example.com`.
    pub entry: String,
    pub kind: SenderKind,
}

/// Every sender entry and every account's SASL logins at one store version. Immutable: a
/// caller may keep one for a whole request (several addresses checked against one state).
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// Stored entry (ASCII, lower case) → its state.
    entries: HashMap<String, EntryState>,
    /// Account id → its logins: the account's address first, then its SMTP usernames.
    logins: HashMap<i64, Vec<String>>,
    /// Lower-cased login → account id.
    login_accounts: HashMap<String, i64>,
}

impl Snapshot {
    /// Reads every entry and login from the store.
    pub fn load(store: &Store) -> Result<Self, StoreError> {
        Ok(Self::from_parts(store.sender_states()?, store.all_logins()?))
    }

    /// Builds a snapshot from entries and `(account id, login)` pairs, each account's own
    /// address first.
    pub fn from_parts(
        entries: impl IntoIterator<Item = (String, EntryState)>,
        logins: impl IntoIterator<Item = (i64, String)>,
    ) -> Self {
        let mut snapshot =
            Self { entries: entries.into_iter().map(|(e, s)| (e.to_lowercase(), s)).collect(), ..Self::default() };
        for (account, login) in logins {
            let lower = login.to_lowercase();
            if snapshot.login_accounts.contains_key(&lower) {
                continue;
            }
            snapshot.login_accounts.insert(lower, account);
            snapshot.logins.entry(account).or_default().push(login);
        }
        snapshot
    }

    /// The verified owner of `address` (as a client wrote it: `<User+tag@Example.com>`),
    /// found most specific first: the exact address, the address without its `+extension`,
    /// its domain. `None` for `<>`, for addresses nobody owns and for addresses only a pending
    /// entry covers.
    pub fn owner(&self, address: &str) -> Option<Owner> {
        let Sender::Address(address) = Sender::parse(address) else { return None };
        let decisive = ownership::owner(&address, |k| self.entries.get(k))?;
        let account_id = decisive.state.account_id;
        Some(Owner {
            account_id,
            account: self.logins(account_id).first().cloned().unwrap_or_default(),
            entry: decisive.entry,
            kind: decisive.state.kind,
        })
    }

    /// May account `account_id` send as `address` (envelope sender or a `From:` address)?
    /// [`SenderCheck::NullSender`] and [`SenderCheck::Allowed`] pass
    /// ([`SenderCheck::is_allowed`]); [`SenderCheck::Pending`] (its entry is not verified)
    /// and [`SenderCheck::NotOwned`] are refusals.
    pub fn may_send(&self, account_id: i64, address: &str) -> SenderCheck {
        ownership::check(&Sender::parse(address), account_id, |k| self.entries.get(k))
    }

    /// The account a SASL login belongs to (its own address or one of its SMTP usernames).
    pub fn account_for_login(&self, login: &str) -> Option<i64> {
        self.login_accounts.get(&login.trim().to_lowercase()).copied()
    }

    /// [`Snapshot::may_send`] for the account that `login` belongs to; an unknown login owns
    /// nothing. For front ends that see only the SASL username (the policy server).
    pub fn may_login_send(&self, login: &str, address: &str) -> SenderCheck {
        let sender = Sender::parse(address);
        if sender == Sender::Null {
            return SenderCheck::NullSender;
        }
        match self.account_for_login(login) {
            Some(account) => ownership::check(&sender, account, |k| self.entries.get(k)),
            None => SenderCheck::NotOwned,
        }
    }

    /// An account's SASL logins: its own address, then its SMTP usernames.
    pub fn logins(&self, account_id: i64) -> &[String] {
        self.logins.get(&account_id).map_or(&[], Vec::as_slice)
    }

    /// The logins that may use `address`: the verified owner's logins (what Postfix's
    /// `smtpd_sender_login_maps` wants). `None` when nobody owns it.
    pub fn logins_for(&self, address: &str) -> Option<&[String]> {
        let Sender::Address(address) = Sender::parse(address) else { return None };
        let decisive = ownership::owner(&address, |k| self.entries.get(k))?;
        Some(self.logins(decisive.state.account_id)).filter(|l| !l.is_empty())
    }

    /// How many entries the snapshot holds.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

struct Inner {
    store: Store,
    data_version: i64,
    snapshot: Arc<Snapshot>,
}

/// The sender directory the front ends share (behind an `Arc`). Every method returns the
/// answer for the store as it is now; `Err` only when the store cannot be read (answer "try
/// again later": SMTP 451/454, socketmap `TEMP`, HTTP 503), never as a refusal.
///
/// Calls are synchronous and short (one PRAGMA read; two table scans after a change), like
/// the authenticator's cache check.
pub struct Directory {
    inner: Mutex<Inner>,
}

impl Directory {
    /// Opens its own connection to the store at `location`.
    pub fn open(location: impl Into<StoreLocation>) -> Result<Self, StoreError> {
        Self::new(Store::connect(&location.into())?)
    }

    /// Takes a connection that nothing else writes through (writes made through it would
    /// not move its own `data_version`).
    pub fn new(store: Store) -> Result<Self, StoreError> {
        let data_version = store.data_version()?;
        let snapshot = Arc::new(Snapshot::load(&store)?);
        Ok(Self { inner: Mutex::new(Inner { store, data_version, snapshot }) })
    }

    /// The current snapshot, rebuilt first if the store changed since the last call.
    pub fn snapshot(&self) -> Result<Arc<Snapshot>, StoreError> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let version = inner.store.data_version()?;
        if version != inner.data_version {
            inner.snapshot = Arc::new(Snapshot::load(&inner.store)?);
            inner.data_version = version;
        }
        Ok(inner.snapshot.clone())
    }

    /// See [`Snapshot::owner`].
    pub fn owner(&self, address: &str) -> Result<Option<Owner>, StoreError> {
        Ok(self.snapshot()?.owner(address))
    }

    /// See [`Snapshot::may_send`].
    pub fn may_send(&self, account_id: i64, address: &str) -> Result<SenderCheck, StoreError> {
        Ok(self.snapshot()?.may_send(account_id, address))
    }

    /// See [`Snapshot::may_login_send`].
    pub fn may_login_send(&self, login: &str, address: &str) -> Result<SenderCheck, StoreError> {
        Ok(self.snapshot()?.may_login_send(login, address))
    }

    /// See [`Snapshot::logins_for`].
    pub fn logins_for(&self, address: &str) -> Result<Option<Vec<String>>, StoreError> {
        Ok(self.snapshot()?.logins_for(address).map(<[String]>::to_vec))
    }

    /// Proves the store is still readable (watchdog).
    pub fn ping(&self) -> Result<(), StoreError> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner()).store.ping()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::address::EmailAddress;
    use crate::senders::SenderEntry;

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    #[test]
    fn sees_changes_made_through_another_connection() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut cli = Store::open(&path).unwrap();
        let ann = cli.add_account(&addr("ann@example.com")).unwrap();
        let directory = Directory::open(&path).unwrap();
        assert_eq!(directory.may_send(ann.id, "x@example.net").unwrap(), SenderCheck::NotOwned);

        cli.add_sender(&addr("ann@example.com"), &SenderEntry::parse("example.net").unwrap(), false).unwrap();
        assert_eq!(
            directory.may_send(ann.id, "x@example.net").unwrap(),
            SenderCheck::Pending { entry: "example.net".into() }
        );
        assert_eq!(directory.owner("x@example.net").unwrap(), None);

        cli.mark_sender_verified(&addr("ann@example.com"), &SenderEntry::parse("example.net").unwrap()).unwrap();
        assert_eq!(
            directory.may_send(ann.id, "X+y@Example.NET").unwrap(),
            SenderCheck::Allowed { entry: "example.net".into() }
        );
        let owner = directory.owner("x@example.net").unwrap().unwrap();
        assert_eq!(
            (owner.account.as_str(), owner.entry.as_str(), owner.kind),
            ("ann@example.com", "example.net", SenderKind::Domain)
        );

        cli.remove_sender(&addr("ann@example.com"), &SenderEntry::parse("example.net").unwrap()).unwrap();
        assert_eq!(directory.may_send(ann.id, "x@example.net").unwrap(), SenderCheck::NotOwned);
    }

    #[test]
    fn logins_of_the_owner_answer_the_socketmap() {
        let entries = [
            ("example.com".to_string(), EntryState { account_id: 1, kind: SenderKind::Domain, verified: true }),
            ("ann@example.com".to_string(), EntryState { account_id: 1, kind: SenderKind::Address, verified: true }),
            ("pending.example".to_string(), EntryState { account_id: 1, kind: SenderKind::Domain, verified: false }),
            ("bob@example.org".to_string(), EntryState { account_id: 2, kind: SenderKind::Address, verified: true }),
        ];
        let logins = [
            (1, "ann@example.com".to_string()),
            (1, "billing@example.com".to_string()),
            (2, "bob@example.org".to_string()),
        ];
        let snapshot = Snapshot::from_parts(entries, logins);
        assert_eq!(snapshot.logins_for("User+tag@EXAMPLE.com").unwrap(), ["ann@example.com", "billing@example.com"]);
        assert_eq!(snapshot.logins_for("bob@example.org").unwrap(), ["bob@example.org"]);
        assert_eq!(snapshot.logins_for("x@pending.example"), None);
        assert_eq!(snapshot.logins_for("x@unknown.example"), None);
        assert_eq!(snapshot.logins_for("<>"), None);

        assert_eq!(snapshot.account_for_login("Billing@Example.com"), Some(1));
        assert!(snapshot.may_login_send("billing@example.com", "ann@example.com").is_allowed());
        assert_eq!(snapshot.may_login_send("bob@example.org", "ann@example.com"), SenderCheck::NotOwned);
        assert_eq!(snapshot.may_login_send("nobody@example.com", "ann@example.com"), SenderCheck::NotOwned);
        assert_eq!(snapshot.may_login_send("nobody@example.com", "<>"), SenderCheck::NullSender);
    }
}
