//! Secrets: generate them from the OS CSPRNG, mask them, hash them with argon2id, verify them.
//!
//! A plaintext secret lives only in a [`Secret`], which zeroes its memory on drop and prints
//! as its mask, so it cannot slip into a log line or a `list` output by accident.

use std::fmt;

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};
use zeroize::Zeroizing;

/// API keys: 96 uppercase hex characters (384 bits).
pub const API_KEY_LEN: usize = 96;
/// SMTP passwords: 40 uppercase hex characters (160 bits), a length no API key has, so the
/// length alone tells which kind of secret a login presents.
pub const SMTP_PASSWORD_LEN: usize = 40;
/// How many trailing characters stay visible.
pub const VISIBLE: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretKind {
    ApiKey,
    SmtpPassword,
}

impl SecretKind {
    fn len(self) -> usize {
        match self {
            Self::ApiKey => API_KEY_LEN,
            Self::SmtpPassword => SMTP_PASSWORD_LEN,
        }
    }
}

/// A plaintext secret, as generated or as presented by a client.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// A fresh secret of `kind` from the OS CSPRNG.
    pub fn generate(kind: SecretKind) -> Result<Self, getrandom::Error> {
        let mut bytes = Zeroizing::new(vec![0u8; kind.len() / 2]);
        getrandom::fill(&mut bytes)?;
        Ok(Self(Zeroizing::new(hex::encode_upper(&*bytes))))
    }

    /// Wraps a secret presented by a client (SASL, SMTP AUTH, HTTP, CLI).
    pub fn from_presented(s: impl Into<String>) -> Self {
        Self(Zeroizing::new(s.into()))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The last [`VISIBLE`] characters, kept in the store for display.
    pub fn last5(&self) -> String {
        last_chars(&self.0, VISIBLE)
    }

    /// A short public index for finding an API key presented without a username (HTTP Bearer):
    /// 16 hex characters of SHA-256 of the key. It reveals nothing usable about a 384-bit
    /// random key, and it lets one request cost a single argon2 verification.
    pub fn locator(&self) -> String {
        use sha2::{Digest, Sha256};
        let digest = Sha256::digest(self.0.as_bytes());
        hex::encode(&digest[..8])
    }

    /// Does this look like an API key (so that it is looked up by its last 5 characters)?
    pub fn looks_like_api_key(&self) -> bool {
        self.0.len() == API_KEY_LEN && self.0.bytes().all(|b| matches!(b, b'0'..=b'9' | b'A'..=b'F'))
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({})", mask(&self.last5(), self.0.chars().count()))
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&mask(&self.last5(), self.0.chars().count()))
    }
}

fn last_chars(s: &str, n: usize) -> String {
    let count = s.chars().count();
    s.chars().skip(count.saturating_sub(n)).collect()
}

/// The mask of an imported credential before its first login: its last 5 characters are not
/// known (only its hash was imported), so it shows none.
pub const IMPORTED_MASK: &str = "*****";

/// The masked form shown after creation: every character hidden but the last five.
pub fn mask(last5: &str, total_len: usize) -> String {
    let hidden = total_len.saturating_sub(last5.chars().count());
    let mut out = "*".repeat(hidden);
    out.push_str(last5);
    out
}

/// Argon2id parameters for new hashes. Verification always uses the parameters stored in the
/// PHC string, so raising these later keeps old hashes valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HashParams {
    pub memory_kib: u32,
    pub iterations: u32,
    pub parallelism: u32,
}

impl Default for HashParams {
    fn default() -> Self {
        Self { memory_kib: 19456, iterations: 2, parallelism: 1 }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("invalid argon2 parameters: {0}")]
    Params(String),
    #[error("hashing failed: {0}")]
    Hash(String),
}

impl HashParams {
    fn argon2(&self) -> Result<Argon2<'static>, HashError> {
        let params = Params::new(self.memory_kib, self.iterations, self.parallelism, None)
            .map_err(|e| HashError::Params(e.to_string()))?;
        Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
    }

    /// Checks the parameters without hashing anything.
    pub fn validate(&self) -> Result<(), HashError> {
        self.argon2().map(|_| ())
    }

    /// The parameters a stored PHC string was made with; `None` for anything but a well-formed
    /// argon2id v19 hash (those are never "current", so a login with one is rehashed).
    pub fn of_phc(phc: &str) -> Option<Self> {
        let parsed = PasswordHash::new(phc).ok()?;
        if Algorithm::try_from(parsed.algorithm.as_str()).ok()? != Algorithm::Argon2id
            || parsed.version.is_some_and(|v| v != u32::from(Version::V0x13))
        {
            return None;
        }
        let params = Params::try_from(&parsed).ok()?;
        Some(Self { memory_kib: params.m_cost(), iterations: params.t_cost(), parallelism: params.p_cost() })
    }

    /// Hashes `secret` again with these parameters but the salt of `old_phc`. The salt names
    /// the secret's generation (see [`same_generation`]): a rehash keeps it, a `change` draws a
    /// new one. `old_phc` must be a hash `secret` was just verified against.
    pub fn rehash(&self, secret: &Secret, old_phc: &str) -> Result<String, HashError> {
        let parsed = PasswordHash::new(old_phc).map_err(|e| HashError::Hash(e.to_string()))?;
        let salt = parsed.salt.ok_or_else(|| HashError::Hash("stored hash has no salt".into()))?;
        self.argon2()?
            .hash_password_with_salt(secret.expose().as_bytes(), salt.as_ref())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    }

    /// The argon2id PHC string of `secret` with the given salt: the first login's rehash of an
    /// imported hash, whose salt is derived from it (`legacy_hash::rehash_salt`).
    pub fn hash_with_salt(&self, secret: &Secret, salt: &[u8]) -> Result<String, HashError> {
        self.argon2()?
            .hash_password_with_salt(secret.expose().as_bytes(), salt)
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    }

    /// The argon2id PHC string of `secret`, with a fresh random salt.
    pub fn hash(&self, secret: &Secret) -> Result<String, HashError> {
        let argon = self.argon2()?;
        argon
            .hash_password(secret.expose().as_bytes())
            .map(|h| h.to_string())
            .map_err(|e| HashError::Hash(e.to_string()))
    }
}

/// Do two stored hashes belong to the same secret generation? They do when they share their
/// salt: [`HashParams::rehash`] keeps it, while every new or changed secret gets a fresh random
/// one (16 bytes from the CSPRNG, so two generations never share it by chance).
pub fn same_generation(a: &str, b: &str) -> bool {
    match (PasswordHash::new(a), PasswordHash::new(b)) {
        (Ok(a), Ok(b)) => a.salt.is_some() && a.salt == b.salt,
        _ => a == b,
    }
}

/// Is `salt` the salt of the PHC string `phc`?
pub fn has_salt(phc: &str, salt: &[u8]) -> bool {
    PasswordHash::new(phc).ok().and_then(|p| p.salt).is_some_and(|s| s.as_ref() == salt)
}

/// Verifies `secret` against a stored PHC string, or an imported hash in its own scheme
/// (`legacy_hash`). A malformed stored hash never matches.
pub fn verify(secret: &Secret, phc: &str) -> bool {
    if crate::legacy_hash::is_imported(phc) {
        return verify_with_memory(secret, phc, &mut Vec::new(), u32::MAX);
    }
    match PasswordHash::new(phc) {
        Ok(parsed) => Argon2::default().verify_password(secret.expose().as_bytes(), &parsed).is_ok(),
        Err(_) => false,
    }
}

/// Verifies like [`verify`], but computes in `memory` (grown on demand and kept by the caller)
/// instead of allocating the whole argon2 memory cost on every call: a verifier thread that
/// reuses its buffer neither page-faults 19 MiB per login nor leaves freed blocks in malloc
/// arenas. Refuses hashes whose memory cost exceeds `max_memory_kib` (a corrupt row must not
/// make the daemon allocate gigabytes). An imported hash is verified in its own scheme, on the
/// same thread (bcrypt and SHA-crypt cost like argon2 and must not run on the async threads).
pub fn verify_with_memory(secret: &Secret, phc: &str, memory: &mut Vec<argon2::Block>, max_memory_kib: u32) -> bool {
    if crate::legacy_hash::is_imported(phc) {
        return crate::legacy_hash::LegacyHash::parse_stored(phc, max_memory_kib)
            .is_some_and(|h| h.verify(secret, memory, max_memory_kib));
    }
    let Ok(parsed) = PasswordHash::new(phc) else { return false };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else { return false };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm.as_str()) else { return false };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else { return false };
    let Ok(params) = Params::try_from(&parsed) else { return false };
    if params.m_cost() > max_memory_kib {
        return false;
    }
    let blocks = params.block_count();
    if memory.len() < blocks {
        memory.resize(blocks, argon2::Block::default());
    }
    let mut out = Zeroizing::new(vec![0u8; expected.len()]);
    let Some(work) = memory.get_mut(..blocks) else { return false };
    let argon = Argon2::new(algorithm, version, params);
    if argon.hash_password_into_with_memory(secret.expose().as_bytes(), salt.as_ref(), &mut out, work).is_err() {
        return false;
    }
    subtle::ConstantTimeEq::ct_eq(out.as_slice(), expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_with_memory_agrees_with_verify() {
        let secret = Secret::generate(SecretKind::SmtpPassword).unwrap();
        let phc = CHEAP.hash(&secret).unwrap();
        let mut memory = Vec::new();
        assert!(verify_with_memory(&secret, &phc, &mut memory, 1024));
        assert!(!verify_with_memory(&Secret::from_presented("nope"), &phc, &mut memory, 1024));
        assert!(!verify_with_memory(&secret, "garbage", &mut memory, 1024));
        assert!(!verify_with_memory(&secret, &phc, &mut memory, 32), "memory cost above the ceiling");
        let bigger = HashParams { memory_kib: 128, ..CHEAP }.hash(&secret).unwrap();
        assert!(verify_with_memory(&secret, &bigger, &mut memory, 1024), "the buffer grows");
        assert!(verify_with_memory(&secret, &phc, &mut memory, 1024), "and serves smaller costs");
    }

    const CHEAP: HashParams = HashParams { memory_kib: 64, iterations: 1, parallelism: 1 };

    #[test]
    fn api_keys_are_96_uppercase_hex_and_distinct() {
        let a = Secret::generate(SecretKind::ApiKey).unwrap();
        let b = Secret::generate(SecretKind::ApiKey).unwrap();
        assert_eq!(a.len(), 96);
        assert!(a.looks_like_api_key());
        assert_ne!(a.expose(), b.expose());
    }

    #[test]
    fn smtp_passwords_have_their_own_length_and_at_least_128_bits() {
        let p = Secret::generate(SecretKind::SmtpPassword).unwrap();
        assert_eq!(p.len(), SMTP_PASSWORD_LEN);
        const { assert!(SMTP_PASSWORD_LEN * 4 >= 128) };
        assert!(!p.looks_like_api_key());
        assert!(p.expose().bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_lowercase()));
    }

    #[test]
    fn display_and_debug_show_only_the_mask() {
        let s = Secret::from_presented("ABCDEFGHIJ12345");
        assert_eq!(s.to_string(), "**********12345");
        assert!(!format!("{s:?}").contains("ABCDE"));
        assert_eq!(s.last5(), "12345");
    }

    #[test]
    fn hash_then_verify_and_wrong_secret_fails() {
        let s = Secret::generate(SecretKind::SmtpPassword).unwrap();
        let phc = CHEAP.hash(&s).unwrap();
        assert!(phc.starts_with("$argon2id$v=19$m=64,t=1,p=1$"));
        assert!(!phc.contains(s.expose()));
        assert!(verify(&s, &phc));
        assert!(!verify(&Secret::from_presented("nope"), &phc));
        assert!(!verify(&s, "not a phc string"));
    }

    #[test]
    fn verification_reads_parameters_from_the_phc_string() {
        let s = Secret::from_presented("pw");
        let phc = HashParams { memory_kib: 128, iterations: 2, parallelism: 1 }.hash(&s).unwrap();
        assert!(verify(&s, &phc));
    }

    #[test]
    fn rehash_keeps_the_generation_and_a_new_hash_does_not() {
        let s = Secret::from_presented("pw");
        let old = CHEAP.hash(&s).unwrap();
        let higher = HashParams { memory_kib: 128, iterations: 2, parallelism: 1 };
        let new = higher.rehash(&s, &old).unwrap();
        assert!(verify(&s, &new));
        assert_eq!((HashParams::of_phc(&old), HashParams::of_phc(&new)), (Some(CHEAP), Some(higher)));
        assert!(same_generation(&old, &new), "a rehash is the same secret generation");
        assert!(!same_generation(&old, &CHEAP.hash(&s).unwrap()), "a new hash is a new generation");
        assert_eq!(HashParams::of_phc("$argon2i$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaGhhc2g"), None);
    }
}
