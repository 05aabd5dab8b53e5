//! `relaykey postfix check` against a throwaway Postfix configuration (`postconf -c DIR`; the
//! instance is never started): a good setup passes, and each misconfiguration is named.

mod ops_support;
mod support;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;

use ops_support::*;

const MASTER: &str = "\
smtp       inet  n       -       y       -       -       smtpd
submission inet  n       -       y       -       -       smtpd -o smtpd_sasl_auth_enable=yes
pickup     unix  n       -       y       60      1       pickup
";

fn good_main(spool: &Path) -> String {
    format!(
        "compatibility_level = 3.6\nqueue_directory = {}\nmail_owner = postfix\n\
         smtpd_sasl_type = dovecot\nsmtpd_sasl_path = private/relaykey-auth\nsmtpd_tls_auth_only = yes\n\
         P = unix:private/relaykey-policy\n\
         smtpd_client_restrictions = check_policy_service $P\n\
         smtpd_relay_restrictions = permit_mynetworks, check_policy_service {{ $P, timeout=10s }}, \
         permit_sasl_authenticated, reject\n\
         smtpd_sender_login_maps = socketmap:unix:private/relaykey-senders:senders\n\
         smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch\n",
        spool.display()
    )
}

struct Setup {
    dir: tempfile::TempDir,
    _listeners: Vec<UnixListener>,
}

impl Setup {
    /// A queue directory with Postfix's `private/` (0700 postfix) holding relaykey's sockets
    /// (0660, group postfix), as the packaged daemon leaves them.
    fn new() -> Self {
        let dir = open_tempdir();
        let private = dir.path().join("spool/private");
        std::fs::create_dir_all(&private).unwrap();
        let mut listeners = Vec::new();
        for name in ["relaykey-auth", "relaykey-policy", "relaykey-senders"] {
            let path = private.join(name);
            listeners.push(UnixListener::bind(&path).unwrap());
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o660)).unwrap();
            chown(&path, None, Some("postfix"));
        }
        chown(&private, Some("postfix"), None);
        std::fs::set_permissions(&private, std::fs::Permissions::from_mode(0o700)).unwrap();
        std::fs::write(
            dir.path().join("relaykey.toml"),
            format!(
                "database = \"{d}/relaykey.db\"\n[sasl]\nsocket = \"{d}/spool/private/relaykey-auth\"\n\
                 [policy]\nsocket = \"{d}/spool/private/relaykey-policy\"\n\
                 [senders]\nsocketmap = true\nsocket = \"{d}/spool/private/relaykey-senders\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        Self { dir, _listeners: listeners }
    }

    fn spool(&self) -> std::path::PathBuf {
        self.dir.path().join("spool")
    }

    /// Runs the check with `main` as main.cf; returns (exit code, stdout).
    fn check(&self, main: &str) -> (Option<i32>, String) {
        self.check_with(main, MASTER)
    }

    /// Runs the check with `main` as main.cf and `master` as master.cf.
    fn check_with(&self, main: &str, master: &str) -> (Option<i32>, String) {
        // A config directory per call, so that checks can run side by side.
        static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let etc = self.dir.path().join(format!("etc{n}"));
        std::fs::create_dir_all(&etc).unwrap();
        std::fs::write(etc.join("main.cf"), main).unwrap();
        std::fs::write(etc.join("master.cf"), master).unwrap();
        let out = Command::new(relaykey())
            .arg("--config")
            .arg(self.dir.path().join("relaykey.toml"))
            .args(["postfix", "check", "--config-dir"])
            .arg(&etc)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        (out.status.code(), format!("{stdout}{stderr}"))
    }
}

fn chown(path: &Path, user: Option<&str>, group: Option<&str>) {
    let spec = match (user, group) {
        (Some(u), Some(g)) => format!("{u}:{g}"),
        (Some(u), None) => u.to_string(),
        (None, Some(g)) => format!(":{g}"),
        (None, None) => return,
    };
    assert!(Command::new("chown").arg(spec).arg(path).status().unwrap().success());
}

fn available() -> bool {
    let postconf = Command::new("postconf").arg("-d").arg("mail_version").output().is_ok_and(|o| o.status.success());
    require(postconf && is_root(), "postconf and root (to give sockets to the postfix group)")
}

#[test]
fn a_good_setup_passes() {
    if !available() {
        return;
    }
    let setup = Setup::new();
    let (code, out) = setup.check(&good_main(&setup.spool()));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.starts_with("ok: "), "{out}");
}

#[test]
fn names_each_setting_that_keeps_postfix_away() {
    if !available() {
        return;
    }
    let setup = Setup::new();
    let good = good_main(&setup.spool());
    let absolute = format!("smtpd_sasl_path = {}/private/relaykey-auth", setup.spool().display());
    let cases = [
        ("smtpd_sasl_type = dovecot", "smtpd_sasl_type = cyrus", "smtpd_sasl_type is \"cyrus\""),
        ("smtpd_sasl_path = private/relaykey-auth", "smtpd_sasl_path = private/auth", "private/auth"),
        // An absolute path is looked up inside the chroot (the queue directory).
        ("smtpd_sasl_path = private/relaykey-auth", absolute.as_str(), "chrooted"),
        ("smtpd_tls_auth_only = yes", "smtpd_tls_auth_only = no", "smtpd_tls_auth_only is not yes"),
        ("smtpd_client_restrictions = check_policy_service $P", "", "missing from smtpd_client_restrictions"),
        ("check_policy_service { $P, timeout=10s }, ", "", "revoked login"),
        ("P = unix:private/relaykey-policy", "P = unix:private/policyd", "none of the smtpd restriction lists"),
    ];
    // postconf takes about a second per run here (it resolves the host's name): run side by side.
    std::thread::scope(|scope| {
        for (from, to, expect) in cases {
            let (setup, good) = (&setup, &good);
            scope.spawn(move || {
                let main = good.replace(from, to);
                assert_ne!(&main, good, "{from}");
                let (code, out) = setup.check(&main);
                assert_eq!(code, Some(1), "{to}: {out}");
                assert!(out.contains(expect), "{to}: expected {expect:?} in {out}");
                assert!(out.lines().any(|l| l.starts_with("problem: ")), "{out}");
            });
        }
    });
}

#[test]
fn names_a_socket_postfix_cannot_reach() {
    if !available() {
        return;
    }
    let setup = Setup::new();
    let good = good_main(&setup.spool());
    let auth = setup.spool().join("private/relaykey-auth");
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (code, out) = setup.check(&good);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("user postfix may not write to the socket"), "{out}");
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o660)).unwrap();

    let private = setup.spool().join("private");
    chown(&private, Some("root"), None);
    let (code, out) = setup.check(&good);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("user postfix cannot enter the directory"), "{out}");
    chown(&private, Some("postfix"), None);

    let policy = setup.spool().join("private/relaykey-policy");
    std::fs::remove_file(&policy).unwrap();
    let (code, out) = setup.check(&good);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("does not exist (is relaykey running?)"), "{out}");
}

#[test]
fn explains_sender_binding_and_names_what_breaks_it() {
    if !available() {
        return;
    }
    let setup = Setup::new();
    let main = good_main(&setup.spool());
    let (code, out) = setup.check(&main);
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("note: submission/inet: senders are bound: reject_authenticated_sender_login_mismatch"),
        "{out}"
    );
    for (from, to, expect) in [
        (
            "smtpd_sender_restrictions = reject_authenticated_sender_login_mismatch",
            "",
            "a login may send as any sender",
        ),
        (":senders\n", ":other\n", "sends the map name \"other\""),
        ("private/relaykey-senders", "private/relaykey-sender", "does not include relaykey's senders socketmap"),
    ] {
        let (code, out) = setup.check(&main.replace(from, to));
        assert_eq!(code, Some(1), "{to}: {out}");
        assert!(out.contains(expect), "{to}: {out}");
    }
}

#[test]
fn the_shipped_sidecar_snippets_pass() {
    if !available() {
        return;
    }
    let setup = Setup::new();
    let snippet =
        |name: &str| std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("postfix").join(name));
    let (Ok(main), Ok(master)) = (snippet("main.cf.relaykey"), snippet("master.cf.relaykey")) else {
        panic!("postfix/main.cf.relaykey and postfix/master.cf.relaykey are part of the repository");
    };
    let main = format!("compatibility_level = 3.6\nqueue_directory = {}\n{main}", setup.spool().display());
    let (code, out) = setup.check_with(&main, &master);
    assert_eq!(code, Some(0), "{out}");
    // And the check sees the snippets: without its SASL type they fail.
    let (code, out) = setup.check_with(&main.replace("smtpd_sasl_type = dovecot", ""), &master);
    assert_eq!(code, Some(1), "{out}");
    assert_eq!(out.matches("smtpd_sasl_type is \"cyrus\"").count(), 4, "one per service: {out}");
}
