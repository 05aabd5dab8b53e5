//! One outbound SMTP transaction with mail-send: greeting, EHLO, STARTTLS (required for the
//! smarthost when configured, opportunistic for MX hosts), AUTH to the smarthost, then MAIL,
//! one RCPT per recipient (each with its own result) and DATA.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use smtp_proto::EXT_START_TLS;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use crate::config::TlsMode;
use crate::smtp::tls::provider;

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
    Delivered(String),
    /// 5xx: bounce.
    Permanent(String),
    /// 4xx or a connection failure: retry.
    Temporary(String),
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
    Temporary(String),
    /// 5xx to the greeting, EHLO, AUTH or MAIL: every recipient fails.
    Permanent(String),
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
            .with_custom_certificate_verifier(Arc::new(AcceptAny(provider())))
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
                    return Err(HostFailure::Temporary(format!("{host_name} does not offer STARTTLS")));
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
    let mut outcomes = Vec::with_capacity(tx.recipients.len());
    for rcpt in tx.recipients {
        outcomes.push(match client.rcpt_to(rcpt, &Parameters::new()).await {
            Ok(()) => RcptOutcome::Delivered(String::new()),
            Err(e) => match classify(e) {
                HostFailure::Permanent(m) => RcptOutcome::Permanent(m),
                HostFailure::Temporary(m) => RcptOutcome::Temporary(m),
            },
        });
    }
    if !outcomes.iter().any(|o| matches!(o, RcptOutcome::Delivered(_))) {
        let reusable = client.rset().await.is_ok();
        return Ok((outcomes, reusable));
    }
    // mail-send appends CRLF . CRLF itself, so the message's own last CRLF is left off.
    let body = tx.message.strip_suffix(b"\r\n").unwrap_or(tx.message);
    let (verdict, reusable) = match client.data(body).await {
        Ok(reply) => (RcptOutcome::Delivered(format!("{} {}", reply.code, reply.message)), true),
        Err(e) => match classify(e) {
            HostFailure::Permanent(m) => (RcptOutcome::Permanent(m), false),
            HostFailure::Temporary(m) => (RcptOutcome::Temporary(m), false),
        },
    };
    for o in outcomes.iter_mut() {
        if matches!(o, RcptOutcome::Delivered(_)) {
            *o = verdict.clone();
        }
    }
    Ok((outcomes, reusable))
}

async fn check_greeting<S: AsyncRead + AsyncWrite + Unpin>(client: &mut SmtpClient<S>) -> Result<(), HostFailure> {
    let timeout = client.timeout;
    let greeting = tokio::time::timeout(timeout, client.read())
        .await
        .map_err(|_| HostFailure::Temporary("timeout waiting for the greeting".into()))?
        .map_err(temporary)?;
    match greeting.code {
        220 => Ok(()),
        500..=599 => Err(HostFailure::Permanent(format!("{} {}", greeting.code, greeting.message))),
        _ => Err(HostFailure::Temporary(format!("{} {}", greeting.code, greeting.message))),
    }
}

fn temporary(e: mail_send::Error) -> HostFailure {
    HostFailure::Temporary(e.to_string())
}

/// 5xx replies are permanent; everything else (4xx, I/O, TLS, time-outs) is worth a retry.
fn classify(e: mail_send::Error) -> HostFailure {
    match e {
        mail_send::Error::UnexpectedReply(r) | mail_send::Error::AuthenticationFailed(r) => {
            let text = format!("{} {}.{}.{} {}", r.code, r.esc[0], r.esc[1], r.esc[2], r.message);
            let text = text.replace(" 0.0.0 ", " ");
            if (500..600).contains(&r.code) { HostFailure::Permanent(text) } else { HostFailure::Temporary(text) }
        }
        other => HostFailure::Temporary(other.to_string()),
    }
}

/// Opportunistic TLS to MX hosts checks nothing: without DANE or MTA-STS a failed check could
/// only mean falling back to plaintext, which is worse than an unauthenticated channel.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
