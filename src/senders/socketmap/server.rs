//! The socketmap socket: accepts Postfix's persistent connections (one per smtpd process),
//! frames requests with the codec, has the session decide, asks the [`Directory`], and writes
//! the reply. One request at a time per connection; a connection is closed only between
//! requests (at shutdown) or after bytes that are no request, never between a request and its
//! reply (Postfix retries once on EOF, reference/postfix-socketmap.md).

use std::sync::Arc;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, warn};

use super::codec::{self, Reply};
use super::session::{Input, Session, Step};
use crate::senders::Directory;

/// Serves `listener` until `shutdown` is cancelled; connections run on `tasks`.
pub async fn run(
    listener: UnixListener,
    directory: Arc<Directory>,
    map_name: String,
    shutdown: CancellationToken,
    tasks: TaskTracker,
) {
    crate::unix_accept::accept_until_shutdown(&listener, "socketmap", &shutdown, |stream| {
        let (directory, shutdown) = (directory.clone(), shutdown.clone());
        let session = Session::new(map_name.clone());
        tasks.spawn(async move {
            let _open = crate::metrics::OpenConnection::new("socketmap");
            let served = serve_connection(stream, session, &directory, &shutdown).await;
            debug!(proto = "socketmap", requests = served, "socketmap connection closed");
        });
    })
    .await;
}

/// Answers requests on one connection until the peer hangs up, sends garbage, or shutdown;
/// returns how many requests it answered.
pub async fn serve_connection(
    mut stream: UnixStream,
    session: Session,
    directory: &Directory,
    shutdown: &CancellationToken,
) -> u64 {
    let mut buf: Vec<u8> = Vec::with_capacity(512);
    let mut out: Vec<u8> = Vec::with_capacity(256);
    let mut served = 0;
    loop {
        let input = match codec::decode_request(&buf) {
            Ok(Some((request, used))) => {
                buf.drain(..used);
                Input::Request(request)
            }
            Err(e) => {
                warn!(proto = "socketmap", error = %e, "malformed request; closing");
                Input::Malformed(e)
            }
            Ok(None) => {
                // Shutdown is honoured between requests only.
                let read = tokio::select! {
                    _ = shutdown.cancelled(), if buf.is_empty() => Ok(None),
                    read = stream.read_buf(&mut buf) => read.map(Some),
                };
                match read {
                    Ok(None) => Input::ShuttingDown,
                    Ok(Some(0)) => return served,
                    Ok(Some(_)) => continue,
                    Err(e) => {
                        debug!(proto = "socketmap", error = %e, "read failed");
                        return served;
                    }
                }
            }
        };
        let reply = match session.on_input(input) {
            Step::Close => return served,
            Step::Reply(reply) => reply,
            Step::Lookup(address) => {
                let snapshot = directory.snapshot();
                let reply = session.on_logins(snapshot.as_ref().map(|s| s.logins_for(&address)));
                log_lookup(&address, &reply);
                reply
            }
        };
        out.clear();
        codec::encode_reply(&reply, &mut out);
        if let Err(e) = stream.write_all(&out).await {
            debug!(proto = "socketmap", error = %e, "write failed");
            return served;
        }
        served += 1;
    }
}

fn log_lookup(address: &str, reply: &Reply) {
    match reply {
        Reply::Temp(reason) => {
            warn!(proto = "socketmap", address = %address.escape_debug(), reason = %reason, "socketmap")
        }
        _ => debug!(proto = "socketmap", address = %address.escape_debug(), result = reply.status(), "socketmap"),
    }
}
