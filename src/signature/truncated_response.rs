//! `truncated-response`: a response whose body the server's side of the connection ended before
//! it was complete — a declared `Content-Length` not reached, or a chunked body without its
//! terminating chunk, when the server sent FIN or RST.
//!
//! Rule: the HTTP observer reports the response still inside its body when the connection ended
//! (`HttpSummary::truncated`). Then:
//! - the **server** ended the connection (its RST or FIN came first): **critical** — the client
//!   received an incomplete body (a backend killed mid-response, a proxy passing that on by
//!   closing its client connection);
//! - the **client** ended it first (RST or FIN before the body completed): **info** — the client
//!   gave up on the download (a cancelled page, `curl --max-time`), not the server's failure;
//! - neither (the capture ended mid-body): no finding; that is a capture artefact.
//!
//! Evidence: the response's header frame, the last frame that carried body bytes, and the
//! RST/FIN that ended it. Products checked: nginx passing a backend reset on (`captures/`), and
//! the python backend killed with SO_LINGER 0 behind nginx.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary, FrameRef};

/// How the connection ended: who first sent RST or FIN, and the frame.
fn first_close(f: &FlowSummary) -> Option<(Direction, FrameRef, bool)> {
    let mut c: Vec<(Direction, FrameRef, bool)> = Vec::new();
    if let Some(r) = f.rst {
        c.push((r.from, r.frame, true));
    }
    for d in [Direction::Orig, Direction::Resp] {
        if let Some(fr) = f.stats(d).first_fin {
            c.push((d, fr, false));
        }
    }
    c.into_iter().min_by_key(|x| (x.1.ts, x.1.number))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// "606,312 of 4,000,000 body bytes" or "606,312 bytes of a chunked body".
pub fn progress(received: u64, declared: Option<u64>) -> String {
    match declared {
        Some(d) => format!("{} of {} body bytes", thousands(received), thousands(d)),
        None => format!(
            "{} bytes of a chunked body (no terminating chunk)",
            thousands(received)
        ),
    }
}

pub fn check(f: &FlowSummary, app: &AppSummary) -> Option<Finding> {
    let t = app.http.as_ref()?.truncated.as_ref()?;
    let (who, frame, rst) = first_close(f)?;
    let (sender, peer) = match who {
        Direction::Orig => (f.orig, f.resp),
        Direction::Resp => (f.resp, f.orig),
    };
    let how = if rst { "RST" } else { "FIN" };
    let cut = progress(t.received, t.declared);
    let (severity, note) = match who {
        Direction::Resp => (
            Severity::Critical,
            format!(
                "{} response cut at {}: {} from the server {}",
                t.status, cut, how, f.resp
            ),
        ),
        Direction::Orig => (
            Severity::Info,
            format!(
                "{} response abandoned by the client at {} ({} from {}): the client gave up, not the server",
                t.status, cut, how, f.orig
            ),
        ),
    };
    let mut ev = vec![Evidence {
        frame: t.response,
        kind: EvidenceKind::Data,
        description: format!(
            "{} response headers from {}{}",
            t.status,
            f.resp,
            t.declared
                .map(|d| format!(" (Content-Length: {})", d))
                .unwrap_or_else(|| " (chunked)".into())
        ),
    }];
    if t.last_data != t.response {
        ev.push(Evidence {
            frame: t.last_data,
            kind: EvidenceKind::Data,
            description: format!("last body bytes from {} ({})", f.resp, cut),
        });
    }
    ev.push(Evidence {
        frame,
        kind: if rst {
            EvidenceKind::Rst
        } else {
            EvidenceKind::Fin
        },
        description: format!("{} {} → {} before the body was complete", how, sender, peer),
    });
    ev.sort_by_key(|e| (e.frame.file, e.frame.number));
    let mut fd = Finding::for_flow(SignatureId::TruncatedResponse, severity, f, note, ev);
    fd.first_ts = t.request.map(|r| r.ts).unwrap_or(t.response.ts);
    fd.last_ts = frame.ts;
    fd.facts.push(("status", t.status.into()));
    fd.facts.push(("received", t.received.into()));
    if let Some(d) = t.declared {
        fd.facts.push(("declared", d.into()));
    }
    fd.facts.push((
        "ended_by",
        if who == Direction::Resp {
            "server"
        } else {
            "client"
        }
        .into(),
    ));
    Some(fd)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let mut w = super::Words::default();
    let s = a.server;
    let (ip, port) = (s.ip(), s.port());
    let af = if s.is_ipv4() { "ip" } else { "ipv6" };
    let n = a.flow_count;
    let cut = a
        .count("received")
        .map(|r| progress(r, a.count("declared")))
        .unwrap_or_default();
    let by_server = a.severity > super::Severity::Info;
    w.summary = if by_server {
        format!(
            "{} {} from {} ended before the body was complete (first: {}): the client received a truncated response",
            n,
            if n == 1 { "response" } else { "responses" },
            s,
            cut
        )
    } else {
        format!(
            "{} {} from {} abandoned by the client before the body was complete (first: {})",
            n,
            if n == 1 { "response" } else { "responses" },
            s,
            cut
        )
    };
    w.likely_causes = if by_server {
        vec![
            format!("the process behind {} died or was killed mid-response (OOM killer, crash, deploy, restart)", s),
            "a proxy passing on an upstream that reset mid-body (nginx: \"upstream prematurely closed connection while reading upstream\")".into(),
            "a timeout on the sending side (send timeout, idle timeout of a middlebox) cutting a slow transfer".into(),
        ]
    } else {
        vec!["the client cancelled the transfer (a closed page, a client-side timeout such as `curl --max-time`)".into()]
    };
    w.next_checks = vec![
        format!("on {}: the service's log and `journalctl -k | grep -i -e oom -e killed` around {}", ip, a.first_ts),
        "the proxy's error log (nginx: `upstream prematurely closed`; haproxy: termination state `SD`/`SH`)".into(),
        format!("`curl -o /dev/null -w '%{{size_download}}' http://{}:{}/…` directly against the server", ip, port),
    ];
    w.wireshark_filter = format!(
        "{af}.addr=={ip} && tcp.port=={port} && (http.response || tcp.flags.reset==1 || tcp.flags.fin==1)"
    );
    w
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the client 10.0.0.1:51000 fetches from the server
    //! 10.0.0.2:8080; request frame 4, response headers 5, last body bytes 9; frame n is at n ms.

    use super::*;
    use crate::app::http::{HttpSummary, Truncation};
    use crate::flow::testkit::{established, fr};
    use crate::flow::{DirStats, EndReason, RstInfo};
    use crate::time::NANOS_PER_MILLI;

    fn flow() -> FlowSummary {
        let mut f = established(3, "10.0.0.1:51000", "10.0.0.2:8080", 1, 9);
        f.history = "ShADad".into();
        f.orig_stats = DirStats {
            pkts: 5,
            bytes: 80,
            ..Default::default()
        };
        f.resp_stats = DirStats {
            pkts: 6,
            bytes: 606_500,
            ..Default::default()
        };
        f.rtt_ns = Some(NANOS_PER_MILLI);
        f.end_reason = EndReason::CaptureEnd;
        f
    }

    fn with_rst(mut f: FlowSummary, from: Direction, n: u64) -> FlowSummary {
        f.rst = Some(RstInfo {
            from,
            frame: fr(n),
            ttl: 64,
            unacked_by_peer: 0,
            unacked_from_peer: 0,
            after_fin: false,
            last_data_from: Some(Direction::Resp),
        });
        f.rst_count = 1;
        f.last = fr(n);
        f.end = fr(n).ts;
        f
    }

    fn with_fin(mut f: FlowSummary, from: Direction, n: u64) -> FlowSummary {
        match from {
            Direction::Orig => f.orig_stats.first_fin = Some(fr(n)),
            Direction::Resp => f.resp_stats.first_fin = Some(fr(n)),
        }
        f.first_fin_from.get_or_insert(from);
        f
    }

    fn truncated(declared: Option<u64>) -> AppSummary {
        AppSummary {
            http: Some(HttpSummary {
                requests: 1,
                responses: 1,
                truncated: Some(Truncation {
                    response: fr(5),
                    status: 200,
                    request: Some(fr(4)),
                    declared,
                    received: 606_312,
                    last_data: fr(9),
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fact(fd: &Finding, k: &str) -> Option<String> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string())
    }

    #[test]
    fn server_rst_first_is_critical_with_its_evidence() {
        // The client's FIN comes after the server's RST: the RST decides.
        let f = with_fin(with_rst(flow(), Direction::Resp, 10), Direction::Orig, 11);
        let fd = check(&f, &truncated(Some(4_000_000))).expect("a finding");
        assert_eq!(fd.signature, SignatureId::TruncatedResponse);
        assert_eq!(fd.severity, Severity::Critical);
        let ev: Vec<(u64, EvidenceKind)> = fd
            .evidence
            .iter()
            .map(|e| (e.frame.number, e.kind))
            .collect();
        assert_eq!(
            ev,
            vec![
                (5, EvidenceKind::Data),
                (9, EvidenceKind::Data),
                (10, EvidenceKind::Rst)
            ]
        );
        assert_eq!(fact(&fd, "received").as_deref(), Some("606312"));
        assert_eq!(fact(&fd, "declared").as_deref(), Some("4000000"));
        assert_eq!(fact(&fd, "status").as_deref(), Some("200"));
        assert_eq!(fact(&fd, "ended_by").as_deref(), Some("server"));
        assert!(
            fd.note.contains("606,312 of 4,000,000 body bytes"),
            "{}",
            fd.note
        );
        assert_eq!(fd.first_ts, fr(4).ts);
        assert_eq!(fd.last_ts, fr(10).ts);
    }

    #[test]
    fn server_fin_first_is_critical_with_a_fin_as_evidence() {
        let f = with_fin(with_rst(flow(), Direction::Orig, 12), Direction::Resp, 10);
        let fd = check(&f, &truncated(None)).expect("a finding");
        assert_eq!(fd.severity, Severity::Critical);
        let last = fd.evidence.last().unwrap();
        assert_eq!((last.frame.number, last.kind), (10, EvidenceKind::Fin));
        assert!(!fd.evidence.iter().any(|e| e.kind == EvidenceKind::Rst));
        assert_eq!(fact(&fd, "declared").as_deref(), None);
        assert_eq!(fact(&fd, "ended_by").as_deref(), Some("server"));
    }

    #[test]
    fn client_rst_first_is_info() {
        // The server's FIN after the client's RST does not make it the server's failure.
        let f = with_fin(with_rst(flow(), Direction::Orig, 10), Direction::Resp, 11);
        let fd = check(&f, &truncated(Some(4_000_000))).expect("a finding");
        assert_eq!(fd.severity, Severity::Info);
        assert_eq!(fact(&fd, "ended_by").as_deref(), Some("client"));
        assert_eq!(fd.evidence.last().unwrap().kind, EvidenceKind::Rst);
    }

    #[test]
    fn client_fin_first_is_info() {
        let f = with_fin(with_fin(flow(), Direction::Orig, 10), Direction::Resp, 11);
        let fd = check(&f, &truncated(Some(4_000_000))).expect("a finding");
        assert_eq!(fd.severity, Severity::Info);
    }

    #[test]
    fn capture_ending_mid_body_is_no_finding() {
        assert!(check(&flow(), &truncated(Some(4_000_000))).is_none());
    }

    #[test]
    fn complete_response_is_no_finding() {
        let f = with_rst(flow(), Direction::Resp, 10);
        let mut app = truncated(Some(4_000_000));
        app.http.as_mut().unwrap().truncated = None;
        assert!(check(&f, &app).is_none());
        assert!(check(&f, &AppSummary::default()).is_none());
    }

    #[test]
    fn body_in_the_header_frame_is_not_listed_twice() {
        let f = with_rst(flow(), Direction::Resp, 10);
        let mut app = truncated(Some(4_000_000));
        app.http
            .as_mut()
            .unwrap()
            .truncated
            .as_mut()
            .unwrap()
            .last_data = fr(5);
        let fd = check(&f, &app).unwrap();
        let frames: Vec<u64> = fd.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![5, 10]);
    }

    #[test]
    fn progress_formats_declared_and_chunked_bodies() {
        assert_eq!(
            progress(606_312, Some(4_000_000)),
            "606,312 of 4,000,000 body bytes"
        );
        assert_eq!(
            progress(606_312, None),
            "606,312 bytes of a chunked body (no terminating chunk)"
        );
        assert_eq!(progress(999, Some(1000)), "999 of 1,000 body bytes");
        assert_eq!(
            progress(0, None),
            "0 bytes of a chunked body (no terminating chunk)"
        );
    }
    #[test]
    fn words_tell_a_server_cut_from_a_client_cancel() {
        use crate::signature::{test_aggregate, Aggregate, Fact};
        let facts = [
            ("received", Fact::Count(606_312)),
            ("declared", Fact::Count(4_000_000)),
        ];
        let w = words(&Aggregate {
            facts: &facts,
            ..test_aggregate(SignatureId::TruncatedResponse, "10.0.0.2:8080", 2, 5)
        });
        assert_eq!(
            w.summary,
            "2 responses from 10.0.0.2:8080 ended before the body was complete (first: 606,312 of 4,000,000 body bytes): the client received a truncated response"
        );
        assert_eq!(w.likely_causes.len(), 3);
        assert!(w.next_checks[2].contains("http://10.0.0.2:8080/"));
        assert_eq!(w.wireshark_filter, "ip.addr==10.0.0.2 && tcp.port==8080 && (http.response || tcp.flags.reset==1 || tcp.flags.fin==1)");
        let w = words(&Aggregate {
            severity: Severity::Info,
            facts: &facts[..1],
            ..test_aggregate(SignatureId::TruncatedResponse, "[fd00::2]:80", 1, 1)
        });
        assert_eq!(
            w.summary,
            "1 response from [fd00::2]:80 abandoned by the client before the body was complete (first: 606,312 bytes of a chunked body (no terminating chunk))"
        );
        assert_eq!(w.likely_causes.len(), 1);
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::2 && tcp.port==80 "));
    }
}
