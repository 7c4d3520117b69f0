//! `upstream-timeout`: a request fully sent, no response byte, then the requesting side gives up.
//!
//! Rule: the connection ended with a request that was completely sent and got no response byte,
//! and the requester (the originator) then closed or reset the connection before the server did —
//! what a proxy logs as "upstream timed out". The wait (request → give-up) is reported per
//! request. A request still unanswered when the capture ended is `Pending` (a capture warning),
//! unless it had waited longer than `--response-timeout` (default 10 s). Nothing is concluded
//! when the capture holds no packet at all from the server (one direction missing).
//!
//! **Encrypted legs** (an HTTPS upstream, a TLS tunnel): the requests cannot be read, so the rule
//! reads TLS record boundaries and timing instead. The handshake completed, the client sent
//! application data *after* the server's last application data (a request the server never
//! answered: in an idle keep-alive connection the server's response comes last), and then the
//! client closed — or the capture ended more than `--response-timeout` later. A TLS 1.3 server's
//! session tickets can arrive after the request and hide it: a miss, never a false alarm.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary, FrameRef};
use crate::time::{human_duration, Timestamp};

pub enum Outcome {
    Finding(Finding),
    /// Still waiting when the capture ended, for less than the response timeout.
    Pending {
        waited_ns: i64,
    },
    None,
}

pub fn check(
    f: &FlowSummary,
    app: &AppSummary,
    capture_end: Timestamp,
    response_timeout_ns: i64,
) -> Outcome {
    let Some(h) = &app.http else {
        return encrypted(f, app, capture_end, response_timeout_ns);
    };
    let Some(req) = h.unanswered.first() else {
        return Outcome::None;
    };
    let Some(done) = req.complete_at else {
        return Outcome::None;
    };
    // Response bytes came (the response was cut or not parsed), or nothing at all was captured
    // from the server (one-direction capture: the `one-direction-only` warning covers it).
    if h.bytes_after_unanswered > 0 || f.resp_stats.pkts == 0 || h.response_gap {
        return Outcome::None;
    }
    let (client_end, server_end) = ends(f, done, None);
    let what = format!(
        "{} {} (Host {})",
        req.method,
        req.target,
        req.host.as_deref().unwrap_or("-")
    );
    let mut ev = vec![Evidence {
        frame: req.frame,
        kind: EvidenceKind::Data,
        description: format!("request {} from {}, never answered", what, f.orig),
    }];
    let note = match client_end {
        Some((fr, kind, how)) if server_end.is_none_or(|s| s.ts >= fr.ts) => {
            let waited = fr.ts.nanos_since(done.ts);
            ev.push(Evidence {
                frame: fr,
                kind,
                description: format!(
                    "{} gives up with {} after {} without a response byte",
                    f.orig,
                    how,
                    human_duration(waited)
                ),
            });
            format!(
                "{} waited {} for {} and gave up ({}): no response byte",
                what,
                human_duration(waited),
                f.resp,
                how
            )
        }
        Some(_) => return Outcome::None, // the server closed first: not a timeout on the requester's side
        None if server_end.is_some() => return Outcome::None,
        None => {
            let waited = capture_end.nanos_since(done.ts);
            if waited <= response_timeout_ns {
                return Outcome::Pending { waited_ns: waited };
            }
            format!(
                "{} still unanswered by {} after {} when the capture ended",
                what,
                f.resp,
                human_duration(waited)
            )
        }
    };
    let mut fd = Finding::for_flow(
        SignatureId::UpstreamTimeout,
        Severity::Critical,
        f,
        note,
        ev,
    );
    fd.first_ts = req.frame.ts;
    fd.facts
        .push(("unanswered_requests", h.unanswered.len().into()));
    Outcome::Finding(fd)
}

/// The encrypted-leg form of the rule (see the module comment).
fn encrypted(
    f: &FlowSummary,
    app: &AppSummary,
    capture_end: Timestamp,
    response_timeout_ns: i64,
) -> Outcome {
    let Some(t) = &app.tls else {
        return Outcome::None;
    };
    if t.server_hello.is_none() || t.alerts.iter().any(|a| !a.encrypted) {
        return Outcome::None;
    }
    let Some(req) = t.last_app_data[0] else {
        return Outcome::None;
    };
    if t.last_app_data[1].is_some_and(|s| (s.ts, s.number) > (req.ts, req.number)) {
        return Outcome::None;
    }
    // Anything from the server after the request (its data, FIN or RST) answers or ends it.
    if f.resp_stats.last_data.is_some_and(|d| d.ts > req.ts) {
        return Outcome::None;
    }
    // The client's encrypted alert (close_notify) is its give-up as much as its FIN.
    let alert = t
        .alerts
        .iter()
        .find(|a| a.from == Direction::Orig && a.frame.ts > req.ts)
        .map(|a| {
            (
                a.frame,
                EvidenceKind::Data,
                "an encrypted alert (close_notify)",
            )
        });
    let (client_end, server_end) = ends(f, req, alert);
    let mut ev = vec![Evidence {
        frame: req,
        kind: EvidenceKind::Data,
        description: format!(
            "encrypted application data from {} after the server's last data (a request)",
            f.orig
        ),
    }];
    let note = match client_end {
        Some((fr, kind, how)) if server_end.is_none_or(|s| s.ts >= fr.ts) => {
            let waited = fr.ts.nanos_since(req.ts);
            ev.push(Evidence {
                frame: fr,
                kind,
                description: format!(
                    "{} gives up with {} after {} without a byte from the server",
                    f.orig,
                    how,
                    human_duration(waited)
                ),
            });
            format!(
                "encrypted request to {} waited {} and the client gave up ({}): no response record",
                f.resp,
                human_duration(waited),
                how
            )
        }
        Some(_) => return Outcome::None,
        None if server_end.is_some() => return Outcome::None,
        None => {
            let waited = capture_end.nanos_since(req.ts);
            if waited <= response_timeout_ns {
                return Outcome::Pending { waited_ns: waited };
            }
            format!(
                "encrypted request to {} unanswered after {} when the capture ended",
                f.resp,
                human_duration(waited)
            )
        }
    };
    let mut fd = Finding::for_flow(
        SignatureId::UpstreamTimeout,
        Severity::Critical,
        f,
        note,
        ev,
    );
    fd.first_ts = req.ts;
    fd.facts.push(("encrypted", true.into()));
    Outcome::Finding(fd)
}

/// How the requester gave up and when the server ended: the requester's first FIN, RST or
/// `also` (an encrypted alert) after the request frame `after`, and the server's first FIN or
/// RST.
type GiveUp = (FrameRef, EvidenceKind, &'static str);
fn ends(
    f: &FlowSummary,
    after: FrameRef,
    also: Option<GiveUp>,
) -> (Option<GiveUp>, Option<FrameRef>) {
    let client_end = [
        also,
        f.orig_stats
            .first_fin
            .map(|x| (x, EvidenceKind::Fin, "FIN")),
        f.rst
            .filter(|r| r.from == Direction::Orig)
            .map(|r| (r.frame, EvidenceKind::Rst, "RST")),
    ]
    .into_iter()
    .flatten()
    .filter(|(x, _, _)| (x.ts, x.number) > (after.ts, after.number))
    .min_by_key(|(x, _, _)| x.ts);
    let server_end = [
        f.resp_stats.first_fin,
        f.rst.filter(|r| r.from == Direction::Resp).map(|r| r.frame),
    ]
    .into_iter()
    .flatten()
    .min_by_key(|x| x.ts);
    (client_end, server_end)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let (s, ip, port, af) = a.at();
    let n = a.flow_count;
    super::Words {
        summary: format!(
        "{} to {} got no response byte until the requester gave up",
        super::plural(n, "request", "requests"),
        s
    ),
        likely_causes: vec![
        format!(
            "{} is hung or too slow (blocked workers, a slow dependency, a long GC)",
            s
        ),
        "the proxy's read timeout is shorter than the backend's worst-case response time".into(),
    ],
        next_checks: vec![
        format!(
            "the service's logs and thread dumps on {} around {}",
            ip, a.first_ts
        ),
        "the proxy's timeouts (nginx `proxy_read_timeout`, haproxy `timeout server`)".into(),
        format!(
            "`curl -w '%{{time_starttransfer}}' http://{}/…` directly against the backend",
            s
        ),
    ],
        wireshark_filter: format!("{af}.addr=={ip} && tcp.port=={port} && (http.request || tcp.flags.fin==1 || tcp.flags.reset==1)"),
    }
}
