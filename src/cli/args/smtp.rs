//! The arguments of `relaykey smtp`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum SmtpCmd {
    /// Create an SMTP credential; its password is shown once
    Create {
        email: String,
        /// Login name, unique system-wide [default: the account's address]
        #[arg(long, value_name = "ADDR")]
        username: Option<String>,
        /// IP, CIDR or first-last range the credential may be used from; repeat for several
        #[arg(long = "allow", value_name = "NET")]
        allow: Vec<String>,
    },
    /// List an account's SMTP credentials (masked)
    List { email: String },
    /// Edit a credential's restriction
    Edit {
        email: String,
        id: i64,
        /// Replaces the restriction; repeat for several
        #[arg(long = "allow", value_name = "NET", conflicts_with = "no_allow")]
        allow: Vec<String>,
        /// Remove the restriction
        #[arg(long)]
        no_allow: bool,
    },
    /// Give a credential a new password; the old one dies at once
    Change { email: String, id: i64 },
    /// Remove a credential
    Remove { email: String, id: i64 },
}
