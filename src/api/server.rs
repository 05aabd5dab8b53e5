//! The API's accept loop and connection driver: per-IP connection and request limits, the
//! connection time-out, the header read time-out, optional TLS, and graceful shutdown. Routing
//! and decisions live elsewhere; this file only moves connections and requests.

use std::convert::Infallible;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, Response};
use axum::response::IntoResponse;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;
use tracing::{debug, warn};

use super::caller::ClientAddr;
use super::error::ApiError;
use super::routes;
use super::state::ApiState;
use crate::metrics::{OpenConnection, registry};
use crate::restriction::canonical_ip;

/// Accepts connections until shutdown; each runs on the shared task tracker.
pub async fn accept_loop(listener: TcpListener, state: Arc<ApiState>, tls: Option<TlsAcceptor>) {
    let router = routes::router(state.clone());
    let mut config = state.config();
    loop {
        let (stream, peer) = tokio::select! {
            _ = state.shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    // EMFILE and friends: back off briefly instead of spinning on the error.
                    warn!(error = %e, "api: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let current = state.config();
        if !Arc::ptr_eq(&current, &config) {
            state.reconfigure(&current);
            config = current;
        }
        let ip = canonical_ip(peer.ip());
        let Ok(permit) = state.connections.try_acquire(ip) else {
            debug!(ip = %ip, "api: too many connections; closing");
            continue;
        };
        let (router, state, tls) = (router.clone(), state.clone(), tls.clone());
        let tasks = state.tasks.clone();
        tasks.spawn(async move {
            let _permit = permit;
            let _open = OpenConnection::new("api");
            serve_connection(stream, ip, router, state, tls).await;
        });
    }
}

async fn serve_connection(
    stream: TcpStream,
    ip: IpAddr,
    router: Router,
    state: Arc<ApiState>,
    tls: Option<TlsAcceptor>,
) {
    let api = state.config().api.clone();
    let deadline = Instant::now() + api.connection_timeout;
    let _ = stream.set_nodelay(true);
    match tls {
        None => drive(TokioIo::new(stream), ip, router, state, deadline, api.header_read_timeout).await,
        Some(acceptor) => {
            // A handshake gets no more time than a request's headers would.
            let limit = deadline.min(Instant::now() + api.header_read_timeout);
            match tokio::time::timeout_at(limit, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => drive(TokioIo::new(tls), ip, router, state, deadline, api.header_read_timeout).await,
                Ok(Err(e)) => debug!(ip = %ip, error = %e, "api: TLS handshake failed"),
                Err(_) => debug!(ip = %ip, "api: TLS handshake timed out"),
            }
        }
    }
}

async fn drive<I>(io: I, ip: IpAddr, router: Router, state: Arc<ApiState>, deadline: Instant, header_timeout: Duration)
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + std::marker::Send + 'static,
{
    let shutdown = state.shutdown.clone();
    let service = service_fn(move |req| handle(req, ip, router.clone(), state.clone()));
    let mut builder = http1::Builder::new();
    builder.timer(TokioTimer::new()).header_read_timeout(header_timeout);
    let conn = builder.serve_connection(io, service);
    let mut conn = std::pin::pin!(conn);
    tokio::select! {
        result = conn.as_mut() => {
            if let Err(e) = result {
                debug!(ip = %ip, error = %e, "api: connection ended with an error");
            }
        }
        // Dropping the connection closes it, whatever it was doing.
        _ = tokio::time::sleep_until(deadline) => debug!(ip = %ip, "api: connection time-out"),
        _ = shutdown.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout_at(deadline, conn).await;
        }
    }
}

/// One request: take a request slot for the client's address (or answer `429` at once), then
/// route it.
async fn handle(
    mut req: Request<Incoming>,
    ip: IpAddr,
    router: Router,
    state: Arc<ApiState>,
) -> Result<Response<Body>, Infallible> {
    let response = match state.requests.try_acquire(ip) {
        Err(e) => ApiError::too_many_requests(e.limit).into_response(),
        Ok(_permit) => {
            let _in_flight = InFlight::new();
            req.extensions_mut().insert(ClientAddr(ip));
            match router.oneshot(req.map(Body::new)).await {
                Ok(response) => response,
                Err(never) => match never {},
            }
        }
    };
    registry().add("relaykey_api_requests_total", &[("status", response.status().as_str())], 1);
    Ok(response)
}

/// Counts a request in `relaykey_api_requests_in_flight` while alive (tests wait on it).
struct InFlight;

impl InFlight {
    fn new() -> Self {
        registry().add("relaykey_api_requests_in_flight", &[], 1);
        Self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        registry().add("relaykey_api_requests_in_flight", &[], -1);
    }
}
