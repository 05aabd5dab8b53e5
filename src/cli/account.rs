//! `relaykey account add|list|show|disable|enable|remove`.

use std::process::ExitCode;

use super::args::account::AccountCmd;
use super::output::{AccountView, escape, print_json, print_rows, warn_unreadable};
use super::{CliResult, open_store, parse_email};
use crate::config::Config;
use crate::model::Account;
use crate::store::Store;

fn print(store: &Store, accounts: &[Account], json: bool, many: bool) -> CliResult {
    let counts = accounts.iter().map(|a| store.account_counts(a.id)).collect::<Result<Vec<_>, _>>()?;
    let views: Vec<AccountView> = accounts.iter().zip(counts).map(|(a, c)| AccountView::new(a, c)).collect();
    if many {
        print_rows(views, &["ACCOUNT", "STATE", "API KEYS", "SMTP CREDENTIALS"], cells, json);
    } else if let Some(v) = views.first() {
        if json {
            print_json(v);
        } else {
            let line: Vec<String> = cells(v).iter().map(|c| escape(c).into_owned()).collect();
            println!("{}", line.join("\t"));
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cells(v: &AccountView) -> Vec<String> {
    let state = if v.enabled { "enabled" } else { "disabled" };
    let keys = format!("{} API keys", v.api_keys);
    vec![v.email.to_string(), state.into(), keys, format!("{} SMTP credentials", v.smtp_credentials)]
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
