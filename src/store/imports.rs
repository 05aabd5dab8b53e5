//! Writing imported SMTP credentials (`relaykey import`), and finishing one at its first login.
//!
//! An imported credential is an ordinary `smtp_credentials` row whose `hash` is the imported
//! hash in its own scheme, `{SCHEME}value` (`crate::legacy_hash`), and whose `last5` is empty:
//! the secret is not known until its owner logs in. That login's rehash writes the argon2id hash
//! and the last 5 characters in one statement. Last-5 uniqueness is a rule of API keys only
//! (they are found by them); SMTP credentials are found by username, so filling them in can
//! collide with nothing.

use super::db::{Db, params};
use super::{Result, Store, StoreError, now, username_is_free};
use crate::address::EmailAddress;
use crate::model::MAX_PER_ACCOUNT;

/// One user to import, hashed already.
#[derive(Debug, Clone)]
pub struct ImportedCredential {
    pub username: EmailAddress,
    pub account: EmailAddress,
    /// Create the account if it does not exist (else: refused as unknown).
    pub create_account: bool,
    /// `{SCHEME}value`, or an argon2id PHC string for a plaintext hashed at import.
    pub hash: String,
    /// Empty when the secret is not known (an imported hash).
    pub last5: String,
}

/// What the store did with one [`ImportedCredential`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ImportWritten {
    Imported {
        id: i64,
        account_created: bool,
    },
    /// The account already has a credential with this username: left as it is (imported
    /// before, and perhaps rehashed or changed since), so importing a file again changes
    /// nothing.
    AlreadyPresent {
        id: i64,
    },
}

impl Store {
    /// Writes every credential it can in one transaction, each in a savepoint of its own, so
    /// that a refused one (cap, username taken, sender held by another account) undoes only
    /// itself. With `dry_run`, the transaction is rolled back: the answers are what a real run
    /// would give, and nothing is written.
    pub fn import_smtp_credentials(
        &mut self,
        creds: &[ImportedCredential],
        dry_run: bool,
    ) -> Result<Vec<Result<ImportWritten>>> {
        let tx = self.write()?;
        let mut out = Vec::with_capacity(creds.len());
        for cred in creds {
            let sp = tx.savepoint()?;
            let written = import_one(&sp, cred);
            // A savepoint dropped without release is rolled back.
            if written.is_ok() {
                sp.release()?;
            }
            // A database error is the store's, not the user's: stop and write nothing.
            if let Err(e @ (StoreError::Sqlite(_) | StoreError::Postgres(_) | StoreError::Unavailable(_))) = written {
                return Err(e);
            }
            out.push(written);
        }
        if !dry_run {
            tx.commit()?;
        }
        Ok(out)
    }

    /// The first login's rehash of an imported credential: the argon2id hash and the last 5
    /// characters, only if the stored hash is still `old` (compare-and-set, like
    /// `update_smtp_credential_hash`). `Ok(true)` when written.
    pub fn finish_imported_smtp_credential(&mut self, id: i64, old: &str, new: &str, last5: &str) -> Result<bool> {
        let n = self.db.exec(
            "UPDATE smtp_credentials SET hash = ?1, last5 = ?2 WHERE id = ?3 AND hash = ?4",
            params![new, last5, id, old],
        )?;
        Ok(n == 1)
    }
}

fn import_one(tx: &Db, cred: &ImportedCredential) -> Result<ImportWritten> {
    let found = tx.row("SELECT id FROM accounts WHERE email = ?1", params![cred.account.as_str()])?;
    let (account, account_created) = match found.map(|r| r.int(0)).transpose()? {
        Some(id) => (id, false),
        None if cred.create_account => (create_account(tx, &cred.account)?, true),
        None => return Err(StoreError::UnknownAccount(cred.account.to_string())),
    };
    let present = tx
        .row("SELECT id, account_id FROM smtp_credentials WHERE username = ?1", params![cred.username.as_str()])?
        .map(|r| Ok::<_, StoreError>((r.int(0)?, r.int(1)?)))
        .transpose()?;
    match present {
        Some((id, owner)) if owner == account => return Ok(ImportWritten::AlreadyPresent { id }),
        Some(_) => return Err(StoreError::UsernameTaken(cred.username.to_string())),
        None => {}
    }
    if !username_is_free(tx, &cred.username, account, None)? {
        return Err(StoreError::UsernameTaken(cred.username.to_string()));
    }
    let count = tx.int("SELECT count(*) FROM smtp_credentials WHERE account_id = ?1", params![account])?;
    if count as usize >= MAX_PER_ACCOUNT {
        return Err(StoreError::LimitReached {
            account: cred.account.to_string(),
            what: "SMTP credentials",
            max: MAX_PER_ACCOUNT,
        });
    }
    let id = tx.int(
        "INSERT INTO smtp_credentials (account_id, username, allow, last5, hash, created_at)
         VALUES (?1, ?2, '', ?3, ?4, ?5) RETURNING id",
        params![account, cred.username.as_str(), &cred.last5, &cred.hash, now()],
    )?;
    Ok(ImportWritten::Imported { id, account_created })
}

/// `Store::add_account` inside the import's transaction.
fn create_account(tx: &Db, email: &EmailAddress) -> Result<i64> {
    let used = tx.int("SELECT count(*) FROM smtp_credentials WHERE username = ?1", params![email.as_str()])?;
    if used > 0 {
        return Err(StoreError::UsernameTaken(email.to_string()));
    }
    let id = tx.int(
        "INSERT INTO accounts (email, enabled, created_at) VALUES (?1, 1, ?2) RETURNING id",
        params![email.as_str(), now()],
    )?;
    super::senders::bind_own_address(tx, id, email)?;
    Ok(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cred(username: &str, account: &str, create: bool) -> ImportedCredential {
        ImportedCredential {
            username: EmailAddress::parse(username).unwrap(),
            account: EmailAddress::parse(account).unwrap(),
            create_account: create,
            hash: "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=".into(),
            last5: String::new(),
        }
    }

    #[test]
    fn imports_once_then_finds_it_present_and_dry_run_writes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let batch = [cred("a@example.com", "a@example.com", true)];
        let dry = store.import_smtp_credentials(&batch, true).unwrap();
        assert!(matches!(dry[0], Ok(ImportWritten::Imported { account_created: true, .. })));
        assert!(store.find_account(&batch[0].account).unwrap().is_none(), "a dry run writes nothing");
        let first = store.import_smtp_credentials(&batch, false).unwrap();
        let Ok(ImportWritten::Imported { id, .. }) = first[0] else { panic!("{first:?}") };
        let again = store.import_smtp_credentials(&batch, false).unwrap();
        assert_eq!(again[0].as_ref().ok(), Some(&ImportWritten::AlreadyPresent { id }));
        let stored = store.smtp_credential_by_id(id).unwrap().unwrap();
        assert_eq!((stored.last5.as_str(), stored.hash.as_str()), ("", "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="));
        assert!(store.finish_imported_smtp_credential(id, &stored.hash, "$argon2id$new", "12345").unwrap());
        assert!(!store.finish_imported_smtp_credential(id, &stored.hash, "$argon2id$other", "00000").unwrap());
        assert_eq!(store.smtp_credential_by_id(id).unwrap().unwrap().last5, "12345");
    }

    #[test]
    fn caps_and_usernames_hold_and_a_refusal_undoes_only_itself() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = Store::open(&dir.path().join("db")).unwrap();
        let mut batch: Vec<_> = (0..16).map(|i| cred(&format!("u{i}@example.com"), "team@example.com", true)).collect();
        batch.push(cred("team@example.com", "other@example.com", true));
        let out = store.import_smtp_credentials(&batch, false).unwrap();
        assert_eq!(out.iter().filter(|r| r.is_ok()).count(), 15);
        assert!(matches!(out[15], Err(StoreError::LimitReached { .. })), "{:?}", out[15]);
        assert!(matches!(out[16], Err(StoreError::UsernameTaken(_))), "another account's address");
        let other = EmailAddress::parse("other@example.com").unwrap();
        assert!(store.find_account(&other).unwrap().is_none(), "the refused user's account was not left behind");
        let unknown = [cred("x@example.com", "nobody@example.com", false)];
        assert!(matches!(
            store.import_smtp_credentials(&unknown, false).unwrap()[0],
            Err(StoreError::UnknownAccount(_))
        ));
    }
}
