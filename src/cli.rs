//! The command line: clap definitions, validation into `config` types, and running the library.
//! Owns argv, stdout/stderr and exit codes (0 done, 1 `--fail-on` matched, 2 error). Must not
//! contain analysis logic.

use crate::capture::TimeBound;
use crate::config::{AnalyzeConfig, FlowsConfig, Format, InputConfig};
use crate::error::Error;
use crate::flow::{FlowSummary, TrackerConfig};
use crate::pipeline::{self, Observer};
use crate::report::{self, flows::FlowRow};
use crate::signature::{Severity, Thresholds};
use crate::time::{Duration, NANOS_PER_SEC};
use crate::topology::{GivenRoles, RoleAddr};
use clap::{Args, CommandFactory, Parser, Subcommand, ValueEnum};
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};

const EXAMPLES: &str = "\
Examples:
  proxyscope analyze captures/refused-nginx-backleg.pcap
  proxyscope analyze -o incident.md --evidence-pcap evidence.pcap link.pcap   # format from the extension
  proxyscope analyze -o incident.html link.pcap    # one self-contained page for the ticket
  proxyscope analyze --format json link.pcap | jq '.verdicts[].signature'   # scripts: ask for JSON
  proxyscope analyze --fail-on warning -f 'host 10.78.2.2 and port 8080' link.pcap
  proxyscope analyze --proxy 10.78.1.1:80 --proxy 10.78.2.1 proxy-any.pcap   # roles given, not inferred
  proxyscope flows captures/refused-nginx-backleg.pcap
  proxyscope flows --format json -f 'host 10.78.2.2 and port 8080' link.pcap | jq '.[] | select(.conn_state==\"REJ\")'
  proxyscope flows client.pcap proxy.pcapng        # several files, merged by time
  proxyscope analyze incident.pcap.gz port 80       # compressed input, trailing filter as tcpdump
  tcpdump -i any -w - port 80 | proxyscope analyze -   # standard input (or any pipe/FIFO)
  proxyscope analyze --since +2s --until +1m30s -c 10000 big.pcapng
  proxyscope analyze --each monday.pcap tuesday.pcap   # one report per file

Exit codes: 0 done, 1 a verdict at or above --fail-on, 2 error (unreadable file, not a capture, unsupported link type, bad filter).";

const LIVE_EXAMPLES: &str = "\
Examples:
  proxyscope live -i any -f 'tcp port 80 or tcp port 8080' --duration 1m -w incident.pcap
  proxyscope live -i eth0 -c 100000 -s 512 'port 443'
  proxyscope live -i eth0 --format ndjson | jq 'select(.event==\"verdict-opened\")'

Needs root or CAP_NET_RAW (sudo setcap cap_net_raw,cap_net_admin=eip $(command -v proxyscope)).
Ctrl-C or SIGTERM ends the capture and prints the full report; a second Ctrl-C quits at once.
Exit codes: 0 done, 1 a verdict at or above --fail-on, 2 error (no such interface, no permission, bad filter).";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum LiveFormat {
    Table,
    Json,
    Ndjson,
    Markdown,
}

#[derive(Args, Debug)]
pub struct LiveArgs {
    /// Interface to capture on (`any` for all, as `tcpdump -i any`).
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub iface: String,
    /// BPF filter, applied in the kernel (or give it after the options, as tcpdump).
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// A BPF filter as trailing words, as tcpdump takes it (`live -i any tcp port 80`).
    #[arg(value_name = "FILTER", conflicts_with = "filter")]
    pub filter_words: Vec<String>,
    /// Stop after this long: 90s, 1m30s, 2h; a bare number is seconds [default: until Ctrl-C / SIGTERM].
    #[arg(long, value_name = "DURATION", value_parser = duration_arg)]
    pub duration: Option<Duration>,
    /// Stop after this many packets, as tcpdump -c.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Time between periodic summaries (10s, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value_t = crate::live::DEFAULT_REPORT_EVERY, value_parser = duration_arg)]
    pub report_every: Duration,
    /// Output format [default: table on a terminal, ndjson otherwise]
    #[arg(long, value_enum)]
    pub format: Option<LiveFormat>,
    /// Also save the raw packets here (as tcpdump -w); evidence frame numbers refer to this file.
    #[arg(short = 'w', long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Bytes kept per packet (enough for TCP/TLS/HTTP headers and the start of error pages).
    #[arg(short = 's', long, value_name = "N", default_value_t = crate::capture::live::DEFAULT_SNAPLEN)]
    pub snaplen: i32,
    /// Exit with code 1 when a verdict at or above this severity exists at the end.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// A proxy's address: ADDR or ADDR:PORT (repeatable).
    #[arg(long = "proxy", value_name = "ADDR[:PORT]")]
    pub proxies: Vec<String>,
    /// A backend's address (ADDR or ADDR:PORT). Repeatable.
    #[arg(long = "backend", value_name = "ADDR[:PORT]")]
    pub backends: Vec<String>,
    /// Write the final report to FILE instead of standard output (format from the extension:
    /// .json, .md, .html, else the table); events still go to standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// At the end, also write the frames of the connections behind the verdicts to this pcapng
    /// (needs --write: they are read back from the written files).
    #[arg(long, value_name = "FILE", requires = "write")]
    pub evidence_pcap: Option<PathBuf>,
    /// With --write: start a new file once the current one is larger than this many millions of
    /// bytes, as tcpdump -C (FILE, FILE1, FILE2, ...).
    #[arg(short = 'C', long = "file-size", value_name = "MB", requires = "write")]
    pub file_size: Option<u64>,
    /// With -C: keep only N files, overwriting the oldest (FILE0 .. FILE<N-1>), as tcpdump -W.
    #[arg(short = 'W', long = "file-count", value_name = "N", requires = "file_size",
          value_parser = clap::value_parser!(u16).range(1..))]
    pub file_count: Option<u16>,
    /// Kernel capture buffer in KiB, as tcpdump -B [default: 32768].
    #[arg(short = 'B', long = "buffer-size", value_name = "KiB",
          value_parser = clap::value_parser!(u32).range(64..=2_097_152))]
    pub buffer_size: Option<u32>,
    /// A verdict resolves after this long without a new failure, once a healthy connection to
    /// its server came after the last failure (30s, 5m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value_t = Duration::from_nanos(crate::live::DEFAULT_RESOLVE_AFTER.as_nanos() as i64), value_parser = duration_arg)]
    pub resolve_after: Duration,
    /// Serve Prometheus metrics at http://ADDR:PORT/metrics while capturing (e.g. 127.0.0.1:9187).
    #[arg(long, value_name = "ADDR:PORT")]
    pub metrics: Option<String>,
}

#[derive(Parser, Debug)]
#[command(
    name = "proxyscope",
    version,
    about = "Reads a packet capture and tells which hop of a client -> proxy -> backend path broke, how, and which frames prove it.",
    after_help = EXAMPLES
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Find outages: verdicts with evidence frames (Wireshark frame numbers).
    #[command(after_help = EXAMPLES)]
    Analyze(AnalyzeArgs),
    /// Capture from an interface and report verdicts while the incident is happening.
    #[command(after_help = LIVE_EXAMPLES)]
    Live(LiveArgs),
    /// List every TCP connection: Zeek-style state and history, packets, bytes, retransmissions.
    #[command(after_help = EXAMPLES)]
    Flows(FlowsArgs),
    /// Print a shell completion script (bash, zsh, fish, elvish, powershell) to standard output.
    #[command(
        after_help = "Examples:\n  proxyscope completions bash > ~/.local/share/bash-completion/completions/proxyscope\n  proxyscope completions zsh > ~/.zfunc/_proxyscope\n  proxyscope completions fish > ~/.config/fish/completions/proxyscope.fish"
    )]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) to standard output: `proxyscope man | man -l -`.
    Man {
        /// A subcommand's page instead of the main one (analyze, flows, live).
        subcommand: Option<String>,
    },
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowsFormat {
    Table,
    /// One JSON array.
    Json,
    /// One JSON object per line, written as each connection ends (in first-frame order).
    Ndjson,
    /// Zeek's conn.log: tab-separated, with `#fields` / `#types` header lines.
    ConnLog,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum AnalyzeFormat {
    Table,
    Json,
    Markdown,
    Html,
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum SeverityArg {
    Info,
    Warning,
    Critical,
}

#[derive(Args, Debug)]
pub struct AnalyzeArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Report format [default: from the -o file's extension (.json, .md, .html), else table
    /// (without colour when piped); scripts: use --format json]
    #[arg(long, value_enum)]
    pub format: Option<AnalyzeFormat>,
    /// Write the report to FILE instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Exit with code 1 when a verdict at or above this severity exists.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,
    #[command(flatten)]
    pub thresholds: ThresholdArgs,
    /// Also write the frames of the connections behind the verdicts to this file (pcapng, as
    /// tcpdump -w): each packet's comment names its original file, frame and the verdicts it
    /// supports; the report gives each evidence frame's number in it.
    #[arg(short = 'w', long, value_name = "FILE")]
    pub evidence_pcap: Option<PathBuf>,
    /// Analyse each file on its own, one report after another, instead of merging them.
    #[arg(long)]
    pub each: bool,
    /// A proxy's address: ADDR (all its connections) or ADDR:PORT (where it listens). Repeatable;
    /// overrides inference. Give both addresses of a two-legged proxy.
    #[arg(long = "proxy", value_name = "ADDR[:PORT]")]
    pub proxies: Vec<String>,
    /// A backend's address (ADDR or ADDR:PORT). Repeatable.
    #[arg(long = "backend", value_name = "ADDR[:PORT]")]
    pub backends: Vec<String>,
}

/// The rules' thresholds, shared by `analyze` and `live`: defaults come from
/// `Thresholds::default()` (the one source), and both commands validate them the same way (by
/// these parsers; nothing is clamped).
#[derive(Args, Debug, Clone)]
pub struct ThresholdArgs {
    /// An unanswered SYN less than this long before the end of the capture (or, live, than this
    /// long ago) is inconclusive (3s, 500ms; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value_t = Thresholds::default().syn_timeout, value_parser = duration_arg)]
    pub syn_timeout: Duration,
    /// Retransmissions of one segment that make a retransmission storm.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().retrans_threshold, value_parser = clap::value_parser!(u32).range(1..))]
    pub retrans_threshold: u32,
    /// Connections concurrently in TIME_WAIT on one host (towards one endpoint) that make a pileup.
    #[arg(long, value_name = "N", default_value_t = Thresholds::default().time_wait_threshold, value_parser = clap::value_parser!(u32).range(1..))]
    pub time_wait_threshold: u32,
    /// A request still unanswered when the capture ends is pending, not a timeout, unless it
    /// waited longer (10s, 1m; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value_t = Thresholds::default().response_timeout, value_parser = duration_arg)]
    pub response_timeout: Duration,
    /// Evidence frames listed per verdict.
    #[arg(long, value_name = "N", default_value_t = crate::config::DEFAULT_MAX_EVIDENCE, value_parser = at_least_one)]
    pub max_evidence: usize,
}

impl ThresholdArgs {
    fn thresholds(&self) -> Thresholds {
        Thresholds {
            syn_timeout: self.syn_timeout,
            retrans_threshold: self.retrans_threshold,
            time_wait_threshold: self.time_wait_threshold,
            response_timeout: self.response_timeout,
            ..Thresholds::default()
        }
    }
}

fn at_least_one(s: &str) -> Result<usize, String> {
    match s.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(_) => Err(format!("'{}' is not a whole number", s)),
    }
}

#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Capture files, then optionally a BPF filter as tcpdump takes it (`f.pcap tcp port 80`).
    /// pcap or pcapng, plain or gzip/zstd/xz-compressed (found by content, not name); `-` is
    /// standard input; pipes, FIFOs and `<(...)` are read as streams. Several files are merged
    /// in timestamp order. Words after the files that are not files are the filter.
    #[arg(value_name = "FILE... [FILTER]")]
    pub args: Vec<OsString>,
    /// A capture file, as tcpdump -r (repeatable); the words after the options are then a filter.
    #[arg(short = 'r', long = "read", value_name = "FILE")]
    pub read: Vec<PathBuf>,
    /// BPF filter applied to every frame, as tcpdump would (frame numbers stay Wireshark's).
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Analyse only frames at or after this time: RFC 3339 (2026-11-26T08:12:37Z) or an offset
    /// from the capture's first frame (+2s, +1m30s). Frame numbers stay Wireshark's.
    #[arg(long, value_name = "TIME", value_parser = time_bound_arg, allow_hyphen_values = true)]
    pub since: Option<TimeBound>,
    /// Analyse only frames before this time (RFC 3339 or +OFFSET, as --since).
    #[arg(long, value_name = "TIME", value_parser = time_bound_arg, allow_hyphen_values = true)]
    pub until: Option<TimeBound>,
    /// Stop after N frames (those that pass the filter and --since/--until), as tcpdump -c.
    #[arg(short = 'c', long = "count", value_name = "N")]
    pub count: Option<u64>,
    /// Time without a packet after which an open connection is considered finished (300, 5m, 90s; a bare number is seconds).
    #[arg(long, value_name = "DURATION", default_value_t = Duration::from_nanos(TrackerConfig::default().idle_timeout_ns), value_parser = duration_arg)]
    pub idle_timeout: Duration,
    /// 1: read and analyse on one thread; 2: use two threads (`analyze`: one reads, decodes and
    /// tracks connections while the other parses HTTP/TLS and runs the rules; `flows`: one
    /// tracks while the other reads and writes rows) [default: 2 when there are two or more
    /// CPUs]. Results are identical.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..=2))]
    pub threads: Option<u8>,
    /// Connections tracked at once at most; when the table is full, the least recently active
    /// are finished early (reported as a capture warning). Bounds memory under SYN floods.
    #[arg(long, value_name = "N", default_value_t = crate::flow::DEFAULT_MAX_CONNECTIONS)]
    pub max_connections: usize,
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format [default: table (without colour when piped); scripts: use --format json]
    #[arg(long, value_enum)]
    pub format: Option<FlowsFormat>,
}

/// Every duration flag's parser (`time::parse_duration`; a bare number is seconds), in ns.
/// A duration flag: units as `time::parse_duration` (a bare number is seconds), more than zero.
fn duration_arg(s: &str) -> Result<Duration, String> {
    match s.parse::<Duration>()? {
        d if d.nanos() == 0 => Err("must be more than zero".into()),
        d => Ok(d),
    }
}

/// `--since` / `--until`: `+DURATION` from the capture's first frame, or an RFC 3339 time.
fn time_bound_arg(s: &str) -> Result<TimeBound, String> {
    match s.trim().strip_prefix('+') {
        Some(d) => crate::time::parse_duration(d, NANOS_PER_SEC).map(TimeBound::FromStart),
        None => crate::time::parse_rfc3339(s).map(TimeBound::At),
    }
}

/// Extensions of capture files (and their compressed forms): a positional word with one of
/// these, or with a `/`, is a path, never a filter word.
const CAPTURE_EXTENSIONS: &[&str] = &[
    ".pcap", ".pcapng", ".cap", ".dmp", ".gz", ".zst", ".xz", ".ntar",
];

/// Whether a word that names no existing file was meant as a path.
fn looks_like_path(w: &str) -> bool {
    let l = w.to_ascii_lowercase();
    w.contains('/') || CAPTURE_EXTENSIONS.iter().any(|e| l.ends_with(e))
}

/// Levenshtein distance (for "did you mean" on mistyped file names).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            cur[j + 1] = (prev[j] + usize::from(ca != *cb))
                .min(prev[j + 1] + 1)
                .min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// A file in the same directory whose name is close to `missing`'s (a typo), if any.
fn similar_file(missing: &Path) -> Option<PathBuf> {
    let dir = match missing.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = missing.file_name()?.to_string_lossy().to_string();
    let mut best: Option<(usize, PathBuf)> = None;
    for e in std::fs::read_dir(&dir).ok()?.flatten() {
        let n = e.file_name().to_string_lossy().to_string();
        // Only capture-like names, and few edits for the length: `tcp` is no typo of `.ci`.
        if !looks_like_path(&n) || !e.path().is_file() {
            continue;
        }
        let d = edit_distance(&name, &n);
        if d <= 1.max(name.len() / 8) && best.as_ref().is_none_or(|(b, _)| d < *b) {
            best = Some((d, missing.with_file_name(&n)));
        }
    }
    best.map(|(_, p)| p)
}

/// The error for a path that does not exist, with a "did you mean" when a close name exists.
fn no_such_file(p: &Path) -> Error {
    let mut reason = "no such file".to_string();
    if let Some(s) = similar_file(p) {
        reason.push_str(&format!(" (did you mean {}?)", s.display()));
    }
    Error::Open {
        path: p.to_path_buf(),
        reason,
    }
}

/// Splits the positional words into files and a trailing filter, as tcpdump users type them.
///
/// The rule (unambiguous, and documented in `docs/cli.md`): files given with `-r` come first;
/// then the leading positional words that are `-` or name an existing path are files; the first
/// word that names nothing, and every word after it, form the filter. It is an error when that
/// first word looks like a path (has a `/` or a capture extension: a typo, "did you mean"), when
/// a later word is an existing file (files must come before the filter), when there are filter
/// words and `-f` is given too, or when there is no file at all.
fn split_files_and_filter(
    read: &[PathBuf],
    args: &[OsString],
    filter_flag: Option<&str>,
    exists: impl Fn(&Path) -> bool,
) -> Result<(Vec<PathBuf>, Option<String>), Error> {
    let mut files: Vec<PathBuf> = read.to_vec();
    let mut i = 0;
    while i < args.len() {
        let p = Path::new(&args[i]);
        if args[i] == "-" || exists(p) {
            files.push(p.to_path_buf());
            i += 1;
        } else {
            break;
        }
    }
    let rest = &args[i..];
    if let Some(first) = rest.first() {
        let w = first.to_string_lossy();
        if filter_flag.is_some()
            || looks_like_path(&w)
            || (files.is_empty() && rest.len() == 1)
            || similar_file(Path::new(first)).is_some()
        {
            return Err(no_such_file(Path::new(first)));
        }
        if files.is_empty() {
            return Err(Error::Usage(format!(
                "{}: no such file; give the capture file before the filter (Usage: proxyscope SUBCOMMAND FILE... [FILTER], or -r FILE)",
                w
            )));
        }
        if let Some(f) = rest.iter().skip(1).find(|a| exists(Path::new(a))) {
            return Err(Error::Usage(format!(
                "{} is a file but comes after the filter words starting at '{}': put every file before the filter",
                Path::new(f).display(),
                w
            )));
        }
        let words: Vec<String> = rest
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let expr = words.join(" ");
        if let Err(reason) = crate::capture::check_filter(&expr) {
            return Err(Error::Usage(format!(
                "'{}' is neither an existing file nor a valid capture filter ({}); files come first, then the filter",
                expr, reason
            )));
        }
        return Ok((files, Some(expr)));
    }
    if files.is_empty() {
        return Err(Error::Usage(
            "no capture file given (Usage: proxyscope SUBCOMMAND [OPTIONS] FILE... [FILTER]; `-` reads standard input)".into(),
        ));
    }
    Ok((files, filter_flag.map(str::to_string)))
}

impl InputArgs {
    fn validate(&self) -> Result<InputConfig, Error> {
        let (files, filter) = split_files_and_filter(
            &self.read,
            &self.args,
            self.filter.as_deref(),
            // Exists unless the system says it does not (permission denied is "exists": the
            // open then says so).
            |p| !matches!(std::fs::metadata(p), Err(e) if e.kind() == std::io::ErrorKind::NotFound),
        )?;
        let stdin_uses = files.iter().filter(|f| f.as_os_str() == "-").count();
        if stdin_uses > 1 {
            return Err(Error::Usage(
                "`-` (standard input) can be given once".into(),
            ));
        }
        let tracker = TrackerConfig {
            idle_timeout_ns: self.idle_timeout.nanos(),
            max_connections: self.max_connections.max(1),
            ..TrackerConfig::default()
        };
        pipeline::set_threads(self.threads.map(|n| {
            if n == 1 {
                pipeline::Threads::One
            } else {
                pipeline::Threads::Reader
            }
        }));
        Ok(InputConfig {
            files,
            filter,
            tracker,
            window: crate::capture::TimeWindow {
                since: self.since,
                until: self.until,
            },
            max_frames: self.count,
            progress: None,
            stop: None,
        })
    }
}

fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Width of the terminal report: `COLUMNS` when set to a number, else the terminal's width when
/// standard output is one, else `report::analyze::DEFAULT_WIDTH`.
fn table_width() -> usize {
    given_width().unwrap_or(report::analyze::DEFAULT_WIDTH)
}

/// `COLUMNS` when set to a number, else the terminal's width when standard output is one.
fn given_width() -> Option<usize> {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return Some(n);
    }
    if std::io::stdout().is_terminal() {
        if let Some((terminal_size::Width(w), _)) = terminal_size::terminal_size() {
            if w > 0 {
                return Some(w as usize);
            }
        }
    }
    None
}

/// Runs the parsed command; returns the process exit code.
/// How a run ends, as the process exit code.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Exit {
    /// The work was done (and no verdict reached `--fail-on`).
    Done = 0,
    /// A verdict at or above `--fail-on` exists.
    FailOn = 1,
    /// An error: bad input, bad usage, I/O (one line on stderr).
    Error = 2,
}

impl Exit {
    pub fn code(self) -> i32 {
        self as i32
    }
}

pub fn run(cli: Cli) -> Exit {
    let result = match cli.command {
        Command::Analyze(a) => {
            let each = a.each;
            a.validate().and_then(|cfg| {
                if each {
                    analyze_each(cfg)
                } else {
                    with_progress(cfg, analyze)
                }
            })
        }
        Command::Live(a) => live(a),
        Command::Flows(a) => a.input.validate().and_then(|input| {
            // Piped or not, the default is the table (scripts ask for --format json).
            let format = match a.format {
                Some(f) => f,
                None => FlowsFormat::Table,
            };
            let cfg = FlowsConfig {
                input,
                format: Format::Table,
                color: use_color(),
                width: given_width(),
            };
            with_progress(cfg, |cfg| flows(cfg, format))
        }),
        Command::Completions { shell } => {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "proxyscope", &mut out);
            write_stdout(&out)
        }
        Command::Man { subcommand } => man(subcommand.as_deref()),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Paths and libpcap's words may hold anything: shown, never sent to the terminal.
            eprintln!("proxyscope: {}", report::escape::terminal(&e.to_string()));
            Exit::Error
        }
    }
}

/// Writes `bytes` to standard output; a closed pipe is not an error.
fn write_stdout(bytes: &[u8]) -> Result<Exit, Error> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(Exit::Done),
        Err(e) => output_error(e),
    }
}

/// `proxyscope man [SUBCOMMAND]`: the roff page, generated from the same definitions as --help.
fn man(sub: Option<&str>) -> Result<Exit, Error> {
    let cmd = Cli::command();
    let page = match sub {
        None => cmd,
        Some(name) => {
            let Some(c) = cmd.find_subcommand(name).cloned() else {
                return Err(Error::Usage(format!(
                    "man {}: no such subcommand (analyze, flows, live, completions, man)",
                    name
                )));
            };
            let full: &'static str = Box::leak(format!("proxyscope-{}", name).into_boxed_str());
            c.name(full)
        }
    };
    let mut out = Vec::new();
    clap_mangen::Man::new(page)
        .render(&mut out)
        .map_err(|e| Error::Output {
            what: "manual page".into(),
            reason: e.to_string(),
        })?;
    write_stdout(&out)
}

/// Something that reads captures through an `InputConfig` (for the progress line).
trait HasInput {
    fn input_mut(&mut self) -> &mut InputConfig;
}

impl HasInput for AnalyzeConfig {
    fn input_mut(&mut self) -> &mut InputConfig {
        &mut self.input
    }
}

impl HasInput for FlowsConfig {
    fn input_mut(&mut self) -> &mut InputConfig {
        &mut self.input
    }
}

/// Runs `f` with a progress line on stderr when stderr is a terminal (never otherwise).
fn with_progress<C: HasInput>(
    mut cfg: C,
    f: impl FnOnce(C) -> Result<Exit, Error>,
) -> Result<Exit, Error> {
    if !std::io::stderr().is_terminal() {
        return f(cfg);
    }
    let progress = std::sync::Arc::new(crate::capture::Progress::default());
    cfg.input_mut().progress = Some(progress.clone());
    let line = ProgressLine::start(progress);
    let r = f(cfg);
    line.finish();
    r
}

/// The progress line: a thread that redraws `reading 1.2 GiB of 2.0 GiB (60%), 3.4M frames`
/// on stderr every `PROGRESS_INTERVAL`, once the read has taken `PROGRESS_DELAY` (short reads
/// show nothing), and erases it at the end.
struct ProgressLine {
    stop: std::sync::mpsc::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

const PROGRESS_INTERVAL: std::time::Duration = std::time::Duration::from_millis(250);
const PROGRESS_DELAY: std::time::Duration = std::time::Duration::from_secs(1);

fn human_bytes(b: u64) -> String {
    const U: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < U.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{} B", b)
    } else {
        format!("{:.1} {}", v, U[i])
    }
}

/// The progress text (without the carriage return and erase sequence).
fn progress_text(bytes: u64, total: u64, frames: u64) -> String {
    let frames = if frames >= 1_000_000 {
        format!("{:.1}M", frames as f64 / 1e6)
    } else {
        frames.to_string()
    };
    if total > 0 {
        let pct = (bytes.min(total) as f64 * 100.0 / total as f64).floor();
        format!(
            "proxyscope: reading {} of {} ({}%), {} frames",
            human_bytes(bytes),
            human_bytes(total),
            pct,
            frames
        )
    } else {
        format!(
            "proxyscope: reading {}, {} frames",
            human_bytes(bytes),
            frames
        )
    }
}

impl ProgressLine {
    fn start(p: std::sync::Arc<crate::capture::Progress>) -> ProgressLine {
        use std::sync::atomic::Ordering::Relaxed;
        let (stop, rx) = std::sync::mpsc::channel::<()>();
        // PROXYSCOPE_PROGRESS_DELAY_MS overrides the delay (tests show the line at once).
        let delay = std::env::var("PROXYSCOPE_PROGRESS_DELAY_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(std::time::Duration::from_millis)
            .unwrap_or(PROGRESS_DELAY);
        let thread = std::thread::spawn(move || {
            let started = std::time::Instant::now();
            let mut shown = false;
            let mut err = std::io::stderr();
            loop {
                let wait = if shown {
                    PROGRESS_INTERVAL
                } else {
                    delay.saturating_sub(started.elapsed())
                };
                let done = !matches!(
                    rx.recv_timeout(wait),
                    Err(std::sync::mpsc::RecvTimeoutError::Timeout)
                );
                if done {
                    if shown {
                        let _ = err.write_all(b"\r\x1b[K");
                    }
                    return;
                }
                let text = progress_text(
                    p.bytes.load(Relaxed),
                    p.total.load(Relaxed),
                    p.frames.load(Relaxed),
                );
                let _ = write!(err, "\r\x1b[K{}", text);
                shown = true;
            }
        });
        ProgressLine { stop, thread }
    }

    fn finish(self) {
        let _ = self.stop.send(());
        let _ = self.thread.join();
    }
}

/// `analyze --each`: one report per file, one after another (to the same output). A file that
/// fails is reported on stderr and the others still run; the exit code is the worst one.
fn analyze_each(cfg: AnalyzeConfig) -> Result<Exit, Error> {
    if cfg.evidence_pcap.is_some() {
        return Err(Error::Usage(
            "--each and --evidence-pcap do not go together (one evidence file per run)".into(),
        ));
    }
    if let Some(p) = &cfg.output {
        // One output file for all reports: start it empty, each report is appended.
        std::fs::write(p, b"").map_err(|e| Error::Output {
            what: p.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    let mut worst = Exit::Done;
    for f in cfg.input.files.clone() {
        let mut one = cfg.clone();
        one.input.files = vec![f.clone()];
        one.append_output = true;
        match with_progress(one, analyze) {
            Ok(code) => worst = worst.max(code),
            Err(e) => {
                eprintln!("proxyscope: {}", report::escape::terminal(&e.to_string()));
                worst = Exit::Error;
            }
        }
    }
    Ok(worst)
}

impl AnalyzeArgs {
    fn validate(self) -> Result<AnalyzeConfig, Error> {
        let input = self.input.validate()?;
        if self.evidence_pcap.is_some() {
            if let Some(p) = input.files.iter().find(|p| !crate::capture::rereadable(p)) {
                return Err(Error::Usage(format!(
                    "{}: --evidence-pcap reads the input a second time, which a pipe or standard input cannot give; save it to a file first",
                    p.display()
                )));
            }
        }
        let parse_roles = |v: &[String], flag: &str| -> Result<Vec<RoleAddr>, Error> {
            v.iter()
                .map(|s| {
                    RoleAddr::parse(s).ok_or_else(|| {
                        Error::Usage(format!(
                            "--{} {}: expected ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT)",
                            flag, s
                        ))
                    })
                })
                .collect()
        };
        let roles = GivenRoles {
            proxies: parse_roles(&self.proxies, "proxy")?,
            backends: parse_roles(&self.backends, "backend")?,
        };
        let thresholds = self.thresholds.thresholds();
        let to_terminal = self.output.is_none() && std::io::stdout().is_terminal();
        // --format, else the -o file's extension, else the table (piped or not: scripts ask
        // for --format json).
        let format = match self.format {
            Some(AnalyzeFormat::Table) => Format::Table,
            Some(AnalyzeFormat::Json) => Format::Json,
            Some(AnalyzeFormat::Markdown) => Format::Markdown,
            Some(AnalyzeFormat::Html) => Format::Html,
            None => self
                .output
                .as_deref()
                .and_then(Format::from_extension)
                .unwrap_or(Format::Table),
        };
        let command = std::iter::once("proxyscope".to_string())
            .chain(std::env::args().skip(1).map(|a| {
                if a.contains(' ') {
                    format!("'{}'", a)
                } else {
                    a
                }
            }))
            .collect::<Vec<_>>()
            .join(" ");
        Ok(AnalyzeConfig {
            input,
            format,
            color: to_terminal && use_color(),
            width: table_width(),
            output: self.output,
            append_output: false,
            thresholds,
            max_evidence: self.thresholds.max_evidence,
            fail_on: self.fail_on.map(|s| match s {
                SeverityArg::Info => Severity::Info,
                SeverityArg::Warning => Severity::Warning,
                SeverityArg::Critical => Severity::Critical,
            }),
            evidence_pcap: self.evidence_pcap,
            roles,
            command,
        })
    }
}

fn analyze(cfg: AnalyzeConfig) -> Result<Exit, Error> {
    let mut a = crate::analyze::run_with_roles(
        &cfg.input,
        cfg.thresholds,
        cfg.max_evidence,
        cfg.roles.clone(),
    )?;
    // The evidence capture is written first, so that the report can give each evidence frame's
    // number inside it.
    if let Some(p) = &cfg.evidence_pcap {
        let index = crate::evidence::EvidenceIndex::new(&a.verdicts);
        let names: Vec<String> = cfg
            .input
            .files
            .iter()
            .map(|f| {
                f.file_name()
                    .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect();
        let map =
            crate::capture::write_selected(&cfg.input.files, &cfg.input.read_options(), p, |f| {
                index.comment(f, &names[f.file as usize])
            })?;
        eprintln!(
            "proxyscope: wrote {} evidence frames to {}",
            map.len(),
            p.display()
        );
        a.capture.evidence_frames = map;
    }
    let text = match cfg.format {
        Format::Json => {
            let r = report::analyze::Report::build(
                &a,
                cfg.command.clone(),
                cfg.input.filter.as_deref(),
            );
            let mut s = serde_json::to_string_pretty(&r).map_err(|e| Error::Output {
                what: "report".into(),
                reason: e.to_string(),
            })?;
            s.push('\n');
            s
        }
        Format::Markdown => report::analyze::markdown(&a, &cfg.command),
        Format::Html => report::html::render(&a, &cfg.command),
        Format::Table => report::analyze::table(&a, cfg.color, cfg.width),
    };
    match &cfg.output {
        Some(p) => {
            // `--each` appends one report after another to the same file.
            let written = if cfg.append_output {
                std::fs::OpenOptions::new()
                    .append(true)
                    .create(true)
                    .open(p)
                    .and_then(|mut f| f.write_all(text.as_bytes()))
            } else {
                std::fs::write(p, text.as_bytes())
            };
            written.map_err(|e| Error::Output {
                what: p.display().to_string(),
                reason: e.to_string(),
            })?
        }
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                return output_error(e);
            }
        }
    }
    let failed = cfg
        .fail_on
        .is_some_and(|t| a.verdicts.iter().any(|v| v.severity >= t));
    Ok(if failed { Exit::FailOn } else { Exit::Done })
}

fn live(a: LiveArgs) -> Result<Exit, Error> {
    use crate::live::LiveRun;
    let role = |flag: &str, s: &String| {
        RoleAddr::parse(s).ok_or_else(|| {
            Error::Usage(format!(
                "{flag} {s}: expected ADDR or ADDR:PORT (IPv6 as [ADDR]:PORT)"
            ))
        })
    };
    let proxies = a
        .proxies
        .iter()
        .map(|s| role("--proxy", s))
        .collect::<Result<Vec<_>, _>>()?;
    let backends = a
        .backends
        .iter()
        .map(|s| role("--backend", s))
        .collect::<Result<Vec<_>, _>>()?;
    if a.snaplen < 64 {
        return Err(Error::Usage("--snaplen must be at least 64".into()));
    }
    if a.file_size == Some(0) {
        return Err(Error::Usage("-C must be at least 1 (million bytes)".into()));
    }
    let filter = if a.filter_words.is_empty() {
        a.filter.clone()
    } else {
        Some(a.filter_words.join(" "))
    };
    let thresholds = a.thresholds.thresholds();
    let duration = a.duration.map(Duration::to_std);
    let report_every = a.report_every.to_std();
    let tty = std::io::stdout().is_terminal();
    let format = a.format.unwrap_or(if tty {
        LiveFormat::Table
    } else {
        LiveFormat::Ndjson
    });
    // The final report's format in the -o file: from its extension, else the event format's.
    let out_format = a.output.as_ref().map(|p| {
        Format::from_extension(p).unwrap_or(match format {
            LiveFormat::Json | LiveFormat::Ndjson => Format::Json,
            LiveFormat::Markdown => Format::Markdown,
            LiveFormat::Table => Format::Table,
        })
    });
    let metrics = a
        .metrics
        .as_ref()
        .map(|_| std::sync::Arc::new(report::metrics::LiveMetrics::new()));
    // Listen before capturing: a busy port is an error at once, not after the incident.
    let _server = match (&a.metrics, &metrics) {
        (Some(addr), Some(m)) => {
            let s = crate::live::MetricsServer::start(addr, m.clone())?;
            eprintln!("proxyscope: metrics at http://{}/metrics", s.addr);
            Some(s)
        }
        _ => None,
    };
    let cfg = LiveRun {
        source: crate::capture::live::LiveConfig {
            iface: a.iface.clone(),
            filter: filter.clone(),
            snaplen: a.snaplen,
            buffer_bytes: a
                .buffer_size
                .map_or(crate::capture::live::DEFAULT_BUFFER_BYTES, |k| {
                    (k as i32).saturating_mul(1024)
                }),
            write: a.write.clone(),
            rotate: a.file_size.map(|mb| crate::capture::live::Rotation {
                file_bytes: mb.saturating_mul(1_000_000),
                ring_files: a.file_count,
            }),
        },
        tracker: TrackerConfig::default(),
        thresholds,
        max_evidence: a.thresholds.max_evidence,
        roles: GivenRoles { proxies, backends },
        duration,
        report_every,
        max_packets: a.count,
        resolve_after: a.resolve_after.to_std(),
        metrics,
    };
    let stop = crate::capture::live::stop_flag();
    let mut out = std::io::stdout();
    let mut pipe_closed = false;
    let mut write_line = |line: String| {
        if pipe_closed {
            return;
        }
        if out
            .write_all(line.as_bytes())
            .and_then(|_| out.write_all(b"\n"))
            .and_then(|_| out.flush())
            .is_err()
        {
            pipe_closed = true;
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    };
    let mut res = crate::live::run(&cfg, stop, |ev| match format {
        LiveFormat::Ndjson => write_line(report::live_events::ndjson(&ev)),
        LiveFormat::Table | LiveFormat::Markdown => write_line(report::live_events::terminal(&ev)),
        LiveFormat::Json => {}
    })?;
    let command = std::iter::once("proxyscope".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(p) = &a.evidence_pcap {
        let index = crate::evidence::EvidenceIndex::new(&res.analysis.verdicts);
        let names: Vec<String> = res
            .files
            .iter()
            .map(|f| {
                f.file_name()
                    .map_or_else(|| f.display().to_string(), |n| n.to_string_lossy().into())
            })
            .collect();
        let opts = crate::capture::ReadOptions::default();
        let map = crate::capture::write_selected(&res.files, &opts, p, |f| {
            index.comment(f, &names[f.file as usize])
        })?;
        eprintln!(
            "proxyscope: wrote {} evidence frames to {}",
            map.len(),
            p.display()
        );
        res.analysis.capture.evidence_frames = map;
    }
    let mut rep = report::analyze::Report::build(&res.analysis, command.clone(), filter.as_deref());
    rep.capture.live = Some(report::analyze::LiveOut {
        interface: a.iface.clone(),
        received: res.stats.received,
        dropped: res.stats.dropped,
        if_dropped: res.stats.if_dropped,
    });
    let counters = format!(
        "interface {}: {} packets received, {} dropped by the kernel, {} by the interface\n",
        a.iface, res.stats.received, res.stats.dropped, res.stats.if_dropped
    );
    let json = || serde_json::to_string_pretty(&rep).unwrap_or_default() + "\n";
    match (&a.output, out_format) {
        (Some(p), Some(f)) => {
            let text = match f {
                Format::Json => json(),
                Format::Markdown => report::analyze::markdown(&res.analysis, &command),
                Format::Html => report::html::render(&res.analysis, &command),
                Format::Table => format!(
                    "{}\n{}",
                    report::analyze::table(&res.analysis, false, table_width()),
                    counters
                ),
            };
            std::fs::write(p, text.as_bytes()).map_err(|e| Error::Output {
                what: p.display().to_string(),
                reason: e.to_string(),
            })?;
        }
        _ => {
            let text = match format {
                LiveFormat::Ndjson => report::live_events::final_line(&rep) + "\n",
                LiveFormat::Json => json(),
                LiveFormat::Markdown => report::analyze::markdown(&res.analysis, &command),
                LiveFormat::Table => format!(
                    "{}\n{}",
                    report::analyze::table(&res.analysis, tty && use_color(), table_width()),
                    counters
                ),
            };
            let mut o = std::io::stdout().lock();
            if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
                return output_error(e);
            }
        }
    }
    let failed = a
        .fail_on
        .map(|s| match s {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        })
        .is_some_and(|t| res.analysis.verdicts.iter().any(|v| v.severity >= t));
    Ok(if failed { Exit::FailOn } else { Exit::Done })
}

fn print_warnings(sum: &pipeline::CaptureSummary) {
    for w in sum.artefacts() {
        eprintln!(
            "proxyscope: warning: {}",
            report::escape::terminal(&w.to_string())
        );
    }
}

fn output_error(e: std::io::Error) -> Result<Exit, Error> {
    if report::is_broken_pipe(&e) {
        Ok(Exit::Done)
    } else {
        Err(Error::Output {
            what: "standard output".into(),
            reason: e.to_string(),
        })
    }
}

/// Where `flows` writes rows: one of the streamed writers of `report::flows`.
enum FlowsOut<W: Write> {
    Json(report::flows::JsonStream<W>),
    Ndjson(report::flows::NdjsonStream<W>),
    ConnLog(report::flows::ConnLogStream<W>),
    Table(report::flows::TableStream<W>),
}

struct FlowsObserver<'a, W: Write> {
    out: FlowsOut<W>,
    files: &'a [PathBuf],
    /// Set when standard output is closed: reading stops, the command exits 0.
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl<W: Write> Observer for FlowsObserver<'_, W> {
    fn flow_end(&mut self, s: FlowSummary, _app: Option<crate::app::AppSummary>) {
        let row = FlowRow::from_summary(&s, self.files);
        let err = match &mut self.out {
            FlowsOut::Json(w) => {
                w.push(row);
                &w.error
            }
            FlowsOut::Ndjson(w) => {
                w.push(row);
                &w.error
            }
            FlowsOut::ConnLog(w) => {
                w.push(row);
                &w.error
            }
            FlowsOut::Table(w) => {
                w.push(row);
                &w.error
            }
        };
        if err.is_some() {
            self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        }
    }
    fn wants_frame_data(&self) -> bool {
        false
    }
    fn segments(&self) -> pipeline::Segments {
        pipeline::Segments::None
    }
}

fn flows(mut cfg: FlowsConfig, format: FlowsFormat) -> Result<Exit, Error> {
    let files = cfg.input.files.clone();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    cfg.input.stop = Some(stop.clone());
    let stdout = std::io::stdout();
    let w = std::io::BufWriter::with_capacity(1 << 16, stdout.lock());
    let out = match format {
        FlowsFormat::Json => FlowsOut::Json(report::flows::JsonStream::new(w)),
        FlowsFormat::Ndjson => FlowsOut::Ndjson(report::flows::NdjsonStream::new(w)),
        FlowsFormat::ConnLog => FlowsOut::ConnLog(report::flows::ConnLogStream::new(w)),
        FlowsFormat::Table => {
            FlowsOut::Table(report::flows::TableStream::new(w, cfg.color, cfg.width))
        }
    };
    let mut obs = FlowsObserver {
        out,
        files: &files,
        stop: stop.clone(),
    };
    let sum = pipeline::run(&cfg.input, &mut obs)?;
    let finished = match obs.out {
        FlowsOut::Json(w) => w.finish(),
        FlowsOut::Ndjson(w) => w.finish(),
        FlowsOut::ConnLog(w) => w.finish(),
        FlowsOut::Table(w) => {
            let span = match (sum.first_ts, sum.last_ts) {
                (Some(a), Some(b)) => format!(
                    "{} → {} ({})",
                    a,
                    b,
                    crate::time::human_duration(b.nanos_since(a))
                ),
                _ => String::new(),
            };
            let header = format!(
                "{} frames ({} TCP), {} connections, {}",
                sum.frames_matched, sum.tcp_segments, w.rows, span,
            );
            w.finish(&header)
        }
    };
    if let Err(e) = finished {
        return output_error(e);
    }
    print_warnings(&sum);
    Ok(Exit::Done)
}

#[cfg(test)]
mod tests {
    //! Splitting positional words into files and a trailing filter; the progress text.

    use super::*;

    /// `split_files_and_filter` with `existing` as the only files that exist.
    fn split(
        read: &[&str],
        args: &[&str],
        flag: Option<&str>,
        existing: &[&str],
    ) -> Result<(Vec<String>, Option<String>), String> {
        let read: Vec<PathBuf> = read.iter().map(PathBuf::from).collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        split_files_and_filter(&read, &args, flag, |p| {
            existing.iter().any(|e| Path::new(e) == p)
        })
        .map(|(f, filt)| (f.iter().map(|p| p.display().to_string()).collect(), filt))
        .map_err(|e| e.to_string())
    }

    fn files(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn files_then_filter_words() {
        let ex = ["a.pcap", "b.pcapng"];
        assert_eq!(
            split(&[], &["a.pcap"], None, &ex),
            Ok((files(&["a.pcap"]), None))
        );
        assert_eq!(
            split(&[], &["a.pcap", "b.pcapng", "tcp", "port", "80"], None, &ex),
            Ok((files(&["a.pcap", "b.pcapng"]), Some("tcp port 80".into())))
        );
        // -r: every positional word is the filter.
        assert_eq!(
            split(&["a.pcap"], &["host", "10.0.0.1"], None, &ex),
            Ok((files(&["a.pcap"]), Some("host 10.0.0.1".into())))
        );
        // `-` is standard input, a file.
        assert_eq!(
            split(&[], &["-", "port", "80"], None, &ex),
            Ok((files(&["-"]), Some("port 80".into())))
        );
        // -f alone keeps its expression.
        assert_eq!(
            split(&[], &["a.pcap"], Some("port 80"), &ex),
            Ok((files(&["a.pcap"]), Some("port 80".into())))
        );
    }

    #[test]
    fn ambiguous_or_mistyped_words_are_errors() {
        let ex = ["a.pcap", "b.pcapng"];
        // A path-looking word that does not exist is a missing file, not a filter.
        let e = split(&[], &["a.pcap", "c.pcap", "port", "80"], None, &ex).unwrap_err();
        assert!(e.contains("c.pcap: cannot open: no such file"), "{}", e);
        let e = split(&[], &["a.pcap", "dir/x", "port"], None, &ex).unwrap_err();
        assert!(e.contains("no such file"), "{}", e);
        // A file after the filter.
        let e = split(&[], &["a.pcap", "port", "80", "b.pcapng"], None, &ex).unwrap_err();
        assert!(e.contains("put every file before the filter"), "{}", e);
        // Filter words together with -f.
        let e = split(&[], &["a.pcap", "tcp"], Some("port 80"), &ex).unwrap_err();
        assert!(e.contains("tcp: cannot open: no such file"), "{}", e);
        // No file at all.
        let e = split(&[], &["port", "80"], None, &ex).unwrap_err();
        assert!(
            e.contains("give the capture file before the filter"),
            "{}",
            e
        );
        let e = split(&[], &[], None, &ex).unwrap_err();
        assert!(e.contains("Usage"), "{}", e);
    }

    #[test]
    fn typo_suggestions_need_a_close_capture_name() {
        assert_eq!(edit_distance("refused.pcapp", "refused.pcap"), 1);
        assert_eq!(edit_distance("tcp", ".ci"), 2);
        assert!(looks_like_path("x.pcap.gz") && looks_like_path("./port"));
        assert!(!looks_like_path("port") && !looks_like_path("10.0.0.1"));
    }

    #[test]
    fn progress_text_with_and_without_a_total() {
        assert_eq!(
            progress_text(512 * 1024 * 1024, 2048 * 1024 * 1024, 3_400_000),
            "proxyscope: reading 512.0 MiB of 2.0 GiB (25%), 3.4M frames"
        );
        assert_eq!(
            progress_text(1536, 0, 12),
            "proxyscope: reading 1.5 KiB, 12 frames"
        );
    }

    #[test]
    fn duration_and_time_flags() {
        assert_eq!(duration_arg("1m30s"), Ok(Duration::from_secs(90)));
        assert!(duration_arg("0").is_err());
        assert_eq!(
            time_bound_arg("+2s"),
            Ok(TimeBound::FromStart(2 * NANOS_PER_SEC))
        );
        assert!(matches!(
            time_bound_arg("2026-11-26T08:12:37Z"),
            Ok(TimeBound::At(_))
        ));
        assert!(time_bound_arg("+x").is_err());
    }
}
