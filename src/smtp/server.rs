//! The relay's tokio shell: accepts TCP connections, enforces the per-IP connection limit, frames
//! lines, applies time-outs, runs TLS handshakes, asks the Authenticator, streams DATA into the
//! spool and writes replies. Every decision (including what to say on a time-out) is the
//! [`Session`]'s; this file only moves bytes and awaits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::auth::mechanism::Credentials;
use crate::auth::{FrontEnd, Grant, Login, LoginMechanism, Presented, Purpose};
use crate::config::{Config, TlsMode};
use crate::limits::LimitScope;
use crate::log_text::LogText;
use crate::queue::{EnqueueError, Incoming, Outbox, Submission, Trace};

use super::RelayDeps;
use super::codec::{Frame, MAX_COMMAND_LINE, next_line};
use super::data::{DotReader, Feed};
use super::reply::Reply;
use super::session::{
    AuthAttempt, CredentialRefusal, Input, SenderAnswer, SenderBinding, SenderQuery, Session, SessionConfig, Step,
};
use super::tls::CertStore;

/// Body bytes collected before they are handed to the spool file.
const SPOOL_CHUNK: usize = 256 * 1024;
const READ_CHUNK: usize = 16 * 1024;

/// What every relay connection shares: the daemon's [`RelayDeps`], and what `serve_relay`
/// adds to them.
pub struct RelayContext {
    pub deps: RelayDeps,
    /// Where accepted messages go.
    pub outbox: Outbox,
    pub certs: Arc<CertStore>,
}

impl RelayContext {
    /// A snapshot of the current config.
    fn config(&self) -> Arc<Config> {
        self.deps.config.borrow().clone()
    }
}

/// Runs one listener's accept loop until shutdown; connections run on `ctx.deps.tasks`.
pub async fn accept_loop(ctx: Arc<RelayContext>, listener: TcpListener, mode: TlsMode) {
    let local = listener.local_addr().map(|a| a.to_string()).unwrap_or_default();
    info!(proto = "smtp", listen = %local, tls = ?mode, "relay listening");
    loop {
        let accepted = tokio::select! {
            _ = ctx.deps.shutdown.cancelled() => return,
            r = listener.accept() => r,
        };
        match accepted {
            Ok((stream, peer)) => {
                let ctx2 = ctx.clone();
                ctx.deps.tasks.spawn(async move {
                    let _open = crate::metrics::OpenConnection::new("relay");
                    connection(ctx2, stream, peer, mode).await
                });
            }
            Err(e) => {
                // EMFILE and friends: back off instead of spinning.
                warn!(error = %e, "relay accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

async fn connection(ctx: Arc<RelayContext>, mut stream: TcpStream, peer: SocketAddr, mode: TlsMode) {
    let ip = crate::restriction::canonical_ip(peer.ip());
    let _permit = match ctx.deps.limiter.try_acquire(ip) {
        Ok(p) => p,
        Err(e) => {
            let (reason, reply) = match e.scope {
                LimitScope::Client => ("too_many_connections", Reply::too_many_connections()),
                LimitScope::Total => ("max_connections", Reply::server_busy()),
            };
            info!(proto = "smtp", decision = "reject", reason, ip = %ip, limit = e.limit, "connect");
            let _ = tokio::time::timeout(Duration::from_secs(5), stream.write_all(&reply.to_bytes())).await;
            return;
        }
    };
    let _ = stream.set_nodelay(true);
    let config = ctx.config();
    let acceptor = ctx.certs.acceptor();
    let session_config = Arc::new(SessionConfig {
        hostname: config.relay.hostname.clone(),
        max_message_size: config.relay.max_message_size,
        max_recipients: config.relay.max_recipients,
        max_errors: config.relay.max_errors,
        listener: mode,
        tls_available: acceptor.is_some(),
        allow_private_destinations: config.relay.allow_private_destinations,
        sender_binding: match (config.senders.enforce, config.senders.check_header_from) {
            (false, _) => SenderBinding::Off,
            (true, false) => SenderBinding::MailFrom,
            (true, true) => SenderBinding::MailFromAndHeader,
        },
    });
    let mut session = Session::new(session_config, ip, config.relay.is_trusted(ip), mode == TlsMode::Implicit);
    let mut conn = Connection { ctx: &ctx, config: &config, deadline: Instant::now() + config.limits.session_timeout };
    let handshake_time = config.limits.command_timeout;
    let result = match mode {
        TlsMode::Implicit => {
            let Some(acceptor) = acceptor else {
                warn!(proto = "smtp", ip = %ip, "implicit TLS listener without a certificate");
                return;
            };
            match tokio::time::timeout(handshake_time, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => conn.run(tls, &mut session, true).await.map(|_| ()),
                Ok(Err(e)) => Err(e),
                Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
            }
        }
        _ => match conn.run(stream, &mut session, true).await {
            Ok(Outcome::StartTls(plain)) => match acceptor {
                Some(acceptor) => match tokio::time::timeout(handshake_time, acceptor.accept(plain)).await {
                    Ok(Ok(tls)) => {
                        session.on_tls_established();
                        conn.run(tls, &mut session, false).await.map(|_| ())
                    }
                    Ok(Err(e)) => Err(e),
                    Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
                },
                None => Ok(()),
            },
            Ok(Outcome::Closed) => Ok(()),
            Err(e) => Err(e),
        },
    };
    if let Err(e) = result {
        debug!(proto = "smtp", ip = %ip, error = %e, "connection ended");
    }
}

/// How a plaintext run ended.
enum Outcome<S> {
    Closed,
    /// STARTTLS was accepted: the stream, with nothing of the client's plaintext left buffered.
    StartTls(S),
}

struct Connection<'a> {
    ctx: &'a RelayContext,
    config: &'a Config,
    deadline: Instant,
}

/// A framed stream: bytes read but not yet used, replies not yet written.
struct Io<S> {
    stream: S,
    rbuf: Vec<u8>,
    wbuf: Vec<u8>,
    /// Discarding an over-long line up to its LF.
    skipping: bool,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Io<S> {
    async fn flush(&mut self, limit: Duration) -> std::io::Result<()> {
        if self.wbuf.is_empty() {
            return Ok(());
        }
        let result = tokio::time::timeout(limit, async {
            self.stream.write_all(&self.wbuf).await?;
            self.stream.flush().await
        })
        .await;
        self.wbuf.clear();
        result.map_err(|_| std::io::Error::from(std::io::ErrorKind::TimedOut))?
    }

    /// Reads more bytes; `Ok(false)` at end of stream.
    async fn fill(&mut self) -> std::io::Result<bool> {
        // `read_buf` only appends what was read, so a time-out that drops this future leaves
        // the buffer as it was.
        self.rbuf.reserve(READ_CHUNK);
        Ok(self.stream.read_buf(&mut self.rbuf).await? > 0)
    }
}

/// Why reading stopped before a line was complete.
enum Wait {
    Line,
    Input(Input),
    Eof,
}

impl Connection<'_> {
    fn command_timeout(&self) -> Duration {
        self.config.limits.command_timeout
    }

    /// Speaks SMTP on `stream` until the session closes or STARTTLS is accepted.
    async fn run<S: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        stream: S,
        session: &mut Session,
        greet: bool,
    ) -> std::io::Result<Outcome<S>> {
        let mut io =
            Io { stream, rbuf: Vec::with_capacity(READ_CHUNK), wbuf: Vec::with_capacity(1024), skipping: false };
        if greet {
            session.greeting().encode(&mut io.wbuf);
        }
        loop {
            let input = match self.next_input(&mut io, session).await? {
                Wait::Line => continue,
                Wait::Input(i) => i,
                Wait::Eof => return Ok(Outcome::Closed),
            };
            let mut step = session.on_input(input);
            loop {
                step = match step {
                    Step::Reply(r) => {
                        r.encode(&mut io.wbuf);
                        break;
                    }
                    Step::Close(r) => {
                        r.encode(&mut io.wbuf);
                        io.flush(self.command_timeout()).await?;
                        let _ = io.stream.shutdown().await;
                        return Ok(Outcome::Closed);
                    }
                    Step::StartTls(r) => {
                        r.encode(&mut io.wbuf);
                        io.flush(self.command_timeout()).await?;
                        // RFC 3207 §6 / CVE-2011-0411: plaintext pipelined after STARTTLS must
                        // not be read as if it came over TLS.
                        io.rbuf.clear();
                        return Ok(Outcome::StartTls(io.stream));
                    }
                    Step::Authenticate(AuthAttempt { username, secret, mechanism }) => {
                        let presented = Presented::Smtp(Credentials { username, secret });
                        self.authenticate(session, mechanism, presented).await
                    }
                    Step::RefuseCredentials(CredentialRefusal { username, mechanism, error }) => {
                        self.authenticate(session, mechanism, Presented::Malformed { username, error }).await
                    }
                    Step::Recheck(grant) => self.recheck(session, grant).await,
                    Step::CountMessage { account } => self.count_message(session, &account).await,
                    Step::CheckSenders(check) => session.on_senders_checked(self.check_senders(&check)),
                    Step::ReceiveData(r) => {
                        r.encode(&mut io.wbuf);
                        io.flush(self.command_timeout()).await?;
                        match self.receive_data(&mut io, session).await? {
                            Some(step) => step,
                            None => return Ok(Outcome::Closed),
                        }
                    }
                    Step::Enqueue(_) => {
                        // Only `on_data_end` asks for this, and `receive_data` handles it.
                        session.on_queued(Err(EnqueueError::NoMessage))
                    }
                };
            }
            // PIPELINING (RFC 2920): answer a batch of commands in one write.
            if matches!(next_line(&io.rbuf, MAX_COMMAND_LINE), Frame::Incomplete) {
                io.flush(self.command_timeout()).await?;
            }
        }
    }

    /// The next input from buffered bytes, or reads more under the time-outs.
    async fn next_input<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        io: &mut Io<S>,
        session: &Session,
    ) -> std::io::Result<Wait> {
        if io.skipping {
            match io.rbuf.iter().position(|&b| b == b'\n') {
                Some(pos) => {
                    io.rbuf.drain(..=pos);
                    io.skipping = false;
                    return Ok(Wait::Input(Input::Malformed(super::codec::CodecError::LineTooLong)));
                }
                None => io.rbuf.clear(),
            }
        } else {
            match next_line(&io.rbuf, MAX_COMMAND_LINE) {
                Frame::Line { len, consumed } => {
                    let input = session.parse_line(&io.rbuf[..len]);
                    io.rbuf.drain(..consumed);
                    return Ok(Wait::Input(input));
                }
                Frame::TooLong => {
                    io.skipping = true;
                    return Ok(Wait::Line);
                }
                Frame::Incomplete => {}
            }
        }
        io.flush(self.command_timeout()).await?;
        let now = Instant::now();
        let remaining = self.deadline.saturating_duration_since(now);
        if remaining.is_zero() {
            return Ok(Wait::Input(Input::SessionExpired));
        }
        let limit = self.command_timeout().min(remaining);
        let session_bound = remaining <= self.command_timeout();
        tokio::select! {
            _ = self.ctx.deps.shutdown.cancelled() => Ok(Wait::Input(Input::ShuttingDown)),
            r = tokio::time::timeout(limit, io.fill()) => match r {
                Ok(Ok(true)) => Ok(Wait::Line),
                Ok(Ok(false)) => Ok(Wait::Eof),
                Ok(Err(e)) => Err(e),
                Err(_) if session_bound => Ok(Wait::Input(Input::SessionExpired)),
                Err(_) => Ok(Wait::Input(Input::Timeout)),
            },
        }
    }

    /// Asks the sender directory whether the login's account may use every address, and logs
    /// a refusal (the session makes the reply).
    fn check_senders(&self, query: &SenderQuery) -> SenderAnswer {
        for address in &query.addresses {
            match self.ctx.deps.senders.may_send(query.account_id, address) {
                Ok(check) if check.is_allowed() => {}
                Ok(check) => {
                    info!(proto = "smtp", decision = "reject", reason = check.kind(), user = %LogText::new(&query.login),
                          sender = %LogText::new(address), "sender");
                    return SenderAnswer::NotOwned(address.clone());
                }
                Err(e) => {
                    warn!(proto = "smtp", error = %e, "sender directory unavailable");
                    return SenderAnswer::Unavailable;
                }
            }
        }
        SenderAnswer::Allowed
    }

    /// Asks the login pipeline, holds a failure back as long as it says, reports the verdict.
    async fn authenticate(&self, session: &mut Session, mechanism: LoginMechanism, presented: Presented) -> Step {
        let client_ip = Some(session.client_ip());
        let login = Login { front_end: FrontEnd::Relay, mechanism, client_ip, presented };
        let outcome = self.ctx.deps.logins.login(login).await;
        tokio::time::sleep(outcome.delay).await;
        session.on_verdict(outcome.decision)
    }
}

impl Connection<'_> {
    /// Asks whether the session's login still holds; refusals are logged like the policy
    /// server's (`decision=refuse reason=...`).
    async fn recheck(&self, session: &mut Session, grant: Grant) -> Step {
        let ip = session.client_ip();
        let decision = self.ctx.deps.authenticator.recheck(&grant, Some(ip), Purpose::Smtp).await;
        if !decision.is_granted() {
            info!(proto = "smtp", decision = "refuse", reason = decision.reason(), user = %grant.username,
                  credential = %grant.credential.label(), ip = %ip, "recheck");
        }
        session.on_recheck(decision)
    }

    /// Takes a slot of the account's message limits (the counters the policy server and the
    /// API use too). Counts that cannot be read refuse for now (`451 4.3.0`), never as full.
    async fn count_message(&self, session: &mut Session, account: &str) -> Step {
        let quota = self.config.message_quota();
        let counted = match self.ctx.deps.message_limits.try_take(account, &quota, SystemTime::now()).await {
            Ok(counted) => counted,
            Err(e) => {
                warn!(proto = "smtp", error = %e, account = %account, "cannot count the message");
                return session.on_message_count_failed();
            }
        };
        if let Err(r) = &counted {
            info!(proto = "smtp", decision = "refuse", reason = %format_args!("rate_limit_{}", r.window.as_str()),
                  account = %account, ip = %session.client_ip(), retry_after = r.seconds(), "message limit");
        }
        session.on_message_counted(counted)
    }
}

#[path = "server_data.rs"]
mod data;
