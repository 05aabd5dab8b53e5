//! The arguments of `relaykey config`.

use std::path::PathBuf;

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum ConfigCmd {
    /// Validate a config file (the --config file, or the default one)
    Check {
        /// File to check instead of --config
        file: Option<PathBuf>,
    },
}
