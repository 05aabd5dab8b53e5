//! `relaykey sender …` as an operator uses it: the JSON contract, one-line refusals (exit 1),
//! IDNA, `sender owner`, and two processes claiming one domain at once leaving one owner.

mod senders_support;

use std::process::Stdio;

use senders_support::Env;
use serde_json::json;

#[test]
fn add_list_remove_with_the_json_contract() {
    let env = Env::new("");
    env.account("ann@example.com");
    let added = env.json(&["sender", "add", "ann@example.com", "Example.ORG"]);
    assert_eq!(
        added,
        json!({"entry": "example.org", "unicode": "example.org", "kind": "domain", "verified": true, "token": null, "dns": null})
    );
    let pending = env.json(&["sender", "add", "ann@example.com", "Bücher.example", "--pending"]);
    let token = pending["token"].as_str().unwrap().to_string();
    assert_eq!(token.len(), 32);
    assert!(token.bytes().all(|b| b.is_ascii_hexdigit()));
    assert_eq!(
        pending,
        json!({
            "entry": "xn--bcher-kva.example", "unicode": "bücher.example", "kind": "domain", "verified": false,
            "token": token,
            "dns": {"name": "_relaykey.xn--bcher-kva.example", "type": "TXT", "value": format!("relaykey-verify={token}")}
        })
    );
    let billing = env.json(&["sender", "add", "ann@example.com", "Billing@Example.net"]);
    assert_eq!((billing["entry"].as_str(), billing["kind"].as_str()), (Some("billing@example.net"), Some("address")));

    let list = env.json(&["sender", "list", "ann@example.com"]);
    let entries: Vec<&str> = list.as_array().unwrap().iter().map(|s| s["entry"].as_str().unwrap()).collect();
    assert_eq!(entries, ["example.org", "xn--bcher-kva.example", "ann@example.com", "billing@example.net"]);

    assert_eq!(
        env.json(&["sender", "remove", "ann@example.com", "bücher.example"]),
        json!({"removed": "xn--bcher-kva.example"})
    );
    let list = env.json(&["sender", "list", "ann@example.com"]);
    assert_eq!(list.as_array().unwrap().len(), 3);

    // Plain text: one line per entry, and the record to publish under a pending domain.
    let text = env.cli(&["sender", "add", "ann@example.com", "pending.example", "--pending"]);
    assert!(text.starts_with("pending.example\tdomain\tpending\n"), "{text}");
    assert!(text.contains("publish: _relaykey.pending.example TXT \"relaykey-verify="), "{text}");
}

#[test]
fn refusals_are_one_line_and_exit_1() {
    let env = Env::new("");
    env.account("ann@example.com");
    env.account("bob@example.org");
    env.cli(&["sender", "add", "ann@example.com", "example.com"]);
    for (args, want) in [
        (&["sender", "add", "ann@example.com", "com"][..], "bare top-level domain"),
        (&["sender", "add", "ann@example.com", "192.0.2.1"], "IP literal"),
        (&["sender", "add", "ann@example.com", "ann@[192.0.2.1]"], "IP literal"),
        (&["sender", "add", "ann@example.com", "billing@"], "address with no domain"),
        (&["sender", "add", "ann@example.com", "exa_mple.com"], "not a valid domain name"),
        (&["sender", "add", "bob@example.org", "EXAMPLE.com"], "sender example.com belongs to another account"),
        (
            &["sender", "add", "ann@example.com", "example.com"],
            "account ann@example.com already has sender example.com",
        ),
        (&["sender", "add", "ann@example.com", "bob@example.org"], "belongs to another account"),
        (&["sender", "add", "nobody@example.com", "example.net"], "unknown account nobody@example.com"),
        (&["sender", "remove", "ann@example.com", "example.net"], "account ann@example.com has no sender example.net"),
        (&["sender", "verify", "ann@example.com", "billing@example.com"], "no sender billing@example.com"),
        (&["sender", "owner", "x@unknown.example"], "no account may send as x@unknown.example"),
    ] {
        env.refused(args, want);
    }
    env.cli(&["sender", "add", "ann@example.com", "billing@example.com", "--pending"]);
    env.refused(&["sender", "verify", "ann@example.com", "billing@example.com"], "has no DNS token");
}

#[test]
fn owner_names_the_account_and_the_deciding_entry() {
    let env = Env::new("");
    env.account("ann@example.com");
    env.json(&["smtp", "create", "ann@example.com", "--username", "billing@example.com"]);
    env.account("bob@example.com");
    env.cli(&["sender", "add", "ann@example.com", "example.com"]);
    assert_eq!(
        env.json(&["sender", "owner", "Someone+x@EXAMPLE.com"]),
        json!({"address": "Someone+x@EXAMPLE.com", "account": "ann@example.com", "entry": "example.com",
               "kind": "domain", "logins": ["ann@example.com", "billing@example.com"]})
    );
    // Bob's own address is more specific than Ann's domain.
    let bob = env.json(&["sender", "owner", "bob+news@example.com"]);
    assert_eq!((bob["account"].as_str(), bob["entry"].as_str()), (Some("bob@example.com"), Some("bob@example.com")));
    let text = env.cli(&["sender", "owner", "x@example.com"]);
    assert!(text.starts_with("ann@example.com\tentry=example.com\tkind=domain\n"), "{text}");
    env.cli(&["sender", "add", "bob@example.com", "pending.example", "--pending"]);
    env.refused(&["sender", "owner", "x@pending.example"], "no account may send as");
}

#[test]
fn two_processes_claiming_one_domain_leave_exactly_one_owner() {
    let env = Env::new("");
    let accounts: Vec<String> = (0..6).map(|i| format!("user{i}@example.com")).collect();
    for a in &accounts {
        env.cli(&["account", "add", a]);
    }
    for round in 0..5 {
        let domain = format!("race{round}.example");
        let children: Vec<_> = accounts
            .iter()
            .map(|a| {
                env.command()
                    .args(["sender", "add", a, &domain])
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        let outcomes: Vec<_> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
        let winners = outcomes.iter().filter(|o| o.status.success()).count();
        assert_eq!(winners, 1, "round {round}: {winners} processes claimed {domain}");
        for lost in outcomes.iter().filter(|o| !o.status.success()) {
            let err = String::from_utf8_lossy(&lost.stderr);
            assert_eq!(lost.status.code(), Some(1), "{err}");
            assert!(err.contains(&format!("sender {domain} belongs to another account")), "{err}");
        }
        let owner = env.json(&["sender", "owner", &format!("x@{domain}")]);
        let owners: Vec<usize> = accounts
            .iter()
            .enumerate()
            .filter(|(_, a)| {
                env.json(&["sender", "list", a]).as_array().unwrap().iter().any(|s| s["entry"] == domain.as_str())
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(owners.len(), 1, "{owners:?}");
        assert_eq!(owner["account"].as_str(), Some(accounts[owners[0]].as_str()));
    }
}
