//! `relaykey smtp create|list|edit|change|remove`.

use std::process::ExitCode;

use clap::Subcommand;

use super::output::{SHOW_ONCE, SmtpCredentialView, allow_text, escape, print_json, print_list, print_removed};
use super::{CliResult, open_store, parse_allow, parse_allow_edit, parse_email};
use crate::config::Config;
use crate::model::SmtpCredential;
use crate::secret::Secret;
use crate::store::{NewSmtpCredential, SmtpCredentialEdit};

#[derive(Debug, Subcommand)]
pub enum SmtpCmd {
    /// Create an SMTP credential; its password is shown once
    Create {
        email: String,
        /// Login name, unique system-wide [default: the account's address]
        #[arg(long, value_name = "ADDR")]
        username: Option<String>,
        /// IP, CIDR or first-last range the credential may be used from; repeat for several
        #[arg(long = "allow", value_name = "NET")]
        allow: Vec<String>,
    },
    /// List an account's SMTP credentials (masked)
    List { email: String },
    /// Edit a credential's restriction
    Edit {
        email: String,
        id: i64,
        /// Replaces the restriction; repeat for several
        #[arg(long = "allow", value_name = "NET", conflicts_with = "no_allow")]
        allow: Vec<String>,
        /// Remove the restriction
        #[arg(long)]
        no_allow: bool,
    },
    /// Give a credential a new password; the old one dies at once
    Change { email: String, id: i64 },
    /// Remove a credential
    Remove { email: String, id: i64 },
}

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
            let line = |v: &SmtpCredentialView| {
                format!("{}\t{}\t{}\t{}", v.id, escape(v.username), v.masked, allow_text(&v.allow))
            };
            print_list(&creds, |c| SmtpCredentialView::new(c, None), line, json);
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
