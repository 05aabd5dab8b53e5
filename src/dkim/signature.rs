//! The `DKIM-Signature:` header field (RFC 6376 §3.5): tags in a fixed order, folded to stay
//! within 78 columns, and `b=` computed over the signed fields and this field itself with an
//! empty `b=` (§3.7), both canonicalized the relaxed way.
//!
//! ```text
//! DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed; d=example.com;
//!         s=rk2026a; t=1764763200; h=From:From:Reply-To:Subject:Subject:Date:Date:
//!         To:To:Cc:Message-ID:Message-ID:MIME-Version:Content-Type:
//!         Content-Transfer-Encoding; bh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;
//!         b=…
//! ```
//! No `l=` (a body length invites appended content) and no `x=`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::canonical::relaxed_header;
use super::header_fields::{Field, select, signed_names, split_fields};
use super::key::{KeyError, SigningKey};

/// Columns a folded line aims to stay within (RFC 5322 §2.1.1 recommends 78).
const LINE_WIDTH: usize = 76;
/// The header field name with its colon and space.
const FIELD_NAME: &str = "DKIM-Signature: ";

/// What one signature is made of, besides the key.
pub struct SignatureInput<'a> {
    /// The signing domain `d=` (ASCII; an IDN domain as its A-label).
    pub domain: &'a str,
    pub selector: &'a str,
    /// `t=`, Unix seconds.
    pub timestamp: u64,
    /// The header section the signed fields are taken from.
    pub head: &'a [u8],
    /// SHA-256 of the relaxed-canonical body (`bh=`).
    pub body_hash: &'a [u8],
}

/// Signs and returns the whole header field, folded, ending in CRLF, ready to be put above
/// the message.
pub fn sign(input: &SignatureInput<'_>, key: &SigningKey) -> Result<String, KeyError> {
    let fields = split_fields(input.head);
    let names = signed_names(&fields);
    let unsigned = unsigned_field(input, key, &names);
    let data = header_data(&fields, &names, &unsigned);
    let signature = key.sign(&data)?;
    let mut field = unsigned;
    append_folded_base64(&mut field, &STANDARD.encode(signature));
    field.push_str("\r\n");
    Ok(field)
}

/// What the signature covers (§3.7): each selected field, canonicalized, then this
/// DKIM-Signature field with an empty `b=` and without its final CRLF.
fn header_data(fields: &[Field<'_>], names: &[&str], unsigned: &str) -> Vec<u8> {
    let mut data = Vec::with_capacity(1024);
    for field in select(fields, names).into_iter().flatten() {
        relaxed_header(field.raw, &mut data);
    }
    relaxed_header(unsigned.as_bytes(), &mut data);
    data.truncate(data.len() - 2);
    data
}

/// The field up to and including `b=`, folded.
fn unsigned_field(input: &SignatureInput<'_>, key: &SigningKey, names: &[&str]) -> String {
    let mut out = Folded::new(FIELD_NAME);
    out.tag(&format!("v=1; a={};", key.algorithm().tag()));
    out.tag("c=relaxed/relaxed;");
    out.tag(&format!("d={};", input.domain));
    out.tag(&format!("s={};", input.selector));
    out.tag(&format!("t={};", input.timestamp));
    // h= may be longer than a line: FWS is allowed around its colons (§3.5).
    let mut h = String::from("h=");
    for (i, name) in names.iter().enumerate() {
        let last = i + 1 == names.len();
        let piece = if last { format!("{name};") } else { format!("{name}:") };
        if h.len() + piece.len() > LINE_WIDTH - 8 {
            out.tag(&h);
            h.clear();
        }
        h.push_str(&piece);
    }
    out.tag(&h);
    out.tag(&format!("bh={};", STANDARD.encode(input.body_hash)));
    out.tag("b=");
    out.text
}

/// A header field being written: pieces go on the current line while they fit, else on a new
/// line that starts with a tab (counted as 8 columns).
struct Folded {
    text: String,
    column: usize,
}

impl Folded {
    fn new(start: &str) -> Self {
        Self { text: start.to_string(), column: start.len() }
    }

    fn tag(&mut self, piece: &str) {
        let at_start = self.text.ends_with(": ");
        if !at_start && self.column + 1 + piece.len() > LINE_WIDTH {
            self.text.push_str("\r\n\t");
            self.column = 8;
        } else if !at_start {
            self.text.push(' ');
            self.column += 1;
        }
        self.text.push_str(piece);
        self.column += piece.len();
    }
}

/// The signature after `b=`: on the same line as far as it fits, then on lines of their own.
/// Verifiers drop the whitespace inside `b=` (§3.5), and the hash above ended at `b=`.
fn append_folded_base64(field: &mut String, b64: &str) {
    let column = field.rsplit("\r\n").next().map_or(0, |line| line.replace('\t', "        ").len());
    let first = LINE_WIDTH.saturating_sub(column).min(b64.len());
    field.push_str(&b64[..first]);
    for chunk in b64.as_bytes()[first..].chunks(LINE_WIDTH - 8) {
        field.push_str("\r\n\t");
        // Base64 is ASCII: every chunk is valid UTF-8.
        field.push_str(std::str::from_utf8(chunk).unwrap_or_default());
    }
}

#[cfg(test)]
#[path = "signature_tests.rs"]
mod tests;
