//! Capture sources: saved files (pcap and pcapng, read by `stream::RecordReader`) and live
//! interfaces.
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
pub mod pcapng;
pub mod stream;
use crate::error::{Error, Result};
use crate::time::Timestamp;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use stream::{Compression, Magic, RecordReader};

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

    /// The LINKTYPE_ value written in pcapng files (differs from the DLT only for raw IP).
    pub fn linktype(self) -> u16 {
        match self {
            LinkType::RawIp => 101,
            other => other.dlt() as u16,
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

    /// Copies bytes that are not a frame (reassembled stream data) into the batch; returns
    /// where to find them with `extra`.
    pub fn push_extra(&mut self, bytes: &[u8]) -> usize {
        let off = self.data.len();
        self.data.extend_from_slice(bytes);
        off
    }

    /// Bytes stored by `push_extra`.
    pub fn extra(&self, off: usize, len: usize) -> &[u8] {
        &self.data[off..off + len]
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
    /// The file's link type number (DLT), as the file header or first interface gives it (kept
    /// when writing evidence captures).
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
    /// Set when reading stopped before the end of the file (a truncated or corrupt record, a
    /// file that shrank while read): why, and the last good frame number.
    pub stopped_early: Option<String>,
    /// With several files: this file's clock minus the first file's, estimated from packets seen
    /// in both, and how many matched; timestamps are corrected by it while merging.
    pub clock_offset: Option<(i64, u32)>,
    /// The compression the file was read through (`gzip`, `zstd`, `xz`), detected by magic bytes.
    pub compression: Option<&'static str>,
    /// Read once, forwards (standard input, a pipe, a FIFO): it cannot be read a second time.
    pub streamed: bool,
    /// pcapng frames on an interface whose link type proxyscope cannot decode (skipped).
    pub unsupported_link_frames: u64,
    /// Frames that passed the filter but fell outside `--since` / `--until`.
    pub frames_outside_window: u64,
}

/// `range` widened to include `len` (the cut lengths of truncated frames).
pub fn widen(range: Option<(u32, u32)>, len: u32) -> Option<(u32, u32)> {
    Some(range.map_or((len, len), |(lo, hi)| (lo.min(len), hi.max(len))))
}

/// Frames read from the start of each file to estimate clock offsets between vantage points.
pub const OFFSET_SAMPLE_FRAMES: usize = 20_000;
/// Packets two files must share before their clock offset is trusted.
pub const MIN_OFFSET_MATCHES: usize = 3;

/// Fixes glibc malloc's trim threshold at 128 KiB (its default), so that freed memory at the top
/// of a heap goes back to the system. Left alone, glibc raises the threshold each time a large
/// block is freed (a hash table that grew, up to 64 MiB): the heaps of both threads then keep
/// that much freed memory resident, which was a few MiB of peak RSS on a busy capture. Called
/// once before reading; a no-op on other C libraries.
pub fn fix_malloc_trim() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        // SAFETY: mallopt only sets a malloc parameter; called once, before the threads start.
        ONCE.call_once(|| unsafe {
            libc::mallopt(libc::M_TRIM_THRESHOLD, 128 * 1024);
        });
    }
}

/// An open capture file.
pub struct CaptureFile {
    /// Our own forward-only reader, over a regular file, standard input, a pipe or a
    /// decompressed stream.
    reader: Box<RecordReader>,
    filter: Filters,
    index: u16,
    info: FileInfo,
    done: bool,
    window: ResolvedWindow,
    progress: Option<Arc<Progress>>,
    /// Records not yet added to `progress.frames` (bytes are counted as they are read,
    /// `CountingReader`).
    unreported_frames: u64,
}

/// The BPF filter, compiled once per link type (pcapng interfaces may differ).
struct Filters {
    expr: Option<String>,
    progs: Vec<(LinkType, pcap::BpfProgram)>,
}

impl Filters {
    /// Compiles the filter for `link` with a dead handle of that link type.
    fn compile(expr: &str, link: LinkType) -> Result<pcap::BpfProgram> {
        let dead =
            pcap::Capture::dead_with_precision(pcap::Linktype(link.dlt()), pcap::Precision::Nano)
                .map_err(|e| Error::Filter {
                expr: expr.to_string(),
                reason: e.to_string(),
            })?;
        dead.compile(expr, true).map_err(|e| Error::Filter {
            expr: expr.to_string(),
            reason: e.to_string(),
        })
    }

    /// Whether the frame passes (always, without a filter).
    fn matches(&mut self, link: LinkType, data: &[u8]) -> bool {
        let Some(expr) = &self.expr else {
            return true;
        };
        if let Some((_, p)) = self.progs.iter().find(|(l, _)| *l == link) {
            return p.filter(data);
        }
        // A link type first seen mid-file (pcapng): the expression compiled for the first one
        // compiles for this one too unless it names link-layer fields it lacks; then nothing
        // on this link type matches, as tcpdump would not capture it either.
        match Filters::compile(expr, link) {
            Ok(p) => {
                let ok = p.filter(data);
                self.progs.push((link, p));
                ok
            }
            Err(_) => false,
        }
    }
}

/// Bytes and frames read so far, shared with the progress line (`cli.rs` prints it; the reader
/// only counts). Updated every `PROGRESS_EVERY` records.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes read from the input files (compressed bytes for compressed files).
    pub bytes: AtomicU64,
    /// Total size of the inputs that have one (0 when unknown: a pipe among them).
    pub total: AtomicU64,
    /// Records read.
    pub frames: AtomicU64,
}

/// Records between two updates of `Progress`.
const PROGRESS_EVERY: u64 = 4096;

/// A file read to its end. A regular file that ends before the length it had when it was
/// opened was truncated by another program while being read (tcpdump's `-W` ring reopening it,
/// `logrotate copytruncate`): that end is an error naming what happened, so the frames read are
/// reported with a capture warning instead of as a whole capture.
struct Shrinking {
    file: std::fs::File,
    regular: bool,
    /// The file's length when opened, and the bytes read from it so far.
    len: u64,
    read: u64,
}

impl Read for Shrinking {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.file.read(buf)?;
        self.read += n as u64;
        if n == 0 && !buf.is_empty() && self.regular && self.read < self.len {
            return Err(std::io::Error::other(format!(
                "the file shrank while it was being read (another program truncated or \
                 rewrote it): {} bytes when opened, it ended after {}",
                self.len, self.read
            )));
        }
        Ok(n)
    }
}

/// Counts the bytes read from the source into `Progress::bytes`.
struct CountingReader<R> {
    inner: R,
    progress: Option<Arc<Progress>>,
}

impl<R: Read> Read for CountingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(p) = &self.progress {
            p.bytes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Ok(n)
    }
}

/// A bound of `--since` / `--until`: a point in time, or an offset from the capture's first
/// frame (`+2s`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TimeBound {
    At(Timestamp),
    FromStart(i64),
}

/// `--since` (inclusive) and `--until` (exclusive): frames outside are read (and numbered) but
/// not analysed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TimeWindow {
    pub since: Option<TimeBound>,
    pub until: Option<TimeBound>,
}

impl TimeWindow {
    fn relative(&self) -> bool {
        matches!(self.since, Some(TimeBound::FromStart(_)))
            || matches!(self.until, Some(TimeBound::FromStart(_)))
    }
}

/// A window with its relative bounds resolved once the capture's start is known.
#[derive(Clone, Copy, Debug, Default)]
struct ResolvedWindow {
    window: TimeWindow,
    start: Option<Timestamp>,
}

impl ResolvedWindow {
    fn bound(&self, b: Option<TimeBound>) -> Option<Timestamp> {
        match b? {
            TimeBound::At(t) => Some(t),
            TimeBound::FromStart(ns) => self.start.map(|s| s.add_nanos(ns)),
        }
    }

    fn contains(&self, ts: Timestamp) -> bool {
        self.bound(self.window.since).is_none_or(|s| ts >= s)
            && self.bound(self.window.until).is_none_or(|u| ts < u)
    }
}

/// How the inputs are read: the settings `OfflineSet::open_with` takes.
#[derive(Clone, Debug, Default)]
pub struct ReadOptions {
    /// BPF expression, as tcpdump's.
    pub filter: Option<String>,
    pub window: TimeWindow,
    /// Stop after this many frames (those that passed the filter and the window), as `tcpdump -c`.
    pub max_frames: Option<u64>,
    pub progress: Option<Arc<Progress>>,
    /// Set by the consumer to end reading early (its output was closed: `| head`).
    pub stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// Whether `expr` compiles as a BPF filter for Ethernet (the command line checks trailing
/// filter words with it before reading; each file's link type is checked again at open).
pub fn check_filter(expr: &str) -> std::result::Result<(), String> {
    Filters::compile(expr, LinkType::Ethernet)
        .map(|_| ())
        .map_err(|e| match e {
            Error::Filter { reason, .. } => reason,
            other => other.to_string(),
        })
}

/// Whether `path` can be read a second time (not standard input, a pipe or a FIFO).
pub fn rereadable(path: &Path) -> bool {
    path.as_os_str() != "-" && std::fs::metadata(path).is_ok_and(|m| m.is_file())
}

/// The one-line reason for an I/O error opening an input.
fn open_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "permission denied (run as a user who may read it, or copy it somewhere readable)"
                .into()
        }
        std::io::ErrorKind::NotFound => "no such file".into(),
        _ => e.to_string(),
    }
}

/// How an input will be read, decided from its type and first bytes.
/// Every input is read by our reader from `src` (after decompression when `compression` is
/// set).
struct Opened {
    src: Box<dyn Read + Send>,
    compression: Option<Compression>,
}

/// Opens `path` (`-` is standard input), reads its first bytes and decides how to read it.
/// Never seeks: the bytes read to sniff are put back in front of the stream.
fn open_input(path: &Path, progress: &Option<Arc<Progress>>) -> Result<(Opened, bool)> {
    let open_err = |reason: String| Error::Open {
        path: path.to_path_buf(),
        reason,
    };
    let (mut file, regular, len) = if path.as_os_str() == "-" {
        use std::os::fd::AsFd;
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| open_err(open_reason(&e)))?;
        (std::fs::File::from(fd), false, 0)
    } else {
        let f = std::fs::File::open(path).map_err(|e| open_err(open_reason(&e)))?;
        let meta = f.metadata().map_err(|e| open_err(open_reason(&e)))?;
        if meta.is_dir() {
            return Err(open_err("is a directory".into()));
        }
        if meta.is_file() && meta.len() == 0 {
            return Err(Error::NoPackets {
                path: path.to_path_buf(),
                reason: "empty file (0 bytes), not a capture".into(),
            });
        }
        if meta.is_file() {
            if let Some(p) = progress {
                p.total.fetch_add(meta.len(), Ordering::Relaxed);
            }
        }
        (f, meta.is_file(), meta.len())
    };
    let mut head = [0u8; 8];
    let mut n = 0;
    while n < head.len() {
        match file.read(&mut head[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(open_err(e.to_string())),
        }
    }
    if n == 0 {
        return Err(Error::NoPackets {
            path: path.to_path_buf(),
            reason: "no data: the input was empty (a pipe or standard input that closed at once)"
                .into(),
        });
    }
    let magic = stream::sniff(&head[..n]);
    let src = || -> Box<dyn Read + Send> {
        let file = Shrinking {
            file,
            regular,
            len,
            read: n as u64,
        };
        // The sniffed bytes were read from the file directly (not counted); the reader counts
        // them once, from the front of the chain.
        let chained = std::io::Cursor::new(head[..n].to_vec()).chain(file);
        Box::new(CountingReader {
            inner: chained,
            progress: progress.clone(),
        })
    };
    let opened = match magic {
        Magic::Pcap | Magic::Pcapng => Opened {
            src: src(),
            compression: None,
        },
        Magic::Compressed(c) => Opened {
            src: stream::decompress(c, src()),
            compression: Some(c),
        },
        Magic::Unsupported(name) => {
            return Err(Error::NotACapture {
                path: path.to_path_buf(),
                reason: format!(
                    "{} data: decompress it first; proxyscope reads gzip, zstd and xz itself",
                    name
                ),
            })
        }
        Magic::Unknown => {
            return Err(Error::NotACapture {
                path: path.to_path_buf(),
                reason: "unknown file format".into(),
            })
        }
    };
    Ok((opened, regular))
}

/// The text of a libpcap error buffer (NUL-terminated).
fn cstr_err(buf: &[libc::c_char]) -> String {
    let bytes: Vec<u8> = buf
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

impl CaptureFile {
    /// Opens one input with a filter and no window (`open_with` for the rest).
    pub fn open(path: &Path, index: u16, filter: Option<&str>) -> Result<CaptureFile> {
        let opts = ReadOptions {
            filter: filter.map(str::to_string),
            ..ReadOptions::default()
        };
        CaptureFile::open_with(path, index, &opts)
    }

    pub fn open_with(path: &Path, index: u16, opts: &ReadOptions) -> Result<CaptureFile> {
        CaptureFile::open_chunked(path, index, opts, stream::READ_CHUNK)
    }

    /// `open_with`, reading `chunk` bytes at a time.
    fn open_chunked(
        path: &Path,
        index: u16,
        opts: &ReadOptions,
        chunk: usize,
    ) -> Result<CaptureFile> {
        let (opened, regular) = open_input(path, &opts.progress)?;
        CaptureFile::from_opened(path, index, opts, opened, regular, chunk)
    }

    fn from_opened(
        path: &Path,
        index: u16,
        opts: &ReadOptions,
        opened: Opened,
        regular: bool,
        chunk: usize,
    ) -> Result<CaptureFile> {
        let Opened { src, compression } = opened;
        let reader = RecordReader::with_chunk(src, chunk).map_err(|e| Error::NotACapture {
            path: path.to_path_buf(),
            reason: match compression {
                Some(c) => format!("{}-compressed, but inside: {}", c.name(), e.0),
                None => e.0,
            },
        })?;
        let (dlt, snaplen) = reader.first_link();
        let compression = compression.map(Compression::name);
        let link = LinkType::from_dlt(dlt).ok_or_else(|| Error::UnsupportedLinkType {
            path: path.to_path_buf(),
            dlt,
            name: pcap::Linktype(dlt)
                .get_name()
                .unwrap_or_else(|_| "unknown".into()),
        })?;
        let mut filter = Filters {
            expr: opts.filter.clone(),
            progs: Vec::new(),
        };
        if let Some(expr) = &opts.filter {
            // Compiled now for the first link type, so that a bad expression fails at once.
            filter.progs.push((link, Filters::compile(expr, link)?));
        }
        Ok(CaptureFile {
            reader: Box::new(reader),
            filter,
            index,
            info: FileInfo {
                path: path.to_path_buf(),
                link: Some(link),
                dlt,
                snaplen,
                compression,
                streamed: !regular,
                ..Default::default()
            },
            done: false,
            window: ResolvedWindow {
                window: opts.window,
                start: None,
            },
            progress: opts.progress.clone(),
            unreported_frames: 0,
        })
    }

    pub fn info(&self) -> &FileInfo {
        &self.info
    }

    /// Adds what was read since the last call to the shared progress counters.
    fn report_progress(&mut self) {
        let Some(p) = &self.progress else { return };
        p.frames
            .fetch_add(self.unreported_frames, Ordering::Relaxed);
        self.unreported_frames = 0;
    }

    /// Reads the next record that passes the filter and the time window; `None` at the end of
    /// the file (or where a truncated/corrupt record stopped it, recorded in `stopped_early`).
    fn next_frame(&mut self) -> Option<Frame<'_>> {
        if self.done {
            return None;
        }
        let me: *mut CaptureFile = self;
        loop {
            // SAFETY: `me` points at `self`, alive for `'_`. Each record borrowed from the
            // reader is either returned (ending the loop) or dropped before the next read, so
            // borrows never overlap; the raw pointer only sidesteps the borrow checker's loop
            // limitation.
            // SAFETY (for both `&mut *me` below): see above; `reader` is only touched again
            // after the record borrowed from it is dropped.
            let reader = unsafe { &mut (*me).reader };
            let rec = match reader.next_packet() {
                Ok(Some(p)) => Ok((
                    p.ts,
                    p.caplen,
                    p.wire_len,
                    LinkType::from_dlt(p.linktype),
                    p.data,
                )),
                Ok(None) => Err(None),
                Err(e) => Err(Some(e.0)),
            };
            let this = unsafe { &mut *me };
            let (ts, caplen, wire_len, link, data) = match rec {
                Ok(r) => r,
                Err(stop) => {
                    this.done = true;
                    this.report_progress();
                    if let Some(e) = stop {
                        this.info.stopped_early = Some(format!(
                            "reading stopped after frame {}: {}",
                            this.info.frames, e
                        ));
                    }
                    return None;
                }
            };
            let info = &mut this.info;
            info.frames += 1;
            this.unreported_frames += 1;
            if this.unreported_frames >= PROGRESS_EVERY {
                this.report_progress();
            }
            let number = this.info.frames;
            let ts = ts.add_nanos(-this.info.clock_offset.map_or(0, |o| o.0));
            if this.window.start.is_none() {
                this.window.start = Some(ts);
            }
            let Some(link) = link else {
                this.info.unsupported_link_frames += 1;
                continue;
            };
            if !this.filter.matches(link, data) {
                continue;
            }
            if !this.window.contains(ts) {
                this.info.frames_outside_window += 1;
                continue;
            }
            let info = &mut this.info;
            info.frames_matched += 1;
            if caplen < wire_len {
                info.frames_truncated += 1;
                info.cut_range = widen(info.cut_range, caplen);
            }
            if info.first_ts.is_none() {
                info.first_ts = Some(ts);
            }
            info.last_ts = Some(ts);
            return Some(Frame {
                file: this.index,
                number,
                ts,
                caplen,
                wire_len,
                link,
                data,
            });
        }
    }

    /// The timestamp of the file's first record, read from a fresh handle (the file must be
    /// re-readable), corrected by its clock offset.
    fn first_record_ts(&self) -> Option<Timestamp> {
        let mut f = CaptureFile::open(&self.info.path, self.index, None).ok()?;
        f.info.clock_offset = self.info.clock_offset;
        f.next_frame().map(|fr| fr.ts)
    }
}

/// Several capture files read as one stream of frames in timestamp order (ties keep the
/// command-line order). Frame numbers stay per file.
pub struct OfflineSet {
    files: Vec<CaptureFile>,
    /// `-c`: frames passed to the sink at most.
    max_frames: Option<u64>,
    /// Relative `--since`/`--until` with several files: the start is the earliest first record
    /// of all files, found before reading.
    resolve_start: bool,
    stop: Option<Arc<std::sync::atomic::AtomicBool>>,
}

/// A copied record waiting in the merge (only used with several files).
struct Pending {
    number: u64,
    ts: Timestamp,
    caplen: u32,
    wire_len: u32,
    link: LinkType,
    data: Vec<u8>,
    valid: bool,
}

impl OfflineSet {
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<OfflineSet> {
        let opts = ReadOptions {
            filter: filter.map(str::to_string),
            ..ReadOptions::default()
        };
        OfflineSet::open_with(paths, &opts)
    }

    pub fn open_with(paths: &[PathBuf], opts: &ReadOptions) -> Result<OfflineSet> {
        if paths.len() > u16::MAX as usize {
            return Err(Error::Usage("too many capture files".into()));
        }
        let resolve_start = paths.len() > 1 && opts.window.relative();
        if resolve_start {
            if let Some(p) = paths.iter().find(|p| !rereadable(p)) {
                return Err(Error::Usage(format!(
                    "{}: --since/--until as an offset (+2s) with several inputs reads each file's start first, which a pipe or standard input cannot give; use RFC 3339 times",
                    p.display()
                )));
            }
        }
        let chunk = if paths.len() > 1 {
            stream::READ_CHUNK_SHARED
        } else {
            stream::READ_CHUNK
        };
        let mut files = Vec::with_capacity(paths.len());
        for (i, p) in paths.iter().enumerate() {
            files.push(CaptureFile::open_chunked(p, i as u16, opts, chunk)?);
        }
        Ok(OfflineSet {
            files,
            max_frames: opts.max_frames,
            resolve_start,
            stop: opts.stop.clone(),
        })
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
            let mut m = rustc_hash::FxHashMap::default();
            if !rereadable(p) {
                // A pipe is read once, by the analysis: its clock is left as it is.
                maps.push(m);
                continue;
            }
            let mut f = CaptureFile::open(p, i as u16, filter)?;
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

    /// Pushes every frame, in timestamp order, into `sink` (at most `max_frames`).
    pub fn run(&mut self, mut sink: impl FnMut(&Frame<'_>)) {
        let max = self.max_frames.unwrap_or(u64::MAX);
        if max == 0 {
            return;
        }
        let stopped = |s: &Option<Arc<std::sync::atomic::AtomicBool>>| {
            s.as_ref().is_some_and(|s| s.load(Ordering::Relaxed))
        };
        let mut sent = 0u64;
        if self.resolve_start {
            let start = self.files.iter().filter_map(|f| f.first_record_ts()).min();
            for f in &mut self.files {
                f.window.start = start;
            }
        }
        if self.files.len() == 1 {
            let f = &mut self.files[0];
            while let Some(frame) = f.next_frame() {
                sink(&frame);
                sent += 1;
                if sent >= max || stopped(&self.stop) {
                    f.report_progress();
                    break;
                }
            }
            return;
        }
        let mut pend: Vec<Pending> = (0..self.files.len())
            .map(|_| Pending {
                number: 0,
                ts: Timestamp(0),
                caplen: 0,
                wire_len: 0,
                link: LinkType::Ethernet,
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
                    link: p.link,
                    data: &p.data,
                };
                sink(&frame);
            }
            sent += 1;
            if sent >= max || stopped(&self.stop) {
                break;
            }
            refill(&mut self.files[i], &mut pend[i]);
        }
        for f in &mut self.files {
            f.report_progress();
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
            p.link = fr.link;
            p.data.clear();
            p.data.extend_from_slice(fr.data);
            p.valid = true;
        }
        None => p.valid = false,
    }
}

/// Frame numbers inside an evidence capture, by (input file index, frame number).
pub type EvidenceFrames = rustc_hash::FxHashMap<(u16, u64), u64>;

/// Writes the frames of `paths` (read again, with the same filter, window and frame limit, in
/// the same merged order) for which `comment` returns a text into a new pcapng at `out`, each
/// with that text as its packet comment; one interface per link type, nanosecond timestamps.
/// Returns where each written frame landed in the new file.
pub fn write_selected(
    paths: &[PathBuf],
    opts: &ReadOptions,
    out: &Path,
    mut comment: impl FnMut(&Frame<'_>) -> Option<String>,
) -> Result<EvidenceFrames> {
    if let Some(p) = paths.iter().find(|p| !rereadable(p)) {
        return Err(Error::Usage(format!(
            "{}: --evidence-pcap reads the input a second time, which a pipe or standard input cannot give; save it to a file first",
            p.display()
        )));
    }
    let opts = ReadOptions {
        progress: None,
        ..opts.clone()
    };
    let mut set = OfflineSet::open_with(paths, &opts)?;
    let snaplen = set
        .infos()
        .iter()
        .map(|i| i.snaplen)
        .max()
        .unwrap_or(262_144)
        .max(65_535);
    let out_err = |e: std::io::Error| Error::Output {
        what: out.display().to_string(),
        reason: e.to_string(),
    };
    let file = std::fs::File::create(out).map_err(out_err)?;
    let app = format!("proxyscope {} (evidence)", env!("CARGO_PKG_VERSION"));
    let mut w = pcapng::PcapngWriter::new(std::io::BufWriter::new(file), &app).map_err(out_err)?;
    let mut map = EvidenceFrames::default();
    let mut failed: Option<std::io::Error> = None;
    set.run(|f| {
        if failed.is_some() {
            return;
        }
        let Some(text) = comment(f) else { return };
        let res = w
            .interface(f.link.linktype(), snaplen)
            .and_then(|iface| w.packet(iface, f.ts, f.wire_len, f.data, Some(&text)));
        match res {
            Ok(n) => {
                map.insert((f.file, f.number), n);
            }
            Err(e) => failed = Some(e),
        }
    });
    if let Some(e) = failed {
        return Err(out_err(e));
    }
    w.finish().map_err(out_err)?;
    Ok(map)
}

/// Every capture file (`.pcap`, `.pcapng`) under `dir`, recursively, appended to `out` (tests
/// that run over all the captures there are).
#[cfg(test)]
pub(crate) fn capture_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return;
    };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            capture_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "pcap" || x == "pcapng") {
            out.push(p);
        }
    }
}

#[cfg(test)]
mod tests {
    //! Our reader against libpcap, record by record.

    use super::*;

    /// One frame as a line: number, time, lengths, link type and bytes.
    fn frame_line(
        number: u64,
        ts: Timestamp,
        caplen: u32,
        len: u32,
        link: Option<LinkType>,
        data: &[u8],
    ) -> String {
        format!(
            "{} {:?} {} {} {:?} {:?}",
            number, ts, caplen, len, link, data
        )
    }

    /// What our reader yields: every frame, and whether it stopped early. `None`: refused.
    fn read_ours(path: &Path) -> Option<(Vec<String>, bool)> {
        let mut f = CaptureFile::open(path, 0, None).ok()?;
        let mut frames = Vec::new();
        while let Some(fr) = f.next_frame() {
            frames.push(frame_line(
                fr.number,
                fr.ts,
                fr.caplen,
                fr.wire_len,
                Some(fr.link),
                fr.data,
            ));
        }
        Some((frames, f.info().stopped_early.is_some()))
    }

    /// What libpcap yields (nanosecond timestamps, as our reader keeps them): every frame, each
    /// with the file's one link type, and whether it ended on an error. `None`: refused.
    fn read_libpcap(path: &Path) -> Option<(Vec<String>, bool)> {
        let mut cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).ok()?;
        let link = LinkType::from_dlt(cap.get_datalink().0);
        let mut frames = Vec::new();
        loop {
            match cap.next_packet() {
                Ok(p) => {
                    let h = p.header;
                    #[allow(clippy::unnecessary_cast)]
                    // time_t / suseconds_t are not i64 everywhere
                    let ts = Timestamp::from_parts(h.ts.tv_sec as i64, h.ts.tv_usec as i64);
                    let n = frames.len() as u64 + 1;
                    frames.push(frame_line(n, ts, h.caplen, h.len, link, p.data));
                }
                Err(pcap::Error::NoMorePackets) => return Some((frames, false)),
                Err(_) => return Some((frames, true)),
            }
        }
    }

    /// A pcap file of `records` records of 100 bytes each (116 with the record header).
    fn write_pcap(path: &Path, records: usize) {
        let mut b = Vec::new();
        for v in [0xa1b2_c3d4u32, 0x0004_0002, 0, 0, 65_535, 1] {
            b.extend_from_slice(&v.to_le_bytes());
        }
        for i in 0..records as u32 {
            for v in [i, 0, 100, 100] {
                b.extend_from_slice(&v.to_le_bytes());
            }
            b.extend_from_slice(&[0u8; 100]);
        }
        std::fs::write(path, b).unwrap();
    }

    /// A regular file cut shorter than it was at open, while it is read, at a record boundary
    /// past what the reader has buffered: the frames before the cut are read, and reading stops
    /// with a warning that says the file shrank (a cut at a boundary would otherwise look like a
    /// clean end). A file that grows while it is read is read to its new end, with no warning.
    #[test]
    fn a_file_that_shrinks_while_read_says_so_and_one_that_grows_is_read_on() {
        let dir = std::env::temp_dir().join(format!("proxyscope-shrink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("cut.pcap");
        // 3 MiB: more than the first read (1 MiB) takes in.
        let records = 3 * (1 << 20) / 116;
        write_pcap(&path, records);
        let mut f = CaptureFile::open(&path, 0, None).unwrap();
        assert_eq!(f.next_frame().map(|fr| fr.number), Some(1));
        let keep = (1 << 20) * 3 / 2 / 116; // records left: past the first read
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(24 + 116 * keep as u64)
            .unwrap();
        let mut n = 1;
        while f.next_frame().is_some() {
            n += 1;
        }
        assert_eq!(n, keep as u64);
        let why = f.info().stopped_early.clone().unwrap_or_default();
        assert!(
            why.contains("the file shrank while it was being read"),
            "{why:?}"
        );
        assert!(
            why.contains(&format!("{} bytes when opened", 24 + 116 * records)),
            "{why:?}"
        );

        let path = dir.join("grows.pcap");
        write_pcap(&path, 10);
        let mut f = CaptureFile::open(&path, 0, None).unwrap();
        assert!(f.next_frame().is_some());
        let mut more = Vec::new();
        for v in [10u32, 0, 100, 100] {
            more.extend_from_slice(&v.to_le_bytes());
        }
        more.extend_from_slice(&[0u8; 100]);
        use std::io::Write;
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(&more)
            .unwrap();
        let mut n = 1;
        while f.next_frame().is_some() {
            n += 1;
        }
        // The small file was read whole at open: the appended record comes after, from the file.
        assert_eq!(n, 11);
        assert_eq!(f.info().stopped_early, None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Every regular file is read by our reader. It must give libpcap's frames (numbers, times,
    /// lengths, link type, bytes) on every capture of the repository and of the corpus, the
    /// damaged ones included, and stop where libpcap stops on an error. The one allowed
    /// difference: pcapng files whose interfaces have different link types (as `mergecap`
    /// writes), which libpcap gives up on at the first packet of another link type, and which
    /// our reader goes on reading.
    #[test]
    fn our_reader_matches_libpcap_on_every_capture() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut files = Vec::new();
        capture_files(&root.join("captures"), &mut files);
        capture_files(&root.join("tests"), &mut files);
        // The public corpus beside the checkout, when there is one (CI has it; a user's clone
        // does not, and the repository's captures above are enough for the test).
        capture_files(&root.join("../shared/corpus"), &mut files);
        assert!(files.len() > 20, "captures found: {}", files.len());
        let (mut compared, mut mixed_links) = (0, 0);
        for p in &files {
            let (ours, lib) = (read_ours(p), read_libpcap(p));
            let (Some((ours, ours_stopped)), Some((lib, lib_stopped))) =
                (ours.clone(), lib.clone())
            else {
                // Unreadable by one of them: both must refuse it.
                assert_eq!(
                    ours.is_some(),
                    lib.is_some(),
                    "{}: one reader opens it, the other does not",
                    p.display()
                );
                continue;
            };
            assert!(
                lib.len() <= ours.len(),
                "{}: libpcap read more frames",
                p.display()
            );
            for (a, b) in ours.iter().zip(&lib) {
                assert_eq!(a, b, "{}", p.display());
            }
            if lib.len() < ours.len() {
                // libpcap gave up where a frame of another link type comes.
                let link = |l: &str| l.split(' ').nth(4).map(str::to_string);
                assert!(
                    lib_stopped,
                    "{}: libpcap ended early without an error",
                    p.display()
                );
                assert_ne!(
                    link(&ours[lib.len()]),
                    link(&ours[0]),
                    "{}: libpcap stopped at frame {}",
                    p.display(),
                    lib.len() + 1
                );
                mixed_links += 1;
            } else {
                assert_eq!(
                    ours_stopped,
                    lib_stopped,
                    "{}: only one reader stopped early",
                    p.display()
                );
            }
            compared += 1;
        }
        assert!(compared > 20, "compared {}", compared);
        eprintln!("{compared} captures compared, {mixed_links} with several link types");
    }
}
