//! Which SMTP sessions are alive, per client address, learned from policy requests alone
//! (reference §4.5, option 3, the way anvil does it).
//!
//! Postfix sends no disconnect event. A session is identified by its TCP four-tuple, which
//! every request carries, and is *owned* by the policy connection of the smtpd process that
//! serves it (one session at a time per process). The session ends when:
//! - the same policy connection brings a request for another session (a new CONNECT),
//! - the policy connection closes (smtpd exited or was killed: the kernel closes it at once),
//! - the kernel says the client's TCP connection is gone ([`SessionTable::forget_dead`]),
//!   which covers idle smtpd processes that keep their policy connection open.
//!
//! No I/O and no clock here: callers pass `now` and the TCP table snapshot.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use crate::limits::client_group;
use crate::restriction::canonical_ip;

use super::codec::PolicyRequest;
use super::tcp_table::Established;

/// A policy connection, numbered by the server.
pub type ConnId = u64;

/// An SMTP session's TCP endpoints as Postfix reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SessionKey {
    pub client: IpAddr,
    pub client_port: Option<u16>,
    pub server: Option<IpAddr>,
    pub server_port: Option<u16>,
}

impl SessionKey {
    /// `None` when the request has no usable client address.
    pub fn of(req: &PolicyRequest) -> Option<Self> {
        Some(Self {
            client: canonical_ip(req.client_address?),
            client_port: req.client_port,
            server: req.server_address.map(canonical_ip),
            server_port: req.server_port,
        })
    }

    /// The kernel's view of this session, if every endpoint is known (Postfix ≥ 3.2 sends all).
    fn endpoints(&self) -> Option<(SocketAddr, SocketAddr)> {
        Some((SocketAddr::new(self.server?, self.server_port?), SocketAddr::new(self.client, self.client_port?)))
    }
}

#[derive(Debug)]
struct Session {
    owner: ConnId,
    /// The client group counted in `per_ip` (the IPv6 prefix at the time of insertion).
    group: IpAddr,
    started: Instant,
    /// The transaction (`instance`) whose message was already counted for the rate limit, so a
    /// message seen at DATA is not counted again at END-OF-MESSAGE.
    counted: Option<String>,
}

/// What the table knows of a session when a request arrives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionView {
    pub age: Duration,
    pub counted: Option<String>,
}

/// The CONNECT was refused: `live` sessions from the address already.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub live: u32,
}

#[derive(Debug)]
pub struct SessionTable {
    sessions: HashMap<SessionKey, Session>,
    /// Live sessions per client group: an IPv4 address or an IPv6 prefix.
    per_ip: HashMap<IpAddr, u32>,
    owned: HashMap<ConnId, SessionKey>,
    ipv6_prefix: u8,
}

impl Default for SessionTable {
    fn default() -> Self {
        Self { sessions: HashMap::new(), per_ip: HashMap::new(), owned: HashMap::new(), ipv6_prefix: 64 }
    }
}

impl SessionTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// `[limits] ipv6_prefix`: IPv6 clients in one prefix share a count. Sessions already
    /// counted stay in the group they were counted in.
    pub fn set_ipv6_prefix(&mut self, bits: u8) {
        self.ipv6_prefix = bits;
    }

    fn group(&self, ip: IpAddr) -> IpAddr {
        client_group(ip, self.ipv6_prefix)
    }

    /// A CONNECT: ends whatever session `conn` held, then admits `key` if fewer than `limit`
    /// sessions from its address are alive — those tracked, or `floor` if that is more (the
    /// kernel's count just after a restart, when sessions begun before it are untracked). A
    /// refused session is not recorded.
    pub fn open(&mut self, conn: ConnId, key: SessionKey, limit: u32, floor: u32, now: Instant) -> Result<(), Full> {
        self.release_conn(conn);
        // A reused four-tuple still held by another connection is that old session's leftover.
        self.remove(&key);
        let live = self.live(key.client).max(floor);
        if live >= limit {
            return Err(Full { live });
        }
        self.insert(conn, key, now);
        Ok(())
    }

    /// Any other request: the session's age, adopting the session when this is the first we
    /// hear of it (the CONNECT went to another policy client, or relaykey restarted). Adopting
    /// never refuses: a session in progress is not cut for concurrency.
    pub fn follow(&mut self, conn: ConnId, key: SessionKey, now: Instant) -> SessionView {
        if let Some(prev) = self.owned.get(&conn).copied()
            && prev != key
        {
            self.release_conn(conn);
        }
        if !self.sessions.contains_key(&key) {
            self.insert(conn, key, now);
        }
        let s = &self.sessions[&key];
        SessionView { age: now.saturating_duration_since(s.started), counted: s.counted.clone() }
    }

    /// Records that the message of transaction `instance` was counted.
    pub fn mark_counted(&mut self, key: &SessionKey, instance: Option<&str>) {
        if let Some(s) = self.sessions.get_mut(key) {
            s.counted = instance.map(str::to_string);
        }
    }

    /// The policy connection closed: its smtpd process is gone, and with it its session.
    pub fn release_conn(&mut self, conn: ConnId) {
        if let Some(key) = self.owned.remove(&conn)
            && self.sessions.get(&key).is_some_and(|s| s.owner == conn)
        {
            self.remove(&key);
        }
    }

    /// The session ended (we told smtpd to hang up).
    pub fn end(&mut self, key: &SessionKey) {
        self.remove(key);
    }

    /// The other connections the kernel has from `key`'s client address to its server
    /// endpoint (0 when the endpoints are unknown).
    pub fn kernel_count(key: &SessionKey, alive: &Established) -> u32 {
        key.endpoints().map_or(0, |(server, client)| alive.count_from(server, key.client, client))
    }

    /// Drops the sessions from `ip`'s group whose TCP connection the kernel no longer has.
    /// Sessions with unknown endpoints are kept. Returns how many were dropped.
    pub fn forget_dead(&mut self, ip: IpAddr, alive: &Established) -> usize {
        let group = self.group(ip);
        let dead: Vec<SessionKey> = self
            .sessions
            .iter()
            .filter(|(_, s)| s.group == group)
            .map(|(k, _)| k)
            .filter(|k| k.endpoints().is_some_and(|(server, client)| !alive.contains(server, client)))
            .copied()
            .collect();
        for key in &dead {
            self.remove(key);
        }
        dead.len()
    }

    /// Live sessions from `ip`'s group.
    pub fn live(&self, ip: IpAddr) -> u32 {
        self.per_ip.get(&self.group(ip)).copied().unwrap_or(0)
    }

    /// All live sessions.
    pub fn len(&self) -> usize {
        self.sessions.len()
    }

    pub fn is_empty(&self) -> bool {
        self.sessions.is_empty()
    }

    fn insert(&mut self, conn: ConnId, key: SessionKey, now: Instant) {
        let group = self.group(key.client);
        self.sessions.insert(key, Session { owner: conn, group, started: now, counted: None });
        *self.per_ip.entry(group).or_insert(0) += 1;
        self.owned.insert(conn, key);
    }

    fn remove(&mut self, key: &SessionKey) {
        let Some(session) = self.sessions.remove(key) else { return };
        if let Some(n) = self.per_ip.get_mut(&session.group) {
            *n -= 1;
            if *n == 0 {
                self.per_ip.remove(&session.group);
            }
        }
        if self.owned.get(&session.owner) == Some(key) {
            self.owned.remove(&session.owner);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(ip: &str, port: u16) -> SessionKey {
        SessionKey {
            client: ip.parse().unwrap(),
            client_port: Some(port),
            server: Some("127.0.0.1".parse().unwrap()),
            server_port: Some(25),
        }
    }

    // Issue 14 item 14: IPv6 clients of one prefix share a count.
    #[test]
    fn ipv6_clients_of_one_prefix_share_the_limit() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        t.open(1, key("2001:db8::1", 1000), 2, 0, now).unwrap();
        t.open(2, key("2001:db8::2", 1000), 2, 0, now).unwrap();
        assert_eq!(t.open(3, key("2001:db8::3", 1000), 2, 0, now), Err(Full { live: 2 }));
        t.open(4, key("2001:db8:0:1::1", 1000), 2, 0, now).unwrap();
        t.set_ipv6_prefix(128);
        t.open(5, key("2001:db8::3", 1000), 2, 0, now).unwrap();
        t.release_conn(1);
        t.release_conn(2);
        t.release_conn(5);
        t.set_ipv6_prefix(64);
        assert_eq!(t.live("2001:db8::9".parse().unwrap()), 0, "counts survive a prefix change");
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn the_21st_connect_is_refused_and_other_addresses_go_on() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        for i in 0..20 {
            t.open(i, key("127.0.0.2", 1000 + i as u16), 20, 0, now).unwrap();
        }
        assert_eq!(t.open(20, key("127.0.0.2", 2000), 20, 0, now), Err(Full { live: 20 }));
        t.open(21, key("127.0.0.3", 2000), 20, 0, now).unwrap();
        assert_eq!((t.live("127.0.0.2".parse().unwrap()), t.len()), (20, 21));
    }

    #[test]
    fn a_new_connect_on_the_same_connection_ends_the_previous_session() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        t.open(1, key("127.0.0.2", 1000), 1, 0, now).unwrap();
        t.open(1, key("127.0.0.2", 1001), 1, 0, now).unwrap();
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 1);
    }

    #[test]
    fn closing_the_policy_connection_frees_the_slot() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        t.open(1, key("127.0.0.2", 1000), 1, 0, now).unwrap();
        assert!(t.open(2, key("127.0.0.2", 1001), 1, 0, now).is_err());
        t.release_conn(1);
        t.open(2, key("127.0.0.2", 1001), 1, 0, now).unwrap();
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn kernel_check_drops_only_disconnected_sessions() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        t.open(1, key("127.0.0.2", 1000), 5, 0, now).unwrap();
        t.open(2, key("127.0.0.2", 1001), 5, 0, now).unwrap();
        let unknown_ports = SessionKey { client_port: None, ..key("127.0.0.2", 0) };
        t.open(3, unknown_ports, 5, 0, now).unwrap();
        let alive = Established::from_pairs([("127.0.0.1:25".parse().unwrap(), "127.0.0.2:1001".parse().unwrap())]);
        assert_eq!(t.forget_dead("127.0.0.2".parse().unwrap(), &alive), 1);
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 2);
        // The connection that held the dead session can start a new one without double release.
        t.open(1, key("127.0.0.2", 1002), 5, 0, now).unwrap();
        t.release_conn(1);
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 2);
    }

    #[test]
    fn other_requests_report_age_and_adopt_unknown_sessions() {
        let mut t = SessionTable::new();
        let t0 = Instant::now();
        t.open(1, key("127.0.0.2", 1000), 5, 0, t0).unwrap();
        // Another policy client (a different check_policy_service spec) of the same smtpd.
        let view = t.follow(9, key("127.0.0.2", 1000), t0 + Duration::from_secs(7));
        assert_eq!(view.age, Duration::from_secs(7));
        // It does not own the session, so its next session does not end this one.
        t.follow(9, key("127.0.0.2", 1001), t0 + Duration::from_secs(8));
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 2);
        t.follow(9, key("127.0.0.2", 1002), t0 + Duration::from_secs(9));
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 2, "adopted 1001 ended, 1002 adopted");
        t.release_conn(9);
        t.release_conn(1);
        assert!(t.is_empty());
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Open(ConnId, u8, u16),
            Follow(ConnId, u8, u16),
            Close(ConnId),
            End(u8, u16),
        }

        fn op() -> impl Strategy<Value = Op> {
            let conn = 0..6u64;
            let ip = 2..5u8;
            let port = 1000..1006u16;
            prop_oneof![
                (conn.clone(), ip.clone(), port.clone()).prop_map(|(c, i, p)| Op::Open(c, i, p)),
                (conn.clone(), ip.clone(), port.clone()).prop_map(|(c, i, p)| Op::Follow(c, i, p)),
                conn.prop_map(Op::Close),
                (ip, port).prop_map(|(i, p)| Op::End(i, p)),
            ]
        }

        proptest! {
            /// Whatever order Postfix's requests and closes come in, the per-IP counts equal the
            /// sessions held, no CONNECT goes beyond the limit, and closing every policy
            /// connection leaves nothing behind.
            #[test]
            fn counts_stay_exact_and_nothing_leaks(ops in proptest::collection::vec(op(), 0..60)) {
                let mut t = SessionTable::new();
                let now = Instant::now();
                let ip = |i: u8| format!("127.0.0.{i}");
                for op in ops {
                    match op {
                        Op::Open(c, i, p) => {
                            if t.open(c, key(&ip(i), p), 3, 0, now).is_ok() {
                                prop_assert!(t.live(ip(i).parse().unwrap()) <= 3);
                            }
                        }
                        Op::Follow(c, i, p) => { t.follow(c, key(&ip(i), p), now); }
                        Op::Close(c) => t.release_conn(c),
                        Op::End(i, p) => t.end(&key(&ip(i), p)),
                    }
                    let total: u32 = (2..5).map(|i| t.live(ip(i).parse().unwrap())).sum();
                    prop_assert_eq!(total as usize, t.len());
                    prop_assert!(t.owned.len() <= t.len());
                }
                for c in 0..6 {
                    t.release_conn(c);
                }
                prop_assert!(t.is_empty());
                prop_assert!(t.per_ip.is_empty());
            }
        }
    }

    #[test]
    fn a_reused_tuple_moves_to_the_new_owner() {
        let mut t = SessionTable::new();
        let now = Instant::now();
        t.open(1, key("127.0.0.2", 1000), 5, 0, now).unwrap();
        t.open(2, key("127.0.0.2", 1000), 5, 0, now).unwrap();
        t.release_conn(1);
        assert_eq!(t.live("127.0.0.2".parse().unwrap()), 1, "the old owner does not free the new session");
        t.release_conn(2);
        assert!(t.is_empty());
    }
}
