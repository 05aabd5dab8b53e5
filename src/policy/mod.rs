//! The Postfix policy-delegation server (`check_policy_service unix:private/relaykey-policy`):
//! per-IP session limit at CONNECT, session time limit, revocation of logins whose secret
//! changed, per-account message rate limit. Facts: `reference/postfix-policy-protocol.md`.
//!
//! - [`codec`]: wire format, no I/O;
//! - [`rules`]: the pure decision;
//! - [`sessions`], [`tcp_table`] and the shared [`crate::message_limits`]: the state the
//!   decision is made from;
//! - [`settings`]: what the rules need from one config, prepared once per config;
//! - [`enforcer`]: gathers the facts for one request and records the outcome;
//! - [`server`]: the socket.

pub mod action;
pub mod codec;
pub mod enforcer;
pub mod rules;
pub mod server;
pub mod sessions;
pub mod settings;
pub mod tcp_table;

pub use action::Action;
pub use enforcer::Enforcer;
