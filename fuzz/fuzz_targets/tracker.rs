//! Arbitrary segment sequences through the TCP tracker and reassembly (structure-aware: the
//! fuzzer picks connection, direction, sequence/ack moves, flags, lengths, snaplen cuts, time
//! steps — backwards too — and capture duplicates).
//!
//! Payload bytes are a function of their sequence number (the low byte), so reassembly can be
//! checked exactly: every byte delivered follows the previous one of its direction, gaps
//! included. Other invariants: each connection ends exactly once and gets no stream event after
//! it ended; every frame a summary names was fed; counters never exceed the packets fed; the
//! table never holds more than `max_connections`.
#![no_main]
use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use proxyscope::decode::TcpSegment;
use proxyscope::flow::{
    Direction, FlowSink, FlowSummary, FlowTable, FrameRef, StreamCtx, StreamEvent, TrackerConfig,
};
use proxyscope::time::Timestamp;
use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, Ipv4Addr};

#[derive(Arbitrary, Debug)]
enum SeqMove {
    /// The sender's next sequence number (in order).
    Next,
    /// Back by n bytes (a retransmission or overlap).
    Back(u16),
    /// Forward by n bytes (a hole).
    Ahead(u16),
    /// Anywhere.
    Abs(u32),
}

#[derive(Arbitrary, Debug)]
enum AckMove {
    /// What the peer sent so far.
    PeerNext,
    Back(u16),
    Ahead(u16),
    Abs(u32),
}

#[derive(Arbitrary, Debug)]
enum Step {
    Same,
    Micros(u16),
    Millis(u16),
    Secs(u8),
    /// Time goes backwards.
    BackMillis(u16),
}

#[derive(Arbitrary, Debug)]
struct Seg {
    /// Which 4-tuple (of 4) and which side sends.
    conn: u8,
    from_resp: bool,
    seq: SeqMove,
    ack: AckMove,
    flags: u8,
    len: u16,
    /// Captured payload bytes (snaplen cut) when shorter than `len`.
    cut: Option<u16>,
    window: u16,
    step: Step,
    /// Repeat the previous IP id (with the rest identical: a capture duplicate).
    same_ip_id: bool,
}

#[derive(Arbitrary, Debug)]
struct Input {
    max_connections: u8,
    segs: Vec<Seg>,
}

const T0: i64 = 1_700_000_000_000_000_000;

#[derive(Default)]
struct Sink {
    ended: HashSet<u64>,
    /// Next expected payload byte per (connection, direction).
    expect: HashMap<(u64, usize), Option<u8>>,
    summaries: Vec<FlowSummary>,
}

impl FlowSink for Sink {
    fn flow_end(&mut self, s: FlowSummary) {
        assert!(self.ended.insert(s.id), "connection {} ended twice", s.id);
        self.summaries.push(s);
    }
    fn wants_streams(&self) -> bool {
        true
    }
    fn stream(&mut self, ctx: StreamCtx, ev: StreamEvent<'_>) {
        assert!(
            !self.ended.contains(&ctx.flow),
            "stream event after connection {} ended",
            ctx.flow
        );
        let e = self.expect.entry((ctx.flow, ctx.dir.idx())).or_default();
        match ev {
            StreamEvent::Data(d) => {
                assert!(!d.is_empty(), "empty data event");
                for &b in d {
                    if let Some(x) = *e {
                        assert_eq!(b, x, "reassembled byte out of sequence");
                    }
                    *e = Some(b.wrapping_add(1));
                }
            }
            StreamEvent::Gap(n) => {
                assert!(n > 0, "empty gap");
                *e = e.map(|x| x.wrapping_add(n as u8));
            }
            StreamEvent::End { .. } => {}
        }
    }
}

fuzz_target!(|input: Input| {
    let cfg = TrackerConfig {
        max_connections: 1 + input.max_connections as usize % 6,
        ..TrackerConfig::default()
    };
    let mut table = FlowTable::new(cfg);
    let mut sink = Sink::default();
    let cli = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
    let srv = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2));
    // Next sequence number per (4-tuple, side).
    let mut next = [[1000u32, 5000u32]; 4];
    let mut payload = Vec::new();
    let mut t = T0;
    let mut ip_id = 0u16;
    let mut seen_flows = HashSet::new();
    let n = input.segs.len().min(2000);
    for (i, g) in input.segs.iter().take(n).enumerate() {
        let c = g.conn as usize % 4;
        let side = g.from_resp as usize;
        let cport = 40000 + c as u16;
        let (src, dst, sport, dport) = if side == 0 {
            (cli, srv, cport, 80)
        } else {
            (srv, cli, 80, cport)
        };
        let seq = match g.seq {
            SeqMove::Next => next[c][side],
            SeqMove::Back(d) => next[c][side].wrapping_sub(d as u32),
            SeqMove::Ahead(d) => next[c][side].wrapping_add(d as u32),
            SeqMove::Abs(s) => s,
        };
        let peer = next[c][1 - side];
        let ack = match g.ack {
            AckMove::PeerNext => peer,
            AckMove::Back(d) => peer.wrapping_sub(d as u32),
            AckMove::Ahead(d) => peer.wrapping_add(d as u32),
            AckMove::Abs(a) => a,
        };
        let flags = g.flags & 0x3f;
        let syn = flags & 0x02 != 0;
        let fin = flags & 0x01 != 0;
        let len = g.len as u32 % 3000;
        let data_seq = if syn { seq.wrapping_add(1) } else { seq };
        let captured = g.cut.map_or(len, |k| (k as u32).min(len));
        payload.clear();
        payload.extend((0..captured).map(|k| data_seq.wrapping_add(k) as u8));
        let end = data_seq.wrapping_add(len).wrapping_add(fin as u32);
        if (end.wrapping_sub(next[c][side]) as i32) > 0 || matches!(g.seq, SeqMove::Abs(_)) {
            next[c][side] = end;
        }
        t += match g.step {
            Step::Same => 0,
            Step::Micros(u) => u as i64 * 1_000,
            Step::Millis(m) => m as i64 * 1_000_000,
            Step::Secs(s) => s as i64 * 1_000_000_000,
            Step::BackMillis(m) => -(m as i64) * 1_000_000,
        };
        if !g.same_ip_id {
            ip_id = ip_id.wrapping_add(1);
        }
        let seg = TcpSegment {
            src,
            dst,
            sport,
            dport,
            seq,
            ack,
            flags,
            window: g.window,
            checksum: 0,
            ip_id: Some(ip_id),
            ttl: if side == 0 { 64 } else { 60 },
            payload_len: len,
            payload: &payload,
            truncated: captured < len,
        };
        let fr = FrameRef {
            file: 0,
            number: i as u64 + 1,
            ts: Timestamp(t),
        };
        let out = table.process(&seg, fr, &mut sink);
        seen_flows.insert(out.flow);
        assert!(table.active() <= cfg.max_connections, "table over its cap");
        assert!(out.dir.is_some());
    }
    table.finish_all(&mut sink);
    assert_eq!(table.active(), 0);
    let frames = n as u64;
    for f in &seen_flows {
        assert!(sink.ended.contains(f), "connection {} never ended", f);
    }
    let mut pkts = 0;
    for s in &sink.summaries {
        let ok = |fr: &FrameRef| (1..=frames).contains(&fr.number);
        assert!(ok(&s.first) && ok(&s.last) && s.first.number <= s.last.number);
        for fr in [s.first_syn, s.last_syn, s.synack].into_iter().flatten() {
            assert!(ok(&fr));
        }
        if let Some(r) = &s.rst {
            assert!(ok(&r.frame));
        }
        for d in [Direction::Orig, Direction::Resp] {
            let st = s.stats(d);
            pkts += st.pkts + st.capture_duplicates as u64;
            for fr in [st.first_data, st.last_data, st.first_fin]
                .into_iter()
                .flatten()
            {
                assert!(ok(&fr));
            }
            assert!(st.retransmissions as u64 + st.fast_retransmissions as u64 <= st.pkts);
            if let Some(w) = &st.worst_segment {
                assert!(w.frames.len() <= proxyscope::flow::MAX_SEGMENT_FRAMES);
                for fr in w.frames.iter().chain(w.original.iter()) {
                    assert!(ok(fr));
                }
            }
        }
        assert!(s.syn_count as u64 <= s.orig_stats.pkts + s.resp_stats.pkts);
        assert!(
            s.history.len() <= proxyscope::flow::state::HISTORY_MAX + 1,
            "history {}",
            s.history
        );
        serde_json::to_string(s).expect("summary serialises");
    }
    assert!(pkts <= frames, "{} packets counted of {} fed", pkts, frames);
});
