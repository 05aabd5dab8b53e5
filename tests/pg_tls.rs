//! TLS to PostgreSQL, with rustls on ring: a server that accepts only TLS connections
//! (`hostssl` in pg_hba.conf) on 127.0.0.1, with a certificate for `localhost`.
//! `sslmode=require` connects (encrypted, unverified, as in libpq); `verify-full` connects with
//! the right `[postgresql] ca_file` and refuses another CA's or another host name's; without
//! TLS (`sslmode=disable`) the server refuses the connection, which proves the others used it.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use support::daemon::{cli_output, serve};
use support::peers;
use support::ports::free_port;
use support::postgres::{BIN_DIR, needs_postgres};

/// A cluster of this test alone, listening on 127.0.0.1 with TLS only; stopped on drop.
struct TlsServer {
    dir: tempfile::TempDir,
    port: u16,
}

fn as_postgres(program: &str) -> Command {
    let mut cmd = Command::new("runuser");
    cmd.args(["-u", "postgres", "--", &format!("{BIN_DIR}/{program}")]);
    cmd.stdin(Stdio::null());
    cmd
}

fn give_to_postgres(path: &Path) {
    let ok = Command::new("chown").args(["-R", "postgres:"]).arg(path).status().unwrap().success();
    assert!(ok, "chown {}", path.display());
}

impl TlsServer {
    fn start(cert_pem: &str, key_pem: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        give_to_postgres(dir.path());
        let data = dir.path().join("data");
        let out = as_postgres("initdb")
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap();
        assert!(out.status.success(), "initdb: {}", String::from_utf8_lossy(&out.stderr));
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all relaykey 127.0.0.1/32 scram-sha-256\nhostssl all all 127.0.0.1/32 trust\n",
        )
        .unwrap();
        std::fs::write(data.join("server.crt"), cert_pem).unwrap();
        std::fs::write(data.join("server.key"), key_pem).unwrap();
        std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
        give_to_postgres(&data);
        let port = free_port();
        let options =
            format!("-c listen_addresses=127.0.0.1 -p {port} -k {} -c ssl=on -c fsync=off", dir.path().display());
        let log = dir.path().join("log");
        let out = as_postgres("pg_ctl")
            .arg("-D")
            .arg(&data)
            .arg("-l")
            .arg(&log)
            .args(["-w", "-t", "120", "-o", &options, "start"])
            .output()
            .unwrap();
        let server = Self { dir, port };
        assert!(out.status.success(), "pg_ctl start: {}", std::fs::read_to_string(&log).unwrap_or_default());
        let out = as_postgres("psql")
            .arg("-h")
            .arg(server.dir.path())
            .args(["-p", &port.to_string(), "-U", "postgres"])
            .args(["-c", "CREATE ROLE relaykey LOGIN PASSWORD 'pg-secret'", "-c", "CREATE DATABASE relaykey"])
            .args(["-c", "CREATE DATABASE owned OWNER relaykey"])
            .output()
            .unwrap();
        assert!(out.status.success(), "createdb: {}", String::from_utf8_lossy(&out.stderr));
        server
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        let _ = as_postgres("pg_ctl")
            .arg("-D")
            .arg(self.dir.path().join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

fn config(dir: &Path, name: &str, url: &str, ca_file: Option<&Path>) -> PathBuf {
    config_with(dir, name, url, ca_file, None)
}

fn config_with(dir: &Path, name: &str, url: &str, ca_file: Option<&Path>, password_file: Option<&Path>) -> PathBuf {
    let mut text =
        format!("database = {url:?}\n[auth]\nargon2_memory_kib = 256\nargon2_iterations = 1\n[postgresql]\n");
    if let Some(ca) = ca_file {
        text.push_str(&format!("ca_file = {:?}\n", ca.display().to_string()));
    }
    if let Some(pw) = password_file {
        text.push_str(&format!("password_file = {:?}\n", pw.display().to_string()));
    }
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn tls_modes_connect_verify_and_refuse_as_configured() {
    if !needs_postgres() || !peers::needs().programs(&["chown"]).met() {
        return;
    }
    let server_cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let other_cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let server = TlsServer::start(&server_cert.cert.pem(), &server_cert.signing_key.serialize_pem());
    let work = tempfile::tempdir().unwrap();
    let (right_ca, wrong_ca) = (work.path().join("right.pem"), work.path().join("wrong.pem"));
    std::fs::write(&right_ca, server_cert.cert.pem()).unwrap();
    std::fs::write(&wrong_ca, other_cert.cert.pem()).unwrap();
    let url = |host: &str, mode: &str| format!("postgresql://postgres@{host}:{}/relaykey?sslmode={mode}", server.port);

    let cases: [(&str, String, Option<&Path>, bool); 6] = [
        ("no TLS: the server accepts TLS only", url("localhost", "disable"), None, false),
        ("require: encrypted, unverified", url("localhost", "require"), None, true),
        ("prefer: TLS when offered", url("localhost", "prefer"), None, true),
        ("verify-full with the server's CA", url("localhost", "verify-full"), Some(&right_ca), true),
        ("verify-full with another CA", url("localhost", "verify-full"), Some(&wrong_ca), false),
        ("verify-full with another host name", url("127.0.0.1", "verify-full"), Some(&right_ca), false),
    ];
    for (i, (what, url, ca, connects)) in cases.iter().enumerate() {
        let config = config(work.path(), &format!("{i}.toml"), url, *ca);
        let out = cli_output(&config, &["account", "list"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        if *connects {
            assert!(out.status.success(), "{what}: {stderr}");
        } else {
            // A connection that cannot be made is a temporary failure (sysexits' TEMPFAIL),
            // said on one line.
            assert_eq!(out.status.code(), Some(75), "{what}: {stderr}");
            assert_eq!(stderr.lines().count(), 1, "{what}: {stderr}");
        }
    }
    let config = config(work.path(), "write.toml", &url("localhost", "verify-full"), Some(&right_ca));
    assert!(cli_output(&config, &["account", "add", "ann@example.com"]).status.success());
    let listed = cli_output(&config, &["account", "list"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("ann@example.com"));

    // A role with a password (SCRAM), no superuser, owning its database (relaykey creates its
    // tables and the trusted citext extension there): the password comes from password_file.
    let (right_pw, wrong_pw) = (work.path().join("pw"), work.path().join("wrong-pw"));
    std::fs::write(&right_pw, "pg-secret\n").unwrap();
    std::fs::write(&wrong_pw, "not-it\n").unwrap();
    let as_role = format!("postgresql://relaykey@localhost:{}/owned?sslmode=verify-full", server.port);
    let config = config_with(work.path(), "role.toml", &as_role, Some(&right_ca), Some(&right_pw));
    let out = cli_output(&config, &["account", "add", "bob@example.org"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = config_with(work.path(), "wrong.toml", &as_role, Some(&right_ca), Some(&wrong_pw));
    let out = cli_output(&config, &["account", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("password authentication failed"), "{stderr}");
    assert!(!stderr.contains("not-it"), "the password never appears: {stderr}");

    // Nor does a password written into the URL itself.
    let inline = format!("postgresql://relaykey:url-secret@localhost:{}/owned?sslmode=verify-full", server.port);
    let config = config_with(work.path(), "inline.toml", &inline, Some(&right_ca), None);
    let out = cli_output(&config, &["account", "list"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("password authentication failed"), "{stderr}");
    assert!(!stderr.contains("url-secret") && stderr.contains("relaykey:***@"), "{stderr}");

    // The daemon with that URL: the server answered, so this is a config error, not an outage
    // to wait out. It exits at once, and says why without the password.
    let ca = toml::Value::String(right_ca.display().to_string());
    let mut daemon = serve().database(&inline).toml(&format!("[postgresql]\nca_file = {ca}\n")).spawn();
    let status = daemon.wait_exit();
    let log = daemon.log();
    assert!(!status.success(), "{log}");
    assert!(log.contains("password authentication failed") && !log.contains("url-secret"), "{log}");
    assert!(!log.contains("waiting for it"), "{log}");
}
