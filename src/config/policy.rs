//! `[policy]`: the Postfix policy-delegation socket and its rules. The per-IP session limit
//! (`max_connections_per_ip`, `[[limits.override]]`) and `session_timeout` live in `[limits]`,
//! shared with the relay.

use std::path::PathBuf;

use serde::Deserialize;

use crate::policy::Action;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    #[serde(deserialize_with = "super::deserialize_mode")]
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    /// The answer when relaykey cannot decide (the store cannot be read): `DUNNO` fails open,
    /// a 4xx code asks the client to retry later. Parsed once, when the config is read.
    #[serde(deserialize_with = "deserialize_action")]
    pub fallback_action: Action,
    /// Refuse a CONNECT beyond `limits.max_connections_per_ip` sessions from one address.
    pub connection_limit: bool,
    /// Before refusing, drop tracked sessions whose TCP connection the kernel no longer has.
    pub tcp_table: bool,
    /// Refuse requests of sessions older than `limits.session_timeout`.
    pub session_limit: bool,
    /// At MAIL, RCPT and DATA of an authenticated session, check that its login still holds.
    pub revocation: bool,
    /// What to do when the login of a session is not known (the login ledger, kept in the store,
    /// has no record of its AUTH: older than it keeps, or made through another SASL server).
    pub unknown_login: UnknownLogin,
    /// At MAIL (and later states) of an authenticated session, refuse an envelope sender the
    /// login's account does not own (`553 5.7.1`), for hosts that wire only the policy
    /// service and not `smtpd_sender_login_maps`.
    pub sender_binding: bool,
    /// The older place of `[limits] messages_per_*` (the limits now apply to the relay and the
    /// API too); still read, see [`super::Config::message_quota`].
    pub messages_per_minute: u32,
    pub messages_per_hour: u32,
    pub messages_per_day: u32,
}

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum UnknownLogin {
    /// The username must still name an enabled account usable from the client address (the
    /// secret it used cannot be checked).
    CheckAccount,
    /// Ask the client to reconnect and log in again (4.7.1).
    Defer,
    /// Let the session go on.
    Dunno,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/var/spool/postfix/private/relaykey-policy"),
            socket_mode: 0o660,
            socket_group: None,
            fallback_action: Action::temporary_failure(),
            connection_limit: true,
            tcp_table: true,
            session_limit: true,
            revocation: true,
            unknown_login: UnknownLogin::CheckAccount,
            sender_binding: false,
            messages_per_minute: 0,
            messages_per_hour: 0,
            messages_per_day: 0,
        }
    }
}

/// An action as the config writes it (`"DUNNO"`, `"451 4.3.0 Try later"`); a value Postfix
/// would misread is refused here, and the error is reported against the key.
fn deserialize_action<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Action, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(serde::de::Error::custom)
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    use super::*;

    #[test]
    fn rules_are_on_and_rate_limits_off_by_default() {
        let c = Config::parse("").unwrap().policy;
        assert!(c.connection_limit && c.tcp_table && c.session_limit && c.revocation);
        assert_eq!((c.messages_per_minute, c.messages_per_hour, c.messages_per_day), (0, 0, 0));
        assert_eq!(c.unknown_login, UnknownLogin::CheckAccount);
        assert!(!c.sender_binding);
        assert_eq!(c.fallback_action, Action::temporary_failure());
    }

    #[test]
    fn every_key_parses() {
        let c = Config::parse(
            "[policy]\nfallback_action = \"DUNNO\"\nconnection_limit = false\ntcp_table = false\n\
             session_limit = false\nrevocation = false\nunknown_login = \"defer\"\nsender_binding = true\n\
             messages_per_minute = 1\nmessages_per_hour = 2\nmessages_per_day = 3\n",
        )
        .unwrap()
        .policy;
        assert_eq!(c.fallback_action, Action::Dunno);
        assert_eq!(c.unknown_login, UnknownLogin::Defer);
        assert!(c.sender_binding);
        assert_eq!((c.messages_per_minute, c.messages_per_hour, c.messages_per_day), (1, 2, 3));
    }

    #[test]
    fn a_bad_fallback_action_is_refused_naming_the_key() {
        for bad in ["\"450\"", "\"OK\"", "\"\"", "\"450 5.7.1 mixed\"", "7"] {
            let err = Config::parse(&format!("[policy]\nfallback_action = {bad}\n")).unwrap_err().to_string();
            assert!(err.starts_with("policy.fallback_action: "), "{bad}: {err}");
        }
        let c = Config::parse("[policy]\nfallback_action = \"450 4.7.1 Try later\"\n").unwrap().policy;
        assert_eq!(c.fallback_action.to_string(), "450 4.7.1 Try later");
    }
}
