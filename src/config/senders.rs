//! `[senders]`: sender binding on the relay and the API.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SendersConfig {
    /// Bind authenticated relay sessions and API sends to the account's verified senders.
    pub enforce: bool,
    /// Also check every address of the message's `From:` header.
    pub check_header_from: bool,
}

impl Default for SendersConfig {
    fn default() -> Self {
        Self { enforce: true, check_header_from: true }
    }
}
