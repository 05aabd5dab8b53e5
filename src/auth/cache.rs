//! The cache of successful logins, so that a busy client does not pay argon2 on every AUTH.
//!
//! Keys are HMAC-SHA-256 of (username, secret) under a key drawn at start, so the map never
//! holds a secret and a memory dump gives nothing to test guesses against offline. The whole
//! cache is dropped whenever the store changes; `generation` lets a verification that started
//! before such a drop refuse to insert a result that may already be stale.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

use super::decision::Grant;
use crate::secret::Secret;

pub type CacheKey = [u8; 32];

pub(crate) struct LoginCache {
    hmac_key: [u8; 32],
    ttl: Duration,
    capacity: usize,
    entries: HashMap<CacheKey, (Grant, Instant)>,
    generation: u64,
}

impl LoginCache {
    pub fn new(ttl: Duration, capacity: usize) -> Self {
        let mut hmac_key = [0u8; 32];
        // Without randomness the cache keys would be guessable; fall back to no caching.
        let usable = getrandom::fill(&mut hmac_key).is_ok();
        Self { hmac_key, ttl, capacity: if usable { capacity } else { 0 }, entries: HashMap::new(), generation: 0 }
    }

    /// Separates the login kinds that share the cache (SMTP by username, HTTP by key alone).
    pub fn key(&self, domain: &str, username: &str, secret: &Secret) -> CacheKey {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.hmac_key).expect("HMAC takes any key length");
        for part in [domain.as_bytes(), username.as_bytes(), secret.expose().as_bytes()] {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }

    pub fn get(&mut self, key: &CacheKey, now: Instant) -> Option<Grant> {
        match self.entries.get(key) {
            Some((grant, at)) if now.duration_since(*at) < self.ttl => Some(grant.clone()),
            Some(_) => {
                self.entries.remove(key);
                None
            }
            None => None,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Inserts unless the cache was cleared since `generation` was read.
    pub fn insert(&mut self, key: CacheKey, grant: Grant, generation: u64, now: Instant) {
        if generation != self.generation || self.capacity == 0 {
            return;
        }
        if self.entries.len() >= self.capacity {
            let ttl = self.ttl;
            self.entries.retain(|_, (_, at)| now.duration_since(*at) < ttl);
            if self.entries.len() >= self.capacity {
                self.entries.clear();
            }
        }
        self.entries.insert(key, (grant, now));
    }

    pub fn clear(&mut self) {
        self.entries.clear();
        self.generation += 1;
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}
