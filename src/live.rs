//! `proxyscope live`: the `analyze` pipeline on a live interface, with verdicts emitted while the
//! incident is happening.
//!
//! Owns: the loop that feeds frames from `capture::live` into the pipeline, the periodic ticks
//! that expire connections in wall-clock time (capture time *is* wall-clock time here), the
//! snapshots that turn verdict changes into events (`verdicts`), the live counters and metrics
//! (`tally`, `serve`), and the final report with libpcap's drop counters. Must not: format
//! output (the CLI and `report::live_events` do) or hold protocol logic.
//!
//! "As soon as they are certain": connections are judged when they end — closed ones
//! `LIVE_CLOSED_TIMEOUT_NS` (1 s) after their last packet — and every tick (at most one second
//! apart) re-concludes a copy of the analyzer to which the still-open connections that wait for
//! an answer are added as if the capture ended now: unanswered attempts (`syn-unanswered`
//! `--syn-timeout` after the last SYN, while later retransmissions still count towards the same
//! attempt), ClientHellos without a ServerHello (`tls-stall`) and requests without a response
//! byte (`upstream-timeout` once they waited `--response-timeout`). Each rule decides from the
//! same facts and thresholds as at the end of a capture file, so an event is emitted only when
//! the final report would say the same if the capture stopped then.
//!
//! Two threads: the capture thread reads libpcap (and writes `--write`), copies frames into
//! batches of `BATCH_FRAMES` and sends them, with the ticks in between, through a queue bounded
//! at `QUEUE_BYTES`; the calling thread analyses, concludes the snapshots and emits the events.
//! Reading the kernel ring never waits for a snapshot, so a slow tick is absorbed by the queue
//! and the kernel buffer instead of becoming kernel drops at once.
//!
//! Memory stays flat over a long run: the flow table is bounded (`--max-connections`), the
//! analyzer's tables are bounded by their own caps, the event tracker by
//! `verdicts::MAX_TRACKED_VERDICTS`, the health table by `tally::MAX_HEALTH_ENDPOINTS`, and the
//! metrics' label sets by `report::metrics::MAX_LABELLED_ENDPOINTS`.

mod serve;
mod tally;
mod verdicts;

pub use serve::MetricsServer;
pub use tally::{healthy, LiveObserver, Outcome, MAX_HEALTH_ENDPOINTS};
pub use verdicts::{
    Change, ResolveReason, VerdictBrief, VerdictTracker, MAX_TRACKED_VERDICTS,
    MIN_UPDATE_INTERVAL_NS,
};

use crate::analyze::{conclude, Analysis, Analyzer, Warning};
use crate::capture::live::{LiveConfig, LiveSource, LiveStats, Tick};
use crate::capture::{FileInfo, Frame, LinkType};
use crate::error::Result;
use crate::flow::TrackerConfig;
use crate::pipeline::Pipeline;
use crate::report::metrics::LiveMetrics;
use crate::signature::{SignatureId, Thresholds};
use crate::time::{Timestamp, NANOS_PER_SEC};
use crate::topology::{GivenRoles, Topology};
use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

/// Quiet time after which a closed/reset connection is judged in live mode.
pub const LIVE_CLOSED_TIMEOUT_NS: i64 = NANOS_PER_SEC;

/// How often a `Summary` event is emitted by default (`--report-every`).
pub const DEFAULT_REPORT_EVERY: crate::time::Duration = crate::time::Duration::from_secs(10);

/// Longest time between two ticks (verdict checks), whatever `--report-every` says.
pub const MAX_TICK: Duration = Duration::from_secs(1);

/// Default of `--resolve-after`.
pub const DEFAULT_RESOLVE_AFTER: Duration = Duration::from_secs(30);

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
    /// A verdict resolves after this long without a new failure, once a healthy connection to
    /// its server followed the last failure.
    pub resolve_after: Duration,
    /// Where the metrics are kept (served by a `MetricsServer`).
    pub metrics: Option<Arc<LiveMetrics>>,
}

/// What the live loop tells the CLI while it runs.
pub enum LiveEvent<'a> {
    /// A verdict opened, changed its connection count, or resolved.
    Verdict {
        at: Timestamp,
        change: Change<'a>,
        /// The files written so far (`--write`), indexed by the evidence's `file`.
        files: &'a [PathBuf],
    },
    /// Every `report_every`.
    Summary(LiveSummary<'a>),
}

/// The periodic summary. Counters are consistent: `packets` frames were analysed (libpcap had
/// received `stats.received` by then, a few perhaps not yet read); every connection seen is
/// either finished (`finished_connections`, judged) or open (`open_connections`).
pub struct LiveSummary<'a> {
    pub at: Timestamp,
    pub packets: u64,
    pub stats: LiveStats,
    pub tcp_segments: u64,
    pub finished_connections: u64,
    pub open_connections: usize,
    /// Verdicts open now, most severe first.
    pub open_verdicts: Vec<VerdictBrief>,
    pub verdicts_opened: u64,
    pub verdicts_resolved: u64,
    /// Roles inferred by the latest verdict check (the path line).
    pub topology: &'a Topology,
}

/// The final result: the full analysis (as `analyze` would give on the written pcap) and the
/// interface counters.
pub struct LiveResult {
    pub analysis: Analysis,
    pub stats: LiveStats,
    /// Files written (`--write`), indexed by the evidence's `file`.
    pub files: Vec<PathBuf>,
}

fn now() -> Timestamp {
    let d = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    Timestamp(d.as_nanos() as i64)
}

/// A verdict check (a snapshot: the analysis re-concluded) that took `d` is followed by at least
/// `(SNAPSHOT_SPACING - 1) × d` of packet work before the next one, so checks take at most a
/// quarter of the analysis thread under load. On a quiet interface they take microseconds and run
/// every tick.
pub const SNAPSHOT_SPACING: u32 = 4;

/// Frames per batch handed from the capture thread to the analysis thread.
pub const BATCH_FRAMES: usize = 256;

/// Bytes of batches (frame bytes as captured, plus their headers) handed to the analysis thread
/// and not yet given back, at most. When the analysis falls this far behind, the capture thread
/// waits, the kernel buffer (`-B`) fills, and the kernel drops (counted, reported).
///
/// The queue is bounded by bytes, not by frames, because that is where it beats the kernel
/// ring: libpcap's ring (TPACKET_V2, which immediate mode uses) gives every frame a slot of the
/// snaplen, about 2 KiB, so the default 32 MiB ring holds about 16 000 frames whatever their
/// size, while a batch holds its frames' captured bytes in one buffer. A batch is charged its
/// buffers' capacity: at least 74 KiB for 256 frames (a 64 KiB data buffer and the headers),
/// more once it has grown for larger frames (it keeps that size when reused). So 64 MiB (the
/// most the queue could hold when it was bounded at 128 batches of 256 full-snaplen frames) hold
/// about 32 000 full-snaplen frames, and up to about 226 000 of a busy proxy's small ones (capture
/// B's are under 256 bytes): most of a second of a 300 k packet/s burst, against 50 ms in the
/// ring.
pub const QUEUE_BYTES: usize = 64 << 20;

/// Messages (batches and ticks) queued at most: a second bound, above the byte bound's at most
/// 885 batches (of the smallest size), so only a backlog of ticks could reach it.
const QUEUE_MESSAGES: usize = 4096;

/// One captured frame's header in a batch; its bytes are `data[off..off + caplen]`.
struct FrameMeta {
    file: u16,
    number: u64,
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    off: usize,
}

/// Frames copied out of libpcap's ring by the capture thread (buffers are reused).
struct Batch {
    link: LinkType,
    meta: Vec<FrameMeta>,
    data: Vec<u8>,
}

impl Batch {
    fn new(link: LinkType) -> Batch {
        Batch {
            link,
            meta: Vec::with_capacity(BATCH_FRAMES),
            data: Vec::with_capacity(BATCH_FRAMES * 256),
        }
    }

    fn push(&mut self, f: &Frame<'_>) {
        self.meta.push(FrameMeta {
            file: f.file,
            number: f.number,
            ts: f.ts,
            caplen: f.caplen,
            wire_len: f.wire_len,
            off: self.data.len(),
        });
        self.data.extend_from_slice(f.data);
    }

    fn iter(&self) -> impl Iterator<Item = (&FrameMeta, &[u8])> {
        self.meta
            .iter()
            .map(|m| (m, &self.data[m.off..m.off + m.caplen as usize]))
    }

    fn clear(&mut self) {
        self.meta.clear();
        self.data.clear();
    }

    /// Memory the batch holds (its buffers' capacity), for `QUEUE_BYTES`.
    fn bytes(&self) -> usize {
        self.data.capacity() + self.meta.capacity() * std::mem::size_of::<FrameMeta>()
    }
}

/// The capture thread's side of the queue: sends full batches, keeps the bytes of those not yet
/// given back under a budget (`QUEUE_BYTES`), and reuses the batches that come back.
struct Outbox {
    link: LinkType,
    budget: usize,
    /// Bytes of the batches on the analysis side (sent, not yet given back).
    outstanding: usize,
    /// Batches given back, for reuse.
    spare: Vec<Batch>,
}

impl Outbox {
    fn new(link: LinkType, budget: usize) -> Outbox {
        Outbox {
            link,
            budget,
            outstanding: 0,
            spare: Vec::new(),
        }
    }

    fn take_back(&mut self, b: Batch) {
        self.outstanding -= b.bytes();
        self.spare.push(b);
    }

    /// Sends `batch` (leaving an empty one in its place), first waiting, while it would take the
    /// batches on the analysis side over the budget, for batches to come back. One batch is
    /// always let through, however large. False when the analysis side is gone.
    fn send(
        &mut self,
        batch: &mut Batch,
        tx: &std::sync::mpsc::SyncSender<Msg>,
        back: &std::sync::mpsc::Receiver<Batch>,
    ) -> bool {
        while let Ok(b) = back.try_recv() {
            self.take_back(b);
        }
        while self.outstanding > 0 && self.outstanding + batch.bytes() > self.budget {
            match back.recv() {
                Ok(b) => self.take_back(b),
                Err(_) => return false,
            }
        }
        let next = self.spare.pop().unwrap_or_else(|| Batch::new(self.link));
        self.outstanding += batch.bytes();
        tx.send(Msg::Frames(std::mem::replace(batch, next))).is_ok()
    }
}

/// What the capture thread sends: frames, and the ticks in between (in capture order).
enum Msg {
    Frames(Batch),
    Tick {
        now: Timestamp,
        stats: LiveStats,
        /// The files written, when they changed since the last tick.
        files: Option<Vec<PathBuf>>,
    },
}

/// Runs the capture on its own thread (reading libpcap, writing `--write`, copying frames into
/// batches) and hands every message to `handle` on the calling thread, in order, through a
/// bounded queue. `-c N` is counted on the capture thread, so exactly N packets are read and
/// written. Returns when the capture stops (`stop`, `-c`, or an error) and the queue is drained.
fn run_threads(
    cfg: &LiveRun,
    src: &mut LiveSource,
    stop: &AtomicBool,
    tick: Duration,
    mut handle: impl FnMut(&Msg),
) -> Result<()> {
    use std::sync::atomic::Ordering::Relaxed;
    use std::sync::mpsc;
    let link = src.link();
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_MESSAGES);
    // Emptied batches go back to the capture thread.
    let (back_tx, back_rx) = mpsc::channel::<Batch>();
    std::thread::scope(|scope| {
        // Owned by this closure: if the analysis panics, unwinding drops them, so the capture
        // thread's sends and waits fail (and it stops) instead of blocking the scope for ever.
        let (rx, back_tx) = (rx, back_tx);
        let capture = std::thread::Builder::new()
            .name("capture".into())
            .spawn_scoped(scope, move || {
                let batch = RefCell::new(Batch::new(link));
                let mut packets = 0u64;
                let mut sent_files = 0usize;
                let mut last_files: Vec<PathBuf> = Vec::new();
                let outbox = RefCell::new(Outbox::new(link, QUEUE_BYTES));
                // A send fails only when the analysis side is gone (it stopped early): then
                // the capture stops too.
                let flush = |batch: &mut Batch, tx: &mpsc::SyncSender<Msg>| {
                    batch.meta.is_empty() || outbox.borrow_mut().send(batch, tx, &back_rx)
                };
                let r = src.run(
                    stop,
                    tick,
                    |f| {
                        let mut b = batch.borrow_mut();
                        b.push(f);
                        packets += 1;
                        if cfg.max_packets.is_some_and(|n| packets >= n) {
                            stop.store(true, Relaxed);
                        }
                        if b.meta.len() >= BATCH_FRAMES && !flush(&mut b, &tx) {
                            stop.store(true, Relaxed);
                        }
                    },
                    |t| {
                        let changed = t.files.len() != sent_files || t.files != last_files;
                        let files = changed.then(|| {
                            sent_files = t.files.len();
                            last_files = t.files.to_vec();
                            last_files.clone()
                        });
                        let ok = flush(&mut batch.borrow_mut(), &tx)
                            && tx
                                .send(Msg::Tick {
                                    now: t.now,
                                    stats: t.stats,
                                    files,
                                })
                                .is_ok();
                        if !ok {
                            stop.store(true, Relaxed);
                        }
                    },
                );
                flush(&mut batch.borrow_mut(), &tx);
                r
            })
            .expect("spawn the capture thread");
        for m in rx.iter() {
            handle(&m);
            if let Msg::Frames(mut b) = m {
                b.clear();
                let _ = back_tx.send(b);
            }
        }
        capture.join().unwrap_or_else(|_| {
            Err(crate::error::Error::Live {
                iface: cfg.source.iface.clone(),
                reason: "the capture thread panicked".into(),
            })
        })
    })
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

/// One `FileInfo` per file written (or one `live:IFACE` entry without `--write`).
fn file_infos(
    cfg: &LiveRun,
    src: &LiveSource,
    frames_per_file: &[u64],
    packets: u64,
    sum: &crate::pipeline::CaptureSummary,
) -> Vec<FileInfo> {
    let base = FileInfo {
        path: format!("live:{}", cfg.source.iface).into(),
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
    };
    if src.files().is_empty() {
        return vec![base];
    }
    src.files()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let n = frames_per_file.get(i).copied().unwrap_or(0);
            FileInfo {
                path: p.clone(),
                frames: n,
                frames_matched: n,
                ..base.clone()
            }
        })
        .collect()
}

/// Runs until `stop` is set or the duration passes; `emit` receives events as they happen.
pub fn run(
    cfg: &LiveRun,
    stop: &AtomicBool,
    mut emit: impl FnMut(LiveEvent<'_>),
) -> Result<LiveResult> {
    let mut src = LiveSource::open(&cfg.source)?;
    crate::capture::fix_malloc_trim();
    let mut tracker = cfg.tracker;
    // A closed or reset connection is judged after one quiet second instead of five.
    tracker.closed_timeout_ns = LIVE_CLOSED_TIMEOUT_NS;
    let pipeline = RefCell::new(Pipeline::new(
        tracker,
        LiveObserver::new(
            Analyzer::new(cfg.thresholds, cfg.max_evidence),
            cfg.metrics.clone(),
        ),
        1,
    ));
    let started = now();
    let deadline = cfg.duration.map(|d| started.add_nanos(d.as_nanos() as i64));
    let tick = cfg
        .report_every
        .min(MAX_TICK)
        .max(Duration::from_millis(50));
    let mut last_summary = started;
    let mut verdicts = VerdictTracker::new(cfg.resolve_after.as_nanos() as i64);
    let packets = std::cell::Cell::new(0u64);
    // Frames per file (the last frame number seen in each; a ring file's count restarts).
    let frames_per_file = RefCell::new(Vec::<u64>::new());
    let stop_local = AtomicBool::new(false);
    let mut tick_files: Vec<PathBuf> = Vec::new();
    // When the next verdict check may run (None: at the next tick).
    let mut snapshot_due: Option<std::time::Instant> = None;
    {
        let mut on_tick = |t: &Tick<'_>| {
            let now = t.now;
            let mut p = pipeline.borrow_mut();
            p.tick(now);
            let sum = p.summary();
            let active = p.active_connections();
            // Verdict checks re-conclude the whole analysis: under load they are spaced so that
            // they take at most 1 / SNAPSHOT_SPACING of the analysis thread's time.
            let due = snapshot_due.is_none_or(|d| std::time::Instant::now() >= d);
            if due {
                let began = std::time::Instant::now();
                let mut sum = sum.clone();
                sum.last_ts = Some(now);
                sum.first_ts.get_or_insert(started);
                // Judge a copy: open connections that wait for an answer are added to it as if
                // the capture ended now, while the table keeps them (later packets still join
                // them).
                let mut an = p.observer().analyzer.clone();
                for f in p.open_attempts() {
                    crate::pipeline::Observer::flow_end(&mut an, f, Some(Default::default()));
                }
                for (f, app) in p.open_awaiting() {
                    an.judge_open(f, app);
                }
                let snapshot = conclude(an, sum, cfg.roles.clone());
                let obs = p.observer();
                obs.topology = snapshot.topology.clone();
                let obs: &LiveObserver = obs;
                verdicts.update(
                    now,
                    &snapshot.verdicts,
                    |server| obs.last_healthy(server),
                    |change| {
                        emit(LiveEvent::Verdict {
                            at: now,
                            change,
                            files: t.files,
                        })
                    },
                );
                let took = began.elapsed();
                snapshot_due = Some(std::time::Instant::now() + took * (SNAPSHOT_SPACING - 1));
            }
            let obs: &LiveObserver = p.observer();
            if let Some(m) = &cfg.metrics {
                m.capture(packets.get(), t.stats.dropped, t.stats.if_dropped, active);
                m.verdicts(
                    verdicts.open().map(|v| (v.signature, v.severity, v.hop)),
                    verdicts.opened,
                    verdicts.resolved,
                );
            }
            if now.nanos_since(last_summary) >= cfg.report_every.as_nanos() as i64 {
                last_summary = now;
                let mut open: Vec<VerdictBrief> = verdicts.open().copied().collect();
                open.sort_by(|a, b| {
                    b.severity
                        .cmp(&a.severity)
                        .then(b.flow_count.cmp(&a.flow_count))
                        .then(a.key().cmp(&b.key()))
                });
                emit(LiveEvent::Summary(LiveSummary {
                    at: now,
                    packets: packets.get(),
                    stats: t.stats,
                    tcp_segments: sum.tcp_segments,
                    finished_connections: obs.analyzer.connections(),
                    open_connections: active,
                    open_verdicts: open,
                    verdicts_opened: verdicts.opened,
                    verdicts_resolved: verdicts.resolved,
                    topology: &obs.topology,
                }));
            }
            // The source checks one flag: the user's (Ctrl-C, SIGTERM) is copied into it here.
            if deadline.is_some_and(|d| now >= d) || stop.load(std::sync::atomic::Ordering::Relaxed)
            {
                stop_local.store(true, std::sync::atomic::Ordering::Relaxed);
            }
        };
        run_threads(cfg, &mut src, &stop_local, tick, |m| match m {
            Msg::Frames(batch) => {
                let mut p = pipeline.borrow_mut();
                let mut per = frames_per_file.borrow_mut();
                for (meta, data) in batch.iter() {
                    packets.set(packets.get() + 1);
                    let i = meta.file as usize;
                    if per.len() <= i {
                        per.resize(i + 1, 0);
                    }
                    per[i] = meta.number;
                    p.frame(&Frame {
                        file: meta.file,
                        number: meta.number,
                        ts: meta.ts,
                        caplen: meta.caplen,
                        wire_len: meta.wire_len,
                        link: batch.link,
                        data,
                    });
                }
            }
            Msg::Tick { now, stats, files } => {
                if let Some(f) = files {
                    tick_files = f.clone();
                }
                on_tick(&Tick {
                    now: *now,
                    stats: *stats,
                    files: &tick_files,
                })
            }
        })?;
    }
    let stats = src.stats();
    let p = pipeline.into_inner();
    let (obs, mut sum) = p.finish();
    // The final report ends at the last captured packet, as `analyze` on the `--write` file
    // does, so the two agree (events during the run were judged against the wall clock).
    let end = now();
    sum.last_ts = Some(sum.last_ts.unwrap_or(end));
    sum.first_ts.get_or_insert(started);
    sum.files = file_infos(cfg, &src, &frames_per_file.borrow(), packets.get(), &sum);
    sum.frames = packets.get();
    let mut analysis = conclude(obs.analyzer, sum, cfg.roles.clone());
    if let Some(r) = cfg.source.rotate.and_then(|r| r.ring_files) {
        let opened = src.opened_files();
        if opened > u64::from(r) {
            analysis.warnings.push(Warning {
                kind: "ring-overwritten",
                message: format!(
                    "{} files were written to a ring of {}: the oldest were overwritten, so evidence frames in files rewritten after the verdict was formed may no longer be there",
                    opened, r
                ),
                count: opened - u64::from(r),
                frames: Vec::new(),
            });
        }
    }
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
    Ok(LiveResult {
        analysis,
        stats,
        files: src.files().to_vec(),
    })
}

/// Seconds as a Duration, for flags.
pub fn secs(v: f64) -> Duration {
    Duration::from_nanos((v * NANOS_PER_SEC as f64) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc;
    use std::time::{Duration, Instant};

    /// Adds `BATCH_FRAMES` copies of `frame` to `b`.
    fn fill(b: &mut Batch, frame: &[u8]) {
        for n in 1..=BATCH_FRAMES as u64 {
            b.push(&Frame {
                file: 0,
                number: n,
                ts: Timestamp(0),
                caplen: frame.len() as u32,
                wire_len: frame.len() as u32,
                link: LinkType::Ethernet,
                data: frame,
            });
        }
    }

    fn full_batch(frame: &[u8]) -> Batch {
        let mut b = Batch::new(LinkType::Ethernet);
        fill(&mut b, frame);
        b
    }

    /// Frames received so far, waiting until `want` arrive (or ten seconds pass: a loaded machine).
    fn received(rx: &mpsc::Receiver<Msg>, got: &mut Vec<Batch>, want: usize) {
        let until = Instant::now() + Duration::from_secs(10);
        while got.len() < want && Instant::now() < until {
            if let Ok(Msg::Frames(b)) = rx.recv_timeout(Duration::from_millis(10)) {
                got.push(b);
            }
        }
    }

    /// No more frames arrive within 200 ms (the sender is waiting).
    fn nothing_more(rx: &mpsc::Receiver<Msg>) -> bool {
        std::thread::sleep(Duration::from_millis(200));
        rx.try_recv().is_err()
    }

    #[test]
    fn the_queue_holds_batches_up_to_its_byte_budget_and_waits_for_them_back() {
        let frame = [0u8; 200];
        let one = full_batch(&frame).bytes();
        // Room for three batches and a half.
        let budget = one * 7 / 2;
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_MESSAGES);
        let (back_tx, back_rx) = mpsc::channel::<Batch>();
        let sender = std::thread::spawn(move || {
            let mut out = Outbox::new(LinkType::Ethernet, budget);
            // As the capture thread does: the batch left in place is filled next.
            let mut b = Batch::new(LinkType::Ethernet);
            for _ in 0..5 {
                fill(&mut b, &frame);
                assert!(out.send(&mut b, &tx, &back_rx));
            }
        });
        let mut got = Vec::new();
        received(&rx, &mut got, 3);
        assert_eq!(got.len(), 3, "batches let through before any came back");
        assert!(nothing_more(&rx), "a fourth batch went over the budget");
        // One back: the fourth goes through, the fifth waits.
        let mut first = got.remove(0);
        let reused = first.data.as_ptr();
        first.clear();
        back_tx.send(first).unwrap();
        received(&rx, &mut got, 3);
        assert_eq!(got.len(), 3);
        assert!(nothing_more(&rx), "a fifth batch went over the budget");
        for mut b in got.drain(..) {
            b.clear();
            // The first one back lets the fifth through, and the sender may then be done (its
            // end of this channel dropped) before the others come back: not an error.
            let _ = back_tx.send(b);
        }
        received(&rx, &mut got, 1);
        assert_eq!(got.len(), 1);
        sender.join().unwrap();
        // The fifth batch was filled in the buffer given back first: reused, not reallocated.
        assert_eq!(got[0].data.as_ptr(), reused);
        assert_eq!(got[0].meta.len(), BATCH_FRAMES);
    }

    #[test]
    fn a_batch_larger_than_the_budget_still_goes_through() {
        let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE_MESSAGES);
        let (_back_tx, back_rx) = mpsc::channel::<Batch>();
        let mut out = Outbox::new(LinkType::Ethernet, 1);
        let mut b = full_batch(&[7u8; 60]);
        assert!(out.send(&mut b, &tx, &back_rx));
        assert!(b.meta.is_empty(), "an empty batch is left in its place");
        match rx.try_recv() {
            Ok(Msg::Frames(b)) => {
                assert_eq!(b.meta.len(), BATCH_FRAMES);
                assert!(b.iter().all(|(_, d)| d == [7u8; 60]));
            }
            _ => panic!("nothing sent"),
        }
    }
}
