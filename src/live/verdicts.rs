//! Turns successive live snapshots of the verdict list into opened / updated / resolved events.
//!
//! Owns: the per-verdict state between snapshots (last emitted count and time, open or
//! resolved), the once-per-second limit on updates, and the resolution rule. Must not: judge
//! connections (the analysis does) or format anything.
//!
//! Rules, for a verdict identified by (signature, hop, server):
//! - `Opened` the first time it appears, and again (`reopened`) when a resolved verdict's
//!   connection count grows.
//! - `Updated` when its connection count differs from the last one emitted, at most once per
//!   `MIN_UPDATE_INTERVAL_NS`; a change inside that second is emitted by a later snapshot.
//! - `Resolved { Recovered }` when no new failure came for `resolve_after` (its last affected
//!   connection is that old) and a healthy connection to the same server ended after it.
//! - `Resolved { Withdrawn }` when it is no longer in the analysis at all: a judgement of a still
//!   open connection that a late answer undid, or a hop that role inference changed.
//!
//! Invariant: at most `MAX_TRACKED_VERDICTS` verdicts are tracked; beyond it new verdicts are
//! not reported as events (they are in the summaries and the final report) and a counter says how
//! many were left out.

use crate::signature::{Severity, SignatureId};
use crate::time::{Timestamp, NANOS_PER_SEC};
use crate::topology::Hop;
use crate::verdict::Verdict;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;

/// Verdicts tracked between snapshots at most.
pub const MAX_TRACKED_VERDICTS: usize = 10_000;

/// Shortest time between two `Updated` events of one verdict.
pub const MIN_UPDATE_INTERVAL_NS: i64 = NANOS_PER_SEC;

pub type VerdictKey = (SignatureId, Hop, SocketAddr);

/// What an event says about a verdict without the verdict itself (kept between snapshots).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VerdictBrief {
    pub signature: SignatureId,
    pub severity: Severity,
    pub hop: Hop,
    pub server: SocketAddr,
    pub flow_count: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
}

impl VerdictBrief {
    pub fn of(v: &Verdict) -> VerdictBrief {
        VerdictBrief {
            signature: v.signature,
            severity: v.severity,
            hop: v.hop,
            server: v.server,
            flow_count: v.flow_count,
            first_ts: v.first_ts,
            last_ts: v.last_ts,
        }
    }

    pub fn key(&self) -> VerdictKey {
        (self.signature, self.hop, self.server)
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ResolveReason {
    /// No new failure for `resolve_after`, and a healthy connection since the last one.
    Recovered { last_healthy: Timestamp },
    /// No longer in the analysis (see the module doc).
    Withdrawn,
}

/// One change, for the caller to turn into an event.
pub enum Change<'a> {
    Opened {
        verdict: &'a Verdict,
        reopened: bool,
    },
    Updated {
        verdict: &'a Verdict,
        previous: u64,
    },
    Resolved {
        verdict: VerdictBrief,
        reason: ResolveReason,
    },
}

struct Tracked {
    brief: VerdictBrief,
    emitted_count: u64,
    emitted_at: Timestamp,
    open: bool,
    /// Seen in the snapshot being processed.
    seen: bool,
}

pub struct VerdictTracker {
    map: FxHashMap<VerdictKey, Tracked>,
    resolve_after_ns: i64,
    /// Verdicts not tracked because the table was full.
    pub untracked: u64,
    /// Resolutions so far.
    pub resolved: u64,
    /// Openings so far (reopenings included).
    pub opened: u64,
}

impl VerdictTracker {
    pub fn new(resolve_after_ns: i64) -> VerdictTracker {
        VerdictTracker {
            map: FxHashMap::default(),
            resolve_after_ns,
            untracked: 0,
            resolved: 0,
            opened: 0,
        }
    }

    /// Verdicts open now (opened or reopened, not resolved).
    pub fn open(&self) -> impl Iterator<Item = &VerdictBrief> {
        self.map.values().filter(|t| t.open).map(|t| &t.brief)
    }

    pub fn tracked(&self) -> usize {
        self.map.len()
    }

    /// Compares a snapshot taken at `now` with the previous ones; `last_healthy(server)` is when
    /// the latest healthy connection to `server` ended.
    pub fn update<'a>(
        &mut self,
        now: Timestamp,
        verdicts: &'a [Verdict],
        last_healthy: impl Fn(SocketAddr) -> Option<Timestamp>,
        mut emit: impl FnMut(Change<'a>),
    ) {
        for t in self.map.values_mut() {
            t.seen = false;
        }
        for v in verdicts {
            let key = (v.signature, v.hop, v.server);
            let n = self.map.len();
            let t = match self.map.get_mut(&key) {
                Some(t) => t,
                None if n < MAX_TRACKED_VERDICTS => {
                    self.map.insert(
                        key,
                        Tracked {
                            brief: VerdictBrief::of(v),
                            emitted_count: v.flow_count,
                            emitted_at: now,
                            open: true,
                            seen: true,
                        },
                    );
                    self.opened += 1;
                    emit(Change::Opened {
                        verdict: v,
                        reopened: false,
                    });
                    continue;
                }
                None => {
                    self.untracked += 1;
                    continue;
                }
            };
            t.seen = true;
            let grew = v.flow_count > t.brief.flow_count || v.last_ts > t.brief.last_ts;
            t.brief = VerdictBrief::of(v);
            if !t.open {
                if grew {
                    t.open = true;
                    t.emitted_count = v.flow_count;
                    t.emitted_at = now;
                    self.opened += 1;
                    emit(Change::Opened {
                        verdict: v,
                        reopened: true,
                    });
                }
                continue;
            }
            if v.flow_count != t.emitted_count
                && now.nanos_since(t.emitted_at) >= MIN_UPDATE_INTERVAL_NS
            {
                let previous = t.emitted_count;
                t.emitted_count = v.flow_count;
                t.emitted_at = now;
                emit(Change::Updated {
                    verdict: v,
                    previous,
                });
            }
            let quiet = now.nanos_since(v.last_ts) >= self.resolve_after_ns;
            if let Some(h) = last_healthy(v.server).filter(|h| *h > v.last_ts) {
                if quiet {
                    t.open = false;
                    self.resolved += 1;
                    emit(Change::Resolved {
                        verdict: t.brief,
                        reason: ResolveReason::Recovered { last_healthy: h },
                    });
                }
            }
        }
        let mut gone: Vec<VerdictKey> = Vec::new();
        for (k, t) in self.map.iter_mut().filter(|(_, t)| !t.seen) {
            if t.open {
                self.resolved += 1;
                emit(Change::Resolved {
                    verdict: t.brief,
                    reason: ResolveReason::Withdrawn,
                });
            }
            gone.push(*k);
        }
        for k in gone {
            self.map.remove(&k);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verdict::Verdict;

    const S: i64 = NANOS_PER_SEC;

    fn verdict(count: u64, last_s: i64) -> Verdict {
        Verdict {
            signature: SignatureId::ConnectionRefused,
            severity: Severity::Critical,
            hop: Hop::ClientToServer,
            client: "127.0.0.2".parse().unwrap(),
            clients: 1,
            server: "127.0.0.1:80".parse().unwrap(),
            flow_count: count,
            total_flows: count,
            by_severity: [0, 0, count],
            first_ts: Timestamp(0),
            last_ts: Timestamp(last_s * S),
            summary: String::new(),
            notes: Vec::new(),
            likely_causes: Vec::new(),
            next_checks: Vec::new(),
            wireshark_filter: String::new(),
            evidence: Vec::new(),
            facts: Vec::new(),
            flows: Vec::new(),
            notes_omitted: 0,
            evidence_capped: false,
        }
    }

    /// Runs one snapshot; returns the events as short strings.
    fn step(
        t: &mut VerdictTracker,
        now_s: i64,
        vs: &[Verdict],
        healthy_s: Option<i64>,
    ) -> Vec<String> {
        let mut out = Vec::new();
        t.update(
            Timestamp(now_s * S),
            vs,
            |_| healthy_s.map(|h| Timestamp(h * S)),
            |c| {
                out.push(match c {
                    Change::Opened { verdict, reopened } => {
                        format!("opened {} {}", verdict.flow_count, reopened)
                    }
                    Change::Updated { verdict, previous } => {
                        format!("updated {}->{}", previous, verdict.flow_count)
                    }
                    Change::Resolved { reason, .. } => match reason {
                        ResolveReason::Recovered { .. } => "resolved".into(),
                        ResolveReason::Withdrawn => "withdrawn".into(),
                    },
                })
            },
        );
        out
    }

    #[test]
    fn updates_only_on_change_and_once_per_second() {
        let mut t = VerdictTracker::new(30 * S);
        assert_eq!(step(&mut t, 1, &[verdict(1, 1)], None), ["opened 1 false"]);
        assert!(
            step(&mut t, 2, &[verdict(1, 1)], None).is_empty(),
            "no change"
        );
        // Changed twice within one second of the last event: one update, with the latest count.
        let mut t2 = VerdictTracker::new(30 * S);
        step(&mut t2, 10, &[verdict(1, 10)], None);
        let mut half = Vec::new();
        t2.update(
            Timestamp(10 * S + S / 2),
            &[verdict(2, 10)],
            |_| None,
            |_| half.push(()),
        );
        assert!(half.is_empty(), "within a second of the opening");
        assert_eq!(step(&mut t2, 11, &[verdict(3, 11)], None), ["updated 1->3"]);
        assert!(step(&mut t2, 12, &[verdict(3, 11)], None).is_empty());
    }

    #[test]
    fn resolves_after_quiet_time_and_a_healthy_connection() {
        let mut t = VerdictTracker::new(30 * S);
        step(&mut t, 5, &[verdict(2, 5)], None);
        // Quiet long enough but nothing healthy since: stays open.
        assert!(step(&mut t, 40, &[verdict(2, 5)], Some(4)).is_empty());
        // Healthy, but the last failure is too recent.
        assert!(step(&mut t, 20, &[verdict(2, 5)], Some(10)).is_empty());
        assert_eq!(step(&mut t, 41, &[verdict(2, 5)], Some(10)), ["resolved"]);
        assert_eq!(t.open().count(), 0);
        assert!(
            step(&mut t, 42, &[verdict(2, 5)], Some(10)).is_empty(),
            "once"
        );
        // A new failure reopens it.
        assert_eq!(
            step(&mut t, 50, &[verdict(3, 49)], Some(10)),
            ["opened 3 true"]
        );
        assert_eq!(t.open().count(), 1);
        assert_eq!((t.opened, t.resolved), (2, 1));
    }

    #[test]
    fn a_verdict_gone_from_the_analysis_is_withdrawn() {
        let mut t = VerdictTracker::new(30 * S);
        step(&mut t, 5, &[verdict(1, 5)], None);
        assert_eq!(step(&mut t, 6, &[], None), ["withdrawn"]);
        assert_eq!(t.tracked(), 0);
        assert_eq!(step(&mut t, 7, &[verdict(1, 5)], None), ["opened 1 false"]);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = VerdictTracker::new(30 * S);
        let vs: Vec<Verdict> = (0..MAX_TRACKED_VERDICTS as u32 + 5)
            .map(|i| {
                let mut v = verdict(1, 1);
                v.server = SocketAddr::from((std::net::Ipv4Addr::from(i), 80));
                v
            })
            .collect();
        let mut n = 0;
        t.update(Timestamp(S), &vs, |_| None, |_| n += 1);
        assert_eq!(n, MAX_TRACKED_VERDICTS);
        assert_eq!(t.tracked(), MAX_TRACKED_VERDICTS);
        assert_eq!(t.untracked, 5);
    }
}
