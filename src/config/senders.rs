//! `[senders]`: sender binding (which account may send as which address), the socketmap
//! Postfix asks for `smtpd_sender_login_maps`, and the resolver that checks domain proofs.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::Invalid;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendersConfig {
    /// Refuse, in the policy server (with `[policy] sender_binding`), the native relay and the
    /// API, a sender the login's account does not own.
    pub enforce: bool,
    /// The native relay and the API also check every address of the message's `From:`.
    pub check_header_from: bool,
    /// Serve the socketmap on `socket`. Off by default: turn it on together with the
    /// `smtpd_sender_login_maps` line of the Postfix snippet.
    pub socketmap: bool,
    pub socket: PathBuf,
    #[serde(deserialize_with = "super::deserialize_mode")]
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    /// The map name Postfix sends (the last part of `socketmap:unix:PATH:NAME`).
    pub map_name: String,
    /// The nameserver (`address:port`) that domain proofs are checked through; unset, the
    /// system resolver (`/etc/resolv.conf`). For tests and for hosts whose system resolver
    /// must not be used.
    pub resolver: Option<SocketAddr>,
    /// How long one DNS query may take before the check is a temporary failure.
    #[serde(with = "super::duration")]
    pub dns_timeout: Duration,
}

impl Default for SendersConfig {
    fn default() -> Self {
        Self {
            enforce: true,
            check_header_from: true,
            socketmap: false,
            socket: PathBuf::from("/var/spool/postfix/private/relaykey-senders"),
            socket_mode: 0o660,
            socket_group: None,
            map_name: "senders".into(),
            resolver: None,
            dns_timeout: Duration::from_secs(5),
        }
    }
}

impl SendersConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        let name_ok = !self.map_name.is_empty()
            && self.map_name.len() <= 64
            && self.map_name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b));
        if !name_ok {
            return Err(Invalid::value("senders.map_name", "must be 1-64 letters, digits, '-', '_' or '.'"));
        }
        if self.socketmap && self.socket.as_os_str().is_empty() {
            return Err(Invalid::value("senders.socket", "must not be empty"));
        }
        if self.dns_timeout.is_zero() {
            return Err(Invalid::value("senders.dns_timeout", "must be more than 0"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn defaults_and_overrides() {
        let c = Config::parse("").unwrap();
        assert!(c.senders.enforce && c.senders.check_header_from && !c.senders.socketmap);
        assert_eq!(c.senders.map_name, "senders");
        let c = Config::parse("[senders]\nsocketmap = true\nresolver = \"127.0.0.1:5353\"\ndns_timeout = \"2s\"\n")
            .unwrap();
        assert_eq!(c.senders.resolver, Some("127.0.0.1:5353".parse().unwrap()));
        assert!(c.senders.socketmap);
    }

    #[test]
    fn bad_values_name_the_key() {
        let e = Config::parse("[senders]\nmap_name = \"a b\"\n").unwrap_err();
        assert!(e.to_string().starts_with("senders.map_name:"), "{e}");
        let e = Config::parse("[senders]\nresolver = \"nowhere\"\n").unwrap_err();
        assert!(e.to_string().contains("resolver"), "{e}");
    }
}
