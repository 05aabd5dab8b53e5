//! The login pipeline: every login of every front end (the SASL server, the relay's AUTH, the
//! HTTP API) goes in here, and an outcome comes out: the decision and how long to hold back
//! the reply. The bookkeeping a login causes happens here and nowhere else: the failure
//! throttle, the login ledger, the "last used" time and the rehash of an outdated hash (both on
//! the task tracker, so shutdown waits for them), the one `auth` log record and the metric,
//! labelled with the real front end. Front ends only speak their protocol.

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

use super::mechanism::{Credentials, MechanismError};
use super::{Authenticator, Decision, DenyReason, FailureThrottle, LoginLedger, Rehash, Verified};
use crate::log_text::LogText;
use crate::model::Permission;
use crate::secret::Secret;

/// Which front end a login came through: the `proto` of the log line and the `front_end`
/// label of the metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FrontEnd {
    Sasl,
    Relay,
    Api,
}

impl FrontEnd {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sasl => "sasl",
            Self::Relay => "relay",
            Self::Api => "api",
        }
    }
}

/// How the secret was presented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoginMechanism {
    Plain,
    Login,
    /// `Authorization: Bearer` (the HTTP API).
    Bearer,
}

impl LoginMechanism {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Plain => "plain",
            Self::Login => "login",
            Self::Bearer => "bearer",
        }
    }
}

/// What the client presented.
#[derive(Debug)]
pub enum Presented {
    /// A login name and a password or API key (SASL, the relay).
    Smtp(Credentials),
    /// An API key, for a call that needs `needs`.
    ApiKey { secret: Secret, needs: Permission },
    /// A response that holds no well-formed credential: refused, but counted and delayed like a
    /// wrong password. `username` when the mechanism got as far as one.
    Malformed { username: Option<String>, error: MechanismError },
}

#[derive(Debug)]
pub struct Login {
    pub front_end: FrontEnd,
    pub mechanism: LoginMechanism,
    pub client_ip: Option<IpAddr>,
    pub presented: Presented,
}

#[derive(Debug)]
pub struct LoginOutcome {
    pub decision: Decision,
    /// How long to hold back the reply (a failure, throttled per client network).
    pub delay: Duration,
}

pub struct LoginPipeline {
    authenticator: Arc<Authenticator>,
    ledger: Arc<LoginLedger>,
    throttle: Arc<Mutex<FailureThrottle>>,
    tasks: TaskTracker,
}

impl LoginPipeline {
    pub fn new(
        authenticator: Arc<Authenticator>,
        ledger: Arc<LoginLedger>,
        throttle: Arc<Mutex<FailureThrottle>>,
        tasks: TaskTracker,
    ) -> Self {
        Self { authenticator, ledger, throttle, tasks }
    }

    /// Decides `login` and does what follows from it. The caller waits `delay`, then replies.
    pub async fn login(&self, login: Login) -> LoginOutcome {
        let started = Instant::now();
        let Login { front_end, mechanism, client_ip, presented } = login;
        let (username, detail, verified) = match presented {
            Presented::Smtp(Credentials { username, secret }) => {
                let verified = self.authenticator.verify_smtp(&username, &secret, client_ip).await;
                (Some(username), None, verified)
            }
            Presented::ApiKey { secret, needs } => {
                (None, None, self.authenticator.verify_api_key(&secret, client_ip, needs).await)
            }
            Presented::Malformed { username, error } => {
                (username, Some(error.as_str()), Decision::Denied(DenyReason::MalformedCredentials).into())
            }
        };
        let Verified { decision, rehash } = verified;
        let delay = self.account(front_end, client_ip, &decision);
        if let Some(job) = rehash {
            self.spawn_rehash(job);
        }
        let record = Record { front_end, mechanism, client_ip, username: username.as_deref(), detail, started };
        record.log(&decision);
        crate::metrics::record_auth(front_end.as_str(), decision.kind(), decision.reason());
        LoginOutcome { decision, delay }
    }

    /// Throttle, ledger and "last used"; returns the delay before the reply.
    fn account(&self, front_end: FrontEnd, ip: Option<IpAddr>, decision: &Decision) -> Duration {
        match decision {
            Decision::Granted(grant) => {
                self.throttle.lock().unwrap_or_else(|p| p.into_inner()).on_success(ip);
                // The ledger answers the policy server, which sees Postfix's sessions only; their
                // logins come over SASL.
                if front_end == FrontEnd::Sasl {
                    self.ledger.record(&grant.username, ip, grant.clone(), Instant::now());
                }
                let (auth, credential) = (self.authenticator.clone(), grant.credential.clone());
                self.tasks.spawn(async move { auth.touch(&credential).await });
                Duration::ZERO
            }
            // The API tells a genuine key what it lacks; that is no guess to slow down.
            Decision::Denied(DenyReason::PermissionMissing) if front_end == FrontEnd::Api => Duration::ZERO,
            Decision::Denied(_) => {
                self.throttle.lock().unwrap_or_else(|p| p.into_inner()).on_failure(ip, Instant::now())
            }
            Decision::TempFail(_) => Duration::ZERO,
        }
    }

    fn spawn_rehash(&self, job: Rehash) {
        let auth = self.authenticator.clone();
        let credential = job.credential.label();
        self.tasks.spawn(async move {
            match auth.rehash(job).await {
                Ok(true) => info!(credential = %credential, "rehashed with the configured argon2 parameters"),
                Ok(false) => debug!(credential = %credential, "rehash skipped: changed meanwhile or under way"),
                Err(e) => warn!(credential = %credential, error = %e, "rehash failed"),
            }
        });
    }
}

/// The facts of one login for its log record.
struct Record<'a> {
    front_end: FrontEnd,
    mechanism: LoginMechanism,
    client_ip: Option<IpAddr>,
    username: Option<&'a str>,
    detail: Option<&'static str>,
    started: Instant,
}

impl Record<'_> {
    /// The one `auth` line. Never a secret; client text escaped; absent values `-`.
    fn log(&self, decision: &Decision) {
        let (user, credential) = match decision {
            Decision::Granted(g) => (Some(g.username.as_str()), g.credential.label()),
            _ => (self.username, "-".to_string()),
        };
        let temp_fail = match decision {
            Decision::TempFail(e) => Some(e.to_string()),
            _ => None,
        };
        let detail = temp_fail.as_deref().or(self.detail);
        info!(
            proto = self.front_end.as_str(),
            decision = decision.kind(),
            reason = decision.reason(),
            user = %LogText::or_dash(user),
            credential = %credential,
            ip = %self.client_ip.map_or_else(|| "-".to_string(), |i| i.to_string()),
            mech = self.mechanism.as_str(),
            detail = %LogText::or_dash(detail),
            elapsed_ms = self.started.elapsed().as_millis() as u64,
            "auth"
        );
    }
}
