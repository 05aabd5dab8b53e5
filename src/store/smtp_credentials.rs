//! Queries on the `smtp_credentials` table.

use super::db::{Row, params};
use super::{Listing, Result, Store, StoreError, account_id, now, username_is_free};
use crate::address::EmailAddress;
use crate::model::{MAX_PER_ACCOUNT, SmtpCredential};
use crate::restriction::AccessRestriction;
use crate::secret::{HashParams, Secret, SecretKind};

#[derive(Debug, Clone)]
pub struct NewSmtpCredential {
    /// `None`: the account's own address for its first credential; required after that.
    pub username: Option<EmailAddress>,
    pub allow: AccessRestriction,
}

#[derive(Debug, Clone, Default)]
pub struct SmtpCredentialEdit {
    pub allow: Option<AccessRestriction>,
}

const COLUMNS: &str = "id, account_id, username, allow, last5, hash, created_at, last_used_at";

type RawCred = (i64, i64, String, String, String, String, i64, Option<i64>);

fn from_row(r: &Row) -> Result<RawCred> {
    Ok((r.int(0)?, r.int(1)?, r.text(2)?, r.text(3)?, r.text(4)?, r.text(5)?, r.int(6)?, r.opt_int(7)?))
}

fn read_one(row: Option<Row>) -> Result<Option<SmtpCredential>> {
    row.as_ref().map(from_row).transpose()?.map(to_cred).transpose()
}

fn to_cred(raw: RawCred) -> Result<SmtpCredential> {
    let (id, account_id, username, allow, last5, hash, created_at, last_used_at) = raw;
    Ok(SmtpCredential {
        id,
        account_id,
        username: EmailAddress::from_stored(&username).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        allow: AccessRestriction::from_db(&allow)?,
        last5,
        hash,
        created_at,
        last_used_at,
    })
}

fn generate() -> Result<Secret> {
    Secret::generate(SecretKind::SmtpPassword).map_err(|e| StoreError::Random(e.to_string()))
}

impl Store {
    /// Creates a credential and returns it with its password, which is never available again.
    pub fn create_smtp_credential(
        &mut self,
        email: &EmailAddress,
        new: NewSmtpCredential,
        params: &HashParams,
    ) -> Result<(SmtpCredential, Secret)> {
        // Hashed before the write lock is taken: argon2 takes far longer than the checks, and
        // other writers (20 CLI processes, the API) would wait behind it past the busy timeout.
        let secret = generate()?;
        let hash = params.hash(&secret).map_err(|e| StoreError::Hash(e.to_string()))?;
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let count = tx.int("SELECT count(*) FROM smtp_credentials WHERE account_id = ?1", params![account])?;
        if count as usize >= MAX_PER_ACCOUNT {
            return Err(StoreError::LimitReached {
                account: email.to_string(),
                what: "SMTP credentials",
                max: MAX_PER_ACCOUNT,
            });
        }
        let username = new.username.unwrap_or_else(|| email.clone());
        if !username_is_free(&tx, &username, account, None)? {
            return Err(StoreError::UsernameTaken(username.to_string()));
        }
        let created_at = now();
        let id = tx.int(
            "INSERT INTO smtp_credentials (account_id, username, allow, last5, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6) RETURNING id",
            params![account, username.as_str(), &new.allow.to_db(), &secret.last5(), &hash, created_at],
        )?;
        tx.commit()?;
        let cred = SmtpCredential {
            id,
            account_id: account,
            username,
            allow: new.allow,
            last5: secret.last5(),
            hash,
            created_at,
            last_used_at: None,
        };
        Ok((cred, secret))
    }

    pub fn smtp_credentials(&self, email: &EmailAddress) -> Result<Listing<SmtpCredential>> {
        let account = account_id(&self.db, email)?;
        let sql = format!("SELECT {COLUMNS} FROM smtp_credentials WHERE account_id = ?1 ORDER BY id");
        let rows = self.db.rows(&sql, params![account])?.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Listing::read("smtp_credentials", rows, |r| r.0, to_cred))
    }

    /// Every credential of every account; a row that cannot be read is reported on its own,
    /// so it does not hide the others.
    pub fn all_smtp_credentials(&self) -> Result<Vec<Result<SmtpCredential>>> {
        let rows = self.db.rows(&format!("SELECT {COLUMNS} FROM smtp_credentials"), params![])?;
        Ok(rows.iter().map(|r| from_row(r).and_then(to_cred)).collect())
    }

    pub fn smtp_credential(&self, email: &EmailAddress, id: i64) -> Result<SmtpCredential> {
        let account = account_id(&self.db, email)?;
        self.smtp_credential_by_id(id)?
            .filter(|c| c.account_id == account)
            .ok_or_else(|| StoreError::UnknownSmtpCredential { account: email.to_string(), id })
    }

    pub fn smtp_credential_by_id(&self, id: i64) -> Result<Option<SmtpCredential>> {
        read_one(self.db.row(&format!("SELECT {COLUMNS} FROM smtp_credentials WHERE id = ?1"), params![id])?)
    }

    /// The credential whose username is `username` (compared case-insensitively).
    pub fn smtp_credential_by_username(&self, username: &str) -> Result<Option<SmtpCredential>> {
        read_one(
            self.db.row(&format!("SELECT {COLUMNS} FROM smtp_credentials WHERE username = ?1"), params![username])?,
        )
    }

    pub fn edit_smtp_credential(
        &mut self,
        email: &EmailAddress,
        id: i64,
        edit: SmtpCredentialEdit,
    ) -> Result<SmtpCredential> {
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let owned =
            tx.int("SELECT count(*) FROM smtp_credentials WHERE id = ?1 AND account_id = ?2", params![id, account])?;
        if owned == 0 {
            return Err(StoreError::UnknownSmtpCredential { account: email.to_string(), id });
        }
        if let Some(allow) = &edit.allow {
            tx.exec("UPDATE smtp_credentials SET allow = ?1 WHERE id = ?2", params![&allow.to_db(), id])?;
        }
        tx.commit()?;
        self.smtp_credential(email, id)
    }

    /// Gives the credential a new password; the old one stops working with this commit.
    pub fn change_smtp_credential(
        &mut self,
        email: &EmailAddress,
        id: i64,
        params: &HashParams,
    ) -> Result<(SmtpCredential, Secret)> {
        let secret = generate()?;
        let hash = params.hash(&secret).map_err(|e| StoreError::Hash(e.to_string()))?;
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        let n = tx.exec(
            "UPDATE smtp_credentials SET last5 = ?1, hash = ?2 WHERE id = ?3 AND account_id = ?4",
            params![&secret.last5(), &hash, id, account],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownSmtpCredential { account: email.to_string(), id });
        }
        tx.commit()?;
        Ok((self.smtp_credential(email, id)?, secret))
    }

    pub fn remove_smtp_credential(&mut self, email: &EmailAddress, id: i64) -> Result<()> {
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        if tx.exec("DELETE FROM smtp_credentials WHERE id = ?1 AND account_id = ?2", params![id, account])? == 0 {
            return Err(StoreError::UnknownSmtpCredential { account: email.to_string(), id });
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the credential's hash by `new` only if it is still `old` (compare-and-set), so
    /// a `change` made meanwhile wins over a rehash. `Ok(true)` when it was written.
    pub fn update_smtp_credential_hash(&mut self, id: i64, old: &str, new: &str) -> Result<bool> {
        let n =
            self.db.exec("UPDATE smtp_credentials SET hash = ?1 WHERE id = ?2 AND hash = ?3", params![new, id, old])?;
        Ok(n == 1)
    }

    pub fn touch_smtp_credential(&mut self, id: i64) -> Result<()> {
        self.db.exec("UPDATE smtp_credentials SET last_used_at = ?1 WHERE id = ?2", params![now(), id])?;
        Ok(())
    }
}
