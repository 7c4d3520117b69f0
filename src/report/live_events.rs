//! The event stream of `proxyscope live`: NDJSON objects (`--format ndjson`, versioned, documented
//! in `docs/live-events.md`) and the compact terminal lines that show the same events.
//!
//! Owns: the wire format of live events and their terminal rendering. Must not: decide when an
//! event happens (`live::verdicts` does). Every object carries `"event"` and `"version"`;
//! within a version fields are only added, never renamed or removed.

use super::analyze::{verdict_out, VerdictOut};
use super::escape;
use crate::live::{Change, LiveEvent, LiveSummary, ResolveReason, VerdictBrief};
use crate::time::{human_duration, Timestamp};
use crate::topology::Topology;
use serde::Serialize;

/// Version of the live event format (`"version"` in every event).
pub const LIVE_EVENTS_VERSION: u32 = 1;

/// `verdict-opened`: the whole verdict, as in the final report.
#[derive(Serialize)]
pub struct VerdictOpened {
    pub event: &'static str,
    pub version: u32,
    pub ts: String,
    /// It had resolved before and failed again.
    pub reopened: bool,
    pub verdict: VerdictOut,
}

/// Identity and counts of a verdict, without its text (updates and resolutions).
#[derive(Serialize)]
pub struct VerdictRef {
    pub signature: &'static str,
    pub severity: &'static str,
    pub hop: &'static str,
    pub server: String,
    /// Connections affected so far.
    pub flow_count: u64,
    pub first_ts: String,
    /// The latest affected connection.
    pub last_ts: String,
}

impl VerdictRef {
    fn of(v: &VerdictBrief) -> VerdictRef {
        VerdictRef {
            signature: v.signature.name(),
            severity: v.severity.name(),
            hop: v.hop.name(),
            server: v.server.to_string(),
            flow_count: v.flow_count,
            first_ts: v.first_ts.to_string(),
            last_ts: v.last_ts.to_string(),
        }
    }
}

/// `verdict-updated`: the connection count changed (at most once per second per verdict).
#[derive(Serialize)]
pub struct VerdictUpdated {
    pub event: &'static str,
    pub version: u32,
    pub ts: String,
    pub verdict: VerdictRef,
    /// `flow_count` in the previous event about this verdict.
    pub previous_flow_count: u64,
}

/// `verdict-resolved`.
#[derive(Serialize)]
pub struct VerdictResolved {
    pub event: &'static str,
    pub version: u32,
    pub ts: String,
    pub verdict: VerdictRef,
    /// `recovered` (quiet for `--resolve-after` and a healthy connection since) or `withdrawn`
    /// (no longer in the analysis).
    pub reason: &'static str,
    /// `recovered`: when the latest healthy connection to the server ended.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_healthy: Option<String>,
}

#[derive(Serialize)]
pub struct Connections {
    /// Finished and judged.
    pub finished: u64,
    /// Still tracked.
    pub open: u64,
}

#[derive(Serialize)]
pub struct Packets {
    /// Analysed.
    pub captured: u64,
    /// libpcap's counters: passed the kernel filter / dropped by the kernel / by the interface.
    pub received: u64,
    pub kernel_dropped: u64,
    pub interface_dropped: u64,
    pub tcp_segments: u64,
}

#[derive(Serialize)]
pub struct VerdictCounts {
    pub open: u64,
    pub opened_total: u64,
    pub resolved_total: u64,
}

/// `summary`, every `--report-every`.
#[derive(Serialize)]
pub struct Summary {
    pub event: &'static str,
    pub version: u32,
    pub ts: String,
    pub packets: Packets,
    pub connections: Connections,
    pub verdicts: VerdictCounts,
    /// The open verdicts, most severe first.
    pub open_verdicts: Vec<VerdictRef>,
    /// One line: the path as inferred so far.
    pub path: String,
}

/// `final`: the report `analyze --format json` would give, with the interface counters.
#[derive(Serialize)]
pub struct Final<'a, R: Serialize> {
    pub event: &'static str,
    pub version: u32,
    pub report: &'a R,
}

pub fn final_line<R: Serialize>(report: &R) -> String {
    serde_json::to_string(&Final {
        event: "final",
        version: LIVE_EVENTS_VERSION,
        report,
    })
    .unwrap_or_default()
}

/// The path as inferred so far, on one line.
pub fn path_line(t: &Topology) -> String {
    if t.proxies.is_empty() {
        return "client -> server (no proxy seen yet)".into();
    }
    t.proxies
        .iter()
        .map(|p| {
            let front = p
                .front
                .iter()
                .map(|a| a.to_string())
                .collect::<Vec<_>>()
                .join(", ");
            let back = if p.backends.is_empty() {
                "(no backend seen)".to_string()
            } else {
                p.backends
                    .iter()
                    .map(|a| a.to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            format!("clients -> proxy {} -> {}", front, back)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn summary_out(s: &LiveSummary<'_>) -> Summary {
    Summary {
        event: "summary",
        version: LIVE_EVENTS_VERSION,
        ts: s.at.to_string(),
        packets: Packets {
            captured: s.packets,
            received: s.stats.received,
            kernel_dropped: s.stats.dropped,
            interface_dropped: s.stats.if_dropped,
            tcp_segments: s.tcp_segments,
        },
        connections: Connections {
            finished: s.finished_connections,
            open: s.open_connections as u64,
        },
        verdicts: VerdictCounts {
            open: s.open_verdicts.len() as u64,
            opened_total: s.verdicts_opened,
            resolved_total: s.verdicts_resolved,
        },
        open_verdicts: s.open_verdicts.iter().map(VerdictRef::of).collect(),
        path: path_line(s.topology),
    }
}

/// One NDJSON line (without the newline).
pub fn ndjson(ev: &LiveEvent<'_>) -> String {
    let ts = |t: &Timestamp| t.to_string();
    let r = match ev {
        LiveEvent::Verdict { at, change, files } => match change {
            Change::Opened { verdict, reopened } => serde_json::to_string(&VerdictOpened {
                event: "verdict-opened",
                version: LIVE_EVENTS_VERSION,
                ts: ts(at),
                reopened: *reopened,
                verdict: verdict_out(verdict, files),
            }),
            Change::Updated { verdict, previous } => serde_json::to_string(&VerdictUpdated {
                event: "verdict-updated",
                version: LIVE_EVENTS_VERSION,
                ts: ts(at),
                verdict: VerdictRef::of(&VerdictBrief::of(verdict)),
                previous_flow_count: *previous,
            }),
            Change::Resolved { verdict, reason } => serde_json::to_string(&VerdictResolved {
                event: "verdict-resolved",
                version: LIVE_EVENTS_VERSION,
                ts: ts(at),
                verdict: VerdictRef::of(verdict),
                reason: reason_name(reason),
                last_healthy: match reason {
                    ResolveReason::Recovered { last_healthy } => Some(last_healthy.to_string()),
                    ResolveReason::Withdrawn => None,
                },
            }),
        },
        LiveEvent::Summary(s) => serde_json::to_string(&summary_out(s)),
    };
    r.unwrap_or_default()
}

fn reason_name(r: &ResolveReason) -> &'static str {
    match r {
        ResolveReason::Recovered { .. } => "recovered",
        ResolveReason::Withdrawn => "withdrawn",
    }
}

/// The clock time of a timestamp (the date is in the summaries and the final report).
fn clock(t: &Timestamp) -> String {
    let s = t.to_string();
    // RFC 3339: 2026-11-27T12:00:01.123456789Z → 12:00:01
    s.split('T')
        .nth(1)
        .map(|x| x.chars().take(8).collect())
        .unwrap_or(s)
}

/// One terminal line per event: the verdict's one-line summary once, when it opens; counts
/// afterwards. Text from the capture is escaped for the terminal.
pub fn terminal(ev: &LiveEvent<'_>) -> String {
    let key = |v: &VerdictBrief| {
        format!(
            "{} {} {}",
            v.signature.name(),
            v.hop.name(),
            escape::terminal(&v.server.to_string())
        )
    };
    match ev {
        LiveEvent::Verdict { at, change, .. } => match change {
            Change::Opened { verdict, reopened } => format!(
                "{} {} {:<8} {} — {} ({} connection{})",
                clock(at),
                if *reopened { "REOPENED" } else { "OPENED  " },
                verdict.severity.name(),
                key(&VerdictBrief::of(verdict)),
                escape::terminal(&verdict.summary),
                verdict.flow_count,
                if verdict.flow_count == 1 { "" } else { "s" }
            ),
            Change::Updated { verdict, previous } => format!(
                "{} UPDATED  {:<8} {}: {} → {} connections",
                clock(at),
                verdict.severity.name(),
                key(&VerdictBrief::of(verdict)),
                previous,
                verdict.flow_count
            ),
            Change::Resolved { verdict, reason } => format!(
                "{} RESOLVED {:<8} {}: {}",
                clock(at),
                verdict.severity.name(),
                key(verdict),
                match reason {
                    ResolveReason::Recovered { last_healthy } => format!(
                        "no new failure for {}, healthy connection at {}",
                        human_duration(at.nanos_since(verdict.last_ts)),
                        clock(last_healthy)
                    ),
                    ResolveReason::Withdrawn => "no longer in the analysis (re-judged)".into(),
                }
            ),
        },
        LiveEvent::Summary(s) => format!(
            "{} path: {} · {} packets ({} dropped) · {} connections done, {} open · {} verdicts open, {} resolved",
            clock(&s.at),
            escape::terminal(&path_line(s.topology)),
            s.packets,
            s.stats.dropped + s.stats.if_dropped,
            s.finished_connections,
            s.open_connections,
            s.open_verdicts.len(),
            s.verdicts_resolved
        ),
    }
}
