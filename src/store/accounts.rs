//! Queries on the `accounts` table.

use super::db::{Row, params};
use super::{Listing, Result, Store, StoreError, account_id, now};
use crate::address::EmailAddress;
use crate::model::Account;

fn from_row(r: &Row) -> Result<(i64, String, bool, i64)> {
    Ok((r.int(0)?, r.text(1)?, r.flag(2)?, r.int(3)?))
}

fn to_account((id, email, enabled, created_at): (i64, String, bool, i64)) -> Result<Account> {
    let email = EmailAddress::from_stored(&email).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Account { id, email, enabled, created_at })
}

fn read_one(row: Option<Row>) -> Result<Option<Account>> {
    row.as_ref().map(from_row).transpose()?.map(to_account).transpose()
}

const COLUMNS: &str = "id, email, enabled, created_at";

impl Store {
    /// Adds an account with its own address as a verified sender entry. Refused when the
    /// address is an account already, another account's SMTP username (usernames are unique
    /// across the whole system) or another account's sender entry.
    pub fn add_account(&mut self, email: &EmailAddress) -> Result<Account> {
        let tx = self.write()?;
        let exists = tx.int("SELECT count(*) FROM accounts WHERE email = ?1", params![email.as_str()])?;
        if exists > 0 {
            return Err(StoreError::AccountExists(email.to_string()));
        }
        let used = tx.int("SELECT count(*) FROM smtp_credentials WHERE username = ?1", params![email.as_str()])?;
        if used > 0 {
            return Err(StoreError::UsernameTaken(email.to_string()));
        }
        let created_at = now();
        let id = tx.int(
            "INSERT INTO accounts (email, enabled, created_at) VALUES (?1, 1, ?2) RETURNING id",
            params![email.as_str(), created_at],
        )?;
        // In the same transaction: an account exists only with its own address as a sender.
        super::senders::bind_own_address(&tx, id, email)?;
        tx.commit()?;
        Ok(Account { id, email: email.clone(), enabled: true, created_at })
    }

    pub fn account(&self, email: &EmailAddress) -> Result<Account> {
        self.find_account(email)?.ok_or_else(|| StoreError::UnknownAccount(email.to_string()))
    }

    pub fn find_account(&self, email: &EmailAddress) -> Result<Option<Account>> {
        read_one(self.db.row(&format!("SELECT {COLUMNS} FROM accounts WHERE email = ?1"), params![email.as_str()])?)
    }

    pub fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        read_one(self.db.row(&format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1"), params![id])?)
    }

    pub fn accounts(&self) -> Result<Listing<Account>> {
        let rows = self.db.rows(&format!("SELECT {COLUMNS} FROM accounts ORDER BY email"), params![])?;
        let rows = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Listing::read("accounts", rows, |r| r.0, to_account))
    }

    /// Every account; a row that cannot be read is reported on its own, so it does not hide
    /// the others.
    pub fn all_accounts(&self) -> Result<Vec<Result<Account>>> {
        let rows = self.db.rows(&format!("SELECT {COLUMNS} FROM accounts"), params![])?;
        Ok(rows.iter().map(|r| from_row(r).and_then(to_account)).collect())
    }

    /// The account a login name belongs to: by its own address or by any of its SMTP usernames.
    pub fn account_for_login(&self, username: &str) -> Result<Option<Account>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM accounts WHERE email = ?1
             UNION SELECT a.id, a.email, a.enabled, a.created_at FROM accounts a
               JOIN smtp_credentials c ON c.account_id = a.id WHERE c.username = ?1
             LIMIT 1"
        );
        read_one(self.db.row(&sql, params![username])?)
    }

    pub fn set_account_enabled(&mut self, email: &EmailAddress, enabled: bool) -> Result<Account> {
        let tx = self.write()?;
        let id = account_id(&tx, email)?;
        tx.exec("UPDATE accounts SET enabled = ?1 WHERE id = ?2", params![enabled, id])?;
        tx.commit()?;
        self.account(email)
    }

    /// Removes an account with all its keys and credentials.
    pub fn remove_account(&mut self, email: &EmailAddress) -> Result<()> {
        let tx = self.write()?;
        let id = account_id(&tx, email)?;
        tx.exec("DELETE FROM accounts WHERE id = ?1", params![id])?;
        tx.commit()?;
        Ok(())
    }

    /// How many API keys and SMTP credentials an account holds.
    pub fn account_counts(&self, account_id: i64) -> Result<(usize, usize)> {
        let keys = self.db.int("SELECT count(*) FROM api_keys WHERE account_id = ?1", params![account_id])?;
        let creds = self.db.int("SELECT count(*) FROM smtp_credentials WHERE account_id = ?1", params![account_id])?;
        Ok((keys as usize, creds as usize))
    }
}
