//! The resolver every DNS user builds from: the system's (`/etc/resolv.conf`), or named name
//! servers over UDP and TCP on their own ports (operators with a local resolver, and tests with
//! dnsmasq on a free port). Used by MX routing and by sender-domain verification.

use std::net::SocketAddr;

use hickory_resolver::config::{ConnectionConfig, NameServerConfig, ResolverConfig};
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::{ResolverBuilder, TokioResolver};

pub type Builder = ResolverBuilder<TokioRuntimeProvider>;

/// A resolver builder on `nameservers`, or on the system configuration when there are none.
/// The error is the system configuration's, for the caller's message.
pub fn resolver_builder(nameservers: &[SocketAddr]) -> Result<Builder, String> {
    if nameservers.is_empty() {
        return TokioResolver::builder_tokio().map_err(|e| e.to_string());
    }
    let mut rc = ResolverConfig::from_parts(None, Vec::new(), Vec::new());
    for ns in nameservers {
        let on_port = |mut c: ConnectionConfig| {
            c.port = ns.port();
            c
        };
        rc.add_name_server(NameServerConfig::new(
            ns.ip(),
            true,
            vec![on_port(ConnectionConfig::udp()), on_port(ConnectionConfig::tcp())],
        ));
    }
    Ok(TokioResolver::builder_with_config(rc, TokioRuntimeProvider::default()))
}
