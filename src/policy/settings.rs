//! What the rules need from one config, prepared once when the config is loaded or reloaded
//! rather than on every request: the per-IP limit table, the message rate limits, whether and
//! how long to consult the kernel's TCP table.

use std::sync::Arc;
use std::time::Duration;

use crate::config::{Config, PolicyConfig};
use crate::limits::LimitTable;
use crate::message_limits::Usage;

use super::action::Action;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpCheck {
    Off,
    /// Until `startup_window` after start, sessions begun before this process count too.
    On {
        startup_window: Duration,
    },
}

#[derive(Debug)]
pub struct Settings {
    /// The config these settings were prepared from.
    config: Arc<Config>,
    /// Per-IP session limits; `None` when the session limit is off.
    pub connection_limits: Option<LimitTable>,
    pub tcp: TcpCheck,
    /// Messages per account; all zero when no rate limit is on.
    pub rate_limits: Usage,
}

impl Settings {
    pub fn new(config: Arc<Config>) -> Self {
        let pc = &config.policy;
        let connection_limits = pc.connection_limit.then(|| LimitTable::new(&config.limits));
        let tcp = match pc.tcp_table {
            // Sessions begun before a restart last at most this long.
            true => TcpCheck::On { startup_window: config.limits.session_timeout + config.limits.command_timeout },
            false => TcpCheck::Off,
        };
        let rate_limits = config.message_quota();
        Self { config, connection_limits, tcp, rate_limits }
    }

    /// Whether these settings were prepared from `config` (the same published value).
    pub fn prepared_from(&self, config: &Arc<Config>) -> bool {
        Arc::ptr_eq(&self.config, config)
    }

    pub fn policy(&self) -> &PolicyConfig {
        &self.config.policy
    }

    /// How IPv6 clients are grouped for the per-IP session limit.
    pub fn ipv6_prefix(&self) -> u8 {
        self.config.limits.ipv6_prefix
    }

    pub fn session_timeout(&self) -> Duration {
        self.config.limits.session_timeout
    }

    pub fn fallback(&self) -> &Action {
        &self.config.policy.fallback_action
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prepares_the_limit_table_and_rates_from_the_config() {
        let config = Arc::new(
            Config::parse(
                "[policy]\nmessages_per_hour = 5\ntcp_table = false\n[limits]\nmax_connections_per_ip = 3\n\
                 [[limits.override]]\nnetwork = \"192.0.2.0/24\"\nmax_connections_per_ip = 1\n",
            )
            .unwrap(),
        );
        let s = Settings::new(config.clone());
        let table = s.connection_limits.as_ref().expect("connection limit on by default");
        assert_eq!(
            (table.limit_for("192.0.2.9".parse().unwrap()), table.limit_for("10.0.0.1".parse().unwrap())),
            (1, 3)
        );
        assert_eq!(s.rate_limits, Usage { minute: 0, hour: 5, day: 0 });
        assert_eq!(s.tcp, TcpCheck::Off);
        assert!(s.prepared_from(&config) && !s.prepared_from(&Arc::new((*config).clone())));
        let off = Settings::new(Arc::new(Config::parse("[policy]\nconnection_limit = false\n").unwrap()));
        assert!(off.connection_limits.is_none());
        assert!(matches!(off.tcp, TcpCheck::On { .. }));
    }
}
