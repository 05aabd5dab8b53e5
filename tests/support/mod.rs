//! The test harness shared by the integration tests and the benches: one peer check with one
//! skip rule ([`peers`]), one port allocator ([`ports`]), one way to run `relaykey serve`
//! ([`daemon`]), one throwaway Postfix ([`postfix`]), one throwaway PostgreSQL ([`postgres`]), and what is built on them: relaykey next
//! to Postfix as documented ([`sidecar`]), the relay with its test certificate ([`relay`]),
//! SMTP clients ([`smtp`]), a loopback DNS server ([`dns`]), and DKIM verification by dkimpy and
//! OpenDKIM ([`dkim_verify`]). A test includes it with `mod support;`.
#![allow(dead_code)]

pub mod daemon;
pub mod dkim_verify;
pub mod dns;
pub mod http;
pub mod peers;
pub mod policy;
pub mod ports;
pub mod postfix;
pub mod postgres;
pub mod relay;
pub mod sidecar;
pub mod smtp;
