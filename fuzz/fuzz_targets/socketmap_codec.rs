//! Socketmap codec: arbitrary bytes never panic, a decoded request stays within its input and
//! within the size cap, decoding what the encoder wrote gives back the same request, a request
//! decodes the same however the bytes are split, and replies built from any values round-trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::senders::socketmap::codec::{
    MAX_REQUEST, Reply, decode_reply, decode_request, encode_reply, encode_request,
};

fuzz_target!(|data: &[u8]| {
    let whole = decode_request(data);
    if let Ok(Some((request, used))) = &whole {
        assert!(*used <= data.len());
        assert!(request.name.len() + request.key.len() < MAX_REQUEST + 8);
        // Lossy UTF-8 changes invalid bytes, so only valid text round-trips byte for byte.
        if !request.name.contains('\u{FFFD}') && !request.key.contains('\u{FFFD}') && !request.name.contains(' ') {
            let mut wire = Vec::new();
            encode_request(request, &mut wire);
            let (back, n) = decode_request(&wire).expect("own encoding decodes").expect("complete");
            assert_eq!(n, wire.len());
            assert_eq!(&back, request);
        }
        // Any prefix of a complete request is incomplete, never an error or another request.
        for cut in 0..*used {
            assert_eq!(decode_request(&data[..cut]), Ok(None));
        }
    }
    let values: Vec<&str> = std::str::from_utf8(data).map(|t| t.split(',').collect()).unwrap_or_default();
    let reply = Reply::found(&values);
    let mut out = Vec::new();
    encode_reply(&reply, &mut out);
    let (back, n) = decode_reply(&out).expect("own reply decodes").expect("complete");
    assert_eq!(n, out.len());
    if let Reply::Ok(data) = &back {
        assert!(!data.is_empty());
    }
    assert_eq!(back, reply);
});
