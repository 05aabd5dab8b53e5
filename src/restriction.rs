//! Access restrictions: the IPs, CIDR ranges and `first-last` ranges a secret may be used from.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;
use std::sync::Arc;

use ipnet::IpNet;

/// One allowed source: a network (a bare IP is a /32 or /128) or an inclusive address range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AllowEntry {
    Net(IpNet),
    Range(IpAddr, IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RestrictionError {
    #[error(
        "invalid address or network {0:?} (expected an IP, a CIDR like 10.0.0.0/24, or a range like 10.0.0.1-10.0.0.9)"
    )]
    Invalid(String),
    #[error("invalid range {0:?}: both ends must be of the same family and the first must not exceed the last")]
    BadRange(String),
    #[error("too many allow entries ({0}); at most {MAX_ALLOW_ENTRIES} are accepted")]
    TooMany(usize),
}

/// How many entries one restriction may hold. Checking an address walks the list, so an
/// unbounded one would make every login of that secret as slow as its holder likes.
pub const MAX_ALLOW_ENTRIES: usize = 64;

/// Turns an IPv4-mapped IPv6 address (`::ffff:192.0.2.1`) into the IPv4 address it carries,
/// so that IPv4 rules apply to clients seen through a dual-stack socket.
pub fn canonical_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl AllowEntry {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical_ip(ip);
        match self {
            Self::Net(net) => net.contains(&ip),
            Self::Range(first, last) => match (first, last, ip) {
                (IpAddr::V4(a), IpAddr::V4(b), IpAddr::V4(x)) => (*a..=*b).contains(&x),
                (IpAddr::V6(a), IpAddr::V6(b), IpAddr::V6(x)) => (*a..=*b).contains(&x),
                _ => false,
            },
        }
    }
}

fn parse_ip(s: &str) -> Option<IpAddr> {
    s.trim().parse::<IpAddr>().ok().map(canonical_ip)
}

impl FromStr for AllowEntry {
    type Err = RestrictionError;
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let s = input.trim();
        let invalid = || RestrictionError::Invalid(input.to_string());
        if s.contains('/') {
            let net: IpNet = s.parse().map_err(|_| invalid())?;
            return Ok(Self::Net(net.trunc()));
        }
        // An IPv6 address contains no '-', so a dash always separates a range.
        if let Some((a, b)) = s.split_once('-') {
            let (first, last) = (parse_ip(a).ok_or_else(invalid)?, parse_ip(b).ok_or_else(invalid)?);
            return match (first, last) {
                (IpAddr::V4(x), IpAddr::V4(y)) if x <= y => Ok(Self::Range(first, last)),
                (IpAddr::V6(x), IpAddr::V6(y)) if x <= y => Ok(Self::Range(first, last)),
                _ => Err(RestrictionError::BadRange(input.to_string())),
            };
        }
        let ip = parse_ip(s).ok_or_else(invalid)?;
        Ok(Self::Net(IpNet::from(ip)))
    }
}

impl fmt::Display for AllowEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Net(net) if net.prefix_len() == net.max_prefix_len() => write!(f, "{}", net.addr()),
            Self::Net(net) => write!(f, "{net}"),
            Self::Range(a, b) => write!(f, "{a}-{b}"),
        }
    }
}

/// The restriction of one secret. Empty means "from anywhere".
///
/// Parsed once, when the secret is read from the store; shared rather than copied, because a
/// grant (and its restriction) is cloned out of the login cache on every cached login.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessRestriction(Arc<[AllowEntry]>);

/// The outcome of checking a client address against a restriction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpCheck {
    Allowed,
    /// The address is outside every entry.
    Outside,
    /// The secret is restricted but the request carried no client address.
    Unknown,
}

impl AccessRestriction {
    pub fn unrestricted() -> Self {
        Self(Arc::from([]))
    }

    /// Parses what a user gave (CLI or API): at most [`MAX_ALLOW_ENTRIES`] entries.
    pub fn parse_all<S: AsRef<str>>(items: &[S]) -> Result<Self, RestrictionError> {
        if items.len() > MAX_ALLOW_ENTRIES {
            return Err(RestrictionError::TooMany(items.len()));
        }
        Self::parse_unbounded(items)
    }

    fn parse_unbounded<S: AsRef<str>>(items: &[S]) -> Result<Self, RestrictionError> {
        items.iter().map(|s| s.as_ref().parse()).collect::<Result<Vec<_>, _>>().map(|v| Self(v.into()))
    }

    /// Is every address this restriction allows also allowed by `outer`? An unrestricted
    /// `outer` contains everything; an unrestricted `self` is inside only an unrestricted `outer`.
    pub fn is_within(&self, outer: &AccessRestriction) -> bool {
        if outer.is_unrestricted() {
            return true;
        }
        if self.is_unrestricted() {
            return false;
        }
        let covered = merged_spans(outer.entries());
        self.entries().iter().map(AllowEntry::span).all(|s| covered.iter().any(|c| c.contains(&s)))
    }

    pub fn is_unrestricted(&self) -> bool {
        self.0.is_empty()
    }

    pub fn entries(&self) -> &[AllowEntry] {
        &self.0
    }

    pub fn check(&self, ip: Option<IpAddr>) -> IpCheck {
        if self.0.is_empty() {
            return IpCheck::Allowed;
        }
        match ip {
            None => IpCheck::Unknown,
            Some(ip) if self.0.iter().any(|e| e.contains(ip)) => IpCheck::Allowed,
            Some(_) => IpCheck::Outside,
        }
    }

    /// Display strings, as shown in `list` and `--json`.
    pub fn to_strings(&self) -> Vec<String> {
        self.0.iter().map(ToString::to_string).collect()
    }

    /// The stored form: entries separated by commas.
    pub fn to_db(&self) -> String {
        self.to_strings().join(",")
    }

    /// Reads the stored form. Not capped: a row written before the cap existed still loads.
    pub fn from_db(s: &str) -> Result<Self, RestrictionError> {
        let items: Vec<&str> = s.split(',').filter(|x| !x.is_empty()).collect();
        Self::parse_unbounded(&items)
    }
}

/// An entry as an inclusive interval of one address family, so that containment is numeric.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Span {
    v6: bool,
    first: u128,
    last: u128,
}

impl Span {
    fn contains(&self, inner: &Span) -> bool {
        self.v6 == inner.v6 && self.first <= inner.first && inner.last <= self.last
    }
}

fn ip_number(ip: IpAddr) -> (bool, u128) {
    match ip {
        IpAddr::V4(a) => (false, u128::from(u32::from(a))),
        IpAddr::V6(a) => (true, u128::from(a)),
    }
}

impl AllowEntry {
    fn span(&self) -> Span {
        let (first, last) = match self {
            Self::Net(net) => (net.network(), net.broadcast()),
            Self::Range(a, b) => (*a, *b),
        };
        let ((v6, first), (_, last)) = (ip_number(first), ip_number(last));
        Span { v6, first, last }
    }
}

/// The entries' spans, sorted and with overlapping or adjacent ones joined, so that an inner
/// entry covered by two outer ones together (10.0.0.0/25 and 10.0.0.128/25) counts as inside.
fn merged_spans(entries: &[AllowEntry]) -> Vec<Span> {
    let mut spans: Vec<Span> = entries.iter().map(AllowEntry::span).collect();
    spans.sort();
    let mut merged: Vec<Span> = Vec::with_capacity(spans.len());
    for s in spans {
        match merged.last_mut() {
            Some(m) if m.v6 == s.v6 && s.first <= m.last.saturating_add(1) => m.last = m.last.max(s.last),
            _ => merged.push(s),
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn refuses_bad_addresses_and_networks() {
        for bad in [
            "10.0.0.300",
            "10.0.0.0/33",
            "a-b",
            "",
            "::1/129",
            "10.0.0.9-10.0.0.1",
            "10.0.0.1-::1",
            "10.0.0.0/8/8",
            "10.0.0.1-",
        ] {
            assert!(bad.parse::<AllowEntry>().is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn matches_ips_networks_and_ranges_in_both_families() {
        let r = AccessRestriction::parse_all(&[
            "192.0.2.7",
            "10.1.0.0/16",
            "172.16.0.10-172.16.0.20",
            "2001:db8::/32",
            "fe80::1-fe80::ff",
        ])
        .unwrap();
        for yes in
            ["192.0.2.7", "10.1.255.1", "172.16.0.10", "172.16.0.20", "2001:db8::5", "fe80::80", "::ffff:10.1.2.3"]
        {
            assert_eq!(r.check(Some(ip(yes))), IpCheck::Allowed, "{yes}");
        }
        for no in ["192.0.2.8", "10.2.0.1", "172.16.0.21", "2001:db9::1", "fe80::100", "::1"] {
            assert_eq!(r.check(Some(ip(no))), IpCheck::Outside, "{no}");
        }
        assert_eq!(r.check(None), IpCheck::Unknown);
    }

    #[test]
    fn mapped_ipv6_in_a_rule_is_an_ipv4_rule() {
        let r = AccessRestriction::parse_all(&["::ffff:192.0.2.1"]).unwrap();
        assert_eq!(r.check(Some(ip("192.0.2.1"))), IpCheck::Allowed);
        assert_eq!(r.to_strings(), ["192.0.2.1"]);
    }

    #[test]
    fn unrestricted_allows_even_without_an_ip() {
        assert_eq!(AccessRestriction::unrestricted().check(None), IpCheck::Allowed);
    }

    fn restriction(items: &[&str]) -> AccessRestriction {
        AccessRestriction::parse_all(items).unwrap()
    }

    #[test]
    fn inside_holds_for_subsets_and_unions_of_neighbours() {
        let outer = restriction(&["10.0.0.0/25", "10.0.0.128/25", "192.0.2.7", "2001:db8::/32"]);
        for inside in [
            &["10.0.0.0/24"][..],
            &["10.0.0.1-10.0.0.200"],
            &["192.0.2.7"],
            &["10.0.0.5", "2001:db8:1::/48"],
            &["::ffff:192.0.2.7"],
        ] {
            assert!(restriction(inside).is_within(&outer), "{inside:?}");
        }
        for outside in [
            &["10.0.0.0/23"][..],
            &["192.0.2.6-192.0.2.7"],
            &["192.0.2.8"],
            &["10.0.0.5", "2001:db9::1"],
            &["0.0.0.0/0"],
        ] {
            assert!(!restriction(outside).is_within(&outer), "{outside:?}");
        }
    }

    #[test]
    fn unrestricted_is_inside_only_unrestricted() {
        let any = AccessRestriction::unrestricted();
        let some = restriction(&["127.0.0.1"]);
        assert!(any.is_within(&any));
        assert!(some.is_within(&any));
        assert!(!any.is_within(&some));
    }

    #[test]
    fn families_never_cover_each_other() {
        // ::/0 spans every IPv6 number, including those equal to IPv4 numbers.
        assert!(!restriction(&["10.0.0.1"]).is_within(&restriction(&["::/0"])));
        assert!(!restriction(&["::a00:1"]).is_within(&restriction(&["0.0.0.0/0"])));
    }

    #[test]
    fn a_clone_shares_the_parsed_entries() {
        // Grants are cloned out of the login cache on every cached login.
        let r = restriction(&["10.0.0.0/8", "192.0.2.1"]);
        assert!(std::ptr::eq(r.clone().entries().as_ptr(), r.entries().as_ptr()));
    }

    #[test]
    fn input_is_capped_but_stored_rows_still_load() {
        let many: Vec<String> = (0..=MAX_ALLOW_ENTRIES).map(|i| format!("10.0.{}.{}", i / 256, i % 256)).collect();
        assert_eq!(AccessRestriction::parse_all(&many).unwrap_err(), RestrictionError::TooMany(65));
        assert!(AccessRestriction::parse_all(&many[..MAX_ALLOW_ENTRIES]).is_ok());
        assert_eq!(AccessRestriction::from_db(&many.join(",")).unwrap().entries().len(), 65);
    }

    #[test]
    fn db_form_round_trips_and_networks_are_truncated() {
        let r = AccessRestriction::parse_all(&["10.1.2.3/16", "::1", "1.2.3.4-1.2.3.9"]).unwrap();
        assert_eq!(r.to_db(), "10.1.0.0/16,::1,1.2.3.4-1.2.3.9");
        assert_eq!(AccessRestriction::from_db(&r.to_db()).unwrap(), r);
    }
}
