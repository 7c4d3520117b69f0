//! Zeek-compatible endpoint states, connection states and history letters.
//!
//! The connection outcome (`ConnState`) is a pure function of both endpoint states, the bytes
//! each side sent and the history string, exactly as Zeek's `conn_state()` in
//! `scripts/base/protocols/conn/main.zeek`. Endpoint states change through one transition
//! function, `EndpointState::on_send`, driven by the segments an endpoint sends.

use serde::Serialize;

/// What a passive observer knows about one side of a connection (Zeek's `TCP_ENDPOINT_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum EndpointState {
    /// Nothing seen from this side yet.
    #[default]
    Inactive,
    /// Sent a SYN, no completed handshake seen.
    SynSent,
    /// Sent a SYN-ACK, no completed handshake seen.
    SynAckSent,
    /// Seen only mid-stream (the handshake was not captured).
    Partial,
    /// Handshake completed.
    Established,
    /// Sent a FIN.
    Closed,
    /// Sent a RST.
    Reset,
}

impl EndpointState {
    /// Transition for a segment *sent* by this endpoint; `peer` may change too (the third packet
    /// of the handshake establishes both sides). Returns nothing: states are updated in place.
    pub fn on_send(
        own: &mut EndpointState,
        peer: &mut EndpointState,
        syn: bool,
        ack: bool,
        fin: bool,
        rst: bool,
    ) {
        use EndpointState::*;
        if rst {
            // Zeek (UpdateClosedState): a RST after both sides sent FIN leaves the sender CLOSED,
            // so a connection torn down with FINs and then reset stays SF.
            if *own == Closed && *peer == Closed {
                return;
            }
            // RFC 793 §3.4: otherwise a RST aborts the connection from this side.
            *own = Reset;
            return;
        }
        match (*own, syn, ack) {
            // Active open (RFC 793 §3.4, figure 7): SYN from a side that has sent nothing.
            (Inactive, true, false) => *own = SynSent,
            // SYN-ACK answering a SYN that was seen: Zeek establishes both sides here, without
            // waiting for the third segment.
            (Inactive | SynSent, true, true) if *peer == SynSent => {
                *own = Established;
                *peer = Established;
            }
            // SYN-ACK whose SYN was not captured.
            (Inactive | SynSent, true, true) => *own = SynAckSent,
            // The ACK (or data) after a SYN-ACK whose SYN was missed, or the third segment of a
            // simultaneous open: both sides are established.
            (Inactive | SynSent | SynAckSent, false, true) if *peer == SynAckSent => {
                *own = Established;
                *peer = Established;
            }
            // Picked up mid-stream: no SYN seen from this side.
            (Inactive, false, _) => *own = Partial,
            _ => {}
        }
        if fin && *own != Reset {
            *own = Closed;
        }
    }

    fn inactive(self) -> bool {
        matches!(self, EndpointState::Inactive | EndpointState::Partial)
    }
}

/// Zeek's `conn_state` values.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum ConnState {
    S0,
    S1,
    SF,
    REJ,
    S2,
    S3,
    RSTO,
    RSTR,
    RSTOS0,
    RSTRH,
    SH,
    SHR,
    OTH,
}

impl ConnState {
    pub fn name(self) -> &'static str {
        match self {
            ConnState::S0 => "S0",
            ConnState::S1 => "S1",
            ConnState::SF => "SF",
            ConnState::REJ => "REJ",
            ConnState::S2 => "S2",
            ConnState::S3 => "S3",
            ConnState::RSTO => "RSTO",
            ConnState::RSTR => "RSTR",
            ConnState::RSTOS0 => "RSTOS0",
            ConnState::RSTRH => "RSTRH",
            ConnState::SH => "SH",
            ConnState::SHR => "SHR",
            ConnState::OTH => "OTH",
        }
    }

    /// Zeek's `conn_state()` for TCP, line by line.
    pub fn compute(
        os: EndpointState,
        rs: EndpointState,
        orig_bytes: u64,
        resp_bytes: u64,
        history: &str,
    ) -> ConnState {
        use EndpointState::*;
        let o_inactive = os.inactive();
        let r_inactive = rs.inactive();
        if rs == Reset {
            if os == SynSent
                || os == SynAckSent
                || (os == Reset && orig_bytes == 0 && resp_bytes == 0)
            {
                ConnState::REJ
            } else if o_inactive {
                ConnState::RSTRH
            } else {
                ConnState::RSTR
            }
        } else if os == Reset {
            if r_inactive {
                if history_is_rstos0(history) {
                    ConnState::RSTOS0
                } else {
                    ConnState::OTH
                }
            } else {
                ConnState::RSTO
            }
        } else if rs == Closed && os == Closed {
            ConnState::SF
        } else if os == Closed {
            if r_inactive {
                ConnState::SH
            } else {
                ConnState::S2
            }
        } else if rs == Closed {
            if o_inactive {
                ConnState::SHR
            } else {
                ConnState::S3
            }
        } else if os == SynSent && rs == Inactive {
            ConnState::S0
        } else if os == Established && rs == Established {
            ConnState::S1
        } else {
            ConnState::OTH
        }
    }
}

/// Zeek's `/\^?S[^HAFGIQ]*R.*/`: the originator sent a SYN and then a RST, with no originator
/// ACK, FIN, gap, inconsistency or multi-flag packet in between.
fn history_is_rstos0(h: &str) -> bool {
    let b = h.as_bytes();
    let mut i = 0;
    if b.first() == Some(&b'^') {
        i = 1;
    }
    if b.get(i) != Some(&b'S') {
        return false;
    }
    for &c in &b[i + 1..] {
        match c {
            b'R' => return true,
            b'H' | b'A' | b'F' | b'G' | b'I' | b'Q' => return false,
            _ => {}
        }
    }
    false
}

/// Most history letters kept (Zeek's history is short; this cap is never reached by the
/// once-per-letter rule plus the scaled repeats of `t`, `w` and `g`).
pub const HISTORY_MAX: usize = 40;

/// Zeek's `history` string, built without allocation.
#[derive(Clone, Copy)]
pub struct History {
    buf: [u8; HISTORY_MAX],
    len: u8,
    /// Bit per letter per direction already recorded (once-only letters).
    seen: u64,
    /// Next count at which a scaled letter (t, w, g) is recorded again, per direction.
    next_t: [u32; 2],
    next_w: [u32; 2],
    next_g: [u32; 2],
    count_t: [u32; 2],
    count_w: [u32; 2],
    count_g: [u32; 2],
}

impl Default for History {
    fn default() -> Self {
        History {
            buf: [0; HISTORY_MAX],
            len: 0,
            seen: 0,
            next_t: [1; 2],
            next_w: [1; 2],
            next_g: [1; 2],
            count_t: [0; 2],
            count_w: [0; 2],
            count_g: [0; 2],
        }
    }
}

impl History {
    fn push(&mut self, c: u8) {
        if (self.len as usize) < HISTORY_MAX {
            self.buf[self.len as usize] = c;
            self.len += 1;
        }
    }

    /// Records `letter` (lower case) for direction `orig` (upper case) once per connection.
    pub fn once(&mut self, orig: bool, letter: u8) {
        let bit = (letter - b'a') as u64 + if orig { 32 } else { 0 };
        if self.seen & (1 << bit) == 0 {
            self.seen |= 1 << bit;
            self.push(if orig {
                letter.to_ascii_uppercase()
            } else {
                letter
            });
        }
    }

    /// Records a scaled letter (t, w, g): at the 1st, 10th, 100th ... occurrence (Zeek's
    /// `scaled history`).
    pub fn scaled(&mut self, orig: bool, letter: u8) {
        let d = if orig { 0 } else { 1 };
        let (count, next) = match letter {
            b't' => (&mut self.count_t[d], &mut self.next_t[d]),
            b'w' => (&mut self.count_w[d], &mut self.next_w[d]),
            _ => (&mut self.count_g[d], &mut self.next_g[d]),
        };
        *count += 1;
        if *count == *next {
            *next = next.saturating_mul(10);
            self.push(if orig {
                letter.to_ascii_uppercase()
            } else {
                letter
            });
        }
    }

    /// Marks the direction as flipped by the heuristic (`^`), always first.
    pub fn flip(&mut self) {
        if self.len as usize >= HISTORY_MAX {
            return;
        }
        self.buf.copy_within(0..self.len as usize, 1);
        self.buf[0] = b'^';
        self.len += 1;
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl std::fmt::Debug for History {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A finished connection's history letters, kept in place (at most `HISTORY_MAX` ASCII bytes):
/// a `String` here cost an allocation on the tracker's thread and a free on the other one per
/// connection. Reads, compares, prints and serializes as a `str`.
#[derive(Clone, Copy)]
pub struct HistoryText {
    buf: [u8; HISTORY_MAX],
    len: u8,
}

impl HistoryText {
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }
}

impl Default for HistoryText {
    fn default() -> Self {
        HistoryText {
            buf: [0; HISTORY_MAX],
            len: 0,
        }
    }
}

impl From<&History> for HistoryText {
    fn from(h: &History) -> Self {
        HistoryText {
            buf: h.buf,
            len: h.len,
        }
    }
}

/// Its first `HISTORY_MAX` bytes, cut at a character boundary (the tracker writes only ASCII).
impl From<&str> for HistoryText {
    fn from(s: &str) -> Self {
        let mut end = s.len().min(HISTORY_MAX);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        let mut t = HistoryText::default();
        t.buf[..end].copy_from_slice(&s.as_bytes()[..end]);
        t.len = end as u8;
        t
    }
}

impl std::ops::Deref for HistoryText {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl PartialEq for HistoryText {
    fn eq(&self, other: &Self) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for HistoryText {}

/// Ordered as its text (rows sort by it).
impl PartialOrd for HistoryText {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for HistoryText {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.as_str().cmp(other.as_str())
    }
}

impl PartialEq<&str> for HistoryText {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<str> for HistoryText {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl std::fmt::Display for HistoryText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for HistoryText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(self.as_str(), f)
    }
}

impl Serialize for HistoryText {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::EndpointState::*;
    use super::*;

    #[track_caller]
    fn state(os: EndpointState, rs: EndpointState, h: &str) -> &'static str {
        ConnState::compute(os, rs, 0, 0, h).name()
    }

    #[test]
    fn zeek_conn_states() {
        assert_eq!(state(SynSent, Inactive, "S"), "S0");
        assert_eq!(state(Established, Established, "ShAD"), "S1");
        assert_eq!(state(Closed, Closed, "ShADFf"), "SF");
        assert_eq!(state(SynSent, Reset, "Sr"), "REJ");
        assert_eq!(state(Closed, Established, "ShAF"), "S2");
        assert_eq!(state(Established, Closed, "ShAf"), "S3");
        assert_eq!(state(Reset, Established, "ShADR"), "RSTO");
        assert_eq!(state(Established, Reset, "ShADr"), "RSTR");
        assert_eq!(state(Reset, Inactive, "SR"), "RSTOS0");
        assert_eq!(state(Partial, Reset, "Dr"), "RSTRH");
        assert_eq!(state(Closed, Inactive, "SF"), "SH");
        assert_eq!(state(Inactive, Closed, "hf"), "SHR");
        assert_eq!(state(Partial, Partial, "Dd"), "OTH");
        assert_eq!(state(Reset, Inactive, "DR"), "OTH");
    }

    #[test]
    fn handshake_establishes_both_sides() {
        let (mut o, mut r) = (Inactive, Inactive);
        EndpointState::on_send(&mut o, &mut r, true, false, false, false);
        assert_eq!(o, SynSent);
        EndpointState::on_send(&mut r, &mut o, true, true, false, false);
        assert_eq!(
            (o, r),
            (Established, Established),
            "Zeek establishes both on the SYN-ACK"
        );
        EndpointState::on_send(&mut o, &mut r, false, true, false, false);
        assert_eq!((o, r), (Established, Established));
        EndpointState::on_send(&mut o, &mut r, false, true, true, false);
        assert_eq!(o, Closed);
        EndpointState::on_send(&mut r, &mut o, false, true, false, true);
        assert_eq!(r, Reset);
    }

    #[test]
    fn synack_without_syn_then_ack_establishes() {
        let (mut o, mut r) = (Inactive, Inactive);
        EndpointState::on_send(&mut r, &mut o, true, true, false, false);
        assert_eq!((o, r), (Inactive, SynAckSent));
        EndpointState::on_send(&mut o, &mut r, false, true, false, false);
        assert_eq!((o, r), (Established, Established));
    }

    #[test]
    fn rst_after_both_fins_keeps_closed() {
        let (mut o, mut r) = (Closed, Closed);
        EndpointState::on_send(&mut o, &mut r, false, true, false, true);
        assert_eq!(o, Closed);
    }

    #[test]
    fn history_letters_once_and_scaled() {
        let mut h = History::default();
        h.once(true, b's');
        h.once(true, b's');
        h.once(false, b'h');
        for _ in 0..12 {
            h.scaled(true, b't');
        }
        assert_eq!(h.as_str(), "ShTT");
        h.flip();
        assert_eq!(h.as_str(), "^ShTT");
    }
}
