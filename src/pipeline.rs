//! Wiring: pushes frames from `capture/` through `decode/` into `flow/`, and hands finished
//! connections to an `Observer`. Holds no protocol logic.
//!
//! Reading files can use two threads (`Threads::Reader`): a reader thread runs libpcap (the
//! filter, frame numbering, merging files) and `decode/`, copies each frame into a reused
//! `FrameBatch`, and sends full batches through a bounded queue (`QUEUE_BATCHES`) to the calling
//! thread, which runs the tracker, the application observers and the `Observer`. Frames keep
//! their order, so every result is identical to `Threads::One` (tested on `captures/`).

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
    /// Whether `segment` reads `Frame::data`. When it does not and `wants_app` is false, the
    /// reader thread copies only each frame's headers, not its payload (`Frame::data` is then
    /// cut after the TCP header).
    fn wants_frame_data(&self) -> bool {
        true
    }
    /// One decoded TCP segment and the tracker's verdict on it.
    fn segment(&mut self, _frame: &Frame<'_>, _seg: &TcpSegment<'_>, _outcome: &SegmentOutcome) {}
    /// One application-layer event (TLS hello/alert, HTTP request/response), as it happens.
    fn app_event(&mut self, _flow: u64, _ev: &AppEvent) {}
    /// Every frame has been read: the connections still open are about to end (their
    /// `flow_end` follows, with `EndReason::CaptureEnd`). `last_ts` is the capture's last frame
    /// time, so that they can be judged as they end instead of being kept until the report.
    fn capture_ending(&mut self, _last_ts: Option<Timestamp>) {}
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
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome) {
        (**self).segment(frame, seg, outcome)
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
    apps: Vec<Option<AppFlow>>,
    want_app: bool,
    max_pending_requests: usize,
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
            Some(a.map(AppFlow::finish).unwrap_or_default())
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
        app.event(ctx.dir, ctx.frame, ev, &mut |e| obs.app_event(ctx.flow, e));
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

/// Reads every input file and runs the tracker; returns the capture summary.
/// The stages wired together, fed one frame at a time (files or a live interface).
pub struct Pipeline<O: Observer> {
    table: FlowTable,
    sink: SinkAdapter<O>,
    sum: CaptureSummary,
    prev_ts: Vec<Option<Timestamp>>,
}

impl<O: Observer> Pipeline<O> {
    pub fn new(tracker: TrackerConfig, obs: O, files: usize) -> Pipeline<O> {
        let want_app = obs.wants_app();
        Pipeline {
            table: FlowTable::new(tracker),
            sink: SinkAdapter {
                obs,
                apps: Vec::new(),
                want_app,
                max_pending_requests: tracker.max_pending_requests,
            },
            sum: CaptureSummary {
                max_connections: tracker.max_connections,
                max_pending_requests: tracker.max_pending_requests,
                ..CaptureSummary::default()
            },
            prev_ts: vec![None; files.max(1)],
        }
    }

    /// Pushes one frame through decode and the tracker.
    pub fn frame(&mut self, frame: &Frame<'_>) {
        self.frame_decoded(frame, decode::decode(frame.link, frame.data))
    }

    /// Pushes one frame, already decoded (by the reader thread), through the tracker.
    fn frame_decoded(&mut self, frame: &Frame<'_>, decoded: Decoded<'_>) {
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
                let outcome = self.table.process(&seg, fr, &mut self.sink);
                self.sink.obs.segment(frame, &seg, &outcome);
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

    /// Time passed without frames (live capture): connections whose timeout passed end now.
    pub fn tick(&mut self, now: Timestamp) {
        self.table.sweep(now, &mut self.sink);
    }

    pub fn observer(&mut self) -> &mut O {
        &mut self.sink.obs
    }

    /// What was read so far (files and table counters are filled in by `finish`).
    pub fn summary(&self) -> CaptureSummary {
        let mut s = self.sum.clone();
        s.frames = s.frames_matched;
        s.table = self.table.stats;
        s
    }

    /// Open connection attempts that got no answer yet (see `FlowTable::open_attempts`).
    pub fn open_attempts(&self) -> Vec<FlowSummary> {
        self.table.open_attempts()
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
                let f = self.table.open_summary(slot as u32, a.flow)?;
                Some((f, a.peek()))
            })
            .collect()
    }

    pub fn active_connections(&self) -> usize {
        self.table.active()
    }

    /// Ends every open connection; returns the observer and the summary.
    pub fn finish(mut self) -> (O, CaptureSummary) {
        self.sink.obs.capture_ending(self.sum.last_ts);
        self.table.finish_all(&mut self.sink);
        let mut s = self.sum;
        s.frames = s.frames_matched;
        s.table = self.table.stats;
        (self.sink.obs, s)
    }
}

/// How `run` uses threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Threads {
    /// Read, decode, track and observe on the calling thread.
    One,
    /// A reader thread reads and decodes; the calling thread tracks and observes.
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

/// Frames per batch sent from the reader thread (a batch is sent when it has this many frames or
/// `BATCH_BYTES` bytes, whichever comes first).
pub const BATCH_FRAMES: usize = 1024;
/// Frame bytes per batch (a single larger frame makes a batch of its own).
pub const BATCH_BYTES: usize = 512 * 1024;
/// Full batches waiting for the tracker at most; the reader blocks when the queue is full, so at
/// most `QUEUE_BATCHES + 2` batches exist (about 3 MiB).
pub const QUEUE_BATCHES: usize = 4;

/// A frame decoded by the reader thread. The segment's payload is empty here and re-borrowed
/// from the batch on the tracker's side (offset and length within the frame).
#[derive(Clone, Copy)]
enum PreDecoded {
    Tcp(TcpSegment<'static>, usize, usize),
    Icmp(crate::decode::IcmpError),
    Skip(Skip),
}

fn pre_decode(frame: &Frame<'_>) -> PreDecoded {
    match decode::decode(frame.link, frame.data) {
        Decoded::Tcp(s) => {
            let off = if s.payload.is_empty() {
                0
            } else {
                s.payload.as_ptr() as usize - frame.data.as_ptr() as usize
            };
            let len = s.payload.len();
            PreDecoded::Tcp(
                TcpSegment {
                    src: s.src,
                    dst: s.dst,
                    sport: s.sport,
                    dport: s.dport,
                    seq: s.seq,
                    ack: s.ack,
                    flags: s.flags,
                    window: s.window,
                    checksum: s.checksum,
                    ip_id: s.ip_id,
                    ttl: s.ttl,
                    payload_len: s.payload_len,
                    payload: &[],
                    truncated: s.truncated,
                },
                off,
                len,
            )
        }
        Decoded::Icmp(e) => PreDecoded::Icmp(e),
        Decoded::Skip(k) => PreDecoded::Skip(k),
    }
}

struct Batch {
    frames: crate::capture::FrameBatch,
    decoded: Vec<PreDecoded>,
}

impl Batch {
    fn new() -> Batch {
        Batch {
            frames: crate::capture::FrameBatch::with_capacity(BATCH_BYTES, BATCH_FRAMES),
            decoded: Vec::with_capacity(BATCH_FRAMES),
        }
    }
    fn full(&self, max_frames: usize) -> bool {
        self.frames.len() >= max_frames || self.frames.bytes() >= BATCH_BYTES
    }
}

/// Reads `set` on a reader thread and feeds `p` on this one.
fn run_reader_thread<O: Observer>(set: &mut OfflineSet, p: &mut Pipeline<O>, max_frames: usize) {
    let max_frames = max_frames.clamp(1, BATCH_FRAMES);
    // Nobody reads payload bytes: copy headers only (most of the bytes of a big capture).
    let headers_only = !p.sink.want_app && !p.sink.obs.wants_frame_data();
    use std::sync::mpsc::sync_channel;
    let (full_tx, full_rx) = sync_channel::<Batch>(QUEUE_BATCHES);
    // Emptied batches go back to the reader; this queue never fills (it can hold every batch).
    let (empty_tx, empty_rx) = sync_channel::<Batch>(QUEUE_BATCHES + 4);
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("proxyscope-reader".into())
            .spawn_scoped(s, move || {
                let mut b = Batch::new();
                let mut closed = false;
                set.run(|f| {
                    if closed {
                        return;
                    }
                    if b.frames.bytes() + f.data.len() > BATCH_BYTES && !b.frames.is_empty() {
                        let next = empty_rx.try_recv().unwrap_or_else(|_| Batch::new());
                        if full_tx.send(std::mem::replace(&mut b, next)).is_err() {
                            closed = true;
                            return;
                        }
                    }
                    let d = pre_decode(f);
                    match d {
                        PreDecoded::Tcp(_, off, _) if headers_only && off > 0 => {
                            b.frames.push(&Frame {
                                data: &f.data[..off],
                                ..*f
                            });
                            b.decoded.push(match d {
                                PreDecoded::Tcp(seg, off, _) => PreDecoded::Tcp(seg, off, 0),
                                other => other,
                            });
                        }
                        _ => {
                            b.frames.push(f);
                            b.decoded.push(d);
                        }
                    }
                    if b.full(max_frames) {
                        let next = empty_rx.try_recv().unwrap_or_else(|_| Batch::new());
                        if full_tx.send(std::mem::replace(&mut b, next)).is_err() {
                            closed = true;
                        }
                    }
                });
                if !closed && !b.frames.is_empty() {
                    let _ = full_tx.send(b);
                }
            })
            .expect("spawn the reader thread");
        for mut b in full_rx {
            for i in 0..b.frames.len() {
                let f = b.frames.frame(i);
                let d = match b.decoded[i] {
                    PreDecoded::Tcp(seg, off, len) => Decoded::Tcp(TcpSegment {
                        payload: &f.data[off..off + len],
                        ..seg
                    }),
                    PreDecoded::Icmp(e) => Decoded::Icmp(e),
                    PreDecoded::Skip(k) => Decoded::Skip(k),
                };
                p.frame_decoded(&f, d);
            }
            b.frames.clear();
            b.decoded.clear();
            let _ = empty_tx.try_send(b);
        }
    });
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
    let mut set = OfflineSet::open_with(&input.files, &input.read_options())?;
    if input.files.len() > 1 {
        set.set_offsets(&OfflineSet::estimate_offsets(
            &input.files,
            input.filter.as_deref(),
        )?);
    }
    let mut p = Pipeline::new(input.tracker, obs, input.files.len());
    match threads {
        Threads::One => set.run(|frame| p.frame(frame)),
        Threads::Reader => run_reader_thread(&mut set, &mut p, BATCH_FRAMES),
        Threads::ReaderBatchFrames(n) => run_reader_thread(&mut set, &mut p, n),
    }
    let (_, mut sum) = p.finish();
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
