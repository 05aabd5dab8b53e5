use super::*;
use crate::auth::mechanism::MechanismError;
use crate::auth::{DenyReason, TempFailReason};
use crate::sasl::codec::parse_request;

fn ready(require_secured: bool) -> Session {
    let mut s = Session::new(require_secured);
    let now = Instant::now();
    assert!(matches!(s.on_input(line(b"VERSION\t1\t0"), now), Step::Nothing));
    assert!(matches!(s.on_input(line(b"CPID\t77"), now), Step::Nothing));
    s
}

fn line(l: &[u8]) -> Input {
    Input::Line(parse_request(l))
}

fn feed(s: &mut Session, l: &str) -> Step {
    s.on_input(line(l.as_bytes()), Instant::now())
}

fn plain(authz: &str, user: &str, pass: &str) -> String {
    encode_response(format!("{authz}\0{user}\0{pass}").as_bytes())
}

#[track_caller]
fn expect_attempt(step: Step, id: u32, user: &str, pass: &str) {
    match step {
        Step::Authenticate(a) => {
            assert_eq!((a.id, a.username.as_str(), a.secret.expose()), (id, user, pass));
        }
        other => panic!("expected Authenticate, got {other:?}"),
    }
}

#[track_caller]
fn expect_reply(step: Step, want: Reply) {
    match step {
        Step::Reply(r) => assert_eq!(r, want),
        other => panic!("expected {want:?}, got {other:?}"),
    }
}

#[track_caller]
fn expect_refusal(step: Step, reason: RefuseReason) -> Refusal {
    match step {
        Step::Refuse(r) => {
            assert_eq!(r.reason, reason);
            r
        }
        other => panic!("expected refusal {reason:?}, got {other:?}"),
    }
}

#[test]
fn rejects_auth_before_version() {
    let mut s = Session::new(false);
    assert!(matches!(feed(&mut s, "AUTH\t1\tPLAIN\tservice=smtp"), Step::Close(_)));
    let mut s = Session::new(false);
    assert!(matches!(feed(&mut s, "VERSION\t2\t0"), Step::Close(_)), "major 2 is refused");
}

#[test]
fn plain_with_initial_response() {
    let mut s = ready(false);
    let step = feed(&mut s, &format!("AUTH\t1\tPLAIN\tservice=smtp\trip=192.0.2.1\tresp={}", plain("", "a@b", "pw")));
    expect_attempt(step, 1, "a@b", "pw");
    assert_eq!(s.pending(), 1);
}

#[test]
fn plain_without_initial_response_sends_an_empty_challenge() {
    let mut s = ready(false);
    expect_reply(feed(&mut s, "AUTH\t3\tplain\tservice=smtp"), Reply::Cont { id: 3, challenge: String::new() });
    expect_attempt(feed(&mut s, &format!("CONT\t3\t{}", plain("a@b", "a@b", "pw"))), 3, "a@b", "pw");
}

#[test]
fn empty_resp_from_an_old_client_means_no_initial_response() {
    let mut s = ready(false); // minor 0, like Exim
    expect_reply(feed(&mut s, "AUTH\t1\tPLAIN\tservice=smtp\tresp="), Reply::Cont { id: 1, challenge: String::new() });
    let mut s = Session::new(false);
    feed(&mut s, "VERSION\t1\t2");
    feed(&mut s, "CPID\t1");
    // Minor 2 (doveadm): an empty response is a response, and an empty PLAIN payload is malformed.
    expect_refusal(
        feed(&mut s, "AUTH\t1\tPLAIN\tservice=smtp\tresp="),
        RefuseReason::Credentials(MechanismError::MissingField),
    );
}

#[test]
fn login_prompts_for_username_then_password() {
    let mut s = ready(false);
    expect_reply(feed(&mut s, "AUTH\t9\tLOGIN\tservice=smtp"), Reply::Cont { id: 9, challenge: "VXNlcm5hbWU6".into() });
    expect_reply(
        feed(&mut s, &format!("CONT\t9\t{}", encode_response(b"a@b"))),
        Reply::Cont { id: 9, challenge: "UGFzc3dvcmQ6".into() },
    );
    expect_attempt(feed(&mut s, &format!("CONT\t9\t{}", encode_response(b"pw"))), 9, "a@b", "pw");
}

#[test]
fn login_with_initial_response_skips_the_username_prompt() {
    let mut s = ready(false);
    let step = feed(&mut s, &format!("AUTH\t2\tLOGIN\tservice=smtp\tresp={}", encode_response(b"a@b")));
    expect_reply(step, Reply::Cont { id: 2, challenge: "UGFzc3dvcmQ6".into() });
}

#[test]
fn authzid_other_than_authcid_fails() {
    let mut s = ready(false);
    let step = feed(&mut s, &format!("AUTH\t1\tPLAIN\tservice=smtp\tresp={}", plain("admin@b", "a@b", "pw")));
    let refusal = expect_refusal(step, RefuseReason::Credentials(MechanismError::AuthzidMismatch));
    assert!(refusal.reason.is_guess());
    assert_eq!(s.on_refusal_due(refusal), Some(Reply::fail(1, None)));
    assert_eq!(s.pending(), 0);
}

#[test]
fn invalid_base64_fails_and_keeps_the_session() {
    let mut s = ready(false);
    let r = expect_refusal(feed(&mut s, "AUTH\t1\tPLAIN\tservice=smtp\tresp=!!!"), RefuseReason::InvalidBase64);
    assert_eq!(s.on_refusal_due(r), Some(Reply::invalid_base64(1)));
    expect_attempt(feed(&mut s, &format!("AUTH\t2\tPLAIN\tservice=smtp\tresp={}", plain("", "u", "p"))), 2, "u", "p");
}

#[test]
fn interleaved_requests_are_answered_by_id_in_any_order() {
    let mut s = ready(false);
    expect_reply(feed(&mut s, "AUTH\t1\tLOGIN\tservice=smtp"), Reply::Cont { id: 1, challenge: "VXNlcm5hbWU6".into() });
    expect_attempt(feed(&mut s, &format!("AUTH\t2\tPLAIN\tservice=smtp\tresp={}", plain("", "b", "2"))), 2, "b", "2");
    expect_reply(feed(&mut s, "AUTH\t3\tPLAIN\tservice=smtp"), Reply::Cont { id: 3, challenge: String::new() });
    expect_attempt(feed(&mut s, &format!("CONT\t3\t{}", plain("", "c", "3"))), 3, "c", "3");
    assert_eq!(s.pending(), 3);
    let denied = Decision::Denied(DenyReason::BadSecret);
    assert_eq!(s.on_verdict(3, "c", &denied), Some(Reply::fail(3, Some("c".into()))));
    assert_eq!(s.on_verdict(2, "b", &Decision::TempFail(TempFailReason::VerifierClosed)), Some(Reply::temp_fail(2)));
    assert_eq!(s.on_verdict(2, "b", &denied), None, "one answer per id");
    expect_reply(
        feed(&mut s, &format!("CONT\t1\t{}", encode_response(b"a"))),
        Reply::Cont { id: 1, challenge: "UGFzc3dvcmQ6".into() },
    );
}

#[test]
fn duplicate_pending_id_closes() {
    let mut s = ready(false);
    feed(&mut s, "AUTH\t1\tLOGIN\tservice=smtp");
    assert!(matches!(feed(&mut s, "AUTH\t1\tLOGIN\tservice=smtp"), Step::Close(_)));
}

#[test]
fn cont_for_unknown_id_fails() {
    let mut s = ready(false);
    expect_reply(feed(&mut s, "CONT\t5\tAA=="), Reply::timed_out(5));
}

#[test]
fn unknown_mechanism_fails_without_closing() {
    let mut s = ready(false);
    let r = expect_refusal(feed(&mut s, "AUTH\t4\tCRAM-MD5\tservice=smtp"), RefuseReason::UnsupportedMechanism);
    assert_eq!(s.on_refusal_due(r), Some(Reply::fail(4, None)));
}

#[test]
fn require_secured_refuses_plaintext_sessions() {
    let mut s = ready(true);
    let l = format!("AUTH\t1\tPLAIN\tservice=smtp\tresp={}", plain("", "u", "p"));
    expect_refusal(feed(&mut s, &l), RefuseReason::NotSecured);
    let l = format!("AUTH\t2\tPLAIN\tservice=smtp\tsecured\tresp={}", plain("", "u", "p"));
    expect_attempt(feed(&mut s, &l), 2, "u", "p");
}

#[test]
fn abandoned_requests_expire_but_verifications_do_not() {
    let mut s = ready(false);
    let start = Instant::now();
    s.on_input(line(b"AUTH\t1\tLOGIN\tservice=smtp"), start);
    s.on_input(line(format!("AUTH\t2\tPLAIN\tservice=smtp\tresp={}", plain("", "u", "p")).as_bytes()), start);
    assert_eq!(s.expire(start + PENDING_TIMEOUT - Duration::from_secs(1)), 0);
    assert_eq!(s.expire(start + PENDING_TIMEOUT), 1);
    assert_eq!(s.pending(), 1, "the request being verified stays");
}

#[test]
fn busy_client_gets_temp_fail() {
    let mut s = ready(false);
    feed(&mut s, &format!("AUTH\t1\tPLAIN\tservice=smtp\tresp={}", plain("", "u", "p")));
    let r = expect_refusal(s.on_input(Input::Busy { id: 1 }, Instant::now()), RefuseReason::Busy);
    assert_eq!(s.on_refusal_due(r), Some(Reply::temp_fail(1)));
}

#[test]
fn cancel_drops_the_verdict() {
    let mut s = ready(false);
    feed(&mut s, &format!("AUTH\t1\tPLAIN\tservice=smtp\tresp={}", plain("", "u", "p")));
    assert!(matches!(feed(&mut s, "CANCEL\t1"), Step::Nothing));
    assert_eq!(s.on_verdict(1, "u", &Decision::Denied(DenyReason::BadSecret)), None);
}
