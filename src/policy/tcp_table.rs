//! The kernel's TCP table (`/proc/net/tcp` and `/proc/net/tcp6`): which SMTP sessions are still
//! connected. Postfix never tells a policy server that a session ended, and an idle smtpd may
//! keep its policy connection open for ~100 s after its client left (reference §4.2), so before
//! refusing a client for having too many sessions the session table asks the kernel.
//!
//! Valid only when relaykey runs in the same network namespace as Postfix, and only for
//! sessions whose TCP peer is the client itself (not a proxy).

use std::collections::HashSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::restriction::canonical_ip;

/// `st` column value for ESTABLISHED (include/net/tcp_states.h).
const ESTABLISHED: &str = "01";

/// One connected socket, seen from the server: (local = server, remote = client).
pub type Pair = (SocketAddr, SocketAddr);

/// The ESTABLISHED connections in the text of `/proc/net/tcp` or `/proc/net/tcp6`, with
/// IPv4-mapped addresses turned into IPv4. Unparsable lines are skipped.
pub fn parse_established(text: &str) -> Vec<Pair> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut cols = line.split_whitespace();
            let _slot = cols.next()?;
            let local = parse_endpoint(cols.next()?)?;
            let remote = parse_endpoint(cols.next()?)?;
            (cols.next()? == ESTABLISHED).then_some((local, remote))
        })
        .collect()
}

/// `0100007F:0019` (IPv4) or 32 hex digits `:` port (IPv6). Addresses are printed as 32-bit
/// words in host byte order (little-endian on the machines we run on).
fn parse_endpoint(s: &str) -> Option<SocketAddr> {
    let (addr, port) = s.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.to_le_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                let word = u32::from_str_radix(addr.get(i * 8..i * 8 + 8)?, 16).ok()?;
                chunk.copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(SocketAddr::new(canonical_ip(ip), port))
}

/// A snapshot of the live connections, read from `/proc`.
#[derive(Debug, Default)]
pub struct Established(HashSet<Pair>);

impl Established {
    /// Reads both tables. A missing table (no IPv6) counts as empty; if neither can be read the
    /// caller gets an error and keeps every entry.
    pub fn read() -> std::io::Result<Self> {
        let v4 = std::fs::read_to_string("/proc/net/tcp");
        let v6 = std::fs::read_to_string("/proc/net/tcp6");
        if let (Err(e), Err(_)) = (&v4, &v6) {
            return Err(std::io::Error::new(e.kind(), format!("cannot read /proc/net/tcp: {e}")));
        }
        let mut set = HashSet::new();
        for text in [v4, v6].into_iter().flatten() {
            set.extend(parse_established(&text));
        }
        Ok(Self(set))
    }

    pub fn from_pairs(pairs: impl IntoIterator<Item = Pair>) -> Self {
        Self(pairs.into_iter().collect())
    }

    /// Connections from `client_ip` to `server` other than `except`.
    pub fn count_from(&self, server: SocketAddr, client_ip: IpAddr, except: SocketAddr) -> u32 {
        let canon = |a: SocketAddr| SocketAddr::new(canonical_ip(a.ip()), a.port());
        let (server, except, ip) = (canon(server), canon(except), canonical_ip(client_ip));
        self.0.iter().filter(|(s, c)| *s == server && c.ip() == ip && *c != except).count() as u32
    }

    /// Is `client ↔ server` still connected?
    pub fn contains(&self, server: SocketAddr, client: SocketAddr) -> bool {
        let canon = |a: SocketAddr| SocketAddr::new(canonical_ip(a.ip()), a.port());
        self.0.contains(&(canon(server), canon(client)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Captured from /proc/net/tcp and /proc/net/tcp6 on Linux 6.x (x86_64).
    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:0CEA 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0000000000000000 100 0 0 10 0
   1: 0100007F:0CEA 0200007F:9D78 01 00000000:00000000 00:00000000 00000000   107        0 2 1 0000000000000000 20 4 30 10 -1
   2: 0100007F:0CEA 0200007F:9D7A 08 00000000:00000000 00:00000000 00000000   107        0 3 1 0000000000000000 20 4 30 10 -1
";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000001000000:0019 00000000000000000000000001000000:C350 01 00000000:00000000 00:00000000 00000000     0        0 4 1 0000000000000000 20 4 30 10 -1
   1: 0000000000000000FFFF00000100007F:0019 0000000000000000FFFF00000300007F:C351 01 00000000:00000000 00:00000000 00000000     0        0 5 1 0000000000000000 20 4 30 10 -1
";

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn keeps_only_established_connections() {
        let pairs = parse_established(TCP);
        assert_eq!(pairs, vec![(sa("127.0.0.1:3306"), sa("127.0.0.2:40312"))]);
    }

    #[test]
    fn reads_ipv6_and_maps_ipv4_in_ipv6_to_ipv4() {
        let table = Established::from_pairs(parse_established(TCP6));
        assert!(table.contains(sa("[::1]:25"), sa("[::1]:50000")));
        assert!(table.contains(sa("127.0.0.1:25"), sa("127.0.0.3:50001")));
        assert!(table.contains(sa("[::ffff:127.0.0.1]:25"), sa("[::ffff:127.0.0.3]:50001")));
        assert!(!table.contains(sa("127.0.0.1:25"), sa("127.0.0.3:50002")));
        assert_eq!(table.count_from(sa("127.0.0.1:25"), "127.0.0.3".parse().unwrap(), sa("127.0.0.3:1")), 1);
        assert_eq!(table.count_from(sa("127.0.0.1:25"), "127.0.0.3".parse().unwrap(), sa("127.0.0.3:50001")), 0);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        assert!(parse_established("header\nnonsense\n 1: zz:zz 00:00 01\n").is_empty());
    }

    #[test]
    fn sees_a_live_loopback_connection() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = listener.accept().unwrap();
        let table = Established::read().unwrap();
        assert!(table.contains(server_side.local_addr().unwrap(), client.local_addr().unwrap()));
        drop((client, server_side));
    }
}
