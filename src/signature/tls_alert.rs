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

#[cfg(test)]
mod tests {
    //! The rule on hand-built handshakes: the client 10.0.0.1:40000, the server 10.0.0.2:443;
    //! ClientHello frame 3, ServerHello frame 4; frame n is at n ms after T0.

    use super::*;
    use crate::app::tls::{Alert, ClientHello, ServerHello, TlsSummary};
    use crate::flow::testkit::{established, fr};
    use crate::flow::RstInfo;
    use crate::signature::{test_aggregate, Aggregate, Fact};

    fn flow() -> FlowSummary {
        established(8, "10.0.0.1:40000", "10.0.0.2:443", 1, 12)
    }

    fn hello() -> ClientHello {
        ClientHello {
            frame: fr(3),
            sni: Some("a.example".into()),
            alpn: vec!["h2".into()],
            versions: vec![0x0304, 0x0303],
        }
    }

    fn server_hello(version: u16) -> ServerHello {
        ServerHello {
            frame: fr(4),
            version,
            alpn: None,
            cipher: 0x1301,
            hello_retry: false,
        }
    }

    fn alert(from: Direction, level: u8, description: u8, encrypted: bool) -> Alert {
        Alert {
            frame: fr(5),
            from,
            level,
            description,
            encrypted,
        }
    }

    fn app(t: TlsSummary) -> AppSummary {
        AppSummary {
            tls: Some(t),
            ..Default::default()
        }
    }

    fn fact(fd: &Finding, k: &str) -> Option<String> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string())
    }

    #[test]
    fn a_plaintext_fatal_alert_from_the_server_is_critical() {
        let t = TlsSummary {
            client_hello: Some(hello()),
            server_hello: Some(server_hello(0x0303)),
            alerts: vec![alert(Direction::Resp, 2, 70, false)],
            ..Default::default()
        };
        let fd = check(&flow(), &app(t)).expect("a finding");
        assert_eq!(fd.signature, SignatureId::TlsAlert);
        assert_eq!(fd.severity, Severity::Critical);
        assert!(
            fd.note.starts_with("the server 10.0.0.2:443 sent fatal alert protocol_version(70) during the handshake (SNI a.example, ALPN [h2]; offered TLS 1.3, TLS 1.2): "),
            "{}",
            fd.note
        );
        assert!(fd.note.ends_with(alert_meaning(70)));
        let frames: Vec<_> = fd.evidence.iter().map(|e| e.frame).collect();
        assert_eq!(frames, vec![fr(3), fr(4), fr(5)]);
        assert_eq!(
            fd.evidence[0].description,
            "ClientHello (SNI a.example, ALPN [h2]; offers TLS 1.3, TLS 1.2)"
        );
        assert_eq!(fd.evidence[1].description, "ServerHello (TLS 1.2)");
        assert_eq!(
            fd.evidence[2].description,
            "fatal alert protocol_version(70) from the server 10.0.0.2:443"
        );
        assert_eq!(fact(&fd, "alert").as_deref(), Some("protocol_version"));
        assert_eq!(fact(&fd, "alert_from").as_deref(), Some("server"));
    }

    #[test]
    fn a_clients_fatal_alert_without_hellos_names_the_client() {
        let t = TlsSummary {
            alerts: vec![alert(Direction::Orig, 2, 48, false)],
            ..Default::default()
        };
        let fd = check(&flow(), &app(t)).expect("a finding");
        assert!(fd
            .note
            .starts_with("the client 10.0.0.1:40000 sent fatal alert unknown_ca(48)"));
        assert_eq!(fd.evidence.len(), 1);
        assert_eq!(fact(&fd, "alert_from").as_deref(), Some("client"));
    }

    #[test]
    fn warning_level_or_encrypted_alerts_are_not_rule_one() {
        for a in [
            alert(Direction::Resp, 1, 112, false),
            alert(Direction::Resp, 2, 40, true),
        ] {
            let t = TlsSummary {
                client_hello: Some(hello()),
                server_hello: Some(server_hello(0x0303)),
                alerts: vec![a],
                ..Default::default()
            };
            assert!(check(&flow(), &app(t)).is_none());
        }
        assert!(check(&flow(), &AppSummary::default()).is_none());
    }

    /// TLS 1.3 negotiated, the server's encrypted flight sent, `client_bytes` encrypted bytes
    /// from the client, which closes with `close` at frame 9.
    fn tls13(client_bytes: u64, close: Option<Direction>, fin: bool) -> (FlowSummary, AppSummary) {
        let mut f = flow();
        if fin {
            f.orig_stats.first_fin = Some(fr(9));
        }
        if let Some(from) = close {
            f.rst = Some(RstInfo {
                from,
                frame: fr(9),
                ttl: 64,
                unacked_by_peer: 0,
                unacked_from_peer: 0,
                after_fin: false,
                last_data_from: None,
            });
        }
        let t = TlsSummary {
            client_hello: Some(hello()),
            server_hello: Some(server_hello(0x0304)),
            encrypted_records: [1, 3],
            encrypted_bytes: [client_bytes, 2500],
            ..Default::default()
        };
        (f, app(t))
    }

    #[test]
    fn a_tls13_client_hanging_up_before_its_finished_is_a_warning() {
        let (f, a) = tls13(MIN_CLIENT_FINISHED - 1, None, true);
        let fd = check(&f, &a).expect("a finding");
        assert_eq!(fd.severity, Severity::Warning);
        assert!(fd
            .note
            .starts_with("TLS 1.3 (SNI a.example, ALPN [h2]): the client closed"));
        assert_eq!(fd.evidence.len(), 3);
        assert_eq!(
            fd.evidence[0].description,
            "ClientHello (SNI a.example, ALPN [h2])"
        );
        assert_eq!(
            (fd.evidence[2].frame, fd.evidence[2].kind),
            (fr(9), EvidenceKind::Fin)
        );
        assert_eq!(fact(&fd, "alert_from").as_deref(), Some("client"));
        assert_eq!(
            fact(&fd, "alert").as_deref(),
            Some("encrypted (likely certificate rejected)")
        );
        // Closed with RST instead.
        let (f, a) = tls13(0, Some(Direction::Orig), false);
        let fd = check(&f, &a).expect("a finding");
        assert_eq!(
            (fd.evidence[2].frame, fd.evidence[2].kind),
            (fr(9), EvidenceKind::Rst)
        );
    }

    #[test]
    fn the_tls13_inference_needs_every_condition() {
        // Enough bytes for a Finished.
        let (f, a) = tls13(MIN_CLIENT_FINISHED, None, true);
        assert!(check(&f, &a).is_none());
        assert_eq!(MIN_CLIENT_FINISHED, 40);
        // The client did not close (the server's RST is not the client's give-up).
        let (f, a) = tls13(0, Some(Direction::Resp), false);
        assert!(check(&f, &a).is_none());
        // Frames cut by the snapshot length.
        let (mut f, a) = tls13(0, None, true);
        f.orig_stats.truncated = 1;
        assert!(check(&f, &a).is_none());
        // No encrypted flight from the server.
        let (f, mut a) = tls13(0, None, true);
        a.tls.as_mut().unwrap().encrypted_records = [1, 0];
        assert!(check(&f, &a).is_none());
        // TLS 1.2, or a HelloRetryRequest.
        let (f, mut a) = tls13(0, None, true);
        a.tls.as_mut().unwrap().server_hello = Some(server_hello(0x0303));
        assert!(check(&f, &a).is_none());
        let (f, mut a) = tls13(0, None, true);
        a.tls
            .as_mut()
            .unwrap()
            .server_hello
            .as_mut()
            .unwrap()
            .hello_retry = true;
        assert!(check(&f, &a).is_none());
        // No ServerHello at all.
        let (f, mut a) = tls13(0, None, true);
        a.tls.as_mut().unwrap().server_hello = None;
        assert!(check(&f, &a).is_none());
    }

    #[test]
    fn words_name_the_alert_and_its_sender() {
        let facts = [
            ("alert", Fact::from("protocol_version")),
            ("alert_from", Fact::from("server")),
        ];
        let w = words(&Aggregate {
            facts: &facts,
            ..test_aggregate(SignatureId::TlsAlert, "10.0.0.2:443", 2, 7)
        });
        assert_eq!(
            w.summary,
            "2 TLS handshakes of 7 to 10.0.0.2:443 failed with a TLS alert (protocol_version, from the server)"
        );
        assert!(w.next_checks[0].contains("-connect 10.0.0.2:443 "));
        assert!(w.next_checks[2].contains("-connect 10.0.0.2:443 "));
        assert_eq!(w.wireshark_filter, "ip.addr==10.0.0.2 && tcp.port==443 && (tls.handshake.type==1 || tls.handshake.type==2 || tls.record.content_type==21)");
        let w = words(&test_aggregate(
            SignatureId::TlsAlert,
            "[fd00::2]:443",
            1,
            1,
        ));
        assert!(w
            .summary
            .starts_with("1 TLS handshake of 1 to [fd00::2]:443 failed"));
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::2 && tcp.port==443 "));
    }
}
