//! `list` commands as a person sees them: on a terminal (the binary runs under a pty made by
//! util-linux `script`, from the essential bsdutils package), aligned columns under a header,
//! by display width, with names escaped; through a pipe, the tab-separated lines scripts read.

mod support;

use std::path::Path;
use std::process::{Command, Stdio};

use support::daemon::{BIN, cli, cli_json};
use unicode_width::UnicodeWidthStr;

/// Runs `relaykey --config CONFIG ARGS` with its stdout on a pseudo-terminal; returns what the
/// terminal received, without the terminal's carriage returns.
fn on_terminal(config: &Path, args: &[&str]) -> String {
    let quote = |s: &str| format!("'{}'", s.replace('\'', r"'\''"));
    let mut command = vec![quote(BIN), "--config".into(), quote(config.to_str().unwrap())];
    command.extend(args.iter().map(|a| quote(a)));
    let out = Command::new("script")
        .args(["-qec", &command.join(" "), "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("run script (util-linux)");
    assert!(out.status.success(), "relaykey {args:?} on a terminal failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8(out.stdout).unwrap().replace("\r\n", "\n")
}

/// The display column at which each of `needles` starts on its line.
fn column_of(line: &str, needle: &str) -> usize {
    let at = line.find(needle).unwrap_or_else(|| panic!("{needle:?} not in {line:?}"));
    line[..at].width()
}

fn store() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("relaykey.toml");
    let toml = format!(
        "database = \"{}/relaykey.db\"\n[auth]\nargon2_memory_kib = 1024\nargon2_iterations = 1\n",
        dir.path().display()
    );
    std::fs::write(&config, toml).unwrap();
    (dir, config)
}

#[test]
fn api_key_list_aligns_wide_names_under_a_header_on_a_terminal() {
    let (dir, config) = store();
    cli(&config, &["account", "add", "ann@example.com"]);
    cli(&config, &["apikey", "create", "ann@example.com", "--name", "日本語のキー", "--permission", "view"]);
    cli(&config, &["apikey", "create", "ann@example.com", "--name", "deploy"]);
    let evil = cli_json(&config, &["apikey", "create", "ann@example.com", "--name", "evil"]);
    // Names refuse control characters at input; a row written some other way is still
    // escaped on output.
    let conn = rusqlite::Connection::open(dir.path().join("relaykey.db")).unwrap();
    conn.execute("UPDATE api_keys SET name = ?1 WHERE id = ?2", ("ev\x1b[2Jil\u{202e}", evil["id"].as_i64().unwrap()))
        .unwrap();
    drop(conn);

    let text = on_terminal(&config, &["apikey", "list", "ann@example.com"]);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[0].starts_with("ID") && lines[0].contains("NAME") && lines[0].contains("PERMISSIONS"), "{text}");
    assert!(!text.contains('\x1b') && !text.contains('\u{202e}'), "raw control characters: {text:?}");
    assert!(text.contains("ev\\x1b[2Jil\\u{202e}"), "{text}");
    assert!(!text.contains('\t'), "tabs on a terminal: {text:?}");
    // The column after NAME starts at one display column on every line, wide names included.
    let permissions = column_of(lines[0], "PERMISSIONS");
    assert_eq!(column_of(lines[1], "view"), permissions, "{text}");
    for line in &lines[2..] {
        assert_eq!(column_of(line, "smtp,send,view,manage"), permissions, "{text}");
    }
    let name = column_of(lines[0], "NAME");
    assert_eq!(column_of(lines[1], "日本語のキー"), name, "{text}");

    // Through a pipe: no header, one tab-separated line per key, as before.
    let piped = cli(&config, &["apikey", "list", "ann@example.com"]);
    let rows: Vec<Vec<&str>> = piped.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), 3, "{piped}");
    assert!(rows.iter().all(|r| r.len() == 5), "{piped}");
    assert_eq!((rows[0][2], rows[0][3], rows[0][4]), ("日本語のキー", "view", "any"));
    assert!(!piped.contains("NAME"));
}

#[test]
fn every_list_has_a_header_on_a_terminal_and_none_in_a_pipe() {
    let (_dir, config) = store();
    cli(&config, &["account", "add", "bob@example.com"]);
    cli(&config, &["smtp", "create", "bob@example.com"]);
    cli(&config, &["sender", "add", "bob@example.com", "bücher.example"]);
    for (args, header, row) in [
        (&["account", "list"][..], "ACCOUNT", "bob@example.com"),
        (&["smtp", "list", "bob@example.com"], "USERNAME", "bob@example.com"),
        (&["sender", "list", "bob@example.com"], "SENDER", "xn--bcher-kva.example"),
    ] {
        let text = on_terminal(&config, args);
        let first = text.lines().next().unwrap_or_default();
        assert!(first.split_whitespace().any(|w| w == header), "{args:?}: {text}");
        assert!(text.contains(row) && !text.contains('\t'), "{args:?}: {text:?}");
        let piped = cli(&config, args);
        assert!(!piped.contains(header) && piped.contains(row) && piped.contains('\t'), "{args:?}: {piped:?}");
    }
    // The optional Unicode column is a field in the pipe only where it has a value.
    let senders = cli(&config, &["sender", "list", "bob@example.com"]);
    let idn = senders.lines().find(|l| l.starts_with("xn--bcher-kva.example")).unwrap();
    assert_eq!(
        idn.split('\t').collect::<Vec<_>>(),
        ["xn--bcher-kva.example", "domain", "verified", "(bücher.example)"]
    );
    let own = senders.lines().find(|l| l.starts_with("bob@example.com")).unwrap();
    assert_eq!(own.split('\t').count(), 3, "{senders}");
}
