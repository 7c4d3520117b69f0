//! `truncated-response`: a response whose body the server's side of the connection ended before
//! it was complete — a declared `Content-Length` not reached, or a chunked body without its
//! terminating chunk, when the server sent FIN or RST.
//!
//! Rule: the HTTP observer reports the response still inside its body when the connection ended
//! (`HttpSummary::truncated`). Then:
//! - the **server** ended the connection (its RST or FIN came first): **critical** — the client
//!   received an incomplete body (a backend killed mid-response, a proxy passing that on by
//!   closing its client connection);
//! - the **client** ended it first (RST or FIN before the body completed): **info** — the client
//!   gave up on the download (a cancelled page, `curl --max-time`), not the server's failure;
//! - neither (the capture ended mid-body): no finding; that is a capture artefact.
//!
//! Evidence: the response's header frame, the last frame that carried body bytes, and the
//! RST/FIN that ended it. Products checked: nginx passing a backend reset on (`captures/`), and
//! the python backend killed with SO_LINGER 0 behind nginx.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::app::AppSummary;
use crate::flow::{Direction, FlowSummary, FrameRef};

/// How the connection ended: who first sent RST or FIN, and the frame.
fn first_close(f: &FlowSummary) -> Option<(Direction, FrameRef, bool)> {
    let mut c: Vec<(Direction, FrameRef, bool)> = Vec::new();
    if let Some(r) = f.rst {
        c.push((r.from, r.frame, true));
    }
    for d in [Direction::Orig, Direction::Resp] {
        if let Some(fr) = f.stats(d).first_fin {
            c.push((d, fr, false));
        }
    }
    c.into_iter().min_by_key(|x| (x.1.ts, x.1.number))
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, ch) in s.chars().enumerate() {
        if i > 0 && (s.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(ch);
    }
    out
}

/// "606,312 of 4,000,000 body bytes" or "606,312 bytes of a chunked body".
pub fn progress(received: u64, declared: Option<u64>) -> String {
    match declared {
        Some(d) => format!("{} of {} body bytes", thousands(received), thousands(d)),
        None => format!(
            "{} bytes of a chunked body (no terminating chunk)",
            thousands(received)
        ),
    }
}

pub fn check(f: &FlowSummary, app: &AppSummary) -> Option<Finding> {
    let t = app.http.as_ref()?.truncated.as_ref()?;
    let (who, frame, rst) = first_close(f)?;
    let (sender, peer) = match who {
        Direction::Orig => (f.orig, f.resp),
        Direction::Resp => (f.resp, f.orig),
    };
    let how = if rst { "RST" } else { "FIN" };
    let cut = progress(t.received, t.declared);
    let (severity, note) = match who {
        Direction::Resp => (
            Severity::Critical,
            format!(
                "{} response cut at {}: {} from the server {}",
                t.status, cut, how, f.resp
            ),
        ),
        Direction::Orig => (
            Severity::Info,
            format!(
                "{} response abandoned by the client at {} ({} from {}): the client gave up, not the server",
                t.status, cut, how, f.orig
            ),
        ),
    };
    let mut ev = vec![Evidence {
        frame: t.response,
        kind: EvidenceKind::Data,
        description: format!(
            "{} response headers from {}{}",
            t.status,
            f.resp,
            t.declared
                .map(|d| format!(" (Content-Length: {})", d))
                .unwrap_or_else(|| " (chunked)".into())
        ),
    }];
    if t.last_data != t.response {
        ev.push(Evidence {
            frame: t.last_data,
            kind: EvidenceKind::Data,
            description: format!("last body bytes from {} ({})", f.resp, cut),
        });
    }
    ev.push(Evidence {
        frame,
        kind: if rst {
            EvidenceKind::Rst
        } else {
            EvidenceKind::Fin
        },
        description: format!("{} {} → {} before the body was complete", how, sender, peer),
    });
    ev.sort_by_key(|e| (e.frame.file, e.frame.number));
    let mut fd = Finding::for_flow(SignatureId::TruncatedResponse, severity, f, note, ev);
    fd.first_ts = t.request.map(|r| r.ts).unwrap_or(t.response.ts);
    fd.last_ts = frame.ts;
    fd.facts.push(("status", t.status.to_string()));
    fd.facts.push(("received", t.received.to_string()));
    if let Some(d) = t.declared {
        fd.facts.push(("declared", d.to_string()));
    }
    fd.facts.push((
        "ended_by",
        if who == Direction::Resp {
            "server"
        } else {
            "client"
        }
        .into(),
    ));
    Some(fd)
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(v: &mut crate::verdict::Verdict) {
    let s = v.server;
    let (ip, port) = (s.ip(), s.port());
    let af = if s.is_ipv4() { "ip" } else { "ipv6" };
    let n = v.flow_count;
    let cut = v
        .facts
        .iter()
        .find(|f| f.0 == "received")
        .and_then(|r| r.1.parse::<u64>().ok())
        .map(|r| {
            progress(
                r,
                v.facts
                    .iter()
                    .find(|f| f.0 == "declared")
                    .and_then(|d| d.1.parse().ok()),
            )
        })
        .unwrap_or_default();
    let by_server = v.severity > super::Severity::Info;
    v.summary = if by_server {
        format!(
            "{} {} from {} ended before the body was complete (first: {}): the client received a truncated response",
            n,
            if n == 1 { "response" } else { "responses" },
            s,
            cut
        )
    } else {
        format!(
            "{} {} from {} abandoned by the client before the body was complete (first: {})",
            n,
            if n == 1 { "response" } else { "responses" },
            s,
            cut
        )
    };
    v.likely_causes = if by_server {
        vec![
            format!("the process behind {} died or was killed mid-response (OOM killer, crash, deploy, restart)", s),
            "a proxy passing on an upstream that reset mid-body (nginx: \"upstream prematurely closed connection while reading upstream\")".into(),
            "a timeout on the sending side (send timeout, idle timeout of a middlebox) cutting a slow transfer".into(),
        ]
    } else {
        vec!["the client cancelled the transfer (a closed page, a client-side timeout such as `curl --max-time`)".into()]
    };
    v.next_checks = vec![
        format!("on {}: the service's log and `journalctl -k | grep -i -e oom -e killed` around {}", ip, v.first_ts),
        "the proxy's error log (nginx: `upstream prematurely closed`; haproxy: termination state `SD`/`SH`)".into(),
        format!("`curl -o /dev/null -w '%{{size_download}}' http://{}:{}/…` directly against the server", ip, port),
    ];
    v.wireshark_filter = format!(
        "{af}.addr=={ip} && tcp.port=={port} && (http.response || tcp.flags.reset==1 || tcp.flags.fin==1)"
    );
}
