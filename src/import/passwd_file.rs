//! Dovecot's passwd-file format, read without I/O: text in, one entry or one refusal per line out.
//!
//! # Format
//!
//! ```text
//! user:password:uid:gid:(gecos):home:(shell):extra_fields
//! ```
//!
//! As Dovecot reads it (`src/auth/db-passwd-file.c`): fields are split at every `:` with no
//! escaping, so a password cannot contain one; only `user` and `password` matter for a passdb
//! and the other fields may be absent; empty lines and lines starting with `#` are skipped.
//! The password is `{SCHEME}value`, `{SCHEME.HEX}value` or `{SCHEME.B64}value` (the value
//! encoded once more), libpam-pwdfile's `value[13]` (CRYPT) or `value[34]` (PLAIN-MD5), or a
//! bare value in the default scheme (Dovecot's `default_pass_scheme`, `CRYPT` unless set).
//! `CRYPT` is whatever `crypt(3)` understands, so its value is told by its prefix (`$2y$`,
//! `$6$`, ...). Scheme names are case-insensitive.
//!
//! What this module does not decide: whether a weak scheme may be imported, whether the user
//! is an address, or what the store holds (see `super::plan`).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use crate::legacy_hash::{HashFormatError, LegacyHash, Scheme, ValueKind};
use crate::secret::Secret;

/// The schemes Dovecot knows that relaykey cannot verify: refused with that reason rather than
/// as unknown. (Challenge-response and SCRAM material, one-time passwords, Windows hashes.)
const UNVERIFIABLE: &[&str] = &[
    "CRAM-MD5",
    "HMAC-MD5",
    "DIGEST-MD5",
    "SCRAM-SHA-1",
    "SCRAM-SHA-256",
    "PBKDF2",
    "OTP",
    "SKEY",
    "RPA",
    "NTLM",
    "LANMAN",
    "PLAIN-MD4",
    "PLAIN-TRUNC",
];

/// The scheme a password without `{SCHEME}` is in (`--default-scheme`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefaultScheme(String);

impl Default for DefaultScheme {
    /// Dovecot's own default.
    fn default() -> Self {
        Self("CRYPT".into())
    }
}

impl DefaultScheme {
    /// Any name Dovecot accepts; checked when the first bare password needs it, so a file
    /// whose passwords all name their scheme is never refused for it.
    pub fn new(name: &str) -> Self {
        Self(name.to_string())
    }
}

/// One user's password, as the file gives it.
#[derive(Debug, Clone)]
pub enum Password {
    /// A hash to keep until the first login.
    Hash(LegacyHash),
    /// `PLAIN`/`CLEAR`: the password itself, to be hashed with argon2id at import.
    Plain(Secret),
}

/// One user line.
#[derive(Debug, Clone)]
pub struct Entry {
    /// 1-based.
    pub line: usize,
    pub user: String,
    pub password: Password,
}

/// A line that names a user who cannot be imported, or that is no user line at all.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {reason}")]
pub struct LineError {
    pub line: usize,
    /// The user, when the line got as far as naming one.
    pub user: Option<String>,
    pub reason: LineProblem,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LineProblem {
    #[error("malformed line: not UTF-8")]
    NotUtf8,
    #[error("malformed line: no user name")]
    NoUser,
    #[error("malformed line: no password field")]
    NoPasswordField,
    #[error("no password")]
    EmptyPassword,
    #[error("malformed password: `{{` without `}}`")]
    UnclosedScheme,
    #[error("unknown password scheme {0}")]
    UnknownScheme(String),
    #[error("password scheme {0} cannot be verified by relaykey")]
    Unverifiable(String),
    #[error("unknown encoding .{0} (Dovecot knows .HEX and .B64)")]
    UnknownEncoding(String),
    #[error("the {0} value is not valid in its encoding")]
    BadEncoding(String),
    #[error("CRYPT value of no crypt(3) form relaykey knows")]
    UnknownCrypt,
    #[error(transparent)]
    Hash(#[from] HashFormatError),
}

/// Parses a whole passwd-file: one item per line that is neither blank nor a comment.
/// `max_argon2_kib` is the ceiling imported argon2 hashes must stay under (the verifier's).
pub fn parse(text: &[u8], default: &DefaultScheme, max_argon2_kib: u32) -> Vec<Result<Entry, LineError>> {
    text.split(|b| *b == b'\n')
        .enumerate()
        .filter_map(|(i, raw)| parse_line(i + 1, raw, default, max_argon2_kib))
        .collect()
}

/// One line; `None` for blank lines and comments.
pub fn parse_line(
    line: usize,
    raw: &[u8],
    default: &DefaultScheme,
    max_argon2_kib: u32,
) -> Option<Result<Entry, LineError>> {
    let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
    if raw.iter().all(u8::is_ascii_whitespace) || raw.first() == Some(&b'#') {
        return None;
    }
    let fail = |user: Option<&str>, reason| LineError { line, user: user.map(str::to_string), reason };
    let Ok(text) = std::str::from_utf8(raw) else { return Some(Err(fail(None, LineProblem::NotUtf8))) };
    let mut fields = text.split(':');
    let user = fields.next().unwrap_or_default().trim();
    if user.is_empty() {
        return Some(Err(fail(None, LineProblem::NoUser)));
    }
    let Some(field) = fields.next() else { return Some(Err(fail(Some(user), LineProblem::NoPasswordField))) };
    Some(
        password(field, default, max_argon2_kib)
            .map(|password| Entry { line, user: user.to_string(), password })
            .map_err(|reason| fail(Some(user), reason)),
    )
}

/// The password field → a hash to keep or a plaintext to hash.
pub fn password(field: &str, default: &DefaultScheme, max_argon2_kib: u32) -> Result<Password, LineProblem> {
    if field.is_empty() {
        return Err(LineProblem::EmptyPassword);
    }
    let (name, value) = match field.strip_prefix('{') {
        Some(rest) => rest.split_once('}').ok_or(LineProblem::UnclosedScheme)?,
        None => match libpam_suffix(field) {
            Some((value, scheme)) => (scheme, value),
            None => (default.0.as_str(), field),
        },
    };
    let (name, encoding) = split_encoding(name)?;
    if value.is_empty() {
        return Err(LineProblem::EmptyPassword);
    }
    let upper = name.to_ascii_uppercase();
    match upper.as_str() {
        "PLAIN" | "CLEAR" | "CLEARTEXT" => Ok(Password::Plain(Secret::from_presented(text_value(value, encoding)?))),
        "CRYPT" => {
            let value = text_value(value, encoding)?;
            let scheme = Scheme::of_crypt(&value).ok_or(LineProblem::UnknownCrypt)?;
            Ok(Password::Hash(LegacyHash::crypt(scheme, &value, max_argon2_kib)?))
        }
        _ => {
            let Some(scheme) = Scheme::from_name(&upper) else {
                return Err(if UNVERIFIABLE.contains(&upper.as_str()) {
                    LineProblem::Unverifiable(upper)
                } else {
                    LineProblem::UnknownScheme(name.to_string())
                });
            };
            let hash = match scheme.value_kind() {
                ValueKind::Crypt => LegacyHash::crypt(scheme, &text_value(value, encoding)?, max_argon2_kib)?,
                ValueKind::Digest { .. } => digest_hash(scheme, value, encoding)?,
            };
            Ok(Password::Hash(hash))
        }
    }
}

/// How a value is encoded on top of its scheme's own form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    /// No suffix: the scheme's own form (for digest schemes, Dovecot's default encoding).
    Native,
    Hex,
    Base64,
}

fn split_encoding(name: &str) -> Result<(&str, Encoding), LineProblem> {
    let Some((base, suffix)) = name.rsplit_once('.') else { return Ok((name, Encoding::Native)) };
    match suffix.to_ascii_uppercase().as_str() {
        "HEX" => Ok((base, Encoding::Hex)),
        "B64" | "BASE64" => Ok((base, Encoding::Base64)),
        _ => Err(LineProblem::UnknownEncoding(suffix.to_string())),
    }
}

/// libpam-pwdfile's `value[NN]`, read as Dovecot reads it: 34 is PLAIN-MD5, 56 DIGEST-MD5,
/// anything else CRYPT.
fn libpam_suffix(field: &str) -> Option<(&str, &'static str)> {
    let bytes = field.as_bytes();
    let len = bytes.len();
    if len <= 4 || bytes[0] == b'$' || bytes[len - 1] != b']' || bytes[len - 4] != b'[' {
        return None;
    }
    let scheme = match &bytes[len - 3..len - 1] {
        b"34" => "PLAIN-MD5",
        b"56" => "DIGEST-MD5",
        _ => "CRYPT",
    };
    Some((field.get(..len - 4)?, scheme))
}

/// A crypt string or plaintext, decoded from `.HEX`/`.B64` when the scheme name says so.
fn text_value(value: &str, encoding: Encoding) -> Result<String, LineProblem> {
    let bytes = match encoding {
        Encoding::Native => return Ok(value.to_string()),
        Encoding::Hex => hex::decode(value).map_err(|_| LineProblem::BadEncoding("hex".into()))?,
        Encoding::Base64 => STANDARD.decode(value).map_err(|_| LineProblem::BadEncoding("base64".into()))?,
    };
    String::from_utf8(bytes).map_err(|_| LineProblem::BadEncoding("decoded".into()))
}

/// A digest scheme's hash. Without a suffix Dovecot reads its default encoding (hex for
/// PLAIN-MD5, base64 for the others) but also the other one when the length says so; so does
/// this: the first reading whose length fits the scheme wins.
fn digest_hash(scheme: Scheme, value: &str, encoding: Encoding) -> Result<LegacyHash, LineProblem> {
    let hex = || hex::decode(value).map_err(|_| LineProblem::BadEncoding("hex".into()));
    let b64 = || STANDARD.decode(value).map_err(|_| LineProblem::BadEncoding("base64".into()));
    let hash = |bytes: Result<Vec<u8>, LineProblem>| Ok(LegacyHash::digest(scheme, bytes?)?);
    match encoding {
        Encoding::Hex => hash(hex()),
        Encoding::Base64 => hash(b64()),
        Encoding::Native if scheme.default_hex() => hash(hex()).or_else(|e| hash(b64()).map_err(|_| e)),
        Encoding::Native => hash(b64()).or_else(|e| hash(hex()).map_err(|_| e)),
    }
}

#[cfg(test)]
#[path = "passwd_file_tests.rs"]
mod tests;
