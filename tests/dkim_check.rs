//! `relaykey dkim check DOMAIN` against a real resolver: dnsmasq on a loopback port (the
//! `[senders] resolver` the CLI uses) publishing one key's record as generated (the RSA value
//! split into 255-byte strings, as a zone has it), another key's record with a different `p=`,
//! and nothing for a third. The check says, per selector: published and matching, published but
//! stale, missing; it succeeds only once every key not retired matches.
//! Needs dnsmasq and root: skipped locally without them, a failure under CI=true.

mod support;

use serde_json::Value;
use support::daemon::{ServeBuilder, cli, cli_json, cli_output, serve};
use support::dns::dnsmasq;
use support::relay::USER;

const DOMAIN: &str = "check.example";

/// A config and store (no daemon) with USER owning DOMAIN.
fn config() -> ServeBuilder {
    let builder = serve();
    cli(&builder.config_path(), &["account", "add", USER]);
    cli(&builder.config_path(), &["sender", "add", USER, DOMAIN]);
    builder
}

fn generate(builder: &ServeBuilder, args: &[&str]) -> Vec<Value> {
    let mut all = vec!["dkim", "generate", DOMAIN];
    all.extend_from_slice(args);
    cli_json(&builder.config_path(), &all).as_array().expect("a list of keys").clone()
}

fn txt_record(key: &Value) -> String {
    format!("--txt-record={},{}", key["dns"]["name"].as_str().unwrap(), key["dns"]["value"].as_str().unwrap())
}

#[test]
fn check_tells_matching_stale_and_missing_records_apart() {
    let builder = config();
    let keys = generate(&builder, &[]);
    assert_eq!(keys.len(), 2, "{keys:?}");
    let stale = generate(&builder, &["--selector", "stale", "--algorithm", "ed25519"]).remove(0);
    let missing = generate(&builder, &["--selector", "missing", "--algorithm", "ed25519"]).remove(0);
    // "stale" publishes the first Ed25519 key's p= under its own name: a DKIM record, the wrong key.
    let ed = keys.iter().find(|k| k["algorithm"] == "ed25519").unwrap();
    let stale_record =
        format!("--txt-record={},{}", stale["dns"]["name"].as_str().unwrap(), ed["dns"]["value"].as_str().unwrap());
    let records = [txt_record(&keys[0]), txt_record(&keys[1]), stale_record, "--local=/example/".to_string()];
    let args: Vec<&str> = records.iter().map(String::as_str).collect();
    let Some(dns) = dnsmasq(&args) else { return };
    let builder = builder.table("senders", &format!("resolver = \"127.0.0.1:{}\"\ndns_timeout = \"5s\"\n", dns.port));

    let out = cli_output(&builder.config_path(), &["--json", "dkim", "check", DOMAIN]);
    assert_eq!(out.status.code(), Some(1), "not every key matches: {}", String::from_utf8_lossy(&out.stderr));
    let checked: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let result = |selector: &str| {
        let entry = checked.as_array().unwrap().iter().find(|k| k["selector"] == selector);
        entry.unwrap_or_else(|| panic!("{selector} not checked: {checked}"))["dns_check"].as_str().unwrap().to_string()
    };
    for key in &keys {
        assert_eq!(result(key["selector"].as_str().unwrap()), "match", "{key}");
    }
    assert_eq!(result("stale"), "stale");
    assert_eq!(result(missing["selector"].as_str().unwrap()), "missing");

    // The operator's words, one line per selector.
    let text = cli_output(&builder.config_path(), &["dkim", "check", DOMAIN]);
    let text = String::from_utf8_lossy(&text.stdout).into_owned();
    let line = |selector: &str| {
        text.lines()
            .find(|l| l.split('\t').nth(1) == Some(selector))
            .unwrap_or_else(|| panic!("no line for {selector}:\n{text}"))
            .to_string()
    };
    for key in &keys {
        assert!(line(key["selector"].as_str().unwrap()).contains("published and matching"), "{text}");
    }
    assert!(line("stale").contains("published but stale"), "{text}");
    assert!(line("missing").contains("missing"), "{text}");

    // Once the keys DNS does not publish are retired, the check passes.
    for selector in ["stale", "missing"] {
        cli(&builder.config_path(), &["dkim", "retire", DOMAIN, selector]);
    }
    let out = cli_output(&builder.config_path(), &["dkim", "check", DOMAIN]);
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}
