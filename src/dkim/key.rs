//! DKIM keys: generation from the OS CSPRNG, and signing on ring.
//!
//! - Ed25519 (RFC 8463): ring generates the PKCS#8 document; `p=` is the raw 32-byte public key.
//! - RSA-2048 (RFC 8301): ring cannot generate RSA keys, so the `rsa` crate does, offline (the
//!   CLI's `dkim generate`), and exports PKCS#8 that ring loads; ring alone signs. `p=` is the
//!   SubjectPublicKeyInfo DER, the only form OpenDKIM reads.
//!
//! The private key is a [`PrivateKey`]: its `Debug` prints nothing of it, and it is zeroed when
//! dropped.

use std::fmt;

use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _, RSA_PKCS1_SHA256, RsaKeyPair};
use zeroize::Zeroizing;

/// The RSA modulus size generated. RFC 8301 §3.2: at least 1024, 2048 recommended; ring signs
/// with nothing smaller.
pub const RSA_BITS: usize = 2048;

/// A DKIM signing algorithm, as in `a=` and the key record's `k=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Algorithm {
    /// `rsa-sha256`, `k=rsa`.
    Rsa,
    /// `ed25519-sha256`, `k=ed25519` (RFC 8463).
    Ed25519,
}

impl Algorithm {
    /// The word for the CLI, the JSON and the store: `rsa`, `ed25519`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rsa => "rsa",
            Self::Ed25519 => "ed25519",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "rsa" => Some(Self::Rsa),
            "ed25519" => Some(Self::Ed25519),
            _ => None,
        }
    }

    /// The signature's `a=` tag value.
    pub fn tag(self) -> &'static str {
        match self {
            Self::Rsa => "rsa-sha256",
            Self::Ed25519 => "ed25519-sha256",
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the OS random number generator failed")]
    Random,
    #[error("RSA key generation failed: {0}")]
    RsaGeneration(String),
    #[error("the stored {0} private key cannot be loaded")]
    Unreadable(Algorithm),
    #[error("signing with the {0} key failed")]
    Signing(Algorithm),
}

/// A private key in PKCS#8 DER. Never printed: `Debug` shows only its algorithm.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey {
    pub algorithm: Algorithm,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl PrivateKey {
    pub fn from_pkcs8(algorithm: Algorithm, pkcs8: Vec<u8>) -> Self {
        Self { algorithm, pkcs8: Zeroizing::new(pkcs8) }
    }

    /// The DER, for the store only.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }
}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey({}, redacted)", self.algorithm)
    }
}

/// A freshly generated key: the private half for the store, the public half for DNS.
#[derive(Debug)]
pub struct GeneratedKey {
    pub private: PrivateKey,
    /// What `p=` carries, before base64: the raw Ed25519 key or the RSA SubjectPublicKeyInfo.
    pub public: Vec<u8>,
}

/// Generates a key from the OS CSPRNG. RSA takes a second or so.
pub fn generate(algorithm: Algorithm) -> Result<GeneratedKey, KeyError> {
    match algorithm {
        Algorithm::Ed25519 => {
            let doc = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| KeyError::Random)?;
            let pair = Ed25519KeyPair::from_pkcs8(doc.as_ref()).map_err(|_| KeyError::Unreadable(algorithm))?;
            Ok(GeneratedKey {
                public: pair.public_key().as_ref().to_vec(),
                private: PrivateKey::from_pkcs8(algorithm, doc.as_ref().to_vec()),
            })
        }
        Algorithm::Rsa => generate_rsa(),
    }
}

fn generate_rsa() -> Result<GeneratedKey, KeyError> {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let key =
        rsa::PrivateKey::new(&mut getrandom::SysRng, RSA_BITS).map_err(|e| KeyError::RsaGeneration(e.to_string()))?;
    let pkcs8 = key.to_pkcs8_der().map_err(|e| KeyError::RsaGeneration(e.to_string()))?;
    let public = key.to_public_key().to_public_key_der().map_err(|e| KeyError::RsaGeneration(e.to_string()))?;
    let private = PrivateKey::from_pkcs8(Algorithm::Rsa, pkcs8.as_bytes().to_vec());
    // What ring cannot load could not sign: refuse it here, not at the first message.
    SigningKey::load(&private)?;
    Ok(GeneratedKey { private, public: public.as_bytes().to_vec() })
}

/// A private key loaded into ring, ready to sign.
pub enum SigningKey {
    Rsa(RsaKeyPair),
    Ed25519(Ed25519KeyPair),
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey({}, redacted)", self.algorithm())
    }
}

impl SigningKey {
    pub fn load(key: &PrivateKey) -> Result<Self, KeyError> {
        let unreadable = |_| KeyError::Unreadable(key.algorithm);
        Ok(match key.algorithm {
            Algorithm::Rsa => Self::Rsa(RsaKeyPair::from_pkcs8(key.pkcs8()).map_err(unreadable)?),
            Algorithm::Ed25519 => Self::Ed25519(Ed25519KeyPair::from_pkcs8(key.pkcs8()).map_err(unreadable)?),
        })
    }

    pub fn algorithm(&self) -> Algorithm {
        match self {
            Self::Rsa(_) => Algorithm::Rsa,
            Self::Ed25519(_) => Algorithm::Ed25519,
        }
    }

    /// Signs the canonicalized header data (RFC 6376 §3.7). RSA: PKCS#1 v1.5 over its SHA-256
    /// (ring hashes). Ed25519: RFC 8463 §3 signs the SHA-256 digest itself, not the data.
    pub fn sign(&self, header_data: &[u8]) -> Result<Vec<u8>, KeyError> {
        match self {
            Self::Rsa(pair) => {
                let mut sig = vec![0u8; pair.public().modulus_len()];
                pair.sign(&RSA_PKCS1_SHA256, &SystemRandom::new(), header_data, &mut sig)
                    .map_err(|_| KeyError::Signing(Algorithm::Rsa))?;
                Ok(sig)
            }
            Self::Ed25519(pair) => {
                let digest = ring::digest::digest(&ring::digest::SHA256, header_data);
                Ok(pair.sign(digest.as_ref()).as_ref().to_vec())
            }
        }
    }

    /// The public key as `p=` carries it (before base64). For RSA this is ring's PKCS#1
    /// `RSAPublicKey`; the published SPKI comes from generation and is kept in the store.
    pub fn public_key(&self) -> &[u8] {
        match self {
            Self::Rsa(pair) => pair.public_key().as_ref(),
            Self::Ed25519(pair) => pair.public_key().as_ref(),
        }
    }
}
