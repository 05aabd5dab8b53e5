//! The auth-client socket: accepts connections (one per Postfix smtpd process, mostly idle),
//! writes the handshake at once, frames lines, runs each login on its own task so that replies
//! go out in completion order, and writes what the [`Session`] decides. It decides nothing.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::codec::{LineBuffer, Mechanism, Reply, parse_request};
use super::session::{AuthAttempt, Input, Refusal, RefuseReason, Session, Step};
use crate::auth::mechanism::{Credentials, MechanismError};
use crate::auth::{Decision, FrontEnd, Login, LoginMechanism, LoginPipeline, Presented};
use crate::config::{Config, LimitsConfig};
use crate::limits::{ConnectionLimiter, Permit};
use crate::log_text::LogText;

/// How often abandoned requests are looked for; they live [`super::session::PENDING_TIMEOUT`].
const EXPIRY_TICK: Duration = Duration::from_secs(15);
/// Connection ids in the handshake (`CUID`), unique within the process as in Dovecot.
static NEXT_CUID: AtomicU32 = AtomicU32::new(1);

/// What the SASL front end needs from the daemon.
pub struct SaslServer {
    config: watch::Receiver<Arc<Config>>,
    logins: Arc<LoginPipeline>,
    shutdown: CancellationToken,
    tasks: TaskTracker,
    /// Logins being verified or held back, per client address (`rip`).
    in_flight: ConnectionLimiter,
    connections: Arc<AtomicUsize>,
}

/// Work finished off the connection task, to be answered through the session.
enum Outcome {
    Verdict { id: u32, username: String, decision: Decision },
    RefusalDue(Refusal),
}

impl SaslServer {
    pub fn new(
        config: watch::Receiver<Arc<Config>>,
        logins: Arc<LoginPipeline>,
        shutdown: CancellationToken,
        tasks: TaskTracker,
    ) -> Self {
        let per_ip = config.borrow().sasl.max_in_flight_per_ip;
        let in_flight =
            ConnectionLimiter::new(&LimitsConfig { max_connections_per_ip: per_ip, ..LimitsConfig::default() });
        Self { config, logins, shutdown, tasks, in_flight, connections: Arc::default() }
    }

    /// Open client connections (tests and status lines).
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Accepts until shutdown; each connection runs on the task tracker.
    pub async fn run(self: Arc<Self>, listener: UnixListener) {
        crate::unix_accept::accept_until_shutdown(&listener, "sasl", &self.shutdown, |stream| {
            let me = self.clone();
            self.tasks.spawn(async move {
                let _open = crate::metrics::OpenConnection::new("sasl");
                me.drive(stream).await
            });
        })
        .await;
    }

    async fn drive(self: Arc<Self>, stream: UnixStream) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        let _count = CountGuard(self.connections.clone());
        let (mut rd, mut wr) = stream.into_split();
        let mut cookie = [0u8; 16];
        if getrandom::fill(&mut cookie).is_err() {
            warn!(proto = "sasl", "no randomness for the handshake cookie");
            return;
        }
        let cuid = NEXT_CUID.fetch_add(1, Ordering::Relaxed);
        if write(&mut wr, &Reply::handshake(std::process::id(), cuid, &cookie)).await.is_err() {
            return;
        }
        let mut session = Session::new(self.config.borrow().sasl.require_secured);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Outcome>();
        let mut lines = LineBuffer::default();
        let mut buf = vec![0u8; 4096];
        let mut expiry = tokio::time::interval(EXPIRY_TICK);
        let (mut reading, mut outstanding) = (true, 0usize);
        loop {
            let mut out = Vec::new();
            tokio::select! {
                // Connections stop taking requests at shutdown, but answer those in flight.
                _ = self.shutdown.cancelled(), if reading => reading = false,
                read = rd.read(&mut buf), if reading => {
                    let n = match read {
                        Ok(0) | Err(_) => break,
                        Ok(n) => n,
                    };
                    lines.extend(&buf[..n]);
                    loop {
                        match lines.next_line() {
                            Ok(Some(line)) => {
                                let Some(replies) = self.on_line(&mut session, &line, &done_tx, &mut outstanding) else {
                                    let _ = wr.write_all(&out).await;
                                    return;
                                };
                                out.extend(replies);
                            }
                            Ok(None) => break,
                            Err(e) => {
                                warn!(proto = "sasl", cuid, error = %e, "closing connection");
                                let _ = wr.write_all(&out).await;
                                return;
                            }
                        }
                    }
                }
                Some(outcome) = done_rx.recv(), if outstanding > 0 => {
                    outstanding -= 1;
                    let reply = match outcome {
                        Outcome::Verdict { id, username, decision } => session.on_verdict(id, &username, &decision),
                        Outcome::RefusalDue(r) => session.on_refusal_due(r),
                    };
                    if let Some(r) = reply {
                        r.encode(&mut out);
                    }
                }
                _ = expiry.tick() => {
                    let dropped = session.expire(now());
                    if dropped > 0 {
                        debug!(proto = "sasl", cuid, dropped, "expired abandoned requests");
                    }
                }
            }
            if !out.is_empty() && wr.write_all(&out).await.is_err() {
                break;
            }
            if !reading && outstanding == 0 {
                break;
            }
        }
    }

    /// Handles one line; returns the bytes to write now, or `None` to close the connection.
    fn on_line(
        &self,
        session: &mut Session,
        line: &[u8],
        done: &mpsc::UnboundedSender<Outcome>,
        outstanding: &mut usize,
    ) -> Option<Vec<u8>> {
        session.set_require_secured(self.config.borrow().sasl.require_secured);
        let mut step = session.on_input(Input::Line(parse_request(line)), now());
        let mut out = Vec::new();
        loop {
            match step {
                Step::Nothing => break,
                Step::Reply(r) => {
                    r.encode(&mut out);
                    break;
                }
                Step::Close(e) => {
                    warn!(proto = "sasl", error = %e, "protocol violation, closing connection");
                    return None;
                }
                Step::Refuse(refusal) => {
                    if let RefuseReason::Credentials(error) = refusal.reason {
                        *outstanding += 1;
                        self.spawn_refusal(refusal, error, done.clone());
                    } else {
                        log_refusal(&refusal);
                        if let Some(r) = session.on_refusal_due(refusal) {
                            r.encode(&mut out);
                        }
                    }
                    break;
                }
                Step::Authenticate(attempt) => {
                    let bucket = attempt.remote_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
                    match self.in_flight.try_acquire(bucket) {
                        Ok(permit) => {
                            *outstanding += 1;
                            self.spawn_attempt(attempt, permit, done.clone());
                            break;
                        }
                        Err(_) => step = session.on_input(Input::Busy { id: attempt.id }, now()),
                    }
                }
            }
        }
        Some(out)
    }

    /// A malformed credential goes through the login pipeline like a wrong one: counted,
    /// logged, and held back as long.
    fn spawn_refusal(&self, refusal: Refusal, error: MechanismError, done: mpsc::UnboundedSender<Outcome>) {
        let logins = self.logins.clone();
        self.tasks.spawn(async move {
            let login = Login {
                front_end: FrontEnd::Sasl,
                mechanism: refusal.mechanism.map_or(LoginMechanism::Plain, login_mechanism),
                client_ip: refusal.remote_ip,
                presented: Presented::Malformed { username: refusal.user.clone(), error },
            };
            let outcome = logins.login(login).await;
            tokio::time::sleep(outcome.delay).await;
            let _ = done.send(Outcome::RefusalDue(refusal));
        });
    }

    fn spawn_attempt(&self, attempt: AuthAttempt, permit: Permit, done: mpsc::UnboundedSender<Outcome>) {
        let logins = self.logins.clone();
        self.tasks.spawn(async move {
            let AuthAttempt { id, username, secret, remote_ip, mechanism } = attempt;
            let login = Login {
                front_end: FrontEnd::Sasl,
                mechanism: login_mechanism(mechanism),
                client_ip: remote_ip,
                presented: Presented::Smtp(Credentials { username: username.clone(), secret }),
            };
            let outcome = logins.login(login).await;
            // The permit is held through the delay: a throttled address keeps its slots busy.
            tokio::time::sleep(outcome.delay).await;
            drop(permit);
            let _ = done.send(Outcome::Verdict { id, username, decision: outcome.decision });
        });
    }
}

fn login_mechanism(mechanism: Mechanism) -> LoginMechanism {
    match mechanism {
        Mechanism::Plain => LoginMechanism::Plain,
        Mechanism::Login => LoginMechanism::Login,
    }
}

/// The session's clock: tokio's, so that tests with a paused clock can step over timeouts.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

struct CountGuard(Arc<AtomicUsize>);

impl Drop for CountGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

async fn write(wr: &mut OwnedWriteHalf, replies: &[Reply]) -> std::io::Result<()> {
    let mut out = Vec::new();
    for r in replies {
        r.encode(&mut out);
    }
    wr.write_all(&out).await
}

/// A request refused before any credential was looked at (busy, not secured, an unknown
/// mechanism, invalid base64): not a login, so not the pipeline's, but logged in its shape.
fn log_refusal(r: &Refusal) {
    let decision = if r.reply == Reply::temp_fail(r.id) { "tempfail" } else { "deny" };
    info!(
        proto = "sasl",
        decision,
        reason = r.reason.as_str(),
        user = %LogText::or_dash(r.user.as_deref()),
        credential = "-",
        ip = %r.remote_ip.map_or_else(|| "-".to_string(), |i| i.to_string()),
        mech = r.mechanism.map_or("-", |m| login_mechanism(m).as_str()),
        "auth"
    );
}
