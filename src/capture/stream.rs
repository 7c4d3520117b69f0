//! A pcap / pcapng reader of our own, over any `Read`: every input is read with it (regular
//! files, standard input, pipes, FIFOs, process substitution, decompressed streams — gzip, zstd,
//! xz), pcapng files whose interfaces have different link types (libpcap refuses those)
//! included.
//!
//! Owns: the two file formats' framing (byte order, timestamp resolution, interfaces), reading
//! strictly forwards (never seeks), and detecting compression by magic bytes. Must not: decode
//! headers or keep per-flow state.
//!
//! Invariants:
//! - Every packet record counts (pcap records; pcapng Enhanced, Simple and obsolete Packet
//!   blocks), in file order, exactly as libpcap and Wireshark number frames.
//! - Timestamps are converted to nanoseconds as libpcap does with nanosecond precision: pcap's
//!   microsecond files are scaled, pcapng uses each interface's `if_tsresol` and `if_tsoffset`.
//! - A record is borrowed from one reused buffer until the next call; memory is bounded by the
//!   largest block (`MAX_BLOCK_BYTES`), never by the stream's length.
//! - A stream that ends in the middle of a record, or a malformed block, stops reading with a
//!   message (`StreamError`); what was read before stays valid.

use crate::time::{Timestamp, NANOS_PER_SEC};
use std::io::{self, Read};

/// Bytes read from the source at a time (and the buffer's initial size), for one input.
pub const READ_CHUNK: usize = 1 << 20;
/// The same with several inputs, each with a buffer of its own: as fast on the benchmark
/// captures (`bench/RESULTS.md`, tenth pass), and 40 merged files then hold 10 MiB, not 40.
pub const READ_CHUNK_SHARED: usize = 256 << 10;
/// The largest pcapng block or pcap record accepted; a larger length is taken as corruption
/// (libpcap's limit for pcapng blocks is 16 MiB).
pub const MAX_BLOCK_BYTES: usize = 16 << 20;

/// Compressions recognised by their magic bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    Gzip,
    Zstd,
    Xz,
}

impl Compression {
    pub fn name(self) -> &'static str {
        match self {
            Compression::Gzip => "gzip",
            Compression::Zstd => "zstd",
            Compression::Xz => "xz",
        }
    }
}

/// What the first bytes of an input say it is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Magic {
    Pcap,
    Pcapng,
    Compressed(Compression),
    /// A known format proxyscope does not read (bzip2, lz4, zip), by name.
    Unsupported(&'static str),
    Unknown,
}

/// Classifies an input by its first bytes (at least 6 are needed for every format).
pub fn sniff(b: &[u8]) -> Magic {
    let le = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()))
    };
    match le(0) {
        Some(0xa1b2_c3d4 | 0xd4c3_b2a1 | 0xa1b2_3c4d | 0x4d3c_b2a1) => return Magic::Pcap,
        Some(0x0a0d_0d0a) => return Magic::Pcapng,
        _ => {}
    }
    if b.starts_with(&[0x1f, 0x8b]) {
        Magic::Compressed(Compression::Gzip)
    } else if b.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        Magic::Compressed(Compression::Zstd)
    } else if b.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
        Magic::Compressed(Compression::Xz)
    } else if b.starts_with(b"BZh") {
        Magic::Unsupported("bzip2")
    } else if b.starts_with(&[0x04, 0x22, 0x4d, 0x18]) {
        Magic::Unsupported("lz4")
    } else if b.starts_with(b"PK\x03\x04") {
        Magic::Unsupported("zip")
    } else {
        Magic::Unknown
    }
}

/// Wraps `src` in the streaming decompressor for `c`.
pub fn decompress(c: Compression, src: Box<dyn Read + Send>) -> Box<dyn Read + Send> {
    let buffered = io::BufReader::with_capacity(1 << 16, src);
    match c {
        // Multi-member: `cat a.gz b.gz` is one valid gzip stream, as gzip -d reads it.
        Compression::Gzip => Box::new(flate2::bufread::MultiGzDecoder::new(buffered)),
        Compression::Xz => Box::new(xz2::bufread::XzDecoder::new_multi_decoder(buffered)),
        Compression::Zstd => Box::new(ZstdFrames {
            src: buffered,
            dec: ruzstd::decoding::FrameDecoder::new(),
            in_frame: false,
        }),
    }
}

/// Every zstd frame of a stream, one after another (the `zstd` tool writes one frame per input,
/// `cat a.zst b.zst` holds two); skippable frames are skipped. Drives ruzstd's `FrameDecoder`
/// as its `StreamingDecoder` does, which reads a single frame only.
struct ZstdFrames<R: io::BufRead> {
    src: R,
    dec: ruzstd::decoding::FrameDecoder,
    in_frame: bool,
}

impl<R: io::BufRead> Read for ZstdFrames<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        use ruzstd::decoding::errors::{FrameDecoderError, ReadFrameHeaderError};
        use ruzstd::decoding::BlockDecodingStrategy;
        let bad = |e: FrameDecoderError| io::Error::new(io::ErrorKind::InvalidData, e.to_string());
        if buf.is_empty() {
            return Ok(0);
        }
        loop {
            if self.in_frame {
                while self.dec.can_collect() < buf.len() && !self.dec.is_finished() {
                    let more = buf.len() - self.dec.can_collect();
                    self.dec
                        .decode_blocks(&mut self.src, BlockDecodingStrategy::UptoBytes(more))
                        .map_err(bad)?;
                }
                let n = self.dec.read(buf)?;
                if n > 0 {
                    return Ok(n);
                }
                if self.dec.is_finished() && self.dec.can_collect() == 0 {
                    self.in_frame = false;
                }
                continue;
            }
            if self.src.fill_buf()?.is_empty() {
                return Ok(0);
            }
            match self.dec.reset(&mut self.src) {
                Ok(()) => self.in_frame = true,
                Err(FrameDecoderError::ReadFrameHeaderError(ReadFrameHeaderError::SkipFrame {
                    length,
                    ..
                })) => {
                    io::copy(&mut (&mut self.src).take(length as u64), &mut io::sink())?;
                }
                Err(e) => return Err(bad(e)),
            }
        }
    }
}

/// One packet record, borrowed from the reader until the next call.
#[derive(Clone, Copy, Debug)]
pub struct RawPacket<'a> {
    pub ts: Timestamp,
    pub caplen: u32,
    pub wire_len: u32,
    /// The record's link type as a LINKTYPE_ value (its interface's, for pcapng).
    pub linktype: i32,
    pub data: &'a [u8],
}

/// One pcapng interface (Interface Description Block).
#[derive(Clone, Copy, Debug)]
struct Iface {
    linktype: i32,
    snaplen: u32,
    /// Timestamp units per second: `10^n` or `2^n` from `if_tsresol` (default 10^6).
    units_per_sec: u64,
    /// `if_tsoffset`: seconds added to every timestamp.
    offset_secs: i64,
}

#[derive(Debug)]
enum Layout {
    Pcap {
        swapped: bool,
        nanos: bool,
        linktype: i32,
        snaplen: u32,
    },
    Pcapng {
        swapped: bool,
        ifaces: Vec<Iface>,
    },
}

/// Why reading stopped before the end (the stream is then finished).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError(pub String);

/// A forward-only pcap / pcapng reader (see the module doc).
pub struct RecordReader {
    src: Box<dyn Read + Send>,
    /// The bytes read from `src` and not yet consumed are `buf[pos..end]`.
    buf: Vec<u8>,
    pos: usize,
    end: usize,
    eof: bool,
    layout: Layout,
}

/// The pcap record header is 16 bytes; a pcapng block header 8 (type, total length).
const PCAP_HDR: usize = 16;

impl RecordReader {
    /// Reads the file header (pcap) or up to the first interface (pcapng). `Err` carries why the
    /// stream is not a capture.
    pub fn new(src: Box<dyn Read + Send>) -> Result<RecordReader, StreamError> {
        RecordReader::with_chunk(src, READ_CHUNK)
    }

    /// `new`, reading `chunk` bytes at a time.
    pub fn with_chunk(
        src: Box<dyn Read + Send>,
        chunk: usize,
    ) -> Result<RecordReader, StreamError> {
        let mut r = RecordReader {
            src,
            buf: vec![0; chunk.max(64)],
            pos: 0,
            end: 0,
            eof: false,
            layout: Layout::Pcapng {
                swapped: false,
                ifaces: Vec::new(),
            },
        };
        let io = |e: io::Error| StreamError(e.to_string());
        if r.fill(24).map_err(io)? < 4 {
            return Err(StreamError("no data (empty input)".into()));
        }
        match sniff(&r.buf[r.pos..r.end]) {
            Magic::Pcap => {
                if r.end - r.pos < 24 {
                    return Err(StreamError("pcap file header cut short".into()));
                }
                let h = &r.buf[r.pos..r.pos + 24];
                let magic = u32::from_le_bytes(h[0..4].try_into().unwrap());
                let swapped = matches!(magic, 0xd4c3_b2a1 | 0x4d3c_b2a1);
                let nanos = matches!(magic, 0xa1b2_3c4d | 0x4d3c_b2a1);
                let u = |i: usize| read_u32(h, i, swapped);
                r.layout = Layout::Pcap {
                    swapped,
                    nanos,
                    snaplen: u(16),
                    // The upper bits carry FCS information (LT_LINKTYPE in libpcap).
                    linktype: (u(20) & 0x03ff_ffff) as i32,
                };
                r.pos += 24;
            }
            Magic::Pcapng => {
                // Read blocks up to the first interface so that the link type is known at open.
                loop {
                    match r.next_block()? {
                        Block::Packet(_) => {
                            return Err(StreamError(
                                "pcapng packet block before any interface description".into(),
                            ))
                        }
                        Block::End => {
                            return Err(StreamError("pcapng file has no interface".into()))
                        }
                        Block::Other => {
                            if let Layout::Pcapng { ifaces, .. } = &r.layout {
                                if !ifaces.is_empty() {
                                    break;
                                }
                            }
                        }
                    }
                }
            }
            Magic::Compressed(c) => {
                return Err(StreamError(format!(
                    "{}-compressed data inside the stream",
                    c.name()
                )))
            }
            Magic::Unsupported(name) => {
                return Err(StreamError(format!(
                    "{} data: decompress it first (proxyscope reads gzip, zstd and xz itself)",
                    name
                )))
            }
            Magic::Unknown => {
                return Err(StreamError(
                    "unknown file format (not pcap, pcapng, gzip, zstd or xz)".into(),
                ))
            }
        }
        Ok(r)
    }

    /// The first interface's (or the pcap file's) link type and snapshot length.
    pub fn first_link(&self) -> (i32, u32) {
        match &self.layout {
            Layout::Pcap {
                linktype, snaplen, ..
            } => (*linktype, *snaplen),
            Layout::Pcapng { ifaces, .. } => {
                ifaces.first().map_or((1, 0), |i| (i.linktype, i.snaplen))
            }
        }
    }

    /// Makes at least `n` bytes available from `pos` unless the source ends first; returns the
    /// bytes available (up to what is buffered, possibly more than `n`).
    fn fill(&mut self, n: usize) -> io::Result<usize> {
        let buf = &mut self.buf;
        if self.end - self.pos >= n {
            return Ok(self.end - self.pos);
        }
        if self.pos > 0 {
            buf.copy_within(self.pos..self.end, 0);
            self.end -= self.pos;
            self.pos = 0;
        }
        if buf.len() < n {
            // The next power of two, but never beyond the largest block and its header.
            buf.resize(
                n.next_power_of_two().min(MAX_BLOCK_BYTES + PCAP_HDR).max(n),
                0,
            );
        }
        while self.end < n && !self.eof {
            match self.src.read(&mut buf[self.end..]) {
                Ok(0) => self.eof = true,
                Ok(k) => self.end += k,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(self.end - self.pos)
    }

    /// The next packet record; `Ok(None)` at a clean end of the stream.
    pub fn next_packet(&mut self) -> Result<Option<RawPacket<'_>>, StreamError> {
        if let Layout::Pcap { .. } = self.layout {
            return self.next_pcap_record();
        }
        loop {
            match self.next_block()? {
                Block::Packet(p) => {
                    // Re-borrow: `next_block` returns offsets, the data lives in `buf`.
                    return Ok(Some(RawPacket {
                        data: &self.buf[p.off..p.off + p.caplen as usize],
                        ts: p.ts,
                        caplen: p.caplen,
                        wire_len: p.wire_len,
                        linktype: p.linktype,
                    }));
                }
                Block::End => return Ok(None),
                Block::Other => {}
            }
        }
    }

    fn next_pcap_record(&mut self) -> Result<Option<RawPacket<'_>>, StreamError> {
        let Layout::Pcap {
            swapped,
            nanos,
            linktype,
            ..
        } = self.layout
        else {
            unreachable!("pcap layout")
        };
        let io = |e: io::Error| StreamError(e.to_string());
        let avail = self.fill(PCAP_HDR).map_err(io)?;
        if avail == 0 {
            return Ok(None);
        }
        if avail < PCAP_HDR {
            return Err(StreamError(format!(
                "record header cut short ({} of {} bytes)",
                avail, PCAP_HDR
            )));
        }
        let h = &self.buf[self.pos..self.pos + PCAP_HDR];
        let secs = read_u32(h, 0, swapped) as i64;
        let frac = read_u32(h, 4, swapped) as i64;
        let caplen = read_u32(h, 8, swapped);
        let wire_len = read_u32(h, 12, swapped);
        if caplen as usize > MAX_BLOCK_BYTES {
            return Err(StreamError(format!(
                "record claims {} captured bytes (corrupt)",
                caplen
            )));
        }
        let need = PCAP_HDR + caplen as usize;
        let avail = self.fill(need).map_err(io)?;
        if avail < need {
            return Err(StreamError(format!(
                "record cut short ({} of {} bytes)",
                avail - PCAP_HDR,
                caplen
            )));
        }
        let off = self.pos + PCAP_HDR;
        self.pos += need;
        let nanos = if nanos { frac } else { frac * 1000 };
        Ok(Some(RawPacket {
            ts: Timestamp::from_parts(secs, nanos),
            caplen,
            wire_len,
            linktype,
            data: &self.buf[off..off + caplen as usize],
        }))
    }

    /// Reads one pcapng block. Section and interface blocks update the layout.
    fn next_block(&mut self) -> Result<Block, StreamError> {
        let io = |e: io::Error| StreamError(e.to_string());
        let avail = self.fill(12).map_err(io)?;
        if avail == 0 {
            return Ok(Block::End);
        }
        if avail < 12 {
            return Err(StreamError(format!(
                "block header cut short ({} of 12 bytes)",
                avail
            )));
        }
        let btype_raw = u32::from_le_bytes(self.buf[self.pos..self.pos + 4].try_into().unwrap());
        if btype_raw == 0x0a0d_0d0a {
            // Section Header Block: its byte-order magic sets the order of the whole section.
            let bom = u32::from_le_bytes(self.buf[self.pos + 8..self.pos + 12].try_into().unwrap());
            let swapped = match bom {
                0x1a2b_3c4d => false,
                0x4d3c_2b1a => true,
                _ => {
                    return Err(StreamError(format!(
                        "section header with a bad byte-order magic {:#010x}",
                        bom
                    )))
                }
            };
            self.layout = Layout::Pcapng {
                swapped,
                ifaces: Vec::new(),
            };
        }
        let Layout::Pcapng { swapped, .. } = self.layout else {
            unreachable!("pcapng layout")
        };
        let h = &self.buf[self.pos..self.pos + 8];
        let btype = read_u32(h, 0, swapped);
        let total = read_u32(h, 4, swapped) as usize;
        if total < 12 || total % 4 != 0 || total > MAX_BLOCK_BYTES {
            return Err(StreamError(format!(
                "block of type {:#x} has a bad length {}",
                btype, total
            )));
        }
        let avail = self.fill(total).map_err(io)?;
        if avail < total {
            return Err(StreamError(format!(
                "block cut short ({} of {} bytes)",
                avail, total
            )));
        }
        let start = self.pos;
        self.pos += total;
        let body = start + 8..start + total - 4;
        let b = &self.buf[body.clone()];
        let u = |i: usize| -> Result<u32, StreamError> {
            b.get(i..i + 4)
                .map(|s| read_u32(s, 0, swapped))
                .ok_or_else(|| StreamError(format!("block of type {:#x} too short", btype)))
        };
        let Layout::Pcapng { ifaces, .. } = &mut self.layout else {
            unreachable!("pcapng layout")
        };
        match btype {
            // Interface Description Block.
            1 => {
                if b.len() < 8 {
                    return Err(StreamError("interface description block too short".into()));
                }
                let linktype = read_u16(b, 0, swapped) as i32;
                let snaplen = u(4)?;
                let mut iface = Iface {
                    linktype,
                    snaplen,
                    units_per_sec: 1_000_000,
                    offset_secs: 0,
                };
                for (code, val) in Options::new(&b[8..], swapped) {
                    match code {
                        // if_tsresol: 10^-n, or 2^-n when the top bit is set.
                        9 if !val.is_empty() => {
                            let v = val[0];
                            let exp = (v & 0x7f) as u32;
                            iface.units_per_sec = if v & 0x80 != 0 {
                                if exp > 63 {
                                    return Err(StreamError(format!("if_tsresol {:#x}", v)));
                                }
                                1u64 << exp
                            } else {
                                if exp > 19 {
                                    return Err(StreamError(format!("if_tsresol {:#x}", v)));
                                }
                                10u64.pow(exp)
                            };
                        }
                        // if_tsoffset: seconds.
                        14 if val.len() >= 8 => {
                            let raw: [u8; 8] = val[..8].try_into().unwrap();
                            iface.offset_secs = if swapped {
                                i64::from_be_bytes(raw)
                            } else {
                                i64::from_le_bytes(raw)
                            };
                        }
                        _ => {}
                    }
                }
                ifaces.push(iface);
                Ok(Block::Other)
            }
            // Enhanced Packet Block.
            6 => {
                let id = u(0)? as usize;
                let iface = *ifaces
                    .get(id)
                    .ok_or_else(|| StreamError(format!("packet on undeclared interface {}", id)))?;
                let (hi, lo, caplen, wire_len) = (u(4)?, u(8)?, u(12)?, u(16)?);
                if 20 + caplen as usize > b.len() {
                    return Err(StreamError(format!(
                        "enhanced packet block: {} captured bytes do not fit its length",
                        caplen
                    )));
                }
                Ok(Block::Packet(PacketAt {
                    ts: ts_from_units(((hi as u64) << 32) | lo as u64, &iface),
                    caplen,
                    wire_len,
                    linktype: iface.linktype,
                    off: body.start + 20,
                }))
            }
            // Simple Packet Block: interface 0, no timestamp, caplen from the block length.
            3 => {
                let iface = *ifaces
                    .first()
                    .ok_or_else(|| StreamError("simple packet block without interface".into()))?;
                let wire_len = u(0)?;
                let mut caplen = wire_len.min((b.len() - 4) as u32);
                if iface.snaplen > 0 {
                    caplen = caplen.min(iface.snaplen);
                }
                Ok(Block::Packet(PacketAt {
                    ts: Timestamp(0),
                    caplen,
                    wire_len,
                    linktype: iface.linktype,
                    off: body.start + 4,
                }))
            }
            // Obsolete Packet Block.
            2 => {
                let id = read_u16(b, 0, swapped) as usize;
                let iface = *ifaces
                    .get(id)
                    .ok_or_else(|| StreamError(format!("packet on undeclared interface {}", id)))?;
                let (hi, lo, caplen, wire_len) = (u(4)?, u(8)?, u(12)?, u(16)?);
                if 20 + caplen as usize > b.len() {
                    return Err(StreamError(format!(
                        "packet block: {} captured bytes do not fit its length",
                        caplen
                    )));
                }
                Ok(Block::Packet(PacketAt {
                    ts: ts_from_units(((hi as u64) << 32) | lo as u64, &iface),
                    caplen,
                    wire_len,
                    linktype: iface.linktype,
                    off: body.start + 20,
                }))
            }
            _ => Ok(Block::Other),
        }
    }
}

enum Block {
    Packet(PacketAt),
    Other,
    End,
}

/// A packet's place in `buf` (offsets, so that `next_block` does not hold a borrow).
struct PacketAt {
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    linktype: i32,
    off: usize,
}

fn ts_from_units(v: u64, iface: &Iface) -> Timestamp {
    let units = iface.units_per_sec.max(1);
    let secs = (v / units) as i64;
    let frac = ((v % units) as u128 * NANOS_PER_SEC as u128 / units as u128) as i64;
    Timestamp::from_parts(secs.saturating_add(iface.offset_secs), frac)
}

fn read_u32(b: &[u8], i: usize, swapped: bool) -> u32 {
    let raw: [u8; 4] = b[i..i + 4].try_into().unwrap();
    // `swapped` means the file's order differs from little-endian *as written by the magic we
    // compared in little-endian*: a little-endian magic read as such is not swapped.
    if swapped {
        u32::from_be_bytes(raw)
    } else {
        u32::from_le_bytes(raw)
    }
}

fn read_u16(b: &[u8], i: usize, swapped: bool) -> u16 {
    let raw: [u8; 2] = b[i..i + 2].try_into().unwrap();
    if swapped {
        u16::from_be_bytes(raw)
    } else {
        u16::from_le_bytes(raw)
    }
}

/// pcapng options: (code, value) pairs up to `opt_endofopt` or the end of the block.
struct Options<'a> {
    b: &'a [u8],
    swapped: bool,
}

impl<'a> Options<'a> {
    fn new(b: &'a [u8], swapped: bool) -> Options<'a> {
        Options { b, swapped }
    }
}

impl<'a> Iterator for Options<'a> {
    type Item = (u16, &'a [u8]);
    fn next(&mut self) -> Option<(u16, &'a [u8])> {
        if self.b.len() < 4 {
            return None;
        }
        let code = read_u16(self.b, 0, self.swapped);
        let len = read_u16(self.b, 2, self.swapped) as usize;
        if code == 0 || 4 + len > self.b.len() {
            return None;
        }
        let val = &self.b[4..4 + len];
        let padded = (4 + len + 3) & !3;
        self.b = &self.b[padded.min(self.b.len())..];
        Some((code, val))
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built pcap and pcapng byte streams, read in one piece and one byte at a time.

    use super::*;

    /// A reader that returns at most one byte per call (the worst case for buffering).
    struct Trickle(io::Cursor<Vec<u8>>);
    impl Read for Trickle {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = buf.len().min(1);
            self.0.read(&mut buf[..n])
        }
    }

    fn pcap(magic: u32, big_endian: bool, linktype: u32, recs: &[(u32, u32, &[u8])]) -> Vec<u8> {
        let w32 = |v: u32| {
            if big_endian {
                v.to_be_bytes()
            } else {
                v.to_le_bytes()
            }
        };
        let mut b = Vec::new();
        b.extend(w32(magic));
        b.extend(if big_endian {
            [0, 2, 0, 4]
        } else {
            [2, 0, 4, 0]
        });
        b.extend(w32(0));
        b.extend(w32(0));
        b.extend(w32(65535));
        b.extend(w32(linktype));
        for (s, f, d) in recs {
            b.extend(w32(*s));
            b.extend(w32(*f));
            b.extend(w32(d.len() as u32));
            b.extend(w32(d.len() as u32 + 10));
            b.extend_from_slice(d);
        }
        b
    }

    fn block(btype: u32, body: &[u8]) -> Vec<u8> {
        let mut body = body.to_vec();
        while body.len() % 4 != 0 {
            body.push(0);
        }
        let total = (body.len() + 12) as u32;
        let mut b = Vec::new();
        b.extend(btype.to_le_bytes());
        b.extend(total.to_le_bytes());
        b.extend(body);
        b.extend(total.to_le_bytes());
        b
    }

    fn shb() -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(0x1a2b_3c4du32.to_le_bytes());
        body.extend([1, 0, 0, 0]);
        body.extend((-1i64).to_le_bytes());
        block(0x0a0d_0d0a, &body)
    }

    fn idb(linktype: u16, tsresol: Option<u8>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(linktype.to_le_bytes());
        body.extend([0, 0]);
        body.extend(262_144u32.to_le_bytes());
        if let Some(r) = tsresol {
            body.extend(9u16.to_le_bytes());
            body.extend(1u16.to_le_bytes());
            body.extend([r, 0, 0, 0]);
            body.extend([0, 0, 0, 0]);
        }
        block(1, &body)
    }

    fn epb(iface: u32, ts: u64, data: &[u8]) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend(iface.to_le_bytes());
        body.extend(((ts >> 32) as u32).to_le_bytes());
        body.extend((ts as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend((data.len() as u32).to_le_bytes());
        body.extend_from_slice(data);
        block(6, &body)
    }

    type Records = Vec<(i64, i32, Vec<u8>)>;

    fn read_all(bytes: Vec<u8>, trickle: bool) -> (Records, Option<StreamError>) {
        let src: Box<dyn Read + Send> = if trickle {
            Box::new(Trickle(io::Cursor::new(bytes)))
        } else {
            Box::new(io::Cursor::new(bytes))
        };
        let mut r = RecordReader::new(src).expect("header");
        let mut out = Vec::new();
        loop {
            match r.next_packet() {
                Ok(Some(p)) => out.push((p.ts.0, p.linktype, p.data.to_vec())),
                Ok(None) => return (out, None),
                Err(e) => return (out, Some(e)),
            }
        }
    }

    #[test]
    fn pcap_microseconds_both_byte_orders() {
        for be in [false, true] {
            let b = pcap(0xa1b2_c3d4, be, 1, &[(10, 5, b"abc"), (11, 999_999, b"de")]);
            for trickle in [false, true] {
                let (recs, err) = read_all(b.clone(), trickle);
                assert_eq!(err, None);
                assert_eq!(recs.len(), 2);
                assert_eq!(recs[0], (10 * NANOS_PER_SEC + 5_000, 1, b"abc".to_vec()));
                assert_eq!(recs[1].0, 11 * NANOS_PER_SEC + 999_999_000);
            }
        }
    }

    #[test]
    fn pcap_nanoseconds_and_fcs_bits_masked() {
        let b = pcap(0xa1b2_3c4d, false, 0x1000_0000 | 113, &[(1, 7, b"x")]);
        let (recs, _) = read_all(b, false);
        assert_eq!(recs[0].0, NANOS_PER_SEC + 7);
        assert_eq!(recs[0].1, 113);
    }

    #[test]
    fn pcap_cut_in_a_record_stops_with_a_message() {
        let mut b = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"abcd"), (2, 0, b"efgh")]);
        b.truncate(b.len() - 2);
        let (recs, err) = read_all(b, true);
        assert_eq!(recs.len(), 1);
        assert_eq!(
            err,
            Some(StreamError("record cut short (2 of 4 bytes)".into()))
        );
    }

    #[test]
    fn pcapng_interfaces_keep_their_own_link_type_and_resolution() {
        let mut b = shb();
        b.extend(idb(1, None)); // Ethernet, microseconds
        b.extend(idb(276, Some(9))); // SLL2, nanoseconds
        b.extend(epb(0, 1_500_000, b"eth"));
        b.extend(epb(1, 2_000_000_007, b"sll2"));
        b.extend(block(5, &[0; 8])); // an Interface Statistics Block: skipped, not a frame
        b.extend(epb(0, 3_000_000, b"eth2"));
        for trickle in [false, true] {
            let (recs, err) = read_all(b.clone(), trickle);
            assert_eq!(err, None);
            assert_eq!(
                recs,
                vec![
                    (1_500_000_000, 1, b"eth".to_vec()),
                    (2_000_000_007, 276, b"sll2".to_vec()),
                    (3_000_000_000, 1, b"eth2".to_vec()),
                ]
            );
        }
    }

    #[test]
    fn pcapng_binary_resolution_and_new_section_resets_interfaces() {
        let mut b = shb();
        b.extend(idb(101, Some(0x80 | 10))); // 2^-10 s
        b.extend(epb(0, 1024 + 512, b"a"));
        b.extend(shb());
        b.extend(idb(1, None));
        b.extend(epb(0, 1, b"b"));
        let (recs, err) = read_all(b, false);
        assert_eq!(err, None);
        assert_eq!(recs[0].0, NANOS_PER_SEC + 500_000_000);
        assert_eq!(recs[0].1, 101);
        assert_eq!((recs[1].0, recs[1].1), (1_000, 1));
    }

    #[test]
    fn pcapng_packet_on_unknown_interface_is_an_error() {
        let mut b = shb();
        b.extend(idb(1, None));
        b.extend(epb(3, 0, b"x"));
        let (recs, err) = read_all(b, false);
        assert!(recs.is_empty());
        assert_eq!(
            err,
            Some(StreamError("packet on undeclared interface 3".into()))
        );
    }

    #[test]
    fn sniffs_formats_by_magic() {
        assert_eq!(sniff(&[0xd4, 0xc3, 0xb2, 0xa1, 2, 0]), Magic::Pcap);
        assert_eq!(sniff(&[0x0a, 0x0d, 0x0d, 0x0a, 0, 0]), Magic::Pcapng);
        assert_eq!(
            sniff(&[0x1f, 0x8b, 8, 0, 0, 0]),
            Magic::Compressed(Compression::Gzip)
        );
        assert_eq!(
            sniff(&[0x28, 0xb5, 0x2f, 0xfd, 0, 0]),
            Magic::Compressed(Compression::Zstd)
        );
        assert_eq!(
            sniff(&[0xfd, b'7', b'z', b'X', b'Z', 0]),
            Magic::Compressed(Compression::Xz)
        );
        assert_eq!(sniff(b"BZh91AY"), Magic::Unsupported("bzip2"));
        assert_eq!(sniff(b"hello world"), Magic::Unknown);
        assert!(RecordReader::new(Box::new(io::Cursor::new(b"hello world".to_vec()))).is_err());
    }

    #[test]
    fn gzip_stream_is_read_through_the_decompressor() {
        use std::io::Write;
        let raw = pcap(0xa1b2_c3d4, false, 1, &[(1, 0, b"abc")]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert_eq!(sniff(&gz), Magic::Compressed(Compression::Gzip));
        let src = decompress(Compression::Gzip, Box::new(io::Cursor::new(gz)));
        let mut r = RecordReader::new(src).unwrap();
        assert_eq!(r.next_packet().unwrap().unwrap().data, b"abc");
        assert!(r.next_packet().unwrap().is_none());
    }
}
