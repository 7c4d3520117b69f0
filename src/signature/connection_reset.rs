//! `connection-reset`: a RST on an established connection.
//!
//! Rule: a RST after the handshake completed (or, for a partial connection, after data), that is
//! not the answer to a SYN (that is `connection-refused`).
//! - **critical**: the responder reset while the originator's data was unacknowledged or the
//!   originator had spoken last (a request outstanding): the request failed.
//! - **warning**: data was still in flight when the originator reset (it aborted a transfer), or
//!   the responder reset while its own data was unacknowledged.
//! - **info**: the reset came after the exchange completed (the responder had answered, no data
//!   unacknowledged) or after a FIN: many proxies and browsers close finished connections with RST
//!   on purpose; this never makes a healthy capture look broken.
//!
//! A RST whose TTL / hop limit is outside the range of that sender's other packets was likely
//! injected by a middlebox; the note says so.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::flow::{ConnState, Direction, FlowSummary};

pub fn check(f: &FlowSummary) -> Option<Finding> {
    if matches!(f.conn_state, ConnState::REJ | ConnState::RSTOS0) {
        return None;
    }
    let rst = f.rst?;
    let established = f.synack.is_some() || f.orig_stats.bytes + f.resp_stats.bytes > 0;
    if !established {
        return None;
    }
    let (sender, peer) = match rst.from {
        Direction::Orig => (f.orig, f.resp),
        Direction::Resp => (f.resp, f.orig),
    };
    let sender_stats = f.stats(rst.from);
    let in_flight = rst.unacked_by_peer > 0 || rst.unacked_from_peer > 0;
    let orig_spoke_last = rst.last_data_from == Some(Direction::Orig);
    let (severity, why) = if rst.after_fin && !in_flight {
        (
            Severity::Info,
            "after the connection was already closing (FIN seen)".to_string(),
        )
    } else {
        match rst.from {
            Direction::Resp if rst.unacked_from_peer > 0 || orig_spoke_last => (
                Severity::Critical,
                if rst.unacked_from_peer > 0 {
                    format!(
                        "while {} bytes from the client were unacknowledged",
                        rst.unacked_from_peer
                    )
                } else {
                    "while the client's request was outstanding (the client spoke last)".to_string()
                },
            ),
            _ if in_flight => (
                Severity::Warning,
                format!(
                    "with data in flight ({} bytes unacknowledged by {}, {} from it)",
                    rst.unacked_by_peer, peer, rst.unacked_from_peer
                ),
            ),
            Direction::Orig if orig_spoke_last => (
                Severity::Info,
                "as the client gave up while its request was unanswered (a timeout on the client's side: see upstream-timeout)".to_string(),
            ),
            _ if f.orig_stats.bytes == 0 && f.resp_stats.bytes == 0 => (
                Severity::Info,
                "on an idle connection that carried no data".to_string(),
            ),
            _ => (
                Severity::Info,
                "after the exchange completed (nothing unacknowledged)".to_string(),
            ),
        }
    };
    let injected = sender_stats.ttl_max != 0
        && (rst.ttl < sender_stats.ttl_min || rst.ttl > sender_stats.ttl_max);
    let mut note = format!(
        "RST from {} ({}) {}",
        sender,
        if rst.from == Direction::Orig {
            "client"
        } else {
            "server"
        },
        why
    );
    if injected {
        note.push_str(&format!(
            "; its TTL {} differs from that sender's other packets ({}-{}): likely injected by a middlebox",
            rst.ttl, sender_stats.ttl_min, sender_stats.ttl_max
        ));
    }
    let mut ev = Vec::new();
    if let Some(d) = f.stats(Direction::Orig).last_data {
        ev.push(Evidence {
            frame: d,
            kind: EvidenceKind::Data,
            description: format!("last data from the client {}", f.orig),
        });
    }
    if let Some(d) = f.stats(Direction::Resp).last_data {
        ev.push(Evidence {
            frame: d,
            kind: EvidenceKind::Data,
            description: format!("last data from the server {}", f.resp),
        });
    }
    ev.push(Evidence {
        frame: rst.frame,
        kind: EvidenceKind::Rst,
        description: format!("RST {} → {} {}", sender, peer, why),
    });
    ev.sort_by_key(|e| (e.frame.file, e.frame.number));
    Some(Finding::for_flow(
        SignatureId::ConnectionReset,
        severity,
        f,
        note,
        ev,
    ))
}
