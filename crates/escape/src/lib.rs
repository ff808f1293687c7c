//! Untrusted text made safe to print.
//!
//! Registries, image archives and images are not trusted, yet their text
//! (error envelopes, member names, config fields) ends up in messages on a
//! terminal. A control character there is an instruction to the terminal:
//! `ESC [ 2 J` clears the screen, a carriage return overwrites the line, a
//! right-to-left override reorders it. [`escape`] turns every such character
//! into visible text, so a message shows what the text *is*.
//!
//! Escaping is idempotent: the output holds no character that would be
//! escaped again, and a backslash is left alone. A library can escape the
//! untrusted parts of the messages it builds, and a program can escape the
//! whole message it prints on top of that, without `\x1b` turning into
//! `\\x1b`.
#![deny(missing_docs)]

use std::borrow::Cow;
use std::fmt::Write as _;
use std::path::Path;

/// The text with every control character, line separator and bidirectional
/// formatting character written as an escape (`\n`, `\r`, `\t`, `\x1b`,
/// `\u{202e}`). Borrows when there is nothing to escape.
pub fn escape(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        push_escaped(&mut out, c);
    }
    Cow::Owned(out)
}

/// [`escape`] for a path, with bytes that are not UTF-8 shown as U+FFFD.
pub fn escape_path(path: &Path) -> String {
    escape(&path.to_string_lossy()).into_owned()
}

/// Whether `c` would do something on a terminal other than show a glyph.
fn needs_escape(c: char) -> bool {
    c.is_control() || is_layout_control(c)
}

/// Characters outside the Cc category that still move or reorder text:
/// line and paragraph separators, and the bidirectional marks, embeddings,
/// overrides and isolates ("Trojan Source", CVE-2021-42574).
fn is_layout_control(c: char) -> bool {
    matches!(
        c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'
            ..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

fn push_escaped(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        c if c.is_ascii() && needs_escape(c) => {
            // Writing to a String cannot fail.
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        c if needs_escape(c) => {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
        c => out.push(c),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn terminal_sequences_become_visible() {
        assert_eq!(escape("a\x1b[2J\x1b[Hfake"), "a\\x1b[2J\\x1b[Hfake");
        assert_eq!(escape("line\nnext\r\tx\x7f"), "line\\nnext\\r\\tx\\x7f");
        assert_eq!(escape("\u{9b}31m"), "\\u{9b}31m");
        assert_eq!(escape("abc\u{202e}fed"), "abc\\u{202e}fed");
    }

    #[test]
    fn printable_text_is_borrowed_unchanged() {
        for text in ["", "busybox:latest", "naïve 日本 \\x1b", "a\"b'c"] {
            assert!(matches!(escape(text), Cow::Borrowed(t) if t == text));
        }
    }

    #[test]
    fn paths_are_escaped_lossily() {
        use std::os::unix::ffi::OsStrExt as _;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/a/\x1b]0;x\x07/\xff"));
        assert_eq!(escape_path(path), "/a/\\x1b]0;x\\x07/\u{fffd}");
    }

    proptest! {
        #[test]
        fn output_has_nothing_left_to_escape(text in any::<String>()) {
            let once = escape(&text).into_owned();
            prop_assert!(!once.chars().any(needs_escape));
            prop_assert_eq!(escape(&once), once.as_str());
        }
    }
}

/// The README's example, compiled as a doc test so it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
