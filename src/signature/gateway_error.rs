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
        fd.facts.push(("status", r.status.to_string()));
        if let Some(s) = &r.server {
            fd.facts.push(("server_header", s.clone()));
        }
        if !body.is_empty() {
            fd.facts.push(("body", body));
        }
        out.push(fd);
    }
    out
}
