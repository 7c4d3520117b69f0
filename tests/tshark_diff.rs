//! Differential tests against tshark (the oracle): on every capture in `captures/` and, when
//! present, `../shared/corpus/`, proxyscope must agree with tshark 4.0 on
//! - the number of frames;
//! - the set of frames marked `tcp.analysis.retransmission` (Wireshark's classification, which
//!   proxyscope computes for every frame, capture duplicates included);
//! - the RST frames;
//! - per connection (matched by first frame), whether a SYN was sent and whether a SYN-ACK
//!   answered it.
//! Deliberate differences are listed in `docs/differences.md` and in `KNOWN` below.

use proxyscope::capture::Frame;
use proxyscope::config::InputConfig;
use proxyscope::decode::{flags, TcpSegment};
use proxyscope::flow::{FlowSummary, SegmentOutcome, TrackerConfig};
use proxyscope::pipeline::{self, Observer};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

mod common;

/// Captures whose TCP is carried in a tunnel proxyscope does not decode (documented).
const TUNNELED: &[&str] = &["ark__gtp-iphone.pcap"];

#[derive(Default)]
struct Rec {
    retrans: BTreeSet<u64>,
    dup_frames: BTreeSet<u64>,
    own_retrans: BTreeSet<u64>,
    rst: BTreeSet<u64>,
    tcp_frames: BTreeSet<u64>,
    flows: Vec<FlowSummary>,
}

impl Observer for Rec {
    fn flow_end(&mut self, s: FlowSummary) {
        self.flows.push(s);
    }
    fn segment(&mut self, f: &Frame<'_>, seg: &TcpSegment<'_>, o: &SegmentOutcome) {
        self.tcp_frames.insert(f.number);
        if o.ws_class.is_some_and(|c| c.is_retransmission()) {
            self.retrans.insert(f.number);
            if !o.duplicate {
                self.own_retrans.insert(f.number);
            }
        }
        if o.duplicate {
            self.dup_frames.insert(f.number);
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
}

fn tshark_frames(path: &Path) -> Vec<TsharkFrame> {
    let rows = common::tshark_fields(
        path,
        &[
            "frame.number", "tcp.stream", "tcp.analysis.retransmission", "tcp.flags.syn", "tcp.flags.ack",
            "tcp.flags.reset", "icmp.type", "icmpv6.type",
        ],
    );
    rows.iter()
        .map(|f| {
            let first = |s: &str| s.split(',').next().unwrap_or("").to_string();
            let is_icmp = !f[6].is_empty() || !f[7].is_empty();
            let stream = if is_icmp { None } else { first(&f[1]).parse().ok() };
            let flag = |s: &str| stream.is_some() && matches!(first(s).as_str(), "1" | "True");
            TsharkFrame {
                number: f[0].parse().expect("frame number"),
                stream,
                retrans: stream.is_some() && !f[2].is_empty(),
                syn: flag(&f[3]),
                ack: flag(&f[4]),
                rst: flag(&f[5]),
            }
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
    // proxyscope's own count leaves out exactly the capture duplicates.
    let expect_own: BTreeSet<u64> = rec.retrans.difference(&rec.dup_frames).copied().collect();
    if expect_own != rec.own_retrans {
        errs.push(format!(
            "{}: own retransmissions are not tshark's minus duplicates",
            name
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
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    files.sort();
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
