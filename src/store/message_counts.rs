//! The `message_counts` table: per-account message counts in time buckets, the store side of
//! `crate::message_limits`. Which bucket a message goes into and what a window counts is the
//! caller's business; here the buckets are read, decided on and written in one transaction.

use super::db::{Db, params};
use super::{Result, Store};

/// One stored bucket: `span` names the window (see `RateWindow::code`), `slot` the bucket's
/// number since the Unix epoch, `count` the messages in it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CountedBucket {
    pub span: i64,
    pub slot: i64,
    pub count: i64,
}

/// Per window: (span, bucket number).
pub type Slots = [(i64, i64); 3];

impl Store {
    /// Reads `account`'s buckets from `oldest` on (per window), lets `decide` see them and,
    /// if it says so, counts one message in the `current` bucket of each window. One write
    /// transaction, so that two messages of one account, on this host or another, cannot both
    /// take the last slot. Older buckets are left to [`Store::purge_message_counts`] (a round
    /// trip less per message; the read skips them through the primary key).
    pub fn count_message<T>(
        &mut self,
        account: &str,
        oldest: &Slots,
        current: &Slots,
        decide: impl FnOnce(&[CountedBucket]) -> (T, bool),
    ) -> Result<T> {
        let tx = self.db.write_keyed(account_lock(account))?;
        let buckets = tx
            .rows(
                "SELECT span, slot, n FROM message_counts WHERE account = ?1 \
                 AND ((span = ?2 AND slot >= ?3) OR (span = ?4 AND slot >= ?5) OR (span = ?6 AND slot >= ?7))",
                params![account, oldest[0].0, oldest[0].1, oldest[1].0, oldest[1].1, oldest[2].0, oldest[2].1],
            )?
            .iter()
            .map(|r| Ok(CountedBucket { span: r.int(0)?, slot: r.int(1)?, count: r.int(2)? }))
            .collect::<Result<Vec<_>>>()?;
        let (out, take) = decide(&buckets);
        if !take {
            // Nothing written: ending the transaction either way is the same.
            return Ok(out);
        }
        tx.exec(
            "INSERT INTO message_counts (account, span, slot, n) VALUES (?1, ?2, ?3, 1), (?1, ?4, ?5, 1), (?1, ?6, ?7, 1) \
             ON CONFLICT (account, span, slot) DO UPDATE SET n = message_counts.n + excluded.n",
            params![account, current[0].0, current[0].1, current[1].0, current[1].1, current[2].0, current[2].1],
        )?;
        tx.commit()?;
        Ok(out)
    }

    /// Deletes every account's buckets older than `oldest`. Returns the rows deleted.
    pub fn purge_message_counts(&mut self, oldest: &Slots) -> Result<u64> {
        self.db.exec(
            "DELETE FROM message_counts \
             WHERE (span = ?1 AND slot < ?2) OR (span = ?3 AND slot < ?4) OR (span = ?5 AND slot < ?6)",
            params![oldest[0].0, oldest[0].1, oldest[1].0, oldest[1].1, oldest[2].0, oldest[2].1],
        )
    }

    /// For a connection whose writes may be lost in a crash without harm (message counts):
    /// commits do not wait for the disk. SQLite: `synchronous=NORMAL` (still consistent in
    /// WAL mode); PostgreSQL: `synchronous_commit=off` for this session (a crash of the server
    /// may forget the last moments' counts, never corrupt them).
    pub fn relax_durability(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(conn) => conn.pragma_update(None, "synchronous", "NORMAL")?,
            Db::Postgres(_) => self.db.batch("SET synchronous_commit = off")?,
        }
        Ok(())
    }
}

/// The lock that serializes the counting of one account's messages (on PostgreSQL, across
/// hosts; SQLite has one writer anyway): a stable 64-bit hash of its name (FNV-1a).
pub fn account_lock(account: &str) -> i64 {
    let hash =
        account.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    hash as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    const OLDEST: Slots = [(0, 100), (1, 10), (2, 1)];
    const NOW: Slots = [(0, 159), (1, 69), (2, 96)];

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("relaykey.db")).unwrap();
        (dir, store)
    }

    fn buckets(store: &mut Store, account: &str, oldest: &Slots) -> Vec<CountedBucket> {
        let mut seen = store.count_message(account, oldest, &NOW, |b| (b.to_vec(), false)).unwrap();
        seen.sort_by_key(|b| (b.span, b.slot));
        seen
    }

    #[test]
    fn a_taken_message_is_counted_in_each_window_and_a_refused_one_is_not() {
        let (_dir, mut store) = store();
        assert!(store.count_message("a@example.com", &OLDEST, &NOW, |b| (b.is_empty(), true)).unwrap());
        store.count_message("a@example.com", &OLDEST, &NOW, |_| ((), true)).unwrap();
        store.count_message("a@example.com", &OLDEST, &NOW, |_| ((), false)).unwrap();
        let want = |span, slot| CountedBucket { span, slot, count: 2 };
        assert_eq!(buckets(&mut store, "a@example.com", &OLDEST), [want(0, 159), want(1, 69), want(2, 96)]);
        assert!(buckets(&mut store, "b@example.com", &OLDEST).is_empty(), "per account");
    }

    #[test]
    fn old_buckets_are_neither_read_nor_kept() {
        let (_dir, mut store) = store();
        store.count_message("a@example.com", &OLDEST, &NOW, |_| ((), true)).unwrap();
        store.count_message("b@example.com", &OLDEST, &NOW, |_| ((), true)).unwrap();
        // Later: the minute bucket 159 is out of the window, the others are not.
        let later: Slots = [(0, 160), (1, 10), (2, 1)];
        let seen = buckets(&mut store, "a@example.com", &later);
        assert_eq!(seen.iter().map(|b| (b.span, b.slot)).collect::<Vec<_>>(), [(1, 69), (2, 96)]);
        // The purge deletes them.
        let stale = |s: &Store| {
            s.db.int("SELECT count(*) FROM message_counts WHERE span = 0 AND slot < 160", params![]).unwrap()
        };
        assert_eq!(stale(&store), 2, "the old minute buckets wait for the purge");
        assert_eq!(store.purge_message_counts(&later).unwrap(), 2);
        assert_eq!(stale(&store), 0);
    }
}
