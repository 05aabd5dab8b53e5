//! Sender binding in the session: which steps ask the sender directory, and what the client
//! hears for each answer.

use super::*;
use crate::auth::CredentialRef;
use crate::restriction::AccessRestriction;
use crate::smtp::reply::Status;

fn session(binding: SenderBinding, trusted: bool) -> Session {
    let config = Arc::new(SessionConfig {
        hostname: "relay.test".into(),
        max_message_size: 10_000,
        max_recipients: 3,
        max_errors: 10,
        listener: TlsMode::None,
        tls_available: false,
        allow_private_destinations: false,
        sender_binding: binding,
    });
    let mut s = Session::new(config, "192.0.2.7".parse().unwrap(), trusted, false);
    feed(&mut s, "EHLO client.test");
    s
}

fn logged_in(binding: SenderBinding) -> Session {
    let mut s = session(binding, false);
    assert!(matches!(feed(&mut s, "AUTH PLAIN AGFubkBleGFtcGxlLmNvbQBz"), Step::Authenticate(_)));
    let grant = Grant {
        username: "ann@example.com".into(),
        account_id: 7,
        account: "ann@example.com".into(),
        credential: CredentialRef::SmtpCredential { id: 1, hash: "h".into() },
        permissions: None,
        allow: AccessRestriction::unrestricted(),
        cached: false,
    };
    assert_eq!(reply_of(s.on_verdict(Decision::Granted(grant))), (235, Some(Status(2, 7, 0))));
    s
}

/// Feeds a line; the login re-check and the message count (issue 14's steps) pass.
fn feed(s: &mut Session, line: &str) -> Step {
    let input = s.parse_line(line.as_bytes());
    let mut step = s.on_input(input);
    loop {
        step = match step {
            Step::Recheck(grant) => s.on_recheck(Decision::Granted(grant)),
            Step::CountMessage { .. } => s.on_message_counted(Ok(())),
            other => return other,
        };
    }
}

fn reply_of(step: Step) -> (u16, Option<Status>) {
    match step {
        Step::Reply(r) | Step::Close(r) | Step::ReceiveData(r) => (r.code, r.status),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn text_of(step: Step) -> String {
    match step {
        Step::Reply(r) | Step::Close(r) => r.to_string(),
        other => panic!("expected a reply, got {other:?}"),
    }
}

fn head(bytes: &[u8]) -> HeadCapture {
    let mut h = HeadCapture::new();
    h.feed(bytes);
    h
}

/// MAIL (answered `allowed`), RCPT, DATA: the session waits for the message.
fn up_to_data(s: &mut Session) {
    if let Step::CheckSenders(_) = feed(s, "MAIL FROM:<ann@example.com>") {
        assert_eq!(reply_of(s.on_senders_checked(SenderAnswer::Allowed)).0, 250);
    }
    assert_eq!(reply_of(feed(s, "RCPT TO:<x@elsewhere.example>")).0, 250);
    assert_eq!(reply_of(feed(s, "DATA")).0, 354);
}

#[test]
fn mail_from_of_a_login_is_asked_and_a_refusal_is_553_in_postfix_words() {
    let mut s = logged_in(SenderBinding::MailFrom);
    let Step::CheckSenders(query) = feed(&mut s, "MAIL FROM:<Billing@Other.example>") else { panic!("not asked") };
    assert_eq!(
        query,
        SenderQuery { account_id: 7, login: "ann@example.com".into(), addresses: vec!["Billing@Other.example".into()] }
    );
    let refused = s.on_senders_checked(SenderAnswer::NotOwned("Billing@Other.example".into()));
    assert_eq!(
        text_of(refused),
        "553 5.7.1 <Billing@Other.example>: Sender address rejected: not owned by user ann@example.com"
    );
    assert_eq!(reply_of(feed(&mut s, "RCPT TO:<x@y.example>")).0, 503, "no transaction after a refused MAIL");

    let Step::CheckSenders(_) = feed(&mut s, "MAIL FROM:<ann@example.com>") else { panic!("not asked") };
    assert_eq!(reply_of(s.on_senders_checked(SenderAnswer::Allowed)), (250, Some(Status(2, 1, 0))));
    assert_eq!(reply_of(feed(&mut s, "RCPT TO:<x@y.example>")).0, 250);
}

#[test]
fn a_directory_failure_is_451_and_not_a_client_error() {
    let mut s = logged_in(SenderBinding::MailFrom);
    for _ in 0..20 {
        let Step::CheckSenders(_) = feed(&mut s, "MAIL FROM:<ann@example.com>") else { panic!("not asked") };
        assert_eq!(reply_of(s.on_senders_checked(SenderAnswer::Unavailable)), (451, Some(Status(4, 3, 0))));
    }
}

#[test]
fn null_sender_trusted_clients_and_binding_off_are_not_asked() {
    let mut s = logged_in(SenderBinding::MailFromAndHeader);
    assert_eq!(reply_of(feed(&mut s, "MAIL FROM:<>")).0, 250, "<> passes");
    let mut trusted = session(SenderBinding::MailFromAndHeader, true);
    assert_eq!(reply_of(feed(&mut trusted, "MAIL FROM:<anyone@other.example>")).0, 250);
    assert_eq!(reply_of(feed(&mut trusted, "RCPT TO:<x@y.example>")).0, 250);
    assert_eq!(reply_of(feed(&mut trusted, "DATA")).0, 354);
    let step = trusted.on_data_end(DataSummary::default(), &head(b"From: anyone@other.example\r\n"));
    assert!(matches!(step, Step::Enqueue(_)), "trusted clients are not bound: {step:?}");
    let mut off = logged_in(SenderBinding::Off);
    assert_eq!(reply_of(feed(&mut off, "MAIL FROM:<x@other.example>")).0, 250);
}

#[test]
fn every_header_from_address_is_asked_after_data_and_a_refusal_is_550() {
    let mut s = logged_in(SenderBinding::MailFromAndHeader);
    up_to_data(&mut s);
    let h = head(b"From: Ann <ann@example.com>, \"B\" <b@other.example>\r\nSubject: x\r\n");
    let Step::CheckSenders(query) = s.on_data_end(DataSummary::default(), &h) else { panic!("not asked") };
    assert_eq!(query.addresses, ["ann@example.com", "b@other.example"]);
    let refused = s.on_senders_checked(SenderAnswer::NotOwned("b@other.example".into()));
    assert_eq!(
        text_of(refused),
        "550 5.7.1 <b@other.example>: From header address rejected: not owned by user ann@example.com"
    );

    up_to_data(&mut s);
    let Step::CheckSenders(_) = s.on_data_end(DataSummary::default(), &h) else { panic!("not asked") };
    let Step::Enqueue(sub) = s.on_senders_checked(SenderAnswer::Allowed) else { panic!("not queued") };
    assert_eq!(sub.auth_user.as_deref(), Some("ann@example.com"));
    assert_eq!(reply_of(s.on_queued(Ok("ID".into()))).0, 250);
}

#[test]
fn an_unreadable_or_doubled_from_header_is_refused_and_a_missing_one_is_not() {
    let mut s = logged_in(SenderBinding::MailFromAndHeader);
    for bad in [&b"From: a@evil.example <ann@example.com>\r\n"[..], b"From: ann@example.com\r\nFrom: b@x.example\r\n"] {
        up_to_data(&mut s);
        assert_eq!(reply_of(s.on_data_end(DataSummary::default(), &head(bad))), (550, Some(Status(5, 7, 1))));
    }
    up_to_data(&mut s);
    assert!(matches!(s.on_data_end(DataSummary::default(), &head(b"Subject: none\r\n")), Step::Enqueue(_)));
}

#[test]
fn header_from_is_not_read_when_only_mail_from_is_bound() {
    let mut s = logged_in(SenderBinding::MailFrom);
    up_to_data(&mut s);
    let step = s.on_data_end(DataSummary::default(), &head(b"From: x@other.example\r\n"));
    assert!(matches!(step, Step::Enqueue(_)), "{step:?}");
}
