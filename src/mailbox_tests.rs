use super::*;
use proptest::prelude::*;

#[test]
fn keeps_the_local_part_and_lower_cases_the_domain() {
    let m = Mailbox::parse("Mixed.Case@Example.NET").unwrap();
    assert_eq!(m.as_str(), "Mixed.Case@example.net");
    assert_eq!((m.local_part(), m.domain()), ("Mixed.Case", "example.net"));
    assert_eq!(m.literal(), None);
}

// RFC 5321 §4.1.2 and §4.1.3, RFC 6531.
#[test]
fn accepts_what_rfc_5321_accepts() {
    for (input, literal) in [
        ("a@b", None),
        ("ann+tag@mail.example.co.uk", None),
        ("o'brien@example.com", None),
        ("!#$%&'*+-/=?^_`{|}~@example.com", None),
        ("\"b c\"@example.net", None),
        ("\"a@b\"@example.net", None),
        ("\"\\\"quoted\\\\\"@example.net", None),
        ("\"\"@example.net", None),
        ("jörg@exämple.net", None),
        ("x@[127.0.0.1]", Some("127.0.0.1")),
        ("x@[IPv6:::1]", Some("::1")),
        ("x@[ipv6:2001:db8::1]", Some("2001:db8::1")),
    ] {
        let m = Mailbox::parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(m.literal(), literal.map(|l| l.parse().unwrap()), "{input:?}");
    }
}

#[test]
fn refuses_what_rfc_5321_refuses() {
    use MailboxError::*;
    for (input, want) in [
        ("", Empty),
        ("ann", NoAt),
        ("@example.com", LocalPart),
        ("ann@", Domain),
        // The fuzz finding: an unbalanced quote and two @ (issue 14, item 15).
        ("\"OOOD@T@Tttttttt", LocalPart),
        ("\"a\"b@example.com", NoAt),
        ("a\"b\"@example.com", LocalPart),
        ("a@b@example.com", Domain),
        (".a@example.com", LocalPart),
        ("a.@example.com", LocalPart),
        ("a..b@example.com", LocalPart),
        ("a b@example.com", LocalPart),
        ("a\0b@example.com", LocalPart),
        ("\"a\0b\"@example.com", LocalPart),
        ("\"a\\\u{1}\"@example.com", LocalPart),
        ("a\u{85}@example.com", LocalPart),
        ("a@exa mple.com", Domain),
        ("a@-example.com", Domain),
        ("a@example..com", Domain),
        ("a@example.com.", Domain),
        ("a@exam_ple.com", Domain),
        ("a@[127.0.0.1", AddressLiteral),
        ("a@[127.1]", AddressLiteral),
        ("a@[::1]", AddressLiteral),
        ("a@[tag:content]", AddressLiteral),
        ("a@[IPv6:127.0.0.1x]", AddressLiteral),
    ] {
        assert_eq!(Mailbox::parse(input), Err(want), "{}", input.escape_debug());
    }
    assert_eq!(Mailbox::parse(&format!("{}@x", "a".repeat(65))), Err(LocalPart));
    assert_eq!(Mailbox::parse(&format!("a@{}.com", "b".repeat(64))), Err(Domain));
    assert_eq!(Mailbox::parse(&format!("a@{}", "b.".repeat(127) + "c")), Err(TooLong));
}

/// Mailboxes built from the grammar's pieces.
pub(crate) fn mailbox_text() -> impl Strategy<Value = String> {
    let atom = "[A-Za-z0-9!#$%&'*+/=?^_`{|}~ö-]{1,8}";
    let dot_string = proptest::collection::vec(atom, 1..4).prop_map(|a| a.join("."));
    let quoted = proptest::collection::vec(
        prop_oneof![
            "[ !#-\\[\\]-~]".prop_map(|s| s.to_string()),
            "[ -~]".prop_map(|c| format!("\\{c}")),
            Just("é".to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let label = "[A-Za-z0-9]([A-Za-z0-9-]{0,6}[A-Za-z0-9])?";
    let name = proptest::collection::vec(label, 1..4).prop_map(|l| l.join("."));
    let literal = prop_oneof![
        any::<[u8; 4]>().prop_map(|o| format!("[{}]", Ipv4Addr::from(o))),
        any::<[u8; 16]>().prop_map(|o| format!("[IPv6:{}]", Ipv6Addr::from(o))),
    ];
    (prop_oneof![dot_string, quoted], prop_oneof![3 => name, 1 => literal]).prop_map(|(l, d)| format!("{l}@{d}"))
}

proptest! {
    #[test]
    fn grammar_mailboxes_parse_and_round_trip(text in mailbox_text()) {
        let m = Mailbox::parse(&text).unwrap();
        prop_assert_eq!(m.local_part(), text.rsplit_once('@').unwrap().0);
        prop_assert_eq!(Mailbox::parse(m.as_str()), Ok(m.clone()));
    }

    #[test]
    fn whatever_parses_gives_back_text_that_parses_to_itself(text in "[a-zA-Z\"@. \\\\\\[\\]:0-9é\u{0}-]{0,24}") {
        if let Ok(m) = Mailbox::parse(&text) {
            prop_assert_eq!(Mailbox::parse(m.as_str()), Ok(m.clone()));
            prop_assert!(!m.as_str().chars().any(char::is_control));
        }
    }
}
