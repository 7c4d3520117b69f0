//! The command line: clap definitions, validation into `config` types, and running the library.
//! Owns argv, stdout/stderr and exit codes (0 done, 1 `--fail-on` matched, 2 error). Must not
//! contain analysis logic.

use crate::config::{AnalyzeConfig, FlowsConfig, Format, InputConfig};
use crate::error::Error;
use crate::flow::{FlowSummary, TrackerConfig};
use crate::pipeline::{self, Observer};
use crate::report::{self, flows::FlowRow};
use crate::signature::{Severity, Thresholds};
use crate::topology::{GivenRoles, RoleAddr};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

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

Exit codes: 0 done, 1 a verdict at or above --fail-on, 2 error (unreadable file, not a capture, unsupported link type, bad filter).";

const LIVE_EXAMPLES: &str = "\
Examples:
  proxyscope live -i any -f 'tcp port 80 or tcp port 8080' --duration 60 --write incident.pcap
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
    /// BPF filter, applied in the kernel.
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Stop after this many seconds (default: until Ctrl-C / SIGTERM).
    #[arg(long, value_name = "SECS")]
    pub duration: Option<f64>,
    /// Seconds between periodic summaries.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub report_every: f64,
    /// Output format [default: table on a terminal, ndjson otherwise]
    #[arg(long, value_enum)]
    pub format: Option<LiveFormat>,
    /// Also save the raw packets here; evidence frame numbers refer to this file.
    #[arg(long, value_name = "FILE")]
    pub write: Option<PathBuf>,
    /// Bytes kept per packet (enough for TCP/TLS/HTTP headers and the start of error pages).
    #[arg(long, value_name = "N", default_value_t = crate::capture::live::DEFAULT_SNAPLEN)]
    pub snaplen: i32,
    /// Exit with code 1 when a verdict at or above this severity exists at the end.
    #[arg(long, value_enum, value_name = "SEVERITY")]
    pub fail_on: Option<SeverityArg>,
    /// An unanswered SYN is reported after this many seconds without an answer.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub syn_timeout: f64,
    /// Retransmissions of one segment that make a retransmission storm.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retrans_threshold: u32,
    /// Evidence frames listed per verdict.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_evidence: usize,
    /// A proxy's address: ADDR or ADDR:PORT (repeatable).
    #[arg(long = "proxy", value_name = "ADDR[:PORT]")]
    pub proxies: Vec<String>,
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
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowsFormat {
    Table,
    Json,
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
    /// An unanswered SYN less than this many seconds before the end of the capture is inconclusive.
    #[arg(long, value_name = "SECS", default_value_t = 3.0)]
    pub syn_timeout: f64,
    /// Retransmissions of one segment that make a retransmission storm.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub retrans_threshold: u32,
    /// Connections concurrently in TIME_WAIT on one host (towards one endpoint) that make a pileup.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub time_wait_threshold: u32,
    /// Evidence frames listed per verdict.
    #[arg(long, value_name = "N", default_value_t = 10)]
    pub max_evidence: usize,
    /// Also write the frames of the connections behind the verdicts to this pcap (opens in Wireshark).
    #[arg(long, value_name = "FILE")]
    pub evidence_pcap: Option<PathBuf>,
    /// A proxy's address: ADDR (all its connections) or ADDR:PORT (where it listens). Repeatable;
    /// overrides inference. Give both addresses of a two-legged proxy.
    #[arg(long = "proxy", value_name = "ADDR[:PORT]")]
    pub proxies: Vec<String>,
    /// A backend's address (ADDR or ADDR:PORT). Repeatable.
    #[arg(long = "backend", value_name = "ADDR[:PORT]")]
    pub backends: Vec<String>,
    /// A request still unanswered when the capture ends is pending, not a timeout, unless it waited longer (seconds).
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub response_timeout: f64,
}

#[derive(Args, Debug, Clone)]
pub struct InputArgs {
    /// Capture files (.pcap or .pcapng); several are merged in timestamp order.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// BPF filter applied to every frame, as tcpdump would (frame numbers stay Wireshark's).
    #[arg(short = 'f', long = "filter", value_name = "BPF")]
    pub filter: Option<String>,
    /// Seconds without a packet after which an open connection is considered finished.
    #[arg(long, value_name = "SECS", default_value_t = 300.0)]
    pub idle_timeout: f64,
    /// 1: read and analyse on one thread; 2: a reader thread (libpcap + decoding) feeds the
    /// analysis [default: 2 when there are two or more CPUs]. Results are identical.
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

fn secs(v: f64, flag: &str) -> Result<i64, Error> {
    if !(v.is_finite() && v > 0.0) {
        return Err(Error::Usage(format!(
            "--{} must be a positive number of seconds",
            flag
        )));
    }
    Ok((v * 1e9) as i64)
}

impl InputArgs {
    fn validate(&self) -> Result<InputConfig, Error> {
        let tracker = TrackerConfig {
            idle_timeout_ns: secs(self.idle_timeout, "idle-timeout")?,
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
            files: self.files.clone(),
            filter: self.filter.clone(),
            tracker,
        })
    }
}

fn use_color() -> bool {
    std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Width of the terminal report: `COLUMNS` when set to a number, else the terminal's width when
/// standard output is one, else `report::analyze::DEFAULT_WIDTH`.
fn table_width() -> usize {
    if let Some(n) = std::env::var("COLUMNS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0)
    {
        return n;
    }
    if std::io::stdout().is_terminal() {
        // SAFETY: TIOCGWINSZ only writes a `winsize` into the struct we pass.
        let mut ws: libc::winsize = unsafe { std::mem::zeroed() };
        let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut ws) } == 0;
        if ok && ws.ws_col > 0 {
            return ws.ws_col as usize;
        }
    }
    report::analyze::DEFAULT_WIDTH
}

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Analyze(a) => a.validate().and_then(analyze),
        Command::Live(a) => live(a),
        Command::Flows(a) => a.input.validate().and_then(|input| {
            // Piped or not, the default is the table (scripts ask for --format json).
            let format = match a.format {
                Some(FlowsFormat::Json) => Format::Json,
                Some(FlowsFormat::Table) | None => Format::Table,
            };
            flows(FlowsConfig {
                input,
                format,
                color: use_color(),
                width: table_width(),
            })
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // Paths and libpcap's words may hold anything: shown, never sent to the terminal.
            eprintln!("proxyscope: {}", report::escape::terminal(&e.to_string()));
            2
        }
    }
}

impl AnalyzeArgs {
    fn validate(self) -> Result<AnalyzeConfig, Error> {
        let input = self.input.validate()?;
        if self.retrans_threshold < 1 {
            return Err(Error::Usage(
                "--retrans-threshold must be at least 1".into(),
            ));
        }
        if self.max_evidence < 1 {
            return Err(Error::Usage("--max-evidence must be at least 1".into()));
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
        let thresholds = Thresholds {
            response_timeout_ns: secs(self.response_timeout, "response-timeout")?,
            syn_timeout_ns: secs(self.syn_timeout, "syn-timeout")?,
            retrans_threshold: self.retrans_threshold,
            time_wait_threshold: self.time_wait_threshold,
            ..Thresholds::default()
        };
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
            thresholds,
            max_evidence: self.max_evidence,
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

fn analyze(cfg: AnalyzeConfig) -> Result<i32, Error> {
    let a = crate::analyze::run_with_roles(
        &cfg.input,
        cfg.thresholds,
        cfg.max_evidence,
        cfg.roles.clone(),
    )?;
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
        Some(p) => std::fs::write(p, text.as_bytes()).map_err(|e| Error::Output {
            what: p.display().to_string(),
            reason: e.to_string(),
        })?,
        None => {
            let mut out = std::io::stdout().lock();
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                return output_error(e);
            }
        }
    }
    if let Some(p) = &cfg.evidence_pcap {
        let sel = crate::analyze::EvidenceSelector::new(&a.verdicts);
        let n = crate::capture::write_selected(
            &cfg.input.files,
            cfg.input.filter.as_deref(),
            p,
            |f| sel.keep(f),
        )?;
        eprintln!("proxyscope: wrote {} evidence frames to {}", n, p.display());
    }
    let failed = cfg
        .fail_on
        .is_some_and(|t| a.verdicts.iter().any(|v| v.severity >= t));
    Ok(if failed { 1 } else { 0 })
}

fn live(a: LiveArgs) -> Result<i32, Error> {
    use crate::live::{LiveEvent, LiveRun};
    let proxies = a
        .proxies
        .iter()
        .map(|s| {
            RoleAddr::parse(s)
                .ok_or_else(|| Error::Usage(format!("--proxy {}: expected ADDR or ADDR:PORT", s)))
        })
        .collect::<Result<Vec<_>, _>>()?;
    if a.snaplen < 64 {
        return Err(Error::Usage("--snaplen must be at least 64".into()));
    }
    let thresholds = Thresholds {
        syn_timeout_ns: secs(a.syn_timeout, "syn-timeout")?,
        retrans_threshold: a.retrans_threshold.max(1),
        ..Thresholds::default()
    };
    let duration = match a.duration {
        Some(d) => Some(crate::live::secs(secs(d, "duration")? as f64 / 1e9)),
        None => None,
    };
    let report_every = crate::live::secs(secs(a.report_every, "report-every")? as f64 / 1e9);
    let tty = std::io::stdout().is_terminal();
    let format = a.format.unwrap_or(if tty {
        LiveFormat::Table
    } else {
        LiveFormat::Ndjson
    });
    let cfg = LiveRun {
        source: crate::capture::live::LiveConfig {
            iface: a.iface.clone(),
            filter: a.filter.clone(),
            snaplen: a.snaplen,
            buffer_bytes: crate::capture::live::DEFAULT_BUFFER_BYTES,
            write: a.write.clone(),
        },
        tracker: TrackerConfig::default(),
        thresholds,
        max_evidence: a.max_evidence.max(1),
        roles: GivenRoles {
            proxies,
            backends: vec![],
        },
        duration,
        report_every,
    };
    let stop = crate::capture::live::stop_flag();
    let files: Vec<PathBuf> = vec![];
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
    let res = crate::live::run(&cfg, stop, |ev| match (format, ev) {
        (
            LiveFormat::Ndjson,
            LiveEvent::Verdict {
                opened,
                verdict,
                at,
            },
        ) => {
            let v = report::analyze::verdict_out(verdict, &files);
            let j = serde_json::json!({"event": if opened { "verdict-opened" } else { "verdict-updated" }, "ts": at.to_string(), "verdict": v});
            write_line(j.to_string());
        }
        (
            LiveFormat::Ndjson,
            LiveEvent::Summary {
                at,
                packets,
                tcp_segments,
                active_connections,
                analysis,
            },
        ) => {
            let vs: Vec<serde_json::Value> = analysis
                .verdicts
                .iter()
                .map(|v| serde_json::json!({"signature": v.signature.name(), "severity": v.severity.name(), "hop": v.hop.name(), "server": v.server.to_string(), "flow_count": v.flow_count}))
                .collect();
            let j = serde_json::json!({"event": "summary", "ts": at.to_string(), "packets": packets, "tcp_segments": tcp_segments, "active_connections": active_connections, "connections": analysis.connections, "verdicts": vs});
            write_line(j.to_string());
        }
        (
            LiveFormat::Table | LiveFormat::Markdown,
            LiveEvent::Verdict {
                opened,
                verdict,
                at,
            },
        ) => {
            write_line(format!(
                "{} {} {} {} {} {} — {}",
                at,
                if opened { "NEW    " } else { "UPDATED" },
                verdict.severity.name(),
                verdict.signature.name(),
                verdict.hop.name(),
                verdict.server,
                report::escape::terminal(&verdict.summary)
            ));
        }
        (
            LiveFormat::Table | LiveFormat::Markdown,
            LiveEvent::Summary {
                at,
                packets,
                active_connections,
                analysis,
                ..
            },
        ) => {
            write_line(format!(
                "{} {} packets, {} connections ({} open), {} verdicts",
                at,
                packets,
                analysis.connections,
                active_connections,
                analysis.verdicts.len()
            ));
        }
        (LiveFormat::Json, _) => {}
    })?;
    let command = std::iter::once("proxyscope".to_string())
        .chain(std::env::args().skip(1))
        .collect::<Vec<_>>()
        .join(" ");
    let mut rep =
        report::analyze::Report::build(&res.analysis, command.clone(), a.filter.as_deref());
    rep.capture.live = Some(report::analyze::LiveOut {
        interface: a.iface.clone(),
        received: res.stats.received,
        dropped: res.stats.dropped,
        if_dropped: res.stats.if_dropped,
    });
    let text = match format {
        LiveFormat::Ndjson => serde_json::json!({"event": "final", "report": rep}).to_string() + "\n",
        LiveFormat::Json => serde_json::to_string_pretty(&rep).unwrap_or_default() + "\n",
        LiveFormat::Markdown => report::analyze::markdown(&res.analysis, &command),
        LiveFormat::Table => format!(
            "{}\ninterface {}: {} packets received, {} dropped by the kernel, {} by the interface\n",
            report::analyze::table(&res.analysis, tty && use_color(), table_width()),
            a.iface,
            res.stats.received,
            res.stats.dropped,
            res.stats.if_dropped
        ),
    };
    let mut o = std::io::stdout().lock();
    if let Err(e) = o.write_all(text.as_bytes()).and_then(|_| o.flush()) {
        return output_error(e);
    }
    let failed = a
        .fail_on
        .map(|s| match s {
            SeverityArg::Info => Severity::Info,
            SeverityArg::Warning => Severity::Warning,
            SeverityArg::Critical => Severity::Critical,
        })
        .is_some_and(|t| res.analysis.verdicts.iter().any(|v| v.severity >= t));
    Ok(if failed { 1 } else { 0 })
}

fn print_warnings(sum: &pipeline::CaptureSummary) {
    for w in sum.warnings() {
        eprintln!("proxyscope: warning: {}", report::escape::terminal(&w));
    }
}

fn output_error(e: std::io::Error) -> Result<i32, Error> {
    if report::is_broken_pipe(&e) {
        Ok(0)
    } else {
        Err(Error::Output {
            what: "standard output".into(),
            reason: e.to_string(),
        })
    }
}

fn flows(cfg: FlowsConfig) -> Result<i32, Error> {
    let files = cfg.input.files.clone();
    match cfg.format {
        Format::Json => {
            struct Json<'a> {
                stream: report::flows::JsonStream<std::io::BufWriter<std::io::StdoutLock<'a>>>,
                files: &'a [PathBuf],
            }
            impl Observer for Json<'_> {
                fn flow_end(&mut self, s: FlowSummary, _app: Option<crate::app::AppSummary>) {
                    self.stream.push(FlowRow::from_summary(&s, self.files));
                }
                fn wants_frame_data(&self) -> bool {
                    false
                }
            }
            let stdout = std::io::stdout();
            let mut obs = Json {
                stream: report::flows::JsonStream::new(std::io::BufWriter::with_capacity(
                    1 << 16,
                    stdout.lock(),
                )),
                files: &files,
            };
            let sum = pipeline::run(&cfg.input, &mut obs)?;
            if let Err(e) = obs.stream.finish() {
                return output_error(e);
            }
            print_warnings(&sum);
            Ok(0)
        }
        _ => {
            struct Rows<'a> {
                stream: report::flows::TableStream<std::io::BufWriter<std::io::StdoutLock<'a>>>,
                files: &'a [PathBuf],
            }
            impl Observer for Rows<'_> {
                fn flow_end(&mut self, s: FlowSummary, _app: Option<crate::app::AppSummary>) {
                    self.stream.push(FlowRow::from_summary(&s, self.files));
                }
                fn wants_frame_data(&self) -> bool {
                    false
                }
            }
            let stdout = std::io::stdout();
            let mut obs = Rows {
                stream: report::flows::TableStream::new(
                    std::io::BufWriter::with_capacity(1 << 16, stdout.lock()),
                    cfg.color,
                    cfg.width,
                ),
                files: &files,
            };
            let sum = pipeline::run(&cfg.input, &mut obs)?;
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
                sum.frames_matched, sum.tcp_segments, obs.stream.rows, span,
            );
            if let Err(e) = obs.stream.finish(&header) {
                return output_error(e);
            }
            print_warnings(&sum);
            Ok(0)
        }
    }
}
