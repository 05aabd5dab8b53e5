//! Queries on the `senders` table: the domains and addresses each account may send as.
//!
//! An entry has one owner system-wide. A claim runs in one `BEGIN IMMEDIATE` transaction (the
//! write lock is taken before the check), and the `UNIQUE` constraint on `entry` backs it up,
//! so of two processes claiming the same name at once exactly one wins and the other gets
//! [`StoreError::SenderTaken`].

use super::db::{Db, Row, params};
use super::{Result, Store, StoreError, account_id, now};
use crate::address::EmailAddress;
use crate::model::Account;
use crate::senders::{AccountSender, EntryState, Sender, SenderEntry, SenderKind, new_token};

const COLUMNS: &str = "id, account_id, entry, kind, verified, token, unicode, created_at";

type RawSender = (i64, i64, String, String, bool, Option<String>, String, i64);

fn from_row(r: &Row) -> Result<RawSender> {
    Ok((r.int(0)?, r.int(1)?, r.text(2)?, r.text(3)?, r.flag(4)?, r.opt_text(5)?, r.text(6)?, r.int(7)?))
}

fn read(r: &Row) -> Result<AccountSender> {
    from_row(r).and_then(to_sender)
}

fn to_sender(raw: RawSender) -> Result<AccountSender> {
    let (id, account_id, entry, kind, verified, token, _unicode, created_at) = raw;
    let kind = SenderKind::from_db(&kind).ok_or_else(|| StoreError::Corrupt(format!("sender {entry}: kind {kind}")))?;
    let parsed = match kind {
        // An account's own address may sit on a single-label domain, which `parse` refuses.
        SenderKind::Address => SenderEntry::parse(&entry)
            .or_else(|_| EmailAddress::parse(&entry).map(|a| SenderEntry::own_address(&a)).map_err(|e| e.to_string())),
        SenderKind::Domain => SenderEntry::parse(&entry).map_err(|e| e.to_string()),
    }
    .map_err(StoreError::Corrupt)?;
    Ok(AccountSender { id, account_id, entry: parsed, verified, token, created_at })
}

/// Inserts an entry inside a write transaction; a name held already is `SenderTaken` (or
/// `SenderExists` when `account` itself holds it).
fn insert(
    tx: &Db,
    account: i64,
    account_name: &str,
    entry: &SenderEntry,
    verified: bool,
    token: Option<&str>,
) -> Result<AccountSender> {
    let name = entry.as_string();
    let holder =
        tx.row("SELECT account_id FROM senders WHERE entry = ?1", params![&name])?.map(|r| r.int(0)).transpose()?;
    match holder {
        Some(h) if h == account => {
            return Err(StoreError::SenderExists { account: account_name.to_string(), entry: name });
        }
        Some(_) => return Err(StoreError::SenderTaken(name)),
        None => {}
    }
    let created_at = now();
    // The UNIQUE constraint on `entry` backs the check above up; only a writer that bypassed
    // the write lock could reach it, and then the insert fails as a database error.
    let id = tx.int(
        "INSERT INTO senders (entry, account_id, kind, verified, token, unicode, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![&name, account, entry.kind().as_str(), verified, token, &entry.unicode(), created_at],
    )?;
    Ok(AccountSender {
        id,
        account_id: account,
        entry: entry.clone(),
        verified,
        token: token.map(str::to_string),
        created_at,
    })
}

/// Binds an account's own address to it, verified (at account creation).
pub(super) fn bind_own_address(tx: &Db, account: i64, email: &EmailAddress) -> Result<()> {
    insert(tx, account, email.as_str(), &SenderEntry::own_address(email), true, None).map(|_| ())
}

/// Migration: every existing account gets its own address, unless that name is held.
pub(super) fn bind_own_addresses(tx: &Db) -> Result<()> {
    let accounts = tx
        .rows("SELECT id, email FROM accounts ORDER BY id", params![])?
        .iter()
        .map(|r| Ok((r.int(0)?, r.text(1)?)))
        .collect::<Result<Vec<_>>>()?;
    for (id, email) in accounts {
        let Ok(email) = EmailAddress::parse(&email) else { continue };
        match bind_own_address(tx, id, &email) {
            Ok(()) | Err(StoreError::SenderTaken(_) | StoreError::SenderExists { .. }) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Store {
    /// Gives `entry` to the account. Verified entries authorize sending at once; a pending
    /// domain gets a fresh token to publish in DNS. Refused with `SenderTaken` when another
    /// account holds the name, `SenderExists` when this one does.
    pub fn add_sender(&mut self, email: &EmailAddress, entry: &SenderEntry, verified: bool) -> Result<AccountSender> {
        let token = match (verified, entry.kind()) {
            (false, SenderKind::Domain) => Some(new_token().map_err(|e| StoreError::Random(e.to_string()))?),
            _ => None,
        };
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let sender = insert(&tx, account, email.as_str(), entry, verified, token.as_deref())?;
        tx.commit()?;
        Ok(sender)
    }

    /// An account's entries, domains first, then by name.
    pub fn senders(&self, email: &EmailAddress) -> Result<Vec<AccountSender>> {
        let account = account_id(&self.db, email)?;
        self.senders_of(account)
    }

    pub fn senders_of(&self, account_id: i64) -> Result<Vec<AccountSender>> {
        let sql = format!("SELECT {COLUMNS} FROM senders WHERE account_id = ?1 ORDER BY kind DESC, entry");
        self.db.rows(&sql, params![account_id])?.iter().map(read).collect()
    }

    /// One entry of an account, or `UnknownSender`.
    pub fn sender(&self, email: &EmailAddress, entry: &SenderEntry) -> Result<AccountSender> {
        let account = account_id(&self.db, email)?;
        let sql = format!("SELECT {COLUMNS} FROM senders WHERE entry = ?1 AND account_id = ?2");
        self.db
            .row(&sql, params![&entry.as_string(), account])?
            .as_ref()
            .map(read)
            .transpose()?
            .ok_or_else(|| StoreError::UnknownSender { account: email.to_string(), entry: entry.as_string() })
    }

    pub fn remove_sender(&mut self, email: &EmailAddress, entry: &SenderEntry) -> Result<()> {
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let n =
            tx.exec("DELETE FROM senders WHERE entry = ?1 AND account_id = ?2", params![&entry.as_string(), account])?;
        if n == 0 {
            return Err(StoreError::UnknownSender { account: email.to_string(), entry: entry.as_string() });
        }
        tx.commit()?;
        Ok(())
    }

    /// Marks an account's entry verified (after its DNS proof, or by the operator).
    pub fn mark_sender_verified(&mut self, email: &EmailAddress, entry: &SenderEntry) -> Result<AccountSender> {
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let n = tx.exec(
            "UPDATE senders SET verified = 1 WHERE entry = ?1 AND account_id = ?2",
            params![&entry.as_string(), account],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownSender { account: email.to_string(), entry: entry.as_string() });
        }
        tx.commit()?;
        self.sender(email, entry)
    }

    /// Who may send as `address` (as a client wrote it: `<User+tag@Example.com>`): the most
    /// specific verified entry (exact address, address without extension, domain) and the
    /// account holding it. `None` for the null sender and for addresses nobody owns.
    pub fn sender_owner(&self, address: &str) -> Result<Option<(AccountSender, Account)>> {
        let Sender::Address(address) = Sender::parse(address) else { return Ok(None) };
        let sql = format!("SELECT {COLUMNS} FROM senders WHERE entry = ?1 AND verified = 1");
        for key in address.lookup_keys() {
            let Some(row) = self.db.row(&sql, params![key])? else { continue };
            let sender = read(&row)?;
            let account = self
                .account_by_id(sender.account_id)?
                .ok_or_else(|| StoreError::Corrupt(format!("sender {key} has no account")))?;
            return Ok(Some((sender, account)));
        }
        Ok(None)
    }

    /// The SASL logins of an account: its own address, then every SMTP username.
    pub fn account_logins(&self, account_id: i64) -> Result<Vec<String>> {
        let rows = self.db.rows(
            "SELECT email, 0, 0 FROM accounts WHERE id = ?1
             UNION ALL SELECT username, 1, id FROM smtp_credentials WHERE account_id = ?1
             ORDER BY 2, 3",
            params![account_id],
        )?;
        let logins = rows.iter().map(|r| r.text(0)).collect::<Result<Vec<_>>>()?;
        Ok(dedup_keep_order(logins))
    }

    /// Every entry's state, for the in-memory directory.
    pub fn sender_states(&self) -> Result<Vec<(String, EntryState)>> {
        let rows = self
            .db
            .rows("SELECT entry, account_id, kind, verified FROM senders", params![])?
            .iter()
            .map(|r| Ok((r.text(0)?, r.int(1)?, r.text(2)?, r.flag(3)?)))
            .collect::<Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(entry, account_id, kind, verified)| {
                let kind = SenderKind::from_db(&kind)
                    .ok_or_else(|| StoreError::Corrupt(format!("sender {entry}: kind {kind}")))?;
                Ok((entry.to_lowercase(), EntryState { account_id, kind, verified }))
            })
            .collect()
    }

    /// Every account's logins (`(account id, login)`: the account address first), for the
    /// in-memory directory.
    pub fn all_logins(&self) -> Result<Vec<(i64, String)>> {
        self.db
            .rows(
                "SELECT id, email, 0, id FROM accounts
                 UNION ALL SELECT account_id, username, 1, id FROM smtp_credentials
                 ORDER BY 1, 3, 4",
                params![],
            )?
            .iter()
            .map(|r| Ok((r.int(0)?, r.text(1)?)))
            .collect()
    }
}

/// Drops repeated logins (a credential named like its account's address), keeping the first.
fn dedup_keep_order(logins: Vec<String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    logins.into_iter().filter(|l| seen.insert(l.to_lowercase())).collect()
}

#[cfg(test)]
mod tests {
    use rusqlite::Connection;

    use super::*;
    use crate::store::NewSmtpCredential;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db")).unwrap();
        (dir, store)
    }

    fn addr(s: &str) -> EmailAddress {
        EmailAddress::parse(s).unwrap()
    }

    fn entry(s: &str) -> SenderEntry {
        SenderEntry::parse(s).unwrap()
    }

    #[test]
    fn a_new_account_owns_its_own_address() {
        let (_d, mut store) = store();
        let ann = store.add_account(&addr("ann@example.com")).unwrap();
        let senders = store.senders(&addr("ann@example.com")).unwrap();
        assert_eq!(senders.len(), 1);
        assert_eq!((senders[0].entry.as_string(), senders[0].verified), ("ann@example.com".into(), true));
        let (owner, account) = store.sender_owner("Ann+x@EXAMPLE.com").unwrap().unwrap();
        assert_eq!((owner.entry.as_string(), account.id), ("ann@example.com".into(), ann.id));
    }

    #[test]
    fn a_second_account_cannot_claim_an_entry() {
        let (_d, mut store) = store();
        store.add_account(&addr("ann@example.com")).unwrap();
        store.add_account(&addr("bob@example.org")).unwrap();
        store.add_sender(&addr("ann@example.com"), &entry("Example.com"), true).unwrap();
        let err = store.add_sender(&addr("bob@example.org"), &entry("example.com"), false).unwrap_err();
        assert!(matches!(err, StoreError::SenderTaken(ref e) if e == "example.com"), "{err}");
        let err = store.add_sender(&addr("ann@example.com"), &entry("example.com"), true).unwrap_err();
        assert!(matches!(err, StoreError::SenderExists { .. }), "{err}");
        // Bob's own address cannot be claimed either.
        let err = store.add_sender(&addr("ann@example.com"), &entry("BOB@example.org"), true).unwrap_err();
        assert!(matches!(err, StoreError::SenderTaken(_)), "{err}");
    }

    #[test]
    fn pending_domains_get_a_token_and_own_nothing_until_verified() {
        let (_d, mut store) = store();
        store.add_account(&addr("ann@example.com")).unwrap();
        let s = store.add_sender(&addr("ann@example.com"), &entry("bücher.example"), false).unwrap();
        assert!(!s.verified);
        assert_eq!(s.token.as_ref().map(String::len), Some(32));
        assert!(store.sender_owner("x@xn--bcher-kva.example").unwrap().is_none());
        let v = store.mark_sender_verified(&addr("ann@example.com"), &entry("xn--bcher-kva.example")).unwrap();
        assert!(v.verified);
        let (owner, _) = store.sender_owner("x@Bücher.example").unwrap().unwrap();
        assert_eq!(owner.entry.unicode(), "bücher.example");
    }

    #[test]
    fn the_most_specific_verified_entry_owns_an_address() {
        let (_d, mut store) = store();
        store.add_account(&addr("ann@example.com")).unwrap();
        let bob = store.add_account(&addr("bob@example.org")).unwrap();
        store.add_sender(&addr("ann@example.com"), &entry("example.org"), true).unwrap();
        let (_, account) = store.sender_owner("bob+tag@example.org").unwrap().unwrap();
        assert_eq!(account.id, bob.id);
        let (owner, _) = store.sender_owner("carol@example.org").unwrap().unwrap();
        assert_eq!(owner.entry.as_string(), "example.org");
        assert!(store.sender_owner("<>").unwrap().is_none());
    }

    #[test]
    fn remove_and_unknown_entries() {
        let (_d, mut store) = store();
        store.add_account(&addr("ann@example.com")).unwrap();
        store.add_sender(&addr("ann@example.com"), &entry("example.net"), true).unwrap();
        store.remove_sender(&addr("ann@example.com"), &entry("example.net")).unwrap();
        let err = store.remove_sender(&addr("ann@example.com"), &entry("example.net")).unwrap_err();
        assert!(matches!(err, StoreError::UnknownSender { .. }), "{err}");
        let err = store.add_sender(&addr("nobody@example.com"), &entry("example.net"), true).unwrap_err();
        assert!(matches!(err, StoreError::UnknownAccount(_)), "{err}");
    }

    #[test]
    fn logins_are_the_account_address_and_every_smtp_username() {
        let (_d, mut store) = store();
        let ann = store.add_account(&addr("ann@example.com")).unwrap();
        let params = crate::secret::HashParams { memory_kib: 8, iterations: 1, parallelism: 1 };
        for username in [None, Some(addr("billing@example.com"))] {
            let new = NewSmtpCredential { username, allow: Default::default() };
            store.create_smtp_credential(&addr("ann@example.com"), new, &params).unwrap();
        }
        assert_eq!(store.account_logins(ann.id).unwrap(), ["ann@example.com", "billing@example.com"]);
        let all = store.all_logins().unwrap();
        assert_eq!(all.iter().filter(|(id, _)| *id == ann.id).count(), 3, "{all:?}");
        assert_eq!(all[0].1, "ann@example.com");
    }

    #[test]
    fn migration_binds_existing_accounts_to_their_addresses() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        {
            // A version-1 database, as released before sender entries.
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(super::super::schema::MIGRATIONS[0]).unwrap();
            conn.execute("INSERT INTO accounts (email, created_at) VALUES ('ann@example.com', 1)", []).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let senders = store.senders(&addr("ann@example.com")).unwrap();
        assert_eq!(senders.len(), 1);
        assert!(senders[0].verified);
        assert_eq!(senders[0].entry.kind(), SenderKind::Address);
    }
}
