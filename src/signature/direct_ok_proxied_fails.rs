//! `direct-ok-proxied-fails`: a client got a gateway error (or a policy refusal) from a proxy for a
//! request that the same client had answered successfully by another endpoint that is not a
//! proxy front: the service works, the proxy in front of it does not.
//!
//! Inputs are the client-leg records `analyze` keeps (`FrontFailure`, `DirectOk`, capped) and
//! the inferred topology (which endpoints are proxy fronts). Severity: critical for a gateway
//! error, warning for a policy refusal (403/407: the proxy's rule, not an outage).

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::text::ShortText;
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
    pub method: ShortText,
    pub target: ShortText,
    pub response: FrameRef,
}

/// A successful exchange, for direct-vs-proxied comparisons.
#[derive(Clone, Debug)]
pub struct DirectOk {
    pub client: IpAddr,
    pub server: SocketAddr,
    pub method: ShortText,
    pub target: ShortText,
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

#[cfg(test)]
mod tests {
    //! The rule on hand-built records: the client 10.0.0.1 gets a 502 from the proxy front
    //! 10.0.0.2:80 (frame 30) for a request that the backend 10.0.0.3:8080 answered 200 directly
    //! (frame 10); frame n is at n ms after T0.

    use super::*;
    use crate::flow::testkit::fr;
    use crate::signature::{test_aggregate, Fact};
    use crate::topology::{Confidence, Proxy};

    fn failure(status: u16, target: &str) -> FrontFailure {
        FrontFailure {
            client: "10.0.0.1".parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            status,
            method: "GET".into(),
            target: target.into(),
            response: fr(30),
        }
    }

    fn ok(client: &str, server: &str, method: &str, target: &str) -> DirectOk {
        DirectOk {
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            method: method.into(),
            target: target.into(),
            status: 200,
            response: fr(10),
        }
    }

    /// A topology whose only proxy front is `front`.
    fn topo(front: &str) -> Topology {
        let mut t = Topology::default();
        t.proxies.push(Proxy {
            front: vec![front.parse().unwrap()],
            back_addresses: vec!["10.0.0.2".parse().unwrap()],
            backends: vec!["10.0.0.3:8080".parse().unwrap()],
            confidence: Confidence::High,
            evidence: Vec::new(),
        });
        t
    }

    #[test]
    fn a_gateway_error_for_a_request_answered_directly_is_critical() {
        let out = check(
            &[failure(502, "http://a.example/x?y=1")],
            &[ok("10.0.0.1", "10.0.0.3:8080", "GET", "/x?y=1")],
            &topo("10.0.0.2:80"),
        );
        assert_eq!(out.len(), 1);
        let fd = &out[0];
        assert_eq!(fd.signature, SignatureId::DirectOkProxiedFails);
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(fd.server, "10.0.0.2:80".parse().unwrap());
        assert_eq!(fd.flow, None);
        assert_eq!(fd.weight, 1);
        assert_eq!((fd.first_ts, fd.last_ts), (fr(10).ts, fr(30).ts));
        assert_eq!(
            fd.note,
            "GET http://a.example/x?y=1: 200 directly from 10.0.0.3:8080, 502 through 10.0.0.2:80"
        );
        let frames: Vec<_> = fd.evidence.iter().map(|e| e.frame).collect();
        assert_eq!(frames, vec![fr(10), fr(30)]);
        assert_eq!(
            fd.evidence[0].description,
            "GET /x?y=1 answered 200 directly by 10.0.0.3:8080"
        );
        assert_eq!(
            fd.evidence[1].description,
            "the same GET http://a.example/x?y=1 through 10.0.0.2:80 answered 502"
        );
        assert_eq!(
            fd.facts,
            vec![("direct_server", Fact::from("10.0.0.3:8080"))]
        );
    }

    #[test]
    fn evidence_is_in_frame_order_whichever_came_first() {
        let mut d = ok("10.0.0.1", "10.0.0.3:8080", "GET", "/x");
        d.response = fr(40);
        let out = check(&[failure(504, "/x")], &[d], &topo("10.0.0.2:80"));
        let frames: Vec<_> = out[0].evidence.iter().map(|e| e.frame).collect();
        assert_eq!(frames, vec![fr(30), fr(40)]);
        assert_eq!((out[0].first_ts, out[0].last_ts), (fr(30).ts, fr(40).ts));
    }

    #[test]
    fn a_policy_refusal_is_a_warning() {
        for status in [403, 407] {
            let out = check(
                &[failure(status, "/x")],
                &[ok("10.0.0.1", "10.0.0.3:8080", "GET", "/x")],
                &topo("10.0.0.2:80"),
            );
            assert_eq!(out[0].severity, Severity::Warning, "{}", status);
        }
    }

    #[test]
    fn only_the_same_client_method_and_target_elsewhere_than_a_front_count() {
        let t = topo("10.0.0.2:80");
        let f = [failure(502, "/x")];
        for (name, d) in [
            (
                "another client",
                ok("10.0.0.9", "10.0.0.3:8080", "GET", "/x"),
            ),
            (
                "the same endpoint",
                ok("10.0.0.1", "10.0.0.2:80", "GET", "/x"),
            ),
            (
                "another method",
                ok("10.0.0.1", "10.0.0.3:8080", "POST", "/x"),
            ),
            (
                "another target",
                ok("10.0.0.1", "10.0.0.3:8080", "GET", "/y"),
            ),
        ] {
            assert!(check(&f, &[d], &t).is_empty(), "{}", name);
        }
        // The success came through another proxy front: not "direct".
        let mut t2 = topo("10.0.0.2:80");
        t2.proxies[0].front.push("10.0.0.3:8080".parse().unwrap());
        assert!(check(&f, &[ok("10.0.0.1", "10.0.0.3:8080", "GET", "/x")], &t2).is_empty());
    }

    #[test]
    fn words_blame_the_proxy() {
        let w = words(&test_aggregate(
            SignatureId::DirectOkProxiedFails,
            "10.0.0.2:80",
            2,
            2,
        ));
        assert_eq!(
            w.summary,
            "10.0.0.1 reached the service directly with success while 2 requests through the proxy 10.0.0.2:80 failed: the proxy, not the backend, is the problem"
        );
        assert!(w.likely_causes[0].starts_with("the proxy at 10.0.0.2:80 is misconfigured"));
        assert_eq!(
            w.next_checks[0],
            "the upstream configuration of the proxy at 10.0.0.2 (address, port, scheme)"
        );
        assert_eq!(
            w.wireshark_filter,
            "http.response && (ip.src==10.0.0.2 && tcp.srcport==80 || http.response.code < 400)"
        );
        let w = words(&test_aggregate(
            SignatureId::DirectOkProxiedFails,
            "[fd00::2]:80",
            1,
            1,
        ));
        assert!(w
            .summary
            .contains(" while 1 request through the proxy [fd00::2]:80 failed"));
        assert!(w
            .wireshark_filter
            .contains("ipv6.src==fd00::2 && tcp.srcport==80"));
    }
}
