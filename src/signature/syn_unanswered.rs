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
