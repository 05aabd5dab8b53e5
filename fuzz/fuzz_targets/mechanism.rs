//! Fuzzes the PLAIN/LOGIN mechanism decoder with arbitrary client bytes. Invariants: no panic;
//! base64 is canonical (what decodes re-encodes to the same text); whatever PLAIN or LOGIN
//! accepts is a non-empty username and password without NUL, and a PLAIN message rebuilt from
//! it decodes to the same credentials; only base64 decoding reports invalid base64.
#![no_main]

use libfuzzer_sys::fuzz_target;
use relaykey::auth::mechanism::{
    Credentials, MechanismError, decode_base64, decode_login_password, decode_login_username, decode_plain,
    encode_base64, normalize_username,
};

fn check(c: &Credentials) {
    let password = c.secret.expose();
    assert!(!c.username.is_empty() && !password.is_empty());
    assert!(!c.username.contains('\0') && !password.contains('\0'));
    let rebuilt = [b"\0", c.username.as_bytes(), b"\0", password.as_bytes()].concat();
    let again = decode_plain(&rebuilt).expect("rebuilt PLAIN message decodes");
    assert_eq!((again.username.as_str(), again.secret.expose()), (c.username.as_str(), password));
}

fuzz_target!(|data: &[u8]| {
    match decode_base64(data) {
        Ok(bytes) if data != b"=" => assert_eq!(encode_base64(&bytes).as_bytes(), data),
        Ok(bytes) => assert!(bytes.is_empty()),
        Err(e) => assert_eq!(e, MechanismError::InvalidBase64),
    }
    match decode_plain(data) {
        Ok(c) => {
            check(&c);
            let authzid = data.split(|&b| b == 0).next().unwrap_or_default();
            let authzid = std::str::from_utf8(authzid).expect("accepted authzid is UTF-8");
            assert!(authzid.is_empty() || normalize_username(authzid) == normalize_username(&c.username));
        }
        Err(e) => assert_ne!(e, MechanismError::InvalidBase64),
    }
    // LOGIN: the first half is the username, the rest the password.
    let (user, password) = data.split_at(data.len() / 2);
    match (decode_login_username(user), decode_login_password(password)) {
        (Ok(username), Ok(secret)) => check(&Credentials { username, secret }),
        (Err(e), _) | (_, Err(e)) => assert_ne!(e, MechanismError::InvalidBase64),
    }
});
