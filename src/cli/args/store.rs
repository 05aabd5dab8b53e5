//! The arguments of `relaykey backup` and `relaykey restore`.

use std::path::PathBuf;

use clap::Args;

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
