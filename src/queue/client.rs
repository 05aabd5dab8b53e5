//! One outbound SMTP transaction with mail-send: greeting, EHLO, STARTTLS (required for the
//! smarthost when configured, opportunistic for MX hosts), AUTH to the smarthost, then MAIL,
//! one RCPT per recipient (each with its own result) and DATA.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient};
use rustls::ClientConfig;
use smtp_proto::EXT_START_TLS;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::TlsMode;
use crate::tls_provider::{AcceptAnyCertificate, provider};

/// How to treat TLS on this connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsPolicy {
    /// STARTTLS must succeed (smarthost `starttls`).
    Required,
    /// TLS from the first byte (smarthost `implicit`).
    Implicit,
    /// STARTTLS if offered; MX hosts (RFC 3207 §4: no name check is possible to rely on).
    Opportunistic,
    None,
}

impl TlsPolicy {
    pub fn for_smarthost(mode: TlsMode) -> Self {
        match mode {
            TlsMode::Starttls => Self::Required,
            TlsMode::Implicit => Self::Implicit,
            TlsMode::None => Self::None,
        }
    }
}

/// What one recipient's attempt came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RcptOutcome {
    /// The server's answer to the end of DATA.
    Delivered(ServerReply),
    /// 5xx, or no such domain: bounce.
    Permanent(Reason),
    /// 4xx or a connection failure: retry.
    Temporary(Reason),
}

impl RcptOutcome {
    /// What is logged and kept in the envelope (`last_result`); DSNs read the status code
    /// from its start.
    pub fn text(&self) -> String {
        match self {
            Self::Delivered(reply) => reply.to_string(),
            Self::Permanent(reason) | Self::Temporary(reason) => reason.to_string(),
        }
    }
}

/// A reply of the remote server: `550 5.1.1 no such user`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerReply {
    pub code: u16,
    /// The enhanced status code (RFC 3463), when the server gave one.
    pub status: Option<[u8; 3]>,
    pub text: String,
}

impl From<&smtp_proto::Response<String>> for ServerReply {
    fn from(r: &smtp_proto::Response<String>) -> Self {
        let status = (r.esc != [0, 0, 0]).then_some(r.esc);
        Self { code: r.code, status, text: r.message.clone() }
    }
}

impl fmt::Display for ServerReply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.status {
            Some([a, b, c]) => write!(f, "{} {a}.{b}.{c} {}", self.code, self.text),
            None => write!(f, "{} {}", self.code, self.text),
        }
    }
}

/// Why a recipient was not delivered (or a host could not take the message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// What the remote server answered.
    Reply(ServerReply),
    /// The connection, TLS or the client library failed before an answer (its description).
    Connection(String),
    /// The server sent nothing within the time-out.
    GreetingTimeout,
    /// TLS is required and the server does not offer STARTTLS.
    NoStartTls { host: String },
    /// A failure at one address of a host, when every host failed.
    At { host: String, addr: SocketAddr, reason: Box<Reason> },
    /// DNS says the domain cannot receive mail (shown as `550 5.1.2`).
    Unroutable(String),
    /// The domain's hosts could not be looked up (shown as `451 4.4.3`).
    RouteLookup(String),
    /// Every address of the destination is loopback, link-local or private and
    /// `allow_private_destinations` is off (shown as `550 5.7.1`: delivery not authorized).
    PrivateDestination(String),
    /// The destination had no address to connect to.
    NoAddress,
    /// The daemon is shutting down.
    Closing,
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Reply(r) => r.fmt(f),
            Self::Connection(e) => f.write_str(e),
            Self::GreetingTimeout => f.write_str("timeout waiting for the greeting"),
            Self::NoStartTls { host } => write!(f, "{host} does not offer STARTTLS"),
            Self::At { host, addr, reason } => write!(f, "{host} ({addr}): {reason}"),
            Self::Unroutable(m) => write!(f, "550 5.1.2 {m}"),
            Self::RouteLookup(m) => write!(f, "451 4.4.3 {m}"),
            Self::PrivateDestination(m) => write!(f, "550 5.7.1 {m}"),
            Self::NoAddress => f.write_str("no address to connect to"),
            Self::Closing => f.write_str("closing"),
        }
    }
}

pub struct Transaction<'a> {
    pub helo: &'a str,
    pub sender: &'a str,
    pub recipients: &'a [String],
    /// The stored message (CRLF lines).
    pub message: &'a [u8],
    pub eight_bit: bool,
    pub smtputf8: bool,
}

/// Connection-level settings, and idle connections kept for the next message to the same host.
pub struct Connector {
    pub timeout: Duration,
    pub verified: Option<TlsConnector>,
    pub unverified: TlsConnector,
    pub credentials: Option<Credentials<String>>,
    idle: Mutex<HashMap<SocketAddr, Vec<Idle>>>,
}

/// An open, greeted (and, for the smarthost, authenticated) connection between transactions.
enum Open {
    Plain(SmtpClient<TcpStream>),
    Tls(Box<SmtpClient<TlsStream<TcpStream>>>),
}

struct Idle {
    client: Open,
    since: Instant,
}

/// Idle connections older than this are closed rather than reused: servers time out idle
/// clients (Postfix after 300 s), and a stale one costs a failed MAIL and a reconnect.
const MAX_IDLE: Duration = Duration::from_secs(10);
const MAX_IDLE_PER_HOST: usize = 16;

/// Failure before any recipient got an answer: the whole host failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostFailure {
    /// Try the next host, or retry later.
    Temporary(Reason),
    /// 5xx to the greeting, EHLO, AUTH or MAIL: every recipient fails.
    Permanent(Reason),
}

impl HostFailure {
    /// The same failure for one recipient.
    fn for_recipient(self) -> RcptOutcome {
        match self {
            Self::Permanent(r) => RcptOutcome::Permanent(r),
            Self::Temporary(r) => RcptOutcome::Temporary(r),
        }
    }
}

impl Connector {
    pub fn new(timeout: Duration, verify: bool, credentials: Option<Credentials<String>>) -> Result<Self, String> {
        let verified = if verify {
            use rustls_platform_verifier::BuilderVerifierExt;
            let config = ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .map_err(|e| e.to_string())?
                .with_platform_verifier()
                .map_err(|e| e.to_string())?
                .with_no_client_auth();
            Some(TlsConnector::from(Arc::new(config)))
        } else {
            None
        };
        let unverified = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate(provider())))
            .with_no_client_auth();
        Ok(Self {
            timeout,
            verified,
            unverified: TlsConnector::from(Arc::new(unverified)),
            credentials,
            idle: Mutex::new(HashMap::new()),
        })
    }

    fn tls_for(&self, policy: TlsPolicy) -> &TlsConnector {
        match policy {
            TlsPolicy::Required | TlsPolicy::Implicit => self.verified.as_ref().unwrap_or(&self.unverified),
            _ => &self.unverified,
        }
    }

    /// Delivers to one address of a host, over an idle connection to it when there is one.
    pub async fn deliver(
        &self,
        addr: SocketAddr,
        host_name: &str,
        policy: TlsPolicy,
        tx: &Transaction<'_>,
    ) -> Result<Vec<RcptOutcome>, HostFailure> {
        if let Some(mut open) = self.take_idle(addr) {
            let result = match &mut open {
                Open::Plain(c) => transact(c, tx).await,
                Open::Tls(c) => transact(c, tx).await,
            };
            match result {
                // The server had closed it meanwhile (or said 421): start afresh.
                Err(HostFailure::Temporary(_)) => {}
                Err(e) => return Err(e),
                Ok((outcomes, reusable)) => {
                    if reusable {
                        self.put_idle(addr, open);
                    }
                    return Ok(outcomes);
                }
            }
        }
        let mut open = self.connect(addr, host_name, policy, tx.helo).await?;
        let (outcomes, reusable) = match &mut open {
            Open::Plain(c) => transact(c, tx).await?,
            Open::Tls(c) => transact(c, tx).await?,
        };
        if reusable {
            self.put_idle(addr, open);
        }
        Ok(outcomes)
    }

    /// Connects, reads the greeting, says EHLO, upgrades to TLS as `policy` says and logs in to
    /// the smarthost when credentials are configured.
    async fn connect(
        &self,
        addr: SocketAddr,
        host_name: &str,
        policy: TlsPolicy,
        helo: &str,
    ) -> Result<Open, HostFailure> {
        let mut client = SmtpClient::connect(addr, self.timeout).await.map_err(temporary)?;
        // mail-send writes the end-of-data dot as its own small segment; with Nagle on, it waits
        // for the peer's delayed ACK (40 ms) on every reused connection.
        let _ = client.stream.set_nodelay(true);
        let (open, caps) = if policy == TlsPolicy::Implicit {
            let mut tls = client.into_tls(self.tls_for(policy), host_name).await.map_err(temporary)?;
            check_greeting(&mut tls).await?;
            let caps = tls.ehlo(helo).await.map_err(classify)?;
            (Open::Tls(Box::new(tls)), caps)
        } else {
            check_greeting(&mut client).await?;
            let caps = client.ehlo(helo).await.map_err(classify)?;
            let offers_tls = caps.has_capability(EXT_START_TLS);
            match policy {
                TlsPolicy::Required if !offers_tls => {
                    return Err(HostFailure::Temporary(Reason::NoStartTls { host: host_name.to_string() }));
                }
                TlsPolicy::Required | TlsPolicy::Opportunistic if offers_tls => {
                    let mut tls = client.start_tls(self.tls_for(policy), host_name).await.map_err(temporary)?;
                    let caps = tls.ehlo(helo).await.map_err(classify)?;
                    (Open::Tls(Box::new(tls)), caps)
                }
                _ => (Open::Plain(client), caps),
            }
        };
        let mut open = open;
        if let Some(credentials) = &self.credentials {
            match &mut open {
                Open::Plain(c) => c.authenticate(credentials, &caps).await.map(|_| ()),
                Open::Tls(c) => c.authenticate(credentials, &caps).await.map(|_| ()),
            }
            .map_err(classify)?;
        }
        Ok(open)
    }

    fn take_idle(&self, addr: SocketAddr) -> Option<Open> {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        let list = idle.get_mut(&addr)?;
        while let Some(entry) = list.pop() {
            if entry.since.elapsed() < MAX_IDLE {
                return Some(entry.client);
            }
        }
        None
    }

    fn put_idle(&self, addr: SocketAddr, client: Open) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        idle.retain(|_, list| {
            list.retain(|e| e.since.elapsed() < MAX_IDLE);
            !list.is_empty()
        });
        let list = idle.entry(addr).or_default();
        if list.len() < MAX_IDLE_PER_HOST {
            list.push(Idle { client, since: Instant::now() });
        }
    }
}

/// One transaction (MAIL, a RCPT per recipient, DATA) on an open connection. Returns one
/// outcome per recipient and whether the connection can carry another transaction.
async fn transact<S: AsyncRead + AsyncWrite + Unpin>(
    client: &mut SmtpClient<S>,
    tx: &Transaction<'_>,
) -> Result<(Vec<RcptOutcome>, bool), HostFailure> {
    let mut params = Parameters::new();
    if tx.eight_bit {
        params.add(("BODY", "8BITMIME"));
    }
    if tx.smtputf8 {
        params.add("SMTPUTF8");
    }
    client.mail_from(tx.sender, &params).await.map_err(classify)?;
    // Per recipient: accepted (`None`, its outcome is DATA's), or refused.
    let mut refused = Vec::with_capacity(tx.recipients.len());
    for rcpt in tx.recipients {
        refused.push(client.rcpt_to(rcpt, &Parameters::new()).await.err().map(|e| classify(e).for_recipient()));
    }
    if refused.iter().all(Option::is_some) {
        let reusable = client.rset().await.is_ok();
        return Ok((refused.into_iter().flatten().collect(), reusable));
    }
    // mail-send appends CRLF . CRLF itself, so the message's own last CRLF is left off.
    let body = tx.message.strip_suffix(b"\r\n").unwrap_or(tx.message);
    let (verdict, reusable) = match client.data(body).await {
        Ok(reply) => (RcptOutcome::Delivered(ServerReply::from(&reply)), true),
        Err(e) => (classify(e).for_recipient(), false),
    };
    Ok((refused.into_iter().map(|r| r.unwrap_or_else(|| verdict.clone())).collect(), reusable))
}

async fn check_greeting<S: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<S>) -> Result<(), HostFailure> {
    let timeout = client.timeout;
    let greeting = tokio::time::timeout(timeout, client.read())
        .await
        .map_err(|_| HostFailure::Temporary(Reason::GreetingTimeout))?
        .map_err(temporary)?;
    let reply = Reason::Reply(ServerReply::from(&greeting));
    match greeting.code {
        220 => Ok(()),
        500..=599 => Err(HostFailure::Permanent(reply)),
        _ => Err(HostFailure::Temporary(reply)),
    }
}

fn temporary(e: mail_send::Error) -> HostFailure {
    HostFailure::Temporary(Reason::Connection(e.to_string()))
}

/// 5xx replies are permanent; everything else (4xx, I/O, TLS, time-outs) is worth a retry.
fn classify(e: mail_send::Error) -> HostFailure {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            let reply = Reason::Reply(ServerReply::from(&r));
            if (500..600).contains(&r.code) { HostFailure::Permanent(reply) } else { HostFailure::Temporary(reply) }
        }
        other => HostFailure::Temporary(Reason::Connection(other.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(code: u16, esc: [u8; 3], message: &str) -> smtp_proto::Response<String> {
        smtp_proto::Response { code, esc, message: message.into() }
    }

    #[test]
    fn replies_are_classified_by_code_and_keep_their_status() {
        let refused = classify(mail_send::Error::UnexpectedReply(reply(550, [5, 1, 1], "no such user")));
        let expected = ServerReply { code: 550, status: Some([5, 1, 1]), text: "no such user".into() };
        assert_eq!(refused, HostFailure::Permanent(Reason::Reply(expected)));
        let busy = classify(mail_send::Error::UnexpectedReply(reply(451, [0, 0, 0], "try later")));
        assert_eq!(
            busy,
            HostFailure::Temporary(Reason::Reply(ServerReply { code: 451, status: None, text: "try later".into() }))
        );
    }

    #[test]
    fn recorded_text_starts_with_the_status_a_dsn_reads() {
        let bounced = RcptOutcome::Permanent(Reason::Reply(ServerReply::from(&reply(550, [5, 1, 1], "no such user"))));
        assert_eq!(bounced.text(), "550 5.1.1 no such user");
        assert_eq!(RcptOutcome::Permanent(Reason::Unroutable("no MX".into())).text(), "550 5.1.2 no MX");
        assert_eq!(RcptOutcome::Temporary(Reason::RouteLookup("SERVFAIL".into())).text(), "451 4.4.3 SERVFAIL");
        let at = Reason::At {
            host: "mx.example".into(),
            addr: "192.0.2.1:25".parse().unwrap(),
            reason: Box::new(Reason::Reply(ServerReply { code: 421, status: None, text: "busy".into() })),
        };
        assert_eq!(at.to_string(), "mx.example (192.0.2.1:25): 421 busy");
    }
}
