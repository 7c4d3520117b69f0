//! The command line, end to end through the built binary: help and version, exit codes, one-line
//! errors (never a panic), the `flows` and `analyze` JSON contracts, filters keeping Wireshark
//! frame numbers, Markdown and `-o`, `--evidence-pcap`, closed pipes and colour on a pipe.

mod common;

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

// ---------------------------------------------------------------------------------------------
// helpers

fn capture(name: &str) -> PathBuf {
    common::repo().join("captures").join(name)
}

fn refused() -> PathBuf {
    capture("refused-nginx-backleg.pcap")
}

fn healthy() -> PathBuf {
    capture("healthy-nginx-frontleg.pcap")
}

/// A path under the temp dir, unique per process and test, removed on drop.
use common::TempPath;

fn cmd() -> Command {
    let mut c = Command::new(common::bin());
    c.env_remove("NO_COLOR");
    c
}

/// Runs the binary with `args`; asserts it never panics.
fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = cmd()
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run proxyscope");
    assert_no_panic(&out);
    out
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn assert_no_panic(o: &Output) {
    let e = stderr(o);
    assert!(!e.contains("panicked"), "binary panicked:\n{}", e);
    assert!(!e.contains("RUST_BACKTRACE"), "binary panicked:\n{}", e);
}

fn code(o: &Output) -> i32 {
    o.status.code().expect("exited by a signal")
}

/// Asserts exit code 2 and exactly one stderr line, starting with `proxyscope: `, that contains
/// every one of `needles`. Returns the line.
fn assert_one_line_error(o: &Output, needles: &[&str]) -> String {
    assert_eq!(
        code(o),
        2,
        "expected exit 2; stdout:\n{}\nstderr:\n{}",
        stdout(o),
        stderr(o)
    );
    let e = stderr(o);
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "expected one error line, got:\n{}", e);
    let line = lines[0];
    assert!(
        line.starts_with("proxyscope: "),
        "error line must start with 'proxyscope: ': {:?}",
        line
    );
    for n in needles {
        assert!(
            line.contains(n),
            "error line {:?} should contain {:?}",
            line,
            n
        );
    }
    assert!(
        o.stdout.is_empty(),
        "nothing on stdout on error: {}",
        stdout(o)
    );
    line.to_string()
}

fn json(o: &Output) -> Value {
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({}):\n{}\nstderr:\n{}",
            e,
            stdout(o),
            stderr(o)
        )
    })
}

fn flows_json(files: &[&Path], filter: Option<&str>) -> Vec<Value> {
    let mut args: Vec<std::ffi::OsString> = vec!["flows".into(), "--format".into(), "json".into()];
    if let Some(f) = filter {
        args.push("-f".into());
        args.push(f.into());
    }
    args.extend(files.iter().map(|p| p.as_os_str().to_owned()));
    let o = run(&args);
    assert_eq!(code(&o), 0, "flows failed: {}", stderr(&o));
    match json(&o) {
        Value::Array(a) => a,
        v => panic!("flows --format json must print an array, got {}", v),
    }
}

fn analyze_json(extra: &[&str], file: &Path) -> (Output, Value) {
    let mut args: Vec<std::ffi::OsString> =
        vec!["analyze".into(), "--format".into(), "json".into()];
    args.extend(extra.iter().map(|s| (*s).into()));
    args.push(file.as_os_str().to_owned());
    let o = run(&args);
    let v = json(&o);
    (o, v)
}

/// Fields of one frame, as tshark prints them (`-T fields`), tab-separated.
fn tshark_fields(file: &Path, frame: u64, fields: &[&str]) -> Vec<String> {
    let mut c = Command::new("tshark");
    c.arg("-r")
        .arg(file)
        .arg("-Y")
        .arg(format!("frame.number=={}", frame))
        .args(["-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let o = c.output().expect("run tshark");
    assert!(o.status.success(), "tshark failed: {}", stderr(&o));
    let s = stdout(&o);
    let line = s
        .lines()
        .next()
        .unwrap_or_else(|| panic!("tshark found no frame {} in {}", frame, file.display()));
    line.split('\t').map(|x| x.trim().to_string()).collect()
}

fn flag_set(v: &str) -> bool {
    matches!(v, "1" | "True" | "true")
}

/// A classic pcap global header (little-endian) with the given link type.
fn pcap_header(linktype: u32) -> Vec<u8> {
    let mut h = Vec::with_capacity(24);
    h.extend_from_slice(&0xa1b2c3d4u32.to_le_bytes());
    h.extend_from_slice(&2u16.to_le_bytes());
    h.extend_from_slice(&4u16.to_le_bytes());
    h.extend_from_slice(&0i32.to_le_bytes()); // thiszone
    h.extend_from_slice(&0u32.to_le_bytes()); // sigfigs
    h.extend_from_slice(&65535u32.to_le_bytes()); // snaplen
    h.extend_from_slice(&linktype.to_le_bytes());
    h
}

/// One pcap record (little-endian header) carrying `data`.
fn pcap_record(ts_sec: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    r.extend_from_slice(&ts_sec.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(&(data.len() as u32).to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// Byte order and link type of a classic pcap file (panics on pcapng / garbage).
fn pcap_linktype(bytes: &[u8]) -> u32 {
    assert!(bytes.len() >= 24, "shorter than a pcap header");
    let magic_le = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    let le = match magic_le {
        0xa1b2c3d4 | 0xa1b23c4d => true,
        0xd4c3b2a1 | 0x4d3cb2a1 => false,
        m => panic!("not a classic pcap (magic {:08x})", m),
    };
    let lt: [u8; 4] = bytes[20..24].try_into().unwrap();
    // The upper 16 bits may carry FCS information; the link type is the low 16.
    (if le {
        u32::from_le_bytes(lt)
    } else {
        u32::from_be_bytes(lt)
    }) & 0xffff
}

/// Complete records in a little-endian classic pcap held in `bytes`.
fn complete_records(bytes: &[u8]) -> u64 {
    let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
    assert!(
        magic == 0xa1b2c3d4 || magic == 0xa1b23c4d,
        "fixture expected little-endian pcap"
    );
    let mut off = 24usize;
    let mut n = 0;
    while off + 16 <= bytes.len() {
        let incl = u32::from_le_bytes(bytes[off + 8..off + 12].try_into().unwrap()) as usize;
        if off + 16 + incl > bytes.len() {
            break;
        }
        off += 16 + incl;
        n += 1;
    }
    n
}

/// "ip:port" (IPv6 in brackets) → ok.
fn assert_endpoint(s: &str) {
    let (ip, port) = s
        .rsplit_once(':')
        .unwrap_or_else(|| panic!("endpoint {:?} is not ip:port", s));
    port.parse::<u16>()
        .unwrap_or_else(|_| panic!("endpoint {:?}: bad port", s));
    if let Some(v6) = ip.strip_prefix('[') {
        let v6 = v6
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("endpoint {:?}: unclosed bracket", s));
        v6.parse::<std::net::Ipv6Addr>()
            .unwrap_or_else(|_| panic!("endpoint {:?}: bad IPv6", s));
    } else {
        ip.parse::<std::net::Ipv4Addr>()
            .unwrap_or_else(|_| panic!("endpoint {:?}: bad IPv4 (IPv6 needs brackets)", s));
    }
}

/// RFC 3339 in UTC with a `Z`: 2026-11-26T08:22:43.505594Z.
fn assert_rfc3339_utc(s: &str) {
    let b = s.as_bytes();
    assert!(
        s.len() >= 20
            && s.ends_with('Z')
            && b[4] == b'-'
            && b[7] == b'-'
            && b[10] == b'T'
            && b[13] == b':'
            && b[16] == b':'
            && s[..4].bytes().all(|c| c.is_ascii_digit())
            && s[11..13].bytes().all(|c| c.is_ascii_digit()),
        "not an RFC 3339 UTC timestamp: {:?}",
        s
    );
}

fn str_field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k)
        .unwrap_or_else(|| panic!("missing field {:?} in {}", k, v))
        .as_str()
        .unwrap_or_else(|| panic!("field {:?} is not a string in {}", k, v))
}

fn u64_field(v: &Value, k: &str) -> u64 {
    v.get(k)
        .unwrap_or_else(|| panic!("missing field {:?} in {}", k, v))
        .as_u64()
        .unwrap_or_else(|| panic!("field {:?} is not an unsigned integer in {}", k, v))
}

fn has_ansi(s: &[u8]) -> bool {
    s.windows(2).any(|w| w == b"\x1b[")
}

// ---------------------------------------------------------------------------------------------
// help and version

#[test]
fn help_lists_subcommands_and_examples() {
    let o = run(["--help"]);
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    assert!(s.contains("analyze"), "{}", s);
    assert!(s.contains("flows"), "{}", s);
    assert!(s.contains("Examples:"), "{}", s);
    assert!(
        s.contains("proxyscope analyze captures/refused-nginx-backleg.pcap"),
        "{}",
        s
    );
    assert!(s.contains("Exit codes"), "{}", s);
}

#[test]
fn analyze_help_mentions_fail_on() {
    let o = run(["analyze", "--help"]);
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    assert!(s.contains("--fail-on"), "{}", s);
    assert!(s.contains("--evidence-pcap"), "{}", s);
    assert!(s.contains("Examples:"), "{}", s);
}

#[test]
fn flows_help_exits_zero() {
    let o = run(["flows", "--help"]);
    assert_eq!(code(&o), 0);
    assert!(stdout(&o).contains("--format"));
}

#[test]
fn version_prints_version() {
    let o = run(["--version"]);
    assert_eq!(code(&o), 0);
    let s = stdout(&o);
    assert_eq!(
        s.trim(),
        format!("proxyscope {}", env!("CARGO_PKG_VERSION"))
    );
}

// ---------------------------------------------------------------------------------------------
// errors: exit 2, one line on stderr naming the file and the problem

#[test]
fn missing_file_is_one_line_error() {
    let p = std::env::temp_dir().join(format!(
        "proxyscope-cli-{}-does-not-exist.pcap",
        std::process::id()
    ));
    let ps = p.display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), p.as_os_str()]);
        assert_one_line_error(&o, &[&ps]);
    }
}

#[test]
fn directory_is_error() {
    let d = std::env::temp_dir();
    let ds = d.display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), d.as_os_str()]);
        let line = assert_one_line_error(&o, &[&ds]);
        assert!(line.contains("directory"), "{}", line);
    }
}

#[test]
fn empty_file_is_error() {
    let t = TempPath::new("empty_file_is_error", ".pcap");
    std::fs::write(t.path(), b"").unwrap();
    let ps = t.path().display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), t.path().as_os_str()]);
        assert_one_line_error(&o, &[&ps, "empty"]);
    }
}

#[test]
fn text_file_is_not_a_pcap() {
    let t = TempPath::new("text_file_is_not_a_pcap", ".txt");
    std::fs::write(
        t.path(),
        b"GET / HTTP/1.1\r\nHost: example\r\n\r\nthis is not a capture at all\n",
    )
    .unwrap();
    let ps = t.path().display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), t.path().as_os_str()]);
        assert_one_line_error(&o, &[&ps, "not a pcap"]);
    }
}

#[test]
fn unsupported_link_type_is_named() {
    let t = TempPath::new("unsupported_link_type_is_named", ".pcap");
    let mut bytes = pcap_header(105); // 802.11
    bytes.extend(pcap_record(1_700_000_000, &[0u8; 24]));
    std::fs::write(t.path(), &bytes).unwrap();
    let ps = t.path().display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), t.path().as_os_str()]);
        assert_one_line_error(&o, &[&ps, "unsupported link type 105"]);
    }
}

#[test]
fn bad_bpf_filter_is_named() {
    for sub in ["flows", "analyze"] {
        let o = run([
            sub.as_ref(),
            "-f".as_ref(),
            "host and".as_ref(),
            refused().as_os_str(),
        ]);
        assert_one_line_error(&o, &["host and", "filter"]);
    }
}

#[test]
fn header_only_capture_has_no_packets() {
    let t = TempPath::new("header_only_capture_has_no_packets", ".pcap");
    std::fs::write(t.path(), pcap_header(1)).unwrap();
    let ps = t.path().display().to_string();
    for sub in ["flows", "analyze"] {
        let o = run([sub.as_ref(), t.path().as_os_str()]);
        assert_one_line_error(&o, &[&ps, "no packets"]);
    }
}

#[test]
fn no_file_argument_is_usage_error() {
    for sub in ["flows", "analyze"] {
        let o = run([sub]);
        assert_eq!(code(&o), 2, "{}", stderr(&o));
        assert!(stderr(&o).contains("Usage"), "{}", stderr(&o));
        assert!(o.stdout.is_empty());
    }
    let o = run(Vec::<&str>::new());
    assert_eq!(code(&o), 2, "no subcommand: {}", stderr(&o));
}

#[test]
fn bad_numeric_options_are_errors() {
    for args in [
        vec!["analyze", "--syn-timeout", "0"],
        vec!["analyze", "--syn-timeout", "-1"],
        vec!["analyze", "--retrans-threshold", "0"],
        vec!["analyze", "--max-evidence", "0"],
        vec!["flows", "--idle-timeout", "0"],
    ] {
        let mut a: Vec<std::ffi::OsString> = args.iter().map(|s| (*s).into()).collect();
        a.push(refused().into_os_string());
        let o = run(&a);
        assert_eq!(code(&o), 2, "{:?}: {}", args, stderr(&o));
    }
}

#[test]
fn truncated_capture_is_analysed_with_a_warning() {
    let src = std::fs::read(healthy()).unwrap();
    assert!(src.len() > 24 + 10);
    let cut = &src[..src.len() - 10];
    let expected_frames = complete_records(cut);
    assert!(expected_frames > 0);
    let t = TempPath::new("truncated_capture_is_analysed_with_a_warning", ".pcap");
    std::fs::write(t.path(), cut).unwrap();

    // analyze --format json: exit 0, file-truncated warning naming the frame where reading stopped
    let (o, v) = analyze_json(&[], t.path());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(u64_field(&v["capture"], "packets"), expected_frames);
    let warnings = v["capture"]["warnings"].as_array().expect("warnings array");
    let w = warnings
        .iter()
        .find(|w| w["kind"] == "file-truncated")
        .unwrap_or_else(|| panic!("no file-truncated warning in {:?}", warnings));
    let msg = str_field(w, "message");
    let frame_text = format!("frame {}", expected_frames);
    let stderr_text = stderr(&o);
    assert!(
        msg.contains(&frame_text) || stderr_text.contains(&frame_text),
        "the truncation warning should name {:?}: {:?} / {:?}",
        frame_text,
        msg,
        stderr_text
    );

    // flows: exit 0, the warning on stderr
    let o = run([
        "flows".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        t.path().as_os_str(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let rows = json(&o);
    assert!(!rows.as_array().unwrap().is_empty());
    let e = stderr(&o);
    assert!(e.contains("truncated"), "flows stderr should warn: {}", e);
    assert!(
        e.contains(&frame_text),
        "flows stderr should name {:?}: {}",
        frame_text,
        e
    );
    for l in e.lines() {
        assert!(l.starts_with("proxyscope: "), "stderr line {:?}", l);
    }
}

// ---------------------------------------------------------------------------------------------
// flows

#[test]
fn flows_json_schema_on_refused() {
    let rows = flows_json(&[&refused()], None);
    assert!(!rows.is_empty());
    for r in &rows {
        assert_endpoint(str_field(r, "orig"));
        assert_endpoint(str_field(r, "resp"));
        assert_eq!(str_field(r, "conn_state"), "REJ", "{}", r);
        str_field(r, "history");
        for k in [
            "orig_pkts",
            "resp_pkts",
            "orig_bytes",
            "resp_bytes",
            "retransmissions",
            "max_segment_retransmits",
            "first_frame",
            "last_frame",
        ] {
            u64_field(r, k);
        }
        assert!(u64_field(r, "first_frame") >= 1);
        assert!(u64_field(r, "first_frame") <= u64_field(r, "last_frame"));
        assert_rfc3339_utc(str_field(r, "start"));
        assert!(r["duration"].is_number(), "duration not a number: {}", r);
        assert!(r["duration"].as_f64().unwrap() >= 0.0);
        assert!(r["partial"].is_boolean(), "partial not a bool: {}", r);
        assert!(
            r.get("file").is_none(),
            "single file: no `file` field: {}",
            r
        );
        assert_eq!(str_field(r, "resp"), "10.78.2.2:8080");
    }
}

#[test]
fn flows_json_ipv6_endpoints_are_bracketed() {
    let Some(corpus) = common::shared_corpus() else {
        return;
    };
    let f = corpus.join("zeek__zip_descriptor.pcap");
    if !f.is_file() {
        common::skip(&format!("{} is absent from the shared corpus", f.display()));
        return;
    }
    let rows = flows_json(&[&f], None);
    let mut v6 = 0;
    for r in &rows {
        let (o, s) = (str_field(r, "orig"), str_field(r, "resp"));
        assert_endpoint(o);
        assert_endpoint(s);
        if o.starts_with('[') || s.starts_with('[') {
            assert!(o.starts_with("[::1]:"), "{}", o);
            assert!(s.starts_with("[::1]:"), "{}", s);
            v6 += 1;
        }
    }
    assert!(v6 >= 1, "expected an IPv6 flow in {}", f.display());
}

#[test]
fn flows_same_file_twice_is_merged_with_file() {
    let p = refused();
    let rows = flows_json(&[&p, &p], None);
    assert!(!rows.is_empty());
    let ps = p.display().to_string();
    for r in &rows {
        assert_eq!(str_field(r, "file"), ps, "{}", r);
    }
}

#[test]
fn flows_two_captures_are_merged_with_file() {
    let (a, b) = (refused(), healthy());
    let na = flows_json(&[&a], None).len();
    let nb = flows_json(&[&b], None).len();
    let rows = flows_json(&[&a, &b], None);
    assert_eq!(rows.len(), na + nb);
    let (sa, sb) = (a.display().to_string(), b.display().to_string());
    let in_a = rows.iter().filter(|r| str_field(r, "file") == sa).count();
    let in_b = rows.iter().filter(|r| str_field(r, "file") == sb).count();
    assert_eq!((in_a, in_b), (na, nb));
    // merged by time: start values are non-decreasing
    let starts: Vec<&str> = rows.iter().map(|r| str_field(r, "start")).collect();
    let mut sorted = starts.clone();
    sorted.sort();
    assert_eq!(
        starts, sorted,
        "flows from several files are merged in time order"
    );
}

#[test]
fn filter_keeps_wireshark_frame_numbers() {
    let f = capture("mixed-nginx-any.pcap");
    let key = |r: &Value| {
        (
            str_field(r, "orig").to_string(),
            str_field(r, "resp").to_string(),
            u64_field(r, "first_frame"),
            u64_field(r, "last_frame"),
        )
    };
    let all: Vec<_> = flows_json(&[&f], None).iter().map(key).collect();
    let filtered: Vec<_> = flows_json(&[&f], Some("tcp port 8080"))
        .iter()
        .map(key)
        .collect();
    assert!(!filtered.is_empty());
    assert!(
        filtered.len() < all.len(),
        "the filter should drop something"
    );
    let expected: Vec<_> = all
        .iter()
        .filter(|k| k.0.ends_with(":8080") || k.1.ends_with(":8080"))
        .cloned()
        .collect();
    let mut a = filtered.clone();
    let mut b = expected;
    a.sort();
    b.sort();
    assert_eq!(
        a, b,
        "filtered flows keep the unfiltered first/last frame numbers"
    );
    // the frames before the first port-8080 connection were skipped, not renumbered
    assert!(filtered.iter().map(|k| k.2).min().unwrap() > 1);

    // and with a filter that drops the ARP frames 1-2 of the refused capture
    let r = flows_json(&[&refused()], Some("tcp port 8080"));
    let first: Vec<u64> = r.iter().map(|x| u64_field(x, "first_frame")).collect();
    let unf: Vec<u64> = flows_json(&[&refused()], None)
        .iter()
        .map(|x| u64_field(x, "first_frame"))
        .collect();
    assert_eq!(first, unf);
}

#[test]
fn filter_first_frames_agree_with_tshark() {
    common::require_tshark();
    let f = capture("mixed-nginx-any.pcap");
    let rows = flows_json(&[&f], Some("tcp port 8080"));
    for r in rows.iter().take(5) {
        let n = u64_field(r, "first_frame");
        let v = tshark_fields(&f, n, &["tcp.srcport", "tcp.dstport", "tcp.flags.syn"]);
        assert!(
            v[0] == "8080" || v[1] == "8080",
            "frame {} is not port 8080 in tshark: {:?}",
            n,
            v
        );
    }
}

#[test]
fn flows_on_sll2_capture() {
    let rows = flows_json(&[&capture("loopback-any-sll2.pcap")], None);
    assert!(!rows.is_empty());
    let (o, v) = analyze_json(&[], &capture("loopback-any-sll2.pcap"));
    assert_eq!(code(&o), 0);
    assert_eq!(v["capture"]["files"][0]["link_type"], "linux-sll2");
}

#[test]
fn flows_table_has_no_ansi_on_a_pipe() {
    for no_color in [None, Some("1")] {
        let mut c = cmd();
        if let Some(v) = no_color {
            c.env("NO_COLOR", v);
        }
        let o = c
            .args(["flows", "--format", "table"])
            .arg(refused())
            .output()
            .unwrap();
        assert_no_panic(&o);
        assert_eq!(code(&o), 0);
        assert!(!o.stdout.is_empty());
        assert!(
            !has_ansi(&o.stdout),
            "ANSI escape on a pipe:\n{}",
            stdout(&o)
        );
        assert!(!has_ansi(&o.stderr));
    }
}

// The default formats (the table, piped or not), the format from -o's extension and the
// table's width are tested in tests/cli_format.rs.

// ---------------------------------------------------------------------------------------------
// analyze

fn check_verdict_schema(v: &Value) {
    for k in [
        "signature",
        "severity",
        "hop",
        "client",
        "server",
        "first_ts",
        "last_ts",
        "summary",
        "wireshark_filter",
    ] {
        str_field(v, k);
    }
    assert!(
        ["info", "warning", "critical"].contains(&str_field(v, "severity")),
        "{}",
        v
    );
    assert!(u64_field(v, "flow_count") >= 1);
    assert!(u64_field(v, "flow_count") <= u64_field(v, "total_flows"));
    assert_rfc3339_utc(str_field(v, "first_ts"));
    assert_rfc3339_utc(str_field(v, "last_ts"));
    for k in ["likely_causes", "next_checks"] {
        let a = v[k]
            .as_array()
            .unwrap_or_else(|| panic!("{} is not an array in {}", k, v));
        assert!(a.iter().all(|x| x.is_string()));
    }
    let ev = v["evidence"].as_array().expect("evidence array");
    assert!(!ev.is_empty(), "a verdict proves itself with frames: {}", v);
    for e in ev {
        assert!(u64_field(e, "frame") >= 1);
        str_field(e, "kind");
        assert_rfc3339_utc(str_field(e, "ts"));
        str_field(e, "description");
    }
}

#[test]
fn analyze_json_schema_on_refused() {
    let (o, v) = analyze_json(&[], &refused());
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(v["schema_version"], 2);
    let c = &v["capture"];
    assert!(c["files"].is_array() && !c["files"].as_array().unwrap().is_empty());
    u64_field(c, "packets");
    assert!(c["warnings"].is_array());
    let verdicts = v["verdicts"].as_array().expect("verdicts array");
    for vd in verdicts {
        check_verdict_schema(vd);
    }
    let refused_v = verdicts
        .iter()
        .find(|x| x["signature"] == "connection-refused")
        .unwrap_or_else(|| panic!("no connection-refused verdict: {:?}", verdicts));
    assert_eq!(refused_v["severity"], "critical");
    assert_eq!(refused_v["server"], "10.78.2.2:8080");
}

#[test]
fn analyze_evidence_frames_agree_with_tshark() {
    common::require_tshark();
    let f = refused();
    let (_, v) = analyze_json(&[], &f);
    let verdicts = v["verdicts"].as_array().unwrap();
    let mut checked = 0;
    for vd in verdicts {
        for e in vd["evidence"].as_array().unwrap() {
            let kind = str_field(e, "kind");
            if kind != "rst" && kind != "syn" {
                continue;
            }
            let n = u64_field(e, "frame");
            let fl = tshark_fields(&f, n, &["tcp.flags.reset", "tcp.flags.syn"]);
            match kind {
                "rst" => assert!(flag_set(&fl[0]), "frame {} (rst) has no RST: {:?}", n, fl),
                _ => assert!(flag_set(&fl[1]), "frame {} (syn) has no SYN: {:?}", n, fl),
            }
            checked += 1;
        }
    }
    assert!(
        checked >= 2,
        "expected syn and rst evidence, checked {}",
        checked
    );
}

#[test]
fn analyze_healthy_has_no_warning_or_critical() {
    let (o, v) = analyze_json(&[], &healthy());
    assert_eq!(code(&o), 0);
    assert_eq!(v["schema_version"], 2);
    for vd in v["verdicts"].as_array().unwrap() {
        check_verdict_schema(vd);
        let s = str_field(vd, "severity");
        assert!(s == "info", "healthy capture got a {} verdict: {}", s, vd);
    }
}

#[test]
fn fail_on_exit_codes() {
    let r = refused().into_os_string();
    let h = healthy().into_os_string();
    let case = |sev: &str, f: &std::ffi::OsString| {
        let o = run([
            "analyze".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
            "--fail-on".as_ref(),
            sev.as_ref(),
            f.as_os_str(),
        ]);
        // the report is still written
        json(&o);
        code(&o)
    };
    assert_eq!(case("critical", &r), 1);
    assert_eq!(case("warning", &r), 1);
    assert_eq!(case("info", &r), 1);
    assert_eq!(case("critical", &h), 0);
    assert_eq!(case("warning", &h), 0);
    // `--fail-on info` on a capture without verdicts is 0
    let (_, v) = analyze_json(&[], &healthy());
    if v["verdicts"].as_array().unwrap().is_empty() {
        assert_eq!(case("info", &h), 0);
    }
    // without --fail-on a critical verdict is still exit 0
    let (o, _) = analyze_json(&[], &refused());
    assert_eq!(code(&o), 0);
    // bad severity is a usage error
    let o = run([
        "analyze".as_ref(),
        "--fail-on".as_ref(),
        "fatal".as_ref(),
        r.as_os_str(),
    ]);
    assert_eq!(code(&o), 2);
}

#[test]
fn analyze_markdown() {
    let o = run([
        "analyze".as_ref(),
        "--format".as_ref(),
        "markdown".as_ref(),
        refused().as_os_str(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let s = stdout(&o);
    assert!(s.starts_with("## proxyscope report"), "{}", s);
    assert!(
        s.lines()
            .any(|l| l.starts_with('|') && l.contains("connection-refused")),
        "no table row with connection-refused:\n{}",
        s
    );
    assert!(!has_ansi(s.as_bytes()));
}

#[test]
fn analyze_output_file() {
    let t = TempPath::new("analyze_output_file", ".md");
    let o = run([
        "analyze".as_ref(),
        "--format".as_ref(),
        "markdown".as_ref(),
        "-o".as_ref(),
        t.path().as_os_str(),
        refused().as_os_str(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(o.stdout.is_empty(), "-o: nothing on stdout: {}", stdout(&o));
    let s = std::fs::read_to_string(t.path()).expect("report file written");
    assert!(s.starts_with("## proxyscope report"), "{}", s);
    assert!(s.contains("connection-refused"));

    // -o with json, and --fail-on still applies
    let tj = TempPath::new("analyze_output_file_json", ".json");
    let o = run([
        "analyze".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--fail-on".as_ref(),
        "critical".as_ref(),
        "-o".as_ref(),
        tj.path().as_os_str(),
        refused().as_os_str(),
    ]);
    assert_eq!(code(&o), 1, "{}", stderr(&o));
    assert!(o.stdout.is_empty());
    let v: Value = serde_json::from_slice(&std::fs::read(tj.path()).unwrap()).unwrap();
    assert_eq!(v["schema_version"], 2);
}

#[test]
fn analyze_output_to_unwritable_path_is_error() {
    let dir = TempPath::new("analyze_output_to_unwritable_path_is_error", "-nodir");
    let target = dir.path().join("sub").join("report.json");
    let o = run([
        "analyze".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "-o".as_ref(),
        target.as_os_str(),
        refused().as_os_str(),
    ]);
    assert_one_line_error(&o, &[&target.display().to_string()]);
}

#[test]
fn analyze_table_has_no_ansi_on_a_pipe() {
    for no_color in [None, Some("1")] {
        for f in [refused(), healthy()] {
            let mut c = cmd();
            if let Some(v) = no_color {
                c.env("NO_COLOR", v);
            }
            let o = c
                .args(["analyze", "--format", "table"])
                .arg(&f)
                .output()
                .unwrap();
            assert_no_panic(&o);
            assert_eq!(code(&o), 0);
            assert!(!o.stdout.is_empty());
            assert!(
                !has_ansi(&o.stdout),
                "ANSI escape on a pipe:\n{}",
                stdout(&o)
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// --evidence-pcap

fn write_evidence(test: &str, input: &Path) -> TempPath {
    let t = TempPath::new(test, ".pcap");
    let o = run([
        "analyze".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--evidence-pcap".as_ref(),
        t.path().as_os_str(),
        input.as_os_str(),
    ]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    json(&o);
    assert!(t.path().is_file(), "evidence pcap not written");
    t
}

#[test]
fn evidence_pcap_is_readable() {
    common::require_tshark();
    let t = write_evidence("evidence_pcap_is_readable", &refused());
    let o = Command::new("tshark")
        .arg("-r")
        .arg(t.path())
        .output()
        .unwrap();
    assert!(o.status.success(), "tshark cannot read it: {}", stderr(&o));
    // one line per frame: the four SYN/RST frames of the two refused connections
    assert_eq!(stdout(&o).lines().count(), 4, "{}", stdout(&o));
}

#[test]

fn evidence_pcap_keeps_link_type_and_holds_rst_frames() {
    common::require_tshark();
    for (i, input) in [refused(), capture("refused-nginx-any.pcap")]
        .iter()
        .enumerate()
    {
        let t = write_evidence(
            &format!("evidence_pcap_keeps_link_type_and_holds_rst_frames{}", i),
            input,
        );
        // pcapng now (one interface per link type): compare what tshark reads, frame by frame.
        let in_lt = pcap_linktype(&std::fs::read(input).unwrap());
        let encap = |p: &Path| -> std::collections::BTreeSet<String> {
            common::tshark_fields(p, &["frame.encap_type"])
                .into_iter()
                .map(|r| r[0].clone())
                .collect()
        };
        assert_eq!(
            encap(t.path()),
            encap(input),
            "evidence link type differs from {} (link type {})",
            input.display(),
            in_lt
        );
        let o = Command::new("tshark")
            .arg("-r")
            .arg(t.path())
            .args(["-Y", "tcp.flags.reset==1"])
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let rsts = stdout(&o).lines().count();
        assert!(
            rsts >= 1,
            "no RST frames in the evidence pcap of {}",
            input.display()
        );
        let o = Command::new("tshark")
            .arg("-r")
            .arg(t.path())
            .args(["-Y", "tcp.flags.syn==1 && tcp.flags.ack==0"])
            .output()
            .unwrap();
        assert!(stdout(&o).lines().count() >= 1, "no SYN frames");
    }
}

// ---------------------------------------------------------------------------------------------
// closed pipe

fn closed_pipe(args: &[&std::ffi::OsStr]) {
    let mut child = cmd()
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn proxyscope");
    drop(child.stdout.take());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(!err.contains("panicked"), "{:?}: panicked:\n{}", args, err);
    assert!(
        !err.to_lowercase().contains("broken pipe"),
        "{:?}: broken pipe reported:\n{}",
        args,
        err
    );
    assert_eq!(status.code(), Some(0), "{:?}: stderr:\n{}", args, err);
}

#[test]
fn closed_pipe_is_not_an_error() {
    let big = capture("mixed-nginx-any.pcap");
    for f in [refused(), big] {
        let f = f.as_os_str();
        closed_pipe(&["analyze".as_ref(), "--format".as_ref(), "table".as_ref(), f]);
        closed_pipe(&["analyze".as_ref(), "--format".as_ref(), "json".as_ref(), f]);
        closed_pipe(&[
            "analyze".as_ref(),
            "--format".as_ref(),
            "markdown".as_ref(),
            f,
        ]);
        closed_pipe(&["flows".as_ref(), "--format".as_ref(), "json".as_ref(), f]);
        closed_pipe(&["flows".as_ref(), "--format".as_ref(), "table".as_ref(), f]);
    }
}
