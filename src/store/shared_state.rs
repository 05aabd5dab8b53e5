//! Where the state every daemon on one store shares lives: the message counts
//! (`message_counts`) and the login ledger (`login_grants`).
//!
//! On PostgreSQL, in the store itself: those writes notify no host (they hold nothing a cache
//! holds). On SQLite, in a file of its own beside the database (`relaykey.db-state`): SQLite
//! moves `PRAGMA data_version` for every commit of another connection, and the caches poll it
//! (the login cache, the credential view, the sender directory, the DKIM keyring), so a count
//! written into the main file at every message and a ledger written at every login would drop
//! them all, and every warm login would turn cold. The file holds the same schema as the main
//! one; only these two tables are used in it.

use std::path::{Path, PathBuf};

pub use super::StoreLocation;
use super::{Result, Store};

/// The SQLite file of the shared state of the database at `database`.
pub fn state_file(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-state");
    PathBuf::from(name)
}

/// Opens (creating and migrating if needed) the store the shared state of `location` lives in.
pub fn open(location: &StoreLocation) -> Result<Store> {
    match location {
        StoreLocation::Sqlite(database) => Store::open(&state_file(database)),
        StoreLocation::Postgres(_) => Store::connect(location),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_state_file_sits_beside_the_database() {
        assert_eq!(
            state_file(Path::new("/var/lib/relaykey/relaykey.db")),
            Path::new("/var/lib/relaykey/relaykey.db-state")
        );
    }

    #[test]
    fn writing_the_shared_state_moves_no_cache_of_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let main = Store::open(&db).unwrap();
        let db = StoreLocation::from(&db);
        let before = main.data_version().unwrap();
        let mut state = open(&db).unwrap();
        let slots = [(0, 1), (1, 1), (2, 1)];
        state.count_message("a@example.com", &slots, &slots, |_| ((), true)).unwrap();
        let login = crate::store::login_grants::StoredLogin {
            username: "a@example.com".into(),
            client: String::new(),
            kind: "smtp",
            credential_id: 1,
            hash: "h".into(),
            account_id: 1,
            account: "a@example.com".into(),
            login_at: 1,
            revoked_at: None,
        };
        state.record_logins(&[login]).unwrap();
        assert_eq!(main.data_version().unwrap(), before);
    }
}
