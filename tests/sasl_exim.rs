//! Exim 4.96 (Debian's exim4-daemon-heavy, unpacked under /opt/relaykey-test/exim) as a second
//! real client: its `dovecot` authenticator reads the whole handshake before it writes, sends
//! VERSION minor 0, always `resp=` and id 1 on a fresh connection per login. Exim runs in
//! `-bh` mode (one SMTP session on stdin/stdout "as if from" an address), driven by swaks.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;

use support::daemon::sasl_only;
use support::peers::needs;
use support::smtp::{Swaks, swaks_auth as swaks_to};

fn exim_binary() -> Option<PathBuf> {
    let path = std::env::var_os("RELAYKEY_EXIM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/opt/relaykey-test/exim/usr/sbin/exim4"));
    // --version exits non-zero without a system config, but prints the version first.
    let runs = std::process::Command::new(&path)
        .arg("--version")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("Exim version"));
    let has_user =
        std::process::Command::new("getent").args(["passwd", "Debian-exim"]).status().is_ok_and(|s| s.success());
    let exim = format!("Exim running at {} (libraries, user Debian-exim)", path.display());
    needs().programs(&["swaks"]).condition(runs && has_user, &exim).met().then_some(path)
}

struct Exim {
    dir: tempfile::TempDir,
    binary: PathBuf,
}

impl Exim {
    fn new(binary: PathBuf, socket: &std::path::Path) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-exim").tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let spool = dir.path().join("spool");
        std::fs::create_dir(&spool).unwrap();
        // Exim receives as Debian-exim.
        std::fs::set_permissions(&spool, std::fs::Permissions::from_mode(0o1777)).unwrap();
        let mut conf = format!(
            "primary_hostname = exim.test\nspool_directory = {spool}\nlog_file_path = {d}/%slog\nkeep_environment =\n\
             acl_smtp_rcpt = acl_check_rcpt\nbegin acl\nacl_check_rcpt:\n  accept authenticated = *\n  \
             deny message = authentication required\nbegin authenticators\n",
            spool = spool.display(),
            d = dir.path().display()
        );
        for mech in ["PLAIN", "LOGIN"] {
            conf.push_str(&format!(
                "dovecot_{mech}:\n  driver = dovecot\n  public_name = {mech}\n  server_socket = {}\n  server_set_id = $auth1\n",
                socket.display()
            ));
        }
        std::fs::write(dir.path().join("exim.conf"), conf).unwrap();
        Self { dir, binary }
    }

    /// One SMTP session with Exim, as if from `ip`.
    fn session(&self, ip: &str, mech: &str, user: &str, pass: &str) -> Swaks {
        let cmd = format!("{} -C {} -bh {ip}", self.binary.display(), self.dir.path().join("exim.conf").display());
        swaks_to(&["--pipe".to_string(), cmd], mech, user, pass)
    }
}

#[test]
fn exim_dovecot_authenticator_talks_to_relaykey() {
    let Some(binary) = exim_binary() else { return };
    let rk = sasl_only("").start();
    let exim = Exim::new(binary, &rk.sasl_socket());
    let (pw, key) = rk.account_with_secrets("erin@example.com");

    for (mech, secret) in [("PLAIN", &pw), ("LOGIN", &pw), ("PLAIN", &key), ("LOGIN", &key)] {
        let s = exim.session("127.0.0.1", mech, "erin@example.com", secret);
        assert_eq!(s.auth_code(), Some(235), "{mech}:\n{}", s.transcript);
        assert!(s.transcript.contains("250 Accepted"), "{}", s.transcript);
    }
    let s = exim.session("127.0.0.1", "PLAIN", "erin@example.com", "wrong-password");
    assert_eq!(s.auth_code(), Some(535), "{}", s.transcript);
    let s = exim.session("127.0.0.1", "LOGIN", "erin@example.com", "wrong-password");
    assert_eq!(s.auth_code(), Some(535), "{}", s.transcript);

    // Exim passes the client address as rip=.
    let ops =
        rk.cli_json(&["smtp", "create", "erin@example.com", "--username", "ops@example.com", "--allow", "127.0.0.1"]);
    let ops_pw = ops["password"].as_str().unwrap();
    assert_eq!(exim.session("127.0.0.1", "PLAIN", "ops@example.com", ops_pw).auth_code(), Some(235));
    assert_eq!(exim.session("127.0.0.2", "PLAIN", "ops@example.com", ops_pw).auth_code(), Some(535));
}
