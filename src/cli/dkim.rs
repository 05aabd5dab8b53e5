//! `relaykey dkim generate|list|activate|retire|check`: the DKIM keys of verified sender
//! domains. A new key is `published` (its record shown, not signing yet); `activate` makes it
//! sign, `retire` stops it. The private key is never printed, not even at generation. `list`
//! prints through the one table; `generate` prints the records as a zone file writes them.

use std::process::ExitCode;

use serde::Serialize;

use super::args::dkim::{AlgorithmChoice, DkimCmd};
use super::output::{escape, print_json};
use super::table::Table;
use super::{CliError, CliResult, EXIT_TEMPFAIL, open_store};
use crate::config::Config;
use crate::dkim::check::{DnsCheck, check_key};
use crate::dkim::record::{parse_selector, zone_strings};
use crate::dkim::stored::default_selector;
use crate::dkim::{Algorithm, DkimKey, KeyState, KeyView};
use crate::senders::{SenderEntry, SenderKind};

/// A domain as the operator typed it, in the stored ASCII form.
fn parse_domain(input: &str) -> Result<String, CliError> {
    match SenderEntry::parse(input) {
        Ok(entry) if entry.kind() == SenderKind::Domain => Ok(entry.domain().ascii().to_string()),
        Ok(_) => Err(CliError::refused(format!("{} is an address; DKIM keys belong to domains", input.trim()))),
        Err(e) => Err(CliError::refused(e.to_string())),
    }
}

fn selector(input: &str) -> Result<String, CliError> {
    parse_selector(input).map_err(|e| CliError::refused(e.to_string()))
}

fn print_key(key: &DkimKey) {
    let record = key.dns_record();
    println!("{}\t{}\t{}\t{}", key.domain, key.selector, key.algorithm, key.state);
    println!("  {}. IN TXT {}", record.name, zone_strings(&record.value));
}

fn print_keys(keys: &[DkimKey], json: bool) {
    if json {
        print_json(&keys.iter().map(DkimKey::to_view).collect::<Vec<_>>());
    } else {
        keys.iter().for_each(print_key);
    }
}

pub fn run(cmd: DkimCmd, config: &Config, json: bool) -> CliResult {
    let mut store = open_store(config)?;
    match cmd {
        DkimCmd::Generate { domain, selector: chosen, algorithm } => {
            let domain = parse_domain(&domain)?;
            let algorithms = match algorithm {
                AlgorithmChoice::Ed25519 => vec![Algorithm::Ed25519],
                AlgorithmChoice::Rsa => vec![Algorithm::Rsa],
                AlgorithmChoice::Both => vec![Algorithm::Rsa, Algorithm::Ed25519],
            };
            let chosen = chosen.as_deref().map(selector).transpose()?;
            if chosen.is_some() && algorithms.len() > 1 {
                return Err(CliError::refused(
                    "--selector names one key: give --algorithm rsa or --algorithm ed25519 with it",
                ));
            }
            // Refuse an unknown or unverified domain before the slow RSA generation.
            store.dkim_domain_ready(&domain)?;
            let mut taken: Vec<String> = store.dkim_keys(Some(&domain))?.into_iter().map(|k| k.selector).collect();
            let year = crate::mail_date::year(crate::queue::spool::unix_now());
            let mut keys = Vec::new();
            for algorithm in algorithms {
                let name = chosen.clone().unwrap_or_else(|| default_selector(year, &taken));
                taken.push(name.clone());
                let generated = crate::dkim::key::generate(algorithm)
                    .map_err(|e| CliError { message: e.to_string(), exit: EXIT_TEMPFAIL })?;
                keys.push((name, generated));
            }
            let stored = store.add_dkim_keys(&domain, &keys)?;
            print_keys(&stored, json);
            if !json {
                println!("publish these records, then: relaykey dkim activate {domain} SELECTOR");
            }
        }
        DkimCmd::List { domain } => {
            let domain = domain.as_deref().map(parse_domain).transpose()?;
            let keys = store.dkim_keys(domain.as_deref())?;
            if json {
                print_json(&keys.iter().map(DkimKey::to_view).collect::<Vec<_>>());
            } else {
                let mut table = Table::new(&["DOMAIN", "SELECTOR", "ALGORITHM", "STATE", "RECORD"]);
                for k in &keys {
                    let cells = [&k.domain, &k.selector, k.algorithm.as_str(), k.state.as_str(), &k.dns_record().name];
                    table.push(cells.iter().map(|c| c.to_string()).collect());
                }
                table.print();
            }
        }
        DkimCmd::Activate { domain, selector: name } => {
            let key = store.set_dkim_key_state(&parse_domain(&domain)?, &selector(&name)?, KeyState::Active)?;
            print_one(&key, json);
        }
        DkimCmd::Retire { domain, selector: name } => {
            let key = store.set_dkim_key_state(&parse_domain(&domain)?, &selector(&name)?, KeyState::Retired)?;
            print_one(&key, json);
        }
        DkimCmd::Check { domain } => {
            let domain = parse_domain(&domain)?;
            let keys = store.dkim_keys(Some(&domain))?;
            if keys.is_empty() {
                return Err(CliError::refused(format!(
                    "domain {domain} has no DKIM keys (see `relaykey dkim generate`)"
                )));
            }
            return check(config, &keys, json);
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_one(key: &DkimKey, json: bool) {
    if json {
        print_json(&key.to_view());
    } else {
        print_key(key);
    }
}

#[derive(Serialize)]
struct CheckedView {
    #[serde(flatten)]
    key: KeyView,
    dns_check: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

fn check(config: &Config, keys: &[DkimKey], json: bool) -> CliResult {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError { message: format!("cannot start runtime: {e}"), exit: EXIT_TEMPFAIL })?;
    let resolver =
        crate::senders::verify::resolver(&config.senders).map_err(|e| CliError { message: e, exit: EXIT_TEMPFAIL })?;
    let mut views = Vec::new();
    let mut all_match = true;
    for key in keys {
        let (result, error) = runtime.block_on(check_key(&resolver, key));
        if key.state != KeyState::Retired && result != DnsCheck::Match {
            all_match = false;
        }
        if !json {
            let what = match result {
                DnsCheck::Match => "published and matching".to_string(),
                DnsCheck::Stale => "published but stale (DNS has another p=)".to_string(),
                DnsCheck::Missing => "missing from DNS".to_string(),
                DnsCheck::TemporaryFailure => format!("not checked: {}", error.clone().unwrap_or_default()),
            };
            println!("{}\t{}\t{}\t{}\t{}", key.domain, key.selector, key.algorithm, key.state, escape(&what));
        }
        views.push(CheckedView { key: key.to_view(), dns_check: result.as_str(), error });
    }
    if json {
        print_json(&views);
    }
    Ok(if all_match { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
