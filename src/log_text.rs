//! Client text in log lines: the one escaping rule for every value that came from a client
//! (login names, EHLO names, addresses, mechanism names). A client must not be able to end a
//! log line early, forge a field or a whole record, or send escape sequences to whoever reads
//! the log on a terminal.
//!
//! The rule: the value is written in double quotes; printable ASCII stays as it is except `"`
//! and `\`, which get a backslash; `\n`, `\r` and `\t` become those escapes, and every other
//! character (controls, DEL, anything outside ASCII, so also bidi overrides) becomes `\u{…}`.
//! An absent value is written `-`, unquoted, the same in every line.

use std::fmt;

/// A client-supplied value, escaped when displayed: `info!(user = %LogText::new(&name), ...)`.
#[derive(Debug, Clone, Copy)]
pub struct LogText<'a>(Option<&'a str>);

impl<'a> LogText<'a> {
    pub fn new(value: &'a str) -> Self {
        Self(Some(value))
    }

    /// `None` is written `-`.
    pub fn or_dash(value: Option<&'a str>) -> Self {
        Self(value)
    }
}

impl fmt::Display for LogText<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use fmt::Write as _;
        let Some(value) = self.0 else { return f.write_str("-") };
        f.write_char('"')?;
        for c in value.chars() {
            match c {
                '"' => f.write_str("\\\"")?,
                '\\' => f.write_str("\\\\")?,
                '\n' => f.write_str("\\n")?,
                '\r' => f.write_str("\\r")?,
                '\t' => f.write_str("\\t")?,
                ' '..='~' => f.write_char(c)?,
                other => write!(f, "\\u{{{:x}}}", other as u32)?,
            }
        }
        f.write_char('"')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_could_forge_or_break_a_line() {
        for (value, want) in [
            ("ann@example.com", r#""ann@example.com""#),
            ("a\nb decision=allow", r#""a\nb decision=allow""#),
            ("q\"uote\\", r#""q\"uote\\""#),
            ("\r\t\u{1b}[2J", r#""\r\t\u{1b}[2J""#),
            ("x\u{202e}y\u{e9}", r#""x\u{202e}y\u{e9}""#),
            ("", r#""""#),
        ] {
            assert_eq!(LogText::new(value).to_string(), want, "{value:?}");
        }
        assert_eq!(LogText::or_dash(None).to_string(), "-");
    }
}
