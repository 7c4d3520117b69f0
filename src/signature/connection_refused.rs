//! `connection-refused`: a SYN answered by a RST (Zeek `REJ`): nothing listens on that port, or a
//! firewall rejects with a reset.
//!
//! Rule: the responder's first packet is a RST while the originator is still in SYN_SENT (conn
//! state REJ). Severity is set by the verdict stage (critical when no attempt to that endpoint
//! succeeded); a refusal followed within `HAPPY_EYEBALLS_NS` by a successful connection from the
//! same client to the same port on another address (curl trying ::1 then 127.0.0.1) is info.

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
