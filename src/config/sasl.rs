//! `[sasl]`: the Dovecot-protocol auth socket Postfix connects to.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SaslConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    /// Octal file mode of the socket, as a string (`"0660"`).
    #[serde(deserialize_with = "super::deserialize_mode")]
    pub socket_mode: u32,
    /// Group that owns the socket (usually `postfix`); unset keeps the daemon's group.
    pub socket_group: Option<String>,
    /// Refuse AUTH requests that Postfix did not mark `secured` (TLS).
    pub require_secured: bool,
    /// Logins of one client address (`rip`) being verified or held back at once; more get
    /// a temporary failure. Requests without an address share one count.
    pub max_in_flight_per_ip: u32,
}

impl Default for SaslConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/var/spool/postfix/private/relaykey-auth"),
            socket_mode: 0o660,
            socket_group: None,
            require_secured: false,
            max_in_flight_per_ip: 20,
        }
    }
}
