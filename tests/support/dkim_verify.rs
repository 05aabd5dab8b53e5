//! Independent DKIM verification: each DKIM-Signature of a message is checked on its own by
//! dkimpy (Debian `python3-dkim`, run by `/usr/bin/python3` on `dkim_verify.py`, its `dnsfunc`
//! answering from a key map) and by OpenDKIM (`opendkim -t` test mode, keys from
//! `TestPublicKeys`). Nothing is looked up in DNS: keys are given as
//! `<selector>._domainkey.<domain>` → the whole TXT value.
//!
//! dkimpy verifies one signature per call (`verify(idx=i)`). OpenDKIM verifies every signature
//! of a message and, with `-vv`, prints the Authentication-Results field it would add, one
//! `dkim=` result per signature naming it by `header.s`, `header.a` and the first 8 characters
//! of `b=`. Reading those results off the unmodified message, rather than stripping the other
//! signatures, lets both verifiers see exactly the bytes that arrived.
//!
//! [`TestKey`] and [`sign_with_dkimpy`] make signatures relaykey did not make, to prove the
//! harness itself.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use base64::Engine as _;

use super::peers::{needs, which};

/// Debian's Python, which has `python3-dkim` (the `python3` on PATH may be another one).
pub const PYTHON: &str = "/usr/bin/python3";

/// Key record name (`<selector>._domainkey.<domain>`, lower case, no final dot) → TXT value.
pub type Keys = BTreeMap<String, String>;

/// Are dkimpy, OpenDKIM and openssl here? Applies the one skip rule of [`needs`].
pub fn available() -> bool {
    let dkimpy = Path::new(PYTHON).exists()
        && Command::new(PYTHON)
            .args(["-c", "import dkim, nacl"])
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|o| o.status.success());
    needs()
        .programs(&["opendkim", "openssl"])
        .condition(dkimpy, "dkimpy for /usr/bin/python3 (python3-dkim, python3-nacl)")
        .met()
}

/// The key record name as the verifiers look it up.
pub fn record_name(selector: &str, domain: &str) -> String {
    normalize(&format!("{selector}._domainkey.{domain}"))
}

fn normalize(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The keys listed by `relaykey dkim list --json` (`dns.name` → `dns.value`).
pub fn keys_from_list(list: &serde_json::Value) -> Keys {
    let entries = list.as_array().unwrap_or_else(|| panic!("dkim list is not a JSON array: {list}"));
    entries
        .iter()
        .map(|key| {
            let name = key["dns"]["name"].as_str().unwrap_or_else(|| panic!("no dns.name in {key}"));
            let value = key["dns"]["value"].as_str().unwrap_or_else(|| panic!("no dns.value in {key}"));
            (normalize(name), value.to_string())
        })
        .collect()
}

/// One verifier's verdict on one signature.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub pass: bool,
    /// The verifier actually judged the signature with a key (dkimpy looked the key up;
    /// OpenDKIM reported `dkim=pass` or `dkim=fail` for it), rather than giving up early.
    pub judged: bool,
    /// Why it failed, or what the verifier printed.
    pub detail: String,
}

/// One DKIM-Signature and both verdicts.
#[derive(Debug, Clone)]
pub struct Checked {
    /// Position from the top of the message (dkimpy's `idx`).
    pub index: usize,
    /// The signature's tags as dkimpy parsed them (`d`, `s`, `a`, `c`, `h`, `bh`, `b`…).
    pub tags: BTreeMap<String, String>,
    pub dkimpy: Verdict,
    pub opendkim: Verdict,
}

impl Checked {
    pub fn tag(&self, name: &str) -> &str {
        self.tags.get(name).map_or("", String::as_str)
    }

    pub fn domain(&self) -> &str {
        self.tag("d")
    }

    pub fn selector(&self) -> &str {
        self.tag("s")
    }

    /// `rsa-sha256` or `ed25519-sha256`.
    pub fn algorithm(&self) -> &str {
        self.tag("a")
    }

    /// The `h=` list, lower case, in order (an oversigned name appears once more).
    pub fn signed_headers(&self) -> Vec<String> {
        self.tag("h").split(':').map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect()
    }

    pub fn passes(&self) -> bool {
        self.dkimpy.pass && self.opendkim.pass
    }

    /// Both verifiers judged the signature and both said it does not verify.
    pub fn fails_in_both(&self) -> bool {
        !self.dkimpy.pass && self.dkimpy.judged && !self.opendkim.pass && self.opendkim.judged
    }
}

/// Verifies every DKIM-Signature of `message` with both verifiers.
pub fn verify(message: &[u8], keys: &Keys) -> Vec<Checked> {
    let dir = tempfile::Builder::new().prefix("dkim-verify").tempdir().unwrap();
    let message_path = dir.path().join("message.eml");
    std::fs::write(&message_path, message).unwrap();
    let from_dkimpy = run_dkimpy(dir.path(), &message_path, keys);
    let from_opendkim = run_opendkim(dir.path(), &message_path, keys);
    from_dkimpy
        .into_iter()
        .enumerate()
        .map(|(index, (tags, dkimpy))| {
            let opendkim = opendkim_verdict(&from_opendkim, &tags);
            Checked { index, tags, dkimpy, opendkim }
        })
        .collect()
}

/// Verifies `message` and panics unless it has a signature and both verifiers pass every one.
pub fn assert_verifies(message: &[u8], keys: &Keys) -> Vec<Checked> {
    let checked = verify(message, keys);
    assert!(!checked.is_empty(), "no DKIM-Signature in the message:\n{}", String::from_utf8_lossy(message));
    for c in &checked {
        assert!(
            c.passes(),
            "signature {} (s={} a={}) does not verify: {}\n{}",
            c.index,
            c.selector(),
            c.algorithm(),
            report(c),
            String::from_utf8_lossy(message)
        );
    }
    checked
}

/// Verifies `message` and panics unless it has a signature and both verifiers judged every
/// one and failed it.
pub fn assert_fails(message: &[u8], keys: &Keys) -> Vec<Checked> {
    let checked = verify(message, keys);
    assert!(!checked.is_empty(), "no DKIM-Signature in the message:\n{}", String::from_utf8_lossy(message));
    for c in &checked {
        assert!(
            c.fails_in_both(),
            "signature {} (s={} a={}) did not fail in both verifiers: {}\n{}",
            c.index,
            c.selector(),
            c.algorithm(),
            report(c),
            String::from_utf8_lossy(message)
        );
    }
    checked
}

/// Both verdicts of one signature, for a failure message.
pub fn report(c: &Checked) -> String {
    format!(
        "dkimpy: {} ({}); OpenDKIM: {} ({})",
        if c.dkimpy.pass { "pass" } else { "fail" },
        c.dkimpy.detail,
        if c.opendkim.pass { "pass" } else { "fail" },
        c.opendkim.detail
    )
}

/// The DKIM-Signature fields of `message`, unfolded, from the top.
pub fn signature_fields(message: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(message);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut fields: Vec<String> = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            if let Some(last) = fields.last_mut() {
                last.push_str(line);
            }
        } else {
            fields.push(line.to_string());
        }
    }
    fields.into_iter().filter(|f| f.to_ascii_lowercase().starts_with("dkim-signature:")).collect()
}

/// `message` with its body changed by one word (a change relaxed canonicalization keeps).
pub fn with_body_changed(message: &[u8]) -> Vec<u8> {
    let split = head_end(message);
    let mut out = message[..split].to_vec();
    out.extend_from_slice(b"tampered ");
    out.extend_from_slice(&message[split..]);
    if split == message.len() {
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// `message` with `Re: ` put before its Subject.
pub fn with_subject_changed(message: &[u8]) -> Vec<u8> {
    let head = &message[..head_end(message)];
    let at = std::iter::once(0)
        .chain(head.windows(2).enumerate().filter(|(_, w)| w == b"\r\n").map(|(i, _)| i + 2))
        .find(|&i| head[i..].len() >= 8 && head[i..i + 8].eq_ignore_ascii_case(b"subject:"))
        .unwrap_or_else(|| panic!("no Subject in the message:\n{}", String::from_utf8_lossy(message)));
    let value = at + 8 + head[at + 8..].iter().take_while(|b| **b == b' ').count();
    [&message[..value], b"Re: ", &message[value..]].concat()
}

/// Where the body starts (after the empty line), or the end when there is none.
fn head_end(message: &[u8]) -> usize {
    message.windows(4).position(|w| w == b"\r\n\r\n").map_or(message.len(), |i| i + 4)
}

fn run_dkimpy(dir: &Path, message: &Path, keys: &Keys) -> Vec<(BTreeMap<String, String>, Verdict)> {
    let keys_path = dir.join("keys.json");
    std::fs::write(&keys_path, serde_json::to_vec(keys).unwrap()).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_verify.py");
    let out = Command::new(PYTHON)
        .arg(script)
        .arg(message)
        .arg(&keys_path)
        .stdin(Stdio::null())
        .output()
        .expect("run dkimpy");
    assert!(out.status.success(), "dkim_verify.py failed: {}", String::from_utf8_lossy(&out.stderr));
    let results: serde_json::Value = serde_json::from_slice(&out.stdout).expect("dkim_verify.py prints JSON");
    results
        .as_array()
        .expect("a JSON list")
        .iter()
        .map(|r| {
            let tags = r["tags"]
                .as_object()
                .map(|t| t.iter().map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string())).collect())
                .unwrap_or_default();
            let pass = r["pass"].as_bool() == Some(true);
            let judged = r["lookups"].as_array().is_some_and(|l| !l.is_empty());
            let detail = r["error"].as_str().map_or_else(|| "verified".to_string(), str::to_string);
            (tags, Verdict { pass, judged, detail })
        })
        .collect()
}

/// One `dkim=` result of OpenDKIM's Authentication-Results.
#[derive(Debug)]
struct OpendkimResult {
    result: String,
    selector: String,
    algorithm: String,
    domain: String,
    /// The first characters of the signature's `b=`.
    b: String,
    clause: String,
    /// OpenDKIM's log line for this selector, which says why it failed.
    why: Option<String>,
}

/// Runs OpenDKIM in test mode; its per-signature results, or why there are none.
fn run_opendkim(dir: &Path, message: &Path, keys: &Keys) -> Result<Vec<OpendkimResult>, String> {
    let keys_path = dir.join("test-public-keys");
    let lines: String = keys.iter().map(|(name, value)| format!("{name} {value}\n")).collect();
    std::fs::write(&keys_path, lines).unwrap();
    let conf = dir.join("opendkim.conf");
    // StrictTestMode: a line not ending in CRLF is an error, so OpenDKIM verifies the bytes as
    // they are rather than a copy with line ends repaired.
    std::fs::write(
        &conf,
        format!(
            "Mode v\nSyslog no\nTestPublicKeys {}\nStrictTestMode yes\nAlwaysAddARHeader yes\n\
             AuthservID verifier.test\nMaximumSignaturesToVerify 10\n",
            keys_path.display()
        ),
    )
    .unwrap();
    let opendkim: PathBuf = which("opendkim").expect("opendkim is installed (checked by available())");
    let out = Command::new(opendkim)
        .arg("-x")
        .arg(&conf)
        .arg("-vv")
        .arg("-t")
        .arg(message)
        .stdin(Stdio::null())
        .output()
        .expect("run opendkim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        return Err(format!("opendkim exited with {}: {stderr}{stdout}", out.status));
    }
    let marker = "hname='Authentication-Results' hvalue='";
    let Some(start) = stdout.find(marker).map(|i| i + marker.len()) else {
        return Err(format!("no Authentication-Results from opendkim: {stderr}{stdout}"));
    };
    let value = &stdout[start..];
    let value = &value[..value.rfind('\'').unwrap_or(value.len())];
    Ok(value
        .split(';')
        .map(str::trim)
        .filter(|clause| clause.starts_with("dkim="))
        .map(|clause| {
            let prop =
                |name: &str| clause.split_whitespace().find_map(|t| t.strip_prefix(name)).unwrap_or("").to_string();
            OpendkimResult {
                result: prop("dkim="),
                selector: prop("header.s="),
                algorithm: prop("header.a="),
                domain: prop("header.d="),
                b: prop("header.b="),
                why: stderr
                    .lines()
                    .find(|l| l.contains(&format!("(s={} ", prop("header.s="))) && l.contains("failed"))
                    .map(str::to_string),
                clause: clause.to_string(),
            }
        })
        .collect())
}

/// OpenDKIM's result for the signature with `tags`: the one naming its selector, algorithm,
/// domain and the start of its `b=`.
fn opendkim_verdict(results: &Result<Vec<OpendkimResult>, String>, tags: &BTreeMap<String, String>) -> Verdict {
    let results = match results {
        Ok(results) => results,
        Err(why) => return Verdict { pass: false, judged: false, detail: why.clone() },
    };
    let tag = |name: &str| tags.get(name).map_or(String::new(), |v| v.split_whitespace().collect::<String>());
    let b = tag("b");
    let mine: Vec<&OpendkimResult> = results
        .iter()
        .filter(|r| {
            !r.b.is_empty() && b.starts_with(&r.b) && r.selector == tag("s") && r.domain.eq_ignore_ascii_case(&tag("d"))
        })
        .collect();
    match mine[..] {
        // OpenDKIM names the algorithm it read: rsa-sha1 when it could not parse the signature.
        [r] => Verdict {
            pass: r.result == "pass" && r.algorithm == tag("a"),
            judged: r.result == "pass" || r.result == "fail",
            detail: match &r.why {
                Some(why) if r.result != "pass" => format!("{} ({why})", r.clause),
                _ => r.clause.clone(),
            },
        },
        _ => Verdict {
            pass: false,
            judged: false,
            detail: format!("OpenDKIM gave {} results for this signature: {results:?}", mine.len()),
        },
    }
}

/// A key pair made by openssl, for signatures relaykey did not make.
pub struct TestKey {
    pub selector: String,
    pub domain: String,
    /// `rsa-sha256` or `ed25519-sha256`.
    pub algorithm: &'static str,
    /// The key record's TXT value (`v=DKIM1; k=…; p=…`).
    pub txt: String,
    /// The private key in the form dkimpy signs with.
    private: PathBuf,
    _dir: tempfile::TempDir,
}

impl TestKey {
    /// A fresh RSA-2048 key.
    pub fn rsa(selector: &str, domain: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("dkim-key").tempdir().unwrap();
        let private = dir.path().join("private.pem");
        openssl(&["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048", "-out"], Some(&private));
        // SubjectPublicKeyInfo DER: the form OpenDKIM accepts.
        let spki = openssl_output(&["pkey", "-pubout", "-outform", "DER", "-in"], &private);
        let txt = format!("v=DKIM1; k=rsa; p={}", base64::engine::general_purpose::STANDARD.encode(spki));
        Self { selector: selector.into(), domain: domain.into(), algorithm: "rsa-sha256", txt, private, _dir: dir }
    }

    /// A fresh Ed25519 key (RFC 8463: `p=` is the raw 32-byte public key).
    pub fn ed25519(selector: &str, domain: &str) -> Self {
        let dir = tempfile::Builder::new().prefix("dkim-key").tempdir().unwrap();
        let pem = dir.path().join("private.pem");
        openssl(&["genpkey", "-algorithm", "ED25519", "-out"], Some(&pem));
        let engine = base64::engine::general_purpose::STANDARD;
        // The DER encodings end with the 32 raw bytes: the seed in PKCS#8, the key in SPKI.
        let pkcs8 = openssl_output(&["pkey", "-outform", "DER", "-in"], &pem);
        let spki = openssl_output(&["pkey", "-pubout", "-outform", "DER", "-in"], &pem);
        let private = dir.path().join("seed.b64");
        std::fs::write(&private, engine.encode(&pkcs8[pkcs8.len() - 32..])).unwrap();
        let txt = format!("v=DKIM1; k=ed25519; p={}", engine.encode(&spki[spki.len() - 32..]));
        Self { selector: selector.into(), domain: domain.into(), algorithm: "ed25519-sha256", txt, private, _dir: dir }
    }

    pub fn record_name(&self) -> String {
        record_name(&self.selector, &self.domain)
    }
}

/// The key map for `keys`.
pub fn keys_of(keys: &[&TestKey]) -> Keys {
    keys.iter().map(|k| (k.record_name(), k.txt.clone())).collect()
}

/// `message` with a DKIM-Signature from dkimpy on top (relaxed/relaxed; From, To, Subject,
/// Date, Message-ID).
pub fn sign_with_dkimpy(message: &[u8], key: &TestKey) -> Vec<u8> {
    let dir = tempfile::Builder::new().prefix("dkim-sign").tempdir().unwrap();
    let path = dir.path().join("message.eml");
    std::fs::write(&path, message).unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/dkim_sign.py");
    let out = Command::new(PYTHON)
        .arg(script)
        .arg(&path)
        .args([key.algorithm, &key.selector, &key.domain])
        .arg(&key.private)
        .stdin(Stdio::null())
        .output()
        .expect("run dkim_sign.py");
    assert!(out.status.success(), "dkim_sign.py failed: {}", String::from_utf8_lossy(&out.stderr));
    [out.stdout.as_slice(), message].concat()
}

fn openssl(args: &[&str], out: Option<&Path>) {
    let mut cmd = Command::new("openssl");
    cmd.args(args);
    if let Some(out) = out {
        cmd.arg(out);
    }
    let run = cmd.stdin(Stdio::null()).output().expect("run openssl");
    assert!(run.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&run.stderr));
}

fn openssl_output(args: &[&str], input: &Path) -> Vec<u8> {
    let run = Command::new("openssl").args(args).arg(input).stdin(Stdio::null()).output().expect("run openssl");
    assert!(run.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&run.stderr));
    run.stdout
}
