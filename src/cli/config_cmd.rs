//! `relaykey config check`.

use std::path::PathBuf;
use std::process::ExitCode;

use super::args::config::ConfigCmd;
use super::output::print_json;
use super::{CliError, CliResult};
use crate::config::{self, Config};

pub fn run(cmd: ConfigCmd, global: Option<&PathBuf>, json: bool) -> CliResult {
    let ConfigCmd::Check { file } = cmd;
    let path = file.or_else(|| global.cloned()).unwrap_or_else(|| PathBuf::from(config::DEFAULT_PATH));
    if !path.exists() {
        return Err(CliError::refused(format!("config {}: no such file", path.display())));
    }
    Config::load(&path)?;
    if json {
        print_json(&serde_json::json!({ "file": path.display().to_string(), "valid": true }));
    } else {
        println!("{}: ok", path.display());
    }
    Ok(ExitCode::SUCCESS)
}
