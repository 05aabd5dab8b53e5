use super::*;
use crate::import::passwd_file::{DefaultScheme, Password, password};

const MAX_KIB: u32 = 1024 * 1024;
const PASSWORD: &str = "correct horse";

/// Made with Dovecot 2.3's `doveadm pw -s SCHEME -p 'correct horse'`.
const DOVEADM: &[(&str, &str)] = &[
    (
        "ARGON2ID",
        "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$w4WqDH3+0EW13y7AudwF7g$4Vd56YNAEqu3K1TTZoT9PqQXNXcED1YbFUnLL2ZZ1WQ",
    ),
    (
        "ARGON2I",
        "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$ooopcHI4Neq1SV9pMqnSvg$5jaMhjXRImZ4K2Ocd/KKk5vqdJZkEh+9LpZ3B6gD7mg",
    ),
    ("BLF-CRYPT", "{BLF-CRYPT}$2y$05$r6Rt3bDKSM0lDhH9JB7wQeu4G.vQecrsLIh2rfj17IMe4mgwcHMSG"),
    ("BLF-CRYPT", "{BLF-CRYPT}$2y$08$/WtmeRStQDAfTFk86FH/q.shP2XL.4xXKtHNJtgTuj86LNz/m6ymC"),
    (
        "SHA512-CRYPT",
        "{SHA512-CRYPT}$6$wT6e/JV5dTXSpPFp$g8wVbmRt90zrKhPuA8QFaU4rg62DR.8PGn19aPjbZjVBUOYIyOr026oK43NBEbkRjutQ6wkitM.Xq2YCFdEVV1",
    ),
    (
        "SHA512-CRYPT",
        "{SHA512-CRYPT}$6$rounds=6000$0qyC5pyo29WEAlqf$Ea.Gu2E5/qx2s9jY3tOr281ldSCMyiDBshE7oTmfYmBjBQtc816VH.4iL7/az4xe4AqpPzXn71sMVuUM6Ig8J/",
    ),
    ("SHA256-CRYPT", "{SHA256-CRYPT}$5$cnu8ELJSvy7QP7yY$1pOJIIeIIoPLzPeiXWuf3GGlFx7kDVXnG51YjTuuQnD"),
    ("MD5-CRYPT", "{MD5-CRYPT}$1$zH.E.V.O$Z9Rqvzy4UbZTVW8BtLzbo0"),
    ("DES-CRYPT", "{DES-CRYPT}Alm0.Ydz53ZjE"),
    ("PLAIN-MD5", "{PLAIN-MD5}3cb4e732631f47e6eb961f34554b7cde"),
    ("PLAIN-MD5", "{LDAP-MD5}PLTnMmMfR+brlh80VUt83g=="),
    ("PLAIN-MD5", "{PLAIN-MD5.B64}PLTnMmMfR+brlh80VUt83g=="),
    ("SMD5", "{SMD5}Gjd2y++Ee6uvl6FocVbq7GhtEnY="),
    ("SHA", "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="),
    ("SSHA", "{SSHA}GtZnHR7FB8gAbT4ELEld+wEkrL1pAa+F"),
    ("SSHA", "{SSHA.HEX}06108396ebb1fb17ae60bcab0ffae43f22bd58c9d9b34302"),
    ("SHA256", "{SHA256}QQTTb42iwlQ0n4WDZ5Pr4CngyVcGOjTJHC6SAxh7VjE="),
    ("SSHA256", "{SSHA256}AvVdLR20MYugCM8eBMRJl69Rm+FAqchxOg8AJu70LN2dEWSS"),
    ("SHA512", "{SHA512}VraY3v7bWkNbY0r+MyC7rz/c2SC2xQOkRvx7endrKY1HnRumqLYXgI6wv1ec6aldZoNHvKtxSQhayTyyeZUZew=="),
    (
        "SSHA512",
        "{SSHA512}O77Q0+VztUth/yfv56ktdrV4mpbKwZnlo7ciDvZdp81E5oVjZRk7QFhEKHWjCH4O1krcobJ4rOyOYmlfAqFWwdZfVEM=",
    ),
    // CRYPT is crypt(3): the prefix tells (doveadm's CRYPT writes bcrypt).
    ("BLF-CRYPT", "{CRYPT}$2y$05$r6Rt3bDKSM0lDhH9JB7wQeu4G.vQecrsLIh2rfj17IMe4mgwcHMSG"),
    (
        "SHA512-CRYPT",
        "$6$wT6e/JV5dTXSpPFp$g8wVbmRt90zrKhPuA8QFaU4rg62DR.8PGn19aPjbZjVBUOYIyOr026oK43NBEbkRjutQ6wkitM.Xq2YCFdEVV1",
    ),
];

fn hash_of(field: &str) -> LegacyHash {
    match password(field, &DefaultScheme::default(), MAX_KIB) {
        Ok(Password::Hash(h)) => h,
        other => panic!("{field}: {other:?}"),
    }
}

#[test]
fn every_doveadm_hash_verifies_its_password_and_only_it() {
    let mut memory = Vec::new();
    for (scheme, field) in DOVEADM {
        let hash = hash_of(field);
        assert_eq!(hash.scheme.name(), *scheme, "{field}");
        assert!(hash.verify(&Secret::from_presented(PASSWORD), &mut memory, MAX_KIB), "{field}");
        // DES-crypt reads 8 characters only: the wrong one differs in the first.
        assert!(!hash.verify(&Secret::from_presented("xorrect horse"), &mut memory, MAX_KIB), "{field}");
    }
}

#[test]
fn the_stored_form_reads_back_the_same_and_verifies_the_same() {
    let mut memory = Vec::new();
    for (_, field) in DOVEADM {
        let hash = hash_of(field);
        let stored = hash.stored();
        assert!(is_imported(&stored) && stored.starts_with(&format!("{{{}}}", hash.scheme.name())));
        let back = LegacyHash::parse_stored(&stored, MAX_KIB).expect("reads back");
        assert_eq!(back, hash);
        // (argon2 at Dovecot's cost is slow in a debug build, and verified above.)
        if !matches!(hash.scheme, Scheme::Argon2id | Scheme::Argon2i) {
            assert!(back.verify(&Secret::from_presented(PASSWORD), &mut memory, MAX_KIB));
        }
    }
}

#[test]
fn only_the_five_slow_schemes_are_kept() {
    let kept: Vec<_> = Scheme::ALL.into_iter().filter(|s| s.strength() == Strength::Kept).map(Scheme::name).collect();
    assert_eq!(kept, ["ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT"]);
    for name in ["MD5", "md5-crypt", "SHA1", "LDAP-MD5", "ssha512"] {
        assert_eq!(Scheme::from_name(name).map(Scheme::strength), Some(Strength::Weak), "{name}");
    }
}

#[test]
fn costs_above_the_ceilings_are_refused() {
    let bcrypt_31 = "$2y$31$r6Rt3bDKSM0lDhH9JB7wQeu4G.vQecrsLIh2rfj17IMe4mgwcHMSG";
    assert_eq!(LegacyHash::crypt(Scheme::BlfCrypt, bcrypt_31, MAX_KIB), Err(HashFormatError::BcryptCost(31)));
    let rounds = "$6$rounds=999999999$0qyC5pyo29WEAlqf$Ea.Gu2E5/qx2s9jY3tOr281ldSCMyiDBshE7oTmfYmBjBQtc816VH.4iL7/az4xe4AqpPzXn71sMVuUM6Ig8J/";
    assert_eq!(
        LegacyHash::crypt(Scheme::Sha512Crypt, rounds, MAX_KIB),
        Err(HashFormatError::ShaCryptRounds(999_999_999))
    );
    let argon = "$argon2id$v=19$m=65536,t=3,p=1$w4WqDH3+0EW13y7AudwF7g$4Vd56YNAEqu3K1TTZoT9PqQXNXcED1YbFUnLL2ZZ1WQ";
    assert_eq!(LegacyHash::crypt(Scheme::Argon2id, argon, 1024), Err(HashFormatError::Argon2Memory(65536, 1024)));
    assert!(LegacyHash::parse_stored(&format!("{{BLF-CRYPT}}{bcrypt_31}"), MAX_KIB).is_none(), "nor verified");
}

#[test]
fn a_value_of_another_scheme_or_form_is_refused() {
    let sha256 = "$5$cnu8ELJSvy7QP7yY$1pOJIIeIIoPLzPeiXWuf3GGlFx7kDVXnG51YjTuuQnD";
    assert!(matches!(
        LegacyHash::crypt(Scheme::Sha512Crypt, sha256, MAX_KIB),
        Err(HashFormatError::WrongScheme { .. })
    ));
    assert!(LegacyHash::crypt(Scheme::BlfCrypt, "$2y$05$short", MAX_KIB).is_err());
    assert!(LegacyHash::digest(Scheme::Sha1, vec![0; 19]).is_err());
    assert!(LegacyHash::digest(Scheme::Ssha, vec![0; 20]).is_err(), "a salted digest needs a salt");
    for stored in ["$argon2id$v=19$m=64,t=1,p=1$c2FsdHNhbHQ$aGFzaA", "{NOPE}x", "{SHA}zz", "{SHA", ""] {
        assert!(LegacyHash::parse_stored(stored, MAX_KIB).is_none(), "{stored}");
    }
}

#[test]
fn the_rehash_salt_depends_on_the_credential_and_the_hash() {
    let a = rehash_salt(1, "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A=");
    assert_eq!(a, rehash_salt(1, "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="));
    assert_ne!(a, rehash_salt(2, "{SHA}L55TUjtiq8FBorTWAZ0jy6g129A="));
    assert_ne!(a, rehash_salt(1, "{SHA}M55TUjtiq8FBorTWAZ0jy6g129A="));
}
