//! The Dovecot-protocol SASL server Postfix authenticates through (`smtpd_sasl_type = dovecot`):
//! [`codec`] turns lines into values and back, [`session`] decides, [`server`] moves bytes.

pub mod codec;
pub mod server;
pub mod session;
