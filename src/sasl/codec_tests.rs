use proptest::prelude::*;

use super::*;

// What Postfix 3.x sends (reference §3.2); resp is "\0a@b\0c".
const POSTFIX_AUTH: &[u8] =
    b"AUTH\t7\tPLAIN\tservice=smtp\tnologin\tlip=10.0.0.1\trip=192.0.2.9\tsecured\tresp=AGFAYgBj";

fn auth(line: &[u8]) -> AuthRequest {
    match parse_request(line) {
        Ok(Request::Auth(a)) => a,
        other => panic!("{} gave {other:?}", line.escape_ascii()),
    }
}

#[test]
fn parses_postfix_auth_line() {
    let req = auth(POSTFIX_AUTH);
    assert_eq!((req.id, req.mechanism, req.secured), (7, Mechanism::Plain, true));
    assert_eq!(req.remote_ip, Some("192.0.2.9".parse().unwrap()));
    assert_eq!(req.local_ip, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(req.service, "smtp");
    assert_eq!(req.initial_response.as_deref(), Some("AGFAYgBj"));
}

#[test]
fn parses_exim_and_doveadm_lines() {
    // Exim 4.96: resp= always present, empty without an initial response (§3.3).
    let exim = auth(b"AUTH\t1\tLOGIN\tservice=smtp\tsecured\trip=127.0.0.1\tlip=127.0.0.1\tnologin\tresp=");
    assert_eq!((exim.mechanism, exim.initial_response.as_deref()), (Mechanism::Login, Some("")));
    // doveadm 2.4: protocol= instead of service=, extra flags (§3.4).
    let dove = auth(b"AUTH\t1\tplain\tprotocol=doveadm\tfinal-resp-ok\tdebug\tresp=AHUAcA==");
    assert_eq!((dove.mechanism, dove.service.as_str(), dove.remote_ip), (Mechanism::Plain, "doveadm", None));
}

#[test]
fn empty_or_bad_addresses_count_as_absent() {
    let req = auth(b"AUTH\t2\tLOGIN\tservice=smtp\tlip=\trip=not-an-ip");
    assert_eq!((req.local_ip, req.remote_ip, req.initial_response), (None, None, None));
}

#[test]
fn rejects_what_dovecot_rejects() {
    for (line, want) in [
        (&b"AUTH\t0\tPLAIN\tservice=smtp"[..], CodecError::ZeroId),
        (b"AUTH\t1\tPLAIN\tresp=AA==\tservice=smtp", CodecError::ParamAfterResp),
        (b"AUTH\t1\tPLAIN", CodecError::MissingService),
        (b"AUTH\t1\tPLAIN\tnologin", CodecError::MissingService),
        (b"AUTH\tx\tPLAIN\tservice=smtp", CodecError::Malformed("AUTH")),
        (b"AUTH\t4294967296\tPLAIN\tservice=smtp", CodecError::Malformed("AUTH")),
        (b"AUTH\t5\tCRAM-MD5\tservice=smtp", CodecError::UnsupportedMechanism { id: 5 }),
        (b"AUTH\t1", CodecError::Malformed("AUTH")),
        (b"VERSION\t1", CodecError::Malformed("VERSION")),
        (b"VERSION\t1\t-2", CodecError::Malformed("VERSION")),
        (b"CONT\t1", CodecError::Malformed("CONT")),
        (b"CONT\t0\tAA==", CodecError::ZeroId),
        (b"HELLO", CodecError::UnknownCommand),
        (b"", CodecError::Empty),
        (b"CONT\t1\t\xff", CodecError::NotUtf8),
    ] {
        assert_eq!(parse_request(line).unwrap_err(), want, "{}", line.escape_ascii());
    }
}

#[test]
fn handshake_lines_are_in_dovecot_23_order() {
    let mut out = Vec::new();
    for line in Reply::handshake(42, 7, &[0xab; 16]) {
        line.encode(&mut out);
    }
    let want = format!(
        "VERSION\t1\t2\nMECH\tPLAIN\tplaintext\nMECH\tLOGIN\tplaintext\nSPID\t42\nCUID\t7\nCOOKIE\t{}\nDONE\n",
        "ab".repeat(16)
    );
    assert_eq!(String::from_utf8(out).unwrap(), want);
}

#[test]
fn cont_keeps_its_tab_when_the_challenge_is_empty() {
    let mut out = Vec::new();
    Reply::Cont { id: 7, challenge: String::new() }.encode(&mut out);
    assert_eq!(out, b"CONT\t7\t\n");
}

#[test]
fn fail_and_ok_lines() {
    let mut out = Vec::new();
    Reply::fail(3, Some("a@b".into())).encode(&mut out);
    Reply::temp_fail(4).encode(&mut out);
    Reply::Ok { id: 10, user: "a@b".into() }.encode(&mut out);
    assert_eq!(out, b"FAIL\t3\tuser=a@b\nFAIL\t4\tcode=temp_fail\nOK\t10\tuser=a@b\n");
}

#[test]
fn escaping_uses_soh_not_backslash() {
    let mut out = Vec::new();
    escape_into(&mut out, b"a\tb\nc\rd\x01e\0f\\g");
    assert_eq!(out, b"a\x01tb\x01nc\x01rd\x011e\x010f\\g");
    assert_eq!(unescape(&out), b"a\tb\nc\rd\x01e\0f\\g");
    assert_eq!(unescape(b"x\x01zy\x01"), b"xzy");
}

#[test]
fn line_buffer_frames_and_refuses_overlong_lines() {
    let mut lb = LineBuffer::default();
    lb.extend(b"VERSION\t1\t0\nCPID\t");
    assert_eq!(lb.next_line().unwrap().unwrap(), b"VERSION\t1\t0");
    assert_eq!(lb.next_line().unwrap(), None);
    lb.extend(b"9\n");
    assert_eq!(lb.next_line().unwrap().unwrap(), b"CPID\t9");
    assert_eq!(lb.pending(), 0);

    let mut lb = LineBuffer::default();
    lb.extend(&vec![b'A'; MAX_LINE]);
    assert_eq!(lb.next_line().unwrap(), None, "exactly the limit is still fine");
    lb.extend(b"\n");
    assert_eq!(lb.next_line().unwrap().unwrap().len(), MAX_LINE);
    lb.extend(&vec![b'A'; MAX_LINE + 1]);
    assert_eq!(lb.next_line(), Err(CodecError::TooLong));
}

fn field() -> impl Strategy<Value = String> {
    // Any text, including the bytes that need escaping.
    proptest::string::string_regex("[a-zA-Z0-9@.=+/\t\r\n\x01\x00 ]{0,20}").unwrap()
}

fn any_ip() -> impl Strategy<Value = Option<IpAddr>> {
    prop_oneof![
        Just(None),
        any::<std::net::Ipv4Addr>().prop_map(|i| Some(i.into())),
        any::<std::net::Ipv6Addr>().prop_map(|i| Some(i.into()))
    ]
}

fn any_request() -> impl Strategy<Value = Request> {
    let auth = (
        1u32..,
        prop_oneof![Just(Mechanism::Plain), Just(Mechanism::Login)],
        "[a-z]{1,8}",
        any_ip(),
        any_ip(),
        any::<bool>(),
        proptest::option::of("[A-Za-z0-9+/=]{0,40}"),
    )
        .prop_map(|(id, mechanism, service, local_ip, remote_ip, secured, initial_response)| {
            Request::Auth(AuthRequest { id, mechanism, service, local_ip, remote_ip, secured, initial_response })
        });
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(major, minor)| Request::Version { major, minor }),
        any::<u32>().prop_map(Request::Cpid),
        (1u32.., field()).prop_map(|(id, data)| Request::Cont { id, data }),
        (1u32..).prop_map(|id| Request::Cancel { id }),
        auth,
    ]
}

fn any_reply() -> impl Strategy<Value = Reply> {
    prop_oneof![
        (any::<u32>(), any::<u32>()).prop_map(|(major, minor)| Reply::Version { major, minor }),
        ("[A-Z0-9-]{1,10}", proptest::collection::vec("[a-z-]{1,10}", 0..3))
            .prop_map(|(name, flags)| Reply::Mech { name, flags }),
        any::<u32>().prop_map(Reply::Spid),
        any::<u32>().prop_map(Reply::Cuid),
        "[0-9a-f]{32}".prop_map(Reply::Cookie),
        Just(Reply::Done),
        (any::<u32>(), field()).prop_map(|(id, user)| Reply::Ok { id, user }),
        (
            any::<u32>(),
            proptest::option::of(field()),
            proptest::option::of(prop_oneof![Just(FailCode::TempFail), Just(FailCode::InvalidBase64)]),
            proptest::option::of(field()),
        )
            .prop_map(|(id, user, code, reason)| Reply::Fail { id, user, code, reason }),
        (any::<u32>(), field()).prop_map(|(id, challenge)| Reply::Cont { id, challenge }),
    ]
}

proptest! {
    #[test]
    fn request_encode_then_parse_is_identity(req in any_request()) {
        let mut out = Vec::new();
        req.encode(&mut out);
        prop_assert_eq!(out.pop(), Some(b'\n'));
        prop_assert!(!out.contains(&b'\n'), "an encoded line holds no LF");
        prop_assert_eq!(parse_request(&out), Ok(req));
    }

    #[test]
    fn reply_encode_then_parse_is_identity(reply in any_reply()) {
        let mut out = Vec::new();
        reply.encode(&mut out);
        prop_assert_eq!(out.pop(), Some(b'\n'));
        prop_assert!(!out.contains(&b'\n'));
        prop_assert_eq!(parse_reply(&out), Ok(reply));
    }

    #[test]
    fn parse_request_never_panics(line in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = parse_request(&line);
    }
}
