//! The `login_grants` table: the login ledger as every host shares it (see `auth::ledger`).
//! One row per (username, client address, secret): when it last logged in and when a policy
//! server found that it no longer holds.

use super::db::params;
use super::{Result, Store};

/// The lock the ledger's writes take (on PostgreSQL; apart from the store-wide one, so that
/// they wait for no other writer and notify no cache).
const LEDGER_LOCK: i64 = 0x726b_6c65_6467_6572;

/// One recorded login. Times are Unix milliseconds; `client` is the canonical client address,
/// or empty when there was none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredLogin {
    pub username: String,
    pub client: String,
    /// `apikey` or `smtp`.
    pub kind: &'static str,
    pub credential_id: i64,
    /// The hash the secret was verified against: which generation of the secret was used.
    pub hash: String,
    pub account_id: i64,
    pub account: String,
    pub login_at: i64,
    pub revoked_at: Option<i64>,
}

fn kind_of(text: &str) -> Option<&'static str> {
    ["apikey", "smtp"].into_iter().find(|k| *k == text)
}

impl Store {
    /// Records logins in one transaction. A login already recorded gets the later of the two
    /// login times, and its revocation is cleared unless it was found after this login: the
    /// secret held again (an account disabled and enabled again), but a write that arrives
    /// late does not undo a later finding.
    pub fn record_logins(&mut self, logins: &[StoredLogin]) -> Result<()> {
        let tx = self.db.write_keyed(LEDGER_LOCK)?;
        for l in logins {
            tx.exec(
                "INSERT INTO login_grants \
                 (username, client, kind, credential_id, hash, account_id, account, login_at, revoked_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, NULL) \
                 ON CONFLICT (username, client, kind, credential_id, hash) DO UPDATE SET \
                 login_at = CASE WHEN excluded.login_at > login_grants.login_at \
                    THEN excluded.login_at ELSE login_grants.login_at END, \
                 revoked_at = CASE WHEN login_grants.revoked_at >= excluded.login_at \
                    THEN login_grants.revoked_at ELSE NULL END, \
                 account_id = excluded.account_id, account = excluded.account",
                params![&l.username, &l.client, l.kind, l.credential_id, &l.hash, l.account_id, &l.account, l.login_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Notes, for each login, that its secret was found no longer to hold at `revoked_at`;
    /// an earlier finding stays.
    pub fn revoke_logins(&mut self, revoked: &[StoredLogin]) -> Result<()> {
        let tx = self.db.write_keyed(LEDGER_LOCK)?;
        for l in revoked {
            tx.exec(
                "UPDATE login_grants SET revoked_at = ?6 WHERE username = ?1 AND client = ?2 AND kind = ?3 \
                 AND credential_id = ?4 AND hash = ?5 AND revoked_at IS NULL",
                params![&l.username, &l.client, l.kind, l.credential_id, &l.hash, l.revoked_at],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The logins of `username` from `client` at or after `since`, oldest first.
    pub fn recorded_logins(&self, username: &str, client: &str, since: i64) -> Result<Vec<StoredLogin>> {
        let rows = self.db.rows(
            "SELECT kind, credential_id, hash, account_id, account, login_at, revoked_at FROM login_grants \
             WHERE username = ?1 AND client = ?2 AND login_at >= ?3 ORDER BY login_at",
            params![username, client, since],
        )?;
        let mut logins = Vec::with_capacity(rows.len());
        for r in &rows {
            // A kind this version does not know names no secret it could re-check.
            let Some(kind) = kind_of(&r.text(0)?) else { continue };
            logins.push(StoredLogin {
                username: username.to_string(),
                client: client.to_string(),
                kind,
                credential_id: r.int(1)?,
                hash: r.text(2)?,
                account_id: r.int(3)?,
                account: r.text(4)?,
                login_at: r.int(5)?,
                revoked_at: r.opt_int(6)?,
            });
        }
        Ok(logins)
    }

    /// Forgets logins made before `before`. Returns the rows deleted.
    pub fn purge_logins(&mut self, before: i64) -> Result<u64> {
        self.db.exec("DELETE FROM login_grants WHERE login_at < ?1", params![before])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relaykey.db")).unwrap();
        (dir, store)
    }

    fn login(hash: &str, at: i64) -> StoredLogin {
        StoredLogin {
            username: "a@example.com".into(),
            client: "192.0.2.1".into(),
            kind: "smtp",
            credential_id: 3,
            hash: hash.into(),
            account_id: 1,
            account: "a@example.com".into(),
            login_at: at,
            revoked_at: None,
        }
    }

    fn recorded(store: &Store) -> Vec<(String, i64, Option<i64>)> {
        let rows = store.recorded_logins("a@example.com", "192.0.2.1", 0).unwrap();
        rows.into_iter().map(|l| (l.hash, l.login_at, l.revoked_at)).collect()
    }

    #[test]
    fn a_repeated_login_keeps_the_later_time_and_one_row() {
        let (_dir, mut store) = store();
        store.record_logins(&[login("p", 10), login("k", 20)]).unwrap();
        store.record_logins(&[login("p", 30), login("k", 15)]).unwrap();
        assert_eq!(recorded(&store), [("k".into(), 20, None), ("p".into(), 30, None)]);
        assert!(store.recorded_logins("a@example.com", "192.0.2.2", 0).unwrap().is_empty(), "per address");
        assert!(store.recorded_logins("b@example.com", "192.0.2.1", 0).unwrap().is_empty(), "per user");
        assert_eq!(store.recorded_logins("a@example.com", "192.0.2.1", 25).unwrap().len(), 1, "recent only");
    }

    #[test]
    fn a_revocation_stays_until_a_later_login_of_the_same_secret() {
        let (_dir, mut store) = store();
        store.record_logins(&[login("p", 10)]).unwrap();
        store.revoke_logins(&[StoredLogin { revoked_at: Some(20), ..login("p", 0) }]).unwrap();
        store.revoke_logins(&[StoredLogin { revoked_at: Some(25), ..login("p", 0) }]).unwrap();
        assert_eq!(recorded(&store), [("p".into(), 10, Some(20))], "the first finding stays");
        // A login written late (made before the finding) does not clear it...
        store.record_logins(&[login("p", 15)]).unwrap();
        assert_eq!(recorded(&store), [("p".into(), 15, Some(20))]);
        // ...a login made after it does.
        store.record_logins(&[login("p", 30)]).unwrap();
        assert_eq!(recorded(&store), [("p".into(), 30, None)]);
    }

    #[test]
    fn old_logins_are_purged() {
        let (_dir, mut store) = store();
        store.record_logins(&[login("p", 10), login("k", 20)]).unwrap();
        assert_eq!(store.purge_logins(15).unwrap(), 1);
        assert_eq!(recorded(&store), [("k".into(), 20, None)]);
    }
}
