//! A message read once, as it streams into the spool: its header section kept, its body
//! canonicalized and hashed on the way (`bh=`), so signing at the end needs no second pass.

use ring::digest::{Context, SHA256};

use super::canonical::RelaxedBody;

/// The most header bytes kept; a header section beyond it is not signed. The same bound as
/// the `From:` reader of sender binding (`crate::header_from::MAX_HEAD`).
pub const MAX_HEAD: usize = crate::header_from::MAX_HEAD;

/// Where the reader stands: in the header section, or past the empty line that ends it.
enum Part {
    Head,
    /// Boxed: it is large, and `Part` is small while the head is read.
    Body(Box<(RelaxedBody, Context)>),
    /// The header section was too large: the message will not be signed.
    Unsignable,
}

/// Reads a message (CRLF lines) fed in pieces of any size.
pub struct MessageDigest {
    head: Vec<u8>,
    part: Part,
}

/// The header section and the body hash of a whole message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Digested {
    /// The fields, each with its CRLF; without the empty line.
    pub head: Vec<u8>,
    /// SHA-256 of the relaxed-canonical body.
    pub body_hash: Vec<u8>,
}

impl Default for MessageDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl MessageDigest {
    pub fn new() -> Self {
        Self { head: Vec::with_capacity(4096), part: Part::Head }
    }

    /// Takes the next bytes of the message.
    pub fn feed(&mut self, mut bytes: &[u8]) {
        if let Part::Head = self.part {
            // The empty line may straddle two pieces: look back three bytes.
            let from = self.head.len().saturating_sub(3);
            self.head.extend_from_slice(bytes);
            let end = if self.head.starts_with(b"\r\n") {
                Some((0, 2))
            } else {
                memchr::memmem::find(&self.head[from..], b"\r\n\r\n").map(|at| (from + at + 2, from + at + 4))
            };
            match end {
                Some((head_len, body_start)) => {
                    let body = self.head.split_off(body_start);
                    self.head.truncate(head_len);
                    self.part = Part::Body(Box::new((RelaxedBody::new(), Context::new(&SHA256))));
                    self.feed_body(&body);
                    return;
                }
                None if self.head.len() > MAX_HEAD => {
                    self.head = Vec::new();
                    self.part = Part::Unsignable;
                    return;
                }
                None => return,
            }
        }
        if let Part::Unsignable = self.part {
            bytes = &[];
        }
        self.feed_body(bytes);
    }

    fn feed_body(&mut self, bytes: &[u8]) {
        if let Part::Body(body) = &mut self.part {
            let (canon, hash) = &mut **body;
            canon.feed(bytes, &mut |piece| hash.update(piece));
        }
    }

    /// The header section and body hash; `None` when the header section was too large to keep.
    /// A message without the empty line is all header, with an empty body.
    pub fn finish(self) -> Option<Digested> {
        match self.part {
            Part::Unsignable => None,
            Part::Head => {
                let mut head = self.head;
                // A header section cut off without its final CRLF still ends its last field.
                if !head.is_empty() && !head.ends_with(b"\r\n") {
                    head.extend_from_slice(b"\r\n");
                }
                Some(Digested { head, body_hash: Context::new(&SHA256).finish().as_ref().to_vec() })
            }
            Part::Body(body) => {
                let (canon, mut hash) = *body;
                canon.finish(&mut |piece| hash.update(piece));
                Some(Digested { head: self.head, body_hash: hash.finish().as_ref().to_vec() })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dkim::canonical::relaxed_body;

    fn digest(pieces: &[&[u8]]) -> Option<Digested> {
        let mut d = MessageDigest::new();
        for p in pieces {
            d.feed(p);
        }
        d.finish()
    }

    fn sha(b: &[u8]) -> Vec<u8> {
        ring::digest::digest(&SHA256, b).as_ref().to_vec()
    }

    #[test]
    fn splits_head_from_body_whatever_the_pieces() {
        let msg: &[u8] = b"From: a@b.example\r\nSubject: x\r\n\r\nbody  line \r\n\r\n";
        let whole = digest(&[msg]).unwrap();
        assert_eq!(whole.head, b"From: a@b.example\r\nSubject: x\r\n");
        assert_eq!(whole.body_hash, sha(b"body line\r\n"));
        for cut in 0..msg.len() {
            assert_eq!(digest(&[&msg[..cut], &msg[cut..]]).as_ref(), Some(&whole), "cut at {cut}");
        }
    }

    #[test]
    fn a_message_with_no_body_hashes_the_empty_body() {
        let empty = sha(b"");
        assert_eq!(digest(&[b"From: a@b.example\r\n"]).unwrap().body_hash, empty);
        assert_eq!(digest(&[b"From: a@b.example\r\n\r\n"]).unwrap().body_hash, empty);
        assert_eq!(digest(&[b"From: a@b.example"]).unwrap().head, b"From: a@b.example\r\n");
        let no_head = digest(&[b"\r\nbody\r\n"]).unwrap();
        assert_eq!((no_head.head.as_slice(), no_head.body_hash), (&b""[..], sha(&relaxed_body(b"body\r\n"))));
    }

    #[test]
    fn a_huge_header_section_is_not_signed() {
        let line = b"X-Filler: 0123456789012345678901234567890123456789\r\n";
        let mut d = MessageDigest::new();
        for _ in 0..(MAX_HEAD / line.len() + 2) {
            d.feed(line);
        }
        d.feed(b"\r\nbody\r\n");
        assert_eq!(d.finish(), None);
    }
}
