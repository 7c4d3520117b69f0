//! Output format habits, through the built binary: piped output is the same table as on a
//! terminal, without colour (scripts ask for `--format json`); `-o FILE` picks the format from
//! the extension (`.json`, `.md`, `.html`) unless `--format` says otherwise; the table fits the
//! width (`COLUMNS`, the terminal's on a tty, 100 otherwise), and 80 columns stay readable.

mod common;

use serde_json::Value;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

fn capture(name: &str) -> PathBuf {
    common::repo().join("captures").join(name)
}

fn cmd() -> Command {
    let mut c = Command::new(common::bin());
    c.env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .stdin(Stdio::null());
    c
}

fn ok(o: &Output) -> String {
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(!e.contains("panicked"), "{e}");
    assert_eq!(o.status.code(), Some(0), "stderr: {e}");
    String::from_utf8(o.stdout.clone()).expect("UTF-8 output")
}

/// `analyze --format json` of `f`, parsed.
fn report_json(f: &std::path::Path) -> Value {
    serde_json::from_str(&ok(&cmd()
        .args(["analyze", "--format", "json"])
        .arg(f)
        .output()
        .unwrap()))
    .unwrap()
}

fn has_escape(s: &str) -> bool {
    s.contains('\x1b')
}

/// Display width of a line, ANSI colour sequences left out.
fn visible_width(l: &str) -> usize {
    let mut n = 0;
    let mut chars = l.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            n += 1;
        }
    }
    n
}

fn assert_table_report(s: &str, what: &str) {
    assert!(s.starts_with("proxyscope "), "{what}: not the table:\n{s}");
    assert!(s.contains("connection-refused"), "{what}:\n{s}");
    assert!(serde_json::from_str::<Value>(s).is_err(), "{what}: JSON");
}

#[test]
fn analyze_piped_default_is_the_table_without_colour() {
    let o = cmd()
        .arg("analyze")
        .arg(capture("refused-nginx-backleg.pcap"))
        .output()
        .unwrap();
    let s = ok(&o);
    assert_table_report(&s, "analyze | cat");
    assert!(!has_escape(&s), "colour on a pipe:\n{s}");
    // the same report as asking for the table
    let t = cmd()
        .args(["analyze", "--format", "table"])
        .arg(capture("refused-nginx-backleg.pcap"))
        .output()
        .unwrap();
    assert_eq!(s, ok(&t));
}

#[test]
fn flows_piped_default_is_the_table_without_colour() {
    let o = cmd()
        .arg("flows")
        .arg(capture("refused-nginx-backleg.pcap"))
        .output()
        .unwrap();
    let s = ok(&o);
    assert!(s.contains("REJ"), "{s}");
    assert!(s.contains("history"), "no table header:\n{s}");
    assert!(!has_escape(&s), "colour on a pipe:\n{s}");
    assert!(serde_json::from_str::<Value>(&s).is_err());
    // scripts ask for JSON
    let j = cmd()
        .args(["flows", "--format", "json"])
        .arg(capture("refused-nginx-backleg.pcap"))
        .output()
        .unwrap();
    assert!(serde_json::from_str::<Value>(&ok(&j)).unwrap().is_array());
}

#[test]
fn output_extension_picks_the_format() {
    let f = capture("refused-nginx-backleg.pcap");
    type Check<'a> = &'a dyn Fn(&str) -> bool;
    let cases: [(&str, Check); 6] = [
        (".json", &|s| {
            serde_json::from_str::<Value>(s).unwrap()["schema_version"] == 2
        }),
        (".JSON", &|s| serde_json::from_str::<Value>(s).is_ok()),
        (".md", &|s| s.starts_with("## proxyscope report")),
        (".markdown", &|s| s.starts_with("## proxyscope report")),
        (".html", &|s| {
            s.starts_with("<!DOCTYPE html>") && s.contains("id=\"verdict-1\"")
        }),
        (".txt", &|s| s.starts_with("proxyscope ") && !has_escape(s)),
    ];
    for (ext, check) in cases {
        let t = common::TempPath::new("output_extension_picks_the_format", ext);
        let o = cmd()
            .args(["analyze", "-o"])
            .arg(t.path())
            .arg(&f)
            .output()
            .unwrap();
        assert!(ok(&o).is_empty(), "-o: nothing on stdout");
        let s = std::fs::read_to_string(t.path()).unwrap();
        assert!(check(&s), "-o *{ext} gave:\n{}", &s[..s.len().min(400)]);
    }
    // --format wins over the extension
    let t = common::TempPath::new("output_extension_format_wins", ".json");
    let o = cmd()
        .args(["analyze", "--format", "markdown", "-o"])
        .arg(t.path())
        .arg(&f)
        .output()
        .unwrap();
    ok(&o);
    let s = std::fs::read_to_string(t.path()).unwrap();
    assert!(s.starts_with("## proxyscope report"), "{s}");
    // --format html to standard output
    let o = cmd()
        .args(["analyze", "--format", "html"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(ok(&o).starts_with("<!DOCTYPE html>"));
}

/// Every line of the table fits `COLUMNS`, at 80 the verdicts are still all there (signature,
/// server, summary words, evidence frames), and a wide terminal gets the wide table.
#[test]
fn table_fits_columns() {
    for name in [
        "mixed-nginx-any.pcap",
        "refused-nginx-backleg.pcap",
        "tls-alert-nginx-backleg.pcap",
        "pair-two-locations-nginx-any.pcap",
    ] {
        let f = capture(name);
        let json = report_json(&f);
        for cols in [60usize, 80, 100, 140] {
            let s = ok(&cmd()
                .env("COLUMNS", cols.to_string())
                .arg("analyze")
                .arg(&f)
                .output()
                .unwrap());
            for l in s.lines() {
                assert!(
                    visible_width(l) <= cols,
                    "{name} at {cols} columns: {} wide: {l:?}\n{s}",
                    visible_width(l)
                );
            }
            let flat = s.split_whitespace().collect::<Vec<_>>().join(" ");
            for v in json["verdicts"].as_array().unwrap() {
                let sig = v["signature"].as_str().unwrap();
                assert!(s.contains(sig), "{name} at {cols}: {sig} missing\n{s}");
                assert!(s.contains(v["server"].as_str().unwrap()));
                // the summary is all there, wrapped at spaces
                let summary = v["summary"].as_str().unwrap();
                let words = summary.split_whitespace().collect::<Vec<_>>().join(" ");
                assert!(
                    flat.contains(&words),
                    "{name} at {cols}: summary {summary:?} not readable in\n{s}"
                );
                for e in v["evidence"].as_array().unwrap() {
                    assert!(s.contains(&format!("#{}", e["frame"])));
                }
            }
            let wide_header = s
                .lines()
                .any(|l| l.contains("summary") && l.contains("window"));
            if !json["verdicts"].as_array().unwrap().is_empty() {
                assert_eq!(wide_header, cols >= 110, "{name} at {cols}:\n{s}");
            }
        }
    }
}

#[test]
fn flows_table_fits_columns() {
    let f = capture("mixed-nginx-any.pcap");
    for cols in [80usize, 120] {
        let s = ok(&cmd()
            .env("COLUMNS", cols.to_string())
            .arg("flows")
            .arg(&f)
            .output()
            .unwrap());
        for l in s
            .lines()
            .filter(|l| l.starts_with(['│', '┌', '├', '└', '╞']))
        {
            assert!(visible_width(l) <= cols, "{cols}: {l:?}");
        }
    }
}

/// On a terminal (a pty from `script`): colour, and the terminal's own width.
#[test]
fn on_a_tty_the_table_has_colour_and_the_terminal_width() {
    if Command::new("script").arg("--version").output().is_err() {
        common::skip("`script` (util-linux) is missing: cannot give the binary a terminal");
        return;
    }
    let f = capture("mixed-nginx-any.pcap");
    let line = format!(
        "stty cols 90 rows 50; exec {} analyze {}",
        common::bin().display(),
        f.display()
    );
    let o = Command::new("script")
        .args(["-q", "-e", "-c", &line, "/dev/null"])
        .env_remove("NO_COLOR")
        .env_remove("COLUMNS")
        .env("TERM", "xterm")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let s = String::from_utf8_lossy(&o.stdout).replace("\r\n", "\n");
    assert!(s.contains("\x1b["), "no colour on a terminal:\n{s}");
    assert!(s.contains("gateway-error"), "{s}");
    let widest = s.lines().map(visible_width).max().unwrap_or(0);
    assert!(
        (80..=90).contains(&widest),
        "the table should fill the 90-column terminal, widest line {widest}:\n{s}"
    );
}

/// Every server address of the verdicts and the endpoints stays whole in the terminal report's
/// tables (a cell cut inside `10.78.2.2:8080` read as port 808), piped and at 80–140 columns, on
/// captures of several proxies, IPv6 included.
#[test]
fn table_cells_keep_addresses_whole() {
    let names = [
        "mixed-nginx-any.pcap",
        "pair-backend502-haproxy-any.pcap",
        "zoo-squid-forward-any.pcap",
        "zoo-varnish-down-any.pcap",
        "loopback-fallback-curl.pcap",
    ];
    for name in names {
        let f = capture(name);
        let j = report_json(&f);
        let verdicts: Vec<String> = j["verdicts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v["server"].as_str().unwrap().to_string())
            .collect();
        let endpoints: Vec<String> = j["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .take(20)
            .map(|e| e["server"].as_str().unwrap().to_string())
            .collect();
        let servers = [verdicts, endpoints];
        assert!(!servers[1].is_empty(), "{name}: no endpoint to look for");
        for cols in [None, Some(80), Some(100), Some(120), Some(140)] {
            let mut c = cmd();
            if let Some(n) = cols {
                c.env("COLUMNS", n.to_string());
            }
            let s = ok(&c.arg("analyze").arg(&f).output().unwrap());
            // The tables' rows, table by table: the verdicts' (when there are verdicts), then
            // the endpoints'.
            let mut tables: Vec<Vec<&str>> = Vec::new();
            for l in s.lines() {
                if l.starts_with('┌') {
                    tables.push(Vec::new());
                } else if l.starts_with('│') {
                    tables.last_mut().expect("a row inside a table").push(l);
                }
            }
            let endpoints_table = tables.last().expect("an endpoints table");
            let wanted = [
                (
                    &servers[0],
                    if servers[0].is_empty() {
                        None
                    } else {
                        tables.first()
                    },
                ),
                (&servers[1], Some(endpoints_table)),
            ];
            for (list, table) in wanted {
                for srv in list.iter() {
                    let rows = table.expect("a table for these servers");
                    assert!(
                        rows.iter().any(|l| l.contains(srv.as_str())),
                        "{name} at {cols:?} columns: {srv} is not whole in its table:\n{s}"
                    );
                }
            }
        }
    }
}
