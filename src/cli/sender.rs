//! `relaykey sender add|list|verify|remove|owner`: the domains and addresses an account may
//! send as. `list` also shows what each domain publishes in DNS (verification, DKIM, SPF).
//!
//! Entries the operator adds are verified unless `--pending`; a pending domain is verified by
//! `sender verify`, which looks up its TXT record now.

use std::process::ExitCode;

use super::args::sender::SenderCmd;
use super::output::{escape, print_json};
use super::table::Table;
use super::{CliError, CliResult, EXIT_TEMPFAIL, open_store, parse_email};
use crate::config::Config;
use crate::senders::verify::{Verification, verify_domain};
use serde::Serialize;

use crate::dkim::publish::DomainRecords;
use crate::dkim::record::zone_strings;
use crate::senders::{AccountSender, SenderEntry, SenderKind, SenderNameError, SenderView};

impl From<SenderNameError> for CliError {
    fn from(e: SenderNameError) -> Self {
        Self::refused(e.to_string())
    }
}

fn print_one(sender: &AccountSender, json: bool) {
    if json {
        print_json(&sender.to_view());
        return;
    }
    println!("{}", line(sender));
    if let (false, Some(record)) = (sender.verified, sender.dns_record()) {
        println!("publish: {} {} \"{}\"", record.name, record.record_type, record.value);
    }
}

/// `sender list --json`: an entry, and for a domain everything it publishes in DNS.
#[derive(Serialize)]
struct ListedSender {
    #[serde(flatten)]
    view: SenderView,
    records: Option<DomainRecords>,
}

/// A domain's records, indented under its line, as a zone file writes them.
fn print_records(records: &DomainRecords) {
    let show = |what: &str, r: &crate::senders::TxtRecord| {
        println!("  {what}: {}. IN TXT {}", r.name, zone_strings(&r.value));
    };
    if let Some(v) = &records.verification {
        show("verification", v);
    }
    for key in &records.dkim {
        show(&format!("dkim {} {} ({})", key.algorithm, key.selector, key.state), &key.dns);
    }
    show("spf (suggested)", &records.spf);
}

fn line(sender: &AccountSender) -> String {
    cells(sender).iter().filter(|c| !c.is_empty()).map(|c| escape(c).into_owned()).collect::<Vec<_>>().join("\t")
}

/// Entry, kind, status, and the Unicode form when it differs from the entry (IDNA).
fn cells(sender: &AccountSender) -> Vec<String> {
    let status = if sender.verified { "verified" } else { "pending" };
    let unicode = sender.entry.unicode();
    let shown = sender.entry.as_string();
    let unicode = if unicode == shown { String::new() } else { format!("({unicode})") };
    vec![shown, sender.entry.kind().to_string(), status.into(), unicode]
}

pub fn run(cmd: SenderCmd, config: &Config, json: bool) -> CliResult {
    let mut store = open_store(config)?;
    match cmd {
        SenderCmd::Add { email, entry, pending } => {
            let sender = store.add_sender(&parse_email(&email)?, &SenderEntry::parse(&entry)?, !pending)?;
            print_one(&sender, json);
        }
        SenderCmd::List { email } => {
            let senders = store.senders(&parse_email(&email)?)?;
            let mut listed = Vec::new();
            for sender in &senders {
                let records = match &sender.entry {
                    SenderEntry::Domain(d) => {
                        Some(DomainRecords::new(sender, &store.dkim_keys(Some(d.ascii()))?, &config.relay))
                    }
                    SenderEntry::Address { .. } => None,
                };
                listed.push(ListedSender { view: sender.to_view(), records });
            }
            if json {
                print_json(&listed);
            } else {
                let mut table = Table::new(&["SENDER", "KIND", "STATUS", "UNICODE"]);
                senders.iter().for_each(|s| table.push(cells(s)));
                table.print();
                // Then what each domain publishes, indented under no header of its own.
                listed.iter().filter_map(|l| l.records.as_ref()).for_each(print_records);
            }
        }
        SenderCmd::Verify { email, domain } => {
            let email = parse_email(&email)?;
            let entry = SenderEntry::parse(&domain)?;
            let sender = store.sender(&email, &entry)?;
            if sender.verified {
                print_one(&sender, json);
                return Ok(ExitCode::SUCCESS);
            }
            let Some(token) = sender.token.as_deref().filter(|_| entry.kind() == SenderKind::Domain) else {
                return Err(CliError::refused(format!(
                    "sender {entry} has no DNS token (only domains added pending are verified through DNS)"
                )));
            };
            match check_now(config, entry.domain().ascii(), token)? {
                Verification::Verified => print_one(&store.mark_sender_verified(&email, &entry)?, json),
                Verification::WrongToken => {
                    let want = sender.dns_record().map(|r| r.value).unwrap_or_default();
                    return Err(CliError::refused(format!(
                        "sender {entry} is not verified: _relaykey.{entry} has a relaykey-verify record, but not \"{want}\""
                    )));
                }
                Verification::NoRecord => {
                    let want = sender.dns_record().map(|r| r.value).unwrap_or_default();
                    return Err(CliError::refused(format!(
                        "sender {entry} is not verified: no TXT record \"{want}\" at _relaykey.{entry}"
                    )));
                }
                Verification::TemporaryFailure(why) => {
                    return Err(CliError {
                        message: format!("sender {entry}: cannot check now, try again later: {why}"),
                        exit: EXIT_TEMPFAIL,
                    });
                }
            }
        }
        SenderCmd::Remove { email, entry } => {
            let entry = SenderEntry::parse(&entry).or_else(|e| own_address_entry(&entry).ok_or(e))?;
            store.remove_sender(&parse_email(&email)?, &entry)?;
            if json {
                print_json(&serde_json::json!({ "removed": entry.as_string() }));
            } else {
                println!("removed sender {entry}");
            }
        }
        SenderCmd::Owner { address } => {
            let Some((sender, account)) = store.sender_owner(&address)? else {
                return Err(CliError::refused(format!("no account may send as {}", address.trim())));
            };
            let logins = store.account_logins(account.id)?;
            if json {
                print_json(&serde_json::json!({
                    "address": address.trim(),
                    "account": account.email.as_str(),
                    "entry": sender.entry.as_string(),
                    "kind": sender.entry.kind().as_str(),
                    "logins": logins,
                }));
            } else {
                println!("{}\tentry={}\tkind={}", account.email, sender.entry, sender.entry.kind());
                println!("logins: {}", logins.join(","));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// An account's own address on a single-label domain (`ann@localhost`), which
/// `SenderEntry::parse` refuses for a new entry, can still be named to remove it.
fn own_address_entry(input: &str) -> Option<SenderEntry> {
    crate::address::EmailAddress::parse(input).ok().map(|a| SenderEntry::own_address(&a))
}

fn check_now(config: &Config, domain: &str, token: &str) -> Result<Verification, CliError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError { message: format!("cannot start runtime: {e}"), exit: EXIT_TEMPFAIL })?;
    Ok(runtime.block_on(verify_domain(&config.senders, domain, token)))
}
