//! Byte streams through the TLS observer (`TlsParser`, record layer, handshake reassembly,
//! alerts), fed twice: in pieces, and with every piece cut again at fuzzer-chosen points (down to
//! single bytes). Invariants: the same events and summary both times; the alert cap holds; every
//! frame the summary names was fed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proxyscope::app::tls::{TlsParser, MAX_ALERTS};
use proxyscope::app::AppEvent;
use proxyscope_fuzz::stream;

fn feed(plan: &stream::Plan<'_>, split: bool) -> (String, Vec<AppEvent>) {
    let mut p = TlsParser::default();
    let mut events = Vec::new();
    stream::run(plan, split, |dir, fr, b| {
        match b {
            Ok(d) => p.data(dir, fr, d),
            Err(_) => p.gap(dir),
        }
        events.append(&mut p.events);
    });
    let sum = &p.summary;
    assert!(sum.alerts.len() <= MAX_ALERTS);
    let last = plan.steps.len() as u64;
    proxyscope_fuzz::report::check_frame_numbers(
        &serde_json::to_value(sum).unwrap(),
        last,
        "tls summary",
    );
    (format!("{:?}", sum), events)
}

fuzz_target!(|data: &[u8]| {
    let Some(plan) = stream::plan(data) else {
        return;
    };
    let (whole, ev_whole) = feed(&plan, false);
    let (split, ev_split) = feed(&plan, true);
    assert_eq!(ev_whole, ev_split, "events depend on segmentation");
    assert_eq!(whole, split, "summary depends on segmentation");
});
