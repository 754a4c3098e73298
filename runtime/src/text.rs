//! Guest-controlled text made safe to show: every place that prints text a
//! connector chose (log lines, error messages, audit fields, names, ids) to
//! a terminal, a table or the service's log passes it through [`clean`],
//! so it cannot move the cursor, recolour, clear the screen, start a new
//! line that looks like the host's own, or reorder text with bidi
//! controls. The dashboard sets text with `textContent`, never as HTML.

use std::fmt::Write;

/// Characters that change how text is laid out or interpreted rather than
/// what it says: C0 and C1 controls (ESC, CR, LF, BEL, backspace, …), DEL,
/// bidi embeddings, overrides and isolates, and the line and paragraph
/// separators.
pub fn is_hazard(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
                | '\u{2028}' | '\u{2029}' | '\u{061c}'
        )
}

/// `text` with every hazard written as a visible escape (`\n`, `\t`,
/// `\u{1b}`); text without hazards comes back unchanged.
pub fn clean(text: &str) -> String {
    if !text.chars().any(is_hazard) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if is_hazard(c) => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

/// At most `max` bytes of `text`, cut at a character boundary, with a note
/// of how much was cut.
pub fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_string();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} more bytes cut)", &text[..end], text.len() - end)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hazards_become_visible_escapes() {
        assert_eq!(clean("plain text, ünïcode ✓"), "plain text, ünïcode ✓");
        assert_eq!(
            clean("ok\n  try 1 GET https://forged → 200\x1b[2K\r"),
            "ok\\n  try 1 GET https://forged → 200\\u{1b}[2K\\r"
        );
        assert_eq!(
            clean("a\u{202e}b\u{7f}c\u{9b}d"),
            "a\\u{202e}b\\u{7f}c\\u{9b}d"
        );
        assert!(!clean("\u{2028}\u{85}\u{7}").chars().any(is_hazard));
    }

    #[test]
    fn truncation_keeps_characters_whole() {
        assert_eq!(truncate("short", 10), "short");
        let cut = truncate("ééééé", 3);
        assert!(
            cut.starts_with('é') && cut.contains("8 more bytes cut"),
            "{cut}"
        );
    }
}
