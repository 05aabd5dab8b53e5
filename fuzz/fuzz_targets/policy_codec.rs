//! Postfix policy codec: arbitrary bytes never panic, the server's one-pass decoder agrees
//! with the attribute decoder, a decoded request stays within its
//! input, decoding what the encoder wrote gives back the same attributes, and any action the
//! config parser accepts encodes to a non-empty, non-numeric, single-line reply.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::policy::Action;
use relaykey::policy::codec::{PolicyRequest, decode_policy_request, decode_request, encode_reply, encode_request};

fuzz_target!(|data: &[u8]| {
    // The server's one-pass decoder reads exactly what the attribute decoder reads.
    let slow = decode_request(data).map(|r| r.map(|(attrs, n)| (PolicyRequest::from_attributes(&attrs), n)));
    match (slow, decode_policy_request(data)) {
        (Ok(Some((Ok(a), n))), Ok(Some((b, m)))) => assert_eq!((a, n), (b, m)),
        (Ok(Some((Err(a), _))), Err(b)) | (Err(a), Err(b)) => assert_eq!(a, b),
        (Ok(None), Ok(None)) => {}
        (slow, fast) => panic!("decoders disagree: {slow:?} vs {fast:?}"),
    }
    if let Ok(Some((attrs, used))) = decode_request(data) {
        assert!(used <= data.len());
        // A trailing CR is taken as part of a CRLF line end, so such values cannot round-trip.
        if attrs.0.iter().all(|(_, v)| !v.ends_with('\r')) {
            let mut wire = Vec::new();
            encode_request(&attrs, &mut wire);
            let (back, n) = decode_request(&wire).expect("own encoding decodes").expect("complete");
            assert_eq!(n, wire.len());
            assert_eq!(back, attrs);
        }
    }
    if let Ok(text) = std::str::from_utf8(data)
        && let Ok(action) = text.parse::<Action>()
    {
        let mut out = Vec::new();
        encode_reply(&action, &mut out);
        let value = out.strip_prefix(b"action=").expect("prefix").strip_suffix(b"\n\n").expect("suffix");
        assert!(!value.is_empty() && !value.contains(&b'\n'));
        assert!(!value.iter().all(u8::is_ascii_digit));
    }
});
