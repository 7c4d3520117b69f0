//! `connection-reset`: a RST on an established connection.
//!
//! Rule: a RST after the handshake completed (or, for a partial connection, after data), that is
//! not the answer to a SYN (that is `connection-refused`).
//! - **critical**: the responder reset while the originator's data was unacknowledged or the
//!   originator had spoken last (a request outstanding): the request failed.
//! - **warning**: data was still in flight when the originator reset (it aborted a transfer), or
//!   the responder reset while its own data was unacknowledged.
//! - A RST that follows complete exchanges is not a reset failure at all but `abortive-close`
//!   (info, its own verdict, so it is never counted in `connection-reset`'s n of m): every HTTP
//!   request answered with a complete response, or (without HTTP) nothing unacknowledged, or a
//!   FIN already seen with nothing in flight. A FIN's sequence slot is not data in flight.
//!   haproxy closes finished backend connections this way; so do browsers and SO_LINGER 0.
//! - A RST that cuts a response body short is `truncated-response`'s, not this one's.
//! - With HTTP followed to the end, "a request outstanding" means an unanswered request: the
//!   server's RST then is critical, the client's is info (it gave up: see upstream-timeout).
//!
//! A RST whose TTL / hop limit is outside the range of that sender's other packets was likely
//! injected by a middlebox; the note says so.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::{ConnState, Direction, FlowSummary};

pub fn check(f: &FlowSummary, app: &AppSummary) -> Option<Finding> {
    if matches!(f.conn_state, ConnState::REJ | ConnState::RSTOS0) {
        return None;
    }
    let rst = f.rst?;
    let established = f.synack.is_some() || f.orig_stats.bytes + f.resp_stats.bytes > 0;
    if !established {
        return None;
    }
    let http = app.http.as_ref().filter(|h| h.requests > 0);
    // A RST that cut a response body is `truncated-response`'s: one cause, one verdict.
    if http.is_some_and(|h| h.truncated.is_some()) {
        return None;
    }
    let (sender, peer) = match rst.from {
        Direction::Orig => (f.orig, f.resp),
        Direction::Resp => (f.resp, f.orig),
    };
    let sender_stats = f.stats(rst.from);
    let in_flight = rst.unacked_by_peer > 0 || rst.unacked_from_peer > 0;
    let orig_spoke_last = rst.last_data_from == Some(Direction::Orig);
    // What HTTP says about the exchanges, when the connection carried HTTP that was followed to
    // its end: every request answered with a complete response, or some left unanswered.
    let http_done = http.filter(|h| h.anomaly.is_none() && !h.response_gap);
    let all_answered = http_done.is_some_and(|h| h.unanswered.is_empty());
    let unanswered = http_done.map_or(0, |h| h.unanswered.len());
    let normal = |why: String| (SignatureId::AbortiveClose, Severity::Info, why);
    let (sig, severity, why) = if all_answered {
        // The class "a RST that follows complete responses": haproxy's abortive close of a
        // finished backend connection, a browser dropping a keep-alive connection, SO_LINGER 0.
        normal(format!(
            "after {} complete HTTP exchange{} (an abortive close, not a failure)",
            http_done.map_or(0, |h| h.responses),
            if http_done.map_or(0, |h| h.responses) == 1 {
                ""
            } else {
                "s"
            }
        ))
    } else if unanswered > 0 && rst.from == Direction::Resp {
        (
            SignatureId::ConnectionReset,
            Severity::Critical,
            format!(
                "while {} request{} from the client {} unanswered",
                unanswered,
                if unanswered == 1 { "" } else { "s" },
                if unanswered == 1 { "was" } else { "were" }
            ),
        )
    } else if unanswered > 0 {
        (
            SignatureId::ConnectionReset,
            Severity::Info,
            "as the client gave up while its request was unanswered (a timeout on the client's side: see upstream-timeout)".to_string(),
        )
    } else if f
        .stats(rst.from)
        .first_fin
        .is_some_and(|fin| (fin.ts, fin.number) < (rst.frame.ts, rst.frame.number))
        && rst.unacked_by_peer == 0
    {
        // The class "a RST from a side that had already closed": its kernel answers data that
        // arrived after close() (TLS 1.3 session tickets after the client's FIN, a late reply).
        // The closer did not want more; nothing of its own was lost.
        normal(format!(
            "from a side that had already sent its FIN, answering {} bytes that arrived after it closed (normal after close(): TLS session tickets, a late reply)",
            rst.unacked_from_peer
        ))
    } else if rst.after_fin && !in_flight {
        normal("after the connection was already closing (FIN seen)".to_string())
    } else {
        match rst.from {
            Direction::Resp if rst.unacked_from_peer > 0 || orig_spoke_last => (
                SignatureId::ConnectionReset,
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
                SignatureId::ConnectionReset,
                Severity::Warning,
                format!(
                    "with data in flight ({} bytes unacknowledged by {}, {} from it)",
                    rst.unacked_by_peer, peer, rst.unacked_from_peer
                ),
            ),
            Direction::Orig if orig_spoke_last => (
                SignatureId::ConnectionReset,
                Severity::Info,
                "as the client gave up while its request was unanswered (a timeout on the client's side: see upstream-timeout)".to_string(),
            ),
            _ if f.orig_stats.bytes == 0 && f.resp_stats.bytes == 0 => {
                normal("on an idle connection that carried no data".to_string())
            }
            _ => normal("after the exchange completed (nothing unacknowledged)".to_string()),
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
    Some(Finding::for_flow(sig, severity, f, note, ev))
}
