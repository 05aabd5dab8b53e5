//! The one throwaway Postfix (`postfix -c DIR`, recipe: reference/postfix-policy-protocol.md
//! §7.2): its own config directory, queue and log file, smtpd on free loopback ports and not
//! chrooted, every message discarded unless the test's main.cf says otherwise. The builder adds
//! a SASL socket (Dovecot protocol), a policy socket, a TLS certificate, relaykey's shipped
//! snippets, or any main.cf and master.cf text. Stopped with `postfix -c DIR stop` on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use super::ports::{free_port, wait_listening};

const REPO: &str = env!("CARGO_MANIFEST_DIR");

/// The services an instance needs besides its smtpd listeners (chroot column `n`).
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

/// An smtpd listener: its name (to look its port up), port, and master.cf text after the
/// service name (may continue on `-o` lines).
struct Listener {
    name: String,
    port: u16,
    rest: String,
}

/// A Postfix instance to be started; see the module documentation.
#[must_use]
pub struct PostfixBuilder {
    dir: tempfile::TempDir,
    main: Vec<(String, String)>,
    listeners: Vec<Listener>,
    master_extra: String,
}

/// Starts describing a throwaway Postfix.
pub fn postfix() -> PostfixBuilder {
    let dir = tempfile::Builder::new().prefix("rkpf").tempdir_in("/tmp").unwrap();
    let t = dir.path();
    // The postfix user must be able to traverse the instance directory.
    std::fs::set_permissions(t, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir(t.join("etc")).unwrap();
    // Postfix fills an empty queue directory at start, but will not create it.
    std::fs::create_dir(t.join("spool")).unwrap();
    let t = t.display();
    let base = format!(
        "compatibility_level = 3.6\nqueue_directory = {t}/spool\ndata_directory = {t}/data\nmail_owner = postfix\n\
         setgid_group = postdrop\nsyslog_name = relaykey-test\nmaillog_file = {t}/maillog\n\
         maillog_file_prefixes = {t}\nmyhostname = pftest.example\nmydestination =\ninet_interfaces = 127.0.0.1\n\
         inet_protocols = ipv4\nmynetworks = 127.0.0.0/8\nalias_maps =\nalias_database =\n\
         default_transport = discard:\nlocal_transport = discard:\nrelay_transport = discard:\n"
    );
    let builder = PostfixBuilder { dir, main: Vec::new(), listeners: Vec::new(), master_extra: String::new() };
    builder.main_cf(&base)
}

impl PostfixBuilder {
    /// main.cf settings; a setting given again replaces the earlier value (no "overriding
    /// earlier entry" warnings).
    pub fn main_cf(mut self, text: &str) -> Self {
        for (name, value) in settings(text) {
            match self.main.iter_mut().find(|(n, _)| *n == name) {
                Some(existing) => existing.1 = value,
                None => self.main.push((name, value)),
            }
        }
        self
    }

    /// Lines appended to master.cf as they are.
    pub fn master_cf(mut self, text: &str) -> Self {
        self.master_extra.push_str(text);
        self.master_extra.push('\n');
        self
    }

    /// An smtpd on a free loopback port, found again by `name`; `options` follow `smtpd` on its
    /// master.cf line (e.g. `-o smtpd_delay_reject=no`). Without any, the instance gets one
    /// plain smtpd named `smtp`.
    pub fn smtpd(self, name: &str, options: &str) -> Self {
        self.listener(name, &format!("inet n - n - - smtpd {options}"))
    }

    fn listener(mut self, name: &str, rest: &str) -> Self {
        self.listeners.push(Listener { name: name.to_string(), port: free_port(), rest: rest.to_string() });
        self
    }

    /// smtpd authenticates through the Dovecot-protocol socket at `path` (absolute).
    pub fn sasl_socket(self, path: &Path) -> Self {
        self.main_cf(&format!(
            "smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\nsmtpd_sasl_path = {}\n\
             smtpd_relay_restrictions = permit_sasl_authenticated, reject\n",
            path.display()
        ))
    }

    /// Mail goes on to `relayhost` (e.g. `[127.0.0.1]:2525`) instead of being discarded, and
    /// clients on `mynetworks` (loopback) may relay.
    pub fn relayhost(self, relayhost: &str) -> Self {
        self.main_cf(&format!(
            "relayhost = {relayhost}\ndefault_transport = smtp\nrelay_transport = relay\n\
             smtpd_relay_restrictions = permit_mynetworks, reject\n"
        ))
    }

    /// smtpd asks the policy service at `path` (absolute) at connect, at each recipient, at
    /// DATA and at the end of the message (reference §7.2).
    pub fn policy_socket(self, path: &Path) -> Self {
        self.main_cf(&format!(
            "P = unix:{}\nsmtpd_client_restrictions = check_policy_service $P\n\
             smtpd_recipient_restrictions = check_policy_service $P\nsmtpd_data_restrictions = check_policy_service $P\n\
             smtpd_end_of_data_restrictions = check_policy_service $P\n",
            path.display()
        ))
    }

    /// smtpd offers TLS with a certificate made for the test (`tls/cert.pem`, `tls/key.pem`).
    pub fn tls(self) -> Self {
        let tls = self.dir.path().join("tls");
        std::fs::create_dir_all(&tls).unwrap();
        let cert = rcgen::generate_simple_self_signed(vec!["pftest.example".into()]).unwrap();
        let (key_pem, cert_pem) = (tls.join("key.pem"), tls.join("cert.pem"));
        std::fs::write(&key_pem, cert.signing_key.serialize_pem()).unwrap();
        std::fs::write(&cert_pem, cert.cert.pem()).unwrap();
        self.main_cf(&format!("smtpd_tls_chain_files = {}, {}\n", key_pem.display(), cert_pem.display()))
    }

    /// relaykey's shipped `postfix/main.cf.relaykey` and `postfix/master.cf.relaykey` as they
    /// are, except that each service name becomes a free loopback port (the service name stays
    /// the listener's name). Their sockets are at [`PostfixBuilder::private_dir`]
    /// `/relaykey-{auth,policy}`; that directory exists (0700, postfix) before Postfix starts.
    pub fn relaykey_snippets(mut self) -> Self {
        let private = self.private_dir();
        std::fs::create_dir_all(&private).unwrap();
        std::os::unix::fs::chown(&private, Some(postfix_uid()), None).unwrap();
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        let snippet = |name: &str| std::fs::read_to_string(Path::new(REPO).join("postfix").join(name)).unwrap();
        self = self.main_cf(&snippet("main.cf.relaykey"));
        for line in snippet("master.cf.relaykey").lines() {
            if line.trim().is_empty() || line.starts_with('#') {
                continue;
            }
            match self.listeners.last_mut() {
                // A continuation line belongs to the service above it.
                Some(last) if line.starts_with(char::is_whitespace) => {
                    last.rest.push('\n');
                    last.rest.push_str(line);
                }
                _ => {
                    let name = line.split_whitespace().next().unwrap_or_default().to_string();
                    self = self.listener(&name, line[name.len()..].trim_start());
                }
            }
        }
        self
    }

    /// `$queue_directory/private`, where relaykey's sockets go for the shipped snippets.
    pub fn private_dir(&self) -> PathBuf {
        self.dir.path().join("spool/private")
    }

    /// Writes the configuration, runs `postfix start` and waits until every smtpd listens.
    pub fn start(mut self) -> Postfix {
        if self.listeners.is_empty() {
            self = self.smtpd("smtp", "");
        }
        let etc = self.dir.path().join("etc");
        let main: String = self.main.iter().map(|(n, v)| format!("{n} = {v}\n")).collect();
        std::fs::write(etc.join("main.cf"), main).unwrap();
        let mut master = String::from(SERVICES);
        for l in &self.listeners {
            master.push_str(&format!("127.0.0.1:{} {}\n", l.port, l.rest));
        }
        master.push_str(&self.master_extra);
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let ports = self.listeners.iter().map(|l| (l.name.clone(), l.port)).collect();
        let mut pf = Postfix { dir: self.dir, ports, started: false };
        let status = pf.postfix(&["start"]);
        pf.started = true;
        assert!(status, "postfix start failed; maillog:\n{}", pf.maillog());
        for (name, port) in &pf.ports {
            wait_listening(*port, &format!("postfix {name}"));
        }
        pf
    }
}

/// `name = value` settings of main.cf text; continuation lines (leading white space) join
/// their setting, comment lines (first non-blank `#`) are dropped.
fn settings(text: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.starts_with(char::is_whitespace) {
            let last = out.last_mut().unwrap_or_else(|| panic!("continuation without a setting: {line:?}"));
            last.1.push(' ');
            last.1.push_str(trimmed);
            continue;
        }
        let (name, value) = line.split_once('=').unwrap_or_else(|| panic!("not a main.cf setting: {line:?}"));
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    out
}

fn postfix_uid() -> u32 {
    let out = Command::new("id").args(["-u", "postfix"]).output().expect("id -u postfix");
    String::from_utf8_lossy(&out.stdout).trim().parse().expect("a postfix user")
}

/// A running throwaway Postfix.
pub struct Postfix {
    pub dir: tempfile::TempDir,
    ports: Vec<(String, u16)>,
    started: bool,
}

impl Postfix {
    /// The port of the first smtpd (the only one, unless the builder added several).
    pub fn port(&self) -> u16 {
        self.ports[0].1
    }

    /// The port of the smtpd named `name`.
    pub fn port_of(&self, name: &str) -> u16 {
        self.ports.iter().find(|(n, _)| n == name).unwrap_or_else(|| panic!("no smtpd named {name:?}")).1
    }

    /// The names of the smtpd listeners, in master.cf order.
    pub fn listener_names(&self) -> Vec<&str> {
        self.ports.iter().map(|(n, _)| n.as_str()).collect()
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    pub fn private_dir(&self) -> PathBuf {
        self.dir.path().join("spool/private")
    }

    pub fn maillog(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("maillog")).unwrap_or_default()
    }

    /// The master process's pid (for RSS measurements).
    pub fn master_pid(&self) -> Option<u32> {
        let pid = std::fs::read_to_string(self.dir.path().join("spool/pid/master.pid")).ok()?;
        pid.trim().parse().ok()
    }

    /// Runs `postfix -c DIR ARGS`. Postfix prints its errors only to a terminal: on failure the
    /// maillog says why.
    fn postfix(&self, args: &[&str]) -> bool {
        Command::new("postfix")
            .arg("-c")
            .arg(self.dir.path().join("etc"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Postfix {
    fn drop(&mut self) {
        if self.started {
            self.postfix(&["stop"]);
        }
        if std::thread::panicking() {
            eprintln!("--- maillog ---\n{}", self.maillog());
        }
    }
}
