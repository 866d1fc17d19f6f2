//! Escaping text into XML and HTML (JUnit, SVG, the HTML report) and into
//! Markdown table cells.

use std::borrow::Cow;

/// Whether XML 1.0 allows the character at all (C0 controls other than tab,
/// newline and carriage return are forbidden, even escaped).
fn xml_allowed(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r') || (c >= ' ' && c != '\u{FFFE}' && c != '\u{FFFF}')
}

/// `text` safe inside XML or HTML text and double- or single-quoted
/// attributes: `& < > " '` escaped, forbidden characters replaced by U+FFFD.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text
        .chars()
        .any(|c| matches!(c, '&' | '<' | '>' | '"' | '\'') || !xml_allowed(c))
    {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c if !xml_allowed(c) => out.push('\u{FFFD}'),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// `text` as one Markdown table cell: HTML-escaped, `|` escaped, on one line.
pub fn md_cell(text: &str) -> String {
    escape(text).replace('|', "\\|").replace(['\r', '\n'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup_and_drops_forbidden_characters() {
        assert!(matches!(escape("plain text"), Cow::Borrowed(_)));
        assert_eq!(
            escape(r#"<a href="x">'&'</a>"#),
            "&lt;a href=&quot;x&quot;&gt;&apos;&amp;&apos;&lt;/a&gt;"
        );
        assert_eq!(escape("bell\u{7}tab\tnl\n"), "bell\u{FFFD}tab\tnl\n");
    }

    #[test]
    fn markdown_cells_stay_in_their_cell() {
        assert_eq!(md_cell("a|b\nc <d>"), "a\\|b c &lt;d&gt;");
    }
}
