//! The one way a `list` prints its rows as text: aligned columns under a header line for a
//! person at a terminal, tab-separated lines without a header for a script reading a pipe.
//!
//! Every cell goes through [`escape`], so a name with control or bidi characters never reaches
//! the terminal raw and a tab inside a name cannot make an extra column. Columns are aligned by
//! display width (`unicode-width`): a CJK character takes two cells, a combining mark none.
//!
//! ```text
//! ID  MASKED       NAME     PERMISSIONS  ALLOW        (terminal)
//! 3   ****…A1B2C   deploy   smtp,send    any
//! 3\t****…A1B2C\tdeploy\tsmtp,send\tany               (pipe)
//! ```

use std::io::{IsTerminal, Write};

use unicode_width::UnicodeWidthStr;

use super::output::escape;

/// Spaces between two aligned columns.
const GAP: usize = 2;

/// Which of the two text forms to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Header line, columns padded to a common width: for people.
    Aligned,
    /// One tab-separated line per row, no header: for scripts (the form since the first
    /// release; scripts depend on it).
    Tabs,
}

impl Layout {
    /// Aligned when standard output is a terminal, tabs otherwise.
    pub fn for_stdout() -> Self {
        if std::io::stdout().is_terminal() { Self::Aligned } else { Self::Tabs }
    }
}

/// Rows under named columns. Cells are raw text; the table escapes them.
#[derive(Debug, Clone)]
pub struct Table {
    headers: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&'static str]) -> Self {
        Self { headers: headers.to_vec(), rows: Vec::new() }
    }

    /// Adds a row. In the tab form, trailing empty cells are left out, so an optional last
    /// column (a sender's Unicode form) adds a field only where it has a value.
    pub fn push(&mut self, cells: Vec<String>) {
        self.rows.push(cells.iter().map(|c| escape(c).into_owned()).collect());
    }

    /// Prints the table on standard output in the form [`Layout::for_stdout`] picks.
    pub fn print(&self) {
        let text = self.render(Layout::for_stdout());
        // A closed pipe (`relaykey account list | head -1`) is not an error worth a panic.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }

    pub fn render(&self, layout: Layout) -> String {
        match layout {
            Layout::Tabs => self.render_tabs(),
            Layout::Aligned => self.render_aligned(),
        }
    }

    fn render_tabs(&self) -> String {
        let mut out = String::new();
        for row in &self.rows {
            out.push_str(&row[..filled(row)].join("\t"));
            out.push('\n');
        }
        out
    }

    fn render_aligned(&self) -> String {
        let columns = self.rows.iter().map(Vec::len).chain([self.headers.len()]).max().unwrap_or(0);
        let mut widths = vec![0usize; columns];
        let header: Vec<String> = self.headers.iter().map(|h| h.to_string()).collect();
        for row in self.rows.iter().chain([&header]) {
            for (width, cell) in widths.iter_mut().zip(row) {
                *width = (*width).max(cell.width());
            }
        }
        let mut out = String::new();
        for row in [&header].into_iter().chain(&self.rows) {
            // Padding is for the columns to the right; after the last filled cell, none.
            let used = filled(row);
            for (i, (cell, width)) in row.iter().zip(&widths).take(used).enumerate() {
                out.push_str(cell);
                if i + 1 < used {
                    out.extend(std::iter::repeat_n(' ', width - cell.width() + GAP));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// How many leading cells of `row` to print: up to its last non-empty one.
fn filled(row: &[String]) -> usize {
    row.iter().rposition(|c| !c.is_empty()).map_or(0, |last| last + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Table {
        let mut t = Table::new(&["ID", "NAME", "ALLOW"]);
        t.push(vec!["1".into(), "deploy".into(), "any".into()]);
        t.push(vec!["12".into(), "你好".into(), "10.0.0.0/8".into()]);
        t
    }

    #[test]
    fn tab_form_has_no_header_and_no_padding() {
        assert_eq!(sample().render(Layout::Tabs), "1\tdeploy\tany\n12\t你好\t10.0.0.0/8\n");
    }

    #[test]
    fn aligned_form_pads_by_display_width_under_a_header() {
        let text = sample().render(Layout::Aligned);
        assert_eq!(text, "ID  NAME    ALLOW\n1   deploy  any\n12  你好    10.0.0.0/8\n");
    }

    #[test]
    fn control_characters_are_escaped_in_both_forms() {
        let mut t = Table::new(&["NAME", "X"]);
        t.push(vec!["a\tb\x1b[2J\u{202e}".into(), "x".into()]);
        for layout in [Layout::Tabs, Layout::Aligned] {
            let text = t.render(layout);
            assert!(text.contains("a\\tb\\x1b[2J\\u{202e}"), "{text:?}");
            assert!(!text.contains('\x1b') && !text.contains('\u{202e}'), "{text:?}");
        }
        assert_eq!(t.render(Layout::Tabs).matches('\t').count(), 1);
    }

    #[test]
    fn trailing_empty_cells_are_left_out_of_the_tab_form_only() {
        let mut t = Table::new(&["SENDER", "KIND", "UNICODE"]);
        t.push(vec!["example.com".into(), "domain".into(), String::new()]);
        t.push(vec!["xn--bcher-kva.example".into(), "domain".into(), "(bücher.example)".into()]);
        assert_eq!(t.render(Layout::Tabs), "example.com\tdomain\nxn--bcher-kva.example\tdomain\t(bücher.example)\n");
        let aligned = t.render(Layout::Aligned);
        assert_eq!(aligned.lines().next(), Some("SENDER                 KIND    UNICODE"));
        assert_eq!(aligned.lines().nth(1), Some("example.com            domain"));
    }

    #[test]
    fn an_empty_list_is_nothing_in_a_pipe_and_a_header_on_a_terminal() {
        let t = Table::new(&["ID", "NAME"]);
        assert_eq!(t.render(Layout::Tabs), "");
        assert_eq!(t.render(Layout::Aligned), "ID  NAME\n");
    }
}
