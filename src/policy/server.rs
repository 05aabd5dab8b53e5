//! The policy socket: accepts Postfix's persistent connections, frames requests with the codec,
//! has the [`Enforcer`] answer each one, and writes the reply. One request at a time per
//! connection; nothing is ever written unasked, and an idle connection is never closed by us
//! (Postfix reads a close as a failed request and sleeps a second before retrying, §3.2).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::codec::{self, CodecError};
use super::enforcer::Enforcer;
use super::sessions::ConnId;

/// Serves `listener` with `enforcer` until `shutdown` is cancelled; connections run on `tasks`.
pub async fn run(listener: UnixListener, enforcer: Arc<Enforcer>, shutdown: CancellationToken, tasks: TaskTracker) {
    let next_id = AtomicU64::new(1);
    crate::unix_accept::accept_until_shutdown(&listener, "policy", &shutdown, |stream| {
        let conn = next_id.fetch_add(1, Ordering::Relaxed);
        let guard = Release { enforcer: enforcer.clone(), conn };
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            let _open = crate::metrics::OpenConnection::new("policy");
            handle(stream, guard, shutdown).await
        });
    })
    .await;
}

/// Frees the connection's sessions however its task ends, a panic included.
struct Release {
    enforcer: Arc<Enforcer>,
    conn: ConnId,
}

impl Drop for Release {
    fn drop(&mut self) {
        self.enforcer.connection_closed(self.conn);
    }
}

/// Why a connection ended (debug log only).
#[derive(Debug)]
enum End {
    PeerClosed,
    Io(std::io::Error),
    Malformed(CodecError),
    Shutdown,
}

async fn handle(mut stream: UnixStream, guard: Release, shutdown: CancellationToken) {
    let end = converse(&mut stream, &guard, &shutdown).await;
    match &end {
        End::Malformed(e) => warn!(proto = "policy", conn = guard.conn, error = %e, "malformed request; closing"),
        End::Io(e) => debug!(proto = "policy", conn = guard.conn, error = %e, "policy connection failed"),
        other => debug!(proto = "policy", conn = guard.conn, end = ?other, "policy connection closed"),
    }
}

async fn converse(stream: &mut UnixStream, guard: &Release, shutdown: &CancellationToken) -> End {
    let mut buf: Vec<u8> = Vec::with_capacity(4096);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    loop {
        match codec::decode_policy_request(&buf) {
            Ok(Some((req, used))) => {
                buf.drain(..used);
                let verdict = guard.enforcer.answer(guard.conn, &req).await;
                out.clear();
                codec::encode_reply(&verdict.action, &mut out);
                if let Err(e) = stream.write_all(&out).await {
                    return End::Io(e);
                }
                continue;
            }
            Ok(None) => {}
            Err(e) => return End::Malformed(e),
        }
        // Shutdown is honoured between requests only: a request in flight gets its answer.
        let read = tokio::select! {
            _ = shutdown.cancelled(), if buf.is_empty() => return End::Shutdown,
            read = stream.read_buf(&mut buf) => read,
        };
        match read {
            Ok(0) => return End::PeerClosed,
            Ok(_) => {}
            Err(e) => return End::Io(e),
        }
    }
}
