//! `syn-unanswered`: a connection attempt whose SYN (and its retransmissions) got no SYN-ACK and
//! no RST.
//!
//! Rule: the originator sent ≥ 1 SYN and nothing but SYNs (or a final RST/FIN of its own giving
//! up); the responder sent nothing. An ICMP unreachable quoting the SYN is named as evidence.
//! Not an outage (returns `Inconclusive`): a single SYN sent less than `syn_timeout` before the
//! capture ended (an answer could still have come; an attempt whose SYN was already sent again
//! is conclusive, the first SYN having waited a whole retransmission timeout), or the originator went on to send ACKs/data
//! (the SYN-ACK happened; the capture missed that direction). An attempt near the end is still
//! conclusive when the same client started a new attempt to the same endpoint after its last SYN
//! (it was abandoned); `analyze.rs` decides that.

use super::{arrow, Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::FlowSummary;
use crate::time::{human_duration, Timestamp};

/// What the rule says about one connection.
#[derive(Debug)]
pub enum Outcome {
    Finding(Finding),
    /// The SYN was too close to the end of the capture to judge.
    Inconclusive {
        waited_ns: i64,
    },
    /// The other direction is missing from the capture.
    OneDirection,
    None,
}

/// Whether `f` is a bare attempt: SYNs from the originator, no packet from the responder.
pub fn is_unanswered_attempt(f: &FlowSummary) -> bool {
    f.syn_count > 0 && f.synack.is_none() && f.resp_stats.pkts == 0 && !f.partial
}

pub fn check(f: &FlowSummary, capture_end: Timestamp, th: &Thresholds) -> Outcome {
    if !is_unanswered_attempt(f) {
        return Outcome::None;
    }
    // The originator sent pure ACKs or data after its SYN: the handshake completed out of sight.
    if f.history.contains('A') || f.history.contains('D') {
        return Outcome::OneDirection;
    }
    let (Some(first), Some(last)) = (f.first_syn, f.last_syn) else {
        return Outcome::None;
    };
    let waited = capture_end.nanos_since(last.ts);
    let gave_up = f.history.contains('R') || f.history.contains('F');
    // A SYN sent again proves the first one went unanswered for a whole retransmission timeout
    // (≥ 1 s on Linux): such an attempt is unanswered however close to the end it stopped.
    let resent = f.syn_count > 1;
    if !gave_up && !resent && f.icmp.is_none() && waited < th.syn_timeout.nanos() {
        return Outcome::Inconclusive { waited_ns: waited };
    }
    let span = last.ts.nanos_since(first.ts);
    let mut ev = vec![Evidence {
        frame: first,
        kind: EvidenceKind::Syn,
        description: format!("SYN {} (no SYN-ACK follows)", arrow(&f.orig, &f.resp)),
    }];
    if f.syn_count > 1 {
        ev.push(Evidence {
            frame: last,
            kind: EvidenceKind::Syn,
            description: format!(
                "SYN sent again, {} of {}, {} after the first",
                f.syn_count,
                f.syn_count,
                human_duration(span)
            ),
        });
    }
    let mut note = format!(
        "{} SYN{} over {}, no answer{}",
        f.syn_count,
        if f.syn_count == 1 { "" } else { "s" },
        human_duration(span),
        if gave_up { "; the client gave up" } else { "" }
    );
    if let Some(i) = f.icmp {
        let what = icmp_name(i.v6, i.icmp_type, i.code);
        ev.push(Evidence {
            frame: i.frame,
            kind: EvidenceKind::Icmp,
            description: format!("ICMP {} from {} quoting the SYN", what, i.reporter),
        });
        note.push_str(&format!("; ICMP {} from {}", what, i.reporter));
    }
    Outcome::Finding(Finding::for_flow(
        SignatureId::SynUnanswered,
        Severity::Critical,
        f,
        note,
        ev,
    ))
}

/// Names an ICMP destination-unreachable / time-exceeded code.
pub fn icmp_name(v6: bool, t: u8, code: u8) -> &'static str {
    match (v6, t, code) {
        (false, 3, 0) => "net unreachable",
        (false, 3, 1) => "host unreachable",
        (false, 3, 3) => "port unreachable",
        (false, 3, 9 | 10 | 13) => "administratively prohibited",
        (false, 3, _) => "destination unreachable",
        (false, 11, _) => "time exceeded",
        (true, 1, 0) => "no route to destination",
        (true, 1, 1) => "administratively prohibited",
        (true, 1, 3) => "address unreachable",
        (true, 1, 4) => "port unreachable",
        (true, 1, _) => "destination unreachable",
        (true, 3, _) => "time exceeded",
        _ => "error",
    }
}

/// Severity once the whole capture is known: unanswered SYNs to an endpoint that accepted other
/// connections are a warning (some attempts lost, the service is up), not critical.
pub fn settle(a: &super::Aggregate) -> Option<super::Settled> {
    (a.established > 0 && a.severity > Severity::Warning).then_some(super::Settled {
        severity: Severity::Warning,
        note: None,
    })
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let clients = a.clients_phrase();
    let established = a.established;
    super::Words {
        summary: format!(
            "{} of {} from {} to {} got no SYN-ACK{}",
            super::plural(n, "connection attempt", "connection attempts"),
            m,
            clients,
            s,
            if established > 0 {
                format!(" ({} other connections to it succeeded)", established)
            } else {
                String::new()
            }
        ),
        likely_causes: vec![
            format!("{} is down or unreachable", ip),
            "a firewall, ACL or security group silently drops the SYNs".into(),
            "a route blackhole or a wrong address in the configuration".into(),
        ],
        next_checks: vec![
            format!("from {}: `nc -vz -w 3 {} {}`", a.client, ip, port),
            format!(
                "on {}: `ss -ltn 'sport = :{}'` and the firewall (`nft list ruleset`)",
                ip, port
            ),
            format!("on {}: `ip route get {}`", a.client, ip),
        ],
        wireshark_filter: format!(
            "{af}.dst=={ip} && tcp.dstport=={port} && tcp.flags.syn==1 && tcp.flags.ack==0"
        ),
    }
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built attempts: the client 10.0.0.1:51000 sends SYNs to 10.0.0.2:8080
    //! from frame 1 on; frame n is at n ms after T0.

    use super::*;
    use crate::flow::testkit::{established, fr, T0};
    use crate::flow::{DirStats, IcmpInfo};
    use crate::signature::{test_aggregate, Aggregate};
    use crate::time::NANOS_PER_MILLI;

    /// An attempt of `syns` SYNs, the first at frame 1 and the last at frame `last`.
    fn attempt(syns: u32, last: u64) -> FlowSummary {
        let mut f = established(9, "10.0.0.1:51000", "10.0.0.2:8080", 1, last);
        f.history = "S".into();
        f.synack = None;
        f.syn_count = syns;
        f.last_syn = Some(fr(last));
        f.orig_stats = DirStats {
            pkts: syns as u64,
            ..Default::default()
        };
        f
    }

    /// The capture's end `ms` after frame `n`.
    fn end(n: u64, ms: i64) -> Timestamp {
        Timestamp(T0 + n as i64 * NANOS_PER_MILLI + ms * NANOS_PER_MILLI)
    }

    #[track_caller]
    fn finding(o: Outcome) -> Finding {
        match o {
            Outcome::Finding(f) => f,
            o => panic!("no finding: {:?}", o),
        }
    }

    #[test]
    fn only_bare_attempts_qualify() {
        assert!(is_unanswered_attempt(&attempt(1, 1)));
        let mut f = attempt(1, 1);
        f.syn_count = 0;
        assert!(!is_unanswered_attempt(&f));
        let mut f = attempt(1, 1);
        f.synack = Some(fr(2));
        assert!(!is_unanswered_attempt(&f));
        let mut f = attempt(1, 1);
        f.resp_stats.pkts = 1;
        assert!(!is_unanswered_attempt(&f));
        let mut f = attempt(1, 1);
        f.partial = true;
        assert!(!is_unanswered_attempt(&f));
        assert!(matches!(
            check(&f, end(1, 10_000), &Thresholds::default()),
            Outcome::None
        ));
    }

    #[test]
    fn acks_or_data_after_the_syn_mean_a_missing_direction() {
        for h in ["SA", "SD"] {
            let mut f = attempt(1, 1);
            f.history = h.into();
            assert!(
                matches!(
                    check(&f, end(1, 10_000), &Thresholds::default()),
                    Outcome::OneDirection
                ),
                "{}",
                h
            );
        }
    }

    #[test]
    fn without_syn_frames_there_is_nothing_to_show() {
        let mut f = attempt(1, 1);
        f.first_syn = None;
        assert!(matches!(
            check(&f, end(1, 10_000), &Thresholds::default()),
            Outcome::None
        ));
        let mut f = attempt(1, 1);
        f.last_syn = None;
        assert!(matches!(
            check(&f, end(1, 10_000), &Thresholds::default()),
            Outcome::None
        ));
    }

    #[test]
    fn a_single_syn_is_judged_from_the_syn_timeout_on() {
        let th = Thresholds::default();
        let limit = th.syn_timeout.nanos() / NANOS_PER_MILLI;
        match check(&attempt(1, 1), end(1, limit - 1), &th) {
            Outcome::Inconclusive { waited_ns } => {
                assert_eq!(waited_ns, th.syn_timeout.nanos() - NANOS_PER_MILLI)
            }
            o => panic!("{:?}", o),
        }
        let fd = finding(check(&attempt(1, 1), end(1, limit), &th));
        assert_eq!(fd.signature, SignatureId::SynUnanswered);
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(fd.note, "1 SYN over 0µs, no answer");
        assert_eq!(fd.evidence.len(), 1);
        assert_eq!(fd.evidence[0].frame, fr(1));
        assert_eq!(fd.evidence[0].kind, EvidenceKind::Syn);
        assert_eq!(
            fd.evidence[0].description,
            "SYN 10.0.0.1:51000 → 10.0.0.2:8080 (no SYN-ACK follows)"
        );
    }

    #[test]
    fn a_resent_syn_giving_up_or_an_icmp_error_is_conclusive_at_once() {
        let th = Thresholds::default();
        // Sent again: conclusive right at the end of the capture.
        let fd = finding(check(&attempt(3, 3001), end(3001, 0), &th));
        assert_eq!(fd.note, "3 SYNs over 3.00s, no answer");
        assert_eq!(fd.evidence.len(), 2);
        assert_eq!(fd.evidence[1].frame, fr(3001));
        assert_eq!(
            fd.evidence[1].description,
            "SYN sent again, 3 of 3, 3.00s after the first"
        );
        // Gave up with RST or FIN.
        for h in ["SR", "SF"] {
            let mut f = attempt(1, 1);
            f.history = h.into();
            let fd = finding(check(&f, end(1, 5), &th));
            assert_eq!(
                fd.note, "1 SYN over 0µs, no answer; the client gave up",
                "{}",
                h
            );
        }
        // An ICMP error quoting the SYN.
        let mut f = attempt(1, 1);
        f.icmp = Some(IcmpInfo {
            frame: fr(2),
            reporter: "10.0.0.254".parse().unwrap(),
            v6: false,
            icmp_type: 3,
            code: 1,
        });
        let fd = finding(check(&f, end(1, 5), &th));
        assert_eq!(
            fd.note,
            "1 SYN over 0µs, no answer; ICMP host unreachable from 10.0.0.254"
        );
        assert_eq!(fd.evidence.len(), 2);
        assert_eq!(fd.evidence[1].kind, EvidenceKind::Icmp);
        assert_eq!(fd.evidence[1].frame, fr(2));
        assert_eq!(
            fd.evidence[1].description,
            "ICMP host unreachable from 10.0.0.254 quoting the SYN"
        );
    }

    #[test]
    fn two_syns_one_second_before_the_end_are_conclusive_one_is_not() {
        // (Moved from `connection_reset`'s tests.) The first SYN waited a whole retransmission
        // timeout when the second was sent: conclusive although the end is only 1 s away.
        let th = Thresholds::default();
        match check(&attempt(1, 1), end(1, 1_000), &th) {
            Outcome::Inconclusive { waited_ns } => assert_eq!(waited_ns, 1_000 * NANOS_PER_MILLI),
            o => panic!("{:?}", o),
        }
        let fd = finding(check(&attempt(2, 1001), end(1001, 1_000), &th));
        let frames: Vec<u64> = fd.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![1, 1001]);
    }

    #[test]
    fn icmp_codes_are_named() {
        let cases = [
            ((false, 3, 0), "net unreachable"),
            ((false, 3, 1), "host unreachable"),
            ((false, 3, 3), "port unreachable"),
            ((false, 3, 9), "administratively prohibited"),
            ((false, 3, 10), "administratively prohibited"),
            ((false, 3, 13), "administratively prohibited"),
            ((false, 3, 2), "destination unreachable"),
            ((false, 11, 0), "time exceeded"),
            ((true, 1, 0), "no route to destination"),
            ((true, 1, 1), "administratively prohibited"),
            ((true, 1, 3), "address unreachable"),
            ((true, 1, 4), "port unreachable"),
            ((true, 1, 5), "destination unreachable"),
            ((true, 3, 0), "time exceeded"),
            ((true, 4, 0), "error"),
            ((false, 5, 0), "error"),
        ];
        for ((v6, t, c), name) in cases {
            assert_eq!(icmp_name(v6, t, c), name, "{} {} {}", v6, t, c);
        }
    }

    fn agg(established: u64, severity: Severity) -> Aggregate<'static> {
        Aggregate {
            established,
            severity,
            ..test_aggregate(SignatureId::SynUnanswered, "10.0.0.2:8080", 2, 6)
        }
    }

    #[test]
    fn unanswered_syns_to_an_endpoint_that_accepted_others_are_a_warning() {
        assert_eq!(
            settle(&agg(4, Severity::Critical)),
            Some(crate::signature::Settled {
                severity: Severity::Warning,
                note: None
            })
        );
        assert_eq!(settle(&agg(0, Severity::Critical)), None);
        assert_eq!(settle(&agg(4, Severity::Warning)), None);
    }

    #[test]
    fn words_say_how_many_other_connections_succeeded() {
        let w = words(&agg(4, Severity::Warning));
        assert_eq!(
            w.summary,
            "2 connection attempts of 6 from 10.0.0.1 to 10.0.0.2:8080 got no SYN-ACK (4 other connections to it succeeded)"
        );
        let w = words(&agg(0, Severity::Critical));
        assert_eq!(
            w.summary,
            "2 connection attempts of 6 from 10.0.0.1 to 10.0.0.2:8080 got no SYN-ACK"
        );
        assert!(w.likely_causes[0].starts_with("10.0.0.2 is down"));
        assert_eq!(
            w.next_checks[0],
            "from 10.0.0.1: `nc -vz -w 3 10.0.0.2 8080`"
        );
        assert!(w.next_checks[1].contains("sport = :8080"));
        assert_eq!(w.next_checks[2], "on 10.0.0.1: `ip route get 10.0.0.2`");
        assert_eq!(
            w.wireshark_filter,
            "ip.dst==10.0.0.2 && tcp.dstport==8080 && tcp.flags.syn==1 && tcp.flags.ack==0"
        );
    }
}
