//! `proxy-denied`: a proxy refusing a request by policy — 407 Proxy Authentication Required, or
//! a 403 that only a proxy gives (an answer to `CONNECT` or to an absolute-form target, or one
//! carrying squid's `X-Squid-Error`).
//!
//! Rule: every such response (`HttpSummary::denied`) is a **warning** on the client's leg to the
//! proxy: the request never reached the service, and the fix is in the proxy's ACL or in the
//! client's proxy credentials (`go mod download` behind a corporate proxy fails exactly so).
//! The reason names the policy: the `X-Squid-Error` value, or the `Proxy-Authenticate` scheme.
//! Products checked: squid (403 `ERR_ACCESS_DENIED`, 407 Basic), tinyproxy (403).

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::FlowSummary;

pub fn check(f: &FlowSummary, app: &AppSummary) -> Vec<Finding> {
    let Some(h) = &app.http else {
        return Vec::new();
    };
    h.denied
        .iter()
        .map(|d| {
            let mut ev = Vec::new();
            let what = d.request.as_ref().map(|q| {
                ev.push(Evidence {
                    frame: q.frame,
                    kind: EvidenceKind::Data,
                    description: format!("{} {} from {}", q.method, q.target, f.orig),
                });
                format!("{} {}", q.method, q.target)
            });
            ev.push(Evidence {
                frame: d.response,
                kind: EvidenceKind::Data,
                description: format!(
                    "{} from the proxy {} ({}{})",
                    d.status,
                    f.resp,
                    d.reason,
                    d.server
                        .as_ref()
                        .map(|s| format!("; Server: {}", s))
                        .unwrap_or_default()
                ),
            });
            let note = format!(
                "{} for {} ({})",
                d.status,
                what.as_deref().unwrap_or("a request not captured"),
                d.reason
            );
            let mut fd =
                Finding::for_flow(SignatureId::ProxyDenied, Severity::Warning, f, note, ev);
            fd.first_ts = d
                .request
                .as_ref()
                .map(|q| q.frame.ts)
                .unwrap_or(d.response.ts);
            fd.last_ts = d.response.ts;
            fd.facts.push(("status", d.status.into()));
            fd.facts.push(("reason", d.reason.as_str().into()));
            if let Some(s) = &d.server {
                fd.facts.push(("server_header", s.as_str().into()));
            }
            fd
        })
        .collect()
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let mut w = super::Words::default();
    let s = a.server;
    let (ip, port) = (s.ip(), s.port());
    let af = if s.is_ipv4() { "ip" } else { "ipv6" };
    let n = a.flow_count;
    let fact = |k: &str| a.text(k);
    let status = fact("status").unwrap_or_default();
    let reason = fact("reason").unwrap_or_default();
    let product = fact("server_header")
        .unwrap_or_default()
        .to_ascii_lowercase();
    w.summary = format!(
        "the proxy {} refused {} by policy: {} ({})",
        s,
        if n == 1 {
            "1 request".to_string()
        } else {
            format!("{} requests", n)
        },
        status,
        reason
    );
    w.likely_causes = if status == "407" {
        vec![
            "the proxy requires authentication and the client sent no or wrong credentials (`HTTPS_PROXY=http://user:pass@proxy:port` for curl and the Go command)".into(),
        ]
    } else {
        vec![
            "the proxy's access rules deny this client, destination or port (squid `http_access`, tinyproxy `Allow`/`ConnectPort`, Apache `<Proxy>` blocks)".into(),
            "CONNECT to a port the proxy does not allow (squid allows 443 by default: `SSL_ports`)".into(),
        ]
    };
    let logs = if product.contains("squid") || reason.contains("X-Squid") {
        "squid: `access.log` (TCP_DENIED) and the `http_access` / `acl` lines of squid.conf"
    } else if product.contains("tinyproxy") {
        "tinyproxy: its log and the `Allow`, `ConnectPort` and `BasicAuth` lines of tinyproxy.conf"
    } else if product.contains("apache") {
        "Apache: the error log and the `<Proxy>` / `ProxyRequests` access rules"
    } else {
        "the proxy's access log and its access-control rules"
    };
    w.next_checks = vec![
        format!("{} around {}", logs, a.first_ts),
        format!(
            "from the client: `curl -v -x http://{}:{} https://…` to see the refusal and the `Proxy-Authenticate` header",
            ip, port
        ),
    ];
    w.wireshark_filter =
        format!("{af}.src=={ip} && tcp.srcport=={port} && (http.response.code == 403 || http.response.code == 407)");
    w
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built summaries: the client 10.0.0.1:51000 talks to the proxy
    //! 10.0.0.9:3128; frame n is at n ms.

    use super::*;
    use crate::app::http::{Denial, HttpSummary, Request};
    use crate::flow::testkit::{established, fr};
    use crate::flow::ConnState;

    fn flow() -> FlowSummary {
        let mut f = established(11, "10.0.0.1:51000", "10.0.0.9:3128", 1, 20);
        f.conn_state = ConnState::SF;
        f.history = "ShADadFf".into();
        f
    }

    fn denial(req: Option<(u64, &str, &str)>, resp: u64, status: u16, reason: &str) -> Denial {
        Denial {
            request: req.map(|(n, m, t)| Request {
                frame: fr(n),
                method: m.into(),
                target: t.into(),
                host: None,
                complete_at: None,
                forwarded_for: None,
            }),
            response: fr(resp),
            status,
            server: Some("squid/6.6".into()),
            reason: reason.into(),
        }
    }

    fn app(denied: Vec<Denial>) -> AppSummary {
        AppSummary {
            http: Some(HttpSummary {
                requests: denied.len() as u32,
                responses: denied.len() as u32,
                denied,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fact(fd: &Finding, k: &str) -> Option<String> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string())
    }

    #[test]
    fn one_warning_per_denial_with_status_and_reason() {
        let a = app(vec![
            denial(
                Some((4, "CONNECT", "example.com:8443")),
                5,
                403,
                "ERR_ACCESS_DENIED",
            ),
            denial(Some((8, "GET", "http://example.com/")), 9, 407, "Basic"),
        ]);
        let fds = check(&flow(), &a);
        assert_eq!(fds.len(), 2);
        for fd in &fds {
            assert_eq!(fd.signature, SignatureId::ProxyDenied);
            assert_eq!(fd.severity, Severity::Warning);
            assert_eq!(fd.flow, Some(11));
            assert_eq!(fact(fd, "server_header").as_deref(), Some("squid/6.6"));
        }
        assert_eq!(fact(&fds[0], "status").as_deref(), Some("403"));
        assert_eq!(
            fact(&fds[0], "reason").as_deref(),
            Some("ERR_ACCESS_DENIED")
        );
        assert_eq!(fact(&fds[1], "status").as_deref(), Some("407"));
        assert_eq!(fact(&fds[1], "reason").as_deref(), Some("Basic"));
        assert_eq!(
            fds[0].note,
            "403 for CONNECT example.com:8443 (ERR_ACCESS_DENIED)"
        );
        let frames: Vec<u64> = fds[1].evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![8, 9]);
        assert_eq!((fds[1].first_ts, fds[1].last_ts), (fr(8).ts, fr(9).ts));
    }

    #[test]
    fn denial_without_its_request_says_so() {
        let fds = check(
            &flow(),
            &app(vec![denial(None, 5, 403, "ERR_ACCESS_DENIED")]),
        );
        assert_eq!(fds.len(), 1);
        assert!(
            fds[0].note.contains("a request not captured"),
            "{}",
            fds[0].note
        );
        assert_eq!(fds[0].evidence.len(), 1);
        assert_eq!(fds[0].first_ts, fr(5).ts);
    }

    #[test]
    fn no_http_or_no_denial_is_no_finding() {
        assert!(check(&flow(), &AppSummary::default()).is_empty());
        assert!(check(&flow(), &app(Vec::new())).is_empty());
    }
    fn words_with(
        facts: &[(&'static str, crate::signature::Fact)],
        n: u64,
    ) -> crate::signature::Words {
        words(&crate::signature::Aggregate {
            facts,
            ..crate::signature::test_aggregate(SignatureId::ProxyDenied, "10.0.0.9:3128", n, n)
        })
    }

    #[test]
    fn words_tell_authentication_from_access_rules() {
        use crate::signature::Fact;
        let w = words_with(
            &[
                ("status", Fact::from(407u16)),
                ("reason", Fact::from("Proxy Authentication Required")),
            ],
            1,
        );
        assert_eq!(
            w.summary,
            "the proxy 10.0.0.9:3128 refused 1 request by policy: 407 (Proxy Authentication Required)"
        );
        assert_eq!(w.likely_causes.len(), 1);
        assert!(w.likely_causes[0].contains("requires authentication"));
        assert!(w.next_checks[0].starts_with("the proxy's access log"));
        assert!(w.next_checks[1].contains("-x http://10.0.0.9:3128 "));
        assert_eq!(
            w.wireshark_filter,
            "ip.src==10.0.0.9 && tcp.srcport==3128 && (http.response.code == 403 || http.response.code == 407)"
        );
        let w = words_with(
            &[
                ("status", Fact::from(403u16)),
                ("reason", Fact::from("Forbidden")),
            ],
            3,
        );
        assert!(w
            .summary
            .contains(" refused 3 requests by policy: 403 (Forbidden)"));
        assert_eq!(w.likely_causes.len(), 2);
    }

    #[test]
    fn words_point_at_each_proxys_log() {
        use crate::signature::Fact;
        for (server, reason, log) in [
            ("squid/6.1", "Forbidden", "squid: `access.log`"),
            (
                "-",
                "Forbidden (X-Squid-Error: ERR_ACCESS_DENIED 0)",
                "squid: `access.log`",
            ),
            ("tinyproxy/1.11", "Forbidden", "tinyproxy: its log"),
            ("Apache/2.4", "Forbidden", "Apache: the error log"),
            ("other", "Forbidden", "the proxy's access log"),
        ] {
            let w = words_with(
                &[
                    ("status", Fact::from(403u16)),
                    ("reason", Fact::from(reason)),
                    ("server_header", Fact::from(server)),
                ],
                1,
            );
            assert!(
                w.next_checks[0].starts_with(log),
                "{}: {}",
                server,
                w.next_checks[0]
            );
        }
    }
}
