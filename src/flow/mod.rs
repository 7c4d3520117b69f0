//! TCP flow tracking: one record per connection attempt, Zeek-compatible, with Wireshark's
//! retransmission classification.
//!
//! Owns: the flow table (a slab of connections plus a hash map from the direction-free 4-tuple),
//! per-direction endpoint state, sequence tracking, retransmission classification, capture
//! duplicates, history letters, idle expiry in capture time, TIME_WAIT bookkeeping for 4-tuple
//! reuse. Must not: interpret payload bytes (that is `app/`), read a clock, or allocate per packet
//! (the table grows when connections are added; summaries are built once per connection).
//!
//! Invariants:
//! - The originator is the side that sent the SYN. Without a SYN (capture began mid-connection)
//!   `pick_originator` decides and the record is marked `partial`.
//! - A SYN whose sequence number differs from what the table knows for that direction starts a
//!   new connection on the same 4-tuple (port reuse), as Wireshark splits `tcp.stream`; a SYN with
//!   the same ISN is a retransmission of the same attempt.
//! - Retransmission classes are computed with Wireshark's rules (`wireshark.rs`), for every frame
//!   including capture duplicates, so `ws_class` equals tshark's `tcp.analysis.*` flags; the
//!   connection's own counters then leave capture duplicates out.
//! - Memory is bounded by concurrently active connections: closed ones expire after
//!   `closed_timeout`, idle ones after `idle_timeout` / `attempt_timeout`, all in capture time;
//!   and by `max_connections`: at the cap the least recently active eighth of the table is
//!   finished early (`EndReason::Evicted`, counted in `TableStats::evicted`), so a flood of
//!   spoofed SYNs cannot grow the table without bound.

pub mod reasm;
pub mod seq;
pub mod state;
mod wireshark;

#[cfg(test)]
pub(crate) mod testkit;
#[cfg(test)]
mod tests;

use crate::decode::{flags, IcmpError, TcpSegment};
use crate::time::{Timestamp, NANOS_PER_MILLI, NANOS_PER_SEC};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

pub use reasm::StreamEvent;
pub use state::{ConnState, EndpointState, History, HistoryText};
pub use wireshark::RetransClass;
use wireshark::{WsDir, WsResult};

/// A frame's identity for evidence: file index, Wireshark frame number and time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Serialize)]
pub struct FrameRef {
    pub file: u16,
    pub number: u64,
    #[serde(skip)]
    pub ts: Timestamp,
}

/// Direction within a connection: a role, not a source/destination.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    Orig,
    Resp,
}

impl Direction {
    #[inline]
    pub fn idx(self) -> usize {
        self as usize
    }
    #[inline]
    pub fn other(self) -> Direction {
        match self {
            Direction::Orig => Direction::Resp,
            Direction::Resp => Direction::Orig,
        }
    }
}

/// Tunables of the tracker, all in capture time (see `Config` for the user-facing flags).
#[derive(Clone, Copy, Debug)]
pub struct TrackerConfig {
    /// An established or partial connection with no packet for this long is finished.
    pub idle_timeout_ns: i64,
    /// An attempt that never got an answer (only SYNs) is finished after this much silence.
    /// Longer than the largest gap between Linux SYN retransmissions (32 s with the default
    /// `tcp_syn_retries = 6`).
    pub attempt_timeout_ns: i64,
    /// A connection reset, or closed by FINs not both acknowledged, is finished after this much
    /// silence (late ACKs and retransmitted FINs still land in it).
    pub closed_timeout_ns: i64,
    /// A connection whose close completed (both FINs, each acknowledged, no RST) is finished
    /// after this much silence. Default: the capture-duplicate window, so a second copy of the
    /// final ACK (two capture points, `-i any`) still lands in it; nothing else can follow but a
    /// FIN resent after a lost final ACK, which Linux sends no sooner than its minimum RTO
    /// (200 ms). Later segments without payload on the 4-tuple are counted as late
    /// (`TableStats::late_after_close`), not as a new connection; data starts a new (partial)
    /// one. Short, so a busy proxy's finished connections (thousands a second) leave the table
    /// at once.
    pub completed_close_ns: i64,
    /// How long the side that closed first holds TIME_WAIT (Linux: 60 s). A SYN on a 4-tuple
    /// closed less than this ago is flagged `reused_in_time_wait`.
    pub time_wait_ns: i64,
    /// Identical segments (same IP id, TCP seq/ack/flags/window/checksum/length) in the same
    /// direction this close together are one packet captured twice, not a retransmission.
    pub duplicate_window_ns: i64,
    /// Connections tracked at once at most (`--max-connections`); see `EndReason::Evicted`.
    pub max_connections: usize,
    /// HTTP requests kept waiting for their response per connection (pipelining depth); more
    /// are counted (`HttpSummary::requests_over_cap`) and reported, not kept. Used by the
    /// pipeline's application observers, not by the tracker.
    pub max_pending_requests: usize,
}

/// How long the side that closed first holds TIME_WAIT on Linux (`TCP_TIMEWAIT_LEN`, 60 s): the
/// one definition, used by the tracker (4-tuple reuse) and by `time-wait-pileup`.
pub const TIME_WAIT: crate::time::Duration = crate::time::Duration::from_secs(60);

/// Default `TrackerConfig::max_connections`: far above what real proxies hold open at once in
/// one capture, small enough that the table stays at a few hundred MB in the worst case.
pub const DEFAULT_MAX_CONNECTIONS: usize = 200_000;
/// Default `TrackerConfig::max_pending_requests` (`app::http::MAX_PIPELINE`): far deeper than
/// browsers or proxies pipeline.
pub const DEFAULT_MAX_PENDING_REQUESTS: usize = 64;

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            idle_timeout_ns: 300 * NANOS_PER_SEC,
            attempt_timeout_ns: 60 * NANOS_PER_SEC,
            closed_timeout_ns: 2 * NANOS_PER_SEC,
            completed_close_ns: 20 * NANOS_PER_MILLI,
            time_wait_ns: TIME_WAIT.nanos(),
            duplicate_window_ns: 20 * NANOS_PER_MILLI,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_pending_requests: DEFAULT_MAX_PENDING_REQUESTS,
        }
    }
}

/// Frames kept per retransmitted segment (evidence); further copies are only counted.
pub const MAX_SEGMENT_FRAMES: usize = 8;
/// Distinct retransmitted segments tracked at once per direction (least recently used evicted).
pub const MAX_TRACKED_SEGMENTS: usize = 4;

/// One segment that was sent more than once.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SegmentRetx {
    /// Absolute sequence number of the segment's first byte.
    pub seq: u32,
    /// Relative sequence number (as Wireshark shows it by default), when the ISN is known.
    pub rel_seq: Option<u32>,
    pub len: u32,
    /// Times the segment was sent again (retransmissions and fast retransmissions; spurious
    /// ones and capture duplicates excluded).
    pub times: u32,
    /// The original transmission, when it was captured.
    pub original: Option<FrameRef>,
    /// The retransmissions (up to `MAX_SEGMENT_FRAMES`).
    pub frames: Vec<FrameRef>,
    #[serde(skip)]
    last_use: u64,
}

/// Per-direction counters and facts (the "sender" is the endpoint of that direction).
#[derive(Clone, Debug, Default)]
#[repr(C)]
pub struct DirStats {
    // What every segment updates first (`repr(C)`: see `Conn`).
    pub state: EndpointState,
    /// TTL / hop limit range of this sender's non-RST packets.
    pub ttl_min: u8,
    pub ttl_max: u8,
    /// Packets sent, capture duplicates excluded.
    pub pkts: u64,
    /// Payload bytes on the wire (`tcp.len` summed), capture duplicates excluded.
    pub bytes: u64,
    pub first_data: Option<FrameRef>,
    pub last_data: Option<FrameRef>,
    pub first_fin: Option<FrameRef>,
    pub retransmissions: u32,
    pub fast_retransmissions: u32,
    pub spurious_retransmissions: u32,
    pub out_of_order: u32,
    pub keepalives: u32,
    pub capture_duplicates: u32,
    pub zero_windows: u32,
    /// Segments that start beyond the highest sequence seen: a gap (lost before the capture
    /// point, or not captured).
    pub gaps: u32,
    /// Largest number of times one segment was sent again (see `SegmentRetx::times`).
    pub max_segment_retransmits: u32,
    /// Frames truncated by the snaplen.
    pub truncated: u32,
    /// RSTs from this sender whose sequence number was outside the receiver's window (RFC 5961
    /// §3: the receiver drops them): possibly spoofed or injected, not counted as resets.
    pub rst_outside_window: u32,
    /// Retransmissions whose bytes differ from the original segment's (same sequence number and
    /// length; checked only while streams are reassembled): Zeek's `retransmission_inconsistency`.
    pub inconsistent_retransmissions: u32,
    pub worst_segment: Option<Box<SegmentRetx>>,
    pub first_rst_outside_window: Option<FrameRef>,
    pub first_inconsistent_retransmission: Option<FrameRef>,
}

/// The first RST of a connection and its context.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct RstInfo {
    pub from: Direction,
    pub frame: FrameRef,
    pub ttl: u8,
    /// Payload bytes the RST sender had sent that the peer had not acknowledged yet.
    pub unacked_by_peer: u32,
    /// Payload bytes the peer had sent that the RST sender had not acknowledged yet.
    pub unacked_from_peer: u32,
    /// A FIN had been seen (from either side) before the RST.
    pub after_fin: bool,
    /// Which side sent the last payload before the RST.
    pub last_data_from: Option<Direction>,
}

/// An ICMP error that quoted one of this connection's segments.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct IcmpInfo {
    pub frame: FrameRef,
    pub reporter: IpAddr,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
}

/// Why a connection record was finished.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EndReason {
    /// Closed (both FINs, or a RST) and quiet for `closed_timeout` (`completed_close` when both
    /// FINs were acknowledged).
    Closed,
    /// No packet for the idle/attempt timeout.
    Idle,
    /// A new connection started on the same 4-tuple.
    Superseded,
    /// The capture ended while the connection was still open.
    CaptureEnd,
    /// The table was full (`max_connections`) and this was among the least recently active
    /// connections: finished early; a later packet of it starts a new (partial) record.
    Evicted,
}

/// Bookkeeping of one live connection. Frozen into a `FlowSummary` when it ends.
///
/// `repr(C)` to keep the declared order: what every segment reads or writes comes first, so that
/// a segment touches a few adjacent cache lines of its connection (connections are looked up in
/// no particular order, so each line touched is a likely cache miss), and what only a SYN, a
/// RST, a retransmission or the end needs comes last.
#[derive(Debug)]
#[repr(C)]
struct Conn {
    // Every segment.
    id: u64,
    last: FrameRef,
    orig: SocketAddr,
    ws: [WsDir; 2],
    /// Wireshark's `ts_mru_syn` / `ts_first_rtt` (conversation-wide).
    ws_mru_syn: Option<Timestamp>,
    ws_first_rtt: i64,
    /// The last acknowledgement number each direction sent with the ACK flag (RST window check).
    acked: [Option<u32>; 2],
    /// Where each direction's next fingerprint goes in `last_fp` (the oldest is overwritten;
    /// the ring is searched whole, so its order does not matter).
    fp_next: [u8; 2],
    last_data_from: Option<Direction>,
    first_fin_from: Option<Direction>,
    /// In `FlowTable::retiring` (its close completed).
    retire_queued: bool,
    /// The frame that last advanced each direction's highest sequence number, and its seq.
    last_advance: [Option<(u32, FrameRef)>; 2],
    history: History,
    dir: [DirStats; 2],
    /// The last `DUP_RING` segment fingerprints per direction, for capture-duplicate detection
    /// (a packet seen at two vantage points may arrive interleaved with its neighbours).
    last_fp: [[Option<Fingerprint>; DUP_RING]; 2],
    /// Stream reassembly per direction (used only when the sink wants streams).
    reasm: [reasm::Reassembler; 2],
    // Some segments, and the end.
    /// When both directions had sent a FIN (start of TIME_WAIT for the first closer).
    closed_at: Option<Timestamp>,
    resp: SocketAddr,
    partial: bool,
    first: FrameRef,
    syn_count: u32,
    first_syn: Option<FrameRef>,
    last_syn: Option<FrameRef>,
    synack: Option<FrameRef>,
    handshake_ack: Option<FrameRef>,
    isn_orig: Option<u32>,
    isn_resp: Option<u32>,
    rst: Option<RstInfo>,
    rst_count: u32,
    icmp: Option<IcmpInfo>,
    port_reused: bool,
    reused_in_time_wait: bool,
    /// See `FlowSummary::reused_close`.
    reused_close: Option<(Timestamp, Direction)>,
    /// Per-direction retransmitted-segment tracker, allocated on the first retransmission.
    retx: [Option<Box<RetxTracker>>; 2],
}

/// A RST may start this far below the receiver's next expected sequence number and still be
/// taken as in its window (stacks that reset with the sequence number of their FIN, or of data
/// the capture saw acknowledged late).
pub const RST_WINDOW_SLACK: i64 = 65_535;
/// Window scale assumed for the receiver when judging a RST (the largest, RFC 7323 §2.3): the
/// handshake's window-scale option is not decoded, so only RSTs outside the largest window the
/// receiver could have offered are called outside it.
const RST_WINDOW_MAX_SHIFT: u32 = 14;

/// What makes two segments the same packet (with a time, compared within a window). 32 bytes,
/// as is `Option<Fingerprint>` (the `bool` leaves a niche): a direction's ring is two cache lines.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Fingerprint {
    ts: Timestamp,
    seq: u32,
    ack: u32,
    len: u32,
    window: u16,
    checksum: u16,
    /// The IP identification (0 when there is none: IPv6).
    ip_id: u16,
    has_ip_id: bool,
    flags: u8,
}

#[derive(Clone, Debug, Default)]
struct RetxTracker {
    slots: Vec<SegmentRetx>,
    clock: u64,
}

/// A finished connection: everything later stages (signatures, reports) need.
#[derive(Clone, Debug, Serialize)]
pub struct FlowSummary {
    /// Sequential connection number in order of first packet (0-based).
    pub id: u64,
    /// The table slot it occupied (matches `StreamCtx::slot`).
    #[serde(skip)]
    pub slot: u32,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    /// The handshake was not seen: the originator was chosen by heuristic.
    pub partial: bool,
    pub conn_state: ConnState,
    pub history: HistoryText,
    #[serde(skip)]
    pub orig_stats: DirStats,
    #[serde(skip)]
    pub resp_stats: DirStats,
    pub first: FrameRef,
    pub last: FrameRef,
    #[serde(skip)]
    pub start: Timestamp,
    #[serde(skip)]
    pub end: Timestamp,
    pub syn_count: u32,
    pub first_syn: Option<FrameRef>,
    pub last_syn: Option<FrameRef>,
    pub synack: Option<FrameRef>,
    /// Handshake round-trip time (SYN-ACK to SYN plus ACK to SYN-ACK), seen from the capture point.
    pub rtt_ns: Option<i64>,
    pub rst: Option<RstInfo>,
    pub rst_count: u32,
    pub icmp: Option<IcmpInfo>,
    pub first_fin_from: Option<Direction>,
    #[serde(skip)]
    pub closed_at: Option<Timestamp>,
    pub port_reused: bool,
    pub reused_in_time_wait: bool,
    /// With `reused_in_time_wait`: when the connection this SYN replaced had closed, and which
    /// side of this connection held its TIME_WAIT (sent the first FIN).
    #[serde(skip)]
    pub reused_close: Option<(Timestamp, Direction)>,
    pub end_reason: EndReason,
}

impl FlowSummary {
    pub fn stats(&self, d: Direction) -> &DirStats {
        match d {
            Direction::Orig => &self.orig_stats,
            Direction::Resp => &self.resp_stats,
        }
    }
    pub fn retransmissions(&self) -> u32 {
        [&self.orig_stats, &self.resp_stats]
            .iter()
            .map(|d| d.retransmissions + d.fast_retransmissions + d.spurious_retransmissions)
            .sum()
    }
    pub fn max_segment_retransmits(&self) -> u32 {
        self.orig_stats
            .max_segment_retransmits
            .max(self.resp_stats.max_segment_retransmits)
    }
    pub fn duration_ns(&self) -> i64 {
        self.end.nanos_since(self.start)
    }
    pub fn capture_duplicates(&self) -> u32 {
        self.orig_stats.capture_duplicates + self.resp_stats.capture_duplicates
    }
}

/// What the tracker concluded about one segment (for per-frame consumers and tests).
#[derive(Clone, Copy, Debug, Default)]
pub struct SegmentOutcome {
    /// Connection number (`FlowSummary::id`).
    pub flow: u64,
    pub dir: Option<Direction>,
    /// Wireshark's classification of this frame (computed for duplicates too).
    pub ws_class: Option<RetransClass>,
    pub ws_keepalive: bool,
    /// This frame is a capture duplicate of the previous one in its direction.
    pub duplicate: bool,
    /// This SYN started a new connection on a 4-tuple that had one.
    pub port_reused: bool,
}

/// Direction-free key: the two socket addresses in canonical order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FlowKey {
    lo: (IpAddr, u16),
    hi: (IpAddr, u16),
}

/// Each side as one or two integers: the derived `Hash` wrote an address's discriminant, its
/// octets as a length-prefixed slice and the port apart, several hasher calls a side, once per
/// segment (the flow map) and per new or closed connection (`tuple_id`). An IPv4 side is one
/// `u64`, an IPv6 side a `u128` and a `u16`: within a family the encoding is one-to-one, and a
/// key's two sides are of one family.
impl std::hash::Hash for FlowKey {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        for (ip, port) in [self.lo, self.hi] {
            match ip {
                IpAddr::V4(a) => h.write_u64((u64::from(a.to_bits()) << 16) | u64::from(port)),
                IpAddr::V6(a) => {
                    h.write_u128(a.to_bits());
                    h.write_u16(port);
                }
            }
        }
    }
}

impl FlowKey {
    fn new(a: (IpAddr, u16), b: (IpAddr, u16)) -> FlowKey {
        if a <= b {
            FlowKey { lo: a, hi: b }
        } else {
            FlowKey { lo: b, hi: a }
        }
    }
}

/// Where a piece of reassembled stream comes from.
#[derive(Clone, Copy, Debug)]
pub struct StreamCtx {
    /// Slot of the connection in the table (reused after it ends; pair it with `flow`).
    pub slot: u32,
    /// Connection number (`FlowSummary::id`).
    pub flow: u64,
    pub dir: Direction,
    /// The frame whose segment delivered (or completed) these bytes.
    pub frame: FrameRef,
}

/// Receives finished connections and, when it asks for them, reassembled stream bytes.
pub trait FlowSink {
    fn flow_end(&mut self, summary: FlowSummary);
    /// Whether the table should reassemble streams for `stream` (off: no reassembly cost).
    fn wants_streams(&self) -> bool {
        false
    }
    /// In-order stream data, gaps and ends, per direction.
    fn stream(&mut self, _ctx: StreamCtx, _ev: StreamEvent<'_>) {}
}

impl<F: FnMut(FlowSummary)> FlowSink for F {
    fn flow_end(&mut self, summary: FlowSummary) {
        self(summary)
    }
}

/// Counters of the table itself.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct TableStats {
    pub connections: u64,
    pub peak_active: usize,
    pub port_reuses: u64,
    pub icmp_errors_matched: u64,
    pub icmp_errors_unmatched: u64,
    /// Connections finished early because the table was full (`max_connections`).
    pub evicted: u64,
    /// Times the table was full and evicted connections.
    pub evictions: u64,
    /// Segments without payload (not SYNs, or a copy of its SYN) on a 4-tuple whose connection
    /// had closed by FIN and was finished, within TIME_WAIT: late segments of that connection
    /// (a resent FIN, an ACK, a RST), not counted in its record.
    pub late_after_close: u64,
}

/// The flow table.
pub struct FlowTable {
    cfg: TrackerConfig,
    map: FxHashMap<FlowKey, u32>,
    slab: Vec<Option<Conn>>,
    /// Last packet time per slab slot, dense, so the expiry sweep does not touch every `Conn`.
    last_seen: Vec<i64>,
    free: Vec<u32>,
    /// The flow of the previous segment: consecutive segments usually share it.
    last_hit: Option<(FlowKey, u32)>,
    /// 4-tuples closed by FIN recently: when, and the connection's number, for TIME_WAIT reuse
    /// detection and for segments that arrive after the connection was finished.
    /// Keyed by a keyed 64-bit hash of the 4-tuple (`FlowTable::tuple_id`): a minute of a busy
    /// proxy's closes is hundreds of thousands of entries, and a full key would double them.
    recently_closed: FxHashMap<u64, Closed>,
    /// Keys `tuple_id` (random per table, so a capture cannot be made to collide on purpose).
    tuple_hasher: std::collections::hash_map::RandomState,
    /// Connections whose close completed, in the order it completed: (slot, connection
    /// number, time). Finished `completed_close` after their last segment.
    retiring: std::collections::VecDeque<(u32, u64, Timestamp)>,
    next_id: u64,
    last_sweep: Option<Timestamp>,
    now: Timestamp,
    pub stats: TableStats,
}

/// What the table remembers of a connection closed by FIN, for TIME_WAIT (24 bytes).
#[derive(Clone, Copy, Debug)]
struct Closed {
    at: Timestamp,
    /// The originator's initial sequence number: a SYN with it is a late copy of that
    /// connection's SYN, not a new connection (Wireshark keeps it in the same stream).
    isn: Option<u32>,
    /// The connection number; in the top bit whether the first FIN came from the key's `lo`
    /// endpoint (that side holds TIME_WAIT), in the next whether `lo` was the originator.
    flow_and_lo: u64,
}

impl Closed {
    const FIN_LO: u64 = 1 << 63;
    const ORIG_LO: u64 = 1 << 62;
    fn new(
        at: Timestamp,
        isn: Option<u32>,
        flow: u64,
        first_fin_from_lo: bool,
        orig_is_lo: bool,
    ) -> Closed {
        let bit = |b: bool, m: u64| if b { m } else { 0 };
        Closed {
            at,
            isn,
            flow_and_lo: (flow & !(Self::FIN_LO | Self::ORIG_LO))
                | bit(first_fin_from_lo, Self::FIN_LO)
                | bit(orig_is_lo, Self::ORIG_LO),
        }
    }
    fn flow(self) -> u64 {
        self.flow_and_lo & !(Self::FIN_LO | Self::ORIG_LO)
    }
    fn first_fin_from_lo(self) -> bool {
        self.flow_and_lo & Self::FIN_LO != 0
    }
    fn orig_is_lo(self) -> bool {
        self.flow_and_lo & Self::ORIG_LO != 0
    }
}

/// `Orig` when an endpoint is on the same end of a key (`lo` or not) as the originator; both
/// flags say "is the key's `lo` end".
fn same_side(endpoint_is_lo: bool, orig_is_lo: bool) -> Direction {
    if endpoint_is_lo == orig_is_lo {
        Direction::Orig
    } else {
        Direction::Resp
    }
}

/// Segment fingerprints remembered per direction for capture-duplicate detection.
pub const DUP_RING: usize = 4;

/// Capture time between sweeps for expired connections.
const SWEEP_INTERVAL_NS: i64 = NANOS_PER_SEC;

/// Ports a server commonly listens on: when the handshake was not seen, the side using one of
/// these is taken as the responder.
fn is_service_port(p: u16) -> bool {
    p < 1024
        || matches!(
            p,
            1080 | 1433
                | 2375
                | 2379
                | 3000
                | 3128
                | 3306
                | 5000
                | 5432
                | 5672
                | 6379
                | 8000
                | 8008
                | 8080
                | 8081
                | 8443
                | 8888
                | 9000
                | 9090
                | 9200
                | 9443
                | 11211
                | 27017
        )
}

/// Without a SYN: decides whether the sender of the first seen segment is the originator.
/// A SYN-ACK's sender is the responder; otherwise a service port on exactly one side marks the
/// responder; otherwise the lower port is taken as the server's (ephemeral ports are high).
fn sender_is_originator(seg: &TcpSegment<'_>) -> bool {
    if seg.has(flags::SYN) {
        return !seg.has(flags::ACK);
    }
    match (is_service_port(seg.sport), is_service_port(seg.dport)) {
        (false, true) => true,
        (true, false) => false,
        _ => seg.sport >= seg.dport,
    }
}

impl FlowTable {
    pub fn new(cfg: TrackerConfig) -> FlowTable {
        FlowTable {
            cfg,
            map: FxHashMap::default(),
            slab: Vec::new(),
            last_seen: Vec::new(),
            free: Vec::new(),
            last_hit: None,
            recently_closed: FxHashMap::default(),
            tuple_hasher: Default::default(),
            retiring: std::collections::VecDeque::new(),
            next_id: 0,
            last_sweep: None,
            now: Timestamp(0),
            stats: TableStats::default(),
        }
    }

    pub fn active(&self) -> usize {
        self.map.len()
    }

    /// The 4-tuple's key in `recently_closed`: SipHash with this table's random keys. Two
    /// 4-tuples share one with probability 2^-64 per pair (for a minute of 300 000 closes,
    /// about 2 in 10^9): then a SYN could be called a reuse, or a segment late.
    fn tuple_id(&self, key: &FlowKey) -> u64 {
        use std::hash::BuildHasher;
        self.tuple_hasher.hash_one(key)
    }

    fn alloc(&mut self, key: FlowKey, conn: Conn) -> u32 {
        let idx = match self.free.pop() {
            Some(i) => {
                self.slab[i as usize] = Some(conn);
                i
            }
            None => {
                self.slab.push(Some(conn));
                self.last_seen.push(0);
                (self.slab.len() - 1) as u32
            }
        };
        self.map.insert(key, idx);
        self.stats.connections += 1;
        self.stats.peak_active = self.stats.peak_active.max(self.map.len());
        idx
    }

    fn new_conn(&mut self, seg: &TcpSegment<'_>, fr: FrameRef) -> Conn {
        let sender_orig = sender_is_originator(seg);
        let a = SocketAddr::new(seg.src, seg.sport);
        let b = SocketAddr::new(seg.dst, seg.dport);
        let (orig, resp) = if sender_orig { (a, b) } else { (b, a) };
        let partial = !seg.has(flags::SYN);
        let id = self.next_id;
        self.next_id += 1;
        let mut history = History::default();
        if !sender_orig {
            history.flip();
        }
        Conn {
            id,
            orig,
            resp,
            partial,
            dir: Default::default(),
            ws: Default::default(),
            ws_mru_syn: None,
            ws_first_rtt: 0,
            history,
            first: fr,
            last: fr,
            syn_count: 0,
            first_syn: None,
            last_syn: None,
            synack: None,
            handshake_ack: None,
            isn_orig: None,
            isn_resp: None,
            rst: None,
            rst_count: 0,
            icmp: None,
            first_fin_from: None,
            closed_at: None,
            port_reused: false,
            reused_in_time_wait: false,
            reused_close: None,
            last_fp: [[None; DUP_RING]; 2],
            fp_next: [0; 2],
            last_data_from: None,
            retx: [None, None],
            last_advance: [None, None],
            reasm: Default::default(),
            acked: [None, None],
            retire_queued: false,
        }
    }

    /// Feeds one TCP segment. Finished connections (port reuse, expiry) go to `sink`.
    pub fn process(
        &mut self,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        sink: &mut impl FlowSink,
    ) -> SegmentOutcome {
        self.now = fr.ts;
        if self
            .last_sweep
            .is_none_or(|t| fr.ts.nanos_since(t) >= SWEEP_INTERVAL_NS)
        {
            self.sweep(fr.ts, sink);
            self.last_sweep = Some(fr.ts);
        }
        self.retire(fr.ts, sink);
        let key = FlowKey::new((seg.src, seg.sport), (seg.dst, seg.dport));
        let is_syn = seg.has(flags::SYN) && !seg.has(flags::ACK);
        let mut reused = false;
        let found = match self.last_hit {
            Some((k, i)) if k == key => Some(i),
            _ => self.map.get(&key).copied(),
        };
        let idx = match found {
            Some(i) => {
                let c = self.slab[i as usize].as_ref().expect("mapped slot is live");
                let d = if SocketAddr::new(seg.src, seg.sport) == c.orig {
                    Direction::Orig
                } else {
                    Direction::Resp
                };
                // Wireshark: a SYN whose sequence number differs from the direction's base
                // sequence starts a new conversation ("TCP port numbers reused").
                let new_attempt = is_syn && c.ws[d.idx()].base_seq.is_some_and(|b| b != seg.seq);
                if new_attempt {
                    self.finish(i, EndReason::Superseded, sink);
                    reused = true;
                    None
                } else {
                    Some(i)
                }
            }
            None => None,
        };
        let idx = match idx {
            Some(i) => i,
            None => {
                let id = self.tuple_id(&key);
                let closed = self.recently_closed.get(&id).copied();
                if let Some(closed) = closed {
                    let old_syn = is_syn && closed.isn == Some(seg.seq);
                    // Data is never late: after a completed close it can only be a new
                    // connection whose SYN was not captured (a partial record, as before).
                    let control = !seg.has(flags::SYN) && seg.payload_len == 0;
                    if (old_syn || control) && fr.ts.nanos_since(closed.at) < self.cfg.time_wait_ns
                    {
                        // A segment of the connection that closed on this 4-tuple (a FIN resent
                        // after a lost final ACK, a late copy of its SYN): not a new one.
                        self.stats.late_after_close += 1;
                        let from_lo = key.lo == (seg.src, seg.sport);
                        return SegmentOutcome {
                            flow: closed.flow(),
                            dir: Some(same_side(from_lo, closed.orig_is_lo())),
                            ..SegmentOutcome::default()
                        };
                    }
                }
                if self.map.len() >= self.cfg.max_connections.max(1) {
                    self.evict(sink);
                }
                let mut conn = self.new_conn(seg, fr);
                if let Some(closed) = closed {
                    self.recently_closed.remove(&id);
                    if is_syn && fr.ts.nanos_since(closed.at) < self.cfg.time_wait_ns {
                        conn.reused_in_time_wait = true;
                        // The new connection's side that sent the old first FIN holds TIME_WAIT.
                        let orig_is_lo = key.lo == (conn.orig.ip(), conn.orig.port());
                        let holder = same_side(closed.first_fin_from_lo(), orig_is_lo);
                        conn.reused_close = Some((closed.at, holder));
                        reused = true;
                    }
                }
                conn.port_reused = reused;
                if reused {
                    self.stats.port_reuses += 1;
                }
                self.alloc(key, conn)
            }
        };
        let cfg = self.cfg;
        self.last_hit = Some((key, idx));
        self.last_seen[idx as usize] = fr.ts.0;
        let conn = self.slab[idx as usize].as_mut().expect("live slot");
        let mut out = conn.on_segment(seg, fr, &cfg, idx, sink);
        if !conn.retire_queued && conn.close_completed() {
            conn.retire_queued = true;
            self.retiring.push_back((idx, conn.id, fr.ts));
        }
        out.port_reused = reused;
        out
    }

    /// Finishes the connections whose close completed `completed_close` ago and that stayed
    /// quiet since (one that got a segment since waits again from that segment).
    fn retire(&mut self, now: Timestamp, sink: &mut impl FlowSink) {
        let grace = self.cfg.completed_close_ns;
        while let Some(&(idx, id, at)) = self.retiring.front() {
            if now.nanos_since(at) < grace {
                break;
            }
            self.retiring.pop_front();
            let Some(c) = self.slab[idx as usize].as_ref().filter(|c| c.id == id) else {
                continue; // finished already (superseded, evicted, expired)
            };
            if now.nanos_since(c.last.ts) >= grace {
                self.finish(idx, EndReason::Closed, sink);
            } else {
                self.retiring.push_back((idx, id, c.last.ts));
            }
        }
    }

    /// Attaches an ICMP error to the connection whose segment it quotes.
    pub fn icmp(&mut self, e: &IcmpError, fr: FrameRef) {
        let key = FlowKey::new((e.src, e.sport), (e.dst, e.dport));
        match self
            .map
            .get(&key)
            .and_then(|&i| self.slab[i as usize].as_mut())
        {
            Some(c) => {
                self.stats.icmp_errors_matched += 1;
                if c.icmp.is_none() {
                    c.icmp = Some(IcmpInfo {
                        frame: fr,
                        reporter: e.reporter,
                        v6: e.v6,
                        icmp_type: e.icmp_type,
                        code: e.code,
                    });
                }
            }
            None => self.stats.icmp_errors_unmatched += 1,
        }
    }

    fn finish(&mut self, idx: u32, reason: EndReason, sink: &mut impl FlowSink) {
        // Summarised where it lies and dropped in place: moving the connection out of its slot
        // first copied its 1.6 KB once more per connection.
        let Some(conn) = self.slab[idx as usize].as_mut() else {
            return;
        };
        if sink.wants_streams() {
            for d in [Direction::Orig, Direction::Resp] {
                let ctx = StreamCtx {
                    slot: idx,
                    flow: conn.id,
                    dir: d,
                    frame: conn.last,
                };
                conn.reasm[d.idx()].finish(|ev| sink.stream(ctx, ev));
            }
        }
        let key = FlowKey::new(
            (conn.orig.ip(), conn.orig.port()),
            (conn.resp.ip(), conn.resp.port()),
        );
        let closed = match (conn.closed_at, conn.first_fin_from) {
            (Some(at), Some(first)) if conn.rst.is_none() => {
                let sender = match first {
                    Direction::Orig => conn.orig,
                    Direction::Resp => conn.resp,
                };
                Some(Closed::new(
                    at,
                    conn.isn_orig,
                    conn.id,
                    key.lo == (sender.ip(), sender.port()),
                    key.lo == (conn.orig.ip(), conn.orig.port()),
                ))
            }
            _ => None,
        };
        let mut summary = conn.take_summary(reason);
        self.slab[idx as usize] = None;
        self.map.remove(&key);
        self.free.push(idx);
        if self.last_hit.is_some_and(|(_, i)| i == idx) {
            self.last_hit = None;
        }
        if let Some(closed) = closed {
            let id = self.tuple_id(&key);
            self.recently_closed.insert(id, closed);
        }
        summary.slot = idx;
        sink.flow_end(summary);
    }

    /// The table is full: finishes the least recently active eighth of it (at least one), in
    /// slot order. Amortised: one pass over the table per `max_connections / 8` new connections.
    fn evict(&mut self, sink: &mut impl FlowSink) {
        let live: Vec<(i64, u32)> = self
            .slab
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_some())
            .map(|(i, _)| (self.last_seen[i], i as u32))
            .collect();
        if live.is_empty() {
            return;
        }
        let n = (live.len() / 8).max(1);
        let mut by_age = live;
        by_age.select_nth_unstable(n - 1);
        let mut victims: Vec<u32> = by_age[..n].iter().map(|&(_, i)| i).collect();
        victims.sort_unstable();
        self.stats.evictions += 1;
        self.stats.evicted += victims.len() as u64;
        for i in victims {
            self.finish(i, EndReason::Evicted, sink);
        }
    }

    /// Finishes connections whose timeout passed at capture time `now`.
    pub fn sweep(&mut self, now: Timestamp, sink: &mut impl FlowSink) {
        let cfg = self.cfg;
        let shortest = cfg
            .closed_timeout_ns
            .min(cfg.attempt_timeout_ns)
            .min(cfg.idle_timeout_ns);
        for i in 0..self.slab.len() {
            if now.0.saturating_sub(self.last_seen[i]) < shortest {
                continue;
            }
            let Some(c) = &self.slab[i] else { continue };
            let idle = now.nanos_since(c.last.ts);
            let expired = if c.is_closed() {
                idle >= cfg.closed_timeout_ns
            } else if c.is_attempt_only() {
                idle >= cfg.attempt_timeout_ns
            } else {
                idle >= cfg.idle_timeout_ns
            };
            if expired {
                let reason = if c.is_closed() {
                    EndReason::Closed
                } else {
                    EndReason::Idle
                };
                self.finish(i as u32, reason, sink);
            }
        }
        let tw = cfg.time_wait_ns;
        self.recently_closed
            .retain(|_, c| now.nanos_since(c.at) < tw);
    }

    /// Summaries of the connection attempts still open that got no answer at all (live mode
    /// judges them before they expire; the table keeps them, so SYN retransmissions still join
    /// the same attempt).
    pub fn open_attempts(&self) -> Vec<FlowSummary> {
        self.slab
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (i, c)))
            .filter(|(_, c)| c.is_attempt_only() && c.syn_count > 0)
            .map(|(i, c)| {
                let mut s = c.summarize(EndReason::CaptureEnd);
                s.slot = i as u32;
                s
            })
            .collect()
    }

    /// The summary of the connection in `slot` if it is connection `id` and still in the table
    /// (open, or closed and not yet finished): live mode judges connections that wait for an
    /// answer before they end; the table keeps them.
    pub fn open_summary(&self, slot: u32, id: u64) -> Option<FlowSummary> {
        let c = self.slab.get(slot as usize)?.as_ref()?;
        if c.id != id {
            return None;
        }
        let mut s = c.summarize(EndReason::CaptureEnd);
        s.slot = slot;
        Some(s)
    }

    /// The capture ended: finishes every connection, in order of first packet.
    pub fn finish_all(&mut self, sink: &mut impl FlowSink) {
        let mut live: Vec<(u64, u32)> = self
            .slab
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.as_ref().map(|c| (c.id, i as u32)))
            .collect();
        live.sort_unstable();
        for (_, i) in live {
            let reason = if self.slab[i as usize]
                .as_ref()
                .is_some_and(|c| c.is_closed())
            {
                EndReason::Closed
            } else {
                EndReason::CaptureEnd
            };
            self.finish(i, reason, sink);
        }
        self.recently_closed.clear();
        self.retiring.clear();
    }
}

/// The control flags of a segment that the tracker's phases read.
#[derive(Clone, Copy)]
struct SegFlags {
    syn: bool,
    ack: bool,
    fin: bool,
    rst: bool,
    /// A RST outside the receiver's window (RFC 5961): `rst` is then false.
    rst_outside: bool,
}

impl SegFlags {
    fn of(seg: &TcpSegment<'_>) -> SegFlags {
        SegFlags {
            syn: seg.has(flags::SYN),
            ack: seg.has(flags::ACK),
            fin: seg.has(flags::FIN),
            rst: seg.has(flags::RST),
            rst_outside: false,
        }
    }
}

impl Conn {
    /// Both FINs were sent and each was acknowledged, with no RST: the close completed.
    fn close_completed(&self) -> bool {
        self.closed_at.is_some()
            && self.rst.is_none()
            && (0..2).all(|d| {
                let fin_end = self.ws[d].nextseq;
                fin_end != 0 && self.acked[1 - d] == Some(fin_end)
            })
    }

    fn is_closed(&self) -> bool {
        self.rst.is_some()
            || (self.dir[0].state == EndpointState::Closed
                && self.dir[1].state == EndpointState::Closed)
    }

    /// Whether a RST sent in direction `di` with sequence number `seq` falls outside the
    /// receiver's window: below what the receiver (by its ACKs) or the sender (by its highest
    /// sequence number) says comes next, by more than `RST_WINDOW_SLACK`, or beyond it by more
    /// than the receiver's last window at the largest scale. Unknown when neither side's
    /// sequence space is known yet (a RST answering a SYN is judged by the tracker's other rules).
    fn rst_outside_window(&self, di: usize, seq: u32) -> bool {
        let o = 1 - di;
        let nextseq = self.ws[di].nextseq;
        let expect = [self.acked[o], (nextseq != 0).then_some(nextseq)];
        let window = ((self.ws[o].window as i64) << RST_WINDOW_MAX_SHIFT).max(65_535);
        let mut known = false;
        for e in expect.into_iter().flatten() {
            known = true;
            let d = seq.wrapping_sub(e) as i32 as i64;
            if (-RST_WINDOW_SLACK..=window).contains(&d) {
                return false;
            }
        }
        known
    }

    fn is_attempt_only(&self) -> bool {
        self.dir[1].pkts == 0 && self.dir[0].bytes == 0
    }

    /// One segment of this connection, in capture order. The phases, in Wireshark's and Zeek's
    /// order: direction; Wireshark's first-RTT bookkeeping; the RST's context (from the state
    /// before this segment); Wireshark's sequence analysis; capture duplicates (stop there);
    /// stream bytes to the sink; handshake facts; endpoint states; counters; per-segment
    /// retransmission counts; Zeek history letters.
    fn on_segment(
        &mut self,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        cfg: &TrackerConfig,
        slot: u32,
        sink: &mut impl FlowSink,
    ) -> SegmentOutcome {
        let d = if SocketAddr::new(seg.src, seg.sport) == self.orig {
            Direction::Orig
        } else {
            Direction::Resp
        };
        let di = d.idx();
        let f = SegFlags::of(seg);
        self.first_rtt_bookkeeping(f, fr);
        let rst_candidate = f.rst.then(|| self.rst_context(d, seg, fr));
        // RFC 5961 §3.2: a receiver accepts a RST only within its receive window; one outside
        // it is dropped (blind reset injection). Judged from the state before this segment; such
        // a RST is counted, and otherwise treated as if it had no RST flag.
        let rst_outside = f.rst && self.rst_outside_window(di, seg.seq);
        let f = SegFlags {
            rst: f.rst && !rst_outside,
            rst_outside,
            ..f
        };
        let (fwd, rev) = split_pair(&mut self.ws, di);
        let ws = fwd.analyze(rev, seg, fr, self.ws_first_rtt);
        let duplicate = self.capture_duplicate(di, seg, fr, cfg);
        self.last = fr;
        let out = SegmentOutcome {
            flow: self.id,
            dir: Some(d),
            ws_class: ws.class,
            ws_keepalive: ws.keepalive,
            duplicate,
            port_reused: false,
        };
        if duplicate {
            self.dir[di].capture_duplicates += 1;
            return out;
        }
        if sink.wants_streams() {
            self.feed_streams(d, f, seg, fr, slot, sink);
        }
        self.handshake_facts(d, f, seg, fr);
        if rst_outside {
            let st = &mut self.dir[di];
            st.rst_outside_window += 1;
            st.first_rst_outside_window.get_or_insert(fr);
        }
        if f.ack && !rst_outside {
            self.acked[di] = Some(seg.ack);
        }
        if f.rst {
            self.rst_count += 1;
            if self.rst.is_none() {
                self.rst = rst_candidate;
            }
        }
        let (own, peer) = split_pair(&mut self.dir, di);
        EndpointState::on_send(&mut own.state, &mut peer.state, f.syn, f.ack, f.fin, f.rst);
        self.count(d, f, seg, fr, &ws);
        self.count_segment_retransmission(d, f, seg, fr, &ws);
        self.history_letters(d == Direction::Orig, f, seg, &ws);
        out
    }

    /// Wireshark's first-RTT bookkeeping happens before its sequence analysis.
    fn first_rtt_bookkeeping(&mut self, f: SegFlags, fr: FrameRef) {
        let (syn, ack) = (f.syn, f.ack);
        if syn && !ack {
            self.ws_mru_syn = Some(fr.ts);
        }
        if ack && !syn && self.ws_first_rtt == 0 {
            if let Some(t) = self.ws_mru_syn {
                self.ws_first_rtt = fr.ts.nanos_since(t);
            }
        }
    }

    /// A RST's context, from the state before it: a bare RST's ack field is 0 and must not
    /// count as its sender's last acknowledgement.
    fn rst_context(&self, d: Direction, seg: &TcpSegment<'_>, fr: FrameRef) -> RstInfo {
        let di = d.idx();
        let o = d.other().idx();
        // `nextseq` counts a FIN's sequence slot; a FIN not yet acknowledged is not data in
        // flight (haproxy answers a backend's FIN with a RST instead of an ACK).
        let unacked = |sender: &WsDir, receiver: &WsDir, fin_sent: bool| -> u32 {
            if sender.nextseq == 0 || receiver.lastack == 0 {
                return 0;
            }
            let n = sender.nextseq.wrapping_sub(receiver.lastack) as i32;
            let n = n.clamp(0, i32::MAX) as u32;
            if fin_sent {
                n.saturating_sub(1)
            } else {
                n
            }
        };
        RstInfo {
            from: d,
            frame: fr,
            ttl: seg.ttl,
            unacked_by_peer: unacked(&self.ws[di], &self.ws[o], self.dir[di].first_fin.is_some()),
            unacked_from_peer: unacked(&self.ws[o], &self.ws[di], self.dir[o].first_fin.is_some()),
            after_fin: self.first_fin_from.is_some(),
            last_data_from: self.last_data_from,
        }
    }

    /// A capture duplicate: the same packet seen twice within a few milliseconds (remembered
    /// per direction).
    fn capture_duplicate(
        &mut self,
        di: usize,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        cfg: &TrackerConfig,
    ) -> bool {
        let fp = Fingerprint {
            ip_id: seg.ip_id.unwrap_or(0),
            has_ip_id: seg.ip_id.is_some(),
            seq: seg.seq,
            ack: seg.ack,
            flags: seg.flags,
            window: seg.window,
            checksum: seg.checksum,
            len: seg.payload_len,
            ts: fr.ts,
        };
        let duplicate = self.last_fp[di].iter().flatten().any(|p| {
            fr.ts.nanos_since(p.ts).abs() <= cfg.duplicate_window_ns
                && Fingerprint { ts: fr.ts, ..*p } == fp
        });
        if !duplicate {
            let next = &mut self.fp_next[di];
            self.last_fp[di][*next as usize] = Some(fp);
            *next = ((*next as usize + 1) % DUP_RING) as u8;
        }
        duplicate
    }

    /// Stream bytes (in order, gaps, end) to the sink, and acknowledgements of the other
    /// direction.
    fn feed_streams(
        &mut self,
        d: Direction,
        f: SegFlags,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        slot: u32,
        sink: &mut impl FlowSink,
    ) {
        let (syn, ack, fin, rst) = (f.syn, f.ack, f.fin, f.rst);
        let di = d.idx();
        let ctx = StreamCtx {
            slot,
            flow: self.id,
            dir: d,
            frame: fr,
        };
        let r = &mut self.reasm[di];
        if syn {
            r.syn(seg.seq);
        }
        let start = if syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        let inconsistent = r.segment(start, seg.payload_len, seg.payload, |ev| {
            sink.stream(ctx, ev)
        });
        if inconsistent {
            let st = &mut self.dir[di];
            st.inconsistent_retransmissions += 1;
            st.first_inconsistent_retransmission.get_or_insert(fr);
        }
        if fin || rst {
            r.end(rst, |ev| sink.stream(ctx, ev));
        }
        if ack {
            let octx = StreamCtx {
                dir: d.other(),
                ..ctx
            };
            self.reasm[d.other().idx()].acked(seg.ack, |ev| sink.stream(octx, ev));
        }
    }

    /// SYNs, the SYN-ACK, the handshake's ACK, initial sequence numbers.
    fn handshake_facts(&mut self, d: Direction, f: SegFlags, seg: &TcpSegment<'_>, fr: FrameRef) {
        let (syn, ack) = (f.syn, f.ack);
        let orig = d == Direction::Orig;
        if syn && !ack {
            self.syn_count += 1;
            if self.first_syn.is_none() {
                self.first_syn = Some(fr);
            }
            self.last_syn = Some(fr);
            if orig && self.isn_orig.is_none() {
                self.isn_orig = Some(seg.seq);
            }
        }
        if syn && ack && self.synack.is_none() {
            self.synack = Some(fr);
            if !orig {
                self.isn_resp = Some(seg.seq);
            }
        }
        if !syn && ack && orig && self.synack.is_some() && self.handshake_ack.is_none() {
            self.handshake_ack = Some(fr);
        }
    }

    /// Per-direction counters and the close time.
    fn count(
        &mut self,
        d: Direction,
        f: SegFlags,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        ws: &WsResult,
    ) {
        let (rst, fin, rst_outside) = (f.rst, f.fin, f.rst_outside);
        let di = d.idx();
        let st = &mut self.dir[di];
        st.pkts += 1;
        st.bytes += seg.payload_len as u64;
        if seg.truncated {
            st.truncated += 1;
        }
        if !rst && !rst_outside {
            if st.ttl_max == 0 && st.ttl_min == 0 {
                st.ttl_min = seg.ttl;
                st.ttl_max = seg.ttl;
            } else {
                st.ttl_min = st.ttl_min.min(seg.ttl);
                st.ttl_max = st.ttl_max.max(seg.ttl);
            }
        }
        if seg.payload_len > 0 {
            if st.first_data.is_none() {
                st.first_data = Some(fr);
            }
            st.last_data = Some(fr);
            self.last_data_from = Some(d);
        }
        if fin && st.first_fin.is_none() {
            st.first_fin = Some(fr);
            if self.first_fin_from.is_none() {
                self.first_fin_from = Some(d);
            }
        }
        if ws.zero_window {
            st.zero_windows += 1;
        }
        if ws.gap {
            st.gaps += 1;
        }
        if ws.keepalive {
            st.keepalives += 1;
        }
        match ws.class {
            Some(RetransClass::Retransmission) => st.retransmissions += 1,
            Some(RetransClass::FastRetransmission) => st.fast_retransmissions += 1,
            Some(RetransClass::SpuriousRetransmission) => st.spurious_retransmissions += 1,
            Some(RetransClass::OutOfOrder) => st.out_of_order += 1,
            None => {}
        }
        if self.closed_at.is_none()
            && self.dir[0].first_fin.is_some()
            && self.dir[1].first_fin.is_some()
        {
            self.closed_at = Some(fr.ts);
        }
    }

    /// Per-segment retransmission counts (data and FIN segments; SYNs are counted as
    /// `syn_count`). Spurious retransmissions do not count: the data had arrived.
    fn count_segment_retransmission(
        &mut self,
        d: Direction,
        f: SegFlags,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        ws: &WsResult,
    ) {
        let (syn, fin) = (f.syn, f.fin);
        let di = d.idx();
        let orig = d == Direction::Orig;
        if matches!(
            ws.class,
            Some(RetransClass::Retransmission | RetransClass::FastRetransmission)
        ) && !syn
        {
            let isn = if orig { self.isn_orig } else { self.isn_resp };
            let original = self.last_advance[di]
                .filter(|(s, _)| *s == seg.seq)
                .map(|(_, f)| f);
            let t = self.retx[di].get_or_insert_with(Default::default);
            let times = t.record(seg.seq, seg.payload_len, fr, original, isn);
            let st = &mut self.dir[di];
            let is_worst = st.worst_segment.as_ref().is_some_and(|w| w.seq == seg.seq);
            if times > st.max_segment_retransmits || is_worst {
                st.max_segment_retransmits = st.max_segment_retransmits.max(times);
                st.worst_segment = t
                    .slots
                    .iter()
                    .find(|s| s.seq == seg.seq)
                    .cloned()
                    .map(Box::new);
            }
        }
        if ws.advanced && (seg.payload_len > 0 || fin) {
            self.last_advance[di] = Some((seg.seq, fr));
        }
    }

    /// History letters, as Zeek's `UpdateHistory`: upper case for the originator; a packet with
    /// two or more of SYN/FIN/RST is only `q` (or `i` for FIN+RST); one of them gives its own
    /// letter and nothing else; otherwise `d` for payload, `a` for a pure ACK.
    fn history_letters(&mut self, orig: bool, f: SegFlags, seg: &TcpSegment<'_>, ws: &WsResult) {
        let (syn, ack, fin, rst) = (f.syn, f.ack, f.fin, f.rst);
        let h = &mut self.history;
        let bits = syn as u8 + fin as u8 + rst as u8;
        if bits > 1 {
            h.once(orig, if fin && rst { b'i' } else { b'q' });
        } else if syn {
            h.once(orig, if ack { b'h' } else { b's' });
        } else if fin {
            h.once(orig, b'f');
        } else if rst {
            h.once(orig, b'r');
        } else if seg.payload_len > 0 {
            h.once(orig, b'd');
        } else if ack {
            h.once(orig, b'a');
        }
        if seg.payload_len > 0
            && matches!(
                ws.class,
                Some(
                    RetransClass::Retransmission
                        | RetransClass::FastRetransmission
                        | RetransClass::SpuriousRetransmission
                )
            )
        {
            h.scaled(orig, b't');
        }
        if ws.zero_window {
            h.scaled(orig, b'w');
        }
        if ws.gap {
            h.scaled(orig, b'g');
        }
    }

    fn summarize(&self, reason: EndReason) -> FlowSummary {
        self.summary_with(self.dir.clone(), reason)
    }

    /// `summarize` for a connection being dropped: its counters are moved, not copied.
    fn take_summary(&mut self, reason: EndReason) -> FlowSummary {
        let dir = std::mem::take(&mut self.dir);
        self.summary_with(dir, reason)
    }

    fn summary_with(&self, [o, r]: [DirStats; 2], reason: EndReason) -> FlowSummary {
        let history = HistoryText::from(&self.history);
        let conn_state = ConnState::compute(o.state, r.state, o.bytes, r.bytes, &history);
        let rtt_ns = match (self.last_syn, self.synack, self.handshake_ack) {
            (Some(s), Some(sa), Some(a)) if sa.ts >= s.ts && a.ts >= sa.ts => {
                Some(a.ts.nanos_since(s.ts))
            }
            _ => None,
        };
        FlowSummary {
            id: self.id,
            slot: 0,
            orig: self.orig,
            resp: self.resp,
            partial: self.partial,
            conn_state,
            history,
            orig_stats: o,
            resp_stats: r,
            first: self.first,
            last: self.last,
            start: self.first.ts,
            end: self.last.ts,
            syn_count: self.syn_count,
            first_syn: self.first_syn,
            last_syn: self.last_syn,
            synack: self.synack,
            rtt_ns,
            rst: self.rst,
            rst_count: self.rst_count,
            icmp: self.icmp,
            first_fin_from: self.first_fin_from,
            closed_at: self.closed_at,
            port_reused: self.port_reused,
            reused_in_time_wait: self.reused_in_time_wait,
            reused_close: self.reused_close,
            end_reason: reason,
        }
    }
}

impl RetxTracker {
    /// Counts one more retransmission of the segment starting at `seq`; returns its count.
    fn record(
        &mut self,
        seq: u32,
        len: u32,
        fr: FrameRef,
        original: Option<FrameRef>,
        isn: Option<u32>,
    ) -> u32 {
        self.clock += 1;
        let clock = self.clock;
        if let Some(s) = self.slots.iter_mut().find(|s| s.seq == seq) {
            s.times += 1;
            s.len = s.len.max(len);
            s.last_use = clock;
            if s.frames.len() < MAX_SEGMENT_FRAMES {
                s.frames.push(fr);
            }
            return s.times;
        }
        let entry = SegmentRetx {
            seq,
            rel_seq: isn.map(|i| seq.wrapping_sub(i)),
            len,
            times: 1,
            original,
            frames: vec![fr],
            last_use: clock,
        };
        if self.slots.len() < MAX_TRACKED_SEGMENTS {
            self.slots.push(entry);
        } else if let Some(lru) = self.slots.iter_mut().min_by_key(|s| s.last_use) {
            *lru = entry;
        }
        1
    }
}

/// Mutable access to element `i` of a pair and the other one.
fn split_pair<T>(pair: &mut [T; 2], i: usize) -> (&mut T, &mut T) {
    let (a, b) = pair.split_at_mut(1);
    if i == 0 {
        (&mut a[0], &mut b[0])
    } else {
        (&mut b[0], &mut a[0])
    }
}
