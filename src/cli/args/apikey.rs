//! The arguments of `relaykey apikey`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ApiKeyCmd {
    /// Create an API key; its secret is shown once
    Create {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// smtp, send, view or manage; repeat for several [default: all]
        #[arg(long = "permission", value_name = "P")]
        permissions: Vec<String>,
        /// IP, CIDR or first-last range the key may be used from; repeat for several
        #[arg(long = "allow", value_name = "NET")]
        allow: Vec<String>,
    },
    /// List an account's API keys (masked)
    List { email: String },
    /// Edit a key's name, permissions or restriction
    Edit {
        email: String,
        id: i64,
        #[arg(long)]
        name: Option<String>,
        /// Replaces the permissions; repeat for several
        #[arg(long = "permission", value_name = "P")]
        permissions: Vec<String>,
        /// Replaces the restriction; repeat for several
        #[arg(long = "allow", value_name = "NET", conflicts_with = "no_allow")]
        allow: Vec<String>,
        /// Remove the restriction
        #[arg(long)]
        no_allow: bool,
    },
    /// Give a key a new secret (same id, permissions and restriction); the old one dies at once
    Change { email: String, id: i64 },
    /// Remove a key
    Remove { email: String, id: i64 },
}
