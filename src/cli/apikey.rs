//! `relaykey apikey create|list|edit|change|remove`.

use std::process::ExitCode;

use super::args::apikey::ApiKeyCmd;
use super::output::{
    ApiKeyView, SHOW_ONCE, allow_text, escape, permissions_text, print_json, print_list, print_removed,
};
use super::{CliError, CliResult, open_store, parse_allow, parse_allow_edit, parse_email};
use crate::config::Config;
use crate::model::{ApiKey, Permission, PermissionSet};
use crate::secret::Secret;
use crate::store::{ApiKeyEdit, NewApiKey};

fn parse_permissions(items: &[String]) -> Result<Option<PermissionSet>, CliError> {
    if items.is_empty() {
        return Ok(None);
    }
    let set = items
        .iter()
        .flat_map(|s| s.split(','))
        .map(|s| s.parse::<Permission>().map_err(|e| CliError::refused(e.to_string())))
        .collect::<Result<PermissionSet, _>>()?;
    Ok(Some(set))
}

fn print_one(key: &ApiKey, secret: Option<&Secret>, json: bool) {
    let view = ApiKeyView::new(key, secret);
    if json {
        print_json(&view);
        return;
    }
    println!("id:          {}", view.id);
    println!("name:        {}", escape(view.name));
    if let Some(k) = view.key {
        println!("key:         {k}");
    }
    println!("masked:      {}", view.masked);
    println!("permissions: {}", permissions_text(view.permissions));
    println!("allow:       {}", allow_text(&view.allow));
    if secret.is_some() {
        println!("{SHOW_ONCE}");
    }
}

pub fn run(cmd: ApiKeyCmd, config: &Config, json: bool) -> CliResult {
    let params = config.auth.hash_params();
    let mut store = open_store(config)?;
    match cmd {
        ApiKeyCmd::Create { email, name, permissions, allow } => {
            let email = parse_email(&email)?;
            let new = NewApiKey {
                name: name.unwrap_or_else(|| "API key".into()),
                permissions: parse_permissions(&permissions)?.unwrap_or_else(PermissionSet::all),
                allow: parse_allow(&allow)?,
            };
            let (key, secret) = store.create_api_key(&email, new, &params)?;
            print_one(&key, Some(&secret), json);
        }
        ApiKeyCmd::List { email } => {
            let keys = store.api_keys(&parse_email(&email)?)?;
            let cells = |v: &ApiKeyView| {
                let (permissions, allow) = (permissions_text(v.permissions), allow_text(&v.allow));
                vec![v.id.to_string(), v.masked.clone(), v.name.to_string(), permissions, allow]
            };
            let headers = ["ID", "KEY", "NAME", "PERMISSIONS", "ALLOW"];
            print_list(&keys, |k| ApiKeyView::new(k, None), &headers, cells, json);
        }
        ApiKeyCmd::Edit { email, id, name, permissions, allow, no_allow } => {
            let edit = ApiKeyEdit {
                name,
                permissions: parse_permissions(&permissions)?,
                allow: parse_allow_edit(no_allow, &allow)?,
            };
            let key = store.edit_api_key(&parse_email(&email)?, id, edit)?;
            print_one(&key, None, json);
        }
        ApiKeyCmd::Change { email, id } => {
            let (key, secret) = store.change_api_key(&parse_email(&email)?, id, &params)?;
            print_one(&key, Some(&secret), json);
        }
        ApiKeyCmd::Remove { email, id } => {
            store.remove_api_key(&parse_email(&email)?, id)?;
            print_removed(id, "API key", json);
        }
    }
    Ok(ExitCode::SUCCESS)
}
