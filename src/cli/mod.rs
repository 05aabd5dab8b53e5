//! The `relaykey` command line: argument parsing and dispatch, one file per command group.
//!
//! The clap types live in `args` (one file per group there too), apart from the code that
//! runs them, because `build.rs` compiles them to write the man pages and completions. Every
//! `list` prints through `table`. Every refusal ends up in [`main`], which prints it as one
//! line on stderr and exits non-zero.

mod account;
mod apikey;
mod args;
mod auth;
mod backup;
mod config_cmd;
mod dkim;
mod import;
mod output;
mod postfix_check;
mod queue;
mod restore;
mod sender;
mod smtp;
mod staged_file;
mod store_cmd;
mod table;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

pub use args::{Cli, Command};

use crate::address::{AddressError, EmailAddress};
use crate::config::{self, Config, ConfigError};
use crate::restriction::{AccessRestriction, RestrictionError};
use crate::store::{Store, StoreError, StoreLocation};

/// A refusal or failure, printed as one line. `exit` distinguishes "no" (1) from "try later" (75).
#[derive(Debug)]
pub struct CliError {
    pub message: String,
    pub exit: u8,
}

/// sysexits' EX_TEMPFAIL: the store could not be used; retrying may succeed.
pub const EXIT_TEMPFAIL: u8 = 75;

impl CliError {
    pub fn refused(message: impl Into<String>) -> Self {
        Self { message: message.into(), exit: 1 }
    }
}

impl From<StoreError> for CliError {
    fn from(e: StoreError) -> Self {
        let exit = if e.is_temporary() { EXIT_TEMPFAIL } else { 1 };
        Self { message: e.to_string(), exit }
    }
}

impl From<ConfigError> for CliError {
    fn from(e: ConfigError) -> Self {
        Self::refused(e.to_string())
    }
}

impl From<AddressError> for CliError {
    fn from(e: AddressError) -> Self {
        Self::refused(e.to_string())
    }
}

impl From<RestrictionError> for CliError {
    fn from(e: RestrictionError) -> Self {
        Self::refused(e.to_string())
    }
}

pub type CliResult = Result<ExitCode, CliError>;

/// Loads the config named by `--config`/`RELAYKEY_CONFIG`, else the default file if it exists,
/// else the built-in defaults.
pub fn load_config(explicit: Option<&PathBuf>) -> Result<Config, CliError> {
    match explicit {
        Some(path) => Ok(Config::load(path)?),
        None => {
            let default = PathBuf::from(config::DEFAULT_PATH);
            if default.exists() { Ok(Config::load(&default)?) } else { Ok(Config::default()) }
        }
    }
}

pub(crate) fn open_store(config: &Config) -> Result<Store, CliError> {
    open_location(&config.store()?)
}

/// Opens the store at `location`; a failure names the store (a URL without its password).
pub(crate) fn open_location(location: &StoreLocation) -> Result<Store, CliError> {
    Store::connect(location).map_err(|e| CliError {
        message: format!("{location}: {e}"),
        exit: if e.is_temporary() { EXIT_TEMPFAIL } else { 1 },
    })
}

pub(crate) fn parse_email(s: &str) -> Result<EmailAddress, CliError> {
    EmailAddress::parse(s).map_err(|e| CliError::refused(format!("invalid address: {e}")))
}

pub(crate) fn parse_allow(items: &[String]) -> Result<AccessRestriction, CliError> {
    Ok(AccessRestriction::parse_all(items)?)
}

/// The restriction an `edit` asks for: `--no-allow` clears it, no `--allow` keeps it, and
/// `--allow` items replace it.
pub(crate) fn parse_allow_edit(no_allow: bool, items: &[String]) -> Result<Option<AccessRestriction>, CliError> {
    if no_allow {
        Ok(Some(AccessRestriction::default()))
    } else if items.is_empty() {
        Ok(None)
    } else {
        parse_allow(items).map(Some)
    }
}

pub fn run(cli: Cli) -> CliResult {
    let Cli { config: path, json, command } = cli;
    let config = || load_config(path.as_ref());
    match command {
        Command::Account(cmd) => account::run(cmd, &config()?, json),
        Command::Apikey(cmd) => apikey::run(cmd, &config()?, json),
        Command::Smtp(cmd) => smtp::run(cmd, &config()?, json),
        Command::Sender(cmd) => sender::run(cmd, &config()?, json),
        Command::Dkim(cmd) => dkim::run(cmd, &config()?, json),
        Command::Auth(cmd) => auth::run(cmd, &config()?, json),
        Command::Config(cmd) => config_cmd::run(cmd, path.as_ref(), json),
        Command::Postfix(cmd) => postfix_check::run(cmd, &config()?, json),
        Command::Queue(cmd) => queue::run(cmd, &config()?, json),
        Command::Backup(args) => backup::backup(&args, &config()?, json),
        Command::Restore(args) => restore::restore(&args, &config()?, json),
        Command::Import(cmd) => import::run(cmd, &config()?, json),
        Command::Store(cmd) => store_cmd::run(cmd, &config()?, json),
        Command::Serve => {
            let config = config()?;
            let path = path.or_else(|| Some(PathBuf::from(config::DEFAULT_PATH)).filter(|p| p.exists()));
            Ok(crate::daemon::run(path, config))
        }
    }
}

/// Entry point of the binary.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Serve) {
        // A command's output piped into `head` must end the command quietly, as for any Unix
        // tool, rather than panic in `println!` on the closed pipe. The daemon keeps SIGPIPE
        // ignored: its writes to a gone client return EPIPE instead.
        // SAFETY: restores a default disposition before any thread starts; no handler runs.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("relaykey: {}", output::escape(&e.message.replace('\n', " ")));
            ExitCode::from(e.exit)
        }
    }
}
