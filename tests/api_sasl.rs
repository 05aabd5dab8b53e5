//! Rotation through the API reaches SMTP AUTH at once: the SASL server (the socket Postfix
//! talks to), sharing the daemon's authenticator, refuses the old secret on the next login.

mod api_common;
#[path = "support/sasl_client.rs"]
mod sasl_client;

use api_common::{OWNER, TestServer};
use relaykey::model::Permission::{Manage, Smtp};
use relaykey::sasl::codec::Reply;
use sasl_client::Client;

async fn sasl_socket(server: &TestServer) -> std::path::PathBuf {
    let path = server.dir().join("auth");
    let listener = relaykey::daemon::bind_unix(&path, 0o600, None).unwrap();
    server.shared.tasks.spawn(std::sync::Arc::new(server.shared.sasl_server()).run(listener));
    path
}

fn granted(reply: &Reply) -> bool {
    matches!(reply, Reply::Ok { .. })
}

#[tokio::test]
async fn a_key_changed_through_the_api_fails_over_the_sasl_socket_at_once() {
    let server = TestServer::start("").await;
    let socket = sasl_socket(&server).await;
    let (_, manager) = server.key(&[Manage]);
    let (id, smtp_key) = server.key(&[Smtp]);
    let mut c = Client::connect(&socket).await.unwrap();
    assert!(granted(&c.plain(1, OWNER, &smtp_key, Some("192.0.2.7")).await));
    assert!(granted(&c.plain(2, OWNER, &smtp_key, Some("192.0.2.7")).await), "cached login");
    let metrics = server.metrics_text().await;
    assert!(metrics.contains(r#"relaykey_connections_total{listener="sasl"}"#), "{metrics}");

    let changed = server.call("POST", &format!("/v1/api-keys/{id}/change"), Some(&manager), None).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let new_key = changed.json["key"].as_str().unwrap();
    assert!(!granted(&c.plain(3, OWNER, &smtp_key, Some("192.0.2.7")).await), "the old key still logs in");
    assert!(granted(&c.plain(4, OWNER, new_key, Some("192.0.2.7")).await));

    let removed = server.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&manager), None).await;
    assert_eq!(removed.status, 200);
    assert!(!granted(&c.plain(5, OWNER, new_key, Some("192.0.2.7")).await), "a deleted key still logs in");
}

#[tokio::test]
async fn an_smtp_password_changed_through_the_api_fails_over_the_sasl_socket_at_once() {
    let server = TestServer::start("").await;
    let socket = sasl_socket(&server).await;
    let (_, manager) = server.key(&[Manage]);
    let created = server.call("POST", "/v1/smtp-credentials", Some(&manager), Some(serde_json::json!({}))).await;
    assert_eq!(created.status, 201);
    let (id, password) = (created.json["id"].as_i64().unwrap(), created.json["password"].as_str().unwrap().to_string());
    let mut c = Client::connect(&socket).await.unwrap();
    assert!(granted(&c.plain(1, OWNER, &password, Some("192.0.2.7")).await));

    let edited = server
        .call(
            "PATCH",
            &format!("/v1/smtp-credentials/{id}"),
            Some(&manager),
            Some(serde_json::json!({"allow": ["10.0.0.0/8"]})),
        )
        .await;
    assert_eq!(edited.status, 200);
    assert!(!granted(&c.plain(2, OWNER, &password, Some("192.0.2.7")).await), "the new restriction is not applied");
    assert!(granted(&c.plain(3, OWNER, &password, Some("10.1.2.3")).await));

    let changed = server.call("POST", &format!("/v1/smtp-credentials/{id}/change"), Some(&manager), None).await;
    assert_eq!(changed.status, 200);
    assert!(!granted(&c.plain(4, OWNER, &password, Some("10.1.2.3")).await), "the old password still logs in");
    assert!(granted(&c.plain(5, OWNER, changed.json["password"].as_str().unwrap(), Some("10.1.2.3")).await));
}
