//! Differential tests against tshark (the oracle): on every capture in `captures/` and, when
//! present, `../shared/corpus/`, proxyscope must agree with tshark 4.0 on
//! - the number of frames;
//! - the set of frames marked `tcp.analysis.retransmission` (Wireshark's classification, which
//!   proxyscope computes for every frame, capture duplicates included);
//! - per connection, proxyscope's OWN retransmission and capture-duplicate counts, as a user reads
//!   them (`proxyscope flows --format json`: `retransmissions`, `capture_duplicates`), against
//!   tshark's `tcp.analysis.retransmission` frames of that `tcp.stream` minus the capture
//!   duplicates (docs/differences.md), which this test finds by itself from tshark's fields;
//! - the RST frames;
//! - per connection (matched by first frame), whether a SYN was sent and whether a SYN-ACK
//!   answered it.
//!
//! Deliberate differences are listed in `docs/differences.md` and in `TUNNELED` below.

use proxyscope::capture::Frame;
use proxyscope::config::InputConfig;
use proxyscope::decode::{flags, TcpSegment};
use proxyscope::flow::{FlowSummary, SegmentOutcome, TrackerConfig};
use proxyscope::pipeline::{self, Observer};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;

mod common;

/// Captures whose TCP is carried in a tunnel proxyscope does not decode (documented).
const TUNNELED: &[&str] = &["ark__gtp-iphone.pcap"];

/// docs/differences.md, "capture duplicates": identical copies of a segment (same direction,
/// IP ID, sequence and acknowledgement numbers, flags, window, checksum and length) within 20 ms
/// are one packet captured twice, not a retransmission.
const DUPLICATE_WINDOW_NS: i128 = 20_000_000;

#[derive(Default)]
struct Rec {
    retrans: BTreeSet<u64>,
    rst: BTreeSet<u64>,
    tcp_frames: BTreeSet<u64>,
    flows: Vec<FlowSummary>,
}

impl Observer for Rec {
    fn flow_end(&mut self, s: FlowSummary, _app: Option<proxyscope::app::AppSummary>) {
        self.flows.push(s);
    }
    fn segment(&mut self, f: &Frame<'_>, seg: &TcpSegment<'_>, o: &SegmentOutcome) {
        self.tcp_frames.insert(f.number);
        if o.ws_class.is_some_and(|c| c.is_retransmission()) {
            self.retrans.insert(f.number);
        }
        if seg.has(flags::RST) {
            self.rst.insert(f.number);
        }
    }
}

struct TsharkFrame {
    number: u64,
    stream: Option<u64>,
    retrans: bool,
    syn: bool,
    ack: bool,
    rst: bool,
    /// Direction (source address and port) and the fields that make two copies identical.
    sender: String,
    fingerprint: String,
    /// Capture time in nanoseconds.
    ts_ns: i128,
}

/// `frame.time_epoch` ("1764145392.506487000") in nanoseconds, without float rounding.
fn epoch_ns(s: &str) -> i128 {
    let (secs, frac) = s.split_once('.').unwrap_or((s, ""));
    let mut frac = frac.to_string();
    frac.truncate(9);
    while frac.len() < 9 {
        frac.push('0');
    }
    secs.parse::<i128>().expect("epoch seconds") * 1_000_000_000
        + frac.parse::<i128>().expect("epoch fraction")
}

fn tshark_frames(path: &Path) -> Vec<TsharkFrame> {
    let rows = common::tshark_fields(
        path,
        &[
            "frame.number",
            "tcp.stream",
            "tcp.analysis.retransmission",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.flags.reset",
            "icmp.type",
            "icmpv6.type",
            // 8..: direction and duplicate fingerprint
            "ip.src",
            "ipv6.src",
            "tcp.srcport",
            "ip.id",
            "tcp.seq_raw",
            "tcp.ack_raw",
            "tcp.flags",
            "tcp.window_size_value",
            "tcp.checksum",
            "tcp.len",
            "frame.time_epoch",
        ],
    );
    rows.iter()
        .map(|f| {
            let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
            let is_icmp = !f[6].is_empty() || !f[7].is_empty();
            let stream = if is_icmp {
                None
            } else {
                first(&f[1]).parse().ok()
            };
            let flag = |s: &str| stream.is_some() && matches!(first(s).as_str(), "1" | "True");
            TsharkFrame {
                number: f[0].parse().expect("frame number"),
                stream,
                retrans: stream.is_some() && !f[2].is_empty(),
                syn: flag(&f[3]),
                ack: flag(&f[4]),
                rst: flag(&f[5]),
                sender: format!("{}{} {}", first(&f[8]), first(&f[9]), first(&f[10])),
                fingerprint: (11..=17)
                    .map(|i| first(&f[i]))
                    .collect::<Vec<_>>()
                    .join(" "),
                ts_ns: epoch_ns(&f[18]),
            }
        })
        .collect()
}

/// The capture duplicates among tshark's frames, found independently of proxyscope: a TCP frame
/// identical (fingerprint) to an earlier non-duplicate frame of the same stream and sender at
/// most 20 ms before it.
fn tshark_duplicates(ts: &[TsharkFrame]) -> BTreeSet<u64> {
    let mut seen: HashMap<(u64, &str), Vec<(&str, i128)>> = HashMap::new();
    let mut dups = BTreeSet::new();
    for f in ts {
        let Some(stream) = f.stream else { continue };
        let prev = seen.entry((stream, f.sender.as_str())).or_default();
        prev.retain(|(_, t)| f.ts_ns - t <= DUPLICATE_WINDOW_NS);
        if prev.iter().any(|(fp, _)| *fp == f.fingerprint) {
            dups.insert(f.number);
        } else {
            prev.push((f.fingerprint.as_str(), f.ts_ns));
        }
    }
    dups
}

/// Per connection (keyed by its first frame): (retransmissions, capture duplicates) as
/// `proxyscope flows --format json` reports them; the binary's own output.
fn proxyscope_flow_counts(path: &Path) -> BTreeMap<u64, (u64, u64)> {
    let out = std::process::Command::new(common::bin())
        .args(["flows", "--format", "json"])
        .arg(path)
        .output()
        .expect("run proxyscope flows");
    assert!(
        out.status.success(),
        "proxyscope flows {} failed: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("flows JSON of {}: {e}", path.display()));
    let num = |r: &serde_json::Value, k: &str| {
        r[k].as_u64()
            .unwrap_or_else(|| panic!("flows row without numeric {k}: {r}"))
    };
    rows.iter()
        .map(|r| {
            (
                num(r, "first_frame"),
                (num(r, "retransmissions"), num(r, "capture_duplicates")),
            )
        })
        .collect()
}

fn diff_one(path: &Path) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut rec = Rec::default();
    let input = InputConfig {
        files: vec![path.to_path_buf()],
        filter: None,
        tracker: TrackerConfig::default(),
        ..Default::default()
    };
    let sum = pipeline::run(&input, &mut rec).unwrap_or_else(|e| panic!("{}: {}", name, e));
    let ts = tshark_frames(path);
    let mut errs = Vec::new();
    if sum.frames != ts.len() as u64 {
        errs.push(format!(
            "{}: frames: proxyscope {} tshark {}",
            name,
            sum.frames,
            ts.len()
        ));
    }
    if TUNNELED.contains(&name.as_str()) {
        return errs;
    }
    let t_retx: BTreeSet<u64> = ts.iter().filter(|f| f.retrans).map(|f| f.number).collect();
    if t_retx != rec.retrans {
        errs.push(format!(
            "{}: retransmission frames differ: only tshark {:?}, only proxyscope {:?}",
            name,
            t_retx.difference(&rec.retrans).collect::<Vec<_>>(),
            rec.retrans.difference(&t_retx).collect::<Vec<_>>()
        ));
    }
    // proxyscope's own per-connection counts (its `flows` output) against tshark's
    // retransmission frames of each tcp.stream, minus the capture duplicates found here.
    let dups = tshark_duplicates(&ts);
    let mut t_counts: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    let mut stream_first: BTreeMap<u64, u64> = BTreeMap::new();
    for f in &ts {
        let Some(s) = f.stream else { continue };
        let first = *stream_first.entry(s).or_insert(f.number);
        let e = t_counts.entry(first).or_default();
        let dup = dups.contains(&f.number);
        e.0 += (f.retrans && !dup) as u64;
        e.1 += dup as u64;
    }
    let p_counts = proxyscope_flow_counts(path);
    let firsts: BTreeSet<u64> = t_counts.keys().chain(p_counts.keys()).copied().collect();
    let mut bad = Vec::new();
    for first in firsts {
        let t = t_counts.get(&first).copied().unwrap_or_default();
        let p = p_counts.get(&first).copied().unwrap_or_default();
        if t != p {
            bad.push(format!(
                "connection from frame {first}: (retransmissions, capture duplicates) tshark {t:?} proxyscope flows {p:?}"
            ));
        }
    }
    if !bad.is_empty() {
        errs.push(format!(
            "{}: per-connection retransmission counts differ ({} connections, first 12):\n  {}",
            name,
            bad.len(),
            bad.iter()
                .take(12)
                .cloned()
                .collect::<Vec<_>>()
                .join("\n  ")
        ));
    }
    let t_rst: BTreeSet<u64> = ts.iter().filter(|f| f.rst).map(|f| f.number).collect();
    if t_rst != rec.rst {
        errs.push(format!(
            "{}: RST frames differ: tshark {:?} proxyscope {:?}",
            name, t_rst, rec.rst
        ));
    }
    // Per connection: SYN sent? SYN-ACK seen? keyed by the connection's first frame.
    let mut t_streams: BTreeMap<u64, (u64, bool, bool)> = BTreeMap::new();
    for f in &ts {
        let Some(s) = f.stream else { continue };
        let e = t_streams.entry(s).or_insert((f.number, false, false));
        e.1 |= f.syn && !f.ack;
        e.2 |= f.syn && f.ack;
    }
    let t_conn: BTreeMap<u64, (bool, bool)> = t_streams
        .values()
        .map(|&(first, s, sa)| (first, (s, sa)))
        .collect();
    let p_conn: BTreeMap<u64, (bool, bool)> = rec
        .flows
        .iter()
        .map(|f| (f.first.number, (f.syn_count > 0, f.synack.is_some())))
        .collect();
    if t_conn != p_conn {
        errs.push(format!("{}: connections (first frame -> syn, syn-ack) differ:\n  tshark     {:?}\n  proxyscope {:?}", name, t_conn, p_conn));
    }
    errs
}

fn run_dir(dir: &Path) -> (usize, Vec<String>) {
    let files = common::pcap_files(dir);
    let mut errs = Vec::new();
    for f in &files {
        errs.extend(diff_one(f));
    }
    (files.len(), errs)
}

#[test]
fn agrees_with_tshark_on_lab_captures() {
    common::require_tshark();
    let (n, errs) = run_dir(&common::repo().join("captures"));
    assert!(n > 0, "no captures found in captures/");
    assert!(
        errs.is_empty(),
        "{} disagreements:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

#[test]
fn agrees_with_tshark_on_shared_corpus() {
    let Some(corpus) = common::shared_corpus() else {
        return;
    };
    common::require_tshark();
    let (n, errs) = run_dir(&corpus);
    assert!(n > 0);
    assert!(
        errs.is_empty(),
        "{} disagreements:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

/// TLS and HTTP events, frame by frame, against tshark's dissectors.
#[derive(Default)]
struct AppRec {
    client_hello: BTreeSet<u64>,
    server_hello: BTreeSet<u64>,
    alerts: BTreeSet<u64>,
    requests: BTreeSet<u64>,
    responses: BTreeMap<u64, Vec<u16>>,
    /// Frames left out of the comparison: capture duplicates (tshark dissects their payload
    /// again) and snaplen-cut segments (docs/differences.md).
    duplicates: BTreeSet<u64>,
    /// Connections with a snaplen-cut segment, and every frame of each connection: tshark
    /// cannot reassemble a TLS record across a cut segment, proxyscope reads a handshake
    /// message's type from the record's first bytes (docs/differences.md).
    cut_flows: BTreeSet<u64>,
    frames_of_flow: BTreeMap<u64, Vec<u64>>,
    /// Frames whose TCP payload begins with an HTTP/1 status line (byte-level ground truth for
    /// a response header that tshark's reassembly state attaches to an earlier PDU).
    status_line_frames: BTreeSet<u64>,
}

impl Observer for AppRec {
    fn segment(&mut self, f: &Frame<'_>, seg: &TcpSegment<'_>, o: &SegmentOutcome) {
        // Capture duplicates and snaplen-cut segments: tshark dissects what it can of them,
        // proxyscope does not parse cut header blocks (docs/differences.md).
        if o.duplicate || seg.truncated {
            self.duplicates.insert(f.number);
        }
        if seg.truncated {
            self.cut_flows.insert(o.flow);
        }
        self.frames_of_flow
            .entry(o.flow)
            .or_default()
            .push(f.number);
        if seg.payload.starts_with(b"HTTP/1.") {
            self.status_line_frames.insert(f.number);
        }
    }
    fn flow_end(&mut self, _s: FlowSummary, _app: Option<proxyscope::app::AppSummary>) {}
    fn wants_app(&self) -> bool {
        true
    }
    fn app_event(&mut self, _flow: u64, ev: &proxyscope::app::AppEvent) {
        use proxyscope::app::AppEvent::*;
        match *ev {
            TlsHandshake { frame, msg: 1 } => {
                self.client_hello.insert(frame.number);
            }
            TlsHandshake { frame, msg: 2 } => {
                self.server_hello.insert(frame.number);
            }
            TlsAlert { frame, .. } => {
                self.alerts.insert(frame.number);
            }
            HttpRequest { frame } => {
                self.requests.insert(frame.number);
            }
            HttpResponse { frame, status } => {
                self.responses.entry(frame.number).or_default().push(status)
            }
            _ => {}
        }
    }
}

fn diff_app(path: &Path, decode_as: &[String]) -> Vec<String> {
    let name = path.file_name().unwrap().to_string_lossy().to_string();
    let mut rec = AppRec::default();
    let input = InputConfig {
        files: vec![path.to_path_buf()],
        filter: None,
        tracker: TrackerConfig::default(),
        ..Default::default()
    };
    pipeline::run(&input, &mut rec).unwrap_or_else(|e| panic!("{}: {}", name, e));
    let mut extra: Vec<&str> = vec!["-o", "http.desegment_body:FALSE"];
    for d in decode_as {
        extra.push("-d");
        extra.push(d);
    }
    let rows = common::tshark_fields_with(
        path,
        &extra,
        &[
            "frame.number",
            "tls.handshake.type",
            "tls.record.content_type",
            "http.request",
            "http.response.code",
            "icmp.type",
            "icmpv6.type",
        ],
    );
    let mut t = AppRec::default();
    for f in rows {
        if !f[5].is_empty() || !f[6].is_empty() {
            continue; // quoted headers inside ICMP errors
        }
        let n: u64 = f[0].parse().unwrap();
        if rec.duplicates.contains(&n) {
            continue;
        }
        let hs: Vec<&str> = f[1].split(',').collect();
        if hs.contains(&"1") {
            t.client_hello.insert(n);
        }
        if hs.contains(&"2") {
            t.server_hello.insert(n);
        }
        if f[2].split(',').any(|c| c == "21") {
            t.alerts.insert(n);
        }
        if !f[3].is_empty() {
            t.requests.insert(n);
        }
        if !f[4].is_empty() {
            t.responses
                .insert(n, f[4].split(',').filter_map(|c| c.parse().ok()).collect());
        }
    }
    let mut errs = Vec::new();
    let mut cmp = |what: &str, a: &BTreeSet<u64>, b: &BTreeSet<u64>| {
        if a != b {
            let only_t: Vec<_> = a.difference(b).take(12).collect();
            let only_p: Vec<_> = b.difference(a).take(12).collect();
            errs.push(format!(
                "{}: {} frames differ: only tshark {:?}, only proxyscope {:?} (first 12)",
                name, what, only_t, only_p
            ));
        }
    };
    let cut_frames: BTreeSet<u64> = rec
        .cut_flows
        .iter()
        .flat_map(|id| rec.frames_of_flow.get(id).into_iter().flatten().copied())
        .collect();
    let tls = |s: &BTreeSet<u64>| -> BTreeSet<u64> { s.difference(&cut_frames).copied().collect() };
    cmp(
        "ClientHello",
        &tls(&t.client_hello),
        &tls(&rec.client_hello),
    );
    cmp(
        "ServerHello",
        &tls(&t.server_hello),
        &tls(&rec.server_hello),
    );
    cmp("TLS alert", &tls(&t.alerts), &tls(&rec.alerts));
    cmp("HTTP request", &t.requests, &rec.requests);
    // A response only proxyscope reports is accepted when the frame's payload itself begins
    // with a status line and tshark reports no response there (its HTTP reassembly state took
    // the header for part of an earlier PDU on the keep-alive connection; docs/differences.md).
    let t_frames: BTreeSet<u64> = t.responses.keys().copied().collect();
    let t_resp: BTreeSet<(u64, Vec<u16>)> = t.responses.into_iter().collect();
    let p_resp: BTreeSet<(u64, Vec<u16>)> = rec
        .responses
        .into_iter()
        .filter(|(n, _)| t_frames.contains(n) || !rec.status_line_frames.contains(n))
        .collect();
    if t_resp != p_resp {
        let only_t: Vec<_> = t_resp.difference(&p_resp).take(12).collect();
        let only_p: Vec<_> = p_resp.difference(&t_resp).take(12).collect();
        errs.push(format!("{}: HTTP responses (frame, status) differ: only tshark {:?}, only proxyscope {:?} (first 12)", name, only_t, only_p));
    }
    errs
}

#[derive(serde::Deserialize)]
struct Expected {
    capture: Vec<ExpectedCapture>,
}

#[derive(serde::Deserialize)]
struct ExpectedCapture {
    file: String,
    #[serde(default)]
    decode_as: Vec<String>,
}

#[test]
fn tls_and_http_events_agree_with_tshark_on_lab_captures() {
    common::require_tshark();
    let root = common::repo();
    let mut errs = Vec::new();
    let all: Vec<(String, Expected)> = common::load_expected_tomls();
    for c in all.iter().flat_map(|(_, e)| &e.capture) {
        errs.extend(diff_app(&root.join("captures").join(&c.file), &c.decode_as));
    }
    assert!(
        errs.is_empty(),
        "{} disagreements:\n{}",
        errs.len(),
        errs.join("\n")
    );
}

#[test]
fn tls_and_http_events_agree_with_tshark_on_shared_corpus() {
    let Some(corpus) = common::shared_corpus() else {
        return;
    };
    common::require_tshark();
    let mut errs = Vec::new();
    for f in common::pcap_files(&corpus) {
        if TUNNELED.iter().any(|t| f.ends_with(t)) {
            continue;
        }
        errs.extend(diff_app(&f, &[]));
    }
    assert!(
        errs.is_empty(),
        "{} disagreements:\n{}",
        errs.len(),
        errs.join("\n")
    );
}
