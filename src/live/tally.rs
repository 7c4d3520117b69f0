//! What live mode counts besides the analysis: per-connection outcomes for the Prometheus
//! metrics, and the last healthy connection per server endpoint (what `verdict-resolved` needs).
//!
//! Owns: [`LiveObserver`], which wraps the `analyze` observer (so that live snapshots clone the
//! analyzer only, never these counters) and classifies every finished connection once.
//! Must not: judge outages (the signatures do) or format output.
//!
//! Invariants: every map is bounded (`MAX_HEALTH_ENDPOINTS`); the metrics' label sets are bounded
//! by `report::metrics` itself.

use crate::analyze::Analyzer;
use crate::app::AppSummary;
use crate::flow::{ConnState, FlowSummary};
use crate::pipeline::Observer;
use crate::report::metrics::LiveMetrics;
use crate::time::Timestamp;
use crate::topology::Topology;
use rustc_hash::FxHashMap;
use std::net::SocketAddr;
use std::sync::Arc;

/// Server endpoints whose last healthy connection is remembered at most; beyond it, new
/// endpoints are not remembered (their verdicts then never resolve by themselves, they stay open).
pub const MAX_HEALTH_ENDPOINTS: usize = 10_000;

/// How one finished connection went, as the metrics label it (`outcome`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Handshake completed (or the server sent data) and no reset.
    Established,
    /// Answered with a RST to the SYN.
    Refused,
    /// SYN never answered.
    Unanswered,
    /// Reset after the handshake.
    Reset,
    /// Anything else (picked up mid-way without server data, ...).
    Other,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Established => "established",
            Outcome::Refused => "refused",
            Outcome::Unanswered => "unanswered",
            Outcome::Reset => "reset",
            Outcome::Other => "other",
        }
    }

    pub fn of(f: &FlowSummary) -> Outcome {
        match f.conn_state {
            ConnState::REJ => Outcome::Refused,
            ConnState::S0 => Outcome::Unanswered,
            _ if f.rst.is_some() => Outcome::Reset,
            _ if f.synack.is_some() || f.resp_stats.bytes > 0 => Outcome::Established,
            _ => Outcome::Other,
        }
    }
}

/// TLS handshake outcome (`outcome` label of the TLS metric), None without a ClientHello.
pub fn tls_outcome(app: &AppSummary) -> Option<&'static str> {
    let t = app.tls.as_ref()?;
    t.client_hello.as_ref()?;
    let fatal = t.alerts.iter().any(|a| a.level == 2 && !a.encrypted);
    Some(if fatal {
        "alert"
    } else if t.server_hello.is_some() {
        "ok"
    } else {
        "no-server-hello"
    })
}

/// A connection that worked: established, not reset, every HTTP request answered below 500, and
/// a TLS handshake (if any) answered without a fatal alert. A verdict on its server endpoint
/// resolves only after such a connection.
pub fn healthy(f: &FlowSummary, app: &AppSummary) -> bool {
    if Outcome::of(f) != Outcome::Established {
        return false;
    }
    if let Some(h) = &app.http {
        if h.responses == 0 || !h.unanswered.is_empty() || h.truncated.is_some() {
            return false;
        }
        if h.status_counts.iter().any(|(s, _)| *s >= 500) {
            return false;
        }
    }
    !matches!(tls_outcome(app), Some("alert" | "no-server-hello"))
}

/// The observer live mode runs: the analyzer plus the live counters.
pub struct LiveObserver {
    pub analyzer: Analyzer,
    /// Roles as the latest snapshot inferred them (hop labels of the metrics).
    pub topology: Topology,
    pub metrics: Option<Arc<LiveMetrics>>,
    /// Server endpoint → end of its latest healthy connection.
    last_healthy: FxHashMap<SocketAddr, Timestamp>,
}

impl LiveObserver {
    pub fn new(analyzer: Analyzer, metrics: Option<Arc<LiveMetrics>>) -> LiveObserver {
        LiveObserver {
            analyzer,
            topology: Topology::default(),
            metrics,
            last_healthy: FxHashMap::default(),
        }
    }

    /// When the latest healthy connection to `server` ended.
    pub fn last_healthy(&self, server: SocketAddr) -> Option<Timestamp> {
        self.last_healthy.get(&server).copied()
    }

    /// Endpoints remembered (tests: the bound holds).
    pub fn health_entries(&self) -> usize {
        self.last_healthy.len()
    }

    fn count(&mut self, f: &FlowSummary, app: &AppSummary) {
        if healthy(f, app) {
            let n = self.last_healthy.len();
            match self.last_healthy.get_mut(&f.resp) {
                Some(t) => *t = (*t).max(f.end),
                None if n < MAX_HEALTH_ENDPOINTS => {
                    self.last_healthy.insert(f.resp, f.end);
                }
                None => {}
            }
        }
        let Some(m) = &self.metrics else { return };
        let hop = self.topology.hop(f.orig.ip(), f.resp);
        m.connection(f.resp, hop, Outcome::of(f).name());
        if let Some(o) = tls_outcome(app) {
            m.tls_handshake(f.resp, o);
        }
        if let Some(h) = &app.http {
            for (status, n) in &h.status_counts {
                m.http_responses(f.resp, *status, u64::from(*n));
            }
        }
        // Time to first response byte: the client's first data to the server's first data.
        if let (Some(c), Some(s)) = (f.orig_stats.first_data, f.resp_stats.first_data) {
            let ns = s.ts.nanos_since(c.ts);
            if ns >= 0 {
                m.first_byte(f.resp, ns as f64 / 1e9);
            }
        }
    }
}

impl Observer for LiveObserver {
    fn wants_app(&self) -> bool {
        true
    }

    fn segments(&self) -> crate::pipeline::Segments {
        self.analyzer.segments()
    }

    fn clock(&mut self, ts: crate::time::Timestamp) {
        self.analyzer.clock(ts)
    }

    fn segment(
        &mut self,
        frame: &crate::capture::Frame<'_>,
        seg: &crate::decode::TcpSegment<'_>,
        o: &crate::flow::SegmentOutcome,
    ) {
        self.analyzer.segment(frame, seg, o)
    }

    fn flow_end(&mut self, f: FlowSummary, app: Option<AppSummary>) {
        let app = app.unwrap_or_default();
        self.count(&f, &app);
        self.analyzer.flow_end(f, Some(app))
    }

    fn app_event(&mut self, flow: u64, ev: &crate::app::AppEvent) {
        self.analyzer.app_event(flow, ev)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analyze::conclude;
    use crate::flow::testkit::{established, fr};
    use crate::flow::{Direction, RstInfo};
    use crate::signature::Thresholds;

    /// Connection `i`: every one from a new client to a new server endpoint (the worst case for
    /// per-key tables); even ones refused, odd ones healthy and closed with FINs.
    fn flow(i: u64) -> FlowSummary {
        let client = format!(
            "10.{}.{}.{}:40000",
            (i >> 16) & 255,
            (i >> 8) & 255,
            i & 255
        );
        let server = format!(
            "172.{}.{}.{}:{}",
            16 + ((i >> 16) & 15),
            (i >> 8) & 255,
            i & 255,
            1000 + (i >> 20)
        );
        let n = i * 10;
        let mut f = established(i, &client, &server, n, n + 5);
        if i % 2 == 0 {
            f.conn_state = ConnState::REJ;
            f.synack = None;
            f.history = "Sr".into();
            f.rst = Some(RstInfo {
                from: Direction::Resp,
                frame: fr(n + 1),
                ttl: 64,
                unacked_by_peer: 0,
                unacked_from_peer: 0,
                after_fin: false,
                last_data_from: None,
            });
        } else {
            f.conn_state = ConnState::SF;
            f.history = "ShADadFf".into();
            f.closed_at = Some(fr(n + 5).ts);
            f.first_fin_from = Some(Direction::Orig);
            f.resp_stats.bytes = 100;
            f.orig_stats.bytes = 50;
        }
        f
    }

    /// Memory stays flat over a long run: after the per-key caps are reached, another 60 000
    /// connections to new endpoints add nothing to the analyzer's or the live tables.
    #[test]
    fn tables_stay_bounded_over_a_long_run() {
        let metrics = Arc::new(LiveMetrics::new());
        let mut obs = LiveObserver::new(
            Analyzer::new(Thresholds::default(), 10),
            Some(metrics.clone()),
        );
        for i in 0..220_000 {
            obs.flow_end(flow(i), None);
        }
        let (a1, h1, m1) = (
            obs.analyzer.retained(),
            obs.health_entries(),
            metrics.encode().len(),
        );
        for i in 220_000..280_000 {
            obs.flow_end(flow(i), None);
        }
        let (a2, h2, m2) = (
            obs.analyzer.retained(),
            obs.health_entries(),
            metrics.encode().len(),
        );
        assert_eq!(obs.analyzer.connections(), 280_000);
        // Tables whose cap the first phase reached do not grow at all; the verdict builders
        // stay within their hard cap.
        assert_eq!(a1.latest_starts, crate::analyze::MAX_LATEST_STARTS);
        assert_eq!(a2.latest_starts, a1.latest_starts);
        assert_eq!(a2.deferred, a1.deferred, "{a1:?} -> {a2:?}");
        assert_eq!(a2.time_wait, a1.time_wait, "{a1:?} -> {a2:?}");
        assert!(
            a2.builders <= 2 * crate::verdict::MAX_CLIENT_BUILDERS,
            "{a2:?}"
        );
        assert!(
            a2.aggregator - a1.aggregator <= 4 * (a2.builders - a1.builders),
            "{a1:?} -> {a2:?}: the aggregator grows only with new builders"
        );
        assert_eq!(h1, MAX_HEALTH_ENDPOINTS);
        assert_eq!(h2, h1);
        assert_eq!(m1, m2, "metric series grew");
        // The refusals are still counted in full.
        let an = conclude(
            obs.analyzer.clone(),
            crate::pipeline::CaptureSummary::default(),
            Default::default(),
        );
        let refused: u64 = an
            .verdicts
            .iter()
            .filter(|v| v.signature == crate::signature::SignatureId::ConnectionRefused)
            .map(|v| v.flow_count)
            .sum();
        assert!(refused > 0);
    }

    /// A request still waiting on an open connection becomes `upstream-timeout` in a snapshot
    /// once it waited longer than the response timeout, not before; the analyzer itself is
    /// unchanged (the connection is not counted as finished).
    #[test]
    fn an_open_request_times_out_in_a_snapshot() {
        use crate::app::http::{HttpSummary, Request};
        use crate::pipeline::CaptureSummary;
        let th = Thresholds::default();
        let mut f = established(1, "10.0.0.1:40000", "10.0.0.2:80", 1, 3);
        f.resp_stats.pkts = 1;
        f.end_reason = crate::flow::EndReason::CaptureEnd;
        let req = Request {
            frame: fr(3),
            method: "GET".into(),
            target: "/slow".into(),
            host: Some("backend.lab".into()),
            complete_at: Some(fr(3)),
            forwarded_for: None,
        };
        let app = AppSummary {
            http: Some(HttpSummary {
                requests: 1,
                unanswered: vec![req],
                ..Default::default()
            }),
            ..Default::default()
        };
        let snapshot = |after_ns: i64| {
            let mut an = Analyzer::new(th, 10);
            an.judge_open(f.clone(), app.clone());
            let sum = CaptureSummary {
                last_ts: Some(fr(3).ts.add_nanos(after_ns)),
                ..Default::default()
            };
            let a = conclude(an, sum, Default::default());
            assert_eq!(a.connections, 0, "an open connection is not a finished one");
            a.verdicts
                .iter()
                .filter(|v| v.signature == crate::signature::SignatureId::UpstreamTimeout)
                .count()
        };
        assert_eq!(
            snapshot(th.response_timeout.nanos() / 2),
            0,
            "still pending"
        );
        assert_eq!(snapshot(th.response_timeout.nanos() + 1), 1, "certain now");
    }
}
