//! `proxyscope flows`: one row/object per TCP connection. The JSON schema is documented in
//! `docs/flows-schema.md`.
//!
//! JSON is streamed: each connection is written when it ends, reordered into first-frame order
//! through a bounded buffer (`REORDER_MAX`), so memory stays bounded by concurrent connections
//! rather than by the capture's size. The table is streamed too, in pages of `TABLE_PAGE` rows
//! (each page is its own table with its header; the summary line then comes last).

use crate::flow::{Direction, FlowSummary, HistoryText};
use crate::time::{human_duration, Timestamp};
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
    pub orig: String,
    pub resp: String,
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
    pub start: String,
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
            orig: s.orig.to_string(),
            resp: s.resp.to_string(),
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
            start: Timestamp::rfc3339(s.start),
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

/// Restores first-frame (id) order of rows that arrive in end order, holding at most
/// `REORDER_MAX` rows.
#[derive(Default)]
pub struct Reorder {
    pending: BinaryHeap<Reverse<FlowRow>>,
    next_id: u64,
}

impl Reorder {
    /// Adds a row; passes every row that is now in order (or held too long) to `emit`.
    pub fn push(
        &mut self,
        row: FlowRow,
        mut emit: impl FnMut(FlowRow) -> io::Result<()>,
    ) -> io::Result<()> {
        self.pending.push(Reverse(row));
        while let Some(Reverse(top)) = self.pending.peek() {
            if top.id > self.next_id && self.pending.len() <= REORDER_MAX {
                break;
            }
            let Reverse(row) = self.pending.pop().expect("peeked");
            self.next_id = self.next_id.max(row.id + 1);
            emit(row)?;
        }
        Ok(())
    }

    /// Passes every held row to `emit`, in order.
    pub fn finish(&mut self, mut emit: impl FnMut(FlowRow) -> io::Result<()>) -> io::Result<()> {
        while let Some(Reverse(row)) = self.pending.pop() {
            emit(row)?;
        }
        Ok(())
    }
}

/// Writes rows in id order as they arrive, as one JSON array.
pub struct JsonStream<W: Write> {
    out: W,
    order: Reorder,
    written: u64,
    pub error: Option<io::Error>,
}

impl<W: Write> JsonStream<W> {
    pub fn new(out: W) -> JsonStream<W> {
        JsonStream {
            out,
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
        self.out.write_all(if self.written == 0 {
            b"[\n  "
        } else {
            b",\n  "
        })?;
        serde_json::to_writer(&mut self.out, row).map_err(json_io_error)?;
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
    order: Reorder,
    pub error: Option<io::Error>,
}

impl<W: Write> NdjsonStream<W> {
    pub fn new(out: W) -> NdjsonStream<W> {
        NdjsonStream {
            out,
            order: Reorder::default(),
            error: None,
        }
    }

    pub fn push(&mut self, row: FlowRow) {
        if self.error.is_some() {
            return;
        }
        let mut order = std::mem::take(&mut self.order);
        if let Err(e) = order.push(row, |r| ndjson_line(&mut self.out, &r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    pub fn finish(mut self) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| ndjson_line(&mut self.out, &r))?;
        self.out.flush()
    }
}

fn ndjson_line<W: Write>(out: &mut W, row: &FlowRow) -> io::Result<()> {
    serde_json::to_writer(&mut *out, row).map_err(json_io_error)?;
    out.write_all(b"\n")
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

/// A serde_json error as an `io::Error` that keeps the underlying I/O error's kind, so that a
/// closed pipe stays `BrokenPipe` (and the command exits 0 quietly).
fn json_io_error(e: serde_json::Error) -> io::Error {
    match e.io_error_kind() {
        Some(kind) => io::Error::new(kind, e),
        None => io::Error::other(e),
    }
}

/// Rows per page of the streamed table.
pub const TABLE_PAGE: usize = 1_000;

/// The table, streamed: with at most `TABLE_PAGE` connections the output is exactly
/// `header` + `table(rows)`; with more, full pages are written as they fill (each a table with
/// its own header) and the header line comes last. Holds at most `REORDER_MAX + TABLE_PAGE` rows.
pub struct TableStream<W: Write> {
    out: W,
    color: bool,
    width: usize,
    order: Reorder,
    page: Vec<FlowRow>,
    paged: bool,
    pub rows: u64,
    pub error: Option<io::Error>,
}

impl<W: Write> TableStream<W> {
    pub fn new(out: W, color: bool, width: usize) -> TableStream<W> {
        TableStream {
            out,
            color,
            width,
            order: Reorder::default(),
            page: Vec::new(),
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
        if let Err(e) = order.push(row, |r| self.add(r)) {
            self.error = Some(e);
        }
        self.order = order;
    }

    fn add(&mut self, row: FlowRow) -> io::Result<()> {
        self.page.push(row);
        if self.page.len() > TABLE_PAGE {
            // More than one page: from now on pages are written as they fill.
            let rest = self.page.split_off(TABLE_PAGE);
            self.flush_page()?;
            self.paged = true;
            self.page = rest;
        } else if self.paged && self.page.len() == TABLE_PAGE {
            self.flush_page()?;
        }
        Ok(())
    }

    fn flush_page(&mut self) -> io::Result<()> {
        let t = table(&mut self.page, self.color, self.width);
        self.page.clear();
        self.out.write_all(t.as_bytes())?;
        self.out.write_all(b"\n")
    }

    /// Writes what is left; `header` is the summary line (first when there was one page only).
    pub fn finish(mut self, header: &str) -> io::Result<()> {
        if let Some(e) = self.error.take() {
            return Err(e);
        }
        let mut order = std::mem::take(&mut self.order);
        order.finish(|r| self.add(r))?;
        if !self.paged {
            self.out.write_all(header.as_bytes())?;
            self.out.write_all(b"\n")?;
            self.flush_page()?;
        } else {
            if !self.page.is_empty() {
                self.flush_page()?;
            }
            self.out.write_all(header.as_bytes())?;
            self.out.write_all(b"\n")?;
        }
        self.out.flush()
    }
}

/// The terminal table: one row per connection, in first-frame order, `width` columns wide
/// (cells wrap when the terminal is narrower than the rows).
pub fn table(rows: &mut [FlowRow], color: bool, width: usize) -> String {
    use comfy_table::{Cell, CellAlignment, Color};
    rows.sort_by_key(|r| r.id);
    let mut t = super::analyze::new_table(color, width);
    t.set_header(vec![
        "orig",
        "resp",
        "state",
        "history",
        "pkts o/r",
        "bytes o/r",
        "retx",
        "duration",
        "first frame",
    ]);
    for r in rows.iter() {
        let state_color = match r.conn_state {
            "SF" | "S1" => None,
            "REJ" | "S0" | "RSTOS0" => Some(Color::Red),
            "RSTO" | "RSTR" | "RSTRH" => Some(Color::Yellow),
            _ => None,
        };
        let mut state = Cell::new(format!(
            "{}{}",
            r.conn_state,
            if r.partial { " (partial)" } else { "" }
        ));
        if let (true, Some(c)) = (color, state_color) {
            state = state.fg(c);
        }
        let retx = if r.retransmissions > 0 {
            format!("{} (max {}×)", r.retransmissions, r.max_segment_retransmits)
        } else {
            "0".to_string()
        };
        t.add_row(vec![
            Cell::new(&r.orig),
            Cell::new(&r.resp),
            state,
            Cell::new(r.history),
            Cell::new(format!("{}/{}", r.orig_pkts, r.resp_pkts))
                .set_alignment(CellAlignment::Right),
            Cell::new(format!("{}/{}", r.orig_bytes, r.resp_bytes))
                .set_alignment(CellAlignment::Right),
            Cell::new(retx).set_alignment(CellAlignment::Right),
            Cell::new(human_duration(r.duration.0)).set_alignment(CellAlignment::Right),
            Cell::new(match &r.file {
                Some(f) => format!("{}#{}", super::escape::terminal(f), r.first_frame),
                None => r.first_frame.to_string(),
            })
            .set_alignment(CellAlignment::Right),
        ]);
    }
    t.to_string()
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
}
