//! The HTTP API over real HTTP: every endpoint, the permission matrix, 401 versus 403, the IP
//! restriction, the 15-item caps, show-once, rotation and the error shape.

mod api_common;

use api_common::{OWNER, TestServer, call_from};
use relaykey::model::Permission::{self, Manage, Send, Smtp, View};
use serde_json::{Value, json};

#[tokio::test]
async fn account_and_api_key_lifecycle() {
    let server = TestServer::start("").await;
    // Full access: a key can give only what it holds (issue 14, item 1), and this one gives `send`.
    let (own_id, key) = server.key(&[Smtp, Send, View, Manage]);

    let account = server.call("GET", "/v1/account", Some(&key), None).await;
    assert_eq!(account.status, 200, "{}", account.text);
    assert_eq!(account.json["email"], OWNER);
    assert_eq!(account.json["api_keys"], 1);
    assert_eq!(account.json["key_id"], own_id);

    let created = server
        .call(
            "POST",
            "/v1/api-keys",
            Some(&key),
            Some(json!({"name": "ci", "permissions": ["send", "view"], "allow": ["192.0.2.0/24"]})),
        )
        .await;
    assert_eq!(created.status, 201, "{}", created.text);
    let secret = created.json["key"].as_str().unwrap().to_string();
    assert_eq!(secret.len(), 96);
    assert_eq!(created.json["masked"].as_str().unwrap(), format!("{}{}", "*".repeat(91), &secret[91..]));
    assert_eq!(created.json["permissions"], json!(["send", "view"]));
    assert_eq!(created.json["allow"], json!(["192.0.2.0/24"]));
    let id = created.json["id"].as_i64().unwrap();

    // Show-once: no list ever carries a secret.
    let list = server.call("GET", "/v1/api-keys", Some(&key), None).await;
    assert_eq!(list.status, 200);
    assert_eq!(list.json.as_array().unwrap().len(), 2);
    assert!(!list.text.contains(&secret), "a list contains a secret");
    assert!(list.json.as_array().unwrap().iter().all(|k| k.get("key").is_none()));

    let edited = server
        .call(
            "PATCH",
            &format!("/v1/api-keys/{id}"),
            Some(&key),
            Some(json!({"name": "ci-2", "permissions": ["view"], "allow": []})),
        )
        .await;
    assert_eq!(edited.status, 200, "{}", edited.text);
    assert_eq!((edited.json["name"].as_str(), edited.json["allow"].clone()), (Some("ci-2"), json!([])));
    assert!(edited.json.get("key").is_none());
    assert_eq!(server.call("GET", "/v1/account", Some(&secret), None).await.status, 200);

    // Rotation: same id and settings, a new secret; the old one fails at once.
    let changed = server.call("POST", &format!("/v1/api-keys/{id}/change"), Some(&key), None).await;
    assert_eq!(changed.status, 200, "{}", changed.text);
    let new_secret = changed.json["key"].as_str().unwrap().to_string();
    assert_ne!(new_secret, secret);
    assert_eq!((changed.json["id"].as_i64(), changed.json["name"].as_str()), (Some(id), Some("ci-2")));
    assert_eq!(server.call("GET", "/v1/account", Some(&secret), None).await.status, 401);
    assert_eq!(server.call("GET", "/v1/account", Some(&new_secret), None).await.status, 200);

    let removed = server.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&key), None).await;
    assert_eq!((removed.status, removed.json["removed"].as_i64()), (200, Some(id)));
    assert_eq!(server.call("GET", "/v1/account", Some(&new_secret), None).await.status, 401);
    let again = server.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&key), None).await;
    assert_eq!((again.status, again.code()), (404, "not_found"));
    assert_eq!(again.message(), format!("account {OWNER} has no API key with id {id}"));
}

#[tokio::test]
async fn smtp_credential_lifecycle_and_rotation_over_smtp_auth() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[View, Manage]);

    let first = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({}))).await;
    assert_eq!(first.status, 201, "{}", first.text);
    assert_eq!(first.json["username"], OWNER, "the first credential defaults to the account's address");
    let password = first.json["password"].as_str().unwrap().to_string();
    let id = first.json["id"].as_i64().unwrap();
    assert!(server.smtp_auth(OWNER, &password).await);

    let second = server
        .call(
            "POST",
            "/v1/smtp-credentials",
            Some(&key),
            Some(json!({"username": "app@example.com", "allow": ["10.0.0.1-10.0.0.9"]})),
        )
        .await;
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.json["allow"], json!(["10.0.0.1-10.0.0.9"]));
    let taken =
        server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": "app@example.com"}))).await;
    assert_eq!((taken.status, taken.code()), (409, "username_taken"));
    assert_eq!(taken.message(), "username app@example.com is already used by another SMTP credential or account");

    let list = server.call("GET", "/v1/smtp-credentials", Some(&key), None).await;
    assert_eq!(list.json.as_array().unwrap().len(), 2);
    assert!(!list.text.contains(&password));
    assert!(
        list.json
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c.get("password").is_none() && c["masked"].as_str().unwrap().len() == 40)
    );

    let edited = server
        .call("PATCH", &format!("/v1/smtp-credentials/{id}"), Some(&key), Some(json!({"allow": ["127.0.0.1"]})))
        .await;
    assert_eq!((edited.status, edited.json["allow"].clone()), (200, json!(["127.0.0.1"])));

    let changed = server.call("POST", &format!("/v1/smtp-credentials/{id}/change"), Some(&key), None).await;
    assert_eq!(changed.status, 200);
    let new_password = changed.json["password"].as_str().unwrap().to_string();
    assert!(!server.smtp_auth(OWNER, &password).await, "the old password still works over SMTP AUTH");
    assert!(server.smtp_auth(OWNER, &new_password).await);

    let removed = server.call("DELETE", &format!("/v1/smtp-credentials/{id}"), Some(&key), None).await;
    assert_eq!(removed.status, 200);
    assert!(!server.smtp_auth(OWNER, &new_password).await);
}

#[tokio::test]
async fn rotating_an_api_key_kills_it_over_smtp_auth_at_once() {
    let server = TestServer::start("").await;
    let (_, manager) = server.key(&[Manage]);
    let (id, smtp_key) = server.key(&[Smtp]);
    assert!(server.smtp_auth(OWNER, &smtp_key).await);
    assert!(server.smtp_auth(OWNER, &smtp_key).await, "second login (from the cache)");
    let changed = server.call("POST", &format!("/v1/api-keys/{id}/change"), Some(&manager), None).await;
    assert_eq!(changed.status, 200);
    assert!(!server.smtp_auth(OWNER, &smtp_key).await, "the cached old key still works");
    assert!(server.smtp_auth(OWNER, changed.json["key"].as_str().unwrap()).await);
}

/// Each permission alone against each endpoint: the one it names works, the others get 403.
#[tokio::test]
async fn permission_matrix() {
    let server = TestServer::start("").await;
    for held in [Smtp, Send, View, Manage] {
        let (own, key) = server.key(&[held]);
        let (victim, _) = server.key(&[View]);
        let cred = server
            .store()
            .create_smtp_credential(
                &relaykey::address::EmailAddress::parse(OWNER).unwrap(),
                relaykey::store::NewSmtpCredential {
                    username: Some(relaykey::address::EmailAddress::parse(&format!("m{own}@example.com")).unwrap()),
                    allow: Default::default(),
                },
                &server.config.auth.hash_params(),
            )
            .unwrap()
            .0
            .id;
        let endpoints: Vec<(&str, String, Option<Value>, Permission)> = vec![
            ("GET", "/v1/account".into(), None, View),
            ("GET", "/v1/api-keys".into(), None, View),
            ("GET", "/v1/smtp-credentials".into(), None, View),
            ("POST", "/v1/api-keys".into(), Some(json!({"name": "m"})), Manage),
            ("PATCH", format!("/v1/api-keys/{victim}"), Some(json!({"name": "renamed"})), Manage),
            ("POST", format!("/v1/api-keys/{victim}/change"), None, Manage),
            ("DELETE", format!("/v1/api-keys/{victim}"), None, Manage),
            ("POST", "/v1/smtp-credentials".into(), Some(json!({"username": format!("n{own}@example.com")})), Manage),
            ("PATCH", format!("/v1/smtp-credentials/{cred}"), Some(json!({"allow": []})), Manage),
            ("POST", format!("/v1/smtp-credentials/{cred}/change"), None, Manage),
            ("DELETE", format!("/v1/smtp-credentials/{cred}"), None, Manage),
            (
                "POST",
                "/v1/email/send".into(),
                Some(json!({"from": OWNER, "to": ["x@example.net"], "text": "hi"})),
                Send,
            ),
        ];
        for (method, path, body, needs) in endpoints {
            let reply = server.call(method, &path, Some(&key), body).await;
            if held == needs {
                // Sending answers 503 while the relay is disabled; that is past authorization.
                let ok = if needs == Send { reply.status == 503 } else { (200..300).contains(&reply.status) };
                assert!(ok, "{held} on {method} {path}: {} {}", reply.status, reply.text);
            } else {
                assert_eq!(reply.status, 403, "{held} on {method} {path}: {}", reply.text);
                assert_eq!(reply.code(), "forbidden");
                assert!(reply.message().contains(needs.as_str()), "{}", reply.message());
            }
        }
    }
}

#[tokio::test]
async fn unknown_wrong_removed_and_missing_keys_get_the_same_401() {
    let server = TestServer::start("").await;
    let (_, manager) = server.key(&[Manage]);
    let (gone_id, gone) = server.key(&[View]);
    assert_eq!(server.call("DELETE", &format!("/v1/api-keys/{gone_id}"), Some(&manager), None).await.status, 200);
    let mut wrong = gone.clone();
    wrong.replace_range(0..1, if wrong.starts_with('A') { "B" } else { "A" });
    let unknown = "A".repeat(96);
    let mut bodies = Vec::new();
    for key in [Some(unknown.as_str()), Some(&wrong), Some(&gone), Some("not-a-key"), None] {
        let reply = server.call("GET", "/v1/account", key, None).await;
        assert_eq!(reply.status, 401, "{key:?}");
        assert_eq!(reply.headers["www-authenticate"], "Bearer");
        bodies.push(reply.text);
    }
    assert!(bodies.windows(2).all(|w| w[0] == w[1]), "401 bodies differ: {bodies:?}");
    assert!(
        server
            .metrics_text()
            .await
            .contains(r#"relaykey_authentications_total{front_end="api",reason="unknown_user",result="deny"}"#)
    );
}

#[tokio::test]
async fn ip_restriction_gives_403_outside_and_works_inside() {
    let server = TestServer::start("").await;
    let (_, key) = server.key_for(OWNER, &[View], &["127.0.0.5", "10.0.0.0/8"]);
    let outside = call_from(server.addr, "127.0.0.6".parse().unwrap(), "GET", "/v1/account", Some(&key), None).await;
    assert_eq!((outside.status, outside.code()), (403, "forbidden"));
    let inside = call_from(server.addr, "127.0.0.5".parse().unwrap(), "GET", "/v1/account", Some(&key), None).await;
    assert_eq!(inside.status, 200, "{}", inside.text);
}

#[tokio::test]
async fn failed_attempts_are_throttled_per_ip() {
    let server = TestServer::start("").await;
    let ip = Some("127.0.0.1".parse().unwrap());
    let before = server.shared.throttle.lock().unwrap().failures(ip, std::time::Instant::now());
    server.call("GET", "/v1/account", Some(&"B".repeat(96)), None).await;
    server.call("GET", "/v1/account", Some(&"C".repeat(96)), None).await;
    let after = server.shared.throttle.lock().unwrap().failures(ip, std::time::Instant::now());
    assert_eq!(after, before + 2);
    let (_, key) = server.key(&[View]);
    server.call("GET", "/v1/account", Some(&key), None).await;
    assert_eq!(
        server.shared.throttle.lock().unwrap().failures(ip, std::time::Instant::now()),
        0,
        "a success clears it"
    );
}

#[tokio::test]
async fn caps_of_15_hold_through_the_api() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Manage]);
    for n in 2..=15 {
        let r = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"name": format!("k{n}")}))).await;
        assert_eq!(r.status, 201, "key {n}: {}", r.text);
    }
    let over = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({}))).await;
    assert_eq!((over.status, over.code()), (409, "limit_reached"));
    assert_eq!(over.message(), format!("account {OWNER} already has 15 API keys (the maximum)"));

    for n in 1..=15 {
        let body = if n == 1 { json!({}) } else { json!({"username": format!("u{n}@example.com")}) };
        let r = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(body)).await;
        assert_eq!(r.status, 201, "credential {n}: {}", r.text);
    }
    let over =
        server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": "x@example.com"}))).await;
    assert_eq!((over.status, over.code()), (409, "limit_reached"));
    assert_eq!(over.message(), format!("account {OWNER} already has 15 SMTP credentials (the maximum)"));
}

#[tokio::test]
async fn a_key_cannot_drop_its_own_manage_or_delete_itself() {
    let server = TestServer::start("").await;
    let (id, key) = server.key(&[View, Manage]);
    let drop_manage =
        server.call("PATCH", &format!("/v1/api-keys/{id}"), Some(&key), Some(json!({"permissions": ["view"]}))).await;
    assert_eq!((drop_manage.status, drop_manage.code()), (409, "conflict"));
    assert_eq!(drop_manage.message(), "an API key cannot remove its own manage permission");
    let delete = server.call("DELETE", &format!("/v1/api-keys/{id}"), Some(&key), None).await;
    assert_eq!((delete.status, delete.message()), (409, "an API key cannot delete itself"));
    let rename = server
        .call(
            "PATCH",
            &format!("/v1/api-keys/{id}"),
            Some(&key),
            Some(json!({"name": "me", "permissions": ["manage"]})),
        )
        .await;
    assert_eq!(rename.status, 200, "its other settings stay editable");
}

#[tokio::test]
async fn errors_share_one_shape_and_the_cli_texts() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[View, Manage]);
    for (method, path, body, status, code, message) in [
        ("GET", "/v1/nothing", None, 404, "not_found", None),
        ("PUT", "/v1/account", None, 405, "method_not_allowed", None),
        (
            "POST",
            "/v1/api-keys",
            Some(json!({"permissions": ["admin"]})),
            400,
            "invalid_request",
            Some(r#"unknown permission "admin" (expected smtp, send, view or manage)"#),
        ),
        (
            "POST",
            "/v1/api-keys",
            Some(json!({"permissions": []})),
            400,
            "invalid_request",
            Some("an API key needs at least one permission"),
        ),
        ("POST", "/v1/api-keys", Some(json!({"name": "  "})), 400, "invalid_request", Some("name must not be empty")),
        ("POST", "/v1/api-keys", Some(json!({"allow": ["10.0.0.0/33"]})), 400, "invalid_request", None),
        (
            "POST",
            "/v1/smtp-credentials",
            Some(json!({"username": "nope"})),
            400,
            "invalid_request",
            Some(r#"invalid address: address "nope" must have the form local@domain"#),
        ),
        ("POST", "/v1/api-keys", Some(json!({"bogus": 1})), 400, "invalid_request", None),
        ("PATCH", "/v1/api-keys/abc", Some(json!({})), 400, "invalid_request", None),
        ("POST", "/v1/api-keys/999999/change", None, 404, "not_found", None),
    ] {
        let reply = server.call(method, path, Some(&key), body).await;
        assert_eq!((reply.status, reply.code()), (status, code), "{method} {path}: {}", reply.text);
        assert_eq!(reply.headers["content-type"], "application/json");
        if let Some(m) = message {
            assert_eq!(reply.message(), m);
        }
        assert_eq!(reply.json.as_object().unwrap().len(), 1, "one top-level field");
    }
    let raw = server.call("POST", "/v1/api-keys", Some(&key), None).await;
    assert_eq!(raw.status, 201, "an empty body is an empty object");
}

#[tokio::test]
async fn send_says_503_while_the_relay_is_disabled() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Send]);
    let reply = server
        .call("POST", "/v1/email/send", Some(&key), Some(json!({"from": OWNER, "to": ["a@example.net"], "text": "x"})))
        .await;
    assert_eq!((reply.status, reply.code()), (503, "relay_disabled"));
    assert!(reply.message().contains("relay is not enabled"));
}

#[tokio::test]
async fn openapi_document_is_the_repository_file() {
    let server = TestServer::start("").await;
    let reply = server.call("GET", "/v1/openapi.json", None, None).await;
    assert_eq!(reply.status, 200);
    let repo: Value = serde_json::from_str(include_str!("../openapi/relaykey.json")).unwrap();
    assert_eq!(reply.json, repo);
    assert_eq!(repo["openapi"], "3.1.0");
    for path in [
        "/v1/account",
        "/v1/api-keys",
        "/v1/api-keys/{id}",
        "/v1/api-keys/{id}/change",
        "/v1/smtp-credentials",
        "/v1/smtp-credentials/{id}",
        "/v1/smtp-credentials/{id}/change",
        "/v1/email/send",
    ] {
        assert!(repo["paths"].get(path).is_some(), "{path} is not documented");
    }
}

#[tokio::test]
async fn settings_page_is_self_contained() {
    let server = TestServer::start("").await;
    let page = server.call("GET", "/", None, None).await;
    assert_eq!(page.status, 200);
    assert!(page.headers["content-security-policy"].to_str().unwrap().contains("default-src 'none'"));
    assert!(page.text.contains("/assets/app.js") && page.text.contains("/assets/app.css"));
    for asset in ["/", "/assets/app.js", "/assets/app.css"] {
        let reply = server.call("GET", asset, None, None).await;
        assert_eq!(reply.status, 200, "{asset}");
        for external in ["http://", "https://", "//cdn", "@import"] {
            assert!(!reply.text.contains(external), "{asset} refers to {external}");
        }
    }
}

#[tokio::test]
async fn operator_endpoints_answer() {
    let server = TestServer::start("").await;
    let health = call_from(server.metrics, "127.0.0.1".parse().unwrap(), "GET", "/healthz", None, None).await;
    assert_eq!((health.status, health.text.as_str()), (200, "ok\n"));
    let (_, key) = server.key(&[View]);
    server.call("GET", "/v1/account", Some(&key), None).await;
    let text = server.metrics_text().await;
    for needle in [
        "# TYPE relaykey_authentications_total counter",
        r#"relaykey_authentications_total{front_end="api",reason="ok",result="allow"}"#,
        "relaykey_queue_messages",
        "# TYPE relaykey_deliveries_total counter",
        "# TYPE relaykey_policy_decisions_total counter",
        r#"relaykey_connections_total{listener="api"}"#,
        r#"relaykey_api_requests_total{status="200"}"#,
    ] {
        assert!(text.contains(needle), "missing {needle}:\n{text}");
    }
}
