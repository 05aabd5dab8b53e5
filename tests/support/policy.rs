//! Talking to relaykey's policy socket as Postfix's smtpd does: one request (the attributes
//! Postfix 3.7 sends for an authenticated session), one `action=` reply.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

/// A request at `state` for a session of `user` from `client`; `port` tells sessions apart,
/// and a message's `instance` ties its requests together.
pub fn request(state: &str, user: &str, client: &str, port: u16, instance: &str) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state={state}\nprotocol_name=ESMTP\nclient_address={client}\n\
         client_name=unknown\nclient_port={port}\nreverse_client_name=unknown\nserver_address=127.0.0.1\n\
         server_port=587\nhelo_name=client.example\nsender={user}\nrecipient=bob@example.net\nrecipient_count=1\n\
         queue_id=\ninstance={instance}\nsize=0\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_username={user}\n\
         sasl_sender=\nccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\n\
         encryption_protocol=\nencryption_cipher=\nencryption_keysize=0\npolicy_context=\n\n"
    )
    .into_bytes()
}

/// Sends one request on `policy` and returns the action (`DUNNO`, `554 5.7.1 …`).
pub async fn ask(policy: &mut UnixStream, request: &[u8]) -> String {
    policy.write_all(request).await.unwrap();
    let mut reply = Vec::new();
    while !reply.ends_with(b"\n\n") {
        let mut byte = [0u8; 1];
        assert_eq!(policy.read(&mut byte).await.unwrap(), 1, "policy server closed the connection");
        reply.push(byte[0]);
    }
    let text = String::from_utf8(reply).unwrap();
    text.strip_prefix("action=").expect("an action").trim_end().to_string()
}

/// [`ask`] on a fresh connection to the socket at `path`.
pub async fn ask_once(path: &std::path::Path, request: &[u8]) -> String {
    let mut policy = UnixStream::connect(path).await.unwrap();
    ask(&mut policy, request).await
}
