//! TLS for the API listener: rustls with the ring provider, certificate chain and key from PEM.

use std::path::Path;
use std::sync::Arc;

use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;

/// Builds the acceptor; errors name the file at fault.
pub fn acceptor(cert: &Path, key: &Path) -> Result<TlsAcceptor, String> {
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("api.tls_cert {}: {e}", cert.display()))?;
    if certs.is_empty() {
        return Err(format!("api.tls_cert {}: no certificate found", cert.display()));
    }
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("api.tls_key {}: {e}", key.display()))?;
    let mut config = ServerConfig::builder_with_provider(crate::tls_provider::provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("api TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("api.tls_cert/api.tls_key: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}
