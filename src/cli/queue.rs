//! `relaykey queue list|show|retry|delete`: the relay's spool, read and changed in place. The
//! running daemon notices retried messages on its next queue scan (`queue_scan_interval`).

use std::process::ExitCode;

use serde::Serialize;

use super::args::queue::QueueCmd;
use super::output::{escape, print_json};
use super::table::{Layout, Table};
use super::{CliError, CliResult, EXIT_TEMPFAIL};
use crate::config::Config;
use crate::mail_date::rfc5322_date;
use crate::queue::{Envelope, RecipientStatus, Spool, SpoolError, dsn};

impl From<SpoolError> for CliError {
    fn from(e: SpoolError) -> Self {
        let exit = if matches!(e, SpoolError::Busy(_) | SpoolError::Io { .. }) { EXIT_TEMPFAIL } else { 1 };
        Self { message: e.to_string(), exit }
    }
}

#[derive(Serialize)]
struct MessageView<'a> {
    id: &'a str,
    sender: &'a str,
    size: u64,
    queued_at: u64,
    attempts: u32,
    next_attempt: u64,
    recipients: &'a [crate::queue::Recipient],
    #[serde(skip_serializing_if = "Option::is_none")]
    auth_user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<String>,
}

impl<'a> MessageView<'a> {
    fn new(e: &'a Envelope, headers: Option<String>) -> Self {
        Self {
            id: &e.id,
            sender: &e.sender,
            size: e.size,
            queued_at: e.queued_at,
            attempts: e.attempts,
            next_attempt: e.next_attempt,
            recipients: &e.recipients,
            auth_user: e.auth_user.as_deref(),
            headers,
        }
    }
}

pub fn run(cmd: QueueCmd, config: &Config, json: bool) -> CliResult {
    let spool = Spool::open_existing(&config.relay.spool)?;
    match cmd {
        QueueCmd::List => list(&spool, json),
        QueueCmd::Show { id } => show(&spool, &id, json),
        QueueCmd::Retry { id: Some(id), .. } => retry(&spool, &[id], json),
        QueueCmd::Retry { id: None, all: true } => {
            let ids: Vec<String> = spool.list()?.into_iter().map(|e| e.id).collect();
            retry(&spool, &ids, json)
        }
        QueueCmd::Retry { id: None, all: false } => Err(CliError::refused("queue retry: give an id or --all")),
        QueueCmd::Delete { id } => {
            let _lock = spool.lock(&id)?;
            spool.remove_synced(&id)?;
            if json {
                print_json(&serde_json::json!({ "deleted": id }));
            } else {
                println!("deleted {id}");
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn sender_text(e: &Envelope) -> &str {
    if e.sender.is_empty() { "<>" } else { &e.sender }
}

fn list(spool: &Spool, json: bool) -> CliResult {
    let envelopes = spool.list()?;
    if json {
        let views: Vec<MessageView> = envelopes.iter().map(|e| MessageView::new(e, None)).collect();
        print_json(&views);
        return Ok(ExitCode::SUCCESS);
    }
    if Layout::for_stdout() == Layout::Aligned {
        let mut table = Table::new(&["ID", "SIZE", "QUEUED", "ATTEMPTS", "FROM", "TO"]);
        for e in &envelopes {
            let pending: Vec<&str> = e.pending().map(|r| r.address.as_str()).collect();
            let (size, queued, attempts) = (e.size.to_string(), rfc5322_date(e.queued_at), e.attempts.to_string());
            table.push(vec![e.id.clone(), size, queued, attempts, sender_text(e).into(), pending.join(",")]);
        }
        table.print();
        return Ok(ExitCode::SUCCESS);
    }
    // The piped form predates the shared table and is kept as it was: scripts parse it.
    if envelopes.is_empty() {
        println!("queue is empty");
    }
    for e in &envelopes {
        let pending: Vec<&str> = e.pending().map(|r| r.address.as_str()).collect();
        println!(
            "{}  {:>8}  {}  attempts={}  from={}  to={}",
            escape(&e.id),
            e.size,
            rfc5322_date(e.queued_at),
            e.attempts,
            escape(sender_text(e)),
            escape(&pending.join(","))
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn show(spool: &Spool, id: &str, json: bool) -> CliResult {
    let e = spool.load(id)?;
    let message = spool.read_message(id).unwrap_or_default();
    let headers = String::from_utf8_lossy(dsn::headers_of(&message)).into_owned();
    if json {
        print_json(&MessageView::new(&e, Some(headers)));
        return Ok(ExitCode::SUCCESS);
    }
    println!("id:           {}", escape(&e.id));
    println!("from:         {}", escape(sender_text(&e)));
    println!("size:         {}", e.size);
    println!("queued:       {}", rfc5322_date(e.queued_at));
    println!("attempts:     {}", e.attempts);
    println!("next attempt: {}", rfc5322_date(e.next_attempt));
    if let Some(u) = &e.auth_user {
        println!("auth user:    {}", escape(u));
    }
    for r in &e.recipients {
        let status = match r.status {
            RecipientStatus::Pending => "pending",
            RecipientStatus::Delivered => "delivered",
            RecipientStatus::Failed => "failed",
        };
        let result = r.last_result.as_deref().unwrap_or("");
        println!("to:           {} {status} {}", escape(&r.address), escape(result));
    }
    println!();
    // Headers are the client's text: one escaped line each. A tab (folding whitespace) shows
    // as a space rather than as an escape, so folded headers stay readable.
    for line in headers.lines() {
        println!("{}", escape(&line.replace('\t', " ")));
    }
    Ok(ExitCode::SUCCESS)
}

fn retry(spool: &Spool, ids: &[String], json: bool) -> CliResult {
    let mut done = Vec::new();
    for id in ids {
        let _lock = spool.lock(id)?;
        let mut e = spool.load(id)?;
        e.next_attempt = 0;
        spool.save(&e)?;
        done.push(id.clone());
    }
    if json {
        print_json(&serde_json::json!({ "retry": done }));
    } else {
        for id in &done {
            println!("retry {id}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
