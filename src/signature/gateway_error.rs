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
