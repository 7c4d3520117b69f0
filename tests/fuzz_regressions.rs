//! Inputs the fuzz targets (fuzz/, docs/fuzzing.md) found that broke an invariant, replayed
//! through the library with the same checks: every capture in `fuzz/regressions/*.pcap` runs
//! through `analyze` and all three report formats; verdict windows are ordered, every frame a
//! report names is a frame of the capture, and the JSON report parses back. (The stream inputs
//! of `fuzz/regressions/` are replayed by unit tests in `src/app/tests.rs`.)

use proxyscope::analyze;
use proxyscope::config::InputConfig;
use proxyscope::flow::TrackerConfig;
use proxyscope::report::analyze::{markdown, table, Report};
use proxyscope::signature::Thresholds;
use serde_json::Value;

mod common;

fn frames_in(v: &Value, frames: u64, at: &str) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "frame" {
                    if let Some(n) = x.as_u64() {
                        assert!((1..=frames).contains(&n), "{at}: frame {n} of {frames}");
                    }
                }
                frames_in(x, frames, at);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| frames_in(x, frames, at)),
        _ => {}
    }
}

#[test]
fn fuzz_found_captures_keep_the_report_invariants() {
    let dir = common::repo().join("fuzz/regressions");
    let files = common::pcap_files(&dir);
    assert!(
        !files.is_empty(),
        "no regression captures in {}",
        dir.display()
    );
    for p in files {
        let at = p.display().to_string();
        let input = InputConfig {
            files: vec![p.clone()],
            filter: None,
            tracker: TrackerConfig {
                max_connections: 64,
                ..TrackerConfig::default()
            },
            ..Default::default()
        };
        let a = match analyze::run(&input, Thresholds::default(), 10) {
            Ok(a) => a,
            Err(e) => {
                assert!(!e.to_string().contains('\n'), "{at}: {e}");
                continue;
            }
        };
        let frames = a.capture.files[0].frames;
        for v in &a.verdicts {
            assert!(
                v.first_ts <= v.last_ts,
                "{at}: {:?} window inverted",
                v.signature
            );
            assert!(v.flow_count <= v.total_flows, "{at}");
            for e in &v.evidence {
                assert!((1..=frames).contains(&e.frame.number), "{at}");
            }
        }
        let report = Report::build(&a, format!("proxyscope analyze {at}"), None);
        let json = serde_json::to_string(&report).unwrap();
        let back: Value = serde_json::from_str(&json).unwrap();
        assert_eq!(back, serde_json::to_value(&report).unwrap(), "{at}");
        frames_in(&back, frames, &at);
        for width in [60, 80, 140] {
            assert!(!table(&a, false, width).is_empty());
        }
        assert!(!markdown(&a, "proxyscope analyze").is_empty());
        assert!(!proxyscope::report::html::render(&a, "proxyscope analyze").is_empty());
    }
}
