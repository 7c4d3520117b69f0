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

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the client 10.0.0.1:51000 and the server 10.0.0.2:8080;
    //! frame n is at n ms after T0.

    use super::*;
    use crate::flow::testkit::{established, fr};
    use crate::flow::{DirStats, SegmentRetx};
    use crate::signature::{test_aggregate, Aggregate, Fact};

    /// A segment sent once at frame 10 and again `times` times from frame 11 on.
    fn segment(times: u32, rel_seq: Option<u32>) -> Box<SegmentRetx> {
        let mut s = SegmentRetx::default();
        s.seq = 1_000_001;
        s.rel_seq = rel_seq;
        s.len = 1448;
        s.times = times;
        s.original = Some(fr(10));
        s.frames = (0..times as u64).map(|i| fr(11 + i)).collect();
        Box::new(s)
    }

    fn stats(times: u32, retx: u32, fast: u32, pkts: u64) -> DirStats {
        DirStats {
            pkts,
            retransmissions: retx,
            fast_retransmissions: fast,
            max_segment_retransmits: times,
            worst_segment: (times > 0).then(|| segment(times, Some(1))),
            ..Default::default()
        }
    }

    fn flow(orig: DirStats, resp: DirStats) -> FlowSummary {
        let mut f = established(2, "10.0.0.1:51000", "10.0.0.2:8080", 1, 40);
        f.orig_stats = orig;
        f.resp_stats = resp;
        f
    }

    fn fact(fd: &Finding, k: &str) -> Option<Fact> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.clone())
    }

    #[test]
    fn the_threshold_is_the_first_storm() {
        let th = Thresholds::default();
        assert!(check(&flow(stats(0, 0, 0, 5), stats(2, 2, 0, 9)), &th).is_none());
        let fd = check(&flow(stats(0, 0, 0, 5), stats(3, 2, 2, 10)), &th).expect("a storm");
        assert_eq!(fd.signature, SignatureId::RetransmissionStorm);
        assert_eq!(fd.severity, Severity::Warning);
        assert_eq!(
            fd.note,
            "seq 1 (relative) from 10.0.0.2:8080 sent again 3 times; 4 of 10 packets from it were retransmissions (40.0%)"
        );
        assert_eq!(fact(&fd, "worst_segment_times"), Some(Fact::Count(3)));
        assert_eq!(fact(&fd, "threshold"), Some(Fact::Count(3)));
        assert_eq!(
            fact(&fd, "retransmission_rate_pct"),
            Some(Fact::Number(40.0))
        );
        let th5 = Thresholds {
            retrans_threshold: 5,
            ..Thresholds::default()
        };
        assert!(check(&flow(stats(0, 0, 0, 5), stats(4, 4, 0, 10)), &th5).is_none());
    }

    #[test]
    fn the_worse_direction_is_reported_with_its_frames() {
        let th = Thresholds::default();
        let fd = check(&flow(stats(4, 4, 0, 12), stats(3, 3, 0, 10)), &th).expect("a storm");
        assert!(fd
            .note
            .starts_with("seq 1 (relative) from 10.0.0.1:51000 sent again 4 times"));
        assert_eq!(fd.evidence.len(), 5);
        assert_eq!(fd.evidence[0].frame, fr(10));
        assert_eq!(fd.evidence[0].kind, EvidenceKind::Data);
        assert_eq!(
            fd.evidence[0].description,
            "10.0.0.1:51000 sends seq 1 (relative) (1448 bytes)"
        );
        for i in 0..4 {
            assert_eq!(fd.evidence[1 + i].frame, fr(11 + i as u64));
            assert_eq!(fd.evidence[1 + i].kind, EvidenceKind::Retransmission);
            assert_eq!(
                fd.evidence[1 + i].description,
                format!("retransmission #{} of seq 1 (relative)", i + 1)
            );
        }
    }

    #[test]
    fn rate_rounds_to_a_tenth_and_an_unknown_isn_shows_the_absolute_seq() {
        let th = Thresholds::default();
        let mut resp = stats(3, 3, 0, 7);
        resp.worst_segment = Some(segment(3, None));
        resp.worst_segment.as_mut().unwrap().original = None;
        let fd = check(&flow(DirStats::default(), resp), &th).expect("a storm");
        assert!(fd
            .note
            .starts_with("seq 1000001 (absolute) from 10.0.0.2:8080"));
        assert!(fd
            .note
            .ends_with("3 of 7 packets from it were retransmissions (42.9%)"));
        assert_eq!(
            fact(&fd, "retransmission_rate_pct"),
            Some(Fact::Number(42.9))
        );
        // No original transmission captured: the retransmissions alone.
        assert_eq!(fd.evidence.len(), 3);
        // No packet counted: a rate of 0, not a division by zero.
        let fd = check(&flow(DirStats::default(), stats(3, 3, 0, 0)), &th).expect("a storm");
        assert_eq!(
            fact(&fd, "retransmission_rate_pct"),
            Some(Fact::Number(0.0))
        );
    }

    #[test]
    fn no_worst_segment_no_finding() {
        let mut resp = stats(3, 3, 0, 10);
        resp.worst_segment = None;
        assert!(check(&flow(DirStats::default(), resp), &Thresholds::default()).is_none());
    }

    #[test]
    fn words_give_the_threshold_and_the_worst_note() {
        let notes = [("seq 1 (relative) sent again 5 times".to_string(), 1)];
        let facts = [("threshold", Fact::Count(4))];
        let w = words(&Aggregate {
            notes: &notes,
            facts: &facts,
            ..test_aggregate(SignatureId::RetransmissionStorm, "10.0.0.2:8080", 2, 3)
        });
        assert_eq!(
            w.summary,
            "2 connections of 3 to 10.0.0.2:8080 resent the same segment 4+ times (worst: seq 1 (relative) sent again 5 times)"
        );
        assert!(w.next_checks[1].ends_with("1472 10.0.0.2` to test the path MTU"));
        assert_eq!(
            w.next_checks[2],
            "`ss -ti dst 10.0.0.2` for retransmits and RTT"
        );
        assert_eq!(
            w.wireshark_filter,
            "ip.addr==10.0.0.2 && tcp.port==8080 && tcp.analysis.retransmission"
        );
        let w = words(&test_aggregate(
            SignatureId::RetransmissionStorm,
            "10.0.0.2:8080",
            1,
            1,
        ));
        assert_eq!(
            w.summary,
            "1 connection of 1 to 10.0.0.2:8080 resent the same segment 3+ times (worst: )"
        );
    }
}
