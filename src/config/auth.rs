//! `[auth]`: hashing cost, the cache of successful logins and failure throttling.

use super::Invalid;
use std::time::Duration;

use serde::Deserialize;

use crate::secret::HashParams;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// How long a successful login stays cached (the cache is also dropped on any store change).
    #[serde(with = "super::duration")]
    pub cache_ttl: Duration,
    /// Upper bound on cached logins.
    pub cache_size: usize,
    /// Delay of the first failure from an IP; later failures wait longer (see `max_failure_delay`).
    #[serde(with = "super::duration")]
    pub failure_delay: Duration,
    /// Ceiling of the growing delay. Stays under Postfix's 10 s auth read time-out.
    #[serde(with = "super::duration")]
    pub max_failure_delay: Duration,
    pub argon2_memory_kib: u32,
    pub argon2_iterations: u32,
    pub argon2_parallelism: u32,
    /// Concurrent argon2 verifications (memory = this × argon2_memory_kib). 0 = CPU count.
    pub verify_threads: usize,
}

impl Default for AuthConfig {
    fn default() -> Self {
        let p = HashParams::default();
        Self {
            cache_ttl: Duration::from_secs(3600),
            cache_size: 100_000,
            failure_delay: Duration::from_secs(2),
            max_failure_delay: Duration::from_secs(8),
            argon2_memory_kib: p.memory_kib,
            argon2_iterations: p.iterations,
            argon2_parallelism: p.parallelism,
            verify_threads: 0,
        }
    }
}

impl AuthConfig {
    pub fn hash_params(&self) -> HashParams {
        HashParams {
            memory_kib: self.argon2_memory_kib,
            iterations: self.argon2_iterations,
            parallelism: self.argon2_parallelism,
        }
    }

    pub fn verify_threads(&self) -> usize {
        if self.verify_threads > 0 {
            self.verify_threads
        } else {
            std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2)
        }
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        self.hash_params().validate().map_err(|e| {
            Invalid::value("auth.argon2_memory_kib/argon2_iterations/argon2_parallelism", e.to_string())
        })?;
        if self.max_failure_delay >= Duration::from_secs(10) {
            return Err(Invalid::value("auth.max_failure_delay", "must stay under 10s, Postfix's auth read time-out"));
        }
        if self.failure_delay > self.max_failure_delay {
            return Err(Invalid::value("auth.failure_delay", "must not exceed auth.max_failure_delay"));
        }
        Ok(())
    }
}
