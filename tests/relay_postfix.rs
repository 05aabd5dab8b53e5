//! Postfix as the relay's client, configured the way a hosted provider tells its users
//! (`relayhost`, `smtp_sasl_password_maps = static:USERNAME:APIKEY`, TLS required): mail
//! submitted to that Postfix arrives at the sink through relaykey.
//! Needs root, postfix and swaks; skipped locally when absent, a failure under CI=true.

#[path = "support/relay_sink.rs"]
mod sink;
mod support;

use std::time::Duration;

use sink::Sink;
use support::peers::needs;
use support::postfix::postfix;
use support::relay::{Options, Relay, USER};
use support::smtp::swaks;

#[test]
fn postfix_relays_through_relaykey_with_an_api_key_over_starttls() {
    if !needs().programs(&["postfix", "swaks"]).root().met() {
        return;
    }
    let sink = Sink::start();
    // Postfix connects from 127.0.0.1: take it out of trusted_networks so that AUTH is needed.
    let relay = Relay::start(Options {
        relay: format!(
            "smarthost = \"127.0.0.1:{}\"\nsmarthost_tls = \"none\"\ntrusted_networks = [\"127.0.0.254/32\"]\n",
            sink.port
        ),
        ..Options::default()
    });
    let key: serde_json::Value =
        serde_json::from_str(&relay.cli(&["--json", "apikey", "create", USER, "--name", "postfix"])).unwrap();
    let api_key = key["key"].as_str().unwrap();
    let pf = postfix()
        .relayhost(&format!("[127.0.0.1]:{}", relay.starttls))
        .main_cf(&format!(
            "smtp_sasl_auth_enable = yes
smtp_sasl_password_maps = static:{USER}:{api_key}
smtp_sasl_security_options = noanonymous
smtp_tls_security_level = encrypt
smtp_tls_loglevel = 1
"
        ))
        .start();
    let server = format!("127.0.0.1:{}", pf.port());
    let (ok, text) =
        swaks(&["-s", &server, "-f", USER, "-t", "friend@example.net", "--header", "Subject: via postfix"]);
    assert!(ok, "{text}");
    let got = sink.wait_for(1, Duration::from_secs(90));
    assert_eq!(got.len(), 1, "nothing arrived; postfix log:\n{}\nrelaykey log:\n{}", pf.maillog(), relay.log());
    let m = &got[0];
    assert_eq!((m.from.as_str(), m.rcpts.as_slice()), (USER, &["friend@example.net".to_string()][..]));
    let text = m.text();
    assert!(text.contains("Subject: via postfix"), "{text}");
    // relaykey's trace header shows an authenticated TLS session from Postfix.
    assert!(text.contains("by relay.test (relaykey) with ESMTPSA"), "{text}");
    let log = relay.log();
    assert!(log.contains("decision=\"allow\"") && log.contains("credential=apikey:"), "{log}");
    assert!(pf.maillog().contains("TLS connection established"), "{}", pf.maillog());
}
