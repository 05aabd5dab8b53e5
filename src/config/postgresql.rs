//! `[postgresql]`: what a `postgresql://` database URL does not carry.

use std::path::PathBuf;

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct PostgresqlConfig {
    /// A file whose first line is the password (kept out of the config, which is often
    /// world-readable).
    pub password_file: Option<PathBuf>,
    /// PEM roots that the server's certificate must chain to with `sslmode=verify-full`;
    /// without it, the system's roots.
    pub ca_file: Option<PathBuf>,
}
