//! The TOML configuration: defaults for every key, the file laid over them, validation with
//! messages that name the offending key.

mod api;
mod auth;
mod daemon;
mod duration;
mod limits;
mod policy;
mod postgresql;
mod relay;
mod sasl;
mod senders;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};

use crate::message_limits::Usage;
use crate::store::StoreLocation;

pub use api::ApiConfig;
pub use auth::AuthConfig;
pub use daemon::DaemonConfig;
pub use limits::{LimitOverride, LimitsConfig};
pub use policy::{PolicyConfig, UnknownLogin};
pub use postgresql::PostgresqlConfig;
pub use relay::{ListenConfig, RelayConfig, TlsMode, smarthost_parts};
pub use sasl::SaslConfig;
pub use senders::SendersConfig;

/// Where the config is read from when neither `--config` nor `RELAYKEY_CONFIG` is given.
pub const DEFAULT_PATH: &str = "/etc/relaykey/relaykey.toml";

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// An SQLite file, or a `postgresql://` URL (see `[postgresql]`).
    pub database: PathBuf,
    pub postgresql: PostgresqlConfig,
    /// `error`, `warn`, `info`, `debug` or `trace`, or a tracing filter directive.
    pub log_level: String,
    pub daemon: DaemonConfig,
    pub auth: AuthConfig,
    pub sasl: SaslConfig,
    pub policy: PolicyConfig,
    pub limits: LimitsConfig,
    pub relay: RelayConfig,
    pub api: ApiConfig,
    pub senders: SendersConfig,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            database: PathBuf::from("/var/lib/relaykey/relaykey.db"),
            postgresql: PostgresqlConfig::default(),
            log_level: "info".into(),
            daemon: DaemonConfig::default(),
            auth: AuthConfig::default(),
            sasl: SaslConfig::default(),
            policy: PolicyConfig::default(),
            limits: LimitsConfig::default(),
            relay: RelayConfig::default(),
            api: ApiConfig::default(),
            senders: SendersConfig::default(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("config {path}: {source}")]
    Invalid { path: PathBuf, source: Invalid },
}

/// Why a config's text is refused. The message is one line that names the key (the CLI
/// contract, `tests/bad_configs`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Invalid {
    /// Not TOML, or a key or type the schema does not know: toml's message on one line,
    /// naming the key when its position tells it.
    #[error("{0}")]
    Syntax(String),
    /// A value the schema accepts but the daemon cannot run with.
    #[error("{key}: {problem}")]
    Value { key: String, problem: String },
}

impl Invalid {
    pub fn value(key: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Value { key: key.into(), problem: problem.into() }
    }
}

impl Config {
    /// Reads, parses and validates the file at `path`.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        Self::parse(&text).map_err(|source| ConfigError::Invalid { path: path.to_path_buf(), source })
    }

    /// Parses and validates TOML text. Relative paths stay relative to the working directory.
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        let config: Config = toml::from_str(text).map_err(|e| Invalid::Syntax(one_line(&e, text)))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), Invalid> {
        if self.database.as_os_str().is_empty() {
            return Err(Invalid::value("database", "must not be empty"));
        }
        self.store_location()?;
        tracing_subscriber::EnvFilter::try_new(&self.log_level)
            .map_err(|e| Invalid::value("log_level", format!("invalid filter {:?}: {e}", self.log_level)))?;
        self.daemon.validate()?;
        self.auth.validate()?;
        self.limits.validate()?;
        self.relay.validate()?;
        self.api.validate()?;
        self.senders.validate()?;
        self.validate_message_quota()?;
        Ok(())
    }

    /// The store `database` names, its URL checked (and the `[postgresql]` files read).
    pub fn store_location(&self) -> Result<StoreLocation, Invalid> {
        let database = self.database.to_string_lossy();
        let pg = &self.postgresql;
        StoreLocation::parse(&database, pg.password_file.as_deref(), pg.ca_file.as_deref())
            .map_err(|e| Invalid::value("database", e.to_string()))
    }

    /// [`Config::store_location`] for a config validated already: the only failure left is
    /// a `[postgresql]` file that became unreadable since.
    pub fn store(&self) -> Result<StoreLocation, crate::store::StoreError> {
        self.store_location().map_err(|e| crate::store::StoreError::Config(e.to_string()))
    }

    /// `database` for messages and logs: a URL without its password.
    pub fn database_shown(&self) -> String {
        let database = self.database.to_string_lossy();
        if crate::store::is_postgres_url(&database) {
            crate::store::pg::redact(&database)
        } else {
            database.into_owned()
        }
    }

    /// The SQLite file, when the store is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        (!crate::store::is_postgres_url(&self.database.to_string_lossy())).then_some(self.database.as_path())
    }

    /// The per-account message limits: `[limits] messages_per_*`, or where a window is not
    /// set there (0), the older `[policy] messages_per_*`.
    pub fn message_quota(&self) -> Usage {
        let pick = |new: u32, old: u32| if new != 0 { new } else { old };
        let (l, p) = (&self.limits, &self.policy);
        Usage {
            minute: pick(l.messages_per_minute, p.messages_per_minute),
            hour: pick(l.messages_per_hour, p.messages_per_hour),
            day: pick(l.messages_per_day, p.messages_per_day),
        }
    }

    /// A window set in both places to different values is a mistake worth stopping for.
    fn validate_message_quota(&self) -> Result<(), Invalid> {
        let (l, p) = (&self.limits, &self.policy);
        for (name, new, old) in [
            ("messages_per_minute", l.messages_per_minute, p.messages_per_minute),
            ("messages_per_hour", l.messages_per_hour, p.messages_per_hour),
            ("messages_per_day", l.messages_per_day, p.messages_per_day),
        ] {
            if new != 0 && old != 0 && new != old {
                return Err(Invalid::value(
                    format!("limits.{name}"),
                    format!("{new} conflicts with policy.{name} = {old} (the older place of the same limit); keep one"),
                ));
            }
        }
        Ok(())
    }
}

/// toml's errors span several lines (a source excerpt) and do not always name the key; the
/// CLI contract is one line that does. The key is recovered from the error's position.
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let msg = e.message().trim().replace('\n', " ");
    let Some(span) = e.span() else { return msg };
    let line_no = text[..span.start.min(text.len())].matches('\n').count();
    let lines: Vec<&str> = text.lines().collect();
    let Some(line) = lines.get(line_no) else { return msg };
    let table = lines[..line_no]
        .iter()
        .rev()
        .map(|l| l.trim())
        .find(|l| l.starts_with('['))
        .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim().to_string());
    let key = match line.split_once('=') {
        Some((k, _)) => k.trim().to_string(),
        None => return format!("{msg} (line {})", line_no + 1),
    };
    let full = match table {
        Some(t) if !t.is_empty() => format!("{t}.{key}"),
        _ => key,
    };
    format!("{full}: {msg} (line {})", line_no + 1)
}

/// Parses a Unix file mode written as an octal string (`"0660"`) or an integer.
pub(crate) fn deserialize_mode<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Text(String),
        Int(u32),
    }
    let mode = match Raw::deserialize(d)? {
        Raw::Int(n) => n,
        Raw::Text(t) => u32::from_str_radix(t.trim().trim_start_matches("0o"), 8)
            .map_err(|_| serde::de::Error::custom(format!("invalid octal mode {t:?}")))?,
    };
    if mode > 0o7777 {
        return Err(serde::de::Error::custom(format!("mode {mode:o} is out of range")));
    }
    Ok(mode)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn design_example_parses() {
        let c = Config::parse(
            r#"
            database = "/tmp/x.db"
            [auth]
            cache_ttl = "1h"
            failure_delay = "2s"
            argon2_memory_kib = 19456
            argon2_iterations = 2
            [sasl]
            enabled = true
            socket = "/tmp/auth"
            socket_mode = "0660"
            [limits]
            max_connections_per_ip = 20
            command_timeout = "120s"
            session_timeout = "600s"
            [[limits.override]]
            network = "10.0.0.0/8"
            max_connections_per_ip = 100
            "#,
        )
        .unwrap();
        assert_eq!(c.sasl.socket_mode, 0o660);
        assert_eq!(c.limits.overrides[0].max_connections_per_ip, 100);
        assert_eq!(c.auth.cache_ttl.as_secs(), 3600);
    }

    #[test]
    fn refusals_name_the_key() {
        for (text, key) in [
            ("[auth]\nbogus = 1", "bogus"),
            ("nonsense = 1", "nonsense"),
            ("[auth]\ncache_ttl = \"soon\"", "cache_ttl"),
            ("[limits]\nmax_connections_per_ip = -1", "max_connections_per_ip"),
            ("[sasl]\nsocket_mode = \"999\"", "socket_mode"),
            ("[auth]\nargon2_memory_kib = 1", "argon2_memory_kib"),
            ("[auth]\nmax_failure_delay = \"15s\"", "max_failure_delay"),
            ("log_level = \"[[\"", "log_level"),
            ("[policy]\nfallback_action = \"450\"", "fallback_action"),
            ("[policy]\nunknown_login = \"maybe\"", "unknown_login"),
            ("[daemon]\ngroup = \"relaykey\"", "daemon.group"),
            ("[[limits.override]]\nnetwork = \"10.0.0.0/33\"\nmax_connections_per_ip = 1", "network"),
            ("[limits]\nmessages_per_hour = 5\n[policy]\nmessages_per_hour = 6", "limits.messages_per_hour"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err:?}");
            assert!(!err.contains('\n'), "{err:?} spans lines");
        }
    }

    #[test]
    fn message_limits_are_read_from_limits_or_from_the_older_policy_keys() {
        let q = |text: &str| Config::parse(text).unwrap().message_quota();
        assert_eq!(q(""), Usage::default());
        assert_eq!(q("[limits]\nmessages_per_minute = 1\nmessages_per_day = 3"), Usage { minute: 1, hour: 0, day: 3 });
        assert_eq!(q("[policy]\nmessages_per_hour = 2"), Usage { minute: 0, hour: 2, day: 0 });
        assert_eq!(
            q("[limits]\nmessages_per_minute = 1\n[policy]\nmessages_per_minute = 1\nmessages_per_day = 9"),
            Usage { minute: 1, hour: 0, day: 9 },
            "the same value in both places, and windows mixed across them"
        );
    }

    #[test]
    fn refused_values_carry_their_key() {
        for (text, key) in [
            ("database = \"\"", "database"),
            ("[limits]\ncommand_timeout = \"0s\"", "limits.command_timeout"),
            ("[relay]\nenabled = true\nmax_recipients = 0\nlisten = []", "relay.max_recipients"),
            ("[daemon]\ngroup = \"relaykey\"", "daemon.group"),
            ("[limits]\nmessages_per_hour = 5\n[policy]\nmessages_per_hour = 6", "limits.messages_per_hour"),
        ] {
            match Config::parse(text) {
                Err(Invalid::Value { key: got, .. }) => assert_eq!(got, key, "{text:?}"),
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }
}
