//! Dependencies point down: reads `src/` and fails when a module refers to one it must not.
//!
//! The daemon is the top: it builds every front end and hands each what it needs, so nothing
//! else refers back to it. The queue is below the relay (the relay, like the API, puts
//! messages into it), and DKIM is below the queue (which signs with it). Metrics is a leaf that anything may record into. Protocol front ends
//! do not reach into each other: what two of them share lives below them.
//!
//! A module's references are the `crate::…` and `super::…` paths in its code (comments and
//! string literals left out), grouped imports (`use crate::{a, b::c}`) included, each
//! resolved to the top-level module it names.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Who a rule is about.
enum Scope {
    /// Every module except these.
    AllBut(&'static [&'static str]),
    /// Only these modules.
    Only(&'static [&'static str]),
}

impl Scope {
    fn covers(&self, module: &str) -> bool {
        match self {
            Self::AllBut(except) => !except.contains(&module),
            Self::Only(these) => these.contains(&module),
        }
    }
}

struct Rule {
    who: Scope,
    must_not_use: &'static [&'static str],
    why: &'static str,
}

const PROTOCOLS: &[&str] = &["sasl", "policy", "smtp", "api"];

const RULES: &[Rule] = &[
    Rule {
        who: Scope::AllBut(&["daemon", "cli", "main"]),
        must_not_use: &["daemon"],
        why: "the daemon starts the front ends and hands them their dependencies",
    },
    Rule {
        who: Scope::Only(&["queue"]),
        must_not_use: &["smtp", "api"],
        why: "the relay and the API put messages into the queue, not the other way round",
    },
    Rule {
        who: Scope::Only(&["dkim"]),
        must_not_use: &["smtp", "api", "queue", "sasl", "policy"],
        why: "DKIM keys and signing sit below the queue and the front ends that use them",
    },
    Rule {
        who: Scope::Only(&["metrics"]),
        must_not_use: &["auth"],
        why: "metrics is a leaf: auth records into it with plain labels",
    },
    Rule { who: Scope::Only(&["sasl"]), must_not_use: PROTOCOLS, why: "front ends share code through lower modules" },
    Rule { who: Scope::Only(&["policy"]), must_not_use: PROTOCOLS, why: "front ends share code through lower modules" },
    Rule { who: Scope::Only(&["smtp"]), must_not_use: PROTOCOLS, why: "front ends share code through lower modules" },
    Rule { who: Scope::Only(&["api"]), must_not_use: PROTOCOLS, why: "front ends share code through lower modules" },
];

#[test]
fn no_module_refers_upward() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut broken = Vec::new();
    let mut files = 0;
    for file in rust_files(&src) {
        files += 1;
        let relative = file.strip_prefix(&src).unwrap();
        let module = module_path(relative);
        let text = std::fs::read_to_string(&file).unwrap();
        for (line, target) in references(&module, &strip_comments_and_strings(&text)) {
            for rule in RULES {
                if rule.who.covers(&module[0]) && target != module[0] && rule.must_not_use.contains(&target.as_str()) {
                    broken.push(format!("src/{}:{line}: refers to `{target}` ({})", relative.display(), rule.why));
                }
            }
        }
    }
    assert!(files > 50, "found only {files} files under {}", src.display());
    assert!(broken.is_empty(), "upward dependencies:\n{}", broken.join("\n"));
}

/// The checker itself: each kind of reference is seen, and only real code counts.
#[test]
fn references_are_found_in_every_form() {
    let module = module_path(Path::new("smtp/server.rs"));
    let code = strip_comments_and_strings(
        "use crate::daemon::Shared;\n\
         use crate::{auth::Decision, queue};\n\
         fn f(x: Arc<crate::metrics::Registry>) {}\n\
         use super::super::api::Api;\n\
         use super::codec;\n\
         // crate::policy in a comment\n\
         /* crate::sasl in a block */\n\
         let s = \"crate::cli in a string\";\n\
         let c = '\"'; use crate::config;\n",
    );
    let found: BTreeSet<String> = references(&module, &code).into_iter().map(|(_, m)| m).collect();
    let want: BTreeSet<String> =
        ["daemon", "auth", "queue", "metrics", "api", "smtp", "config"].into_iter().map(String::from).collect();
    assert_eq!(found, want);
}

/// `src/smtp/server.rs` is `["smtp", "server"]`, `src/smtp/mod.rs` is `["smtp"]`, `src/lib.rs`
/// is `[]`... as a crate root, except `main.rs`, which the rules name `main`.
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let last = parts.pop().unwrap_or_default();
    let stem = last.trim_end_matches(".rs");
    match stem {
        "mod" | "lib" => {}
        _ => parts.push(stem.to_string()),
    }
    if parts.is_empty() {
        parts.push(String::new());
    }
    parts
}

/// The top-level module of every `crate::` or `super::` path in `code`, with its line.
fn references(module: &[String], code: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    let bytes = code.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let rest = &code[i..];
        let boundary = i == 0 || !is_ident(bytes[i - 1]);
        let start = if boundary && rest.starts_with("crate::") {
            Some((Vec::new(), i + "crate::".len()))
        } else if boundary && rest.starts_with("super::") {
            // Each `super` climbs one level from the file's own module.
            let mut at = i;
            let mut base: Vec<String> = module.to_vec();
            while code[at..].starts_with("super::") {
                base.pop();
                at += "super::".len();
            }
            Some((base, at))
        } else {
            None
        };
        let Some((base, at)) = start else {
            i += 1;
            continue;
        };
        let line = code[..i].matches('\n').count() + 1;
        for first in path_heads(&code[at..]) {
            let top = base.first().cloned().unwrap_or(first);
            if !top.is_empty() {
                found.push((line, top));
            }
        }
        i = at;
    }
    found
}

/// The first segment of a path (`daemon` in `daemon::Shared`), or of each item of a group
/// (`auth` and `queue` in `{auth::Decision, queue}`).
fn path_heads(after: &str) -> Vec<String> {
    let after = after.trim_start();
    if let Some(group) = after.strip_prefix('{') {
        let mut depth = 0;
        let mut items = vec![String::new()];
        for c in group.chars() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => break,
                '}' => depth -= 1,
                ',' if depth == 0 => items.push(String::new()),
                _ => {}
            }
            if (c != ',' || depth != 0)
                && let Some(item) = items.last_mut()
            {
                item.push(c);
            }
        }
        return items.iter().filter_map(|item| ident_at(item.trim_start())).collect();
    }
    ident_at(after).into_iter().collect()
}

fn ident_at(s: &str) -> Option<String> {
    let ident: String = s.bytes().take_while(|&b| is_ident(b)).map(char::from).collect();
    (!ident.is_empty() && ident != "self").then_some(ident)
}

fn is_ident(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// `code` with comments and the contents of string and char literals blanked out (line
/// breaks kept, so that line numbers hold).
fn strip_comments_and_strings(code: &str) -> String {
    let chars: Vec<char> = code.chars().collect();
    let mut out = String::with_capacity(code.len());
    let mut i = 0;
    let blank = |c: char| if c == '\n' { '\n' } else { ' ' };
    while i < chars.len() {
        let c = chars[i];
        let next = chars.get(i + 1).copied();
        if c == '/' && next == Some('/') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && next == Some('*') {
            let mut depth = 0;
            while i < chars.len() {
                if chars[i] == '/' && chars.get(i + 1) == Some(&'*') {
                    depth += 1;
                    i += 2;
                } else if chars[i] == '*' && chars.get(i + 1) == Some(&'/') {
                    depth -= 1;
                    i += 2;
                    if depth == 0 {
                        break;
                    }
                } else {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
        } else if c == 'r' && (next == Some('"') || next == Some('#')) && (i == 0 || !is_ident(chars[i - 1] as u8)) {
            // A raw string: r"…", r#"…"#, …
            let mut j = i + 1;
            let mut hashes = 0;
            while chars.get(j) == Some(&'#') {
                hashes += 1;
                j += 1;
            }
            if chars.get(j) != Some(&'"') {
                out.push(c);
                i += 1;
                continue;
            }
            i = j + 1;
            while i < chars.len() {
                if chars[i] == '"' && (0..hashes).all(|h| chars.get(i + 1 + h) == Some(&'#')) {
                    i += 1 + hashes;
                    break;
                }
                out.push(blank(chars[i]));
                i += 1;
            }
        } else if c == '"' {
            i += 1;
            while i < chars.len() && chars[i] != '"' {
                if chars[i] == '\\' {
                    out.push(' ');
                    i += 1;
                }
                if i < chars.len() {
                    out.push(blank(chars[i]));
                    i += 1;
                }
            }
            i += 1;
        } else if c == '\'' && next == Some('\\') {
            // An escaped char literal ('\'', '\\', '\u{…}'): skip to its closing quote.
            i += 3;
            while i < chars.len() && chars[i] != '\'' {
                i += 1;
            }
            i += 1;
        } else if c == '\'' && chars.get(i + 2) == Some(&'\'') {
            // 'x', '"'; a lifetime ('a) has no closing quote and is kept.
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    out
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files.sort();
    files
}
