//! `analyze`: runs the signatures on every finished connection, aggregates verdicts, and sorts
//! capture artefacts into warnings. Holds no protocol logic of its own: the rules live in
//! `signature/`, the aggregation in `verdict/`.

use crate::app::AppSummary;
use crate::config::InputConfig;
use crate::correlate;
use crate::error::Result;
use crate::flow::FlowSummary;
use crate::pipeline::{self, CaptureSummary, Observer};
use crate::signature::Finding;
use crate::signature::{
    self, gateway_error, syn_unanswered, time_wait_pileup::TimeWaitTracker, tls_alert, tls_stall,
    upstream_timeout, Thresholds,
};
use crate::time::{human_duration, Timestamp};
use crate::topology::{GivenRoles, Topology};
use crate::verdict::{Aggregator, FlowRef, Verdict};

mod endpoints;
mod legs;
mod warnings;

use endpoints::Endpoints;
pub use endpoints::{EndpointSummary, MAX_ENDPOINTS_REPORTED};
use legs::Legs;
pub use warnings::Warning;
use warnings::{nothing_to_judge, ConnectionArtefacts};

/// Everything `analyze` produces.
pub struct Analysis {
    pub capture: CaptureSummary,
    pub connections: u64,
    pub verdicts: Vec<Verdict>,
    pub warnings: Vec<Warning>,
    /// The busiest endpoints first (at most `MAX_ENDPOINTS_REPORTED`).
    pub endpoints: Vec<EndpointSummary>,
    /// Client / proxy / backend roles (inferred or given).
    pub topology: Topology,
    /// Failures on the client leg explained by failures on the backend leg.
    pub chains: Vec<Chain>,
    /// Set when the capture held no TCP connection to judge, with why: a report must then say
    /// "nothing to judge", never "healthy".
    pub nothing_to_judge: Option<String>,
    /// Every failing client exchange at a proxy with the backend attempts paired with it (at
    /// most `correlate::MAX_EXCHANGES_LISTED`).
    pub exchanges: Vec<correlate::PairedExchange>,
    /// The per-connection records kept for pairing (at most `correlate::MAX_RECORDS`), for the
    /// HTML report's timelines.
    pub records: Vec<correlate::ConnRecord>,
}

pub use crate::correlate::Chain;

#[derive(Clone)]
/// The `analyze` observer: runs the signatures on finished connections; `conclude` turns it into
/// an `Analysis` (a clone can be concluded at any time: live snapshots).
pub struct Analyzer {
    th: Thresholds,
    agg: Aggregator,
    tw: TimeWaitTracker,
    /// Connections still open at the end of the capture whose judgement needs the capture's end
    /// (unanswered SYN, unanswered ClientHello, unanswered request).
    pending_end: Vec<(FlowSummary, AppSummary)>,
    /// Latest SYN per (client host, server endpoint), updated as SYNs are seen: a later attempt
    /// shows an earlier unanswered one was abandoned. At most `MAX_LATEST_STARTS` pairs (a SYN
    /// flood from spoofed sources must not grow it without bound); beyond, new pairs are not
    /// remembered and their attempts are judged as if not retried.
    latest_start: rustc_hash::FxHashMap<(std::net::IpAddr, std::net::SocketAddr), Timestamp>,
    /// The capture's last frame time, once every frame has been read (`capture_ending`).
    capture_end: Option<Timestamp>,
    endpoints: Endpoints,
    /// Capture time of the latest segment seen (when a connection expires, it had been quiet
    /// until at least this time).
    now: Timestamp,
    artefacts: ConnectionArtefacts,
    connections: u64,
    /// What role inference and pairing keep of each connection.
    legs: Legs,
    /// Failed attempts per source, to recognise port scans at the end.
    scans: signature::port_scan::ScanTracker,
    /// Retried handshakes per endpoint (`listen-queue-overflow`).
    listen_queue: signature::listen_queue_overflow::ListenQueueTracker,
    /// Findings about probes (attempts without payload), held until `conclude` knows whether
    /// their source scanned (then the one `port-scan` verdict replaces them). At most
    /// `MAX_DEFERRED_FINDINGS`; beyond it findings go straight to the aggregator.
    deferred: Vec<(Finding, Option<FlowRef>)>,
}

/// (client host, server endpoint) pairs whose latest connection start is kept at most; beyond
/// it, new pairs are not remembered (an abandoned attempt of theirs is judged as any other).
pub const MAX_LATEST_STARTS: usize = 100_000;

/// What `Analyzer::retained` counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retained {
    /// Verdict builders (at most twice `verdict::MAX_CLIENT_BUILDERS`).
    pub builders: usize,
    /// Every entry of the aggregator's tables, builders included.
    pub aggregator: usize,
    pub latest_starts: usize,
    pub deferred: usize,
    pub time_wait: usize,
}

/// Probe findings held back for scan recognition at most (see `Analyzer::deferred`).
const MAX_DEFERRED_FINDINGS: usize = 200_000;

impl Analyzer {
    /// Adds a finding, remembering it on its connection's record for pairing.
    fn add(&mut self, fd: Finding, f: Option<&FlowSummary>) {
        let flow = f.map(FlowRef::of);
        if f.is_some_and(signature::port_scan::is_probe)
            && self.deferred.len() < MAX_DEFERRED_FINDINGS
        {
            self.deferred.push((fd, flow));
            return;
        }
        self.add_now(fd, flow);
    }

    /// Adds a finding to the aggregator now.
    fn add_now(&mut self, fd: Finding, flow: Option<FlowRef>) {
        self.legs.finding(&fd);
        self.agg.add_ref(fd, flow);
    }

    /// Remembers the latest connection attempt of `client` to `server` (bounded).
    fn attempt_started(
        &mut self,
        client: std::net::IpAddr,
        server: std::net::SocketAddr,
        t: Timestamp,
    ) {
        let n = self.latest_start.len();
        match self.latest_start.get_mut(&(client, server)) {
            Some(latest) => *latest = (*latest).max(t),
            None if n < MAX_LATEST_STARTS => {
                self.latest_start.insert((client, server), t);
            }
            None => {}
        }
    }

    /// A connection still open when the capture ended, judged at the capture's end `end`.
    fn judge_open_at_end(&mut self, f: &FlowSummary, app: &AppSummary, end: Timestamp) {
        // The same client tried the same endpoint again after this attempt's last SYN: this one
        // was abandoned, so it is conclusive even near the end of the capture.
        let retried = f.last_syn.is_some_and(|s| {
            self.latest_start
                .get(&(f.orig.ip(), f.resp))
                .is_some_and(|t| *t > s.ts)
        });
        let judge_at = if retried && syn_unanswered::is_unanswered_attempt(f) {
            end.max(f.end.add_nanos(self.th.syn_timeout.nanos() + 1))
        } else {
            end
        };
        self.judge_at_end(f, app, judge_at);
    }

    fn judge_attempt(&mut self, f: &FlowSummary, capture_end: Timestamp) {
        match syn_unanswered::check(f, capture_end, &self.th) {
            syn_unanswered::Outcome::Finding(fd) => self.add(fd, Some(f)),
            syn_unanswered::Outcome::Inconclusive { waited_ns } => {
                self.artefacts.ended_early.add(f.first, || {
                    format!(
                        "{} → {}: last SYN only {} before the end",
                        f.orig,
                        f.resp,
                        human_duration(waited_ns)
                    )
                })
            }
            syn_unanswered::Outcome::OneDirection => self
                .artefacts
                .one_direction
                .add(f.first, || format!("{} → {}", f.orig, f.resp)),
            syn_unanswered::Outcome::None => {}
        }
    }

    /// The rules whose outcome depends on when the capture (or the connection's silence) ended.
    fn judge_at_end(&mut self, f: &FlowSummary, app: &AppSummary, end: Timestamp) {
        if syn_unanswered::is_unanswered_attempt(f) {
            self.judge_attempt(f, end);
        }
        match tls_stall::check(f, app, end, &self.th) {
            tls_stall::Outcome::Finding(fd) => {
                self.endpoints.get(f).tls_stalled += 1;
                self.add(fd, Some(f))
            }
            tls_stall::Outcome::Inconclusive { waited_ns } => {
                self.artefacts.tls_ended_early.add(f.first, || {
                    format!(
                        "{} → {}: ClientHello only {} before the end",
                        f.orig,
                        f.resp,
                        human_duration(waited_ns)
                    )
                })
            }
            tls_stall::Outcome::None => {}
        }
        match upstream_timeout::check(f, app, end, self.th.response_timeout.nanos()) {
            upstream_timeout::Outcome::Finding(fd) => self.add(fd, Some(f)),
            upstream_timeout::Outcome::Pending { waited_ns } => {
                self.artefacts.request_pending.add(f.first, || {
                    format!(
                        "{} → {}: request waiting {} when the capture ended",
                        f.orig,
                        f.resp,
                        human_duration(waited_ns)
                    )
                })
            }
            upstream_timeout::Outcome::None => {}
        }
    }
}

impl Observer for Analyzer {
    fn wants_app(&self) -> bool {
        true
    }

    /// `segment` reads only the link header (`decode::host_direction`).
    fn wants_frame_data(&self) -> bool {
        false
    }

    /// Only connection attempts matter here; the time of the other segments comes by `clock`.
    fn segments(&self) -> crate::pipeline::Segments {
        crate::pipeline::Segments::Syn
    }

    fn clock(&mut self, ts: Timestamp) {
        self.now = self.now.max(ts);
    }

    fn segment(
        &mut self,
        frame: &crate::capture::Frame<'_>,
        seg: &crate::decode::TcpSegment<'_>,
        _o: &crate::flow::SegmentOutcome,
    ) {
        self.now = self.now.max(frame.ts);
        // A SYN in a Linux cooked capture says which end is the capturing host (once per
        // connection attempt, not per packet).
        if seg.has(crate::decode::flags::SYN) {
            match crate::decode::host_direction(frame.link, frame.data) {
                Some(true) => self.legs.local_address(seg.src),
                Some(false) => self.legs.local_address(seg.dst),
                None => {}
            }
            if !seg.has(crate::decode::flags::ACK) {
                let server = std::net::SocketAddr::new(seg.dst, seg.dport);
                self.attempt_started(seg.src, server, frame.ts);
            }
        }
    }

    fn capture_ending(&mut self, last_ts: Option<Timestamp>) {
        self.capture_end = Some(last_ts.unwrap_or(self.now));
    }

    fn flow_end(&mut self, f: FlowSummary, app: Option<AppSummary>) {
        let app = app.unwrap_or_default();
        self.connections += 1;
        self.agg.observe_flow(&f);
        self.endpoints.count(&f, &app);
        self.legs.observe(&f, &app);
        self.attempt_started(f.orig.ip(), f.resp, f.start);
        self.tw.observe(&f);
        self.scans.observe(&f);
        self.listen_queue.observe(&f);
        if f.partial {
            self.artefacts
                .partial
                .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
        }
        self.artefacts.observe(&f, &app);
        let one_sided = (f.orig_stats.pkts == 0) != (f.resp_stats.pkts == 0);
        if one_sided && !syn_unanswered::is_unanswered_attempt(&f) {
            let sender_acks = f
                .history
                .chars()
                .any(|c| matches!(c, 'A' | 'D' | 'a' | 'd' | 'F' | 'f'));
            if sender_acks {
                self.artefacts
                    .one_direction
                    .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
            }
        }
        if f.end_reason == crate::flow::EndReason::CaptureEnd {
            match self.capture_end {
                // Every frame was read: judge it now rather than keep it (a flood leaves
                // hundreds of thousands of attempts open at the end).
                Some(end) => self.judge_open_at_end(&f, &app, end),
                None => self.pending_end.push((f.clone(), app.clone())),
            }
        } else {
            // Expired or closed: it was quiet at least until now.
            let end = self
                .now
                .max(f.end.add_nanos(self.th.syn_timeout.nanos().max(0) + 1));
            self.judge_at_end(&f, &app, end);
        }
        for fd in [
            signature::connection_refused::check(&f),
            signature::connection_reset::check(&f, &app),
            signature::truncated_response::check(&f, &app),
            signature::retransmission_storm::check(&f, &self.th),
            tls_alert::check(&f, &app),
        ]
        .into_iter()
        .flatten()
        .chain(gateway_error::check(&f, &app))
        .chain(signature::proxy_denied::check(&f, &app))
        {
            self.add(fd, Some(&f));
        }
    }
}

pub fn run(input: &InputConfig, th: Thresholds, max_evidence: usize) -> Result<Analysis> {
    run_with_roles(input, th, max_evidence, GivenRoles::default())
}

/// `run` with roles given by the user (`--proxy`, `--backend`).
pub fn run_with_roles(
    input: &InputConfig,
    th: Thresholds,
    max_evidence: usize,
    given: GivenRoles,
) -> Result<Analysis> {
    let mut a = Analyzer::new(th, max_evidence);
    let capture = pipeline::run(input, &mut a)?;
    Ok(conclude(a, capture, given))
}

impl Analyzer {
    /// A connection still open that waits for an answer, to be judged by `conclude` as if the
    /// capture ended then (live snapshots: `upstream-timeout`, `tls-stall` while they happen).
    /// It is not counted as a finished connection and no other rule looks at it.
    pub fn judge_open(&mut self, f: FlowSummary, app: AppSummary) {
        self.pending_end.push((f, app));
    }

    /// Connections finished so far.
    pub fn connections(&self) -> u64 {
        self.connections
    }

    /// Entries held in the tables that grow with traffic (tests: bounded over a long run).
    pub fn retained(&self) -> Retained {
        Retained {
            builders: self.agg.builders(),
            aggregator: self.agg.retained(),
            latest_starts: self.latest_start.len(),
            deferred: self.deferred.len(),
            time_wait: self.tw.retained(),
        }
    }

    pub fn new(th: Thresholds, max_evidence: usize) -> Analyzer {
        Analyzer {
            th,
            agg: Aggregator::new(max_evidence, th).with_max_notes(th.max_notes),
            tw: TimeWaitTracker::new(th),
            pending_end: Vec::new(),
            latest_start: Default::default(),
            capture_end: None,
            endpoints: Endpoints::new(th.max_endpoints),
            now: Timestamp::default(),
            artefacts: ConnectionArtefacts::default(),
            connections: 0,
            legs: Legs::default(),
            scans: Default::default(),
            listen_queue: Default::default(),
            deferred: Vec::new(),
        }
    }
}

/// Finishes an analysis: judges what needed the capture's end, infers roles, builds verdicts,
/// chains and warnings. `capture.last_ts` is the end of the capture.
pub fn conclude(mut a: Analyzer, capture: CaptureSummary, given: GivenRoles) -> Analysis {
    let th = a.th;
    let end = capture.last_ts.unwrap_or_default();
    for (f, app) in std::mem::take(&mut a.pending_end) {
        a.judge_open_at_end(&f, &app, end);
    }
    // Scans: one info verdict per scanning source replaces its probes' findings.
    let scans = a.scans.scans(&th);
    for (fd, f) in std::mem::take(&mut a.deferred) {
        if !scans.iter().any(|(s, _)| s.source == fd.client) {
            a.add_now(fd, f);
        }
    }
    for (_, fd) in scans {
        a.agg.add(fd, None);
    }
    for fd in a.listen_queue.findings(&th) {
        a.agg.add(fd, None);
    }
    for fd in std::mem::replace(&mut a.tw, TimeWaitTracker::new(th)).findings() {
        a.agg.add(fd, None);
    }
    let legs = std::mem::take(&mut a.legs).conclude(given);
    for fd in legs.direct_ok_proxied_fails {
        a.agg.add(fd, None);
    }
    let (topology, chains, exchanges) = (legs.topology, legs.chains, legs.exchanges);
    let records = legs.records;
    let mut warnings = a.artefacts.into_warnings(&th, &capture);
    let max_evidence = a.agg.max_evidence();
    let mut verdicts = a.agg.finish(&topology);
    crate::verdict::escalate_paired_causes(&mut verdicts, &chains);
    warnings::cap_warnings(
        &mut warnings,
        &verdicts,
        &th,
        a.endpoints.overflow(),
        max_evidence,
    );
    let endpoints = a.endpoints.into_report();
    Analysis {
        nothing_to_judge: nothing_to_judge(&capture, a.connections),
        capture,
        connections: a.connections,
        verdicts,
        warnings,
        endpoints,
        topology,
        chains,
        exchanges,
        records,
    }
}

#[cfg(test)]
mod tests {
    //! Scan and listen-queue recognition through the `Analyzer` (flow_end → conclude) on
    //! hand-built summaries; frame n is at n ms.

    use super::*;
    use crate::flow::testkit::fr;
    use crate::flow::{ConnState, DirStats, Direction, RstInfo};
    use crate::signature::Severity;

    /// A connection `orig` → `resp` starting at frame `n`, established with data, closed.
    fn ok(id: u64, orig: &str, resp: &str, n: u64) -> FlowSummary {
        let mut f = crate::flow::testkit::established(id, orig, resp, n, n + 5);
        f.conn_state = ConnState::SF;
        f.history = "ShADadFf".into();
        f.orig_stats = DirStats {
            pkts: 4,
            bytes: 100,
            ..Default::default()
        };
        f.resp_stats = DirStats {
            pkts: 4,
            bytes: 1000,
            ..Default::default()
        };
        f
    }

    /// A SYN answered by RST.
    fn refused(id: u64, orig: &str, resp: &str, n: u64) -> FlowSummary {
        FlowSummary {
            conn_state: ConnState::REJ,
            history: "Sr".into(),
            orig_stats: DirStats {
                pkts: 1,
                ..Default::default()
            },
            resp_stats: DirStats {
                pkts: 1,
                ..Default::default()
            },
            last: fr(n + 1),
            end: fr(n + 1).ts,
            synack: None,
            rst: Some(RstInfo {
                from: Direction::Resp,
                frame: fr(n + 1),
                ttl: 64,
                unacked_by_peer: 0,
                unacked_from_peer: 0,
                after_fin: false,
                last_data_from: None,
            }),
            rst_count: 1,
            ..ok(id, orig, resp, n)
        }
    }

    /// A SYN-ACKed probe the scanner reset at once (half-open scan of an open port).
    fn half_open(id: u64, orig: &str, resp: &str, n: u64) -> FlowSummary {
        FlowSummary {
            conn_state: ConnState::RSTO,
            history: "ShR".into(),
            orig_stats: DirStats {
                pkts: 2,
                ..Default::default()
            },
            resp_stats: DirStats {
                pkts: 1,
                ..Default::default()
            },
            rst: Some(RstInfo {
                from: Direction::Orig,
                frame: fr(n + 2),
                ttl: 64,
                unacked_by_peer: 0,
                unacked_from_peer: 0,
                after_fin: false,
                last_data_from: None,
            }),
            rst_count: 1,
            ..ok(id, orig, resp, n)
        }
    }

    /// A handshake answered after `syns` SYNs (1 s apart).
    fn retried(id: u64, orig: &str, resp: &str, n: u64, syns: u32) -> FlowSummary {
        let last = n + (syns as u64 - 1) * 1000;
        FlowSummary {
            syn_count: syns,
            last_syn: Some(fr(last)),
            synack: Some(fr(last + 1)),
            last: fr(last + 5),
            end: fr(last + 5).ts,
            ..ok(id, orig, resp, n)
        }
    }

    fn analyse(flows: Vec<FlowSummary>) -> Analysis {
        let mut a = Analyzer::new(Thresholds::default(), 5);
        let end = flows.iter().map(|f| f.end).max().unwrap_or_default();
        for f in flows {
            a.flow_end(f, None);
        }
        let capture = CaptureSummary {
            last_ts: Some(end.add_nanos(60 * crate::time::NANOS_PER_SEC)),
            ..Default::default()
        };
        conclude(a, capture, GivenRoles::default())
    }

    /// Attempts still open at the capture's end, ended after `capture_ending` (as the pipeline
    /// does) or without it: judged the same, and with the hook nothing is held until the end.
    #[test]
    fn open_attempts_are_judged_as_they_end_at_the_capture_end() {
        let attempt = |id: u64, client: &str, first: u64| {
            let mut f = crate::flow::testkit::established(id, client, "10.0.0.2:80", first, first);
            f.conn_state = crate::flow::ConnState::S0;
            f.history = "S".into();
            f.synack = None;
            f.orig_stats.pkts = 1;
            f.end_reason = crate::flow::EndReason::CaptureEnd;
            f
        };
        // One attempt 10 s before the end (conclusive), one 1 s before (inconclusive).
        let flows = || {
            vec![
                attempt(1, "10.0.0.1:4000", 1000),
                attempt(2, "10.0.0.3:4000", 10_000),
            ]
        };
        let end = crate::flow::testkit::fr(11_000).ts;
        let capture = CaptureSummary {
            last_ts: Some(end),
            ..Default::default()
        };
        let run = |hook: bool| {
            let mut a = Analyzer::new(Thresholds::default(), 5);
            if hook {
                a.capture_ending(Some(end));
            }
            for f in flows() {
                a.flow_end(f, None);
            }
            assert_eq!(a.pending_end.is_empty(), hook);
            let r = conclude(a, capture.clone(), GivenRoles::default());
            let early: Vec<u64> = r
                .warnings
                .iter()
                .filter(|w| w.kind == "capture-ended-early")
                .map(|w| w.count)
                .collect();
            (sigs(&r), early)
        };
        let with = run(true);
        assert_eq!(with, run(false));
        assert_eq!(with.0, [("syn-unanswered", Severity::Critical, 1)]);
        assert_eq!(with.1, [1]);
    }

    fn sigs(a: &Analysis) -> Vec<(&'static str, Severity, u64)> {
        a.verdicts
            .iter()
            .map(|v| (v.signature.name(), v.severity, v.flow_count))
            .collect()
    }

    /// A 1 000-port SYN scan of one host, 3 ports open.
    fn port_scan(ports: u16, open: &[u16]) -> Vec<FlowSummary> {
        (0..ports)
            .map(|i| {
                let p = 1 + i;
                let resp = format!("10.0.0.2:{}", p);
                let n = 1 + i as u64 * 3;
                if open.contains(&p) {
                    half_open(i as u64, "10.0.0.66:40000", &resp, n)
                } else {
                    refused(i as u64, "10.0.0.66:40000", &resp, n)
                }
            })
            .collect()
    }

    #[test]
    fn a_thousand_port_scan_is_one_info_verdict() {
        let a = analyse(port_scan(1000, &[22, 80, 443]));
        assert_eq!(
            sigs(&a),
            [("port-scan", Severity::Info, 1000)],
            "{:?}",
            sigs(&a)
        );
        let v = &a.verdicts[0];
        assert_eq!(v.server, "10.0.0.2:0".parse().unwrap());
        assert!(
            v.summary.contains("1000 ports of 10.0.0.2"),
            "{}",
            v.summary
        );
        assert!(v.note_lines()[0].contains("997 refused, 0 unanswered, 3 answered"));
    }

    #[test]
    fn nineteen_ports_is_not_a_scan_twenty_is() {
        let a = analyse(port_scan(19, &[]));
        assert!(sigs(&a).iter().all(|s| s.0 == "connection-refused"));
        assert_eq!(a.verdicts.len(), 19);
        let a = analyse(port_scan(20, &[]));
        assert_eq!(sigs(&a), [("port-scan", Severity::Info, 20)]);
    }

    #[test]
    fn horizontal_scan_of_one_port_on_many_hosts() {
        let flows: Vec<FlowSummary> = (0..25u64)
            .map(|i| {
                refused(
                    i,
                    "10.0.0.66:40000",
                    &format!("10.0.1.{}:22", i + 1),
                    1 + i * 3,
                )
            })
            .collect();
        let a = analyse(flows);
        assert_eq!(sigs(&a), [("port-scan", Severity::Info, 25)]);
        assert_eq!(a.verdicts[0].server, "0.0.0.0:22".parse().unwrap());
    }

    #[test]
    fn a_source_with_mostly_successful_traffic_is_not_a_scanner() {
        // 25 refused ports but 25 successful connections too: half failed, not "nearly all".
        let mut flows = port_scan(25, &[]);
        for i in 0..25u64 {
            flows.push(ok(
                100 + i,
                "10.0.0.66:41000",
                "10.0.0.3:80",
                10_000 + i * 10,
            ));
        }
        let a = analyse(flows);
        assert!(sigs(&a).iter().all(|s| s.0 == "connection-refused"));
        // Refusals from other clients stay reported even while someone scans.
        let mut flows = port_scan(30, &[]);
        flows.push(refused(500, "10.0.0.7:50000", "10.0.0.2:8080", 5));
        let a = analyse(flows);
        let s = sigs(&a);
        assert!(s.contains(&("port-scan", Severity::Info, 30)), "{:?}", s);
        assert!(
            s.iter().any(|x| x.0 == "connection-refused" && x.2 == 1),
            "{:?}",
            s
        );
    }

    #[test]
    fn scan_spread_over_more_than_the_window_is_not_one() {
        let flows: Vec<FlowSummary> = (0..20u64)
            .map(|i| {
                refused(
                    i,
                    "10.0.0.66:40000",
                    &format!("10.0.0.2:{}", i + 1),
                    1 + i * 40_000,
                )
            })
            .collect();
        // 19 × 40 s = 760 s > the 600 s window.
        let a = analyse(flows);
        assert!(sigs(&a).iter().all(|s| s.0 == "connection-refused"));
    }

    /// `retried_n` connections needing `syns` SYNs among `total` to one endpoint.
    fn queue(total: u64, retried_n: u64, syns: u32) -> Vec<FlowSummary> {
        (0..total)
            .map(|i| {
                let c = format!("10.0.0.1:{}", 30000 + i);
                if i < retried_n {
                    retried(i, &c, "10.0.0.9:80", 1 + i * 10, syns)
                } else {
                    ok(i, &c, "10.0.0.9:80", 1 + i * 10)
                }
            })
            .collect()
    }

    #[test]
    fn listen_queue_overflow_at_three_and_five_percent() {
        let a = analyse(queue(60, 3, 2));
        assert_eq!(sigs(&a), [("listen-queue-overflow", Severity::Warning, 3)]);
        let v = &a.verdicts[0];
        assert!(v.summary.contains("3 of 60 connections"), "{}", v.summary);
        assert!(v.likely_causes.iter().any(|c| c.contains("somaxconn")));
        assert!(v
            .likely_causes
            .iter()
            .any(|c| c.contains("tcp_max_syn_backlog")));
        assert!(v.next_checks.iter().any(|c| c.contains("maxconn")));
        // 3 SYNs count too.
        assert_eq!(sigs(&analyse(queue(10, 3, 3))).len(), 1);
    }

    #[test]
    fn listen_queue_boundaries_are_not_warnings() {
        // Two retried handshakes: ordinary loss.
        assert!(analyse(queue(10, 2, 2)).verdicts.is_empty());
        // Three, but under 5 % (3 of 61).
        assert!(analyse(queue(61, 3, 2)).verdicts.is_empty());
        // Four SYNs each is not a queue drop pattern this rule claims.
        assert!(analyse(queue(10, 3, 4)).verdicts.is_empty());
        // A SYN sent again after the SYN-ACK (the SYN-ACK was lost) is not a dropped SYN.
        let mut flows = queue(10, 0, 1);
        for f in flows.iter_mut().take(3) {
            f.syn_count = 2;
            f.last_syn = Some(fr(f.synack.unwrap().number + 200));
        }
        assert!(analyse(flows).verdicts.is_empty());
    }
}
