//! `tls-stall`: a ClientHello that got neither a ServerHello nor an alert from the server.
//!
//! Rule: the client's ClientHello was seen; the server sent no ServerHello and no alert. How it
//! ended is part of the finding: the server stayed silent until the capture ended (reported only
//! when the wait reached `syn_timeout`; shorter waits are the `capture-ended-early` warning), the
//! client (or proxy) gave up with FIN, RST or an alert of its own — a consequence, reported but
//! not blamed — or the server closed / reset without answering. Reported with SNI and ALPN.
//! Likely causes: the port does not speak TLS, a middlebox drops the handshake, an overloaded
//! server.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::app::tls::{alert_name, TlsSummary};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary};
use crate::time::{human_duration, Timestamp};

pub enum Outcome {
    Finding(Finding),
    /// The capture ended less than the threshold after the ClientHello.
    Inconclusive {
        waited_ns: i64,
    },
    None,
}

/// "SNI x, ALPN [h2, http/1.1]" for notes.
pub fn hello_desc(t: &TlsSummary) -> String {
    let Some(ch) = &t.client_hello else {
        return String::new();
    };
    let mut s = format!("SNI {}", ch.sni.as_deref().unwrap_or("(none)"));
    if !ch.alpn.is_empty() {
        s.push_str(&format!(", ALPN [{}]", ch.alpn.join(", ")));
    }
    s
}

pub fn check(
    f: &FlowSummary,
    app: &AppSummary,
    capture_end: Timestamp,
    th: &Thresholds,
) -> Outcome {
    let Some(t) = &app.tls else {
        return Outcome::None;
    };
    let Some(ch) = &t.client_hello else {
        return Outcome::None;
    };
    // Answered, or nothing captured from the server at all (one direction missing: the
    // `one-direction-only` warning covers it).
    if t.server_hello.is_some()
        || t.alerts.iter().any(|a| a.from == Direction::Resp)
        || f.resp_stats.pkts == 0
    {
        return Outcome::None;
    }
    let client_alert = t.alerts.iter().find(|a| a.from == Direction::Orig);
    let server_fin = f.resp_stats.first_fin;
    let server_rst = f.rst.filter(|r| r.from == Direction::Resp);
    let client_fin = f.orig_stats.first_fin;
    let client_rst = f.rst.filter(|r| r.from == Direction::Orig);
    let mut ev = vec![Evidence {
        frame: ch.frame,
        kind: EvidenceKind::Data,
        description: format!(
            "ClientHello from {} ({}), no ServerHello follows",
            f.orig,
            hello_desc(t)
        ),
    }];
    // Who ended it first.
    let mut ends: Vec<(crate::flow::FrameRef, EvidenceKind, String)> = Vec::new();
    if let Some(fr) = server_fin {
        ends.push((
            fr,
            EvidenceKind::Fin,
            format!("the server {} closed without answering", f.resp),
        ));
    }
    if let Some(r) = server_rst {
        ends.push((
            r.frame,
            EvidenceKind::Rst,
            format!("the server {} reset without answering", f.resp),
        ));
    }
    if let Some(fr) = client_fin {
        ends.push((
            fr,
            EvidenceKind::Fin,
            format!("the client {} gave up (FIN)", f.orig),
        ));
    }
    if let Some(r) = client_rst {
        ends.push((
            r.frame,
            EvidenceKind::Rst,
            format!("the client {} gave up (RST)", f.orig),
        ));
    }
    ends.sort_by_key(|e| e.0.ts);
    let note = match ends.first() {
        Some((fr, kind, what)) => {
            let waited = fr.ts.nanos_since(ch.frame.ts);
            ev.push(Evidence {
                frame: *fr,
                kind: *kind,
                description: format!("{} {} after the ClientHello", what, human_duration(waited)),
            });
            let mut n = format!(
                "ClientHello ({}) unanswered; {} after {}",
                hello_desc(t),
                what,
                human_duration(waited)
            );
            if let Some(a) = client_alert {
                n.push_str(&format!(
                    "; the client's own alert {} is a consequence, not the cause",
                    if a.encrypted {
                        "(encrypted)".to_string()
                    } else {
                        format!("{}({})", alert_name(a.description), a.description)
                    }
                ));
            }
            n
        }
        None => {
            let waited = capture_end.nanos_since(ch.frame.ts);
            if waited < th.syn_timeout.nanos() {
                return Outcome::Inconclusive { waited_ns: waited };
            }
            format!("ClientHello ({}) unanswered; the server stayed silent for {} until the capture ended", hello_desc(t), human_duration(waited))
        }
    };
    let mut fd = Finding::for_flow(SignatureId::TlsStall, Severity::Critical, f, note, ev);
    if let Some(sni) = &ch.sni {
        fd.facts.push(("sni", sni.as_str().into()));
    }
    if !ch.alpn.is_empty() {
        fd.facts.push(("alpn", ch.alpn.join(",").into()));
    }
    Outcome::Finding(fd)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let mut w = super::Words::default();
    let sni = a
        .text("sni")
        .map(|s| format!(" (SNI {})", s))
        .unwrap_or_default();
    w.summary = format!(
        "{} of {} to {}{} sent a ClientHello that got no ServerHello and no alert",
        super::plural(n, "TLS handshake", "TLS handshakes"),
        m,
        s,
        sni
    );
    w.likely_causes = vec![
        format!(
            "{} does not speak TLS (a plain-HTTP or other service, or the wrong port)",
            s
        ),
        "a middlebox or firewall dropping the handshake (e.g. SNI filtering)".into(),
        "an overloaded or hung TLS server".into(),
    ];
    w.next_checks = vec![
        format!(
            "`openssl s_client -connect {} -servername <name>` from {}",
            s, a.client
        ),
        format!(
            "`curl -v http://{}/` to see whether it speaks plain HTTP",
            s
        ),
        format!(
            "on {}: the service's logs and `ss -ltnp 'sport = :{}'`",
            ip, port
        ),
    ];
    w.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tls.handshake.type==1 || tcp.flags.fin==1 || tcp.flags.reset==1)");
    w
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the client 10.0.0.1:40000 sends a ClientHello at frame 3
    //! to the server 10.0.0.2:443, which answered the handshake (SYN-ACK, frame 2); frame n is at
    //! n ms after T0.

    use super::*;
    use crate::app::tls::{Alert, ClientHello, ServerHello};
    use crate::flow::testkit::{established, fr, T0};
    use crate::flow::{DirStats, RstInfo};
    use crate::signature::{test_aggregate, Aggregate, Fact};
    use crate::time::NANOS_PER_MILLI;

    fn flow() -> FlowSummary {
        let mut f = established(5, "10.0.0.1:40000", "10.0.0.2:443", 1, 3);
        f.resp_stats = DirStats {
            pkts: 1,
            ..Default::default()
        };
        f
    }

    fn hello(sni: Option<&str>, alpn: &[&str]) -> AppSummary {
        AppSummary {
            tls: Some(TlsSummary {
                client_hello: Some(ClientHello {
                    frame: fr(3),
                    sni: sni.map(str::to_string),
                    alpn: alpn.iter().map(|s| s.to_string()).collect(),
                    versions: vec![0x0304],
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn alert(from: Direction, n: u64, encrypted: bool) -> Alert {
        Alert {
            frame: fr(n),
            from,
            level: if encrypted { 0 } else { 2 },
            description: if encrypted { 0 } else { 90 },
            encrypted,
        }
    }

    fn rst(from: Direction, n: u64) -> RstInfo {
        RstInfo {
            from,
            frame: fr(n),
            ttl: 64,
            unacked_by_peer: 0,
            unacked_from_peer: 0,
            after_fin: false,
            last_data_from: None,
        }
    }

    /// The capture's end `ms` after the ClientHello.
    fn end_after(ms: i64) -> Timestamp {
        Timestamp(T0 + (3 + ms) * NANOS_PER_MILLI)
    }

    #[track_caller]
    fn finding(o: Outcome) -> Finding {
        match o {
            Outcome::Finding(f) => f,
            Outcome::Inconclusive { waited_ns } => panic!("inconclusive after {} ns", waited_ns),
            Outcome::None => panic!("no finding"),
        }
    }

    fn fact(fd: &Finding, k: &str) -> Option<String> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string())
    }

    #[test]
    fn no_tls_or_no_client_hello_is_nothing() {
        let th = Thresholds::default();
        let f = flow();
        assert!(matches!(
            check(&f, &AppSummary::default(), end_after(10_000), &th),
            Outcome::None
        ));
        let app = AppSummary {
            tls: Some(TlsSummary::default()),
            ..Default::default()
        };
        assert!(matches!(
            check(&f, &app, end_after(10_000), &th),
            Outcome::None
        ));
        assert_eq!(hello_desc(&TlsSummary::default()), "");
    }

    #[test]
    fn a_server_hello_or_a_server_alert_is_an_answer() {
        let th = Thresholds::default();
        let mut app = hello(Some("a.example"), &[]);
        app.tls.as_mut().unwrap().server_hello = Some(ServerHello {
            frame: fr(4),
            version: 0x0304,
            alpn: None,
            cipher: 0x1301,
            hello_retry: false,
        });
        assert!(matches!(
            check(&flow(), &app, end_after(10_000), &th),
            Outcome::None
        ));
        let mut app = hello(Some("a.example"), &[]);
        app.tls.as_mut().unwrap().alerts = vec![alert(Direction::Resp, 4, false)];
        assert!(matches!(
            check(&flow(), &app, end_after(10_000), &th),
            Outcome::None
        ));
    }

    #[test]
    fn nothing_captured_from_the_server_is_not_a_stall() {
        let mut f = flow();
        f.resp_stats.pkts = 0;
        let o = check(
            &f,
            &hello(None, &[]),
            end_after(10_000),
            &Thresholds::default(),
        );
        assert!(matches!(o, Outcome::None));
    }

    #[test]
    fn silence_until_the_end_counts_from_the_syn_timeout_on() {
        let th = Thresholds::default();
        let limit_ms = th.syn_timeout.nanos() / NANOS_PER_MILLI;
        let app = hello(Some("a.example"), &["h2", "http/1.1"]);
        match check(&flow(), &app, end_after(limit_ms - 1), &th) {
            Outcome::Inconclusive { waited_ns } => {
                assert_eq!(waited_ns, th.syn_timeout.nanos() - NANOS_PER_MILLI)
            }
            _ => panic!("a wait just below the timeout is inconclusive"),
        }
        let fd = finding(check(&flow(), &app, end_after(limit_ms), &th));
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(fd.signature, SignatureId::TlsStall);
        assert_eq!(
            fd.note,
            "ClientHello (SNI a.example, ALPN [h2, http/1.1]) unanswered; the server stayed silent for 3.00s until the capture ended"
        );
        assert_eq!(fd.evidence.len(), 1);
        assert_eq!(fd.evidence[0].frame, fr(3));
        assert_eq!(fd.evidence[0].kind, EvidenceKind::Data);
        assert!(fd.evidence[0].description.contains("10.0.0.1:40000"));
        assert_eq!(fact(&fd, "sni").as_deref(), Some("a.example"));
        assert_eq!(fact(&fd, "alpn").as_deref(), Some("h2,http/1.1"));
    }

    #[test]
    fn without_sni_or_alpn_the_facts_are_absent() {
        let th = Thresholds::default();
        let fd = finding(check(&flow(), &hello(None, &[]), end_after(5_000), &th));
        assert!(fd.note.starts_with("ClientHello (SNI (none)) unanswered"));
        assert_eq!(fact(&fd, "sni"), None);
        assert_eq!(fact(&fd, "alpn"), None);
    }

    #[test]
    fn each_way_of_ending_is_named_with_its_frame() {
        let th = Thresholds::default();
        let app = hello(Some("a.example"), &[]);
        type Case = (
            &'static str,
            fn(&mut FlowSummary),
            EvidenceKind,
            &'static str,
        );
        let cases: [Case; 4] = [
            (
                "server FIN",
                |f| f.resp_stats.first_fin = Some(fr(10)),
                EvidenceKind::Fin,
                "the server 10.0.0.2:443 closed without answering",
            ),
            (
                "server RST",
                |f| f.rst = Some(rst(Direction::Resp, 10)),
                EvidenceKind::Rst,
                "the server 10.0.0.2:443 reset without answering",
            ),
            (
                "client FIN",
                |f| f.orig_stats.first_fin = Some(fr(10)),
                EvidenceKind::Fin,
                "the client 10.0.0.1:40000 gave up (FIN)",
            ),
            (
                "client RST",
                |f| f.rst = Some(rst(Direction::Orig, 10)),
                EvidenceKind::Rst,
                "the client 10.0.0.1:40000 gave up (RST)",
            ),
        ];
        for (name, set, kind, what) in cases {
            let mut f = flow();
            set(&mut f);
            // The end is 7 ms after the ClientHello: no timeout applies to an ended handshake.
            let fd = finding(check(&f, &app, end_after(7), &th));
            assert_eq!(fd.evidence.len(), 2, "{}", name);
            assert_eq!(fd.evidence[1].frame, fr(10), "{}", name);
            assert_eq!(fd.evidence[1].kind, kind, "{}", name);
            assert_eq!(
                fd.evidence[1].description,
                format!("{} 7.0ms after the ClientHello", what),
                "{}",
                name
            );
            assert_eq!(
                fd.note,
                format!(
                    "ClientHello (SNI a.example) unanswered; {} after 7.0ms",
                    what
                ),
                "{}",
                name
            );
        }
    }

    #[test]
    fn the_earliest_end_is_the_one_reported() {
        let th = Thresholds::default();
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(20));
        f.resp_stats.first_fin = Some(fr(30));
        f.rst = Some(rst(Direction::Resp, 12));
        let fd = finding(check(&f, &hello(None, &[]), end_after(40), &th));
        assert_eq!(fd.evidence[1].frame, fr(12));
        assert!(fd.note.contains("reset without answering after 9.0ms"));
    }

    #[test]
    fn the_clients_own_alert_is_a_consequence() {
        let th = Thresholds::default();
        let mut f = flow();
        f.orig_stats.first_fin = Some(fr(11));
        let mut app = hello(None, &[]);
        app.tls.as_mut().unwrap().alerts = vec![alert(Direction::Orig, 10, false)];
        let fd = finding(check(&f, &app, end_after(40), &th));
        assert!(
            fd.note.ends_with(
                "; the client's own alert user_canceled(90) is a consequence, not the cause"
            ),
            "{}",
            fd.note
        );
        app.tls.as_mut().unwrap().alerts = vec![alert(Direction::Orig, 10, true)];
        let fd = finding(check(&f, &app, end_after(40), &th));
        assert!(fd
            .note
            .ends_with("; the client's own alert (encrypted) is a consequence, not the cause"));
    }

    #[test]
    fn words_name_the_counts_the_sni_and_the_endpoint() {
        let facts = [("sni", Fact::from("a.example"))];
        let w = words(&Aggregate {
            facts: &facts,
            ..test_aggregate(SignatureId::TlsStall, "10.0.0.2:443", 2, 5)
        });
        assert_eq!(
            w.summary,
            "2 TLS handshakes of 5 to 10.0.0.2:443 (SNI a.example) sent a ClientHello that got no ServerHello and no alert"
        );
        assert!(w.likely_causes[0].contains("10.0.0.2:443"));
        assert!(
            w.next_checks[0].contains("-connect 10.0.0.2:443")
                && w.next_checks[0].contains("from 10.0.0.1")
        );
        assert!(w.next_checks[2].contains("sport = :443"));
        assert_eq!(w.wireshark_filter, "ip.addr==10.0.0.2 && tcp.port==443 && (tls.handshake.type==1 || tcp.flags.fin==1 || tcp.flags.reset==1)");
        let w = words(&test_aggregate(
            SignatureId::TlsStall,
            "[fd00::2]:443",
            1,
            1,
        ));
        assert!(w
            .summary
            .starts_with("1 TLS handshake of 1 to [fd00::2]:443 sent"));
        assert!(w.wireshark_filter.starts_with("ipv6.addr==fd00::2 && "));
    }
}
