//! Which addresses lead into the relay host's own or a private network rather than the public
//! Internet: the destinations `[relay] allow_private_destinations = false` refuses, so that a
//! tenant cannot make the relay connect to services only the host can reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// Loopback, unspecified, private (RFC 1918, RFC 4193), shared (RFC 6598), link-local,
/// multicast, broadcast and reserved ranges, also when written as IPv4-mapped or NAT64 IPv6.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_internal_v4(v4),
        IpAddr::V6(v6) => is_internal_v6(v6),
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        // "This network" 0.0.0.0/8, shared address space 100.64.0.0/10, IETF protocol
        // assignments 192.0.0.0/24, benchmarking 198.18.0.0/15, reserved 240.0.0.0/4.
        || a == 0
        || (a == 100 && (64..128).contains(&b))
        || (a == 192 && b == 0 && ip.octets()[2] == 0)
        || (a == 198 && (b == 18 || b == 19))
        || a >= 240
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return is_internal_v4(v4);
    }
    let s = ip.segments();
    // NAT64 (RFC 6052 well-known prefix 64:ff9b::/96) reaches the embedded IPv4 address.
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let o = ip.octets();
        return is_internal_v4(Ipv4Addr::new(o[12], o[13], o[14], o[15]));
    }
    ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        // Unique local fc00::/7, link-local fe80::/10, deprecated site-local fec0::/10.
        || (s[0] & 0xfe00) == 0xfc00
        || (s[0] & 0xffc0) == 0xfe80
        || (s[0] & 0xffc0) == 0xfec0
        // IPv4-compatible (deprecated) ::a.b.c.d, which some stacks still route to IPv4.
        || (s[..6] == [0; 6] && s[6] != 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_ranges() {
        for ip in [
            "127.0.0.1",
            "127.5.6.7",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "0.1.2.3",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::7f00:1",
            "::7f00:1",
        ] {
            assert!(is_internal(ip.parse().unwrap()), "{ip} counted as public");
        }
    }

    #[test]
    fn public_addresses() {
        for ip in
            ["192.0.2.1", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2001:db8::1", "2a00:1450::1", "64:ff9b::808:808"]
        {
            assert!(!is_internal(ip.parse().unwrap()), "{ip} counted as internal");
        }
    }
}
