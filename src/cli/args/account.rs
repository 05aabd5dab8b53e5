//! The arguments of `relaykey account`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AccountCmd {
    /// Add an account
    Add { email: String },
    /// List all accounts
    List,
    /// Show one account
    Show { email: String },
    /// Disable an account: all its secrets stop working at once
    Disable { email: String },
    /// Enable a disabled account
    Enable { email: String },
    /// Remove an account with all its API keys and SMTP credentials
    Remove { email: String },
}
