//! One outbound SMTP transaction with mail-send: greeting, EHLO, STARTTLS (required for the
//! smarthost when configured, opportunistic for MX hosts), AUTH to the smarthost, then MAIL,
//! one RCPT per recipient (each with its own result) and DATA.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mail_send::smtp::message::Parameters;
use mail_send::{Credentials, SmtpClient};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use smtp_proto::{EXT_START_TLS, EhloResponse};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;

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

/// Connection-level settings.
pub struct Connector {
    pub timeout: Duration,
    pub verified: Option<TlsConnector>,
    pub unverified: TlsConnector,
    pub credentials: Option<Credentials<String>>,
}

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
        Ok(Self { timeout, verified, unverified: TlsConnector::from(Arc::new(unverified)), credentials })
    }

    fn tls_for(&self, policy: TlsPolicy) -> &TlsConnector {
        match policy {
            TlsPolicy::Required | TlsPolicy::Implicit => self.verified.as_ref().unwrap_or(&self.unverified),
            _ => &self.unverified,
        }
    }

    /// Delivers to one address of a host.
    pub async fn deliver(
        &self,
        addr: SocketAddr,
        host_name: &str,
        policy: TlsPolicy,
        tx: &Transaction<'_>,
    ) -> Result<Vec<RcptOutcome>, HostFailure> {
        let mut client = SmtpClient::connect(addr, self.timeout).await.map_err(temporary)?;
        if policy == TlsPolicy::Implicit {
            let mut tls = client.into_tls(self.tls_for(policy), host_name).await.map_err(temporary)?;
            check_greeting(&mut tls).await?;
            let caps = tls.ehlo(tx.helo).await.map_err(classify)?;
            return self.transact(tls, &caps, tx).await;
        }
        check_greeting(&mut client).await?;
        let caps = client.ehlo(tx.helo).await.map_err(classify)?;
        let offers_tls = caps.has_capability(EXT_START_TLS);
        match policy {
            TlsPolicy::Required if !offers_tls => {
                Err(HostFailure::Temporary(format!("{host_name} does not offer STARTTLS")))
            }
            TlsPolicy::Required | TlsPolicy::Opportunistic if offers_tls => {
                let mut tls = client.start_tls(self.tls_for(policy), host_name).await.map_err(temporary)?;
                let caps = tls.ehlo(tx.helo).await.map_err(classify)?;
                self.transact(tls, &caps, tx).await
            }
            _ => self.transact(client, &caps, tx).await,
        }
    }

    async fn transact<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        mut client: SmtpClient<S>,
        caps: &EhloResponse<String>,
        tx: &Transaction<'_>,
    ) -> Result<Vec<RcptOutcome>, HostFailure> {
        if let Some(credentials) = &self.credentials {
            client.authenticate(credentials, caps).await.map_err(classify)?;
        }
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
            let _ = client.rset().await;
            let _ = client.quit().await;
            return Ok(outcomes);
        }
        // mail-send appends CRLF . CRLF itself, so the message's own last CRLF is left off.
        let body = tx.message.strip_suffix(b"\r\n").unwrap_or(tx.message);
        let data_result = client.data(body).await;
        let verdict = match data_result {
            Ok(reply) => RcptOutcome::Delivered(format!("{} {}", reply.code, reply.message)),
            Err(e) => match classify(e) {
                HostFailure::Permanent(m) => RcptOutcome::Permanent(m),
                HostFailure::Temporary(m) => RcptOutcome::Temporary(m),
            },
        };
        for o in outcomes.iter_mut() {
            if matches!(o, RcptOutcome::Delivered(_)) {
                *o = verdict.clone();
            }
        }
        let _ = client.quit().await;
        Ok(outcomes)
    }
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
