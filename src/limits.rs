//! Per-client-IP concurrency: a table of live connections per address, handed out as RAII
//! [`Permit`]s, so a slot is freed exactly when the connection's task drops it, however it ends.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::config::LimitsConfig;
use crate::restriction::canonical_ip;

/// The per-IP limit for each address: `max_connections_per_ip`, or the most specific
/// `[[limits.override]]` network containing the address.
#[derive(Debug, Clone)]
pub struct LimitTable {
    default: u32,
    overrides: Vec<(ipnet::IpNet, u32)>,
}

impl LimitTable {
    pub fn new(config: &LimitsConfig) -> Self {
        let mut overrides: Vec<_> = config.overrides.iter().map(|o| (o.network, o.max_connections_per_ip)).collect();
        overrides.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { default: config.max_connections_per_ip, overrides }
    }

    pub fn limit_for(&self, ip: IpAddr) -> u32 {
        let ip = canonical_ip(ip);
        self.overrides.iter().find(|(net, _)| net.contains(&ip)).map_or(self.default, |(_, n)| *n)
    }
}

/// Live connection counts per client address.
#[derive(Clone)]
pub struct ConnectionLimiter {
    table: Arc<Mutex<LimitTable>>,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

/// Proof of one connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    ip: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections from {ip} (limit {limit})")]
pub struct LimitExceeded {
    pub ip: IpAddr,
    pub limit: u32,
}

impl ConnectionLimiter {
    pub fn new(config: &LimitsConfig) -> Self {
        Self { table: Arc::new(Mutex::new(LimitTable::new(config))), counts: Arc::default() }
    }

    /// Applies a reloaded config; live connections keep their permits.
    pub fn reconfigure(&self, config: &LimitsConfig) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = LimitTable::new(config);
    }

    pub fn try_acquire(&self, ip: IpAddr) -> Result<Permit, LimitExceeded> {
        let ip = canonical_ip(ip);
        let limit = self.table.lock().unwrap_or_else(|p| p.into_inner()).limit_for(ip);
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.entry(ip).or_insert(0);
        if *count >= limit {
            if *count == 0 {
                counts.remove(&ip);
            }
            return Err(LimitExceeded { ip, limit });
        }
        *count += 1;
        Ok(Permit { ip, counts: self.counts.clone() })
    }

    pub fn count(&self, ip: IpAddr) -> u32 {
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(&canonical_ip(ip)).copied().unwrap_or(0)
    }

    /// All live connections.
    pub fn total(&self) -> u32 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::LimitOverride;

    fn config(default: u32, overrides: &[(&str, u32)]) -> LimitsConfig {
        LimitsConfig {
            max_connections_per_ip: default,
            overrides: overrides
                .iter()
                .map(|(n, m)| LimitOverride { network: n.parse().unwrap(), max_connections_per_ip: *m })
                .collect(),
            ..LimitsConfig::default()
        }
    }

    #[test]
    fn the_21st_is_refused_and_a_dropped_permit_frees_its_slot() {
        let limiter = ConnectionLimiter::new(&config(20, &[]));
        let ip: IpAddr = "127.0.0.2".parse().unwrap();
        let mut held: Vec<Permit> = (0..20).map(|_| limiter.try_acquire(ip).unwrap()).collect();
        assert_eq!(limiter.try_acquire(ip).unwrap_err().limit, 20);
        assert!(limiter.try_acquire("127.0.0.3".parse().unwrap()).is_ok(), "other addresses unaffected");
        held.pop();
        assert!(limiter.try_acquire(ip).is_ok());
        drop(held);
        assert_eq!(limiter.count(ip), 0);
    }

    #[test]
    fn most_specific_override_wins_and_mapped_addresses_count_as_ipv4() {
        let table = LimitTable::new(&config(20, &[("10.0.0.0/8", 100), ("10.1.0.0/16", 2)]));
        assert_eq!(table.limit_for("10.1.2.3".parse().unwrap()), 2);
        assert_eq!(table.limit_for("10.2.0.1".parse().unwrap()), 100);
        assert_eq!(table.limit_for("::ffff:10.1.0.1".parse().unwrap()), 2);
        assert_eq!(table.limit_for("192.0.2.1".parse().unwrap()), 20);
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let limiter = ConnectionLimiter::new(&config(0, &[]));
        assert!(limiter.try_acquire("192.0.2.1".parse().unwrap()).is_err());
        assert_eq!(limiter.total(), 0);
    }
}
