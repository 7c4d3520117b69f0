//! `connection-refused`: a SYN answered by a RST (Zeek `REJ`): nothing listens on that port, or a
//! firewall rejects with a reset.
//!
//! Rule: the responder's first packet is a RST while the originator is still in SYN_SENT (conn
//! state REJ). Each finding is critical; `settle` (called by the verdict stage once the whole
//! capture is known) lowers a verdict whose refusals were each absorbed: to info when every
//! refused client connected to the same port on another address within `FALLBACK_WINDOW_NS`
//! (curl trying ::1 then 127.0.0.1), to warning when every refusal was followed within
//! `Thresholds::refused_retry_window` by a success of the same client to the same endpoint.

use super::{arrow, Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::flow::{ConnState, Direction, FlowSummary};

pub fn check(f: &FlowSummary) -> Option<Finding> {
    if f.conn_state != ConnState::REJ {
        return None;
    }
    let rst = f.rst.filter(|r| r.from == Direction::Resp)?;
    let mut ev = Vec::new();
    if let Some(s) = f.first_syn {
        ev.push(Evidence {
            frame: s,
            kind: EvidenceKind::Syn,
            description: format!("SYN {}", arrow(&f.orig, &f.resp)),
        });
    }
    ev.push(Evidence {
        frame: rst.frame,
        kind: EvidenceKind::Rst,
        description: format!("RST from {} answering the SYN (port closed)", f.resp),
    });
    let note = if f.syn_count > 1 {
        format!("{} SYNs, each answered by RST", f.syn_count)
    } else {
        "SYN answered by RST".to_string()
    };
    Some(Finding::for_flow(
        SignatureId::ConnectionRefused,
        Severity::Critical,
        f,
        note,
        ev,
    ))
}

/// Severity once the whole capture is known. Refusals that each fell back to another address of
/// the server (address-family fallback) are info; refusals that were each followed within
/// `Thresholds::refused_retry_window` by a success of the same client to the same endpoint were absorbed by a
/// retry (warning); otherwise the refusals stood (a restart window, a backend down) and the
/// rule's own severity (critical) holds, however many other connections succeeded.
pub fn settle(
    a: &super::Aggregate,
    attempts: &[(std::net::IpAddr, crate::time::Timestamp)],
    s: &dyn super::Successes,
    th: &super::Thresholds,
) -> Option<super::Settled> {
    if attempts.is_empty() {
        return None;
    }
    if attempts.iter().all(|(c, t)| {
        s.to_other_address_after(*c, a.server, *t, th.refused_fallback_window.nanos())
    }) {
        return Some(super::Settled {
            severity: Severity::Info,
            note: Some("each refused client connected to the same port on another address right after (address-family fallback, e.g. ::1 then 127.0.0.1)"),
        });
    }
    if attempts
        .iter()
        .all(|(c, t)| s.to_endpoint_after(*c, a.server, *t, th.refused_retry_window.nanos()))
    {
        return Some(super::Settled {
            severity: Severity::Warning,
            note: Some("each refused attempt was followed within the retry window by a successful connection of the same client (absorbed by a retry)"),
        });
    }
    None
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let clients = a.clients_phrase();
    super::Words {
        summary: format!(
        "{} of {} from {} to {} {} refused with RST: nothing accepts connections on that port",
        super::plural(n, "connection attempt", "connection attempts"),
        m,
        clients,
        s,
        if n == 1 { "was" } else { "were" }
    ),
        likely_causes: vec![
            format!("nothing listens on {} (service down, crashed, not started, or listening on another port/address)", s),
            "a firewall rejecting with a TCP reset".into(),
        ],
        next_checks: vec![
        format!(
            "check that something listens on {}: `ss -ltnp 'sport = :{}'` on {}",
            s, port, ip
        ),
        "check the port in the proxy's upstream configuration".into(),
        format!("`nft list ruleset | grep -n reject` on {}", ip),
    ],
        wireshark_filter: format!("{af}.addr=={ip} && tcp.port=={port} && (tcp.flags.reset==1 || (tcp.flags.syn==1 && tcp.flags.ack==0))"),
    }
}
