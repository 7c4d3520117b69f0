//! Outage signatures: one file per signature, each a pure function from finished-connection
//! summaries (and, later, app-layer and topology summaries) to `Finding`s.
//!
//! Owns: the `SignatureId` catalogue with its stable kebab-case names, `Severity`, `Finding` and
//! `Evidence`. Must not: do I/O, format reports, or hard-code thresholds (they come from
//! `Thresholds`, filled from `Config`).

pub mod connection_refused;
pub mod connection_reset;
pub mod gateway_error;
pub mod listen_queue_overflow;
pub mod port_scan;
pub mod proxy_denied;
pub mod retransmission_storm;
pub mod syn_unanswered;
pub mod time_wait_pileup;
pub mod tls_alert;
pub mod tls_stall;
pub mod truncated_response;
pub mod upstream_timeout;

use crate::flow::{FlowSummary, FrameRef};
use crate::time::{Timestamp, NANOS_PER_SEC};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Stable signature identifiers (the JSON `signature` field and `docs/signatures.md`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum SignatureId {
    SynUnanswered,
    ConnectionRefused,
    ConnectionReset,
    RetransmissionStorm,
    TlsStall,
    TlsAlert,
    GatewayError,
    UpstreamTimeout,
    TimeWaitPileup,
    DirectOkProxiedFails,
    TruncatedResponse,
    ProxyDenied,
    AbortiveClose,
    PortScan,
    ListenQueueOverflow,
}

impl SignatureId {
    pub const ALL: [SignatureId; 15] = [
        SignatureId::SynUnanswered,
        SignatureId::ConnectionRefused,
        SignatureId::ConnectionReset,
        SignatureId::RetransmissionStorm,
        SignatureId::TlsStall,
        SignatureId::TlsAlert,
        SignatureId::GatewayError,
        SignatureId::UpstreamTimeout,
        SignatureId::TimeWaitPileup,
        SignatureId::DirectOkProxiedFails,
        SignatureId::TruncatedResponse,
        SignatureId::ProxyDenied,
        SignatureId::AbortiveClose,
        SignatureId::PortScan,
        SignatureId::ListenQueueOverflow,
    ];

    pub fn name(self) -> &'static str {
        match self {
            SignatureId::SynUnanswered => "syn-unanswered",
            SignatureId::ConnectionRefused => "connection-refused",
            SignatureId::ConnectionReset => "connection-reset",
            SignatureId::RetransmissionStorm => "retransmission-storm",
            SignatureId::TlsStall => "tls-stall",
            SignatureId::TlsAlert => "tls-alert",
            SignatureId::GatewayError => "gateway-error",
            SignatureId::UpstreamTimeout => "upstream-timeout",
            SignatureId::TimeWaitPileup => "time-wait-pileup",
            SignatureId::DirectOkProxiedFails => "direct-ok-proxied-fails",
            SignatureId::TruncatedResponse => "truncated-response",
            SignatureId::ProxyDenied => "proxy-denied",
            SignatureId::AbortiveClose => "abortive-close",
            SignatureId::PortScan => "port-scan",
            SignatureId::ListenQueueOverflow => "listen-queue-overflow",
        }
    }
}

/// How bad a verdict is. Ordered: `Info < Warning < Critical`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn name(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }
}

/// Thresholds of the rules (user-facing flags in `Config`; defaults documented there and in
/// `docs/signatures.md`).
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// An unanswered SYN this close to the end of the capture is inconclusive.
    pub syn_timeout_ns: i64,
    /// Retransmissions of one segment that make a storm.
    pub retrans_threshold: u32,
    /// Connections concurrently in TIME_WAIT on one host, towards one peer endpoint.
    pub time_wait_threshold: u32,
    /// How long TIME_WAIT lasts (Linux: 60 s).
    pub time_wait_ns: i64,
    /// A request unanswered when the capture ended is only pending unless it waited longer.
    pub response_timeout_ns: i64,
    /// `port-scan`: distinct ports on one host, or hosts on one port, that make a scan.
    pub scan_min_targets: u32,
    /// `port-scan`: the scan's refused/unanswered attempts all fall within this span.
    pub scan_window_ns: i64,
    /// `listen-queue-overflow`: connections to one endpoint that needed 2–3 SYNs, at least…
    pub listen_queue_min_conns: u32,
    /// …and at least this percentage of the endpoint's connection attempts.
    pub listen_queue_min_pct: u32,
    /// Server endpoints tracked for the report's endpoint list; connections to further ones are
    /// counted together as "(other endpoints)" and reported (`endpoint-cap` warning).
    pub max_endpoints: usize,
    /// Distinct per-connection notes listed per verdict; the rest are counted and reported
    /// (`note-cap` warning).
    pub max_notes: usize,
}

/// Default `Thresholds::max_notes` (`verdict::MAX_NOTES`).
pub const DEFAULT_MAX_NOTES: usize = 20;
/// Default `Thresholds::max_endpoints`.
pub const DEFAULT_MAX_ENDPOINTS: usize = 10_000;

impl Default for Thresholds {
    fn default() -> Self {
        Thresholds {
            syn_timeout_ns: 3 * NANOS_PER_SEC,
            retrans_threshold: 3,
            time_wait_threshold: 1000,
            time_wait_ns: 60 * NANOS_PER_SEC,
            response_timeout_ns: 10 * NANOS_PER_SEC,
            scan_min_targets: 20,
            scan_window_ns: 600 * NANOS_PER_SEC,
            listen_queue_min_conns: 3,
            listen_queue_min_pct: 5,
            max_endpoints: DEFAULT_MAX_ENDPOINTS,
            max_notes: DEFAULT_MAX_NOTES,
        }
    }
}

/// What an evidence frame is, machine-readable (tests check each against tshark).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum EvidenceKind {
    /// A SYN without ACK.
    Syn,
    /// A segment with RST.
    Rst,
    /// A segment with FIN.
    Fin,
    /// A segment carrying payload.
    Data,
    /// A retransmission (Wireshark's `tcp.analysis.retransmission`).
    Retransmission,
    /// An ICMP / ICMPv6 error.
    Icmp,
}

/// One frame that proves a finding.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Evidence {
    pub frame: FrameRef,
    pub kind: EvidenceKind,
    pub description: String,
}

/// What one rule concluded about one connection (or, for aggregate rules, one host).
#[derive(Clone, Debug)]
pub struct Finding {
    pub signature: SignatureId,
    pub severity: Severity,
    /// The connection's originator (the side that connects).
    pub client: IpAddr,
    /// The endpoint being connected to.
    pub server: SocketAddr,
    /// The connection (`FlowSummary::id`), or None for aggregate findings.
    pub flow: Option<u64>,
    /// Connections this finding stands for (1, or the count behind an aggregate finding).
    pub weight: u64,
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    /// One line about this connection, e.g. "3 SYNs over 3.0 s, no answer".
    pub note: String,
    pub evidence: Vec<Evidence>,
    /// Extra facts for the verdict's summary (aggregate rules fill these).
    pub facts: Vec<(&'static str, String)>,
}

impl Finding {
    pub fn for_flow(
        sig: SignatureId,
        severity: Severity,
        f: &FlowSummary,
        note: String,
        evidence: Vec<Evidence>,
    ) -> Finding {
        Finding {
            signature: sig,
            severity,
            client: f.orig.ip(),
            server: f.resp,
            flow: Some(f.id),
            weight: 1,
            first_ts: f.start,
            last_ts: f.end,
            note,
            evidence,
            facts: Vec::new(),
        }
    }
}

/// "a:p → b:q", the direction of a frame, for evidence lines.
pub fn arrow(from: &SocketAddr, to: &SocketAddr) -> String {
    format!("{} → {}", from, to)
}
