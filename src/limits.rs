//! Per-client concurrency and the process-wide connection cap: tables of live connections per
//! client (an IPv4 address, or an IPv6 prefix) and in all, handed out as RAII [`Permit`]s, so a
//! slot is freed exactly when the connection's task drops it, however it ends.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

use tracing::warn;

use crate::config::LimitsConfig;
use crate::restriction::canonical_ip;

/// The group a client is counted in: its IPv4 address, or its IPv6 address cut to
/// `ipv6_prefix` bits (one host commonly owns a whole /64; Postfix 3.8's anvil groups the
/// same way). 128 counts every IPv6 address on its own.
pub fn client_group(ip: IpAddr, ipv6_prefix: u8) -> IpAddr {
    match canonical_ip(ip) {
        IpAddr::V6(v6) => {
            let bits = u32::from(ipv6_prefix.min(128));
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            IpAddr::V6(Ipv6Addr::from(u128::from(v6) & mask))
        }
        v4 => v4,
    }
}

/// File descriptors kept back from `max_connections` when it is derived from the process's
/// limit: the store, spool files, outgoing deliveries and the Unix sockets need theirs.
fn fd_reserve(soft_limit: u64) -> u64 {
    (soft_limit / 4).max(64)
}

/// The highest `max_connections` this process can serve: its soft `RLIMIT_NOFILE` less a
/// reserve. `None` when the limit cannot be read or is unlimited.
pub fn connection_budget() -> Option<u32> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct, which `limit` is.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit) } != 0 || limit.rlim_cur == libc::RLIM_INFINITY {
        return None;
    }
    let soft = limit.rlim_cur;
    Some(u32::try_from(soft.saturating_sub(fd_reserve(soft))).unwrap_or(u32::MAX))
}

/// `max_connections` as it applies to this process: the configured value, lowered (with a
/// warning) to what the file limit allows, or that budget when none is configured.
pub fn effective_max_connections(configured: Option<u32>, budget: Option<u32>) -> u32 {
    match (configured, budget) {
        (Some(c), Some(b)) if c > b => {
            warn!(
                configured = c,
                allowed = b,
                "limits.max_connections is above what the open-file limit (RLIMIT_NOFILE) allows; \
                 using the lower value (raise LimitNOFILE= to allow more)"
            );
            b
        }
        (Some(c), _) => c,
        (None, Some(b)) => b,
        (None, None) => u32::MAX,
    }
}

/// The per-client limit for each address: `max_connections_per_ip`, or the most specific
/// `[[limits.override]]` network containing the address.
#[derive(Debug, Clone)]
pub struct LimitTable {
    default: u32,
    overrides: Vec<(ipnet::IpNet, u32)>,
    ipv6_prefix: u8,
}

impl LimitTable {
    pub fn new(config: &LimitsConfig) -> Self {
        let mut overrides: Vec<_> = config.overrides.iter().map(|o| (o.network, o.max_connections_per_ip)).collect();
        overrides.sort_by_key(|(net, _)| std::cmp::Reverse(net.prefix_len()));
        Self { default: config.max_connections_per_ip, overrides, ipv6_prefix: config.ipv6_prefix }
    }

    pub fn limit_for(&self, ip: IpAddr) -> u32 {
        let ip = canonical_ip(ip);
        self.overrides.iter().find(|(net, _)| net.contains(&ip)).map_or(self.default, |(_, n)| *n)
    }

    /// The group `ip` is counted in (see [`client_group`]).
    pub fn group_of(&self, ip: IpAddr) -> IpAddr {
        client_group(ip, self.ipv6_prefix)
    }
}

/// Live connections in all, against `max_connections`; shared by every limiter that counts
/// connections (the relay's listeners and the API's).
#[derive(Debug)]
struct Total {
    max: u32,
    open: u32,
}

/// Live connection counts per client group, and in all.
#[derive(Clone)]
pub struct ConnectionLimiter {
    table: Arc<Mutex<LimitTable>>,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    total: Arc<Mutex<Total>>,
}

/// Proof of one connection slot; dropping it frees the slot.
#[derive(Debug)]
pub struct Permit {
    group: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, u32>>>,
    total: Arc<Mutex<Total>>,
}

/// Which limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LimitScope {
    /// `max_connections_per_ip` (or an override) for the client's address or IPv6 prefix.
    Client,
    /// `max_connections`, all clients together.
    Total,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many connections from {ip} (limit {limit}, {scope:?})")]
pub struct LimitExceeded {
    pub ip: IpAddr,
    pub limit: u32,
    pub scope: LimitScope,
}

impl ConnectionLimiter {
    pub fn new(config: &LimitsConfig) -> Self {
        let max = effective_max_connections(config.max_connections, connection_budget());
        Self {
            table: Arc::new(Mutex::new(LimitTable::new(config))),
            counts: Arc::default(),
            total: Arc::new(Mutex::new(Total { max, open: 0 })),
        }
    }

    /// This limiter's connections also count toward `other`'s total (one cap for all listeners).
    pub fn sharing_total_with(mut self, other: &ConnectionLimiter) -> Self {
        self.total = other.total.clone();
        self
    }

    /// Applies a reloaded config; live connections keep their permits.
    pub fn reconfigure(&self, config: &LimitsConfig) {
        *self.table.lock().unwrap_or_else(|p| p.into_inner()) = LimitTable::new(config);
        let max = effective_max_connections(config.max_connections, connection_budget());
        self.total.lock().unwrap_or_else(|p| p.into_inner()).max = max;
    }

    pub fn try_acquire(&self, ip: IpAddr) -> Result<Permit, LimitExceeded> {
        let ip = canonical_ip(ip);
        let (limit, group) = {
            let table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            (table.limit_for(ip), table.group_of(ip))
        };
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        let count = counts.get(&group).copied().unwrap_or(0);
        if count >= limit {
            return Err(LimitExceeded { ip, limit, scope: LimitScope::Client });
        }
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        if total.open >= total.max {
            return Err(LimitExceeded { ip, limit: total.max, scope: LimitScope::Total });
        }
        total.open += 1;
        *counts.entry(group).or_insert(0) += 1;
        Ok(Permit { group, counts: self.counts.clone(), total: self.total.clone() })
    }

    /// Live connections from `ip`'s group (its IPv6 prefix).
    pub fn count(&self, ip: IpAddr) -> u32 {
        let group = self.table.lock().unwrap_or_else(|p| p.into_inner()).group_of(ip);
        let counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.get(&group).copied().unwrap_or(0)
    }

    /// All live connections of this limiter.
    pub fn total(&self) -> u32 {
        self.counts.lock().unwrap_or_else(|p| p.into_inner()).values().sum()
    }
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = counts.get_mut(&self.group) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.group);
            }
        }
        let mut total = self.total.lock().unwrap_or_else(|p| p.into_inner());
        total.open = total.open.saturating_sub(1);
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

    // Issue 14 item 14: IPv6 clients are counted per prefix.
    #[test]
    fn ipv6_clients_share_their_prefix() {
        assert_eq!(
            client_group("2001:db8::1".parse().unwrap(), 64),
            client_group("2001:db8::ffff:2".parse().unwrap(), 64)
        );
        assert_ne!(
            client_group("2001:db8::1".parse().unwrap(), 64),
            client_group("2001:db8:0:1::1".parse().unwrap(), 64)
        );
        assert_ne!(
            client_group("2001:db8::1".parse().unwrap(), 128),
            client_group("2001:db8::2".parse().unwrap(), 128)
        );
        assert_eq!(client_group("2001:db8::1".parse().unwrap(), 0), client_group("fd00::1".parse().unwrap(), 0));
        assert_eq!(client_group("::ffff:192.0.2.1".parse().unwrap(), 64), "192.0.2.1".parse::<IpAddr>().unwrap());

        let limiter = ConnectionLimiter::new(&config(2, &[]));
        let _a = limiter.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        let _b = limiter.try_acquire("2001:db8::2".parse().unwrap()).unwrap();
        let third = limiter.try_acquire("2001:db8::3".parse().unwrap()).unwrap_err();
        assert_eq!((third.limit, third.scope), (2, LimitScope::Client));
        assert!(limiter.try_acquire("2001:db8:0:1::1".parse().unwrap()).is_ok(), "another /64 has its own count");
        assert_eq!(limiter.count("2001:db8::ffff".parse().unwrap()), 2);

        let per_address = ConnectionLimiter::new(&LimitsConfig { ipv6_prefix: 128, ..config(1, &[]) });
        let _c = per_address.try_acquire("2001:db8::1".parse().unwrap()).unwrap();
        assert!(per_address.try_acquire("2001:db8::2".parse().unwrap()).is_ok());
    }

    // Issue 14 item 14: one cap for all listeners together.
    #[test]
    fn the_total_cap_is_shared_and_freed_by_dropped_permits() {
        let relay = ConnectionLimiter::new(&LimitsConfig { max_connections: Some(2), ..config(20, &[]) });
        let api = ConnectionLimiter::new(&config(20, &[])).sharing_total_with(&relay);
        let a = relay.try_acquire("192.0.2.1".parse().unwrap()).unwrap();
        let _b = api.try_acquire("192.0.2.2".parse().unwrap()).unwrap();
        let refused = relay.try_acquire("192.0.2.3".parse().unwrap()).unwrap_err();
        assert_eq!((refused.limit, refused.scope), (2, LimitScope::Total));
        assert_eq!(api.try_acquire("192.0.2.4".parse().unwrap()).unwrap_err().scope, LimitScope::Total);
        assert_eq!(relay.count("192.0.2.3".parse().unwrap()), 0, "a refused connection is not counted");
        drop(a);
        assert!(api.try_acquire("192.0.2.4".parse().unwrap()).is_ok());
    }

    #[test]
    fn max_connections_stays_below_the_file_limit() {
        assert_eq!(effective_max_connections(Some(100), Some(768)), 100);
        assert_eq!(effective_max_connections(Some(5000), Some(768)), 768);
        assert_eq!(effective_max_connections(None, Some(768)), 768);
        assert_eq!(effective_max_connections(None, None), u32::MAX);
        assert_eq!(1024 - fd_reserve(1024), 768);
        assert_eq!(100 - fd_reserve(100), 36);
        let budget = connection_budget().expect("tests run with a finite RLIMIT_NOFILE");
        assert!(u64::from(budget) < u64::from(u32::MAX));
    }

    #[test]
    fn zero_limit_refuses_everything() {
        let limiter = ConnectionLimiter::new(&config(0, &[]));
        assert!(limiter.try_acquire("192.0.2.1".parse().unwrap()).is_err());
        assert_eq!(limiter.total(), 0);
    }
}
