//! A `relaykey serve` with the relay enabled: a throwaway certificate (rcgen), one account with
//! an SMTP credential, and three loopback listeners (STARTTLS, implicit TLS, plaintext). The
//! SASL and policy front ends are off. Derefs to its [`Daemon`].

use std::path::PathBuf;

use super::daemon::{Daemon, serve};
use super::ports::free_port;

pub const USER: &str = "ann@example.com";

/// Extra TOML for the `[relay]` and `[limits]` tables, and the other front ends to serve.
#[derive(Default, Clone)]
pub struct Options {
    pub relay: String,
    pub limits: String,
    pub spool: Option<PathBuf>,
    /// Also serve the HTTP API (plain HTTP on a loopback port, [`Relay::api`]).
    pub api: bool,
    /// Also serve the policy socket ([`Relay::policy_socket`]), with these `[policy]` keys.
    pub policy: Option<String>,
}

pub struct Relay {
    pub daemon: Daemon,
    pub starttls: u16,
    pub implicit: u16,
    pub plain: u16,
    /// USER's SMTP password.
    pub password: String,
    /// The HTTP API's port, with [`Options::api`].
    pub api: Option<u16>,
}

impl std::ops::Deref for Relay {
    type Target = Daemon;
    fn deref(&self) -> &Daemon {
        &self.daemon
    }
}

impl std::ops::DerefMut for Relay {
    fn deref_mut(&mut self) -> &mut Daemon {
        &mut self.daemon
    }
}

impl Relay {
    pub fn start(options: Options) -> Self {
        let builder = serve();
        let d = builder.dir().to_path_buf();
        let cert = rcgen::generate_simple_self_signed(vec!["localhost".into(), "relay.test".into()]).unwrap();
        std::fs::write(d.join("cert.pem"), cert.cert.pem()).unwrap();
        std::fs::write(d.join("key.pem"), cert.signing_key.serialize_pem()).unwrap();
        let (starttls, implicit, plain) = (free_port(), free_port(), free_port());
        let spool = options.spool.clone().unwrap_or_else(|| d.join("spool"));
        let api = options.api.then(free_port);
        let mut builder = builder
            .toml("[auth]\nfailure_delay = \"100ms\"\nmax_failure_delay = \"200ms\"\n[sasl]\nenabled = false\n")
            .table("policy", &format!("enabled = {}\n{}", options.policy.is_some(), options.policy.unwrap_or_default()))
            .table("limits", &options.limits);
        if let Some(port) = api {
            builder = builder.table("api", &format!("enabled = true\nlisten = \"127.0.0.1:{port}\"\n"));
        }
        let builder = builder.table(
            "relay",
            &format!(
                "enabled = true\nhostname = \"relay.test\"\ntls_cert = \"{d}/cert.pem\"\ntls_key = \"{d}/key.pem\"\n\
                     spool = \"{spool}\"\nqueue_scan_interval = \"1s\"\nmin_retry_interval = \"1s\"\n\
                     max_retry_interval = \"2s\"\n{relay}\n\
                     [[relay.listen]]\naddress = \"127.0.0.1:{starttls}\"\ntls = \"starttls\"\n\
                     [[relay.listen]]\naddress = \"127.0.0.1:{implicit}\"\ntls = \"implicit\"\n\
                     [[relay.listen]]\naddress = \"127.0.0.1:{plain}\"\ntls = \"none\"\n",
                d = d.display(),
                spool = spool.display(),
                relay = options.relay,
            ),
        );
        super::daemon::cli(&builder.config_path(), &["account", "add", USER]);
        let password = super::daemon::cli_json(&builder.config_path(), &["smtp", "create", USER])["password"]
            .as_str()
            .unwrap()
            .to_string();
        let daemon = builder.start();
        Self { daemon, starttls, implicit, plain, password, api }
    }

    /// Creates an SMTP credential (`extra`: e.g. `--username x --allow 127.0.0.5`); returns
    /// (username, password).
    pub fn create_credential(&self, extra: &[&str]) -> (String, String) {
        let mut args = vec!["smtp", "create", USER];
        args.extend_from_slice(extra);
        let v = self.cli_json(&args);
        (v["username"].as_str().unwrap().to_string(), v["password"].as_str().unwrap().to_string())
    }

    /// The policy socket, with [`Options::policy`].
    pub fn policy_socket(&self) -> PathBuf {
        self.socket("policy")
    }

    /// The queue directory inside the spool.
    pub fn spool_dir(&self) -> PathBuf {
        self.dir().join("spool").join("queue")
    }
}
