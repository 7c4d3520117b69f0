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
    fd.facts.push(("worst_segment_times", seg.times.into()));
    fd.facts.push(("threshold", th.retrans_threshold.into()));
    fd.facts.push((
        "retransmission_rate_pct",
        ((rate * 10.0).round() / 10.0).into(),
    ));
    Some(fd)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    super::Words {
        summary: format!(
            "{} of {} to {} resent the same segment {}+ times (worst: {})",
            super::plural(n, "connection", "connections"),
            m,
            s,
            a.text("threshold").unwrap_or_else(|| "3".into()),
            a.notes.first().map(|n| n.0.clone()).unwrap_or_default()
        ),
        likely_causes: vec![
            "packet loss or congestion on the path".into(),
            "a middlebox dropping segments (MTU / PMTUD blackhole, firewall state)".into(),
            "an overloaded receiver or sender".into(),
        ],
        next_checks: vec![
            "`nstat -az TcpRetransSegs TcpExtTCPLostRetransmit` and `ip -s link` on both ends"
                .into(),
            format!("`ping -M do -s 1472 {}` to test the path MTU", ip),
            format!("`ss -ti dst {}` for retransmits and RTT", ip),
        ],
        wireshark_filter: format!(
            "{af}.addr=={ip} && tcp.port=={port} && tcp.analysis.retransmission"
        ),
    }
}
