//! Where a PostgreSQL store is and how to reach it: the `database` URL of the config, the
//! `[postgresql]` section's password file and CA file, and the TLS settings they imply.
//!
//! `sslmode` keeps libpq's meaning: `disable` and `prefer` (the default: TLS if the server
//! offers it, not verified) and `require` (TLS, not verified) protect against a passive
//! listener only; `verify-full` checks the server's certificate chain and name, against
//! `ca_file` or the system's roots. `verify-ca` (a chain without the name) is refused: a
//! certificate of any host signed by the same CA would pass it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::CertificateDer;
use tokio_postgres::config::SslMode;

use crate::tls_provider::AcceptAnyCertificate;

/// How long a connection attempt may take before it is a (temporary) failure.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The URL parameters tokio-postgres reads (besides `sslmode`, handled here): anything else
/// would be refused by it with a message that names no parameter.
const URL_PARAMETERS: &[&str] = &[
    "user",
    "password",
    "dbname",
    "options",
    "application_name",
    "host",
    "hostaddr",
    "port",
    "connect_timeout",
    "tcp_user_timeout",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_retries",
    "target_session_attrs",
    "channel_binding",
    "load_balance_hosts",
    "sslnegotiation",
];

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error("database URL: {0}")]
    Url(String),
    #[error("cannot read the PostgreSQL password file {path}: {source}")]
    PasswordFile { path: String, source: std::io::Error },
    #[error("cannot read the PostgreSQL CA file {path}: {detail}")]
    CaFile { path: String, detail: String },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    Disable,
    /// Encrypted if the server offers it, certificate not checked.
    Prefer,
    /// Encrypted, certificate not checked.
    Require,
    /// Encrypted, certificate chain and host name checked.
    VerifyFull,
}

/// A PostgreSQL store's address, credentials and TLS policy.
#[derive(Clone)]
pub struct PgTarget {
    /// As configured, with any password removed: for logs and for telling stores apart.
    shown: String,
    pub(super) config: tokio_postgres::Config,
    pub(super) tls: Tls,
    ca_file: Option<PathBuf>,
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.shown)
    }
}

impl PartialEq for PgTarget {
    fn eq(&self, other: &Self) -> bool {
        self.shown == other.shown && self.tls == other.tls && self.ca_file == other.ca_file
    }
}

/// Does `database` name a PostgreSQL store (rather than an SQLite file)?
pub fn is_postgres_url(database: &str) -> bool {
    database.starts_with("postgresql://") || database.starts_with("postgres://")
}

impl PgTarget {
    /// Parses a `postgresql://` URL. `password_file` (first line, trailing newline dropped)
    /// overrides a password in the URL; `ca_file` holds PEM roots for `verify-full`.
    pub fn parse(url: &str, password_file: Option<&Path>, ca_file: Option<&Path>) -> Result<Self, TargetError> {
        if !is_postgres_url(url) {
            return Err(TargetError::Url("must start with postgresql://".into()));
        }
        let (base, query) = url.split_once('?').unwrap_or((url, ""));
        let mut kept = Vec::new();
        let mut tls = Tls::Prefer;
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            match key {
                "sslmode" => {
                    tls = match value {
                        "disable" => Tls::Disable,
                        "allow" | "prefer" => Tls::Prefer,
                        "require" => Tls::Require,
                        "verify-full" => Tls::VerifyFull,
                        "verify-ca" => {
                            return Err(TargetError::Url(
                                "sslmode=verify-ca checks no host name; use sslmode=verify-full".into(),
                            ));
                        }
                        other => return Err(TargetError::Url(format!("unknown sslmode {other:?}"))),
                    }
                }
                "sslrootcert" | "password_file" | "passfile" => {
                    return Err(TargetError::Url(format!(
                        "{key} is not read from the URL: set [postgresql] ca_file or password_file"
                    )));
                }
                known if URL_PARAMETERS.contains(&known) => kept.push(pair),
                unknown => return Err(TargetError::Url(format!("unknown parameter {unknown:?}"))),
            }
        }
        let rebuilt = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
        let mut config: tokio_postgres::Config =
            rebuilt.parse().map_err(|e: tokio_postgres::Error| TargetError::Url(e.to_string()))?;
        if config.get_hosts().is_empty() {
            return Err(TargetError::Url("no host: add host=/run/postgresql or a host name".into()));
        }
        if config.get_dbname().is_none() {
            return Err(TargetError::Url("no database name".into()));
        }
        if let Some(path) = password_file {
            let text = std::fs::read_to_string(path)
                .map_err(|source| TargetError::PasswordFile { path: path.display().to_string(), source })?;
            config.password(text.lines().next().unwrap_or(""));
        }
        config.ssl_mode(match tls {
            Tls::Disable => SslMode::Disable,
            Tls::Prefer => SslMode::Prefer,
            Tls::Require | Tls::VerifyFull => SslMode::Require,
        });
        config.connect_timeout(CONNECT_TIMEOUT);
        config.keepalives(true);
        config.keepalives_idle(Duration::from_secs(30));
        config.tcp_user_timeout(Duration::from_secs(30));
        config.application_name("relaykey");
        let shown = redact(url);
        let target = Self { shown, config, tls, ca_file: ca_file.map(Path::to_path_buf) };
        // Read the CA file now, so a bad one is a config error rather than a failure at each connect.
        target.tls_config()?;
        Ok(target)
    }

    /// The URL as configured, without a password.
    pub fn shown(&self) -> &str {
        &self.shown
    }

    /// The rustls client config for this target's `sslmode` (on ring, like every TLS here).
    pub(super) fn tls_config(&self) -> Result<rustls::ClientConfig, TargetError> {
        let provider = crate::tls_provider::provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| TargetError::Url(e.to_string()))?;
        let config = match (self.tls, &self.ca_file) {
            (Tls::VerifyFull, Some(path)) => {
                let mut roots = rustls::RootCertStore::empty();
                let ca_error = |detail: String| TargetError::CaFile { path: path.display().to_string(), detail };
                let pem = std::fs::read(path).map_err(|e| ca_error(e.to_string()))?;
                use rustls::pki_types::pem::PemObject;
                for cert in CertificateDer::pem_slice_iter(&pem) {
                    roots.add(cert.map_err(|e| ca_error(e.to_string()))?).map_err(|e| ca_error(e.to_string()))?;
                }
                if roots.is_empty() {
                    return Err(ca_error("no certificate in it".into()));
                }
                builder.with_root_certificates(roots).with_no_client_auth()
            }
            (Tls::VerifyFull, None) => {
                let verifier = rustls_platform_verifier::Verifier::new(provider)
                    .map_err(|e| TargetError::Url(format!("system certificate roots: {e}")))?;
                builder.dangerous().with_custom_certificate_verifier(Arc::new(verifier)).with_no_client_auth()
            }
            _ => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider)))
                .with_no_client_auth(),
        };
        Ok(config)
    }
}

/// The URL with the password of its user-info part (if any) replaced by `***`.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_string() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn socket_and_tcp_urls_parse_and_sslmode_is_read() {
        let t = PgTarget::parse("postgresql://relaykey@/relaykey?host=/run/postgresql", None, None).unwrap();
        assert_eq!((t.tls, t.config.get_dbname()), (Tls::Prefer, Some("relaykey")));
        let t = PgTarget::parse("postgresql://u:secret@db.example:5433/rk?sslmode=require", None, None).unwrap();
        assert_eq!((t.tls, t.config.get_ports()), (Tls::Require, &[5433][..]));
        assert_eq!(t.shown(), "postgresql://u:***@db.example:5433/rk?sslmode=require");
        assert!(!format!("{t:?}").contains("secret"));
        let t = PgTarget::parse("postgres://u@db.example/rk?sslmode=verify-full", None, None).unwrap();
        assert_eq!(t.tls, Tls::VerifyFull);
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, says) in [
            ("postgresql://u@/rk", "no host"),
            ("postgresql://u@h", "no database"),
            ("postgresql://u@h/rk?sslmode=verify-ca", "verify-full"),
            ("postgresql://u@h/rk?sslmode=maybe", "unknown sslmode"),
            ("postgresql://u@h/rk?passfile=/x", "password_file"),
            ("postgresql://u@h/rk?nonsense=1", "nonsense"),
            ("mysql://u@h/rk", "postgresql://"),
        ] {
            let err = PgTarget::parse(url, None, None).unwrap_err().to_string();
            assert!(err.contains(says), "{url}: {err}");
        }
    }

    #[test]
    fn the_password_file_sets_the_password() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("pw");
        std::fs::write(&file, "s3cret\n").unwrap();
        let t = PgTarget::parse("postgresql://u@h/rk", Some(&file), None).unwrap();
        assert_eq!(t.config.get_password(), Some(&b"s3cret"[..]));
        let missing = PgTarget::parse("postgresql://u@h/rk", Some(&dir.path().join("none")), None).unwrap_err();
        assert!(matches!(missing, TargetError::PasswordFile { .. }));
        let ca = PgTarget::parse("postgresql://u@h/rk?sslmode=verify-full", None, Some(&file)).unwrap_err();
        assert!(matches!(ca, TargetError::CaFile { .. }), "{ca}");
    }
}
