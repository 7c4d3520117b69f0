//! The validated, typed settings of one run. Built by `cli.rs` from the command line; the library
//! never sees clap. Must not: do I/O.

use crate::flow::TrackerConfig;
use std::path::PathBuf;

/// Output format of a report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Markdown,
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
}
