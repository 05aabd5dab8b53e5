//! The send API wired to a smarthost sink: the relay's queue enabled, delivering to
//! [`Sink`] over plain SMTP, so a test can see what `POST /v1/email/send` delivers.

use std::path::Path;
use std::time::Duration;

use super::TestServer;
use super::relay_sink::{Delivered, Sink};

/// How long a message may take to reach the sink before the test fails.
const DELIVERY_WAIT: Duration = Duration::from_secs(60);

/// An API server whose relay spools under `spool` and delivers to `sink`.
pub async fn api_to_sink(sink: &Sink, spool: &Path) -> TestServer {
    TestServer::start(&format!(
        "[relay]\nenabled = true\nhostname = \"relay.test\"\nspool = {spool:?}\nsmarthost = \"127.0.0.1:{}\"\n\
         smarthost_tls = \"none\"\nlisten = []\n",
        sink.port
    ))
    .await
}

/// Waits until `sink` holds at least `n` messages and returns them; fails the test if they
/// do not arrive.
pub async fn wait_for(sink: &Sink, n: usize) -> Vec<Delivered> {
    let sink = sink.clone();
    let got = tokio::task::spawn_blocking(move || sink.wait_for(n, DELIVERY_WAIT)).await.unwrap();
    assert!(got.len() >= n, "only {} of {n} messages reached the smarthost", got.len());
    got
}
