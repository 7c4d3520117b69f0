//! `proxyscope live`: the `analyze` pipeline on a live interface, with verdicts emitted while the
//! incident is happening.
//!
//! Owns: the loop that feeds frames from `capture::live` into the pipeline, the periodic ticks
//! that expire connections in wall-clock time (capture time *is* wall-clock time here), the
//! snapshots that turn verdict changes into events, and the final report with libpcap's drop
//! counters. Must not: format output (the CLI does) or hold protocol logic.
//!
//! "As soon as they are certain": connections are judged when they end — closed ones
//! `LIVE_CLOSED_TIMEOUT_NS` (1 s) after their last packet — and every tick (at most one second
//! apart) re-concludes a copy of the analyzer to which the still-open unanswered attempts are
//! added, so an unanswered SYN is reported `--syn-timeout` after its last send while later
//! retransmissions still count towards the same attempt.

use crate::analyze::{conclude, Analysis, Analyzer, Warning};
use crate::capture::live::{LiveConfig, LiveSource, LiveStats};
use crate::capture::FileInfo;
use crate::error::Result;
use crate::flow::TrackerConfig;
use crate::pipeline::Pipeline;
use crate::signature::{SignatureId, Thresholds};
use crate::time::{Timestamp, NANOS_PER_SEC};
use crate::topology::GivenRoles;
use crate::verdict::{Hop, Verdict};
use std::cell::RefCell;
use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

/// Quiet time after which a closed/reset connection is judged in live mode.
pub const LIVE_CLOSED_TIMEOUT_NS: i64 = NANOS_PER_SEC;

/// How often a `Summary` event is emitted by default (`--report-every`).
pub const DEFAULT_REPORT_EVERY: crate::time::Duration = crate::time::Duration::from_secs(10);

/// Longest time between two ticks (verdict checks), whatever `--report-every` says.
pub const MAX_TICK: Duration = Duration::from_secs(1);

#[derive(Clone, Debug)]
pub struct LiveRun {
    pub source: LiveConfig,
    pub tracker: TrackerConfig,
    pub thresholds: Thresholds,
    pub max_evidence: usize,
    pub roles: GivenRoles,
    /// Stop after this long (None: until Ctrl-C / SIGTERM).
    pub duration: Option<Duration>,
    /// How often a `Summary` event is emitted.
    pub report_every: Duration,
    /// Stop after this many packets (`-c`, as tcpdump).
    pub max_packets: Option<u64>,
}

/// What the live loop tells the CLI while it runs.
pub enum LiveEvent<'a> {
    /// A verdict appeared (`opened`) or its connection count changed (`updated`).
    Verdict {
        opened: bool,
        verdict: &'a Verdict,
        at: Timestamp,
    },
    /// Every `report_every`: counters and the current verdicts.
    Summary {
        at: Timestamp,
        packets: u64,
        tcp_segments: u64,
        active_connections: usize,
        analysis: &'a Analysis,
    },
}

/// The final result: the full analysis (as `analyze` would give on the written pcap) and the
/// interface counters.
pub struct LiveResult {
    pub analysis: Analysis,
    pub stats: LiveStats,
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as i64)
}

/// Signatures whose verdicts need every packet: kernel drops can fake or hide them.
fn drop_sensitive(s: SignatureId) -> bool {
    matches!(
        s,
        SignatureId::RetransmissionStorm
            | SignatureId::SynUnanswered
            | SignatureId::ConnectionReset
            | SignatureId::UpstreamTimeout
            | SignatureId::TlsStall
    )
}

fn file_info(
    cfg: &LiveRun,
    src: &LiveSource,
    packets: u64,
    sum: &crate::pipeline::CaptureSummary,
) -> FileInfo {
    FileInfo {
        path: cfg
            .source
            .write
            .clone()
            .unwrap_or_else(|| format!("live:{}", cfg.source.iface).into()),
        link: Some(src.link()),
        dlt: src.link().dlt(),
        snaplen: cfg.source.snaplen.max(0) as u32,
        frames: packets,
        frames_matched: packets,
        frames_truncated: sum.truncated_frames,
        cut_range: sum.cut_range,
        first_ts: sum.first_ts,
        last_ts: sum.last_ts,
        stopped_early: None,
        clock_offset: None,
        ..FileInfo::default()
    }
}

/// Runs until `stop` is set or the duration passes; `emit` receives events as they happen.
pub fn run(
    cfg: &LiveRun,
    stop: &AtomicBool,
    mut emit: impl FnMut(LiveEvent<'_>),
) -> Result<LiveResult> {
    let mut src = LiveSource::open(&cfg.source)?;
    let mut tracker = cfg.tracker;
    // A closed or reset connection is judged after one quiet second instead of five.
    tracker.closed_timeout_ns = LIVE_CLOSED_TIMEOUT_NS;
    let pipeline = RefCell::new(Pipeline::new(
        tracker,
        Analyzer::new(cfg.thresholds, cfg.max_evidence),
        1,
    ));
    let started = now();
    let deadline = cfg.duration.map(|d| started.add_nanos(d.as_nanos() as i64));
    let tick = cfg
        .report_every
        .min(MAX_TICK)
        .max(Duration::from_millis(50));
    let mut last_summary = started;
    let mut seen: Vec<((SignatureId, Hop, SocketAddr), u64)> = Vec::new();
    let packets = std::cell::Cell::new(0u64);
    let stop_local = AtomicBool::new(false);
    {
        let mut on_tick = |t: Timestamp| {
            let mut p = pipeline.borrow_mut();
            p.tick(t);
            let mut sum = p.summary();
            sum.last_ts = Some(t);
            sum.first_ts.get_or_insert(started);
            // Judge a copy: open unanswered attempts are added to it as if the capture ended
            // now (`--syn-timeout` applies), while the table keeps them so that later SYN
            // retransmissions still join the same attempt.
            let mut an = p.observer().clone();
            for f in p.open_attempts() {
                crate::pipeline::Observer::flow_end(&mut an, f, Some(Default::default()));
            }
            let snapshot = conclude(an, sum.clone(), cfg.roles.clone());
            for v in &snapshot.verdicts {
                let key = (v.signature, v.hop, v.server);
                match seen.iter_mut().find(|(k, _)| *k == key) {
                    None => {
                        seen.push((key, v.flow_count));
                        emit(LiveEvent::Verdict {
                            opened: true,
                            verdict: v,
                            at: t,
                        });
                    }
                    Some((_, n)) if *n != v.flow_count => {
                        *n = v.flow_count;
                        emit(LiveEvent::Verdict {
                            opened: false,
                            verdict: v,
                            at: t,
                        });
                    }
                    _ => {}
                }
            }
            if t.nanos_since(last_summary) >= cfg.report_every.as_nanos() as i64 {
                last_summary = t;
                emit(LiveEvent::Summary {
                    at: t,
                    packets: packets.get(),
                    tcp_segments: sum.tcp_segments,
                    active_connections: p.active_connections(),
                    analysis: &snapshot,
                });
            }
            // The source checks one flag: the user's (Ctrl-C, SIGTERM) is copied into it here.
            if deadline.is_some_and(|d| t >= d) || stop.load(std::sync::atomic::Ordering::Relaxed) {
                stop_local.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        };
        src.run(
            &stop_local,
            tick,
            |f| {
                packets.set(packets.get() + 1);
                pipeline.borrow_mut().frame(f);
                // The source checks the flag before reading the next packet: exactly N are
                // read (and written with --write).
                if cfg.max_packets.is_some_and(|n| packets.get() >= n) {
                    stop_local.store(true, std::sync::atomic::Ordering::Relaxed);
                }
            },
            &mut on_tick,
        )?;
    }
    let stats = src.stats();
    let p = pipeline.into_inner();
    let (analyzer, mut sum) = p.finish();
    // The final report ends at the last captured packet, as `analyze` on the `--write` file
    // does, so the two agree (events during the run were judged against the wall clock).
    let end = now();
    sum.last_ts = Some(sum.last_ts.unwrap_or(end));
    sum.first_ts.get_or_insert(started);
    sum.files = vec![file_info(cfg, &src, packets.get(), &sum)];
    sum.frames = packets.get();
    let mut analysis = conclude(analyzer, sum, cfg.roles.clone());
    let dropped = stats.dropped + stats.if_dropped;
    if dropped > 0 {
        analysis.warnings.push(Warning {
            kind: "kernel-drops",
            message: format!(
                "libpcap reports {} packets dropped by the kernel and {} by the interface out of {} received: verdicts that need every packet (retransmissions, unanswered SYNs, resets, timeouts) may be affected",
                stats.dropped, stats.if_dropped, stats.received
            ),
            count: dropped,
            frames: Vec::new(),
        });
        for v in analysis
            .verdicts
            .iter_mut()
            .filter(|v| drop_sensitive(v.signature))
        {
            v.notes.push((
                format!(
                    "possibly affected: {} packets were dropped by the kernel during the capture",
                    dropped
                ),
                0,
            ));
        }
    }
    Ok(LiveResult { analysis, stats })
}

/// Seconds as a Duration, for flags.
pub fn secs(v: f64) -> Duration {
    Duration::from_nanos((v * NANOS_PER_SEC as f64) as u64)
}
