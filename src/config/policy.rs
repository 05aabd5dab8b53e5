//! `[policy]`: the Postfix policy-delegation socket.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PolicyConfig {
    pub enabled: bool,
    pub socket: PathBuf,
    #[serde(deserialize_with = "super::deserialize_mode")]
    pub socket_mode: u32,
    pub socket_group: Option<String>,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/var/spool/postfix/private/relaykey-policy"),
            socket_mode: 0o660,
            socket_group: None,
        }
    }
}
