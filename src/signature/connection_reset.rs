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
                "with {} request{} from the client outstanding (sent, never answered)",
                unanswered,
                if unanswered == 1 { "" } else { "s" },
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

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let mut w = super::Words::default();
    let [info, warn, crit] = a.by_severity;
    let mut parts = Vec::new();
    if crit > 0 {
        parts.push(format!("{} with a request outstanding", crit));
    }
    if warn > 0 {
        parts.push(format!("{} with data in flight", warn));
    }
    if info > 0 {
        parts.push(format!(
            "{} after a completed exchange or while closing",
            info
        ));
    }
    w.summary = format!(
        "{} of {} to {} {} reset: {}",
        super::plural(n, "connection", "connections"),
        m,
        s,
        if n == 1 { "was" } else { "were" },
        parts.join(", ")
    );
    if a.severity == Severity::Info {
        w.likely_causes = vec!["finished connections closed with RST on purpose (common for proxies, load balancers and browsers): not an outage by itself".into()];
    } else {
        w.likely_causes = vec![
            "the server process crashed, was killed or restarted mid-request".into(),
            "an idle timeout on a middlebox or proxy shorter than the peer's keep-alive".into(),
            "the proxy aborted the upstream request (client gone, timeout)".into(),
        ];
    }
    w.next_checks = vec![
        format!(
            "server logs and `journalctl`/`dmesg` (OOM killer) on {} around {}",
            ip, a.first_ts
        ),
        "compare keep-alive and idle timeouts of client, proxy and backend".into(),
    ];
    w.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && tcp.flags.reset==1");
    w
}

/// The words of an `abortive-close` verdict (the RST classification above decides between it
/// and `connection-reset`, so both live here).
pub fn abortive_close_words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    super::Words {
        summary: format!(
            "{} of {} connections to {} ended with an abortive close (RST) after complete exchanges: normal for haproxy and for clients that close with SO_LINGER 0, not a failure",
            n, m, s
        ),
        likely_causes: vec!["the closing side chose RST over FIN on purpose (haproxy closes finished backend connections so; browsers drop idle keep-alive connections so)".into()],
        next_checks: vec!["nothing to do unless other verdicts point at this endpoint".into()],
        wireshark_filter: format!("{af}.addr=={ip} && tcp.port=={port} && tcp.flags.reset==1"),
    }
}

#[cfg(test)]
mod tests {
    //! The rule's boundaries, on hand-built summaries: the client 10.0.0.1:51000 talks to the
    //! server 10.0.0.2:8080; frame n is at n ms after T0.

    use super::*;
    use crate::app::http::{HttpSummary, Request, Truncation};
    use crate::flow::testkit::fr;
    use crate::flow::{ConnState, DirStats, EndReason, RstInfo};
    use crate::time::NANOS_PER_MILLI;

    fn stats(bytes: u64, data: Option<(u64, u64)>) -> DirStats {
        DirStats {
            pkts: 4,
            bytes,
            ttl_min: 64,
            ttl_max: 64,
            first_data: data.map(|d| fr(d.0)),
            last_data: data.map(|d| fr(d.1)),
            ..Default::default()
        }
    }

    /// An established connection with data both ways (client frames 4..6, server 5..7), ended
    /// by `rst` at frame 20.
    fn flow(rst: RstInfo) -> FlowSummary {
        FlowSummary {
            id: 7,
            slot: 0,
            orig: "10.0.0.1:51000".parse().unwrap(),
            resp: "10.0.0.2:8080".parse().unwrap(),
            partial: false,
            conn_state: if rst.from == Direction::Orig {
                ConnState::RSTO
            } else {
                ConnState::RSTR
            },
            history: "ShADadr".into(),
            orig_stats: stats(300, Some((4, 6))),
            resp_stats: stats(900, Some((5, 7))),
            first: fr(1),
            last: rst.frame,
            start: fr(1).ts,
            end: rst.frame.ts,
            syn_count: 1,
            first_syn: Some(fr(1)),
            last_syn: Some(fr(1)),
            synack: Some(fr(2)),
            rtt_ns: Some(2 * NANOS_PER_MILLI),
            rst: Some(rst),
            rst_count: 1,
            icmp: None,
            first_fin_from: None,
            closed_at: None,
            port_reused: false,
            reused_in_time_wait: false,
            reused_close: None,
            end_reason: EndReason::Closed,
        }
    }

    fn rst(from: Direction, by_peer: u32, from_peer: u32, last: Direction) -> RstInfo {
        RstInfo {
            from,
            frame: fr(20),
            ttl: 64,
            unacked_by_peer: by_peer,
            unacked_from_peer: from_peer,
            after_fin: false,
            last_data_from: Some(last),
        }
    }

    fn req(n: u64) -> Request {
        Request {
            frame: fr(n),
            method: "GET".into(),
            target: "/x".into(),
            host: None,
            complete_at: Some(fr(n)),
            forwarded_for: None,
        }
    }

    /// HTTP with `requests` requests of which `unanswered` got no response.
    fn http(requests: u32, unanswered: u32) -> AppSummary {
        AppSummary {
            http: Some(HttpSummary {
                requests,
                responses: requests - unanswered,
                unanswered: (0..unanswered).map(|i| req(10 + i as u64)).collect(),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[track_caller]
    fn verdict(f: &FlowSummary, app: &AppSummary) -> (SignatureId, Severity) {
        let fd = check(f, app).expect("a finding");
        assert!(
            fd.evidence
                .iter()
                .any(|e| e.kind == EvidenceKind::Rst && e.frame == f.rst.unwrap().frame),
            "the RST is evidence: {:?}",
            fd.evidence
        );
        (fd.signature, fd.severity)
    }

    #[test]
    fn rst_after_every_request_answered_is_abortive_close() {
        // The server resets while the client spoke last: without HTTP that is critical; every
        // request answered makes it haproxy's abortive close.
        let f = flow(rst(Direction::Resp, 0, 0, Direction::Orig));
        assert_eq!(
            verdict(&f, &http(2, 0)),
            (SignatureId::AbortiveClose, Severity::Info)
        );
        let fd = check(&f, &http(2, 0)).unwrap();
        assert!(fd.note.contains("2 complete HTTP exchanges"), "{}", fd.note);
        assert_eq!(
            verdict(&f, &AppSummary::default()),
            (SignatureId::ConnectionReset, Severity::Critical)
        );
    }

    #[test]
    fn server_rst_with_unanswered_request_is_critical() {
        let f = flow(rst(Direction::Resp, 0, 0, Direction::Resp));
        assert_eq!(
            verdict(&f, &http(2, 1)),
            (SignatureId::ConnectionReset, Severity::Critical)
        );
        let fd = check(&f, &http(2, 1)).unwrap();
        assert!(
            fd.note
                .contains("1 request from the client outstanding (sent, never answered)"),
            "{}",
            fd.note
        );
    }

    #[test]
    fn client_rst_with_unanswered_request_is_info() {
        // Data in flight would make it a warning without HTTP: the unanswered request decides.
        let f = flow(rst(Direction::Orig, 10, 0, Direction::Orig));
        assert_eq!(
            verdict(&f, &http(1, 1)),
            (SignatureId::ConnectionReset, Severity::Info)
        );
        assert_eq!(
            verdict(&f, &AppSummary::default()),
            (SignatureId::ConnectionReset, Severity::Warning)
        );
    }

    #[test]
    fn rst_after_own_fin_answering_late_bytes_is_abortive_close() {
        let mut f = flow(rst(Direction::Orig, 0, 517, Direction::Resp));
        f.orig_stats.first_fin = Some(fr(15));
        f.first_fin_from = Some(Direction::Orig);
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::AbortiveClose, Severity::Info)
        );
        assert!(fd.note.contains("answering 517 bytes"), "{}", fd.note);
    }

    #[test]
    fn rst_after_own_fin_with_own_data_unacked_is_not_abortive_close() {
        let mut f = flow(rst(Direction::Orig, 1, 517, Direction::Resp));
        f.orig_stats.first_fin = Some(fr(15));
        f.first_fin_from = Some(Direction::Orig);
        let (sig, sev) = verdict(&f, &AppSummary::default());
        assert_ne!(sig, SignatureId::AbortiveClose);
        assert_eq!(
            (sig, sev),
            (SignatureId::ConnectionReset, Severity::Warning)
        );
    }

    #[test]
    fn fin_after_the_rst_does_not_make_it_an_abortive_close() {
        // The FIN rule needs the FIN *before* the RST.
        let mut f = flow(rst(Direction::Resp, 0, 517, Direction::Orig));
        f.resp_stats.first_fin = Some(fr(25));
        assert_eq!(
            verdict(&f, &AppSummary::default()),
            (SignatureId::ConnectionReset, Severity::Critical)
        );
    }

    #[test]
    fn truncated_response_is_left_to_truncated_response() {
        let f = flow(rst(Direction::Resp, 0, 0, Direction::Resp));
        let mut app = http(1, 0);
        app.http.as_mut().unwrap().truncated = Some(Truncation {
            response: fr(5),
            status: 200,
            request: Some(fr(4)),
            declared: Some(4_000_000),
            received: 606_312,
            last_data: fr(7),
        });
        assert!(check(&f, &app).is_none());
        // The same connection without the truncation is judged here.
        assert!(check(&f, &http(1, 0)).is_some());
    }

    #[test]
    fn responder_rst_with_client_bytes_unacked_is_critical_without_http() {
        let f = flow(rst(Direction::Resp, 0, 120, Direction::Resp));
        assert_eq!(
            verdict(&f, &AppSummary::default()),
            (SignatureId::ConnectionReset, Severity::Critical)
        );
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert!(fd.note.contains("120 bytes from the client"), "{}", fd.note);
        // Nothing unacknowledged and the server spoke last: the exchange completed.
        let done = flow(rst(Direction::Resp, 0, 0, Direction::Resp));
        assert_eq!(
            verdict(&done, &AppSummary::default()),
            (SignatureId::AbortiveClose, Severity::Info)
        );
    }

    #[test]
    fn originator_rst_with_data_in_flight_is_warning() {
        let f = flow(rst(Direction::Orig, 0, 4096, Direction::Resp));
        assert_eq!(
            verdict(&f, &AppSummary::default()),
            (SignatureId::ConnectionReset, Severity::Warning)
        );
    }

    #[test]
    fn rst_answering_a_syn_is_not_judged_here() {
        let mut f = flow(rst(Direction::Resp, 0, 0, Direction::Orig));
        f.conn_state = ConnState::REJ;
        assert!(check(&f, &AppSummary::default()).is_none());
    }

    #[test]
    fn rst_with_ttl_outside_the_senders_range_is_called_injected() {
        let mut r = rst(Direction::Resp, 0, 120, Direction::Resp);
        r.ttl = 250;
        let fd = check(&flow(r), &AppSummary::default()).unwrap();
        assert!(fd.note.contains("likely injected"), "{}", fd.note);
    }

    #[test]
    fn ttl_at_either_end_of_the_senders_range_is_not_injected() {
        for ttl in [60, 64] {
            let mut r = rst(Direction::Resp, 0, 120, Direction::Resp);
            r.ttl = ttl;
            let mut f = flow(r);
            f.resp_stats.ttl_min = 60;
            let fd = check(&f, &AppSummary::default()).unwrap();
            assert!(!fd.note.contains("injected"), "{}: {}", ttl, fd.note);
        }
        for ttl in [59, 65] {
            let mut r = rst(Direction::Resp, 0, 120, Direction::Resp);
            r.ttl = ttl;
            let mut f = flow(r);
            f.resp_stats.ttl_min = 60;
            let fd = check(&f, &AppSummary::default()).unwrap();
            assert!(
                fd.note.ends_with(&format!(
                    "; its TTL {} differs from that sender's other packets (60-64): likely injected by a middlebox",
                    ttl
                )),
                "{}",
                fd.note
            );
        }
        // No TTL known for the sender (no other packet from it): nothing to compare.
        let mut r = rst(Direction::Resp, 0, 120, Direction::Resp);
        r.ttl = 250;
        let mut f = flow(r);
        f.resp_stats.ttl_min = 0;
        f.resp_stats.ttl_max = 0;
        assert!(!check(&f, &AppSummary::default())
            .unwrap()
            .note
            .contains("injected"));
    }

    #[test]
    fn a_reset_before_any_handshake_or_data_is_not_judged() {
        let mut f = flow(rst(Direction::Resp, 0, 0, Direction::Resp));
        f.synack = None;
        f.orig_stats.bytes = 0;
        f.resp_stats.bytes = 0;
        assert!(check(&f, &AppSummary::default()).is_none());
        // Data seen without the handshake (a capture started mid-connection) is established.
        f.resp_stats.bytes = 1;
        assert!(check(&f, &AppSummary::default()).is_some());
        let mut f = flow(rst(Direction::Orig, 0, 0, Direction::Orig));
        f.conn_state = ConnState::RSTOS0;
        assert!(check(&f, &AppSummary::default()).is_none());
    }

    #[test]
    fn nothing_in_flight_is_an_abortive_close_idle_or_after_the_exchange() {
        let mut f = flow(rst(Direction::Resp, 0, 0, Direction::Resp));
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::AbortiveClose, Severity::Info)
        );
        assert!(fd
            .note
            .ends_with("after the exchange completed (nothing unacknowledged)"));
        f.orig_stats.bytes = 0;
        f.resp_stats.bytes = 0;
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert!(
            fd.note
                .ends_with("on an idle connection that carried no data"),
            "{}",
            fd.note
        );
        // Only one side idle is not an idle connection.
        f.resp_stats.bytes = 1;
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert!(fd
            .note
            .ends_with("after the exchange completed (nothing unacknowledged)"));
    }

    #[test]
    fn a_reset_while_closing_with_nothing_in_flight_is_an_abortive_close() {
        let mut r = rst(Direction::Resp, 0, 0, Direction::Orig);
        r.after_fin = true;
        let fd = check(&flow(r), &AppSummary::default()).unwrap();
        assert_eq!(fd.signature, SignatureId::AbortiveClose);
        assert!(fd
            .note
            .ends_with("after the connection was already closing (FIN seen)"));
        // Something in flight: judged as a reset.
        let mut r = rst(Direction::Orig, 10, 0, Direction::Orig);
        r.after_fin = true;
        let fd = check(&flow(r), &AppSummary::default()).unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::ConnectionReset, Severity::Warning)
        );
        assert!(fd.note.ends_with(
            "with data in flight (10 bytes unacknowledged by 10.0.0.2:8080, 0 from it)"
        ));
    }

    #[test]
    fn counts_in_notes_are_singular_or_plural() {
        let fd = check(
            &flow(rst(Direction::Orig, 0, 0, Direction::Resp)),
            &http(1, 0),
        )
        .unwrap();
        assert!(
            fd.note
                .contains("after 1 complete HTTP exchange (an abortive close"),
            "{}",
            fd.note
        );
        let fd = check(
            &flow(rst(Direction::Resp, 0, 0, Direction::Orig)),
            &http(3, 2),
        )
        .unwrap();
        assert!(
            fd.note
                .contains("with 2 requests from the client outstanding"),
            "{}",
            fd.note
        );
        let fd = check(
            &flow(rst(Direction::Resp, 0, 0, Direction::Orig)),
            &http(3, 1),
        )
        .unwrap();
        assert!(
            fd.note
                .contains("with 1 request from the client outstanding"),
            "{}",
            fd.note
        );
    }

    #[test]
    fn a_server_reset_after_the_client_spoke_last_is_critical() {
        let fd = check(
            &flow(rst(Direction::Resp, 0, 0, Direction::Orig)),
            &AppSummary::default(),
        )
        .unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::ConnectionReset, Severity::Critical)
        );
        assert!(fd.note.starts_with(
            "RST from 10.0.0.2:8080 (server) while the client's request was outstanding"
        ));
        // The client's own reset after it spoke last: it gave up.
        let fd = check(
            &flow(rst(Direction::Orig, 0, 0, Direction::Orig)),
            &AppSummary::default(),
        )
        .unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::ConnectionReset, Severity::Info)
        );
        assert!(fd
            .note
            .starts_with("RST from 10.0.0.1:51000 (client) as the client gave up"));
        // The server's reset with its own data unacknowledged.
        let fd = check(
            &flow(rst(Direction::Resp, 30, 0, Direction::Resp)),
            &AppSummary::default(),
        )
        .unwrap();
        assert_eq!(fd.severity, Severity::Warning);
    }

    #[test]
    fn evidence_is_both_last_data_frames_and_the_rst_in_frame_order() {
        let fd = check(
            &flow(rst(Direction::Resp, 0, 120, Direction::Orig)),
            &AppSummary::default(),
        )
        .unwrap();
        let got: Vec<(u64, EvidenceKind)> = fd
            .evidence
            .iter()
            .map(|e| (e.frame.number, e.kind))
            .collect();
        assert_eq!(
            got,
            vec![
                (6, EvidenceKind::Data),
                (7, EvidenceKind::Data),
                (20, EvidenceKind::Rst)
            ]
        );
        assert_eq!(
            fd.evidence[0].description,
            "last data from the client 10.0.0.1:51000"
        );
        assert_eq!(
            fd.evidence[1].description,
            "last data from the server 10.0.0.2:8080"
        );
        assert!(fd.evidence[2]
            .description
            .starts_with("RST 10.0.0.2:8080 → 10.0.0.1:51000 while"));
    }

    #[test]
    fn http_that_saw_no_request_or_was_not_followed_to_its_end_is_left_to_tcp() {
        // The server resets with the client's bytes unacknowledged: critical by the TCP rule,
        // however the HTTP observer's summary looks when it cannot speak for the exchanges.
        let f = flow(rst(Direction::Resp, 0, 120, Direction::Orig));
        let mut none_seen = http(0, 0);
        none_seen.http.as_mut().unwrap().responses = 0;
        let mut anomalous = http(1, 0);
        anomalous.http.as_mut().unwrap().anomaly = Some("not HTTP");
        let mut gap = http(1, 0);
        gap.http.as_mut().unwrap().response_gap = true;
        for (name, app) in [
            ("no request", none_seen),
            ("anomaly", anomalous),
            ("gap", gap),
        ] {
            let fd = check(&f, &app).unwrap();
            assert_eq!(
                (fd.signature, fd.severity),
                (SignatureId::ConnectionReset, Severity::Critical),
                "{}",
                name
            );
        }
    }

    #[test]
    fn a_fin_in_the_rst_segment_itself_is_not_an_earlier_close() {
        // FIN and RST in one segment: the late-bytes exception needs the FIN before the RST.
        let mut f = flow(rst(Direction::Orig, 0, 517, Direction::Resp));
        f.orig_stats.first_fin = Some(fr(20));
        let fd = check(&f, &AppSummary::default()).unwrap();
        assert!(!fd.note.contains("already sent its FIN"), "{}", fd.note);
        assert_eq!(fd.severity, Severity::Warning);
    }

    #[test]
    fn a_client_reset_after_the_server_spoke_last_is_not_a_give_up() {
        let fd = check(
            &flow(rst(Direction::Orig, 0, 0, Direction::Resp)),
            &AppSummary::default(),
        )
        .unwrap();
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::AbortiveClose, Severity::Info)
        );
        assert!(
            fd.note
                .ends_with("after the exchange completed (nothing unacknowledged)"),
            "{}",
            fd.note
        );
    }

    #[test]
    fn words_split_the_resets_by_severity() {
        use crate::signature::{test_aggregate, Aggregate};
        let w = words(&Aggregate {
            severity: Severity::Critical,
            by_severity: [1, 2, 3],
            ..test_aggregate(SignatureId::ConnectionReset, "10.0.0.2:8080", 6, 9)
        });
        assert_eq!(
            w.summary,
            "6 connections of 9 to 10.0.0.2:8080 were reset: 3 with a request outstanding, 2 with data in flight, 1 after a completed exchange or while closing"
        );
        assert_eq!(w.likely_causes.len(), 3);
        assert!(w.next_checks[0].contains(" on 10.0.0.2 around "));
        assert_eq!(
            w.wireshark_filter,
            "ip.addr==10.0.0.2 && tcp.port==8080 && tcp.flags.reset==1"
        );
        let w = words(&Aggregate {
            severity: Severity::Info,
            by_severity: [1, 0, 0],
            ..test_aggregate(SignatureId::ConnectionReset, "[fd00::2]:80", 1, 1)
        });
        assert_eq!(
            w.summary,
            "1 connection of 1 to [fd00::2]:80 was reset: 1 after a completed exchange or while closing"
        );
        assert_eq!(w.likely_causes.len(), 1);
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::2 && tcp.port==80 "));
        // Levels without connections are not listed.
        let w = words(&Aggregate {
            by_severity: [0, 0, 2],
            ..test_aggregate(SignatureId::ConnectionReset, "10.0.0.2:8080", 2, 2)
        });
        assert!(
            w.summary
                .ends_with("were reset: 2 with a request outstanding"),
            "{}",
            w.summary
        );
    }

    #[test]
    fn abortive_close_words_say_it_is_not_a_failure() {
        use crate::signature::test_aggregate;
        let w = abortive_close_words(&test_aggregate(
            SignatureId::AbortiveClose,
            "10.0.0.2:8080",
            4,
            10,
        ));
        assert!(w.summary.starts_with(
            "4 of 10 connections to 10.0.0.2:8080 ended with an abortive close (RST)"
        ));
        assert_eq!(
            w.wireshark_filter,
            "ip.addr==10.0.0.2 && tcp.port==8080 && tcp.flags.reset==1"
        );
        let w = abortive_close_words(&test_aggregate(
            SignatureId::AbortiveClose,
            "[fd00::2]:80",
            1,
            1,
        ));
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::2 && tcp.port==80 "));
    }
}
