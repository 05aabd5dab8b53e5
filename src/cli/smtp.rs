//! `relaykey smtp create|list|edit|change|remove`.

use std::process::ExitCode;

use super::args::smtp::SmtpCmd;
use super::output::{SHOW_ONCE, SmtpCredentialView, allow_text, escape, print_json, print_list, print_removed};
use super::{CliResult, open_store, parse_allow, parse_allow_edit, parse_email};
use crate::config::Config;
use crate::model::SmtpCredential;
use crate::secret::Secret;
use crate::store::{NewSmtpCredential, SmtpCredentialEdit};

fn print_one(cred: &SmtpCredential, secret: Option<&Secret>, json: bool) {
    let view = SmtpCredentialView::new(cred, secret);
    if json {
        print_json(&view);
        return;
    }
    println!("id:       {}", view.id);
    println!("username: {}", escape(view.username));
    if let Some(p) = view.password {
        println!("password: {p}");
    }
    if view.imported {
        println!("masked:   {} (imported: the last 5 show after the first login)", view.masked);
    } else {
        println!("masked:   {}", view.masked);
    }
    println!("allow:    {}", allow_text(&view.allow));
    if secret.is_some() {
        println!("{SHOW_ONCE}");
    }
}

pub fn run(cmd: SmtpCmd, config: &Config, json: bool) -> CliResult {
    let params = config.auth.hash_params();
    let mut store = open_store(config)?;
    match cmd {
        SmtpCmd::Create { email, username, allow } => {
            let email = parse_email(&email)?;
            let new = NewSmtpCredential {
                username: username.as_deref().map(parse_email).transpose()?,
                allow: parse_allow(&allow)?,
            };
            let (cred, secret) = store.create_smtp_credential(&email, new, &params)?;
            print_one(&cred, Some(&secret), json);
        }
        SmtpCmd::List { email } => {
            let creds = store.smtp_credentials(&parse_email(&email)?)?;
            let cells = |v: &SmtpCredentialView| {
                vec![v.id.to_string(), v.username.to_string(), v.masked.clone(), allow_text(&v.allow)]
            };
            let headers = ["ID", "USERNAME", "PASSWORD", "ALLOW"];
            print_list(&creds, |c| SmtpCredentialView::new(c, None), &headers, cells, json);
        }
        SmtpCmd::Edit { email, id, allow, no_allow } => {
            let edit = SmtpCredentialEdit { allow: parse_allow_edit(no_allow, &allow)? };
            let cred = store.edit_smtp_credential(&parse_email(&email)?, id, edit)?;
            print_one(&cred, None, json);
        }
        SmtpCmd::Change { email, id } => {
            let (cred, secret) = store.change_smtp_credential(&parse_email(&email)?, id, &params)?;
            print_one(&cred, Some(&secret), json);
        }
        SmtpCmd::Remove { email, id } => {
            store.remove_smtp_credential(&parse_email(&email)?, id)?;
            print_removed(id, "SMTP credential", json);
        }
    }
    Ok(ExitCode::SUCCESS)
}
