//! A throwaway Postfix instance (`postfix -c DIR`): its own config directory, queue, log file
//! and loopback smtpd port, not chrooted. The caller adds main.cf lines (where mail goes).
//! Stopped with `postfix -c DIR stop` on drop.
#![allow(dead_code)]

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

pub struct Postfix {
    pub dir: tempfile::TempDir,
    pub port: u16,
    conf: PathBuf,
}

const SERVICES: &str = "\
pickup    unix n - n 60 1 pickup
cleanup   unix n - n -  0 cleanup
qmgr      unix n - n 300 1 qmgr
tlsmgr    unix - - n 1000? 1 tlsmgr
rewrite   unix - - n -  - trivial-rewrite
bounce    unix - - n -  0 bounce
defer     unix - - n -  0 bounce
trace     unix - - n -  0 bounce
verify    unix - - n -  1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n -  - proxymap
smtp      unix - - n -  - smtp
relay     unix - - n -  - smtp
showq     unix n - n -  - showq
error     unix - - n -  - error
retry     unix - - n -  - error
discard   unix - - n -  - discard
anvil     unix - - n -  1 anvil
scache    unix - - n -  1 scache
postlog   unix-dgram n - n - 1 postlogd
";

impl Postfix {
    /// Starts an instance with smtpd on a free loopback port; `main_extra` is appended to main.cf.
    pub fn start(main_extra: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-postfix").tempdir().unwrap();
        let t = dir.path();
        // The postfix user must be able to reach its queue below the temp directory.
        std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
        let conf = t.join("etc");
        std::fs::create_dir_all(&conf).unwrap();
        std::fs::create_dir_all(t.join("spool")).unwrap();
        let port = super::harness::free_port();
        let main_cf = format!(
            "compatibility_level = 3.6
queue_directory = {t}/spool
data_directory = {t}/data
mail_owner = postfix
setgid_group = postdrop
syslog_name = relaykey-test
maillog_file = {t}/maillog
maillog_file_prefixes = {t}
myhostname = postfix.test
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
alias_maps =
alias_database =
smtpd_relay_restrictions = permit_mynetworks, reject
{main_extra}
",
            t = t.display()
        );
        std::fs::write(conf.join("main.cf"), main_cf).unwrap();
        std::fs::write(conf.join("master.cf"), format!("127.0.0.1:{port} inet n - n - - smtpd\n{SERVICES}")).unwrap();
        let pf = Self { dir, port, conf };
        let (ok, err) = pf.postfix(&["start"]);
        assert!(ok, "postfix start failed: {err}\nmaillog:\n{}", pf.maillog());
        super::harness::wait_listening(port, Duration::from_secs(30), "postfix");
        pf
    }

    fn postfix(&self, args: &[&str]) -> (bool, String) {
        match Command::new("postfix").arg("-c").arg(&self.conf).args(args).stdin(Stdio::null()).output() {
            Ok(out) => (out.status.success(), String::from_utf8_lossy(&out.stderr).into_owned()),
            Err(e) => (false, e.to_string()),
        }
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// Pids of this instance's processes (for RSS), from `ps` matched on the config directory.
    pub fn master_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.path().join("spool/pid/master.pid")).ok()?;
        pid.trim().parse().ok()
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        let _ = self.postfix(&["stop"]);
    }
}
