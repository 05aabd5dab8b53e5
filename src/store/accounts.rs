//! Queries on the `accounts` table.

use rusqlite::{OptionalExtension, Row, params};

use super::{Listing, Result, Store, StoreError, account_id, now, query_all};
use crate::address::EmailAddress;
use crate::model::Account;

fn from_row(r: &Row<'_>) -> rusqlite::Result<(i64, String, bool, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn to_account((id, email, enabled, created_at): (i64, String, bool, i64)) -> Result<Account> {
    let email = EmailAddress::from_stored(&email).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    Ok(Account { id, email, enabled, created_at })
}

const COLUMNS: &str = "id, email, enabled, created_at";

impl Store {
    /// Adds an account with its own address as a verified sender entry. Refused when the
    /// address is an account already, another account's SMTP username (usernames are unique
    /// across the whole system) or another account's sender entry.
    pub fn add_account(&mut self, email: &EmailAddress) -> Result<Account> {
        let tx = self.write()?;
        let exists: i64 =
            tx.query_row("SELECT count(*) FROM accounts WHERE email = ?1", [email.as_str()], |r| r.get(0))?;
        if exists > 0 {
            return Err(StoreError::AccountExists(email.to_string()));
        }
        let used: i64 =
            tx.query_row("SELECT count(*) FROM smtp_credentials WHERE username = ?1", [email.as_str()], |r| r.get(0))?;
        if used > 0 {
            return Err(StoreError::UsernameTaken(email.to_string()));
        }
        let created_at = now();
        tx.execute(
            "INSERT INTO accounts (email, enabled, created_at) VALUES (?1, 1, ?2)",
            params![email.as_str(), created_at],
        )?;
        let id = tx.last_insert_rowid();
        // In the same transaction: an account exists only with its own address as a sender.
        super::senders::bind_own_address(&tx, id, email)?;
        tx.commit()?;
        Ok(Account { id, email: email.clone(), enabled: true, created_at })
    }

    pub fn account(&self, email: &EmailAddress) -> Result<Account> {
        self.find_account(email)?.ok_or_else(|| StoreError::UnknownAccount(email.to_string()))
    }

    pub fn find_account(&self, email: &EmailAddress) -> Result<Option<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE email = ?1");
        self.conn.query_row(&sql, [email.as_str()], from_row).optional()?.map(to_account).transpose()
    }

    pub fn account_by_id(&self, id: i64) -> Result<Option<Account>> {
        let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1");
        self.conn.query_row(&sql, [id], from_row).optional()?.map(to_account).transpose()
    }

    pub fn accounts(&self) -> Result<Listing<Account>> {
        let rows = query_all(&self.conn, &format!("SELECT {COLUMNS} FROM accounts ORDER BY email"), [], from_row)?;
        Ok(Listing::read("accounts", rows, |r| r.0, to_account))
    }

    /// Every account; a row that cannot be read is reported on its own, so it does not hide
    /// the others.
    pub fn all_accounts(&self) -> Result<Vec<Result<Account>>> {
        let rows = query_all(&self.conn, &format!("SELECT {COLUMNS} FROM accounts"), [], from_row)?;
        Ok(rows.into_iter().map(to_account).collect())
    }

    /// The account a login name belongs to: by its own address or by any of its SMTP usernames.
    pub fn account_for_login(&self, username: &str) -> Result<Option<Account>> {
        let sql = format!(
            "SELECT {COLUMNS} FROM accounts WHERE email = ?1
             UNION SELECT a.id, a.email, a.enabled, a.created_at FROM accounts a
               JOIN smtp_credentials c ON c.account_id = a.id WHERE c.username = ?1
             LIMIT 1"
        );
        self.conn.query_row(&sql, [username], from_row).optional()?.map(to_account).transpose()
    }

    pub fn set_account_enabled(&mut self, email: &EmailAddress, enabled: bool) -> Result<Account> {
        let tx = self.write()?;
        let id = account_id(&tx, email)?;
        tx.execute("UPDATE accounts SET enabled = ?1 WHERE id = ?2", params![enabled, id])?;
        tx.commit()?;
        self.account(email)
    }

    /// Removes an account with all its keys and credentials.
    pub fn remove_account(&mut self, email: &EmailAddress) -> Result<()> {
        let tx = self.write()?;
        let id = account_id(&tx, email)?;
        tx.execute("DELETE FROM accounts WHERE id = ?1", [id])?;
        tx.commit()?;
        Ok(())
    }

    /// How many API keys and SMTP credentials an account holds.
    pub fn account_counts(&self, account_id: i64) -> Result<(usize, usize)> {
        let keys: i64 =
            self.conn.query_row("SELECT count(*) FROM api_keys WHERE account_id = ?1", [account_id], |r| r.get(0))?;
        let creds: i64 =
            self.conn
                .query_row("SELECT count(*) FROM smtp_credentials WHERE account_id = ?1", [account_id], |r| r.get(0))?;
        Ok((keys as usize, creds as usize))
    }
}
