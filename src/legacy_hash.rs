//! Password hashes imported from Dovecot, kept in their own scheme until their owner's first
//! login rehashes them to argon2id.
//!
//! # Stored form
//!
//! An imported hash is stored as Dovecot writes it, `{SCHEME}value`, so the scheme travels with
//! the hash and a stored string that starts with `{` is never an argon2 PHC string:
//! - crypt-style schemes (`ARGON2ID`, `ARGON2I`, `BLF-CRYPT`, `SHA512-CRYPT`, `SHA256-CRYPT`,
//!   `MD5-CRYPT`, `DES-CRYPT`): the crypt string itself (`$6$salt$hash`, `$argon2id$...`);
//! - digest schemes (`PLAIN-MD5`, `SHA`, `SSHA`, ...): lowercase hex of the digest followed by
//!   its salt, whatever encoding the passwd-file used.
//!
//! Verification never panics and never computes without bound: bcrypt costs above
//! [`MAX_BCRYPT_COST`], SHA-crypt rounds above [`MAX_SHA_CRYPT_ROUNDS`] and argon2 memory above
//! the caller's ceiling are refused, at import and at login.

use std::fmt;

use sha2::Digest;
use subtle::ConstantTimeEq;

use crate::secret::Secret;

/// bcrypt costs above this are refused (cost 14 is about a second per login here; Dovecot
/// writes 5 by default).
pub const MAX_BCRYPT_COST: u32 = 14;
/// SHA-crypt rounds above this are refused (Dovecot writes the default 5000).
pub const MAX_SHA_CRYPT_ROUNDS: u32 = 1_000_000;

/// A password scheme relaykey can verify, named as Dovecot names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scheme {
    Argon2id,
    Argon2i,
    BlfCrypt,
    Sha512Crypt,
    Sha256Crypt,
    Md5Crypt,
    DesCrypt,
    PlainMd5,
    Smd5,
    Sha1,
    Ssha,
    Sha256,
    Ssha256,
    Sha512,
    Ssha512,
}

/// How an import treats a scheme.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Strength {
    /// A slow, salted hash: kept as it is until the first login.
    Kept,
    /// Fast or unsalted: imported only with `--allow-weak`.
    Weak,
}

/// The digest a digest scheme is built on, and its output length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Hasher {
    Md5,
    Sha1,
    Sha256,
    Sha512,
}

impl Hasher {
    fn len(self) -> usize {
        match self {
            Self::Md5 => 16,
            Self::Sha1 => 20,
            Self::Sha256 => 32,
            Self::Sha512 => 64,
        }
    }

    fn digest(self, parts: &[&[u8]]) -> Vec<u8> {
        fn run<D: Digest>(parts: &[&[u8]]) -> Vec<u8> {
            let mut d = D::new();
            for p in parts {
                d.update(p);
            }
            d.finalize().to_vec()
        }
        match self {
            Self::Md5 => run::<md5::Md5>(parts),
            Self::Sha1 => run::<sha1::Sha1>(parts),
            Self::Sha256 => run::<sha2::Sha256>(parts),
            Self::Sha512 => run::<sha2::Sha512>(parts),
        }
    }
}

/// What the value of a scheme is: a crypt string, or raw bytes (a digest, salted or not).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    Crypt,
    Digest { salted: bool },
}

impl Scheme {
    pub const ALL: [Scheme; 15] = [
        Self::Argon2id,
        Self::Argon2i,
        Self::BlfCrypt,
        Self::Sha512Crypt,
        Self::Sha256Crypt,
        Self::Md5Crypt,
        Self::DesCrypt,
        Self::PlainMd5,
        Self::Smd5,
        Self::Sha1,
        Self::Ssha,
        Self::Sha256,
        Self::Ssha256,
        Self::Sha512,
        Self::Ssha512,
    ];

    /// The name in the stored form (Dovecot's canonical name).
    pub fn name(self) -> &'static str {
        match self {
            Self::Argon2id => "ARGON2ID",
            Self::Argon2i => "ARGON2I",
            Self::BlfCrypt => "BLF-CRYPT",
            Self::Sha512Crypt => "SHA512-CRYPT",
            Self::Sha256Crypt => "SHA256-CRYPT",
            Self::Md5Crypt => "MD5-CRYPT",
            Self::DesCrypt => "DES-CRYPT",
            Self::PlainMd5 => "PLAIN-MD5",
            Self::Smd5 => "SMD5",
            Self::Sha1 => "SHA",
            Self::Ssha => "SSHA",
            Self::Sha256 => "SHA256",
            Self::Ssha256 => "SSHA256",
            Self::Sha512 => "SHA512",
            Self::Ssha512 => "SSHA512",
        }
    }

    /// Dovecot's name (any case, aliases included) → scheme. `CRYPT` is not here: it names
    /// whatever `crypt(3)` understands and is resolved from the value ([`Scheme::of_crypt`]).
    pub fn from_name(name: &str) -> Option<Self> {
        let upper = name.to_ascii_uppercase();
        let alias = match upper.as_str() {
            "MD5" => Some(Self::Md5Crypt),
            "LDAP-MD5" => Some(Self::PlainMd5),
            "SHA1" => Some(Self::Sha1),
            _ => None,
        };
        alias.or_else(|| Self::ALL.into_iter().find(|s| s.name() == upper))
    }

    /// The scheme of a `crypt(3)` string, told by its prefix, as glibc's and libxcrypt's
    /// `crypt` tell it.
    pub fn of_crypt(value: &str) -> Option<Self> {
        let is_des_char = |b: u8| b.is_ascii_alphanumeric() || b == b'.' || b == b'/';
        if ["$2a$", "$2b$", "$2y$"].iter().any(|p| value.starts_with(p)) {
            Some(Self::BlfCrypt)
        } else if value.starts_with("$6$") {
            Some(Self::Sha512Crypt)
        } else if value.starts_with("$5$") {
            Some(Self::Sha256Crypt)
        } else if value.starts_with("$1$") {
            Some(Self::Md5Crypt)
        } else if value.starts_with("$argon2id$") {
            Some(Self::Argon2id)
        } else if value.starts_with("$argon2i$") {
            Some(Self::Argon2i)
        } else if value.len() == 13 && value.bytes().all(is_des_char) {
            Some(Self::DesCrypt)
        } else {
            None
        }
    }

    pub fn strength(self) -> Strength {
        match self {
            Self::Argon2id | Self::Argon2i | Self::BlfCrypt | Self::Sha512Crypt | Self::Sha256Crypt => Strength::Kept,
            _ => Strength::Weak,
        }
    }

    pub fn value_kind(self) -> ValueKind {
        match self.hasher() {
            None => ValueKind::Crypt,
            Some(_) => {
                ValueKind::Digest { salted: matches!(self, Self::Smd5 | Self::Ssha | Self::Ssha256 | Self::Ssha512) }
            }
        }
    }

    fn hasher(self) -> Option<Hasher> {
        match self {
            Self::PlainMd5 | Self::Smd5 => Some(Hasher::Md5),
            Self::Sha1 | Self::Ssha => Some(Hasher::Sha1),
            Self::Sha256 | Self::Ssha256 => Some(Hasher::Sha256),
            Self::Sha512 | Self::Ssha512 => Some(Hasher::Sha512),
            _ => None,
        }
    }

    /// Dovecot's default encoding of a digest scheme's value when no `.HEX`/`.B64` suffix says.
    pub fn default_hex(self) -> bool {
        self == Self::PlainMd5
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a hash cannot be imported (or, stored, can never match).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HashFormatError {
    #[error("{0} hash is malformed")]
    Malformed(Scheme),
    #[error("{scheme} hash is not a {scheme} hash")]
    WrongScheme { scheme: Scheme },
    #[error("bcrypt cost {0} is above the ceiling of {MAX_BCRYPT_COST}")]
    BcryptCost(u32),
    #[error("SHA-crypt rounds {0} are above the ceiling of {MAX_SHA_CRYPT_ROUNDS}")]
    ShaCryptRounds(u32),
    #[error("argon2 memory cost {0} KiB is above the ceiling of {1} KiB")]
    Argon2Memory(u32, u32),
}

/// An imported hash, ready to be stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegacyHash {
    pub scheme: Scheme,
    /// The crypt string, or the digest and salt bytes.
    value: Value,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Value {
    Crypt(String),
    Digest(Vec<u8>),
}

impl LegacyHash {
    /// A crypt-style hash, checked to be well-formed and within the cost ceilings.
    pub fn crypt(scheme: Scheme, value: &str, max_argon2_kib: u32) -> Result<Self, HashFormatError> {
        if scheme.value_kind() != ValueKind::Crypt {
            return Err(HashFormatError::WrongScheme { scheme });
        }
        check_crypt(scheme, value, max_argon2_kib)?;
        Ok(Self { scheme, value: Value::Crypt(value.to_string()) })
    }

    /// A digest scheme's raw bytes (digest, then salt for the salted ones).
    pub fn digest(scheme: Scheme, bytes: Vec<u8>) -> Result<Self, HashFormatError> {
        let (Some(hasher), ValueKind::Digest { salted }) = (scheme.hasher(), scheme.value_kind()) else {
            return Err(HashFormatError::WrongScheme { scheme });
        };
        let fits = if salted { bytes.len() > hasher.len() } else { bytes.len() == hasher.len() };
        if !fits {
            return Err(HashFormatError::Malformed(scheme));
        }
        Ok(Self { scheme, value: Value::Digest(bytes) })
    }

    /// The `{SCHEME}value` string the store keeps.
    pub fn stored(&self) -> String {
        match &self.value {
            Value::Crypt(s) => format!("{{{}}}{s}", self.scheme.name()),
            Value::Digest(b) => format!("{{{}}}{}", self.scheme.name(), hex::encode(b)),
        }
    }

    /// Reads a stored form back; `None` for anything else (argon2 PHC strings among them).
    pub fn parse_stored(stored: &str, max_argon2_kib: u32) -> Option<Self> {
        let rest = stored.strip_prefix('{')?;
        let (name, value) = rest.split_once('}')?;
        let scheme = Scheme::ALL.into_iter().find(|s| s.name() == name)?;
        match scheme.value_kind() {
            ValueKind::Crypt => Self::crypt(scheme, value, max_argon2_kib).ok(),
            ValueKind::Digest { .. } => Self::digest(scheme, hex::decode(value).ok()?).ok(),
        }
    }

    /// Does `secret` match? Constant-time in the compared bytes; argon2 schemes compute in
    /// `memory` like every other argon2 verification.
    pub fn verify(&self, secret: &Secret, memory: &mut Vec<argon2::Block>, max_argon2_kib: u32) -> bool {
        let password = secret.expose().as_bytes();
        match (&self.value, self.scheme) {
            (Value::Crypt(phc), Scheme::Argon2id | Scheme::Argon2i) => {
                crate::secret::verify_with_memory(secret, phc, memory, max_argon2_kib)
            }
            (Value::Crypt(hash), Scheme::BlfCrypt) => bcrypt::verify(password, hash).unwrap_or(false),
            (Value::Crypt(hash), Scheme::Sha512Crypt | Scheme::Sha256Crypt) => {
                use sha_crypt::PasswordVerifier;
                sha_crypt::ShaCrypt::default().verify_password(password, hash.as_str()).is_ok()
            }
            (Value::Crypt(hash), Scheme::Md5Crypt) => pwhash::md5_crypt::verify(password, hash),
            (Value::Crypt(hash), Scheme::DesCrypt) => pwhash::unix_crypt::verify(password, hash),
            (Value::Digest(bytes), scheme) => {
                let Some(hasher) = scheme.hasher() else { return false };
                let Some((expected, salt)) = bytes.split_at_checked(hasher.len()) else { return false };
                hasher.digest(&[password, salt]).ct_eq(expected).into()
            }
            (Value::Crypt(_), _) => false,
        }
    }
}

/// Is `stored` an imported hash (rather than an argon2id PHC string relaykey wrote)?
pub fn is_imported(stored: &str) -> bool {
    stored.starts_with('{')
}

/// The salt the first login's rehash of an imported hash uses: derived from the credential and
/// the imported hash, so that the argon2id hash that replaces it can be recognised as the same
/// secret (see `secret::same_generation`) and a session logged in with the imported hash is not
/// taken for revoked. The imported hash carries its own random salt (for the weak unsalted
/// schemes, the credential id keeps two equal passwords apart).
pub fn rehash_salt(credential_id: i64, stored: &str) -> [u8; 16] {
    let mut d = sha2::Sha256::new();
    d.update(b"relaykey import rehash\0");
    d.update(credential_id.to_be_bytes());
    d.update(stored.as_bytes());
    let digest = d.finalize();
    let mut salt = [0u8; 16];
    salt.copy_from_slice(&digest[..16]);
    salt
}

fn check_crypt(scheme: Scheme, value: &str, max_argon2_kib: u32) -> Result<(), HashFormatError> {
    let malformed = HashFormatError::Malformed(scheme);
    if Scheme::of_crypt(value) != Some(scheme) {
        return Err(HashFormatError::WrongScheme { scheme });
    }
    match scheme {
        Scheme::Argon2id | Scheme::Argon2i => {
            use argon2::password_hash::phc::PasswordHash;
            let parsed = PasswordHash::new(value).map_err(|_| malformed.clone())?;
            let params = argon2::Params::try_from(&parsed).map_err(|_| malformed.clone())?;
            if parsed.salt.is_none() || parsed.hash.is_none() {
                return Err(malformed);
            }
            if params.m_cost() > max_argon2_kib {
                return Err(HashFormatError::Argon2Memory(params.m_cost(), max_argon2_kib));
            }
        }
        Scheme::BlfCrypt => {
            let cost: u32 = value.get(4..6).and_then(|c| c.parse().ok()).ok_or(malformed.clone())?;
            if value.len() != 60 || value.as_bytes().get(6) != Some(&b'$') {
                return Err(malformed);
            }
            if cost > MAX_BCRYPT_COST {
                return Err(HashFormatError::BcryptCost(cost));
            }
        }
        Scheme::Sha512Crypt | Scheme::Sha256Crypt => {
            let fields: Vec<&str> = value.split('$').collect();
            let (rounds, rest) = match fields.get(2).and_then(|f| f.strip_prefix("rounds=")) {
                Some(r) => (r.parse::<u32>().map_err(|_| malformed.clone())?, &fields[3..]),
                None => (5000, fields.get(2..).unwrap_or_default()),
            };
            if rounds > MAX_SHA_CRYPT_ROUNDS {
                return Err(HashFormatError::ShaCryptRounds(rounds));
            }
            let crypt64 = |s: &str| s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'/');
            let hash_len = if scheme == Scheme::Sha512Crypt { 86 } else { 43 };
            match rest {
                [salt, hash] if salt.len() <= 16 && crypt64(hash) && hash.len() == hash_len => {}
                _ => return Err(malformed),
            }
        }
        Scheme::Md5Crypt => {
            let fields: Vec<&str> = value.split('$').collect();
            match fields.as_slice() {
                ["", "1", salt, hash] if salt.len() <= 8 && hash.len() == 22 => {}
                _ => return Err(malformed),
            }
        }
        // `of_crypt` checked the 13 characters.
        Scheme::DesCrypt => {}
        _ => return Err(HashFormatError::WrongScheme { scheme }),
    }
    Ok(())
}

#[cfg(test)]
#[path = "legacy_hash_tests.rs"]
mod tests;
