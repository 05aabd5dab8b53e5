//! `[relay]`: the native SMTP relay for hosts without Postfix: listeners, TLS, who may relay,
//! per-message limits, the spool, and how and how long the queue delivers.

use super::Invalid;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub enabled: bool,
    /// Our name in the greeting, EHLO, `Received:` headers and DSNs.
    pub hostname: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub spool: PathBuf,
    pub max_message_size: u64,
    /// Recipients accepted per message; more get `452 4.5.3` (RFC 5321 §4.5.3.1.8: at least 100).
    pub max_recipients: usize,
    /// Error replies per session before it is closed with `421 4.7.0`.
    pub max_errors: u32,
    /// Clients that may relay without AUTH.
    #[serde(deserialize_with = "deserialize_nets")]
    pub trusted_networks: Vec<IpNet>,
    /// `host:port` of the smarthost; absent means delivery by MX.
    pub smarthost: Option<String>,
    pub smarthost_tls: TlsMode,
    /// Check the smarthost's certificate against the system roots and its name.
    pub smarthost_tls_verify: bool,
    /// AUTH PLAIN to the smarthost with this user and the password in `smarthost_password_file`.
    pub smarthost_username: Option<String>,
    pub smarthost_password_file: Option<PathBuf>,
    /// Port of MX hosts (25; tests point it elsewhere).
    pub mx_port: u16,
    /// Deliver by MX to loopback, link-local and private addresses (address literals, MX and
    /// A/AAAA records). Off by default, so that a tenant cannot make the relay reach services
    /// only the host can; the smarthost, chosen by the operator, is always allowed.
    pub allow_private_destinations: bool,
    /// DNS servers for MX lookups as `ip:port`; empty means /etc/resolv.conf.
    pub nameservers: Vec<SocketAddr>,
    /// The public addresses mail leaves this host from, for the SPF record suggested to sender
    /// domains (`GET /v1/senders/{domain}/dns`); empty, the suggestion is `a:<hostname>`.
    pub spf_addresses: Vec<IpAddr>,
    /// Give up on a message (and bounce it) after this long in the queue.
    #[serde(with = "super::duration")]
    pub max_queue_age: Duration,
    /// First retry delay; each later one doubles, up to `max_retry_interval`.
    #[serde(with = "super::duration")]
    pub min_retry_interval: Duration,
    #[serde(with = "super::duration")]
    pub max_retry_interval: Duration,
    /// How often the queue directory is rescanned (messages retried by the CLI, missed wakeups).
    #[serde(with = "super::duration")]
    pub queue_scan_interval: Duration,
    /// Outbound SMTP read/write time-out per command.
    #[serde(with = "super::duration")]
    pub delivery_timeout: Duration,
    /// Delivery attempts running at once, in all.
    pub max_deliveries: usize,
    /// Delivery attempts running at once to one destination (smarthost or domain).
    pub max_deliveries_per_destination: usize,
    pub listen: Vec<ListenConfig>,
}

/// How a listener or the smarthost connection uses TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TlsMode {
    /// Plain text, then STARTTLS (RFC 3207); AUTH only after it.
    Starttls,
    /// TLS from the first byte (RFC 8314, port 465).
    Implicit,
    None,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub address: SocketAddr,
    #[serde(default = "default_tls")]
    pub tls: TlsMode,
}

fn default_tls() -> TlsMode {
    TlsMode::Starttls
}

fn deserialize_nets<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Vec<IpNet>, D::Error> {
    let items = Vec::<String>::deserialize(d)?;
    items
        .iter()
        .map(|s| {
            let s = s.trim();
            let net = if s.contains('/') {
                s.parse::<IpNet>().ok()
            } else {
                s.parse::<std::net::IpAddr>().ok().map(IpNet::from)
            };
            net.map(|n| n.trunc()).ok_or_else(|| serde::de::Error::custom(format!("invalid network {s:?}")))
        })
        .collect()
}

impl Default for RelayConfig {
    fn default() -> Self {
        let listen = |port: u16, tls| ListenConfig { address: SocketAddr::from(([0, 0, 0, 0], port)), tls };
        Self {
            enabled: false,
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            spool: PathBuf::from("/var/spool/relaykey"),
            max_message_size: 26_214_400,
            max_recipients: 100,
            max_errors: 10,
            trusted_networks: vec!["127.0.0.0/8".parse().expect("literal"), "::1/128".parse().expect("literal")],
            smarthost: None,
            smarthost_tls: TlsMode::Starttls,
            smarthost_tls_verify: true,
            smarthost_username: None,
            smarthost_password_file: None,
            mx_port: 25,
            allow_private_destinations: false,
            nameservers: Vec::new(),
            spf_addresses: Vec::new(),
            max_queue_age: Duration::from_secs(5 * 24 * 3600),
            min_retry_interval: Duration::from_secs(60),
            max_retry_interval: Duration::from_secs(3600),
            queue_scan_interval: Duration::from_secs(30),
            delivery_timeout: Duration::from_secs(300),
            max_deliveries: 50,
            max_deliveries_per_destination: 10,
            listen: vec![
                listen(25, TlsMode::Starttls),
                listen(2525, TlsMode::Starttls),
                listen(587, TlsMode::Starttls),
                listen(465, TlsMode::Implicit),
            ],
        }
    }
}

impl RelayConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if !self.enabled {
            return Ok(());
        }
        if self.hostname.trim().is_empty() || self.hostname.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(Invalid::value("relay.hostname", format!("invalid host name {:?}", self.hostname)));
        }
        let needs_tls = self.listen.iter().any(|l| l.tls != TlsMode::None);
        if needs_tls && (self.tls_cert.is_none() || self.tls_key.is_none()) {
            return Err(Invalid::value(
                "relay.tls_cert",
                "a listener uses TLS, so relay.tls_cert and relay.tls_key are required",
            ));
        }
        if let Some(host) = &self.smarthost {
            smarthost_parts(host)
                .ok_or_else(|| Invalid::value("relay.smarthost", format!("expected host:port, got {host:?}")))?;
        }
        if self.smarthost_username.is_some() != self.smarthost_password_file.is_some() {
            return Err(Invalid::value(
                "relay.smarthost_username",
                "set both smarthost_username and smarthost_password_file",
            ));
        }
        for (key, value) in [
            ("max_message_size", self.max_message_size as usize),
            ("max_recipients", self.max_recipients),
            ("max_errors", self.max_errors as usize),
            ("max_deliveries", self.max_deliveries),
            ("max_deliveries_per_destination", self.max_deliveries_per_destination),
        ] {
            if value == 0 {
                return Err(Invalid::value(format!("relay.{key}"), "must be greater than zero"));
            }
        }
        if self.min_retry_interval.is_zero() || self.max_retry_interval < self.min_retry_interval {
            return Err(Invalid::value("relay.max_retry_interval", "must be at least min_retry_interval (> 0)"));
        }
        if self.queue_scan_interval.is_zero() || self.delivery_timeout.is_zero() {
            return Err(Invalid::value("relay.queue_scan_interval", "durations must be greater than zero"));
        }
        Ok(())
    }

    /// Is `ip` inside `trusted_networks`?
    pub fn is_trusted(&self, ip: std::net::IpAddr) -> bool {
        let ip = crate::restriction::canonical_ip(ip);
        self.trusted_networks.iter().any(|n| n.contains(&ip))
    }
}

/// Splits `host:port` (`[v6]:port` too).
pub fn smarthost_parts(s: &str) -> Option<(String, u16)> {
    let (host, port) = s.trim().rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = port.parse().ok()?;
    (!host.is_empty()).then(|| (host.to_string(), port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn listeners_and_modes_parse() {
        let c = Config::parse(
            "[relay]\nenabled = true\ntls_cert = \"/c\"\ntls_key = \"/k\"\nmax_queue_age = \"1d\"\n\
             [[relay.listen]]\naddress = \"127.0.0.1:2525\"\n\
             [[relay.listen]]\naddress = \"[::1]:465\"\ntls = \"implicit\"\n",
        )
        .unwrap();
        assert_eq!(c.relay.listen.len(), 2);
        assert_eq!(c.relay.listen[0].tls, TlsMode::Starttls);
        assert_eq!(c.relay.listen[1].tls, TlsMode::Implicit);
        assert_eq!(c.relay.max_queue_age, Duration::from_secs(86400));
        assert!(c.relay.is_trusted("127.0.0.9".parse().unwrap()));
        assert!(!c.relay.is_trusted("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, key) in [
            ("[relay]\nenabled = true\n", "tls_cert"),
            ("[relay]\ntrusted_networks = [\"10.0.0.0/40\"]", "trusted_networks"),
            ("[[relay.listen]]\naddress = \"nowhere\"", "address"),
            ("[[relay.listen]]\naddress = \"127.0.0.1:25\"\ntls = \"maybe\"", "tls"),
            ("[relay]\nenabled = true\nsmarthost = \"mx\"\nlisten = []", "smarthost"),
            ("[relay]\nenabled = true\nmax_recipients = 0\nlisten = []", "max_recipients"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn smarthost_parts_split_v6() {
        assert_eq!(smarthost_parts("[::1]:2525"), Some(("::1".into(), 2525)));
        assert_eq!(smarthost_parts("mail.example:587"), Some(("mail.example".into(), 587)));
        assert_eq!(smarthost_parts("mail.example"), None);
    }
}
