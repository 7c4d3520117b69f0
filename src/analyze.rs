//! `analyze`: runs the signatures on every finished connection, aggregates verdicts, and sorts
//! capture artefacts into warnings. Holds no protocol logic of its own: the rules live in
//! `signature/`, the aggregation in `verdict/`.

use crate::config::InputConfig;
use crate::error::Result;
use crate::flow::{FlowSummary, FrameRef};
use crate::pipeline::{self, CaptureSummary, Observer};
use crate::signature::{self, syn_unanswered, time_wait_pileup::TimeWaitTracker, Thresholds};
use crate::time::{human_duration, Timestamp};
use crate::verdict::{Aggregator, Hop, Verdict};
use serde::Serialize;

/// Example frames kept per warning.
const MAX_WARNING_FRAMES: usize = 5;

/// A capture artefact: something about how the capture was taken, never an outage.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    /// Stable kind: `partial-flow`, `capture-ended-early`, `one-direction-only`, `snaplen`,
    /// `file-truncated`, `malformed`, `ip-fragments`, `time-reversal`, `kernel-drops`.
    pub kind: &'static str,
    pub message: String,
    pub count: u64,
    /// Example frames (first frame of the connections concerned).
    pub frames: Vec<FrameRef>,
}

#[derive(Default)]
struct WarnAcc {
    count: u64,
    frames: Vec<FrameRef>,
    detail: Option<String>,
}

impl WarnAcc {
    fn add(&mut self, fr: FrameRef, detail: impl FnOnce() -> String) {
        self.count += 1;
        if self.frames.len() < MAX_WARNING_FRAMES {
            self.frames.push(fr);
        }
        if self.detail.is_none() {
            self.detail = Some(detail());
        }
    }
}

/// Everything `analyze` produces.
pub struct Analysis {
    pub capture: CaptureSummary,
    pub connections: u64,
    pub verdicts: Vec<Verdict>,
    pub warnings: Vec<Warning>,
}

struct Analyzer {
    th: Thresholds,
    agg: Aggregator,
    tw: TimeWaitTracker,
    /// Unanswered attempts still open at the end of the capture: judged once its end is known.
    pending_end: Vec<FlowSummary>,
    /// Latest connection start per (client host, server endpoint): a later attempt shows an
    /// earlier unanswered one was abandoned.
    latest_start: rustc_hash::FxHashMap<(std::net::IpAddr, std::net::SocketAddr), Timestamp>,
    partial: WarnAcc,
    one_direction: WarnAcc,
    ended_early: WarnAcc,
    connections: u64,
}

impl Analyzer {
    fn judge_attempt(&mut self, f: &FlowSummary, capture_end: Timestamp) {
        match syn_unanswered::check(f, capture_end, &self.th) {
            syn_unanswered::Outcome::Finding(fd) => self.agg.add(fd, Hop::ClientToServer, Some(f)),
            syn_unanswered::Outcome::Inconclusive { waited_ns } => {
                self.ended_early.add(f.first, || {
                    format!(
                        "{} → {}: last SYN only {} before the end",
                        f.orig,
                        f.resp,
                        human_duration(waited_ns)
                    )
                })
            }
            syn_unanswered::Outcome::OneDirection => self
                .one_direction
                .add(f.first, || format!("{} → {}", f.orig, f.resp)),
            syn_unanswered::Outcome::None => {}
        }
    }
}

impl Observer for Analyzer {
    fn flow_end(&mut self, f: FlowSummary) {
        self.connections += 1;
        self.agg.observe_flow(&f);
        let latest = self
            .latest_start
            .entry((f.orig.ip(), f.resp))
            .or_insert(f.start);
        *latest = (*latest).max(f.start);
        self.tw.observe(&f);
        if f.partial {
            self.partial
                .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
        }
        let one_sided = (f.orig_stats.pkts == 0) != (f.resp_stats.pkts == 0);
        if one_sided && !syn_unanswered::is_unanswered_attempt(&f) {
            let sender_acks = f
                .history
                .chars()
                .any(|c| matches!(c, 'A' | 'D' | 'a' | 'd' | 'F' | 'f'));
            if sender_acks {
                self.one_direction
                    .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
            }
        }
        if syn_unanswered::is_unanswered_attempt(&f) {
            if f.end_reason == crate::flow::EndReason::CaptureEnd {
                self.pending_end.push(f.clone());
            } else {
                // Expired by idle time: far from the end of the capture by construction.
                let end = f.end.add_nanos(self.th.syn_timeout_ns.max(0) + 1);
                self.judge_attempt(&f, end);
            }
        }
        for fd in [
            signature::connection_refused::check(&f),
            signature::connection_reset::check(&f),
            signature::retransmission_storm::check(&f, &self.th),
        ]
        .into_iter()
        .flatten()
        {
            self.agg.add(fd, Hop::ClientToServer, Some(&f));
        }
    }
}

pub fn run(input: &InputConfig, th: Thresholds, max_evidence: usize) -> Result<Analysis> {
    let mut a = Analyzer {
        th,
        agg: Aggregator::new(max_evidence),
        tw: TimeWaitTracker::new(th),
        pending_end: Vec::new(),
        latest_start: Default::default(),
        partial: WarnAcc::default(),
        one_direction: WarnAcc::default(),
        ended_early: WarnAcc::default(),
        connections: 0,
    };
    let capture = pipeline::run(input, &mut a)?;
    let end = capture.last_ts.unwrap_or_default();
    for f in std::mem::take(&mut a.pending_end) {
        // The same client tried the same endpoint again after this attempt's last SYN: this one
        // was abandoned, so it is conclusive even near the end of the capture.
        let retried = f.last_syn.is_some_and(|s| {
            a.latest_start
                .get(&(f.orig.ip(), f.resp))
                .is_some_and(|t| *t > s.ts)
        });
        let judge_at = if retried {
            end.max(f.end.add_nanos(th.syn_timeout_ns + 1))
        } else {
            end
        };
        a.judge_attempt(&f, judge_at);
    }
    for fd in std::mem::replace(&mut a.tw, TimeWaitTracker::new(th)).findings() {
        a.agg.add(fd, Hop::ClientToServer, None);
    }
    let mut warnings = Vec::new();
    let mut push = |kind: &'static str, acc: WarnAcc, msg: String| {
        if acc.count > 0 {
            warnings.push(Warning {
                kind,
                message: msg,
                count: acc.count,
                frames: acc.frames,
            });
        }
    };
    let n = a.partial.count;
    let d = a.partial.detail.clone().unwrap_or_default();
    push(
        "partial-flow",
        a.partial,
        format!("{} connection{} already open when the capture began (no handshake seen; originator guessed), e.g. {}", n, if n == 1 { " was" } else { "s were" }, d),
    );
    let n = a.ended_early.count;
    let d = a.ended_early.detail.clone().unwrap_or_default();
    push(
        "capture-ended-early",
        a.ended_early,
        format!(
            "{} connection attempt{} still waiting for an answer when the capture ended (inconclusive, not reported as syn-unanswered; --syn-timeout {}), e.g. {}",
            n,
            if n == 1 { " was" } else { "s were" },
            human_duration(th.syn_timeout_ns),
            d
        ),
    );
    let n = a.one_direction.count;
    let d = a.one_direction.detail.clone().unwrap_or_default();
    push(
        "one-direction-only",
        a.one_direction,
        format!("{} connection{} only one direction: the capture missed the other (asymmetric routing, `tcpdump -Q`, or a filter), e.g. {}", n, if n == 1 { " shows" } else { "s show" }, d),
    );
    for (kind, msg) in capture_warnings(&capture) {
        warnings.push(Warning {
            kind,
            message: msg,
            count: 1,
            frames: Vec::new(),
        });
    }
    let verdicts = a.agg.finish();
    Ok(Analysis {
        capture,
        connections: a.connections,
        verdicts,
        warnings,
    })
}

fn capture_warnings(c: &CaptureSummary) -> Vec<(&'static str, String)> {
    let mut w = Vec::new();
    for line in c.warnings() {
        let kind = if line.contains("truncated or corrupt") {
            "file-truncated"
        } else if line.contains("snaplen") {
            "snaplen"
        } else if line.contains("fragments") {
            "ip-fragments"
        } else if line.contains("backwards") {
            "time-reversal"
        } else {
            "malformed"
        };
        w.push((kind, line));
    }
    w
}

/// Chooses the frames that `--evidence-pcap` writes: every frame of the connections behind the
/// verdicts (matched by 4-tuple and time span) plus every evidence frame.
pub struct EvidenceSelector {
    flows: rustc_hash::FxHashMap<
        (std::net::SocketAddr, std::net::SocketAddr),
        Vec<(Timestamp, Timestamp)>,
    >,
    frames: rustc_hash::FxHashSet<(u16, u64)>,
}

impl EvidenceSelector {
    pub fn new(verdicts: &[Verdict]) -> EvidenceSelector {
        let mut flows: rustc_hash::FxHashMap<_, Vec<_>> = Default::default();
        let mut frames = rustc_hash::FxHashSet::default();
        for v in verdicts {
            for f in &v.flows {
                flows
                    .entry((f.orig, f.resp))
                    .or_default()
                    .push((f.first.ts, f.last.ts));
            }
            for e in &v.evidence {
                frames.insert((e.frame.file, e.frame.number));
            }
        }
        EvidenceSelector { flows, frames }
    }

    pub fn keep(&self, f: &crate::capture::Frame<'_>) -> bool {
        if self.frames.contains(&(f.file, f.number)) {
            return true;
        }
        let crate::decode::Decoded::Tcp(seg) = crate::decode::decode(f.link, f.data) else {
            return false;
        };
        let a = std::net::SocketAddr::new(seg.src, seg.sport);
        let b = std::net::SocketAddr::new(seg.dst, seg.dport);
        [(a, b), (b, a)].iter().any(|k| {
            self.flows
                .get(k)
                .is_some_and(|spans| spans.iter().any(|(s, e)| f.ts >= *s && f.ts <= *e))
        })
    }
}
