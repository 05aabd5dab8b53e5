//! Failed-login throttling per client network: the first failure is answered after
//! `failure_delay`, each further one waits twice as long, up to `max_failure_delay` (kept under
//! Postfix's 10 s auth read time-out so that a throttled client still gets its 535, not a 454).
//! A success clears the record; records expire after a quiet period.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::limits::client_group;

/// After this long without a failure, an address starts afresh.
const FORGET_AFTER: Duration = Duration::from_secs(300);
/// Bound on tracked addresses; beyond it expired records are swept, then the oldest half.
const MAX_TRACKED: usize = 100_000;

/// The bucket a client falls in: its IPv4 address, or its IPv6 address cut to
/// `[limits] ipv6_prefix` bits (64 by default: one host commonly owns a whole /64). Requests
/// without an address share one bucket, as in Dovecot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientBucket {
    Ip(IpAddr),
    Unknown,
}

impl ClientBucket {
    /// The bucket with the default /64 for IPv6.
    pub fn of(ip: Option<IpAddr>) -> Self {
        Self::within(ip, 64)
    }

    pub fn within(ip: Option<IpAddr>, ipv6_prefix: u8) -> Self {
        ip.map_or(Self::Unknown, |ip| Self::Ip(client_group(ip, ipv6_prefix)))
    }
}

pub struct FailureThrottle {
    base: Duration,
    max: Duration,
    ipv6_prefix: u8,
    records: HashMap<ClientBucket, (u32, Instant)>,
}

impl FailureThrottle {
    pub fn new(base: Duration, max: Duration) -> Self {
        Self { base, max, ipv6_prefix: 64, records: HashMap::new() }
    }

    /// Counts IPv6 clients per prefix of `bits` (`[limits] ipv6_prefix`).
    pub fn with_ipv6_prefix(mut self, bits: u8) -> Self {
        self.ipv6_prefix = bits;
        self
    }

    fn bucket(&self, ip: Option<IpAddr>) -> ClientBucket {
        ClientBucket::within(ip, self.ipv6_prefix)
    }

    /// Records a failure and returns how long to hold back the reply to it.
    pub fn on_failure(&mut self, ip: Option<IpAddr>, now: Instant) -> Duration {
        if self.records.len() >= MAX_TRACKED {
            self.sweep(now);
        }
        let bucket = self.bucket(ip);
        let entry = self.records.entry(bucket).or_insert((0, now));
        if now.duration_since(entry.1) > FORGET_AFTER {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let factor = 1u32 << (entry.0 - 1).min(16);
        self.base.saturating_mul(factor).min(self.max)
    }

    pub fn on_success(&mut self, ip: Option<IpAddr>) {
        self.records.remove(&self.bucket(ip));
    }

    /// Failures recorded for this client's bucket that have not expired.
    pub fn failures(&self, ip: Option<IpAddr>, now: Instant) -> u32 {
        match self.records.get(&self.bucket(ip)) {
            Some((n, at)) if now.duration_since(*at) <= FORGET_AFTER => *n,
            _ => 0,
        }
    }

    fn sweep(&mut self, now: Instant) {
        self.records.retain(|_, (_, at)| now.duration_since(*at) <= FORGET_AFTER);
        if self.records.len() >= MAX_TRACKED {
            let mut ages: Vec<Instant> = self.records.values().map(|(_, at)| *at).collect();
            ages.sort();
            let cutoff = ages[ages.len() / 2];
            self.records.retain(|_, (_, at)| *at > cutoff);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn delay_doubles_up_to_the_ceiling_and_success_resets() {
        let mut t = FailureThrottle::new(Duration::from_secs(2), Duration::from_secs(8));
        let now = Instant::now();
        let delays: Vec<u64> = (0..5).map(|_| t.on_failure(ip("192.0.2.1"), now).as_secs()).collect();
        assert_eq!(delays, [2, 4, 8, 8, 8]);
        assert_eq!(t.on_failure(ip("192.0.2.2"), now).as_secs(), 2, "other addresses are not affected");
        t.on_success(ip("192.0.2.1"));
        assert_eq!(t.on_failure(ip("192.0.2.1"), now).as_secs(), 2);
    }

    #[test]
    fn ipv6_shares_a_64_and_mapped_ipv4_is_ipv4() {
        assert_eq!(ClientBucket::of(ip("2001:db8::1")), ClientBucket::of(ip("2001:db8::ffff")));
        assert_ne!(ClientBucket::of(ip("2001:db8::1")), ClientBucket::of(ip("2001:db8:0:1::1")));
        assert_eq!(ClientBucket::of(ip("::ffff:192.0.2.1")), ClientBucket::of(ip("192.0.2.1")));
    }

    #[test]
    fn the_ipv6_prefix_is_configurable() {
        let now = Instant::now();
        let mut per_64 = FailureThrottle::new(Duration::from_secs(1), Duration::from_secs(8));
        per_64.on_failure(ip("2001:db8::1"), now);
        assert_eq!(per_64.on_failure(ip("2001:db8::2"), now).as_secs(), 2, "one /64, one record");
        let mut per_address =
            FailureThrottle::new(Duration::from_secs(1), Duration::from_secs(8)).with_ipv6_prefix(128);
        per_address.on_failure(ip("2001:db8::1"), now);
        assert_eq!(per_address.on_failure(ip("2001:db8::2"), now).as_secs(), 1);
        let mut per_48 = FailureThrottle::new(Duration::from_secs(1), Duration::from_secs(8)).with_ipv6_prefix(48);
        per_48.on_failure(ip("2001:db8:0:1::1"), now);
        assert_eq!(per_48.failures(ip("2001:db8:0:2::1"), now), 1);
    }

    #[test]
    fn records_are_forgotten_after_a_quiet_period() {
        let mut t = FailureThrottle::new(Duration::from_secs(1), Duration::from_secs(8));
        let start = Instant::now();
        t.on_failure(ip("192.0.2.1"), start);
        t.on_failure(ip("192.0.2.1"), start);
        let later = start + FORGET_AFTER + Duration::from_secs(1);
        assert_eq!(t.failures(ip("192.0.2.1"), later), 0);
        assert_eq!(t.on_failure(ip("192.0.2.1"), later).as_secs(), 1);
    }
}
