//! Sender binding through the senders socketmap: every SASL service should refuse a sender
//! its login does not own (`reject_authenticated_sender_login_mismatch` or a sibling) and look
//! owners up in relaykey's socketmap (`smtpd_sender_login_maps = socketmap:unix:PATH:NAME`).
//! Decided from `postconf` output alone.

use std::path::Path;

use super::rules::{Endpoint, Finding, normalize, resolve};
use super::settings::{PostfixSettings, SmtpdService};
use crate::config::Config;

/// The restrictions that consult `smtpd_sender_login_maps` for a logged-in client.
const LOGIN_MISMATCH: &[&str] = &[
    "reject_authenticated_sender_login_mismatch",
    "reject_sender_login_mismatch",
    "reject_known_sender_login_mismatch",
];
/// Where smtpd evaluates them (all at MAIL FROM or later, where the sender is known).
const LISTS: &[&str] = &["smtpd_sender_restrictions", "smtpd_relay_restrictions", "smtpd_recipient_restrictions"];

/// A socketmap in a map list: where it connects and the name it sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Socketmap {
    pub spec: String,
    pub endpoint: Endpoint,
    pub name: String,
    /// Through `proxy:` (proxymap runs unchrooted).
    pub proxied: bool,
}

/// The socketmaps of a map list (`socketmap:unix:PATH:NAME`, `proxy:socketmap:…`,
/// `socketmap:inet:HOST:PORT:NAME`), with paths resolved as smtpd (or proxymap) sees them.
pub fn socketmaps(list: &str, queue_dir: &Path, chroot: bool) -> Vec<Socketmap> {
    list.split([',', ' ', '\t', '\n'])
        .filter(|s| !s.is_empty())
        .filter_map(|spec| {
            let (proxied, rest) = match spec.strip_prefix("proxy:") {
                Some(rest) => (true, rest),
                None => (false, spec),
            };
            // Postfix splits at the last `:`: the name is what goes on the wire.
            let (target, name) = rest.strip_prefix("socketmap:")?.rsplit_once(':')?;
            let endpoint = resolve(target, queue_dir, chroot && !proxied);
            Some(Socketmap { spec: spec.to_string(), endpoint, name: name.to_string(), proxied })
        })
        .collect()
}

/// Findings about sender binding on the SASL services, as `config` serves it.
pub fn check_sender_binding(
    postfix: &PostfixSettings,
    sasl_services: &[&SmtpdService],
    config: &Config,
) -> Vec<Finding> {
    let senders = &config.senders;
    let want = normalize(&senders.socket);
    let queue_dir = postfix.queue_directory();
    let mut findings = Vec::new();
    for service in sasl_services {
        let mut say = |problem: String| findings.push(Finding { place: service.id.clone(), problem });
        let maps = socketmaps(postfix.value(service, "smtpd_sender_login_maps"), &queue_dir, service.chroot);
        let ours: Vec<&Socketmap> = maps.iter().filter(|m| m.endpoint == Endpoint::Unix(want.clone())).collect();
        let binds = LISTS.iter().any(|list| {
            postfix.value(service, list).split([',', ' ', '\t', '\n']).any(|r| LOGIN_MISMATCH.contains(&r))
        });
        let spec = match want.strip_prefix(normalize(&queue_dir)) {
            Ok(rel) => format!("socketmap:unix:{}:{}", rel.display(), senders.map_name),
            Err(_) => format!("proxy:socketmap:unix:{}:{}", want.display(), senders.map_name),
        };
        if !senders.socketmap {
            if !ours.is_empty() {
                say(format!(
                    "smtpd_sender_login_maps asks relaykey's senders socketmap ({}), but relaykey does not serve it, \
                     so every authenticated MAIL FROM gets a temporary error; set [senders] socketmap = true in relaykey.toml",
                    want.display()
                ));
            }
            continue;
        }
        if !binds {
            say(format!(
                "no {} in smtpd_sender_restrictions, so a login may send as any sender (relaykey's senders socketmap \
                 is not asked); add -o smtpd_sender_restrictions=reject_authenticated_sender_login_mismatch \
                 (with smtpd_sender_login_maps = {spec})",
                LOGIN_MISMATCH[0]
            ));
            continue;
        }
        match ours.first() {
            None => {
                let mut problem = format!(
                    "smtpd_sender_login_maps does not include relaykey's senders socketmap ({}), so {} checks \
                     senders against other tables (or refuses them all); set smtpd_sender_login_maps = {spec}",
                    want.display(),
                    LOGIN_MISMATCH[0]
                );
                if let Some(near) =
                    maps.iter().find(|m| matches!(&m.endpoint, Endpoint::Unix(p) if p.file_name() == want.file_name()))
                {
                    problem.push_str(&format!(" ({} reaches {})", near.spec, describe(&near.endpoint)));
                }
                say(problem);
            }
            Some(map) if map.name != senders.map_name => say(format!(
                "{} sends the map name {:?}, but relaykey answers only {:?} ([senders] map_name) and refuses \
                 others as a configuration error; set smtpd_sender_login_maps = {spec}",
                map.spec, map.name, senders.map_name
            )),
            Some(_) => {}
        }
    }
    findings
}

/// One line per SASL service that binds senders through relaykey's socketmap, saying what it
/// does (printed under "ok").
pub fn binding_notes(postfix: &PostfixSettings, config: &Config) -> Vec<String> {
    if !config.senders.socketmap {
        return Vec::new();
    }
    let want = Endpoint::Unix(normalize(&config.senders.socket));
    let queue_dir = postfix.queue_directory();
    postfix
        .services
        .iter()
        .filter(|s| postfix.value(s, "smtpd_sasl_auth_enable").eq_ignore_ascii_case("yes"))
        .filter_map(|service| {
            let map = socketmaps(postfix.value(service, "smtpd_sender_login_maps"), &queue_dir, service.chroot)
                .into_iter()
                .find(|m| m.endpoint == want && m.name == config.senders.map_name)?;
            let restriction = LISTS.iter().find_map(|list| {
                postfix.value(service, list).split([',', ' ', '\t', '\n']).find(|r| LOGIN_MISMATCH.contains(r))
            })?;
            Some(format!(
                "{}: senders are bound: {restriction} refuses (553 5.7.1) a MAIL FROM whose owner, asked from {}, \
                 does not list the login",
                service.id, map.spec
            ))
        })
        .collect()
}

fn describe(endpoint: &Endpoint) -> String {
    match endpoint {
        Endpoint::Unix(p) => p.display().to_string(),
        Endpoint::Inet(a) => a.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUBMISSION: &str = "submission inet n - y - - smtpd\n";
    const BOUND: &str = "\
queue_directory = /var/spool/postfix
smtpd_sasl_auth_enable = yes
smtpd_sender_login_maps = socketmap:unix:private/relaykey-senders:senders
smtpd_sender_restrictions = check_policy_service unix:private/relaykey-policy, reject_authenticated_sender_login_mismatch
";

    fn config(socketmap: bool) -> Config {
        let mut c = Config::default();
        c.senders.socketmap = socketmap;
        c
    }

    fn problems(main: &str, master: &str, config: &Config) -> Vec<String> {
        let pf = PostfixSettings::parse(main, master, "");
        let services: Vec<&SmtpdService> = pf.services.iter().collect();
        check_sender_binding(&pf, &services, config).iter().map(|f| f.to_string()).collect()
    }

    #[test]
    fn the_snippet_wiring_passes() {
        assert_eq!(problems(BOUND, SUBMISSION, &config(true)), Vec::<String>::new());
        // proxy: reaches the absolute path unchrooted.
        let proxied = BOUND.replace(
            "socketmap:unix:private/relaykey-senders",
            "proxy:socketmap:unix:/var/spool/postfix/private/relaykey-senders",
        );
        assert_eq!(problems(&proxied, SUBMISSION, &config(true)), Vec::<String>::new());
    }

    #[test]
    fn names_each_broken_piece() {
        for (from, to, socketmap, expect) in [
            (", reject_authenticated_sender_login_mismatch", "", true, "a login may send as any sender"),
            ("smtpd_sender_login_maps = socketmap:unix:private/relaykey-senders:senders", "", true, "does not include"),
            (":senders\n", ":sender\n", true, "sends the map name \"sender\""),
            ("private/relaykey-senders", "private/other", true, "does not include"),
            ("private/relaykey-senders", "/var/spool/postfix/private/relaykey-senders", true, "does not include"),
            ("", "", false, "set [senders] socketmap = true"),
        ] {
            let main = BOUND.replace(from, to);
            let found = problems(&main, SUBMISSION, &config(socketmap));
            assert_eq!(found.len(), 1, "{from} -> {to}: {found:?}");
            assert!(found[0].contains(expect), "{from} -> {to}: {found:?}");
        }
    }

    #[test]
    fn explains_the_wiring_it_recognises() {
        let pf = PostfixSettings::parse(BOUND, SUBMISSION, "");
        let notes = binding_notes(&pf, &config(true));
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].starts_with("submission/inet: senders are bound: reject_authenticated_sender_login_mismatch"));
        assert!(binding_notes(&pf, &config(false)).is_empty());
    }

    #[test]
    fn without_the_socketmap_nothing_is_asked_of_postfix() {
        let main = "queue_directory = /var/spool/postfix\nsmtpd_sasl_auth_enable = yes\n";
        assert!(problems(main, SUBMISSION, &config(false)).is_empty());
    }

    #[test]
    fn reads_socketmap_specs() {
        let q = Path::new("/var/spool/postfix");
        let maps = socketmaps("hash:/etc/x, socketmap:inet:127.0.0.1:9:a proxy:socketmap:unix:/run/s:b", q, true);
        assert_eq!(maps.len(), 2);
        assert_eq!((maps[0].endpoint.clone(), maps[0].name.as_str()), (Endpoint::Inet("inet:127.0.0.1:9".into()), "a"));
        assert_eq!(maps[1].endpoint, Endpoint::Unix("/run/s".into()));
        assert!(maps[1].proxied);
    }
}
