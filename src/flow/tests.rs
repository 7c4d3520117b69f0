//! Tracker tests, grouped by connection state: establishment, refusal, teardown, resets,
//! mid-stream pickup, Wireshark's classes, capture duplicates, wrap-around, port reuse, expiry.
//!
//! Conventions: the client 10.0.0.1:51000 talks to the server 10.0.0.2:8080; the client's ISN
//! is 1000 and the server's 5000. Times are in milliseconds unless a helper says otherwise.

use super::*;
use crate::decode::flags::{ACK, FIN, PSH, RST, SYN};
use std::net::Ipv4Addr;

const CLI: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
const SRV: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
const CPORT: u16 = 51000;
const SPORT: u16 = 8080;
const C_ISN: u32 = 1000;
const S_ISN: u32 = 5000;
const MS: i64 = NANOS_PER_MILLI;
const SEC: i64 = NANOS_PER_SEC;

/// Client → server, all zero: tests override seq/ack/flags/len.
const C2S: TcpSegment<'static> = TcpSegment {
    src: CLI,
    dst: SRV,
    sport: CPORT,
    dport: SPORT,
    seq: 0,
    ack: 0,
    flags: 0,
    window: 64240,
    checksum: 0x1111,
    ip_id: None,
    ttl: 64,
    payload_len: 0,
    payload: &[],
    truncated: false,
};

/// Server → client.
const S2C: TcpSegment<'static> = TcpSegment {
    src: SRV,
    dst: CLI,
    sport: SPORT,
    dport: CPORT,
    window: 65160,
    checksum: 0x2222,
    ttl: 60,
    ..C2S
};

/// A segment from the client.
fn c(fl: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
    TcpSegment {
        flags: fl,
        seq,
        ack,
        payload_len: len,
        ..C2S
    }
}

/// A segment from the server.
fn s(fl: u8, seq: u32, ack: u32, len: u32) -> TcpSegment<'static> {
    TcpSegment {
        flags: fl,
        seq,
        ack,
        payload_len: len,
        ..S2C
    }
}

/// Drives a `FlowTable` and collects what it emits.
struct Run {
    t: FlowTable,
    done: Vec<FlowSummary>,
    frame: u64,
}

impl Run {
    fn new() -> Run {
        Run::with(TrackerConfig::default())
    }

    fn with(cfg: TrackerConfig) -> Run {
        Run {
            t: FlowTable::new(cfg),
            done: Vec::new(),
            frame: 0,
        }
    }

    /// Feeds `seg` at `ns` nanoseconds as the next frame, with a fresh IP id (so that no two
    /// frames look like capture duplicates unless a test wants them to).
    fn at_ns(&mut self, ns: i64, seg: TcpSegment<'_>) -> SegmentOutcome {
        let seg = TcpSegment {
            ip_id: Some(self.frame as u16 + 1),
            ..seg
        };
        self.raw_ns(ns, seg)
    }

    /// Feeds `seg` exactly as given (IP id included) as the next frame.
    fn raw_ns(&mut self, ns: i64, seg: TcpSegment<'_>) -> SegmentOutcome {
        self.frame += 1;
        let fr = self.fr_ns(ns);
        let done = &mut self.done;
        self.t.process(&seg, fr, &mut |s: FlowSummary| done.push(s))
    }

    fn at(&mut self, ms: i64, seg: TcpSegment<'_>) -> SegmentOutcome {
        self.at_ns(ms * MS, seg)
    }

    fn fr_ns(&self, ns: i64) -> FrameRef {
        FrameRef {
            file: 0,
            number: self.frame,
            ts: Timestamp(ns),
        }
    }

    /// The standard handshake at 0, 10 and 20 ms (rtt 20 ms).
    fn handshake(&mut self) {
        self.at(0, c(SYN, C_ISN, 0, 0));
        self.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
        self.at(20, c(ACK, C_ISN + 1, S_ISN + 1, 0));
    }

    fn sweep(&mut self, ns: i64) {
        let done = &mut self.done;
        self.t
            .sweep(Timestamp(ns), &mut |s: FlowSummary| done.push(s));
    }

    /// Ends the capture; returns every summary in the order finished.
    fn finish(mut self) -> Vec<FlowSummary> {
        let done = &mut self.done;
        self.t.finish_all(&mut |s: FlowSummary| done.push(s));
        self.done
    }

    /// Ends the capture, expecting exactly one connection.
    #[track_caller]
    fn one(self) -> FlowSummary {
        let mut v = self.finish();
        assert_eq!(
            v.len(),
            1,
            "connections: {:#?}",
            v.iter().map(brief).collect::<Vec<_>>()
        );
        v.pop().unwrap()
    }
}

fn brief(f: &FlowSummary) -> String {
    format!(
        "#{} {}->{} {:?} {} syn={} end={:?}",
        f.id, f.orig, f.resp, f.conn_state, f.history, f.syn_count, f.end_reason
    )
}

#[track_caller]
fn assert_state(f: &FlowSummary, state: ConnState, history: &str) {
    assert_eq!(
        (f.conn_state, f.history.as_str()),
        (state, history),
        "conn {}",
        brief(f)
    );
}

fn class(o: SegmentOutcome) -> Option<RetransClass> {
    o.ws_class
}

fn orig_addr() -> SocketAddr {
    SocketAddr::new(CLI, CPORT)
}

fn resp_addr() -> SocketAddr {
    SocketAddr::new(SRV, SPORT)
}

// Client request: 100 bytes at 1001; server response: 200 bytes at 5001.
const REQ: u32 = 100;
const RESP: u32 = 200;
const C_DATA: u32 = C_ISN + 1;
const S_DATA: u32 = S_ISN + 1;
const C_END: u32 = C_DATA + REQ;
const S_END: u32 = S_DATA + RESP;

impl Run {
    /// Handshake, request, server ACK, response, client ACK (ends at 50 ms).
    fn exchange(&mut self) {
        self.handshake();
        self.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
        self.at(30, s(ACK, S_DATA, C_END, 0));
        self.at(40, s(PSH | ACK, S_DATA, C_END, RESP));
        self.at(50, c(ACK, C_END, S_END, 0));
    }
}

// =============================================================================================
// Established and closed normally
// =============================================================================================

#[test]
fn full_connection_is_sf() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    r.at(70, s(FIN | ACK, S_END, C_END + 1, 0));
    r.at(80, c(ACK, C_END + 1, S_END + 1, 0));
    let f = r.one();
    assert_state(&f, ConnState::SF, "ShADadFf");
    assert_eq!((f.orig, f.resp), (orig_addr(), resp_addr()));
    assert!(!f.partial);
    assert_eq!(f.syn_count, 1);
    assert_eq!(f.rtt_ns, Some(20 * MS));
    assert_eq!(f.first_fin_from, Some(Direction::Orig));
    assert_eq!((f.orig_stats.pkts, f.orig_stats.bytes), (6, REQ as u64));
    assert_eq!((f.resp_stats.pkts, f.resp_stats.bytes), (4, RESP as u64));
    assert_eq!(f.retransmissions(), 0);
    assert_eq!(f.max_segment_retransmits(), 0);
    assert_eq!(f.end_reason, EndReason::Closed);
    assert_eq!(f.closed_at, Some(Timestamp(70 * MS)));
    assert_eq!(f.duration_ns(), 80 * MS);
    assert_eq!(f.first.number, 1);
    assert_eq!(f.last.number, 10);
    assert_eq!(f.first_syn.map(|x| x.number), Some(1));
    assert_eq!(f.synack.map(|x| x.number), Some(2));
    assert_eq!(f.orig_stats.first_data.map(|x| x.number), Some(4));
    assert_eq!(f.resp_stats.first_data.map(|x| x.number), Some(6));
    assert_eq!((f.orig_stats.ttl_min, f.orig_stats.ttl_max), (64, 64));
    assert_eq!((f.resp_stats.ttl_min, f.resp_stats.ttl_max), (60, 60));
    assert!(f.rst.is_none());
    assert!(!f.port_reused);
}

#[test]
fn established_without_close_is_s1() {
    let mut r = Run::new();
    r.exchange();
    let f = r.one();
    assert_state(&f, ConnState::S1, "ShADad");
    assert_eq!(f.end_reason, EndReason::CaptureEnd);
    assert!(f.first_fin_from.is_none());
}

#[test]
fn clean_segments_have_no_class() {
    let mut r = Run::new();
    assert!(class(r.at(0, c(SYN, C_ISN, 0, 0))).is_none());
    let o = r.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    assert_eq!(
        (o.dir, o.flow, o.duplicate),
        (Some(Direction::Resp), 0, false)
    );
    for (ms, seg) in [
        (20, c(ACK, C_DATA, S_DATA, 0)),
        (21, c(PSH | ACK, C_DATA, S_DATA, REQ)),
        (30, s(ACK, S_DATA, C_END, 0)),
        (40, s(PSH | ACK, S_DATA, C_END, RESP)),
    ] {
        let o = r.at(ms, seg);
        assert!(
            o.ws_class.is_none() && !o.ws_keepalive && !o.duplicate,
            "at {ms} ms: {o:?}"
        );
    }
}

// =============================================================================================
// Attempts: SYN retransmissions, refusals
// =============================================================================================

#[test]
fn syn_retransmits_with_same_isn_are_one_attempt() {
    let mut r = Run::new();
    let o1 = r.at_ns(0, c(SYN, C_ISN, 0, 0));
    let o2 = r.at_ns(SEC, c(SYN, C_ISN, 0, 0));
    let o3 = r.at_ns(2 * SEC, c(SYN, C_ISN, 0, 0));
    assert_eq!(class(o1), None);
    assert_eq!(class(o2), Some(RetransClass::Retransmission));
    assert_eq!(class(o3), Some(RetransClass::Retransmission));
    assert!(!o2.duplicate && !o2.port_reused && !o3.port_reused);
    let f = r.one();
    assert_state(&f, ConnState::S0, "S");
    assert_eq!(f.syn_count, 3);
    assert_eq!(f.first_syn.map(|x| x.number), Some(1));
    assert_eq!(f.last_syn.map(|x| x.number), Some(3));
    assert_eq!(f.orig_stats.pkts, 3);
    // SYN resends are counted by syn_count, not as segment retransmits.
    assert_eq!(f.max_segment_retransmits(), 0);
    assert!(f.rtt_ns.is_none());
}

#[test]
fn rtt_is_measured_from_the_last_syn() {
    let mut r = Run::new();
    r.at_ns(0, c(SYN, C_ISN, 0, 0));
    r.at_ns(SEC, c(SYN, C_ISN, 0, 0));
    r.at_ns(SEC + 5 * MS, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at_ns(SEC + 7 * MS, c(ACK, C_DATA, S_DATA, 0));
    let f = r.one();
    assert_state(&f, ConnState::S1, "ShA");
    assert_eq!(f.syn_count, 2);
    assert_eq!(f.rtt_ns, Some(7 * MS));
}

#[test]
fn syn_answered_by_rst_is_rej() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(1, s(RST | ACK, 0, C_ISN + 1, 0));
    let f = r.one();
    assert_state(&f, ConnState::REJ, "Sr");
    let rst = f.rst.expect("rst info");
    assert_eq!(rst.from, Direction::Resp);
    assert_eq!(rst.frame.number, 2);
    assert!(!rst.after_fin);
    assert_eq!(f.rst_count, 1);
    assert_eq!(f.end_reason, EndReason::Closed);
}

#[test]
fn windows_style_syn_rst_pairs_are_one_rej() {
    // Windows retries a refused connect twice, ~500 ms apart, with the same ISN.
    let mut r = Run::new();
    for i in 0..3 {
        let t = i * 500;
        r.at(t, c(SYN, C_ISN, 0, 0));
        r.at(t + 1, s(RST | ACK, 0, C_ISN + 1, 0));
    }
    let f = r.one();
    assert_state(&f, ConnState::REJ, "Sr");
    assert_eq!(f.syn_count, 3);
    assert_eq!(f.rst_count, 3);
    assert_eq!(f.rst.unwrap().frame.number, 2);
    assert!(!f.port_reused);
}

#[test]
fn unanswered_syn_then_fin_is_sh() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(1, c(FIN | ACK, C_ISN + 1, 0, 0));
    let f = r.one();
    assert_state(&f, ConnState::SH, "SF");
    assert_eq!(f.first_fin_from, Some(Direction::Orig));
}

// =============================================================================================
// Teardown
// =============================================================================================

#[test]
fn responder_closes_first() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, s(FIN | ACK, S_END, C_END, 0));
    r.at(70, c(FIN | ACK, C_END, S_END + 1, 0));
    r.at(80, s(ACK, S_END + 1, C_END + 1, 0));
    let f = r.one();
    assert_state(&f, ConnState::SF, "ShADadfF");
    assert_eq!(f.first_fin_from, Some(Direction::Resp));
    assert_eq!(f.resp_stats.first_fin.map(|x| x.number), Some(8));
    assert_eq!(f.orig_stats.first_fin.map(|x| x.number), Some(9));
}

#[test]
fn half_close_by_originator_is_s2() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    r.at(61, s(ACK, S_END, C_END + 1, 0));
    let f = r.one();
    assert_state(&f, ConnState::S2, "ShADadF");
    assert!(f.closed_at.is_none());
    assert_eq!(f.end_reason, EndReason::CaptureEnd);
}

#[test]
fn half_close_by_responder_is_s3() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, s(FIN | ACK, S_END, C_END, 0));
    let f = r.one();
    assert_state(&f, ConnState::S3, "ShADadf");
    assert_eq!(f.first_fin_from, Some(Direction::Resp));
}

#[test]
fn retransmitted_fin_counts_as_segment_retransmit() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    let o = r.at(300, c(FIN | ACK, C_END, S_END, 0));
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    let f = r.one();
    assert_eq!(f.orig_stats.retransmissions, 1);
    assert_eq!(f.orig_stats.max_segment_retransmits, 1);
    // No payload: no 't' in the history.
    assert_state(&f, ConnState::S2, "ShADadF");
}

// =============================================================================================
// Resets
// =============================================================================================

#[test]
fn originator_reset_after_data_is_rsto() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(RST | ACK, C_END, S_END, 0));
    let f = r.one();
    assert_state(&f, ConnState::RSTO, "ShADadR");
    let rst = f.rst.unwrap();
    assert_eq!(rst.from, Direction::Orig);
    assert_eq!(rst.last_data_from, Some(Direction::Resp));
    assert_eq!((rst.unacked_by_peer, rst.unacked_from_peer), (0, 0));
    assert_eq!(f.end_reason, EndReason::Closed);
}

#[test]
fn responder_reset_after_data_is_rstr() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, s(RST | ACK, S_END, C_END, 0));
    let f = r.one();
    assert_state(&f, ConnState::RSTR, "ShADadr");
    let rst = f.rst.unwrap();
    assert_eq!(rst.from, Direction::Resp);
    assert_eq!(rst.ttl, 60);
}

#[test]
fn syn_then_reset_from_originator_is_rstos0() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(1, c(RST, C_ISN + 1, 0, 0));
    let f = r.one();
    assert_state(&f, ConnState::RSTOS0, "SR");
}

#[test]
fn synack_then_reset_without_syn_is_rstrh() {
    let mut r = Run::new();
    r.at(0, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(1, s(RST, S_ISN + 1, 0, 0));
    let f = r.one();
    assert_eq!((f.orig, f.resp), (orig_addr(), resp_addr()));
    // The SYN-ACK names the originator for certain: not a guessed (partial) record.
    assert!(!f.partial);
    assert_eq!(f.conn_state, ConnState::RSTRH, "{}", brief(&f));
    assert_eq!(f.syn_count, 0);
}

#[test]
fn synack_first_history_is_flipped_like_zeek() {
    let mut r = Run::new();
    r.at(0, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(1, s(RST, S_ISN + 1, 0, 0));
    let f = r.one();
    assert_state(&f, ConnState::RSTRH, "^hr");
}

#[test]
fn reset_after_fin_exchange() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    r.at(70, s(FIN | ACK, S_END, C_END + 1, 0));
    r.at(71, c(RST, C_END + 1, 0, 0));
    let f = r.one();
    let rst = f.rst.unwrap();
    assert!(rst.after_fin);
    assert_eq!(rst.from, Direction::Orig);
    assert_eq!(f.history, "ShADadFfR");
    assert_eq!(f.end_reason, EndReason::Closed);
}

#[test]
fn reset_after_fin_exchange_stays_sf_like_zeek() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    r.at(70, s(FIN | ACK, S_END, C_END + 1, 0));
    r.at(71, c(RST, C_END + 1, 0, 0));
    assert_state(&r.one(), ConnState::SF, "ShADadFfR");
}

#[test]
fn reset_after_own_fin_without_peer_fin_is_rsto() {
    // Half-closed by the client, then the client resets: Zeek's UpdateClosedState resets it.
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | ACK, C_END, S_END, 0));
    r.at(61, c(RST, C_END + 1, 0, 0));
    let f = r.one();
    assert!(f.rst.unwrap().after_fin);
    assert_state(&f, ConnState::RSTO, "ShADadFR");
}

#[test]
fn syn_and_synack_without_third_ack_is_s1_like_zeek() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    assert_state(&r.one(), ConnState::S1, "Sh");
}

#[test]
fn responder_reset_after_synack_is_rstr_like_zeek() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(20, s(RST, S_DATA, 0, 0));
    assert_state(&r.one(), ConnState::RSTR, "Shr");
}

#[test]
fn originator_reset_after_synack_is_rsto() {
    // A SYN scan: SYN, SYN-ACK, RST from the scanner.
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(11, c(RST, C_DATA, 0, 0));
    assert_state(&r.one(), ConnState::RSTO, "ShR");
}

#[test]
fn missed_syn_then_synack_and_ack_is_s1_like_zeek() {
    let mut r = Run::new();
    r.at(0, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(1, c(ACK, C_DATA, S_DATA, 0));
    let f = r.one();
    assert_eq!(f.conn_state, ConnState::S1, "{}", brief(&f));
}

#[test]
fn synack_then_fin_without_syn_is_shr() {
    let mut r = Run::new();
    r.at(0, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(1, s(FIN | ACK, S_DATA, C_ISN + 1, 0));
    let f = r.one();
    assert_eq!((f.orig, f.resp), (orig_addr(), resp_addr()));
    assert_eq!(f.conn_state, ConnState::SHR, "{}", brief(&f));
}

#[test]
fn server_reset_with_request_unacked() {
    let mut r = Run::new();
    r.handshake();
    r.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
    // The server resets, still acknowledging only the SYN.
    r.at(22, s(RST | ACK, S_DATA, C_DATA, 0));
    let f = r.one();
    let rst = f.rst.unwrap();
    assert_eq!(rst.from, Direction::Resp);
    assert_eq!(rst.unacked_from_peer, REQ);
    assert_eq!(rst.unacked_by_peer, 0);
    assert_eq!(rst.last_data_from, Some(Direction::Orig));
    assert_state(&f, ConnState::RSTR, "ShADr");
}

#[test]
fn server_bare_reset_with_request_unacked() {
    let mut r = Run::new();
    r.handshake();
    r.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
    // RST without ACK: the ack field means nothing (0 on the wire). The server's last real
    // acknowledgement (the SYN-ACK's, 1001) still leaves the 100-byte request unacknowledged.
    r.at(22, s(RST, S_DATA, 0, 0));
    let f = r.one();
    assert_eq!(f.rst.unwrap().unacked_from_peer, REQ);
}

#[test]
fn reset_after_request_was_acked_has_nothing_unacked() {
    let mut r = Run::new();
    r.handshake();
    r.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(30, s(ACK, S_DATA, C_END, 0));
    r.at(31, s(RST | ACK, S_DATA, C_END, 0));
    let rst = r.one().rst.unwrap();
    assert_eq!((rst.unacked_from_peer, rst.unacked_by_peer), (0, 0));
}

#[test]
fn client_reset_with_own_data_unacked() {
    let mut r = Run::new();
    r.handshake();
    r.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(22, c(RST | ACK, C_END, S_DATA, 0));
    let rst = r.one().rst.unwrap();
    assert_eq!(rst.from, Direction::Orig);
    assert_eq!(rst.unacked_by_peer, REQ);
}

// =============================================================================================
// Mid-stream pickup
// =============================================================================================

#[test]
fn midstream_server_seen_first_is_flipped() {
    let mut r = Run::new();
    r.at(0, s(PSH | ACK, S_DATA, C_DATA, RESP));
    r.at(1, c(PSH | ACK, C_DATA, S_END, REQ));
    let f = r.one();
    assert!(f.partial);
    assert_eq!((f.orig, f.resp), (orig_addr(), resp_addr()));
    assert!(f.history.starts_with('^'), "{}", f.history);
    assert_state(&f, ConnState::OTH, "^dD");
    assert_eq!(f.syn_count, 0);
    assert!(f.rtt_ns.is_none());
    assert_eq!(
        (f.orig_stats.bytes, f.resp_stats.bytes),
        (REQ as u64, RESP as u64)
    );
}

#[test]
fn midstream_client_seen_first_is_not_flipped() {
    let mut r = Run::new();
    r.at(0, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(1, s(PSH | ACK, S_DATA, C_END, RESP));
    let f = r.one();
    assert!(f.partial);
    assert_eq!((f.orig, f.resp), (orig_addr(), resp_addr()));
    assert_state(&f, ConnState::OTH, "Dd");
}

#[test]
fn midstream_without_service_port_takes_lower_port_as_server() {
    let hi = TcpSegment {
        sport: 40000,
        dport: 12345,
        ..C2S
    };
    let mut r = Run::new();
    r.at(
        0,
        TcpSegment {
            payload_len: 10,
            flags: ACK,
            ..hi
        },
    );
    let f = r.one();
    assert_eq!(f.orig, SocketAddr::new(CLI, 40000));
    assert_eq!(f.resp, SocketAddr::new(SRV, 12345));
}

#[test]
fn midstream_fin_from_both_sides_is_sf() {
    // Zeek: both sides closed is SF even without a handshake (FIN from both = normal termination).
    let mut r = Run::new();
    r.at(0, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(1, s(FIN | ACK, S_DATA, C_END, 0));
    r.at(2, c(FIN | ACK, C_END, S_DATA + 1, 0));
    let f = r.one();
    assert!(f.partial);
    assert_eq!(f.conn_state, ConnState::SF, "{}", brief(&f));
}

// =============================================================================================
// Wireshark classes
// =============================================================================================

#[test]
fn plain_retransmission() {
    let mut r = Run::new();
    r.handshake();
    let orig = r.at(100, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert!(class(orig).is_none());
    let o = r.at(300, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    assert!(!o.duplicate);
    let f = r.one();
    let st = &f.orig_stats;
    assert_eq!(st.retransmissions, 1);
    assert_eq!(st.max_segment_retransmits, 1);
    assert_eq!(st.pkts, 4);
    assert_eq!(st.bytes, 2 * REQ as u64);
    let w = st.worst_segment.as_ref().expect("worst segment");
    assert_eq!(
        (w.seq, w.rel_seq, w.len, w.times),
        (C_DATA, Some(1), REQ, 1)
    );
    assert_eq!(w.original.map(|x| x.number), Some(4));
    assert_eq!(
        w.frames.iter().map(|x| x.number).collect::<Vec<_>>(),
        vec![5]
    );
    assert_eq!(w.frames[0].ts, Timestamp(300 * MS));
    assert_eq!(f.retransmissions(), 1);
    assert_state(&f, ConnState::S1, "ShADT");
}

#[test]
fn fast_retransmission_after_three_dup_acks() {
    let mut r = Run::new();
    r.handshake();
    for i in 0..4 {
        r.at(100 + i, c(PSH | ACK, C_DATA + i as u32 * REQ, S_DATA, REQ));
    }
    r.at(130, s(ACK, S_DATA, C_DATA, 0));
    r.at(131, s(ACK, S_DATA, C_DATA, 0));
    r.at(132, s(ACK, S_DATA, C_DATA, 0));
    let o = r.at(135, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::FastRetransmission));
    let f = r.one();
    assert_eq!(f.orig_stats.fast_retransmissions, 1);
    assert_eq!(f.orig_stats.retransmissions, 0);
    assert_eq!(f.orig_stats.max_segment_retransmits, 1);
    assert_eq!(f.retransmissions(), 1);
}

#[test]
fn resend_long_after_dup_acks_is_plain_retransmission() {
    let mut r = Run::new();
    r.handshake();
    for i in 0..4 {
        r.at(100 + i, c(PSH | ACK, C_DATA + i as u32 * REQ, S_DATA, REQ));
    }
    for t in 130..133 {
        r.at(t, s(ACK, S_DATA, C_DATA, 0));
    }
    let o = r.at(132 + 20, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::Retransmission));
}

#[test]
fn spurious_retransmission_is_not_a_segment_retransmit() {
    let mut r = Run::new();
    r.handshake();
    r.at(100, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(130, s(ACK, S_DATA, C_END, 0));
    let o = r.at(400, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::SpuriousRetransmission));
    assert!(RetransClass::SpuriousRetransmission.is_retransmission());
    let f = r.one();
    assert_eq!(f.orig_stats.spurious_retransmissions, 1);
    assert_eq!(f.orig_stats.retransmissions, 0);
    assert_eq!(f.orig_stats.max_segment_retransmits, 0);
    assert!(f.orig_stats.worst_segment.is_none());
    assert_eq!(f.retransmissions(), 1);
}

#[test]
fn out_of_order_within_rtt_is_not_a_retransmission() {
    let mut r = Run::new();
    r.handshake(); // rtt 20 ms
    let o1 = r.at(100, c(PSH | ACK, C_DATA + REQ, S_DATA, REQ));
    assert!(class(o1).is_none());
    let o2 = r.at(101, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o2), Some(RetransClass::OutOfOrder));
    assert!(!RetransClass::OutOfOrder.is_retransmission());
    let f = r.one();
    let st = &f.orig_stats;
    assert_eq!(st.out_of_order, 1);
    assert_eq!(st.gaps, 1, "the first segment skipped 100 bytes");
    assert_eq!(
        st.retransmissions + st.fast_retransmissions + st.spurious_retransmissions,
        0
    );
    assert_eq!(st.max_segment_retransmits, 0);
    assert_eq!(f.retransmissions(), 0);
    assert!(
        f.history.contains('G') && !f.history.contains('T'),
        "{}",
        f.history
    );
}

#[test]
fn out_of_order_threshold_is_3ms_without_handshake() {
    // No handshake: Wireshark's default 3 ms threshold applies.
    let mut r = Run::new();
    r.at(0, c(PSH | ACK, C_DATA + REQ, S_DATA, REQ));
    let o = r.at(2, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::OutOfOrder));

    let mut r = Run::new();
    r.at(0, c(PSH | ACK, C_DATA + REQ, S_DATA, REQ));
    let o = r.at(4, c(PSH | ACK, C_DATA, S_DATA, REQ));
    assert_eq!(class(o), Some(RetransClass::Retransmission));
}

#[test]
fn keepalive_is_not_a_retransmission() {
    let mut r = Run::new();
    r.exchange();
    let o = r.at(45_000, c(ACK, C_END - 1, S_END, 1));
    assert!(o.ws_keepalive);
    assert!(class(o).is_none());
    let o0 = r.at(90_000, c(ACK, C_END - 1, S_END, 0));
    assert!(o0.ws_keepalive && class(o0).is_none());
    let f = r.one();
    assert_eq!(f.orig_stats.keepalives, 2);
    assert_eq!(f.retransmissions(), 0);
    assert_eq!(f.max_segment_retransmits(), 0);
    assert!(!f.history.contains('T'), "{}", f.history);
}

#[test]
fn zero_window_is_counted() {
    let mut r = Run::new();
    r.exchange();
    r.at(
        60,
        TcpSegment {
            window: 0,
            ..s(ACK, S_END, C_END, 0)
        },
    );
    r.at(
        70,
        TcpSegment {
            window: 0,
            ..s(ACK, S_END, C_END, 0)
        },
    );
    let f = r.one();
    assert_eq!(f.resp_stats.zero_windows, 2);
    assert_eq!(f.orig_stats.zero_windows, 0);
    // Scaled letter: once for the 1st occurrence.
    assert_state(&f, ConnState::S1, "ShADadw");
}

#[test]
fn zero_window_probe_is_not_a_retransmission() {
    let mut r = Run::new();
    r.exchange();
    r.at(
        60,
        TcpSegment {
            window: 0,
            ..s(ACK, S_END, C_END, 0)
        },
    );
    // One byte at nextseq while the peer's window is zero.
    let o = r.at(260, c(ACK, C_END, S_END, 1));
    assert!(class(o).is_none() && !o.ws_keepalive);
    let o2 = r.at(660, c(ACK, C_END, S_END, 1));
    assert!(class(o2).is_none(), "{o2:?}");
    assert_eq!(r.one().retransmissions(), 0);
}

// =============================================================================================
// Retransmission counting per segment
// =============================================================================================

#[track_caller]
fn resent(times: u32) -> FlowSummary {
    let mut r = Run::new();
    r.handshake();
    r.at(100, c(PSH | ACK, C_DATA, S_DATA, REQ));
    for i in 1..=times as i64 {
        let o = r.at(100 + 200 * i, c(PSH | ACK, C_DATA, S_DATA, REQ));
        assert_eq!(class(o), Some(RetransClass::Retransmission), "resend {i}");
    }
    r.one()
}

#[test]
fn same_segment_resent_three_times() {
    let f = resent(3);
    assert_eq!(f.max_segment_retransmits(), 3);
    assert_eq!(f.orig_stats.retransmissions, 3);
    let w = f.orig_stats.worst_segment.as_ref().unwrap();
    assert_eq!(w.times, 3);
    assert_eq!(
        w.frames.iter().map(|x| x.number).collect::<Vec<_>>(),
        vec![5, 6, 7]
    );
    assert_eq!(w.original.map(|x| x.number), Some(4));
}

#[test]
fn same_segment_resent_twice() {
    let f = resent(2);
    assert_eq!(f.max_segment_retransmits(), 2);
    assert_eq!(f.orig_stats.worst_segment.as_ref().unwrap().times, 2);
}

#[test]
fn evidence_frames_are_capped() {
    let f = resent(MAX_SEGMENT_FRAMES as u32 + 3);
    let w = f.orig_stats.worst_segment.as_ref().unwrap();
    assert_eq!(w.times, MAX_SEGMENT_FRAMES as u32 + 3);
    assert_eq!(w.frames.len(), MAX_SEGMENT_FRAMES);
}

#[test]
fn different_segments_resent_once_each_count_one() {
    let mut r = Run::new();
    r.handshake();
    r.at(100, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(101, c(PSH | ACK, C_DATA + REQ, S_DATA, REQ));
    r.at(400, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(401, c(PSH | ACK, C_DATA + REQ, S_DATA, REQ));
    let f = r.one();
    assert_eq!(f.orig_stats.retransmissions, 2);
    assert_eq!(f.max_segment_retransmits(), 1);
}

// =============================================================================================
// Capture duplicates
// =============================================================================================

#[test]
fn identical_segment_50us_later_is_a_capture_duplicate() {
    let mut r = Run::new();
    r.handshake();
    let data = TcpSegment {
        ip_id: Some(777),
        ..c(PSH | ACK, C_DATA, S_DATA, REQ)
    };
    r.raw_ns(100 * MS, data);
    let o = r.raw_ns(100 * MS + 50_000, data);
    assert!(o.duplicate);
    // Wireshark flags the copy as a retransmission all the same.
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    let f = r.one();
    assert_eq!(f.capture_duplicates(), 1);
    assert_eq!(f.orig_stats.capture_duplicates, 1);
    assert_eq!(f.orig_stats.retransmissions, 0);
    assert_eq!(f.max_segment_retransmits(), 0);
    assert_eq!(f.orig_stats.pkts, 3);
    assert_eq!(f.orig_stats.bytes, REQ as u64);
    assert!(!f.history.contains('T'), "{}", f.history);
}

#[test]
fn identical_segment_200ms_later_is_a_retransmission() {
    let mut r = Run::new();
    r.handshake();
    let data = TcpSegment {
        ip_id: Some(777),
        ..c(PSH | ACK, C_DATA, S_DATA, REQ)
    };
    r.raw_ns(100 * MS, data);
    let o = r.raw_ns(300 * MS, data);
    assert!(!o.duplicate);
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    let f = r.one();
    assert_eq!(f.capture_duplicates(), 0);
    assert_eq!(f.orig_stats.retransmissions, 1);
}

#[test]
fn resend_with_new_ip_id_is_not_a_duplicate() {
    let mut r = Run::new();
    r.handshake();
    let data = c(PSH | ACK, C_DATA, S_DATA, REQ);
    r.raw_ns(
        100 * MS,
        TcpSegment {
            ip_id: Some(1),
            ..data
        },
    );
    let o = r.raw_ns(
        100 * MS + 50_000,
        TcpSegment {
            ip_id: Some(2),
            ..data
        },
    );
    assert!(!o.duplicate);
    assert_eq!(r.one().capture_duplicates(), 0);
}

#[test]
fn duplicated_pure_acks_are_capture_duplicates() {
    let mut r = Run::new();
    r.exchange();
    let ack = TcpSegment {
        ip_id: Some(9),
        ..s(ACK, S_END, C_END, 0)
    };
    r.raw_ns(60 * MS, ack);
    let o = r.raw_ns(60 * MS + 10_000, ack);
    assert!(o.duplicate && class(o).is_none());
    assert_eq!(r.one().resp_stats.capture_duplicates, 1);
}

// =============================================================================================
// Sequence wrap-around
// =============================================================================================

const W_ISN: u32 = 0xFFFF_FF00;

fn wrap_handshake(r: &mut Run) {
    r.at(0, c(SYN, W_ISN, 0, 0));
    r.at(10, s(SYN | ACK, S_ISN, W_ISN.wrapping_add(1), 0));
    r.at(20, c(ACK, W_ISN.wrapping_add(1), S_DATA, 0));
}

#[test]
fn data_across_the_wrap_is_not_retransmitted() {
    let mut r = Run::new();
    wrap_handshake(&mut r);
    let mut seq = W_ISN.wrapping_add(1);
    for i in 0..6 {
        let o = r.at(100 + i * 50, c(PSH | ACK, seq, S_DATA, 100));
        assert!(class(o).is_none(), "segment {i} at {seq:#x}: {o:?}");
        seq = seq.wrapping_add(100);
        let a = r.at(120 + i * 50, s(ACK, S_DATA, seq, 0));
        assert!(class(a).is_none());
    }
    assert!(seq < W_ISN, "the test must cross 2^32");
    let f = r.one();
    assert_eq!(f.retransmissions(), 0);
    assert_eq!(f.orig_stats.out_of_order + f.orig_stats.gaps, 0);
    assert_eq!(f.orig_stats.bytes, 600);
}

#[test]
fn retransmission_across_the_wrap_is_detected() {
    let mut r = Run::new();
    wrap_handshake(&mut r);
    let first = W_ISN.wrapping_add(1);
    // 0xFFFFFF01 + 300 crosses 2^32.
    r.at(100, c(PSH | ACK, first, S_DATA, 300));
    r.at(101, c(PSH | ACK, first.wrapping_add(300), S_DATA, 100));
    let o = r.at(400, c(PSH | ACK, first, S_DATA, 300));
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    let o2 = r.at(401, c(PSH | ACK, first.wrapping_add(300), S_DATA, 100));
    assert_eq!(class(o2), Some(RetransClass::Retransmission));
    let f = r.one();
    assert_eq!(f.orig_stats.retransmissions, 2);
    let w = f.orig_stats.worst_segment.as_ref().unwrap();
    assert_eq!(w.rel_seq, Some(1));
}

// =============================================================================================
// Port reuse
// =============================================================================================

/// A complete connection on the 4-tuple with client ISN `isn`, starting at `t0` ms.
fn closed_conn(r: &mut Run, t0: i64, isn: u32) {
    r.at(t0, c(SYN, isn, 0, 0));
    r.at(t0 + 10, s(SYN | ACK, S_ISN, isn + 1, 0));
    r.at(t0 + 20, c(ACK, isn + 1, S_DATA, 0));
    r.at(t0 + 30, c(FIN | ACK, isn + 1, S_DATA, 0));
    r.at(t0 + 40, s(FIN | ACK, S_DATA, isn + 2, 0));
    r.at(t0 + 50, c(ACK, isn + 2, S_DATA + 1, 0));
}

#[test]
fn new_syn_in_time_wait_is_port_reuse() {
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    let o = r.at(2050, c(SYN, 9_000_000, 0, 0));
    assert!(o.port_reused);
    assert_eq!(o.flow, 1);
    assert_eq!(r.t.stats.port_reuses, 1);
    let v = r.finish();
    assert_eq!(v.len(), 2, "{:?}", v.iter().map(brief).collect::<Vec<_>>());
    assert_state(&v[0], ConnState::SF, "ShAFf");
    assert!(!v[0].port_reused);
    assert_eq!(v[1].id, 1);
    assert!(v[1].port_reused && v[1].reused_in_time_wait);
    assert_state(&v[1], ConnState::S0, "S");
}

#[test]
fn new_syn_after_time_wait_is_not_port_reuse() {
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    let o = r.at(70_050, c(SYN, 9_000_000, 0, 0));
    assert!(!o.port_reused);
    let v = r.finish();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].end_reason, EndReason::Closed);
    assert!(!v[1].port_reused && !v[1].reused_in_time_wait);
}

#[test]
fn new_syn_while_open_supersedes() {
    let mut r = Run::new();
    r.exchange();
    let o = r.at(500, c(SYN, 9_000_000, 0, 0));
    assert!(o.port_reused);
    assert_eq!(r.done.len(), 1, "the first connection ends at once");
    assert_eq!(r.done[0].end_reason, EndReason::Superseded);
    assert_eq!(r.t.stats.port_reuses, 1);
    let v = r.finish();
    assert_eq!(v.len(), 2);
    assert_state(&v[0], ConnState::S1, "ShADad");
    assert!(v[1].port_reused && !v[1].reused_in_time_wait);
    assert_eq!(v[1].first_syn.map(|x| x.number), Some(8));
}

#[test]
fn same_isn_syn_after_close_is_not_a_new_connection() {
    // A late retransmitted SYN of the same attempt stays in it.
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    let o = r.at(100, c(SYN, C_ISN, 0, 0));
    assert!(!o.port_reused);
    assert_eq!(r.finish().len(), 1);
}

#[test]
fn client_port_reuse_after_rst_is_not_time_wait() {
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(RST | ACK, C_END, S_END, 0));
    let o = r.at(2000, c(SYN, 9_000_000, 0, 0));
    assert!(o.port_reused);
    let v = r.finish();
    assert_eq!(v.len(), 2);
    assert!(!v[1].reused_in_time_wait);
}

// =============================================================================================
// Expiry in capture time
// =============================================================================================

#[test]
fn closed_connection_expires_after_closed_timeout() {
    let cfg = TrackerConfig::default();
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    assert_eq!(r.t.active(), 1);
    r.sweep(50 * MS + cfg.closed_timeout_ns - 1);
    assert!(r.done.is_empty());
    assert_eq!(r.t.active(), 1);
    r.sweep(50 * MS + cfg.closed_timeout_ns);
    assert_eq!(r.done.len(), 1);
    assert_eq!(r.done[0].end_reason, EndReason::Closed);
    assert_eq!(r.t.active(), 0);
    assert!(r.finish().len() == 1);
}

/// A SYN of an unrelated connection (client port 52000) at `ms`: moves capture time on.
fn tick(r: &mut Run, ms: i64) {
    r.at(
        ms,
        TcpSegment {
            sport: 52000,
            ..c(SYN, 77, 0, 0)
        },
    );
}

#[test]
fn completed_close_is_finished_after_completed_close_without_waiting_for_a_sweep() {
    let grace = TrackerConfig::default().completed_close_ns / MS;
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN); // final ACK at 50 ms
    tick(&mut r, 50 + grace - 1);
    assert!(r.done.is_empty());
    assert_eq!(r.t.active(), 2);
    tick(&mut r, 50 + grace);
    assert_eq!(r.done.len(), 1);
    assert_eq!(r.done[0].end_reason, EndReason::Closed);
    assert_state(&r.done[0], ConnState::SF, "ShAFf");
    assert_eq!(r.t.active(), 1);
}

#[test]
fn a_segment_within_the_grace_restarts_the_wait() {
    let grace = TrackerConfig::default().completed_close_ns / MS;
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    // The final ACK again (a resend, or a copy from a second capture point), half a grace later.
    r.at(50 + grace / 2, c(ACK, C_ISN + 2, S_DATA + 1, 0));
    tick(&mut r, 50 + grace);
    assert!(r.done.is_empty(), "retired while still receiving");
    tick(&mut r, 50 + grace / 2 + grace);
    assert_eq!(r.done.len(), 1);
    assert_eq!(r.done[0].orig_stats.pkts, 5);
}

#[test]
fn close_without_the_final_ack_waits_for_closed_timeout() {
    let cfg = TrackerConfig::default();
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(10, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at(20, c(ACK, C_ISN + 1, S_DATA, 0));
    r.at(30, c(FIN | ACK, C_ISN + 1, S_DATA, 0));
    r.at(40, s(FIN | ACK, S_DATA, C_ISN + 2, 0));
    // The client's ACK of the server's FIN was not captured.
    tick(&mut r, 40 + cfg.completed_close_ns / MS + 1);
    assert!(r.done.is_empty());
    // A FIN resent by the server still lands in the connection.
    r.at(300, s(FIN | ACK, S_DATA, C_ISN + 2, 0));
    let v = r.finish();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].resp_stats.pkts, 3);
}

#[test]
fn reset_connection_waits_for_closed_timeout() {
    let cfg = TrackerConfig::default();
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(RST | ACK, C_END, S_END, 0));
    tick(&mut r, 60 + cfg.completed_close_ns / MS + 1);
    assert!(r.done.is_empty());
    assert_eq!(r.t.active(), 2);
}

#[test]
fn segment_after_a_finished_close_is_late_not_a_new_connection() {
    let grace = TrackerConfig::default().completed_close_ns / MS;
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    tick(&mut r, 50 + grace);
    assert_eq!(r.done.len(), 1);
    // The server resends its FIN (the client's final ACK was lost after the capture point).
    let o = r.at(50 + grace + 200, s(FIN | ACK, S_DATA, C_ISN + 2, 0));
    assert_eq!((o.flow, o.dir), (0, Some(Direction::Resp)));
    let o = r.at(50 + grace + 210, c(ACK, C_ISN + 2, S_DATA + 1, 0));
    assert_eq!((o.flow, o.dir), (0, Some(Direction::Orig)));
    assert!(!o.port_reused);
    assert_eq!(r.t.stats.late_after_close, 2);
    let v = r.finish();
    assert_eq!(v.len(), 2, "{:?}", v.iter().map(brief).collect::<Vec<_>>());
    // Data on the 4-tuple is a new connection whose SYN was not captured, not a late segment.
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    tick(&mut r, 50 + grace);
    let o = r.at(50 + grace + 200, c(PSH | ACK, 77_000, 88_000, 100));
    assert_eq!(o.flow, 2);
    assert_eq!(r.t.stats.late_after_close, 0);
    let v = r.finish();
    assert!(v.iter().any(|f| f.partial && f.orig_stats.bytes == 100));
    // A new SYN on the 4-tuple is still a reuse in TIME_WAIT.
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    tick(&mut r, 50 + grace);
    let o = r.at(50 + grace + 300, c(SYN, 9_000_000, 0, 0));
    assert!(o.port_reused);
    let v = r.finish();
    let reused = v.iter().find(|f| f.reused_in_time_wait).expect("a reuse");
    // The client sent the first FIN at 30 ms; both FINs were in at 40 ms.
    assert_eq!(
        reused.reused_close,
        Some((Timestamp(40 * MS), Direction::Orig))
    );
}

#[test]
fn idle_connection_expires_after_idle_timeout() {
    let cfg = TrackerConfig::default();
    let mut r = Run::new();
    r.exchange();
    r.sweep(50 * MS + cfg.idle_timeout_ns - 1);
    assert_eq!(r.t.active(), 1);
    r.sweep(50 * MS + cfg.idle_timeout_ns);
    assert_eq!(r.t.active(), 0);
    assert_eq!(r.done[0].end_reason, EndReason::Idle);
    assert_state(&r.done[0], ConnState::S1, "ShADad");
}

#[test]
fn unanswered_attempt_expires_after_attempt_timeout() {
    let cfg = TrackerConfig::default();
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.sweep(cfg.attempt_timeout_ns - 1);
    assert_eq!(r.t.active(), 1);
    r.sweep(cfg.attempt_timeout_ns);
    assert_eq!(r.t.active(), 0);
    assert_eq!(r.done[0].end_reason, EndReason::Idle);
    assert_state(&r.done[0], ConnState::S0, "S");
}

#[test]
fn processing_later_packets_sweeps_old_connections() {
    let mut r = Run::new();
    for i in 0..10u16 {
        let seg = TcpSegment {
            sport: 40000 + i,
            ..c(SYN, C_ISN, 0, 0)
        };
        r.at(i as i64, seg);
    }
    assert_eq!(r.t.active(), 10);
    assert_eq!(r.t.stats.peak_active, 10);
    // A packet of another connection 61 s later: the attempts are swept out.
    r.at(
        61_000,
        TcpSegment {
            sport: 50000,
            ..c(SYN, C_ISN, 0, 0)
        },
    );
    assert_eq!(r.done.len(), 10);
    assert_eq!(r.t.active(), 1);
    let v = r.finish();
    assert_eq!(v.len(), 11);
    assert_eq!(v.last().unwrap().id, 10);
}

#[test]
fn finish_all_reports_in_order_of_first_packet() {
    let mut r = Run::new();
    for i in 0..5u16 {
        r.at(
            i as i64,
            TcpSegment {
                sport: 40000 - i,
                ..c(SYN, C_ISN, 0, 0)
            },
        );
    }
    let v = r.finish();
    assert_eq!(
        v.iter().map(|f| f.id).collect::<Vec<_>>(),
        vec![0, 1, 2, 3, 4]
    );
    assert!(v.iter().all(|f| f.end_reason == EndReason::CaptureEnd));
}

// =============================================================================================
// ICMP
// =============================================================================================

fn icmp_about_syn() -> IcmpError {
    IcmpError {
        reporter: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        v6: false,
        icmp_type: 3,
        code: 13,
        src: CLI,
        dst: SRV,
        sport: CPORT,
        dport: SPORT,
        seq: C_ISN,
    }
}

#[test]
fn icmp_error_attaches_to_the_attempt() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    let fr = r.fr_ns(5 * MS);
    r.t.icmp(&icmp_about_syn(), FrameRef { number: 2, ..fr });
    assert_eq!(r.t.stats.icmp_errors_matched, 1);
    let f = r.one();
    let i = f.icmp.expect("icmp attached");
    assert_eq!((i.icmp_type, i.code, i.v6), (3, 13, false));
    assert_eq!(i.reporter, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(i.frame.number, 2);
    assert_state(&f, ConnState::S0, "S");
}

#[test]
fn icmp_error_for_unknown_connection_is_counted() {
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    let e = IcmpError {
        dport: 9999,
        ..icmp_about_syn()
    };
    r.t.icmp(&e, r.fr_ns(MS));
    assert_eq!(r.t.stats.icmp_errors_unmatched, 1);
    assert!(r.one().icmp.is_none());
}

// =============================================================================================
// Zeek history details
// =============================================================================================

#[test]
fn capture_duplicate_syn_is_not_a_second_attempt() {
    let mut r = Run::new();
    let syn = TcpSegment {
        ip_id: Some(5),
        ..c(SYN, C_ISN, 0, 0)
    };
    r.raw_ns(0, syn);
    let o = r.raw_ns(30_000, syn);
    assert!(o.duplicate);
    let f = r.one();
    assert_eq!(f.syn_count, 1);
    assert_eq!(f.orig_stats.pkts, 1);
    assert_eq!(f.capture_duplicates(), 1);
}

#[test]
fn syn_resent_after_synack_stays_one_connection() {
    // The SYN-ACK was lost on the way to the client: it resends its SYN, same ISN.
    let mut r = Run::new();
    r.at_ns(0, c(SYN, C_ISN, 0, 0));
    r.at_ns(MS, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    let o = r.at_ns(SEC, c(SYN, C_ISN, 0, 0));
    assert!(!o.port_reused);
    assert_eq!(class(o), Some(RetransClass::Retransmission));
    r.at_ns(SEC + MS, s(SYN | ACK, S_ISN, C_ISN + 1, 0));
    r.at_ns(SEC + 2 * MS, c(ACK, C_DATA, S_DATA, 0));
    let f = r.one();
    assert_state(&f, ConnState::S1, "ShA");
    assert_eq!(f.syn_count, 2);
}

#[test]
fn retransmitted_data_letter_is_scaled() {
    // 't' at the 1st and the 10th retransmission, not at the 2nd..9th.
    let f = resent(10);
    assert_eq!(f.history, "ShADTT");
    let f = resent(9);
    assert_eq!(f.history, "ShADT");
}

#[test]
fn fin_with_data_is_only_f_in_zeek_history() {
    // Zeek's update_history: a packet with exactly one of SYN/FIN/RST records only that letter.
    let mut r = Run::new();
    r.handshake();
    r.at(21, c(PSH | ACK, C_DATA, S_DATA, REQ));
    r.at(30, s(ACK, S_DATA, C_END, 0));
    r.at(40, s(FIN | PSH | ACK, S_DATA, C_END, RESP));
    r.at(50, c(FIN | ACK, C_END, S_END + 1, 0));
    let f = r.one();
    assert_eq!(f.resp_stats.bytes, RESP as u64);
    assert_state(&f, ConnState::SF, "ShADafF");
}

#[test]
fn multi_flag_packets_are_single_letters_in_zeek_history() {
    let mut r = Run::new();
    r.at(0, c(SYN | FIN, C_ISN, 0, 0));
    assert_eq!(r.one().history, "Q");

    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | RST | ACK, C_END, S_END, 0));
    assert_eq!(r.one().history, "ShADadI");
}

#[test]
fn syn_fin_gets_multi_flag_letter() {
    // Whatever else is recorded, the multi-flag and inconsistency letters are there.
    let mut r = Run::new();
    r.at(0, c(SYN | FIN, C_ISN, 0, 0));
    assert!(r.one().history.contains('Q'));
    let mut r = Run::new();
    r.exchange();
    r.at(60, c(FIN | RST | ACK, C_END, S_END, 0));
    assert!(r.one().history.contains('I'));
}

#[test]
fn syn_after_sweep_within_time_wait_is_reuse_in_time_wait() {
    let mut r = Run::new();
    closed_conn(&mut r, 0, C_ISN);
    // The closed connection is swept at 10 s; TIME_WAIT (60 s from the close) still holds.
    let o = r.at(10_000, c(SYN, 9_000_000, 0, 0));
    assert_eq!(r.done.len(), 1);
    assert_eq!(r.done[0].end_reason, EndReason::Closed);
    assert!(o.port_reused);
    let v = r.finish();
    assert!(v[1].port_reused && v[1].reused_in_time_wait);
}

#[test]
fn simultaneous_connections_on_different_ports_are_separate() {
    let mut r = Run::new();
    let a = |seg: TcpSegment<'static>| TcpSegment {
        sport: 40001,
        ..seg
    };
    let b = |seg: TcpSegment<'static>| TcpSegment {
        dport: 40001,
        ..seg
    };
    r.at(0, a(c(SYN, C_ISN, 0, 0)));
    r.at(1, c(SYN, 7000, 0, 0));
    r.at(2, b(s(SYN | ACK, S_ISN, C_ISN + 1, 0)));
    r.at(3, s(RST | ACK, 0, 7001, 0));
    let v = r.finish();
    assert_eq!(v.len(), 2);
    assert_eq!(v[0].orig.port(), 40001);
    assert_eq!(v[0].history, "Sh");
    assert_eq!(v[0].synack.map(|x| x.number), Some(3));
    assert_state(&v[1], ConnState::REJ, "Sr");
}

// --- the connection cap ---------------------------------------------------------------------

#[test]
fn full_table_evicts_the_least_recently_active() {
    let mut r = Run::with(TrackerConfig {
        max_connections: 16,
        ..TrackerConfig::default()
    });
    // 40 SYNs from distinct source ports, 1 ms apart; then one more SYN of the first attempt.
    for i in 0..40u16 {
        r.at(
            i as i64,
            TcpSegment {
                sport: 40000 + i,
                ..c(SYN, C_ISN, 0, 0)
            },
        );
        assert!(r.t.active() <= 16, "table stays at the cap");
    }
    let stats = r.t.stats;
    assert_eq!(stats.connections, 40);
    assert!(stats.evictions > 0);
    assert_eq!(stats.evicted as usize, r.done.len());
    assert!(r.done.iter().all(|s| s.end_reason == EndReason::Evicted));
    // The oldest attempts went first (in slot order within one eviction), the newest stay.
    let evicted: std::collections::BTreeSet<u16> = r.done.iter().map(|s| s.orig.port()).collect();
    assert!(evicted.contains(&40000));
    assert!(!evicted.contains(&40039));
    let all = r.finish();
    assert_eq!(all.len(), 40, "every attempt is reported exactly once");
}

// =============================================================================================
// Adversarial traffic: blind resets (RFC 5961), inconsistent retransmissions
// =============================================================================================

#[test]
fn rst_outside_the_receive_window_is_not_a_reset() {
    let mut r = Run::new();
    r.exchange();
    // 2^30 below what the client expects, and far beyond its window: a receiver drops both.
    r.at(55, s(RST, S_END.wrapping_sub(0x4000_0000), 0, 0));
    r.at(56, s(RST | ACK, S_END.wrapping_add(0x7000_0000), C_END, 0));
    let f = r.one();
    assert_state(&f, ConnState::S1, "ShADad");
    assert!(f.rst.is_none());
    assert_eq!(f.rst_count, 0);
    assert_eq!(f.resp_stats.rst_outside_window, 2);
    assert_eq!(
        f.resp_stats.first_rst_outside_window.map(|x| x.number),
        Some(8)
    );
    // Still counted as packets of the sender (they were on the wire).
    assert_eq!(f.resp_stats.pkts, 5);
}

#[test]
fn rst_in_the_window_after_an_outside_one_is_the_reset() {
    let mut r = Run::new();
    r.exchange();
    r.at(55, s(RST, S_END.wrapping_add(0x7000_0000), 0, 0));
    // One below the next sequence number (a stack resetting with its FIN's number): in window.
    r.at(60, s(RST | ACK, S_END - 1, C_END, 0));
    let f = r.one();
    assert_state(&f, ConnState::RSTR, "ShADadr");
    assert_eq!(f.rst.unwrap().frame.number, 9);
    assert_eq!(f.resp_stats.rst_outside_window, 1);
}

#[test]
fn rst_answering_a_syn_is_judged_without_a_window() {
    // Nothing is known of the responder's sequence space: a refusal stays a refusal.
    let mut r = Run::new();
    r.at(0, c(SYN, C_ISN, 0, 0));
    r.at(1, s(RST | ACK, 0x9000_0000, C_ISN + 1, 0));
    let f = r.one();
    assert_eq!(f.conn_state, ConnState::REJ);
    assert_eq!(f.resp_stats.rst_outside_window, 0);
}

/// Collects stream bytes per direction (so the table reassembles).
#[derive(Default)]
struct Streams {
    done: Vec<FlowSummary>,
    data: [Vec<u8>; 2],
}

impl FlowSink for Streams {
    fn flow_end(&mut self, s: FlowSummary) {
        self.done.push(s);
    }
    fn wants_streams(&self) -> bool {
        true
    }
    fn stream(&mut self, ctx: StreamCtx, ev: StreamEvent<'_>) {
        if let StreamEvent::Data(d) = ev {
            self.data[ctx.dir.idx()].extend_from_slice(d);
        }
    }
}

#[test]
fn retransmission_with_other_bytes_is_counted_as_inconsistent() {
    let mut t = FlowTable::new(TrackerConfig::default());
    let mut sink = Streams::default();
    let body = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    let evil = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nHELLO";
    let segs: [(TcpSegment<'_>, &[u8]); 7] = [
        (c(SYN, C_ISN, 0, 0), b""),
        (s(SYN | ACK, S_ISN, C_ISN + 1, 0), b""),
        (c(ACK, C_DATA, S_DATA, 0), b""),
        (s(PSH | ACK, S_DATA, C_DATA, body.len() as u32), body),
        // The same segment again, same bytes: a plain retransmission.
        (s(PSH | ACK, S_DATA, C_DATA, body.len() as u32), body),
        // Same sequence number and length, other bytes.
        (s(PSH | ACK, S_DATA, C_DATA, evil.len() as u32), evil),
        (c(ACK, C_DATA, S_DATA + body.len() as u32, 0), b""),
    ];
    for (i, (seg, payload)) in segs.into_iter().enumerate() {
        let seg = TcpSegment {
            payload,
            ip_id: Some(i as u16),
            ..seg
        };
        let fr = FrameRef {
            file: 0,
            number: i as u64 + 1,
            ts: Timestamp(i as i64 * 300 * MS),
        };
        t.process(&seg, fr, &mut sink);
    }
    t.finish_all(&mut sink);
    let f = &sink.done[0];
    assert_eq!(f.resp_stats.inconsistent_retransmissions, 1);
    assert_eq!(
        f.resp_stats
            .first_inconsistent_retransmission
            .map(|x| x.number),
        Some(6)
    );
    assert_eq!(f.resp_stats.retransmissions, 2);
    // The first version is what the application layer saw.
    assert_eq!(sink.data[1], body);
}

#[test]
fn closed_record_packs_the_connection_number_and_the_closing_side() {
    let max = (1 << 62) - 1;
    for (flow, lo, orig) in [
        (0, false, true),
        (7, true, false),
        (max, true, true),
        (max, false, false),
    ] {
        let c = Closed::new(Timestamp(5), None, flow, lo, orig);
        assert_eq!(
            (c.flow(), c.first_fin_from_lo(), c.orig_is_lo()),
            (flow, lo, orig)
        );
    }
}

#[test]
fn a_fingerprint_ring_is_two_cache_lines() {
    assert_eq!(std::mem::size_of::<Option<super::Fingerprint>>(), 32);
}
