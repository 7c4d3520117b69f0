//! Wireshark's TCP sequence analysis, per direction, so that proxyscope's retransmission frames
//! are the frames tshark marks `tcp.analysis.retransmission` (and `fast_retransmission`,
//! `spurious_retransmission`, `out_of_order`, `keep_alive`, `zero_window`).
//!
//! This follows `tcp_analyze_sequence_number()` of Wireshark 4.0 (`epan/dissectors/packet-tcp.c`)
//! with the default preferences (sequence analysis on, raw sequence numbers in the analysis,
//! "0 means unset" for `nextseq` and `lastack`, as Wireshark does). Only the parts that decide the
//! classes above are kept; window-full, window-update and bytes-in-flight are not.

use super::seq::{gt, le, lt};
use super::FrameRef;
use crate::decode::{flags, TcpSegment};
use crate::time::{Timestamp, NANOS_PER_MILLI};
use serde::Serialize;

/// Wireshark's retransmission-family classification of a segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum RetransClass {
    /// `tcp.analysis.retransmission` only.
    Retransmission,
    /// `tcp.analysis.fast_retransmission` (tshark also sets `retransmission`).
    FastRetransmission,
    /// `tcp.analysis.spurious_retransmission` (tshark also sets `retransmission`).
    SpuriousRetransmission,
    /// `tcp.analysis.out_of_order`: a late original, not a resend.
    OutOfOrder,
}

impl RetransClass {
    /// Whether tshark's `tcp.analysis.retransmission` filter matches this class.
    pub fn is_retransmission(self) -> bool {
        !matches!(self, RetransClass::OutOfOrder)
    }
}

/// Per-direction analysis state (Wireshark's `tcp_flow_t` / `tcp_analyze_seq_flow_info_t`).
#[derive(Clone, Copy, Debug, Default)]
pub struct WsDir {
    pub base_seq: Option<u32>,
    /// Highest sequence number seen + 1 (0 = not known yet).
    pub nextseq: u32,
    pub nextseq_ts: Timestamp,
    /// Last ACK number this direction sent (0 = none).
    pub lastack: u32,
    pub lastack_ts: Timestamp,
    pub window: u16,
    pub dupacknum: u32,
    /// The previous segment of this direction was a keep-alive / zero-window probe.
    last_keepalive: bool,
    last_zwp: bool,
}

/// Result of analysing one segment.
#[derive(Clone, Copy, Debug, Default)]
pub struct WsResult {
    pub class: Option<RetransClass>,
    pub keepalive: bool,
    pub zero_window: bool,
    /// Wireshark's "previous segment not captured" (the segment starts beyond `nextseq`).
    pub gap: bool,
    /// The segment advanced `nextseq`.
    pub advanced: bool,
}

/// Fast retransmission: within this long of the reverse direction's last (duplicate) ACK.
const FAST_RETRANS_WINDOW_NS: i64 = 20 * NANOS_PER_MILLI;
/// Out-of-order threshold when the handshake RTT is unknown.
const DEFAULT_OOO_THRESHOLD_NS: i64 = 3 * NANOS_PER_MILLI;

/// Elapsed time as Wireshark's unsigned 64-bit subtraction: going back in time is "very long".
fn elapsed(now: Timestamp, then: Timestamp) -> u64 {
    now.nanos_since(then) as u64
}

impl WsDir {
    /// Analyses a segment sent in this direction; `rev` is the other direction.
    pub fn analyze(
        &mut self,
        rev: &mut WsDir,
        seg: &TcpSegment<'_>,
        fr: FrameRef,
        first_rtt_ns: i64,
    ) -> WsResult {
        let seq = seg.seq;
        let ack = seg.ack;
        let seglen = seg.payload_len;
        let window = seg.window;
        let syn = seg.has(flags::SYN);
        let fin = seg.has(flags::FIN);
        let rst = seg.has(flags::RST);
        let sfr = syn || fin || rst;
        let mut r = WsResult::default();

        if self.base_seq.is_none() {
            self.base_seq = Some(if syn { seq } else { seq.wrapping_sub(1) });
        }
        if rev.base_seq.is_none() && seg.has(flags::ACK) {
            rev.base_seq = Some(ack.wrapping_sub(1));
        }

        let mut zwp = false;
        'fwd: {
            // ZERO WINDOW PROBE: one byte at nextseq while the peer advertises a zero window.
            if seglen == 1 && seq == self.nextseq && rev.window == 0 {
                zwp = true;
                break 'fwd;
            }
            // ZERO WINDOW
            if window == 0 && !sfr {
                r.zero_window = true;
            }
            // LOST PACKET (not RSTs): starts beyond the highest sequence seen.
            if self.nextseq != 0 && gt(seq, self.nextseq) && !rst {
                r.gap = true;
            }
            // KEEP ALIVE: 0 or 1 byte one below nextseq, no SYN/FIN/RST.
            if seglen <= 1 && seq == self.nextseq.wrapping_sub(1) && !sfr {
                r.keepalive = true;
            }
            let same_as_last = seglen == 0
                && window == self.window
                && seq == self.nextseq
                && ack == self.lastack
                && !sfr;
            // KEEP ALIVE ACK / ZERO WINDOW PROBE ACK: not duplicate ACKs.
            if same_as_last && window != 0 && rev.last_keepalive {
                break 'fwd;
            }
            if same_as_last && window == 0 && rev.last_zwp {
                break 'fwd;
            }
            // DUPLICATE ACK
            if same_as_last && window != 0 {
                self.dupacknum += 1;
            }
        }
        // finished_fwd: a new ACK number resets the duplicate-ACK count.
        if ack != self.lastack {
            self.dupacknum = 0;
        }

        // RETRANSMISSION / FAST RETRANSMISSION / OUT-OF-ORDER / SPURIOUS
        if (seglen > 0 || syn || fin) && !r.keepalive {
            let mut not_advanced = self.nextseq != 0 && lt(seq, self.nextseq);
            // More than one byte starting one below nextseq after a zero-window probe: new data.
            if seglen > 1 && self.nextseq.wrapping_sub(1) == seq {
                not_advanced = false;
            }
            let ooo_threshold = if first_rtt_ns == 0 {
                DEFAULT_OOO_THRESHOLD_NS
            } else {
                first_rtt_ns
            } as u64;
            // Wireshark checks "already acknowledged" (spurious) first, then fast
            // retransmission, then out-of-order (packet-tcp.c, tcp_analyze_sequence_number,
            // since 3.6): a resent segment the peer had acknowledged is spurious even when it
            // comes within the out-of-order threshold.
            r.class = if seglen > 0 && rev.lastack != 0 && le(seq.wrapping_add(seglen), rev.lastack)
            {
                Some(RetransClass::SpuriousRetransmission)
            } else if not_advanced
                && rev.dupacknum >= 2
                && rev.lastack == seq
                && elapsed(fr.ts, rev.lastack_ts) < FAST_RETRANS_WINDOW_NS as u64
            {
                Some(RetransClass::FastRetransmission)
            } else if not_advanced
                && elapsed(fr.ts, self.nextseq_ts) < ooo_threshold
                && self.nextseq != seq.wrapping_add(seglen).wrapping_add((syn || fin) as u32)
            {
                Some(RetransClass::OutOfOrder)
            } else if not_advanced {
                Some(RetransClass::Retransmission)
            } else {
                None
            };
        }

        // Highest sequence number seen so far (zero-window probes do not advance it).
        let mut nextseq = seq.wrapping_add(seglen);
        if syn || fin {
            nextseq = nextseq.wrapping_add(1);
        }
        if (gt(nextseq, self.nextseq) || self.nextseq == 0) && !zwp {
            self.nextseq = nextseq;
            self.nextseq_ts = fr.ts;
            r.advanced = true;
        }
        self.window = window;
        self.lastack = ack;
        self.lastack_ts = fr.ts;
        self.last_keepalive = r.keepalive;
        self.last_zwp = zwp;
        r
    }
}
