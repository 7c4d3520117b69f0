//! Capture text is data in every output format (`src/report/escape.rs`), checked on a real
//! capture whose 502/503 bodies, `Server` and custom headers, targets and Host carry markup,
//! Markdown and terminal escape sequences (`captures/hostile-nginx-any.pcap`,
//! `captures/lab/scenarios-hostile.sh`):
//! - JSON carries the bytes as data (serde escapes them; they parse back identical);
//! - the terminal report shows control characters as `\x1b`, never sends them;
//! - the Markdown report, rendered as GitHub renders it (cmark-gfm with GitHub's extensions and
//!   raw HTML allowed), holds no HTML element, emphasis, code, link or table cell from the capture,
//!   and shows its text in full;
//! - a hostile file name stays text in the table and `flows`.
//!
//! The Markdown renderer is Debian's `cmark-gfm` (scripts/deps installs it for the tests); without
//! it the render checks are recorded as skipped (a failure under CI=true).

mod common;

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const ESC: char = '\x1b';

fn hostile() -> PathBuf {
    common::repo().join("captures/hostile-nginx-any.pcap")
}

fn run(args: &[&std::ffi::OsStr], columns: &str) -> String {
    let o = Command::new(common::bin())
        .args(args)
        .env_remove("NO_COLOR")
        .env("COLUMNS", columns)
        .stdin(Stdio::null())
        .output()
        .expect("run proxyscope");
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{args:?}: {e}");
    String::from_utf8(o.stdout).expect("UTF-8")
}

fn analyze(format: &str, file: &Path) -> String {
    run(
        &[
            "analyze".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
            file.as_os_str(),
        ],
        "120",
    )
}

/// A character a terminal would act on: C0 (but newline), DEL, C1, bidi overrides and isolates.
fn acts_on_terminal(c: char) -> bool {
    (c.is_control() && c != '\n') || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// What the backend and the client put on the wire (captures/lab/backend_hostile.py).
const SERVER: &str = "evil\x1b[31m<b>**srv**</b>|`x`\x1b]0;srv-title\x07";
const BODY_START: &str =
    "<img src=\"https://example.invalid/x.png\"><script>x()</script>\x1b[31m**b**`t`\x1b]0;T\x07";
const TARGET: &str =
    "/h/502/<img%20src=\"https://example.invalid/u.png\">/<script>x()</script>/**bold**/`tick`/a|b";
const HOST: &str = "**host**`x`|.invalid";

#[test]
fn json_carries_hostile_bytes_as_data() {
    let text = analyze("json", &hostile());
    assert!(
        !text.contains(ESC) && !text.contains('\x07'),
        "raw control characters in the JSON text"
    );
    assert!(text.contains("\\u001b[31m"), "ESC not escaped by serde");
    let v: Value = serde_json::from_str(&text).expect("valid JSON");
    let verdicts = v["verdicts"].as_array().unwrap();
    let back = verdicts
        .iter()
        .find(|x| x["signature"] == "gateway-error" && x["hop"] == "proxy->backend")
        .expect("the backend's own 502/503");
    assert_eq!(back["facts"]["server_header"], SERVER);
    assert!(
        back["facts"]["body"]
            .as_str()
            .unwrap()
            .starts_with(BODY_START),
        "{}",
        back["facts"]["body"]
    );
    assert!(back["summary"].as_str().unwrap().contains(SERVER));
    let front = verdicts
        .iter()
        .find(|x| x["signature"] == "gateway-error" && x["hop"] == "client->proxy")
        .expect("the client leg's 502/503");
    let ev: Vec<&str> = front["evidence"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["description"].as_str().unwrap())
        .collect();
    assert!(ev.iter().any(|d| d.contains(TARGET)), "{ev:?}");
    assert!(ev.iter().any(|d| d.contains(HOST)), "{ev:?}");
    // written again and read back, the same data
    let again: Value = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
    assert_eq!(again, v, "JSON does not round-trip");
}

#[test]
fn terminal_report_shows_escapes_never_sends_them() {
    for cols in ["80", "200"] {
        let s = run(&["analyze".as_ref(), hostile().as_os_str()], cols);
        let bad: Vec<char> = s.chars().filter(|c| acts_on_terminal(*c)).collect();
        assert!(
            bad.is_empty(),
            "{cols} columns: {bad:?} reach the terminal:\n{s}"
        );
        let flat: String = s.split_whitespace().collect();
        for shown in [
            "evil\\x1b[31m<b>**srv**</b>|`x`\\x1b]0;srv-title\\x07",
            "\\x1b[31m**b**`t`\\x1b]0;T\\x07",
            "<img",
        ] {
            let shown: String = shown.split_whitespace().collect();
            assert!(
                flat.contains(&shown),
                "{cols} columns: {shown:?} not shown in\n{s}"
            );
        }
    }
}

/// A file name is capture-adjacent text too: an ESC in it is shown, not sent.
#[test]
fn hostile_file_names_stay_text() {
    let dir = common::TempPath::new("hostile_file_names", "-dir");
    std::fs::create_dir_all(dir.path()).unwrap();
    let name = dir.path().join("evil\x1b[31m\x1b]0;t\x07.pcap");
    std::fs::copy(hostile(), &name).unwrap();
    let other = common::repo().join("captures/refused-nginx-backleg.pcap");
    for args in [
        vec!["analyze".as_ref(), name.as_os_str()],
        vec!["flows".as_ref(), name.as_os_str(), other.as_os_str()],
    ] {
        let s = run(&args, "200");
        assert!(!s.chars().any(acts_on_terminal), "{args:?}:\n{s}");
        assert!(s.contains("evil\\x1b[31m"), "{args:?}:\n{s}");
    }
    std::fs::remove_dir_all(dir.path()).unwrap();
    // and in the one-line error about it
    let o = Command::new(common::bin())
        .arg("analyze")
        .arg(&name)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    let e = String::from_utf8(o.stderr).unwrap();
    assert_eq!(e.lines().count(), 1, "{e}");
    assert!(!e.trim_end().chars().any(acts_on_terminal), "{e:?}");
    assert!(e.contains("evil\\x1b[31m"), "{e:?}");
}

/// `cmark-gfm` renders Markdown as GitHub does: the GFM extensions and raw HTML passed through
/// (GitHub sanitises afterwards; not filtering here makes any leak visible). None when missing.
fn render_gfm(md: &str) -> Option<String> {
    use std::io::Write;
    let child = Command::new("cmark-gfm")
        .args([
            "--unsafe",
            "-e",
            "table",
            "-e",
            "strikethrough",
            "-e",
            "autolink",
            "-e",
            "tasklist",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(c) => c,
        Err(_) => {
            common::skip(
                "cmark-gfm is not installed (apt-get install cmark-gfm; scripts/deps --test does)",
            );
            return None;
        }
    };
    child
        .stdin
        .take()
        .unwrap()
        .write_all(md.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    Some(String::from_utf8(o.stdout).unwrap())
}

/// The text of HTML: tags dropped, the five entities cmark writes decoded.
fn html_text(h: &str) -> String {
    let mut out = String::new();
    let mut in_tag = false;
    for c in h.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => in_tag = false,
            c if !in_tag => out.push(c),
            _ => {}
        }
    }
    out.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

/// The elements (tag names) of an HTML fragment, in order.
fn tags(h: &str) -> Vec<String> {
    h.split('<')
        .skip(1)
        .filter(|t| !t.starts_with('/') && !t.starts_with('!'))
        .map(|t| {
            t.chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect::<String>()
                .to_ascii_lowercase()
        })
        .collect()
}

/// Every `<tag>…</tag>` content of an HTML fragment.
fn contents<'a>(h: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = h;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let j = after.find(&close).expect("closed");
        out.push(&after[..j]);
        rest = &after[j..];
    }
    out
}

#[test]
fn markdown_renders_capture_text_as_text() {
    let md = analyze("markdown", &hostile());
    assert!(
        !md.chars().any(acts_on_terminal),
        "control characters in the Markdown"
    );
    let Some(html) = render_gfm(&md) else { return };
    let v: Value = serde_json::from_str(&analyze("json", &hostile())).unwrap();
    let n_verdicts = v["verdicts"].as_array().unwrap().len();
    assert!(n_verdicts >= 3);

    // Only the elements the report writes itself.
    let allowed = [
        "h2", "h3", "p", "strong", "code", "table", "thead", "tbody", "tr", "th", "td", "ul", "li",
    ];
    for t in tags(&html) {
        assert!(
            allowed.contains(&t.as_str()),
            "<{t}> in the rendered report:\n{html}"
        );
    }
    assert_eq!(
        contents(&html, "h3").len(),
        n_verdicts + 2,
        "one heading per verdict, Capture and Endpoints"
    );
    // Bold: only the report's own words.
    for s in contents(&html, "strong") {
        let own = s.ends_with(" verdicts")
            || s == "Cause:"
            || ["critical", "warning", "info"].contains(&s);
        assert!(own, "<strong>{s}</strong> is not the report's");
    }
    // Code: signatures, addresses, filters, the command, the path, file names, warning kinds.
    for c in contents(&html, "code") {
        for word in [
            "evil", "srv", "tick", "bold", "script", "img", "**", "`", "host**",
        ] {
            assert!(!c.contains(word), "<code>{c}</code> holds capture text");
        }
    }
    // Tables: every row has its header's number of cells (no `|` from the capture split one).
    for table in contents(&html, "table") {
        let head = contents(table, "thead")[0].matches("<th").count();
        for row in contents(table, "tbody")[0].split("<tr>").skip(1) {
            assert_eq!(row.matches("<td").count(), head, "row {row}");
        }
    }
    // The capture's text is all there, as text.
    let text = html_text(&html);
    let flat: String = text.split_whitespace().collect();
    for shown in [
        "Server: evil\\x1b[31m<b>**srv**</b>|`x`\\x1b]0;srv-title\\x07",
        "<img src=\"https://example.invalid/x.png\"><script>x()</script>\\x1b[31m**b**`t`",
        TARGET,
        "/h/503/[link](https://example.invalid/)/__u__/~~s~~/$x$/%1b[31m",
        HOST,
        "<center><h1>502 Bad Ga",
        "/down/<h1>down</h1>",
    ] {
        let shown: String = shown.split_whitespace().collect();
        assert!(
            flat.contains(&shown),
            "{shown:?} not shown in the rendered text:\n{text}"
        );
    }
}

/// Each escape, in every place the Markdown report puts text (paragraph, list item, table cell,
/// code span in and out of a table), renders as exactly the characters given.
#[test]
fn markdown_escapes_render_as_the_exact_text() {
    use proxyscope::report::escape::{md_code, md_text, terminal};
    let samples = [
        "<img src=\"https://example.invalid/x.png\">",
        "<script>alert(1)</script>",
        "<!-- c --> <?php ?> <![CDATA[x]]> &amp; &#60;",
        "**bold** __u__ *i* _i_ ~~s~~ ~s~",
        "`tick` ``two`` ```three```",
        "a|b | c \\| d",
        "[link](https://example.invalid/) ![img](x.png) [ref] [^1]",
        "https://example.invalid/p www.example.invalid x@example.invalid @team",
        "# h  - li  + li  1. ol  > q  === ---",
        "$x^2$ $$y$$ :smile: :+1:",
        "\x1b[31mred\x1b[0m \x1b]0;title\x07 \r\n\t \u{202e}rlo",
        "- [ ] task",
        "\\*not bold\\* \\",
        "   indented",
        "        code?",
    ];
    let mut md = String::new();
    for s in &samples {
        md.push_str(&format!("{}\n\n- {}\n\n", md_text(s), md_text(s)));
        md.push_str(&format!(
            "| a | b |\n|---|---|\n| {} | {} |\n\n",
            md_text(s),
            md_code(s, true)
        ));
        md.push_str(&format!("{}\n\n", md_code(s, false)));
    }
    let Some(html) = render_gfm(&md) else { return };
    for t in tags(&html) {
        assert!(
            ["p", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code"]
                .contains(&t.as_str()),
            "<{t}> rendered:\n{html}"
        );
    }
    // Each sample appears, exactly, as the content of each place it was put.
    let cells: Vec<String> = ["p", "li", "td", "code"]
        .iter()
        .flat_map(|t| contents(&html, t))
        .map(html_text)
        .collect();
    for s in &samples {
        let want = terminal(s).trim().to_string();
        let n = cells.iter().filter(|c| c.trim() == want).count();
        // paragraph, list item, cell, code in cell (its <td> and <code>), code span
        assert!(n >= 5, "{s:?} rendered exactly {n} times, want 5+:\n{html}");
    }
}
