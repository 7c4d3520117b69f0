//! Escaping of text for every output format. Owns: the one place that decides how a string that
//! may come from the capture (HTTP bodies, targets, headers, `Server`, SNI, Host, file names,
//! anything derived from packets) is written to a terminal, into Markdown, or into HTML. Must not:
//! shorten, reword or otherwise change what the text says — escaping is lossless to the reader.
//!
//! Every formatter passes every string it did not write itself through one of these functions.
//! The report cannot tell capture text from tool text once a summary has been built (a summary
//! quotes the body of a 502), so whole fields are escaped; tool text contains no control
//! character and no markup, so escaping leaves it reading the same.
//!
//! - [`terminal`]: control characters (C0, DEL, C1) and the Unicode format characters that
//!   reorder or hide text (bidi overrides, zero-width joiners) become visible escapes (`\x1b`,
//!   `\n`, `\u{202e}`), so a capture can neither drive the terminal (colours, titles, cursor
//!   moves) nor break a table row. Backslashes are kept as they are.
//! - [`md_text`]: Markdown inline text that renders as exactly the characters given — no HTML,
//!   no emphasis, code, links, images, autolinks, math, strikethrough or table cell breaks.
//! - [`md_code`]: a Markdown code span holding the text literally (backtick runs inside are
//!   outnumbered by the fence).
//! - [`html`]: HTML text or attribute value (`&`, `<`, `>`, `"`, `'` as entities).
//!
//! JSON needs nothing here: serde_json escapes control characters and quotes, and the text
//! round-trips as data (`tests/hostile.rs`).

use std::borrow::Cow;
use std::fmt::Write;

/// True for the characters [`terminal`] escapes.
fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(c,
            // zero-width space / joiners, LRM/RLM, bidi embeddings and overrides,
            // word joiner and invisible operators, bidi isolates, BOM
            '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}' | '\u{feff}')
}

/// The text with control and invisible formatting characters shown as escapes; borrowed when
/// there is nothing to escape.
pub fn terminal(s: &str) -> Cow<'_, str> {
    // Printable ASCII never needs an escape (the format characters are all outside ASCII): one
    // range check per byte before decoding characters.
    if s.bytes().all(|b| (b' '..=b'~').contains(&b)) || !s.chars().any(needs_escape) {
        return Cow::Borrowed(s);
    }
    let mut o = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => o.push_str("\\n"),
            '\r' => o.push_str("\\r"),
            '\t' => o.push_str("\\t"),
            c if needs_escape(c) && (c as u32) < 0x80 => {
                let _ = write!(o, "\\x{:02x}", c as u32);
            }
            c if needs_escape(c) => {
                let _ = write!(o, "\\u{{{:x}}}", c as u32);
            }
            c => o.push(c),
        }
    }
    Cow::Owned(o)
}

/// ASCII punctuation that starts or ends a Markdown (CommonMark + GitHub) inline construct
/// wherever it stands: code, emphasis, strikethrough, links and images, raw HTML and
/// entities, table cell breaks, math.
fn md_special(c: char) -> bool {
    matches!(
        c,
        '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '&' | '|' | '~' | '$' | '!'
    )
}

/// Markdown inline text that renders as the characters of `s` (after [`terminal`]): safe in a
/// paragraph, a list item, a heading and a table cell. Line-start constructs (`#`, `>`, `-`,
/// `+`, `=`, `1.`) are escaped too, so the text may also open a line.
pub fn md_text(s: &str) -> String {
    let s = terminal(s);
    // Leading spaces are invisible in Markdown anyway, and four of them after a list marker make
    // an indented code block: they go.
    let chars: Vec<char> = s.trim_start_matches(' ').chars().collect();
    let mut o = String::with_capacity(s.len() + 16);
    let first = (!chars.is_empty()).then_some(0);
    for (i, &c) in chars.iter().enumerate() {
        // Every rule below is about an ASCII punctuation character.
        if !c.is_ascii_punctuation() {
            o.push(c);
            continue;
        }
        let next = chars.get(i + 1).copied();
        let at_start = Some(i) == first;
        let escape = md_special(c)
            || (at_start && matches!(c, '#' | '-' | '+' | '=' | '*'))
            // `1.` / `1)` opening a line is an ordered list
            || (matches!(c, '.' | ')')
                && next.is_none_or(|n| n == ' ')
                && first.is_some_and(|f| f < i && chars[f..i].iter().all(|d| d.is_ascii_digit())))
            // GitHub autolinks: `http://`, `https://`, `ftp://` and `www.`; emoji `:name:`
            || (c == ':' && next.is_some_and(|n| n == '/' || n.is_ascii_alphabetic() || n == '+'))
            || (c == '.'
                && i >= 3
                && chars[i - 3..i].iter().collect::<String>().eq_ignore_ascii_case("www")
                && (i == 3 || !chars[i - 4].is_alphanumeric()))
            // @mentions
            || c == '@';
        // An e-mail address autolinks whatever the escapes (GitHub's extension reads the text
        // after they are resolved): a code span around the `@` is the one thing that breaks it.
        let email = c == '@'
            && i > 0
            && (chars[i - 1].is_ascii_alphanumeric()
                || matches!(chars[i - 1], '.' | '-' | '_' | '+'))
            && next.is_some_and(|n| n.is_ascii_alphanumeric());
        if email {
            o.push_str("`@`");
            continue;
        }
        if escape {
            o.push('\\');
        }
        o.push(c);
    }
    o
}

/// A Markdown code span showing `s` (after [`terminal`]) literally. In a table cell (`in_table`)
/// every `|` is written `\|`, which GitHub's table parser turns back into `|` before the code
/// span is read.
pub fn md_code(s: &str, in_table: bool) -> String {
    let s = terminal(s);
    let longest = s
        .split(|c| c != '`')
        .map(|run| run.len())
        .max()
        .unwrap_or(0);
    let fence = "`".repeat(longest + 1);
    // A space inside each end keeps a leading/trailing backtick off the fence; CommonMark strips
    // one space at both ends when both are present.
    let pad = if s.starts_with('`') || s.ends_with('`') || s.starts_with(' ') && s.ends_with(' ') {
        " "
    } else {
        ""
    };
    let body = if in_table {
        Cow::Owned(s.replace('|', "\\|"))
    } else {
        s
    };
    if body.is_empty() {
        // An empty code span does not exist in Markdown; show nothing rather than two backticks.
        return String::new();
    }
    format!("{fence}{pad}{body}{pad}{fence}")
}

/// HTML text content or a quoted attribute value showing `s` (after [`terminal`]).
pub fn html(s: &str) -> String {
    let s = terminal(s);
    let mut o = String::with_capacity(s.len() + 16);
    // The five characters are ASCII, so the text between them is copied as whole slices.
    let mut from = 0;
    for (i, b) in s.bytes().enumerate() {
        let entity = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            b'"' => "&quot;",
            b'\'' => "&#39;",
            _ => continue,
        };
        o.push_str(&s[from..i]);
        o.push_str(entity);
        from = i + 1;
    }
    o.push_str(&s[from..]);
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOSTILE: &str = "<img src=\"https://example.invalid/x.png\"> <script>alert(1)</script> **bold** `tick` a|b \x1b[31mred\x1b[0m \x1b]0;title\x07 \r\n\t\u{202e}evil \u{9b}31m";

    #[test]
    fn terminal_shows_controls_as_escapes() {
        let t = terminal(HOSTILE);
        assert!(!t.chars().any(|c| c.is_control()), "{t}");
        assert!(t.contains("\\x1b[31mred\\x1b[0m"), "{t}");
        assert!(t.contains("\\x1b]0;title\\x07"), "{t}");
        assert!(t.contains("\\r\\n\\t"), "{t}");
        assert!(t.contains("\\u{202e}evil"), "{t}");
        assert!(t.contains("\\u{9b}31m"), "{t}");
        assert!(
            t.contains("<img src="),
            "markup is not the terminal's business: {t}"
        );
    }

    #[test]
    fn terminal_borrows_clean_text() {
        let s = "502 Bad Gateway from 10.78.1.1:80 (Server: nginx/1.22.1) — ok «ü»";
        assert!(matches!(terminal(s), Cow::Borrowed(_)));
        assert_eq!(terminal(s), s);
    }

    #[test]
    fn md_text_escapes_every_inline_construct() {
        let m = md_text(HOSTILE);
        // every occurrence of a construct's opening character is backslash-escaped
        for raw in ["<img", "<script", "**bold", "`tick", "|b", "://"] {
            for (i, _) in m.match_indices(raw) {
                assert!(m[..i].ends_with('\\'), "{raw:?} unescaped in {m}");
            }
        }
        assert!(!m.chars().any(|c| c.is_control()), "{m}");
        assert!(
            m.contains("\\<img src=\"https\\://example.invalid/x.png\"\\>"),
            "{m}"
        );
        assert!(m.contains("\\*\\*bold\\*\\*"), "{m}");
        assert!(m.contains("\\`tick\\`"), "{m}");
        assert!(m.contains("a\\|b"), "{m}");
        assert!(m.contains("\\\\x1b\\[31mred"), "{m}");
    }

    #[test]
    fn md_text_escapes_line_starts_and_autolinks() {
        assert_eq!(md_text("# title"), "\\# title");
        assert_eq!(md_text("- item"), "\\- item");
        assert_eq!(md_text("12. item"), "12\\. item");
        assert_eq!(
            md_text("see www.example.invalid"),
            "see www\\.example.invalid"
        );
        assert_eq!(md_text("a@b.invalid"), "a`@`b.invalid");
        assert_eq!(md_text("@team"), "\\@team");
        assert_eq!(md_text(":smile:"), "\\:smile:");
        assert_eq!(md_text("$x$"), "\\$x\\$");
        // addresses and ordinary prose stay readable
        assert_eq!(
            md_text("10.78.1.1:80 answered 502 (Server: nginx/1.22.1) - after 1.5 s"),
            "10.78.1.1:80 answered 502 (Server: nginx/1.22.1) - after 1.5 s"
        );
        assert_eq!(md_text("[::1]:80"), "\\[::1\\]:80");
    }

    #[test]
    fn md_code_outnumbers_backtick_runs() {
        assert_eq!(md_code("a", false), "`a`");
        assert_eq!(md_code("a`b", false), "``a`b``");
        assert_eq!(md_code("x ``` y", false), "````x ``` y````");
        assert_eq!(md_code("`start", false), "`` `start ``");
        assert_eq!(md_code("a|b", true), "`a\\|b`");
        assert_eq!(md_code("a|b", false), "`a|b`");
        assert_eq!(md_code("\x1b[31m", false), "`\\x1b[31m`");
        assert_eq!(md_code("", false), "");
    }

    #[test]
    fn html_escapes_markup_and_quotes() {
        let h = html(HOSTILE);
        assert!(
            !h.contains('<') && !h.contains('>') && !h.contains('"'),
            "{h}"
        );
        assert!(h.starts_with("&lt;img src=&quot;https://example.invalid/x.png&quot;&gt;"));
        assert!(h.contains("\\x1b[31m"));
        assert_eq!(html("a & b 'c'"), "a &amp; b &#39;c&#39;");
    }

    /// The byte-level fast paths of `terminal` and `html` give what the character-by-character
    /// definitions give, for every ASCII character and around multi-byte characters.
    #[test]
    fn fast_paths_agree_with_the_character_definitions() {
        let mut cases: Vec<String> = (0u8..0x80)
            .flat_map(|b| [format!("a{}b", b as char), format!("a{}é", b as char)])
            .collect();
        cases.extend(
            ["", "plain text", "é<ü>\u{202e}&'\"", "\u{85}x", "日本<語>"].map(String::from),
        );
        for s in &cases {
            let slow_needs = s.chars().any(needs_escape);
            assert_eq!(
                matches!(terminal(s), Cow::Owned(_)),
                slow_needs,
                "terminal({s:?})"
            );
            let t = terminal(s);
            let want: String = t
                .chars()
                .map(|c| match c {
                    '&' => "&amp;".to_string(),
                    '<' => "&lt;".to_string(),
                    '>' => "&gt;".to_string(),
                    '"' => "&quot;".to_string(),
                    '\'' => "&#39;".to_string(),
                    c => c.to_string(),
                })
                .collect();
            assert_eq!(html(s), want, "html({s:?})");
        }
    }
}
