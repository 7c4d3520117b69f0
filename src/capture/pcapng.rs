//! A small pcapng writer: one Section Header Block, one Interface Description Block per link
//! type, and Enhanced Packet Blocks with an `opt_comment` each (Wireshark shows it as
//! `frame.comment`). libpcap cannot write comments, hence this module.
//!
//! Owns: the pcapng block layout (little-endian, nanosecond timestamps through `if_tsresol = 9`).
//! Must not: decide what to write or what the comments say.
//!
//! Invariants: every block's length is a multiple of 4 and written at both ends; the n-th
//! `packet` call writes frame n of the file (1-based, as Wireshark numbers it).

use crate::time::Timestamp;
use std::io::{self, Write};

const SHB: u32 = 0x0a0d_0d0a;
const IDB: u32 = 1;
const EPB: u32 = 6;
const OPT_ENDOFOPT: u16 = 0;
const OPT_COMMENT: u16 = 1;
const SHB_USERAPPL: u16 = 4;
const IF_TSRESOL: u16 = 9;

/// Writes a pcapng file; see the module doc.
pub struct PcapngWriter<W: Write> {
    out: W,
    /// (LINKTYPE, snaplen) of each interface written, in interface-id order.
    ifaces: Vec<(u16, u32)>,
    frames: u64,
    scratch: Vec<u8>,
}

/// Appends an option (code, length, value padded to 4 bytes).
fn option(b: &mut Vec<u8>, code: u16, value: &[u8]) {
    // Option values are at most 65535 bytes; a longer comment is cut (at a char boundary by
    // the caller's choice of text; bytes here).
    let value = &value[..value.len().min(u16::MAX as usize)];
    b.extend(code.to_le_bytes());
    b.extend((value.len() as u16).to_le_bytes());
    b.extend_from_slice(value);
    while b.len() % 4 != 0 {
        b.push(0);
    }
}

impl<W: Write> PcapngWriter<W> {
    /// Starts a file: writes the Section Header Block naming `application`.
    pub fn new(mut out: W, application: &str) -> io::Result<PcapngWriter<W>> {
        let mut body = Vec::new();
        body.extend(0x1a2b_3c4du32.to_le_bytes());
        body.extend(1u16.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend((-1i64).to_le_bytes()); // section length not given
        option(&mut body, SHB_USERAPPL, application.as_bytes());
        option(&mut body, OPT_ENDOFOPT, &[]);
        write_block(&mut out, SHB, &body)?;
        Ok(PcapngWriter {
            out,
            ifaces: Vec::new(),
            frames: 0,
            scratch: Vec::new(),
        })
    }

    /// The interface id for `linktype`, writing its Interface Description Block the first time.
    pub fn interface(&mut self, linktype: u16, snaplen: u32) -> io::Result<u32> {
        if let Some(i) = self.ifaces.iter().position(|(l, _)| *l == linktype) {
            return Ok(i as u32);
        }
        let mut body = Vec::new();
        body.extend(linktype.to_le_bytes());
        body.extend(0u16.to_le_bytes());
        body.extend(snaplen.to_le_bytes());
        option(&mut body, IF_TSRESOL, &[9]); // nanoseconds
        option(&mut body, OPT_ENDOFOPT, &[]);
        write_block(&mut self.out, IDB, &body)?;
        self.ifaces.push((linktype, snaplen));
        Ok(self.ifaces.len() as u32 - 1)
    }

    /// Writes one packet on interface `iface` with an optional comment; returns its frame
    /// number in this file.
    pub fn packet(
        &mut self,
        iface: u32,
        ts: Timestamp,
        wire_len: u32,
        data: &[u8],
        comment: Option<&str>,
    ) -> io::Result<u64> {
        let units = ts.0.max(0) as u64;
        let b = &mut self.scratch;
        b.clear();
        b.extend(iface.to_le_bytes());
        b.extend(((units >> 32) as u32).to_le_bytes());
        b.extend((units as u32).to_le_bytes());
        b.extend((data.len() as u32).to_le_bytes());
        b.extend(wire_len.max(data.len() as u32).to_le_bytes());
        b.extend_from_slice(data);
        while b.len() % 4 != 0 {
            b.push(0);
        }
        if let Some(c) = comment {
            option(b, OPT_COMMENT, c.as_bytes());
            option(b, OPT_ENDOFOPT, &[]);
        }
        write_block(&mut self.out, EPB, &self.scratch)?;
        self.frames += 1;
        Ok(self.frames)
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// Flushes and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.out.flush()?;
        Ok(self.out)
    }
}

fn write_block<W: Write>(out: &mut W, btype: u32, body: &[u8]) -> io::Result<()> {
    debug_assert!(body.len() % 4 == 0);
    let total = (body.len() + 12) as u32;
    out.write_all(&btype.to_le_bytes())?;
    out.write_all(&total.to_le_bytes())?;
    out.write_all(body)?;
    out.write_all(&total.to_le_bytes())
}

#[cfg(test)]
mod tests {
    //! The writer's output read back by our own reader (`stream.rs`), byte layout checked.

    use super::*;
    use crate::capture::stream::RecordReader;
    use crate::time::NANOS_PER_SEC;

    fn written() -> Vec<u8> {
        let mut w = PcapngWriter::new(Vec::new(), "proxyscope test").unwrap();
        let eth = w.interface(1, 262_144).unwrap();
        let sll2 = w.interface(276, 65_535).unwrap();
        assert_eq!((eth, sll2), (0, 1));
        assert_eq!(
            w.interface(1, 262_144).unwrap(),
            0,
            "an interface is written once"
        );
        let t = Timestamp(1_700_000_000 * NANOS_PER_SEC + 123_456_789);
        assert_eq!(
            w.packet(eth, t, 60, b"abcde", Some("frame 7 of a.pcap"))
                .unwrap(),
            1
        );
        assert_eq!(w.packet(sll2, t.add_nanos(1), 4, b"wxyz", None).unwrap(), 2);
        assert_eq!(w.frames(), 2);
        w.finish().unwrap()
    }

    #[test]
    fn blocks_are_aligned_and_lengths_match_at_both_ends() {
        let b = written();
        let mut off = 0;
        let mut types = Vec::new();
        while off < b.len() {
            let t = u32::from_le_bytes(b[off..off + 4].try_into().unwrap());
            let len = u32::from_le_bytes(b[off + 4..off + 8].try_into().unwrap()) as usize;
            assert_eq!(len % 4, 0);
            let trailer = u32::from_le_bytes(b[off + len - 4..off + len].try_into().unwrap());
            assert_eq!(trailer as usize, len);
            types.push(t);
            off += len;
        }
        assert_eq!(off, b.len());
        assert_eq!(types, vec![SHB, IDB, IDB, EPB, EPB]);
    }

    #[test]
    fn read_back_keeps_link_types_timestamps_and_data() {
        let b = written();
        let mut r = RecordReader::new(Box::new(std::io::Cursor::new(b))).unwrap();
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!(p.ts.0, 1_700_000_000 * NANOS_PER_SEC + 123_456_789);
        assert_eq!((p.linktype, p.caplen, p.wire_len), (1, 5, 60));
        assert_eq!(p.data, b"abcde");
        let p = r.next_packet().unwrap().unwrap();
        assert_eq!((p.linktype, p.data), (276, &b"wxyz"[..]));
        assert_eq!(p.ts.0, 1_700_000_000 * NANOS_PER_SEC + 123_456_790);
        assert!(r.next_packet().unwrap().is_none());
    }

    #[test]
    fn comment_is_an_option_of_the_packet_block() {
        let b = written();
        let needle = b"frame 7 of a.pcap";
        let at = b
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("comment written");
        // Option header just before: code 1, length 17.
        assert_eq!(&b[at - 4..at], &[1, 0, 17, 0]);
    }
}
