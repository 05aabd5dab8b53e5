//! `[limits]`: per-client and total concurrency and time limits, and per-account message
//! limits, shared by every front end.

use super::Invalid;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    /// Per client: an IPv4 address, or an IPv6 prefix of `ipv6_prefix` bits.
    pub max_connections_per_ip: u32,
    /// IPv6 clients are counted per prefix of this many bits (per-IP limits and the failed
    /// login throttle); 128 counts each address on its own.
    pub ipv6_prefix: u8,
    /// Connections to all TCP listeners together (relay and API). Unset: derived from the
    /// open-file limit (`RLIMIT_NOFILE` soft limit less a quarter); a larger value is lowered
    /// to that at start, with a warning.
    pub max_connections: Option<u32>,
    #[serde(with = "super::duration")]
    pub command_timeout: Duration,
    #[serde(with = "super::duration")]
    pub session_timeout: Duration,
    /// Per-network exceptions to `max_connections_per_ip`; the most specific network wins.
    #[serde(rename = "override")]
    pub overrides: Vec<LimitOverride>,
    /// Messages per account, on every way out (policy, relay, API); 0 turns a window off.
    /// See [`super::Config::message_quota`] for the older `[policy]` spelling.
    pub messages_per_minute: u32,
    pub messages_per_hour: u32,
    pub messages_per_day: u32,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LimitOverride {
    #[serde(deserialize_with = "deserialize_net")]
    pub network: IpNet,
    pub max_connections_per_ip: u32,
}

fn deserialize_net<'de, D: serde::Deserializer<'de>>(d: D) -> Result<IpNet, D::Error> {
    let s = String::deserialize(d)?;
    let s = s.trim();
    let net =
        if s.contains('/') { s.parse::<IpNet>().ok() } else { s.parse::<std::net::IpAddr>().ok().map(IpNet::from) };
    net.map(|n| n.trunc()).ok_or_else(|| serde::de::Error::custom(format!("invalid network {s:?}")))
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_connections_per_ip: 20,
            ipv6_prefix: 64,
            max_connections: None,
            command_timeout: Duration::from_secs(120),
            session_timeout: Duration::from_secs(600),
            overrides: Vec::new(),
            messages_per_minute: 0,
            messages_per_hour: 0,
            messages_per_day: 0,
        }
    }
}

impl LimitsConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.command_timeout.is_zero() {
            return Err(Invalid::value("limits.command_timeout", "must be greater than zero"));
        }
        if self.session_timeout.is_zero() {
            return Err(Invalid::value("limits.session_timeout", "must be greater than zero"));
        }
        if !(1..=128).contains(&self.ipv6_prefix) {
            return Err(Invalid::value("limits.ipv6_prefix", "must be between 1 and 128 (bits of an IPv6 address)"));
        }
        if self.max_connections == Some(0) {
            return Err(Invalid::value("limits.max_connections", "must be greater than zero"));
        }
        Ok(())
    }
}
