//! Queries on the `dkim_keys` table: each verified sender domain's DKIM keys, their selectors
//! and states. The private key is written once, at generation, and read back only by
//! [`Store::active_dkim_keys`] for the daemon's keyring.

use super::db::{Db, Row, params};
use super::{Result, Store, StoreError, now};
use crate::dkim::{ActiveKeyRow, Algorithm, DkimKey, GeneratedKey, KeyState, PrivateKey};

const COLUMNS: &str = "domain, selector, algorithm, state, public_key, created_at";

fn from_row(r: &Row) -> Result<(String, String, String, String, Vec<u8>, i64)> {
    Ok((r.text(0)?, r.text(1)?, r.text(2)?, r.text(3)?, r.blob(4)?, r.int(5)?))
}

fn read(r: &Row) -> Result<DkimKey> {
    from_row(r).and_then(to_key)
}

fn to_key(raw: (String, String, String, String, Vec<u8>, i64)) -> Result<DkimKey> {
    let (domain, selector, algorithm, state, public, created_at) = raw;
    let corrupt = |what: &str| StoreError::Corrupt(format!("DKIM key {selector}.{domain}: {what}"));
    Ok(DkimKey {
        algorithm: Algorithm::parse(&algorithm).ok_or_else(|| corrupt("algorithm"))?,
        state: KeyState::from_db(&state).ok_or_else(|| corrupt("state"))?,
        domain,
        selector,
        public,
        created_at,
    })
}

/// The id of the verified domain entry `ascii_domain`, or why there is none.
fn verified_domain(tx: &Db, ascii_domain: &str) -> Result<i64> {
    let row = tx
        .row("SELECT id, verified FROM senders WHERE entry = ?1 AND kind = 'domain'", params![ascii_domain])?
        .map(|r| Ok::<_, StoreError>((r.int(0)?, r.flag(1)?)))
        .transpose()?;
    match row {
        None => Err(StoreError::UnknownSenderDomain(ascii_domain.to_string())),
        Some((_, false)) => Err(StoreError::UnverifiedSenderDomain(ascii_domain.to_string())),
        Some((id, true)) => Ok(id),
    }
}

fn key(conn: &Db, ascii_domain: &str, selector: &str) -> Result<DkimKey> {
    conn.row(
        &format!("SELECT {COLUMNS} FROM dkim_keys WHERE domain = ?1 AND selector = ?2"),
        params![ascii_domain, selector],
    )?
    .as_ref()
    .map(read)
    .transpose()?
    .ok_or_else(|| StoreError::UnknownDkimKey { domain: ascii_domain.to_string(), selector: selector.to_string() })
}

impl Store {
    /// Checks that `ascii_domain` is a verified sender domain (before the slow RSA generation).
    pub fn dkim_domain_ready(&self, ascii_domain: &str) -> Result<()> {
        verified_domain(&self.db, ascii_domain).map(|_| ())
    }

    /// Stores new keys of a verified sender domain, all or none, each `published`. Refused
    /// with `UnknownSenderDomain`, `UnverifiedSenderDomain` or `DkimSelectorTaken`.
    pub fn add_dkim_keys(&mut self, ascii_domain: &str, keys: &[(String, GeneratedKey)]) -> Result<Vec<DkimKey>> {
        let tx = self.write()?;
        let sender_id = verified_domain(&tx, ascii_domain)?;
        let created_at = now();
        for (selector, generated) in keys {
            let taken = tx.int(
                "SELECT count(*) FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
                params![ascii_domain, selector.as_str()],
            )? > 0;
            if taken {
                return Err(StoreError::DkimSelectorTaken {
                    domain: ascii_domain.to_string(),
                    selector: selector.clone(),
                });
            }
            tx.exec(
                "INSERT INTO dkim_keys (sender_id, domain, selector, algorithm, private_key, public_key, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    sender_id,
                    ascii_domain,
                    selector,
                    generated.private.algorithm.as_str(),
                    generated.private.pkcs8(),
                    &generated.public,
                    KeyState::Published.as_str(),
                    created_at
                ],
            )?;
        }
        let stored = keys.iter().map(|(selector, _)| key(&tx, ascii_domain, selector)).collect::<Result<Vec<_>>>()?;
        tx.commit()?;
        Ok(stored)
    }

    /// Every key, or one domain's, by domain then creation then selector.
    pub fn dkim_keys(&self, ascii_domain: Option<&str>) -> Result<Vec<DkimKey>> {
        let rows = match ascii_domain {
            Some(d) => self.db.rows(
                &format!("SELECT {COLUMNS} FROM dkim_keys WHERE domain = ?1 ORDER BY created_at, selector"),
                params![d],
            )?,
            None => self
                .db
                .rows(&format!("SELECT {COLUMNS} FROM dkim_keys ORDER BY domain, created_at, selector"), params![])?,
        };
        rows.iter().map(read).collect()
    }

    /// One key; `UnknownDkimKey` when the domain has no such selector.
    pub fn dkim_key(&self, ascii_domain: &str, selector: &str) -> Result<DkimKey> {
        key(&self.db, ascii_domain, selector)
    }

    /// Moves a key to `state` (activate, retire).
    pub fn set_dkim_key_state(&mut self, ascii_domain: &str, selector: &str, state: KeyState) -> Result<DkimKey> {
        let tx = self.write()?;
        let changed = tx.exec(
            "UPDATE dkim_keys SET state = ?3 WHERE domain = ?1 AND selector = ?2",
            params![ascii_domain, selector, state.as_str()],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownDkimKey {
                domain: ascii_domain.to_string(),
                selector: selector.to_string(),
            });
        }
        let updated = key(&tx, ascii_domain, selector)?;
        tx.commit()?;
        Ok(updated)
    }

    /// The active keys of verified domains, private halves included, with the owning account:
    /// what the keyring signs with.
    pub fn active_dkim_keys(&self) -> Result<Vec<ActiveKeyRow>> {
        let rows = self
            .db
            .rows(
                "SELECT k.domain, s.account_id, k.selector, k.algorithm, k.private_key
                 FROM dkim_keys k JOIN senders s ON s.id = k.sender_id
                 WHERE k.state = 'active' AND s.verified = 1
                 ORDER BY k.domain, k.selector",
                params![],
            )?
            .iter()
            .map(|r| Ok::<_, StoreError>((r.text(0)?, r.int(1)?, r.text(2)?, r.text(3)?, r.blob(4)?)))
            .collect::<Result<Vec<_>>>()?;
        rows.into_iter()
            .map(|(domain, owner, selector, algorithm, pkcs8)| {
                let algorithm = Algorithm::parse(&algorithm)
                    .ok_or_else(|| StoreError::Corrupt(format!("DKIM key {selector}.{domain}: algorithm")))?;
                Ok(ActiveKeyRow { domain, owner, selector, private: PrivateKey::from_pkcs8(algorithm, pkcs8) })
            })
            .collect()
    }
}
