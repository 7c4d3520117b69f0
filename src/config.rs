//! The validated, typed settings of one run. Built by `cli.rs` from the command line; the library
//! never sees clap. Must not: do I/O.

use crate::flow::TrackerConfig;
use crate::signature::{Severity, Thresholds};
use std::path::PathBuf;

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
#[derive(Clone, Debug)]
pub struct InputConfig {
    pub files: Vec<PathBuf>,
    /// BPF expression applied to every frame, as tcpdump would.
    pub filter: Option<String>,
    pub tracker: TrackerConfig,
}

/// `proxyscope flows`.
#[derive(Clone, Debug)]
pub struct FlowsConfig {
    pub input: InputConfig,
    pub format: Format,
    /// Use colors (only on a terminal and without NO_COLOR).
    pub color: bool,
    /// Width of the table in columns (the terminal's, `COLUMNS`, or
    /// `report::analyze::DEFAULT_WIDTH`).
    pub width: usize,
}

/// `proxyscope analyze`.
#[derive(Clone, Debug)]
pub struct AnalyzeConfig {
    pub input: InputConfig,
    pub format: Format,
    /// Write the report here instead of standard output.
    pub output: Option<PathBuf>,
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
