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
