//! `[daemon]`: process-level settings of `relaykey serve`.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// How long SIGTERM waits for in-flight requests and sessions before exiting anyway.
    #[serde(with = "super::duration")]
    pub shutdown_grace: Duration,
    /// How often `STATUS=` lines with live counts are sent to systemd.
    #[serde(with = "super::duration")]
    pub status_interval: Duration,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self { shutdown_grace: Duration::from_secs(30), status_interval: Duration::from_secs(10) }
    }
}
