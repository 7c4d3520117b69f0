//! Which frames support which verdicts: the selection and packet comments of the evidence
//! capture (`analyze --evidence-pcap`). A frame is kept when it is a verdict's evidence frame or
//! belongs to a connection behind a verdict (same endpoints, within that connection's time
//! span); each kept frame also learns the verdicts it supports, for its comment.
//!
//! Must not: do I/O (`capture::write_selected` writes) or format reports.

use crate::capture::Frame;
use crate::time::Timestamp;
use crate::verdict::Verdict;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

/// A connection's time spans, each with the verdict (index) it belongs to.
type Spans = Vec<(Timestamp, Timestamp, usize)>;

/// The verdicts each frame supports; see the module doc.
pub struct EvidenceIndex {
    /// Connection (orig, resp) -> time spans, each with the verdict (index) it belongs to.
    flows: FxHashMap<(SocketAddr, SocketAddr), Spans>,
    /// (file, frame) -> verdicts naming it as evidence.
    frames: FxHashMap<(u16, u64), Vec<usize>>,
    /// One short label per verdict: `[1] connection-refused (critical)`.
    labels: Vec<String>,
}

impl EvidenceIndex {
    pub fn new(verdicts: &[Verdict]) -> EvidenceIndex {
        let mut flows: FxHashMap<_, Vec<_>> = FxHashMap::default();
        let mut frames: FxHashMap<_, Vec<_>> = FxHashMap::default();
        for (i, v) in verdicts.iter().enumerate() {
            for f in &v.flows {
                flows
                    .entry((f.orig, f.resp))
                    .or_default()
                    .push((f.first.ts, f.last.ts, i));
            }
            for e in &v.evidence {
                frames
                    .entry((e.frame.file, e.frame.number))
                    .or_default()
                    .push(i);
            }
        }
        let labels = verdicts
            .iter()
            .enumerate()
            .map(|(i, v)| {
                format!(
                    "[{}] {} ({}, {} {})",
                    i + 1,
                    v.signature.name(),
                    v.severity.name(),
                    v.hop.name(),
                    v.server
                )
            })
            .collect();
        EvidenceIndex {
            flows,
            frames,
            labels,
        }
    }

    /// The verdicts (indices, ascending, no repeats) that `f` supports; empty when it is not
    /// evidence.
    pub fn supports(&self, f: &Frame<'_>) -> Vec<usize> {
        let mut out: Vec<usize> = self
            .frames
            .get(&(f.file, f.number))
            .cloned()
            .unwrap_or_default();
        if let crate::decode::Decoded::Tcp(seg) = crate::decode::decode(f.link, f.data) {
            let a = SocketAddr::new(seg.src, seg.sport);
            let b = SocketAddr::new(seg.dst, seg.dport);
            for k in [(a, b), (b, a)] {
                if let Some(spans) = self.flows.get(&k) {
                    out.extend(
                        spans
                            .iter()
                            .filter(|(s, e, _)| f.ts >= *s && f.ts <= *e)
                            .map(|(_, _, i)| *i),
                    );
                }
            }
        }
        out.sort_unstable();
        out.dedup();
        out
    }

    /// The packet comment of `f` in the evidence capture, or `None` when it is not evidence:
    /// `refused.pcap frame 191; supports [1] connection-refused (critical, proxy->backend
    /// 10.78.2.2:8080)`. An evidence frame named by a verdict says so (`evidence of [1]`).
    pub fn comment(&self, f: &Frame<'_>, file_name: &str) -> Option<String> {
        let v = self.supports(f);
        if v.is_empty() {
            return None;
        }
        let named = self.frames.get(&(f.file, f.number));
        let parts: Vec<String> = v
            .iter()
            .map(|&i| {
                let star = named.is_some_and(|n| n.contains(&i));
                format!(
                    "{}{}",
                    self.labels[i],
                    if star { " — listed evidence" } else { "" }
                )
            })
            .collect();
        Some(format!(
            "{} frame {}; supports {}",
            file_name,
            f.number,
            parts.join("; ")
        ))
    }
}
