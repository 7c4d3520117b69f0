//! `gateway-error`: HTTP 502, 503 and 504 responses.
//!
//! Rule: every response with one of these statuses is a finding, grouped by the responding
//! endpoint; each carries the status, the `Server` header and the start of the body (e.g. nginx's
//! "502 Bad Gateway" page), the request it answered (method, Host, target) and the time from the
//! request to the error. 502 = the proxy got a refusal, reset or garbage from its upstream; 503 =
//! no upstream available (haproxy) or overload; 504 = the upstream did not answer in time.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::FlowSummary;
use crate::time::human_duration;

/// Statuses this signature reports.
pub const GATEWAY_STATUSES: [u16; 3] = [502, 503, 504];

pub fn check(f: &FlowSummary, app: &AppSummary) -> Vec<Finding> {
    let Some(h) = &app.http else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for x in h
        .errors
        .iter()
        .filter(|x| GATEWAY_STATUSES.contains(&x.response.status))
    {
        let r = &x.response;
        let mut ev = Vec::new();
        let req = x.request.as_ref().map(|q| {
            ev.push(Evidence {
                frame: q.frame,
                kind: EvidenceKind::Data,
                description: format!(
                    "{} {} (Host {}) from {}",
                    q.method,
                    q.target,
                    q.host.as_deref().unwrap_or("-"),
                    f.orig
                ),
            });
            (
                format!(
                    "{} {}{}",
                    q.method,
                    q.host.as_deref().unwrap_or(""),
                    q.target
                ),
                r.frame.ts.nanos_since(q.complete_at.unwrap_or(q.frame).ts),
            )
        });
        ev.push(Evidence {
            frame: r.frame,
            kind: EvidenceKind::Data,
            description: format!(
                "{} {} from {}{}",
                r.status,
                r.reason,
                f.resp,
                r.server
                    .as_ref()
                    .map(|s| format!(" (Server: {})", s))
                    .unwrap_or_default()
            ),
        });
        let body: String = r
            .body_snippet
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .chars()
            .take(120)
            .collect();
        let note = format!(
            "{} {}{}{}",
            r.status,
            r.reason,
            req.as_ref()
                .map(|(q, _)| format!(" for {}", q))
                .unwrap_or_default(),
            req.as_ref()
                .map(|(_, w)| format!(" after {}", human_duration(*w)))
                .unwrap_or_default(),
        );
        let mut fd = Finding::for_flow(SignatureId::GatewayError, Severity::Critical, f, note, ev);
        fd.first_ts = x.request.as_ref().map(|q| q.frame.ts).unwrap_or(r.frame.ts);
        fd.last_ts = r.frame.ts;
        fd.facts.push(("status", r.status.into()));
        if let Some(s) = &r.server {
            fd.facts.push(("server_header", s.as_str().into()));
        }
        if !body.is_empty() {
            fd.facts.push(("body", body.into()));
        }
        out.push(fd);
    }
    out
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    let mut w = super::Words::default();
    let statuses = a.text("status").unwrap_or_default();
    let server_hdr = a
        .text("server_header")
        .map(|s| format!(" (Server: {})", s))
        .unwrap_or_default();
    let body = a
        .text("body")
        .map(|b| format!("; body: \"{}\"", b.chars().take(80).collect::<String>()))
        .unwrap_or_default();
    w.summary = format!(
        "{} answered {} with a gateway error: {}{}{}",
        s,
        super::plural(n, "request", "requests"),
        statuses,
        server_hdr,
        body
    );
    w.likely_causes = vec![
        "502: the proxy's upstream refused, reset or sent garbage".into(),
        "503: no healthy upstream (all servers down or marked down), or overload".into(),
        "504: the upstream did not accept the connection or answer in time".into(),
    ];
    let product = a
        .text("server_header")
        .unwrap_or_default()
        .to_ascii_lowercase();
    let logs = if product.contains("nginx") {
        "nginx: error.log `upstream` lines — `connect() failed (111: Connection refused)`, `upstream timed out (110)`"
    } else if product.contains("haproxy") {
        "haproxy: the log line's termination state — `SC--` connection refused, `sH--` server timeout, `SD--` server aborted"
    } else if product.contains("squid") {
        "squid: cache.log and access.log (`TCP_MISS/503`, `ERR_CONNECT_FAIL`)"
    } else if product.contains("apache") {
        "Apache: error_log `proxy:error` lines (`AH00957`, `AH01114`)"
    } else if product.contains("varnish") {
        "Varnish: `varnishlog -g request -q 'RespStatus >= 500'` (`FetchError`)"
    } else if product.contains("caddy") {
        "Caddy: its log's `dial tcp … connect: connection refused` / `context deadline exceeded`"
    } else {
        "the proxy's error log"
    };
    w.next_checks = vec![
            format!("on the proxy at {} around {}: {}", ip, a.first_ts, logs),
            "the proxy's upstream health and the backend's listener (see other verdicts on the backend leg)".into(),
        ];
    // Never ask for a leg that is in the file.
    if !a.backend_leg_captured {
        w.next_checks.push(
            "capture the proxy→backend leg too (`tcpdump -i any` on the proxy) to see the cause"
                .into(),
        );
    }
    w.wireshark_filter = format!("{af}.src=={ip} && tcp.srcport=={port} && http.response.code >= 502 && http.response.code <= 504");
    w
}

#[cfg(test)]
mod tests {
    //! The rule on hand-built exchanges: the client 10.0.0.1:51000 asks the proxy
    //! 10.0.0.2:80; request frame 4 (complete at frame 6), response frame 18; frame n is at n ms
    //! after T0.

    use super::*;
    use crate::app::http::{Exchange, HttpSummary, Request, Response};
    use crate::flow::testkit::{established, fr};
    use crate::signature::{test_aggregate, Aggregate, Fact};

    fn flow() -> FlowSummary {
        established(6, "10.0.0.1:51000", "10.0.0.2:80", 1, 20)
    }

    fn request(host: Option<&str>, complete: Option<u64>) -> Request {
        Request {
            frame: fr(4),
            method: "GET".into(),
            target: "/api".into(),
            host: host.map(Into::into),
            complete_at: complete.map(fr),
            forwarded_for: None,
        }
    }

    fn response(status: u16, server: Option<&str>, body: &str) -> Response {
        Response {
            frame: fr(18),
            status,
            reason: "Bad Gateway".into(),
            server: server.map(Into::into),
            via: None,
            body_snippet: body.into(),
            body_raw: Vec::new(),
        }
    }

    fn app(errors: Vec<Exchange>) -> AppSummary {
        AppSummary {
            http: Some(HttpSummary {
                errors,
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn fact(fd: &Finding, k: &str) -> Option<Fact> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.clone())
    }

    #[test]
    fn only_502_503_and_504_are_gateway_errors() {
        let f = flow();
        assert!(check(&f, &AppSummary::default()).is_empty());
        let statuses = [500, 501, 502, 503, 504, 505];
        let errors = statuses
            .iter()
            .map(|s| Exchange {
                request: None,
                response: response(*s, None, ""),
            })
            .collect();
        let out = check(&f, &app(errors));
        let got: Vec<Option<Fact>> = out.iter().map(|fd| fact(fd, "status")).collect();
        assert_eq!(
            got,
            vec![
                Some(Fact::Count(502)),
                Some(Fact::Count(503)),
                Some(Fact::Count(504))
            ]
        );
    }

    #[test]
    fn a_502_with_its_request_is_critical_and_timed_from_the_complete_request() {
        let x = Exchange {
            request: Some(request(Some("a.example"), Some(6))),
            response: response(
                502,
                Some("nginx/1.24"),
                "<html>\n  <h1>502   Bad Gateway</h1>",
            ),
        };
        let out = check(&flow(), &app(vec![x]));
        assert_eq!(out.len(), 1);
        let fd = &out[0];
        assert_eq!(fd.signature, SignatureId::GatewayError);
        assert_eq!(fd.severity, Severity::Critical);
        assert_eq!(
            fd.note,
            "502 Bad Gateway for GET a.example/api after 12.0ms"
        );
        assert_eq!(fd.first_ts, fr(4).ts);
        assert_eq!(fd.last_ts, fr(18).ts);
        assert_eq!(fd.evidence.len(), 2);
        assert_eq!(fd.evidence[0].frame, fr(4));
        assert_eq!(
            fd.evidence[0].description,
            "GET /api (Host a.example) from 10.0.0.1:51000"
        );
        assert_eq!(fd.evidence[1].frame, fr(18));
        assert_eq!(
            fd.evidence[1].description,
            "502 Bad Gateway from 10.0.0.2:80 (Server: nginx/1.24)"
        );
        assert_eq!(fact(fd, "server_header"), Some(Fact::from("nginx/1.24")));
        // The body's whitespace is collapsed.
        assert_eq!(
            fact(fd, "body"),
            Some(Fact::from("<html> <h1>502 Bad Gateway</h1>"))
        );
    }

    #[test]
    fn without_request_end_host_server_or_body() {
        // The wait counts from the request's first frame when its end is unknown.
        let x = Exchange {
            request: Some(request(None, None)),
            response: response(504, None, "  \n "),
        };
        let fd = &check(&flow(), &app(vec![x]))[0];
        assert_eq!(fd.note, "504 Bad Gateway for GET /api after 14.0ms");
        assert_eq!(
            fd.evidence[0].description,
            "GET /api (Host -) from 10.0.0.1:51000"
        );
        assert_eq!(
            fd.evidence[1].description,
            "504 Bad Gateway from 10.0.0.2:80"
        );
        assert_eq!(fact(fd, "server_header"), None);
        assert_eq!(fact(fd, "body"), None);
        // No request captured: the response alone, timed at the response.
        let x = Exchange {
            request: None,
            response: response(503, None, "x"),
        };
        let fd = &check(&flow(), &app(vec![x]))[0];
        assert_eq!(fd.note, "503 Bad Gateway");
        assert_eq!(fd.first_ts, fr(18).ts);
        assert_eq!(fd.evidence.len(), 1);
    }

    #[test]
    fn the_body_fact_is_capped_at_120_characters() {
        let x = Exchange {
            request: None,
            response: response(502, None, &"é".repeat(200)),
        };
        let fd = &check(&flow(), &app(vec![x]))[0];
        assert_eq!(fact(fd, "body"), Some(Fact::Text("é".repeat(120))));
    }

    fn words_with(server: Option<&str>, captured: bool) -> crate::signature::Words {
        let mut facts = vec![("status", Fact::from("502×2, 504"))];
        if let Some(s) = server {
            facts.push(("server_header", Fact::from(s)));
        }
        facts.push(("body", Fact::Text("b".repeat(100))));
        words(&Aggregate {
            facts: &facts,
            backend_leg_captured: captured,
            ..test_aggregate(SignatureId::GatewayError, "10.0.0.2:80", 3, 9)
        })
    }

    #[test]
    fn words_tally_statuses_and_cut_the_body() {
        let w = words_with(Some("nginx/1.24"), false);
        assert_eq!(
            w.summary,
            format!(
                "10.0.0.2:80 answered 3 requests with a gateway error: 502×2, 504 (Server: nginx/1.24); body: \"{}\"",
                "b".repeat(80)
            )
        );
        assert_eq!(w.next_checks.len(), 3);
        assert!(w.next_checks[2].starts_with("capture the proxy→backend leg"));
        assert!(w.next_checks[0].starts_with("on the proxy at 10.0.0.2 around "));
        assert_eq!(w.wireshark_filter, "ip.src==10.0.0.2 && tcp.srcport==80 && http.response.code >= 502 && http.response.code <= 504");
        // The backend leg is in the capture: never ask for it.
        assert_eq!(words_with(None, true).next_checks.len(), 2);
        let w = words(&test_aggregate(
            SignatureId::GatewayError,
            "[fd00::2]:80",
            1,
            1,
        ));
        assert_eq!(
            w.summary,
            "[fd00::2]:80 answered 1 request with a gateway error: "
        );
        assert!(w
            .wireshark_filter
            .starts_with("ipv6.src==fd00::2 && tcp.srcport==80 "));
    }

    #[test]
    fn words_point_at_each_products_log() {
        for (server, log) in [
            ("nginx/1.24", "nginx: error.log"),
            ("HAProxy", "haproxy: the log line"),
            ("squid/6.1", "squid: cache.log"),
            ("Apache/2.4", "Apache: error_log"),
            ("Varnish", "Varnish: `varnishlog"),
            ("Caddy", "Caddy: its log"),
            ("envoy", "the proxy's error log"),
        ] {
            let w = words_with(Some(server), false);
            assert!(
                w.next_checks[0].contains(log),
                "{}: {}",
                server,
                w.next_checks[0]
            );
        }
        assert!(words_with(None, false).next_checks[0].ends_with(": the proxy's error log"));
    }
}
