//! Characters that change how text is shown without showing themselves: control characters,
//! bidirectional overrides and isolates, zero-width and other format characters. Names refuse
//! them at input; the CLI escapes them at output (`cli::output`).

/// True for a character no name may contain and no terminal should receive raw.
pub fn is_invisible(c: char) -> bool {
    c.is_control() || is_format(c) || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The format characters (Unicode category Cf) that reorder, join or hide text. Listed by
/// hand because the standard library has no category lookup; these are the ones used to make
/// one name look like another or to reorder a terminal line (Trojan Source, CVE-2021-42574).
fn is_format(c: char) -> bool {
    matches!(c,
        '\u{00AD}'                  // soft hyphen
        | '\u{061C}'                // Arabic letter mark
        | '\u{180E}'                // Mongolian vowel separator
        | '\u{200B}'..='\u{200F}'   // zero-width space, non-joiner, joiner; LRM, RLM
        | '\u{202A}'..='\u{202E}'   // bidi embeddings and overrides
        | '\u{2060}'..='\u{2064}'   // word joiner, invisible operators
        | '\u{2066}'..='\u{206F}'   // bidi isolates, deprecated format characters
        | '\u{FEFF}'                // zero-width no-break space (BOM)
        | '\u{FFF9}'..='\u{FFFB}'   // interlinear annotation
        | '\u{E0000}'..='\u{E007F}' // tags
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_bidi_and_zero_width_are_invisible() {
        for c in ['\0', '\x1b', '\n', '\t', '\x7f', '\u{9b}', '\u{202E}', '\u{2066}', '\u{200B}', '\u{FEFF}'] {
            assert!(is_invisible(c), "{:?}", c);
        }
        for c in ['a', 'é', 'İ', '\u{0307}', ' ', '-', '你'] {
            assert!(!is_invisible(c), "{:?}", c);
        }
    }
}
