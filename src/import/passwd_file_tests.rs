use proptest::prelude::*;

use super::*;

const MAX_KIB: u32 = 1024 * 1024;

fn parsed(text: &str) -> Vec<Result<Entry, LineError>> {
    parse(text.as_bytes(), &DefaultScheme::default(), MAX_KIB)
}

fn plain(entry: &Result<Entry, LineError>) -> Option<(&str, &str)> {
    match entry {
        Ok(Entry { user, password: Password::Plain(s), .. }) => Some((user.as_str(), s.expose())),
        _ => None,
    }
}

fn problem(entry: &Result<Entry, LineError>) -> Option<(usize, &LineProblem)> {
    entry.as_ref().err().map(|e| (e.line, &e.reason))
}

#[test]
fn skips_blank_lines_and_comments_and_counts_lines_from_one() {
    let out = parsed("# users\n\n   \r\na@example.com:{PLAIN}pw\r\n#b@example.com:{PLAIN}x\n");
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].as_ref().map(|e| e.line).ok(), Some(4));
    assert_eq!(plain(&out[0]), Some(("a@example.com", "pw")), "the CR of a CRLF file is not the password's");
}

#[test]
fn only_user_and_password_matter_and_the_other_fields_may_be_absent() {
    let full = "a@example.com:{PLAIN}pw:1000:1000:Alice A.:/home/a:/bin/false:userdb_quota_rule=*:storage=1G nodelay";
    for line in [full, "a@example.com:{PLAIN}pw", "a@example.com:{PLAIN}pw::", "a@example.com:{PLAIN}pw:::::::"] {
        assert_eq!(plain(&parsed(line)[0]), Some(("a@example.com", "pw")), "{line}");
    }
}

#[test]
fn malformed_lines_are_refused_with_their_line_number() {
    let out = parsed("a@example.com\n:{PLAIN}pw\nb@example.com:\nc@example.com:{PLAIN\nd@example.com:{PLAIN}\n");
    let problems: Vec<_> = out.iter().map(problem).collect();
    assert_eq!(
        problems,
        [
            Some((1, &LineProblem::NoPasswordField)),
            Some((2, &LineProblem::NoUser)),
            Some((3, &LineProblem::EmptyPassword)),
            Some((4, &LineProblem::UnclosedScheme)),
            Some((5, &LineProblem::EmptyPassword)),
        ]
    );
    assert_eq!(out[0].as_ref().err().and_then(|e| e.user.as_deref()), Some("a@example.com"));
    let not_utf8 = parse(b"ok@example.com:{PLAIN}x\n\xff\xfe:{PLAIN}y\n", &DefaultScheme::default(), MAX_KIB);
    assert_eq!(problem(&not_utf8[1]), Some((2, &LineProblem::NotUtf8)));
}

#[test]
fn schemes_are_case_insensitive_and_encodings_decode() {
    for field in ["{plain}pw", "{CLEAR}pw", "{Cleartext}pw", "{PLAIN.B64}cHc=", "{PLAIN.HEX}7077", "{plain.base64}cHc="]
    {
        match password(field, &DefaultScheme::default(), MAX_KIB) {
            Ok(Password::Plain(s)) => assert_eq!(s.expose(), "pw", "{field}"),
            other => panic!("{field}: {other:?}"),
        }
    }
    let b64 = "{SHA512-CRYPT.B64}JDYkd1Q2ZS9KVjVkVFhTcFBGcCRnOHdWYm1SdDkwenJLaFB1QThRRmFVNHJnNjJEUi44UEduMTlhUGpiWmpWQlVPWUl5T3IwMjZvSzQzTkJFYmtSanV0UTZ3a2l0TS5YcTJZQ0ZkRVZWMQ==";
    match password(b64, &DefaultScheme::default(), MAX_KIB) {
        Ok(Password::Hash(h)) => assert!(h.stored().starts_with("{SHA512-CRYPT}$6$wT6e/JV5dTXSpPFp$")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_unverifiable_and_mismatched_schemes_are_told_apart() {
    let p = |field| password(field, &DefaultScheme::default(), MAX_KIB).err();
    assert_eq!(p("{NOPE}x"), Some(LineProblem::UnknownScheme("NOPE".into())));
    assert_eq!(p("{CRAM-MD5}27bc4b33"), Some(LineProblem::Unverifiable("CRAM-MD5".into())));
    assert_eq!(p("{SHA.ZIP}x"), Some(LineProblem::UnknownEncoding("ZIP".into())));
    assert_eq!(p("{CRYPT}not-a-crypt-string"), Some(LineProblem::UnknownCrypt));
    assert!(matches!(p("{SHA512-CRYPT}$1$zH.E.V.O$Z9Rqvzy4UbZTVW8BtLzbo0"), Some(LineProblem::Hash(_))));
    assert!(matches!(p("{SHA}!!!"), Some(LineProblem::BadEncoding(_))));
}

#[test]
fn a_bare_password_is_in_the_default_scheme() {
    let bare = "$1$zH.E.V.O$Z9Rqvzy4UbZTVW8BtLzbo0";
    assert!(
        matches!(password(bare, &DefaultScheme::default(), MAX_KIB), Ok(Password::Hash(h)) if h.scheme == Scheme::Md5Crypt)
    );
    assert!(matches!(password("pw", &DefaultScheme::new("PLAIN"), MAX_KIB), Ok(Password::Plain(_))));
    assert_eq!(
        password("pw", &DefaultScheme::new("bogus"), MAX_KIB).err(),
        Some(LineProblem::UnknownScheme("bogus".into()))
    );
    // libpam-pwdfile's suffixes: [13] is CRYPT (here DES), [34] PLAIN-MD5.
    assert!(
        matches!(password("Alm0.Ydz53ZjE[13]", &DefaultScheme::default(), MAX_KIB), Ok(Password::Hash(h)) if h.scheme == Scheme::DesCrypt)
    );
    assert!(
        matches!(password("3cb4e732631f47e6eb961f34554b7cde[34]", &DefaultScheme::default(), MAX_KIB), Ok(Password::Hash(h)) if h.scheme == Scheme::PlainMd5)
    );
}

proptest! {
    #[test]
    fn any_bytes_parse_without_panic_and_lines_stay_in_order(text in proptest::collection::vec(any::<u8>(), 0..400)) {
        let lines = text.split(|b| *b == b'\n').count();
        let out = parse(&text, &DefaultScheme::default(), MAX_KIB);
        let numbers: Vec<usize> = out.iter().map(|r| match r { Ok(e) => e.line, Err(e) => e.line }).collect();
        prop_assert!(numbers.windows(2).all(|w| w[0] < w[1]));
        prop_assert!(numbers.iter().all(|n| (1..=lines).contains(n)));
    }

    #[test]
    fn a_plain_line_gives_back_its_user_and_password(
        user in "[a-z0-9.]{1,20}@[a-z0-9]{1,10}\\.example",
        pw in "[^:\r\n\\{ ][^:\r\n]{0,40}",
        rest in "(:[^:\r\n]{0,10}){0,6}",
    ) {
        let text = format!("{user}:{{PLAIN}}{pw}{rest}\n");
        let out = parsed(&text);
        prop_assert_eq!(plain(&out[0]), Some((user.as_str(), pw.as_str())));
    }

    #[test]
    fn every_encoding_of_a_digest_reads_the_same(bytes in proptest::collection::vec(any::<u8>(), 21..60)) {
        let b64 = STANDARD.encode(&bytes);
        let hex = hex::encode(&bytes);
        let fields = [format!("{{SSHA}}{b64}"), format!("{{SSHA.B64}}{b64}"), format!("{{ssha.hex}}{hex}")];
        let hashes: Vec<_> = fields.iter().map(|f| match password(f, &DefaultScheme::default(), MAX_KIB) {
            Ok(Password::Hash(h)) => Some(h),
            _ => None,
        }).collect();
        prop_assert!(hashes[0].is_some());
        prop_assert!(hashes.iter().all(|h| h == &hashes[0]));
        let stored = hashes[0].as_ref().map(LegacyHash::stored).unwrap_or_default();
        let back = LegacyHash::parse_stored(&stored, MAX_KIB);
        prop_assert_eq!(back.as_ref(), hashes[0].as_ref());
    }
}
