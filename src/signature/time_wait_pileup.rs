//! `time-wait-pileup`: many actively closed connections held in TIME_WAIT on one host towards one
//! peer endpoint, or a new SYN reusing a 4-tuple still in TIME_WAIT.
//!
//! The side that sends the first FIN holds TIME_WAIT for `time_wait` (Linux: 60 s) after the
//! close. For each (holder, fixed peer endpoint) this rule keeps the TIME_WAIT expiry of every
//! closed connection in a heap, so its memory is bounded by the connections concurrently in
//! TIME_WAIT, and records the peak. Reported when the peak exceeds `time_wait_threshold`
//! (default 1000) — whether the client side or the server side closes first — or when a SYN
//! reused a 4-tuple in TIME_WAIT. Connections closed by RST hold no TIME_WAIT and never count.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::{Direction, FlowSummary};
use crate::time::{Timestamp, NANOS_PER_SEC};
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::net::{IpAddr, SocketAddr};

/// Linux's default ephemeral port range `32768–60999`.
pub const EPHEMERAL_PORTS: u32 = 28_232;
/// Reuse evidence frames kept per group.
const MAX_REUSE_EVIDENCE: usize = 10;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    holder: IpAddr,
    /// The server endpoint of these connections (fixed across them).
    server: SocketAddr,
    holder_is_client: bool,
}

#[derive(Clone, Default)]
struct Group {
    /// TIME_WAIT expiry per 4-tuple (holder port, peer port) currently held; a reused 4-tuple
    /// replaces its entry (the kernel ended that TIME_WAIT early to allow the reuse).
    held: FxHashMap<(u16, u16), i64>,
    /// The same expiries in time order, for lazy removal (stale entries are skipped).
    expiries: BinaryHeap<Reverse<(i64, u16, u16)>>,
    peak: u32,
    peak_at: Timestamp,
    closes: u64,
    first_close: Option<Timestamp>,
    last_close: Option<Timestamp>,
    first_start: Option<Timestamp>,
    example: Option<Evidence>,
    peak_evidence: Option<Evidence>,
    reuses: u64,
    reuse_evidence: Vec<Evidence>,
    clients: u64,
    last_client: Option<IpAddr>,
}

#[derive(Clone)]
pub struct TimeWaitTracker {
    th: Thresholds,
    groups: FxHashMap<Key, Group>,
}

impl TimeWaitTracker {
    pub fn new(th: Thresholds) -> TimeWaitTracker {
        TimeWaitTracker {
            th,
            groups: FxHashMap::default(),
        }
    }

    pub fn observe(&mut self, f: &FlowSummary) {
        if f.reused_in_time_wait {
            // The reusing side is the originator; group it with its TIME_WAIT holder (itself when
            // clients close first, the server otherwise — both are keyed by the server endpoint).
            for holder_is_client in [true, false] {
                let holder = if holder_is_client {
                    f.orig.ip()
                } else {
                    f.resp.ip()
                };
                if let Some(g) = self.groups.get_mut(&Key {
                    holder,
                    server: f.resp,
                    holder_is_client,
                }) {
                    g.reuses += 1;
                    if g.reuse_evidence.len() < MAX_REUSE_EVIDENCE {
                        if let Some(s) = f.first_syn {
                            g.reuse_evidence.push(Evidence {
                                frame: s,
                                kind: EvidenceKind::Syn,
                                description: format!(
                                    "SYN {} → {} reuses a 4-tuple still in TIME_WAIT",
                                    f.orig, f.resp
                                ),
                            });
                        }
                    }
                    break;
                }
            }
        }
        let (Some(closed), None, Some(first)) = (f.closed_at, f.rst, f.first_fin_from) else {
            return;
        };
        let holder_is_client = first == Direction::Orig;
        let holder = if holder_is_client {
            f.orig.ip()
        } else {
            f.resp.ip()
        };
        let g = self
            .groups
            .entry(Key {
                holder,
                server: f.resp,
                holder_is_client,
            })
            .or_default();
        let t = closed.0;
        while let Some(&Reverse((e, a, b))) = g.expiries.peek() {
            if e > t {
                break;
            }
            g.expiries.pop();
            if g.held.get(&(a, b)) == Some(&e) {
                g.held.remove(&(a, b));
            }
        }
        let tuple = (f.orig.port(), f.resp.port());
        let expiry = t + self.th.time_wait_ns;
        g.held.insert(tuple, expiry);
        g.expiries.push(Reverse((expiry, tuple.0, tuple.1)));
        g.closes += 1;
        if g.last_client != Some(f.orig.ip()) {
            g.clients += 1;
            g.last_client = Some(f.orig.ip());
        }
        g.first_close = Some(g.first_close.map_or(closed, |c| c.min(closed)));
        g.last_close = Some(g.last_close.map_or(closed, |c| c.max(closed)));
        g.first_start = Some(g.first_start.map_or(f.start, |c| c.min(f.start)));
        let fin = f.stats(first).first_fin;
        if g.example.is_none() {
            g.example = fin.map(|fr| Evidence {
                frame: fr,
                kind: EvidenceKind::Fin,
                description: format!("first FIN from {} (it will hold TIME_WAIT)", holder),
            });
        }
        let n = g.held.len() as u32;
        if n > g.peak {
            g.peak = n;
            g.peak_at = closed;
            g.peak_evidence = fin.map(|fr| Evidence {
                frame: fr,
                kind: EvidenceKind::Fin,
                description: format!(
                    "FIN from {} at the peak: {} connections in TIME_WAIT",
                    holder, n
                ),
            });
        }
    }

    pub fn findings(self) -> Vec<Finding> {
        let th = self.th;
        let mut out = Vec::new();
        for (k, g) in self.groups {
            let pileup = g.peak > th.time_wait_threshold;
            if !pileup && g.reuses == 0 {
                continue;
            }
            let (first, last) = (
                g.first_close.unwrap_or_default(),
                g.last_close.unwrap_or_default(),
            );
            let window_ns = last.nanos_since(first).max(1);
            let rate = g.closes as f64 / (window_ns as f64 / NANOS_PER_SEC as f64).max(1e-3);
            let share = 100.0 * g.peak as f64 / EPHEMERAL_PORTS as f64;
            let side = if k.holder_is_client {
                "the client"
            } else {
                "the server"
            };
            let mut note = format!(
                "{} ({}, it closes first) holds up to {} connections with {} in TIME_WAIT at once, {:.1}% of the 28 232-port ephemeral range; {} closes at {:.0}/s",
                k.holder, side, g.peak, k.server, share, g.closes, rate
            );
            if g.reuses > 0 {
                note.push_str(&format!(
                    "; {} new SYNs reused a 4-tuple still in TIME_WAIT",
                    g.reuses
                ));
            }
            // Both a pileup over the threshold and a reuse inside TIME_WAIT are warnings: the
            // host is one rate increase away from failing to connect.
            let severity = Severity::Warning;
            let mut ev: Vec<Evidence> = g.example.into_iter().chain(g.peak_evidence).collect();
            ev.extend(g.reuse_evidence);
            ev.sort_by_key(|e| (e.frame.file, e.frame.number));
            ev.dedup_by_key(|e| (e.frame.file, e.frame.number));
            out.push(Finding {
                signature: SignatureId::TimeWaitPileup,
                severity,
                client: if k.holder_is_client {
                    k.holder
                } else {
                    g.last_client.unwrap_or(k.holder)
                },
                server: k.server,
                flow: None,
                weight: g.closes,
                first_ts: g.first_start.unwrap_or(first),
                last_ts: last,
                note,
                evidence: ev,
                facts: vec![
                    ("holder", k.holder.to_string()),
                    ("peak_time_wait", g.peak.to_string()),
                    ("peak_at", g.peak_at.to_string()),
                    ("closes", g.closes.to_string()),
                    ("close_rate_per_s", format!("{:.1}", rate)),
                    ("ephemeral_range_share_pct", format!("{:.1}", share)),
                    ("reused_in_time_wait", g.reuses.to_string()),
                ],
            });
        }
        out
    }
}
