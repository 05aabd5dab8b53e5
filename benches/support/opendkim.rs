//! OpenDKIM as a signing milter, the way a small Postfix host runs it: its own keys (RSA-2048
//! and Ed25519 from `openssl genpkey`), relaxed/relaxed, the header fields relaykey signs and
//! oversigns signed and oversigned here too, one KeyTable/SigningTable entry per key.
//!
//! Debian 12's OpenDKIM (2.11.0~beta2) signs with one algorithm per process, the global
//! `SignatureAlgorithm` (a key of another type fails with "EVP_PKEY_get1_RSA() failed"; a
//! per-key algorithm came upstream only in 2024, PR #202). So a host that signs with both runs
//! one instance per algorithm and lists both in `smtpd_milters`; this does the same.
//!
//! Each instance runs in the foreground out of a private directory (0700; `RequireSafeKeys no`
//! only because it lies under the world-writable /tmp, which OpenDKIM would otherwise refuse)
//! and listens on a unix socket next to it, as Debian's package does (`local:` socket; over
//! loopback TCP the milter dialog's small writes can stall on delayed ACKs, which would charge
//! Postfix for a setup detail); killed on drop.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};

use base64::Engine;
use relaykey::dkim::Algorithm;

use std::time::Duration;

/// (selector, `openssl genpkey` arguments, DNS `k=`, `SignatureAlgorithm`).
fn params(algorithm: Algorithm) -> (&'static str, &'static [&'static str], &'static str, &'static str) {
    match algorithm {
        Algorithm::Rsa => ("odrsa", &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"], "rsa", "rsa-sha256"),
        Algorithm::Ed25519 => ("oded", &["-algorithm", "ED25519"], "ed25519", "ed25519-sha256"),
    }
}

/// relaykey's signed set (RFC 6376 §5.4.1 plus the MIME fields). OpenDKIM's default set lacks
/// Message-ID and the MIME fields, and oversigning a field it does not sign breaks the
/// signature whenever that field is present.
const SIGN_HEADERS: &str = "From,Reply-To,Subject,Date,To,Cc,Message-ID,In-Reply-To,References,MIME-Version,\
    Content-Type,Content-Transfer-Encoding,Content-Disposition,Content-ID,Content-Description,Sender,Resent-Date,\
    Resent-From,Resent-Sender,Resent-To,Resent-Cc,Resent-Message-ID,List-Id,List-Help,List-Unsubscribe,\
    List-Unsubscribe-Post,List-Subscribe,List-Post,List-Owner,List-Archive";
/// relaykey's oversigned set.
const OVERSIGN_HEADERS: &str =
    "From,Reply-To,Subject,Date,To,Cc,Message-ID,MIME-Version,Content-Type,Content-Transfer-Encoding";

/// One OpenDKIM process per algorithm.
pub struct OpenDkim {
    children: Vec<Child>,
    /// The milter sockets, in the order the algorithms were given.
    pub sockets: Vec<std::path::PathBuf>,
    /// (`selector._domainkey.domain`, TXT value) of each key, for a verifier.
    pub records: Vec<(String, String)>,
    dir: tempfile::TempDir,
}

impl OpenDkim {
    pub fn start(domain: &str, algorithms: &[Algorithm]) -> Self {
        let dir = tempfile::Builder::new().prefix("relaykey-opendkim").tempdir().expect("tempdir");
        // Postfix's smtpd (user postfix) reaches the sockets in here; the keys are a level down.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let mut me = Self { children: Vec::new(), sockets: Vec::new(), records: Vec::new(), dir };
        for &algorithm in algorithms {
            let (socket, record) = me.start_one(domain, algorithm);
            me.sockets.push(socket);
            me.records.push(record);
        }
        me
    }

    fn start_one(&mut self, domain: &str, algorithm: Algorithm) -> (std::path::PathBuf, (String, String)) {
        let (selector, genpkey, k, signalg) = params(algorithm);
        let d = self.dir.path().join(selector);
        std::fs::create_dir(&d).expect("instance dir");
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let socket = self.dir.path().join(format!("{selector}.sock"));
        let key = d.join("key.pem");
        openssl(&[&["genpkey"], genpkey, &["-out", &key.display().to_string()]].concat());
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod key");
        let name = format!("{selector}._domainkey.{domain}");
        std::fs::write(d.join("KeyTable"), format!("{name} {domain}:{selector}:{}\n", key.display()))
            .expect("KeyTable");
        std::fs::write(d.join("SigningTable"), format!("*@{domain} {name}\n")).expect("SigningTable");
        let conf = d.join("opendkim.conf");
        std::fs::write(
            &conf,
            format!(
                "Mode s\nCanonicalization relaxed/relaxed\nSignatureAlgorithm {signalg}\nKeyTable file:{d}/KeyTable\n\
                 SigningTable refile:{d}/SigningTable\nSocket local:{socket}\nInternalHosts 127.0.0.1\n\
                 Syslog no\nRequireSafeKeys no\nUMask 000\nPidFile {d}/opendkim.pid\n\
                 SignHeaders {SIGN_HEADERS}\nOversignHeaders {OVERSIGN_HEADERS}\n",
                d = d.display(),
                socket = socket.display(),
            ),
        )
        .expect("opendkim.conf");
        let child = Command::new("opendkim")
            .args(["-f", "-x"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start opendkim");
        self.children.push(child);
        wait_socket(&socket);
        (socket, (name, format!("v=DKIM1; k={k}; p={}", public_key(&key, k))))
    }

    pub fn pids(&self) -> Vec<u32> {
        self.children.iter().map(Child::id).collect()
    }

    /// `smtpd_milters` naming every instance.
    pub fn milters(&self) -> String {
        self.sockets.iter().map(|s| format!("unix:{}", s.display())).collect::<Vec<_>>().join(", ")
    }
}

impl Drop for OpenDkim {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn wait_socket(path: &Path) {
    for _ in 0..500 {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("opendkim does not listen on {}", path.display());
}

fn openssl(args: &[&str]) -> Vec<u8> {
    let out = Command::new("openssl").args(args).output().expect("run openssl");
    assert!(out.status.success(), "openssl {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// The `p=` value: the SubjectPublicKeyInfo DER for RSA (the form OpenDKIM itself reads), the
/// raw 32-byte key for Ed25519 (RFC 8463), both base64.
fn public_key(key: &Path, k: &str) -> String {
    let der = openssl(&["pkey", "-in", &key.display().to_string(), "-pubout", "-outform", "DER"]);
    let raw = if k == "ed25519" { &der[der.len() - 32..] } else { &der[..] };
    base64::engine::general_purpose::STANDARD.encode(raw)
}
