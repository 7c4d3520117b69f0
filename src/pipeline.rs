//! Wiring: pushes frames from `capture/` through `decode/` into `flow/`, and hands finished
//! connections to an `Observer`. Holds no protocol logic.
//!
//! The pipeline has two halves. The front (`Front`) counts frames and runs the connection
//! tracker; the back (`SinkAdapter`) runs the application parsers (TLS, HTTP) on the stream
//! bytes the tracker delivers, and the `Observer`. Reading files can use two threads
//! (`Threads::Reader`): a reader thread runs libpcap (the filter, frame numbering, merging
//! files) and `decode/`, and records its output in a reused `Batch`; full batches go through a
//! bounded queue (`QUEUE_BATCHES`) to the calling thread, which replays them in the order they
//! were recorded. When the observer wants the application layer, the front runs on the reader
//! thread and the batch holds what it produced (the TCP segments the observer asked for with
//! their outcomes, stream bytes, finished connections); when it wants segments but no stream
//! bytes, the batch holds decoded frames and the front runs on the calling thread; when it wants
//! neither (`flows`), the calling thread reads and decodes, the front runs alone on the other
//! thread (`run_tracker_thread`), and what it produced comes back. Every observer call comes in
//! the same order with the same arguments as on one thread, so every result is identical to
//! `Threads::One` (tested on `captures/`, `tests/threads.rs`).

use crate::app::{AppEvent, AppFlow, AppSummary};
use crate::capture::{FileInfo, Frame, OfflineSet};
use crate::config::InputConfig;
use crate::decode::{self, Decoded, Skip, TcpSegment};
use crate::error::{Error, Result};
use crate::flow::{
    FlowSink, FlowSummary, FlowTable, FrameRef, SegmentOutcome, StreamCtx, StreamEvent, TableStats,
    TrackerConfig,
};
use crate::time::{human_duration, Timestamp};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};

/// Receives what the pipeline produces. Every method but `flow_end` is optional.
pub trait Observer {
    /// A finished connection (port reuse, expiry, or end of capture), with what the
    /// application layer learned about it when `wants_app` is true.
    fn flow_end(&mut self, summary: FlowSummary, app: Option<AppSummary>);
    /// Whether to reassemble streams and run the TLS / HTTP observers (costs time).
    fn wants_app(&self) -> bool {
        false
    }
    /// Whether `segment` reads the payload in `Frame::data` or `TcpSegment::payload`. When it
    /// does not, the reader thread copies only each TCP frame's headers (`Frame::data` is then
    /// cut after the TCP header, and the payload is empty); the application parsers get the
    /// stream bytes either way.
    fn wants_frame_data(&self) -> bool {
        true
    }
    /// Which TCP segments `segment` is called for.
    fn segments(&self) -> Segments {
        Segments::All
    }
    /// One decoded TCP segment (of those `segments` asks for) and the tracker's verdict on it.
    fn segment(&mut self, _frame: &Frame<'_>, _seg: &TcpSegment<'_>, _outcome: &SegmentOutcome) {}
    /// The time of TCP frames that `segment` was not called for (`Segments::Syn`, `None`): capture time
    /// has reached `ts`. Called before the next `segment`, `flow_end` or `capture_ending` at
    /// the latest (not necessarily once per frame).
    fn clock(&mut self, _ts: Timestamp) {}
    /// One application-layer event (TLS hello/alert, HTTP request/response), as it happens.
    fn app_event(&mut self, _flow: u64, _ev: &AppEvent) {}
    /// Every frame has been read: the connections still open are about to end (their
    /// `flow_end` follows, with `EndReason::CaptureEnd`). `last_ts` is the capture's last frame
    /// time, so that they can be judged as they end instead of being kept until the report.
    fn capture_ending(&mut self, _last_ts: Option<Timestamp>) {}
}

/// Which TCP segments an observer's `segment` is called for (the others cost nothing to
/// skip, which matters when the segments cross threads).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Segments {
    All,
    /// Only segments with SYN set (connection attempts and their answers).
    Syn,
    /// None: the observer needs finished connections only (and the time, by `clock`).
    None,
}

impl Segments {
    fn wants(self, seg: &TcpSegment<'_>) -> bool {
        match self {
            Segments::All => true,
            Segments::Syn => seg.has(crate::decode::flags::SYN),
            Segments::None => false,
        }
    }
}

impl<T: Observer + ?Sized> Observer for &mut T {
    fn flow_end(&mut self, summary: FlowSummary, app: Option<AppSummary>) {
        (**self).flow_end(summary, app)
    }
    fn wants_app(&self) -> bool {
        (**self).wants_app()
    }
    fn wants_frame_data(&self) -> bool {
        (**self).wants_frame_data()
    }
    fn segments(&self) -> Segments {
        (**self).segments()
    }
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome) {
        (**self).segment(frame, seg, outcome)
    }
    fn clock(&mut self, ts: Timestamp) {
        (**self).clock(ts)
    }
    fn app_event(&mut self, flow: u64, ev: &AppEvent) {
        (**self).app_event(flow, ev)
    }
    fn capture_ending(&mut self, last_ts: Option<Timestamp>) {
        (**self).capture_ending(last_ts)
    }
}

/// Routes the tracker's output: stream bytes to per-connection application state (indexed by
/// the connection's table slot), finished connections to the observer.
struct SinkAdapter<O: Observer> {
    obs: O,
    segments: Segments,
    apps: Vec<Option<AppFlow>>,
    /// Parsers of finished connections, for the next ones.
    spares: crate::app::Spares,
    want_app: bool,
    max_pending_requests: usize,
}

/// Where the front sends what it produces: finished connections and stream bytes
/// (`FlowSink`), each TCP segment with the tracker's outcome, and the end of the capture.
trait FrontSink: FlowSink {
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome);
    fn capture_ending(&mut self, last_ts: Option<Timestamp>);
}

impl<O: Observer> SinkAdapter<O> {
    fn new(tracker: TrackerConfig, obs: O) -> SinkAdapter<O> {
        SinkAdapter {
            want_app: obs.wants_app(),
            segments: obs.segments(),
            obs,
            apps: Vec::new(),
            spares: Default::default(),
            max_pending_requests: tracker.max_pending_requests,
        }
    }
}

impl<O: Observer> FrontSink for SinkAdapter<O> {
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome) {
        if self.segments.wants(seg) {
            self.obs.segment(frame, seg, outcome)
        } else {
            self.obs.clock(frame.ts)
        }
    }
    fn capture_ending(&mut self, last_ts: Option<Timestamp>) {
        self.obs.capture_ending(last_ts)
    }
}

impl<O: Observer> FlowSink for SinkAdapter<O> {
    fn flow_end(&mut self, summary: FlowSummary) {
        let app = if self.want_app {
            let slot = summary.slot as usize;
            let a = self
                .apps
                .get_mut(slot)
                .and_then(Option::take)
                .filter(|a| a.flow == summary.id);
            Some(
                a.map(|a| a.finish_with(&mut self.spares))
                    .unwrap_or_default(),
            )
        } else {
            None
        };
        self.obs.flow_end(summary, app)
    }

    fn wants_streams(&self) -> bool {
        self.want_app
    }

    fn stream(&mut self, ctx: StreamCtx, ev: StreamEvent<'_>) {
        let slot = ctx.slot as usize;
        if self.apps.len() <= slot {
            self.apps.resize_with(slot + 1, || None);
        }
        let a = &mut self.apps[slot];
        if a.as_ref().is_none_or(|a| a.flow != ctx.flow) {
            *a = Some(AppFlow::with_max_pending(
                ctx.flow,
                self.max_pending_requests,
            ));
        }
        let app = a.as_mut().expect("just set");
        let obs = &mut self.obs;
        app.event_with(ctx.dir, ctx.frame, ev, &mut self.spares, &mut |e| {
            obs.app_event(ctx.flow, e)
        });
    }
}

/// Frames that were not TCP, by reason.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct SkipCounts {
    pub not_ip: u64,
    pub not_tcp: u64,
    /// UDP tunnel packets (GTP-U, VXLAN, Geneve): TCP inside is not decoded.
    pub tunnelled: u64,
    pub ip_fragment: u64,
    pub malformed: u64,
}

/// Facts about the whole run, for the report header and the warnings list.
#[derive(Clone, Debug, Default)]
pub struct CaptureSummary {
    pub files: Vec<FileInfo>,
    /// Frames read, filter-rejected ones included.
    pub frames: u64,
    /// Frames that passed the filter.
    pub frames_matched: u64,
    pub tcp_segments: u64,
    pub icmp_errors: u64,
    pub skipped: SkipCounts,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    pub table: TableStats,
    /// Frames truncated by the snaplen.
    pub truncated_frames: u64,
    /// Shortest and longest captured length of the truncated frames (the real cut).
    pub cut_range: Option<(u32, u32)>,
    /// Capture time ran backwards between consecutive frames (per file).
    pub time_reversals: u64,
    /// The tracker's cap on connections tracked at once.
    pub max_connections: usize,
    /// Frame numbers inside the `--evidence-pcap` file, by (input file, frame number); empty
    /// when none was written. Set by the command line after writing it, read by the reports.
    pub evidence_frames: crate::capture::EvidenceFrames,
    /// HTTP requests kept waiting per connection (`TrackerConfig::max_pending_requests`).
    pub max_pending_requests: usize,
    /// Records whose captured length exceeds their length on the wire (a corrupt record header
    /// or a faulty writer): analysed as captured, reported.
    pub caplen_over_len: u64,
}

/// A capture-level artefact: something about how the capture was taken or stored, never an
/// outage. Typed, so that reports classify it by `kind()` and print it by `Display`.
#[derive(Clone, Debug, PartialEq)]
pub enum Artefact {
    /// Merged files far apart in time (files from different days, a reset clock).
    TimeGap {
        file: PathBuf,
        other: PathBuf,
        gap_ns: i64,
        /// The file's packets come before `other`'s start (instead of after its end).
        before: bool,
    },
    /// A file's clock is off the first file's (estimated from packets seen in both).
    ClockOffset {
        file: PathBuf,
        offset_ns: i64,
        common: u64,
    },
    /// The file ended inside a record, or a record was corrupt.
    FileTruncated { file: PathBuf, why: String },
    /// Frames cut by the snapshot length.
    Snaplen {
        file: PathBuf,
        truncated: u64,
        matched: u64,
        cut_range: Option<(u32, u32)>,
        snaplen: u32,
    },
    /// Frames on pcapng interfaces whose link type cannot be decoded (skipped).
    UnsupportedLink { file: PathBuf, frames: u64 },
    /// Frames whose link/IP/TCP headers were malformed or cut.
    Malformed { frames: u64 },
    /// IP fragments (not reassembled).
    IpFragments { frames: u64 },
    /// The connection table hit `--max-connections`.
    TableFull {
        cap: usize,
        times: u64,
        evicted: u64,
    },
    /// Capture time ran backwards between consecutive frames.
    TimeReversal { times: u64 },
    /// Records whose captured length exceeds their length on the wire.
    RecordLength { records: u64 },
}

impl Artefact {
    /// The stable kind (`capture.warnings[].kind` in the JSON report).
    pub fn kind(&self) -> &'static str {
        match self {
            Artefact::TimeGap { .. } => "time-gap",
            Artefact::ClockOffset { .. } => "clock-offset",
            Artefact::FileTruncated { .. } => "file-truncated",
            Artefact::Snaplen { .. } => "snaplen",
            Artefact::UnsupportedLink { .. } => "unsupported-link-type",
            Artefact::Malformed { .. } => "malformed",
            Artefact::IpFragments { .. } => "ip-fragments",
            Artefact::TableFull { .. } => "connection-cap",
            Artefact::TimeReversal { .. } => "time-reversal",
            Artefact::RecordLength { .. } => "record-length",
        }
    }

    /// How many occurrences it stands for (frames, evicted connections, reversals; 1 for a
    /// file-level artefact).
    pub fn count(&self) -> u64 {
        match self {
            Artefact::Snaplen { truncated, .. } => *truncated,
            Artefact::Malformed { frames }
            | Artefact::IpFragments { frames }
            | Artefact::UnsupportedLink { frames, .. } => *frames,
            Artefact::TableFull { evicted, .. } => *evicted,
            Artefact::TimeReversal { times } => *times,
            Artefact::RecordLength { records } => *records,
            _ => 1,
        }
    }
}

impl std::fmt::Display for Artefact {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Artefact::TimeGap {
                file,
                other,
                gap_ns,
                before,
            } => write!(
                f,
                "{}: time jump between merged files: its packets start {} {} {} (more than {}); connections do not span the gap, so check that the files belong together",
                file.display(),
                human_duration(*gap_ns),
                if *before {
                    "before the start of"
                } else {
                    "after the end of"
                },
                other.display(),
                human_duration(TIME_GAP_NS)
            ),
            Artefact::ClockOffset {
                file,
                offset_ns,
                common,
            } => write!(
                f,
                "{}: its clock is {:+.6} s off the first file's ({} packets seen in both files); timestamps were corrected and packets seen twice count once",
                file.display(),
                *offset_ns as f64 / 1e9,
                common
            ),
            Artefact::FileTruncated { file, why } => write!(
                f,
                "{}: file is truncated or corrupt, {}; the frames before it were analysed",
                file.display(),
                why
            ),
            Artefact::Snaplen {
                file,
                truncated,
                matched,
                cut_range,
                snaplen,
            } => write!(
                f,
                "{}: {} of {} frames were {}; headers were analysed, payload beyond the cut was not",
                file.display(),
                truncated,
                matched,
                cut_words(*cut_range, *snaplen)
            ),
            Artefact::UnsupportedLink { file, frames } => write!(
                f,
                "{}: {} frames on interfaces with a link type proxyscope cannot decode were skipped",
                file.display(),
                frames
            ),
            Artefact::Malformed { frames } => write!(
                f,
                "{} frames had malformed or cut link/IP/TCP headers and were skipped",
                frames
            ),
            Artefact::IpFragments { frames } => write!(
                f,
                "{} IP fragments were skipped (fragments are not reassembled)",
                frames
            ),
            Artefact::TableFull {
                cap,
                times,
                evicted,
            } => write!(
                f,
                "the connection table was full ({} connections at once, --max-connections) {} times: {} of the least recently active connections were finished early, so a later packet of one of them starts a new record and verdicts about them may be incomplete",
                cap, times, evicted
            ),
            Artefact::TimeReversal { times } => write!(
                f,
                "capture time went backwards {} times between consecutive frames",
                times
            ),
            Artefact::RecordLength { records } => write!(
                f,
                "{} record{} claimed more captured bytes than were on the wire (caplen > len: a corrupt record header or a faulty capture writer); {} analysed as captured",
                records,
                if *records == 1 { "" } else { "s" },
                if *records == 1 { "it was" } else { "they were" }
            ),
        }
    }
}

impl CaptureSummary {
    /// Capture-level artefacts (never outages), in a stable order.
    pub fn artefacts(&self) -> Vec<Artefact> {
        let mut w = Vec::new();
        // Merged files far apart in time: a capture artefact (files from different days, a
        // reset clock), never a connection that was quiet that long.
        for pair in self.files.windows(2) {
            let (a, b) = (&pair[0], &pair[1]);
            let (Some(a_first), Some(a_last), Some(b_first), Some(b_last)) =
                (a.first_ts, a.last_ts, b.first_ts, b.last_ts)
            else {
                continue;
            };
            let after = b_first.nanos_since(a_last);
            let before = a_first.nanos_since(b_last);
            let (gap_ns, before) = if after > TIME_GAP_NS {
                (after, false)
            } else if before > TIME_GAP_NS {
                (before, true)
            } else {
                continue;
            };
            w.push(Artefact::TimeGap {
                file: b.path.clone(),
                other: a.path.clone(),
                gap_ns,
                before,
            });
        }
        for f in self.files.iter().skip(1) {
            if let Some((offset_ns, common)) = f.clock_offset {
                w.push(Artefact::ClockOffset {
                    file: f.path.clone(),
                    offset_ns,
                    common: common.into(),
                });
            }
        }
        for f in &self.files {
            if let Some(s) = &f.stopped_early {
                w.push(Artefact::FileTruncated {
                    file: f.path.clone(),
                    why: s.clone(),
                });
            }
            if f.unsupported_link_frames > 0 {
                w.push(Artefact::UnsupportedLink {
                    file: f.path.clone(),
                    frames: f.unsupported_link_frames,
                });
            }
            if f.frames_truncated > 0 {
                w.push(Artefact::Snaplen {
                    file: f.path.clone(),
                    truncated: f.frames_truncated,
                    matched: f.frames_matched,
                    cut_range: f.cut_range,
                    snaplen: f.snaplen,
                });
            }
        }
        if self.skipped.malformed > 0 {
            w.push(Artefact::Malformed {
                frames: self.skipped.malformed,
            });
        }
        if self.skipped.ip_fragment > 0 {
            w.push(Artefact::IpFragments {
                frames: self.skipped.ip_fragment,
            });
        }
        if self.table.evicted > 0 {
            w.push(Artefact::TableFull {
                cap: self.max_connections,
                times: self.table.evictions,
                evicted: self.table.evicted,
            });
        }
        if self.caplen_over_len > 0 {
            w.push(Artefact::RecordLength {
                records: self.caplen_over_len,
            });
        }
        if self.time_reversals > 0 {
            w.push(Artefact::TimeReversal {
                times: self.time_reversals,
            });
        }
        w
    }
}

/// Two merged files further apart than this (after clock-offset correction) are flagged as a
/// `time-gap` capture warning.
pub const TIME_GAP_NS: i64 = 3600 * crate::time::NANOS_PER_SEC;

/// "cut at 54 bytes" — the real captured length of the truncated frames, with the file's
/// snapshot length beside it when that differs (a file re-cut after capture, `editcap -s`).
fn cut_words(range: Option<(u32, u32)>, snaplen: u32) -> String {
    match range {
        Some((lo, hi)) if (lo, hi) != (snaplen, snaplen) => {
            let at = if lo == hi {
                format!("{} bytes", lo)
            } else {
                format!("{}–{} bytes", lo, hi)
            };
            format!("cut at {} (the file's snaplen is {})", at, snaplen)
        }
        _ => format!("cut by the snaplen ({} bytes)", snaplen),
    }
}

/// The front half of the pipeline: frame counters and the connection table.
struct Front {
    table: FlowTable,
    sum: CaptureSummary,
    prev_ts: Vec<Option<Timestamp>>,
}

impl Front {
    fn new(tracker: TrackerConfig, files: usize) -> Front {
        Front {
            table: FlowTable::new(tracker),
            sum: CaptureSummary {
                max_connections: tracker.max_connections,
                max_pending_requests: tracker.max_pending_requests,
                ..CaptureSummary::default()
            },
            prev_ts: vec![None; files.max(1)],
        }
    }

    /// Counts one decoded frame and pushes a TCP segment through the tracker.
    fn frame<S: FrontSink>(&mut self, frame: &Frame<'_>, decoded: Decoded<'_>, sink: &mut S) {
        let sum = &mut self.sum;
        sum.frames_matched += 1;
        if frame.caplen < frame.wire_len {
            sum.truncated_frames += 1;
            sum.cut_range = crate::capture::widen(sum.cut_range, frame.caplen);
        } else if frame.caplen > frame.wire_len {
            sum.caplen_over_len += 1;
        }
        if let Some(slot) = self.prev_ts.get_mut(frame.file as usize) {
            if slot.is_some_and(|p| frame.ts < p) {
                sum.time_reversals += 1;
            }
            *slot = Some(frame.ts);
        }
        if sum.first_ts.is_none_or(|t| frame.ts < t) {
            sum.first_ts = Some(frame.ts);
        }
        if sum.last_ts.is_none_or(|t| frame.ts > t) {
            sum.last_ts = Some(frame.ts);
        }
        let fr = FrameRef {
            file: frame.file,
            number: frame.number,
            ts: frame.ts,
        };
        match decoded {
            Decoded::Tcp(seg) => {
                sum.tcp_segments += 1;
                let outcome = self.table.process(&seg, fr, sink);
                sink.segment(frame, &seg, &outcome);
            }
            Decoded::Icmp(e) => {
                sum.icmp_errors += 1;
                self.table.icmp(&e, fr);
            }
            Decoded::Skip(s) => match s {
                Skip::NotIp => sum.skipped.not_ip += 1,
                Skip::NotTcp => sum.skipped.not_tcp += 1,
                Skip::Tunnel => sum.skipped.tunnelled += 1,
                Skip::Fragment => sum.skipped.ip_fragment += 1,
                Skip::Malformed => sum.skipped.malformed += 1,
            },
        }
    }

    /// Ends every open connection; returns the summary (files are filled in by `run`).
    fn finish<S: FrontSink>(mut self, sink: &mut S) -> CaptureSummary {
        sink.capture_ending(self.sum.last_ts);
        self.table.finish_all(sink);
        let mut s = self.sum;
        s.frames = s.frames_matched;
        s.table = self.table.stats;
        s
    }
}

/// The stages wired together on one thread, fed one frame at a time (files or a live
/// interface).
pub struct Pipeline<O: Observer> {
    front: Front,
    sink: SinkAdapter<O>,
}

impl<O: Observer> Pipeline<O> {
    pub fn new(tracker: TrackerConfig, obs: O, files: usize) -> Pipeline<O> {
        Pipeline {
            front: Front::new(tracker, files),
            sink: SinkAdapter::new(tracker, obs),
        }
    }

    /// Pushes one frame through decode and the tracker.
    pub fn frame(&mut self, frame: &Frame<'_>) {
        self.front.frame(
            frame,
            decode::decode(frame.link, frame.data),
            &mut self.sink,
        )
    }

    /// Time passed without frames (live capture): connections whose timeout passed end now.
    pub fn tick(&mut self, now: Timestamp) {
        self.front.table.sweep(now, &mut self.sink);
    }

    pub fn observer(&mut self) -> &mut O {
        &mut self.sink.obs
    }

    /// What was read so far (files and table counters are filled in by `finish`).
    pub fn summary(&self) -> CaptureSummary {
        let mut s = self.front.sum.clone();
        s.frames = s.frames_matched;
        s.table = self.front.table.stats;
        s
    }

    /// Open connection attempts that got no answer yet (see `FlowTable::open_attempts`).
    pub fn open_attempts(&self) -> Vec<FlowSummary> {
        self.front.table.open_attempts()
    }

    /// Open connections that wait for the server (see `AppFlow::awaiting_answer`), with what
    /// their application state would summarise to if they ended now.
    pub fn open_awaiting(&self) -> Vec<(FlowSummary, crate::app::AppSummary)> {
        self.sink
            .apps
            .iter()
            .enumerate()
            .filter_map(|(slot, a)| a.as_ref().map(|a| (slot, a)))
            .filter(|(_, a)| a.awaiting_answer())
            .filter_map(|(slot, a)| {
                let f = self.front.table.open_summary(slot as u32, a.flow)?;
                Some((f, a.peek()))
            })
            .collect()
    }

    pub fn active_connections(&self) -> usize {
        self.front.table.active()
    }

    /// Ends every open connection; returns the observer and the summary.
    pub fn finish(mut self) -> (O, CaptureSummary) {
        let s = self.front.finish(&mut self.sink);
        (self.sink.obs, s)
    }
}

/// How `run` uses threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Read, decode, track and observe on the calling thread.
    One,
    /// A reader thread reads, decodes and tracks connections; the calling thread runs the
    /// application parsers and observes.
    Reader,
    /// `Reader` with batches of at most this many frames (tests: many batch boundaries).
    #[doc(hidden)]
    ReaderBatchFrames(usize),
}

/// 0 = decide by the number of CPUs, 1 = `Threads::One`, 2 = `Threads::Reader`.
static THREADS: AtomicU8 = AtomicU8::new(0);

/// Sets how later `run` calls use threads (`None`: a reader thread when there are two or more
/// CPUs). Set once by the command line (`--threads`).
pub fn set_threads(t: Option<Threads>) {
    let v = match t {
        None => 0,
        Some(Threads::One) => 1,
        Some(Threads::Reader | Threads::ReaderBatchFrames(_)) => 2,
    };
    THREADS.store(v, Ordering::Relaxed);
}

fn default_threads() -> Threads {
    match THREADS.load(Ordering::Relaxed) {
        1 => Threads::One,
        2 => Threads::Reader,
        _ => match std::thread::available_parallelism() {
            Ok(n) if n.get() >= 2 => Threads::Reader,
            _ => Threads::One,
        },
    }
}

/// Frames per batch sent from the reader thread (a batch is sent when it has read this many
/// frames or holds `BATCH_BYTES` bytes, whichever comes first).
pub const BATCH_FRAMES: usize = 512;
/// Bytes (frames and stream data) per batch; one frame's worth more at most.
pub const BATCH_BYTES: usize = 256 * 1024;
/// Room reserved past `BATCH_BYTES`, so that the frame (and the stream bytes it completes) that
/// crosses it does not make the batch's buffer double.
const BATCH_HEADROOM: usize = 64 * 1024;
/// Full batches waiting for the calling thread at most; the reader blocks when the queue is
/// full, so at most `QUEUE_BATCHES + 2` batches exist (a few MiB).
pub const QUEUE_BATCHES: usize = 2;

/// One thing the front produced, recorded by the reader thread and replayed, in order, into the
/// back on the calling thread. Byte ranges point into the batch's `FrameBatch`.
enum Rec {
    /// `Observer::segment` for the `frame`-th frame of the batch; the payload is
    /// `len` bytes at `off` within the frame (0 when only headers were copied).
    Segment {
        frame: u32,
        seg: TcpSegment<'static>,
        off: u32,
        len: u32,
        outcome: SegmentOutcome,
    },
    /// `StreamEvent::Data`: `len` bytes at `off` (`FrameBatch::extra`).
    Data {
        ctx: StreamCtx,
        off: usize,
        len: usize,
    },
    Gap {
        ctx: StreamCtx,
        bytes: u32,
    },
    End {
        ctx: StreamCtx,
        rst: bool,
    },
    /// A frame decoded by the reader thread, for the front on the calling thread (when the
    /// tracker runs there); a TCP segment's payload is re-borrowed from the frame.
    Decoded {
        frame: u32,
        d: PreDecoded,
    },
    /// `Observer::clock`.
    Clock(Timestamp),
    /// A finished connection: the next of `Batch::ends`.
    FlowEnd,
    CaptureEnding(Option<Timestamp>),
}

/// A decoded frame without its borrow: a TCP segment's payload is `len` bytes at `off` within
/// the frame.
#[derive(Clone, Copy)]
enum PreDecoded {
    Tcp(TcpSegment<'static>, u32, u32),
    Icmp(crate::decode::IcmpError),
    Skip(Skip),
}

/// What the reader thread sends: copies of the TCP frames, the records, and the finished
/// connections. Reused: emptied batches go back to the reader.
struct Batch {
    frames: crate::capture::FrameBatch,
    log: Vec<Rec>,
    ends: Vec<FlowSummary>,
    /// Frames read into this batch (TCP or not).
    read: usize,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            frames: crate::capture::FrameBatch::with_capacity(
                BATCH_BYTES + BATCH_HEADROOM,
                BATCH_FRAMES,
            ),
            log: Vec::with_capacity(BATCH_FRAMES * 2),
            ends: Vec::new(),
            read: 0,
        }
    }
    fn full(&self, max_frames: usize) -> bool {
        self.read >= max_frames || self.frames.bytes() >= BATCH_BYTES
    }
    fn clear(&mut self) {
        self.frames.clear();
        self.log.clear();
        self.ends.clear();
        self.read = 0;
    }
}

/// What comes back to the calling thread: a batch to replay, or (`run_tracker_thread`) a batch of
/// decoded frames the tracker is done with, to be filled again.
enum Back {
    Out(Batch),
    Free(Vec<Pre>),
}

/// A frame's header and its decoding without the frame's bytes: all the tracker reads when
/// nobody wants stream bytes (`run_tracker_thread`).
#[derive(Clone, Copy)]
struct Pre {
    frame: Frame<'static>,
    d: Decoded<'static>,
}

impl Pre {
    fn new(f: &Frame<'_>) -> Pre {
        let d = match decode::decode(f.link, f.data) {
            Decoded::Tcp(s) => Decoded::Tcp(TcpSegment { payload: &[], ..s }),
            Decoded::Icmp(e) => Decoded::Icmp(e),
            Decoded::Skip(k) => Decoded::Skip(k),
        };
        Pre {
            frame: Frame { data: &[], ..*f },
            d,
        }
    }
}

/// The reader thread's side: the batch being filled, the queue it goes through, and the front's
/// sink (`FlowSink`, `FrontSink`) that records into it. A batch is sent when its frames are read
/// (`Batch::full`) and also as soon as the connections it finished or the bytes it holds fill it
/// (a sweep or the end of the capture can finish hundreds of thousands at once).
struct Recorder {
    b: Batch,
    full_tx: std::sync::mpsc::SyncSender<Back>,
    empty_rx: std::sync::mpsc::Receiver<Batch>,
    /// The calling thread stopped taking batches (it stopped early): batches are dropped.
    closed: bool,
    /// Finished connections per batch at most (`BATCH_FRAMES`, fewer in tests).
    max_ends: usize,
    segments: Segments,
    streams: bool,
    /// Copy each TCP frame only up to its payload (nobody reads the payload of a frame; the
    /// stream bytes are recorded separately).
    headers_only: bool,
    /// The time of the TCP frames not recorded (`Observer::clock`), recorded only before a
    /// record that could read it: the latest frame time (the largest, should time run
    /// backwards) and the latest the observer was told.
    latest: Option<Timestamp>,
    told: Option<Timestamp>,
}

/// Where `payload` starts within `data` (0 when empty), and the bytes of the frame to copy with
/// the payload's length in them: up to the payload when `headers_only`.
fn frame_cut<'a>(data: &'a [u8], payload: &[u8], headers_only: bool) -> (usize, &'a [u8], usize) {
    if payload.is_empty() {
        return (0, data, 0);
    }
    let off = payload.as_ptr() as usize - data.as_ptr() as usize;
    if headers_only {
        (off, &data[..off], 0)
    } else {
        (off, data, payload.len())
    }
}

impl Recorder {
    /// Sends the batch (blocking while the queue is full) and starts an empty one.
    fn send(&mut self) {
        if self.closed {
            self.b.clear();
            return;
        }
        let next = self.empty_rx.try_recv().unwrap_or_else(|_| Batch::new());
        if self
            .full_tx
            .send(Back::Out(std::mem::replace(&mut self.b, next)))
            .is_err()
        {
            self.closed = true;
        }
    }

    fn sync_clock(&mut self) {
        if self.latest != self.told {
            self.told = self.latest;
            if let Some(ts) = self.latest {
                self.b.log.push(Rec::Clock(ts));
            }
        }
    }

    /// Records `f`, decoded, for the front on the calling thread. TCP frames are copied (up to
    /// the payload when `headers_only`); the others only by their header (the front counts
    /// them).
    fn decoded(&mut self, f: &Frame<'_>) {
        let frame = self.b.frames.len() as u32;
        let d = match decode::decode(f.link, f.data) {
            Decoded::Tcp(s) => {
                let (off, data, len) = frame_cut(f.data, s.payload, self.headers_only);
                self.b.frames.push(&Frame { data, ..*f });
                PreDecoded::Tcp(TcpSegment { payload: &[], ..s }, off as u32, len as u32)
            }
            Decoded::Icmp(e) => {
                self.b.frames.push(&Frame { data: &[], ..*f });
                PreDecoded::Icmp(e)
            }
            Decoded::Skip(k) => {
                self.b.frames.push(&Frame { data: &[], ..*f });
                PreDecoded::Skip(k)
            }
        };
        self.b.log.push(Rec::Decoded { frame, d });
    }
}

impl FlowSink for Recorder {
    fn flow_end(&mut self, summary: FlowSummary) {
        self.sync_clock();
        self.b.ends.push(summary);
        self.b.log.push(Rec::FlowEnd);
        if self.b.ends.len() >= self.max_ends || self.b.frames.bytes() >= BATCH_BYTES {
            self.send();
        }
    }
    fn wants_streams(&self) -> bool {
        self.streams
    }
    fn stream(&mut self, ctx: StreamCtx, ev: StreamEvent<'_>) {
        let rec = match ev {
            StreamEvent::Data(d) => Rec::Data {
                ctx,
                off: self.b.frames.push_extra(d),
                len: d.len(),
            },
            StreamEvent::Gap(bytes) => Rec::Gap { ctx, bytes },
            StreamEvent::End { rst } => Rec::End { ctx, rst },
        };
        self.b.log.push(rec);
        if self.b.frames.bytes() >= BATCH_BYTES {
            self.send();
        }
    }
}

impl FrontSink for Recorder {
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome) {
        let ts = Some(frame.ts);
        if !self.segments.wants(seg) {
            self.latest = self.latest.max(ts);
            return;
        }
        self.sync_clock();
        if self.latest < ts {
            // The observer learns this time from `segment`.
            self.latest = ts;
            self.told = ts;
        }
        let (off, data, len) = frame_cut(frame.data, seg.payload, self.headers_only);
        let index = self.b.frames.len() as u32;
        self.b.frames.push(&Frame { data, ..*frame });
        self.b.log.push(Rec::Segment {
            frame: index,
            seg: TcpSegment {
                payload: &[],
                ..*seg
            },
            off: off as u32,
            len: len as u32,
            outcome: *outcome,
        });
    }
    fn capture_ending(&mut self, last_ts: Option<Timestamp>) {
        self.sync_clock();
        self.b.log.push(Rec::CaptureEnding(last_ts));
    }
}

/// Replays a batch into the back half, in the order it was recorded (decoded frames into
/// `front`, which is there when the tracker runs on this thread).
fn replay<O: Observer>(b: &mut Batch, sink: &mut SinkAdapter<O>, front: &mut Option<Front>) {
    let mut ends = b.ends.drain(..);
    for rec in &b.log {
        match *rec {
            Rec::Decoded { frame, d } => {
                let f = b.frames.frame(frame as usize);
                let d = match d {
                    PreDecoded::Tcp(seg, off, len) => Decoded::Tcp(TcpSegment {
                        payload: &f.data[off as usize..(off + len) as usize],
                        ..seg
                    }),
                    PreDecoded::Icmp(e) => Decoded::Icmp(e),
                    PreDecoded::Skip(k) => Decoded::Skip(k),
                };
                front
                    .as_mut()
                    .expect("decoded frames go to a front")
                    .frame(&f, d, sink);
            }
            Rec::Segment {
                frame,
                seg,
                off,
                len,
                outcome,
            } => {
                let f = b.frames.frame(frame as usize);
                let seg = TcpSegment {
                    payload: &f.data[off as usize..(off + len) as usize],
                    ..seg
                };
                sink.obs.segment(&f, &seg, &outcome);
            }
            Rec::Data { ctx, off, len } => {
                sink.stream(ctx, StreamEvent::Data(b.frames.extra(off, len)))
            }
            Rec::Gap { ctx, bytes } => sink.stream(ctx, StreamEvent::Gap(bytes)),
            Rec::End { ctx, rst } => sink.stream(ctx, StreamEvent::End { rst }),
            Rec::FlowEnd => sink.flow_end(ends.next().expect("a recorded end")),
            Rec::Clock(ts) => sink.obs.clock(ts),
            Rec::CaptureEnding(ts) => sink.obs.capture_ending(ts),
        }
    }
}

/// Reads `set` on a reader thread and runs the back half on this one. The front runs on the
/// reader thread when the observer wants the application layer (the parsers then balance the
/// two threads); on this thread when it wants segments but no stream bytes (the reader then
/// only reads and decodes). An observer that wants neither goes to `run_tracker_thread`.
fn run_reader_thread<O: Observer>(
    set: &mut OfflineSet,
    tracker: TrackerConfig,
    files: usize,
    obs: O,
    max_frames: usize,
) -> (O, CaptureSummary) {
    let max_frames = max_frames.clamp(1, BATCH_FRAMES);
    let mut sink = SinkAdapter::new(tracker, obs);
    let streams = sink.want_app;
    let segments = sink.segments;
    if !streams && segments == Segments::None {
        return run_tracker_thread(set, tracker, files, sink, max_frames);
    }
    let headers_only = !sink.obs.wants_frame_data();
    // (An observer that wants no segments and no streams went to `run_tracker_thread`.)
    let front_there = streams;
    let mut front_here = (!front_there).then(|| Front::new(tracker, files));
    use std::sync::mpsc::sync_channel;
    let (full_tx, full_rx) = sync_channel::<Back>(QUEUE_BATCHES);
    // Emptied batches go back to the reader; this queue never fills (it can hold every batch).
    let (empty_tx, empty_rx) = sync_channel::<Batch>(QUEUE_BATCHES + 4);
    let sum = std::thread::scope(|s| {
        let reader = std::thread::Builder::new()
            .name("proxyscope-reader".into())
            .spawn_scoped(s, move || {
                let mut front = front_there.then(|| Front::new(tracker, files));
                let mut rec = Recorder {
                    b: Batch::new(),
                    full_tx,
                    empty_rx,
                    closed: false,
                    max_ends: max_frames,
                    segments,
                    streams,
                    headers_only,
                    latest: None,
                    told: None,
                };
                set.run(|f| {
                    if rec.closed {
                        return;
                    }
                    match &mut front {
                        Some(front) => front.frame(f, decode::decode(f.link, f.data), &mut rec),
                        None => rec.decoded(f),
                    }
                    rec.b.read += 1;
                    if rec.b.full(max_frames) {
                        rec.send();
                    }
                });
                let sum = front.map(|front| front.finish(&mut rec));
                if !rec.b.log.is_empty() {
                    rec.send();
                }
                sum
            })
            .expect("spawn the reader thread");
        for m in full_rx {
            let Back::Out(mut b) = m else { continue };
            replay(&mut b, &mut sink, &mut front_here);
            b.clear();
            let _ = empty_tx.try_send(b);
        }
        reader.join().expect("the reader thread")
    });
    let sum = match (sum, front_here) {
        (Some(sum), _) => sum,
        (None, Some(front)) => front.finish(&mut sink),
        (None, None) => unreachable!("the front ran on one of the threads"),
    };
    (sink.obs, sum)
}

/// Batches of decoded frames in existence at most in `run_tracker_thread` (being filled, queued,
/// being tracked): about 1 MiB (136 bytes a frame). 16 gave `flows` on capture B 11 % less wall
/// time than 4 in paired runs; 8 was as fast; 64 was 12 % slower (more memory touched).
const PRE_BATCHES: usize = 16;

/// Runs the tracker alone on a thread of its own, and reading, decoding and the observer on
/// this one: for observers that want neither segments nor stream bytes (`flows`), where the
/// tracker is the largest single stage and the observer's work on each finished connection
/// (formatting a row) balances reading. Decoded frames go to the tracker without their bytes
/// (`Pre`); what the front produces comes back as recorded batches, replayed here in order, as
/// in `run_reader_thread`.
///
/// No wait can close a cycle: this thread never blocks sending (at most `PRE_BATCHES` batches
/// exist, and the queue holds them all) and waits only for the tracker's messages, which the
/// tracker sends whenever it has any; the tracker blocks only on that queue, which this thread
/// drains after every batch it sends and while it waits.
fn run_tracker_thread<O: Observer>(
    set: &mut OfflineSet,
    tracker: TrackerConfig,
    files: usize,
    mut sink: SinkAdapter<O>,
    max_frames: usize,
) -> (O, CaptureSummary) {
    use std::sync::mpsc::{sync_channel, Receiver, SyncSender};
    let (pre_tx, pre_rx) = sync_channel::<Vec<Pre>>(PRE_BATCHES);
    // Room for the tracker's output of every batch of frames in flight: with `QUEUE_BATCHES`
    // alone, the tracker stopped whenever this thread spent two batches' time reading (9 % more
    // wall time on B, 6 of 6 pairs).
    let (back_tx, back_rx) = sync_channel::<Back>(QUEUE_BATCHES + PRE_BATCHES);
    let (empty_tx, empty_rx) = sync_channel::<Batch>(QUEUE_BATCHES + 4);
    /// Replays a batch of the tracker's output, or keeps an emptied batch of frames.
    fn take<O: Observer>(
        m: Back,
        sink: &mut SinkAdapter<O>,
        empty_tx: &SyncSender<Batch>,
        pool: &mut Vec<Vec<Pre>>,
    ) {
        match m {
            Back::Out(mut b) => {
                replay(&mut b, sink, &mut None);
                b.clear();
                let _ = empty_tx.try_send(b);
            }
            Back::Free(mut v) => {
                v.clear();
                pool.push(v);
            }
        }
    }
    /// The next batch to fill: a kept one, a new one while fewer than `PRE_BATCHES` exist, or
    /// the first the tracker gives back (replaying its output meanwhile).
    fn next_batch<O: Observer>(
        back_rx: &Receiver<Back>,
        sink: &mut SinkAdapter<O>,
        empty_tx: &SyncSender<Batch>,
        pool: &mut Vec<Vec<Pre>>,
        made: &mut usize,
        max_frames: usize,
    ) -> Vec<Pre> {
        while let Ok(m) = back_rx.try_recv() {
            take(m, sink, empty_tx, pool);
        }
        while pool.is_empty() {
            if *made < PRE_BATCHES {
                *made += 1;
                return Vec::with_capacity(max_frames);
            }
            match back_rx.recv() {
                Ok(m) => take(m, sink, empty_tx, pool),
                // The tracker is gone (it panicked; `join` reports it).
                Err(_) => return Vec::with_capacity(max_frames),
            }
        }
        pool.pop().expect("a kept batch")
    }
    std::thread::scope(|s| {
        let tracker_thread = std::thread::Builder::new()
            .name("proxyscope-tracker".into())
            .spawn_scoped(s, move || {
                let mut front = Front::new(tracker, files);
                let mut rec = Recorder {
                    b: Batch::new(),
                    full_tx: back_tx.clone(),
                    empty_rx,
                    closed: false,
                    max_ends: max_frames,
                    segments: Segments::None,
                    streams: false,
                    headers_only: true,
                    latest: None,
                    told: None,
                };
                for pres in pre_rx {
                    for p in &pres {
                        front.frame(&p.frame, p.d, &mut rec);
                    }
                    if !rec.b.log.is_empty() {
                        rec.send();
                    }
                    let _ = back_tx.send(Back::Free(pres));
                }
                let sum = front.finish(&mut rec);
                if !rec.b.log.is_empty() {
                    rec.send();
                }
                sum
            })
            .expect("spawn the tracker thread");
        let mut pool = Vec::new();
        let mut made = 1;
        let mut cur: Vec<Pre> = Vec::with_capacity(max_frames);
        set.run(|f| {
            cur.push(Pre::new(f));
            if cur.len() >= max_frames {
                let next = next_batch(
                    &back_rx, &mut sink, &empty_tx, &mut pool, &mut made, max_frames,
                );
                let _ = pre_tx.send(std::mem::replace(&mut cur, next));
            }
        });
        if !cur.is_empty() {
            let _ = pre_tx.send(cur);
        }
        drop(pre_tx);
        for m in back_rx {
            take(m, &mut sink, &empty_tx, &mut pool);
        }
        let sum = tracker_thread.join().expect("the tracker thread");
        (sink.obs, sum)
    })
}

/// Reads every input file and runs the tracker; returns the capture summary. Uses a reader
/// thread when there are two or more CPUs (see `set_threads`).
pub fn run<O: Observer>(input: &InputConfig, obs: &mut O) -> Result<CaptureSummary> {
    run_with(input, obs, default_threads())
}

/// `run` with an explicit threading choice (the results are identical).
pub fn run_with<O: Observer>(
    input: &InputConfig,
    obs: &mut O,
    threads: Threads,
) -> Result<CaptureSummary> {
    crate::capture::fix_malloc_trim();
    let mut set = OfflineSet::open_with(&input.files, &input.read_options())?;
    if input.files.len() > 1 {
        set.set_offsets(&OfflineSet::estimate_offsets(
            &input.files,
            input.filter.as_deref(),
        )?);
    }
    let files = input.files.len();
    let (_, mut sum) = match threads {
        Threads::One => {
            let mut p = Pipeline::new(input.tracker, obs, files);
            set.run(|frame| p.frame(frame));
            p.finish()
        }
        Threads::Reader => run_reader_thread(&mut set, input.tracker, files, obs, BATCH_FRAMES),
        Threads::ReaderBatchFrames(n) => run_reader_thread(&mut set, input.tracker, files, obs, n),
    };
    sum.files = set.infos();
    sum.frames = sum.files.iter().map(|f| f.frames).sum();
    if sum.frames == 0 {
        let f = &sum.files[0];
        let reason = match &f.stopped_early {
            Some(s) => format!("no packet could be read ({})", s),
            None => "capture contains no packets".to_string(),
        };
        return Err(Error::NoPackets {
            path: f.path.clone(),
            reason,
        });
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    //! Capture-level warnings from hand-built summaries.

    use super::*;
    use crate::time::NANOS_PER_SEC;

    const T0: i64 = 1_700_000_000 * NANOS_PER_SEC;

    /// A file whose packets span `[first_s, last_s]` seconds after T0.
    fn file(name: &str, first_s: i64, last_s: i64) -> FileInfo {
        FileInfo {
            path: name.into(),
            snaplen: 262_144,
            frames: 10,
            frames_matched: 10,
            first_ts: Some(Timestamp(T0 + first_s * NANOS_PER_SEC)),
            last_ts: Some(Timestamp(T0 + last_s * NANOS_PER_SEC)),
            ..Default::default()
        }
    }

    fn warnings(files: Vec<FileInfo>) -> Vec<String> {
        CaptureSummary {
            files,
            ..Default::default()
        }
        .artefacts()
        .iter()
        .map(|a| a.to_string())
        .collect()
    }

    #[test]
    fn snaplen_warning_quotes_the_real_cut() {
        let mut f = file("cut.pcap", 0, 1);
        f.snaplen = 10_000;
        f.frames_truncated = 4;
        f.cut_range = Some((54, 54));
        let w = warnings(vec![f.clone()]);
        assert_eq!(w.len(), 1);
        assert!(
            w[0].contains("4 of 10 frames were cut at 54 bytes (the file's snaplen is 10000)"),
            "{}",
            w[0]
        );
        // Several cut lengths: the range.
        f.cut_range = Some((54, 96));
        assert!(warnings(vec![f.clone()])[0].contains("cut at 54–96 bytes"));
        // The cut is the snaplen: said once, as before.
        f.cut_range = Some((10_000, 10_000));
        let w = warnings(vec![f]);
        assert!(
            w[0].contains("were cut by the snaplen (10000 bytes)"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn cut_range_widens() {
        let r = crate::capture::widen(None, 96);
        assert_eq!(r, Some((96, 96)));
        let r = crate::capture::widen(r, 54);
        assert_eq!(crate::capture::widen(r, 60), Some((54, 96)));
    }

    #[test]
    fn time_gap_between_merged_files_over_an_hour() {
        // b starts 2 h after a ends.
        let w = warnings(vec![
            file("a.pcap", 0, 60),
            file("b.pcap", 60 + 7200, 60 + 7300),
        ]);
        assert_eq!(w.len(), 1, "{:?}", w);
        assert!(w[0].starts_with("b.pcap: time jump between merged files"));
        assert!(
            w[0].contains("start 2h00m after the end of a.pcap"),
            "{}",
            w[0]
        );
        // b ends 3 days before a starts.
        let w = warnings(vec![
            file("a.pcap", 3 * 86_400, 3 * 86_400 + 10),
            file("b.pcap", 0, 5),
        ]);
        assert!(
            w[0].contains("2d23h before the start of a.pcap"),
            "{}",
            w[0]
        );
    }

    #[test]
    fn no_time_gap_at_or_under_an_hour_or_when_overlapping() {
        // Exactly one hour apart: not a jump.
        assert!(warnings(vec![file("a.pcap", 0, 60), file("b.pcap", 3660, 3700)]).is_empty());
        // One second more is.
        assert_eq!(
            warnings(vec![file("a.pcap", 0, 60), file("b.pcap", 3661, 3700)]).len(),
            1
        );
        // Overlapping vantage points (the usual merge) and a single file: nothing.
        assert!(warnings(vec![file("a.pcap", 0, 60), file("b.pcap", 1, 59)]).is_empty());
        assert!(warnings(vec![file("a.pcap", 0, 86_400 * 3)]).is_empty());
    }
}
