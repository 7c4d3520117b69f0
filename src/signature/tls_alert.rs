//! `tls-alert`: a fatal alert during the handshake, or a TLS 1.3 client that hangs up right after
//! the server's encrypted flight.
//!
//! Rule 1: a plaintext alert of level fatal (2) from either side (plaintext means the sender had
//! not switched to encryption: the handshake was still going on). Reported with who sent it, its
//! name and number, SNI / ALPN / offered versions, and what it usually means
//! (`protocol_version` → no common TLS version, `no_application_protocol` → no common ALPN, …).
//! Rule 2 (warning, stated as uncertain): TLS 1.3 was negotiated, the server sent its encrypted
//! flight, and the client closed (FIN/RST) having sent less encrypted data than a Finished
//! message — the usual picture of a client rejecting the server's certificate, whose alert TLS 1.3
//! encrypts. Not concluded when the client's frames were cut by the snapshot length (the byte
//! count is then not evidence).

use super::{tls_stall::hello_desc, Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::tls::{alert_meaning, alert_name, tls_version};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary};

/// Encrypted bytes below this from the client after the ServerHello cannot hold a TLS 1.3
/// Finished message (4-byte header + 32-byte verify data + type + 16-byte tag = 53).
const MIN_CLIENT_FINISHED: u64 = 40;

pub fn check(f: &FlowSummary, app: &AppSummary) -> Option<Finding> {
    let t = app.tls.as_ref()?;
    let who = |d: Direction| match d {
        Direction::Orig => format!("the client {}", f.orig),
        Direction::Resp => format!("the server {}", f.resp),
    };
    let offered = t
        .client_hello
        .as_ref()
        .map(|c| {
            c.versions
                .iter()
                .map(|v| tls_version(*v))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    if let Some(a) = t.alerts.iter().find(|a| !a.encrypted && a.level == 2) {
        let mut ev = Vec::new();
        if let Some(ch) = &t.client_hello {
            ev.push(Evidence {
                frame: ch.frame,
                kind: EvidenceKind::Data,
                description: format!("ClientHello ({}; offers {})", hello_desc(t), offered),
            });
        }
        if let Some(sh) = &t.server_hello {
            ev.push(Evidence {
                frame: sh.frame,
                kind: EvidenceKind::Data,
                description: format!("ServerHello ({})", tls_version(sh.version)),
            });
        }
        ev.push(Evidence {
            frame: a.frame,
            kind: EvidenceKind::Data,
            description: format!(
                "fatal alert {}({}) from {}",
                alert_name(a.description),
                a.description,
                who(a.from)
            ),
        });
        let note = format!(
            "{} sent fatal alert {}({}) during the handshake ({}; offered {}): {}",
            who(a.from),
            alert_name(a.description),
            a.description,
            hello_desc(t),
            offered,
            alert_meaning(a.description)
        );
        let mut fd = Finding::for_flow(SignatureId::TlsAlert, Severity::Critical, f, note, ev);
        fd.facts.push(("alert", alert_name(a.description).into()));
        fd.facts.push((
            "alert_from",
            if a.from == Direction::Orig {
                "client"
            } else {
                "server"
            }
            .into(),
        ));
        return Some(fd);
    }
    // TLS 1.3: the client hangs up right after the server's encrypted flight.
    let sh = t.server_hello.as_ref()?;
    let client_closed = f
        .orig_stats
        .first_fin
        .or(f.rst.filter(|r| r.from == Direction::Orig).map(|r| r.frame));
    if t.negotiated_tls13()
        && t.encrypted_records[Direction::Resp.idx()] > 0
        && t.encrypted_bytes[Direction::Orig.idx()] < MIN_CLIENT_FINISHED
        // A byte count is evidence only when every client byte was captured: frames cut by
        // the snapshot length hide the Finished (the class "byte-count inference on a stream
        // with holes").
        && f.orig_stats.truncated == 0
        && client_closed.is_some()
    {
        let closed = client_closed?;
        let mut ev = Vec::new();
        if let Some(ch) = &t.client_hello {
            ev.push(Evidence {
                frame: ch.frame,
                kind: EvidenceKind::Data,
                description: format!("ClientHello ({})", hello_desc(t)),
            });
        }
        ev.push(Evidence {
            frame: sh.frame,
            kind: EvidenceKind::Data,
            description: "ServerHello (TLS 1.3), then the server's encrypted flight (certificate)"
                .into(),
        });
        ev.push(Evidence {
            frame: closed,
            kind: if f.orig_stats.first_fin == Some(closed) {
                EvidenceKind::Fin
            } else {
                EvidenceKind::Rst
            },
            description: format!(
                "the client {} closes without finishing the handshake",
                f.orig
            ),
        });
        let note = format!(
            "TLS 1.3 ({}): the client closed right after the server's encrypted flight without sending its Finished: it most likely rejected the server's certificate (TLS 1.3 encrypts the alert, so this is an inference, not a decoded alert)",
            hello_desc(t)
        );
        let mut fd = Finding::for_flow(SignatureId::TlsAlert, Severity::Warning, f, note, ev);
        fd.facts
            .push(("alert", "encrypted (likely certificate rejected)".into()));
        fd.facts.push(("alert_from", "client".into()));
        return Some(fd);
    }
    None
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let mut w = super::Words::default();
    let alert = a.text("alert").unwrap_or_default();
    let from = a.text("alert_from").unwrap_or_default();
    w.summary = format!(
        "{} of {} to {} failed with a TLS alert ({}, from the {})",
        super::plural(n, "TLS handshake", "TLS handshakes"),
        m,
        s,
        alert,
        from
    );
    w.likely_causes = vec![
            "no common TLS version, cipher suite or ALPN protocol between client and server".into(),
            "an unknown SNI name, or a certificate the client rejects (expired, unknown CA, wrong name)".into(),
            "a client certificate required or rejected".into(),
        ];
    w.next_checks = vec![
            format!("`openssl s_client -connect {} -servername <name> -alpn h2,http/1.1` and compare with the ClientHello's offer", s),
            "compare the TLS versions/ciphers/ALPN configured on both sides (ssl_protocols, ssl_ciphers, proxy_ssl_*)".into(),
            format!("the server's certificate: `openssl s_client -connect {} -showcerts | openssl x509 -noout -dates -subject -issuer`", s),
        ];
    w.wireshark_filter = format!("{af}.addr=={ip} && tcp.port=={port} && (tls.handshake.type==1 || tls.handshake.type==2 || tls.record.content_type==21)");
    w
}
