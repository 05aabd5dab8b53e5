//! `relaykey postfix check`: reads a Postfix instance's settings with `postconf` and reports,
//! in plain words, every one that keeps Postfix from using relaykey.

mod reach;
mod rules;
mod senders;
mod settings;

use std::process::ExitCode;

use super::args::postfix::PostfixCmd;
use super::output::print_json;
use super::{CliError, CliResult};
use crate::config::Config;
use reach::{Principal, unreachable_reason};
pub use rules::{Finding, analyze};
pub use settings::PostfixSettings;

pub fn run(cmd: PostfixCmd, config: &Config, json: bool) -> CliResult {
    let PostfixCmd::Check { config_dir } = cmd;
    let postfix = PostfixSettings::read(config_dir.as_deref()).map_err(CliError::refused)?;
    let mut findings = analyze(&postfix, config);
    findings.extend(reachability(&postfix, config));
    let notes = senders::binding_notes(&postfix, config);
    let instance = config_dir.as_ref().map(|d| format!("Postfix ({})", d.display())).unwrap_or("Postfix".into());
    if json {
        let list: Vec<_> =
            findings.iter().map(|f| serde_json::json!({ "place": f.place, "problem": f.problem })).collect();
        print_json(&serde_json::json!({ "ok": findings.is_empty(), "problems": list, "notes": notes }));
    } else if findings.is_empty() {
        println!("ok: {instance} is set up to use relaykey");
        notes.iter().for_each(|n| println!("note: {n}"));
    } else {
        for f in &findings {
            println!("problem: {f}");
        }
    }
    if findings.is_empty() {
        return Ok(ExitCode::SUCCESS);
    }
    let n = findings.len();
    Err(CliError::refused(format!(
        "{n} setting{} keep{} {instance} from using relaykey",
        if n == 1 { "" } else { "s" },
        if n == 1 { "s" } else { "" }
    )))
}

/// Can Postfix's `mail_owner` connect to each socket relaykey serves?
fn reachability(postfix: &PostfixSettings, config: &Config) -> Vec<Finding> {
    let user = postfix.mail_owner();
    let Some(who) = Principal::of_user(user) else {
        return vec![Finding { place: "main.cf".into(), problem: format!("mail_owner {user:?} is not a user here") }];
    };
    let sockets = [
        ("sasl", config.sasl.enabled, &config.sasl.socket),
        ("policy", config.policy.enabled, &config.policy.socket),
        ("senders", config.senders.socketmap, &config.senders.socket),
    ];
    sockets
        .into_iter()
        .filter(|(_, enabled, _)| *enabled)
        .filter_map(|(name, _, path)| {
            unreachable_reason(path, user, &who)
                .map(|why| Finding { place: format!("relaykey {name} socket {}", path.display()), problem: why })
        })
        .collect()
}
