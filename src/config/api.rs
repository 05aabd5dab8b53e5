//! `[api]`: the HTTP API and settings page.

use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: String,
    pub max_concurrent_requests_per_ip: u32,
    #[serde(with = "super::duration")]
    pub connection_timeout: Duration,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:8025".into(),
            max_concurrent_requests_per_ip: 20,
            connection_timeout: Duration::from_secs(600),
        }
    }
}
