//! The trace header the relay adds to each message it accepts (RFC 5321 §4.4), and RFC 5322
//! dates, computed from Unix time without a calendar crate.

use std::net::IpAddr;

/// What the `Received:` header records.
pub struct Trace<'a> {
    pub helo: &'a str,
    pub client_ip: IpAddr,
    pub hostname: &'a str,
    /// RFC 3848 `with` keyword: ESMTP, ESMTPS, ESMTPSA, ...
    pub protocol: &'a str,
    pub id: &'a str,
    /// Only named when there is one recipient, so that Bcc recipients stay private.
    pub single_recipient: Option<&'a str>,
    pub unix_time: u64,
}

/// A HELO name longer than a domain name can be (RFC 1035) is cut here too, whatever the
/// caller checked, so the header stays bounded.
const MAX_HELO: usize = 255;

impl Trace<'_> {
    pub fn header(&self) -> String {
        let mut end = self.helo.len().min(MAX_HELO);
        while !self.helo.is_char_boundary(end) {
            end -= 1;
        }
        let helo = &self.helo[..end];
        let for_clause = self.single_recipient.map(|r| format!("\r\n\tfor <{r}>")).unwrap_or_default();
        format!(
            "Received: from {} ([{}])\r\n\tby {} (relaykey) with {} id {}{};\r\n\t{}\r\n",
            helo,
            self.client_ip,
            self.hostname,
            self.protocol,
            self.id,
            for_clause,
            rfc5322_date(self.unix_time)
        )
    }
}

/// `Mon, 30 Nov 2026 09:58:00 +0000`.
pub fn rfc5322_date(unix: u64) -> String {
    const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
    const MONTHS: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
    let days = unix / 86_400;
    let secs = unix % 86_400;
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{}, {:02} {} {} {:02}:{:02}:{:02} +0000",
        DAYS[(days % 7) as usize],
        d,
        MONTHS[(m - 1) as usize],
        y,
        secs / 3600,
        secs % 3600 / 60,
        secs % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), after Howard Hinnant's `civil_from_days`.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_match_known_instants() {
        assert_eq!(rfc5322_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
        assert_eq!(rfc5322_date(951_782_400), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc5322_date(1_798_710_000), "Thu, 31 Dec 2026 09:40:00 +0000");
    }

    #[test]
    fn header_names_a_single_recipient_only() {
        let mut t = Trace {
            helo: "c.example",
            client_ip: "192.0.2.1".parse().unwrap(),
            hostname: "relay.example",
            protocol: "ESMTPSA",
            id: "ABC",
            single_recipient: Some("b@example.net"),
            unix_time: 0,
        };
        let h = t.header();
        assert!(h.starts_with(
            "Received: from c.example ([192.0.2.1])\r\n\tby relay.example (relaykey) with ESMTPSA id ABC"
        ));
        assert!(h.contains("for <b@example.net>;") && h.ends_with("+0000\r\n"));
        t.single_recipient = None;
        assert!(!t.header().contains("for <"));
    }

    #[test]
    fn a_long_helo_is_cut_at_255_octets() {
        let helo = format!("{}é", "a".repeat(254));
        let t = Trace {
            helo: &helo,
            client_ip: "192.0.2.1".parse().unwrap(),
            hostname: "relay.example",
            protocol: "ESMTP",
            id: "ABC",
            single_recipient: None,
            unix_time: 0,
        };
        assert!(t.header().starts_with(&format!("Received: from {} ([192.0.2.1])", "a".repeat(254))));
    }
}
