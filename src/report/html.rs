//! The HTML report (`--format html`, or `-o NAME.html`): one self-contained page for an incident
//! ticket. Owns: layout only. Must not: compute anything new (it draws `Analysis`: verdicts,
//! chains, topology, the per-connection records) or fetch anything.
//!
//! The page is a single file: inline CSS and JS, inline SVG, no font, image or script from
//! anywhere. A `Content-Security-Policy` (`default-src 'none'`, the one style and the one script
//! allowed by their SHA-256) makes the browser refuse any other load or script, so even text that
//! slipped through escaping could not fetch or run anything. Every string that may come from the
//! capture goes through `escape::html`.
//!
//! Sections: the path (client → proxy → backend, broken hops marked), verdict cards (severity,
//! signature, hop, summary, likely causes, next checks, Wireshark filter with a copy button,
//! evidence frames), each causal chain as a sequence diagram, a timeline per hop (connections
//! as bars coloured by outcome, gateway errors and failure frames marked, verdict windows
//! shaded), endpoints and capture warnings.

use super::analyze::{
    endpoint_cells, frame_label, path_views, rel, span, window, PathView, ENDPOINT_ROWS,
};
use super::escape::html as h;
use super::sha256::{base64, sha256};
use crate::analyze::Analysis;
use crate::correlate::{Chain, ConnRecord, PairConfidence};
use crate::signature::{EvidenceKind, Severity};
use crate::time::Timestamp;
use crate::verdict::Hop;
use std::fmt::Write;
use std::path::PathBuf;

/// Connections drawn per hop in a timeline at most (the rest are counted, not drawn).
pub const MAX_TIMELINE_BARS: usize = 2_000;
/// Lanes per timeline at most: connections are packed into lanes (one connection per lane at a
/// time); beyond this many concurrent connections, bars share the last lane.
pub const MAX_TIMELINE_LANES: usize = 40;

const CSS: &str = r#"
:root{--crit:#c62828;--warn:#e08e00;--info:#1565c0;--ok:#2e7d32;--ink:#1d2330;--mute:#5c6475;--line:#d7dbe3;--bg:#f6f7f9}
*{box-sizing:border-box}
body{margin:0;font:14px/1.45 -apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif;color:var(--ink);background:var(--bg)}
main{max-width:1200px;margin:0 auto;padding:20px 24px 48px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 10px;border-bottom:1px solid var(--line);padding-bottom:4px}
h3{font-size:15px;margin:0}
code,pre,.mono{font-family:"SFMono-Regular",Consolas,"DejaVu Sans Mono",monospace;font-size:12.5px}
.meta{color:var(--mute)}.meta code{color:var(--ink)}
.headline{margin:12px 0;padding:10px 14px;border-radius:6px;background:#fff;border-left:6px solid var(--ok)}
.headline.critical{border-color:var(--crit)}.headline.warning{border-color:var(--warn)}.headline.info{border-color:var(--info)}
.badge{display:inline-block;padding:1px 8px;border-radius:10px;color:#fff;font-size:12px;font-weight:600;text-transform:uppercase;letter-spacing:.03em}
.badge.critical{background:var(--crit)}.badge.warning{background:var(--warn)}.badge.info{background:var(--info)}.badge.ok{background:var(--ok)}
.card{background:#fff;border:1px solid var(--line);border-left:6px solid var(--info);border-radius:6px;padding:12px 16px;margin:12px 0}
.card.critical{border-left-color:var(--crit)}.card.warning{border-left-color:var(--warn)}
.card .head{display:flex;gap:10px;align-items:baseline;flex-wrap:wrap}
.card .summary{margin:8px 0;font-size:15px}
.kv{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0}.kv dt{color:var(--mute)}.kv dd{margin:0}
ul{margin:4px 0 8px;padding-left:20px}
.filter{display:flex;gap:8px;align-items:center;margin:8px 0}.filter code{flex:1;background:var(--bg);padding:4px 8px;border-radius:4px;overflow-x:auto;white-space:nowrap}
button.copy{font:inherit;font-size:12px;padding:3px 10px;border:1px solid var(--line);border-radius:4px;background:#fff;cursor:pointer}
button.copy.done{background:var(--ok);color:#fff}
table{border-collapse:collapse;width:100%;background:#fff;margin:6px 0}
th,td{border:1px solid var(--line);padding:3px 8px;text-align:left;vertical-align:top}th{background:var(--bg);font-weight:600}
td.num{text-align:right;white-space:nowrap}
details summary{cursor:pointer;color:var(--mute);margin:6px 0}
svg{display:block;max-width:100%;height:auto;background:#fff;border:1px solid var(--line);border-radius:6px}
svg text{font:12px -apple-system,"Segoe UI",Roboto,Arial,sans-serif;fill:var(--ink)}
svg .small{font-size:11px;fill:var(--mute)}svg .bad{fill:var(--crit);font-weight:600}
svg .box{fill:#fff;stroke:var(--ink);stroke-width:1.2}svg .life{stroke:var(--line);stroke-width:2;stroke-dasharray:4 3}
svg .hop-ok{stroke:var(--ok);stroke-width:3}svg .hop-bad{stroke:var(--crit);stroke-width:3;stroke-dasharray:7 4}
svg .msg{stroke:var(--ink);stroke-width:1.4;fill:none}svg .msg.fail{stroke:var(--crit)}
svg .ah{fill:var(--ink)}svg .ah.fail{fill:var(--crit)}
svg .bar-ok{fill:var(--ok)}svg .bar-critical{fill:var(--crit)}svg .bar-warning{fill:var(--warn)}svg .bar-info{fill:var(--info)}
svg .err{fill:var(--crit);stroke:#fff;stroke-width:.8}svg .evf{stroke:var(--ink);stroke-width:1.5}
svg .fault{fill:var(--crit);opacity:.10}svg .fault-edge{stroke:var(--crit);stroke-width:1;stroke-dasharray:3 3;opacity:.6}
svg .axis{stroke:var(--line)}
.legend{color:var(--mute);font-size:12px;margin:4px 0 12px}.legend span{margin-right:14px}
.sw{display:inline-block;width:10px;height:10px;border-radius:2px;margin-right:4px;vertical-align:-1px}
.sw.ok{background:var(--ok)}.sw.critical{background:var(--crit)}.sw.warning{background:var(--warn)}.sw.info{background:var(--info)}.sw.fault{background:#f6d5d5}
"#;

/// Copy buttons (clipboard API, falling back to a selection + `execCommand`); marks the page
/// as scripted (`data-js="ok"`) so a test can tell the script was allowed to run.
const JS: &str = r#"
document.documentElement.setAttribute('data-js','ok');
document.querySelectorAll('button.copy').forEach(function(b){
  b.addEventListener('click',function(){
    var t=document.getElementById(b.getAttribute('data-target')).textContent;
    var done=function(){b.classList.add('done');b.textContent='copied';setTimeout(function(){b.classList.remove('done');b.textContent='copy';},1500);};
    var fallback=function(){var r=document.createRange();r.selectNodeContents(document.getElementById(b.getAttribute('data-target')));var s=window.getSelection();s.removeAllRanges();s.addRange(r);try{document.execCommand('copy');done();}catch(e){}};
    if(navigator.clipboard&&navigator.clipboard.writeText){navigator.clipboard.writeText(t).then(done,fallback);}else{fallback();}
  });
});
"#;

/// The `Content-Security-Policy` of the page: nothing may load; only this page's own style and
/// script (by hash) apply.
pub fn content_security_policy() -> String {
    format!(
        "default-src 'none'; style-src 'sha256-{}'; script-src 'sha256-{}'; img-src 'none'; font-src 'none'; connect-src 'none'; base-uri 'none'; form-action 'none'",
        base64(&sha256(CSS.as_bytes())),
        base64(&sha256(JS.as_bytes()))
    )
}

fn sev_class(s: Severity) -> &'static str {
    s.name()
}

/// The whole page.
pub fn render(a: &Analysis, command: &str) -> String {
    let files: Vec<PathBuf> = a.capture.files.iter().map(|f| f.path.clone()).collect();
    let mut o = String::with_capacity(64 * 1024);
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    let _ = write!(
        o,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta http-equiv=\"Content-Security-Policy\" content=\"{}\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <meta name=\"generator\" content=\"proxyscope {}\">\n\
         <title>proxyscope — {}</title>\n<style>{}</style>\n</head>\n<body>\n<main>\n",
        content_security_policy(),
        env!("CARGO_PKG_VERSION"),
        h(&names.join(", ")),
        CSS
    );
    header(&mut o, a, command, &names);
    path_section(&mut o, a);
    verdicts_section(&mut o, a, &files);
    chains_section(&mut o, a, &files);
    timeline_section(&mut o, a);
    endpoints_section(&mut o, a);
    let _ = write!(o, "</main>\n<script>{}</script>\n</body>\n</html>\n", JS);
    o
}

fn header(o: &mut String, a: &Analysis, command: &str, names: &[String]) {
    let _ = write!(
        o,
        "<h1>proxyscope report</h1>\n<div class=\"meta\" id=\"capture\"><code>{}</code> · {} · {} packets ({} TCP), {} connections<br>command: <code>{}</code></div>\n",
        h(&names.join(", ")),
        h(&span(a)),
        a.capture.frames_matched,
        a.capture.tcp_segments,
        a.connections,
        h(command)
    );
    let worst = a.verdicts.iter().map(|v| v.severity).max();
    match worst {
        None => {
            let text = match &a.nothing_to_judge {
                Some(why) => format!("<strong>Nothing to judge</strong>: {}.", h(why)),
                None => {
                    "<strong>No outage signature matched</strong>: every connection behaved normally."
                        .to_string()
                }
            };
            let _ = writeln!(o, "<div class=\"headline\" id=\"headline\">{}</div>", text);
        }
        Some(s) => {
            let _ = writeln!(
                o,
                "<div class=\"headline {}\" id=\"headline\"><span class=\"badge {}\">{}</span> <strong>{} verdict{}</strong>. Top: {}</div>",
                sev_class(s),
                sev_class(s),
                s.name(),
                a.verdicts.len(),
                if a.verdicts.len() == 1 { "" } else { "s" },
                h(&a.verdicts[0].summary)
            );
        }
    }
}

/// Client → proxy → backend, one diagram per proxy; without a proxy, clients → the servers of
/// the verdicts.
fn path_section(o: &mut String, a: &Analysis) {
    let mut views = path_views(a);
    if views.is_empty() {
        let mut servers: Vec<String> = Vec::new();
        let mut sigs: Vec<&'static str> = Vec::new();
        for v in &a.verdicts {
            if !servers.contains(&v.server.to_string()) {
                servers.push(v.server.to_string());
            }
            if v.severity > Severity::Info && !sigs.contains(&v.signature.name()) {
                sigs.push(v.signature.name());
            }
        }
        if servers.is_empty() {
            return;
        }
        views.push(PathView {
            front: servers,
            back_addresses: vec![],
            backends: vec![],
            broken_front: sigs,
            broken_back: vec![],
            confidence: "",
            evidence: vec!["no proxy found: client → server".into()],
        });
    }
    o.push_str("<h2>Path</h2>\n");
    for (i, p) in views.iter().enumerate() {
        let direct = p.back_addresses.is_empty() && p.backends.is_empty();
        let boxes: Vec<(String, String)> = if direct {
            vec![
                ("clients".into(), String::new()),
                ("server".into(), p.front.join(", ")),
            ]
        } else {
            vec![
                ("clients".into(), String::new()),
                (
                    "proxy".into(),
                    format!(
                        "{} | from {}",
                        if p.front.is_empty() {
                            "?".to_string()
                        } else {
                            p.front.join(", ")
                        },
                        p.back_addresses.join(", ")
                    ),
                ),
                (
                    "backends".into(),
                    if p.backends.is_empty() {
                        "(none seen)".into()
                    } else {
                        p.backends.join(", ")
                    },
                ),
            ]
        };
        let hops: Vec<&[&'static str]> = if direct {
            vec![&p.broken_front]
        } else {
            vec![&p.broken_front, &p.broken_back]
        };
        let w = 1000.0;
        let bw = if direct { 300.0 } else { 220.0 };
        let n = boxes.len() as f64;
        let gap = (w - 40.0 - n * bw) / (n - 1.0);
        let label_lines = hops.iter().map(|h| h.len()).max().unwrap_or(0).max(2);
        let svg_h = 100 + 13 * label_lines;
        let _ = write!(
            o,
            "<svg class=\"path\" id=\"path-{}\" viewBox=\"0 0 {} {}\" role=\"img\" aria-label=\"path\">",
            i, w, svg_h
        );
        for (k, sigs) in hops.iter().enumerate() {
            let x1 = 20.0 + (k as f64 + 1.0) * bw + k as f64 * gap;
            let x2 = x1 + gap;
            let bad = !sigs.is_empty();
            let _ = write!(
                o,
                "<line class=\"{}\" data-broken=\"{}\" x1=\"{:.1}\" y1=\"50\" x2=\"{:.1}\" y2=\"50\"/><polygon class=\"ah{}\" points=\"{:.1},50 {:.1},44 {:.1},56\"/>",
                if bad { "hop-bad hop" } else { "hop-ok hop" },
                bad,
                x1,
                x2 - 8.0,
                if bad { " fail" } else { "" },
                x2,
                x2 - 10.0,
                x2 - 10.0
            );
            if bad {
                let mx = (x1 + x2) / 2.0;
                let _ = write!(
                    o,
                    "<text class=\"bad\" x=\"{:.1}\" y=\"40\" text-anchor=\"middle\">✗ broken</text>",
                    mx
                );
                // One signature a line under the arrow.
                for (j, sig) in sigs.iter().enumerate() {
                    let _ = write!(
                        o,
                        "<text class=\"bad small\" x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
                        mx,
                        70 + 13 * j,
                        h(sig)
                    );
                }
            }
        }
        for (k, (role, addr)) in boxes.iter().enumerate() {
            let x = 20.0 + k as f64 * (bw + gap);
            let _ = write!(
                o,
                "<rect class=\"box\" x=\"{:.1}\" y=\"20\" width=\"{}\" height=\"60\" rx=\"8\"/><text x=\"{:.1}\" y=\"44\" text-anchor=\"middle\">{}</text><text class=\"small\" x=\"{:.1}\" y=\"64\" text-anchor=\"middle\">{}</text>",
                x,
                bw,
                x + bw / 2.0,
                h(role),
                x + bw / 2.0,
                h(&ellipsize(addr, 40))
            );
        }
        let _ = writeln!(
            o,
            "<text class=\"small\" x=\"20\" y=\"{}\">{}</text></svg>",
            svg_h - 8,
            h(&if p.confidence.is_empty() {
                String::new()
            } else {
                format!("roles: {} confidence", p.confidence)
            })
        );
        if !p.evidence.is_empty() && !p.confidence.is_empty() {
            let _ = writeln!(
                o,
                "<details><summary>why this is a proxy</summary><ul>{}</ul></details>",
                p.evidence
                    .iter()
                    .map(|e| format!("<li>{}</li>", h(e)))
                    .collect::<String>()
            );
        }
    }
}

fn ellipsize(s: &str, n: usize) -> String {
    if s.chars().count() <= n {
        s.to_string()
    } else {
        let mut t: String = s.chars().take(n - 1).collect();
        t.push('…');
        t
    }
}

fn kind_name(k: EvidenceKind) -> &'static str {
    match k {
        EvidenceKind::Syn => "SYN",
        EvidenceKind::Rst => "RST",
        EvidenceKind::Fin => "FIN",
        EvidenceKind::Data => "data",
        EvidenceKind::Retransmission => "retransmission",
        EvidenceKind::Icmp => "ICMP",
    }
}

fn verdicts_section(o: &mut String, a: &Analysis, files: &[PathBuf]) {
    if a.verdicts.is_empty() {
        return;
    }
    let start = a.capture.first_ts;
    o.push_str("<h2>Verdicts</h2>\n");
    for (i, v) in a.verdicts.iter().enumerate() {
        let n = i + 1;
        let _ = write!(
            o,
            "<section class=\"card verdict {sev}\" id=\"verdict-{n}\" data-signature=\"{sig}\" data-severity=\"{sev}\" data-hop=\"{hop}\">\n\
             <div class=\"head\"><span class=\"badge {sev}\">{sev}</span><h3>{n}. <code>{sig}</code></h3><span class=\"meta\">{hop} · {server} · {fc}/{tf} connections · {win}</span></div>\n\
             <p class=\"summary\">{summary}</p>\n",
            sev = sev_class(v.severity),
            n = n,
            sig = v.signature.name(),
            hop = h(v.hop.name()),
            server = h(&v.server.to_string()),
            fc = v.flow_count,
            tf = v.total_flows,
            win = h(&window(v, start)),
            summary = h(&v.summary)
        );
        let notes = v.note_lines();
        if !notes.is_empty() {
            o.push_str("<ul class=\"notes\">");
            for x in notes.iter().take(5) {
                let _ = write!(o, "<li>{}</li>", h(x));
            }
            if notes.len() > 5 {
                let _ = write!(o, "<li class=\"meta\">… and {} more</li>", notes.len() - 5);
            }
            o.push_str("</ul>\n");
        }
        o.push_str("<dl class=\"kv\"><dt>likely causes</dt><dd><ul>");
        for c in &v.likely_causes {
            let _ = write!(o, "<li>{}</li>", h(c));
        }
        o.push_str("</ul></dd><dt>next checks</dt><dd><ul>");
        for c in &v.next_checks {
            let _ = write!(o, "<li>{}</li>", h(c));
        }
        o.push_str("</ul></dd></dl>\n");
        let _ = writeln!(
            o,
            "<div class=\"filter\"><span class=\"meta\">Wireshark filter</span><code id=\"filter-{n}\">{}</code><button class=\"copy\" type=\"button\" data-target=\"filter-{n}\">copy</button></div>",
            h(&v.wireshark_filter),
            n = n
        );
        let _ = write!(
            o,
            "<table class=\"evidence\" id=\"evidence-{}\"><thead><tr><th>frame</th><th>time</th><th>kind</th><th>what</th></tr></thead><tbody>",
            n
        );
        for e in &v.evidence {
            let _ = write!(
                o,
                "<tr><td class=\"num frame\">{}</td><td class=\"num\">{}</td><td>{}</td><td>{}</td></tr>",
                h(&frame_label(files, &e.frame)),
                h(&rel(e.frame.ts, start)),
                kind_name(e.kind),
                h(&e.description)
            );
        }
        o.push_str("</tbody></table>\n</section>\n");
    }
}

/// Who sent a chain step, on which hop: (on the backend leg, towards the server). The steps'
/// words come from `correlate` (`client … sends`, `backend leg, …`, `… answers … to the client`,
/// `client leg, …`); a step comes from the server side when it names it as sender (`from ADDR`,
/// `ADDR → …`, `the server ADDR …`) or is an answer, or is an ICMP error (sent back towards the connecting side); anything else
/// goes towards the server.
fn step_lane(c: &Chain, desc: &str, kind: EvidenceKind, first: bool) -> (bool, bool) {
    let backend_leg = desc.starts_with("backend leg");
    let from_server = |server: Option<String>| {
        server.is_some_and(|s| {
            desc.contains(&format!("from {}", s))
                || desc.contains(&format!("{} →", s))
                || desc.contains(&format!("server {}", s))
        }) || desc.contains(" answers ")
            || kind == EvidenceKind::Icmp
    };
    if backend_leg {
        (true, !from_server(c.backend.map(|b| b.to_string())))
    } else {
        let back = from_server(Some(c.proxy.to_string())) || desc.contains("to the client");
        (false, first || !back)
    }
}

fn chains_section(o: &mut String, a: &Analysis, files: &[PathBuf]) {
    if a.chains.is_empty() {
        return;
    }
    o.push_str("<h2>Causal chains</h2>\n");
    for (i, c) in a.chains.iter().enumerate() {
        let _ = write!(
            o,
            "<section class=\"card chain\" id=\"chain-{}\"><p class=\"summary\">{}</p>\n<p class=\"meta\">pairing: {} · confidence: {} · {} of {} client failures explained</p>\n",
            i + 1,
            h(&c.summary),
            c.pairing.name(),
            match c.confidence {
                PairConfidence::High => "high",
                PairConfidence::Medium => "medium",
                PairConfidence::Low => "low",
                PairConfidence::None => "none",
            },
            c.explained,
            c.front_failures
        );
        // Sequence diagram: three lifelines, one arrow per example step.
        let lanes = [
            ("client", String::new()),
            ("proxy", c.proxy.to_string()),
            (
                "backend",
                c.backend.map(|b| b.to_string()).unwrap_or_default(),
            ),
        ];
        let xs = [120.0, 500.0, 880.0];
        let row = 34.0;
        let top = 64.0;
        let hgt = top + row * c.example.len() as f64 + 20.0;
        let _ = write!(
            o,
            "<svg class=\"sequence\" id=\"sequence-{}\" viewBox=\"0 0 1000 {:.0}\" role=\"img\" aria-label=\"sequence diagram\">",
            i + 1,
            hgt
        );
        for (k, (name, addr)) in lanes.iter().enumerate() {
            let x = xs[k];
            let _ = write!(
                o,
                "<rect class=\"box\" x=\"{:.0}\" y=\"6\" width=\"180\" height=\"40\" rx=\"6\"/><text x=\"{:.0}\" y=\"24\" text-anchor=\"middle\">{}</text><text class=\"small\" x=\"{:.0}\" y=\"39\" text-anchor=\"middle\">{}</text><line class=\"life\" x1=\"{:.0}\" y1=\"46\" x2=\"{:.0}\" y2=\"{:.0}\"/>",
                x - 90.0,
                x,
                name,
                x,
                h(addr),
                x,
                x,
                hgt - 6.0
            );
        }
        let last = c.example.len().saturating_sub(1);
        for (k, e) in c.example.iter().enumerate() {
            let (backend_leg, towards) = step_lane(c, &e.description, e.kind, k == 0);
            let (from, to) = match (backend_leg, towards) {
                (false, true) => (xs[0], xs[1]),
                (false, false) => (xs[1], xs[0]),
                (true, true) => (xs[1], xs[2]),
                (true, false) => (xs[2], xs[1]),
            };
            let y = top + row * k as f64 + 10.0;
            let fail = matches!(e.kind, EvidenceKind::Rst | EvidenceKind::Icmp)
                || (k == last && c.front_status.is_some_and(|s| s >= 500));
            let dir = if to > from { 1.0 } else { -1.0 };
            let _ = write!(
                o,
                "<g class=\"step\" data-frame=\"{fr}\"><title>frame {fr}</title><line class=\"msg{f}\" x1=\"{x1:.0}\" y1=\"{y:.0}\" x2=\"{x2:.0}\" y2=\"{y:.0}\"/><polygon class=\"ah{f}\" points=\"{tx:.0},{y:.0} {bx:.0},{y1:.0} {bx:.0},{y2:.0}\"/><text class=\"small\" x=\"{mx:.0}\" y=\"{ty:.0}\" text-anchor=\"middle\">{fr} · {d}</text></g>",
                fr = h(&frame_label(files, &e.frame)),
                f = if fail { " fail" } else { "" },
                x1 = from,
                x2 = to - dir * 8.0,
                y = y,
                tx = to,
                bx = to - dir * 9.0,
                y1 = y - 5.0,
                y2 = y + 5.0,
                mx = (from + to) / 2.0,
                ty = y - 6.0,
                d = h(&ellipsize(
                    e.description
                        .split_once(": ")
                        .filter(|(p, _)| p.starts_with("backend leg") || p.starts_with("client leg") || p.starts_with('+'))
                        .map_or(e.description.as_str(), |(_, r)| r),
                    58
                ))
            );
        }
        o.push_str("</svg>\n<table class=\"chain-steps\"><thead><tr><th>frame</th><th>step</th></tr></thead><tbody>");
        for e in &c.example {
            let _ = write!(
                o,
                "<tr><td class=\"num frame\">{}</td><td>{}</td></tr>",
                h(&frame_label(files, &e.frame)),
                h(&e.description)
            );
        }
        o.push_str("</tbody></table></section>\n");
    }
}

/// A connection's colour in the timeline: its worst finding's severity, else ok.
fn outcome_class(r: &ConnRecord) -> &'static str {
    match &r.failure {
        Some((_, s, _)) => sev_class(*s),
        None => "ok",
    }
}

fn timeline_section(o: &mut String, a: &Analysis) {
    let (Some(t0), Some(t1)) = (a.capture.first_ts, a.capture.last_ts) else {
        return;
    };
    if a.records.is_empty() {
        return;
    }
    let total = t1.nanos_since(t0).max(1) as f64;
    o.push_str("<h2>Timeline</h2>\n<div class=\"legend\"><span><i class=\"sw ok\"></i>connection without failure</span><span><i class=\"sw warning\"></i>warning</span><span><i class=\"sw critical\"></i>critical</span><span><i class=\"sw info\"></i>info</span><span>▲ gateway error (5xx) answered</span><span>| failure frame</span><span><i class=\"sw fault\"></i>verdict window</span></div>\n");
    for hop in [Hop::ClientToProxy, Hop::ProxyToBackend, Hop::ClientToServer] {
        let recs: Vec<&ConnRecord> = a
            .records
            .iter()
            .filter(|r| a.topology.hop(r.orig.ip(), r.resp) == hop)
            .collect();
        if recs.is_empty() {
            continue;
        }
        let drawn = &recs[..recs.len().min(MAX_TIMELINE_BARS)];
        // Pack connections into lanes: each goes to the first lane free at its start.
        let mut lane_end: Vec<Timestamp> = Vec::new();
        let mut lanes: Vec<usize> = Vec::with_capacity(drawn.len());
        let mut order: Vec<usize> = (0..drawn.len()).collect();
        order.sort_by_key(|&i| (drawn[i].start, drawn[i].id));
        lanes.resize(drawn.len(), 0);
        for &i in &order {
            let r = drawn[i];
            let l = match lane_end.iter().position(|e| *e < r.start) {
                Some(l) => l,
                None if lane_end.len() < MAX_TIMELINE_LANES => {
                    lane_end.push(r.start);
                    lane_end.len() - 1
                }
                None => MAX_TIMELINE_LANES - 1,
            };
            lane_end[l] = lane_end[l].max(r.end);
            lanes[i] = l;
        }
        let (left, width) = (10.0, 980.0);
        let lane_h = 14.0;
        let top = 22.0;
        let hgt = top + lane_end.len() as f64 * lane_h + 30.0;
        let x = |t: Timestamp| left + width * (t.nanos_since(t0) as f64 / total).clamp(0.0, 1.0);
        let _ = write!(
            o,
            "<h3>{}</h3><p class=\"meta\">{} connection{}{}</p>\n<svg class=\"timeline\" id=\"timeline-{}\" data-hop=\"{}\" viewBox=\"0 0 1000 {:.0}\" role=\"img\" aria-label=\"timeline\">",
            hop.name(),
            recs.len(),
            if recs.len() == 1 { "" } else { "s" },
            if recs.len() > drawn.len() {
                format!(", the first {} drawn", drawn.len())
            } else {
                String::new()
            },
            hop.name().replace("->", "-"),
            hop.name(),
            hgt
        );
        // Verdict windows (warning and critical verdicts on this hop), behind the bars.
        for v in a
            .verdicts
            .iter()
            .filter(|v| v.hop == hop && v.severity > Severity::Info)
        {
            let (xa, xb) = (x(v.first_ts), x(v.last_ts).max(x(v.first_ts) + 2.0));
            let _ = write!(
                o,
                "<g class=\"fault-window\" data-signature=\"{}\"><title>{} {} {}</title><rect class=\"fault\" x=\"{:.1}\" y=\"{:.0}\" width=\"{:.1}\" height=\"{:.0}\"/><line class=\"fault-edge\" x1=\"{:.1}\" y1=\"{:.0}\" x2=\"{:.1}\" y2=\"{:.0}\"/><line class=\"fault-edge\" x1=\"{:.1}\" y1=\"{:.0}\" x2=\"{:.1}\" y2=\"{:.0}\"/><text class=\"bad small\" x=\"{:.1}\" y=\"14\">{}</text></g>",
                v.signature.name(),
                v.signature.name(),
                h(&v.server.to_string()),
                h(&window(v, Some(t0))),
                xa,
                top - 4.0,
                xb - xa,
                hgt - top - 26.0,
                xa,
                top - 4.0,
                xa,
                hgt - 30.0,
                xb,
                top - 4.0,
                xb,
                hgt - 30.0,
                xa,
                v.signature.name()
            );
        }
        for (i, r) in drawn.iter().enumerate() {
            let y = top + lanes[i] as f64 * lane_h;
            let (xa, xb) = (x(r.start), x(r.end));
            let reqs: Vec<String> = r
                .requests
                .iter()
                .map(|q| {
                    format!(
                        "{} {}{}",
                        q.method,
                        q.target,
                        q.answer
                            .as_ref()
                            .map(|(s, _, _)| format!(" → {}", s))
                            .unwrap_or_default()
                    )
                })
                .collect();
            let what = match &r.failure {
                Some((sig, sev, _)) => format!("{} ({})", sig.name(), sev.name()),
                None => "no failure".into(),
            };
            let _ = write!(
                o,
                "<g class=\"conn\" data-outcome=\"{cls}\"><title>frame {fr}: {orig} → {resp}, {start}, {what}{reqs}</title><rect class=\"bar-{cls}\" x=\"{xa:.1}\" y=\"{y:.0}\" width=\"{w:.1}\" height=\"{bh:.0}\" rx=\"2\"/>",
                cls = outcome_class(r),
                fr = r.first.number,
                orig = r.orig,
                resp = r.resp,
                start = h(&rel(r.start, Some(t0))),
                what = h(&what),
                reqs = if reqs.is_empty() {
                    String::new()
                } else {
                    h(&format!("; {}", reqs.join("; ")))
                },
                xa = xa,
                y = y,
                // a hair of gap between back-to-back connections in one lane
                w = if xb - xa > 3.0 { xb - xa - 0.6 } else { 2.5 },
                bh = lane_h - 4.0
            );
            for q in &r.requests {
                if let Some((s, fr, _)) = &q.answer {
                    if *s >= 500 {
                        let ex = x(fr.ts);
                        let _ = write!(
                            o,
                            "<polygon class=\"err\" data-status=\"{s}\" points=\"{:.1},{:.1} {:.1},{:.1} {:.1},{:.1}\"><title>frame {}: {s}</title></polygon>",
                            ex,
                            y - 2.0,
                            ex - 4.0,
                            y + 7.0,
                            ex + 4.0,
                            y + 7.0,
                            fr.number,
                            s = s
                        );
                    }
                }
            }
            if let Some((_, _, ev)) = &r.failure {
                for e in ev.iter().take(4) {
                    let ex = x(e.frame.ts);
                    let _ = write!(
                        o,
                        "<line class=\"evf\" x1=\"{ex:.1}\" y1=\"{:.0}\" x2=\"{ex:.1}\" y2=\"{:.0}\"><title>frame {}: {}</title></line>",
                        y - 1.0,
                        y + lane_h - 3.0,
                        e.frame.number,
                        h(&e.description),
                        ex = ex
                    );
                }
            }
            o.push_str("</g>");
        }
        // Axis: about eight ticks at a round step.
        let ay = hgt - 22.0;
        let _ = write!(
            o,
            "<line class=\"axis\" x1=\"{left}\" y1=\"{ay:.0}\" x2=\"{:.0}\" y2=\"{ay:.0}\"/>",
            left + width,
            left = left,
            ay = ay
        );
        let step = nice_step(total / 8.0);
        let mut t = 0.0;
        while t <= total + 1.0 {
            let tx = left + width * t / total;
            let _ = write!(
                o,
                "<line class=\"axis\" x1=\"{tx:.1}\" y1=\"{ay:.0}\" x2=\"{tx:.1}\" y2=\"{:.0}\"/><text class=\"small\" x=\"{tx:.1}\" y=\"{:.0}\" text-anchor=\"middle\">+{}</text>",
                ay + 4.0,
                ay + 16.0,
                if t == 0.0 {
                    "0s".to_string()
                } else {
                    crate::time::human_duration(t as i64)
                },
                tx = tx,
                ay = ay
            );
            t += step;
        }
        o.push_str("</svg>\n");
    }
}

/// A round step (1, 2 or 5 × 10^n nanoseconds) near `raw`.
fn nice_step(raw: f64) -> f64 {
    let raw = raw.max(1.0);
    let p = 10f64.powi(raw.log10().floor() as i32);
    let m = raw / p;
    p * if m < 1.5 {
        1.0
    } else if m < 3.5 {
        2.0
    } else if m < 7.5 {
        5.0
    } else {
        10.0
    }
}

fn endpoints_section(o: &mut String, a: &Analysis) {
    if !a.endpoints.is_empty() {
        o.push_str("<h2>Endpoints</h2>\n<table class=\"endpoints\"><thead><tr><th>server</th><th>names</th><th>connections</th><th>ok/refused/unanswered/reset</th><th>requests → responses</th><th>status codes</th><th>TLS ok/alert/stall</th></tr></thead><tbody>");
        for e in a.endpoints.iter().take(ENDPOINT_ROWS) {
            o.push_str("<tr>");
            for c in endpoint_cells(e) {
                let _ = write!(o, "<td>{}</td>", h(&c));
            }
            o.push_str("</tr>");
        }
        o.push_str("</tbody></table>\n");
    }
    if !a.warnings.is_empty() {
        o.push_str("<h2>Capture warnings</h2>\n<p class=\"meta\">Artefacts of how the capture was taken, not outages.</p><ul class=\"warnings\">");
        for w in &a.warnings {
            let _ = write!(o, "<li><code>{}</code>: {}</li>", h(w.kind), h(&w.message));
        }
        o.push_str("</ul>\n");
    }
    let _ = writeln!(
        o,
        "<p class=\"meta\">proxyscope {} · frame numbers are Wireshark's <code>frame.number</code></p>",
        env!("CARGO_PKG_VERSION")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csp_hashes_the_inline_style_and_script() {
        let csp = content_security_policy();
        assert!(csp.starts_with("default-src 'none';"));
        assert!(csp.contains(&format!("'sha256-{}'", base64(&sha256(CSS.as_bytes())))));
        assert!(csp.contains(&format!("'sha256-{}'", base64(&sha256(JS.as_bytes())))));
    }

    #[test]
    fn chain_steps_point_from_their_sender() {
        use crate::correlate::PairKind;
        use crate::signature::SignatureId;
        let c = Chain {
            summary: String::new(),
            proxy: "10.78.1.1:80".parse().unwrap(),
            front_signature: SignatureId::GatewayError,
            front_status: Some(502),
            back_signature: None,
            backend: Some("10.78.2.2:8080".parse().unwrap()),
            explained: 1,
            front_failures: 1,
            pairing: PairKind::Time,
            confidence: PairConfidence::Medium,
            attempts: vec![],
            example: vec![],
        };
        use EvidenceKind::*;
        // (description, kind, first) -> (backend leg, towards the server)
        for (d, k, first, want) in [
            (
                "client 10.78.1.2 sends GET / to 10.78.1.1:80",
                Data,
                true,
                (false, true),
            ),
            (
                "backend leg, +70µs: SYN 10.78.2.1:5 → 10.78.2.2:8080",
                Syn,
                false,
                (true, true),
            ),
            (
                "backend leg, +1ms: RST from 10.78.2.2:8080 answering the SYN",
                Rst,
                false,
                (true, false),
            ),
            (
                "backend leg, +1ms: RST 10.78.2.2:8080 → 10.78.2.1:5 before the body",
                Rst,
                false,
                (true, false),
            ),
            (
                "backend leg, +1ms: RST from 10.78.2.1:5",
                Rst,
                false,
                (true, true),
            ),
            (
                "backend leg, +5ms: 10.78.2.2:8080 answers 502",
                Data,
                false,
                (true, false),
            ),
            (
                "backend leg, +1s: ICMP port unreachable from 10.78.2.9",
                Icmp,
                false,
                (true, false),
            ),
            (
                "+2ms: 10.78.1.1:80 answers 502 to the client",
                Data,
                false,
                (false, false),
            ),
            (
                "client leg, +3s: the server 10.78.1.1:80 closed without answering",
                Fin,
                false,
                (false, false),
            ),
            (
                "client leg, +3s: the client 10.78.1.2:4 gave up (FIN)",
                Fin,
                false,
                (false, true),
            ),
        ] {
            assert_eq!(step_lane(&c, d, k, first), want, "{d}");
        }
    }

    #[test]
    fn nice_steps_are_round() {
        assert_eq!(nice_step(1.2e9), 1e9);
        assert_eq!(nice_step(2.6e8), 2e8);
        assert_eq!(nice_step(6e6), 5e6);
        assert_eq!(nice_step(9e3), 1e4);
    }
}
