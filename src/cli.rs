//! The command line: clap definitions, validation into `config` types, and running the library.
//! Owns argv, stdout/stderr and exit codes (0 done, 1 `--fail-on` matched, 2 error). Must not
//! contain analysis logic.

use crate::config::{FlowsConfig, Format, InputConfig};
use crate::error::Error;
use crate::flow::{FlowSummary, TrackerConfig};
use crate::pipeline::{self, Observer};
use crate::report::{self, flows::FlowRow};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;

const EXAMPLES: &str = "\
Examples:
  proxyscope flows captures/refused-nginx-backleg.pcap
  proxyscope flows --format json -f 'host 10.78.2.2 and port 8080' link.pcap | jq '.[] | select(.conn_state==\"REJ\")'
  proxyscope flows client.pcap proxy.pcapng        # several files, merged by time

Exit codes: 0 done, 2 error (unreadable file, not a capture, unsupported link type, bad filter).";

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
    /// List every TCP connection: Zeek-style state and history, packets, bytes, retransmissions.
    #[command(after_help = EXAMPLES)]
    Flows(FlowsArgs),
}

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowsFormat {
    Table,
    Json,
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
}

#[derive(Args, Debug)]
pub struct FlowsArgs {
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format [default: table on a terminal, json otherwise]
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
            ..TrackerConfig::default()
        };
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

/// Runs the parsed command; returns the process exit code.
pub fn run(cli: Cli) -> i32 {
    let result = match cli.command {
        Command::Flows(a) => a.input.validate().and_then(|input| {
            let format = match a.format {
                Some(FlowsFormat::Json) => Format::Json,
                Some(FlowsFormat::Table) => Format::Table,
                None if std::io::stdout().is_terminal() => Format::Table,
                None => Format::Json,
            };
            flows(FlowsConfig {
                input,
                format,
                color: use_color(),
            })
        }),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("proxyscope: {}", e);
            2
        }
    }
}

fn print_warnings(sum: &pipeline::CaptureSummary) {
    for w in sum.warnings() {
        eprintln!("proxyscope: warning: {}", w);
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
                fn flow_end(&mut self, s: FlowSummary) {
                    self.stream.push(FlowRow::from_summary(&s, self.files));
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
                rows: Vec<FlowRow>,
                files: &'a [PathBuf],
            }
            impl Observer for Rows<'_> {
                fn flow_end(&mut self, s: FlowSummary) {
                    self.rows.push(FlowRow::from_summary(&s, self.files));
                }
            }
            let mut obs = Rows {
                rows: Vec::new(),
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
            let mut out = std::io::stdout().lock();
            let text = format!(
                "{} frames ({} TCP), {} connections, {}\n{}\n",
                sum.frames_matched,
                sum.tcp_segments,
                obs.rows.len(),
                span,
                report::flows::table(&mut obs.rows, cfg.color)
            );
            if let Err(e) = out.write_all(text.as_bytes()).and_then(|_| out.flush()) {
                return output_error(e);
            }
            print_warnings(&sum);
            Ok(0)
        }
    }
}
