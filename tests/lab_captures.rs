//! Checks the lab captures in `captures/` against their ground truth in `captures/expected.toml`
//! and every `captures/expected-*.toml` (same format; tables this test does not know, such as
//! `[[capture.pair]]`, are ignored) using tshark (an independent reference; proxyscope itself is
//! not involved here, except for the list of signature names).
//!
//! Every `[[capture.expect]]` of `expected.toml` states the `severity` an on-call SRE should be
//! told (checked against the tool by tests/golden.rs); in the other files it is optional; when
//! present it is one of info / warning / critical.
//!
//! For every `[[capture]]`: the file exists and is at most 2 MiB, its frame count equals
//! `packets`, every frame has the link type `link_type`, and every `[[capture.check]]` display
//! filter matches exactly `count` frames. Every .pcap/.pcapng in `captures/` must have an entry.
//!
//! One tshark pass per capture: `tshark -n -2 -r FILE [-d SPEC..] -q -z io,stat,0,F1,F2,..`
//! with F = `frame` (frame count), `frame.encap_type == N` (link type; tshark numbering:
//! 1 ethernet, 25 linux-sll, 210 linux-sll2) and the check filters. io,stat applies each filter
//! exactly like `-Y FILTER` would (captures/lab/make_expected.py verifies that when it writes
//! the counts). Needs tshark on PATH (CI installs it): without it this test FAILS.

use serde::Deserialize;
use std::collections::{BTreeSet, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

mod common;

const MAX_BYTES: u64 = 2 * 1024 * 1024;

const SIGNATURES: &[&str] = &[
    "syn-unanswered",
    "connection-refused",
    "connection-reset",
    "retransmission-storm",
    "tls-stall",
    "tls-alert",
    "gateway-error",
    "upstream-timeout",
    "time-wait-pileup",
    "direct-ok-proxied-fails",
];
const SEVERITIES: &[&str] = &["info", "warning", "critical"];
const HOPS: &[&str] = &["client->proxy", "proxy->backend", "client->server"];
const WARNINGS: &[&str] = &[
    "partial-flow",
    "capture-ended-early",
    "one-direction-only",
    // The adversarial captures (captures/expected-adversarial.toml).
    "retransmission-inconsistency",
    "rst-outside-window",
    "http-unparsed",
    "time-reversal",
    "malformed",
    "snaplen",
    "record-length",
];

#[derive(Debug, Deserialize)]
struct Expected {
    #[serde(default)]
    capture: Vec<Capture>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct Capture {
    /// The ground-truth file this entry comes from (`expected.toml`, `expected-zoo.toml`, …).
    #[serde(skip)]
    source: String,
    file: String,
    scenario: String,
    link_type: String,
    packets: u64,
    healthy: bool,
    summary: String,
    #[serde(default)]
    decode_as: Vec<String>,
    #[serde(default)]
    warnings: Vec<String>,
    #[serde(default)]
    expect: Vec<Expect>,
    #[serde(default)]
    forbid: Vec<Forbid>,
    #[serde(default)]
    check: Vec<Check>,
}

#[derive(Debug, Deserialize)]
struct Expect {
    signature: String,
    hop: String,
    server: String,
    #[serde(default)]
    severity: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Forbid {
    signature: String,
}

#[derive(Debug, Deserialize)]
struct Check {
    filter: String,
    count: u64,
}

fn captures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("captures")
}

fn encap_number(link_type: &str) -> Option<u32> {
    match link_type {
        "ethernet" => Some(1),
        "linux-sll" => Some(25),
        "linux-sll2" => Some(210),
        _ => None,
    }
}

/// `expected.toml` and every `expected-*.toml`, as one list of captures.
fn load_expected() -> Expected {
    let mut capture = Vec::new();
    for (source, e) in common::load_expected_tomls::<Expected>() {
        capture.extend(e.capture.into_iter().map(|c| Capture {
            source: source.clone(),
            ..c
        }));
    }
    Expected { capture }
}

/// A signature name the tests know: the lab's list, or one the library implements.
fn known_signature(name: &str) -> bool {
    SIGNATURES.contains(&name)
        || proxyscope::signature::SignatureId::ALL
            .iter()
            .any(|s| s.name() == name)
}

/// A private, empty Wireshark configuration directory so that personal preferences cannot
/// change what tshark reports.
fn wireshark_config_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("proxyscope-lab-wsconf-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create temp wireshark config dir");
    dir
}

fn require_tshark() {
    let ok = Command::new("tshark")
        .arg("-v")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "tshark is not on PATH (or does not run). The lab-capture test needs it: install tshark \
         (Debian/Ubuntu: `apt-get install tshark`; CI installs it) and re-run \
         `cargo test --test lab_captures`."
    );
}

/// Runs one io,stat pass and returns the number of frames matching each filter.
fn iostat_counts(
    file: &Path,
    decode_as: &[String],
    filters: &[String],
    conf: &Path,
) -> Result<Vec<u64>, String> {
    for f in filters {
        if f.contains(',') {
            return Err(format!(
                "filter {f:?} contains a comma (not allowed in io,stat)"
            ));
        }
    }
    let mut cmd = Command::new("tshark");
    cmd.env("WIRESHARK_CONFIG_DIR", conf)
        .arg("-n")
        .arg("-2")
        .arg("-r")
        .arg(file);
    for d in decode_as {
        cmd.arg("-d").arg(d);
    }
    cmd.arg("-q")
        .arg("-z")
        .arg(format!("io,stat,0,{}", filters.join(",")));
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run tshark: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "tshark failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    let mut totals = vec![0u64; filters.len()];
    let mut rows = 0;
    for line in stdout.lines().filter(|l| l.contains("<>")) {
        rows += 1;
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split('|')
            .map(str::trim)
            .collect();
        // cells: interval, then (frames, bytes) per filter
        for (i, total) in totals.iter_mut().enumerate() {
            let cell = cells
                .get(1 + 2 * i)
                .ok_or_else(|| format!("short io,stat row: {line:?}"))?;
            *total += cell
                .parse::<u64>()
                .map_err(|_| format!("unexpected io,stat cell {cell:?} in {line:?}"))?;
        }
    }
    if rows == 0 {
        return Err(format!("no io,stat rows in tshark output:\n{stdout}"));
    }
    Ok(totals)
}

/// Static checks of one entry (no tshark needed).
fn check_schema(c: &Capture, problems: &mut Vec<String>) {
    let p = |problems: &mut Vec<String>, msg: String| {
        problems.push(format!("{} ({}): {msg}", c.file, c.source))
    };
    if encap_number(&c.link_type).is_none() {
        p(problems, format!("unknown link_type {:?}", c.link_type));
    }
    if c.scenario.trim().is_empty() || c.summary.trim().is_empty() {
        p(problems, "empty scenario or summary".into());
    }
    if !(2..=5).contains(&c.check.len()) {
        p(
            problems,
            format!("{} check entries (want 2-5)", c.check.len()),
        );
    }
    if c.healthy && !c.expect.is_empty() {
        p(problems, "healthy capture with expected signatures".into());
    }
    if !c.healthy && c.expect.is_empty() {
        p(
            problems,
            "unhealthy capture without any expected signature".into(),
        );
    }
    for e in &c.expect {
        match &e.severity {
            None if c.source == "expected.toml" => p(
                problems,
                format!(
                    "expected {} has no severity (captures/lab/make_expected.py)",
                    e.signature
                ),
            ),
            Some(sev) if !SEVERITIES.contains(&sev.as_str()) => p(
                problems,
                format!("{}: unknown severity {sev:?}", e.signature),
            ),
            _ => {}
        }
        if !known_signature(&e.signature) {
            p(
                problems,
                format!("unknown expected signature {:?}", e.signature),
            );
        }
        if !HOPS.contains(&e.hop.as_str()) {
            p(problems, format!("unknown hop {:?}", e.hop));
        }
        if e.server.parse::<std::net::SocketAddr>().is_err() {
            p(problems, format!("server {:?} is not ip:port", e.server));
        }
    }
    for f in &c.forbid {
        if !known_signature(&f.signature) {
            p(
                problems,
                format!("unknown forbidden signature {:?}", f.signature),
            );
        }
        if c.expect.iter().any(|e| e.signature == f.signature) {
            p(
                problems,
                format!("{:?} both expected and forbidden", f.signature),
            );
        }
    }
    for w in &c.warnings {
        if !WARNINGS.contains(&w.as_str()) {
            p(problems, format!("unknown warning {w:?}"));
        }
    }
}

/// File-level and tshark checks of one entry.
fn check_capture(c: &Capture, conf: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let path = captures_dir().join(&c.file);
    let meta = match std::fs::metadata(&path) {
        Ok(m) => m,
        Err(e) => return vec![format!("{}: missing ({e})", c.file)],
    };
    if meta.len() > MAX_BYTES {
        problems.push(format!("{}: {} bytes > 2 MiB", c.file, meta.len()));
    }
    let Some(encap) = encap_number(&c.link_type) else {
        return problems; // reported by check_schema
    };
    let mut filters = vec!["frame".to_string(), format!("frame.encap_type == {encap}")];
    filters.extend(c.check.iter().map(|k| k.filter.clone()));
    let counts = match iostat_counts(&path, &c.decode_as, &filters, conf) {
        Ok(v) => v,
        Err(e) => {
            problems.push(format!("{}: {e}", c.file));
            return problems;
        }
    };
    if counts[0] != c.packets {
        problems.push(format!(
            "{}: {} frames, expected.toml says {}",
            c.file, counts[0], c.packets
        ));
    }
    if counts[1] != counts[0] {
        problems.push(format!(
            "{}: only {} of {} frames have link type {} (frame.encap_type == {encap})",
            c.file, counts[1], counts[0], c.link_type
        ));
    }
    for (k, got) in c.check.iter().zip(&counts[2..]) {
        if *got != k.count {
            problems.push(format!(
                "{}: filter `{}` matches {got} frames, expected {}",
                c.file, k.filter, k.count
            ));
        }
    }
    problems
}

#[test]
fn lab_captures_match_expected_toml() {
    require_tshark();
    let expected = load_expected();
    let mut problems = Vec::new();

    // every capture file has exactly one entry, every entry is well-formed
    let mut seen = HashSet::new();
    for c in &expected.capture {
        if !seen.insert(c.file.as_str()) {
            problems.push(format!("{} ({}): duplicate entry", c.file, c.source));
        }
        check_schema(c, &mut problems);
    }
    let on_disk: BTreeSet<String> = std::fs::read_dir(captures_dir())
        .expect("read captures/")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".pcap") || n.ends_with(".pcapng"))
        .collect();
    for f in &on_disk {
        if !seen.contains(f.as_str()) {
            problems.push(format!(
                "{f}: in captures/ but has no [[capture]] entry in expected.toml or expected-*.toml"
            ));
        }
    }
    assert!(
        !on_disk.is_empty(),
        "no captures found in {}",
        captures_dir().display()
    );

    // tshark checks, a few captures at a time
    let conf = wireshark_config_dir();
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2)
        .clamp(1, 4);
    let next = AtomicUsize::new(0);
    let found = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(c) = expected.capture.get(i) else {
                    break;
                };
                let p = check_capture(c, &conf);
                found.lock().unwrap().extend(p);
            });
        }
    });
    let _ = std::fs::remove_dir_all(&conf);
    problems.extend(found.into_inner().unwrap());

    assert!(
        problems.is_empty(),
        "{} problem(s) with the lab captures (regenerate with captures/lab/run.sh, then \
         captures/lab/make_expected.py):\n  {}",
        problems.len(),
        problems.join("\n  ")
    );
}
