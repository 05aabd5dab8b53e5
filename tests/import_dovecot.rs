//! Issue 15, switching from Dovecot: `relaykey import dovecot-passwd` over the CLI binary, the
//! imported hashes verified in their own scheme and rehashed to argon2id at the first login
//! (over the SASL socket, and end to end through a real Postfix with hashes made by Dovecot's
//! own `doveadm pw`), and the refusals that leave the other users imported.

mod api_common;
#[path = "support/sasl_client.rs"]
mod sasl_client;
#[path = "support/sasl_fixture.rs"]
mod sasl_fixture;
mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use relaykey::address::EmailAddress;
use relaykey::auth::mechanism::Credentials;
use relaykey::auth::{Decision, FrontEnd, Login, LoginMechanism, Presented, Purpose};
use relaykey::model::Permission;
use relaykey::sasl::codec::Reply;
use relaykey::secret::{HashParams, Secret};
use relaykey::store::ImportedCredential;
use sasl_client::Client;
use serde_json::Value;
use support::daemon::{cli_output, sasl_only};
use support::peers::needs;
use support::postfix::postfix;
use support::smtp::swaks_login;

/// Made with Dovecot 2.3's `doveadm pw -s SCHEME -p 'correct horse'`.
const BCRYPT: &str = "{BLF-CRYPT}$2y$05$r6Rt3bDKSM0lDhH9JB7wQeu4G.vQecrsLIh2rfj17IMe4mgwcHMSG";
const SHA512_CRYPT: &str = "{SHA512-CRYPT}$6$rounds=6000$0qyC5pyo29WEAlqf$Ea.Gu2E5/qx2s9jY3tOr281ldSCMyiDBshE7oTmfYmBjBQtc816VH.4iL7/az4xe4AqpPzXn71sMVuUM6Ig8J/";
const MD5_CRYPT: &str = "{MD5-CRYPT}$1$zH.E.V.O$Z9Rqvzy4UbZTVW8BtLzbo0";
const PASSWORD: &str = "correct horse";

/// The exit status of an import that refused some users and imported the rest.
const SOME_REFUSED: i32 = 3;

/// A config (cheap argon2) and a store in a fresh directory, for the CLI.
struct Env {
    dir: tempfile::TempDir,
}

impl Env {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("relaykey.db");
        let config = format!(
            "database = {:?}\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n",
            db.display().to_string()
        );
        std::fs::write(dir.path().join("relaykey.toml"), config).unwrap();
        Self { dir }
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("relaykey.toml")
    }

    fn db(&self) -> PathBuf {
        self.dir.path().join("relaykey.db")
    }

    fn file(&self, name: &str, text: &str) -> PathBuf {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    fn run(&self, args: &[&str]) -> Output {
        cli_output(&self.config(), args)
    }

    fn ok(&self, args: &[&str]) -> Value {
        let mut all = vec!["--json"];
        all.extend_from_slice(args);
        let out = self.run(&all);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// `import dovecot-passwd FILE ARGS... --json`: (exit code, report).
    fn import(&self, file: &Path, args: &[&str]) -> (i32, Value) {
        import_with(&self.config(), file, args)
    }
}

fn import_with(config: &Path, file: &Path, args: &[&str]) -> (i32, Value) {
    let file = file.to_str().unwrap();
    let mut all = vec!["--json", "import", "dovecot-passwd", file];
    all.extend_from_slice(args);
    let out = cli_output(config, &all);
    let report = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!("{e}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    });
    (out.status.code().unwrap_or(-1), report)
}

/// Every SMTP credential row, in id order: what "changes nothing" compares.
fn credential_rows(db: &Path) -> Vec<(i64, i64, String, String, String)> {
    let conn = rusqlite::Connection::open(db).unwrap();
    let mut stmt =
        conn.prepare("SELECT id, account_id, username, last5, hash FROM smtp_credentials ORDER BY id").unwrap();
    stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn account_count(db: &Path) -> i64 {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT count(*) FROM accounts", [], |r| r.get(0)).unwrap()
}

fn stored(db: &Path, username: &str) -> (String, String) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.query_row("SELECT hash, last5 FROM smtp_credentials WHERE username = ?1", [username], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .unwrap()
}

/// Waits (bounded; the rehash runs after the reply) until `username`'s stored hash is argon2id.
fn wait_for_rehash(db: &Path, username: &str) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (hash, last5) = stored(db, username);
        if hash.starts_with("$argon2id$") || Instant::now() > deadline {
            return (hash, last5);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn outcomes(report: &Value) -> Vec<(u64, String, String)> {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["line"].as_u64().unwrap(),
                u["username"].as_str().unwrap_or("-").to_string(),
                u["outcome"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

fn reason_of(report: &Value, line: u64) -> &str {
    report["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["line"] == line)
        .and_then(|u| u["reason"].as_str())
        .unwrap_or("")
}

/// The refusals: a weak scheme without --allow-weak, a malformed line, a 16th credential for
/// one account and a username another account holds, each on its own line; the others in the
/// same file are imported; exit status 3. Importing the file again imports nothing and
/// changes nothing.
#[test]
fn refusals_are_reported_per_user_and_the_rest_go_on() {
    let env = Env::new();
    env.ok(&["account", "add", "team@example.com"]);
    env.ok(&["account", "add", "other@example.com"]);
    env.ok(&["smtp", "create", "other@example.com", "--username", "taken@example.com"]);

    let mut text = String::from("# migrated from mail1\n");
    for i in 1..=15 {
        text.push_str(&format!("u{i}@example.com:{BCRYPT}:5000:5000::/var/mail/u{i}::\n"));
    }
    text.push_str(&format!("u16@example.com:{BCRYPT}\n")); // line 17: the 16th of the account
    text.push_str(&format!("weak@example.com:{MD5_CRYPT}\n")); // 18
    text.push_str("broken@example.com\n"); // 19: no password field
    text.push_str("taken@example.com:{PLAIN}secret-one\n"); // 20
    let file = env.file("users", &text);

    let (code, report) = env.import(&file, &["--account", "team@example.com"]);
    assert_eq!(code, SOME_REFUSED, "{report}");
    assert_eq!(
        (report["imported"].as_u64(), report["skipped"].as_u64(), report["refused"].as_u64()),
        (Some(15), Some(0), Some(4))
    );
    let refused: Vec<_> = outcomes(&report).into_iter().filter(|(_, _, o)| o == "refused").collect();
    assert_eq!(
        refused,
        [
            (17, "u16@example.com".into(), "refused".into()),
            (18, "weak@example.com".into(), "refused".into()),
            (19, "broken@example.com".into(), "refused".into()),
            (20, "taken@example.com".into(), "refused".into()),
        ]
    );
    assert!(reason_of(&report, 17).contains("maximum"), "{report}");
    assert!(reason_of(&report, 18).contains("weak password scheme MD5-CRYPT"), "{report}");
    assert!(reason_of(&report, 19).contains("malformed line"), "{report}");
    assert!(reason_of(&report, 20).contains("already used"), "{report}");

    let listed = env.ok(&["smtp", "list", "team@example.com"]);
    let listed = listed.as_array().unwrap();
    assert_eq!(listed.len(), 15);
    for cred in listed {
        assert_eq!(
            (cred["imported"].as_bool(), cred["last5"].as_str(), cred["masked"].as_str()),
            (Some(true), Some(""), Some("*****"))
        );
    }
    let other = env.ok(&["smtp", "list", "other@example.com"]);
    assert_eq!(other[0]["username"], "taken@example.com");
    assert!(other[0].get("imported").is_none(), "an ordinary credential's object is as before: {other}");

    // The text report: one line per user, the summary last.
    let before = credential_rows(&env.db());
    let out = env.run(&["import", "dovecot-passwd", file.to_str().unwrap(), "--account", "team@example.com"]);
    assert_eq!(out.status.code(), Some(SOME_REFUSED));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line 2: u1@example.com: skipped: already present"), "{text}");
    assert!(text.contains("line 18: weak@example.com: refused: weak password scheme MD5-CRYPT"), "{text}");
    assert!(text.trim_end().ends_with("imported 0, skipped 15, refused 4"), "{text}");
    assert_eq!(credential_rows(&env.db()), before, "a second import changes nothing");

    // Without the refused lines, the second run is a clean no-op: exit 0.
    let clean: String = text_lines(&std::fs::read_to_string(&file).unwrap(), 1..=16);
    let (code, report) = env.import(&env.file("clean", &clean), &["--account", "team@example.com"]);
    assert_eq!((code, report["imported"].as_u64(), report["skipped"].as_u64()), (0, Some(0), Some(15)));
    assert_eq!(credential_rows(&env.db()), before);
}

fn text_lines(text: &str, keep: std::ops::RangeInclusive<usize>) -> String {
    text.lines().enumerate().filter(|(i, _)| keep.contains(&(i + 1))).map(|(_, l)| format!("{l}\n")).collect()
}

/// An account per user address by default (created if missing); `--dry-run` reports the same
/// and writes nothing; an unknown `--account` is refused before anything is done.
#[test]
fn accounts_per_user_and_dry_run_writes_nothing() {
    let env = Env::new();
    let file = env.file("users", &format!("ann@example.com:{BCRYPT}\nben@example.org:{{PLAIN}}{PASSWORD}\n"));
    let (code, dry) = env.import(&file, &["--dry-run"]);
    assert_eq!((code, dry["dry_run"].as_bool(), dry["imported"].as_u64()), (0, Some(true), Some(2)), "{dry}");
    assert_eq!((account_count(&env.db()), credential_rows(&env.db()).len()), (0, 0), "a dry run writes nothing");

    let (code, report) = env.import(&file, &[]);
    assert_eq!((code, report["imported"].as_u64()), (0, Some(2)), "{report}");
    assert_eq!(report["users"][0]["account"], "ann@example.com");
    assert_eq!(report["users"][0]["imported"], true, "kept as BLF-CRYPT until the first login");
    assert_eq!(report["users"][1]["imported"], false, "PLAIN is hashed now");
    assert_eq!(account_count(&env.db()), 2);
    // A PLAIN password is an ordinary argon2id credential at once, with its last 5.
    let ben = env.ok(&["smtp", "list", "ben@example.org"]);
    assert_eq!((ben[0]["last5"].as_str(), ben[0].get("imported")), (Some("horse"), None));
    assert!(stored(&env.db(), "ben@example.org").0.starts_with("$argon2id$"));

    let out = env.run(&["import", "dovecot-passwd", file.to_str().unwrap(), "--account", "nobody@example.com"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown account nobody@example.com"));
}

/// Over the SASL socket (fast, no Postfix): imported bcrypt and SHA512-crypt hashes and, with
/// --allow-weak, an MD5-crypt hash verify with the original password; a wrong one fails before and after; the
/// first login rehashes to the configured argon2id and fills in the last 5, and the session
/// logged in with the imported hash is not taken for revoked by the policy re-check.
#[tokio::test]
async fn an_imported_hash_verifies_and_is_rehashed_at_the_first_login_over_the_sasl_socket() {
    let fx = sasl_fixture::start(|_| {}).await;
    let db = fx.dir.path().join("relaykey.db");
    let config = fx.dir.path().join("relaykey.toml");
    let toml =
        format!("database = {:?}\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n", db.display().to_string());
    std::fs::write(&config, toml).unwrap();
    let file = fx.dir.path().join("users");
    let text = format!("bcrypt@example.com:{BCRYPT}\nsha512@example.com:{SHA512_CRYPT}\nmd5@example.com:{MD5_CRYPT}\n");
    std::fs::write(&file, text).unwrap();
    let (code, report) = import_with(&config, &file, &["--allow-weak"]);
    assert_eq!((code, report["imported"].as_u64()), (0, Some(3)), "{report}");
    let configured = HashParams { memory_kib: 1024, iterations: 1, parallelism: 1 };

    let mut c = Client::connect(&fx.socket).await.unwrap();
    let ip = Some("192.0.2.7");
    for (n, user) in [(0, "bcrypt@example.com"), (10, "sha512@example.com"), (20, "md5@example.com")] {
        let imported = stored(&db, user).0;
        assert!(imported.starts_with('{'), "{imported}");
        let wrong = c.plain(n + 1, user, "correct horsf", ip).await;
        assert!(matches!(wrong, Reply::Fail { .. }), "{wrong:?}");
        let right = c.plain(n + 2, user, PASSWORD, ip).await;
        assert_eq!(right, Reply::Ok { id: n + 2, user: user.into() });
        let grant =
            fx.shared.ledger.lookup(user, Some("192.0.2.7".parse().unwrap()), Instant::now()).expect("recorded");

        let (hash, last5) = tokio::task::spawn_blocking({
            let db = db.clone();
            move || wait_for_rehash(&db, user)
        })
        .await
        .unwrap();
        assert_eq!(HashParams::of_phc(&hash), Some(configured), "{user}: {hash}");
        assert_eq!(last5, "horse", "the last 5 are filled in at the rehash");
        let session = fx.shared.authenticator.recheck(&grant, Some("192.0.2.7".parse().unwrap()), Purpose::Smtp).await;
        assert!(matches!(session, Decision::Granted(_)), "{user}: the rehash is no revocation: {session:?}");

        let again = c.plain(n + 3, user, PASSWORD, ip).await;
        assert_eq!(again, Reply::Ok { id: n + 3, user: user.into() });
        let wrong = c.plain(n + 4, user, "correct horsf", ip).await;
        assert!(matches!(wrong, Reply::Fail { .. }), "{wrong:?}");
    }
    // An ordinary credential now: listed with its last 5, no longer as imported.
    let out = cli_output(&config, &["--json", "smtp", "list", "md5@example.com"]);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((listed[0]["last5"].as_str(), listed[0].get("imported")), (Some("horse"), None), "{listed}");
}

fn doveadm_pw(scheme: &str, password: &str) -> String {
    let out = Command::new("doveadm")
        .args(["-c", "/dev/null", "pw", "-s", scheme, "-p", password])
        .output()
        .expect("doveadm");
    assert!(out.status.success(), "doveadm pw -s {scheme}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// End to end: a passwd-file made with Dovecot's own `doveadm pw` for every kept scheme and a
/// PLAIN line, imported with the CLI; each user then authenticates through a real Postfix 3.7
/// with relaykey as its SASL server, with the original password; after that login the stored
/// hash is argon2id; a wrong password fails before and after.
#[test]
fn doveadm_hashes_log_in_through_postfix_and_become_argon2id() {
    if !needs().programs(&["postfix", "swaks", "ss", "doveadm"]).root().met() {
        return;
    }
    let rk = sasl_only("").start();
    let pf = postfix().sasl_socket(&rk.sasl_socket()).start();
    let db = rk.dir().join("relaykey.db");
    let schemes = ["ARGON2ID", "ARGON2I", "BLF-CRYPT", "SHA512-CRYPT", "SHA256-CRYPT", "PLAIN"];
    let users: Vec<(String, String, &str)> = schemes
        .iter()
        .enumerate()
        .map(|(i, scheme)| (format!("user{i}@example.com"), format!("Dovecot {scheme} pw#{i}"), *scheme))
        .collect();
    let mut text = String::from("# made with doveadm pw\n");
    for (user, password, scheme) in &users {
        let hash = doveadm_pw(scheme, password);
        assert!(hash.starts_with(&format!("{{{scheme}}}")), "{hash}");
        text.push_str(&format!("{user}:{hash}:5000:5000::/var/vmail/{user}::userdb_quota_rule=*:storage=1G\n"));
    }
    let file = rk.dir().join("users");
    std::fs::write(&file, text).unwrap();
    let (code, report) = import_with(rk.config_path(), &file, &[]);
    assert_eq!((code, report["imported"].as_u64(), report["refused"].as_u64()), (0, Some(6), Some(0)), "{report}");

    for (i, (user, password, scheme)) in users.iter().enumerate() {
        // Each user from an address of its own, so that one user's failures do not delay another.
        let ip = format!("127.0.0.{}", 10 + i);
        let listed = rk.cli_json(&["smtp", "list", user]);
        assert_eq!(listed[0]["imported"].as_bool(), (*scheme != "PLAIN").then_some(true), "{scheme}: {listed}");

        let wrong = swaks_login(pf.port(), "PLAIN", user, &format!("{password}x"), &ip);
        assert!(!wrong.ok && wrong.auth_code() == Some(535), "{scheme}: wrong password before:\n{}", wrong.transcript);
        let right = swaks_login(pf.port(), "PLAIN", user, password, &ip);
        assert!(right.ok && right.auth_code() == Some(235), "{scheme}: original password:\n{}", right.transcript);

        let (hash, last5) = wait_for_rehash(&db, user);
        assert!(hash.starts_with("$argon2id$"), "{scheme}: stored after the login: {hash}");
        assert_eq!(HashParams::of_phc(&hash), Some(HashParams { memory_kib: 1024, iterations: 1, parallelism: 1 }));
        assert_eq!(last5, password[password.len() - 5..], "{scheme}");

        let login = swaks_login(pf.port(), "LOGIN", user, password, &ip);
        assert!(login.ok && login.auth_code() == Some(235), "{scheme}: after the rehash:\n{}", login.transcript);
        let wrong = swaks_login(pf.port(), "PLAIN", user, &format!("{password}x"), &ip);
        assert!(!wrong.ok && wrong.auth_code() == Some(535), "{scheme}: wrong password after:\n{}", wrong.transcript);
    }
    assert!(!pf.maillog().contains("Connection lost to authentication server"), "{}", pf.maillog());
    let log = rk.log();
    for (_, password, _) in &users {
        assert!(!log.contains(password.as_str()), "a password reached the log");
    }
}

/// The HTTP API lists an imported credential as imported, with an empty `last5` and the mask
/// `*****`, until its first login; then with its last 5 and without the flag.
#[tokio::test]
async fn the_api_lists_an_imported_credential_as_imported_until_its_first_login() {
    let server = api_common::TestServer::start("").await;
    let user = "imported@example.com";
    let imported = ImportedCredential {
        username: EmailAddress::parse(user).unwrap(),
        account: EmailAddress::parse(api_common::OWNER).unwrap(),
        create_account: false,
        hash: BCRYPT.into(),
        last5: String::new(),
    };
    let written = server.store().import_smtp_credentials(&[imported], false).unwrap();
    assert!(written[0].is_ok(), "{written:?}");
    let (_, key) = server.key(&[Permission::View]);
    let listed = server.call("GET", "/v1/smtp-credentials", Some(&key), None).await;
    assert_eq!(listed.status, 200, "{}", listed.text);
    let cred = &listed.json[0];
    assert_eq!(
        (cred["imported"].as_bool(), cred["last5"].as_str(), cred["masked"].as_str()),
        (Some(true), Some(""), Some("*****")),
        "{cred}"
    );

    let login = Login {
        front_end: FrontEnd::Sasl,
        mechanism: LoginMechanism::Plain,
        client_ip: Some("192.0.2.9".parse().unwrap()),
        presented: Presented::Smtp(Credentials { username: user.into(), secret: Secret::from_presented(PASSWORD) }),
    };
    assert!(server.shared.logins.login(login).await.decision.is_granted());
    let db = server.db.clone();
    let (hash, _) = tokio::task::spawn_blocking(move || wait_for_rehash(&db, user)).await.unwrap();
    assert!(hash.starts_with("$argon2id$"), "{hash}");
    let listed = server.call("GET", "/v1/smtp-credentials", Some(&key), None).await;
    let cred = &listed.json[0];
    assert_eq!((cred.get("imported"), cred["last5"].as_str()), (None, Some("horse")), "{cred}");
    assert_eq!(cred["masked"].as_str().map(str::len), Some(40));
}
