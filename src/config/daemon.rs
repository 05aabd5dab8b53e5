//! `[daemon]`: process-level settings of `relaykey serve`.

use super::Invalid;
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
    /// User to run as when started as root: sockets are bound first, then the daemon switches
    /// to this user for good. Unset keeps the identity it was started with.
    pub user: Option<String>,
    /// Primary group when switching to `user`; unset uses the user's own primary group.
    pub group: Option<String>,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        Self {
            shutdown_grace: Duration::from_secs(30),
            status_interval: Duration::from_secs(10),
            user: None,
            group: None,
        }
    }
}

impl DaemonConfig {
    pub fn validate(&self) -> Result<(), Invalid> {
        for (key, value) in [("daemon.user", &self.user), ("daemon.group", &self.group)] {
            if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
                return Err(Invalid::value(key, "must not be empty"));
            }
        }
        if self.group.is_some() && self.user.is_none() {
            return Err(Invalid::value(
                "daemon.group",
                "needs daemon.user (the group is only used when switching user)",
            ));
        }
        Ok(())
    }
}
