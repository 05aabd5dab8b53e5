//! The arguments of `relaykey postfix`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum PostfixCmd {
    /// Report every Postfix setting that keeps Postfix from using relaykey
    Check {
        /// Postfix configuration directory (as `postconf -c DIR`) [default: Postfix's own]
        #[arg(long, value_name = "DIR")]
        config_dir: Option<PathBuf>,
    },
}
