//! `proxyscope flows`: one row/object per TCP connection. The JSON schema is documented in
//! `docs/flows-schema.md`.
//!
//! JSON is streamed: each connection is written when it ends, reordered into first-frame order
//! through a bounded buffer (`REORDER_MAX`), so memory stays bounded by concurrent connections
//! rather than by the capture's size. The table is streamed too, in pages of `TABLE_PAGE` rows
//! (each page is its own table with its header; the summary line then comes last).

use crate::app::text::ShortText;
use crate::flow::{Direction, FlowSummary, HistoryText};
use crate::time::{write_human_duration, Timestamp};
use serde::Serialize;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::io::{self, Write};
use std::path::PathBuf;

/// Connections held back at most to restore first-frame order; beyond it the oldest pending one
/// is written out of order (only when a connection stays open while this many others finish).
pub const REORDER_MAX: usize = 8_192;

/// One connection in the `flows` JSON output (schema version 1).
#[derive(Clone, Debug, Serialize, PartialEq, Eq, PartialOrd, Ord)]
pub struct FlowRow {
    pub id: u64,
    pub orig: ShortText,
    pub resp: ShortText,
    pub conn_state: &'static str,
    pub history: HistoryText,
    pub orig_pkts: u64,
    pub resp_pkts: u64,
    pub orig_bytes: u64,
    pub resp_bytes: u64,
    /// Retransmissions of both directions (Wireshark's retransmission + fast + spurious),
    /// capture duplicates excluded.
    pub retransmissions: u32,
    pub fast_retransmissions: u32,
    pub spurious_retransmissions: u32,
    pub max_segment_retransmits: u32,
    pub out_of_order: u32,
    pub capture_duplicates: u32,
    pub zero_windows: u32,
    pub syn_count: u32,
    pub first_frame: u64,
    pub last_frame: u64,
    /// File of the first frame (only with several input files).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    pub start: ShortText,
    /// Seconds from first to last frame, as a decimal string-free number.
    pub duration: Duration6,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rtt: Option<Duration6>,
    pub partial: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_from: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rst_frame: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_fin_from: Option<&'static str>,
    pub port_reused: bool,
    pub end_reason: &'static str,
}

/// A row's address or start time as `Display` writes it, byte for byte (tested), but without a
/// `String`: one each cost an allocation, a `fmt` pass and a free per connection, a fifth of
/// `flows`' CPU time on capture B. IPv4 addresses and times are written by hand, IPv6 addresses
/// through `fmt` into the same buffer; the text is then kept inline (`ShortText`: up to 30
/// bytes, which every IPv4 address and every time fits).
fn addr_text(a: &std::net::SocketAddr) -> ShortText {
    let mut t = TextBuf::default();
    match a {
        std::net::SocketAddr::V4(v4) => {
            for (i, o) in v4.ip().octets().into_iter().enumerate() {
                if i > 0 {
                    t.push(b".");
                }
                t.push_padded(o as u64, 1);
            }
            t.push(b":");
            t.push_padded(v4.port() as u64, 1);
        }
        std::net::SocketAddr::V6(_) => {
            use std::fmt::Write;
            // Cannot fail: `TEXT_BUF` holds the longest.
            let _ = write!(t, "{}", a);
        }
    }
    ShortText::new(t.as_str())
}

/// `ts` as `Timestamp`'s `Display` (RFC 3339, microseconds, UTC) writes it (see `addr_text`).
fn time_text(ts: Timestamp) -> ShortText {
    let (y, mo, d, h, mi, s, micros) = ts.civil();
    let mut t = TextBuf::default();
    if !(0..=9999).contains(&y) {
        use std::fmt::Write;
        let _ = write!(t, "{}", ts);
    } else {
        for (v, width, then) in [
            (y as u64, 4, b"-"),
            (mo as u64, 2, b"-"),
            (d as u64, 2, b"T"),
            (h as u64, 2, b":"),
            (mi as u64, 2, b":"),
            (s as u64, 2, b"."),
            (micros as u64, 6, b"Z"),
        ] {
            t.push_padded(v, width);
            t.push(then);
        }
    }
    ShortText::new(t.as_str())
}

/// The longest `SocketAddr` text: `[` 45-byte IPv6 `%` 10-digit scope `]:` 5-digit port.
const TEXT_BUF: usize = 64;

/// A stack buffer the two functions above write into (ASCII only, or whole `&str`s).
struct TextBuf {
    buf: [u8; TEXT_BUF],
    len: usize,
}

impl Default for TextBuf {
    fn default() -> Self {
        TextBuf {
            buf: [0; TEXT_BUF],
            len: 0,
        }
    }
}

impl TextBuf {
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }

    /// Appends `b` if it fits whole (it always does: `TEXT_BUF` holds the longest text).
    fn push(&mut self, b: &[u8]) -> bool {
        let Some(dst) = self.buf.get_mut(self.len..self.len + b.len()) else {
            return false;
        };
        dst.copy_from_slice(b);
        self.len += b.len();
        true
    }

    /// `v` with at least `width` digits, zero-padded (`{:0width$}` of a non-negative number).
    fn push_padded(&mut self, v: u64, width: usize) {
        let mut buf = [0u8; 20];
        let digits = decimal(v, &mut buf);
        for _ in digits.len()..width {
            self.push(b"0");
        }
        self.push(digits);
    }
}

impl std::fmt::Write for TextBuf {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.push(s.as_bytes()) {
            Ok(())
        } else {
            Err(std::fmt::Error)
        }
    }
}

/// Seconds with microsecond precision, serialized as a JSON number.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Duration6(pub i64);

impl Serialize for Duration6 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Round to microseconds so the number prints without float noise.
        let micros = (self.0 + 500) / 1000;
        s.serialize_f64(micros as f64 / 1e6)
    }
}

fn dir_name(d: Direction) -> &'static str {
    match d {
        Direction::Orig => "orig",
        Direction::Resp => "resp",
    }
}

impl FlowRow {
    pub fn from_summary(s: &FlowSummary, files: &[PathBuf]) -> FlowRow {
        let o = &s.orig_stats;
        let r = &s.resp_stats;
        FlowRow {
            id: s.id,
            orig: addr_text(&s.orig),
            resp: addr_text(&s.resp),
            conn_state: s.conn_state.name(),
            history: s.history,
            orig_pkts: o.pkts,
            resp_pkts: r.pkts,
            orig_bytes: o.bytes,
            resp_bytes: r.bytes,
            retransmissions: s.retransmissions(),
            fast_retransmissions: o.fast_retransmissions + r.fast_retransmissions,
            spurious_retransmissions: o.spurious_retransmissions + r.spurious_retransmissions,
            max_segment_retransmits: s.max_segment_retransmits(),
            out_of_order: o.out_of_order + r.out_of_order,
            capture_duplicates: s.capture_duplicates(),
            zero_windows: o.zero_windows + r.zero_windows,
            syn_count: s.syn_count,
            first_frame: s.first.number,
            last_frame: s.last.number,
            file: (files.len() > 1).then(|| files[s.first.file as usize].display().to_string()),
            start: time_text(s.start),
            duration: Duration6(s.duration_ns()),
            rtt: s.rtt_ns.map(Duration6),
            partial: s.partial,
            rst_from: s.rst.map(|r| dir_name(r.from)),
            rst_frame: s.rst.map(|r| r.frame.number),
            first_fin_from: s.first_fin_from.map(dir_name),
            port_reused: s.port_reused,
            end_reason: match s.end_reason {
                crate::flow::EndReason::Closed => "closed",
                crate::flow::EndReason::Idle => "idle",
                crate::flow::EndReason::Superseded => "superseded",
                crate::flow::EndReason::CaptureEnd => "capture-end",
                crate::flow::EndReason::Evicted => "evicted",
            },
        }
    }
}

impl FlowRow {
    /// Appends the row as `serde_json::to_writer` writes it, byte for byte (tested against it),
    /// without serde's per-key escaping and number formatting machinery: `flows` writes
    /// hundreds of thousands of rows.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json_uint(out, self.id);
        out.extend_from_slice(b",\"orig\":");
        json_text(out, &self.orig);
        out.extend_from_slice(b",\"resp\":");
        json_text(out, &self.resp);
        out.extend_from_slice(b",\"conn_state\":");
        json_str(out, self.conn_state);
        out.extend_from_slice(b",\"history\":");
        json_str(out, self.history.as_str());
        for (k, v) in [
            (&b",\"orig_pkts\":"[..], self.orig_pkts),
            (b",\"resp_pkts\":", self.resp_pkts),
            (b",\"orig_bytes\":", self.orig_bytes),
            (b",\"resp_bytes\":", self.resp_bytes),
            (b",\"retransmissions\":", self.retransmissions.into()),
            (
                b",\"fast_retransmissions\":",
                self.fast_retransmissions.into(),
            ),
            (
                b",\"spurious_retransmissions\":",
                self.spurious_retransmissions.into(),
            ),
            (
                b",\"max_segment_retransmits\":",
                self.max_segment_retransmits.into(),
            ),
            (b",\"out_of_order\":", self.out_of_order.into()),
            (b",\"capture_duplicates\":", self.capture_duplicates.into()),
            (b",\"zero_windows\":", self.zero_windows.into()),
            (b",\"syn_count\":", self.syn_count.into()),
            (b",\"first_frame\":", self.first_frame),
            (b",\"last_frame\":", self.last_frame),
        ] {
            out.extend_from_slice(k);
            json_uint(out, v);
        }
        if let Some(f) = &self.file {
            out.extend_from_slice(b",\"file\":");
            json_str(out, f);
        }
        out.extend_from_slice(b",\"start\":");
        json_text(out, &self.start);
        out.extend_from_slice(b",\"duration\":");
        json_value(out, &self.duration);
        if let Some(rtt) = &self.rtt {
            out.extend_from_slice(b",\"rtt\":");
            json_value(out, rtt);
        }
        out.extend_from_slice(b",\"partial\":");
        out.extend_from_slice(if self.partial { b"true" } else { b"false" });
        if let Some(from) = self.rst_from {
            out.extend_from_slice(b",\"rst_from\":");
            json_str(out, from);
        }
        if let Some(frame) = self.rst_frame {
            out.extend_from_slice(b",\"rst_frame\":");
            json_uint(out, frame);
        }
        if let Some(from) = self.first_fin_from {
            out.extend_from_slice(b",\"first_fin_from\":");
            json_str(out, from);
        }
        out.extend_from_slice(b",\"port_reused\":");
        out.extend_from_slice(if self.port_reused { b"true" } else { b"false" });
        out.extend_from_slice(b",\"end_reason\":");
        json_str(out, self.end_reason);
        out.push(b'}');
    }
}

/// `v` in decimal.
fn json_uint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    out.extend_from_slice(decimal(v, &mut buf));
}

/// `v` in decimal, appended to a string.
fn push_uint(out: &mut String, v: u64) {
    let mut buf = [0u8; 20];
    let digits = decimal(v, &mut buf);
    out.push_str(std::str::from_utf8(digits).expect("ASCII digits"));
}

/// "00", "01", … "99": two digits a step halve `decimal`'s divisions (it was 4 % of `flows`'
/// instructions on capture B).
const DIGIT_PAIRS: [u8; 200] = {
    let mut t = [0u8; 200];
    let mut i = 0;
    while i < 100 {
        t[2 * i] = b'0' + (i / 10) as u8;
        t[2 * i + 1] = b'0' + (i % 10) as u8;
        i += 1;
    }
    t
};

/// `v`'s decimal digits, written at the end of `buf`.
fn decimal(mut v: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&DIGIT_PAIRS[d..d + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    &buf[i..]
}

/// `s` as a JSON string: copied between quotes when nothing in it needs an escape, else
/// escaped by serde_json.
fn json_str(out: &mut Vec<u8>, s: &str) {
    json_quoted(out, s.as_bytes(), || s);
}

/// `json_str` of a `ShortText`, reading its bytes without the UTF-8 check of `as_str` (they
/// are a whole `str`'s); the check runs only when something needs an escape.
fn json_text(out: &mut Vec<u8>, t: &ShortText) {
    json_quoted(out, t.as_bytes(), || t.as_str());
}

/// The bytes `b` of a text between quotes when none needs an escape; else the text (`text`)
/// escaped by serde_json.
fn json_quoted<'a>(out: &mut Vec<u8>, b: &[u8], text: impl FnOnce() -> &'a str) {
    if b.iter().all(|&b| b >= 0x20 && b != b'"' && b != b'\\') {
        out.push(b'"');
        out.extend_from_slice(b);
        out.push(b'"');
    } else {
        json_value(out, text());
    }
}

/// Anything else as serde_json writes it.
fn json_value<T: Serialize + ?Sized>(out: &mut Vec<u8>, v: &T) {
    serde_json::to_writer(out, v).expect("writing JSON to memory");
}

/// Restores first-frame (id) order of rows that arrive in end order, holding at most
/// `REORDER_MAX` rows. The rows stay where they were put (`slots`); only their ids move in the
/// heap, so a held row is not copied at every push and pop.
#[derive(Default)]
pub struct Reorder {
    pending: BinaryHeap<Reverse<(u64, u32)>>,
    slots: Vec<Option<FlowRow>>,
    free: Vec<u32>,
    next_id: u64,
}

impl Reorder {
    /// Adds a row; passes every row that is now in order (or held too long) to `emit`.
    pub fn push(
        &mut self,
        row: FlowRow,
        mut emit: impl FnMut(FlowRow) -> io::Result<()>,
    ) -> io::Result<()> {
        if row.id <= self.next_id && self.pending.is_empty() {
            // In order and nothing held: no need to hold it.
            self.next_id = self.next_id.max(row.id + 1);
            return emit(row);
        }
        let id = row.id;
        let slot = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = Some(row);
                i
            }
            None => {
                self.slots.push(Some(row));
                (self.slots.len() - 1) as u32
            }
        };
        self.pending.push(Reverse((id, slot)));
        while let Some(&Reverse((top, _))) = self.pending.peek() {
            if top > self.next_id && self.pending.len() <= REORDER_MAX {
                break;
            }
            let row = self.pop();
            self.next_id = self.next_id.max(row.id + 1);
            emit(row)?;
        }
        Ok(())
    }

    /// The held row with the lowest id.
    fn pop(&mut self) -> FlowRow {
        let Reverse((_, slot)) = self.pending.pop().expect("a held row");
        self.free.push(slot);
        self.slots[slot as usize].take().expect("a held row's slot")
    }

    /// Passes every held row to `emit`, in order.
    pub fn finish(&mut self, mut emit: impl FnMut(FlowRow) -> io::Result<()>) -> io::Result<()> {
        while !self.pending.is_empty() {
            let row = self.pop();
            emit(row)?;
        }
        Ok(())
    }
}

/// Writes rows in id order as they arrive, as one JSON array.
pub struct JsonStream<W: Write> {
    out: W,
    /// One row's bytes, reused.
    line: Vec<u8>,
    order: Reorder,
    written: u64,
    pub error: Option<io::Error>,
}

impl<W: Write> JsonStream<W> {
    pub fn new(out: W) -> JsonStream<W> {
        JsonStream {
            out,
            line: Vec::new(),
            order: Reorder::default(),
            written: 0,
            error: None,
        }
    }

    pub fn push(&mut self, row: FlowRow) {
        if self.error.is_some() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        if let Err(e) = order.push(row, |r| self.write_row(&r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    fn write_row(&mut self, row: &FlowRow) -> io::Result<()> {
        self.line.clear();
        self.line.extend_from_slice(if self.written == 0 {
            b"[\n  "
        } else {
            b",\n  "
        });
        row.write_json(&mut self.line);
        self.out.write_all(&self.line)?;
        self.written += 1;
        Ok(())
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| self.write_row(&r))?;
        self.out
            .write_all(if self.written == 0 { b"[]\n" } else { b"\n]\n" })?;
        self.out.flush()
    }
}

/// Writes rows in id order as they arrive, one JSON object per line (`--format ndjson`): the
/// same objects as the JSON array, so `jq` can read them one at a time.
pub struct NdjsonStream<W: Write> {
    out: W,
    /// One row's bytes, reused.
    line: Vec<u8>,
    order: Reorder,
    pub error: Option<io::Error>,
}

impl<W: Write> NdjsonStream<W> {
    pub fn new(out: W) -> NdjsonStream<W> {
        NdjsonStream {
            out,
            line: Vec::new(),
            order: Reorder::default(),
            error: None,
        }
    }

    pub fn push(&mut self, row: FlowRow) {
        if self.error.is_some() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        if let Err(e) = order.push(row, |r| ndjson_line(&mut self.out, &mut self.line, &r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| ndjson_line(&mut self.out, &mut self.line, &r))?;
        self.out.flush()
    }
}

fn ndjson_line<W: Write>(out: &mut W, line: &mut Vec<u8>, row: &FlowRow) -> io::Result<()> {
    line.clear();
    row.write_json(line);
    line.push(b'\n');
    out.write_all(line)
}

/// The columns of Zeek's `conn.log` (`base/protocols/conn/main.zeek`, `Conn::Info`), in its
/// order, with their Zeek types.
pub const CONN_LOG_FIELDS: [(&str, &str); 21] = [
    ("ts", "time"),
    ("uid", "string"),
    ("id.orig_h", "addr"),
    ("id.orig_p", "port"),
    ("id.resp_h", "addr"),
    ("id.resp_p", "port"),
    ("proto", "enum"),
    ("service", "string"),
    ("duration", "interval"),
    ("orig_bytes", "count"),
    ("resp_bytes", "count"),
    ("conn_state", "string"),
    ("local_orig", "bool"),
    ("local_resp", "bool"),
    ("missed_bytes", "count"),
    ("history", "string"),
    ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"),
    ("resp_pkts", "count"),
    ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
];

/// Zeek's ASCII log header for `conn.log` (without `#open`: proxyscope reads no wall clock).
pub fn conn_log_header() -> String {
    let names: Vec<&str> = CONN_LOG_FIELDS.iter().map(|f| f.0).collect();
    let types: Vec<&str> = CONN_LOG_FIELDS.iter().map(|f| f.1).collect();
    format!(
        "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n#fields\t{}\n#types\t{}\n",
        names.join("\t"),
        types.join("\t")
    )
}

/// One `conn.log` line for `row`. Fields proxyscope does not compute (`service`, `local_orig`,
/// `local_resp`, `missed_bytes`, `orig_ip_bytes`, `resp_ip_bytes`, `tunnel_parents`) are unset
/// (`-`); `uid` is `C` followed by the connection id (Zeek's are random).
pub fn conn_log_line(row: &FlowRow) -> String {
    let split = |ep: &str| -> (String, String) {
        match ep.parse::<std::net::SocketAddr>() {
            Ok(a) => (a.ip().to_string(), a.port().to_string()),
            Err(_) => (ep.to_string(), "-".to_string()),
        }
    };
    let (oh, op) = split(&row.orig);
    let (rh, rp) = split(&row.resp);
    let ts = crate::time::parse_rfc3339(&row.start)
        .map(|t| format!("{:.6}", t.epoch_secs()))
        .unwrap_or_else(|_| "-".into());
    let micros = (row.duration.0 + 500) / 1000;
    let history = if row.history.is_empty() {
        "-".to_string()
    } else {
        row.history.to_string()
    };
    [
        ts,
        format!("C{}", row.id),
        oh,
        op,
        rh,
        rp,
        "tcp".into(),
        "-".into(),
        format!("{}.{:06}", micros / 1_000_000, micros % 1_000_000),
        row.orig_bytes.to_string(),
        row.resp_bytes.to_string(),
        row.conn_state.to_string(),
        "-".into(),
        "-".into(),
        "-".into(),
        history,
        row.orig_pkts.to_string(),
        "-".into(),
        row.resp_pkts.to_string(),
        "-".into(),
        "-".into(),
    ]
    .join("\t")
}

/// Writes rows in id order as they arrive, as Zeek's `conn.log` (`--format conn-log`).
pub struct ConnLogStream<W: Write> {
    out: W,
    order: Reorder,
    header_written: bool,
    pub error: Option<io::Error>,
}

impl<W: Write> ConnLogStream<W> {
    pub fn new(out: W) -> ConnLogStream<W> {
        ConnLogStream {
            out,
            order: Reorder::default(),
            header_written: false,
            error: None,
        }
    }

    fn line(&mut self, row: &FlowRow) -> io::Result<()> {
        if !self.header_written {
            self.header_written = true;
            self.out.write_all(conn_log_header().as_bytes())?;
        }
        self.out.write_all(conn_log_line(row).as_bytes())?;
        self.out.write_all(b"\n")
    }

    pub fn push(&mut self, row: FlowRow) {
        if self.error.is_some() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        if let Err(e) = order.push(row, |r| self.line(&r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| self.line(&r))?;
        if !self.header_written {
            self.out.write_all(conn_log_header().as_bytes())?;
        }
        self.out.flush()
    }
}

/// Rows per page of the streamed table.
pub const TABLE_PAGE: usize = 1_000;

/// The table, streamed: with at most `TABLE_PAGE` connections the output is exactly
/// `header` + `table(rows)`; with more, full pages are written as they fill (each a table with
/// its own header) and the header line comes last. Holds at most `REORDER_MAX` rows, and the
/// cell texts of one page: a row's cells are written when it arrives, and the page's cells and
/// text buffers are reused from page to page.
pub struct TableStream<W: Write> {
    out: W,
    color: bool,
    width: Option<usize>,
    order: Reorder,
    page: Page,
    /// A laid-out page, reused.
    text: String,
    paged: bool,
    pub rows: u64,
    pub error: Option<io::Error>,
}

impl<W: Write> TableStream<W> {
    pub fn new(out: W, color: bool, width: Option<usize>) -> TableStream<W> {
        TableStream {
            out,
            color,
            width,
            order: Reorder::default(),
            page: Page::default(),
            text: String::new(),
            paged: false,
            rows: 0,
            error: None,
        }
    }

    pub fn push(&mut self, row: FlowRow) {
        self.rows += 1;
        if self.error.is_some() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        if let Err(e) = order.push(row, |r| self.add(&r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    fn add(&mut self, row: &FlowRow) -> io::Result<()> {
        if !self.paged && self.page.rows() == TABLE_PAGE {
            // More than one page: from now on pages are written as they fill.
            self.flush_page()?;
            self.paged = true;
        }
        self.page.add(row, self.color);
        if self.paged && self.page.rows() == TABLE_PAGE {
            self.flush_page()?;
        }
        Ok(())
    }

    fn flush_page(&mut self) -> io::Result<()> {
        self.text.clear();
        self.page.render(&mut self.text, self.width);
        self.page.clear();
        self.out.write_all(self.text.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes what is left; `header` is the summary line (first when there was one page only).
    pub fn finish(mut self, header: &str) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| self.add(&r))?;
        if !self.paged {
            self.out.write_all(header.as_bytes())?;
            self.out.write_all(b"\n")?;
            self.flush_page()?;
        } else {
            if self.page.rows() > 0 {
                self.flush_page()?;
            }
            self.out.write_all(header.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

/// The flows table's columns: header, right-aligned.
const COLUMNS: [(&str, bool); 9] = [
    ("orig", false),
    ("resp", false),
    ("state", false),
    ("history", false),
    ("pkts o/r", true),
    ("bytes o/r", true),
    ("retx", true),
    ("duration", true),
    ("first frame", true),
];

/// The terminal table: one row per connection, in first-frame order, in the box style of the
/// `analyze` table. Columns are as wide as their widest cell; with a `width`, a table wider than
/// it first wraps its header words, then narrows its widest columns (their cells wrap, at
/// spaces if they can). Without one (standard output is a pipe and `COLUMNS` is unset), nothing
/// wraps, so every address stays on one line for `grep`.
///
/// Written by hand rather than with comfy-table: `flows` writes a table of hundreds of
/// thousands of rows, and laying out each page with comfy-table took most of its time.
pub fn table(rows: &[FlowRow], color: bool, width: Option<usize>) -> String {
    let mut page = Page::default();
    for r in rows {
        page.add(r, color);
    }
    let mut out = String::new();
    page.render(&mut out, width);
    out
}

/// The rows of one table: their cells' texts, their ids and their state colours.
#[derive(Default)]
struct Page {
    cells: Cells,
    ids: Vec<u64>,
    colors: Vec<Option<&'static str>>,
    /// Row indices in id order (reused).
    order: Vec<u32>,
}

impl Page {
    fn add(&mut self, r: &FlowRow, color: bool) {
        self.cells.row(r);
        self.ids.push(r.id);
        self.colors.push(if color {
            state_color(r.conn_state)
        } else {
            None
        });
    }

    fn rows(&self) -> usize {
        self.ids.len()
    }

    fn clear(&mut self) {
        self.cells.text.clear();
        self.cells.ends.clear();
        self.ids.clear();
        self.colors.clear();
    }

    /// Appends the table of these rows, in id order (rows come in id order but for those the
    /// reorder buffer let go of early), to `out`; without the last newline (the caller ends the
    /// table).
    fn render(&mut self, out: &mut String, width: Option<usize>) {
        self.order.clear();
        self.order.extend(0..self.rows() as u32);
        if !self.ids.is_sorted() {
            let ids = &self.ids;
            self.order.sort_by_key(|&i| ids[i as usize]);
        }
        let cells = &self.cells;
        let widths = layout(cells, width);
        out.reserve(cells.text.len() * 2);
        rule(out, &widths, ['┌', '─', '┬', '┐']);
        let header: [&str; 9] = std::array::from_fn(|c| COLUMNS[c].0);
        line(out, &widths, &header, &[None; 9]);
        rule(out, &widths, ['╞', '═', '╪', '╡']);
        for &i in &self.order {
            let i = i as usize;
            let texts: [&str; 9] = std::array::from_fn(|c| cells.get(i, c));
            let mut colors = [None; 9];
            colors[2] = self.colors[i];
            line(out, &widths, &texts, &colors);
        }
        rule(out, &widths, ['└', '─', '┴', '┘']);
        out.pop(); // the last newline
    }
}

/// The colour of a connection state (comfy-table's escapes for red and yellow).
fn state_color(state: &str) -> Option<&'static str> {
    match state {
        "REJ" | "S0" | "RSTOS0" => Some("\x1b[38;5;9m"),
        "RSTO" | "RSTR" | "RSTRH" => Some("\x1b[38;5;11m"),
        _ => None,
    }
}

/// A page's cell texts in one buffer: cell `c` of row `r` is
/// `text[ends[9r + c - 1]..ends[9r + c]]`.
#[derive(Default)]
struct Cells {
    text: String,
    ends: Vec<usize>,
}

impl Cells {
    fn row(&mut self, r: &FlowRow) {
        let t = &mut self.text;
        let ends = &mut self.ends;
        let mut end = |t: &String| ends.push(t.len());
        t.push_str(&r.orig);
        end(t);
        t.push_str(&r.resp);
        end(t);
        t.push_str(r.conn_state);
        if r.partial {
            t.push_str(" (partial)");
        }
        end(t);
        t.push_str(r.history.as_str());
        end(t);
        push_uint(t, r.orig_pkts);
        t.push('/');
        push_uint(t, r.resp_pkts);
        end(t);
        push_uint(t, r.orig_bytes);
        t.push('/');
        push_uint(t, r.resp_bytes);
        end(t);
        push_uint(t, r.retransmissions.into());
        if r.retransmissions > 0 {
            t.push_str(" (max ");
            push_uint(t, r.max_segment_retransmits.into());
            t.push_str("×)");
        }
        end(t);
        write_human_duration(t, r.duration.0);
        end(t);
        if let Some(f) = &r.file {
            t.push_str(&super::escape::terminal(f));
            t.push('#');
        }
        push_uint(t, r.first_frame);
        end(t);
    }

    fn get(&self, row: usize, col: usize) -> &str {
        let k = row * COLUMNS.len() + col;
        let start = if k == 0 { 0 } else { self.ends[k - 1] };
        &self.text[start..self.ends[k]]
    }

    fn rows(&self) -> usize {
        self.ends.len() / COLUMNS.len()
    }
}

/// Characters on screen (every cell is escaped for the terminal; none holds a wide character
/// but a file name might, which then counts one).
fn text_width(s: &str) -> usize {
    if s.is_ascii() {
        s.len()
    } else {
        s.chars().count()
    }
}

/// Column widths for `cells` within `width` (see `table`).
fn layout(cells: &Cells, width: Option<usize>) -> [usize; 9] {
    let mut content = [0usize; 9];
    for r in 0..cells.rows() {
        for (c, w) in content.iter_mut().enumerate() {
            *w = (*w).max(text_width(cells.get(r, c)));
        }
    }
    let header_word = |c: usize| COLUMNS[c].0.split(' ').map(text_width).max().unwrap_or(0);
    let mut widths: [usize; 9] = std::array::from_fn(|c| content[c].max(text_width(COLUMNS[c].0)));
    let Some(width) = width else {
        return widths;
    };
    // Borders: "│ " before each column, " ┆ " between, " │" after.
    let room = width
        .max(super::analyze::MIN_WIDTH)
        .saturating_sub(3 * COLUMNS.len() + 1);
    if widths.iter().sum::<usize>() <= room {
        return widths;
    }
    widths = std::array::from_fn(|c| content[c].max(header_word(c)).max(1));
    // Narrow the widest column, one character at a time: first none below its header's longest
    // word, then any down to 3.
    for words_whole in [true, false] {
        let floor = |c: usize| if words_whole { header_word(c) } else { 3 };
        while widths.iter().sum::<usize>() > room {
            let Some((c, w)) = widths
                .iter()
                .enumerate()
                .filter(|&(c, &w)| w > floor(c).max(3))
                .max_by_key(|&(c, &w)| (w, std::cmp::Reverse(c)))
                .map(|(c, &w)| (c, w))
            else {
                break;
            };
            widths[c] = w - 1;
        }
    }
    widths
}

fn rule(out: &mut String, widths: &[usize; 9], [left, fill, cross, right]: [char; 4]) {
    out.push(left);
    for (c, &w) in widths.iter().enumerate() {
        if c > 0 {
            out.push(cross);
        }
        for _ in 0..w + 2 {
            out.push(fill);
        }
    }
    out.push(right);
    out.push('\n');
}

/// One table row: each cell wrapped to its column's width (at spaces where it can, else within
/// a word), on as many lines as its longest cell needs.
fn line(out: &mut String, widths: &[usize; 9], texts: &[&str; 9], colors: &[Option<&str>; 9]) {
    let text_widths: [usize; 9] = std::array::from_fn(|c| text_width(texts[c]));
    let fits = text_widths.iter().zip(widths).all(|(t, w)| t <= w);
    let wrapped: Vec<Vec<&str>>;
    let lines = if fits {
        wrapped = Vec::new();
        1
    } else {
        wrapped = texts
            .iter()
            .zip(widths)
            .map(|(t, &w)| wrap_cell(t, w))
            .collect();
        wrapped.iter().map(Vec::len).max().unwrap_or(1)
    };
    for l in 0..lines {
        out.push('│');
        for (c, &w) in widths.iter().enumerate() {
            if c > 0 {
                out.push('┆');
            }
            let (text, text_w) = if fits {
                (texts[c], text_widths[c])
            } else {
                let t = wrapped[c].get(l).copied().unwrap_or("");
                (t, text_width(t))
            };
            let pad = w - text_w.min(w);
            if let Some(code) = colors[c] {
                out.push_str(code);
            }
            out.push(' ');
            if COLUMNS[c].1 {
                push_spaces(out, pad);
                out.push_str(text);
            } else {
                out.push_str(text);
                push_spaces(out, pad);
            }
            out.push(' ');
            if colors[c].is_some() {
                out.push_str("\x1b[39m");
            }
        }
        out.push('│');
        out.push('\n');
    }
}

fn push_spaces(out: &mut String, mut n: usize) {
    const SPACES: &str = "                                ";
    while n > 0 {
        let k = n.min(SPACES.len());
        out.push_str(&SPACES[..k]);
        n -= k;
    }
}

/// `text` in lines of at most `width` characters, broken at a space (dropped) or after a `:`,
/// `/` or `#` where it can (an address then splits before its port), else within a word.
fn wrap_cell(text: &str, width: usize) -> Vec<&str> {
    let width = width.max(1);
    let mut lines = Vec::new();
    let mut rest = text;
    while text_width(rest) > width {
        let cut = rest
            .char_indices()
            .nth(width)
            .map_or(rest.len(), |(i, _)| i);
        let at = if rest[cut..].starts_with(' ') {
            cut
        } else {
            match rest[..cut].rfind([' ', ':', '/', '#']) {
                Some(i) if rest.as_bytes()[i] == b' ' && i > 0 => i,
                Some(i) if rest.as_bytes()[i] != b' ' => i + 1,
                _ => cut,
            }
        };
        lines.push(rest[..at].trim_end());
        rest = rest[at..].trim_start();
    }
    if !rest.is_empty() || lines.is_empty() {
        lines.push(rest);
    }
    lines
}

#[cfg(test)]
mod tests {
    //! The conn.log line and header for hand-made rows.

    use super::*;

    fn row() -> FlowRow {
        FlowRow {
            id: 7,
            orig: "[2001:db8::1]:40000".into(),
            resp: "10.78.2.2:8080".into(),
            conn_state: "REJ",
            history: "Sr".into(),
            orig_pkts: 1,
            resp_pkts: 1,
            orig_bytes: 0,
            resp_bytes: 0,
            retransmissions: 0,
            fast_retransmissions: 0,
            spurious_retransmissions: 0,
            max_segment_retransmits: 0,
            out_of_order: 0,
            capture_duplicates: 0,
            zero_windows: 0,
            syn_count: 1,
            first_frame: 3,
            last_frame: 4,
            file: None,
            start: "2026-11-26T08:22:43.505594Z".into(),
            duration: Duration6(17_400),
            rtt: None,
            partial: false,
            rst_from: Some("resp"),
            rst_frame: Some(4),
            first_fin_from: None,
            port_reused: false,
            end_reason: "closed",
        }
    }

    /// `decimal` writes what `to_string` writes: every number below 100 000, each power of ten
    /// and its neighbours, and a spread of large values up to `u64::MAX`.
    #[test]
    fn decimal_is_to_string() {
        let mut buf = [0u8; 20];
        let mut check = |v: u64| {
            assert_eq!(decimal(v, &mut buf), v.to_string().as_bytes(), "{v}");
        };
        (0..100_000).for_each(&mut check);
        let mut p = 1u64;
        for _ in 0..20 {
            for v in [p - 1, p, p + 1] {
                check(v);
            }
            p = p.saturating_mul(10);
        }
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            check(x);
            check(x >> (x % 64));
        }
        check(u64::MAX);
    }

    /// `addr_text` and `time_text` write addresses and times as `Display` does, byte for byte, at every edge: each
    /// octet's width, ports 0 and 65535, IPv6 compression, v4-mapped and scoped addresses, times
    /// before 1970, at day, month, leap-year and year ends, and the extremes of `i64` nanoseconds.
    #[test]
    fn row_text_is_displays_text() {
        use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV6};
        let mut addrs: Vec<SocketAddr> = Vec::new();
        for o in [0u8, 1, 9, 10, 99, 100, 199, 200, 255] {
            for port in [0u16, 7, 80, 443, 8080, 65535] {
                addrs.push((Ipv4Addr::new(o, 255 - o, o / 3, 10), port).into());
            }
        }
        for ip in [
            "::",
            "::1",
            "2001:db8::1",
            "fe80::1:2:3:4",
            "::ffff:10.78.2.2",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
            "1:0:0:2:0:0:0:3",
        ] {
            let ip: Ipv6Addr = ip.parse().unwrap();
            addrs.push((ip, 65535).into());
            addrs.push(SocketAddr::V6(SocketAddrV6::new(ip, 1, 0, u32::MAX)));
        }
        for a in &addrs {
            assert_eq!(addr_text(a).as_str(), a.to_string());
        }
        let day = 86_400 * 1_000_000_000i64;
        let mut times = vec![
            i64::MIN,
            i64::MAX,
            0,
            -1,
            1,
            999,
            1_000,
            -1_000,
            1_795_681_363_505_594_123,
        ];
        // Every day from 1969 to 2101 (leap years, month ends) at several times of day.
        let mut t = -365 * day;
        while t < 132 * 366 * day {
            times.extend([t, t + day - 1, t + 3_723_004_005_006]);
            t += day;
        }
        for ns in times {
            let ts = Timestamp(ns);
            assert_eq!(time_text(ts).as_str(), ts.to_string(), "{ns}");
        }
        // The buffer never cuts: a piece that does not fit whole is refused.
        let mut t = TextBuf::default();
        assert!(t.push(&[b'x'; TEXT_BUF - 1]));
        assert!(!t.push(b"yz"));
        assert_eq!(t.as_str().len(), TEXT_BUF - 1);
    }

    #[test]
    fn conn_log_line_has_zeeks_columns() {
        let line = conn_log_line(&row());
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), CONN_LOG_FIELDS.len());
        assert_eq!(
            &cols[..12],
            [
                "1795681363.505594",
                "C7",
                "2001:db8::1",
                "40000",
                "10.78.2.2",
                "8080",
                "tcp",
                "-",
                "0.000017",
                "0",
                "0",
                "REJ"
            ]
        );
        assert_eq!(cols[15], "Sr");
        let h = conn_log_header();
        assert!(h.starts_with("#separator \\x09\n"));
        assert!(h.contains("#fields\tts\tuid\tid.orig_h\t"));
        assert_eq!(h.lines().count(), 7);
    }

    /// Rows that take every path of the hand-written JSON: optional fields present and absent,
    /// file names that need escapes, extreme numbers, durations that print as exponents.
    fn varied_rows() -> Vec<FlowRow> {
        let mut v = vec![row()];
        let mut r = row();
        r.id = u64::MAX;
        r.orig_bytes = u64::MAX;
        r.first_frame = 0;
        r.file = Some("a \"quoted\" \\ path\twith\u{1}control and ünïcode.pcap".into());
        r.rtt = Some(Duration6(6_000));
        r.rst_from = None;
        r.rst_frame = None;
        r.first_fin_from = Some("orig");
        r.partial = true;
        r.port_reused = true;
        r.duration = Duration6(0);
        r.history = "".into();
        v.push(r);
        for (i, d) in [
            1,
            499,
            500,
            1_500,
            123_456_789,
            86_400_000_000_000,
            i64::MAX / 2,
        ]
        .into_iter()
        .enumerate()
        {
            let mut r = row();
            r.id = i as u64;
            r.duration = Duration6(d);
            r.rtt = Some(Duration6(d / 3));
            r.retransmissions = i as u32 * 1000;
            r.file = Some(format!("plain-{i}.pcap"));
            v.push(r);
        }
        v
    }

    #[test]
    fn hand_written_json_is_serde_jsons_byte_for_byte() {
        for r in varied_rows() {
            let mut mine = Vec::new();
            r.write_json(&mut mine);
            let serde = serde_json::to_vec(&r).unwrap();
            assert_eq!(
                String::from_utf8_lossy(&mine),
                String::from_utf8_lossy(&serde)
            );
        }
        let mut n = Vec::new();
        for v in [0, 7, 10, 99, 100, 12_345, u64::MAX] {
            n.clear();
            json_uint(&mut n, v);
            assert_eq!(n, v.to_string().as_bytes());
        }
    }

    #[test]
    fn reorder_restores_id_order_and_holds_at_most_its_bound() {
        // Rows end in a scrambled order; one connection (id 0) stays open past the bound.
        let n = REORDER_MAX as u64 + 50;
        let mut order: Vec<u64> = (1..n).collect();
        let mut x = 12345u64;
        for i in (1..order.len()).rev() {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            order.swap(i, (x >> 33) as usize % (i + 1));
        }
        order.push(0);
        let mut re = Reorder::default();
        let mut out = Vec::new();
        for id in order {
            let mut r = row();
            r.id = id;
            re.push(r, |r| {
                out.push(r.id);
                Ok(())
            })
            .unwrap();
            assert!(re.pending.len() <= REORDER_MAX);
        }
        re.finish(|r| {
            out.push(r.id);
            Ok(())
        })
        .unwrap();
        assert_eq!(out.len() as u64, n);
        // Held too long, id 1.. went out before 0 arrived; everything else is in order.
        let zero = out.iter().position(|&i| i == 0).unwrap();
        assert!(zero > 0);
        let mut rest: Vec<u64> = out.iter().copied().filter(|&i| i != 0).collect();
        let sorted = {
            let mut s = rest.clone();
            s.sort_unstable();
            s
        };
        assert_eq!(rest, sorted);
        rest.dedup();
        assert_eq!(rest.len() as u64, n - 1);
    }

    /// Each column's text in a rendered table's body, its lines' pieces concatenated (spaces
    /// dropped): what a reader sees in that column, top to bottom.
    fn columns_of(table: &str) -> Vec<String> {
        let mut cols = vec![String::new(); 9];
        let mut body = false;
        for l in table.lines() {
            if l.starts_with(['┌', '└']) {
                continue;
            }
            if l.starts_with('╞') {
                body = true;
                continue;
            }
            let inner = l.trim_start_matches('│').trim_end_matches('│');
            let parts: Vec<&str> = inner.split('┆').collect();
            assert_eq!(parts.len(), 9, "{l}");
            if body {
                for (c, p) in parts.into_iter().enumerate() {
                    cols[c].push_str(&p.replace(' ', ""));
                }
            }
        }
        cols
    }

    /// A page lists its rows by id whatever order they came in (the reorder buffer lets go of a
    /// row held too long, and a later, lower id then follows it), and each row keeps its own
    /// state colour when its place changes.
    #[test]
    fn a_page_is_in_id_order_and_rows_keep_their_colours() {
        let mut rows: Vec<FlowRow> = (0..5)
            .map(|i| {
                let mut r = row();
                r.id = 10 - i;
                r.first_frame = 100 - i;
                r.conn_state = if i == 1 { "REJ" } else { "SF" };
                r
            })
            .collect();
        let shuffled = table(&rows, true, None);
        rows.sort_by_key(|r| r.id);
        assert_eq!(shuffled, table(&rows, true, None));
        let lines: Vec<&str> = shuffled.lines().filter(|l| l.starts_with('│')).collect();
        let frames: Vec<&str> = lines[1..]
            .iter()
            .map(|l| l.trim_end_matches('│').rsplit('┆').next().unwrap().trim())
            .collect();
        assert_eq!(frames, ["96", "97", "98", "99", "100"]);
        // The REJ row (id 9, first frame 99) is the only red one.
        let red: Vec<usize> = (1..lines.len())
            .filter(|&i| lines[i].contains("\x1b[38;5;9m"))
            .collect();
        assert_eq!(red, [4]);
    }

    #[test]
    fn the_table_keeps_every_cell_whole_or_wraps_it_within_the_width() {
        let mut rows = varied_rows();
        let mut v6 = row();
        v6.id = 99;
        v6.retransmissions = 3;
        v6.max_segment_retransmits = 2;
        v6.conn_state = "RSTO";
        v6.partial = true;
        rows.push(v6);
        for r in rows.iter_mut() {
            r.file = None;
        }
        let want: Vec<String> = {
            let mut c = Cells::default();
            let mut sorted = rows.clone();
            sorted.sort_by_key(|r| r.id);
            for r in &sorted {
                c.row(r);
            }
            (0..9)
                .map(|k| {
                    (0..c.rows())
                        .map(|i| c.get(i, k).replace(' ', ""))
                        .collect()
                })
                .collect()
        };
        for width in [
            None,
            Some(60),
            Some(72),
            Some(80),
            Some(100),
            Some(120),
            Some(200),
        ] {
            let t = table(&rows, false, width);
            let widths: Vec<usize> = t.lines().map(text_width).collect();
            assert!(
                widths.iter().all(|&w| w == widths[0]),
                "{width:?}: ragged\n{t}"
            );
            if let Some(w) = width {
                assert!(widths[0] <= w, "{w}: {} wide\n{t}", widths[0]);
            }
            assert_eq!(columns_of(&t), want, "{width:?}\n{t}");
            if width.is_none_or(|w| w >= 200) {
                // Wide enough: one line per row, addresses whole.
                assert_eq!(t.lines().count(), rows.len() + 4, "{t}");
                assert!(t.contains("[2001:db8::1]:40000"));
            }
        }
    }

    #[test]
    fn cells_wrap_at_spaces_and_before_ports() {
        assert_eq!(wrap_cell("10.78.1.2:46792", 12), ["10.78.1.2:", "46792"]);
        assert_eq!(wrap_cell("RSTO (partial)", 6), ["RSTO", "(parti", "al)"]);
        assert_eq!(wrap_cell("3 (max 2×)", 7), ["3 (max", "2×)"]);
        assert_eq!(wrap_cell("abcdefgh", 3), ["abc", "def", "gh"]);
        assert_eq!(wrap_cell("", 3), [""]);
        assert_eq!(
            wrap_cell("[2001:db8::1]:40000", 14),
            ["[2001:db8::1]:", "40000"]
        );
    }
}
