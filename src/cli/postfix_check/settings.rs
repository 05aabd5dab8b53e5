//! What `postconf` says about a Postfix instance: main.cf (with defaults, `$names` expanded)
//! and the `smtpd` services of master.cf with their `-o` overrides.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// An `smtpd` service of master.cf.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpdService {
    /// `name/type` as postconf prints it (`submission/inet`).
    pub id: String,
    pub chroot: bool,
    /// `-o name=value` overrides.
    pub overrides: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PostfixSettings {
    pub main: BTreeMap<String, String>,
    pub services: Vec<SmtpdService>,
}

impl PostfixSettings {
    /// The value of `name` for `service`: its override, else main.cf's (default included).
    pub fn value<'a>(&'a self, service: &'a SmtpdService, name: &str) -> &'a str {
        service.overrides.get(name).or_else(|| self.main.get(name)).map(String::as_str).unwrap_or("")
    }

    pub fn queue_directory(&self) -> PathBuf {
        PathBuf::from(self.main.get("queue_directory").map(String::as_str).unwrap_or("/var/spool/postfix"))
    }

    pub fn mail_owner(&self) -> &str {
        self.main.get("mail_owner").map(String::as_str).unwrap_or("postfix")
    }

    /// Parses the outputs of `postconf -x`, `postconf -M` and `postconf -P -x`.
    pub fn parse(main: &str, master: &str, overrides: &str) -> Self {
        let main = main.lines().filter_map(name_value).collect();
        let mut per_service: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
        for (key, value) in overrides.lines().filter_map(name_value) {
            // `service/type/parameter`; the service name itself may not hold a `/`.
            if let Some((id, param)) = key.rsplit_once('/') {
                per_service.entry(id.to_string()).or_default().insert(param.to_string(), value);
            }
        }
        let services = master
            .lines()
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let [name, kind, _private, _unpriv, chroot, _wakeup, _maxproc, command, ..] = fields[..] else {
                    return None;
                };
                (command == "smtpd").then(|| {
                    let id = format!("{name}/{kind}");
                    // master.cf's default for the chroot column is `n` since Postfix 3.0.
                    let overrides = per_service.remove(&id).unwrap_or_default();
                    SmtpdService { id, chroot: chroot == "y", overrides }
                })
            })
            .collect();
        Self { main, services }
    }

    /// Runs `postconf` on the instance in `config_dir` (the default one when `None`). The three
    /// runs go in parallel: each spends about a second resolving the host's own name.
    pub fn read(config_dir: Option<&Path>) -> Result<Self, String> {
        let main = postconf(config_dir, &["-x"])?;
        let master = postconf(config_dir, &["-M"])?;
        let overrides = postconf(config_dir, &["-P", "-x"])?;
        Ok(Self::parse(&main.output()?, &master.output()?, &overrides.output()?))
    }
}

/// A running `postconf`.
struct Postconf {
    args: String,
    child: std::process::Child,
}

impl Postconf {
    fn output(self) -> Result<String, String> {
        let out = self.child.wait_with_output().map_err(|e| format!("postconf {}: {e}", self.args))?;
        if !out.status.success() {
            let err = String::from_utf8_lossy(&out.stderr);
            return Err(format!("postconf {} failed: {}", self.args, err.trim().replace('\n', " ")));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

fn name_value(line: &str) -> Option<(String, String)> {
    let (name, value) = line.split_once(" = ").or_else(|| line.strip_suffix(" =").map(|n| (n, "")))?;
    Some((name.trim().to_string(), value.trim().to_string()))
}

fn postconf(config_dir: Option<&Path>, args: &[&str]) -> Result<Postconf, String> {
    let mut cmd = Command::new("postconf");
    if let Some(dir) = config_dir {
        cmd.arg("-c").arg(dir);
    }
    let child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot run postconf: {e} (is Postfix installed?)"))?;
    Ok(Postconf { args: args.join(" "), child })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Shapes printed by postconf 3.7.11.
    const MASTER: &str = "\
smtp       inet  n       -       y       -       -       smtpd
submission inet  n       -       y       -       -       smtpd -o syslog_name=postfix/submission -o smtpd_sasl_auth_enable=yes
127.0.0.1:2525 inet n    -       -       -       -       smtpd -o smtpd_sasl_type=dovecot
pickup     unix  n       -       y       60      1       pickup
";
    const OVERRIDES: &str = "\
submission/inet/smtpd_sasl_auth_enable = yes
submission/inet/syslog_name = postfix/submission
127.0.0.1:2525/inet/smtpd_sasl_type = dovecot
";

    #[test]
    fn reads_smtpd_services_and_their_overrides() {
        let s = PostfixSettings::parse("smtpd_sasl_type = cyrus\nsmtpd_client_restrictions =\n", MASTER, OVERRIDES);
        let ids: Vec<&str> = s.services.iter().map(|s| s.id.as_str()).collect();
        assert_eq!(ids, ["smtp/inet", "submission/inet", "127.0.0.1:2525/inet"]);
        assert_eq!(s.services.iter().map(|s| s.chroot).collect::<Vec<_>>(), [true, true, false]);
        assert_eq!(s.value(&s.services[0], "smtpd_sasl_type"), "cyrus");
        assert_eq!(s.value(&s.services[2], "smtpd_sasl_type"), "dovecot");
        assert_eq!(s.value(&s.services[1], "smtpd_sasl_auth_enable"), "yes");
        assert_eq!(s.main.get("smtpd_client_restrictions").map(String::as_str), Some(""));
        assert_eq!(s.queue_directory(), Path::new("/var/spool/postfix"));
    }
}
