//! `relaykey account add|list|show|disable|enable|remove`.

use std::process::ExitCode;

use clap::Subcommand;

use super::output::{AccountView, escape, print_json, warn_unreadable};
use super::{CliResult, open_store, parse_email};
use crate::config::Config;
use crate::model::Account;
use crate::store::Store;

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

fn print(store: &Store, accounts: &[Account], json: bool, many: bool) -> CliResult {
    let counts = accounts.iter().map(|a| store.account_counts(a.id)).collect::<Result<Vec<_>, _>>()?;
    let views: Vec<AccountView> = accounts.iter().zip(counts).map(|(a, c)| AccountView::new(a, c)).collect();
    if json {
        if many {
            print_json(&views)
        } else if let Some(v) = views.first() {
            print_json(v)
        }
    } else {
        for v in &views {
            let state = if v.enabled { "enabled" } else { "disabled" };
            let email = escape(v.email);
            println!("{email}\t{state}\t{} API keys\t{} SMTP credentials", v.api_keys, v.smtp_credentials);
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(cmd: AccountCmd, config: &Config, json: bool) -> CliResult {
    let mut store = open_store(config)?;
    match cmd {
        AccountCmd::Add { email } => {
            let account = store.add_account(&parse_email(&email)?)?;
            print(&store, &[account], json, false)
        }
        AccountCmd::List => {
            let accounts = store.accounts()?;
            warn_unreadable(&accounts.unreadable);
            print(&store, &accounts, json, true)
        }
        AccountCmd::Show { email } => {
            let account = store.account(&parse_email(&email)?)?;
            print(&store, &[account], json, false)
        }
        AccountCmd::Disable { email } => {
            let account = store.set_account_enabled(&parse_email(&email)?, false)?;
            print(&store, &[account], json, false)
        }
        AccountCmd::Enable { email } => {
            let account = store.set_account_enabled(&parse_email(&email)?, true)?;
            print(&store, &[account], json, false)
        }
        AccountCmd::Remove { email } => {
            let email = parse_email(&email)?;
            store.remove_account(&email)?;
            if json {
                print_json(&serde_json::json!({ "removed": email.as_str() }));
            } else {
                println!("removed account {email}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}
