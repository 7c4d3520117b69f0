//! The reader thread (`Threads::Reader`) gives byte-for-byte the same reports as reading on one
//! thread, on every capture in `captures/`, with batch boundaries everywhere (batches of 1 and 7
//! frames) and with the default batches; also for several files merged by time.

use proxyscope::analyze::{self, Analyzer};
use proxyscope::config::InputConfig;
use proxyscope::flow::{FlowSummary, TrackerConfig};
use proxyscope::pipeline::{self, Observer, Threads};
use proxyscope::report::analyze::Report;
use proxyscope::report::flows::FlowRow;
use proxyscope::signature::Thresholds;
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
    // As `proxyscope flows`: the reader thread copies headers only.
    fn wants_frame_data(&self) -> bool {
        false
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

fn captures() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir("captures")
        .expect("captures/")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "pcap" || x == "pcapng"))
        .collect();
    v.sort();
    assert!(v.len() > 10, "captures/ has the lab captures");
    v
}

#[track_caller]
fn same(files: &[PathBuf]) {
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
