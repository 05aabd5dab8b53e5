//! `relaykey auth test USER SECRET [--ip IP]`: one login through the daemon's decision path.
//! `SECRET` may be `-`, to read it from standard input rather than put it where `ps` and the
//! shell's history show it.

use std::io::BufRead;
use std::net::IpAddr;
use std::process::ExitCode;

use super::args::auth::AuthCmd;
use super::output::{escape, print_json};
use super::{CliError, CliResult, EXIT_TEMPFAIL};
use crate::auth::{Authenticator, Decision};
use crate::config::Config;
use crate::secret::Secret;

/// The first line of `input`, without its line ending; secrets hold no line breaks.
fn read_secret(mut input: impl BufRead) -> Result<String, CliError> {
    let mut line = String::new();
    input
        .read_line(&mut line)
        .map_err(|e| CliError::refused(format!("cannot read the secret from standard input: {e}")))?;
    let secret = line.trim_end_matches(['\r', '\n']);
    if secret.is_empty() {
        return Err(CliError::refused("no secret on standard input"));
    }
    Ok(secret.to_string())
}

pub fn run(cmd: AuthCmd, config: &Config, json: bool) -> CliResult {
    let AuthCmd::Test { user, secret, ip } = cmd;
    let secret = if secret == "-" { read_secret(std::io::stdin().lock())? } else { secret };
    let ip = ip
        .map(|s| s.trim().parse::<IpAddr>().map_err(|_| CliError::refused(format!("invalid IP address {s:?}"))))
        .transpose()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| CliError { message: format!("cannot start runtime: {e}"), exit: EXIT_TEMPFAIL })?;
    let decision = runtime.block_on(async {
        let location = config.store().map_err(|e| CliError::refused(e.to_string()))?;
        let authenticator = Authenticator::open(&location, &config.auth)
            .map_err(|e| CliError { message: e.to_string(), exit: EXIT_TEMPFAIL })?;
        Ok::<_, CliError>(authenticator.authenticate(&user, &Secret::from_presented(secret), ip).await)
    })?;
    let (user_field, credential) = match &decision {
        Decision::Granted(g) => (Some(g.username.clone()), Some(g.credential.label())),
        _ => (None, None),
    };
    if json {
        print_json(&serde_json::json!({
            "decision": decision.kind(),
            "reason": decision.reason(),
            "user": user_field,
            "credential": credential,
        }));
    } else {
        match (&user_field, &credential) {
            (Some(u), Some(c)) => {
                println!("{} {} user={} credential={c}", decision.kind(), decision.reason(), escape(u))
            }
            _ => println!("{} {}", decision.kind(), decision.reason()),
        }
    }
    Ok(match decision {
        Decision::Granted(_) => ExitCode::SUCCESS,
        Decision::Denied(_) => ExitCode::from(1),
        Decision::TempFail(_) => ExitCode::from(EXIT_TEMPFAIL),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_first_line_without_its_ending() {
        assert_eq!(read_secret(&b"s3cret\r\nnext\n"[..]).unwrap(), "s3cret");
        assert_eq!(read_secret(&b"s3cret"[..]).unwrap(), "s3cret");
        assert!(read_secret(&b"\n"[..]).is_err());
        assert!(read_secret(&b""[..]).is_err());
    }
}
