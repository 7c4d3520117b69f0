//! Whole capture files (pcap and pcapng bytes) through the full `analyze` pipeline, every output
//! format rendered (JSON, table, Markdown). Inputs are opened by path as a user's are, so each
//! is written to a file in /dev/shm (tmpfs) first; it is read on one thread or with the reader thread.
//! Invariants: a bad file is a one-line error, never a panic; every frame a report names is a
//! frame of the capture; every "n of m" has n ≤ m; per-verdict counts are within their totals;
//! the JSON report parses back to what was written.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proxyscope::config::InputConfig;
use proxyscope::flow::TrackerConfig;
use proxyscope::report::analyze as rep;
use proxyscope::signature::Thresholds;
use proxyscope_fuzz::report::{check_frame_numbers, check_n_of_m, check_strings};
use std::path::PathBuf;
use std::sync::OnceLock;

fn path() -> &'static PathBuf {
    static P: OnceLock<PathBuf> = OnceLock::new();
    P.get_or_init(|| {
        let dir = if std::path::Path::new("/dev/shm").is_dir() {
            PathBuf::from("/dev/shm")
        } else {
            std::env::temp_dir()
        };
        dir.join(format!("proxyscope-fuzz-{}.pcap", std::process::id()))
    })
}

fuzz_target!(|data: &[u8]| {
    let p = path();
    // Both ways of running the pipeline: one thread, or the reader thread that tracks and
    // records while this one replays (chosen by the input's last byte, so that mutations
    // cross over).
    let threads = if data.last().is_some_and(|b| b & 1 == 1) {
        proxyscope::pipeline::Threads::Reader
    } else {
        proxyscope::pipeline::Threads::One
    };
    proxyscope::pipeline::set_threads(Some(threads));
    std::fs::write(p, data).expect("write the capture to tmpfs");
    let input = InputConfig {
        files: vec![p.clone()],
        filter: None,
        tracker: TrackerConfig {
            // Small enough that inputs reach it (the cap's path is fuzzed too).
            max_connections: 64,
            ..TrackerConfig::default()
        },
        ..Default::default()
    };
    let a = match proxyscope::analyze::run(&input, Thresholds::default(), 10) {
        Ok(a) => a,
        Err(e) => {
            let msg = e.to_string();
            assert!(
                !msg.contains('\n') && !msg.is_empty(),
                "error is not one line: {:?}",
                msg
            );
            return;
        }
    };
    let frames = a.capture.files[0].frames;
    assert!(frames >= 1);
    assert!(a.capture.frames_matched <= frames);
    assert!(a.capture.tcp_segments <= a.capture.frames_matched);
    for v in &a.verdicts {
        assert!(
            v.flow_count <= v.total_flows,
            "{:?}: {} of {}",
            v.signature,
            v.flow_count,
            v.total_flows
        );
        assert!(v.first_ts <= v.last_ts);
        for e in &v.evidence {
            assert!(
                (1..=frames).contains(&e.frame.number),
                "evidence frame {} of {}",
                e.frame.number,
                frames
            );
        }
        assert!(v.flows.len() <= proxyscope::verdict::MAX_FLOW_REFS);
        for f in &v.flows {
            assert!(f.first.number <= f.last.number && (1..=frames).contains(&f.last.number));
        }
    }
    for w in &a.warnings {
        for f in &w.frames {
            assert!(
                (1..=frames).contains(&f.number),
                "warning frame {} of {}",
                f.number,
                frames
            );
        }
    }
    let report = rep::Report::build(&a, "proxyscope analyze fuzz.pcap".into(), None);
    let json = serde_json::to_string(&report).expect("report serialises");
    let back: serde_json::Value = serde_json::from_str(&json).expect("report JSON parses back");
    assert_eq!(
        back,
        serde_json::to_value(&report).unwrap(),
        "JSON round trip"
    );
    check_frame_numbers(&back, frames, "json report");
    check_strings(&back, "json report");
    let table = rep::table(&a, false, 80);
    check_n_of_m(&table, "table");
    let md = rep::markdown(&a, "proxyscope analyze fuzz.pcap");
    check_n_of_m(&md, "markdown");
    let html = proxyscope::report::html::render(&a, "proxyscope analyze fuzz.pcap");
    assert!(html.starts_with("<!DOCTYPE html>"), "html report");
});
