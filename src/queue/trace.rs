//! The trace header put in front of each message the queue accepts (RFC 5321 §4.4), by the
//! relay's DATA and the API's send alike.

use std::net::IpAddr;

use crate::mail_date::rfc5322_date;

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

#[cfg(test)]
mod tests {
    use super::*;

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
