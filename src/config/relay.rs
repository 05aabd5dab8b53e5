//! `[relay]`: the native SMTP relay for hosts without Postfix.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub enabled: bool,
    pub hostname: String,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub spool: PathBuf,
    pub max_message_size: u64,
    pub trusted_networks: Vec<String>,
    pub smarthost: Option<String>,
    pub smarthost_tls: String,
    pub listen: Vec<ListenConfig>,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    pub address: String,
    #[serde(default = "default_tls")]
    pub tls: String,
}

fn default_tls() -> String {
    "starttls".into()
}

impl Default for RelayConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            hostname: "localhost".into(),
            tls_cert: None,
            tls_key: None,
            spool: PathBuf::from("/var/spool/relaykey"),
            max_message_size: 26_214_400,
            trusted_networks: vec!["127.0.0.0/8".into(), "::1/128".into()],
            smarthost: None,
            smarthost_tls: "starttls".into(),
            listen: Vec::new(),
        }
    }
}
