use super::*;

fn addrs(value: &str) -> Vec<String> {
    parse_address_list(value).unwrap_or_else(|e| panic!("{value:?}: {e}")).iter().map(|m| m.to_string()).collect()
}

#[test]
fn reads_the_forms_mail_clients_write() {
    for (value, want) in [
        // addr-spec, name-addr, display names with quotes, commas and dots (obs-phrase)
        ("a@example.com", vec!["a@example.com"]),
        (" Alice <alice@example.com>", vec!["alice@example.com"]),
        ("\"Billing, Inc.\" <billing@example.com>", vec!["billing@example.com"]),
        ("John Q. Public <jqp@example.com>", vec!["jqp@example.com"]),
        ("=?utf-8?q?J=C3=B6rg?= <j@example.com>", vec!["j@example.com"]),
        // lists, empty elements (obs-addr-list)
        ("a@example.com, B <b@example.org>", vec!["a@example.com", "b@example.org"]),
        ("a@example.com,, ,b@example.org,", vec!["a@example.com", "b@example.org"]),
        // comments, nested and with quoted pairs, anywhere CFWS may go
        ("(boss) a@example.com (the \\) one (really))", vec!["a@example.com"]),
        ("Alice (work) <alice (x) @ (y) example.com>", vec!["alice@example.com"]),
        // quoted local parts stay quoted when they must
        ("\"a b\"@example.com", vec!["\"a b\"@example.com"]),
        ("<\"a\\\"b\"@example.com>", vec!["\"a\\\"b\"@example.com"]),
        ("\"first.last\"@example.com", vec!["first.last@example.com"]),
        // groups (RFC 6854), empty groups, obsolete routes, domain literals, UTF-8 (RFC 6532)
        ("Team: a@example.com, B <b@example.org>;", vec!["a@example.com", "b@example.org"]),
        ("undisclosed-recipients:;", vec![]),
        ("<@relay.example,@other.example:a@example.com>", vec!["a@example.com"]),
        ("a@[192.0.2.1]", vec!["a@[192.0.2.1]"]),
        // a quoted-pair in a domain literal stays escaped only where dtext needs it
        // (fuzz-smoke found the unescaped form did not read back the same)
        ("0@[\\\\K]", vec!["0@[\\\\K]"]),
        ("0@[\\K\\]]", vec!["0@[K\\]]"]),
        ("Jörg <jörg@bücher.example>", vec!["jörg@bücher.example"]),
        ("", vec![]),
    ] {
        assert_eq!(addrs(value), want, "{value:?}");
    }
}

#[test]
fn refuses_what_a_reader_could_take_for_another_address() {
    for value in [
        "a@evil.example <b@good.example>",
        "John Smith@example.com",
        "alice",
        "Alice <alice>",
        "<a@example.com",
        "a@example.com>",
        "(unclosed a@example.com",
        "\"unclosed a@example.com",
        "a@[192.0.2.1",
        "a@example..com",
        "a@.example.com",
        "a.@example.com",
        ".a@example.com",
        "a@",
        "@example.com",
        "<>",
        "Team: a@example.com",
        "Outer: Inner: a@example.com;;",
        "a@example.com b@example.com",
        "a@example.com\u{1}",
        "a\\@example.com",
    ] {
        assert!(matches!(parse_address_list(value), Err(FromHeaderError::Malformed(_))), "{value:?} was accepted");
    }
}

#[test]
fn finds_the_one_from_field_unfolded_and_ignores_others() {
    let head = b"Received: from x\r\n\tby y\r\nSender: s@other.example\r\nReply-To: r@other.example\r\n\
                 FROM : \"A\r\n B\" <a@example.com>,\r\n\tc@example.org\r\nSubject: from: d@x.example\r\n";
    let got: Vec<String> = from_addresses(head).unwrap().iter().map(|m| m.to_string()).collect();
    assert_eq!(got, ["a@example.com", "c@example.org"]);
    assert_eq!(from_addresses(b"Subject: hi\r\n").unwrap(), vec![]);
    assert_eq!(
        from_addresses(b"From: a@example.com\r\nSubject: x\r\nfrom: b@example.com\r\n"),
        Err(FromHeaderError::Repeated)
    );
}

#[test]
fn capture_keeps_the_header_section_however_the_message_is_split() {
    let message = b"From: a@example.com\r\nSubject: x\r\n\r\nFrom: body@example.org\r\n\r\nmore";
    let mut whole = HeadCapture::new();
    whole.feed(message);
    assert_eq!(whole.head().unwrap(), b"From: a@example.com\r\nSubject: x\r\n");
    for size in 1..8 {
        let mut split = HeadCapture::new();
        for piece in message.chunks(size) {
            split.feed(piece);
        }
        assert_eq!(split.head(), whole.head(), "pieces of {size}");
    }
    let mut no_head = HeadCapture::new();
    no_head.feed(b"\r\nFrom: body@example.org\r\n");
    assert_eq!(no_head.head().unwrap(), b"");
    let mut no_body = HeadCapture::new();
    no_body.feed(b"From: a@example.com\r\n");
    assert_eq!(from_addresses(no_body.head().unwrap()).unwrap().len(), 1);
}

#[test]
fn capture_refuses_a_header_section_beyond_the_cap() {
    let mut c = HeadCapture::new();
    let line = format!("X-Pad: {}\r\n", "x".repeat(990));
    for _ in 0..=MAX_HEAD / line.len() {
        c.feed(line.as_bytes());
    }
    c.feed(b"\r\nbody");
    assert_eq!(c.head(), Err(FromHeaderError::HeadTooLarge));
}

mod prop {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Whatever a From: value holds, the reader either refuses it or returns mailboxes
        /// that read back the same when written as a plain list.
        #[test]
        fn mailboxes_read_back_the_same(value in "[a-z<>@,.:;\"() \\\\\\[\\]]{0,40}") {
            if let Ok(found) = parse_address_list(&value) {
                let written: Vec<String> = found.iter().map(|m| m.to_string()).collect();
                prop_assert_eq!(parse_address_list(&written.join(", ")).unwrap(), found);
            }
        }
    }
}
