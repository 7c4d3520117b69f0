//! The reader thread (`Threads::Reader`) gives byte-for-byte the same reports as reading on one
//! thread, on every capture in `captures/`, with batch boundaries everywhere (batches of 1 and 7
//! frames) and with the default batches; also for several files merged by time. Below the
//! reports, every observer call is compared: the same calls, in the same order, with the same
//! arguments, for each way an observer can ask for segments and frame bytes.

use proxyscope::analyze::{self, Analyzer};
use proxyscope::app::{AppEvent, AppSummary};
use proxyscope::capture::Frame;
use proxyscope::config::InputConfig;
use proxyscope::decode::TcpSegment;
use proxyscope::flow::SegmentOutcome;
use proxyscope::flow::{FlowSummary, TrackerConfig};
use proxyscope::pipeline::{self, Observer, Segments, Threads};
use proxyscope::report::analyze::Report;
use proxyscope::report::flows::FlowRow;
use proxyscope::signature::Thresholds;
use proxyscope::time::Timestamp;
use proxyscope::topology::GivenRoles;
use std::path::PathBuf;

fn analyze_json(files: &[PathBuf], threads: Threads) -> String {
    let input = InputConfig {
        files: files.to_vec(),
        filter: None,
        tracker: TrackerConfig::default(),
        ..Default::default()
    };
    let mut a = Analyzer::new(Thresholds::default(), 10);
    let sum = pipeline::run_with(&input, &mut a, threads).expect("analyze");
    let analysis = analyze::conclude(a, sum, GivenRoles::default());
    serde_json::to_string_pretty(&Report::build(&analysis, "proxyscope analyze".into(), None))
        .expect("json")
}

struct Rows(Vec<FlowRow>, Vec<PathBuf>);
impl Observer for Rows {
    fn flow_end(&mut self, s: FlowSummary, _app: Option<proxyscope::app::AppSummary>) {
        self.0.push(FlowRow::from_summary(&s, &self.1));
    }
    // As `proxyscope flows`: no segments, no frame bytes.
    fn wants_frame_data(&self) -> bool {
        false
    }
    fn segments(&self) -> Segments {
        Segments::None
    }
}

fn flows_json(files: &[PathBuf], threads: Threads) -> String {
    let input = InputConfig {
        files: files.to_vec(),
        filter: None,
        tracker: TrackerConfig::default(),
        ..Default::default()
    };
    let mut rows = Rows(Vec::new(), files.to_vec());
    let sum = pipeline::run_with(&input, &mut rows, threads).expect("flows");
    format!(
        "{}\n{} {} {}",
        serde_json::to_string(&rows.0).expect("json"),
        sum.frames,
        sum.tcp_segments,
        sum.table.connections
    )
}

/// The lab captures and the adversarial ones (time running backwards, sequence wrap, one-byte
/// TLS segments, inconsistent retransmissions, zero-length frames, …).
fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = ["captures", "captures/adversarial"]
        .iter()
        .flat_map(|d| std::fs::read_dir(d).expect(d))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    assert!(v.len() > 10, "captures/ has the lab captures");
    assert!(
        v.iter().any(|p| p.starts_with("captures/adversarial")),
        "captures/adversarial/ is included"
    );
    v
}

/// Every observer call, logged. With `Segments::Syn` or `None`, the time `clock` reports is logged where
/// `clock` promises it (at `segment`, `flow_end` and `capture_ending`), since one thread calls
/// `clock` per skipped segment and the reader thread only when it matters.
struct Calls {
    app: bool,
    segments: Segments,
    frame_data: bool,
    now: Option<Timestamp>,
    log: Vec<String>,
}

impl Observer for Calls {
    fn wants_app(&self) -> bool {
        self.app
    }
    fn wants_frame_data(&self) -> bool {
        self.frame_data
    }
    fn segments(&self) -> Segments {
        self.segments
    }
    fn segment(&mut self, f: &Frame<'_>, seg: &TcpSegment<'_>, o: &SegmentOutcome) {
        // Without frame data, only the headers before the payload are promised.
        let (data, payload) = if self.frame_data {
            (f.data, seg.payload)
        } else {
            (&f.data[..f.data.len() - seg.payload.len()], &[][..])
        };
        self.log.push(format!(
            "segment {}#{} {:?} now {:?} data {:?} seg {:?} {} {} {} payload {:?} outcome {:?}",
            f.file,
            f.number,
            f.ts,
            self.now,
            data,
            seg.src,
            seg.sport,
            seg.flags,
            seg.seq,
            payload,
            o
        ));
        self.now = self.now.max(Some(f.ts));
    }
    fn clock(&mut self, ts: Timestamp) {
        assert_ne!(
            self.segments,
            Segments::All,
            "clock only when segments are skipped"
        );
        self.now = self.now.max(Some(ts));
    }
    fn app_event(&mut self, flow: u64, ev: &AppEvent) {
        self.log.push(format!("app {} {:?}", flow, ev));
    }
    fn flow_end(&mut self, s: FlowSummary, app: Option<AppSummary>) {
        self.log
            .push(format!("end now {:?} {:?} {:?}", self.now, s, app));
    }
    fn capture_ending(&mut self, last_ts: Option<Timestamp>) {
        self.log
            .push(format!("ending now {:?} last {:?}", self.now, last_ts));
    }
}

fn calls(
    files: &[PathBuf],
    threads: Threads,
    (app, segments, frame_data): (bool, Segments, bool),
) -> Vec<String> {
    let input = InputConfig {
        files: files.to_vec(),
        filter: None,
        tracker: TrackerConfig::default(),
        ..Default::default()
    };
    let mut c = Calls {
        app,
        segments,
        frame_data,
        now: None,
        log: Vec::new(),
    };
    pipeline::run_with(&input, &mut c, threads).expect("run");
    c.log
}

#[track_caller]
fn same_calls(files: &[PathBuf]) {
    // With the application layer the tracker runs on the reader thread; without it, on the
    // calling thread, or (no segments either) on a thread of its own while the calling thread
    // reads: every way, every kind of segment interest.
    for want in [
        (true, Segments::All, true),
        (true, Segments::All, false),
        (true, Segments::Syn, false),
        (true, Segments::None, false),
        (false, Segments::All, true),
        (false, Segments::All, false),
        (false, Segments::Syn, false),
        (false, Segments::None, false),
    ] {
        let one = calls(files, Threads::One, want);
        assert!(
            want.1 != Segments::All || one.iter().any(|l| l.starts_with("segment")),
            "{:?}: segments were observed",
            files
        );
        for t in [Threads::Reader, Threads::ReaderBatchFrames(3)] {
            let other = calls(files, t, want);
            if let Some(i) = (0..one.len().max(other.len())).find(|&i| one.get(i) != other.get(i)) {
                panic!(
                    "{:?} (app, segments, frame data: {:?}): call {} differs with {:?}:\n one thread: {:?}\n {:?}: {:?}",
                    files,
                    want,
                    i,
                    t,
                    one.get(i),
                    t,
                    other.get(i)
                );
            }
        }
    }
}

#[track_caller]
fn same(files: &[PathBuf]) {
    same_calls(files);
    let one_a = analyze_json(files, Threads::One);
    let one_f = flows_json(files, Threads::One);
    for t in [
        Threads::Reader,
        Threads::ReaderBatchFrames(1),
        Threads::ReaderBatchFrames(7),
    ] {
        assert!(
            analyze_json(files, t) == one_a,
            "{:?}: analyze report differs with {:?}",
            files,
            t
        );
        assert!(
            flows_json(files, t) == one_f,
            "{:?}: flows differ with {:?}",
            files,
            t
        );
    }
}

#[test]
fn reader_thread_reports_are_identical_on_every_capture() {
    for c in captures() {
        same(&[c]);
    }
}

#[test]
fn reader_thread_reports_are_identical_with_several_files() {
    let c = captures();
    let legs: Vec<PathBuf> = c
        .iter()
        .filter(|p| {
            let n = p.file_name().unwrap().to_string_lossy();
            n.starts_with("blackhole-nginx-") && (n.contains("frontleg") || n.contains("backleg"))
        })
        .cloned()
        .collect();
    assert_eq!(legs.len(), 2, "two legs of one scenario");
    same(&legs);
}
