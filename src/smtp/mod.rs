//! The native SMTP submission relay: a sans-I/O codec ([`codec`], [`data`], [`reply`]), the
//! session state machine ([`session`]), and the tokio server around them ([`server`], [`tls`]).

pub mod codec;
pub mod data;
pub mod reply;
pub mod session;
