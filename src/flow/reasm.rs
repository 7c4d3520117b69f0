//! Bounded in-order reassembly of one direction's byte stream.
//!
//! Segments are delivered as soon as they are in order; a retransmission delivers only the bytes
//! beyond what was already delivered. One run of out-of-order bytes after a hole is held (up to
//! `MAX_PENDING_BYTES`, allocated only when a hole appears); when the hole is filled, the held
//! bytes follow, attributed to the frame that filled it. When the hole cannot be filled (the
//! held run would overflow, a non-contiguous segment arrives, or the direction ends) the missing
//! bytes become a `Gap` and delivery goes on. Bytes cut by the snaplen are a `Gap` too.
//!
//! The only consumer interface is `StreamEvent`: data, gap, end.

use super::seq::{gt, le, lt};

/// Most out-of-order bytes held per direction while waiting for a hole to be filled.
pub const MAX_PENDING_BYTES: usize = 64 * 1024;
/// Delivered segments remembered per direction (sequence number, length, hash of the bytes) to
/// recognise a retransmission whose bytes differ from the original (Zeek's
/// `retransmission_inconsistency`). Only a retransmission with the same sequence number and
/// length as one of these is compared; the bytes themselves are not kept.
pub const RECENT_SEGMENTS: usize = 4;

/// What application parsers see of a direction's stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEvent<'a> {
    /// The next in-order bytes.
    Data(&'a [u8]),
    /// This many bytes are missing (not captured, or cut by the snaplen).
    Gap(u32),
    /// The direction ended: FIN (`rst == false`) or RST.
    End { rst: bool },
}

#[derive(Debug, Default)]
struct Pending {
    seq: u32,
    data: Vec<u8>,
}

/// Per-direction reassembly state.
#[derive(Debug, Default)]
pub struct Reassembler {
    /// Next expected sequence number (valid once `started`).
    next: u32,
    started: bool,
    ended: bool,
    pending: Option<Box<Pending>>,
    /// The last `RECENT_SEGMENTS` whole segments delivered: (seq, len, FxHash of the bytes);
    /// len 0 = empty slot.
    recent: [(u32, u32, u64); RECENT_SEGMENTS],
    recent_next: u8,
}

fn hash(b: &[u8]) -> u64 {
    use std::hash::Hasher;
    let mut h = rustc_hash::FxHasher::default();
    h.write(b);
    h.finish()
}

impl Reassembler {
    /// A SYN fixes the stream's start (ISN + 1).
    pub fn syn(&mut self, isn: u32) {
        if !self.started {
            self.next = isn.wrapping_add(1);
            self.started = true;
        }
    }

    /// Feeds a segment's payload: `seq` of its first byte, `wire_len` bytes on the wire of which
    /// `captured` are present. Emits the resulting events in order. Returns true when the segment
    /// resends a recently delivered segment (same sequence number and length) with different
    /// bytes: the receiver keeps one version, the capture cannot tell which.
    pub fn segment(
        &mut self,
        seq: u32,
        wire_len: u32,
        captured: &[u8],
        mut emit: impl FnMut(StreamEvent<'_>),
    ) -> bool {
        if wire_len == 0 || self.ended {
            return false;
        }
        if !self.started {
            self.next = seq;
            self.started = true;
        }
        let whole = captured.len() as u32 == wire_len;
        let end = seq.wrapping_add(wire_len);
        if le(end, self.next) {
            // Entirely old (retransmission): compare with the original when remembered.
            return whole && self.inconsistent(seq, wire_len, captured);
        }
        if gt(seq, self.next) {
            self.hold(seq, wire_len, captured, &mut emit);
            return false;
        }
        // In order, possibly overlapping what was already delivered.
        let skip = self.next.wrapping_sub(seq);
        let bad = skip > 0 && whole && self.inconsistent(seq, wire_len, captured);
        if whole && skip == 0 {
            self.recent[self.recent_next as usize] = (seq, wire_len, hash(captured));
            self.recent_next = ((self.recent_next as usize + 1) % RECENT_SEGMENTS) as u8;
        }
        deliver(skip, wire_len, captured, &mut emit);
        self.next = end;
        self.release(&mut emit);
        bad
    }

    /// A remembered segment with this sequence number and length had other bytes.
    fn inconsistent(&self, seq: u32, len: u32, captured: &[u8]) -> bool {
        let Some(&(_, _, h)) = self.recent.iter().find(|&&(s, l, _)| l == len && s == seq) else {
            return false;
        };
        h != hash(captured)
    }

    /// Holds an out-of-order segment, or gives up on the hole when it cannot.
    fn hold(
        &mut self,
        seq: u32,
        wire_len: u32,
        captured: &[u8],
        emit: &mut impl FnMut(StreamEvent<'_>),
    ) {
        let whole = captured.len() as u32 == wire_len;
        match &mut self.pending {
            None if whole && (wire_len as usize) <= MAX_PENDING_BYTES => {
                self.pending = Some(Box::new(Pending {
                    seq,
                    data: captured.to_vec(),
                }));
            }
            Some(p)
                if whole
                    && p.seq.wrapping_add(p.data.len() as u32) == seq
                    && p.data.len() + captured.len() <= MAX_PENDING_BYTES =>
            {
                p.data.extend_from_slice(captured);
            }
            Some(p)
                if whole && lt(seq, p.seq.wrapping_add(p.data.len() as u32)) && !lt(seq, p.seq) =>
            {
                // Inside the held run already (a retransmission of held bytes).
                let p_end = p.seq.wrapping_add(p.data.len() as u32);
                let end = seq.wrapping_add(wire_len);
                if gt(end, p_end)
                    && p.data.len() + (end.wrapping_sub(p_end) as usize) <= MAX_PENDING_BYTES
                {
                    let from = p_end.wrapping_sub(seq) as usize;
                    p.data.extend_from_slice(&captured[from..]);
                }
            }
            Some(p)
                if whole
                    && seq.wrapping_add(wire_len) == p.seq
                    && p.data.len() + captured.len() <= MAX_PENDING_BYTES =>
            {
                // Right before the held run: the run grows backwards.
                let mut data = Vec::with_capacity(captured.len() + p.data.len());
                data.extend_from_slice(captured);
                data.extend_from_slice(&p.data);
                p.data = data;
                p.seq = seq;
            }
            _ => {
                // Cannot hold it: the hole before the held run will not be filled in this
                // capture. Release the run behind a gap, then place this segment against the new
                // position like any other segment (old bytes dropped, a new hole a gap).
                self.flush(emit);
                let end = seq.wrapping_add(wire_len);
                if le(end, self.next) {
                    return;
                }
                if gt(seq, self.next) {
                    emit(StreamEvent::Gap(seq.wrapping_sub(self.next)));
                    deliver(0, wire_len, captured, emit);
                } else {
                    deliver(self.next.wrapping_sub(seq), wire_len, captured, emit);
                }
                self.next = end;
            }
        }
    }

    /// Delivers held bytes that became in order.
    fn release(&mut self, emit: &mut impl FnMut(StreamEvent<'_>)) {
        let Some(p) = &self.pending else { return };
        if gt(p.seq, self.next) {
            return;
        }
        let p = self.pending.take().expect("checked");
        let p_end = p.seq.wrapping_add(p.data.len() as u32);
        if gt(p_end, self.next) {
            let from = self.next.wrapping_sub(p.seq) as usize;
            emit(StreamEvent::Data(&p.data[from..]));
            self.next = p_end;
        }
    }

    /// Gives up on a hole: the missing bytes become a gap, the held bytes follow.
    fn flush(&mut self, emit: &mut impl FnMut(StreamEvent<'_>)) {
        if let Some(p) = self.pending.take() {
            let gap = p.seq.wrapping_sub(self.next);
            if gap > 0 && gt(p.seq, self.next) {
                emit(StreamEvent::Gap(gap));
                self.next = p.seq;
            }
            let p_end = p.seq.wrapping_add(p.data.len() as u32);
            if gt(p_end, self.next) {
                let from = self.next.wrapping_sub(p.seq) as usize;
                emit(StreamEvent::Data(&p.data[from..]));
                self.next = p_end;
            }
        }
    }

    /// The peer acknowledged `ack`: bytes before it reached the peer, so a hole below it will
    /// never be filled in this capture (the segment was lost before the capture point, or not
    /// captured): give up on it now rather than wait.
    pub fn acked(&mut self, ack: u32, mut emit: impl FnMut(StreamEvent<'_>)) {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| gt(ack, self.next) && !lt(ack, p.seq))
        {
            self.flush(&mut emit);
        }
    }

    /// The direction ended (FIN or RST): held bytes are released behind a gap, then `End`.
    pub fn end(&mut self, rst: bool, mut emit: impl FnMut(StreamEvent<'_>)) {
        if self.ended {
            return;
        }
        self.flush(&mut emit);
        self.ended = true;
        emit(StreamEvent::End { rst });
    }

    /// The capture ended or the connection expired: release what is held (no `End`).
    pub fn finish(&mut self, emit: impl FnMut(StreamEvent<'_>)) {
        let mut emit = emit;
        self.flush(&mut emit);
    }
}

/// Emits `captured[skip..]` and a gap for the part of the segment beyond the capture.
fn deliver(skip: u32, wire_len: u32, captured: &[u8], emit: &mut impl FnMut(StreamEvent<'_>)) {
    let have = captured.len() as u32;
    if skip < have {
        emit(StreamEvent::Data(&captured[skip as usize..]));
    }
    if have < wire_len {
        emit(StreamEvent::Gap(wire_len - have.max(skip)));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(r: &mut Reassembler, seq: u32, data: &[u8], out: &mut Vec<u8>, gaps: &mut u32) {
        r.segment(seq, data.len() as u32, data, |e| match e {
            StreamEvent::Data(d) => out.extend_from_slice(d),
            StreamEvent::Gap(n) => *gaps += n,
            StreamEvent::End { .. } => {}
        });
    }

    #[test]
    fn in_order_retransmitted_and_out_of_order() {
        let mut r = Reassembler::default();
        r.syn(99);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut r, 100, b"hello ", &mut out, &mut gaps);
        run(&mut r, 100, b"hello ", &mut out, &mut gaps); // retransmission
        run(&mut r, 111, b"!", &mut out, &mut gaps); // out of order
        run(&mut r, 103, b"lo world", &mut out, &mut gaps); // overlap + fills hole
        assert_eq!(out, b"hello world!");
        assert_eq!(gaps, 0);
    }

    #[test]
    fn unfillable_hole_becomes_a_gap_at_end() {
        let mut r = Reassembler::default();
        r.syn(0);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut r, 1, b"ab", &mut out, &mut gaps);
        run(&mut r, 5, b"ef", &mut out, &mut gaps);
        let mut ended = false;
        r.end(false, |e| match e {
            StreamEvent::Data(d) => out.extend_from_slice(d),
            StreamEvent::Gap(n) => gaps += n,
            StreamEvent::End { .. } => ended = true,
        });
        assert_eq!(out, b"abef");
        assert_eq!(gaps, 2);
        assert!(ended);
    }

    #[test]
    fn snaplen_cut_is_a_gap() {
        let mut r = Reassembler::default();
        r.syn(0);
        let mut ev = Vec::new();
        r.segment(1, 10, b"abc", |e| ev.push(format!("{:?}", e)));
        assert_eq!(
            ev,
            vec!["Data([97, 98, 99])".to_string(), "Gap(7)".to_string()]
        );
    }

    #[test]
    fn resent_segment_with_other_bytes_is_inconsistent() {
        let mut r = Reassembler::default();
        r.syn(99);
        let mut out = Vec::new();
        let mut feed = |r: &mut Reassembler, seq, d: &[u8]| {
            r.segment(seq, d.len() as u32, d, |e| {
                if let StreamEvent::Data(d) = e {
                    out.extend_from_slice(d)
                }
            })
        };
        assert!(!feed(&mut r, 100, b"HTTP/1.1 200 OK\r\n"));
        assert!(!feed(&mut r, 117, b"abc"));
        // The same bytes again: a plain retransmission.
        assert!(!feed(&mut r, 100, b"HTTP/1.1 200 OK\r\n"));
        // Same sequence number and length, other bytes: inconsistent; the first version stays.
        assert!(feed(&mut r, 100, b"HTTP/1.1 403 No\r\n"));
        assert!(feed(&mut r, 117, b"xyz"));
        // Cut by the snaplen: cannot be compared.
        assert!(!r.segment(117, 3, b"x", |_| {}));
        assert_eq!(out, b"HTTP/1.1 200 OK\r\nabc");
    }

    #[test]
    fn wraps_around_zero() {
        let mut r = Reassembler::default();
        r.syn(0xFFFF_FFFD);
        let (mut out, mut gaps) = (Vec::new(), 0);
        run(&mut r, 0xFFFF_FFFE, b"abcd", &mut out, &mut gaps);
        run(&mut r, 2, b"ef", &mut out, &mut gaps);
        assert_eq!(out, b"abcdef");
    }
}
