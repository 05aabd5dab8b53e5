//! `relaykey sender verify` against a real resolver: dnsmasq on its own loopback port serving
//! `_relaykey.<domain>` TXT records (the right token, a wrong one, none), and a resolver that
//! never answers (a temporary failure, exit 75, not "unverified").

mod senders_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use senders_support::{Env, available};

struct Dnsmasq(Child);

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn dnsmasq(port: u16, records: &[String]) -> Dnsmasq {
    let child = Command::new("/usr/sbin/dnsmasq")
        .args(["--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts", "--bind-interfaces"])
        .args(["--listen-address=127.0.0.1", &format!("--port={port}"), "--user=root", "--pid-file="])
        // Authoritative for .example: names it lacks are NXDOMAIN.
        .arg("--local=/example/")
        .args(records)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn dnsmasq");
    let guard = Dnsmasq(child);
    for _ in 0..500 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return guard;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("dnsmasq never listened on {port}");
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Adds `domain` pending to ann and returns its token.
fn pending(env: &Env, domain: &str) -> String {
    env.json(&["sender", "add", "ann@example.com", domain, "--pending"])["token"].as_str().unwrap().to_string()
}

#[test]
fn verify_checks_the_txt_record_through_the_resolver() {
    if !available(&["dnsmasq"]) || !is_root() {
        assert!(std::env::var("CI").map_or(true, |v| v != "true"), "the dnsmasq test needs root under CI");
        return;
    }
    let env = Env::new("");
    env.account("ann@example.com");
    let good = pending(&env, "good.example");
    pending(&env, "wrong.example");
    pending(&env, "none.example");
    let idn = pending(&env, "bücher.example");
    let port = free_port();
    let _dns = dnsmasq(
        port,
        &[
            "--txt-record=_relaykey.good.example,v=spf1 -all".to_string(),
            format!("--txt-record=_relaykey.good.example,relaykey-verify={good}"),
            "--txt-record=_relaykey.wrong.example,relaykey-verify=00000000000000000000000000000000".to_string(),
            format!("--txt-record=_relaykey.xn--bcher-kva.example,relaykey-verify={idn}"),
        ],
    );
    env.write_config(&format!("resolver = \"127.0.0.1:{port}\"\ndns_timeout = \"5s\"\n"));

    let verified = env.json(&["sender", "verify", "ann@example.com", "good.example"]);
    assert_eq!((verified["entry"].as_str(), verified["verified"].as_bool()), (Some("good.example"), Some(true)));
    assert_eq!(env.json(&["sender", "owner", "x@good.example"])["account"], "ann@example.com");
    let verified = env.json(&["sender", "verify", "ann@example.com", "Bücher.example"]);
    assert_eq!(verified["verified"].as_bool(), Some(true));

    env.refused(
        &["sender", "verify", "ann@example.com", "wrong.example"],
        "has a relaykey-verify record, but not \"relaykey-verify=",
    );
    env.refused(&["sender", "verify", "ann@example.com", "none.example"], "no TXT record \"relaykey-verify=");
    let list = env.json(&["sender", "list", "ann@example.com"]);
    for domain in ["wrong.example", "none.example"] {
        let entry = list.as_array().unwrap().iter().find(|s| s["entry"] == domain).unwrap();
        assert_eq!(entry["verified"].as_bool(), Some(false), "{domain} stays pending");
    }
    env.refused(&["sender", "owner", "x@wrong.example"], "no account may send as");
}

#[test]
fn a_resolver_that_does_not_answer_is_a_temporary_failure() {
    let env = Env::new("");
    env.account("ann@example.com");
    pending(&env, "quiet.example");
    // A UDP socket that never replies, and nothing on TCP.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    env.write_config(&format!("resolver = \"127.0.0.1:{port}\"\ndns_timeout = \"1s\"\n"));
    let out = env.run(&["sender", "verify", "ann@example.com", "quiet.example"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(75), "{err}");
    assert!(err.contains("sender quiet.example: cannot check now, try again later"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    let list = env.json(&["sender", "list", "ann@example.com"]);
    let entry = list.as_array().unwrap().iter().find(|s| s["entry"] == "quiet.example").unwrap();
    assert_eq!(entry["verified"].as_bool(), Some(false));
}
