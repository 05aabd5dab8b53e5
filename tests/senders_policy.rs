//! Sender binding through the policy service alone (`[policy] sender_binding = true`), for
//! hosts that wire `check_policy_service` and not the socketmap: first over the policy socket
//! in process, then behind a real Postfix 3.7 configured with `postfix/*.relaykey`.
//! The client reads Postfix's own line, `553 5.7.1 <addr>: Sender address rejected: not owned
//! by user <login>`: the policy answers `553 5.7.1 not owned by user <login>`, and smtpd puts
//! `<addr>: Sender address rejected: ` before the text of what its sender restrictions return.

mod support;

use std::path::Path;
use std::sync::Arc;

use relaykey::address::EmailAddress;
use relaykey::auth::Authenticator;
use relaykey::config::Config;
use relaykey::daemon::Shared;
use relaykey::senders::SenderEntry;
use relaykey::store::{NewSmtpCredential, Store};
use support::daemon::{Daemon, serve};
use support::peers::needs;
use support::postfix::{Postfix, postfix};
use support::smtp::{TlsSmtp, auth_plain};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

const ANN: &str = "ann@example.com";
/// An SMTP username of ANN's account.
const ANN_APP: &str = "app@ann.example";
const OWN: &str = "ann.example";
const OTHERS: &str = "bob.example";
const UNKNOWN: &str = "nobody.example";
const PENDING: &str = "pending.example";

/// What the client reads.
fn refusal(address: &str, login: &str) -> String {
    format!("553 5.7.1 <{address}>: Sender address rejected: not owned by user {login}")
}

/// What the policy answers smtpd.
fn action(login: &str) -> String {
    format!("553 5.7.1 not owned by user {login}")
}

/// ANN owns OWN (verified) and PENDING (pending), with the SMTP username ANN_APP; bob owns
/// OTHERS. Added through the store functions the CLI uses.
fn seed(db: &Path) {
    let mut store = Store::open(db).unwrap();
    let ann = EmailAddress::parse(ANN).unwrap();
    let bob = EmailAddress::parse("bob@bob.example").unwrap();
    store.add_account(&ann).unwrap();
    store.add_account(&bob).unwrap();
    for (who, entry, verified) in [(&ann, OWN, true), (&ann, PENDING, false), (&bob, OTHERS, true)] {
        store.add_sender(who, &SenderEntry::parse(entry).unwrap(), verified).unwrap();
    }
    let app = NewSmtpCredential { username: Some(EmailAddress::parse(ANN_APP).unwrap()), allow: Default::default() };
    let params = Config::default().auth.hash_params();
    store.create_smtp_credential(&ann, app, &params).unwrap();
}

struct PolicySocket {
    _dir: tempfile::TempDir,
    socket: std::path::PathBuf,
    shared: Arc<Shared>,
}

impl PolicySocket {
    async fn start(policy: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let socket = dir.path().join("policy.sock");
        let config = Config::parse(&format!(
            "database = {db:?}\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n[policy]\n{policy}\n"
        ))
        .unwrap();
        seed(&db);
        let authenticator = Authenticator::open(&db, &config.auth).unwrap();
        let (shared, _publish) = Shared::new(config, authenticator);
        let enforcer = Arc::new(shared.policy_enforcer().unwrap());
        let listener = UnixListener::bind(&socket).unwrap();
        tokio::spawn(relaykey::policy::server::run(listener, enforcer, shared.shutdown.clone(), shared.tasks.clone()));
        Self { _dir: dir, socket, shared }
    }

    /// One request at `state` from `user` with envelope sender `sender`; the action.
    async fn ask(&self, state: &str, user: &str, sender: &str) -> String {
        let mut c = UnixStream::connect(&self.socket).await.unwrap();
        let req = format!(
            "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\nclient_address=192.0.2.1\n\
             client_port=4000\nserver_address=127.0.0.1\nserver_port=587\nhelo_name=x\nsender={sender}\n\
             recipient=\nrecipient_count=0\ninstance=\nsasl_method=PLAIN\nsasl_username={user}\n\n"
        );
        c.write_all(req.as_bytes()).await.unwrap();
        let mut buf = Vec::new();
        while !buf.ends_with(b"\n\n") {
            let mut byte = [0u8; 1];
            assert_eq!(c.read(&mut byte).await.unwrap(), 1, "closed without a reply");
            buf.push(byte[0]);
        }
        String::from_utf8(buf).unwrap().strip_prefix("action=").unwrap().trim_end().to_string()
    }
}

impl Drop for PolicySocket {
    fn drop(&mut self) {
        self.shared.shutdown.cancel();
    }
}

#[tokio::test]
async fn policy_socket_refuses_a_sender_the_login_does_not_own() {
    let p = PolicySocket::start("sender_binding = true\nrevocation = false").await;
    for (user, sender) in [
        (ANN, format!("x@{OWN}")),
        (ANN, "User+Tag@ANN.Example".to_string()),
        (ANN, ANN.to_string()),
        // Another login of the same account may use the account's senders.
        (ANN_APP, format!("x@{OWN}")),
        (ANN_APP, ANN.to_string()),
        // The null sender (Postfix sends `sender=` empty) passes.
        (ANN, String::new()),
    ] {
        assert_eq!(p.ask("MAIL", user, &sender).await, "DUNNO", "{user} as <{sender}>");
    }
    for sender in [format!("x@{OTHERS}"), format!("x@{UNKNOWN}"), format!("x@{PENDING}")] {
        assert_eq!(p.ask("MAIL", ANN, &sender).await, action(ANN), "<{sender}>");
        // With smtpd_delay_reject = yes the sender restrictions run at RCPT.
        assert_eq!(p.ask("RCPT", ANN_APP, &sender).await, action(ANN_APP), "<{sender}>");
    }
    // Unauthenticated traffic is not bound.
    assert_eq!(p.ask("MAIL", "", &format!("x@{OTHERS}")).await, "DUNNO");
}

#[tokio::test]
async fn policy_socket_does_not_bind_senders_by_default() {
    let p = PolicySocket::start("revocation = false").await;
    assert_eq!(p.ask("MAIL", ANN, &format!("x@{OTHERS}")).await, "DUNNO");
}

#[test]
fn postfix_with_only_the_policy_service_refuses_unowned_senders() {
    if !needs().programs(&["postfix", "openssl"]).root().met() {
        return;
    }
    let (postfix, relaykey) = policy_only_sidecar();
    seed(&relaykey.dir().join("relaykey.db"));
    let password = relaykey.cli_json(&["smtp", "create", ANN])["password"].as_str().unwrap().to_string();
    let (mut s, greeting) = TlsSmtp::connect(postfix.port_of("submissions"));
    assert!(greeting.starts_with("220 "), "{greeting}");
    assert!(s.command("EHLO client.example").starts_with("250 "));
    assert!(s.command(&auth_plain(ANN, &password)).starts_with("235 "), "login");
    for sender in [format!("x@{OWN}"), ANN.to_string()] {
        let reply = s.command(&format!("MAIL FROM:<{sender}>"));
        assert!(reply.starts_with("250 "), "<{sender}>: {reply}");
        assert!(s.command("RSET").starts_with("250 "));
    }
    for sender in [format!("x@{OTHERS}"), format!("x@{UNKNOWN}"), format!("x@{PENDING}")] {
        assert_eq!(s.command(&format!("MAIL FROM:<{sender}>")), refusal(&sender, ANN));
    }
    // `<>` passes, at MAIL and at RCPT.
    assert!(s.command("MAIL FROM:<>").starts_with("250 "));
    assert!(s.command("RCPT TO:<someone@example.net>").starts_with("250 "));
    assert_eq!(relaykey.log().matches("reason=sender_not_owned").count(), 3, "{}", relaykey.log());
}

/// Postfix with the shipped snippets but without their socketmap restriction: the host that
/// wires only the policy service. relaykey serves SASL and policy with `sender_binding = true`.
/// Postfix comes first so that it stops before relaykey does.
fn policy_only_sidecar() -> (Postfix, Daemon) {
    let builder = postfix().relaykey_snippets().tls().main_cf("relaykey_sender_binding =\nsmtpd_sender_login_maps =");
    let relaykey = serve()
        .toml(&format!(
            "[sasl]\nsocket = \"{p}/relaykey-auth\"\nsocket_mode = \"0666\"\n\
             [policy]\nsocket = \"{p}/relaykey-policy\"\nsocket_mode = \"0666\"\nsender_binding = true\n",
            p = builder.private_dir().display()
        ))
        .start();
    (builder.start(), relaykey)
}
