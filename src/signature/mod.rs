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

pub mod direct_ok_proxied_fails;

use crate::flow::{FlowSummary, FrameRef};
use crate::time::{Duration, Timestamp};
use crate::topology::Hop;
use serde::Serialize;
use std::fmt;
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

/// Thresholds of the rules: the one source of their defaults (the command line shows them from
/// `Thresholds::default()`; `docs/signatures.md` documents them). Every value that changes a
/// verdict and that a user may need to tune is here; fixed facts of TCP (Linux's TIME_WAIT) come
/// from `flow/`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Thresholds {
    /// An unanswered SYN this close to the end of the capture is inconclusive.
    pub syn_timeout: Duration,
    /// Retransmissions of one segment that make a storm.
    pub retrans_threshold: u32,
    /// Connections concurrently in TIME_WAIT on one host, towards one peer endpoint.
    pub time_wait_threshold: u32,
    /// How long TIME_WAIT lasts (Linux: 60 s, `flow::TIME_WAIT`).
    pub time_wait: Duration,
    /// A request unanswered when the capture ended is only pending unless it waited longer.
    pub response_timeout: Duration,
    /// `port-scan`: distinct ports on one host, or hosts on one port, that make a scan.
    pub scan_min_targets: u32,
    /// `port-scan`: the scan's refused/unanswered attempts all fall within this span.
    pub scan_window: Duration,
    /// `listen-queue-overflow`: connections to one endpoint that needed 2–3 SYNs, at least…
    pub listen_queue_min_conns: u32,
    /// …and at least this percentage of the endpoint's connection attempts.
    pub listen_queue_min_pct: u32,
    /// `connection-refused`: a refusal followed this soon by a success of the same client to the
    /// same port on another address of the server (happy eyeballs) is only info.
    pub refused_fallback_window: Duration,
    /// `connection-refused`: a refusal followed this soon by a success of the same client to the
    /// same endpoint was absorbed by a retry (warning).
    pub refused_retry_window: Duration,
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
            syn_timeout: Duration::from_secs(3),
            retrans_threshold: 3,
            time_wait_threshold: 1000,
            time_wait: crate::flow::TIME_WAIT,
            response_timeout: Duration::from_secs(10),
            scan_min_targets: 20,
            scan_window: Duration::from_secs(600),
            listen_queue_min_conns: 3,
            listen_queue_min_pct: 5,
            refused_fallback_window: Duration::from_secs(2),
            refused_retry_window: Duration::from_secs(1),
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
    pub facts: Vec<(&'static str, Fact)>,
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

/// The value of a verdict fact. Counts and measures stay numbers (JSON numbers); names, lists and
/// tallies ("502×12, 504") are text.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(untagged)]
pub enum Fact {
    Count(u64),
    Number(f64),
    Flag(bool),
    Text(String),
}

impl Fact {
    pub fn count(&self) -> Option<u64> {
        match self {
            Fact::Count(n) => Some(*n),
            _ => None,
        }
    }
}

impl fmt::Display for Fact {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fact::Count(n) => write!(f, "{}", n),
            Fact::Number(x) => write!(f, "{}", x),
            Fact::Flag(b) => write!(f, "{}", b),
            Fact::Text(t) => f.write_str(t),
        }
    }
}

impl From<u64> for Fact {
    fn from(n: u64) -> Fact {
        Fact::Count(n)
    }
}

impl From<u32> for Fact {
    fn from(n: u32) -> Fact {
        Fact::Count(n as u64)
    }
}

impl From<usize> for Fact {
    fn from(n: usize) -> Fact {
        Fact::Count(n as u64)
    }
}

impl From<u16> for Fact {
    fn from(n: u16) -> Fact {
        Fact::Count(n as u64)
    }
}

impl From<f64> for Fact {
    fn from(x: f64) -> Fact {
        Fact::Number(x)
    }
}

impl From<bool> for Fact {
    fn from(b: bool) -> Fact {
        Fact::Flag(b)
    }
}

impl From<String> for Fact {
    fn from(t: String) -> Fact {
        Fact::Text(t)
    }
}

impl From<&str> for Fact {
    fn from(t: &str) -> Fact {
        Fact::Text(t.to_string())
    }
}

/// What a verdict's words are written from: the aggregate of one signature's findings towards
/// one server endpoint on one hop (built by `verdict/`, which owns the aggregation).
#[derive(Clone, Copy, Debug)]
pub struct Aggregate<'a> {
    pub signature: SignatureId,
    pub severity: Severity,
    pub hop: Hop,
    /// The first affected client, and how many distinct clients were affected.
    pub client: IpAddr,
    pub clients: u32,
    pub server: SocketAddr,
    /// Connections affected, and all connections to `server` in the capture.
    pub flow_count: u64,
    pub total_flows: u64,
    /// Affected connections per severity (info, warning, critical).
    pub by_severity: [u64; 3],
    pub first_ts: Timestamp,
    /// Connections to `server` whose handshake completed.
    pub established: u64,
    /// `server` is a proxy front whose backend attempts are in the capture (next checks must
    /// not ask for that leg).
    pub backend_leg_captured: bool,
    /// Per-connection notes, earliest first, with how many connections each describes.
    pub notes: &'a [(String, u64)],
    pub facts: &'a [(&'static str, Fact)],
}

impl Aggregate<'_> {
    pub fn fact(&self, k: &str) -> Option<&Fact> {
        self.facts.iter().find(|f| f.0 == k).map(|f| &f.1)
    }

    /// A fact as text (numbers printed).
    pub fn text(&self, k: &str) -> Option<String> {
        self.fact(k).map(|f| f.to_string())
    }

    pub fn count(&self, k: &str) -> Option<u64> {
        self.fact(k).and_then(Fact::count)
    }

    /// The server endpoint, its address, its port and the Wireshark address field of its family
    /// (`ip` or `ipv6`): what most words are written with.
    pub fn at(&self) -> (SocketAddr, IpAddr, u16, &'static str) {
        (self.server, self.server.ip(), self.server.port(), self.af())
    }

    /// The Wireshark address field of the server's family (`ip` or `ipv6`).
    pub fn af(&self) -> &'static str {
        if self.server.is_ipv4() {
            "ip"
        } else {
            "ipv6"
        }
    }

    /// "10.0.0.1" for one client, "3 clients" for several, "at least 256 clients" when the
    /// distinct clients reached the count's cap (a SYN flood from a million sources).
    pub fn clients_phrase(&self) -> String {
        if self.clients == 1 {
            self.client.to_string()
        } else if self.clients as usize >= MAX_CLIENTS_COUNTED {
            format!("at least {} clients", self.clients)
        } else {
            format!("{} clients", self.clients)
        }
    }

    /// The first note's text.
    pub fn first_note(&self) -> String {
        self.notes.first().map(|n| n.0.clone()).unwrap_or_default()
    }
}

/// Distinct clients counted per verdict (beyond it, `Aggregate::clients` is a lower bound).
pub const MAX_CLIENTS_COUNTED: usize = 256;

/// A verdict's words: summary sentence, likely causes, next checks and Wireshark filter.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Words {
    pub summary: String,
    pub likely_causes: Vec<String>,
    pub next_checks: Vec<String>,
    pub wireshark_filter: String,
}

/// "1 connection" / "3 connections".
pub fn plural(n: u64, one: &str, many: &str) -> String {
    format!("{} {}", n, if n == 1 { one } else { many })
}

/// What the whole capture knows about successful connections, for severity rules that can only
/// be settled at the end (implemented by `verdict::Aggregator`).
pub trait Successes {
    /// Did `client` connect successfully to `server`, starting within `window_ns` after `t`?
    fn to_endpoint_after(
        &self,
        client: IpAddr,
        server: SocketAddr,
        t: Timestamp,
        window_ns: i64,
    ) -> bool;
    /// Did `client` connect successfully to `server`'s port on another address, starting within
    /// `window_ns` after `t`?
    fn to_other_address_after(
        &self,
        client: IpAddr,
        server: SocketAddr,
        t: Timestamp,
        window_ns: i64,
    ) -> bool;
}

/// A verdict's severity decided once the whole capture is known, with the note that says why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settled {
    pub severity: Severity,
    pub note: Option<&'static str>,
}

/// Severity rules that need the whole capture: `attempts` are the (client, first SYN time) of
/// every finding merged into the verdict (only kept for signatures that need them).
pub fn settle(
    a: &Aggregate,
    attempts: &[(IpAddr, Timestamp)],
    successes: &dyn Successes,
    th: &Thresholds,
) -> Option<Settled> {
    match a.signature {
        SignatureId::ConnectionRefused => connection_refused::settle(a, attempts, successes, th),
        SignatureId::SynUnanswered => syn_unanswered::settle(a),
        _ => None,
    }
}

/// Whether a signature's verdicts need the attempts list of `settle`.
pub fn settles_on_attempts(sig: SignatureId) -> bool {
    sig == SignatureId::ConnectionRefused
}

/// The words of an aggregate, written by its signature's own file.
pub fn words(a: &Aggregate) -> Words {
    match a.signature {
        SignatureId::SynUnanswered => syn_unanswered::words(a),
        SignatureId::ConnectionRefused => connection_refused::words(a),
        SignatureId::ConnectionReset => connection_reset::words(a),
        SignatureId::AbortiveClose => connection_reset::abortive_close_words(a),
        SignatureId::RetransmissionStorm => retransmission_storm::words(a),
        SignatureId::TlsStall => tls_stall::words(a),
        SignatureId::TlsAlert => tls_alert::words(a),
        SignatureId::GatewayError => gateway_error::words(a),
        SignatureId::UpstreamTimeout => upstream_timeout::words(a),
        SignatureId::DirectOkProxiedFails => direct_ok_proxied_fails::words(a),
        SignatureId::TruncatedResponse => truncated_response::words(a),
        SignatureId::ProxyDenied => proxy_denied::words(a),
        SignatureId::TimeWaitPileup => time_wait_pileup::words(a),
        SignatureId::PortScan => port_scan::words(a),
        SignatureId::ListenQueueOverflow => listen_queue_overflow::words(a),
    }
}

/// Test helper: the aggregate of `n` connections out of `m` from the client 10.0.0.1 to
/// `server`, one client, all critical, no notes or facts (tests set what they need with `..`).
#[cfg(test)]
pub fn test_aggregate(sig: SignatureId, server: &str, n: u64, m: u64) -> Aggregate<'static> {
    Aggregate {
        signature: sig,
        severity: Severity::Critical,
        hop: Hop::ClientToServer,
        client: "10.0.0.1".parse().unwrap(),
        clients: 1,
        server: server.parse().unwrap(),
        flow_count: n,
        total_flows: m,
        by_severity: [0, 0, n],
        first_ts: Timestamp(crate::flow::testkit::T0),
        established: 0,
        backend_leg_captured: false,
        notes: &[],
        facts: &[],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_the_json_names() {
        for sig in SignatureId::ALL {
            assert_eq!(
                serde_json::to_string(&sig).unwrap(),
                format!("\"{}\"", sig.name())
            );
        }
        for sev in [Severity::Info, Severity::Warning, Severity::Critical] {
            assert_eq!(
                serde_json::to_string(&sev).unwrap(),
                format!("\"{}\"", sev.name())
            );
        }
    }

    #[test]
    fn facts_read_back_as_counts_text_and_first_note() {
        assert_eq!(Fact::from(7u64).count(), Some(7));
        assert_eq!(Fact::from("7").count(), None);
        assert_eq!(Fact::from(0.5).count(), None);
        let facts = [("n", Fact::from(3u32)), ("t", Fact::from("x"))];
        let notes = [("first".to_string(), 2), ("second".to_string(), 1)];
        let a = Aggregate {
            facts: &facts,
            notes: &notes,
            ..test_aggregate(SignatureId::PortScan, "10.0.0.2:80", 1, 1)
        };
        assert_eq!(a.count("n"), Some(3));
        assert_eq!(a.count("t"), None);
        assert_eq!(a.count("missing"), None);
        assert_eq!(a.text("t").as_deref(), Some("x"));
        assert_eq!(a.text("n").as_deref(), Some("3"));
        assert_eq!(a.first_note(), "first");
        let none = test_aggregate(SignatureId::PortScan, "10.0.0.2:80", 1, 1);
        assert_eq!(none.first_note(), "");
    }

    #[test]
    fn only_connection_refused_keeps_attempts() {
        for sig in SignatureId::ALL {
            assert_eq!(
                settles_on_attempts(sig),
                sig == SignatureId::ConnectionRefused,
                "{}",
                sig.name()
            );
        }
    }
}
