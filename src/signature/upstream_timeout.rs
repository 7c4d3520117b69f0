//! `upstream-timeout`: a request fully sent, no response byte, then the requesting side gives up.
//!
//! Rule: the connection ended with a request that was completely sent and got no response byte,
//! and the requester (the originator) then closed or reset the connection before the server did —
//! what a proxy logs as "upstream timed out". The wait (request → give-up) is reported per
//! request. A request still unanswered when the capture ended is `Pending` (a capture warning),
//! unless it had waited longer than `--response-timeout` (default 10 s). Nothing is concluded
//! when the capture holds no packet at all from the server (one direction missing).
//!
//! **Encrypted legs** (an HTTPS upstream, a TLS tunnel): the requests cannot be read, so the rule
//! reads TLS record boundaries and timing instead. The handshake completed, the client sent
//! application data *after* the server's last application data (a request the server never
//! answered: in an idle keep-alive connection the server's response comes last), and then the
//! client closed — or the capture ended more than `--response-timeout` later. A TLS 1.3 server's
//! session tickets can arrive after the request and hide it: a miss, never a false alarm.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary, FrameRef};
use crate::time::{human_duration, Timestamp};

pub enum Outcome {
    Finding(Finding),
    /// Still waiting when the capture ended, for less than the response timeout.
    Pending {
        waited_ns: i64,
    },
    None,
}

pub fn check(
    f: &FlowSummary,
    app: &AppSummary,
    capture_end: Timestamp,
    response_timeout_ns: i64,
) -> Outcome {
    let Some(h) = &app.http else {
        return encrypted(f, app, capture_end, response_timeout_ns);
    };
    let Some(req) = h.unanswered.first() else {
        return Outcome::None;
    };
    let Some(done) = req.complete_at else {
        return Outcome::None;
    };
    // Response bytes came (the response was cut or not parsed), or nothing at all was captured
    // from the server (one-direction capture: the `one-direction-only` warning covers it).
    if h.bytes_after_unanswered > 0 || f.resp_stats.pkts == 0 || h.response_gap {
        return Outcome::None;
    }
    let (client_end, server_end) = ends(f, done, None);
    let what = format!(
        "{} {} (Host {})",
        req.method,
        req.target,
        req.host.as_deref().unwrap_or("-")
    );
    let mut ev = vec![Evidence {
        frame: req.frame,
        kind: EvidenceKind::Data,
        description: format!("request {} from {}, never answered", what, f.orig),
    }];
    let note = match client_end {
        Some((fr, kind, how)) if server_end.is_none_or(|s| s.ts >= fr.ts) => {
            let waited = fr.ts.nanos_since(done.ts);
            ev.push(Evidence {
                frame: fr,
                kind,
                description: format!(
                    "{} gives up with {} after {} without a response byte",
                    f.orig,
                    how,
                    human_duration(waited)
                ),
            });
            format!(
                "{} waited {} for {} and gave up ({}): no response byte",
                what,
                human_duration(waited),
                f.resp,
                how
            )
        }
        Some(_) => return Outcome::None, // the server closed first: not a timeout on the requester's side
        None if server_end.is_some() => return Outcome::None,
        None => {
            let waited = capture_end.nanos_since(done.ts);
            if waited <= response_timeout_ns {
                return Outcome::Pending { waited_ns: waited };
            }
            format!(
                "{} still unanswered by {} after {} when the capture ended",
                what,
                f.resp,
                human_duration(waited)
            )
        }
    };
    let mut fd = Finding::for_flow(
        SignatureId::UpstreamTimeout,
        Severity::Critical,
        f,
        note,
        ev,
    );
    fd.first_ts = req.frame.ts;
    fd.facts
        .push(("unanswered_requests", h.unanswered.len().into()));
    Outcome::Finding(fd)
}

/// The encrypted-leg form of the rule (see the module comment).
fn encrypted(
    f: &FlowSummary,
    app: &AppSummary,
    capture_end: Timestamp,
    response_timeout_ns: i64,
) -> Outcome {
    let Some(t) = &app.tls else {
        return Outcome::None;
    };
    if t.server_hello.is_none() || t.alerts.iter().any(|a| !a.encrypted) {
        return Outcome::None;
    }
    let Some(req) = t.last_app_data[0] else {
        return Outcome::None;
    };
    if t.last_app_data[1].is_some_and(|s| (s.ts, s.number) > (req.ts, req.number)) {
        return Outcome::None;
    }
    // Anything from the server after the request (its data, FIN or RST) answers or ends it.
    if f.resp_stats.last_data.is_some_and(|d| d.ts > req.ts) {
        return Outcome::None;
    }
    // The client's encrypted alert (close_notify) is its give-up as much as its FIN.
    let alert = t
        .alerts
        .iter()
        .find(|a| a.from == Direction::Orig && a.frame.ts > req.ts)
        .map(|a| {
            (
                a.frame,
                EvidenceKind::Data,
                "an encrypted alert (close_notify)",
            )
        });
    let (client_end, server_end) = ends(f, req, alert);
    let mut ev = vec![Evidence {
        frame: req,
        kind: EvidenceKind::Data,
        description: format!(
            "encrypted application data from {} after the server's last data (a request)",
            f.orig
        ),
    }];
    let note = match client_end {
        Some((fr, kind, how)) if server_end.is_none_or(|s| s.ts >= fr.ts) => {
            let waited = fr.ts.nanos_since(req.ts);
            ev.push(Evidence {
                frame: fr,
                kind,
                description: format!(
                    "{} gives up with {} after {} without a byte from the server",
                    f.orig,
                    how,
                    human_duration(waited)
                ),
            });
            format!(
                "encrypted request to {} waited {} and the client gave up ({}): no response record",
                f.resp,
                human_duration(waited),
                how
            )
        }
        Some(_) => return Outcome::None,
        None if server_end.is_some() => return Outcome::None,
        None => {
            let waited = capture_end.nanos_since(req.ts);
            if waited <= response_timeout_ns {
                return Outcome::Pending { waited_ns: waited };
            }
            format!(
                "encrypted request to {} unanswered after {} when the capture ended",
                f.resp,
                human_duration(waited)
            )
        }
    };
    let mut fd = Finding::for_flow(
        SignatureId::UpstreamTimeout,
        Severity::Critical,
        f,
        note,
        ev,
    );
    fd.first_ts = req.ts;
    fd.facts.push(("encrypted", true.into()));
    Outcome::Finding(fd)
}

/// How the requester gave up and when the server ended: the requester's first FIN, RST or
/// `also` (an encrypted alert) after the request frame `after`, and the server's first FIN or
/// RST.
type GiveUp = (FrameRef, EvidenceKind, &'static str);
fn ends(
    f: &FlowSummary,
    after: FrameRef,
    also: Option<GiveUp>,
) -> (Option<GiveUp>, Option<FrameRef>) {
    let client_end = [
        also,
        f.orig_stats
            .first_fin
            .map(|x| (x, EvidenceKind::Fin, "FIN")),
        f.rst
            .filter(|r| r.from == Direction::Orig)
            .map(|r| (r.frame, EvidenceKind::Rst, "RST")),
    ]
    .into_iter()
    .flatten()
    .filter(|(x, _, _)| (x.ts, x.number) > (after.ts, after.number))
    .min_by_key(|(x, _, _)| x.ts);
    let server_end = [
        f.resp_stats.first_fin,
        f.rst.filter(|r| r.from == Direction::Resp).map(|r| r.frame),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|x| x.ts);
    (client_end, server_end)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    super::Words {
        summary: format!(
        "{} to {} got no response byte until the requester gave up",
        super::plural(n, "request", "requests"),
        s
    ),
        likely_causes: vec![
        format!(
            "{} is hung or too slow (blocked workers, a slow dependency, a long GC)",
            s
        ),
        "the proxy's read timeout is shorter than the backend's worst-case response time".into(),
    ],
        next_checks: vec![
        format!(
            "the service's logs and thread dumps on {} around {}",
            ip, a.first_ts
        ),
        "the proxy's timeouts (nginx `proxy_read_timeout`, haproxy `timeout server`)".into(),
        format!(
            "`curl -w '%{{time_starttransfer}}' http://{}/…` directly against the backend",
            s
        ),
    ],
        wireshark_filter: format!("{af}.addr=={ip} && tcp.port=={port} && (http.request || tcp.flags.fin==1 || tcp.flags.reset==1)"),
    }
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the proxy 10.0.0.2:41000 sends a request (frame 4,
    //! complete at frame 5) to the backend 10.0.0.3:8080, which answered the handshake; frame n
    //! is at n ms after T0. The response timeout is 10 s.

    use super::*;
    use crate::app::http::{HttpSummary, Request};
    use crate::app::tls::{Alert, ServerHello, TlsSummary};
    use crate::flow::testkit::{established, fr, T0};
    use crate::flow::{DirStats, RstInfo};
    use crate::signature::{test_aggregate, Fact};
    use crate::time::{NANOS_PER_MILLI, NANOS_PER_SEC};

    const TIMEOUT: i64 = 10 * NANOS_PER_SEC;

    fn flow() -> FlowSummary {
        let mut f = established(11, "10.0.0.2:41000", "10.0.0.3:8080", 1, 5);
        f.resp_stats = DirStats {
            pkts: 1,
            ..Default::default()
        };
        f
    }

    fn request(complete: Option<u64>) -> Request {
        Request {
            frame: fr(4),
            method: "GET".into(),
            target: "/slow".into(),
            host: Some("a.example".into()),
            complete_at: complete.map(fr),
            forwarded_for: None,
        }
    }

    fn http(unanswered: Vec<Request>) -> AppSummary {
        AppSummary {
            http: Some(HttpSummary {
                unanswered,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn rst(from: Direction, frame: FrameRef) -> RstInfo {
        RstInfo {
            from,
            frame,
            ttl: 64,
            unacked_by_peer: 0,
            unacked_from_peer: 0,
            after_fin: false,
            last_data_from: None,
        }
    }

    /// The capture's end `ms` after frame `n`.
    fn end(n: u64, ms: i64) -> Timestamp {
        Timestamp(T0 + (n as i64 + ms) * NANOS_PER_MILLI)
    }

    #[track_caller]
    fn finding(o: Outcome) -> Finding {
        match o {
            Outcome::Finding(f) => f,
            Outcome::Pending { waited_ns } => panic!("pending after {} ns", waited_ns),
            Outcome::None => panic!("no finding"),
        }
    }

    #[track_caller]
    fn none(o: Outcome) {
        assert!(matches!(o, Outcome::None), "expected no finding");
    }

    #[test]
    fn a_requester_giving_up_with_fin_is_critical() {
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(3005));
        let fd = finding(check(
            &f,
            &http(vec![request(Some(5))]),
            end(3005, 1),
            TIMEOUT,
        ));
        assert_eq!(fd.signature, SignatureId::UpstreamTimeout);
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(
            fd.note,
            "GET /slow (Host a.example) waited 3.00s for 10.0.0.3:8080 and gave up (FIN): no response byte"
        );
        assert_eq!(fd.first_ts, fr(4).ts);
        assert_eq!(fd.evidence.len(), 2);
        assert_eq!(fd.evidence[0].frame, fr(4));
        assert_eq!(
            fd.evidence[0].description,
            "request GET /slow (Host a.example) from 10.0.0.2:41000, never answered"
        );
        assert_eq!(
            (fd.evidence[1].frame, fd.evidence[1].kind),
            (fr(3005), EvidenceKind::Fin)
        );
        assert_eq!(
            fd.evidence[1].description,
            "10.0.0.2:41000 gives up with FIN after 3.00s without a response byte"
        );
        assert_eq!(fd.facts, vec![("unanswered_requests", Fact::Count(1))]);
    }

    #[test]
    fn the_earliest_give_up_counts_and_rst_is_named() {
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(3005));
        f.rst = Some(rst(Direction::Orig, fr(2005)));
        let mut second = request(Some(6));
        second.host = None;
        let fd = finding(check(
            &f,
            &http(vec![request(Some(5)), second]),
            end(3005, 1),
            TIMEOUT,
        ));
        assert!(fd
            .note
            .ends_with("waited 2.00s for 10.0.0.3:8080 and gave up (RST): no response byte"));
        assert_eq!(
            (fd.evidence[1].frame, fd.evidence[1].kind),
            (fr(2005), EvidenceKind::Rst)
        );
        assert_eq!(fd.facts, vec![("unanswered_requests", Fact::Count(2))]);
    }

    #[test]
    fn a_fin_in_the_requests_own_last_frame_is_a_half_close_not_a_give_up() {
        // An HTTP/1.0-style client that shuts its side down with the request: still waiting.
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(5));
        match check(&f, &http(vec![request(Some(5))]), end(5, 2_000), TIMEOUT) {
            Outcome::Pending { waited_ns } => assert_eq!(waited_ns, 2 * NANOS_PER_SEC),
            _ => panic!("pending"),
        }
    }

    #[test]
    fn the_server_closing_first_is_not_a_timeout() {
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(3005));
        f.resp_stats.first_fin = Some(fr(3004));
        none(check(
            &f,
            &http(vec![request(Some(5))]),
            end(3005, 1),
            TIMEOUT,
        ));
        // The server's RST alone.
        let mut f = flow();
        f.rst = Some(rst(Direction::Resp, fr(3004)));
        none(check(
            &f,
            &http(vec![request(Some(5))]),
            end(3005, 1),
            TIMEOUT,
        ));
        // Both at the same instant: the requester's give-up stands.
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(3005));
        f.resp_stats.first_fin = Some(FrameRef {
            number: 3006,
            ..fr(3005)
        });
        finding(check(
            &f,
            &http(vec![request(Some(5))]),
            end(3006, 1),
            TIMEOUT,
        ));
    }

    #[test]
    fn still_waiting_at_the_end_is_pending_up_to_the_response_timeout() {
        let app = http(vec![request(Some(5))]);
        match check(&flow(), &app, end(5, 10_000), TIMEOUT) {
            Outcome::Pending { waited_ns } => assert_eq!(waited_ns, TIMEOUT),
            _ => panic!("pending at exactly the timeout"),
        }
        let fd = finding(check(&flow(), &app, end(5, 10_001), TIMEOUT));
        assert_eq!(
            fd.note,
            "GET /slow (Host a.example) still unanswered by 10.0.0.3:8080 after 10.00s when the capture ended"
        );
        assert_eq!(fd.evidence.len(), 1);
    }

    #[test]
    fn no_conclusion_without_a_complete_request_or_with_server_bytes() {
        let end = end(5, 60_000);
        none(check(&flow(), &http(vec![]), end, TIMEOUT));
        none(check(&flow(), &http(vec![request(None)]), end, TIMEOUT));
        let mut app = http(vec![request(Some(5))]);
        app.http.as_mut().unwrap().bytes_after_unanswered = 1;
        none(check(&flow(), &app, end, TIMEOUT));
        let mut app = http(vec![request(Some(5))]);
        app.http.as_mut().unwrap().response_gap = true;
        none(check(&flow(), &app, end, TIMEOUT));
        let mut f = flow();
        f.resp_stats.pkts = 0;
        none(check(&f, &http(vec![request(Some(5))]), end, TIMEOUT));
        none(check(&flow(), &AppSummary::default(), end, TIMEOUT));
    }

    /// An encrypted leg to 10.0.0.3:8443: handshake done, the server's last application data at
    /// frame `server_data`, the client's at frame 20 (the request).
    fn tls(server_data: Option<FrameRef>) -> AppSummary {
        AppSummary {
            tls: Some(TlsSummary {
                server_hello: Some(ServerHello {
                    frame: fr(3),
                    version: 0x0304,
                    alpn: None,
                    cipher: 0x1301,
                    hello_retry: false,
                }),
                last_app_data: [Some(fr(20)), server_data],
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn tls_flow() -> FlowSummary {
        let mut f = established(12, "10.0.0.2:41002", "10.0.0.3:8443", 1, 20);
        f.resp_stats = DirStats {
            pkts: 6,
            last_data: Some(fr(15)),
            ..Default::default()
        };
        f
    }

    #[test]
    fn an_encrypted_request_the_client_gave_up_on_is_critical() {
        let mut f = tls_flow();
        f.orig_stats.first_fin = Some(fr(2020));
        let fd = finding(check(&f, &tls(Some(fr(15))), end(2020, 1), TIMEOUT));
        assert_eq!(
            fd.note,
            "encrypted request to 10.0.0.3:8443 waited 2.00s and the client gave up (FIN): no response record"
        );
        assert_eq!(fd.first_ts, fr(20).ts);
        assert_eq!(fd.evidence[0].frame, fr(20));
        assert_eq!(
            fd.evidence[1].description,
            "10.0.0.2:41002 gives up with FIN after 2.00s without a byte from the server"
        );
        assert_eq!(fd.facts, vec![("encrypted", Fact::Flag(true))]);
    }

    #[test]
    fn the_clients_encrypted_alert_after_the_request_is_its_give_up() {
        let mut f = tls_flow();
        f.orig_stats.first_fin = Some(fr(2020));
        let mut app = tls(Some(fr(15)));
        let alert = |from, n| Alert {
            frame: fr(n),
            from,
            level: 0,
            description: 0,
            encrypted: true,
        };
        // Alerts before the request, or from the server, are not the client's give-up.
        app.tls.as_mut().unwrap().alerts = vec![
            alert(Direction::Orig, 10),
            alert(Direction::Resp, 500),
            alert(Direction::Orig, 1020),
        ];
        let fd = finding(check(&f, &app, end(2020, 1), TIMEOUT));
        assert!(fd.note.ends_with("waited 1.00s and the client gave up (an encrypted alert (close_notify)): no response record"));
        assert_eq!(
            (fd.evidence[1].frame, fd.evidence[1].kind),
            (fr(1020), EvidenceKind::Data)
        );
    }

    #[test]
    fn a_close_notify_at_the_requests_instant_is_not_the_give_up() {
        // The alert rides in the request's own segment, or in the next one at the same instant
        // (the client half-closes right after asking): the later FIN is the give-up.
        let mut f = tls_flow();
        f.orig_stats.first_fin = Some(fr(2020));
        let mut app = tls(Some(fr(15)));
        for frame in [
            fr(20),
            FrameRef {
                number: 21,
                ..fr(20)
            },
        ] {
            app.tls.as_mut().unwrap().alerts = vec![Alert {
                frame,
                from: Direction::Orig,
                level: 0,
                description: 0,
                encrypted: true,
            }];
            let fd = finding(check(&f, &app, end(2020, 1), TIMEOUT));
            assert!(
                fd.note
                    .ends_with("waited 2.00s and the client gave up (FIN): no response record"),
                "{:?}: {}",
                frame,
                fd.note
            );
        }
    }

    #[test]
    fn an_encrypted_request_waits_for_the_response_timeout_at_the_end() {
        match check(&tls_flow(), &tls(None), end(20, 10_000), TIMEOUT) {
            Outcome::Pending { waited_ns } => assert_eq!(waited_ns, TIMEOUT),
            _ => panic!("pending"),
        }
        let fd = finding(check(&tls_flow(), &tls(None), end(20, 10_001), TIMEOUT));
        assert_eq!(
            fd.note,
            "encrypted request to 10.0.0.3:8443 unanswered after 10.00s when the capture ended"
        );
    }

    #[test]
    fn an_encrypted_request_answered_or_ended_by_the_server_is_nothing() {
        let end = end(20, 60_000);
        // The server's data came last (the same instant, a later frame).
        let later = FrameRef {
            number: 21,
            ..fr(20)
        };
        none(check(&tls_flow(), &tls(Some(later)), end, TIMEOUT));
        // The server's data at the same instant and an earlier frame does not answer it.
        let earlier = FrameRef {
            number: 19,
            ..fr(20)
        };
        let mut f = tls_flow();
        f.resp_stats.last_data = Some(earlier);
        finding(check(&f, &tls(Some(earlier)), end, TIMEOUT));
        // Any server payload after the request (an unparsed record).
        let mut f = tls_flow();
        f.resp_stats.last_data = Some(fr(21));
        none(check(&f, &tls(Some(fr(15))), end, TIMEOUT));
        // The server closed first, or alone.
        let mut f = tls_flow();
        f.resp_stats.first_fin = Some(fr(30));
        none(check(&f, &tls(None), end, TIMEOUT));
        f.orig_stats.first_fin = Some(fr(31));
        none(check(&f, &tls(None), end, TIMEOUT));
        // No handshake, a plaintext alert, or no request.
        let mut app = tls(None);
        app.tls.as_mut().unwrap().server_hello = None;
        none(check(&tls_flow(), &app, end, TIMEOUT));
        let mut app = tls(None);
        app.tls.as_mut().unwrap().alerts = vec![Alert {
            frame: fr(4),
            from: Direction::Resp,
            level: 2,
            description: 40,
            encrypted: false,
        }];
        none(check(&tls_flow(), &app, end, TIMEOUT));
        let mut app = tls(None);
        app.tls.as_mut().unwrap().last_app_data[0] = None;
        none(check(&tls_flow(), &app, end, TIMEOUT));
    }

    #[test]
    fn words_name_the_requests_and_the_backend() {
        let w = words(&test_aggregate(
            SignatureId::UpstreamTimeout,
            "10.0.0.3:8080",
            2,
            9,
        ));
        assert_eq!(
            w.summary,
            "2 requests to 10.0.0.3:8080 got no response byte until the requester gave up"
        );
        assert!(w.likely_causes[0].starts_with("10.0.0.3:8080 is hung"));
        assert!(
            w.next_checks[0].starts_with("the service's logs and thread dumps on 10.0.0.3 around ")
        );
        assert!(w.next_checks[2].contains("http://10.0.0.3:8080/"));
        assert_eq!(w.wireshark_filter, "ip.addr==10.0.0.3 && tcp.port==8080 && (http.request || tcp.flags.fin==1 || tcp.flags.reset==1)");
        let w = words(&test_aggregate(
            SignatureId::UpstreamTimeout,
            "[fd00::3]:80",
            1,
            1,
        ));
        assert!(w.summary.starts_with("1 request to [fd00::3]:80 got"));
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::3 && tcp.port==80 "));
    }
}
