//! TLS for the relay's listeners: rustls with the `ring` provider, TLS 1.2 and 1.3, certificate
//! chain and key from PEM files. The acceptor can be swapped while the daemon runs (SIGHUP):
//! sessions already encrypted keep the config they were handshaken with; new ones get the new.

use std::path::Path;
use std::sync::{Arc, RwLock};

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::RelayConfig;
use crate::tls_provider::provider;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("relay.tls_cert {path}: {message}")]
    Cert { path: String, message: String },
    #[error("relay.tls_key {path}: {message}")]
    Key { path: String, message: String },
    #[error("TLS setup: {0}")]
    Rustls(#[from] rustls::Error),
}

/// Builds a server config from PEM files: the chain in `cert`, the key (PKCS#8, PKCS#1 or SEC1)
/// in `key`.
pub fn load_server_config(cert: &Path, key: &Path) -> Result<Arc<ServerConfig>, TlsError> {
    let cert_err = |message: String| TlsError::Cert { path: cert.display().to_string(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| cert_err(e.to_string()))?
        .collect::<Result<_, _>>()
        .map_err(|e| cert_err(e.to_string()))?;
    if chain.is_empty() {
        return Err(cert_err("no certificate found".into()));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| TlsError::Key { path: key.display().to_string(), message: e.to_string() })?;
    let config = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS12, &rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(chain, key)?;
    Ok(Arc::new(config))
}

/// The current acceptor, if a certificate is configured.
#[derive(Default)]
pub struct CertStore {
    acceptor: RwLock<Option<TlsAcceptor>>,
}

impl CertStore {
    /// Loads the certificate named in `config`; none configured gives an empty store.
    pub fn load(config: &RelayConfig) -> Result<Self, TlsError> {
        let store = Self::default();
        store.reload(config)?;
        Ok(store)
    }

    /// Replaces the acceptor; on error the old one stays in use.
    pub fn reload(&self, config: &RelayConfig) -> Result<(), TlsError> {
        let next = match (&config.tls_cert, &config.tls_key) {
            (Some(cert), Some(key)) => Some(TlsAcceptor::from(load_server_config(cert, key)?)),
            _ => None,
        };
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = next;
        Ok(())
    }

    pub fn acceptor(&self) -> Option<TlsAcceptor> {
        self.acceptor.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}
