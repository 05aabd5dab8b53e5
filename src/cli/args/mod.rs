//! The command line's shape: every command, argument and help text, as clap types.
//!
//! Nothing here reaches into the rest of the crate, so that `build.rs` can include this
//! directory (`#[path]`) and generate the man pages and shell completions from the very
//! definition the binary parses with. A new command group adds its file here and its run
//! logic beside the others in `src/cli/`.

pub mod account;
pub mod apikey;
pub mod auth;
pub mod config;
pub mod dkim;
pub mod import;
pub mod postfix;
pub mod queue;
pub mod sender;
pub mod smtp;
pub mod store;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "relaykey", version, about = "SMTP & API credentials for a mail host")]
pub struct Cli {
    /// Config file [default: /etc/relaykey/relaykey.toml, if present]
    #[arg(long, global = true, env = "RELAYKEY_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Print machine-readable JSON
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Manage accounts
    #[command(subcommand)]
    Account(account::AccountCmd),
    /// Manage API keys
    #[command(subcommand)]
    Apikey(apikey::ApiKeyCmd),
    /// Manage SMTP credentials
    #[command(subcommand)]
    Smtp(smtp::SmtpCmd),
    /// Manage the domains and addresses an account may send as
    #[command(subcommand)]
    Sender(sender::SenderCmd),
    /// Manage the DKIM keys that sign mail from verified sender domains
    #[command(subcommand)]
    Dkim(dkim::DkimCmd),
    /// Test a login through the daemon's decision path
    #[command(subcommand)]
    Auth(auth::AuthCmd),
    /// Run the daemon (SASL, policy and relay, as configured)
    Serve,
    /// Check the configuration
    #[command(subcommand)]
    Config(config::ConfigCmd),
    /// Check that Postfix is set up to use relaykey
    #[command(subcommand)]
    Postfix(postfix::PostfixCmd),
    /// Inspect and manage the relay's queue
    #[command(subcommand)]
    Queue(queue::QueueCmd),
    /// Copy the store into FILE while the daemon runs (SQLite's online backup)
    Backup(store::BackupArgs),
    /// Replace the store with a backup; refused while a daemon uses the store
    Restore(store::RestoreArgs),
    /// Import users, with their passwords, from another SASL server
    #[command(subcommand)]
    Import(import::ImportCmd),
    /// Copy a store into another (SQLite to PostgreSQL) and check a store's rules
    #[command(subcommand)]
    Store(store::StoreCmd),
}
