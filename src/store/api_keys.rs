//! Queries on the `api_keys` table.

use super::db::{Db, Row, params};
use super::{Listing, Result, Store, StoreError, account_id, now};
use crate::address::EmailAddress;
use crate::model::{ApiKey, MAX_PER_ACCOUNT, PermissionSet, key_name};
use crate::restriction::AccessRestriction;
use crate::secret::{HashParams, Secret, SecretKind};

/// What the caller chooses for a new key; the secret is always generated.
#[derive(Debug, Clone)]
pub struct NewApiKey {
    pub name: String,
    pub permissions: PermissionSet,
    pub allow: AccessRestriction,
}

/// Changes to a key's settings; `None` keeps the current value.
#[derive(Debug, Clone, Default)]
pub struct ApiKeyEdit {
    pub name: Option<String>,
    pub permissions: Option<PermissionSet>,
    pub allow: Option<AccessRestriction>,
}

/// How often to draw a new key when its last 5 characters clash with another key of the
/// account (a clash has odds of about 15 in a million; this bound is never reached in practice).
const MAX_DRAWS: usize = 64;

const COLUMNS: &str = "id, account_id, name, permissions, allow, last5, hash, created_at, last_used_at";

type RawKey = (i64, i64, String, String, String, String, String, i64, Option<i64>);

fn from_row(r: &Row) -> Result<RawKey> {
    Ok((r.int(0)?, r.int(1)?, r.text(2)?, r.text(3)?, r.text(4)?, r.text(5)?, r.text(6)?, r.int(7)?, r.opt_int(8)?))
}

fn read_all(rows: Vec<Row>) -> Result<Vec<RawKey>> {
    rows.iter().map(from_row).collect()
}

fn read_one(row: Option<Row>) -> Result<Option<ApiKey>> {
    row.as_ref().map(from_row).transpose()?.map(to_key).transpose()
}

fn to_key(raw: RawKey) -> Result<ApiKey> {
    let (id, account_id, name, permissions, allow, last5, hash, created_at, last_used_at) = raw;
    Ok(ApiKey {
        id,
        account_id,
        name,
        permissions: PermissionSet::from_db(&permissions).map_err(|e| StoreError::Corrupt(e.to_string()))?,
        allow: AccessRestriction::from_db(&allow)?,
        last5,
        hash,
        created_at,
        last_used_at,
    })
}

fn clean_name(name: &str) -> Result<String> {
    Ok(key_name(name)?)
}

/// A new secret and its hash, made before the write lock is taken: argon2 takes far longer
/// than the checks, and other writers (20 CLI processes, the API) would wait behind it past
/// the busy timeout.
fn draw(params: &HashParams) -> Result<(Secret, String)> {
    let secret = Secret::generate(SecretKind::ApiKey).map_err(|e| StoreError::Random(e.to_string()))?;
    let hash = params.hash(&secret).map_err(|e| StoreError::Hash(e.to_string()))?;
    Ok((secret, hash))
}

/// Does another key of `account` end in the same 5 characters? Logins find a key by them.
fn last5_clashes(tx: &Db, account: i64, secret: &Secret, except: Option<i64>) -> Result<bool> {
    let clash = tx.int(
        "SELECT count(*) FROM api_keys WHERE account_id = ?1 AND last5 = ?2 AND id != ?3",
        params![account, secret.last5().as_str(), except.unwrap_or(-1)],
    )?;
    Ok(clash != 0)
}

fn no_unique_draw() -> StoreError {
    StoreError::Random("no key with unique last 5 characters".into())
}

impl Store {
    /// Creates a key and returns it with its secret, which is never available again.
    pub fn create_api_key(
        &mut self,
        email: &EmailAddress,
        new: NewApiKey,
        params: &HashParams,
    ) -> Result<(ApiKey, Secret)> {
        let name = clean_name(&new.name)?;
        if new.permissions.is_empty() {
            return Err(StoreError::NoPermission);
        }
        // A clash of the last 5 (one in 2^20 per other key) draws again, outside the lock.
        let mut draws = 0;
        let (tx, account, secret, hash) = loop {
            let (secret, hash) = draw(params)?;
            let tx = self.write()?;
            let account = account_id(&tx, email)?;
            let count = tx.int("SELECT count(*) FROM api_keys WHERE account_id = ?1", params![account])?;
            if count as usize >= MAX_PER_ACCOUNT {
                return Err(StoreError::LimitReached {
                    account: email.to_string(),
                    what: "API keys",
                    max: MAX_PER_ACCOUNT,
                });
            }
            if !last5_clashes(&tx, account, &secret, None)? {
                break (tx, account, secret, hash);
            }
            draws += 1;
            if draws == MAX_DRAWS {
                return Err(no_unique_draw());
            }
        };
        let created_at = now();
        let id = tx.int(
            "INSERT INTO api_keys (account_id, name, permissions, allow, last5, locator, hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) RETURNING id",
            params![
                account,
                &name,
                &new.permissions.to_db(),
                &new.allow.to_db(),
                &secret.last5(),
                &secret.locator(),
                &hash,
                created_at
            ],
        )?;
        tx.commit()?;
        let key = ApiKey {
            id,
            account_id: account,
            name,
            permissions: new.permissions,
            allow: new.allow,
            last5: secret.last5(),
            hash,
            created_at,
            last_used_at: None,
        };
        Ok((key, secret))
    }

    pub fn api_keys(&self, email: &EmailAddress) -> Result<Listing<ApiKey>> {
        let account = account_id(&self.db, email)?;
        let rows = self
            .db
            .rows(&format!("SELECT {COLUMNS} FROM api_keys WHERE account_id = ?1 ORDER BY id"), params![account])?;
        Ok(Listing::read("api_keys", read_all(rows)?, |r| r.0, to_key))
    }

    /// Every key of every account; a row that cannot be read is reported on its own, so it
    /// does not hide the others.
    pub fn all_api_keys(&self) -> Result<Vec<Result<ApiKey>>> {
        let rows = self.db.rows(&format!("SELECT {COLUMNS} FROM api_keys"), params![])?;
        Ok(rows.iter().map(|r| from_row(r).and_then(to_key)).collect())
    }

    pub fn api_key(&self, email: &EmailAddress, id: i64) -> Result<ApiKey> {
        let account = account_id(&self.db, email)?;
        self.api_key_by_id(id)?
            .filter(|k| k.account_id == account)
            .ok_or_else(|| StoreError::UnknownApiKey { account: email.to_string(), id })
    }

    pub fn api_key_by_id(&self, id: i64) -> Result<Option<ApiKey>> {
        read_one(self.db.row(&format!("SELECT {COLUMNS} FROM api_keys WHERE id = ?1"), params![id])?)
    }

    /// The one key of `account_id` whose secret ends in `last5` (unique within an account).
    pub fn api_key_by_last5(&self, account_id: i64, last5: &str) -> Result<Option<ApiKey>> {
        let sql = format!("SELECT {COLUMNS} FROM api_keys WHERE account_id = ?1 AND last5 = ?2");
        read_one(self.db.row(&sql, params![account_id, last5])?)
    }

    /// The keys, across all accounts, whose locator matches (see [`Secret::locator`]); for a
    /// real key that is exactly one.
    pub fn api_keys_by_locator(&self, locator: &str) -> Result<Vec<ApiKey>> {
        let rows = self.db.rows(&format!("SELECT {COLUMNS} FROM api_keys WHERE locator = ?1"), params![locator])?;
        rows.iter().map(|r| from_row(r).and_then(to_key)).collect()
    }

    pub fn edit_api_key(&mut self, email: &EmailAddress, id: i64, edit: ApiKeyEdit) -> Result<ApiKey> {
        let tx = self.write()?;
        owner_of_key(&tx, email, id)?;
        if let Some(name) = &edit.name {
            tx.exec("UPDATE api_keys SET name = ?1 WHERE id = ?2", params![&clean_name(name)?, id])?;
        }
        if let Some(p) = edit.permissions {
            if p.is_empty() {
                return Err(StoreError::NoPermission);
            }
            tx.exec("UPDATE api_keys SET permissions = ?1 WHERE id = ?2", params![&p.to_db(), id])?;
        }
        if let Some(allow) = &edit.allow {
            tx.exec("UPDATE api_keys SET allow = ?1 WHERE id = ?2", params![&allow.to_db(), id])?;
        }
        tx.commit()?;
        self.api_key(email, id)
    }

    /// Gives the key a new secret; id, name, permissions and restriction stay. The old secret
    /// stops working with this commit.
    pub fn change_api_key(&mut self, email: &EmailAddress, id: i64, params: &HashParams) -> Result<(ApiKey, Secret)> {
        let mut draws = 0;
        let (tx, secret, hash) = loop {
            let (secret, hash) = draw(params)?;
            let tx = self.write()?;
            let account = owner_of_key(&tx, email, id)?;
            if !last5_clashes(&tx, account, &secret, Some(id))? {
                break (tx, secret, hash);
            }
            draws += 1;
            if draws == MAX_DRAWS {
                return Err(no_unique_draw());
            }
        };
        tx.exec(
            "UPDATE api_keys SET last5 = ?1, locator = ?2, hash = ?3 WHERE id = ?4",
            params![&secret.last5(), &secret.locator(), &hash, id],
        )?;
        tx.commit()?;
        Ok((self.api_key(email, id)?, secret))
    }

    pub fn remove_api_key(&mut self, email: &EmailAddress, id: i64) -> Result<()> {
        let tx = self.write()?;
        let account = account_id(&tx, email)?;
        if tx.exec("DELETE FROM api_keys WHERE id = ?1 AND account_id = ?2", params![id, account])? == 0 {
            return Err(StoreError::UnknownApiKey { account: email.to_string(), id });
        }
        tx.commit()?;
        Ok(())
    }

    /// Replaces the key's hash by `new` only if it is still `old` (compare-and-set), so a
    /// `change` made meanwhile wins over a rehash. `Ok(true)` when it was written.
    pub fn update_api_key_hash(&mut self, id: i64, old: &str, new: &str) -> Result<bool> {
        let n = self.db.exec("UPDATE api_keys SET hash = ?1 WHERE id = ?2 AND hash = ?3", params![new, id, old])?;
        Ok(n == 1)
    }

    pub fn touch_api_key(&mut self, id: i64) -> Result<()> {
        self.db.exec("UPDATE api_keys SET last_used_at = ?1 WHERE id = ?2", params![now(), id])?;
        Ok(())
    }
}

/// The id of `email`'s account, if it owns key `id`; otherwise `UnknownAccount` or
/// `UnknownApiKey`, so that one account can neither see nor touch another's keys.
fn owner_of_key(tx: &Db, email: &EmailAddress, id: i64) -> Result<i64> {
    let account = account_id(tx, email)?;
    let owned = tx.int("SELECT count(*) FROM api_keys WHERE id = ?1 AND account_id = ?2", params![id, account])?;
    if owned == 0 {
        return Err(StoreError::UnknownApiKey { account: email.to_string(), id });
    }
    Ok(account)
}
