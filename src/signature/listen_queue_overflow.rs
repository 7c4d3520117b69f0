//! `listen-queue-overflow`: many connections to one endpoint needed 2–3 SYNs before the
//! SYN-ACK — the listener dropped the first SYN(s) because its accept queue or SYN backlog was
//! full, and answered a retransmission a timeout (1 s, then 2 s more on Linux) later.
//!
//! Rule, per server endpoint: connections whose handshake was answered after 2 or 3 SYNs, every
//! SYN before the SYN-ACK (a SYN sent again after the SYN-ACK is a lost SYN-ACK, not a drop), at
//! least `listen_queue_min_conns` of them and at least `listen_queue_min_pct` % of the
//! endpoint's attempts with a SYN. Severity: warning (each such connection lost ≥ 1 s). A single
//! retried SYN is ordinary loss, not a finding. Memory: `MAX_LQ_ENDPOINTS` endpoints.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::{FlowSummary, FrameRef};
use crate::time::human_duration;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

/// Endpoints tracked at most.
pub const MAX_LQ_ENDPOINTS: usize = 10_000;
/// Example connections kept per endpoint.
const MAX_EXAMPLES: usize = 3;

#[derive(Clone, Default)]
struct Endpoint {
    attempts: u64,
    retried: u64,
    /// Longest wait from the first SYN to the SYN-ACK among retried connections.
    max_wait_ns: i64,
    client: Option<IpAddr>,
    /// (first SYN, SYN-ACK, SYNs) of the first retried connections.
    examples: Vec<(FrameRef, FrameRef, u32)>,
}

/// Whether `f` needed 2–3 SYNs, all before its SYN-ACK.
pub fn retried_handshake(f: &FlowSummary) -> bool {
    let (Some(first), Some(last), Some(sa)) = (f.first_syn, f.last_syn, f.synack) else {
        return false;
    };
    !f.partial
        && (2..=3).contains(&f.syn_count)
        && (last.ts, last.number) <= (sa.ts, sa.number)
        && first.ts <= sa.ts
}

#[derive(Clone, Default)]
pub struct ListenQueueTracker {
    endpoints: FxHashMap<SocketAddr, Endpoint>,
}

impl ListenQueueTracker {
    pub fn observe(&mut self, f: &FlowSummary) {
        if f.syn_count == 0 || f.partial {
            return;
        }
        if self.endpoints.len() >= MAX_LQ_ENDPOINTS && !self.endpoints.contains_key(&f.resp) {
            return;
        }
        let e = self.endpoints.entry(f.resp).or_default();
        e.attempts += 1;
        if !retried_handshake(f) {
            return;
        }
        let (first, sa) = (f.first_syn.expect("checked"), f.synack.expect("checked"));
        e.retried += 1;
        e.max_wait_ns = e.max_wait_ns.max(sa.ts.nanos_since(first.ts));
        if e.client.is_none() {
            e.client = Some(f.orig.ip());
        }
        if e.examples.len() < MAX_EXAMPLES {
            e.examples.push((first, sa, f.syn_count));
        }
    }

    pub fn findings(&self, th: &Thresholds) -> Vec<Finding> {
        let mut out = Vec::new();
        let mut keys: Vec<&SocketAddr> = self.endpoints.keys().collect();
        keys.sort();
        for server in keys {
            let e = &self.endpoints[server];
            if e.retried < th.listen_queue_min_conns as u64
                || e.retried * 100 < e.attempts * th.listen_queue_min_pct as u64
            {
                continue;
            }
            let mut ev = Vec::new();
            for (syn, sa, n) in &e.examples {
                ev.push(Evidence {
                    frame: *syn,
                    kind: EvidenceKind::Syn,
                    description: format!("first SYN to {} (dropped; {} SYNs in all)", server, n),
                });
                ev.push(Evidence {
                    frame: *sa,
                    kind: EvidenceKind::Syn,
                    description: format!(
                        "SYN-ACK from {} only {} after the first SYN",
                        server,
                        human_duration(sa.ts.nanos_since(syn.ts))
                    ),
                });
            }
            ev.sort_by_key(|x| (x.frame.file, x.frame.number));
            let first_ts = e.examples.first().map(|x| x.0.ts).unwrap_or_default();
            let last_ts = e.examples.last().map(|x| x.1.ts).unwrap_or(first_ts);
            out.push(Finding {
                signature: SignatureId::ListenQueueOverflow,
                severity: Severity::Warning,
                client: e.client.unwrap_or(server.ip()),
                server: *server,
                flow: None,
                weight: e.retried,
                first_ts,
                last_ts,
                note: format!(
                    "{} of {} connections needed 2–3 SYNs before the SYN-ACK (up to {} lost)",
                    e.retried,
                    e.attempts,
                    human_duration(e.max_wait_ns)
                ),
                evidence: ev,
                facts: vec![
                    ("retried", e.retried.into()),
                    ("attempts", e.attempts.into()),
                    ("max_wait", human_duration(e.max_wait_ns).into()),
                ],
            });
        }
        out
    }
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let mut w = super::Words::default();
    let s = a.server;
    let (ip, port) = (s.ip(), s.port());
    let af = if s.is_ipv4() { "ip" } else { "ipv6" };
    let fact = |k: &str| a.text(k).unwrap_or_default();
    w.summary = format!(
        "{} of {} connections to {} were answered only after their SYN was sent 2–3 times (up to {} lost each): the listener dropped SYNs — its listen queue overflowed",
        fact("retried"),
        fact("attempts"),
        s,
        fact("max_wait")
    );
    w.likely_causes = vec![
        format!("the accept queue of the listener on {} is full: the application accepts too slowly for the connection rate (busy or blocked workers)", s),
        "the listen backlog is too small: the listen() backlog argument (nginx `listen … backlog=`, haproxy `backlog` / `maxconn`), capped by `net.core.somaxconn`".into(),
        "the SYN backlog is full (`net.ipv4.tcp_max_syn_backlog`) during a connection burst".into(),
    ];
    w.next_checks = vec![
        format!("on {}: `nstat -az TcpExtListenOverflows TcpExtListenDrops` (growing = drops) and `ss -ltn 'sport = :{}'` (Recv-Q near Send-Q = queue full)", ip, port),
        "`sysctl net.core.somaxconn net.ipv4.tcp_max_syn_backlog`, and the listen backlog in the server's configuration (nginx `listen … backlog=`, haproxy `maxconn` / `backlog`)".into(),
        "whether the application's workers keep up (accept rate vs connection rate at the time)".into(),
    ];
    w.wireshark_filter = format!(
        "{af}.dst=={ip} && tcp.dstport=={port} && tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.analysis.retransmission"
    );
    w
}

#[cfg(test)]
mod tests {
    //! The tracker on hand-built connections to the server 10.0.0.9:80 (the thresholds' own
    //! boundaries are tested through `analyze`); frame n is at n ms after T0.

    use super::*;
    use crate::flow::testkit::{established, fr};
    use crate::signature::{test_aggregate, Aggregate, Fact};

    /// A connection from port `port` at frame `at` answered after `syns` SYNs sent 1 s apart.
    fn conn(port: u16, server: &str, at: u64, syns: u32) -> FlowSummary {
        let last = at + 1000 * (syns as u64 - 1);
        let mut f = established(
            port as u64,
            &format!("10.0.0.1:{}", port),
            server,
            at,
            last + 5,
        );
        f.syn_count = syns;
        f.last_syn = Some(fr(last));
        f.synack = Some(fr(last + 1));
        f
    }

    #[test]
    fn a_retried_handshake_has_two_or_three_syns_all_before_the_syn_ack() {
        assert!(!retried_handshake(&conn(1, "10.0.0.9:80", 1, 1)));
        assert!(retried_handshake(&conn(1, "10.0.0.9:80", 1, 2)));
        assert!(retried_handshake(&conn(1, "10.0.0.9:80", 1, 3)));
        assert!(!retried_handshake(&conn(1, "10.0.0.9:80", 1, 4)));
        let mut f = conn(1, "10.0.0.9:80", 1, 2);
        f.partial = true;
        assert!(!retried_handshake(&f));
        let mut f = conn(1, "10.0.0.9:80", 1, 2);
        f.synack = None;
        assert!(!retried_handshake(&f));
        // The SYN-ACK in the same instant as the last SYN, a later frame: still before it.
        let mut f = conn(1, "10.0.0.9:80", 1, 2);
        f.synack = Some(FrameRef {
            number: 1002,
            ..fr(1001)
        });
        assert!(retried_handshake(&f));
        f.synack = Some(FrameRef {
            number: 1000,
            ..fr(1001)
        });
        assert!(!retried_handshake(&f));
    }

    #[test]
    fn a_finding_names_counts_the_longest_wait_and_three_examples() {
        let mut t = ListenQueueTracker::default();
        for i in 0..4u16 {
            t.observe(&conn(
                30_000 + i,
                "10.0.0.9:80",
                10_000 * (i as u64 + 1),
                2 + (i == 1) as u32,
            ));
        }
        for i in 0..6u16 {
            t.observe(&conn(31_000 + i, "10.0.0.9:80", 100_000 + i as u64, 1));
        }
        let out = t.findings(&Thresholds::default());
        assert_eq!(out.len(), 1);
        let fd = &out[0];
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::ListenQueueOverflow, Severity::Warning)
        );
        assert_eq!(fd.weight, 4);
        assert_eq!(fd.client, "10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(
            fd.note,
            "4 of 10 connections needed 2–3 SYNs before the SYN-ACK (up to 2.00s lost)"
        );
        assert_eq!(
            fd.facts,
            vec![
                ("retried", Fact::Count(4)),
                ("attempts", Fact::Count(10)),
                ("max_wait", Fact::from("2.00s")),
            ]
        );
        let frames: Vec<u64> = fd.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![10_000, 11_001, 20_000, 22_001, 30_000, 31_001]);
        assert_eq!(
            fd.evidence[0].description,
            "first SYN to 10.0.0.9:80 (dropped; 2 SYNs in all)"
        );
        assert_eq!(
            fd.evidence[3].description,
            "SYN-ACK from 10.0.0.9:80 only 2.00s after the first SYN"
        );
        assert_eq!((fd.first_ts, fd.last_ts), (fr(10_000).ts, fr(31_001).ts));
    }

    #[test]
    fn partial_connections_and_connections_without_syn_are_not_attempts() {
        // 3 retried of 60 attempts is exactly 5 %; partial ones or ones without a SYN seen
        // would push it under.
        let mut t = ListenQueueTracker::default();
        for i in 0..60u16 {
            t.observe(&conn(
                30_000 + i,
                "10.0.0.9:80",
                1 + 10 * i as u64,
                if i < 3 { 2 } else { 1 },
            ));
        }
        for i in 0..5u16 {
            let mut f = conn(40_000 + i, "10.0.0.9:80", 5_000, 1);
            f.partial = true;
            t.observe(&f);
            let mut f = conn(41_000 + i, "10.0.0.9:80", 5_000, 1);
            f.syn_count = 0;
            t.observe(&f);
        }
        assert_eq!(t.findings(&Thresholds::default()).len(), 1);
    }

    #[test]
    fn endpoints_beyond_the_cap_are_not_tracked() {
        let mut t = ListenQueueTracker::default();
        t.observe(&conn(1, "10.0.0.9:80", 1, 1));
        for i in 1..MAX_LQ_ENDPOINTS as u32 {
            let server = format!("{}:80", std::net::Ipv4Addr::from(0x0c00_0000 + i));
            t.observe(&conn(2, &server, 1, 1));
        }
        for i in 0..3u16 {
            t.observe(&conn(100 + i, "10.0.0.9:80", 10, 2));
            t.observe(&conn(100 + i, "10.0.0.8:80", 10, 2));
        }
        let out = t.findings(&Thresholds::default());
        let servers: Vec<String> = out.iter().map(|f| f.server.to_string()).collect();
        assert_eq!(servers, vec!["10.0.0.9:80"]);
    }

    #[test]
    fn words_give_the_counts_and_the_endpoint() {
        let facts = [
            ("retried", Fact::Count(4)),
            ("attempts", Fact::Count(10)),
            ("max_wait", Fact::from("2.00s")),
        ];
        let w = words(&Aggregate {
            facts: &facts,
            ..test_aggregate(SignatureId::ListenQueueOverflow, "10.0.0.9:80", 4, 10)
        });
        assert!(w.summary.starts_with("4 of 10 connections to 10.0.0.9:80 were answered only after their SYN was sent 2–3 times (up to 2.00s lost each)"));
        assert!(w.likely_causes[0].contains("listener on 10.0.0.9:80"));
        assert!(
            w.next_checks[0].starts_with("on 10.0.0.9: ")
                && w.next_checks[0].contains("sport = :80")
        );
        assert_eq!(w.wireshark_filter, "ip.dst==10.0.0.9 && tcp.dstport==80 && tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.analysis.retransmission");
        let w = words(&test_aggregate(
            SignatureId::ListenQueueOverflow,
            "[fd00::9]:80",
            1,
            1,
        ));
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.dst==fd00::9 && tcp.dstport==80 "));
    }
}
