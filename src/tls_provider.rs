//! The one rustls crypto provider, for every TLS config of ours: the relay's listeners, the
//! API listener and the queue's outbound connections.

use std::sync::Arc;

/// The `ring` provider. Naming it explicitly keeps us independent of which providers other
/// crates switch on (`builder()` would panic if two were compiled in).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}
