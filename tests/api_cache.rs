//! Repeated calls with one key cost one argon2 verification: the rest are answered from the
//! authenticator's cache, until the store changes. (Its own binary: it reads process-wide
//! counters that other tests would also move.)

mod api_common;

use api_common::TestServer;
use relaykey::metrics::registry;
use relaykey::model::Permission::{Manage, View};

fn count(reason: &str) -> i64 {
    registry().get("relaykey_authentications_total", &[("front_end", "api"), ("result", "allow"), ("reason", reason)])
}

#[tokio::test]
async fn repeated_calls_are_answered_from_the_cache_until_the_store_changes() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[View, Manage]);
    for _ in 0..5 {
        assert_eq!(server.call("GET", "/v1/api-keys", Some(&key), None).await.status, 200);
    }
    assert_eq!((count("ok"), count("cached")), (1, 4));

    // A write through the API commits on the API's own connection, which drops the cache.
    assert_eq!(server.call("POST", "/v1/api-keys", Some(&key), None).await.status, 201);
    assert_eq!((count("ok"), count("cached")), (1, 5));
    assert_eq!(server.call("GET", "/v1/account", Some(&key), None).await.status, 200);
    assert_eq!((count("ok"), count("cached")), (2, 5), "the cache outlived a store change");
}
