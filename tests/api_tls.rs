//! The API over TLS (rustls with ring): a client that trusts the test certificate is served;
//! plain HTTP to the TLS port gets no HTTP answer.

mod api_common;

use std::sync::Arc;

use api_common::{TestServer, connect_from};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use relaykey::model::Permission::View;
use rustls::pki_types::{CertificateDer, ServerName};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn api_answers_over_tls_with_the_configured_certificate() {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).unwrap();
    std::fs::write(&key, certified.signing_key.serialize_pem()).unwrap();
    let server = TestServer::start(&format!("tls_cert = {cert:?}\ntls_key = {key:?}")).await;
    let (_, api_key) = server.key(&[View]);

    let mut roots = rustls::RootCertStore::empty();
    roots.add(CertificateDer::from(certified.cert.der().to_vec())).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
    let tls = connector.connect(ServerName::try_from("localhost").unwrap(), tcp).await.unwrap();

    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await.unwrap();
    tokio::spawn(conn);
    let request = hyper::Request::get("/v1/account")
        .header("host", "localhost")
        .header("authorization", format!("Bearer {api_key}"))
        .body(Empty::<Bytes>::new())
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["email"], api_common::OWNER);

    let mut plain = connect_from(server.addr, "127.0.0.1".parse().unwrap()).await;
    plain.write_all(b"GET /v1/account HTTP/1.1\r\nHost: x\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(std::time::Duration::from_secs(60), plain.read_to_end(&mut out)).await;
    assert!(!out.starts_with(b"HTTP/"), "plain HTTP was answered on the TLS port");
}
