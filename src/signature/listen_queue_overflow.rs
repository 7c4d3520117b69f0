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
