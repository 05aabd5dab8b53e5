//! DKIM signing (RFC 6376, with RFC 8463 Ed25519 and RFC 8301 key sizes): keys per sender
//! domain, the DNS records that publish them, and the signature put on each message an
//! authenticated account sends, at enqueue, over the exact bytes that will be delivered.
//!
//! - [`canonical`]: the relaxed/relaxed canonicalizations, the body as a stream;
//! - [`header_fields`]: a header section split into fields, and which of them are signed;
//! - [`message`]: one pass over a message as it is spooled: header kept, body hashed;
//! - [`signature`]: the `DKIM-Signature:` field, folded, and its `b=`;
//! - [`key`]: key generation and signing on ring; [`record`]: TXT records and selectors;
//! - [`stored`]: a key as the store keeps it and the CLI and API show it;
//! - [`keyring`]: the active keys of every domain in memory, reloaded when the store changes.
//!
//! Why written here rather than taken from `mail-auth` (checked with `cargo info`, 2026-12):
//! `mail-auth` ≥ 0.14 needs `mail-parser` 1.0, which needs rustc 1.98 (this crate builds on
//! 1.95) and offers only aws-lc-rs or RustCrypto (its RSA is `rsa` 0.9, RUSTSEC-2023-0071);
//! 0.13.3, the last release on ring, has the relaxed body bug with trailing whitespace-only
//! lines that 0.15 fixed (#62). Signing is a small, well-specified part of DKIM (no DNS, no
//! verification), and ring is the provider rustls already uses. The `rsa` crate (0.10, on
//! constant-time `crypto-bigint`) only generates RSA keys, offline, in the CLI.

pub mod canonical;
pub mod check;
pub mod header_fields;
pub mod key;
pub mod keyring;
pub mod message;
pub mod publish;
pub mod record;
pub mod signature;
pub mod stored;
#[cfg(test)]
pub mod test_verifier;

pub use key::{Algorithm, GeneratedKey, KeyError, PrivateKey, SigningKey};
pub use keyring::{ActiveKey, ActiveKeyRow, DomainKeys, KeySnapshot, Keyring, Signed};
pub use message::{Digested, MessageDigest};
pub use stored::{DkimKey, KeyState, KeyView};
