//! `relaykey store copy` and `relaykey store check`.

use std::process::ExitCode;

use super::args::store::StoreCmd;
use super::output::print_json;
use super::{CliError, CliResult};
use crate::config::Config;
use crate::store::{StoreCheck, StoreError, StoreLocation};

pub fn run(cmd: StoreCmd, config: &Config, json: bool) -> CliResult {
    match cmd {
        StoreCmd::Copy { from, to } => copy(config, from.as_deref(), &to, json),
        StoreCmd::Check { database } => check(config, database.as_deref(), json),
    }
}

/// The store `named` (or the config's own), with the config's `[postgresql]` files.
fn location(config: &Config, named: Option<&str>) -> Result<StoreLocation, CliError> {
    let Some(named) = named else { return config.store().map_err(CliError::from) };
    let pg = &config.postgresql;
    StoreLocation::parse(named, pg.password_file.as_deref(), pg.ca_file.as_deref())
        .map_err(|e| CliError::refused(format!("{named}: {e}")))
}

use super::open_location as open;

fn copy(config: &Config, from: Option<&str>, to: &str, json: bool) -> CliResult {
    let source_at = location(config, from)?;
    let target_at = location(config, Some(to))?;
    if source_at == target_at {
        return Err(CliError::refused("--from and --to name the same store"));
    }
    if let StoreLocation::Sqlite(path) = &source_at
        && !path.is_file()
    {
        return Err(CliError::refused(format!("no database at {}", path.display())));
    }
    let source = open(&source_at)?;
    let mut target = open(&target_at)?;
    let counts = source.copy_into(&mut target).map_err(|e| match e {
        StoreError::TargetNotEmpty(_) => not_empty(&target_at),
        e => CliError::from(e),
    })?;
    if json {
        let tables: serde_json::Map<_, _> =
            counts.0.iter().map(|(table, n)| ((*table).to_string(), serde_json::json!(n))).collect();
        print_json(
            &serde_json::json!({ "from": source_at.to_string(), "to": target_at.to_string(), "copied": tables }),
        );
    } else {
        for (table, n) in &counts.0 {
            println!("{table}\t{n}");
        }
        println!("copied {source_at} into {target_at}");
    }
    Ok(ExitCode::SUCCESS)
}

fn not_empty(target: &StoreLocation) -> CliError {
    CliError::refused(format!("{target} is not empty: copy into a new, empty database"))
}

fn check(config: &Config, named: Option<&str>, json: bool) -> CliResult {
    let at = location(config, named)?;
    if let StoreLocation::Sqlite(path) = &at
        && !path.is_file()
    {
        return Err(CliError::refused(format!("no database at {}", path.display())));
    }
    let report: StoreCheck = open(&at)?.check()?;
    if json {
        let problems: Vec<_> = report
            .problems
            .iter()
            .map(|p| serde_json::json!({ "table": p.table, "id": p.id, "problem": p.problem }))
            .collect();
        print_json(&serde_json::json!({
            "store": at.to_string(),
            "schema_version": report.schema_version,
            "accounts": report.accounts,
            "api_keys": report.api_keys,
            "smtp_credentials": report.smtp_credentials,
            "senders": report.senders,
            "dkim_keys": report.dkim_keys,
            "ok": report.problems.is_empty(),
            "problems": problems,
        }));
    } else {
        for p in &report.problems {
            println!("{}\t{}\t{}", p.table, p.id, p.problem);
        }
        println!(
            "{}: {} accounts, {} API keys, {} SMTP credentials, {} senders, {} DKIM keys; {}",
            at,
            report.accounts,
            report.api_keys,
            report.smtp_credentials,
            report.senders,
            report.dkim_keys,
            if report.problems.is_empty() { "ok".to_string() } else { format!("{} problems", report.problems.len()) }
        );
    }
    if report.problems.is_empty() {
        Ok(ExitCode::SUCCESS)
    } else {
        Err(CliError { message: format!("{} problems found", report.problems.len()), exit: 1 })
    }
}
