//! The `analyze` report: JSON (schema version 1, `docs/report-schema.md`), a terminal table, and
//! Markdown for incident tickets. Output types here are the wire contract; they are built from the
//! domain types and change only additively within a schema version.

use super::escape;
use crate::analyze::{Analysis, Warning};
use crate::flow::FrameRef;
use crate::signature::Severity;
use crate::time::{human_duration, Timestamp};
use crate::verdict::Verdict;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

pub const SCHEMA_VERSION: u32 = 2;

#[derive(Serialize)]
pub struct Report {
    pub schema_version: u32,
    pub tool: Tool,
    pub command: String,
    pub capture: CaptureOut,
    pub verdicts: Vec<VerdictOut>,
    /// Per server endpoint: connections, requests, status codes, TLS outcomes (busiest first).
    pub endpoints: Vec<crate::analyze::EndpointSummary>,
    /// Proxies found (or given) and the evidence for each.
    pub topology: crate::topology::Topology,
    /// Client-leg failures explained by the proxy's backend leg.
    pub chains: Vec<ChainOut>,
    /// Present when the capture held no TCP connection to judge: why (the report is then not a
    /// statement of health).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nothing_to_judge: Option<String>,
    /// Every failing client exchange at a proxy and the backend attempts paired with it.
    pub exchanges: Vec<crate::correlate::PairedExchange>,
}

#[derive(Serialize)]
pub struct ChainOut {
    pub summary: String,
    pub proxy: String,
    pub front_signature: &'static str,
    pub front_status: Option<u16>,
    pub back_signature: Option<&'static str>,
    pub backend: Option<String>,
    pub explained: u64,
    pub front_failures: u64,
    /// How the client exchanges were tied to backend attempts: `connect-authority`,
    /// `client-hello`, `first-payload`, `http-request`, `time`, or `not-paired`.
    pub pairing: &'static str,
    /// `high`, `medium`, `low` (several exchanges in flight), or `none`.
    pub confidence: crate::correlate::PairConfidence,
    /// The backend attempts of the example exchange and how each ended.
    pub attempts: Vec<crate::correlate::Attempt>,
    pub example: Vec<EvidenceOut>,
}

#[derive(Serialize)]
pub struct Tool {
    pub name: &'static str,
    pub version: &'static str,
}

#[derive(Serialize)]
pub struct CaptureOut {
    pub files: Vec<FileOut>,
    /// Frames read (filter-rejected included).
    pub packets: u64,
    /// Frames that passed the BPF filter.
    pub packets_matched: u64,
    pub tcp_segments: u64,
    pub connections: u64,
    pub first_ts: Option<String>,
    pub last_ts: Option<String>,
    pub duration: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    pub warnings: Vec<WarningOut>,
    /// Live capture only: the interface and libpcap's counters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub live: Option<LiveOut>,
}

#[derive(Serialize)]
pub struct LiveOut {
    pub interface: String,
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

#[derive(Serialize)]
pub struct FileOut {
    pub path: String,
    pub link_type: &'static str,
    pub packets: u64,
    pub snaplen: u32,
    pub truncated_frames: u64,
    /// Several files: this file's clock minus the first file's, in seconds (corrected).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_offset: Option<f64>,
}

#[derive(Serialize)]
pub struct WarningOut {
    pub kind: &'static str,
    pub message: String,
    pub count: u64,
    pub frames: Vec<FrameOut>,
}

#[derive(Serialize, Clone)]
pub struct FrameOut {
    pub frame: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub ts: String,
}

#[derive(Serialize)]
pub struct EvidenceOut {
    pub frame: u64,
    pub kind: crate::signature::EvidenceKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    /// The frame's number inside the `--evidence-pcap` file (only when one was written).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub evidence_frame: Option<u64>,
    pub ts: String,
    pub description: String,
}

#[derive(Serialize)]
pub struct VerdictOut {
    pub signature: &'static str,
    pub severity: &'static str,
    pub hop: &'static str,
    pub client: String,
    pub clients: u32,
    pub server: String,
    pub flow_count: u64,
    pub total_flows: u64,
    pub first_ts: String,
    pub last_ts: String,
    pub summary: String,
    pub details: Vec<String>,
    pub likely_causes: Vec<String>,
    pub next_checks: Vec<String>,
    pub wireshark_filter: String,
    pub evidence: Vec<EvidenceOut>,
    /// Numbers are JSON numbers; names, lists and tallies ("502×12, 504") are strings.
    pub facts: BTreeMap<&'static str, crate::signature::Fact>,
}

pub(crate) fn file_name(files: &[PathBuf], fr: &FrameRef) -> Option<String> {
    (files.len() > 1).then(|| files[fr.file as usize].display().to_string())
}

impl Report {
    pub fn build(a: &Analysis, command: String, filter: Option<&str>) -> Report {
        let files: Vec<PathBuf> = a.capture.files.iter().map(|f| f.path.clone()).collect();
        let c = &a.capture;
        let mut r = Report {
            schema_version: SCHEMA_VERSION,
            tool: Tool {
                name: "proxyscope",
                version: env!("CARGO_PKG_VERSION"),
            },
            command,
            capture: CaptureOut {
                files: c
                    .files
                    .iter()
                    .map(|f| FileOut {
                        path: f.path.display().to_string(),
                        link_type: f.link.map(|l| l.name()).unwrap_or("unknown"),
                        packets: f.frames,
                        snaplen: f.snaplen,
                        truncated_frames: f.frames_truncated,
                        clock_offset: f.clock_offset.map(|(o, _)| (o / 1000) as f64 / 1e6),
                    })
                    .collect(),
                packets: c.frames,
                packets_matched: c.frames_matched,
                tcp_segments: c.tcp_segments,
                connections: a.connections,
                first_ts: c.first_ts.map(|t| t.to_string()),
                last_ts: c.last_ts.map(|t| t.to_string()),
                duration: match (c.first_ts, c.last_ts) {
                    (Some(a), Some(b)) => (b.nanos_since(a) / 1000) as f64 / 1e6,
                    _ => 0.0,
                },
                filter: filter.map(str::to_string),
                warnings: a.warnings.iter().map(|w| warning_out(w, &files)).collect(),
                live: None,
            },
            verdicts: a.verdicts.iter().map(|v| verdict_out(v, &files)).collect(),
            endpoints: a.endpoints.clone(),
            topology: a.topology.clone(),
            chains: a
                .chains
                .iter()
                .map(|c| ChainOut {
                    summary: c.summary.clone(),
                    proxy: c.proxy.to_string(),
                    front_signature: c.front_signature.name(),
                    front_status: c.front_status,
                    back_signature: c.back_signature.map(|s| s.name()),
                    backend: c.backend.map(|b| b.to_string()),
                    explained: c.explained,
                    front_failures: c.front_failures,
                    pairing: c.pairing.name(),
                    confidence: c.confidence,
                    attempts: c.attempts.clone(),
                    example: c.example.iter().map(|e| evidence_out(e, &files)).collect(),
                })
                .collect(),
            nothing_to_judge: a.nothing_to_judge.clone(),
            exchanges: a.exchanges.clone(),
        };
        // Where each evidence frame landed in the --evidence-pcap file (same order as built).
        let ev = &c.evidence_frames;
        if !ev.is_empty() {
            let at = |f: &FrameRef| ev.get(&(f.file, f.number)).copied();
            for (vo, v) in r.verdicts.iter_mut().zip(&a.verdicts) {
                for (eo, e) in vo.evidence.iter_mut().zip(&v.evidence) {
                    eo.evidence_frame = at(&e.frame);
                }
            }
            for (co, ch) in r.chains.iter_mut().zip(&a.chains) {
                for (eo, e) in co.example.iter_mut().zip(&ch.example) {
                    eo.evidence_frame = at(&e.frame);
                }
            }
        }
        r
    }
}

fn warning_out(w: &Warning, files: &[PathBuf]) -> WarningOut {
    WarningOut {
        kind: w.kind,
        message: w.message.clone(),
        count: w.count,
        frames: w
            .frames
            .iter()
            .map(|f| FrameOut {
                frame: f.number,
                file: file_name(files, f),
                ts: f.ts.to_string(),
            })
            .collect(),
    }
}

fn evidence_out(e: &crate::signature::Evidence, files: &[PathBuf]) -> EvidenceOut {
    EvidenceOut {
        frame: e.frame.number,
        kind: e.kind,
        file: file_name(files, &e.frame),
        evidence_frame: None,
        ts: e.frame.ts.to_string(),
        description: e.description.clone(),
    }
}

/// One proxy's path as the reports draw it: `clients → proxy → backends`, with the signatures
/// of the warning/critical verdicts on each hop (empty: the hop looks fine).
pub struct PathView {
    pub front: Vec<String>,
    pub back_addresses: Vec<String>,
    pub backends: Vec<String>,
    pub broken_front: Vec<&'static str>,
    pub broken_back: Vec<&'static str>,
    pub confidence: &'static str,
    pub evidence: Vec<String>,
}

/// The path of every proxy found (or given).
pub fn path_views(a: &Analysis) -> Vec<PathView> {
    use crate::verdict::Hop;
    let mut out = Vec::new();
    for p in &a.topology.proxies {
        let broken = |hop: Hop| -> Vec<&'static str> {
            let mut sigs: Vec<&'static str> = a
                .verdicts
                .iter()
                .filter(|v| v.hop == hop && v.severity > crate::signature::Severity::Info)
                .filter(|v| match hop {
                    Hop::ClientToProxy => p.front.contains(&v.server),
                    _ => p.backends.contains(&v.server) || p.back_addresses.contains(&v.client),
                })
                .map(|v| v.signature.name())
                .collect();
            sigs.dedup();
            sigs
        };
        out.push(PathView {
            front: p.front.iter().map(|f| f.to_string()).collect(),
            back_addresses: p.back_addresses.iter().map(|b| b.to_string()).collect(),
            backends: p.backends.iter().map(|b| b.to_string()).collect(),
            broken_front: broken(Hop::ClientToProxy),
            broken_back: broken(Hop::ProxyToBackend),
            confidence: match p.confidence {
                crate::topology::Confidence::Given => "given",
                crate::topology::Confidence::High => "high",
                crate::topology::Confidence::Medium => "medium",
            },
            evidence: p.evidence.clone(),
        });
    }
    out
}

/// One line per proxy: `clients ──▶ proxy 10.78.1.1:80 (backend side 10.78.2.1) ──✗ … ──▶
/// backends 10.78.2.2:8080`, the hops with warning/critical verdicts marked.
fn path_lines(a: &Analysis) -> Vec<String> {
    let arrow = |sigs: &[&str]| {
        if sigs.is_empty() {
            " ──▶ ".to_string()
        } else {
            format!(" ──✗ {} ──▶ ", sigs.join(", "))
        }
    };
    path_views(a)
        .into_iter()
        .map(|p| {
            let front = if p.front.is_empty() {
                "?".to_string()
            } else {
                p.front.join(", ")
            };
            let backends = if p.backends.is_empty() {
                "(none seen)".to_string()
            } else {
                p.backends.join(", ")
            };
            format!(
                "clients{}proxy {} (backend side {}){}backends {}  [{} confidence: {}]",
                arrow(&p.broken_front),
                front,
                p.back_addresses.join(", "),
                arrow(&p.broken_back),
                backends,
                p.confidence,
                p.evidence.join("; ")
            )
        })
        .collect()
}

pub fn verdict_out(v: &Verdict, files: &[PathBuf]) -> VerdictOut {
    VerdictOut {
        signature: v.signature.name(),
        severity: v.severity.name(),
        hop: v.hop.name(),
        client: v.client.to_string(),
        clients: v.clients,
        server: v.server.to_string(),
        flow_count: v.flow_count,
        total_flows: v.total_flows,
        first_ts: v.first_ts.to_string(),
        last_ts: v.last_ts.to_string(),
        summary: v.summary.clone(),
        details: v.note_lines(),
        likely_causes: v.likely_causes.clone(),
        next_checks: v.next_checks.clone(),
        wireshark_filter: v.wireshark_filter.clone(),
        evidence: v.evidence.iter().map(|e| evidence_out(e, files)).collect(),
        facts: v.facts.iter().cloned().collect(),
    }
}

pub(crate) fn span(a: &Analysis) -> String {
    match (a.capture.first_ts, a.capture.last_ts) {
        (Some(x), Some(y)) => format!("{} → {} ({})", x, y, human_duration(y.nanos_since(x))),
        _ => "empty".into(),
    }
}

pub(crate) fn frame_label(files: &[PathBuf], fr: &FrameRef) -> String {
    match file_name(files, fr) {
        Some(f) => format!("{}#{}", f, fr.number),
        None => format!("#{}", fr.number),
    }
}

/// `#191 (evidence #8)`: the frame, and its number in the `--evidence-pcap` file when written.
fn evidence_label(a: &Analysis, files: &[PathBuf], fr: &FrameRef) -> String {
    let label = frame_label(files, fr);
    match a.capture.evidence_frames.get(&(fr.file, fr.number)) {
        Some(n) => format!("{} (evidence #{})", label, n),
        None => label,
    }
}

pub(crate) fn rel(ts: Timestamp, start: Option<Timestamp>) -> String {
    match start {
        Some(s) => format!("+{:.6}s", ts.secs_since(s)),
        None => ts.to_string(),
    }
}

/// Width of the terminal report when the terminal's is unknown (a pipe, no `COLUMNS`).
pub const DEFAULT_WIDTH: usize = 100;
/// Narrowest width laid out (narrower terminals get this width and wrap).
pub const MIN_WIDTH: usize = 60;
/// From this width on, the verdict table has its `hop`, `window` and `summary` columns; below it
/// the table keeps five columns and each verdict's section carries hop and window.
const WIDE: usize = 110;

/// A terminal table in the house style, `width` columns wide; ANSI styling only when `color`.
pub fn new_table(color: bool, width: usize) -> comfy_table::Table {
    use comfy_table::{presets::UTF8_FULL_CONDENSED, ContentArrangement, Table};
    let mut t = Table::new();
    t.load_style(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic)
        .set_width(width.clamp(MIN_WIDTH, u16::MAX as usize) as u16);
    if color {
        t.enforce_styling();
    } else {
        t.force_no_tty();
    }
    t
}

/// Keeps every cell's words whole when the table can: each column at least as wide as the
/// longest word in its cells (an address with its port, a status tally, a signature name), when
/// those widths together fit `width`; the headers may still wrap. Without it comfy-table fills
/// the width by cutting cells anywhere, and `10.78.2.2:8080` became `10.78.2.2:808` over `0`.
pub fn keep_words_whole(tb: &mut comfy_table::Table, width: usize) {
    use comfy_table::{ColumnConstraint, Width};
    fn widen(longest: &mut Vec<usize>, row: &comfy_table::Row) {
        for (c, cell) in row.cell_iter().enumerate() {
            if longest.len() <= c {
                longest.resize(c + 1, 0);
            }
            let w = cell
                .content()
                .split([' ', '\n'])
                .map(|w| w.chars().count())
                .max()
                .unwrap_or(0);
            longest[c] = longest[c].max(w);
        }
    }
    let mut cells = Vec::new();
    for row in tb.row_iter() {
        widen(&mut cells, row);
    }
    let mut with_header = cells.clone();
    if let Some(h) = tb.header() {
        widen(&mut with_header, h);
    }
    // One space of padding each side; a border before each column and after the last.
    let need = |l: &[usize]| l.iter().map(|w| w + 2).sum::<usize>() + l.len() + 1;
    let width = width.max(MIN_WIDTH);
    // The header's words too when they fit, else the cells' only.
    let Some(longest) = [with_header, cells]
        .into_iter()
        .find(|l| !l.is_empty() && need(l) <= width)
    else {
        return;
    };
    for (c, w) in longest.into_iter().enumerate() {
        if let Some(col) = tb.column_mut(c) {
            col.set_constraint(ColumnConstraint::LowerBoundary(Width::Fixed(
                (w + 2) as u16,
            )));
        }
    }
}

/// `text` (already escaped) word-wrapped to `width` columns: the first line starts with
/// `first`, the others with `rest`; a word longer than a line is cut.
fn wrap(out: &mut String, first: &str, rest: &str, text: &str, width: usize) {
    let width = width.max(MIN_WIDTH);
    let mut line = String::from(first);
    let mut len = first.chars().count();
    let mut empty = true;
    for word in text.split(' ') {
        let mut w: &str = word;
        loop {
            let wl = w.chars().count();
            let room = width.saturating_sub(len + usize::from(!empty));
            if wl <= room {
                if !empty {
                    line.push(' ');
                    len += 1;
                }
                line.push_str(w);
                len += wl;
                empty = false;
                break;
            }
            if !empty {
                out.push_str(line.trim_end());
                out.push('\n');
                line = String::from(rest);
                len = rest.chars().count();
                empty = true;
                continue;
            }
            // Longer than a whole line: cut it.
            let room = width.saturating_sub(len).max(1);
            let cut = w.char_indices().nth(room).map_or(w.len(), |(i, _)| i);
            line.push_str(&w[..cut]);
            out.push_str(&line);
            out.push('\n');
            line = String::from(rest);
            len = rest.chars().count();
            w = &w[cut..];
            if w.is_empty() {
                break;
            }
        }
    }
    if !empty || !line.trim().is_empty() {
        out.push_str(line.trim_end());
        out.push('\n');
    }
}

/// The terminal report, `width` columns wide: header, path, chains, one row per verdict, then
/// evidence per verdict, endpoints and warnings. Every string that may come from the capture is
/// escaped (`escape::terminal`).
pub fn table(a: &Analysis, color: bool, width: usize) -> String {
    use comfy_table::{Attribute, Cell, Color};
    use escape::terminal as t;
    let width = width.max(MIN_WIDTH);
    let files: Vec<PathBuf> = a.capture.files.iter().map(|f| f.path.clone()).collect();
    let start = a.capture.first_ts;
    let mut out = String::new();
    let names: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    wrap(
        &mut out,
        "",
        "  ",
        &t(&format!(
            "proxyscope {} — {}",
            env!("CARGO_PKG_VERSION"),
            names.join(", ")
        )),
        width,
    );
    wrap(&mut out, "capture: ", "  ", &span(a), width);
    out.push_str(&format!(
        "{} packets ({} TCP), {} connections\n\n",
        a.capture.frames_matched, a.capture.tcp_segments, a.connections
    ));
    let sev_color = |s: Severity| match s {
        Severity::Critical => Color::Red,
        Severity::Warning => Color::Yellow,
        Severity::Info => Color::Blue,
    };
    for l in path_lines(a) {
        wrap(&mut out, "path: ", "      ", &t(&l), width);
    }
    for c in &a.chains {
        out.push('\n');
        wrap(&mut out, "⇒ ", "  ", &t(&c.summary), width);
        for e in &c.example {
            let label = format!("    {:>8}  ", frame_label(&files, &e.frame));
            wrap(
                &mut out,
                &t(&label),
                "              ",
                &t(&e.description),
                width,
            );
        }
    }
    if !a.topology.proxies.is_empty() || !a.chains.is_empty() {
        out.push('\n');
    }
    let wide = width >= WIDE;
    if let Some(why) = &a.nothing_to_judge {
        wrap(
            &mut out,
            "",
            "",
            &t(&format!("Nothing to judge: {}.", why)),
            width,
        );
    } else if a.verdicts.is_empty() {
        out.push_str("No outage signature matched: every connection behaved normally.\n");
    } else {
        let mut tb = new_table(color, width);
        if wide {
            tb.set_header(vec![
                "#",
                "severity",
                "signature",
                "hop",
                "server",
                "conns",
                "window",
                "summary",
            ]);
        } else {
            tb.set_header(vec!["#", "severity", "signature", "server", "conns"]);
        }
        for (i, v) in a.verdicts.iter().enumerate() {
            let mut sev = Cell::new(v.severity.name());
            if color {
                sev = sev.fg(sev_color(v.severity)).add_attribute(Attribute::Bold);
            }
            let mut row = vec![
                Cell::new(i + 1),
                sev,
                Cell::new(v.signature.name()),
                Cell::new(v.hop.name()),
                Cell::new(v.server),
                Cell::new(format!("{}/{}", v.flow_count, v.total_flows)),
                Cell::new(window(v, start)),
                Cell::new(t(&v.summary)),
            ];
            if !wide {
                row.truncate(6);
                row.remove(3);
            }
            tb.add_row(row);
        }
        keep_words_whole(&mut tb, width);
        out.push_str(&tb.to_string());
        out.push('\n');
        for (i, v) in a.verdicts.iter().enumerate() {
            out.push('\n');
            wrap(
                &mut out,
                &format!(
                    "[{}] {} {} — ",
                    i + 1,
                    v.severity.name(),
                    v.signature.name()
                ),
                "    ",
                &t(&v.summary),
                width,
            );
            if !wide {
                wrap(
                    &mut out,
                    "    ",
                    "    ",
                    &format!(
                        "{} · {} · window {}",
                        v.hop.name(),
                        v.server,
                        window(v, start)
                    ),
                    width,
                );
            }
            let notes = v.note_lines();
            for n in notes.iter().take(3) {
                wrap(&mut out, "    · ", "      ", &t(n), width);
            }
            if notes.len() > 3 {
                out.push_str(&format!("    · … and {} more\n", notes.len() - 3));
            }
            out.push_str("  evidence:\n");
            for e in &v.evidence {
                let label = format!(
                    "    {:>8}  {}  ",
                    evidence_label(a, &files, &e.frame),
                    rel(e.frame.ts, start)
                );
                let indent = " ".repeat(label.chars().count().min(width / 2));
                wrap(&mut out, &t(&label), &indent, &t(&e.description), width);
            }
            wrap(
                &mut out,
                "  wireshark: ",
                "    ",
                &t(&v.wireshark_filter),
                width,
            );
            wrap(
                &mut out,
                "  likely: ",
                "    ",
                &t(&v.likely_causes.join("; ")),
                width,
            );
            wrap(
                &mut out,
                "  next: ",
                "    ",
                &t(&v.next_checks.join("; ")),
                width,
            );
        }
    }
    if !a.endpoints.is_empty() {
        out.push_str("\nendpoints (server side of each connection):\n");
        let mut tb = new_table(color, width);
        tb.set_header(vec![
            "server",
            "names",
            "conns",
            if wide {
                "ok/refused/unanswered/reset"
            } else {
                "ok/refused/ unanswered/reset"
            },
            "requests",
            "status codes",
            "TLS ok/alert/stall",
        ]);
        for e in a.endpoints.iter().take(ENDPOINT_ROWS) {
            let mut cells = endpoint_cells(e);
            cells[1] = t(&cells[1]).into_owned();
            tb.add_row(cells.to_vec());
        }
        keep_words_whole(&mut tb, width);
        out.push_str(&tb.to_string());
        out.push('\n');
        if a.endpoints.len() > ENDPOINT_ROWS {
            out.push_str(&format!(
                "  … {} more endpoints in the JSON report\n",
                a.endpoints.len() - ENDPOINT_ROWS
            ));
        }
    }
    if !a.warnings.is_empty() {
        out.push('\n');
        wrap(
            &mut out,
            "",
            "  ",
            "capture warnings (artefacts of how the capture was taken, and caps the analysis hit; not outages):",
            width,
        );
        for w in &a.warnings {
            wrap(
                &mut out,
                &format!("  - [{}] ", w.kind),
                "    ",
                &t(&w.message),
                width,
            );
        }
    }
    out
}

/// A verdict's time window relative to the capture's start.
pub(crate) fn window(v: &Verdict, start: Option<Timestamp>) -> String {
    format!("{} … {}", rel(v.first_ts, start), rel(v.last_ts, start))
}

/// Endpoint rows in the terminal and Markdown reports (all of them are in the JSON).
pub(crate) const ENDPOINT_ROWS: usize = 15;

/// One endpoint row: server, names, connections, ok/refused/unanswered/reset, requests,
/// status codes, TLS ok/alert/stall.
pub(crate) fn endpoint_cells(e: &crate::analyze::EndpointSummary) -> [String; 7] {
    [
        e.server.clone(),
        e.names.join(", "),
        e.connections.to_string(),
        format!(
            "{}/{}/{}/{}",
            e.established, e.refused, e.unanswered, e.reset
        ),
        if e.requests > 0 {
            format!("{} → {}", e.requests, e.responses)
        } else {
            "-".into()
        },
        status_text(e),
        if e.tls_handshakes > 0 {
            format!("{}/{}/{}", e.tls_ok, e.tls_alerts, e.tls_stalled)
        } else {
            "-".into()
        },
    ]
}

pub(crate) fn status_text(e: &crate::analyze::EndpointSummary) -> String {
    if e.status_counts.is_empty() {
        return "-".into();
    }
    e.status_counts
        .iter()
        .map(|(s, n)| format!("{}×{}", s, n))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A Markdown report to paste into a ticket. Text that may come from the capture is escaped
/// (`escape::md_text`, `escape::md_code`): it renders as the characters it is, never as HTML or
/// Markdown, and never breaks a table row.
pub fn markdown(a: &Analysis, command: &str) -> String {
    use escape::{md_code as code, md_text as text};
    let files: Vec<PathBuf> = a.capture.files.iter().map(|f| f.path.clone()).collect();
    let start = a.capture.first_ts;
    let mut o = String::new();
    o.push_str("## proxyscope report\n\n");
    let worst = a.verdicts.iter().map(|v| v.severity).max();
    o.push_str(&match worst {
        None if a.nothing_to_judge.is_some() => format!(
            "**Nothing to judge**: {}.\n\n",
            text(a.nothing_to_judge.as_deref().unwrap_or_default())
        ),
        None => {
            "**No outage signature matched**: every connection behaved normally.\n\n".to_string()
        }
        Some(s) => format!(
            "**{} verdict{}**, worst severity **{}**. Top: {}\n\n",
            a.verdicts.len(),
            if a.verdicts.len() == 1 { "" } else { "s" },
            s.name(),
            text(&a.verdicts[0].summary)
        ),
    });
    for l in path_lines(a) {
        o.push_str(&format!("Path: {}\n\n", code(&l, false)));
    }
    for c in &a.chains {
        o.push_str(&format!(
            "**Cause:** {}\n\n| frame | step |\n|---|---|\n",
            text(&c.summary)
        ));
        for e in &c.example {
            o.push_str(&format!(
                "| {} | {} |\n",
                text(&frame_label(&files, &e.frame)),
                text(&e.description)
            ));
        }
        o.push('\n');
    }
    if !a.verdicts.is_empty() {
        o.push_str("| # | severity | signature | hop | server | connections | window | summary |\n|---|---|---|---|---|---|---|---|\n");
        for (i, v) in a.verdicts.iter().enumerate() {
            o.push_str(&format!(
                "| {} | {} | {} | {} | {} | {}/{} | {} | {} |\n",
                i + 1,
                v.severity.name(),
                code(v.signature.name(), true),
                text(v.hop.name()),
                code(&v.server.to_string(), true),
                v.flow_count,
                v.total_flows,
                window(v, start),
                text(&v.summary)
            ));
        }
        for (i, v) in a.verdicts.iter().enumerate() {
            o.push_str(&format!(
                "\n### {}. {} ({}) — {}\n\n",
                i + 1,
                code(v.signature.name(), false),
                v.severity.name(),
                code(&v.server.to_string(), false)
            ));
            o.push_str(&format!("{}\n\n", text(&v.summary)));
            for n in v.note_lines().iter().take(5) {
                o.push_str(&format!("- {}\n", text(n)));
            }
            o.push_str("\n| frame | time | what |\n|---|---|---|\n");
            for e in &v.evidence {
                o.push_str(&format!(
                    "| {} | {} | {} |\n",
                    text(&evidence_label(a, &files, &e.frame)),
                    rel(e.frame.ts, start),
                    text(&e.description)
                ));
            }
            o.push_str(&format!(
                "\nWireshark filter: {}\n\n",
                code(&v.wireshark_filter, false)
            ));
            o.push_str("Likely causes:\n");
            for c in &v.likely_causes {
                o.push_str(&format!("- {}\n", text(c)));
            }
            o.push_str("\nNext checks:\n");
            for c in &v.next_checks {
                o.push_str(&format!("- {}\n", text(c)));
            }
        }
    }
    o.push_str("\n### Capture\n\n");
    o.push_str(&format!("- command: {}\n", code(command, false)));
    for f in &a.capture.files {
        o.push_str(&format!(
            "- file: {} ({}, {} packets, snaplen {})\n",
            code(&f.path.display().to_string(), false),
            f.link.map(|l| l.name()).unwrap_or("unknown"),
            f.frames,
            f.snaplen
        ));
    }
    o.push_str(&format!(
        "- span: {}\n- {} packets ({} TCP), {} connections\n",
        span(a),
        a.capture.frames_matched,
        a.capture.tcp_segments,
        a.connections
    ));
    if !a.endpoints.is_empty() {
        o.push_str("\n### Endpoints\n\n| server | names | connections | ok/refused/unanswered/reset | requests → responses | status codes | TLS ok/alert/stall |\n|---|---|---|---|---|---|---|\n");
        for e in a.endpoints.iter().take(ENDPOINT_ROWS) {
            let c = endpoint_cells(e);
            let cells: Vec<String> = c[1..].iter().map(|s| text(s)).collect();
            o.push_str(&format!(
                "| {} | {} |\n",
                code(&c[0], true),
                cells.join(" | ")
            ));
        }
    }
    if !a.warnings.is_empty() {
        o.push_str("\nCapture warnings (not outages):\n");
        for w in &a.warnings {
            o.push_str(&format!(
                "- {}: {}\n",
                code(w.kind, false),
                text(&w.message)
            ));
        }
    }
    o
}
