//! The resolver every DNS user builds from: the system's (`/etc/resolv.conf`), or named name
//! servers over UDP and TCP on their own ports (operators with a local resolver, and tests with
//! dnsmasq on a free port). Used by MX routing, sender-domain verification and the DKIM check,
//! which share one TXT lookup.

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

/// The TXT records at `name` (a fully qualified name), each record's strings joined into one
/// value. `Ok(None)` when the name or the record type does not exist (a definite answer, unlike
/// a failed lookup); the error text names the lookup for the operator.
pub async fn txt_records(resolver: &TokioResolver, name: &str) -> Result<Option<Vec<Vec<u8>>>, String> {
    use hickory_resolver::proto::rr::RData;
    match resolver.txt_lookup(name).await {
        Ok(lookup) => Ok(Some(
            lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::TXT(txt) => Some(txt.txt_data.iter().flat_map(|s| s.iter().copied()).collect()),
                    _ => None,
                })
                .collect(),
        )),
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Ok(None),
        Err(e) => Err(format!("TXT lookup of {name} failed: {e}")),
    }
}
