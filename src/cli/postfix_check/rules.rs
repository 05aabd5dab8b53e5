//! The settings that keep Postfix from using relaykey, decided from `postconf` output alone
//! (no I/O here): SASL type and path, TLS before AUTH, and the policy service's place in the
//! restriction lists. Paths are compared as smtpd sees them: relative to the queue directory,
//! and inside it when the service is chrooted.

use std::fmt;
use std::path::{Component, Path, PathBuf};

use super::settings::{PostfixSettings, SmtpdService};
use crate::config::Config;

/// One reason Postfix would not use relaykey, in plain words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// `main.cf`, `master.cf` or a service (`submission/inet`).
    pub place: String,
    pub problem: String,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.place, self.problem)
    }
}

/// Where smtpd connects for a `smtpd_sasl_path` or a `check_policy_service` target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    Unix(PathBuf),
    Inet(String),
}

/// Resolves `target` as smtpd does: smtpd runs with the queue directory as its working
/// directory (and as its root when chrooted).
pub fn resolve(target: &str, queue_dir: &Path, chroot: bool) -> Endpoint {
    if target.starts_with("inet:") {
        return Endpoint::Inet(target.to_string());
    }
    let path = Path::new(target.strip_prefix("unix:").unwrap_or(target));
    let real = if path.is_relative() {
        queue_dir.join(path)
    } else if chroot {
        queue_dir.join(path.strip_prefix("/").unwrap_or(path))
    } else {
        path.to_path_buf()
    };
    Endpoint::Unix(normalize(&real))
}

/// Drops `.` and folds `..` without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What to write in Postfix for a socket at `socket`: relative to the queue directory when it
/// lies inside (works chrooted or not), else its absolute path (works only unchrooted).
fn postfix_name(socket: &Path, queue_dir: &Path) -> Option<String> {
    let socket = normalize(socket);
    match socket.strip_prefix(normalize(queue_dir)) {
        Ok(rel) => Some(rel.display().to_string()),
        Err(_) => None,
    }
}

fn yes(value: &str) -> bool {
    value.trim().eq_ignore_ascii_case("yes")
}

const CLIENT_LISTS: &[&str] = &["smtpd_client_restrictions"];
/// Lists evaluated at MAIL FROM or RCPT TO, where a revoked login must be stopped.
const MAIL_LISTS: &[&str] = &["smtpd_sender_restrictions", "smtpd_relay_restrictions", "smtpd_recipient_restrictions"];
const ALL_LISTS: &[&str] = &[
    "smtpd_client_restrictions",
    "smtpd_helo_restrictions",
    "smtpd_sender_restrictions",
    "smtpd_relay_restrictions",
    "smtpd_recipient_restrictions",
    "smtpd_data_restrictions",
    "smtpd_end_of_data_restrictions",
];

/// Every reason `postfix` (as read by postconf) would not use relaykey as `config` sets it up.
pub fn analyze(postfix: &PostfixSettings, config: &Config) -> Vec<Finding> {
    let mut findings = Vec::new();
    if postfix.services.is_empty() {
        findings.push(Finding { place: "master.cf".into(), problem: "has no smtpd service".into() });
        return findings;
    }
    let sasl_services: Vec<&SmtpdService> =
        postfix.services.iter().filter(|s| yes(postfix.value(s, "smtpd_sasl_auth_enable"))).collect();
    if config.sasl.enabled {
        if sasl_services.is_empty() {
            findings.push(Finding {
                place: "master.cf".into(),
                problem: "no smtpd service sets smtpd_sasl_auth_enable = yes, so Postfix never offers AUTH; \
                          set it on the submission service"
                    .into(),
            });
        }
        for service in &sasl_services {
            check_sasl(postfix, service, &config.sasl.socket, &mut findings);
        }
        findings.extend(super::senders::check_sender_binding(postfix, &sasl_services, config));
    }
    if config.policy.enabled {
        // The policy service matters where logins happen; without SASL, on every service.
        let scope: Vec<&SmtpdService> = if config.sasl.enabled && !sasl_services.is_empty() {
            sasl_services
        } else {
            postfix.services.iter().collect()
        };
        for service in scope {
            check_policy(postfix, service, &config.policy.socket, &mut findings);
        }
    }
    findings
}

fn check_sasl(postfix: &PostfixSettings, service: &SmtpdService, socket: &Path, out: &mut Vec<Finding>) {
    let mut say = |problem: String| out.push(Finding { place: service.id.clone(), problem });
    let queue_dir = postfix.queue_directory();
    let kind = postfix.value(service, "smtpd_sasl_type");
    if kind != "dovecot" {
        say(format!(
            "smtpd_sasl_type is {kind:?}, but relaykey speaks the Dovecot auth protocol; set smtpd_sasl_type = dovecot"
        ));
    } else {
        let path = postfix.value(service, "smtpd_sasl_path");
        let want = normalize(socket);
        match resolve(path, &queue_dir, service.chroot) {
            Endpoint::Unix(got) if got == want => {}
            got => say(format!(
                "smtpd_sasl_path = {path} makes smtpd connect to {}, but relaykey's SASL socket is {}; {}",
                describe(&got, &queue_dir, service.chroot),
                want.display(),
                advice("smtpd_sasl_path = ", &want, &queue_dir, service.chroot),
            )),
        }
    }
    if !yes(postfix.value(service, "smtpd_tls_auth_only")) && !yes(postfix.value(service, "smtpd_tls_wrappermode")) {
        say("smtpd_tls_auth_only is not yes, so passwords may cross the network unencrypted; \
             set smtpd_tls_auth_only = yes"
            .into());
    }
}

fn check_policy(postfix: &PostfixSettings, service: &SmtpdService, socket: &Path, out: &mut Vec<Finding>) {
    let queue_dir = postfix.queue_directory();
    let want = normalize(socket);
    let mut found_in: Vec<&str> = Vec::new();
    let mut near_misses: Vec<String> = Vec::new();
    for list in ALL_LISTS {
        for target in policy_targets(postfix.value(service, list)) {
            match resolve(&target, &queue_dir, service.chroot) {
                Endpoint::Unix(got) if got == want => found_in.push(list),
                Endpoint::Unix(got) if got.file_name() == want.file_name() => near_misses.push(format!(
                    "check_policy_service {target} in {list} reaches {}",
                    describe(&Endpoint::Unix(got), &queue_dir, service.chroot)
                )),
                _ => {}
            }
        }
    }
    let spec = match postfix_name(&want, &queue_dir) {
        Some(rel) => format!("check_policy_service unix:{rel}"),
        None => format!("check_policy_service unix:{}", want.display()),
    };
    let mut say = |problem: String| out.push(Finding { place: service.id.clone(), problem });
    if found_in.is_empty() {
        let mut problem =
            format!("relaykey's policy service ({}) is in none of the smtpd restriction lists", want.display());
        for miss in &near_misses {
            problem.push_str(&format!(" ({miss})"));
        }
        if service.chroot && postfix_name(&want, &queue_dir).is_none() {
            problem.push_str(&format!(
                "; the service is chrooted to {}, so the socket must lie inside it",
                queue_dir.display()
            ));
        }
        say(format!(
            "{problem}; add {spec} to smtpd_client_restrictions and to smtpd_recipient_restrictions \
             (or smtpd_relay_restrictions)"
        ));
        return;
    }
    if !found_in.iter().any(|l| CLIENT_LISTS.contains(l)) {
        say(format!(
            "relaykey's policy service is missing from smtpd_client_restrictions, so per-IP connection limits \
             are not enforced; add {spec} there"
        ));
    }
    if !found_in.iter().any(|l| MAIL_LISTS.contains(l)) {
        say(format!(
            "relaykey's policy service is missing from smtpd_relay_restrictions and smtpd_recipient_restrictions, \
             so a revoked login can go on sending; add {spec} to one of them"
        ));
    }
}

fn describe(endpoint: &Endpoint, queue_dir: &Path, chroot: bool) -> String {
    match endpoint {
        Endpoint::Inet(addr) => format!("the TCP endpoint {addr}"),
        Endpoint::Unix(p) if chroot => format!("{} (the service is chrooted to {})", p.display(), queue_dir.display()),
        Endpoint::Unix(p) => p.display().to_string(),
    }
}

fn advice(setting: &str, socket: &Path, queue_dir: &Path, chroot: bool) -> String {
    match postfix_name(socket, queue_dir) {
        Some(rel) => format!("set {setting}{rel}"),
        None if chroot => format!(
            "the service is chrooted to {}, so move the socket inside it (e.g. {}/private/relaykey-auth) \
             or set the service's chroot column to n",
            queue_dir.display(),
            queue_dir.display()
        ),
        None => format!("set {setting}{}", socket.display()),
    }
}

/// The targets of every `check_policy_service` in a restriction list. A target is either the
/// next word or the first item of a `{ target, name=value, ... }` group (Postfix 3.0+).
pub fn policy_targets(list: &str) -> Vec<String> {
    let tokens = tokenize(list);
    let mut targets = Vec::new();
    for pair in tokens.windows(2) {
        if pair[0] == "check_policy_service" {
            let next = pair[1].trim();
            let target = match next.strip_prefix('{').and_then(|t| t.strip_suffix('}')) {
                Some(inner) => inner.split([',', ' ', '\t', '\n']).find(|s| !s.is_empty()).unwrap_or(""),
                None => next,
            };
            if !target.is_empty() {
                targets.push(target.to_string());
            }
        }
    }
    targets
}

/// Splits a restriction list on commas and white space, keeping `{ ... }` groups whole.
fn tokenize(list: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut depth = 0usize;
    for c in list.chars() {
        match c {
            '{' => {
                depth += 1;
                current.push(c);
            }
            '}' => {
                depth = depth.saturating_sub(1);
                current.push(c);
            }
            ',' | ' ' | '\t' | '\n' | '\r' if depth == 0 => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn postfix(main: &str, master: &str, overrides: &str) -> PostfixSettings {
        let main = format!("queue_directory = /var/spool/postfix\n{main}");
        PostfixSettings::parse(&main, master, overrides)
    }

    const SUBMISSION: &str = "submission inet n - y - - smtpd\n";
    const GOOD_MAIN: &str = "\
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/relaykey-auth
smtpd_tls_auth_only = yes
smtpd_client_restrictions = check_policy_service unix:private/relaykey-policy
smtpd_relay_restrictions = permit_mynetworks, check_policy_service { unix:private/relaykey-policy, timeout=5s }, \
permit_sasl_authenticated, reject
";

    fn problems(main: &str, master: &str) -> Vec<String> {
        analyze(&postfix(main, master, ""), &Config::default()).iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn a_good_setup_has_no_findings() {
        assert_eq!(problems(GOOD_MAIN, SUBMISSION), Vec::<String>::new());
    }

    #[test]
    fn finds_each_misconfiguration() {
        for (from, to, expect) in [
            ("smtpd_sasl_type = dovecot", "smtpd_sasl_type = cyrus", "smtpd_sasl_type is \"cyrus\""),
            ("smtpd_sasl_path = private/relaykey-auth", "smtpd_sasl_path = private/auth", "private/auth"),
            (
                "smtpd_sasl_path = private/relaykey-auth",
                "smtpd_sasl_path = /var/spool/postfix/private/relaykey-auth",
                "chrooted",
            ),
            ("smtpd_tls_auth_only = yes", "smtpd_tls_auth_only = no", "smtpd_tls_auth_only"),
            ("smtpd_sasl_auth_enable = yes", "smtpd_sasl_auth_enable = no", "never offers AUTH"),
            (
                "smtpd_client_restrictions = check_policy_service unix:private/relaykey-policy",
                "smtpd_client_restrictions =",
                "missing from smtpd_client_restrictions",
            ),
            ("check_policy_service { unix:private/relaykey-policy, timeout=5s },", "", "revoked login"),
        ] {
            let main = GOOD_MAIN.replace(from, to);
            assert_ne!(main, GOOD_MAIN, "{from}");
            let found = problems(&main, SUBMISSION);
            assert!(found.iter().any(|p| p.contains(expect)), "{to}: {found:?}");
        }
    }

    #[test]
    fn absolute_paths_work_only_without_chroot() {
        let main = GOOD_MAIN.replace("private/relaykey-auth", "/var/spool/postfix/private/relaykey-auth");
        assert!(problems(&main, "submission inet n - n - - smtpd\n").is_empty());
        assert!(!problems(&main, SUBMISSION).is_empty());
    }

    #[test]
    fn a_policy_service_in_no_list_is_reported_once() {
        let main = GOOD_MAIN
            .replace("smtpd_client_restrictions = check_policy_service unix:private/relaykey-policy", "")
            .replace("check_policy_service { unix:private/relaykey-policy, timeout=5s },", "");
        let found = problems(&main, SUBMISSION);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].contains("none of the smtpd restriction lists"), "{found:?}");
    }

    #[test]
    fn overrides_per_service_count() {
        let main = GOOD_MAIN.replace("smtpd_sasl_auth_enable = yes", "smtpd_sasl_auth_enable = no");
        let master = "smtp inet n - y - - smtpd\nsubmission inet n - y - - smtpd -o smtpd_sasl_auth_enable=yes\n";
        let pf = postfix(&main, master, "submission/inet/smtpd_sasl_auth_enable = yes\n");
        assert!(analyze(&pf, &Config::default()).is_empty());
        let pf = postfix(
            &main,
            master,
            "submission/inet/smtpd_sasl_auth_enable = yes\nsubmission/inet/smtpd_sasl_type = cyrus\n",
        );
        let found = analyze(&pf, &Config::default());
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].place, "submission/inet");
    }

    #[test]
    fn wrappermode_needs_no_tls_auth_only() {
        let main = GOOD_MAIN.replace("smtpd_tls_auth_only = yes", "smtpd_tls_wrappermode = yes");
        assert!(problems(&main, SUBMISSION).is_empty());
    }

    #[test]
    fn resolves_paths_as_smtpd_does() {
        let q = Path::new("/var/spool/postfix");
        let unix = |p: &str| Endpoint::Unix(PathBuf::from(p));
        assert_eq!(resolve("private/auth", q, true), unix("/var/spool/postfix/private/auth"));
        assert_eq!(resolve("unix:private/auth", q, false), unix("/var/spool/postfix/private/auth"));
        assert_eq!(resolve("/run/auth", q, false), unix("/run/auth"));
        assert_eq!(resolve("/run/auth", q, true), unix("/var/spool/postfix/run/auth"));
        assert_eq!(resolve("./private/../private/auth", q, true), unix("/var/spool/postfix/private/auth"));
        assert_eq!(resolve("inet:127.0.0.1:12345", q, true), Endpoint::Inet("inet:127.0.0.1:12345".into()));
    }

    #[test]
    fn finds_policy_targets_in_lists() {
        assert_eq!(
            policy_targets(
                "permit_mynetworks, check_policy_service unix:private/a,check_policy_service { inet:127.0.0.1:9, \
                 timeout=1s }, reject"
            ),
            ["unix:private/a", "inet:127.0.0.1:9"]
        );
        assert!(policy_targets("check_policy_service").is_empty());
    }
}
