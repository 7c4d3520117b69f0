//! `retransmission-storm`: one segment sent again ≥ `retrans_threshold` times (default 3).
//!
//! Rule: on one connection, some data or FIN segment was retransmitted (Wireshark's
//! retransmission or fast retransmission) at least the threshold number of times. Spurious
//! retransmissions (data already acknowledged), keep-alives, out-of-order segments and capture
//! duplicates never count; SYN retransmissions belong to `syn-unanswered`.
//! Reported with the worst segment (relative seq, times, frames) and the connection's
//! retransmission rate.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::{Direction, FlowSummary};

pub fn check(f: &FlowSummary, th: &Thresholds) -> Option<Finding> {
    let (dir, st) = [
        (Direction::Orig, &f.orig_stats),
        (Direction::Resp, &f.resp_stats),
    ]
    .into_iter()
    .max_by_key(|(_, s)| s.max_segment_retransmits)?;
    if st.max_segment_retransmits < th.retrans_threshold {
        return None;
    }
    let seg = st.worst_segment.as_ref()?;
    let sender = if dir == Direction::Orig {
        f.orig
    } else {
        f.resp
    };
    let retx = st.retransmissions + st.fast_retransmissions;
    let rate = if st.pkts > 0 {
        100.0 * retx as f64 / st.pkts as f64
    } else {
        0.0
    };
    let seq = match seg.rel_seq {
        Some(r) => format!("seq {} (relative)", r),
        None => format!("seq {} (absolute)", seg.seq),
    };
    let mut ev = Vec::new();
    if let Some(o) = seg.original {
        ev.push(Evidence {
            frame: o,
            kind: EvidenceKind::Data,
            description: format!("{} sends {} ({} bytes)", sender, seq, seg.len),
        });
    }
    for (i, fr) in seg.frames.iter().enumerate() {
        ev.push(Evidence {
            frame: *fr,
            kind: EvidenceKind::Retransmission,
            description: format!("retransmission #{} of {}", i + 1, seq),
        });
    }
    let note = format!(
        "{} from {} sent again {} times; {} of {} packets from it were retransmissions ({:.1}%)",
        seq, sender, seg.times, retx, st.pkts, rate
    );
    let mut fd = Finding::for_flow(
        SignatureId::RetransmissionStorm,
        Severity::Warning,
        f,
        note,
        ev,
    );
    fd.facts
        .push(("worst_segment_times", seg.times.to_string()));
    fd.facts
        .push(("threshold", th.retrans_threshold.to_string()));
    fd.facts
        .push(("retransmission_rate_pct", format!("{:.1}", rate)));
    Some(fd)
}
