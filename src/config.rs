//! The validated, typed settings of one run. Built by `cli.rs` from the command line; the library
//! never sees clap. Must not: do I/O.

use crate::flow::TrackerConfig;
use crate::signature::{Severity, Thresholds};
use std::path::PathBuf;

/// Evidence frames listed per verdict by default (`--max-evidence`).
pub const DEFAULT_MAX_EVIDENCE: usize = 10;

/// Output format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
    /// One self-contained HTML page (`report::html`).
    Html,
}

impl Format {
    /// The format a report file's name asks for: `.json`, `.md` / `.markdown`, `.html` / `.htm`
    /// (any case); None for other names.
    pub fn from_extension(path: &std::path::Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "json" => Some(Format::Json),
            "md" | "markdown" => Some(Format::Markdown),
            "html" | "htm" => Some(Format::Html),
            _ => None,
        }
    }
}

/// Settings shared by every subcommand that reads captures.
#[derive(Clone, Debug, Default)]
pub struct InputConfig {
    /// Capture files; `-` is standard input. Pipes, FIFOs and gzip/zstd/xz files are read too.
    pub files: Vec<PathBuf>,
    /// BPF expression applied to every frame, as tcpdump would.
    pub filter: Option<String>,
    pub tracker: TrackerConfig,
    /// `--since` / `--until`: frames outside are numbered but not analysed.
    pub window: crate::capture::TimeWindow,
    /// `-c N`: stop after N frames (those that pass the filter and the window).
    pub max_frames: Option<u64>,
    /// Counters for the progress line (set by the command line when stderr is a terminal).
    pub progress: Option<std::sync::Arc<crate::capture::Progress>>,
    /// Set to end reading early (the output was closed).
    pub stop: Option<std::sync::Arc<std::sync::atomic::AtomicBool>>,
}

impl InputConfig {
    /// The capture layer's view of these settings.
    pub fn read_options(&self) -> crate::capture::ReadOptions {
        crate::capture::ReadOptions {
            filter: self.filter.clone(),
            window: self.window,
            max_frames: self.max_frames,
            progress: self.progress.clone(),
            stop: self.stop.clone(),
        }
    }
}

/// `proxyscope flows`.
#[derive(Clone, Debug)]
pub struct FlowsConfig {
    pub input: InputConfig,
    pub format: Format,
    /// Use colors (only on a terminal and without NO_COLOR).
    pub color: bool,
    /// Width of the table in columns (`COLUMNS` or the terminal's); none on a pipe without
    /// `COLUMNS` (rows are then never wrapped).
    pub width: Option<usize>,
}

/// `proxyscope analyze`.
#[derive(Clone, Debug)]
pub struct AnalyzeConfig {
    pub input: InputConfig,
    pub format: Format,
    /// Write the report here instead of standard output.
    pub output: Option<PathBuf>,
    /// Append to `output` instead of replacing it (`--each`: one report after another).
    pub append_output: bool,
    pub color: bool,
    /// Width of the terminal report in columns.
    pub width: usize,
    pub thresholds: Thresholds,
    /// Evidence frames per verdict (default 10).
    pub max_evidence: usize,
    /// Exit 1 when a verdict at or above this severity exists.
    pub fail_on: Option<Severity>,
    /// Also write the frames of the connections behind the verdicts to this pcap.
    pub evidence_pcap: Option<PathBuf>,
    /// Roles given with `--proxy` / `--backend` (override inference).
    pub roles: crate::topology::GivenRoles,
    /// The command line as typed, for the report.
    pub command: String,
}
