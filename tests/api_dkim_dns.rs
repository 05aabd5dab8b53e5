//! `GET /v1/senders/{domain}/dns`: what a sender domain publishes (verification TXT, DKIM key
//! records, SPF suggestion from `[relay]`), for the caller's own domains only, with `view`.

mod api_common;

use api_common::{OWNER, TestServer};
use relaykey::address::EmailAddress;
use relaykey::dkim::key::generate;
use relaykey::dkim::{Algorithm, KeyState};
use relaykey::model::Permission::{Send, View};
use relaykey::senders::SenderEntry;
use serde_json::json;

#[tokio::test]
async fn a_domain_lists_every_record_to_publish() {
    let server =
        TestServer::start("[relay]\nhostname = \"mail.relay.example\"\nspf_addresses = [\"192.0.2.25\"]").await;
    let owner = EmailAddress::parse(OWNER).unwrap();
    let mut store = server.store();
    let pending = store.add_sender(&owner, &SenderEntry::parse("pending.example").unwrap(), false).unwrap();
    store.add_sender(&owner, &SenderEntry::parse("signed.example").unwrap(), true).unwrap();
    let keys = vec![("s1".to_string(), generate(Algorithm::Ed25519).unwrap())];
    let stored = store.add_dkim_keys("signed.example", &keys).unwrap();
    store.set_dkim_key_state("signed.example", "s1", KeyState::Active).unwrap();
    let (_, view) = server.key(&[View]);

    let got = server.call("GET", "/v1/senders/signed.example/dns", Some(&view), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(
        got.json,
        json!({
            "domain": "signed.example",
            "verification": null,
            "dkim": [{"domain": "signed.example", "selector": "s1", "algorithm": "ed25519", "state": "active",
                      "dns": {"name": "s1._domainkey.signed.example", "type": "TXT", "value": stored[0].dns_record().value}}],
            "spf": {"name": "signed.example", "type": "TXT", "value": "v=spf1 ip4:192.0.2.25 ~all"}
        })
    );

    let got = server.call("GET", "/v1/senders/Pending.Example/dns", Some(&view), None).await;
    assert_eq!(got.status, 200, "{}", got.text);
    let token = pending.token.unwrap();
    assert_eq!(
        got.json["verification"],
        json!({"name": "_relaykey.pending.example", "type": "TXT", "value": format!("relaykey-verify={token}")})
    );
    assert_eq!(got.json["dkim"], json!([]));
}

#[tokio::test]
async fn only_the_owner_with_view_sees_a_domains_records() {
    let server = TestServer::start("").await;
    let owner = EmailAddress::parse(OWNER).unwrap();
    let other = EmailAddress::parse("other@example.net").unwrap();
    let mut store = server.store();
    store.add_account(&other).unwrap();
    store.add_sender(&other, &SenderEntry::parse("theirs.example").unwrap(), true).unwrap();
    store.add_sender(&owner, &SenderEntry::parse("mine.example").unwrap(), true).unwrap();
    let (_, view) = server.key(&[View]);
    let (_, send_only) = server.key(&[Send]);

    let spf = server.call("GET", "/v1/senders/mine.example/dns", Some(&view), None).await;
    assert!(spf.json["spf"]["value"].as_str().unwrap().starts_with("v=spf1 a:"), "{}", spf.text);
    for (path, key, status) in [
        ("/v1/senders/theirs.example/dns", Some(&view), 404),
        ("/v1/senders/unknown.example/dns", Some(&view), 404),
        ("/v1/senders/owner@example.com/dns", Some(&view), 400),
        ("/v1/senders/mine.example/dns", Some(&send_only), 403),
        ("/v1/senders/mine.example/dns", None, 401),
    ] {
        let got = server.call("GET", path, key.map(String::as_str), None).await;
        assert_eq!(got.status, status, "{path}: {}", got.text);
    }
}
