//! `relaykey import dovecot-passwd FILE`: users of a Dovecot passwd-file become SMTP
//! credentials, with the passwords they have (see `crate::import`).
//!
//! # Output
//!
//! One line per user (or malformed line), then a summary:
//!
//! ```text
//! line 3: alice@example.com: imported (BLF-CRYPT, rehashed to argon2id at the first login)
//! line 4: bob@example.com: imported (PLAIN, hashed with argon2id now)
//! line 5: carol@example.com: skipped: already present
//! line 6: dave@example.com: refused: weak password scheme MD5-CRYPT (--allow-weak imports it)
//! imported 2, skipped 1, refused 1
//! ```
//!
//! With `--json`, one object: `{"dry_run", "imported", "skipped", "refused", "users": [...]}`,
//! each user `{"line", "username", "outcome", "account", "id", "scheme", "imported", "reason"}`
//! (`outcome` is `imported`, `skipped` or `refused`; absent facts are `null`; `imported` is
//! true while the credential waits for its first-login rehash, as in `smtp list --json`).
//!
//! Exit status: 0 when nothing was refused, [`EXIT_SOME_REFUSED`] (3) when some users were
//! refused and the others imported, 1 when nothing could be done (unreadable file, unknown
//! `--account`), 75 when the store could not be used (nothing was written).

use std::process::ExitCode;

use serde::Serialize;

use super::args::import::ImportCmd;
use super::output::{escape, print_json};
use super::{CliError, CliResult, open_store, parse_email};
use crate::config::Config;
use crate::import::passwd_file::{self, DefaultScheme, Password};
use crate::import::{ImportOptions, Planned, Refused, plan};
use crate::store::{ImportWritten, ImportedCredential};

/// Some users were refused; the others were imported (or skipped).
pub const EXIT_SOME_REFUSED: u8 = 3;

#[derive(Debug, Serialize)]
struct UserReport {
    line: usize,
    username: Option<String>,
    outcome: &'static str,
    account: Option<String>,
    id: Option<i64>,
    scheme: Option<&'static str>,
    imported: Option<bool>,
    reason: Option<String>,
}

#[derive(Debug, Serialize)]
struct Report {
    dry_run: bool,
    imported: usize,
    skipped: usize,
    refused: usize,
    users: Vec<UserReport>,
}

pub fn run(cmd: ImportCmd, config: &Config, json: bool) -> CliResult {
    let ImportCmd::DovecotPasswd { file, account, default_scheme, allow_weak, dry_run } = cmd;
    let text = std::fs::read(&file).map_err(|e| CliError::refused(format!("{}: {e}", file.display())))?;
    let mut store = open_store(config)?;
    let account = account.as_deref().map(parse_email).transpose()?;
    if let Some(account) = &account {
        store.account(account)?;
    }
    let lines = passwd_file::parse(&text, &DefaultScheme::new(&default_scheme), crate::auth::MAX_ARGON2_MEMORY_KIB);
    let planned = plan(lines, &ImportOptions { account, allow_weak });

    let params = config.auth.hash_params();
    let mut users = Vec::with_capacity(planned.len());
    let mut ready: Vec<(usize, &Planned)> = Vec::new();
    let mut creds = Vec::new();
    for (i, p) in planned.iter().enumerate() {
        users.push(None);
        let p = match p {
            Ok(p) => p,
            Err(r) => {
                users[i] = Some(refused(r));
                continue;
            }
        };
        let (hash, last5) = match &p.password {
            Password::Hash(h) => (h.stored(), String::new()),
            Password::Plain(secret) => {
                let hash = params.hash(secret).map_err(|e| CliError::refused(e.to_string()))?;
                (hash, secret.last5())
            }
        };
        creds.push(ImportedCredential {
            username: p.username.clone(),
            account: p.account.clone(),
            create_account: p.create_account,
            hash,
            last5,
        });
        ready.push((i, p));
    }
    let written = store.import_smtp_credentials(&creds, dry_run)?;
    for ((i, p), result) in ready.into_iter().zip(written) {
        users[i] = Some(written_report(p, result));
    }
    let mut users: Vec<UserReport> = users.into_iter().flatten().collect();
    if dry_run {
        // The ids of a rolled-back transaction name nothing.
        users.iter_mut().filter(|u| u.outcome == "imported").for_each(|u| u.id = None);
    }
    let count = |o: &str| users.iter().filter(|u| u.outcome == o).count();
    let report =
        Report { dry_run, imported: count("imported"), skipped: count("skipped"), refused: count("refused"), users };
    print_report(&report, json);
    Ok(if report.refused > 0 { ExitCode::from(EXIT_SOME_REFUSED) } else { ExitCode::SUCCESS })
}

fn refused(r: &Refused) -> UserReport {
    UserReport {
        line: r.line,
        username: r.user.clone(),
        outcome: "refused",
        account: None,
        id: None,
        scheme: None,
        imported: None,
        reason: Some(r.reason.clone()),
    }
}

fn written_report(p: &Planned, result: Result<ImportWritten, crate::store::StoreError>) -> UserReport {
    let scheme = Some(p.scheme().map_or("PLAIN", |s| s.name()));
    let base = UserReport {
        line: p.line,
        username: Some(p.username.to_string()),
        outcome: "imported",
        account: Some(p.account.to_string()),
        id: None,
        scheme,
        imported: None,
        reason: None,
    };
    match result {
        Ok(ImportWritten::Imported { id, account_created }) => UserReport {
            id: Some(id),
            imported: Some(p.scheme().is_some()),
            reason: account_created.then(|| "account created".to_string()),
            ..base
        },
        Ok(ImportWritten::AlreadyPresent { id }) => {
            UserReport { outcome: "skipped", id: Some(id), reason: Some("already present".into()), ..base }
        }
        Err(e) => UserReport { outcome: "refused", scheme: None, reason: Some(e.to_string()), ..base },
    }
}

fn print_report(report: &Report, json: bool) {
    if json {
        print_json(report);
        return;
    }
    for u in &report.users {
        let user = escape(u.username.as_deref().unwrap_or("-")).into_owned();
        let reason = u.reason.as_deref().map(escape).unwrap_or_default();
        let what = match (u.outcome, u.imported) {
            ("imported", Some(true)) => {
                format!("imported ({}, rehashed to argon2id at the first login)", u.scheme.unwrap_or("-"))
            }
            ("imported", _) => "imported (PLAIN, hashed with argon2id now)".to_string(),
            (outcome, _) => format!("{outcome}: {reason}"),
        };
        println!("line {}: {user}: {what}", u.line);
    }
    println!("imported {}, skipped {}, refused {}", report.imported, report.skipped, report.refused);
    if report.dry_run {
        println!("dry run: nothing was written");
    }
}
