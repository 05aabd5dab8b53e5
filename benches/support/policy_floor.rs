//! The floor for the policy benchmark: a policy server that does nothing but frame requests
//! and answer `action=DUNNO` to each, on the same kind of runtime and socket relaykey uses.
//! Whatever relaykey spends above this is its own work (parsing, deciding, logging).

use std::path::Path;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

/// Serves `socket` until the process is killed.
pub fn serve(socket: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().expect("runtime");
    runtime.block_on(async {
        let _ = std::fs::remove_file(socket);
        let listener = UnixListener::bind(socket).expect("bind the floor's socket");
        loop {
            let Ok((stream, _)) = listener.accept().await else { continue };
            tokio::spawn(answer_all(stream));
        }
    });
}

/// Answers every request (lines up to an empty line) with `DUNNO`, one at a time.
async fn answer_all(mut stream: UnixStream) {
    let mut buf = Vec::with_capacity(4096);
    loop {
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            buf.drain(..end + 2);
            if stream.write_all(b"action=DUNNO\n\n").await.is_err() {
                return;
            }
        }
        match stream.read_buf(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
}
