//! Capture sources: saved files (pcap and pcapng, through libpcap) and live interfaces.
//!
//! Owns: the `pcap` crate, file opening, link-type checks, the BPF filter, merging several files
//! in timestamp order, frame numbering, libpcap's drop counters. Must not: decode headers or keep
//! per-flow state.
//!
//! Invariants:
//! - `Frame::number` is 1-based and counts *every* record of its file, including records the BPF
//!   filter rejects, so it equals Wireshark's `frame.number` for that file. (This is why the filter
//!   is compiled and run here with `pcap_offline_filter` instead of being installed on the handle:
//!   libpcap would silently skip records and renumber.)
//! - A frame's `data` is borrowed until the next frame is produced; nothing is copied for a single
//!   file. With several files, each file's pending record is copied into one reused buffer.
//! - A file that ends in the middle of a record is read up to that point and reported as a
//!   `FileInfo::stopped_early` warning, never a panic.

pub mod live;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use pcap::{Capture, Offline, Precision};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;

/// Link-layer framings proxyscope decodes (a closed set; anything else is a clear error).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// DLT_EN10MB (1), with optional 802.1Q / 802.1ad (QinQ) tags.
    Ethernet,
    /// DLT_LINUX_SLL (113), `tcpdump -i any` before libpcap 1.10.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276), `tcpdump -i any` with libpcap >= 1.10.
    LinuxSll2,
    /// DLT_RAW (12 / 14 / LINKTYPE_RAW 101): the frame starts with an IPv4 or IPv6 header.
    RawIp,
    /// DLT_IPV4 (228).
    Ipv4,
    /// DLT_IPV6 (229).
    Ipv6,
    /// DLT_NULL (0): 4-byte address family in the *capturing host's* byte order.
    Null,
    /// DLT_LOOP (108): 4-byte address family in network byte order.
    Loop,
}

impl LinkType {
    pub fn from_dlt(dlt: i32) -> Option<LinkType> {
        Some(match dlt {
            1 => LinkType::Ethernet,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            12 | 14 | 101 => LinkType::RawIp,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            _ => return None,
        })
    }

    /// The DLT value libpcap uses on Linux (for writing evidence captures).
    pub fn dlt(self) -> i32 {
        match self {
            LinkType::Ethernet => 1,
            LinkType::LinuxSll => 113,
            LinkType::LinuxSll2 => 276,
            LinkType::RawIp => 12,
            LinkType::Ipv4 => 228,
            LinkType::Ipv6 => 229,
            LinkType::Null => 0,
            LinkType::Loop => 108,
        }
    }

    /// Short stable name used in reports (`ethernet`, `linux-sll2`, ...).
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "ethernet",
            LinkType::LinuxSll => "linux-sll",
            LinkType::LinuxSll2 => "linux-sll2",
            LinkType::RawIp => "raw-ip",
            LinkType::Ipv4 => "raw-ipv4",
            LinkType::Ipv6 => "raw-ipv6",
            LinkType::Null => "bsd-null",
            LinkType::Loop => "bsd-loop",
        }
    }
}

/// One captured record, borrowed from the capture source until the next one is produced.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    /// Index of the file in the order given on the command line (0 for a single file or live).
    pub file: u16,
    /// 1-based record number within its file: Wireshark's `frame.number`.
    pub number: u64,
    pub ts: Timestamp,
    /// Bytes captured (`caplen`); `data.len() == caplen`.
    pub caplen: u32,
    /// Bytes on the wire (`len`); larger than `caplen` when the snaplen truncated the frame.
    pub wire_len: u32,
    pub link: LinkType,
    pub data: &'a [u8],
}

/// Frames copied out of the capture source so that another thread can process them: the bytes
/// of every frame back to back in one buffer, and each frame's header. Reused: `clear` keeps the
/// allocations, so a steady stream of batches does not allocate.
#[derive(Debug, Default)]
pub struct FrameBatch {
    data: Vec<u8>,
    frames: Vec<BatchFrame>,
}

#[derive(Clone, Copy, Debug)]
struct BatchFrame {
    file: u16,
    number: u64,
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    link: LinkType,
    off: usize,
    len: usize,
}

impl FrameBatch {
    pub fn with_capacity(bytes: usize, frames: usize) -> FrameBatch {
        FrameBatch {
            data: Vec::with_capacity(bytes),
            frames: Vec::with_capacity(frames),
        }
    }

    /// Copies `f` into the batch.
    pub fn push(&mut self, f: &Frame<'_>) {
        let off = self.data.len();
        self.data.extend_from_slice(f.data);
        self.frames.push(BatchFrame {
            file: f.file,
            number: f.number,
            ts: f.ts,
            caplen: f.caplen,
            wire_len: f.wire_len,
            link: f.link,
            off,
            len: f.data.len(),
        });
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Bytes of frame data held.
    pub fn bytes(&self) -> usize {
        self.data.len()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    /// The `i`-th frame, borrowed from the batch.
    pub fn frame(&self, i: usize) -> Frame<'_> {
        let b = self.frames[i];
        Frame {
            file: b.file,
            number: b.number,
            ts: b.ts,
            caplen: b.caplen,
            wire_len: b.wire_len,
            link: b.link,
            data: &self.data[b.off..b.off + b.len],
        }
    }
}

/// What is known about one input file after reading it.
#[derive(Clone, Debug, Default)]
pub struct FileInfo {
    pub path: PathBuf,
    pub link: Option<LinkType>,
    /// The link type as libpcap reported it (kept when writing evidence captures).
    pub dlt: i32,
    pub snaplen: u32,
    /// Records read (including those the filter rejected).
    pub frames: u64,
    /// Records that passed the filter and were analysed.
    pub frames_matched: u64,
    /// Records with `caplen < len` (snaplen truncation).
    pub frames_truncated: u64,
    /// Shortest and longest captured length of those truncated frames: the real cut, which
    /// differs from `snaplen` when the file was cut again after capture (`editcap -s`).
    pub cut_range: Option<(u32, u32)>,
    pub first_ts: Option<Timestamp>,
    pub last_ts: Option<Timestamp>,
    /// Set when reading stopped before the end of the file (truncated/corrupt record): libpcap's
    /// message and the last good frame number.
    pub stopped_early: Option<String>,
    /// With several files: this file's clock minus the first file's, estimated from packets seen
    /// in both, and how many matched; timestamps are corrected by it while merging.
    pub clock_offset: Option<(i64, u32)>,
}

/// `range` widened to include `len` (the cut lengths of truncated frames).
pub fn widen(range: Option<(u32, u32)>, len: u32) -> Option<(u32, u32)> {
    Some(range.map_or((len, len), |(lo, hi)| (lo.min(len), hi.max(len))))
}

/// Frames read from the start of each file to estimate clock offsets between vantage points.
pub const OFFSET_SAMPLE_FRAMES: usize = 20_000;
/// Packets two files must share before their clock offset is trusted.
pub const MIN_OFFSET_MATCHES: usize = 3;

/// Size of the stdio buffer given to libpcap's file reader (the default is 4 KiB; see
/// `docs/architecture.md`, "Reading files fast").
const FILE_BUFFER_BYTES: usize = 1 << 20;

extern "C" {
    fn pcap_fopen_offline_with_tstamp_precision(
        fp: *mut libc::FILE,
        precision: libc::c_uint,
        errbuf: *mut libc::c_char,
    ) -> *mut libc::c_void;
}

/// A page-aligned heap buffer handed to `setvbuf`; freed only after the `FILE` is closed.
struct AlignedBuf(*mut libc::c_void);

impl AlignedBuf {
    fn new(size: usize) -> Option<AlignedBuf> {
        let mut p: *mut libc::c_void = std::ptr::null_mut();
        // SAFETY: posix_memalign writes a valid pointer on success (return 0).
        let rc = unsafe { libc::posix_memalign(&mut p, 4096, size) };
        (rc == 0 && !p.is_null()).then_some(AlignedBuf(p))
    }
}

// SAFETY: the buffer is plain memory owned by one `CaptureFile`; moving it to another thread with
// the `FILE` that uses it (the reader thread) is sound, nothing else aliases it.
unsafe impl Send for AlignedBuf {}

impl Drop for AlignedBuf {
    fn drop(&mut self) {
        // SAFETY: allocated by posix_memalign, freed once.
        unsafe { libc::free(self.0) }
    }
}

/// An open capture file. Field order matters: `cap` (which closes the FILE) drops before `_buf`.
pub struct CaptureFile {
    cap: Capture<Offline>,
    _buf: Option<AlignedBuf>,
    filter: Option<pcap::BpfProgram>,
    index: u16,
    info: FileInfo,
    done: bool,
}

fn cstr_err(buf: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Opens `path` with a 1 MiB page-aligned stdio buffer; falls back to `pcap_open_offline`.
fn open_offline(path: &Path) -> Result<(Capture<Offline>, Option<AlignedBuf>)> {
    use std::ffi::CString;
    let cpath = CString::new(path.as_os_str().as_encoded_bytes()).map_err(|_| Error::Open {
        path: path.to_path_buf(),
        reason: "path contains a NUL byte".into(),
    })?;
    // SAFETY: plain libc calls on a valid C string; every pointer is checked before use, and on
    // success libpcap owns the FILE (pcap_close will fclose it).
    unsafe {
        let fp = libc::fopen(cpath.as_ptr(), c"rb".as_ptr());
        if fp.is_null() {
            let e = std::io::Error::last_os_error();
            return Err(Error::Open {
                path: path.to_path_buf(),
                reason: e.to_string(),
            });
        }
        let buf = AlignedBuf::new(FILE_BUFFER_BYTES);
        if let Some(b) = &buf {
            libc::setvbuf(
                fp,
                b.0 as *mut libc::c_char,
                libc::_IOFBF,
                FILE_BUFFER_BYTES,
            );
        }
        let mut errbuf = [0 as libc::c_char; 256];
        // 1 = PCAP_TSTAMP_PRECISION_NANO: keep nanosecond timestamps as they are in the file.
        let p = pcap_fopen_offline_with_tstamp_precision(fp, 1, errbuf.as_mut_ptr());
        match NonNull::new(p) {
            Some(nn) => Ok((Capture::<Offline>::from(nn.cast()), buf)),
            None => {
                libc::fclose(fp);
                Err(Error::NotACapture {
                    path: path.to_path_buf(),
                    reason: cstr_err(&errbuf),
                })
            }
        }
    }
}

impl CaptureFile {
    pub fn open(path: &Path, index: u16, filter: Option<&str>) -> Result<CaptureFile> {
        let meta = std::fs::metadata(path).map_err(|e| Error::Open {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
        if meta.is_dir() {
            return Err(Error::Open {
                path: path.to_path_buf(),
                reason: "is a directory".into(),
            });
        }
        if meta.len() == 0 {
            return Err(Error::NoPackets {
                path: path.to_path_buf(),
                reason: "empty file (0 bytes), not a capture".into(),
            });
        }
        let (cap, buf) = open_offline(path).or_else(|e| match e {
            Error::NotACapture { .. } => Err(e),
            _ => Capture::from_file_with_precision(path, Precision::Nano)
                .map(|c| (c, None))
                .map_err(|e| Error::NotACapture {
                    path: path.to_path_buf(),
                    reason: e.to_string(),
                }),
        })?;
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| Error::UnsupportedLinkType {
            path: path.to_path_buf(),
            dlt: dlt.0,
            name: dlt.get_name().unwrap_or_else(|_| "unknown".into()),
        })?;
        let filter = match filter {
            Some(expr) => Some(cap.compile(expr, true).map_err(|e| Error::Filter {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?),
            None => None,
        };
        // SAFETY: the handle is valid for the lifetime of `cap`.
        let snaplen = unsafe { pcap_snapshot(cap.as_ptr() as *mut libc::c_void) }.max(0) as u32;
        Ok(CaptureFile {
            cap,
            _buf: buf,
            filter,
            index,
            info: FileInfo {
                path: path.to_path_buf(),
                link: Some(link),
                dlt: dlt.0,
                snaplen,
                ..Default::default()
            },
            done: false,
        })
    }

    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Reads the next record that passes the filter; `None` at the end of the file (or where a
    /// truncated/corrupt record stopped it, recorded in `stopped_early`).
    fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.done {
            return None;
        }
        let link = self.info.link.unwrap_or(LinkType::Ethernet);
        let cap: *mut Capture<Offline> = &mut self.cap;
        loop {
            // SAFETY: `cap` points at `self.cap`, alive for `'_`. Each packet borrowed from it is
            // either returned (ending the loop) or dropped before the next call, so borrows never
            // overlap; the raw pointer only sidesteps the borrow checker's loop limitation.
            match unsafe { (*cap).next_packet() } {
                Ok(pkt) => {
                    self.info.frames += 1;
                    let number = self.info.frames;
                    if let Some(f) = &self.filter {
                        if !f.filter(pkt.data) {
                            continue;
                        }
                    }
                    let h = pkt.header;
                    #[allow(clippy::unnecessary_cast)]
                    // time_t / suseconds_t are not i64 everywhere
                    let ts = Timestamp::from_parts(h.ts.tv_sec as i64, h.ts.tv_usec as i64)
                        .add_nanos(-self.info.clock_offset.map_or(0, |o| o.0));
                    let info = &mut self.info;
                    info.frames_matched += 1;
                    if h.caplen < h.len {
                        info.frames_truncated += 1;
                        info.cut_range = widen(info.cut_range, h.caplen);
                    }
                    if info.first_ts.is_none() {
                        info.first_ts = Some(ts);
                    }
                    info.last_ts = Some(ts);
                    return Some(Frame {
                        file: self.index,
                        number,
                        ts,
                        caplen: h.caplen,
                        wire_len: h.len,
                        link,
                        data: pkt.data,
                    });
                }
                Err(pcap::Error::NoMorePackets) => {
                    self.done = true;
                    return None;
                }
                Err(e) => {
                    self.done = true;
                    self.info.stopped_early = Some(format!(
                        "reading stopped after frame {}: {}",
                        self.info.frames, e
                    ));
                    return None;
                }
            }
        }
    }
}

extern "C" {
    fn pcap_snapshot(p: *mut libc::c_void) -> libc::c_int;
    fn pcap_open_dead_with_tstamp_precision(
        linktype: libc::c_int,
        snaplen: libc::c_int,
        precision: libc::c_uint,
    ) -> *mut libc::c_void;
}

/// Several capture files read as one stream of frames in timestamp order (ties keep the
/// command-line order). Frame numbers stay per file.
pub struct OfflineSet {
    files: Vec<CaptureFile>,
}

/// A copied record waiting in the merge (only used with several files).
struct Pending {
    number: u64,
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    data: Vec<u8>,
    valid: bool,
}

impl OfflineSet {
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<OfflineSet> {
        if paths.len() > u16::MAX as usize {
            return Err(Error::Usage("too many capture files".into()));
        }
        let mut files = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            files.push(CaptureFile::open(p, i as u16, filter)?);
        }
        Ok(OfflineSet { files })
    }

    /// Estimates each file's clock offset against the first from packets present in both (the
    /// same TCP segment captured at two vantage points: addresses, ports, seq, ack, flags, IP id,
    /// length — not TTL or link headers), using each file's first `OFFSET_SAMPLE_FRAMES` frames,
    /// and corrects timestamps by the median. Files that share no packet keep their clock.
    pub fn estimate_offsets(
        paths: &[PathBuf],
        filter: Option<&str>,
    ) -> Result<Vec<Option<(i64, u32)>>> {
        use crate::decode::{decode, Decoded};
        type Key = (
            std::net::IpAddr,
            std::net::IpAddr,
            u16,
            u16,
            u32,
            u32,
            u8,
            Option<u16>,
            u32,
        );
        let mut maps: Vec<rustc_hash::FxHashMap<Key, Timestamp>> = Vec::new();
        for (i, p) in paths.iter().enumerate() {
            let mut f = CaptureFile::open(p, i as u16, filter)?;
            let mut m = rustc_hash::FxHashMap::default();
            let mut n = 0;
            while let Some(fr) = f.next_frame() {
                n += 1;
                if n > OFFSET_SAMPLE_FRAMES {
                    break;
                }
                if let Decoded::Tcp(s) = decode(fr.link, fr.data) {
                    m.entry((
                        s.src,
                        s.dst,
                        s.sport,
                        s.dport,
                        s.seq,
                        s.ack,
                        s.flags,
                        s.ip_id,
                        s.payload_len,
                    ))
                    .or_insert(fr.ts);
                }
            }
            maps.push(m);
        }
        let mut out = vec![None; paths.len()];
        for i in 1..maps.len() {
            let mut d: Vec<i64> = maps[i]
                .iter()
                .filter_map(|(k, t)| maps[0].get(k).map(|t0| t.nanos_since(*t0)))
                .collect();
            if d.len() >= MIN_OFFSET_MATCHES {
                d.sort_unstable();
                out[i] = Some((d[d.len() / 2], d.len() as u32));
            }
        }
        Ok(out)
    }

    /// Applies clock offsets (from `estimate_offsets`) before reading.
    pub fn set_offsets(&mut self, offsets: &[Option<(i64, u32)>]) {
        for (f, o) in self.files.iter_mut().zip(offsets) {
            f.info.clock_offset = *o;
        }
    }

    pub fn infos(&self) -> Vec<FileInfo> {
        self.files.iter().map(|f| f.info.clone()).collect()
    }

    /// Pushes every frame, in timestamp order, into `sink`.
    pub fn run(&mut self, mut sink: impl FnMut(&Frame<'_>)) {
        if self.files.len() == 1 {
            let f = &mut self.files[0];
            while let Some(frame) = f.next_frame() {
                sink(&frame);
            }
            return;
        }
        let mut pend: Vec<Pending> = (0..self.files.len())
            .map(|_| Pending {
                number: 0,
                ts: Timestamp(0),
                caplen: 0,
                wire_len: 0,
                data: Vec::new(),
                valid: false,
            })
            .collect();
        for (i, f) in self.files.iter_mut().enumerate() {
            refill(f, &mut pend[i]);
        }
        loop {
            let mut best: Option<usize> = None;
            for (i, p) in pend.iter().enumerate() {
                if p.valid && best.is_none_or(|b| p.ts < pend[b].ts) {
                    best = Some(i);
                }
            }
            let Some(i) = best else { break };
            {
                let p = &pend[i];
                let frame = Frame {
                    file: i as u16,
                    number: p.number,
                    ts: p.ts,
                    caplen: p.caplen,
                    wire_len: p.wire_len,
                    link: self.files[i].info.link.unwrap_or(LinkType::Ethernet),
                    data: &p.data,
                };
                sink(&frame);
            }
            refill(&mut self.files[i], &mut pend[i]);
        }
    }
}

fn refill(f: &mut CaptureFile, p: &mut Pending) {
    match f.next_frame() {
        Some(fr) => {
            p.number = fr.number;
            p.ts = fr.ts;
            p.caplen = fr.caplen;
            p.wire_len = fr.wire_len;
            p.data.clear();
            p.data.extend_from_slice(fr.data);
            p.valid = true;
        }
        None => p.valid = false,
    }
}

/// Writes the frames of `input` (read again, in the same merged order) for which `keep` returns
/// true into a new pcap at `out`, with the input's link type and nanosecond timestamps. Returns
/// the number of frames written. All inputs must share one link type.
pub fn write_selected(
    paths: &[PathBuf],
    filter: Option<&str>,
    out: &Path,
    mut keep: impl FnMut(&Frame<'_>) -> bool,
) -> Result<u64> {
    let mut set = OfflineSet::open(paths, filter)?;
    let infos = set.infos();
    let dlt = infos[0].dlt;
    if let Some(other) = infos.iter().find(|i| i.dlt != dlt) {
        return Err(Error::Usage(format!(
            "--evidence-pcap needs one link type, but {} has link type {} and {} has {}",
            infos[0].path.display(),
            dlt,
            other.path.display(),
            other.dlt
        )));
    }
    let out_err = |e: pcap::Error| Error::Output {
        what: out.display().to_string(),
        reason: e.to_string(),
    };
    // The crate's `Capture::dead` fixes the snaplen at 65535; open the dead handle with the
    // inputs' largest snaplen so no evidence frame is longer than the file claims to allow.
    let snaplen = infos
        .iter()
        .map(|i| i.snaplen)
        .max()
        .unwrap_or(262_144)
        .max(65_535);
    // SAFETY: pcap_open_dead_with_tstamp_precision returns an owned handle or NULL; the Capture
    // takes ownership and closes it.
    let dead: Capture<pcap::Dead> = unsafe {
        let p = pcap_open_dead_with_tstamp_precision(dlt, snaplen as libc::c_int, 1);
        match NonNull::new(p) {
            Some(nn) => Capture::from(nn.cast()),
            None => {
                return Err(Error::Output {
                    what: out.display().to_string(),
                    reason: "libpcap could not open a writer".into(),
                })
            }
        }
    };
    let mut sf = dead.savefile(out).map_err(out_err)?;
    let mut n = 0u64;
    set.run(|f| {
        if keep(f) {
            let secs = f.ts.0.div_euclid(crate::time::NANOS_PER_SEC);
            let nanos = f.ts.0.rem_euclid(crate::time::NANOS_PER_SEC);
            let header = pcap::PacketHeader {
                ts: libc::timeval {
                    tv_sec: secs as libc::time_t,
                    tv_usec: nanos as libc::suseconds_t,
                },
                caplen: f.caplen,
                len: f.wire_len,
            };
            sf.write(&pcap::Packet::new(&header, f.data));
            n += 1;
        }
    });
    sf.flush().map_err(out_err)?;
    Ok(n)
}
