//! The senders socketmap through Postfix's own client, `postmap -q … socketmap:unix:…`: who may
//! send as an address (the owning account's logins), most specific entry first, with the
//! extension and case folded by relaykey; NOTFOUND for unowned and pending; many keys over one
//! connection; the entries added by the CLI count at once.

mod senders_support;

use senders_support::{Env, available};

/// Ann owns example.com (and her own address), Bob owns bob@example.org, Carol has a pending
/// domain.
fn populated() -> Env {
    let env = Env::new("");
    env.account("ann@example.com");
    env.json(&["smtp", "create", "ann@example.com", "--username", "billing@example.com"]);
    env.cli(&["sender", "add", "ann@example.com", "Example.COM"]);
    env.account("bob@example.org");
    env.account("carol@example.net");
    env.cli(&["sender", "add", "carol@example.net", "pending.example", "--pending"]);
    env
}

#[test]
fn postmap_gets_the_logins_that_may_use_an_address() {
    if !available(&["postmap"]) {
        return;
    }
    let env = populated();
    let _daemon = env.serve();
    let ann = "ann@example.com,billing@example.com";
    for (key, want) in [
        ("ann@example.com", Some(ann)),
        ("someone@example.com", Some(ann)),
        ("User+tag@EXAMPLE.com", Some(ann)),
        ("bob@example.org", Some("bob@example.org")),
        ("Bob+lists@Example.ORG", Some("bob@example.org")),
        ("alice@example.org", None),
        ("x@unknown.example", None),
        ("x@pending.example", None),
    ] {
        let (code, out) = env.postmap(key, "senders");
        match want {
            Some(logins) => assert_eq!((code, out.as_str()), (0, logins), "{key}"),
            None => assert_eq!((code, out.as_str()), (1, ""), "{key}: NOTFOUND is exit 1"),
        }
    }
}

#[test]
fn one_connection_serves_many_keys() {
    if !available(&["postmap"]) {
        return;
    }
    let env = populated();
    let daemon = env.serve();
    let keys: Vec<String> = (0..200)
        .map(|i| match i % 4 {
            0 => format!("u{i}@example.com"),
            1 => "bob@example.org".to_string(),
            2 => format!("u{i}@pending.example"),
            _ => format!("u{i}@unknown.example"),
        })
        .collect();
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let (code, out) = env.postmap_many(&refs);
    assert_eq!(code, 0, "{out}");
    let found: Vec<&str> = out.lines().collect();
    assert_eq!(found.len(), 100, "{out}");
    assert_eq!(found[0], "u0@example.com\tann@example.com,billing@example.com");
    assert_eq!(found[1], "bob@example.org\tbob@example.org");
    // The daemon logs each connection it closes with the requests it answered: one answered
    // all 200 (the harness's readiness probe is the other, with none).
    daemon.wait_log("requests=200");
    let closed: Vec<String> = daemon
        .log()
        .lines()
        .filter(|l| l.contains("socketmap connection closed") && !l.contains("requests=0"))
        .map(str::to_string)
        .collect();
    assert_eq!(closed.len(), 1, "{closed:?}");
}

#[test]
fn entries_count_from_the_next_lookup() {
    if !available(&["postmap"]) {
        return;
    }
    let env = populated();
    let _daemon = env.serve();
    assert_eq!(env.postmap("x@pending.example", "senders").0, 1);
    env.cli(&["sender", "remove", "carol@example.net", "pending.example"]);
    env.cli(&["sender", "add", "carol@example.net", "pending.example"]);
    assert_eq!(env.postmap("x@pending.example", "senders"), (0, "carol@example.net".to_string()));
    env.cli(&["sender", "remove", "ann@example.com", "example.com"]);
    assert_eq!(env.postmap("someone@example.com", "senders").0, 1);
    assert_eq!(env.postmap("ann@example.com", "senders"), (0, "ann@example.com,billing@example.com".to_string()));
}

#[test]
fn a_wrong_map_name_is_a_configuration_error_not_a_refusal() {
    if !available(&["postmap"]) {
        return;
    }
    let env = populated();
    let _daemon = env.serve();
    let (code, out, err) = env.postmap_with_errors("ann@example.com", "sender");
    // PERM: postmap reports a lookup error (not "not found", which would make Postfix answer
    // 553 to every sender).
    assert_ne!(code, 0, "{out}");
    assert!(err.contains("permanent error: unknown map name"), "{code} {err}");
    assert!(err.contains("query error"), "{code} {err}");
}
