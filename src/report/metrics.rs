//! Prometheus metrics of `proxyscope live --metrics` (OpenMetrics text exposition, through the
//! `prometheus-client` crate, which only this module uses).
//!
//! Owns: the metric names, help texts, labels and the bound on their cardinality. Must not:
//! serve HTTP (`live::serve` does) or decide outcomes (`live::tally` classifies connections).
//!
//! Label cardinality is bounded: a `server` label names one of the first
//! [`MAX_LABELLED_ENDPOINTS`] server endpoints that finished a connection; later endpoints share
//! the value `other`. Signatures, severities, hops, outcomes and status classes are closed
//! sets. So the exposition holds at most a few thousand series, whatever the traffic. The
//! metric list is documented in `docs/fleet.md`.

use crate::signature::{Severity, SignatureId};
use crate::topology::Hop;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};
use std::net::SocketAddr;
use std::sync::Mutex;

/// Server endpoints that get their own `server` label value; the rest are `other`.
pub const MAX_LABELLED_ENDPOINTS: usize = 20;

/// The `server` value of endpoints beyond [`MAX_LABELLED_ENDPOINTS`].
pub const OTHER_ENDPOINTS: &str = "other";

/// Upper bounds (seconds) of the time-to-first-response-byte histogram buckets.
const FIRST_BYTE_BUCKETS: [f64; 12] = [
    0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnLabels {
    server: String,
    hop: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StatusLabels {
    server: String,
    class: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TlsLabels {
    server: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct VerdictLabels {
    signature: String,
    severity: String,
    hop: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ServerLabel {
    server: String,
}

fn first_byte_histogram() -> Histogram {
    Histogram::new(FIRST_BYTE_BUCKETS)
}

/// The live metrics. Updated by the analysis thread, encoded by the HTTP thread (the metric
/// values are atomics; the registry is only read after construction).
#[derive(Debug)]
pub struct LiveMetrics {
    registry: Registry,
    endpoints: Mutex<Vec<SocketAddr>>,
    packets: Counter,
    kernel_dropped: Counter,
    interface_dropped: Counter,
    open_connections: Gauge,
    connections: Family<ConnLabels, Counter>,
    http: Family<StatusLabels, Counter>,
    tls: Family<TlsLabels, Counter>,
    open_verdicts: Family<VerdictLabels, Gauge>,
    /// Label sets of `open_verdicts` ever set (Family has no iterator).
    verdict_labels: Mutex<Vec<VerdictLabels>>,
    verdicts_opened: Counter,
    verdicts_resolved: Counter,
    first_byte: Family<ServerLabel, Histogram, fn() -> Histogram>,
}

impl Default for LiveMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl LiveMetrics {
    pub fn new() -> LiveMetrics {
        let mut r = Registry::with_prefix("proxyscope");
        let m = LiveMetrics {
            registry: Registry::default(),
            endpoints: Mutex::new(Vec::new()),
            packets: Counter::default(),
            kernel_dropped: Counter::default(),
            interface_dropped: Counter::default(),
            open_connections: Gauge::default(),
            connections: Family::default(),
            http: Family::default(),
            tls: Family::default(),
            open_verdicts: Family::default(),
            verdict_labels: Mutex::new(Vec::new()),
            verdicts_opened: Counter::default(),
            verdicts_resolved: Counter::default(),
            first_byte: Family::new_with_constructor(first_byte_histogram),
        };
        r.register(
            "packets",
            "Packets captured and analysed",
            m.packets.clone(),
        );
        r.register(
            "kernel_dropped_packets",
            "Packets the kernel dropped because the capture buffer was full (libpcap ps_drop)",
            m.kernel_dropped.clone(),
        );
        r.register(
            "interface_dropped_packets",
            "Packets the interface or driver dropped (libpcap ps_ifdrop)",
            m.interface_dropped.clone(),
        );
        r.register(
            "open_connections",
            "TCP connections tracked and not yet finished",
            m.open_connections.clone(),
        );
        r.register(
            "connections",
            "Finished TCP connections by server endpoint, hop and outcome (established, refused, unanswered, reset, other)",
            m.connections.clone(),
        );
        r.register(
            "http_responses",
            "HTTP responses by server endpoint and status class (1xx..5xx)",
            m.http.clone(),
        );
        r.register(
            "tls_handshakes",
            "TLS handshakes (ClientHellos) by server endpoint and outcome (ok, alert, no-server-hello)",
            m.tls.clone(),
        );
        r.register(
            "open_verdicts",
            "Verdicts open now (opened and not resolved) by signature, severity and hop",
            m.open_verdicts.clone(),
        );
        r.register(
            "verdicts_opened",
            "Verdicts opened (reopenings included)",
            m.verdicts_opened.clone(),
        );
        r.register(
            "verdicts_resolved",
            "Verdicts resolved (recovered or withdrawn)",
            m.verdicts_resolved.clone(),
        );
        r.register_with_unit(
            "first_response_byte",
            "Per connection, time from the client's first data byte to the server's first data byte, by server endpoint",
            Unit::Seconds,
            m.first_byte.clone(),
        );
        LiveMetrics { registry: r, ..m }
    }

    /// The `server` label value of an endpoint (see the module doc for the bound).
    fn server_label(&self, server: SocketAddr) -> String {
        let mut eps = self.endpoints.lock().unwrap_or_else(|e| e.into_inner());
        if eps.contains(&server) {
            return server.to_string();
        }
        if eps.len() < MAX_LABELLED_ENDPOINTS {
            eps.push(server);
            return server.to_string();
        }
        OTHER_ENDPOINTS.to_string()
    }

    pub fn connection(&self, server: SocketAddr, hop: Hop, outcome: &str) {
        self.connections
            .get_or_create(&ConnLabels {
                server: self.server_label(server),
                hop: hop.name().into(),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn http_responses(&self, server: SocketAddr, status: u16, n: u64) {
        let class = match status {
            100..=599 => format!("{}xx", status / 100),
            _ => "other".into(),
        };
        self.http
            .get_or_create(&StatusLabels {
                server: self.server_label(server),
                class,
            })
            .inc_by(n);
    }

    pub fn tls_handshake(&self, server: SocketAddr, outcome: &str) {
        self.tls
            .get_or_create(&TlsLabels {
                server: self.server_label(server),
                outcome: outcome.into(),
            })
            .inc();
    }

    pub fn first_byte(&self, server: SocketAddr, secs: f64) {
        self.first_byte
            .get_or_create(&ServerLabel {
                server: self.server_label(server),
            })
            .observe(secs);
    }

    /// Sets a counter to a running total read elsewhere (libpcap's counters, packets).
    fn set_total(c: &Counter, total: u64) {
        let now = c.get();
        if total > now {
            c.inc_by(total - now);
        }
    }

    /// The capture's totals, as of now.
    pub fn capture(&self, packets: u64, kernel_dropped: u64, interface_dropped: u64, open: usize) {
        Self::set_total(&self.packets, packets);
        Self::set_total(&self.kernel_dropped, kernel_dropped);
        Self::set_total(&self.interface_dropped, interface_dropped);
        self.open_connections.set(open as i64);
    }

    /// The verdicts open now, and the opened / resolved totals.
    pub fn verdicts(
        &self,
        open: impl Iterator<Item = (SignatureId, Severity, Hop)>,
        opened: u64,
        resolved: u64,
    ) {
        let mut counts: std::collections::BTreeMap<(SignatureId, Severity, Hop), i64> =
            Default::default();
        for k in open {
            *counts.entry(k).or_default() += 1;
        }
        // Series of combinations no longer open go back to 0 rather than vanish (a vanished
        // series reads as "no data" in Prometheus, 0 as "none open"). The label sets are a
        // closed set (signatures × severities × hops).
        let mut seen = self
            .verdict_labels
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        for k in seen.iter() {
            self.open_verdicts.get_or_create(k).set(0);
        }
        for ((sig, sev, hop), n) in counts {
            let k = VerdictLabels {
                signature: sig.name().into(),
                severity: sev.name().into(),
                hop: hop.name().into(),
            };
            self.open_verdicts.get_or_create(&k).set(n);
            if !seen.contains(&k) {
                seen.push(k);
            }
        }
        drop(seen);
        Self::set_total(&self.verdicts_opened, opened);
        Self::set_total(&self.verdicts_resolved, resolved);
    }

    /// The Prometheus text exposition (format 0.0.4, what `promtool check metrics` and clients
    /// that do not ask for OpenMetrics read): the OpenMetrics text with counter families named
    /// after their `_total` samples and without `# UNIT` / `# EOF`.
    pub fn encode_prometheus_text(&self) -> String {
        openmetrics_to_prometheus(&self.encode())
    }

    /// The OpenMetrics text exposition (ends with `# EOF`).
    pub fn encode(&self) -> String {
        let mut s = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut s, &self.registry);
        s
    }
}

/// OpenMetrics text → Prometheus text format 0.0.4 (see `encode_prometheus_text`). In
/// OpenMetrics a counter family `x` has samples `x_total`; in 0.0.4 the family is `x_total`.
pub fn openmetrics_to_prometheus(om: &str) -> String {
    let mut out = String::with_capacity(om.len());
    let mut help: Option<&str> = None;
    for line in om.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if line.starts_with("# HELP ") {
            // Written after the TYPE line, which says whether the name needs `_total`.
            help = Some(line);
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, ""));
            let name = if kind == "counter" && !name.ends_with("_total") {
                format!("{name}_total")
            } else {
                name.to_string()
            };
            if let Some(h) = help.take() {
                let text = h
                    .strip_prefix("# HELP ")
                    .and_then(|r| r.split_once(' '))
                    .map_or("", |(_, t)| t);
                out.push_str(&format!("# HELP {name} {text}\n"));
            }
            out.push_str(&format!("# TYPE {name} {kind}\n"));
            continue;
        }
        if let Some(h) = help.take() {
            out.push_str(h);
            out.push('\n');
        }
        out.push_str(line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(i: u32) -> SocketAddr {
        SocketAddr::from((std::net::Ipv4Addr::from(0x0a00_0000 + i), 443))
    }

    #[test]
    fn server_labels_are_bounded() {
        let m = LiveMetrics::new();
        for i in 0..(MAX_LABELLED_ENDPOINTS as u32 + 30) {
            m.connection(addr(i), Hop::ClientToServer, "established");
        }
        let text = m.encode();
        let series = text
            .lines()
            .filter(|l| l.starts_with("proxyscope_connections_total{"))
            .count();
        assert_eq!(series, MAX_LABELLED_ENDPOINTS + 1, "{text}");
        assert!(text.contains(
            "proxyscope_connections_total{server=\"other\",hop=\"client->server\",outcome=\"established\"} 30"
        ), "{text}");
    }

    #[test]
    fn open_verdicts_drop_to_zero_when_resolved() {
        let m = LiveMetrics::new();
        let k = (
            SignatureId::TlsStall,
            Severity::Critical,
            Hop::ProxyToBackend,
        );
        m.verdicts([k, k].into_iter(), 2, 0);
        assert!(m
            .encode()
            .contains("signature=\"tls-stall\",severity=\"critical\",hop=\"proxy->backend\"} 2"));
        m.verdicts(std::iter::empty(), 2, 2);
        let t = m.encode();
        assert!(
            t.contains("signature=\"tls-stall\",severity=\"critical\",hop=\"proxy->backend\"} 0"),
            "{t}"
        );
        assert!(t.contains("proxyscope_verdicts_resolved_total 2"), "{t}");
    }

    #[test]
    fn prometheus_text_names_counter_families_by_their_samples() {
        let m = LiveMetrics::new();
        m.capture(7, 1, 0, 2);
        m.first_byte(addr(1), 0.2);
        let t = m.encode_prometheus_text();
        assert!(
            t.contains("# HELP proxyscope_packets_total Packets captured and analysed."),
            "{t}"
        );
        assert!(
            t.contains("# TYPE proxyscope_packets_total counter\nproxyscope_packets_total 7\n"),
            "{t}"
        );
        assert!(
            t.contains("# TYPE proxyscope_first_response_byte_seconds histogram"),
            "{t}"
        );
        assert!(!t.contains("# EOF") && !t.contains("# UNIT"), "{t}");
        // Totals read elsewhere never go backwards.
        m.capture(5, 1, 0, 0);
        assert!(m.encode().contains("proxyscope_packets_total 7"));
    }
}
