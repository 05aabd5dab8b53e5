//! The arguments of `relaykey backup` and `relaykey restore`.

use std::path::PathBuf;

use clap::{Args, Subcommand};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to write the copy (mode 0600)
    pub file: PathBuf,
    /// Replace FILE if it exists [default: refuse]
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A copy made by `relaykey backup`
    pub file: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum StoreCmd {
    /// Copy every account, key, credential, sender and DKIM key into another, empty store
    /// (hashes as they are), for example from SQLite to PostgreSQL
    Copy {
        /// The store to read: an SQLite file or a postgresql:// URL [default: the config's database]
        #[arg(long, value_name = "STORE")]
        from: Option<String>,
        /// The store to write, which must hold nothing yet; it is created or migrated first.
        /// A PostgreSQL URL takes its password and CA from the config's [postgresql]
        #[arg(long, value_name = "STORE")]
        to: String,
    },
    /// Check the store's rules (caps, unique usernames and last 5, hashes, senders, DKIM keys)
    /// against what is stored; exits 1 if one is broken
    Check {
        /// The store to check [default: the config's database]
        #[arg(long, value_name = "STORE")]
        database: Option<String>,
    },
}
