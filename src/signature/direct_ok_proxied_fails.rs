//! `direct-ok-proxied-fails`: a client got a gateway error (or a policy refusal) from a proxy for a
//! request that the same client had answered successfully by another endpoint that is not a
//! proxy front: the service works, the proxy in front of it does not.
//!
//! Inputs are the client-leg records `analyze` keeps (`FrontFailure`, `DirectOk`, capped) and
//! the inferred topology (which endpoints are proxy fronts). Severity: critical for a gateway
//! error, warning for a policy refusal (403/407: the proxy's rule, not an outage).

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::correlate;
use crate::flow::FrameRef;
use crate::topology::Topology;
use std::net::{IpAddr, SocketAddr};

/// A failed client-leg request (gateway error), kept for chains and direct-vs-proxied.
#[derive(Clone, Debug)]
pub struct FrontFailure {
    pub client: IpAddr,
    pub server: SocketAddr,
    pub status: u16,
    pub method: String,
    pub target: String,
    pub response: FrameRef,
}

/// A successful exchange, for direct-vs-proxied comparisons.
#[derive(Clone, Debug)]
pub struct DirectOk {
    pub client: IpAddr,
    pub server: SocketAddr,
    pub method: String,
    pub target: String,
    pub status: u16,
    pub response: FrameRef,
}

/// `direct-ok-proxied-fails`: a client got a gateway error from a proxy for a request that the
/// same client had answered successfully (status < 400) by another endpoint — the service works,
/// the proxy in front of it does not. "The same request" is the same method and target.
pub fn check(front: &[FrontFailure], ok: &[DirectOk], topo: &Topology) -> Vec<Finding> {
    let fronts: Vec<SocketAddr> = topo
        .proxies
        .iter()
        .flat_map(|p| p.front.iter().copied())
        .collect();
    let mut out = Vec::new();
    for e in front {
        let Some(d) = ok.iter().find(|d| {
            d.client == e.client
                && d.server != e.server
                && !fronts.contains(&d.server)
                && d.method == e.method
                && correlate::origin_form(&d.target) == correlate::origin_form(&e.target)
        }) else {
            continue;
        };
        let mut ev = vec![
            Evidence {
                frame: d.response,
                kind: EvidenceKind::Data,
                description: format!(
                    "{} {} answered {} directly by {}",
                    d.method, d.target, d.status, d.server
                ),
            },
            Evidence {
                frame: e.response,
                kind: EvidenceKind::Data,
                description: format!(
                    "the same {} {} through {} answered {}",
                    e.method, e.target, e.server, e.status
                ),
            },
        ];
        ev.sort_by_key(|x| (x.frame.file, x.frame.number));
        out.push(Finding {
            signature: SignatureId::DirectOkProxiedFails,
            // A policy refusal (403/407) is the proxy's rule, not an outage: warning.
            severity: if matches!(e.status, 403 | 407) {
                Severity::Warning
            } else {
                Severity::Critical
            },
            client: e.client,
            server: e.server,
            flow: None,
            weight: 1,
            first_ts: d.response.ts.min(e.response.ts),
            last_ts: d.response.ts.max(e.response.ts),
            note: format!(
                "{} {}: {} directly from {}, {} through {}",
                e.method, e.target, d.status, d.server, e.status, e.server
            ),
            evidence: ev,
            facts: vec![("direct_server", d.server.to_string().into())],
        });
    }
    out
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let clients = a.clients_phrase();
    super::Words {
        summary: format!(
            "{} reached the service directly with success while {} through the proxy {} failed: the proxy, not the backend, is the problem",
            clients,
            super::plural(n, "request", "requests"),
            s
        ),
        likely_causes: vec![
            format!("the proxy at {} is misconfigured (wrong upstream address or port, TLS or Host settings)", s),
            "a firewall / ACL on the proxy's backend side blocks the proxy but not the clients".into(),
            "the proxy marked the backend down (health checks) although it answers".into(),
        ],
        next_checks: vec![
        format!(
            "the upstream configuration of the proxy at {} (address, port, scheme)",
            ip
        ),
        format!("from the proxy host: `curl -v` the backend the clients reach directly"),
        "the proxy's error log and the firewall on its backend side".into(),
    ],
        wireshark_filter: format!(
        "http.response && ({af}.src=={ip} && tcp.srcport=={port} || http.response.code < 400)"
    ),
    }
}
