//! A throwaway Postfix (`postfix -c DIR`) whose smtpd authenticates through relaykey and binds
//! senders with the lines of `postfix/main.cf.relaykey` as shipped: `smtpd_sender_login_maps`
//! (relaykey's socketmap under `private/`) and `relaykey_sender_binding` in the service's
//! `smtpd_sender_restrictions`, with `smtpd_delay_reject=no` as master.cf.relaykey has it (so
//! the refusal comes at MAIL FROM). Not chrooted, no TLS (loopback only), everything delivered to
//! `discard:`. Stopped on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use super::Env;

const MASTER_CF: &str = "\
pickup    unix n - n 60 1 pickup
cleanup   unix n - n -  0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n -  - trivial-rewrite
bounce    unix - - n -  0 bounce
defer     unix - - n -  0 bounce
trace     unix - - n -  0 bounce
verify    unix - - n -  1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -  - proxymap
showq     unix n - n -  - showq
error     unix - - n -  - error
retry     unix - - n -  - error
discard   unix - - n -  - discard
anvil     unix - - n -  1 anvil
scache    unix - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
";

pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
    conf: PathBuf,
}

/// The sender-binding lines of the shipped main.cf snippet.
fn snippet_lines() -> String {
    let snippet = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("postfix/main.cf.relaykey"))
        .expect("postfix/main.cf.relaykey");
    let lines: Vec<&str> = snippet
        .lines()
        .filter(|l| l.starts_with("smtpd_sender_login_maps ") || l.starts_with("relaykey_sender_binding "))
        .collect();
    assert_eq!(lines.len(), 2, "the snippet binds senders with two settings: {lines:?}");
    lines.join("\n") + "\n"
}

impl Postfix {
    /// An Env whose relaykey sockets live in this instance's `private/` (create it with
    /// [`Postfix::env`]), then started with [`Postfix::start`].
    pub fn env() -> (tempfile::TempDir, Env) {
        let dir = tempfile::Builder::new().prefix("rksend").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let private = dir.path().join("spool/private");
        std::fs::create_dir_all(&private).unwrap();
        // As Postfix keeps it: owned by postfix, 0700; relaykey (root here) binds inside.
        std::os::unix::fs::chown(&private, Some(postfix_uid()), None).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let env = Env::at(dir.path().join("relaykey"), private.join("relaykey-senders"), private.join("relaykey-auth"));
        (dir, env)
    }

    pub fn start(dir: tempfile::TempDir) -> Self {
        let t = dir.path().to_path_buf();
        let conf = t.join("etc");
        std::fs::create_dir_all(&conf).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {t}/spool
data_directory = {t}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = relaykey-senders-test
maillog_file = {t}/maillog
maillog_file_prefixes = {t}
myhostname = pftest.example
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.1/32
alias_maps =
alias_database =
default_transport = discard:
local_transport = discard:
relay_transport = discard:
smtpd_relay_restrictions = permit_sasl_authenticated, reject
smtpd_sasl_auth_enable = yes
smtpd_sasl_type = dovecot
smtpd_sasl_path = private/relaykey-auth
smtpd_tls_security_level = none
{snippet}",
            t = t.display(),
            snippet = snippet_lines(),
        );
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        std::fs::write(
            conf.join("master.cf"),
            format!(
                "127.0.0.1:{port} inet n - n - - smtpd -o smtpd_delay_reject=no -o smtpd_sender_restrictions=$relaykey_sender_binding\n{MASTER_CF}"
            ),
        )
        .unwrap();
        let pf = Self { dir, port, conf };
        assert!(pf.postfix(&["start"]), "postfix start failed; maillog:\n{}", pf.maillog());
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", pf.port)).is_ok() {
                return pf;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("postfix never listened on {}; maillog:\n{}", pf.port, pf.maillog());
    }

    fn postfix(&self, args: &[&str]) -> bool {
        Command::new("postfix")
            .arg("-c")
            .arg(&self.conf)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// One message with AUTH PLAIN as `user`, from `from` (`<>` for the null sender).
    /// Returns (swaks succeeded, transcript).
    pub fn send(&self, user: &str, password: &str, from: &str) -> (bool, String) {
        let out = Command::new("swaks")
            .args(["--server", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--auth", "PLAIN", "--auth-user", user, "--auth-password", password])
            .args(["--from", from, "--to", "rcpt@example.org", "--timeout", "30"])
            .stdin(Stdio::null())
            .output()
            .expect("run swaks");
        let transcript = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
        (out.status.success(), transcript)
    }
}

fn postfix_uid() -> u32 {
    let out = Command::new("id").args(["-u", "postfix"]).output().expect("run id");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postfix user")
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.postfix(&["stop"]);
    }
}

/// The reply to MAIL FROM in a swaks transcript (`250 2.1.0 Ok`, `553 5.7.1 …`).
pub fn mail_reply(transcript: &str) -> String {
    let mut lines = transcript.lines().skip_while(|l| !l.contains("-> MAIL FROM:"));
    lines.next();
    lines
        .find(|l| l.starts_with("<"))
        .map(|l| l.trim_start_matches(['<', '-', '*', ' ']).to_string())
        .unwrap_or_default()
}
