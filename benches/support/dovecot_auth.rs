//! An auth-only Dovecot 2.3 (no mail protocols) for Postfix's `smtpd_sasl_type = dovecot`: a
//! passwd-file of argon2id PHC strings, auth_cache on (the warm path a busy host runs), its
//! client socket open to Postfix's smtpd. Stopped with `doveadm stop` on drop.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

pub struct DovecotAuth {
    config: PathBuf,
    run: PathBuf,
    pub socket: PathBuf,
}

impl DovecotAuth {
    /// Serves `users` as (username, argon2id PHC) out of `dir` (which the unprivileged auth
    /// process must be able to traverse).
    pub fn start(dir: &Path, users: &[(String, String)]) -> Self {
        let d = dir.join("dovecot");
        std::fs::create_dir_all(&d).expect("dovecot dir");
        let passwd = d.join("passwd");
        let lines: String = users.iter().map(|(name, phc)| format!("{name}:{{ARGON2ID}}{phc}\n")).collect();
        std::fs::write(&passwd, lines).expect("passwd-file");
        let socket = d.join("auth-client");
        let config = d.join("dovecot.conf");
        std::fs::write(
            &config,
            format!(
                "protocols =\nbase_dir = {d}/run\nstate_dir = {d}/state\nlog_path = {d}/dovecot.log\nssl = no\n\
                 listen = 127.0.0.1\nauth_mechanisms = plain login\nauth_cache_size = 10M\nauth_cache_ttl = 1 hour\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=ARGON2ID {passwd}\n}}\n\
                 userdb {{\n  driver = static\n  args = uid=nobody gid=nogroup home=/nonexistent\n}}\n\
                 service auth {{\n  unix_listener {socket} {{\n    mode = 0666\n  }}\n}}\n",
                d = d.display(),
                passwd = passwd.display(),
                socket = socket.display()
            ),
        )
        .expect("dovecot.conf");
        let status = Command::new("dovecot").arg("-c").arg(&config).status().expect("start dovecot");
        assert!(status.success(), "dovecot failed to start; see {}", d.join("dovecot.log").display());
        wait_socket(&socket);
        Self { config, run: d.join("run"), socket }
    }

    /// The master's pid (its children are the auth, config, log and anvil processes).
    pub fn master_pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.run.join("master.pid")).ok()?.trim().parse().ok()
    }
}

impl Drop for DovecotAuth {
    fn drop(&mut self) {
        let _ = Command::new("doveadm").arg("-c").arg(&self.config).arg("stop").status();
    }
}

fn wait_socket(path: &Path) {
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("nothing listens on {}", path.display());
}
