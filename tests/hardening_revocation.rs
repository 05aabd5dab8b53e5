//! Revocation over the real interfaces: `relaykey serve` with its SASL and policy sockets,
//! changed through the CLI (issue "Hardening", items 5–7).

#[path = "support/sasl_client.rs"]
mod sasl_client;
mod support;

use relaykey::sasl::codec::Reply;
use sasl_client::Client;
use support::daemon::{cli, cli_json, serve};
use support::policy::ask;
use tokio::net::UnixStream;

const ANN: &str = "ann@example.com";
const CLIENT: &str = "192.0.2.10";

/// A MAIL-stage request as Postfix 3.7 writes it for session `port` of an authenticated client.
fn mail_request(user: &str, port: u16) -> Vec<u8> {
    format!(
        "request=smtpd_access_policy\nprotocol_state=MAIL\nprotocol_name=ESMTP\nclient_address={CLIENT}\n\
         client_name=unknown\nclient_port={port}\nreverse_client_name=unknown\nserver_address=127.0.0.1\n\
         server_port=587\nhelo_name=client.example\nsender={user}\nrecipient=\nrecipient_count=0\nqueue_id=\n\
         instance=\nsize=0\netrn_domain=\nstress=\nsasl_method=PLAIN\nsasl_username={user}\nsasl_sender=\n\
         ccert_subject=\nccert_issuer=\nccert_fingerprint=\nccert_pubkey_fingerprint=\nencryption_protocol=\n\
         encryption_cipher=\nencryption_keysize=0\npolicy_context=\n\n"
    )
    .into_bytes()
}

/// One PLAIN login over the SASL socket, from the test's client address.
async fn login(sasl: &mut Client, id: u32, secret: &str) {
    let reply = sasl.plain(id, ANN, secret, Some(CLIENT)).await;
    assert_eq!(reply, Reply::Ok { id, user: ANN.into() }, "login {id}");
}

#[tokio::test]
async fn item_06_two_logins_cannot_mask_a_revoked_one() {
    let daemon = serve().start();
    let config = daemon.config_path();
    cli(config, &["account", "add", ANN]);
    let password = cli_json(config, &["smtp", "create", ANN])["password"].as_str().expect("password").to_string();
    let api_key =
        cli_json(config, &["apikey", "create", ANN, "--name", "main"])["key"].as_str().expect("key").to_string();
    let credential = cli_json(config, &["smtp", "list", ANN])[0]["id"].as_i64().expect("credential id");
    let mut sasl = Client::connect(&daemon.sasl_socket()).await.unwrap();
    let mut policy = UnixStream::connect(daemon.socket("policy")).await.unwrap();

    // Two sessions from one address: one logged in with the password, one with the API key.
    login(&mut sasl, 1, &password).await;
    login(&mut sasl, 2, &api_key).await;
    assert_eq!(ask(&mut policy, &mail_request(ANN, 40001)).await, "DUNNO", "both secrets hold");

    // The password is removed. Postfix does not say which session used it: neither may go on.
    cli(config, &["smtp", "remove", ANN, &credential.to_string()]);
    for port in [40001, 40002] {
        let refused = ask(&mut policy, &mail_request(ANN, port)).await;
        assert!(refused.starts_with("554 5.7.1 "), "session {port}: {refused}");
    }

    // A login after the removal shows a secret that holds now.
    login(&mut sasl, 3, &api_key).await;
    assert_eq!(ask(&mut policy, &mail_request(ANN, 40003)).await, "DUNNO", "a fresh login clears it");
}
