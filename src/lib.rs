//! proxyscope reads a packet capture and tells which hop of a client → proxy → backend path
//! broke, how, and which frames prove it.
//!
//! The pipeline (data flows downstream only):
//!
//! ```text
//!  capture/ ──Frame<'a>──▶ decode/ ──TcpSegment<'a>──▶ flow/ ──FlowSummary──▶ signature/
//!  (files, libpcap:        (link layer, IPv4/IPv6,     (flow table, Zeek states,    (one pure rule
//!   live, BPF; frame        TCP, ICMP errors; lax)
//!   numbers)      Wireshark retransmission      per outage)
//!                                                        classes, expiry)                 │ Finding
//!                                                                                         ▼
//!                                            report/ ◀──Verdict── verdict/ (one per signature,
//!                                  (table, JSON, Markdown)         hop and server endpoint)
//! ```
//!
//! `pipeline` wires the stages (and `analyze` runs the signatures on what it produces); `cli` turns argv into a `config` and runs them. The library never
//! sees clap, never reads the wall clock (capture time is the only clock), and borrows packet data
//! on the hot path.

// `unsafe` only in `capture/`, where libpcap and libc are called (live-capture file descriptors,
// glibc's malloc trim threshold) and where a record is borrowed across the reader's loop. `deny`
// rather than `forbid` so that this one module can allow it; everything else is safe Rust.
#![deny(unsafe_code)]

pub mod analyze;
pub mod app;
#[allow(unsafe_code)]
pub mod capture;
pub mod cli;
pub mod config;
pub mod correlate;
pub mod decode;
pub mod error;
pub mod evidence;
pub mod flow;
pub mod live;
pub mod pipeline;
pub mod report;
pub mod signature;
pub mod time;
pub mod topology;
pub mod verdict;
