//! Queries on the `dkim_keys` table: each verified sender domain's DKIM keys, their selectors
//! and states. The private key is written once, at generation, and read back only by
//! [`Store::active_dkim_keys`] for the daemon's keyring.

use rusqlite::{Connection, OptionalExtension, Row, params};

use super::{Result, Store, StoreError, now, query_all};
use crate::dkim::{ActiveKeyRow, Algorithm, DkimKey, GeneratedKey, KeyState, PrivateKey};

const COLUMNS: &str = "domain, selector, algorithm, state, public_key, created_at";

fn from_row(r: &Row<'_>) -> rusqlite::Result<(String, String, String, String, Vec<u8>, i64)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
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
fn verified_domain(tx: &Connection, ascii_domain: &str) -> Result<i64> {
    let row: Option<(i64, bool)> = tx
        .query_row("SELECT id, verified FROM senders WHERE entry = ?1 AND kind = 'domain'", [ascii_domain], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    match row {
        None => Err(StoreError::UnknownSenderDomain(ascii_domain.to_string())),
        Some((_, false)) => Err(StoreError::UnverifiedSenderDomain(ascii_domain.to_string())),
        Some((id, true)) => Ok(id),
    }
}

fn key(conn: &Connection, ascii_domain: &str, selector: &str) -> Result<DkimKey> {
    conn.query_row(
        &format!("SELECT {COLUMNS} FROM dkim_keys WHERE domain = ?1 AND selector = ?2"),
        [ascii_domain, selector],
        from_row,
    )
    .optional()?
    .map(to_key)
    .transpose()?
    .ok_or_else(|| StoreError::UnknownDkimKey { domain: ascii_domain.to_string(), selector: selector.to_string() })
}

impl Store {
    /// Checks that `ascii_domain` is a verified sender domain (before the slow RSA generation).
    pub fn dkim_domain_ready(&self, ascii_domain: &str) -> Result<()> {
        verified_domain(&self.conn, ascii_domain).map(|_| ())
    }

    /// Stores new keys of a verified sender domain, all or none, each `published`. Refused
    /// with `UnknownSenderDomain`, `UnverifiedSenderDomain` or `DkimSelectorTaken`.
    pub fn add_dkim_keys(&mut self, ascii_domain: &str, keys: &[(String, GeneratedKey)]) -> Result<Vec<DkimKey>> {
        let tx = self.write()?;
        let sender_id = verified_domain(&tx, ascii_domain)?;
        let created_at = now();
        for (selector, generated) in keys {
            let taken: bool = tx.query_row(
                "SELECT count(*) > 0 FROM dkim_keys WHERE domain = ?1 AND selector = ?2",
                [ascii_domain, selector.as_str()],
                |r| r.get(0),
            )?;
            if taken {
                return Err(StoreError::DkimSelectorTaken {
                    domain: ascii_domain.to_string(),
                    selector: selector.clone(),
                });
            }
            tx.execute(
                "INSERT INTO dkim_keys (sender_id, domain, selector, algorithm, private_key, public_key, state, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    sender_id,
                    ascii_domain,
                    selector,
                    generated.private.algorithm.as_str(),
                    generated.private.pkcs8(),
                    generated.public,
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
            Some(d) => query_all(
                &self.conn,
                &format!("SELECT {COLUMNS} FROM dkim_keys WHERE domain = ?1 ORDER BY created_at, selector"),
                [d],
                from_row,
            )?,
            None => query_all(
                &self.conn,
                &format!("SELECT {COLUMNS} FROM dkim_keys ORDER BY domain, created_at, selector"),
                [],
                from_row,
            )?,
        };
        rows.into_iter().map(to_key).collect()
    }

    /// One key; `UnknownDkimKey` when the domain has no such selector.
    pub fn dkim_key(&self, ascii_domain: &str, selector: &str) -> Result<DkimKey> {
        key(&self.conn, ascii_domain, selector)
    }

    /// Moves a key to `state` (activate, retire).
    pub fn set_dkim_key_state(&mut self, ascii_domain: &str, selector: &str, state: KeyState) -> Result<DkimKey> {
        let tx = self.write()?;
        let changed = tx.execute(
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
        let rows = query_all(
            &self.conn,
            "SELECT k.domain, s.account_id, k.selector, k.algorithm, k.private_key
             FROM dkim_keys k JOIN senders s ON s.id = k.sender_id
             WHERE k.state = 'active' AND s.verified = 1
             ORDER BY k.domain, k.selector",
            [],
            |r| Ok((r.get::<_, String>(0)?, r.get(1)?, r.get(2)?, r.get::<_, String>(3)?, r.get::<_, Vec<u8>>(4)?)),
        )?;
        rows.into_iter()
            .map(|(domain, owner, selector, algorithm, pkcs8)| {
                let algorithm = Algorithm::parse(&algorithm)
                    .ok_or_else(|| StoreError::Corrupt(format!("DKIM key {selector}.{domain}: algorithm")))?;
                Ok(ActiveKeyRow { domain, owner, selector, private: PrivateKey::from_pkcs8(algorithm, pkcs8) })
            })
            .collect()
    }
}
