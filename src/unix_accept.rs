//! The accept loop of the Unix-socket front ends (SASL, policy, socketmap): accept until
//! shutdown, hand each connection over, and back off when accepting fails (out of descriptors,
//! typically) instead of spinning.

use std::time::Duration;

use tokio::net::{UnixListener, UnixStream};
use tokio_util::sync::CancellationToken;
use tracing::{debug, warn};

/// How long to wait after a failed `accept` before trying again.
const BACKOFF: Duration = Duration::from_millis(100);

/// Accepts on `listener` until `shutdown` is cancelled, passing each connection to `serve`
/// (which spawns it on the front end's task tracker). `proto` names the front end in logs.
pub async fn accept_until_shutdown(
    listener: &UnixListener,
    proto: &'static str,
    shutdown: &CancellationToken,
    mut serve: impl FnMut(UnixStream),
) {
    loop {
        let accepted = tokio::select! {
            _ = shutdown.cancelled() => break,
            accepted = listener.accept() => accepted,
        };
        match accepted {
            Ok((stream, _)) => serve(stream),
            Err(e) => {
                warn!(proto, error = %e, "accept failed");
                tokio::time::sleep(BACKOFF).await;
            }
        }
    }
    debug!(proto, "accept loop stopped");
}
