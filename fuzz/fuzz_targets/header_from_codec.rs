//! Fuzzes the From: header reader: it never panics, a header section is kept the same however
//! the message is split, and every list it reads reads back the same when written plainly.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::header_from::{HeadCapture, from_addresses, parse_address_list};

fuzz_target!(|data: &[u8]| {
    let mut whole = HeadCapture::new();
    whole.feed(data);
    let chunk = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    let mut split = HeadCapture::new();
    for piece in data.chunks(chunk) {
        split.feed(piece);
    }
    assert_eq!(split.head(), whole.head());
    if let Ok(head) = whole.head() {
        let _ = from_addresses(head);
    }
    if let Ok(found) = parse_address_list(&String::from_utf8_lossy(data)) {
        let written: Vec<String> = found.iter().map(|m| m.to_string()).collect();
        assert_eq!(parse_address_list(&written.join(", ")), Ok(found));
    }
});
