//! The arguments of `relaykey sender`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SenderCmd {
    /// Let an account send as a domain or an address (verified unless --pending)
    Add {
        email: String,
        /// A domain (example.com) or an address (billing@example.com)
        entry: String,
        /// Add it unverified: a domain must then prove itself with `sender verify`
        #[arg(long)]
        pending: bool,
    },
    /// List an account's senders
    List { email: String },
    /// Check a pending domain's DNS record now; verified when it holds the token
    Verify { email: String, domain: String },
    /// Remove a sender from an account
    Remove { email: String, entry: String },
    /// Who may send as an address, and which entry decided it
    Owner { address: String },
}
