//! The policy server in process, over its Unix socket: framing, robustness, and each rule with
//! a real store and authenticator (Postfix itself is in `policy_postfix.rs`).

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::auth::{Authenticator, Decision};
use relaykey::config::Config;
use relaykey::daemon::Shared;
use relaykey::restriction::AccessRestriction;
use relaykey::secret::Secret;
use relaykey::store::{NewSmtpCredential, SmtpCredentialEdit, Store};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

struct Server {
    _dir: tempfile::TempDir,
    db: PathBuf,
    socket: PathBuf,
    shared: Arc<Shared>,
    /// What SIGHUP uses to publish a reloaded config.
    publish: tokio::sync::watch::Sender<Arc<Config>>,
}

const ACCOUNT: &str = "alice@example.com";

impl Server {
    async fn start(extra: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let socket = dir.path().join("policy.sock");
        let text = format!(
            "database = {db:?}\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\nfailure_delay = \"1ms\"\n{extra}"
        );
        let config = Config::parse(&text).unwrap();
        Store::open(&db).unwrap().add_account(&EmailAddress::parse(ACCOUNT).unwrap()).unwrap();
        let authenticator = Authenticator::open(&db, &config.auth).unwrap();
        let (shared, publish) = Shared::new(config, authenticator);
        let listener = UnixListener::bind(&socket).unwrap();
        let enforcer = Arc::new(shared.policy_enforcer().unwrap());
        tokio::spawn(relaykey::policy::server::run(listener, enforcer, shared.shutdown.clone(), shared.tasks.clone()));
        Self { _dir: dir, db, socket, shared, publish }
    }

    async fn connect(&self) -> UnixStream {
        UnixStream::connect(&self.socket).await.unwrap()
    }

    fn config(&self) -> Config {
        (*self.shared.config()).clone()
    }

    /// Creates an SMTP credential and logs it in from `ip`, as the SASL server would.
    async fn login(&self, ip: &str) -> (i64, Secret) {
        let mut store = Store::open(&self.db).unwrap();
        let email = EmailAddress::parse(ACCOUNT).unwrap();
        let new = NewSmtpCredential { username: None, allow: AccessRestriction::default() };
        let (cred, secret) = store.create_smtp_credential(&email, new, &self.config().auth.hash_params()).unwrap();
        let ip: IpAddr = ip.parse().unwrap();
        let Decision::Granted(grant) = self.shared.authenticator.authenticate(ACCOUNT, &secret, Some(ip)).await else {
            panic!("login refused")
        };
        self.shared.ledger.record(ACCOUNT, Some(ip), grant, Instant::now());
        (cred.id, secret)
    }
}

/// A request as Postfix 3.7 writes it, with the attributes the rules read.
fn request(state: &str, ip: &str, port: u16, user: &str, rcpts: u32, instance: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\nclient_address={ip}\n\
         client_name=unknown\nclient_port={port}\nserver_address=127.0.0.1\nserver_port=25\nhelo_name=x\n\
         sender=a@example.com\nrecipient=\nrecipient_count={rcpts}\nqueue_id=\ninstance={instance}\nsize=0\n\
         sasl_method=PLAIN\nsasl_username={user}\npolicy_context=test\n\n"
    )
    .into_bytes()
}

/// Sends one request and reads one reply (`action=…` and the empty line).
async fn ask(stream: &mut UnixStream, req: &[u8]) -> String {
    stream.write_all(req).await.unwrap();
    read_reply(stream).await.expect("connection closed instead of a reply")
}

async fn read_reply(stream: &mut UnixStream) -> Option<String> {
    // One byte at a time, so that a second reply in the same segment stays for the next call.
    let mut buf = Vec::new();
    while !buf.ends_with(b"\n\n") {
        let mut byte = [0u8; 1];
        if stream.read(&mut byte).await.unwrap_or(0) == 0 {
            return None;
        }
        buf.push(byte[0]);
    }
    let text = String::from_utf8(buf).unwrap();
    let action = text.strip_prefix("action=").expect("reply starts with action=").trim_end().to_string();
    assert!(!action.is_empty(), "empty action");
    assert!(!action.chars().all(|c| c.is_ascii_digit()), "bare code {action}");
    Some(action)
}

/// Reads until the server closes; fails if it sends anything.
async fn expect_closed(stream: &mut UnixStream) {
    let mut buf = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf)).await.expect("server kept it open");
    assert_eq!(n.unwrap_or(0), 0, "server replied instead of closing");
}

fn code(action: &str) -> &str {
    action.split(' ').take(2).last().unwrap_or("")
}

#[tokio::test]
async fn serves_many_requests_per_connection_with_one_reply_each() {
    let server = Server::start("").await;
    let mut c = server.connect().await;
    for (i, state) in ["CONNECT", "EHLO", "MAIL", "RCPT", "RCPT", "DATA", "END-OF-MESSAGE"].iter().enumerate() {
        assert_eq!(ask(&mut c, &request(state, "192.0.2.1", 4000, "", 0, &i.to_string())).await, "DUNNO");
    }
    // Two requests in one write still get two replies, in order.
    let mut two = request("CONNECT", "192.0.2.1", 4001, "", 0, "");
    two.extend(request("MAIL", "192.0.2.1", 4001, "", 0, ""));
    c.write_all(&two).await.unwrap();
    assert_eq!(read_reply(&mut c).await.as_deref(), Some("DUNNO"));
    assert_eq!(read_reply(&mut c).await.as_deref(), Some("DUNNO"));
}

#[tokio::test]
async fn malformed_input_closes_only_that_connection() {
    let server = Server::start("").await;
    let mut good = server.connect().await;
    assert_eq!(ask(&mut good, &request("CONNECT", "192.0.2.1", 4000, "", 0, "")).await, "DUNNO");
    let long = [b"request=smtpd_access_policy\nsender=".as_slice(), &vec![b'x'; 100_000]].concat();
    for bad in [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], b"request=something_else\n\n", &long] {
        let mut c = server.connect().await;
        c.write_all(bad).await.unwrap();
        expect_closed(&mut c).await;
    }
    // A client that leaves in the middle of a request.
    let mut quitter = server.connect().await;
    quitter.write_all(b"request=smtpd_access_policy\nprotocol_state=CONN").await.unwrap();
    drop(quitter);
    assert_eq!(ask(&mut good, &request("MAIL", "192.0.2.1", 4000, "", 0, "")).await, "DUNNO");
}

#[tokio::test]
async fn connect_beyond_the_limit_is_refused_until_a_policy_connection_closes() {
    let server = Server::start("[policy]\ntcp_table = false\n[limits]\nmax_connections_per_ip = 2\n").await;
    let mut a = server.connect().await;
    let mut b = server.connect().await;
    let mut c = server.connect().await;
    assert_eq!(ask(&mut a, &request("CONNECT", "192.0.2.7", 1, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut b, &request("CONNECT", "192.0.2.7", 2, "", 0, "")).await, "DUNNO");
    let refused = ask(&mut c, &request("CONNECT", "192.0.2.7", 3, "", 0, "")).await;
    assert!(refused.starts_with("421 4.7.0 "), "{refused}");
    assert_eq!(ask(&mut c, &request("CONNECT", "192.0.2.8", 3, "", 0, "")).await, "DUNNO", "other IPs go on");
    // A's smtpd starts its next session: the first one is over.
    assert_eq!(ask(&mut a, &request("CONNECT", "192.0.2.9", 9, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut c, &request("CONNECT", "192.0.2.7", 3, "", 0, "")).await, "DUNNO");
    // B's smtpd dies: its policy connection closes and its session with it.
    drop(b);
    let mut d = server.connect().await;
    // The close is seen by the server task asynchronously; ask until it has been (bounded).
    let mut answer = String::new();
    for port in 10..60 {
        answer = ask(&mut d, &request("CONNECT", "192.0.2.7", port, "", 0, "")).await;
        if answer == "DUNNO" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(answer, "DUNNO");
}

/// Real loopback TCP sessions, so that /proc/net/tcp shows them; Postfix's view is
/// server_address:server_port = the listener's side.
struct TcpSessions {
    listener: std::net::TcpListener,
    open: Vec<Option<(std::net::TcpStream, std::net::TcpStream)>>,
}

impl TcpSessions {
    fn new() -> Self {
        Self { listener: std::net::TcpListener::bind("127.0.0.1:0").unwrap(), open: Vec::new() }
    }

    /// Opens one more session; returns its index.
    fn connect(&mut self) -> usize {
        let client = std::net::TcpStream::connect(self.listener.local_addr().unwrap()).unwrap();
        let (server_side, _) = self.listener.accept().unwrap();
        self.open.push(Some((client, server_side)));
        self.open.len() - 1
    }

    fn close(&mut self, i: usize) {
        drop(self.open[i].take());
    }

    /// The CONNECT request Postfix would send for session `i`.
    fn connect_request(&self, i: usize) -> Vec<u8> {
        let (client, _) = self.open[i].as_ref().unwrap();
        let text =
            String::from_utf8(request("CONNECT", "127.0.0.1", client.local_addr().unwrap().port(), "", 0, "")).unwrap();
        let port = self.listener.local_addr().unwrap().port();
        text.replace("server_port=25", &format!("server_port={port}")).into_bytes()
    }
}

#[tokio::test]
async fn kernel_tcp_table_frees_slots_of_sessions_whose_client_left() {
    let server = Server::start("[limits]\nmax_connections_per_ip = 2\n").await;
    let mut tcp = TcpSessions::new();
    // Idle smtpd processes keep these policy connections open after their sessions end.
    let (mut a, mut b, mut c) = (server.connect().await, server.connect().await, server.connect().await);
    let s0 = tcp.connect();
    assert_eq!(ask(&mut a, &tcp.connect_request(s0)).await, "DUNNO");
    let s1 = tcp.connect();
    assert_eq!(ask(&mut b, &tcp.connect_request(s1)).await, "DUNNO");
    let s2 = tcp.connect();
    assert!(ask(&mut c, &tcp.connect_request(s2)).await.starts_with("421 4.7.0"), "both sessions are connected");
    // Session 0's client leaves; its smtpd (policy connection `a`) stays idle and silent.
    let req2 = tcp.connect_request(s2);
    tcp.close(s0);
    assert_eq!(ask(&mut c, &req2).await, "DUNNO");
    let s3 = tcp.connect();
    assert!(ask(&mut a, &tcp.connect_request(s3)).await.starts_with("421 4.7.0"), "sessions 1 and 2 are connected");
}

#[tokio::test]
async fn after_a_restart_the_kernel_counts_sessions_begun_before_it() {
    let mut tcp = TcpSessions::new();
    let (s0, _s1) = (tcp.connect(), tcp.connect());
    // relaykey starts while two sessions from 127.0.0.1 are in progress; it never saw their CONNECT.
    let server = Server::start("[limits]\nmax_connections_per_ip = 2\n").await;
    let mut c = server.connect().await;
    let s2 = tcp.connect();
    assert!(ask(&mut c, &tcp.connect_request(s2)).await.starts_with("421 4.7.0"), "two untracked sessions count");
    let req2 = tcp.connect_request(s2);
    tcp.close(s0);
    assert_eq!(ask(&mut c, &req2).await, "DUNNO");
}

#[tokio::test]
async fn sessions_older_than_the_limit_get_421_4_4_2() {
    let server = Server::start("[limits]\nsession_timeout = \"300ms\"\n").await;
    let mut c = server.connect().await;
    assert_eq!(ask(&mut c, &request("CONNECT", "192.0.2.1", 5000, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut c, &request("MAIL", "192.0.2.1", 5000, "", 0, "")).await, "DUNNO");
    // The clock is the subject here: the session has to grow old.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let expired = ask(&mut c, &request("RCPT", "192.0.2.1", 5000, "", 0, "")).await;
    assert_eq!(code(&expired), "4.4.2", "{expired}");
    assert!(expired.starts_with("421 "), "{expired}");
    // The next session on the same smtpd starts afresh.
    assert_eq!(ask(&mut c, &request("CONNECT", "192.0.2.1", 5001, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut c, &request("MAIL", "192.0.2.1", 5001, "", 0, "")).await, "DUNNO");
}

#[tokio::test]
async fn changed_secret_revokes_the_logged_in_session() {
    let server = Server::start("").await;
    let (id, _secret) = server.login("192.0.2.5").await;
    let mut c = server.connect().await;
    assert_eq!(ask(&mut c, &request("CONNECT", "192.0.2.5", 6000, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut c, &request("MAIL", "192.0.2.5", 6000, ACCOUNT, 0, "")).await, "DUNNO");
    let email = EmailAddress::parse(ACCOUNT).unwrap();
    Store::open(&server.db).unwrap().change_smtp_credential(&email, id, &server.config().auth.hash_params()).unwrap();
    for state in ["MAIL", "RCPT", "DATA"] {
        let refused = ask(&mut c, &request(state, "192.0.2.5", 6000, ACCOUNT, 1, "i.0")).await;
        assert!(refused.starts_with("554 5.7.1 "), "{state}: {refused}");
        assert!(refused.contains("changed or removed"), "{refused}");
    }
}

#[tokio::test]
async fn login_unknown_after_restart_is_checked_against_the_account() {
    let server = Server::start("").await;
    let mut c = server.connect().await;
    // A credential exists but this process never saw its login (ledger empty).
    let mut store = Store::open(&server.db).unwrap();
    let email = EmailAddress::parse(ACCOUNT).unwrap();
    let new = NewSmtpCredential { username: None, allow: AccessRestriction::parse_all(&["192.0.2.0/24"]).unwrap() };
    store.create_smtp_credential(&email, new, &server.config().auth.hash_params()).unwrap();
    assert_eq!(ask(&mut c, &request("MAIL", "192.0.2.5", 7000, ACCOUNT, 0, "")).await, "DUNNO");
    let outside = ask(&mut c, &request("MAIL", "198.51.100.5", 7001, ACCOUNT, 0, "")).await;
    assert!(outside.starts_with("554 5.7.1 "), "{outside}");
    let unknown = ask(&mut c, &request("MAIL", "192.0.2.5", 7002, "nobody@example.com", 0, "")).await;
    assert!(unknown.starts_with("554 5.7.1 "), "{unknown}");
    store.set_account_enabled(&email, false).unwrap();
    let disabled = ask(&mut c, &request("MAIL", "192.0.2.5", 7003, ACCOUNT, 0, "")).await;
    assert!(disabled.contains("disabled"), "{disabled}");
}

#[tokio::test]
async fn rate_limit_counts_messages_not_recipients() {
    let server = Server::start("[policy]\nmessages_per_minute = 2\n").await;
    server.login("192.0.2.5").await;
    let mut c = server.connect().await;
    for (n, instance) in ["m.0", "m.1"].iter().enumerate() {
        // Five recipients: four RCPT requests each, one DATA, one END-OF-MESSAGE.
        for _ in 0..5 {
            assert_eq!(ask(&mut c, &request("RCPT", "192.0.2.5", 8000, ACCOUNT, 0, instance)).await, "DUNNO");
        }
        assert_eq!(ask(&mut c, &request("DATA", "192.0.2.5", 8000, ACCOUNT, 5, instance)).await, "DUNNO", "msg {n}");
        let eom = ask(&mut c, &request("END-OF-MESSAGE", "192.0.2.5", 8000, ACCOUNT, 5, instance)).await;
        assert_eq!(eom, "DUNNO", "END-OF-MESSAGE does not count the message again");
    }
    let third = ask(&mut c, &request("DATA", "192.0.2.5", 8000, ACCOUNT, 5, "m.2")).await;
    assert!(third.starts_with("450 4.7.1 "), "{third}");
    // Unauthenticated traffic is not counted nor limited.
    assert_eq!(ask(&mut c, &request("DATA", "192.0.2.6", 8001, "", 5, "n.0")).await, "DUNNO");
}

#[tokio::test]
async fn network_overrides_set_the_per_ip_limit() {
    let server = Server::start(
        "[policy]\ntcp_table = false\n[limits]\nmax_connections_per_ip = 2\n\
         [[limits.override]]\nnetwork = \"198.51.100.0/24\"\nmax_connections_per_ip = 1\n",
    )
    .await;
    let mut conns = Vec::new();
    for _ in 0..4 {
        conns.push(server.connect().await);
    }
    assert_eq!(ask(&mut conns[0], &request("CONNECT", "198.51.100.1", 1, "", 0, "")).await, "DUNNO");
    let refused = ask(&mut conns[1], &request("CONNECT", "198.51.100.1", 2, "", 0, "")).await;
    assert!(refused.starts_with("421 4.7.0 ") && refused.contains("limit 1"), "{refused}");
    assert_eq!(ask(&mut conns[2], &request("CONNECT", "192.0.2.1", 1, "", 0, "")).await, "DUNNO");
    assert_eq!(ask(&mut conns[3], &request("CONNECT", "192.0.2.1", 2, "", 0, "")).await, "DUNNO");
}

#[tokio::test]
async fn narrowed_restriction_or_disabled_account_revokes_the_session() {
    let server = Server::start("").await;
    let (id, _secret) = server.login("192.0.2.5").await;
    let email = EmailAddress::parse(ACCOUNT).unwrap();
    let mut c = server.connect().await;
    assert_eq!(ask(&mut c, &request("MAIL", "192.0.2.5", 6100, ACCOUNT, 0, "")).await, "DUNNO");
    let mut store = Store::open(&server.db).unwrap();
    let narrowed = SmtpCredentialEdit { allow: Some(AccessRestriction::parse_all(&["198.51.100.0/24"]).unwrap()) };
    store.edit_smtp_credential(&email, id, narrowed).unwrap();
    let refused = ask(&mut c, &request("RCPT", "192.0.2.5", 6100, ACCOUNT, 0, "")).await;
    assert!(refused.starts_with("554 5.7.1 ") && refused.contains("address"), "{refused}");
    store.edit_smtp_credential(&email, id, SmtpCredentialEdit { allow: Some(AccessRestriction::default()) }).unwrap();
    assert_eq!(ask(&mut c, &request("RCPT", "192.0.2.5", 6100, ACCOUNT, 0, "")).await, "DUNNO");
    store.set_account_enabled(&email, false).unwrap();
    let refused = ask(&mut c, &request("DATA", "192.0.2.5", 6100, ACCOUNT, 1, "i.0")).await;
    assert!(refused.starts_with("554 5.7.1 ") && refused.contains("disabled"), "{refused}");
}

#[tokio::test]
async fn a_reloaded_config_applies_to_the_next_request() {
    let server = Server::start("[policy]\ntcp_table = false\n[limits]\nmax_connections_per_ip = 1\n").await;
    let (mut a, mut b) = (server.connect().await, server.connect().await);
    assert_eq!(ask(&mut a, &request("CONNECT", "192.0.2.1", 1, "", 0, "")).await, "DUNNO");
    assert!(ask(&mut b, &request("CONNECT", "192.0.2.1", 2, "", 0, "")).await.starts_with("421 4.7.0 "));
    let mut config = server.config();
    config.limits.max_connections_per_ip = 2;
    server.publish.send_replace(Arc::new(config));
    assert_eq!(
        ask(&mut b, &request("CONNECT", "192.0.2.1", 2, "", 0, "")).await,
        "DUNNO",
        "same connection, new limit"
    );
}
