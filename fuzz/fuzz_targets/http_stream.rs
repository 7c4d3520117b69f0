//! Byte streams through the application observer (`AppFlow`: protocol sniffing, HTTP/1.x,
//! CONNECT tunnels with TLS inside), fed twice: in pieces, and with every piece cut again at
//! fuzzer-chosen points. Invariants: the same events and the same summary both times (parsers
//! must not depend on segmentation; checked on gap-free streams, see below); the per-connection
//! caps hold; every frame the summary names was fed.
#![no_main]
use libfuzzer_sys::fuzz_target;
use proxyscope::app::{http, AppEvent, AppFlow};
use proxyscope::flow::StreamEvent;
use proxyscope_fuzz::stream;

fn feed(plan: &stream::Plan<'_>, split: bool) -> (String, Vec<AppEvent>) {
    let mut app = AppFlow::new(7);
    let mut events = Vec::new();
    stream::run(plan, split, |dir, fr, b| {
        let ev = match b {
            Ok(d) => StreamEvent::Data(d),
            Err(n) => StreamEvent::Gap(n),
        };
        app.event(dir, fr, ev, &mut |e| events.push(*e));
    });
    let sum = app.finish();
    if let Some(h) = &sum.http {
        assert!(h.unanswered.len() <= http::MAX_PIPELINE);
        assert!(h.errors.len() <= http::MAX_ERRORS);
        assert!(h.denied.len() <= http::MAX_ERRORS);
        assert!(h.status_counts.len() <= http::MAX_STATUS_KINDS);
        assert!(h.ok_sample.len() <= http::MAX_SAMPLES);
        assert!(h.request_sample.len() <= http::MAX_SAMPLES);
        let counted: u64 = h.status_counts.iter().map(|&(_, n)| n as u64).sum();
        assert!(
            counted <= h.responses as u64,
            "{} statuses counted of {} responses",
            counted,
            h.responses
        );
        for e in &h.errors {
            assert!(e.response.body_snippet.len() <= 4 * http::BODY_SNIPPET);
        }
    }
    if let Some(t) = &sum.tls {
        assert!(t.alerts.len() <= proxyscope::app::tls::MAX_ALERTS);
    }
    let last = plan.steps.len() as u64;
    proxyscope_fuzz::report::check_frame_numbers(
        &serde_json::to_value(&sum).unwrap(),
        last,
        "app summary",
    );
    (format!("{:?}", sum), events)
}

fuzz_target!(|data: &[u8]| {
    let Some(plan) = stream::plan(data) else {
        return;
    };
    let (whole, ev_whole) = feed(&plan, false);
    let (split, ev_split) = feed(&plan, true);
    // After a capture gap the HTTP observer resynchronises on a message start at the beginning
    // of a delivered chunk or after a line end, as Wireshark re-dissects each segment: that
    // depends on where segments begin by design, so only gap-free streams must agree.
    if plan
        .steps
        .iter()
        .any(|s| matches!(s, stream::Step::Gap { .. }))
    {
        return;
    }
    assert_eq!(ev_whole, ev_split, "events depend on segmentation");
    assert_eq!(whole, split, "summary depends on segmentation");
});
