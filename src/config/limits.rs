//! `[limits]`: per-client-IP concurrency and time limits, shared by every front end.

use super::Invalid;
use std::time::Duration;

use ipnet::IpNet;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct LimitsConfig {
    pub max_connections_per_ip: u32,
    #[serde(with = "super::duration")]
    pub command_timeout: Duration,
    #[serde(with = "super::duration")]
    pub session_timeout: Duration,
    /// Per-network exceptions to `max_connections_per_ip`; the most specific network wins.
    #[serde(rename = "override")]
    pub overrides: Vec<LimitOverride>,
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
            command_timeout: Duration::from_secs(120),
            session_timeout: Duration::from_secs(600),
            overrides: Vec::new(),
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
        Ok(())
    }
}
