//! `connection-refused`: a SYN answered by a RST (Zeek `REJ`): nothing listens on that port, or a
//! firewall rejects with a reset.
//!
//! Rule: the responder's first packet is a RST while the originator is still in SYN_SENT (conn
//! state REJ). Each finding is critical; `settle` (called by the verdict stage once the whole
//! capture is known) lowers a verdict whose refusals were each absorbed: to info when every
//! refused client connected to the same port on another address within
//! `Thresholds::refused_fallback_window` (curl trying ::1 then 127.0.0.1), to warning when every
//! refusal was followed within `Thresholds::refused_retry_window` by a success of the same client
//! to the same endpoint.

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

/// Severity once the whole capture is known. Refusals that each fell back to another address of
/// the server (address-family fallback) are info; refusals that were each followed within
/// `Thresholds::refused_retry_window` by a success of the same client to the same endpoint were absorbed by a
/// retry (warning); otherwise the refusals stood (a restart window, a backend down) and the
/// rule's own severity (critical) holds, however many other connections succeeded.
pub fn settle(
    a: &super::Aggregate,
    attempts: &[(std::net::IpAddr, crate::time::Timestamp)],
    s: &dyn super::Successes,
    th: &super::Thresholds,
) -> Option<super::Settled> {
    if attempts.is_empty() {
        return None;
    }
    if attempts.iter().all(|(c, t)| {
        s.to_other_address_after(*c, a.server, *t, th.refused_fallback_window.nanos())
    }) {
        return Some(super::Settled {
            severity: Severity::Info,
            note: Some("each refused client connected to the same port on another address right after (address-family fallback, e.g. ::1 then 127.0.0.1)"),
        });
    }
    if attempts
        .iter()
        .all(|(c, t)| s.to_endpoint_after(*c, a.server, *t, th.refused_retry_window.nanos()))
    {
        return Some(super::Settled {
            severity: Severity::Warning,
            note: Some("each refused attempt was followed within the retry window by a successful connection of the same client (absorbed by a retry)"),
        });
    }
    None
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let m = a.total_flows;
    let clients = a.clients_phrase();
    super::Words {
        summary: format!(
        "{} of {} from {} to {} {} refused with RST: nothing accepts connections on that port",
        super::plural(n, "connection attempt", "connection attempts"),
        m,
        clients,
        s,
        if n == 1 { "was" } else { "were" }
    ),
        likely_causes: vec![
            format!("nothing listens on {} (service down, crashed, not started, or listening on another port/address)", s),
            "a firewall rejecting with a TCP reset".into(),
        ],
        next_checks: vec![
        format!(
            "check that something listens on {}: `ss -ltnp 'sport = :{}'` on {}",
            s, port, ip
        ),
        "check the port in the proxy's upstream configuration".into(),
        format!("`nft list ruleset | grep -n reject` on {}", ip),
    ],
        wireshark_filter: format!("{af}.addr=={ip} && tcp.port=={port} && (tcp.flags.reset==1 || (tcp.flags.syn==1 && tcp.flags.ack==0))"),
    }
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the client 10.0.0.1:51000 connects to 10.0.0.2:8080,
    //! SYN at frame 1; frame n is at n ms after T0. `settle` is given a hand-made record of the
    //! capture's successes (the aggregator's own record is tested in `verdict`).

    use super::*;
    use crate::flow::testkit::{established, fr};
    use crate::flow::RstInfo;
    use crate::signature::Thresholds;
    use crate::signature::{test_aggregate, Successes};
    use crate::time::Timestamp;
    use std::cell::RefCell;
    use std::net::{IpAddr, SocketAddr};

    fn refused(syns: u32) -> FlowSummary {
        let mut f = established(4, "10.0.0.1:51000", "10.0.0.2:8080", 1, 2);
        f.conn_state = ConnState::REJ;
        f.history = "Sr".into();
        f.synack = None;
        f.syn_count = syns;
        f.rst = Some(RstInfo {
            from: Direction::Resp,
            frame: fr(2),
            ttl: 64,
            unacked_by_peer: 0,
            unacked_from_peer: 0,
            after_fin: false,
            last_data_from: None,
        });
        f
    }

    #[test]
    fn a_syn_answered_by_rst_is_critical_with_both_frames() {
        let fd = check(&refused(1)).expect("a finding");
        assert_eq!(fd.signature, SignatureId::ConnectionRefused);
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(fd.note, "SYN answered by RST");
        assert_eq!(fd.evidence.len(), 2);
        assert_eq!(
            (fd.evidence[0].frame, fd.evidence[0].kind),
            (fr(1), EvidenceKind::Syn)
        );
        assert_eq!(
            fd.evidence[0].description,
            "SYN 10.0.0.1:51000 → 10.0.0.2:8080"
        );
        assert_eq!(
            (fd.evidence[1].frame, fd.evidence[1].kind),
            (fr(2), EvidenceKind::Rst)
        );
        assert!(fd.evidence[1]
            .description
            .contains("RST from 10.0.0.2:8080"));
    }

    #[test]
    fn several_syns_are_counted_in_the_note() {
        assert_eq!(
            check(&refused(2)).unwrap().note,
            "2 SYNs, each answered by RST"
        );
    }

    #[test]
    fn without_the_first_syn_only_the_rst_is_evidence() {
        let mut f = refused(1);
        f.first_syn = None;
        let fd = check(&f).expect("a finding");
        assert_eq!(fd.evidence.len(), 1);
        assert_eq!(fd.evidence[0].kind, EvidenceKind::Rst);
    }

    #[test]
    fn only_rej_with_the_responders_rst_is_a_refusal() {
        let mut f = refused(1);
        f.conn_state = ConnState::RSTR;
        assert!(check(&f).is_none());
        let mut f = refused(1);
        f.rst.as_mut().unwrap().from = Direction::Orig;
        assert!(check(&f).is_none());
        let mut f = refused(1);
        f.rst = None;
        assert!(check(&f).is_none());
    }

    /// Successes as given: (client, server, start ms after T0); records the windows asked for.
    struct Record {
        ok: Vec<(IpAddr, SocketAddr, i64)>,
        windows: RefCell<Vec<i64>>,
    }

    impl Record {
        fn new(ok: &[(&str, &str, i64)]) -> Record {
            Record {
                ok: ok
                    .iter()
                    .map(|(c, s, ms)| (c.parse().unwrap(), s.parse().unwrap(), *ms))
                    .collect(),
                windows: RefCell::new(Vec::new()),
            }
        }
        fn within(&self, c: IpAddr, t: Timestamp, w: i64, m: impl Fn(&SocketAddr) -> bool) -> bool {
            self.windows.borrow_mut().push(w);
            self.ok.iter().any(|(oc, os, ms)| {
                *oc == c && m(os) && (0..=w).contains(&fr(*ms as u64).ts.nanos_since(t))
            })
        }
    }

    impl Successes for Record {
        fn to_endpoint_after(&self, c: IpAddr, s: SocketAddr, t: Timestamp, w: i64) -> bool {
            self.within(c, t, w, |x| *x == s)
        }
        fn to_other_address_after(&self, c: IpAddr, s: SocketAddr, t: Timestamp, w: i64) -> bool {
            self.within(c, t, w, |x| x.port() == s.port() && x.ip() != s.ip())
        }
    }

    fn attempt(c: &str, ms: u64) -> (IpAddr, Timestamp) {
        (c.parse().unwrap(), fr(ms).ts)
    }

    fn agg() -> crate::signature::Aggregate<'static> {
        test_aggregate(SignatureId::ConnectionRefused, "10.0.0.2:8080", 2, 4)
    }

    #[test]
    fn no_attempts_settle_nothing() {
        assert_eq!(
            settle(&agg(), &[], &Record::new(&[]), &Thresholds::default()),
            None
        );
    }

    #[test]
    fn every_refusal_falling_back_to_another_address_is_info() {
        let r = Record::new(&[
            ("10.0.0.1", "10.0.0.3:8080", 1_010),
            ("10.0.0.5", "10.0.0.3:8080", 3_000),
        ]);
        let s = settle(
            &agg(),
            &[attempt("10.0.0.1", 1_000), attempt("10.0.0.5", 2_000)],
            &r,
            &Thresholds::default(),
        )
        .expect("settled");
        assert_eq!(s.severity, Severity::Info);
        assert!(s.note.unwrap().contains("another address"));
        assert!(r
            .windows
            .borrow()
            .iter()
            .all(|w| *w == Thresholds::default().refused_fallback_window.nanos()));
        assert_eq!(
            Thresholds::default().refused_fallback_window.nanos(),
            2_000_000_000
        );
    }

    #[test]
    fn every_refusal_followed_by_a_retry_success_is_a_warning() {
        let r = Record::new(&[
            ("10.0.0.1", "10.0.0.2:8080", 1_500),
            ("10.0.0.5", "10.0.0.2:8080", 2_000),
        ]);
        let s = settle(
            &agg(),
            &[attempt("10.0.0.1", 1_000), attempt("10.0.0.5", 2_000)],
            &r,
            &Thresholds::default(),
        )
        .expect("settled");
        assert_eq!(s.severity, Severity::Warning);
        assert!(s.note.unwrap().contains("absorbed by a retry"));
        assert_eq!(
            r.windows.borrow().last(),
            Some(&Thresholds::default().refused_retry_window.nanos())
        );
        assert_eq!(
            Thresholds::default().refused_retry_window.nanos(),
            1_000_000_000
        );
    }

    #[test]
    fn one_refusal_that_stood_keeps_it_critical() {
        // The first client fell back and the second retried, but not both did the same: the
        // fallback alone does not cover the second, the retry alone not the first.
        let r = Record::new(&[
            ("10.0.0.1", "10.0.0.3:8080", 1_010),
            ("10.0.0.5", "10.0.0.2:8080", 2_010),
        ]);
        let a = [attempt("10.0.0.1", 1_000), attempt("10.0.0.5", 2_000)];
        assert_eq!(settle(&agg(), &a, &r, &Thresholds::default()), None);
        // A success of another client does not absorb a refusal.
        let r = Record::new(&[("10.0.0.9", "10.0.0.2:8080", 1_010)]);
        assert_eq!(settle(&agg(), &a[..1], &r, &Thresholds::default()), None);
    }

    #[test]
    fn words_count_attempts_and_name_the_endpoint() {
        let w = words(&agg());
        assert_eq!(
            w.summary,
            "2 connection attempts of 4 from 10.0.0.1 to 10.0.0.2:8080 were refused with RST: nothing accepts connections on that port"
        );
        assert!(w.likely_causes[0].contains("nothing listens on 10.0.0.2:8080"));
        assert!(
            w.next_checks[0].contains("sport = :8080") && w.next_checks[0].ends_with("on 10.0.0.2")
        );
        assert!(w.next_checks[2].ends_with("on 10.0.0.2"));
        assert_eq!(w.wireshark_filter, "ip.addr==10.0.0.2 && tcp.port==8080 && (tcp.flags.reset==1 || (tcp.flags.syn==1 && tcp.flags.ack==0))");
        let one = crate::signature::Aggregate {
            clients: 3,
            ..test_aggregate(SignatureId::ConnectionRefused, "[fd00::2]:80", 1, 1)
        };
        let w = words(&one);
        assert_eq!(
            w.summary,
            "1 connection attempt of 1 from 3 clients to [fd00::2]:80 was refused with RST: nothing accepts connections on that port"
        );
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.addr==fd00::2 && tcp.port==80 "));
    }
}
