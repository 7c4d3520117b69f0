//! Live capture from a network interface (`proxyscope live`).
//!
//! Owns: opening an interface through libpcap (immediate mode, promiscuous off, snaplen, kernel
//! buffer, a short read timeout, nanosecond timestamps), the BPF filter installed *in the kernel*,
//! choosing SLL2 framing for the `any` device, the optional evidence savefile that mirrors every
//! captured frame, libpcap's receive/drop counters, and the SIGINT/SIGTERM stop flag.
//!
//! Must not: decode headers, keep per-flow state, print anything, or decide what a stop means
//! (the caller finishes the analysis and reports). Bad traffic is never an `Err`; only "the
//! interface cannot be opened or read" and "the evidence file cannot be written" are.
//!
//! This module and `main.rs` are the only places that read the wall clock: `run` measures the
//! tick interval with the monotonic clock and hands the caller the current *wall-clock* time
//! (`on_tick` with `Tick::now`), so idle-time timeouts downstream can advance while no packet arrives. Frame
//! timestamps still come from the kernel's packet headers (CLOCK_REALTIME, the same clock as
//! `now`), so the two are comparable.
//!
//! Invariants:
//! - `Frame::number` is 1-based and counts every frame this source delivered. Unlike the offline
//!   reader, the filter runs in the kernel, so rejected packets are never seen or counted; every
//!   delivered frame is also written to the savefile (when one is configured), so frame numbers
//!   in reports equal frame numbers in that file (`frame.number` in Wireshark).
//! - A frame's `data` is borrowed from libpcap's ring buffer until the next read; nothing is
//!   copied or allocated per packet.
//! - `stop` is looked at after every packet and at least once per read timeout
//!   ([`READ_TIMEOUT_MS`]), and `on_tick` runs at least once per `tick` even while idle.

use super::{Frame, LinkType};
use crate::error::{Error, Result};
use crate::time::Timestamp;
use pcap::{Active, Capture, Linktype, Savefile};
use std::ffi::{CStr, CString};
use std::path::PathBuf;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Bytes kept per packet. 2048 is larger than a full 1500-byte-MTU Ethernet frame (1514 bytes,
/// 1518 with a VLAN tag, plus the 20-byte SLL2 header on `any`), so ordinary frames are kept
/// whole: every TCP/IP header, TLS record headers and alerts, HTTP status lines and headers, and
/// the start of an error body (the proxy's "502 Bad Gateway" page). Only GRO/TSO super-frames
/// (up to 64 KiB, common on loopback and with offloads) are cut, which bounds memory, kernel
/// buffer use and evidence-file size; the decoder marks such frames truncated, and TCP tracking
/// uses the wire length, so sequence analysis is unaffected.
pub const DEFAULT_SNAPLEN: i32 = 2048;

/// Kernel capture buffer. 32 MiB holds about 16 000 frames at the default snaplen, a few seconds
/// of a busy gateway if the analysis briefly falls behind, before the kernel starts dropping
/// (dropped packets are reported through [`LiveSource::stats`], never hidden).
pub const DEFAULT_BUFFER_BYTES: i32 = 32 << 20;

/// Longest wait for a packet: with nothing to read, `run` sleeps in `poll` at most this long (less
/// when a tick is due sooner), so `stop` is noticed and `on_tick` runs while the interface is
/// idle. Short enough for a prompt Ctrl-C, long enough not to spin. (It is also given to libpcap
/// as its read timeout, but not relied on: see `LiveSource::run`.)
pub const READ_TIMEOUT_MS: i32 = 100;

/// After the ring has been emptied of packets that arrived while others were being read, the
/// capture waits this long before looking again instead of waking at the next packet. A busy
/// interface then costs one or two wake-ups per millisecond rather than one every few packets
/// (on a 300 k packet/s replay: 90 k wake-ups of the capture thread for 1 M packets, a third of
/// its time), and delivery is at most a millisecond later. The kernel ring holds more than that:
/// at the default buffer and snaplen, about 16 000 frames, 16 million packets per second.
pub const GATHER: Duration = Duration::from_millis(1);

/// The clock is read once per this many frames (and after every wait) to see whether a tick is
/// due: under load, 64 frames take well under a millisecond.
const FRAMES_PER_CLOCK_READ: u64 = 64;

/// DLT_LINUX_SLL2: what `tcpdump -i any` produces with libpcap >= 1.10 (carries the interface
/// index, which plain SLL lacks).
const DLT_LINUX_SLL2: i32 = 276;

/// The pseudo-device that captures on all interfaces.
const ANY_DEVICE: &str = "any";

const PERMISSION_HINT: &str = "capture needs root or CAP_NET_RAW (grant it with: sudo setcap cap_net_raw,cap_net_admin=eip <path to proxyscope>)";

/// What to open. Built by the CLI from validated flags.
#[derive(Clone, Debug)]
pub struct LiveConfig {
    /// Interface name (`eth0`, `lo`, `any`, ...).
    pub iface: String,
    /// BPF expression, compiled and installed in the kernel.
    pub filter: Option<String>,
    /// Bytes kept per packet (see [`DEFAULT_SNAPLEN`]).
    pub snaplen: i32,
    /// Kernel capture buffer size in bytes (see [`DEFAULT_BUFFER_BYTES`]).
    pub buffer_bytes: i32,
    /// Write every captured frame to this pcap (nanosecond timestamps, the interface's link type).
    pub write: Option<PathBuf>,
    /// Rotate the `write` file as tcpdump `-C` / `-W` do (None: one file).
    pub rotate: Option<Rotation>,
}

/// `--write` rotation, as tcpdump's `-C` and `-W`: a new file once the current one holds more
/// than `file_bytes` (tcpdump: millions of bytes); with `ring_files`, only that many files, the
/// oldest overwritten. Names follow tcpdump: without a ring `FILE`, `FILE1`, `FILE2`, ...; with a
/// ring of N files `FILE0` .. `FILE<N-1>`, the number zero-padded to the width of N-1.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rotation {
    pub file_bytes: u64,
    pub ring_files: Option<u16>,
}

impl Rotation {
    /// The name of the `index`-th file written (0-based) — tcpdump's `MakeFilename`.
    pub fn file_name(&self, base: &std::path::Path, index: u64) -> PathBuf {
        let (n, width) = match self.ring_files {
            Some(w) => {
                let mut digits = 0;
                let mut x = w.saturating_sub(1);
                while x > 0 {
                    digits += 1;
                    x /= 10;
                }
                (index % u64::from(w.max(1)), digits)
            }
            None => (index, 0),
        };
        if n == 0 && width == 0 {
            return base.to_path_buf();
        }
        let mut s = base.as_os_str().to_os_string();
        s.push(format!("{:0width$}", n, width = width));
        PathBuf::from(s)
    }

    /// The `Frame::file` index of the `index`-th file: its place in the ring, or its number.
    pub fn file_slot(&self, index: u64) -> u64 {
        match self.ring_files {
            Some(w) => index % u64::from(w.max(1)),
            None => index,
        }
    }
}

#[cfg(test)]
mod rotation_names {
    use super::Rotation;
    use std::path::{Path, PathBuf};

    #[test]
    fn names_follow_tcpdump() {
        let base = Path::new("/tmp/cap.pcap");
        let plain = Rotation {
            file_bytes: 1_000_000,
            ring_files: None,
        };
        let names: Vec<PathBuf> = (0..3).map(|i| plain.file_name(base, i)).collect();
        assert_eq!(
            names,
            ["/tmp/cap.pcap", "/tmp/cap.pcap1", "/tmp/cap.pcap2"].map(PathBuf::from)
        );
        let ring = |w| Rotation {
            file_bytes: 1,
            ring_files: Some(w),
        };
        assert_eq!(ring(3).file_name(base, 0), Path::new("/tmp/cap.pcap0"));
        assert_eq!(ring(3).file_name(base, 4), Path::new("/tmp/cap.pcap1"));
        assert_eq!(ring(3).file_slot(4), 1);
        assert_eq!(ring(11).file_name(base, 3), Path::new("/tmp/cap.pcap03"));
        assert_eq!(ring(10).file_name(base, 9), Path::new("/tmp/cap.pcap9"));
        assert_eq!(ring(1).file_name(base, 5), base, "tcpdump -W 1: no number");
    }
}

/// Without a ring, files written at most (`Frame::file` is 16 bits): then the capture stops with
/// an error that suggests `-W`.
pub const MAX_ROTATED_FILES: u64 = u16::MAX as u64 + 1;

/// pcap file header and per-record header sizes (what `-C` counts, as tcpdump does).
const PCAP_FILE_HEADER: u64 = 24;
const PCAP_RECORD_HEADER: u64 = 16;

/// What the capture loop tells `on_tick`.
pub struct Tick<'a> {
    /// Wall-clock time.
    pub now: Timestamp,
    /// libpcap's counters (see [`LiveStats`]).
    pub stats: LiveStats,
    /// The files written so far, indexed by `Frame::file` (empty without `--write`).
    pub files: &'a [PathBuf],
}

/// libpcap's counters since the interface was opened (`pcap_stats`). On Linux, `received` counts
/// packets that passed the kernel filter; `dropped` counts those the kernel buffer had no room
/// for. libpcap keeps them as 32-bit counters, so they wrap after 2^32 packets.
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct LiveStats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// An open interface: frames are pulled with [`LiveSource::run`].
pub struct LiveSource {
    /// Field order matters: the savefile (which refers to nothing in `cap`, but should be closed
    /// and flushed first) drops before the capture handle.
    savefile: Option<Savefile>,
    cap: Capture<Active>,
    /// libpcap's selectable descriptor, polled while no packet is buffered.
    fd: libc::c_int,
    iface: String,
    write_path: Option<PathBuf>,
    /// The `--write` path as given (rotated names are made from it).
    write_base: Option<PathBuf>,
    rotate: Option<Rotation>,
    /// Files written, by `Frame::file` (a ring's slots are reused).
    files: Vec<PathBuf>,
    /// Files opened so far (rotations + 1), and whether any ring file was overwritten.
    opened_files: u64,
    link: LinkType,
    /// The handle delivers nanoseconds in `tv_usec` (false: microseconds, if the platform refused
    /// nanosecond precision).
    nanos: bool,
    /// Frames delivered so far (the last `Frame::number`).
    frames: u64,
    last_stats: LiveStats,
}

// libpcap status codes (pcap/pcap.h).
const PCAP_ERROR_NO_SUCH_DEVICE: libc::c_int = -5;
const PCAP_ERROR_PERM_DENIED: libc::c_int = -8;
const PCAP_ERROR_IFACE_NOT_UP: libc::c_int = -9;
const PCAP_ERROR_PROMISC_PERM_DENIED: libc::c_int = -11;
const PCAP_TSTAMP_PRECISION_NANO: libc::c_int = 1;

extern "C" {
    fn pcap_create(source: *const libc::c_char, errbuf: *mut libc::c_char) -> *mut libc::c_void;
    fn pcap_set_snaplen(p: *mut libc::c_void, snaplen: libc::c_int) -> libc::c_int;
    fn pcap_set_promisc(p: *mut libc::c_void, promisc: libc::c_int) -> libc::c_int;
    fn pcap_set_timeout(p: *mut libc::c_void, ms: libc::c_int) -> libc::c_int;
    fn pcap_set_buffer_size(p: *mut libc::c_void, bytes: libc::c_int) -> libc::c_int;
    fn pcap_set_immediate_mode(p: *mut libc::c_void, on: libc::c_int) -> libc::c_int;
    fn pcap_set_tstamp_precision(p: *mut libc::c_void, precision: libc::c_int) -> libc::c_int;
    fn pcap_activate(p: *mut libc::c_void) -> libc::c_int;
    fn pcap_geterr(p: *mut libc::c_void) -> *const libc::c_char;
    fn pcap_statustostr(status: libc::c_int) -> *const libc::c_char;
    fn pcap_close(p: *mut libc::c_void);
    fn pcap_get_selectable_fd(p: *mut libc::c_void) -> libc::c_int;
}

fn live_err(iface: &str, reason: impl Into<String>) -> Error {
    Error::Live {
        iface: iface.to_string(),
        reason: one_line(&reason.into()),
    }
}

/// Errors are printed on one line; libpcap messages occasionally carry a newline.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// "no such interface; available: lo, eth0, any" (names from `pcap_findalldevs`).
fn no_such_interface(iface: &str) -> Error {
    let available = match pcap::Device::list() {
        Ok(devs) if !devs.is_empty() => devs
            .iter()
            .map(|d| d.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        Ok(_) => "none".to_string(),
        Err(e) => format!("(could not list interfaces: {e})"),
    };
    live_err(iface, format!("no such interface; available: {available}"))
}

/// What an activation failure means, from libpcap's status code and message. Kept pure so the
/// mapping is testable without privileges or missing devices.
#[derive(Debug, PartialEq, Eq)]
enum OpenFailure {
    NoSuchDevice,
    Permission,
    Other(String),
}

fn classify_activate(status: libc::c_int, msg: &str) -> OpenFailure {
    let lower = msg.to_ascii_lowercase();
    match status {
        PCAP_ERROR_NO_SUCH_DEVICE => OpenFailure::NoSuchDevice,
        PCAP_ERROR_PERM_DENIED | PCAP_ERROR_PROMISC_PERM_DENIED => OpenFailure::Permission,
        PCAP_ERROR_IFACE_NOT_UP => OpenFailure::Other("interface is down".into()),
        // Older libpcaps report these as a generic PCAP_ERROR with errno text.
        _ if lower.contains("permission") || lower.contains("operation not permitted") => {
            OpenFailure::Permission
        }
        _ if lower.contains("no such device") || lower.contains("doesn't exist") => {
            OpenFailure::NoSuchDevice
        }
        _ => OpenFailure::Other(msg.to_string()),
    }
}

/// The wall clock as a `Timestamp` (nanoseconds since the epoch).
fn wall_now() -> Timestamp {
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => Timestamp(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)),
        Err(e) => Timestamp(-i64::try_from(e.duration().as_nanos()).unwrap_or(i64::MAX)),
    }
}

/// Creates, configures and activates the handle. Returns it and whether nanosecond timestamps
/// were granted. Done through the C API (not `Capture::open`) to see libpcap's status code, which
/// distinguishes "no such device" from "permission denied" reliably.
fn activate(cfg: &LiveConfig) -> Result<(Capture<Active>, bool)> {
    let iface = cfg.iface.as_str();
    let cname =
        CString::new(iface).map_err(|_| live_err(iface, "interface name contains a NUL byte"))?;
    // Unprivileged, libpcap fails on the packet socket before it looks at the name, so check the
    // name first: a typo should be reported as a typo, not as missing privileges.
    // SAFETY: if_nametoindex reads a valid C string.
    if iface != ANY_DEVICE && unsafe { libc::if_nametoindex(cname.as_ptr()) } == 0 {
        return Err(no_such_interface(iface));
    }
    let mut errbuf = [0 as libc::c_char; 256];
    // SAFETY: plain libpcap calls on a handle we own; every pointer is checked before use, and the
    // handle is either closed here on failure or handed to `Capture`, which closes it on drop.
    unsafe {
        let p = pcap_create(cname.as_ptr(), errbuf.as_mut_ptr());
        if p.is_null() {
            return Err(live_err(iface, super::cstr_err(&errbuf)));
        }
        pcap_set_snaplen(p, cfg.snaplen);
        pcap_set_promisc(p, 0);
        pcap_set_timeout(p, READ_TIMEOUT_MS);
        pcap_set_buffer_size(p, cfg.buffer_bytes);
        pcap_set_immediate_mode(p, 1);
        let nanos = pcap_set_tstamp_precision(p, PCAP_TSTAMP_PRECISION_NANO) == 0;
        // > 0 is a warning (activation succeeded); < 0 an error.
        let status = pcap_activate(p);
        if status < 0 {
            let mut msg = CStr::from_ptr(pcap_geterr(p))
                .to_string_lossy()
                .into_owned();
            if msg.is_empty() {
                msg = CStr::from_ptr(pcap_statustostr(status))
                    .to_string_lossy()
                    .into_owned();
            }
            pcap_close(p);
            return Err(match classify_activate(status, &msg) {
                OpenFailure::NoSuchDevice => no_such_interface(iface),
                OpenFailure::Permission => live_err(iface, PERMISSION_HINT),
                OpenFailure::Other(m) => live_err(iface, format!("cannot capture: {m}")),
            });
        }
        let nn = NonNull::new(p).expect("checked non-null above");
        Ok((Capture::<Active>::from(nn.cast()), nanos))
    }
}

impl LiveSource {
    /// Opens the interface: immediate mode, promiscuous off, `snaplen`, a kernel buffer of
    /// `buffer_bytes`, a [`READ_TIMEOUT_MS`] read timeout, nanosecond timestamps; for `any`, SLL2
    /// framing when libpcap offers it; then the BPF filter installed in the kernel and the
    /// savefile created. Every error is one line: `Error::Live` (no such interface, with the
    /// available ones; missing privileges, with the `setcap` command; unsupported link type),
    /// `Error::Filter` (libpcap rejected the expression) or `Error::Output` (savefile).
    pub fn open(cfg: &LiveConfig) -> Result<LiveSource> {
        let iface = cfg.iface.as_str();
        let (cap, nanos) = activate(cfg)?;
        // Non-blocking reads plus our own poll (see `run`).
        let mut cap = cap
            .setnonblock()
            .map_err(|e| live_err(iface, format!("cannot set non-blocking mode: {e}")))?;
        // SAFETY: the handle is valid for the lifetime of `cap`.
        let fd = unsafe { pcap_get_selectable_fd(cap.as_ptr() as *mut libc::c_void) };
        if fd < 0 {
            return Err(live_err(iface, "libpcap offers no descriptor to wait on"));
        }

        // Before the filter: BPF is compiled for the link type in force.
        if iface == ANY_DEVICE {
            let offers_sll2 = cap
                .list_datalinks()
                .map(|l| l.iter().any(|d| d.0 == DLT_LINUX_SLL2))
                .unwrap_or(false);
            if offers_sll2 {
                // On failure libpcap keeps plain SLL, which is decoded too.
                let _ = cap.set_datalink(Linktype(DLT_LINUX_SLL2));
            }
        }
        let dlt = cap.get_datalink();
        let link = LinkType::from_dlt(dlt.0).ok_or_else(|| {
            live_err(
                iface,
                format!(
                    "unsupported link type {} ({}); proxyscope reads Ethernet (with VLAN tags), Linux cooked SLL/SLL2, raw IP and BSD loopback",
                    dlt.0,
                    dlt.get_name().unwrap_or_else(|_| "unknown".into())
                ),
            )
        })?;

        if let Some(expr) = &cfg.filter {
            cap.filter(expr, true).map_err(|e| Error::Filter {
                expr: expr.clone(),
                reason: one_line(&e.to_string()),
            })?;
        }

        let first = match (&cfg.write, cfg.rotate) {
            (Some(p), Some(r)) => Some(r.file_name(p, 0)),
            (p, _) => p.clone(),
        };
        let savefile = match &first {
            Some(path) => {
                let what = path.display().to_string();
                // The crate's `savefile` unwraps `to_str()`; refuse non-UTF-8 paths instead.
                if path.to_str().is_none() {
                    return Err(Error::Output {
                        what,
                        reason: "path is not valid UTF-8".into(),
                    });
                }
                Some(cap.savefile(path).map_err(|e| Error::Output {
                    what,
                    reason: one_line(&e.to_string()),
                })?)
            }
            None => None,
        };

        Ok(LiveSource {
            savefile,
            cap,
            fd,
            iface: cfg.iface.clone(),
            files: first.iter().cloned().collect(),
            write_path: first,
            write_base: cfg.write.clone(),
            rotate: cfg.rotate,
            opened_files: 1,
            link,
            nanos,
            frames: 0,
            last_stats: LiveStats::default(),
        })
    }

    /// The framing of every frame this source delivers.
    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Reads until `stop` is true. Each frame goes to `on_frame` (borrowed; numbered 1, 2, ...
    /// within its file) and, when a savefile is configured, is appended to it first. `on_tick`
    /// runs at least every `tick` of wall time, packets or not, with the current wall-clock time,
    /// libpcap's counters and the files written; the savefile is flushed at each tick and on
    /// return. With rotation, a new file is opened before the first packet that follows a packet
    /// that took the current file over the size (tcpdump's `-C`); its frames are numbered from 1
    /// again and carry its `Frame::file` index. Returns `Err` only if libpcap fails to read (e.g.
    /// the interface disappeared) or a savefile cannot be opened or flushed.
    ///
    /// The handle is non-blocking and the wait happens here, in `poll` on libpcap's descriptor,
    /// bounded by [`READ_TIMEOUT_MS`] and the next tick. libpcap's own read timeout cannot be
    /// trusted for this: libpcap 1.10 on Linux in immediate mode (TPACKET_V2) polls again when its
    /// timeout expires instead of returning, so `pcap_next_ex` blocks until a packet arrives
    /// (observed with 1.10.3: on an idle interface it never returns). A signal interrupts our
    /// `poll` (`EINTR`), so Ctrl-C is noticed at once. While packets flow, an emptied ring is
    /// looked at again after [`GATHER`] instead of through `poll`, which would wake at the next
    /// packet.
    pub fn run(
        &mut self,
        stop: &AtomicBool,
        tick: Duration,
        mut on_frame: impl FnMut(&Frame<'_>),
        mut on_tick: impl FnMut(&Tick<'_>),
    ) -> Result<()> {
        let LiveSource {
            savefile,
            cap,
            fd,
            iface,
            write_path,
            write_base,
            rotate,
            files,
            opened_files,
            link,
            nanos,
            frames,
            last_stats,
        } = self;
        let ns_per_subsec = if *nanos { 1 } else { 1_000 };
        let mut next_tick = Instant::now() + tick;
        let out_err = |p: &Option<PathBuf>, e: &dyn std::fmt::Display| Error::Output {
            what: p
                .as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default(),
            reason: one_line(&e.to_string()),
        };
        let flush = |sf: &mut Option<Savefile>, p: &Option<PathBuf>| -> Result<()> {
            match sf {
                Some(sf) => sf.flush().map_err(|e| out_err(p, &e)),
                None => Ok(()),
            }
        };
        let mut written = PCAP_FILE_HEADER;
        let mut file_slot: u16 = 0;
        let mut rotate_due = false;
        // Frames read since the last wait, and since the clock was last read.
        let mut since_wait = 0u64;
        let mut since_clock = 0u64;
        let result = loop {
            if stop.load(Ordering::Relaxed) {
                break Ok(());
            }
            if rotate_due {
                rotate_due = false;
                let (Some(r), Some(base)) = (*rotate, write_base.clone()) else {
                    unreachable!("rotation is only due with a rotation and a file")
                };
                if r.ring_files.is_none() && *opened_files >= MAX_ROTATED_FILES {
                    break Err(Error::Output {
                        what: base.display().to_string(),
                        reason: format!(
                            "{MAX_ROTATED_FILES} files written: give -W N to reuse a ring of N files"
                        ),
                    });
                }
                let index = *opened_files;
                let path = r.file_name(&base, index);
                // Close (and flush) the current file before the next one is created.
                if let Err(e) = flush(savefile, write_path) {
                    break Err(e);
                }
                *savefile = None;
                match cap.savefile(&path) {
                    Ok(sf) => *savefile = Some(sf),
                    Err(e) => break Err(out_err(&Some(path), &e)),
                }
                *opened_files += 1;
                file_slot = r.file_slot(index) as u16;
                match files.get_mut(file_slot as usize) {
                    Some(p) => *p = path.clone(),
                    None => files.push(path.clone()),
                }
                *write_path = Some(path);
                *frames = 0;
                written = PCAP_FILE_HEADER;
            }
            match cap.next_packet() {
                Ok(pkt) => {
                    *frames += 1;
                    since_wait += 1;
                    since_clock += 1;
                    if let Some(sf) = savefile.as_mut() {
                        sf.write(&pkt);
                        written += PCAP_RECORD_HEADER + u64::from(pkt.header.caplen);
                        rotate_due = rotate.is_some_and(|r| written > r.file_bytes);
                    }
                    let h = pkt.header;
                    #[allow(clippy::unnecessary_cast)]
                    // time_t / suseconds_t are not i64 everywhere
                    let ts = Timestamp::from_parts(
                        h.ts.tv_sec as i64,
                        (h.ts.tv_usec as i64) * ns_per_subsec,
                    );
                    on_frame(&Frame {
                        file: file_slot,
                        number: *frames,
                        ts,
                        caplen: h.caplen,
                        wire_len: h.len,
                        link: *link,
                        data: pkt.data,
                    });
                }
                Err(pcap::Error::TimeoutExpired) if since_wait > 0 => {
                    // Packets were flowing: let more gather (see `GATHER`), then read again.
                    since_wait = 0;
                    since_clock = FRAMES_PER_CLOCK_READ;
                    std::thread::sleep(GATHER);
                }
                Err(pcap::Error::TimeoutExpired) => {
                    // Nothing buffered: wait until a packet is readable, a tick is due or the
                    // read timeout passes, whichever comes first.
                    since_clock = FRAMES_PER_CLOCK_READ;
                    let until_tick = next_tick.saturating_duration_since(Instant::now());
                    let wait_ms = until_tick
                        .as_millis()
                        .saturating_add(1)
                        .min(READ_TIMEOUT_MS as u128)
                        as libc::c_int;
                    let mut pfd = libc::pollfd {
                        fd: *fd,
                        events: libc::POLLIN,
                        revents: 0,
                    };
                    // SAFETY: one valid pollfd. Errors (EINTR from Ctrl-C) just end the wait;
                    // a real socket error is reported by the next read.
                    unsafe { libc::poll(&mut pfd, 1, wait_ms) };
                }
                Err(e) => {
                    break Err(live_err(
                        iface,
                        format!("capture failed after frame {}: {}", frames, e),
                    ))
                }
            }
            if since_clock < FRAMES_PER_CLOCK_READ {
                continue;
            }
            since_clock = 0;
            let now = Instant::now();
            if now >= next_tick {
                if let Err(e) = flush(savefile, write_path) {
                    break Err(e);
                }
                let stats = read_stats(cap, last_stats);
                on_tick(&Tick {
                    now: wall_now(),
                    stats,
                    files,
                });
                // Schedule from now, not from the missed deadline: a stalled consumer gets one
                // tick, not a burst of catch-up ticks.
                next_tick = now + tick;
            }
        };
        let flushed = flush(savefile, write_path);
        result.and(flushed)
    }

    /// The files written so far, indexed by `Frame::file`.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// Files opened so far; with a ring of N files, more than N means some were overwritten.
    pub fn opened_files(&self) -> u64 {
        self.opened_files
    }

    /// libpcap's counters (`pcap_stats`) since the interface was opened. If libpcap cannot read
    /// them, the last values read are returned.
    pub fn stats(&mut self) -> LiveStats {
        read_stats(&mut self.cap, &mut self.last_stats)
    }
}

fn read_stats(cap: &mut Capture<Active>, last: &mut LiveStats) -> LiveStats {
    if let Ok(s) = cap.stats() {
        *last = LiveStats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        };
    }
    *last
}

/// Set by the SIGINT/SIGTERM handler; read by the capture loop.
static STOP: AtomicBool = AtomicBool::new(false);

/// The signal handler: async-signal-safe, it only stores into an atomic. `SA_RESETHAND` has
/// already restored the default action, so a second Ctrl-C force-quits.
extern "C" fn on_stop_signal(_sig: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

/// Installs SIGINT and SIGTERM handlers (once) and returns the flag they set. The first signal
/// asks the capture loop to stop (the caller then finishes and reports); the handler is
/// installed with `SA_RESETHAND`, so a second signal of the same kind takes the default action
/// and kills the process, for a user who does not want to wait. `SA_RESTART` keeps ordinary
/// blocking I/O elsewhere from failing with `EINTR`; libpcap's poll is never restarted, so the
/// loop still wakes promptly.
pub fn stop_flag() -> &'static AtomicBool {
    static INSTALL: std::sync::Once = std::sync::Once::new();
    INSTALL.call_once(|| {
        for sig in [libc::SIGINT, libc::SIGTERM] {
            // SAFETY: a zeroed sigaction is valid; the handler is an `extern "C" fn(c_int)` that
            // only stores into a static atomic.
            unsafe {
                let mut sa: libc::sigaction = std::mem::zeroed();
                sa.sa_sigaction = on_stop_signal as extern "C" fn(libc::c_int) as usize;
                sa.sa_flags = libc::SA_RESETHAND | libc::SA_RESTART;
                libc::sigemptyset(&mut sa.sa_mask);
                libc::sigaction(sig, &sa, std::ptr::null_mut());
            }
        }
    });
    &STOP
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode, Decoded};
    use std::io::{Read, Write};
    use std::net::{Shutdown, TcpListener, TcpStream};
    use std::sync::atomic::AtomicU64;

    /// Upper bound for any live test; the tests stop themselves well before.
    const TEST_DEADLINE: Duration = Duration::from_secs(5);
    const TEST_TICK: Duration = Duration::from_millis(20);

    /// The integration tests' skip registry (`target/test-skips/`, summarised by `scripts/test`;
    /// a failure under `CI=true`).
    #[allow(dead_code)]
    mod skip {
        include!(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/common/skip.rs"));
    }

    fn is_root() -> bool {
        // SAFETY: geteuid has no preconditions.
        unsafe { libc::geteuid() == 0 }
    }

    /// True when capture tests can run; otherwise records the skip (a failure under `CI=true`).
    fn root_or_skip() -> bool {
        if is_root() {
            return true;
        }
        skip::skip("not root: live capture tests need root (CAP_NET_RAW)");
        false
    }

    fn cfg(iface: &str, filter: Option<&str>, write: Option<PathBuf>) -> LiveConfig {
        LiveConfig {
            iface: iface.into(),
            filter: filter.map(String::from),
            snaplen: DEFAULT_SNAPLEN,
            buffer_bytes: DEFAULT_BUFFER_BYTES,
            write,
            rotate: None,
        }
    }

    fn open_err(c: &LiveConfig) -> Error {
        match LiveSource::open(c) {
            Ok(_) => panic!("opening {} should fail", c.iface),
            Err(e) => e,
        }
    }

    #[test]
    fn nonexistent_interface_lists_available_ones() {
        let e = open_err(&cfg("nosuchif0", None, None));
        let msg = e.to_string();
        println!("{msg}");
        assert!(
            matches!(e, Error::Live { ref iface, .. } if iface == "nosuchif0"),
            "{e:?}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
        assert!(msg.contains("no such interface"), "{msg}");
        assert!(msg.contains("available: ") && msg.contains("lo"), "{msg}");
    }

    #[test]
    fn activation_failures_are_classified() {
        assert_eq!(classify_activate(-5, ""), OpenFailure::NoSuchDevice);
        assert_eq!(classify_activate(-8, ""), OpenFailure::Permission);
        assert_eq!(
            classify_activate(-1, "socket: Operation not permitted"),
            OpenFailure::Permission
        );
        assert_eq!(
            classify_activate(-1, "You don't have permission to capture on that device"),
            OpenFailure::Permission
        );
        assert_eq!(
            classify_activate(-1, "SIOCGIFHWADDR: No such device"),
            OpenFailure::NoSuchDevice
        );
        assert_eq!(
            classify_activate(-1, "eth9: That device doesn't exist"),
            OpenFailure::NoSuchDevice
        );
        assert_eq!(
            classify_activate(-9, "whatever"),
            OpenFailure::Other("interface is down".into())
        );
    }

    #[test]
    fn bad_filter_names_the_filter() {
        if !root_or_skip() {
            return;
        }
        let e = open_err(&cfg("lo", Some("tcp port nope and ((("), None));
        let msg = e.to_string();
        println!("{msg}");
        assert!(matches!(e, Error::Filter { .. }), "{e:?}");
        assert!(msg.contains("'tcp port nope and ((('"), "{msg}");
        assert!(!msg.contains('\n'), "one line: {msg}");
    }

    #[test]
    fn any_device_uses_sll2() {
        if !root_or_skip() {
            return;
        }
        let src = LiveSource::open(&cfg("any", Some("tcp port 9"), None)).expect("open any");
        assert_eq!(src.link(), LinkType::LinuxSll2);
    }

    #[test]
    fn idle_interface_still_ticks() {
        if !root_or_skip() {
            return;
        }
        // A port this test holds and never connects to: no packet matches, so every tick must
        // come from the bounded wait alone.
        let quiet = TcpListener::bind("127.0.0.1:0").unwrap();
        let filter = format!("tcp port {}", quiet.local_addr().unwrap().port());
        let mut src = LiveSource::open(&cfg("lo", Some(&filter), None)).unwrap();
        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let mut ticks = 0u32;
        let mut last = Timestamp(0);
        src.run(
            &stop,
            TEST_TICK,
            |_| {},
            |t| {
                assert!(t.now > last, "wall clock moves forward");
                last = t.now;
                ticks += 1;
                if ticks == 3 || started.elapsed() > TEST_DEADLINE {
                    stop.store(true, Ordering::Relaxed);
                }
            },
        )
        .unwrap();
        assert_eq!(ticks, 3);
        // Three 20 ms ticks, each at most one read timeout late.
        assert!(
            started.elapsed() < Duration::from_millis(3 * 20 + 3 * READ_TIMEOUT_MS as u64 + 200)
        );
        let wall = wall_now();
        assert!(
            (wall.0 - last.0).abs() < 5 * crate::time::NANOS_PER_SEC,
            "now is wall time"
        );
    }

    /// One TCP connection on loopback (connect, 5 bytes, close both ways); returns the port.
    fn loopback_exchange(listener: TcpListener) -> std::thread::JoinHandle<()> {
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            let server = std::thread::spawn(move || {
                let (mut s, _) = listener.accept().unwrap();
                let mut buf = Vec::new();
                s.read_to_end(&mut buf).unwrap();
                assert_eq!(buf, b"hello");
                // Dropping closes the server side (its FIN).
            });
            let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
            c.write_all(b"hello").unwrap();
            c.shutdown(Shutdown::Write).unwrap();
            let mut rest = Vec::new();
            c.read_to_end(&mut rest).unwrap();
            server.join().unwrap();
        })
    }

    #[test]
    fn loopback_connection_is_captured_numbered_and_written() {
        if !root_or_skip() {
            return;
        }
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let out = std::env::temp_dir().join(format!(
            "proxyscope-live-test-{}-{}.pcap",
            std::process::id(),
            port
        ));
        let filter = format!("tcp port {port}");
        let mut src =
            LiveSource::open(&cfg("lo", Some(&filter), Some(out.clone()))).expect("open lo");
        assert_eq!(src.link(), LinkType::Ethernet);

        // The socket is open, so the kernel queues the connection's packets until `run` reads.
        let client = loopback_exchange(listener);

        let stop = AtomicBool::new(false);
        let started = Instant::now();
        let mut numbers = Vec::new();
        let mut first_data: Option<Vec<u8>> = None;
        let mut fins = 0u32;
        let after_last_fin = AtomicU64::new(0);
        let mut payload = 0u32;
        let mut ticks = 0u32;
        src.run(
            &stop,
            TEST_TICK,
            |f| {
                numbers.push(f.number);
                assert_eq!(f.file, 0);
                assert_eq!(f.link, LinkType::Ethernet);
                assert_eq!(f.data.len(), f.caplen as usize);
                assert!(f.ts.0 > 0);
                if first_data.is_none() {
                    first_data = Some(f.data.to_vec());
                }
                match decode(f.link, f.data) {
                    Decoded::Tcp(seg) => {
                        assert!(seg.sport == port || seg.dport == port, "{seg:?}");
                        payload += seg.payload_len;
                        if fins >= 2 {
                            after_last_fin.fetch_add(1, Ordering::Relaxed);
                        }
                        if seg.has(crate::decode::flags::FIN) {
                            fins += 1;
                        }
                    }
                    other => panic!("frame {} is not TCP: {other:?}", f.number),
                }
            },
            |_t| {
                ticks += 1;
                // Done once the last ACK (after both FINs) was read, and at least one tick ran.
                if after_last_fin.load(Ordering::Relaxed) > 0 || started.elapsed() > TEST_DEADLINE {
                    stop.store(true, Ordering::Relaxed);
                }
            },
        )
        .unwrap();
        client.join().unwrap();

        let n = numbers.len() as u64;
        assert!(
            n >= 7,
            "handshake, data, two FINs, final ACK: got {n} frames"
        );
        assert_eq!(numbers, (1..=n).collect::<Vec<_>>(), "numbered 1..");
        assert_eq!(fins, 2);
        assert_eq!(payload, 5);
        assert!(ticks >= 1);
        let st = src.stats();
        assert!(st.received >= n, "{st:?} vs {n} frames");
        assert_eq!(st.dropped, 0);
        drop(src);

        let mut set =
            crate::capture::OfflineSet::open(std::slice::from_ref(&out), None).expect("re-read");
        let mut reread = 0u64;
        let mut reread_first: Option<Vec<u8>> = None;
        set.run(|f| {
            reread += 1;
            assert_eq!(f.number, reread);
            if reread_first.is_none() {
                reread_first = Some(f.data.to_vec());
            }
        });
        let info = &set.infos()[0];
        assert_eq!(info.link, Some(LinkType::Ethernet));
        assert_eq!(info.snaplen, DEFAULT_SNAPLEN as u32);
        std::fs::remove_file(&out).ok();
        assert_eq!(reread, n);
        assert_eq!(reread_first, first_data);
    }

    /// Env var that turns `permission_child` into the unprivileged half of `unprivileged_open_*`.
    const PERM_CHILD_ENV: &str = "PROXYSCOPE_LIVE_PERM_CHILD";
    /// Printed by a child helper once all its checks passed; its parent looks for it.
    const CHILD_DONE: &str = "CHILD HELPER DONE:";

    /// What an unprivileged open must say: the missing capability and the `setcap` fix, in one
    /// line; a typo in the interface name is still reported as a typo.
    fn check_unprivileged_open() {
        let e = open_err(&cfg("lo", None, None));
        let msg = e.to_string();
        println!("{msg}");
        assert!(matches!(e, Error::Live { .. }), "{e:?}");
        assert!(
            msg.contains("CAP_NET_RAW") && msg.contains("setcap"),
            "{msg}"
        );
        assert!(!msg.contains('\n'), "one line: {msg}");
        let e = open_err(&cfg("nosuchif0", None, None)).to_string();
        assert!(e.contains("no such interface"), "{e}");
    }

    /// Runs the `#[ignore]`d child helper `name` of this test binary (`--ignored --exact`, with
    /// `env` set), through `wrapper` (e.g. setpriv) when given; returns its exit status and
    /// stdout. The caller checks that the child really ran.
    fn run_child(
        wrapper: &[&str],
        name: &str,
        env: (&str, &str),
    ) -> (std::process::ExitStatus, String) {
        let exe = std::env::current_exe().unwrap();
        let mut cmd = match wrapper.split_first() {
            Some((prog, args)) => {
                let mut c = std::process::Command::new(prog);
                c.args(args).arg(&exe);
                c
            }
            None => std::process::Command::new(&exe),
        };
        let out = cmd
            .args([
                "--ignored",
                "--exact",
                name,
                "--test-threads=1",
                "--nocapture",
            ])
            .env(env.0, env.1)
            .stderr(std::process::Stdio::inherit())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {:?} {}: {e}", wrapper, exe.display()));
        (
            out.status,
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// libtest ran exactly the test `name`, and it passed.
    #[track_caller]
    fn assert_child_passed(name: &str, status: std::process::ExitStatus, stdout: &str) {
        assert!(
            status.success(),
            "child {name} failed ({status}):\n{stdout}"
        );
        assert!(
            // (--nocapture: the child's own output sits between "test NAME ..." and "ok".)
            stdout.contains(&format!("test {name} ...")) && stdout.contains(" 1 passed;"),
            "child {name} did not run (renamed? not ignored?):\n{stdout}"
        );
        assert!(
            stdout.contains(&format!("{CHILD_DONE} {name}")),
            "child {name} returned before its checks:\n{stdout}"
        );
    }

    /// Child helper of `unprivileged_open_explains_setcap`, run as `nobody` through setpriv.
    #[test]
    #[ignore = "child helper: run by unprivileged_open_explains_setcap"]
    fn permission_child() {
        if std::env::var_os(PERM_CHILD_ENV).is_none() {
            println!(
                "permission_child: only meaningful when run by unprivileged_open_explains_setcap"
            );
            return;
        }
        check_unprivileged_open();
        println!("{CHILD_DONE} capture::live::tests::permission_child");
    }

    #[test]
    fn unprivileged_open_explains_setcap() {
        if !is_root() {
            // Unprivileged already: check directly.
            check_unprivileged_open();
            return;
        }
        // Re-run `permission_child` as `nobody` with no capabilities. setpriv (util-linux) is
        // part of every Debian/Ubuntu base system: missing, this check fails rather than skips.
        let name = "capture::live::tests::permission_child";
        let (status, stdout) = run_child(
            &[
                "setpriv",
                "--reuid=65534",
                "--regid=65534",
                "--clear-groups",
                "--",
            ],
            name,
            (PERM_CHILD_ENV, "1"),
        );
        assert_child_passed(name, status, &stdout);
    }

    /// Env var that turns `signal_child` into the child half of `first_ctrl_c_stops_second_kills`;
    /// its value is a marker file the child writes once the first Ctrl-C set the flag.
    const SIGNAL_CHILD_ENV: &str = "PROXYSCOPE_LIVE_SIGNAL_CHILD";

    /// Child helper of `first_ctrl_c_stops_second_kills` (killed by its own second SIGINT).
    #[test]
    #[ignore = "child helper: run by first_ctrl_c_stops_second_kills"]
    fn signal_child() {
        let Some(marker) = std::env::var_os(SIGNAL_CHILD_ENV) else {
            println!("signal_child: only meaningful when run by first_ctrl_c_stops_second_kills");
            return;
        };
        let flag = stop_flag();
        assert!(!flag.load(Ordering::SeqCst));
        // SAFETY: raise has no preconditions; our handler only stores into an atomic.
        unsafe { libc::raise(libc::SIGINT) };
        assert!(flag.load(Ordering::SeqCst), "first Ctrl-C sets the flag");
        std::fs::write(&marker, "first SIGINT set the stop flag\n").unwrap();
        // The second one must take the default action and kill this process.
        unsafe { libc::raise(libc::SIGINT) };
        panic!("second Ctrl-C did not terminate the process");
    }

    #[test]
    fn first_ctrl_c_stops_second_kills() {
        use std::os::unix::process::ExitStatusExt;
        // In a child process: the handlers are process-wide and the second signal is fatal.
        let marker = std::env::temp_dir().join(format!(
            "proxyscope-signal-child-{}.marker",
            std::process::id()
        ));
        let _ = std::fs::remove_file(&marker);
        let name = "capture::live::tests::signal_child";
        let (status, stdout) = run_child(&[], name, (SIGNAL_CHILD_ENV, marker.to_str().unwrap()));
        let wrote = std::fs::read_to_string(&marker);
        let _ = std::fs::remove_file(&marker);
        // The marker proves the helper (not a renamed or missing test) ran up to the first signal.
        assert!(
            wrote.is_ok(),
            "child {name} did not run or did not get past the first SIGINT (renamed? not \
             ignored?): {status}\n{stdout}"
        );
        assert_eq!(status.signal(), Some(libc::SIGINT), "{status}\n{stdout}");
    }
}
