//! Fuzzes the Dovecot passwd-file reader: it never panics, reports lines in order with numbers
//! inside the file, and every hash it accepts reads back the same from its stored form (and,
//! for the cheap digest schemes, verifies without panicking).
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::import::passwd_file::{DefaultScheme, Password, parse};
use relaykey::legacy_hash::{LegacyHash, ValueKind};
use relaykey::secret::Secret;

/// Small, so that an argon2 hash the fuzzer writes is refused rather than computed.
const MAX_KIB: u32 = 64;

fuzz_target!(|data: &[u8]| {
    let default = match data.first() {
        Some(b) if b % 2 == 0 => DefaultScheme::new("PLAIN"),
        _ => DefaultScheme::default(),
    };
    let lines = data.split(|b| *b == b'\n').count();
    let mut last = 0;
    for item in parse(data, &default, MAX_KIB) {
        let line = match &item {
            Ok(entry) => entry.line,
            Err(e) => e.line,
        };
        assert!(line > last && line <= lines, "line {line} after {last} of {lines}");
        last = line;
        if let Ok(entry) = item
            && let Password::Hash(hash) = entry.password
        {
            let stored = hash.stored();
            assert_eq!(LegacyHash::parse_stored(&stored, MAX_KIB).as_ref(), Some(&hash), "{stored}");
            if matches!(hash.scheme.value_kind(), ValueKind::Digest { .. }) {
                let _ = hash.verify(&Secret::from_presented(entry.user), &mut Vec::new(), MAX_KIB);
            }
        }
    }
});
