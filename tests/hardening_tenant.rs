//! Issue 14, items 1, 2, 3, 9, 10 and 12, over the real interfaces: the HTTP API served
//! in-process on loopback, and the `relaykey` binary run on the same database.

mod api_common;

use std::path::{Path, PathBuf};
use std::process::Output;

use api_common::{OWNER, TestServer};
use assert_cmd::Command;
use relaykey::model::Permission::{Manage, Send, Smtp, View};
use relaykey::queue::{Spool, Submission};
use serde_json::{Value, json};

/// The `relaykey` binary with a config naming `db` (and a spool under `dir`).
struct Cli {
    config: PathBuf,
    spool: PathBuf,
    _dir: tempfile::TempDir,
}

impl Cli {
    fn on(db: &Path) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("relaykey.toml");
        let spool = dir.path().join("spool");
        std::fs::write(
            &config,
            format!(
                "database = {:?}\n[auth]\nargon2_memory_kib = 64\nargon2_iterations = 1\n[relay]\nspool = {:?}\n",
                db.display().to_string(),
                spool.display().to_string()
            ),
        )
        .unwrap();
        Self { config, spool, _dir: dir }
    }

    fn cmd(&self) -> Command {
        let mut c = Command::cargo_bin("relaykey").unwrap();
        c.env("RELAYKEY_CONFIG", &self.config).env_remove("RUST_LOG");
        c
    }

    fn run(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().unwrap()
    }

    fn ok(&self, args: &[&str]) -> Output {
        let out = self.run(args);
        assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out
    }

    fn json(&self, args: &[&str]) -> Value {
        let out = self.ok(&[&["--json"], args].concat());
        serde_json::from_slice(&out.stdout).unwrap()
    }

    /// A refusal: exit status 1 and one line on stderr containing `want`.
    fn refused(&self, args: &[&str], want: &str) {
        let out = self.run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert_eq!(err.trim_end().lines().count(), 1, "{args:?}: not one line: {err:?}");
        assert!(err.contains(want), "{args:?}: {err:?} lacks {want:?}");
    }
}

fn sql(db: &Path, statement: &str, params: &[&dyn rusqlite::ToSql]) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute(statement, params).unwrap();
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().unwrap().iter().map(|k| k["id"].as_i64().unwrap()).collect()
}

/// Characters a terminal acts on or hides, but for the line breaks and tabs the output itself
/// is made of: none may reach the operator's screen raw.
fn raw_invisible(bytes: &[u8]) -> Vec<char> {
    String::from_utf8_lossy(bytes)
        .chars()
        .filter(|&c| c != '\n' && c != '\t')
        .filter(|&c| {
            c.is_control() || matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
        })
        .collect()
}

fn all_permissions() -> Value {
    json!(["smtp", "send", "view", "manage"])
}

#[tokio::test]
async fn item_01_key_cannot_raise_itself_or_give_more_than_it_holds() {
    let server = TestServer::start("").await;
    let (own, key) = server.key_for(OWNER, &[View, Manage], &["127.0.0.1"]);
    let forbidden = |r: &api_common::Reply, what: &str| {
        assert_eq!((r.status, r.code()), (403, "forbidden"), "{what}: {}", r.text);
        assert_eq!(r.json.as_object().unwrap().len(), 1, "{what}: the usual error shape");
    };

    // Raising itself: every permission, no restriction.
    let raise = server
        .call(
            "PATCH",
            &format!("/v1/api-keys/{own}"),
            Some(&key),
            Some(json!({"permissions": all_permissions(), "allow": []})),
        )
        .await;
    forbidden(&raise, "raise itself");
    assert_eq!(raise.message(), "an API key cannot raise its own permissions or widen its own restriction");
    let widen =
        server.call("PATCH", &format!("/v1/api-keys/{own}"), Some(&key), Some(json!({"allow": ["0.0.0.0/0"]}))).await;
    forbidden(&widen, "widen itself");

    // Minting: `{}` gives the caller's own permissions and restriction, never more.
    let minted = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({}))).await;
    assert_eq!(minted.status, 201, "{}", minted.text);
    assert_eq!(
        (minted.json["permissions"].clone(), minted.json["allow"].clone()),
        (json!(["view", "manage"]), json!(["127.0.0.1"]))
    );
    for (body, what) in [
        (json!({"permissions": all_permissions()}), "more permissions"),
        (json!({"permissions": ["send"]}), "another permission"),
        (json!({"allow": []}), "no restriction"),
        (json!({"allow": ["127.0.0.1", "10.0.0.0/8"]}), "a wider restriction"),
    ] {
        forbidden(&server.call("POST", "/v1/api-keys", Some(&key), Some(body)).await, what);
    }
    let narrower = server
        .call("POST", "/v1/api-keys", Some(&key), Some(json!({"permissions": ["view"], "allow": ["127.0.0.1"]})))
        .await;
    assert_eq!(narrower.status, 201, "{}", narrower.text);

    // Editing or rotating another key: only within the caller's reach and permissions.
    let (other, _) = server.key_for(OWNER, &[View], &[]);
    forbidden(
        &server
            .call("PATCH", &format!("/v1/api-keys/{other}"), Some(&key), Some(json!({"permissions": ["smtp"]})))
            .await,
        "edit: smtp",
    );
    forbidden(
        &server.call("PATCH", &format!("/v1/api-keys/{other}"), Some(&key), Some(json!({"allow": []}))).await,
        "edit: anywhere",
    );
    let renamed =
        server.call("PATCH", &format!("/v1/api-keys/{other}"), Some(&key), Some(json!({"name": "renamed"}))).await;
    assert_eq!(renamed.status, 200, "{}", renamed.text);
    let rotate = server.call("POST", &format!("/v1/api-keys/{other}/change"), Some(&key), None).await;
    forbidden(&rotate, "rotate a key usable from anywhere");
    let minted_id = minted.json["id"].as_i64().unwrap();
    assert_eq!(server.call("POST", &format!("/v1/api-keys/{minted_id}/change"), Some(&key), None).await.status, 200);

    // SMTP credentials: the same reach.
    let cred = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({}))).await;
    assert_eq!((cred.status, cred.json["allow"].clone()), (201, json!(["127.0.0.1"])), "{}", cred.text);
    let cred_id = cred.json["id"].as_i64().unwrap();
    forbidden(
        &server
            .call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": "b@example.com", "allow": []})))
            .await,
        "credential from anywhere",
    );
    forbidden(
        &server.call("PATCH", &format!("/v1/smtp-credentials/{cred_id}"), Some(&key), Some(json!({"allow": []}))).await,
        "widen a credential",
    );
    let operator_cred = server
        .store()
        .create_smtp_credential(
            &relaykey::address::EmailAddress::parse(OWNER).unwrap(),
            relaykey::store::NewSmtpCredential {
                username: Some(relaykey::address::EmailAddress::parse("ops@example.com").unwrap()),
                allow: Default::default(),
            },
            &server.config.auth.hash_params(),
        )
        .unwrap()
        .0
        .id;
    forbidden(
        &server.call("POST", &format!("/v1/smtp-credentials/{operator_cred}/change"), Some(&key), None).await,
        "rotate an unrestricted credential",
    );

    // Nothing changed on the caller itself.
    let list = server.call("GET", "/v1/api-keys", Some(&key), None).await;
    let me = list.json.as_array().unwrap().iter().find(|k| k["id"] == own).unwrap();
    assert_eq!((me["permissions"].clone(), me["allow"].clone()), (json!(["view", "manage"]), json!(["127.0.0.1"])));

    // An unrestricted full-access key may create anything.
    let (_, full) = server.key(&[Smtp, Send, View, Manage]);
    let anything = server
        .call("POST", "/v1/api-keys", Some(&full), Some(json!({"permissions": all_permissions(), "allow": []})))
        .await;
    assert_eq!(anything.status, 201, "{}", anything.text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_02_bounded_input_same_caps_in_cli_and_api() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Smtp, Send, View, Manage]);
    let nets = |n: usize| -> Vec<String> { (0..n).map(|i| format!("10.{}.{}.0/24", i / 256, i % 256)).collect() };

    let too_many = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"allow": nets(65)}))).await;
    assert_eq!((too_many.status, too_many.code()), (400, "invalid_request"), "{}", too_many.text);
    assert!(too_many.message().contains("at most 64"), "{}", too_many.message());
    let cred = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"allow": nets(65)}))).await;
    assert_eq!(cred.status, 400, "{}", cred.text);
    let most = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"allow": nets(64)}))).await;
    assert_eq!(most.status, 201, "{}", most.text);
    let id = most.json["id"].as_i64().unwrap();
    let edit = server.call("PATCH", &format!("/v1/api-keys/{id}"), Some(&key), Some(json!({"allow": nets(65)}))).await;
    assert_eq!(edit.status, 400, "{}", edit.text);

    for (name, status) in [
        ("n".repeat(129), 400),
        ("é".repeat(128), 201),
        ("a\u{1b}[2Jb".to_string(), 400),
        ("tab\there".to_string(), 400),
        ("gnp.\u{202e}exe".to_string(), 400),
        ("zero\u{200b}width".to_string(), 400),
    ] {
        let reply = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"name": name}))).await;
        assert_eq!(reply.status, status, "{name:?}: {}", reply.text);
        if status == 400 {
            assert_eq!(reply.code(), "invalid_request");
        }
    }

    // The settings endpoints read small bodies only (16 KiB): anything larger is cut before it
    // is parsed. (Just over the limit, so that the whole request fits the socket's buffers.)
    let big = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"name": "x".repeat(17_000)}))).await;
    assert_eq!((big.status, big.code()), (413, "body_too_large"), "{}", &big.text[..big.text.len().min(200)]);
    let big = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"allow": nets(1100)}))).await;
    assert_eq!(big.status, 413);

    // The CLI: the same caps, one line, exit 1.
    let cli = Cli::on(&server.db);
    let mut args: Vec<String> = ["apikey", "create", OWNER].map(String::from).to_vec();
    for net in nets(65) {
        args.extend(["--allow".to_string(), net]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    cli.refused(&args, "at most 64");
    let mut smtp_args = args.clone();
    smtp_args[0] = "smtp";
    cli.refused(&smtp_args, "at most 64");
    cli.refused(&["apikey", "create", OWNER, "--name", &"n".repeat(129)], "longer than 128 characters");
    cli.refused(&["apikey", "create", OWNER, "--name", "a\u{1b}[2Jb"], "control characters");
    cli.refused(&["apikey", "edit", OWNER, &id.to_string(), "--name", "x\u{202e}y"], "control characters");
    cli.json(&["apikey", "create", OWNER, "--name", &"n".repeat(128)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_03_no_squatting_on_other_domains_through_the_api() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Smtp, Send, View, Manage]);
    for username in ["postmaster@victim.example", "owner@example.com.victim.example", "app@sub.example.com"] {
        let reply = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": username}))).await;
        assert_eq!((reply.status, reply.code()), (403, "forbidden"), "{username}: {}", reply.text);
        assert!(reply.message().contains("in its domain example.com"), "{}", reply.message());
    }
    for username in ["app@example.com", "owner@example.com", "App2@EXAMPLE.com"] {
        let reply = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({"username": username}))).await;
        assert_eq!(reply.status, 201, "{username}: {}", reply.text);
    }

    // Nothing was squatted: the operator can still add the victim, and may set any username.
    let cli = Cli::on(&server.db);
    cli.json(&["account", "add", "postmaster@victim.example"]);
    let other = cli.json(&["smtp", "create", OWNER, "--username", "relay@elsewhere.example"]);
    assert_eq!(other["username"], "relay@elsewhere.example");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_09_terminal_injection_is_escaped_in_cli_output() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Smtp, Send, View, Manage]);
    let cli = Cli::on(&server.db);
    // Clear the screen, home the cursor, and forge a row of the table.
    let hostile = "\u{1b}[2J\u{1b}[H\u{1b}]0;owned\u{7}ok\n99\t****\tforged\tsmtp\tany\r\u{202e}\u{9b}31m";

    // Through the API the name is refused; on a database written before, it is escaped.
    let created = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"name": hostile}))).await;
    let id = match created.status {
        201 => created.json["id"].as_i64().unwrap(),
        _ => {
            assert_eq!(created.status, 400, "{}", created.text);
            let (id, _) = server.key(&[View]);
            sql(&server.db, "UPDATE api_keys SET name = ?1 WHERE id = ?2", &[&hostile, &id]);
            id
        }
    };
    let keys_listed = cli.json(&["apikey", "list", OWNER]).as_array().unwrap().len();

    let table = cli.ok(&["apikey", "list", OWNER]);
    assert_eq!(raw_invisible(&table.stdout), Vec::<char>::new(), "raw control characters in `apikey list`");
    let text = String::from_utf8_lossy(&table.stdout);
    assert_eq!(text.lines().count(), keys_listed, "a forged row: {text}");
    assert!(text.lines().all(|l| l.split('\t').count() == 5), "a forged column: {text}");
    assert!(text.contains("\\x1b[2J") && text.contains("\\u{202e}"), "{text}");
    let shown = cli.ok(&["apikey", "edit", OWNER, &id.to_string(), "--permission", "view"]);
    assert_eq!(raw_invisible(&shown.stdout), Vec::<char>::new(), "raw control characters in `apikey edit`");

    // JSON keeps the value exactly, without raw characters a terminal acts on.
    let json = cli.ok(&["--json", "apikey", "list", OWNER]);
    assert_eq!(raw_invisible(&json.stdout), Vec::<char>::new());
    let listed: Value = serde_json::from_slice(&json.stdout).unwrap();
    assert!(listed.as_array().unwrap().iter().any(|k| k["name"] == hostile));

    // A queued message's headers and envelope, as a client sent them.
    let spool = Spool::open(&cli.spool).unwrap();
    let mut incoming = spool.begin().unwrap();
    incoming
        .write(b"Subject: hi\x1b]0;pwned\x07\x1b[2J\r\nX-Bidi: a\xe2\x80\xaeb\r\nX-Bare: one\rtwo\r\n\r\nbody\r\n")
        .unwrap();
    let submission = Submission {
        sender: Some("a\u{1b}[31m@example.com".into()),
        recipients: vec!["r@example.net".into()],
        smtputf8: false,
        eight_bit: false,
        auth_user: Some("u\u{1b}[1m".into()),
        account_id: None,
        client_ip: None,
    };
    let queued = spool.commit(incoming, &submission, String::new()).unwrap();
    let shown = cli.ok(&["queue", "show", &queued.id]);
    assert_eq!(raw_invisible(&shown.stdout), Vec::<char>::new(), "raw control characters in `queue show`");
    let text = String::from_utf8_lossy(&shown.stdout);
    assert!(text.contains("Subject: hi\\x1b]0;pwned\\x07\\x1b[2J"), "{text}");
    assert!(text.contains("X-Bare: one\\rtwo"), "{text}");
    let listed = cli.ok(&["queue", "list"]);
    assert_eq!(raw_invisible(&listed.stdout), Vec::<char>::new(), "raw control characters in `queue list`");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_10_names_round_trip_and_one_bad_row_hides_nothing() {
    let server = TestServer::start("").await;
    let cli = Cli::on(&server.db);

    // Normalised before it is stored, so it can be listed and found again by what was typed.
    let added = cli.json(&["account", "add", "x@İ.com"]);
    assert_eq!(added["email"], "x@xn--i-9bb.com");
    assert_eq!(cli.json(&["account", "show", "X@İ.COM"])["id"], added["id"]);
    let nfd = cli.json(&["account", "add", "jose\u{301}@bu\u{308}cher.example"]);
    assert_eq!(nfd["email"], "jos\u{e9}@xn--bcher-kva.example");
    let listed = cli.json(&["account", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");

    // Bidi overrides and zero-width characters are refused at input.
    cli.refused(&["account", "add", "ann\u{202e}moc.elpmaxe@example.com"], "invisible");
    cli.refused(&["account", "add", "an\u{200b}n@example.com"], "invisible");
    cli.refused(&["smtp", "create", OWNER, "--username", "app\u{2066}@example.com"], "invisible");

    // A row that an older version stored (lower-cased, not normalised) hides nothing else.
    sql(&server.db, "INSERT INTO accounts (email, enabled, created_at) VALUES ('y@i\u{307}.com', 1, 0)", &[]);
    let out = cli.run(&["account", "list"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    for email in [OWNER, "x@xn--i-9bb.com", "jos\u{e9}@xn--bcher-kva.example"] {
        assert!(text.contains(email), "{email} hidden: {text}");
    }
    assert!(String::from_utf8_lossy(&out.stderr).contains("skipped unreadable row"), "the bad row is not flagged");
    let listed = cli.json(&["account", "list"]);
    assert_eq!(listed.as_array().unwrap().len(), 3);

    // The same for a credential, through the API and the CLI.
    let (_, key) = server.key(&[View, Manage]);
    let good = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({}))).await;
    assert_eq!(good.status, 201, "{}", good.text);
    sql(
        &server.db,
        "INSERT INTO smtp_credentials (account_id, username, allow, last5, hash, created_at)
         SELECT id, 'z@i\u{307}.com', '', 'AAAAA', 'x', 0 FROM accounts WHERE email = ?1",
        &[&OWNER],
    );
    let list = server.call("GET", "/v1/smtp-credentials", Some(&key), None).await;
    assert_eq!(list.status, 200, "{}", list.text);
    assert_eq!(ids(&list.json), [good.json["id"].as_i64().unwrap()]);
    let out = cli.run(&["smtp", "list", OWNER]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains(OWNER));

    // Corrupt data is not a temporary failure: exit 1, not 75.
    let bad_id: i64 = rusqlite::Connection::open(&server.db)
        .unwrap()
        .query_row("SELECT id FROM smtp_credentials WHERE username = 'z@i\u{307}.com'", [], |r| r.get(0))
        .unwrap();
    let out = cli.run(&["smtp", "change", OWNER, &bad_id.to_string()]);
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_12_no_store_on_secrets_and_auth_test_reads_stdin() {
    let server = TestServer::start("").await;
    let (_, key) = server.key(&[Smtp, Send, View, Manage]);
    let no_store = |r: &api_common::Reply, what: &str| {
        let value = r.headers.get("cache-control").map(|v| v.to_str().unwrap().to_string());
        assert_eq!(value.as_deref(), Some("no-store"), "{what}: {}", r.text);
    };
    let created = server.call("POST", "/v1/api-keys", Some(&key), Some(json!({"name": "k"}))).await;
    assert_eq!(created.status, 201);
    no_store(&created, "create API key");
    let id = created.json["id"].as_i64().unwrap();
    no_store(&server.call("POST", &format!("/v1/api-keys/{id}/change"), Some(&key), None).await, "change API key");
    let cred = server.call("POST", "/v1/smtp-credentials", Some(&key), Some(json!({}))).await;
    assert_eq!(cred.status, 201);
    no_store(&cred, "create SMTP credential");
    let password = cred.json["password"].as_str().unwrap().to_string();
    let cred_id = cred.json["id"].as_i64().unwrap();
    let changed = server.call("POST", &format!("/v1/smtp-credentials/{cred_id}/change"), Some(&key), None).await;
    no_store(&changed, "change SMTP credential");
    assert!(!server.smtp_auth(OWNER, &password).await);
    let password = changed.json["password"].as_str().unwrap().to_string();

    // `auth test USER -`: the secret comes from standard input, never from the command line.
    let cli = Cli::on(&server.db);
    let test = |secret: &str| {
        cli.cmd().args(["auth", "test", OWNER, "-"]).write_stdin(format!("{secret}\n")).output().unwrap()
    };
    let out = test(&password);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("allow ok"));
    let out = test("wrong-password");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("deny"));
}
