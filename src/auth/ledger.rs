//! Which secret each recent login used, so that the policy server can refuse a session whose
//! secret was changed or removed after its AUTH. The SASL server records every grant; the
//! policy server finds it by the (`sasl_username`, `client_address`) pair Postfix sends.
//!
//! It lives in memory only: after a restart, sessions logged in before it are unknown, and the
//! policy server falls back to checking the account (see `policy::rules`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::Grant;
use crate::restriction::canonical_ip;

/// Keep a record at least as long as a session may last, with a margin.
const DEFAULT_KEEP: Duration = Duration::from_secs(3600);
const MAX_RECORDS: usize = 200_000;

type LoginKey = (String, Option<IpAddr>);

pub struct LoginLedger {
    keep: Duration,
    records: Mutex<HashMap<LoginKey, (Grant, Instant)>>,
}

impl Default for LoginLedger {
    fn default() -> Self {
        Self::new(DEFAULT_KEEP)
    }
}

impl LoginLedger {
    pub fn new(keep: Duration) -> Self {
        Self { keep, records: Mutex::new(HashMap::new()) }
    }

    fn key(username: &str, ip: Option<IpAddr>) -> LoginKey {
        (username.trim().to_lowercase(), ip.map(canonical_ip))
    }

    /// Records a successful login; a later login of the same user from the same address wins.
    pub fn record(&self, username: &str, ip: Option<IpAddr>, grant: Grant, now: Instant) {
        let mut records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        if records.len() >= MAX_RECORDS {
            let keep = self.keep;
            records.retain(|_, (_, at)| now.duration_since(*at) < keep);
        }
        records.insert(Self::key(username, ip), (grant, now));
    }

    /// The grant of the latest login of `username` from `ip`, if recent enough.
    pub fn lookup(&self, username: &str, ip: Option<IpAddr>, now: Instant) -> Option<Grant> {
        let records = self.records.lock().unwrap_or_else(|p| p.into_inner());
        records
            .get(&Self::key(username, ip))
            .filter(|(_, at)| now.duration_since(*at) < self.keep)
            .map(|(grant, _)| grant.clone())
    }

    pub fn len(&self) -> usize {
        self.records.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
