//! Fuzzes what DKIM reads of a message: the header/body split and body hash are the same
//! however the message is split into pieces, the header fields put back together are the
//! header section, the relaxed canonicalizations are fixed points, and a header field's canonical
//! form has no line break but its final CRLF.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::dkim::MessageDigest;
use relaykey::dkim::canonical::{relaxed_body, relaxed_header};
use relaykey::dkim::header_fields::{select, signed_names, split_fields};

fuzz_target!(|data: &[u8]| {
    let mut whole = MessageDigest::new();
    whole.feed(data);
    let whole = whole.finish();
    let chunk = data.first().map_or(1, |b| usize::from(*b % 7) + 1);
    let mut split = MessageDigest::new();
    for piece in data.chunks(chunk) {
        split.feed(piece);
    }
    assert_eq!(split.finish(), whole);

    let fields = split_fields(data);
    assert_eq!(fields.iter().flat_map(|f| f.raw.iter().copied()).collect::<Vec<u8>>(), data);
    let names = signed_names(&fields);
    assert_eq!(select(&fields, &names).len(), names.len());
    for field in &fields {
        let mut once = Vec::new();
        relaxed_header(field.raw, &mut once);
        let line = &once[..once.len() - 2];
        assert!(!line.contains(&b'\r') && !line.contains(&b'\n') && once.ends_with(b"\r\n"));
        let mut twice = Vec::new();
        relaxed_header(&once, &mut twice);
        assert_eq!(twice, once);
    }

    let body = relaxed_body(data);
    assert_eq!(relaxed_body(&body), body);
});
