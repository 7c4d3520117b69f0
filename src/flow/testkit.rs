//! Test helpers shared by the unit tests of the rules: frame references at n ms after a fixed
//! epoch, and a summary of an established connection for a test to adjust.

use super::{ConnState, DirStats, EndReason, FlowSummary, FrameRef};
use crate::time::{Timestamp, NANOS_PER_MILLI};

/// The capture clock at frame 0 of the tests.
pub const T0: i64 = 1_700_000_000_000_000_000;

/// Frame `n`, at `n` ms.
pub fn fr(n: u64) -> FrameRef {
    FrameRef {
        file: 0,
        number: n,
        ts: Timestamp(T0 + n as i64 * NANOS_PER_MILLI),
    }
}

/// An established connection from `orig` to `resp`: SYN at frame `first`, SYN-ACK right after,
/// last frame `last`, no FIN or RST, no payload counted (tests set what they need).
pub fn established(id: u64, orig: &str, resp: &str, first: u64, last: u64) -> FlowSummary {
    FlowSummary {
        id,
        slot: 0,
        orig: orig.parse().unwrap(),
        resp: resp.parse().unwrap(),
        partial: false,
        conn_state: ConnState::S1,
        history: "ShAD".into(),
        orig_stats: DirStats::default(),
        resp_stats: DirStats::default(),
        first: fr(first),
        last: fr(last),
        start: fr(first).ts,
        end: fr(last).ts,
        syn_count: 1,
        first_syn: Some(fr(first)),
        last_syn: Some(fr(first)),
        synack: Some(fr(first + 1)),
        rtt_ns: None,
        rst: None,
        rst_count: 0,
        icmp: None,
        first_fin_from: None,
        closed_at: None,
        port_reused: false,
        reused_in_time_wait: false,
        reused_close: None,
        end_reason: EndReason::Closed,
    }
}
