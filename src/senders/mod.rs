//! Sender binding: an account sends only as the domains and addresses it owns.
//!
//! - [`name`]: a sender entry (`example.com`, `billing@example.org`) parsed and normalised
//!   (IDNA to ASCII, Unicode kept for display).
//! - [`ownership`]: the pure rule: how a sender address is normalised and which entry owns
//!   it, most specific first; only verified entries authorize sending; `<>` always passes.
//! - [`record`]: an entry as an account holds it, and the DNS record that proves a domain.
//! - [`directory`]: an in-memory snapshot of every entry and every account's logins, rebuilt
//!   when the store changes; what the front ends ask on their hot paths.
//!
//! The store (`crate::store`, `senders.rs`) keeps the entries; the front ends enforce the rule.

pub mod directory;
pub mod name;
pub mod ownership;
pub mod record;
pub mod socketmap;
pub mod verify;

pub use directory::{Directory, Owner, Snapshot};
pub use name::{Domain, SenderEntry, SenderKind, SenderNameError};
pub use ownership::{EntryState, Sender, SenderAddress, SenderCheck};
pub use record::{AccountSender, SenderView, TxtRecord, new_token};
