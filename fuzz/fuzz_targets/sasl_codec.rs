//! Fuzzes the Dovecot-protocol codec and session with arbitrary client bytes. Invariants: no
//! panic; every line the framer yields is within the limit; whatever parses re-encodes to a
//! line that parses to the same value; escaping round-trips.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use relaykey::sasl::codec::{LineBuffer, MAX_LINE, escape_into, parse_reply, parse_request, unescape};
use relaykey::sasl::session::{Input, Session};

fuzz_target!(|data: &[u8]| {
    // Feed in two chunks so that framing across reads is exercised.
    let (a, b) = data.split_at(data.first().map_or(0, |&n| usize::from(n)).min(data.len()));
    let mut lines = LineBuffer::default();
    let mut session = Session::new(data.len() % 2 == 0);
    let now = Instant::now();
    for chunk in [a, b] {
        lines.extend(chunk);
        loop {
            let line = match lines.next_line() {
                Ok(Some(line)) => line,
                Ok(None) => break,
                Err(_) => return,
            };
            assert!(line.len() <= MAX_LINE);
            assert!(!line.contains(&b'\n'));
            let parsed = parse_request(&line);
            if let Ok(req) = &parsed {
                let mut out = Vec::new();
                req.encode(&mut out);
                assert_eq!(out.pop(), Some(b'\n'));
                assert_eq!(parse_request(&out).as_ref(), Ok(req), "request round trip");
            }
            if let Ok(reply) = parse_reply(&line) {
                let mut out = Vec::new();
                reply.encode(&mut out);
                assert_eq!(out.pop(), Some(b'\n'));
                assert_eq!(parse_reply(&out), Ok(reply), "reply round trip");
            }
            let _ = session.on_input(Input::Line(parsed), now);
            let mut escaped = Vec::new();
            escape_into(&mut escaped, &line);
            assert_eq!(unescape(&escaped), line);
        }
    }
});
