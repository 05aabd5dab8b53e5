//! `[api]`: the HTTP API, the settings page and the operator endpoints.

use super::Invalid;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ApiConfig {
    pub enabled: bool,
    pub listen: String,
    /// PEM certificate chain and private key; both or neither. Without them the API speaks
    /// plain HTTP (fine on loopback behind a reverse proxy, not on a public address).
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// Requests in progress per client IP; the next one gets `429` at once.
    pub max_concurrent_requests_per_ip: u32,
    /// Open connections per client IP; beyond it a new connection is closed unanswered. Higher
    /// than the request limit so that the request limit, with its `429`, is what clients meet.
    pub max_connections_per_ip: u32,
    /// A connection is closed this long after it was accepted, whatever it is doing.
    #[serde(with = "super::duration")]
    pub connection_timeout: Duration,
    /// Time allowed for a request's headers to arrive (cuts slowloris clients).
    #[serde(with = "super::duration")]
    pub header_read_timeout: Duration,
    /// Time allowed for a request's body to arrive once its handler reads it.
    #[serde(with = "super::duration")]
    pub body_timeout: Duration,
    /// Largest request body in bytes; a larger one gets `413`.
    pub max_body_size: usize,
    /// Address of the operator listener (`/metrics`, `/healthz`); absent: off. Loopback only,
    /// because these endpoints carry no authentication.
    pub metrics_listen: Option<String>,
}

impl Default for ApiConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            listen: "127.0.0.1:8025".into(),
            tls_cert: None,
            tls_key: None,
            max_concurrent_requests_per_ip: 20,
            max_connections_per_ip: 100,
            connection_timeout: Duration::from_secs(600),
            header_read_timeout: Duration::from_secs(30),
            body_timeout: Duration::from_secs(60),
            // A 25 MiB message (the relay's default size) sent as JSON-escaped raw MIME.
            max_body_size: 32 * 1024 * 1024,
            metrics_listen: None,
        }
    }
}

impl ApiConfig {
    pub fn listen_addr(&self) -> Result<SocketAddr, Invalid> {
        self.listen
            .trim()
            .parse()
            .map_err(|_| Invalid::value("api.listen", format!("invalid address {:?} (expected IP:PORT)", self.listen)))
    }

    pub fn metrics_addr(&self) -> Result<Option<SocketAddr>, Invalid> {
        let Some(text) = &self.metrics_listen else { return Ok(None) };
        let addr: SocketAddr = text.trim().parse().map_err(|_| {
            Invalid::value("api.metrics_listen", format!("invalid address {text:?} (expected IP:PORT)"))
        })?;
        if !addr.ip().is_loopback() {
            return Err(Invalid::value(
                "api.metrics_listen",
                format!("{addr} is not a loopback address (the operator endpoints have no authentication)"),
            ));
        }
        Ok(Some(addr))
    }

    pub(super) fn validate(&self) -> Result<(), Invalid> {
        self.listen_addr()?;
        self.metrics_addr()?;
        if self.tls_cert.is_some() != self.tls_key.is_some() {
            return Err(Invalid::value("api.tls_cert/api.tls_key", "set both or neither"));
        }
        for (key, d) in [
            ("connection_timeout", self.connection_timeout),
            ("header_read_timeout", self.header_read_timeout),
            ("body_timeout", self.body_timeout),
        ] {
            if d.is_zero() {
                return Err(Invalid::value(format!("api.{key}"), "must be greater than zero"));
            }
        }
        if self.max_concurrent_requests_per_ip == 0 {
            return Err(Invalid::value("api.max_concurrent_requests_per_ip", "must be at least 1"));
        }
        if self.max_connections_per_ip < self.max_concurrent_requests_per_ip {
            return Err(Invalid::value(
                "api.max_connections_per_ip",
                "must not be below api.max_concurrent_requests_per_ip",
            ));
        }
        if self.max_body_size < 1024 {
            return Err(Invalid::value("api.max_body_size", "must be at least 1024 bytes"));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    #[test]
    fn api_refusals_name_the_key() {
        for (text, key) in [
            ("[api]\nlisten = \"localhost\"", "api.listen"),
            ("[api]\nmetrics_listen = \"0.0.0.0:9100\"", "api.metrics_listen"),
            ("[api]\ntls_cert = \"/x.pem\"", "api.tls_cert"),
            ("[api]\nconnection_timeout = \"0s\"", "api.connection_timeout"),
            ("[api]\nmax_concurrent_requests_per_ip = 0", "api.max_concurrent_requests_per_ip"),
            ("[api]\nmax_body_size = 10", "api.max_body_size"),
            ("[api]\nbogus = 1", "bogus"),
        ] {
            let err = Config::parse(text).unwrap_err().to_string();
            assert!(err.contains(key), "{text:?} gave {err:?}");
        }
    }

    #[test]
    fn metrics_listener_is_off_by_default_and_loopback_accepted() {
        assert_eq!(Config::default().api.metrics_addr().unwrap(), None);
        let c = Config::parse("[api]\nmetrics_listen = \"[::1]:9100\"").unwrap();
        assert!(c.api.metrics_addr().unwrap().is_some());
    }
}
