//! Where a recipient's mail goes: the smarthost, or the MX hosts of its domain (RFC 5321 §5.1):
//! MX records by preference, else the domain's own A/AAAA ("implicit MX"); a null MX
//! (RFC 7505) or a domain that does not exist is a permanent failure.

use std::net::{IpAddr, SocketAddr};

use hickory_resolver::TokioResolver;
use hickory_resolver::proto::rr::RData;

use crate::config::{RelayConfig, smarthost_parts};
use crate::ip_scope::is_internal;

/// A group of recipients that is delivered over one connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Destination {
    Smarthost,
    Domain(String),
}

impl Destination {
    pub fn of(config: &RelayConfig, recipient: &str) -> Self {
        if config.smarthost.is_some() {
            return Self::Smarthost;
        }
        let domain = recipient.rsplit_once('@').map(|(_, d)| d).unwrap_or_default();
        // An address literal becomes its address: `[IPv6:::1]` is `::1`.
        let literal = crate::mailbox::parse_domain(domain).ok().flatten();
        Self::Domain(literal.map_or_else(|| domain.to_ascii_lowercase(), |ip| ip.to_string()))
    }

    pub fn label(&self) -> &str {
        match self {
            Self::Smarthost => "smarthost",
            Self::Domain(d) => d,
        }
    }
}

/// One host to try: the name for TLS and logs, and its addresses.
#[derive(Debug, Clone)]
pub struct Host {
    pub name: String,
    pub addrs: Vec<SocketAddr>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RouteError {
    /// No such domain, null MX: bounce.
    #[error("{0}")]
    Permanent(String),
    /// DNS failure: retry later.
    #[error("{0}")]
    Temporary(String),
    /// Every address of the destination is loopback, link-local or private, and
    /// `allow_private_destinations` is off: bounce.
    #[error("{0}")]
    Private(String),
}

pub struct Router {
    resolver: Option<TokioResolver>,
}

impl Router {
    /// A resolver on `nameservers` (UDP and TCP), else on /etc/resolv.conf. Smarthost mode needs
    /// DNS only for the smarthost's name.
    pub fn new(config: &RelayConfig) -> Self {
        let builder = crate::dns::resolver_builder(&config.nameservers).ok();
        Self { resolver: builder.and_then(|b| b.build().ok()) }
    }

    /// The hosts to try for `destination`, best first.
    pub async fn hosts(&self, config: &RelayConfig, destination: &Destination) -> Result<Vec<Host>, RouteError> {
        match destination {
            Destination::Smarthost => {
                let spec = config.smarthost.as_deref().unwrap_or_default();
                let (host, port) =
                    smarthost_parts(spec).ok_or_else(|| RouteError::Permanent(format!("bad smarthost {spec:?}")))?;
                Ok(vec![self.address(&host, port).await?])
            }
            Destination::Domain(domain) => {
                let hosts = self.mx_hosts(domain, config.mx_port).await?;
                if config.allow_private_destinations { Ok(hosts) } else { public_only(domain, hosts) }
            }
        }
    }

    async fn mx_hosts(&self, domain: &str, port: u16) -> Result<Vec<Host>, RouteError> {
        if let Ok(ip) = domain.parse::<IpAddr>() {
            return Ok(vec![Host { name: domain.to_string(), addrs: vec![SocketAddr::new(ip, port)] }]);
        }
        let resolver = self.resolver()?;
        let fqdn = format!("{}.", domain.trim_end_matches('.'));
        let mut exchanges: Vec<(u16, String)> = match resolver.mx_lookup(fqdn.as_str()).await {
            Ok(lookup) => lookup
                .answers()
                .iter()
                .filter_map(|r| match &r.data {
                    RData::MX(mx) => Some((mx.preference, mx.exchange.to_ascii())),
                    _ => None,
                })
                .collect(),
            Err(e) if e.is_nx_domain() => return Err(RouteError::Permanent(format!("domain {domain} does not exist"))),
            Err(e) if e.is_no_records_found() => Vec::new(),
            Err(e) => return Err(RouteError::Temporary(format!("MX lookup for {domain} failed: {e}"))),
        };
        if exchanges.iter().any(|(_, name)| name == "." || name.is_empty()) && exchanges.len() == 1 {
            return Err(RouteError::Permanent(format!("domain {domain} accepts no mail (null MX)")));
        }
        if exchanges.is_empty() {
            exchanges.push((0, fqdn.clone()));
        }
        exchanges.sort();
        let mut hosts = Vec::new();
        let mut last_error = None;
        for (_, name) in exchanges {
            match self.address(name.trim_end_matches('.'), port).await {
                Ok(h) => hosts.push(h),
                Err(e) => last_error = Some(e),
            }
        }
        match (hosts.is_empty(), last_error) {
            (true, Some(RouteError::Permanent(m))) => Err(RouteError::Permanent(m)),
            (true, Some(e)) => Err(RouteError::Temporary(e.to_string())),
            (true, None) => Err(RouteError::Temporary(format!("no usable MX host for {domain}"))),
            (false, _) => Ok(hosts),
        }
    }

    async fn address(&self, host: &str, port: u16) -> Result<Host, RouteError> {
        if let Ok(ip) = host.parse::<IpAddr>() {
            return Ok(Host { name: host.to_string(), addrs: vec![SocketAddr::new(ip, port)] });
        }
        let resolver = self.resolver()?;
        match resolver.lookup_ip(format!("{}.", host.trim_end_matches('.'))).await {
            Ok(ips) => {
                let addrs: Vec<SocketAddr> = ips.iter().map(|ip| SocketAddr::new(ip, port)).collect();
                Ok(Host { name: host.to_string(), addrs })
            }
            Err(e) if e.is_nx_domain() => Err(RouteError::Permanent(format!("host {host} does not exist"))),
            Err(e) => Err(RouteError::Temporary(format!("address lookup for {host} failed: {e}"))),
        }
    }

    fn resolver(&self) -> Result<&TokioResolver, RouteError> {
        self.resolver.as_ref().ok_or_else(|| RouteError::Temporary("no DNS resolver configured".into()))
    }
}

/// Drops the addresses that lead into the host's own or a private network; hosts left without
/// an address are dropped. Nothing left is a permanent failure: the same DNS answers would be
/// refused on every retry.
fn public_only(domain: &str, hosts: Vec<Host>) -> Result<Vec<Host>, RouteError> {
    let mut refused = Vec::new();
    let hosts: Vec<Host> = hosts
        .into_iter()
        .filter_map(|mut h| {
            h.addrs.retain(|a| {
                let internal = is_internal(a.ip());
                if internal {
                    refused.push(a.ip());
                }
                !internal
            });
            (!h.addrs.is_empty()).then_some(h)
        })
        .collect();
    if hosts.is_empty() && !refused.is_empty() {
        let list = refused.iter().map(IpAddr::to_string).collect::<Vec<_>>().join(", ");
        return Err(RouteError::Private(format!(
            "{domain} leads only to loopback, link-local or private addresses ({list}); not delivered \
             (allow_private_destinations = false)"
        )));
    }
    Ok(hosts)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(name: &str, addrs: &[&str]) -> Host {
        Host { name: name.into(), addrs: addrs.iter().map(|a| SocketAddr::new(a.parse().unwrap(), 25)).collect() }
    }

    #[test]
    fn private_addresses_are_dropped_and_nothing_left_is_refused() {
        let kept =
            public_only("example.net", vec![host("a", &["127.0.0.1", "192.0.2.1"]), host("b", &["10.0.0.1"])]).unwrap();
        assert_eq!(kept.len(), 1);
        assert_eq!(kept[0].addrs, vec!["192.0.2.1:25".parse().unwrap()]);
        let all_private = public_only("example.net", vec![host("a", &["127.0.0.2"]), host("b", &["::1"])]);
        assert!(matches!(all_private, Err(RouteError::Private(m)) if m.contains("127.0.0.2") && m.contains("::1")));
    }

    #[test]
    fn address_literals_are_their_address() {
        let config = RelayConfig::default();
        assert_eq!(Destination::of(&config, "x@[IPv6:::1]"), Destination::Domain("::1".into()));
        assert_eq!(Destination::of(&config, "x@[127.0.0.1]"), Destination::Domain("127.0.0.1".into()));
        assert_eq!(Destination::of(&config, "x@Example.NET"), Destination::Domain("example.net".into()));
    }
}
