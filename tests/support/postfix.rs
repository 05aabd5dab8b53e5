//! A throwaway Postfix instance (`postfix -c DIR`) for end-to-end tests: its own config
//! directory, queue and loopback port, smtpd not chrooted, SASL through a Dovecot-protocol
//! socket, everything delivered to `discard:`. Stopped (`postfix -c DIR stop`) on drop.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
    conf: PathBuf,
}

/// Are the programs the test needs installed? Under CI=true their absence is a failure.
pub fn available(programs: &[&str]) -> bool {
    let missing: Vec<&str> = programs.iter().copied().filter(|p| which(p).is_none()).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("required peer programs missing under CI: {missing:?}");
    }
    eprintln!("skipping: {missing:?} not installed");
    false
}

pub fn which(program: &str) -> Option<PathBuf> {
    ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/bin", "/usr/local/sbin"]
        .iter()
        .map(|d| Path::new(d).join(program))
        .find(|p| p.exists())
}

/// A loopback port nobody listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

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

impl Postfix {
    /// Starts an instance whose smtpd (on a free loopback port) authenticates through the
    /// Dovecot-protocol socket at `sasl_socket` (an absolute path).
    pub fn start(sasl_socket: &Path) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-postfix").tempdir().unwrap();
        let t = dir.path();
        // The postfix user must be able to traverse the instance directory.
        std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = t.join("etc");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(t.join("spool")).unwrap();
        let port = free_port();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {t}/spool
data_directory = {t}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = relaykey-test
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
smtpd_sasl_path = {sock}
smtpd_tls_security_level = none
",
            t = t.display(),
            sock = sasl_socket.display()
        );
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        std::fs::write(conf.join("master.cf"), format!("127.0.0.1:{port} inet n - n - - smtpd\n{MASTER_CF}")).unwrap();
        let pf = Self { dir, port, conf };
        let status = pf.postfix(&["start"]);
        assert!(status, "postfix start failed; maillog:\n{}", pf.maillog());
        pf.wait_listening();
        pf
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

    fn wait_listening(&self) {
        for _ in 0..500 {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("postfix never listened on {}; maillog:\n{}", self.port, self.maillog());
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        self.postfix(&["stop"]);
    }
}

/// The outcome of one swaks run.
pub struct Swaks {
    pub ok: bool,
    pub transcript: String,
}

impl Swaks {
    /// The SMTP code the server gave to AUTH (235, 535, 454…), if it got that far.
    pub fn auth_code(&self) -> Option<u16> {
        let mut after_auth = false;
        for line in self.transcript.lines() {
            if line.contains("-> AUTH") {
                after_auth = true;
            } else if after_auth && line.starts_with("<") {
                let code = line.trim_start_matches(['<', '-', '~', '*', ' ']).get(..3)?;
                if code != "334" {
                    return code.parse().ok();
                }
            }
        }
        None
    }
}

/// Sends one message through `port` with AUTH `mech` (PLAIN or LOGIN), from `local_ip`.
pub fn swaks(port: u16, mech: &str, user: &str, password: &str, local_ip: &str) -> Swaks {
    let target =
        ["--server", "127.0.0.1", "--port", &port.to_string(), "--local-interface", local_ip].map(String::from);
    swaks_to(&target, mech, user, password)
}

/// Sends one message to the SMTP server named by swaks arguments `target` (`--server …` or
/// `--pipe CMD`) with AUTH `mech`.
pub fn swaks_to(target: &[String], mech: &str, user: &str, password: &str) -> Swaks {
    let out = Command::new("swaks")
        .args(target)
        .args(["--auth", mech, "--auth-user", user, "--auth-password", password])
        .args(["--from", "sender@example.com", "--to", "rcpt@example.org", "--timeout", "30"])
        .stdin(Stdio::null())
        .output()
        .expect("run swaks");
    let mut transcript = String::from_utf8_lossy(&out.stdout).into_owned();
    transcript.push_str(&String::from_utf8_lossy(&out.stderr));
    Swaks { ok: out.status.success(), transcript }
}
