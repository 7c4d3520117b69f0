//! Input habits, end to end through the built binary: standard input, pipes, FIFOs and process
//! substitution; gzip/zstd/xz found by content; pcapng with mixed link types (mergecap);
//! permission denied; trailing tcpdump-style filters and `-r`; `--since/--until/-c`; durations
//! with units; closed pipes in every subcommand; `flows --format ndjson|conn-log`; completions
//! and the man page; `--each`; the commented evidence pcapng; the progress line.
//!
//! Inputs are made with the real tools (gzip, zstd, xz, mergecap, mkfifo, bash) from the
//! bundled captures, and every result is compared with the plain-file run of the same capture.

mod common;

use serde_json::Value;
use std::ffi::OsString;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use common::TempPath;

fn capture(name: &str) -> PathBuf {
    common::repo().join("captures").join(name)
}

fn refused() -> PathBuf {
    capture("refused-nginx-backleg.pcap")
}

/// Runs the binary with `args` and `stdin` bytes (empty: closed at once); asserts no panic.
fn run_with_stdin<I, S>(args: I, stdin: &[u8]) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let mut child = Command::new(common::bin())
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run proxyscope");
    let mut sin = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    let writer = std::thread::spawn(move || {
        let _ = sin.write_all(&data);
    });
    let out = child.wait_with_output().unwrap();
    writer.join().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "binary panicked:\n{}", err);
    out
}

fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_with_stdin(args, b"")
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Exit 0 and stdout as JSON.
#[track_caller]
fn ok_json(o: &Output) -> Value {
    assert_eq!(o.status.code(), Some(0), "stderr:\n{}", text(&o.stderr));
    serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({}):\n{}", e, text(&o.stdout)))
}

/// Exit 2 and one `proxyscope: ` line on stderr containing every needle.
#[track_caller]
fn one_line_error(o: &Output, needles: &[&str]) -> String {
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "stderr:\n{}", e);
    let lines: Vec<&str> = e.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one error line expected:\n{}", e);
    assert!(lines[0].starts_with("proxyscope: "), "{}", lines[0]);
    for n in needles {
        assert!(lines[0].contains(n), "{:?} lacks {:?}", lines[0], n);
    }
    assert!(o.stdout.is_empty(), "stdout on error: {}", text(&o.stdout));
    lines[0].to_string()
}

fn args(v: &[&str], files: &[&Path]) -> Vec<OsString> {
    let mut a: Vec<OsString> = v.iter().map(|s| (*s).into()).collect();
    a.extend(files.iter().map(|p| p.as_os_str().to_owned()));
    a
}

/// What must not change with how a capture is read: verdicts (signature, hop, server, evidence
/// frame numbers), packet counts.
fn verdict_key(report: &Value) -> Value {
    let vs: Vec<Value> = report["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            let frames: Vec<u64> = v["evidence"]
                .as_array()
                .unwrap()
                .iter()
                .map(|e| e["frame"].as_u64().unwrap())
                .collect();
            serde_json::json!([
                v["signature"],
                v["hop"],
                v["server"],
                v["flow_count"],
                frames
            ])
        })
        .collect();
    serde_json::json!({
        "verdicts": vs,
        "packets": report["capture"]["packets"],
        "tcp": report["capture"]["tcp_segments"],
    })
}

fn analyze_key(files: &[&Path]) -> Value {
    verdict_key(&ok_json(&run(args(
        &["analyze", "--format", "json"],
        files,
    ))))
}

fn flows_of(o: &Output) -> Value {
    ok_json(o)
}

/// Whether `tool` runs; otherwise records a skip (a failure under CI=true).
fn have(tool: &str) -> bool {
    let ok = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        common::skip(&format!(
            "{} is not installed (scripts/deps --test installs it)",
            tool
        ));
    }
    ok
}

/// `tool ARGS < input > out`.
fn pipe_through(tool: &str, tool_args: &[&str], input: &Path, out: &Path) {
    let st = Command::new(tool)
        .args(tool_args)
        .stdin(std::fs::File::open(input).unwrap())
        .stdout(std::fs::File::create(out).unwrap())
        .status()
        .unwrap();
    assert!(st.success(), "{} failed", tool);
}

// ---------------------------------------------------------------------------------------------
// compressed files, by content

#[test]
fn gzip_zstd_xz_give_the_same_verdicts_as_the_plain_file() {
    let tools = [("gzip", "-c"), ("zstd", "-c"), ("xz", "-c")];
    if !tools.iter().all(|(t, _)| have(t)) {
        return;
    }
    for name in ["refused-nginx-backleg.pcap", "reset-nginx-any.pcap"] {
        let plain = capture(name);
        let want = analyze_key(&[&plain]);
        let want_flows = flows_of(&run(args(&["flows", "--format", "json"], &[&plain])));
        for (tool, flag) in tools {
            // A misleading name: the format is found by the magic bytes, not the extension.
            let t = TempPath::new(&format!("compressed-{}-{}", tool, name), ".pcap");
            pipe_through(tool, &[flag], &plain, t.path());
            assert_eq!(analyze_key(&[t.path()]), want, "{} {}", tool, name);
            let got = flows_of(&run(args(&["flows", "--format", "json"], &[t.path()])));
            assert_eq!(got, want_flows, "{} {} flows", tool, name);
        }
    }
}

#[test]
fn compressed_garbage_and_bzip2_are_one_line_errors() {
    if !have("gzip") {
        return;
    }
    let txt = TempPath::new("garbage-src", ".txt");
    std::fs::write(txt.path(), b"this is not a capture, only text\n").unwrap();
    let gz = TempPath::new("garbage", ".gz");
    pipe_through("gzip", &["-c"], txt.path(), gz.path());
    let o = run(args(&["flows"], &[gz.path()]));
    one_line_error(&o, &["gzip-compressed", "unknown file format"]);
    let bz = TempPath::new("bzip2-magic", ".pcap");
    std::fs::write(bz.path(), b"BZh91AY&SY\x00\x00\x00\x00").unwrap();
    one_line_error(
        &run(args(&["flows"], &[bz.path()])),
        &["bzip2", "decompress"],
    );
}

// ---------------------------------------------------------------------------------------------
// standard input, /dev/stdin, FIFOs, process substitution

#[test]
fn stdin_dev_stdin_fifo_and_process_substitution_are_streamed() {
    let plain = refused();
    let bytes = std::fs::read(&plain).unwrap();
    let want = analyze_key(&[&plain]);
    let json_args = ["analyze", "--format", "json"];
    // `-` with a pipe on standard input (as `tcpdump -w - | proxyscope analyze -`).
    let o = run_with_stdin(args(&json_args, &[Path::new("-")]), &bytes);
    assert_eq!(verdict_key(&ok_json(&o)), want, "-");
    // /dev/stdin, a pipe too.
    let o = run_with_stdin(args(&json_args, &[Path::new("/dev/stdin")]), &bytes);
    assert_eq!(verdict_key(&ok_json(&o)), want, "/dev/stdin");
    // `-` with a trailing filter.
    let o = run_with_stdin(["analyze", "--format", "json", "-", "port", "8080"], &bytes);
    assert_eq!(ok_json(&o)["capture"]["filter"], "port 8080");
    // A FIFO written by another process.
    let fifo = TempPath::new("fifo", ".fifo");
    let st = Command::new("mkfifo").arg(fifo.path()).status().unwrap();
    assert!(st.success());
    let fp = fifo.path().to_path_buf();
    let writer = std::thread::spawn(move || {
        let mut f = std::fs::OpenOptions::new().write(true).open(&fp).unwrap();
        let _ = f.write_all(&bytes);
    });
    let o = run(args(&json_args, &[fifo.path()]));
    writer.join().unwrap();
    assert_eq!(verdict_key(&ok_json(&o)), want, "fifo");
    // Process substitution of a compressed file, through bash.
    if have("gzip") && have("bash") {
        let gz = TempPath::new("procsub", ".pcap.gz");
        pipe_through("gzip", &["-c"], &plain, gz.path());
        let script = format!(
            "'{}' analyze --format json <(zcat '{}')",
            common::bin().display(),
            gz.path().display()
        );
        let o = Command::new("bash").args(["-c", &script]).output().unwrap();
        assert_eq!(verdict_key(&ok_json(&o)), want, "<(zcat)");
        // A compressed stream on standard input.
        let o = run_with_stdin(
            args(&json_args, &[Path::new("-")]),
            &std::fs::read(gz.path()).unwrap(),
        );
        assert_eq!(verdict_key(&ok_json(&o)), want, "gzip on stdin");
    }
}

#[test]
fn empty_pipe_and_pipe_evidence_are_one_line_errors() {
    one_line_error(&run(["analyze", "-"]), &["-", "no data"]);
    let bytes = std::fs::read(refused()).unwrap();
    let o = run_with_stdin(["analyze", "-w", "/tmp/never-written.pcapng", "-"], &bytes);
    one_line_error(&o, &["--evidence-pcap", "save it to a file first"]);
    let o = run(["flows", "-", "-"]);
    one_line_error(&o, &["standard input"]);
}

// ---------------------------------------------------------------------------------------------
// pcapng with several link types (mergecap)

#[test]
fn mergecap_pcapng_with_two_link_types_keeps_wireshark_frame_numbers() {
    common::require_tshark();
    if !have("mergecap") {
        return;
    }
    let a = capture("loopback-any-sll2.pcap");
    let b = refused();
    let merged = TempPath::new("mixed-links", ".pcapng");
    let st = Command::new("mergecap")
        .arg("-w")
        .arg(merged.path())
        .arg(&a)
        .arg(&b)
        .status()
        .unwrap();
    assert!(st.success());
    let encaps: std::collections::BTreeSet<String> =
        common::tshark_fields(merged.path(), &["frame.encap_type"])
            .into_iter()
            .map(|r| r[0].clone())
            .collect();
    assert!(
        encaps.len() >= 2,
        "mergecap wrote one link type: {:?}",
        encaps
    );
    let o = run(args(&["flows", "--format", "json"], &[merged.path()]));
    let rows = flows_of(&o);
    let rows = rows.as_array().unwrap();
    let n_a = flows_of(&run(args(&["flows", "--format", "json"], &[&a])));
    let n_b = flows_of(&run(args(&["flows", "--format", "json"], &[&b])));
    assert_eq!(
        rows.len(),
        n_a.as_array().unwrap().len() + n_b.as_array().unwrap().len()
    );
    // Every RST frame proxyscope names is a RST in tshark's numbering of the merged file.
    let rst: std::collections::BTreeSet<u64> = common::tshark_fields_with(
        merged.path(),
        &["-Y", "tcp.flags.reset==1"],
        &["frame.number"],
    )
    .into_iter()
    .map(|r| r[0].parse().unwrap())
    .collect();
    let ours: Vec<u64> = rows
        .iter()
        .filter_map(|r| r["rst_frame"].as_u64())
        .collect();
    assert!(!ours.is_empty());
    for f in ours {
        assert!(rst.contains(&f), "frame {} is not a RST in tshark", f);
    }
    // The same verdicts as the refused capture alone (its frames are renumbered, not lost).
    let r = ok_json(&run(args(
        &["analyze", "--format", "json"],
        &[merged.path()],
    )));
    let sigs: Vec<&str> = r["verdicts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["signature"].as_str().unwrap())
        .collect();
    assert!(sigs.contains(&"connection-refused"), "{:?}", sigs);
}

// ---------------------------------------------------------------------------------------------
// permission denied

#[test]
fn permission_denied_is_a_clear_one_line_error() {
    let dir = std::env::temp_dir().join(format!("proxyscope-perm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let f = dir.join("secret.pcap");
    std::fs::copy(refused(), &f).unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    // Root reads anything: drop to nobody for this run (setpriv is in util-linux).
    let root = unsafe { libc_geteuid() } == 0;
    let o = if root {
        Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(common::bin())
            .arg("analyze")
            .arg(&f)
            .output()
            .expect("setpriv")
    } else {
        run(args(&["analyze"], &[&f]))
    };
    let _ = std::fs::remove_dir_all(&dir);
    let line = one_line_error(&o, &["secret.pcap", "permission denied"]);
    assert!(!line.contains("not a pcap"), "{}", line);
}

extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

// ---------------------------------------------------------------------------------------------
// trailing filter, -r

#[test]
fn trailing_filter_words_and_dash_r_equal_dash_f() {
    let f = refused();
    let with_f = ok_json(&run(args(
        &["analyze", "--format", "json", "-f", "tcp port 8080"],
        &[&f],
    )));
    let trailing = ok_json(&run(args(&["analyze", "--format", "json"], &[&f])
        .into_iter()
        .chain(["tcp", "port", "8080"].map(OsString::from))));
    let mut dash_r = args(&["analyze", "--format", "json", "-r"], &[&f]);
    dash_r.extend(["tcp", "port", "8080"].map(OsString::from));
    let dash_r = ok_json(&run(dash_r));
    for r in [&trailing, &dash_r] {
        assert_eq!(r["capture"]["filter"], "tcp port 8080");
        assert_eq!(verdict_key(r), verdict_key(&with_f));
    }
    // A filter that removes everything differs: the words really are the filter.
    let none = ok_json(&run(args(&["analyze", "--format", "json"], &[&f])
        .into_iter()
        .chain(["port", "9"].map(OsString::from))));
    assert_eq!(none["capture"]["packets_matched"], 0);
}

#[test]
fn trailing_filter_mistakes_are_explained() {
    let dir = common::repo().join("captures");
    // A typo of an existing file: "did you mean".
    let o = Command::new(common::bin())
        .current_dir(&dir)
        .args(["analyze", "refused-nginx-backleg.pcapp", "port", "80"])
        .output()
        .unwrap();
    one_line_error(
        &o,
        &["no such file", "did you mean refused-nginx-backleg.pcap"],
    );
    // A path-looking word that exists nowhere.
    one_line_error(
        &run(["analyze", "/nonexistent/dir/x.pcap"]),
        &["/nonexistent/dir/x.pcap", "no such file"],
    );
    // A file after the filter words.
    let f = refused();
    let o = run(args(&["analyze"], &[&f]).into_iter().chain([
        "port".into(),
        "80".into(),
        f.clone().into_os_string(),
    ]));
    one_line_error(&o, &["put every file before the filter"]);
    // Words that are neither a file nor a filter.
    let o = run(args(&["analyze"], &[&f])
        .into_iter()
        .chain(["frobnicate", "80"].map(OsString::from)));
    one_line_error(
        &o,
        &[
            "frobnicate 80",
            "neither an existing file nor a valid capture filter",
        ],
    );
    // Filter words with -f too: the extra word is taken as a missing file.
    let o = run(args(&["analyze", "-f", "port 80"], &[&f])
        .into_iter()
        .chain(["tcp"].map(OsString::from)));
    one_line_error(&o, &["tcp", "no such file"]);
    // Only filter words, no file.
    one_line_error(
        &run(["flows", "port", "80"]),
        &["port", "give the capture file"],
    );
}

// ---------------------------------------------------------------------------------------------
// --since / --until / -c

#[test]
fn count_and_time_window_select_frames_as_tshark_numbers_them() {
    common::require_tshark();
    let f = capture("reset-nginx-any.pcap");
    let rows = common::tshark_fields(
        &f,
        &["frame.number", "frame.time_relative", "frame.time_epoch"],
    );
    let total = rows.len() as u64;
    assert!(total > 10);
    // -c: the first N frames.
    let r = ok_json(&run(args(
        &["analyze", "--format", "json", "-c", "5"],
        &[&f],
    )));
    assert_eq!(r["capture"]["packets_matched"], 5);
    // --since +X: frames at or after X from the first frame.
    let mid: f64 = rows[rows.len() / 2][1].parse().unwrap();
    let since = format!("+{}ms", (mid * 1000.0).floor() as i64);
    let bound = (mid * 1000.0).floor() / 1000.0;
    let want = rows
        .iter()
        .filter(|r| r[1].parse::<f64>().unwrap() >= bound - 1e-9)
        .count() as u64;
    let r = ok_json(&run(args(
        &["analyze", "--format", "json", "--since", &since],
        &[&f],
    )));
    assert_eq!(r["capture"]["packets_matched"], want, "--since {}", since);
    assert_eq!(r["capture"]["packets"], total, "every frame is still read");
    // Evidence frames keep Wireshark's numbers: none is before the window.
    let first_in = rows
        .iter()
        .find(|r| r[1].parse::<f64>().unwrap() >= bound - 1e-9)
        .unwrap()[0]
        .parse::<u64>()
        .unwrap();
    for v in r["verdicts"].as_array().unwrap() {
        for e in v["evidence"].as_array().unwrap() {
            assert!(e["frame"].as_u64().unwrap() >= first_in);
        }
    }
    // --until as RFC 3339: the first frame's time exactly excludes everything.
    let first_ts = r["capture"]["first_ts"].as_str().unwrap().to_string();
    let all = ok_json(&run(args(&["analyze", "--format", "json"], &[&f])));
    let start = all["capture"]["first_ts"].as_str().unwrap().to_string();
    let o = run(args(
        &["flows", "--format", "json", "--until", &start],
        &[&f],
    ));
    assert_eq!(flows_of(&o).as_array().unwrap().len(), 0);
    let o = run(args(
        &["flows", "--format", "json", "--since", &first_ts],
        &[&f],
    ));
    assert!(!flows_of(&o).as_array().unwrap().is_empty());
    // Bad times are usage errors (exit 2).
    for bad in ["yesterday", "+6x", "2026-13-01T00:00:00Z"] {
        let o = run(args(&["flows", "--since", bad], &[&f]));
        assert_eq!(o.status.code(), Some(2), "{}", bad);
    }
}

// ---------------------------------------------------------------------------------------------
// durations

#[test]
fn durations_take_units_everywhere_and_bare_numbers_stay_seconds() {
    let f = refused();
    let base = verdict_key(&ok_json(&run(args(
        &["analyze", "--format", "json"],
        &[&f],
    ))));
    for flags in [
        vec![
            "--syn-timeout",
            "3s",
            "--response-timeout",
            "10",
            "--idle-timeout",
            "5m",
        ],
        vec![
            "--syn-timeout",
            "3000ms",
            "--response-timeout",
            "0m10s",
            "--idle-timeout",
            "300",
        ],
    ] {
        let mut a = vec!["analyze", "--format", "json"];
        a.extend(flags.iter());
        assert_eq!(
            verdict_key(&ok_json(&run(args(&a, &[&f])))),
            base,
            "{:?}",
            flags
        );
    }
    for bad in ["6x", "0", "0s", "1m-", "-2s"] {
        let flag = format!("--idle-timeout={}", bad);
        let o = run(args(&["flows", &flag], &[&f]));
        assert_eq!(o.status.code(), Some(2), "{}: {}", bad, text(&o.stderr));
        assert!(
            text(&o.stderr).contains("--idle-timeout"),
            "{}",
            text(&o.stderr)
        );
    }
    // live parses `--duration 6s` (the interface error comes after parsing succeeded).
    let o = run([
        "live",
        "-i",
        "proxyscope-no-such-if0",
        "--duration",
        "6s",
        "-c",
        "5",
        "-s",
        "256",
    ]);
    assert_eq!(o.status.code(), Some(2));
    let e = text(&o.stderr);
    assert!(e.contains("proxyscope-no-such-if0"), "{}", e);
    assert!(!e.contains("--duration"), "{}", e);
}

// ---------------------------------------------------------------------------------------------
// closed pipes

/// Starts `args`, reads a few bytes of its output and closes the pipe: exit 0, no error text.
fn close_early(a: &[&str]) {
    let mut child = Command::new(common::bin())
        .args(a)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut buf = [0u8; 64];
    let _ = out.read(&mut buf);
    drop(out);
    let o = child.wait_with_output().unwrap();
    let e = text(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{:?}: {}", a, e);
    assert!(!e.to_lowercase().contains("broken pipe"), "{:?}: {}", a, e);
    assert!(!e.contains("panicked"), "{:?}: {}", a, e);
}

#[test]
fn closed_pipe_exits_zero_in_every_subcommand() {
    // Many connections: the output is far larger than a pipe's buffer.
    let big = capture("time-wait-nginx-backleg.pcap");
    let b = big.to_str().unwrap();
    let rows = flows_of(&run(["flows", "--format", "json", b]));
    assert!(
        rows.as_array().unwrap().len() > 1000,
        "the capture must have many connections"
    );
    for fmt in ["json", "ndjson", "conn-log", "table"] {
        close_early(&["flows", "--format", fmt, b]);
    }
    for fmt in ["json", "table", "markdown"] {
        close_early(&["analyze", "--format", fmt, b]);
    }
    close_early(&["completions", "bash"]);
    close_early(&["man"]);
    close_early(&["--help"]);
}

// ---------------------------------------------------------------------------------------------
// flows --format ndjson / conn-log

#[test]
fn flows_ndjson_is_the_json_array_one_object_per_line() {
    let f = capture("reset-nginx-any.pcap");
    let arr = flows_of(&run(args(&["flows", "--format", "json"], &[&f])));
    let o = run(args(&["flows", "--format", "ndjson"], &[&f]));
    assert_eq!(o.status.code(), Some(0));
    let lines: Vec<Value> = text(&o.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(Value::Array(lines), arr);
}

#[test]
fn flows_conn_log_is_zeek_tsv() {
    let f = refused();
    let arr = flows_of(&run(args(&["flows", "--format", "json"], &[&f])));
    let o = run(args(&["flows", "--format", "conn-log"], &[&f]));
    assert_eq!(o.status.code(), Some(0));
    let out = text(&o.stdout);
    let fields: Vec<&str> = out
        .lines()
        .find_map(|l| l.strip_prefix("#fields\t"))
        .expect("#fields line")
        .split('\t')
        .collect();
    assert_eq!(
        &fields[..6],
        [
            "ts",
            "uid",
            "id.orig_h",
            "id.orig_p",
            "id.resp_h",
            "id.resp_p"
        ]
    );
    assert!(out.lines().any(|l| l == "#path\tconn"));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| l.split('\t').collect())
        .collect();
    assert_eq!(rows.len(), arr.as_array().unwrap().len());
    let col = |name: &str| fields.iter().position(|f| *f == name).unwrap();
    for (r, j) in rows.iter().zip(arr.as_array().unwrap()) {
        assert_eq!(r.len(), fields.len());
        assert_eq!(r[col("conn_state")], j["conn_state"].as_str().unwrap());
        assert_eq!(r[col("history")], j["history"].as_str().unwrap());
        assert_eq!(r[col("proto")], "tcp");
        let orig = format!("{}:{}", r[col("id.orig_h")], r[col("id.orig_p")]);
        assert_eq!(orig, j["orig"].as_str().unwrap());
        assert_eq!(r[col("orig_pkts")], j["orig_pkts"].to_string());
    }
}

// ---------------------------------------------------------------------------------------------
// completions, man

#[test]
fn completions_and_man_page() {
    for (shell, needle) in [
        ("bash", "complete"),
        ("zsh", "#compdef"),
        ("fish", "complete -c proxyscope"),
    ] {
        let o = run(["completions", shell]);
        assert_eq!(o.status.code(), Some(0), "{}", shell);
        let s = text(&o.stdout);
        assert!(s.contains(needle), "{}: {}", shell, &s[..s.len().min(200)]);
        assert!(
            s.contains("analyze") && s.contains("evidence-pcap"),
            "{}",
            shell
        );
    }
    let o = run(["man"]);
    let s = text(&o.stdout);
    assert!(
        s.starts_with(".ie") || s.contains(".TH proxyscope"),
        "{}",
        &s[..200]
    );
    let o = run(["man", "analyze"]);
    let s = text(&o.stdout);
    assert!(s.contains(".TH proxyscope-analyze"), "{}", &s[..200]);
    assert!(s.contains("since"), "analyze page lists --since");
    one_line_error(&run(["man", "nope"]), &["no such subcommand"]);
}

// ---------------------------------------------------------------------------------------------
// --each

#[test]
fn each_writes_one_report_per_file() {
    let a = refused();
    let b = capture("healthy-nginx-frontleg.pcap");
    let o = run(args(&["analyze", "--format", "json", "--each"], &[&a, &b]));
    assert_eq!(o.status.code(), Some(0), "{}", text(&o.stderr));
    let reports: Vec<Value> = serde_json::Deserializer::from_slice(&o.stdout)
        .into_iter::<Value>()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(reports.len(), 2);
    assert_eq!(verdict_key(&reports[0]), analyze_key(&[&a]));
    assert_eq!(verdict_key(&reports[1]), analyze_key(&[&b]));
    for (r, f) in reports.iter().zip([&a, &b]) {
        let files = r["capture"]["files"].as_array().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(files[0]["path"], f.display().to_string());
    }
    // -o: both reports in the one file; --fail-on: the worst exit code.
    let t = TempPath::new("each-out", ".json");
    let mut a2 = args(
        &[
            "analyze",
            "--format",
            "json",
            "--each",
            "--fail-on",
            "critical",
            "-o",
        ],
        &[t.path()],
    );
    a2.extend([a.clone().into_os_string(), b.clone().into_os_string()]);
    let o = run(a2);
    assert_eq!(o.status.code(), Some(1), "{}", text(&o.stderr));
    let written = std::fs::read(t.path()).unwrap();
    assert_eq!(
        serde_json::Deserializer::from_slice(&written)
            .into_iter::<Value>()
            .count(),
        2
    );
    // A missing file among them: reported, the others still run, exit 2.
    let o = run(args(&["analyze", "--format", "json", "--each"], &[&a])
        .into_iter()
        .chain([OsString::from("/nonexistent/y.pcap")]));
    // (a missing path is caught before any run)
    assert_eq!(o.status.code(), Some(2));
}

// ---------------------------------------------------------------------------------------------
// evidence pcapng with comments

#[test]
fn evidence_pcapng_comments_map_back_to_the_original_frames() {
    common::require_tshark();
    for name in ["refused-nginx-backleg.pcap", "reset-nginx-any.pcap"] {
        let input = capture(name);
        let t = TempPath::new(&format!("evidence-{}", name), ".pcapng");
        let r = ok_json(&run(args(
            &[
                "analyze",
                "--format",
                "json",
                "-w",
                t.path().to_str().unwrap(),
            ],
            &[&input],
        )));
        let rows = common::tshark_fields(t.path(), &["frame.number", "frame.comment"]);
        assert!(!rows.is_empty(), "evidence file is empty");
        for row in &rows {
            assert!(
                row[1].starts_with(&format!("{} frame ", name)) && row[1].contains("; supports ["),
                "comment {:?}",
                row
            );
        }
        let comment_of = |n: u64| rows[n as usize - 1][1].clone();
        let mut checked = 0;
        for v in r["verdicts"].as_array().unwrap() {
            for e in v["evidence"].as_array().unwrap() {
                let orig = e["frame"].as_u64().unwrap();
                let ev = e["evidence_frame"]
                    .as_u64()
                    .unwrap_or_else(|| panic!("no evidence_frame in {}", e));
                let c = comment_of(ev);
                assert!(
                    c.starts_with(&format!("{} frame {};", name, orig)),
                    "evidence #{} comment {:?} should name frame {}",
                    ev,
                    c,
                    orig
                );
                assert!(c.contains(v["signature"].as_str().unwrap()), "{}", c);
                checked += 1;
            }
        }
        assert!(checked > 0);
        // The same bytes: the evidence frame's TCP fields equal the original frame's.
        let first = r["verdicts"][0]["evidence"][0].clone();
        let orig = common::tshark_fields_with(
            &input,
            &["-Y", &format!("frame.number=={}", first["frame"])],
            &["tcp.srcport", "tcp.seq_raw", "tcp.flags"],
        );
        let ev = common::tshark_fields_with(
            t.path(),
            &["-Y", &format!("frame.number=={}", first["evidence_frame"])],
            &["tcp.srcport", "tcp.seq_raw", "tcp.flags"],
        );
        assert_eq!(orig, ev);
    }
    // The table shows both numbers.
    let t = TempPath::new("evidence-table", ".pcapng");
    let o = run(args(
        &[
            "analyze",
            "--format",
            "table",
            "-w",
            t.path().to_str().unwrap(),
        ],
        &[&refused()],
    ));
    assert!(
        text(&o.stdout).contains("#4 (evidence #2)"),
        "{}",
        text(&o.stdout)
    );
}

// ---------------------------------------------------------------------------------------------
// progress line

#[test]
fn progress_line_only_on_a_terminal() {
    let f = capture("time-wait-nginx-backleg.pcap");
    // Not a terminal: nothing but the output.
    let o = run(args(&["flows", "--format", "json"], &[&f]));
    assert!(!text(&o.stderr).contains("reading"), "{}", text(&o.stderr));
    // A terminal (script(1) gives the command a pty): the line appears, then is erased.
    if !have("script") {
        return;
    }
    let cmd = format!(
        "'{}' flows --format json '{}' >/dev/null",
        common::bin().display(),
        f.display()
    );
    let o = Command::new("script")
        .args(["-qec", &cmd, "/dev/null"])
        .env("PROXYSCOPE_PROGRESS_DELAY_MS", "0")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let s = text(&o.stdout);
    assert!(o.status.success(), "{}", s);
    assert!(
        s.contains("proxyscope: reading "),
        "no progress line: {:?}",
        s
    );
    assert!(s.contains("frames"), "{:?}", s);
    assert!(
        s.ends_with("\r\u{1b}[K") || s.contains("\r\u{1b}[K"),
        "not erased: {:?}",
        s
    );
}

/// When another program truncates a capture while it is being read (tcpdump's `-W` ring
/// reopening a file, `logrotate copytruncate`), the frames read before are analysed and the report
/// says where reading stopped and why: the file is shorter than when it was opened. Not a crash
/// (it was SIGBUS when files were memory-mapped), and not a silent, shorter capture.
#[test]
fn a_file_truncated_while_read_is_reported_where_it_stopped() {
    let big = TempPath::new("truncated-under", ".pcap");
    {
        // A real pcap file header, then 512 MiB of zeros (sparse): 33 M empty records, seconds
        // of reading.
        let mut head = vec![0u8; 24];
        std::fs::File::open(refused())
            .unwrap()
            .read_exact(&mut head)
            .unwrap();
        let mut f = std::fs::File::create(big.path()).unwrap();
        f.write_all(&head).unwrap();
        f.set_len(24 + (512 << 20)).unwrap();
    }
    let child = Command::new(common::bin())
        .args(["analyze", "--format", "json"])
        .arg(big.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run proxyscope");
    std::thread::sleep(std::time::Duration::from_millis(300));
    std::fs::OpenOptions::new()
        .write(true)
        .open(big.path())
        .unwrap()
        .set_len(1 << 20)
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("a JSON report");
    let text = report.to_string();
    assert!(
        text.contains("the file shrank while it was being read")
            && text.contains(&format!("{} bytes when opened", 24 + (512u64 << 20))),
        "no shrink warning in {}",
        &text[..text.len().min(2000)]
    );
}
