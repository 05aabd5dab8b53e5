//! The trailer that ends every spool message file and proves it complete: the lengths of the
//! message and of the envelope stored after it, and a checksum over both.

/// `\nRKQ1 <envelope length:10> <message length:16> <FNV-1a of both:16 hex>\n`
pub const TRAILER_LEN: usize = 51;

pub fn trailer(env_len: usize, msg_len: u64, checksum: u64) -> String {
    format!("\nRKQ1 {env_len:010} {msg_len:016} {checksum:016x}\n")
}

/// Parses a trailer into (envelope length, message length, checksum).
pub fn parse_trailer(t: &[u8]) -> Option<(u64, u64, u64)> {
    let text = std::str::from_utf8(t).ok()?;
    let rest = text.strip_prefix("\nRKQ1 ")?.strip_suffix('\n')?;
    let mut parts = rest.split(' ');
    let env = parts.next()?.parse().ok()?;
    let msg = parts.next()?.parse().ok()?;
    let sum = u64::from_str_radix(parts.next()?, 16).ok()?;
    parts.next().is_none().then_some((env, msg, sum))
}

/// FNV-1a, 64 bits: catches a file that looks complete after a crash but is not, cheaply.
#[derive(Clone, Copy)]
pub struct Fnv(pub u64);

impl Fnv {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }
    pub fn update(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}
