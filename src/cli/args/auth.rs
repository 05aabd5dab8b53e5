//! The arguments of `relaykey auth`.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum AuthCmd {
    /// Decide a login as the daemon would; exits 0 only when it succeeds
    Test {
        user: String,
        /// The password or API key; `-` reads it from standard input (first line)
        secret: String,
        /// Client address the login comes from
        #[arg(long)]
        ip: Option<String>,
    },
}
