//! relaykey: the "SMTP & API settings" of a hosted email provider for a mail host.
//!
//! One store of accounts, API keys and SMTP credentials ([`store`]), one decision path for
//! every login ([`auth::Authenticator`]), and the front ends that enforce it: a Dovecot-protocol
//! SASL server for Postfix, a Postfix policy server and a minimal native relay.

pub mod address;
pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod dkim;
pub mod dns;
pub mod header_from;
pub mod import;
pub mod invisible;
pub mod ip_scope;
pub mod legacy_hash;
pub mod limits;
pub mod log_text;
pub mod logging;
pub mod mail_date;
pub mod mailbox;
pub mod message_limits;
pub mod metrics;
pub mod model;
pub mod policy;
pub mod queue;
pub mod restriction;
pub mod sasl;
pub mod secret;
pub mod senders;
pub mod smtp;
pub mod store;
pub mod tls_provider;
pub mod unix_accept;
