//! `relaykey dkim …` as an operator uses it: generate, list, activate, retire with the JSON
//! contract, default selectors, one-line refusals (exit 1), and the private key never printed.

mod senders_support;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use senders_support::Env;
use serde_json::{Value, json};

fn year() -> i64 {
    // The selector's year is the current UTC year; read it the way the test machine sees it.
    let out = std::process::Command::new("date").args(["-u", "+%Y"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

fn env_with_domain() -> Env {
    let env = Env::new("");
    env.account("ann@example.com");
    env.cli(&["sender", "add", "ann@example.com", "example.org"]);
    env
}

fn keys(v: &Value) -> Vec<(String, String, String)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|k| {
            (
                k["selector"].as_str().unwrap().to_string(),
                k["algorithm"].as_str().unwrap().to_string(),
                k["state"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

#[test]
fn generate_both_then_activate_and_retire() {
    let env = env_with_domain();
    let y = year();
    let (a, b) = (format!("rk{y}a"), format!("rk{y}b"));
    let generated = env.json(&["dkim", "generate", "Example.ORG"]);
    assert_eq!(
        keys(&generated),
        [(a.clone(), "rsa".into(), "published".into()), (b.clone(), "ed25519".into(), "published".into())]
    );
    let rsa = &generated[0];
    assert_eq!(rsa["domain"], "example.org");
    assert_eq!(rsa["dns"]["name"], format!("{a}._domainkey.example.org"));
    assert_eq!(rsa["dns"]["type"], "TXT");
    let value = rsa["dns"]["value"].as_str().unwrap();
    assert!(value.starts_with("v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA"), "{value}");
    assert!(value.len() > 255, "an RSA-2048 value is unsplit in JSON");
    let ed = generated[1]["dns"]["value"].as_str().unwrap();
    let p = ed.strip_prefix("v=DKIM1; k=ed25519; p=").unwrap();
    assert_eq!(STANDARD.decode(p).unwrap().len(), 32);
    assert_eq!(generated[0].as_object().unwrap().len(), 5, "exactly the documented fields");

    // The next default selector is the next free letter.
    let third = env.json(&["dkim", "generate", "example.org", "--algorithm", "ed25519"]);
    assert_eq!(keys(&third), [(format!("rk{y}c"), "ed25519".into(), "published".into())]);

    let active = env.json(&["dkim", "activate", "example.org", &a.to_uppercase()]);
    assert_eq!(
        active,
        json!({"domain": "example.org", "selector": a, "algorithm": "rsa", "state": "active", "dns": rsa["dns"]})
    );
    let retired = env.json(&["dkim", "retire", "example.org", &b]);
    assert_eq!(retired["state"], "retired");
    let listed = env.json(&["dkim", "list", "example.org"]);
    assert_eq!(
        keys(&listed),
        [
            (a.clone(), "rsa".into(), "active".into()),
            (b.clone(), "ed25519".into(), "retired".into()),
            (format!("rk{y}c"), "ed25519".into(), "published".into())
        ]
    );
    assert_eq!(keys(&env.json(&["dkim", "list"])).len(), 3);
}

#[test]
fn text_output_shows_zone_file_strings() {
    let env = env_with_domain();
    let text = env.cli(&["dkim", "generate", "example.org", "--algorithm", "rsa", "--selector", "mail"]);
    let mut lines = text.lines();
    assert_eq!(lines.next(), Some("example.org\tmail\trsa\tpublished"));
    let record = lines.next().unwrap();
    assert!(record.starts_with("  mail._domainkey.example.org. IN TXT \"v=DKIM1; k=rsa; p=MIIB"), "{record}");
    // Split into character-strings of at most 255 bytes.
    let strings: Vec<&str> = record.split(" TXT ").nth(1).unwrap().split("\" \"").collect();
    assert_eq!(strings.len(), 2, "{record}");
    assert!(strings.iter().all(|s| s.trim_matches('"').len() <= 255));
    assert!(text.contains("relaykey dkim activate example.org SELECTOR"));
}

#[test]
fn the_private_key_is_never_printed() {
    let env = env_with_domain();
    let mut printed = String::new();
    for args in [
        &["dkim", "generate", "example.org"][..],
        &["--json", "dkim", "generate", "example.org", "--algorithm", "ed25519"],
        &["dkim", "list"],
        &["--json", "dkim", "list"],
    ] {
        printed.push_str(&env.cli(args));
    }
    let selectors: Vec<String> = keys(&env.json(&["dkim", "list"])).into_iter().map(|k| k.0).collect();
    for s in &selectors {
        printed.push_str(&env.cli(&["dkim", "activate", "example.org", s]));
        printed.push_str(&env.cli(&["dkim", "retire", "example.org", s]));
    }
    let db = rusqlite::Connection::open(env.dir.path().join("relaykey.db")).unwrap();
    let mut stmt = db.prepare("SELECT algorithm, private_key FROM dkim_keys").unwrap();
    let privates: Vec<(String, Vec<u8>)> =
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?))).unwrap().map(Result::unwrap).collect();
    assert_eq!(privates.len(), 3);
    for (algorithm, private) in privates {
        // Secret bytes only: ring's Ed25519 PKCS#8 (v2) ends with the public key, and holds
        // the 32-byte seed after its 16-byte header; an RSA key ends with its private CRT
        // coefficient.
        let secret = if algorithm == "ed25519" { &private[16..48] } else { &private[private.len() - 32..] };
        assert!(!printed.contains(&hex::encode(secret)), "private key printed (hex)");
        assert!(!printed.contains(&STANDARD.encode(secret)[..40]), "private key printed (base64)");
        let whole = STANDARD.encode(&private);
        assert!(!printed.contains(&whole[whole.len() / 2..whole.len() / 2 + 40]), "PKCS#8 printed");
    }
}

#[test]
fn refusals_are_one_line_and_exit_1() {
    let env = env_with_domain();
    env.cli(&["sender", "add", "ann@example.com", "pending.example", "--pending"]);
    env.cli(&["dkim", "generate", "example.org", "--algorithm", "ed25519", "--selector", "s1"]);
    for (args, want) in [
        (&["dkim", "generate", "unknown.example"][..], "unknown.example is not a sender domain"),
        (&["dkim", "generate", "pending.example"], "sender domain pending.example is not verified"),
        (&["dkim", "generate", "ann@example.com"], "is an address"),
        (&["dkim", "generate", "example.org", "--selector", "bad_sel", "--algorithm", "rsa"], "bad selector"),
        (&["dkim", "generate", "example.org", "--selector", "s2"], "--selector names one key"),
        (
            &["dkim", "generate", "example.org", "--selector", "S1", "--algorithm", "ed25519"],
            "domain example.org already has a DKIM key with selector s1",
        ),
        (&["dkim", "activate", "example.org", "nope"], "domain example.org has no DKIM key with selector nope"),
        (&["dkim", "retire", "example.org", "x-"], "bad selector"),
        (&["dkim", "activate", "other.example", "s1"], "domain other.example has no DKIM key with selector s1"),
        (&["dkim", "check", "example.net"], "domain example.net has no DKIM keys"),
    ] {
        env.refused(args, want);
    }
    // Nothing was stored by the refusals.
    assert_eq!(keys(&env.json(&["dkim", "list"])).len(), 1);
}

#[test]
fn sender_list_shows_what_each_domain_publishes() {
    let env = env_with_domain();
    env.cli(&["dkim", "generate", "example.org", "--algorithm", "ed25519", "--selector", "s1"]);
    let list = env.json(&["sender", "list", "ann@example.com"]);
    let domain = list.as_array().unwrap().iter().find(|s| s["entry"] == "example.org").unwrap();
    assert_eq!(domain["records"]["dkim"][0]["selector"], "s1");
    assert_eq!(domain["records"]["dkim"][0]["dns"]["name"], "s1._domainkey.example.org");
    assert_eq!(domain["records"]["verification"], Value::Null);
    assert_eq!(domain["records"]["spf"]["name"], "example.org");
    assert!(domain["records"]["spf"]["value"].as_str().unwrap().starts_with("v=spf1 a:"));
    let own = list.as_array().unwrap().iter().find(|s| s["entry"] == "ann@example.com").unwrap();
    assert_eq!(own["records"], Value::Null);

    let text = env.cli(&["sender", "list", "ann@example.com"]);
    assert!(
        text.contains("  dkim ed25519 s1 (published): s1._domainkey.example.org. IN TXT \"v=DKIM1; k=ed25519; p="),
        "{text}"
    );
    assert!(text.contains("  spf (suggested): example.org. IN TXT \"v=spf1 a:"), "{text}");
}
