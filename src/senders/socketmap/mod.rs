//! The socketmap Postfix asks for `smtpd_sender_login_maps`: for a sender address, the SASL
//! logins that may use it. Codec (bytes ↔ requests and replies), session (what to answer),
//! server (moving bytes on a Unix socket), like the other protocols.

pub mod codec;
pub mod server;
pub mod session;
