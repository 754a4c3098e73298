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

/// A writer for the service's log that keeps one event on one line: the
/// log formatter writes each event as one buffer ending in a newline, and
/// this writes every other line break (and bidi or separator character)
/// in it as an escape, so a connector's text quoted in a log field cannot
/// start a line that looks like the service's own. The formatter escapes
/// ESC and C1 controls in fields itself, and its own colours pass.
#[derive(Debug)]
pub struct InertLines<W>(pub W);

impl<W: std::io::Write> std::io::Write for InertLines<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        let (body, end) = match text.strip_suffix('\n') {
            Some(body) => (body, "\n"),
            None => (&*text, ""),
        };
        if !body
            .chars()
            .any(|c| matches!(c, '\n' | '\r') || (is_hazard(c) && !c.is_control()))
        {
            self.0.write_all(buf)?;
            return Ok(buf.len());
        }
        let mut out = String::with_capacity(buf.len() + 8);
        for c in body.chars() {
            match c {
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                c if is_hazard(c) && !c.is_control() => {
                    let _ = write!(out, "\\u{{{:x}}}", c as u32);
                }
                c => out.push(c),
            }
        }
        out.push_str(end);
        self.0.write_all(out.as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
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
    fn a_log_event_stays_one_line() {
        use std::io::Write as _;
        let mut w = InertLines(Vec::new());
        let event = "\x1b[2mWARN\x1b[0m error=check failed: ok\nINFO forged line\r\u{202e}\n";
        w.write_all(event.as_bytes()).unwrap();
        let text = String::from_utf8(w.0).unwrap();
        assert_eq!(
            text,
            "\x1b[2mWARN\x1b[0m error=check failed: ok\\nINFO forged line\\r\\u{202e}\n"
        );
        assert_eq!(text.lines().count(), 1);
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
