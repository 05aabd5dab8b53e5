//! The dummy hash an unknown user is verified against, so that a login's time does not tell
//! whether its username exists.
//!
//! It must cost what the stored hashes it stands in for cost. After the operator raises the
//! argon2 parameters, stored hashes keep their old ones until their owner logs in (and is
//! rehashed), so a dummy at the new cost would make unknown users the slow ones. The dummy
//! therefore uses the parameters **most common among stored hashes** (a tie goes to the
//! costlier set): the parameters a known username most likely has. While rehash converges
//! this follows the majority, and once every hash is rehashed it is the configured set. With
//! an empty store it is the configured set. The census is taken when the authenticator opens,
//! again whenever another connection commits (`data_version`), and adjusted for each rehash.

use std::collections::HashMap;
use std::sync::Arc;

use crate::secret::{HashError, HashParams, Secret, SecretKind};

/// Parameter sets costlier than this are left out of the census (a corrupt row must not make
/// the daemon allocate without bound); the verifier refuses them too.
const MAX_MEMORY_KIB: u32 = super::verifier::MAX_MEMORY_KIB;

pub(crate) struct DummyHashes {
    configured: HashParams,
    census: HashMap<HashParams, usize>,
    /// One dummy hash per parameter set, made on first use.
    hashes: HashMap<HashParams, Arc<str>>,
}

impl DummyHashes {
    pub fn new<'a>(configured: HashParams, stored: impl IntoIterator<Item = &'a str>) -> Self {
        let mut me = Self { configured, census: HashMap::new(), hashes: HashMap::new() };
        me.recount(stored);
        me
    }

    /// Takes the census again from every stored hash.
    pub fn recount<'a>(&mut self, stored: impl IntoIterator<Item = &'a str>) {
        self.census.clear();
        for params in stored.into_iter().filter_map(HashParams::of_phc) {
            if params.memory_kib <= MAX_MEMORY_KIB && params.validate().is_ok() {
                *self.census.entry(params).or_default() += 1;
            }
        }
    }

    /// One stored hash went from `from` to `to` (a rehash this process wrote).
    pub fn moved(&mut self, from: Option<HashParams>, to: HashParams) {
        if let Some(count) = from.and_then(|f| self.census.get_mut(&f)) {
            *count = count.saturating_sub(1);
        }
        *self.census.entry(to).or_default() += 1;
        self.census.retain(|_, n| *n > 0);
    }

    /// The parameters a dummy verification uses now.
    pub fn params(&self) -> HashParams {
        self.census
            .iter()
            .max_by_key(|(p, n)| (**n, p.memory_kib as u64 * p.iterations as u64, p.parallelism))
            .map_or(self.configured, |(p, _)| *p)
    }

    /// The dummy hash at [`Self::params`]; the first use of a parameter set costs one argon2
    /// hash.
    pub fn hash(&mut self) -> Result<Arc<str>, HashError> {
        let params = self.params();
        if let Some(h) = self.hashes.get(&params) {
            return Ok(h.clone());
        }
        let dummy = Secret::generate(SecretKind::SmtpPassword).map_err(|e| HashError::Hash(e.to_string()))?;
        let hash: Arc<str> = params.hash(&dummy)?.into();
        self.hashes.insert(params, hash.clone());
        Ok(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOW: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };
    const HIGH: HashParams = HashParams { memory_kib: 128, iterations: 2, parallelism: 1 };

    fn hash(params: HashParams) -> String {
        params.hash(&Secret::from_presented("x")).unwrap()
    }

    #[test]
    fn dummy_hash_follows_the_parameters_of_stored_hashes() {
        let stored = [hash(LOW), hash(LOW), hash(HIGH)];
        let mut dummies = DummyHashes::new(HIGH, stored.iter().map(String::as_str));
        assert_eq!(dummies.params(), LOW, "most stored hashes still have the old parameters");
        assert_eq!(HashParams::of_phc(&dummies.hash().unwrap()), Some(LOW));

        dummies.moved(Some(LOW), HIGH);
        dummies.moved(Some(LOW), HIGH);
        assert_eq!(dummies.params(), HIGH, "rehash converged");
        assert_eq!(HashParams::of_phc(&dummies.hash().unwrap()), Some(HIGH));
    }

    #[test]
    fn empty_store_and_ties_use_the_costlier_parameters() {
        assert_eq!(DummyHashes::new(HIGH, []).params(), HIGH);
        let stored = [hash(LOW), hash(HIGH)];
        assert_eq!(DummyHashes::new(LOW, stored.iter().map(String::as_str)).params(), HIGH);
        let corrupt = ["not a hash", "$argon2id$v=19$m=4294967295,t=1,p=1$c2FsdHNhbHQ$aGFzaA"];
        assert_eq!(DummyHashes::new(LOW, corrupt).params(), LOW, "unreadable rows are not counted");
    }

    #[test]
    fn imported_hashes_are_not_counted() {
        // Dovecot's ARGON2ID is argon2id too, but at Dovecot's cost, and goes at the first login.
        let imported = [
            "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$w4WqDH3+0EW13y7AudwF7g$4Vd56YNAEqu3K1TTZoT9PqQXNXcED1YbFUnLL2ZZ1WQ",
            "{BLF-CRYPT}$2y$05$r6Rt3bDKSM0lDhH9JB7wQeu4G.vQecrsLIh2rfj17IMe4mgwcHMSG",
            "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=",
        ];
        assert_eq!(DummyHashes::new(LOW, imported).params(), LOW);
    }
}
