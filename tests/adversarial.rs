//! The large adversarial inputs of issue 15, generated at test time (never committed): a SYN
//! flood from 1 M spoofed sources (`bench/make-syn-flood.py`), 100 000 pipelined requests on one
//! connection and a 1 MiB header block (`captures/adversarial/make.py --big`). Each runs through
//! the built binary; the test checks the report is honest (the caps that were hit are named
//! with their counts) and that memory stayed bounded: the child's peak RSS (`wait4` rusage) is
//! printed and must stay under a stated bound.
//!
//! The small adversarial captures are committed and checked by tests/golden.rs against
//! `captures/expected-adversarial.toml`. The caps' config fields are exercised here too, on lab
//! captures with the caps set low.

use proxyscope::analyze;
use proxyscope::config::InputConfig;
use proxyscope::flow::TrackerConfig;
use proxyscope::signature::Thresholds;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

/// Runs `proxyscope analyze FILE --format json -o OUT`; returns the report and the child's
/// peak resident set size in KiB.
// The child is reaped by `wait4` (for its rusage), not `Child::wait`.
#[allow(clippy::zombie_processes)]
fn analyze_measured(capture: &Path, out: &Path) -> (Value, u64) {
    let child = Command::new(common::bin())
        .args(["analyze", "--format", "json", "-o"])
        .arg(out)
        .arg(capture)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("run proxyscope");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: `ru` is a plain C struct, written by wait4 for our own child.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut ru) };
    assert_eq!(r, pid, "wait4: {}", std::io::Error::last_os_error());
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    assert!(
        code == 0 || code == 1,
        "{}: exit status {} (raw {})",
        capture.display(),
        code,
        status
    );
    let text = std::fs::read_to_string(out).expect("report written");
    let v: Value = serde_json::from_str(&text).expect("report is JSON");
    (v, ru.ru_maxrss as u64)
}

fn warning<'a>(v: &'a Value, kind: &str) -> Option<&'a Value> {
    v["capture"]["warnings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|w| w["kind"] == kind)
}

fn above_info(v: &Value) -> Vec<String> {
    v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["severity"] != "info")
        .map(|x| format!("{} {} {}", x["severity"], x["signature"], x["summary"]))
        .collect()
}

fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !ok {
        common::skip("python3 is not installed (scripts/deps installs it)");
    }
    ok
}

/// A scratch directory for one test, removed at the end.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Scratch {
        let d =
            std::env::temp_dir().join(format!("proxyscope-adv-{}-{}", std::process::id(), name));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Scratch(d)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn make_big(dir: &Path) {
    let st = Command::new("python3")
        .arg(common::repo().join("captures/adversarial/make.py"))
        .arg("--big")
        .arg(dir)
        .stdout(Stdio::null())
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn syn_flood_from_a_million_sources_stays_bounded() {
    if !python3() {
        return;
    }
    let s = Scratch::new("flood");
    let cap = s.0.join("flood.pcap");
    let st = Command::new("python3")
        .arg(common::repo().join("bench/make-syn-flood.py"))
        .arg(&cap)
        .arg("1000000")
        .status()
        .unwrap();
    assert!(st.success());
    let (v, rss) = analyze_measured(&cap, &s.0.join("report.json"));
    eprintln!("syn flood, 1 000 000 sources: peak RSS {} MiB", rss / 1024);
    assert_eq!(v["capture"]["packets"], 1_000_000);
    assert_eq!(v["capture"]["connections"], 1_000_000);
    // The table hit --max-connections and said so, with counts.
    let w = warning(&v, "connection-cap").expect("connection-cap warning");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("200000 connections at once"),
        "{}",
        w["message"]
    );
    // One verdict on the flooded endpoint, counting every attempt.
    let syn: Vec<&Value> = v["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|x| x["signature"] == "syn-unanswered" && x["server"] == "198.18.0.1:80")
        .collect();
    assert_eq!(syn.len(), 1, "{:?}", v["verdicts"]);
    assert_eq!(syn[0]["total_flows"], 1_000_000);
    // Distinct clients are counted up to a cap: the summary must not claim an exact number.
    let summary = syn[0]["summary"].as_str().unwrap();
    assert!(summary.contains("from at least 256 clients"), "{}", summary);
    assert!(syn[0]["evidence"].as_array().unwrap().len() <= 10);
    // Bounded by the table cap, not by the million sources.
    assert!(rss < 1536 * 1024, "peak RSS {} KiB", rss);
}

#[test]
fn hundred_thousand_pipelined_requests_hit_the_pending_cap() {
    if !python3() {
        return;
    }
    let s = Scratch::new("pipelined");
    make_big(&s.0);
    let (v, rss) = analyze_measured(&s.0.join("pipelined-100k.pcap"), &s.0.join("r.json"));
    eprintln!("100 000 pipelined requests: peak RSS {} MiB", rss / 1024);
    let w = warning(&v, "request-cap").expect("request-cap warning");
    assert_eq!(w["count"], 100_000 - 64);
    assert!(w["message"].as_str().unwrap().contains("64 requests"));
    let e = &v["endpoints"][0];
    assert_eq!(e["requests"], 100_000);
    assert_eq!(e["responses"], 100_000);
    assert_eq!(above_info(&v), Vec::<String>::new());
    assert!(rss < 200 * 1024, "peak RSS {} KiB", rss);
}

#[test]
fn a_one_mebibyte_header_block_stops_the_parser_and_says_so() {
    if !python3() {
        return;
    }
    let s = Scratch::new("header");
    make_big(&s.0);
    let (v, rss) = analyze_measured(&s.0.join("header-1mb.pcap"), &s.0.join("r.json"));
    eprintln!("1 MiB header block: peak RSS {} MiB", rss / 1024);
    let w = warning(&v, "http-unparsed").expect("http-unparsed warning");
    assert!(
        w["message"]
            .as_str()
            .unwrap()
            .contains("HTTP header block larger than the cap"),
        "{}",
        w["message"]
    );
    assert_eq!(above_info(&v), Vec::<String>::new());
    assert!(rss < 200 * 1024, "peak RSS {} KiB", rss);
}

// ---------------------------------------------------------------------------------------------
// Caps: each is a config field, each is reported (a capture warning with counts) when hit.
// ---------------------------------------------------------------------------------------------

fn run(
    file: &str,
    tracker: TrackerConfig,
    th: Thresholds,
    max_evidence: usize,
) -> analyze::Analysis {
    let input = InputConfig {
        files: vec![common::repo().join("captures").join(file)],
        filter: None,
        tracker,
        ..Default::default()
    };
    analyze::run(&input, th, max_evidence).unwrap()
}

fn warn_of<'a>(a: &'a analyze::Analysis, kind: &str) -> Option<&'a analyze::Warning> {
    a.warnings.iter().find(|w| w.kind == kind)
}

#[test]
fn connection_cap_is_reported_with_its_counts() {
    let file = "mixed-nginx-any.pcap";
    let full = run(file, TrackerConfig::default(), Thresholds::default(), 10);
    assert!(warn_of(&full, "connection-cap").is_none());
    let a = run(
        file,
        TrackerConfig {
            max_connections: 1,
            ..TrackerConfig::default()
        },
        Thresholds::default(),
        10,
    );
    let w = warn_of(&a, "connection-cap").expect("connection-cap");
    assert!(
        w.message.contains("(1 connections at once"),
        "{}",
        w.message
    );
    assert!(a.capture.table.evicted > 0);
}

#[test]
fn endpoint_cap_is_reported_with_its_counts() {
    let file = "mixed-nginx-any.pcap";
    let full = run(file, TrackerConfig::default(), Thresholds::default(), 10);
    assert!(full.endpoints.len() >= 2, "{}", full.endpoints.len());
    assert!(warn_of(&full, "endpoint-cap").is_none());
    let a = run(
        file,
        TrackerConfig::default(),
        Thresholds {
            max_endpoints: 1,
            ..Thresholds::default()
        },
        10,
    );
    let w = warn_of(&a, "endpoint-cap").expect("endpoint-cap");
    let other = a
        .endpoints
        .iter()
        .find(|e| e.server == "(other endpoints)")
        .expect("overflow bucket");
    assert_eq!(w.count, other.connections);
    assert!(
        w.message.contains("more than 1 server endpoints"),
        "{}",
        w.message
    );
}

#[test]
fn note_and_evidence_caps_are_reported_with_their_counts() {
    // A capture whose verdicts hold several notes and several evidence frames.
    let file = "mixed-nginx-any.pcap";
    let full = run(file, TrackerConfig::default(), Thresholds::default(), 1000);
    let v = full
        .verdicts
        .iter()
        .find(|v| v.notes.len() >= 2 && v.evidence.len() >= 2)
        .expect("a verdict with two notes and two evidence frames");
    assert!(warn_of(&full, "note-cap").is_none() && warn_of(&full, "evidence-cap").is_none());
    let a = run(
        file,
        TrackerConfig::default(),
        Thresholds {
            max_notes: 1,
            ..Thresholds::default()
        },
        1,
    );
    let same = a
        .verdicts
        .iter()
        .find(|x| x.signature == v.signature && x.server == v.server && x.hop == v.hop)
        .unwrap();
    assert!(same.notes.len() <= 2, "{:?}", same.notes); // one, plus a whole-capture note
    assert!(same.notes_omitted > 0);
    assert_eq!(same.evidence.len(), 1);
    let n = warn_of(&a, "note-cap").expect("note-cap");
    assert_eq!(
        n.count,
        a.verdicts.iter().map(|v| v.notes_omitted).sum::<u64>()
    );
    let e = warn_of(&a, "evidence-cap").expect("evidence-cap");
    assert!(e.message.contains("--max-evidence 1"), "{}", e.message);
}
