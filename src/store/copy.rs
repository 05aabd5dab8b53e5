//! `relaykey store copy`: every account, API key, SMTP credential, sender entry and DKIM key of
//! one store written into another, empty one (SQLite to PostgreSQL when a host becomes
//! several). Rows keep their ids, so the references between them hold as they are, and
//! secrets are copied as their hashes: nothing needs to be shown again.

use super::db::{Param, Value, params};
use super::{Result, Store, StoreError};

/// The tables copied, parents first, with their columns (the same in both schemas).
const TABLES: &[(&str, &str)] = &[
    ("accounts", "id, email, enabled, created_at"),
    ("api_keys", "id, account_id, name, permissions, allow, last5, locator, hash, created_at, last_used_at"),
    ("smtp_credentials", "id, account_id, username, allow, last5, hash, created_at, last_used_at"),
    ("senders", "id, entry, account_id, kind, verified, token, unicode, created_at"),
    ("dkim_keys", "id, sender_id, domain, selector, algorithm, private_key, public_key, state, created_at"),
];

/// How many rows of each table a copy wrote, in [`TABLES`] order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyCounts(pub Vec<(&'static str, u64)>);

impl Store {
    /// Copies this store into `target`, in one transaction of the target's: all or nothing.
    /// Refused (`TargetNotEmpty`) when the target holds any account, key, credential, sender
    /// or DKIM key. The source is read as one snapshot.
    pub fn copy_into(&self, target: &mut Store) -> Result<CopyCounts> {
        let tx = target.db.write()?;
        let present = {
            let mut n = 0;
            for (table, _) in TABLES {
                n += tx.int(&format!("SELECT count(*) FROM {table}"), params![])?;
            }
            n
        };
        if present > 0 {
            return Err(StoreError::TargetNotEmpty(present as u64));
        }
        let mut counts = Vec::new();
        self.read_snapshot(|source| {
            for (table, columns) in TABLES {
                let rows = source.db.rows(&format!("SELECT {columns} FROM {table} ORDER BY id"), params![])?;
                let width = columns.split(',').count();
                let marks = (1..=width).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
                let insert = format!("INSERT INTO {table} ({columns}) VALUES ({marks})");
                for row in &rows {
                    let values: Vec<Param<'_>> = row
                        .0
                        .iter()
                        .map(|v| match v {
                            Value::Int(i) => Param::Int(*i),
                            Value::Text(t) => Param::Text(t),
                            Value::Blob(b) => Param::Blob(b),
                            Value::Null => Param::Null,
                        })
                        .collect();
                    tx.exec(&insert, &values)?;
                }
                counts.push((*table, rows.len() as u64));
            }
            Ok(())
        })?;
        if tx.is_postgres() {
            // Explicit ids leave the identity sequences behind: the next row would clash.
            for (table, _) in TABLES {
                tx.rows(
                    &format!(
                        "SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT coalesce(max(id), 0) + 1 FROM {table}), false)"
                    ),
                    params![],
                )?;
            }
        }
        tx.commit()?;
        Ok(CopyCounts(counts))
    }
}
