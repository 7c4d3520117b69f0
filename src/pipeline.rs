//! Wiring: pushes frames from `capture/` through `decode/` into `flow/`, and hands finished
//! connections to an `Observer`. Holds no protocol logic.

use crate::app::{AppEvent, AppFlow, AppSummary};
use crate::capture::{FileInfo, Frame, OfflineSet};
use crate::config::InputConfig;
use crate::decode::{self, Decoded, Skip, TcpSegment};
use crate::error::{Error, Result};
use crate::flow::{
    FlowSink, FlowSummary, FlowTable, FrameRef, SegmentOutcome, StreamCtx, StreamEvent, TableStats,
    TrackerConfig,
};
use crate::time::Timestamp;
use serde::Serialize;

/// Receives what the pipeline produces. Every method but `flow_end` is optional.
pub trait Observer {
    /// A finished connection (port reuse, expiry, or end of capture), with what the
    /// application layer learned about it when `wants_app` is true.
    fn flow_end(&mut self, summary: FlowSummary, app: Option<AppSummary>);
    /// Whether to reassemble streams and run the TLS / HTTP observers (costs time).
    fn wants_app(&self) -> bool {
        false
    }
    /// One decoded TCP segment and the tracker's verdict on it.
    fn segment(&mut self, _frame: &Frame<'_>, _seg: &TcpSegment<'_>, _outcome: &SegmentOutcome) {}
    /// One application-layer event (TLS hello/alert, HTTP request/response), as it happens.
    fn app_event(&mut self, _flow: u64, _ev: &AppEvent) {}
}

impl<T: Observer + ?Sized> Observer for &mut T {
    fn flow_end(&mut self, summary: FlowSummary, app: Option<AppSummary>) {
        (**self).flow_end(summary, app)
    }
    fn wants_app(&self) -> bool {
        (**self).wants_app()
    }
    fn segment(&mut self, frame: &Frame<'_>, seg: &TcpSegment<'_>, outcome: &SegmentOutcome) {
        (**self).segment(frame, seg, outcome)
    }
    fn app_event(&mut self, flow: u64, ev: &AppEvent) {
        (**self).app_event(flow, ev)
    }
}

/// Routes the tracker's output: stream bytes to per-connection application state (indexed by
/// the connection's table slot), finished connections to the observer.
struct SinkAdapter<O: Observer> {
    obs: O,
    apps: Vec<Option<AppFlow>>,
    want_app: bool,
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
            *a = Some(AppFlow::new(ctx.flow));
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
    /// Capture time ran backwards between consecutive frames (per file).
    pub time_reversals: u64,
}

impl CaptureSummary {
    /// Capture-level artefacts, one line each (never outages).
    pub fn warnings(&self) -> Vec<String> {
        let mut w = Vec::new();
        for f in self.files.iter().skip(1) {
            if let Some((off, n)) = f.clock_offset {
                w.push(format!(
                    "{}: its clock is {:+.6} s off the first file's ({} packets seen in both files); timestamps were corrected and packets seen twice count once",
                    f.path.display(),
                    off as f64 / 1e9,
                    n
                ));
            }
        }
        for f in &self.files {
            if let Some(s) = &f.stopped_early {
                w.push(format!(
                    "{}: file is truncated or corrupt, {}; the frames before it were analysed",
                    f.path.display(),
                    s
                ));
            }
            if f.frames_truncated > 0 {
                w.push(format!(
                    "{}: {} of {} frames were cut by the snaplen ({} bytes); headers were analysed, payload beyond the cut was not",
                    f.path.display(),
                    f.frames_truncated,
                    f.frames_matched,
                    f.snaplen
                ));
            }
        }
        if self.skipped.malformed > 0 {
            w.push(format!(
                "{} frames had malformed or cut link/IP/TCP headers and were skipped",
                self.skipped.malformed
            ));
        }
        if self.skipped.ip_fragment > 0 {
            w.push(format!(
                "{} IP fragments were skipped (fragments are not reassembled)",
                self.skipped.ip_fragment
            ));
        }
        if self.time_reversals > 0 {
            w.push(format!(
                "capture time went backwards {} times between consecutive frames",
                self.time_reversals
            ));
        }
        w
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
            },
            sum: CaptureSummary::default(),
            prev_ts: vec![None; files.max(1)],
        }
    }

    /// Pushes one frame through decode and the tracker.
    pub fn frame(&mut self, frame: &Frame<'_>) {
        let sum = &mut self.sum;
        sum.frames_matched += 1;
        if frame.caplen < frame.wire_len {
            sum.truncated_frames += 1;
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
        match decode::decode(frame.link, frame.data) {
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

    pub fn active_connections(&self) -> usize {
        self.table.active()
    }

    /// Ends every open connection; returns the observer and the summary.
    pub fn finish(mut self) -> (O, CaptureSummary) {
        self.table.finish_all(&mut self.sink);
        let mut s = self.sum;
        s.frames = s.frames_matched;
        s.table = self.table.stats;
        (self.sink.obs, s)
    }
}

/// Reads every input file and runs the tracker; returns the capture summary.
pub fn run<O: Observer>(input: &InputConfig, obs: &mut O) -> Result<CaptureSummary> {
    let mut set = OfflineSet::open(&input.files, input.filter.as_deref())?;
    if input.files.len() > 1 {
        set.set_offsets(&OfflineSet::estimate_offsets(
            &input.files,
            input.filter.as_deref(),
        )?);
    }
    let mut p = Pipeline::new(input.tracker, obs, input.files.len());
    set.run(|frame| p.frame(frame));
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
