//! relaykey as deployed next to Postfix 3.7: a throwaway Postfix configured from the very files
//! `postfix/main.cf.relaykey` and `postfix/master.cf.relaykey`, and a `relaykey serve` whose
//! sockets sit where those files point (`$queue_directory/private/relaykey-{auth,policy,senders}`).

use super::daemon::{Daemon, serve};
use super::postfix::{Postfix, postfix};

/// The four services of master.cf.relaykey, on free loopback ports.
#[derive(Debug, Clone, Copy)]
pub struct Ports {
    pub smtp: u16,
    pub p2525: u16,
    pub submission: u16,
    pub submissions: u16,
}

/// Postfix is declared first so that it stops before relaykey does.
pub struct Sidecar {
    pub postfix: Postfix,
    pub relaykey: Daemon,
    pub ports: Ports,
}

impl Sidecar {
    /// `policy_toml` is merged into `[policy]`: keys before any table header are policy keys
    /// (`messages_per_minute = 2\n[limits]\nsession_timeout = "2s"`).
    pub fn start(policy_toml: &str) -> Self {
        let builder = postfix()
            .relaykey_snippets()
            .tls()
            // A killed smtpd makes master throttle the service for this long (reference §7.2).
            .main_cf("service_throttle_time = 1s");
        let private = builder.private_dir();
        let relaykey = serve()
            .toml(&format!(
                "[sasl]\nsocket = \"{p}/relaykey-auth\"\nsocket_mode = \"0666\"\n\
                 [policy]\nsocket = \"{p}/relaykey-policy\"\nsocket_mode = \"0666\"\n\
                 [senders]\nsocketmap = true\nsocket = \"{p}/relaykey-senders\"\nsocket_mode = \"0666\"\n",
                p = private.display()
            ))
            .table("policy", policy_toml)
            .start();
        let postfix = builder.start();
        assert_eq!(
            postfix.listener_names(),
            ["smtp", "2525", "submission", "submissions"],
            "master.cf.relaykey should define these 4 services"
        );
        let ports = Ports {
            smtp: postfix.port_of("smtp"),
            p2525: postfix.port_of("2525"),
            submission: postfix.port_of("submission"),
            submissions: postfix.port_of("submissions"),
        };
        Self { postfix, relaykey, ports }
    }

    /// Runs the relaykey CLI against this instance's config.
    pub fn relaykey(&self, args: &[&str]) -> String {
        self.relaykey.cli(args)
    }

    /// Kills relaykey with SIGKILL (no chance to clean up) and starts it again.
    pub fn crash_and_restart_relaykey(&mut self) {
        self.relaykey.kill9();
        self.relaykey.restart();
    }

    pub fn maillog(&self) -> String {
        self.postfix.maillog()
    }

    pub fn relaykey_log(&self) -> String {
        self.relaykey.log()
    }
}
