//! `analyze`: runs the signatures on every finished connection, aggregates verdicts, and sorts
//! capture artefacts into warnings. Holds no protocol logic of its own: the rules live in
//! `signature/`, the aggregation in `verdict/`.

use crate::app::AppSummary;
use crate::config::InputConfig;
use crate::correlate;
use crate::error::Result;
use crate::flow::{FlowSummary, FrameRef};
use crate::pipeline::{self, CaptureSummary, Observer};
use crate::signature::{
    self, gateway_error, syn_unanswered, time_wait_pileup::TimeWaitTracker, tls_alert, tls_stall,
    upstream_timeout, Thresholds,
};
use crate::signature::{Evidence, EvidenceKind, Finding, Severity, SignatureId};
use crate::time::{human_duration, Timestamp};
use crate::topology::{Collector, GivenRoles, Topology};
use crate::verdict::{Aggregator, Verdict};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Example frames kept per warning.
const MAX_WARNING_FRAMES: usize = 5;

/// A capture artefact: something about how the capture was taken, never an outage.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    /// Stable kind: `partial-flow`, `capture-ended-early`, `request-pending`,
    /// `one-direction-only`, `snaplen`, `file-truncated`, `malformed`, `ip-fragments`,
    /// `time-reversal`, `time-gap` (merged files far apart in time), `rst-outside-window` (RSTs
    /// a receiver would drop, RFC 5961), `retransmission-inconsistency` (resent bytes that
    /// differ from the original), `connection-cap` (the table's `--max-connections` was hit),
    /// and in live mode `kernel-drops`.
    pub kind: &'static str,
    pub message: String,
    pub count: u64,
    /// Example frames (first frame of the connections concerned).
    pub frames: Vec<FrameRef>,
}

#[derive(Clone, Default)]
struct WarnAcc {
    count: u64,
    frames: Vec<FrameRef>,
    detail: Option<String>,
}

impl WarnAcc {
    fn add(&mut self, fr: FrameRef, detail: impl FnOnce() -> String) {
        self.add_n(1, fr, detail)
    }

    /// Counts `n` occurrences at once (e.g. the RSTs of one connection).
    fn add_n(&mut self, n: u64, fr: FrameRef, detail: impl FnOnce() -> String) {
        self.count += n;
        if self.frames.len() < MAX_WARNING_FRAMES {
            self.frames.push(fr);
        }
        if self.detail.is_none() {
            self.detail = Some(detail());
        }
    }
}

/// Per server endpoint: what was asked of it and how it answered (every report has it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointSummary {
    pub server: String,
    /// SNI and Host names seen towards it (first few).
    pub names: Vec<String>,
    pub connections: u64,
    /// Connections whose handshake completed (SYN-ACK seen or data from the server).
    pub established: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub reset: u64,
    pub requests: u64,
    pub responses: u64,
    /// HTTP status code → responses.
    pub status_counts: std::collections::BTreeMap<u16, u64>,
    pub tls_handshakes: u64,
    pub tls_ok: u64,
    pub tls_alerts: u64,
    pub tls_stalled: u64,
    /// `Server` headers seen in its responses (first few).
    pub server_headers: Vec<String>,
}

/// Endpoints listed in a report at most (the busiest first).
pub const MAX_ENDPOINTS_REPORTED: usize = 50;
/// Names kept per endpoint.
const MAX_NAMES: usize = 4;

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
}

/// Why a capture with no TCP connection has nothing to judge.
fn nothing_to_judge(c: &CaptureSummary, connections: u64) -> Option<String> {
    if connections > 0 {
        return None;
    }
    let k = &c.skipped;
    Some(if c.frames_matched == 0 && c.frames > 0 {
        format!(
            "the filter matched 0 of {} packets: nothing was analysed",
            c.frames
        )
    } else if k.tunnelled > 0 {
        format!(
            "{} of {} packets are UDP tunnels (GTP-U, VXLAN or Geneve) whose inner TCP is not decoded; no TCP connection outside them",
            k.tunnelled, c.frames_matched
        )
    } else if c.tcp_segments > 0 {
        format!(
            "{} TCP segments but no connection could be followed",
            c.tcp_segments
        )
    } else {
        format!(
            "{} packets, none of them TCP ({} not IP, {} IP but not TCP, {} malformed, {} fragments)",
            c.frames_matched, k.not_ip, k.not_tcp, k.malformed, k.ip_fragment
        )
    })
}

pub use crate::correlate::Chain;

/// A failed client-leg request (gateway error), kept for chains and direct-vs-proxied.
#[derive(Clone, Debug)]
struct FrontFailure {
    client: IpAddr,
    server: SocketAddr,
    status: u16,
    method: String,
    target: String,
    response: FrameRef,
}

/// A successful exchange, for direct-vs-proxied comparisons.
#[derive(Clone, Debug)]
struct DirectOk {
    client: IpAddr,
    server: SocketAddr,
    method: String,
    target: String,
    status: u16,
    response: FrameRef,
}

/// (client host, server endpoint) pairs whose latest connection start is remembered (a SYN
/// flood from a million sources must not grow it without bound).
const MAX_LATEST_START: usize = 200_000;

/// Failure / success records kept for chains (each list).
const MAX_CHAIN_RECORDS: usize = 10_000;

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
    /// Latest connection start per (client host, server endpoint): a later attempt shows an
    /// earlier unanswered one was abandoned.
    latest_start: rustc_hash::FxHashMap<(std::net::IpAddr, std::net::SocketAddr), Timestamp>,
    endpoints: rustc_hash::FxHashMap<std::net::SocketAddr, EndpointSummary>,
    /// Capture time of the latest segment seen (when a connection expires, it had been quiet
    /// until at least this time).
    now: Timestamp,
    partial: WarnAcc,
    one_direction: WarnAcc,
    ended_early: WarnAcc,
    tls_ended_early: WarnAcc,
    request_pending: WarnAcc,
    rst_outside: WarnAcc,
    inconsistent: WarnAcc,
    /// HTTP connections whose parser stopped (unparsable, over a cap): what they said later is
    /// not known.
    http_unparsed: WarnAcc,
    /// Requests beyond `TrackerConfig::max_pending_requests` (one example per connection).
    request_cap: WarnAcc,
    /// Connections counted under "(other endpoints)" (`Thresholds::max_endpoints`).
    endpoint_overflow: u64,
    /// Evidence frames per verdict (`--max-evidence`).
    max_evidence: usize,
    connections: u64,
    roles: Collector,
    front_failures: Vec<FrontFailure>,
    direct_ok: Vec<DirectOk>,
    /// Per-connection records for pairing client exchanges with backend attempts (capped).
    records: Vec<correlate::ConnRecord>,
    /// Connection id → index in `records`.
    record_of: rustc_hash::FxHashMap<u64, usize>,
    /// Failed attempts per source, to recognise port scans at the end.
    scans: signature::port_scan::ScanTracker,
    /// Retried handshakes per endpoint (`listen-queue-overflow`).
    listen_queue: signature::listen_queue_overflow::ListenQueueTracker,
    /// Findings about probes (attempts without payload), held until `conclude` knows whether
    /// their source scanned (then the one `port-scan` verdict replaces them). At most
    /// `MAX_DEFERRED_FINDINGS`; beyond it findings go straight to the aggregator.
    deferred: Vec<(Finding, Option<FlowSummary>)>,
}

/// Probe findings held back for scan recognition at most (see `Analyzer::deferred`).
const MAX_DEFERRED_FINDINGS: usize = 200_000;

impl Analyzer {
    /// Adds a finding, remembering it on its connection's record for pairing.
    fn add(&mut self, fd: Finding, f: Option<&FlowSummary>) {
        if let Some(flow) = f.filter(|f| signature::port_scan::is_probe(f)) {
            if self.deferred.len() < MAX_DEFERRED_FINDINGS {
                self.deferred.push((fd, Some(flow.clone())));
                return;
            }
        }
        self.add_now(fd, f);
    }

    /// Adds a finding to the aggregator now.
    fn add_now(&mut self, fd: Finding, f: Option<&FlowSummary>) {
        if let Some(i) = fd.flow.and_then(|id| self.record_of.get(&id)) {
            self.records[*i].finding(fd.signature, fd.severity, &fd.evidence);
        }
        self.agg.add(fd, f);
    }

    /// Keeps what pairing needs of a finished connection.
    fn record(&mut self, f: &FlowSummary, app: &AppSummary) {
        if self.records.len() >= correlate::MAX_RECORDS {
            return;
        }
        let mut requests = Vec::new();
        if let Some(h) = &app.http {
            let answered = h
                .errors
                .iter()
                .chain(h.ok_sample.iter())
                .filter_map(|x| x.request.as_ref().map(|q| (q, Some(&x.response))));
            let others = h
                .denied
                .iter()
                .filter_map(|d| d.request.as_ref().map(|q| (q, None)))
                .chain(h.unanswered.iter().map(|q| (q, None)))
                .chain(h.request_sample.iter().map(|q| (q, None)));
            for (q, r) in answered
                .chain(others)
                .take(correlate::MAX_REQUESTS_PER_CONN)
            {
                requests.push(correlate::ReqRecord {
                    frame: q.frame,
                    method: q.method.clone(),
                    target: q.target.clone(),
                    forwarded_for: q.forwarded_for.clone(),
                    answer: r.map(|r| (r.status, r.frame, r.server.clone())),
                });
            }
            requests.sort_by_key(|r| (r.frame.ts, r.frame.number));
        }
        self.record_of.insert(f.id, self.records.len());
        self.records.push(correlate::ConnRecord {
            id: f.id,
            orig: f.orig,
            resp: f.resp,
            start: f.start,
            end: f.end,
            first: f.first_syn.unwrap_or(f.first),
            first_is_syn: f.first_syn.is_some(),
            first_bytes: app.first_bytes[0],
            tls: app.tls.is_some(),
            requests,
            failure: None,
        });
    }

    fn judge_attempt(&mut self, f: &FlowSummary, capture_end: Timestamp) {
        match syn_unanswered::check(f, capture_end, &self.th) {
            syn_unanswered::Outcome::Finding(fd) => self.add(fd, Some(f)),
            syn_unanswered::Outcome::Inconclusive { waited_ns } => {
                self.ended_early.add(f.first, || {
                    format!(
                        "{} → {}: last SYN only {} before the end",
                        f.orig,
                        f.resp,
                        human_duration(waited_ns)
                    )
                })
            }
            syn_unanswered::Outcome::OneDirection => self
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
                self.endpoint(f).tls_stalled += 1;
                self.add(fd, Some(f))
            }
            tls_stall::Outcome::Inconclusive { waited_ns } => {
                self.tls_ended_early.add(f.first, || {
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
        match upstream_timeout::check(f, app, end, self.th.response_timeout_ns) {
            upstream_timeout::Outcome::Finding(fd) => self.add(fd, Some(f)),
            upstream_timeout::Outcome::Pending { waited_ns } => {
                self.request_pending.add(f.first, || {
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

    /// Feeds role inference and the chain / direct-vs-proxied records.
    fn collect_roles(&mut self, f: &FlowSummary, app: &AppSummary) {
        self.roles.connection(f.orig, f.resp, f.start);
        self.roles.span(f.orig, f.resp, f.start, f.end);
        let Some(h) = &app.http else { return };
        let requests = h
            .request_sample
            .iter()
            .map(|q| (q, None))
            .chain(h.ok_sample.iter().chain(h.errors.iter()).filter_map(|x| {
                x.request
                    .as_ref()
                    .map(|q| (q, Some((x.response.status, x.response.frame.ts))))
            }))
            .chain(h.unanswered.iter().map(|q| (q, None)));
        for (r, answer) in requests {
            if r.method == "CONNECT" {
                self.roles
                    .proxy_header(f.resp, "CONNECT requests (a forward proxy)");
            }
            self.roles.request_answered(
                f.orig.ip(),
                f.resp,
                &r.method,
                &r.target,
                r.frame.ts,
                r.forwarded_for.as_deref(),
                answer,
            );
        }
        if let Some(m) = &h.proxy_mark {
            self.roles.proxy_header(f.resp, m);
        }
        for x in &h.errors {
            if !signature::gateway_error::GATEWAY_STATUSES.contains(&x.response.status) {
                continue;
            }
            let req_ts = x
                .request
                .as_ref()
                .map(|q| q.frame.ts)
                .unwrap_or(x.response.frame.ts);
            // The topology decides what a 503 means (a gateway's only with backend ties).
            self.roles
                .gateway_error(f.resp, x.response.status, req_ts, x.response.frame.ts);
            if self.front_failures.len() < MAX_CHAIN_RECORDS {
                self.front_failures.push(FrontFailure {
                    client: f.orig.ip(),
                    server: f.resp,
                    status: x.response.status,
                    method: x
                        .request
                        .as_ref()
                        .map(|q| q.method.clone())
                        .unwrap_or_default(),
                    target: x
                        .request
                        .as_ref()
                        .map(|q| q.target.clone())
                        .unwrap_or_default(),
                    response: x.response.frame,
                });
            }
        }
        // A proxy's policy refusals fail requests as gateway errors do (direct-ok-proxied-fails).
        for d in &h.denied {
            if let Some(q) = &d.request {
                if self.front_failures.len() < MAX_CHAIN_RECORDS {
                    self.front_failures.push(FrontFailure {
                        client: f.orig.ip(),
                        server: f.resp,
                        status: d.status,
                        method: q.method.clone(),
                        target: q.target.clone(),
                        response: d.response,
                    });
                }
            }
        }
        for x in &h.ok_sample {
            if let Some(q) = &x.request {
                if self.direct_ok.len() < MAX_CHAIN_RECORDS {
                    self.direct_ok.push(DirectOk {
                        client: f.orig.ip(),
                        server: f.resp,
                        method: q.method.clone(),
                        target: q.target.clone(),
                        status: x.response.status,
                        response: x.response.frame,
                    });
                }
            }
        }
    }

    fn endpoint(&mut self, f: &FlowSummary) -> &mut EndpointSummary {
        if self.endpoints.len() >= self.th.max_endpoints.max(1)
            && !self.endpoints.contains_key(&f.resp)
        {
            // Over the cap: count into a shared overflow bucket (reported: `endpoint-cap`).
            self.endpoint_overflow += 1;
            return self
                .endpoints
                .entry(std::net::SocketAddr::from(([0, 0, 0, 0], 0)))
                .or_insert_with(|| EndpointSummary {
                    server: "(other endpoints)".into(),
                    ..Default::default()
                });
        }
        self.endpoints
            .entry(f.resp)
            .or_insert_with(|| EndpointSummary {
                server: f.resp.to_string(),
                ..Default::default()
            })
    }

    fn count_endpoint(&mut self, f: &FlowSummary, app: &AppSummary) {
        let e = self.endpoint(f);
        e.connections += 1;
        if f.synack.is_some() || f.resp_stats.bytes > 0 {
            e.established += 1;
        }
        match f.conn_state {
            crate::flow::ConnState::REJ => e.refused += 1,
            crate::flow::ConnState::S0 => e.unanswered += 1,
            _ => {}
        }
        if f.rst.is_some() && f.conn_state != crate::flow::ConnState::REJ {
            e.reset += 1;
        }
        let add_name = |e: &mut EndpointSummary, n: &str| {
            if e.names.len() < MAX_NAMES && !e.names.iter().any(|x| x == n) {
                e.names.push(n.to_string());
            }
        };
        if let Some(t) = &app.tls {
            if let Some(ch) = &t.client_hello {
                e.tls_handshakes += 1;
                if let Some(sni) = &ch.sni {
                    add_name(e, sni);
                }
                if t.server_hello.is_some()
                    && !t.alerts.iter().any(|a| a.level == 2 && !a.encrypted)
                {
                    e.tls_ok += 1;
                }
            }
            if t.alerts.iter().any(|a| a.level == 2 && !a.encrypted) {
                e.tls_alerts += 1;
            }
        }
        if let Some(h) = &app.http {
            e.requests += h.requests as u64;
            e.responses += h.responses as u64;
            for (s, n) in &h.status_counts {
                *e.status_counts.entry(*s).or_default() += *n as u64;
            }
            for host in &h.hosts {
                add_name(e, host);
            }
            for sv in &h.servers {
                if e.server_headers.len() < MAX_NAMES && !e.server_headers.contains(sv) {
                    e.server_headers.push(sv.clone());
                }
            }
        }
    }
}

impl Observer for Analyzer {
    fn wants_app(&self) -> bool {
        true
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
                Some(true) => self.roles.local_address(seg.src),
                Some(false) => self.roles.local_address(seg.dst),
                None => {}
            }
        }
    }

    fn flow_end(&mut self, f: FlowSummary, app: Option<AppSummary>) {
        let app = app.unwrap_or_default();
        self.connections += 1;
        self.agg.observe_flow(&f);
        self.count_endpoint(&f, &app);
        self.collect_roles(&f, &app);
        self.record(&f, &app);
        // Bounded: beyond `MAX_LATEST_START` pairs only known pairs are updated (an attempt of
        // an untracked pair is then judged at the capture's end, conservatively).
        let key = (f.orig.ip(), f.resp);
        if let Some(t) = self.latest_start.get_mut(&key) {
            *t = (*t).max(f.start);
        } else if self.latest_start.len() < MAX_LATEST_START {
            self.latest_start.insert(key, f.start);
        }
        self.tw.observe(&f);
        self.scans.observe(&f);
        self.listen_queue.observe(&f);
        if f.partial {
            self.partial
                .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
        }
        for (st, from, to) in [
            (&f.orig_stats, f.orig, f.resp),
            (&f.resp_stats, f.resp, f.orig),
        ] {
            if let Some(fr) = st.first_rst_outside_window {
                self.rst_outside
                    .add_n(st.rst_outside_window as u64, fr, || {
                        format!("frame {} ({} → {})", fr.number, from, to)
                    });
            }
            if let Some(fr) = st.first_inconsistent_retransmission {
                self.inconsistent
                    .add_n(st.inconsistent_retransmissions as u64, fr, || {
                        format!("frame {} ({} → {})", fr.number, from, to)
                    });
            }
        }
        if let Some(h) = &app.http {
            if h.requests_over_cap > 0 {
                self.request_cap
                    .add_n(h.requests_over_cap as u64, f.first, || {
                        format!("{} → {} ({} requests)", f.orig, f.resp, h.requests)
                    });
            }
            // The parser stopped: later requests and responses of the connection are unknown.
            // (A resynchronised gap and the request cap are reported on their own.)
            if let Some(why) = h.anomaly.filter(|a| {
                !a.starts_with("gap in the HTTP stream") && !a.starts_with("more pipelined")
            }) {
                self.http_unparsed
                    .add(f.first, || format!("{} → {}: {}", f.orig, f.resp, why));
            }
        }
        let one_sided = (f.orig_stats.pkts == 0) != (f.resp_stats.pkts == 0);
        if one_sided && !syn_unanswered::is_unanswered_attempt(&f) {
            let sender_acks = f
                .history
                .chars()
                .any(|c| matches!(c, 'A' | 'D' | 'a' | 'd' | 'F' | 'f'));
            if sender_acks {
                self.one_direction
                    .add(f.first, || format!("{} ↔ {}", f.orig, f.resp));
            }
        }
        if f.end_reason == crate::flow::EndReason::CaptureEnd {
            self.pending_end.push((f.clone(), app.clone()));
        } else {
            // Expired or closed: it was quiet at least until now.
            let end = self
                .now
                .max(f.end.add_nanos(self.th.syn_timeout_ns.max(0) + 1));
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
    pub fn new(th: Thresholds, max_evidence: usize) -> Analyzer {
        Analyzer {
            th,
            agg: Aggregator::new(max_evidence).with_max_notes(th.max_notes),
            tw: TimeWaitTracker::new(th),
            pending_end: Vec::new(),
            latest_start: Default::default(),
            endpoints: Default::default(),
            now: Timestamp::default(),
            partial: WarnAcc::default(),
            one_direction: WarnAcc::default(),
            ended_early: WarnAcc::default(),
            tls_ended_early: WarnAcc::default(),
            request_pending: WarnAcc::default(),
            rst_outside: WarnAcc::default(),
            inconsistent: WarnAcc::default(),
            http_unparsed: WarnAcc::default(),
            request_cap: WarnAcc::default(),
            endpoint_overflow: 0,
            max_evidence,
            connections: 0,
            roles: Collector::default(),
            front_failures: Vec::new(),
            direct_ok: Vec::new(),
            records: Vec::new(),
            record_of: Default::default(),
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
    let pending_cap = capture.max_pending_requests;
    let end = capture.last_ts.unwrap_or_default();
    for (f, app) in std::mem::take(&mut a.pending_end) {
        // The same client tried the same endpoint again after this attempt's last SYN: this one
        // was abandoned, so it is conclusive even near the end of the capture.
        let retried = f.last_syn.is_some_and(|s| {
            a.latest_start
                .get(&(f.orig.ip(), f.resp))
                .is_some_and(|t| *t > s.ts)
        });
        let judge_at = if retried && syn_unanswered::is_unanswered_attempt(&f) {
            end.max(f.end.add_nanos(th.syn_timeout_ns + 1))
        } else {
            end
        };
        a.judge_at_end(&f, &app, judge_at);
    }
    // Scans: one info verdict per scanning source replaces its probes' findings.
    let scans = a.scans.scans(&th);
    for (fd, f) in std::mem::take(&mut a.deferred) {
        if !scans.iter().any(|(s, _)| s.source == fd.client) {
            a.add_now(fd, f.as_ref());
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
    for (front, back, backend, kind) in correlate::relays(&a.records) {
        a.roles.relay(front, back, backend, kind);
    }
    let topology = std::mem::take(&mut a.roles).infer(given);
    for fd in direct_ok_proxied_fails(&a.front_failures, &a.direct_ok, &topology) {
        a.agg.add(fd, None);
    }
    let (chains, exchanges) = correlate::chains(&a.records, &topology);
    let mut warnings = Vec::new();
    let mut push = |kind: &'static str, acc: WarnAcc, msg: &dyn Fn(u64, &str) -> String| {
        if acc.count > 0 {
            let m = msg(acc.count, acc.detail.as_deref().unwrap_or(""));
            warnings.push(Warning {
                kind,
                message: m,
                count: acc.count,
                frames: acc.frames,
            });
        }
    };
    let s = |n: u64, one: &'static str, many: &'static str| if n == 1 { one } else { many };
    push("partial-flow", a.partial, &|n, d| {
        format!("{} connection{} already open when the capture began (no handshake seen; originator guessed), e.g. {}", n, s(n, " was", "s were"), d)
    });
    push("capture-ended-early", a.ended_early, &|n, d| {
        format!(
            "{} connection attempt{} still waiting for an answer when the capture ended (inconclusive, not reported as syn-unanswered; --syn-timeout {}), e.g. {}",
            n,
            s(n, " was", "s were"),
            human_duration(th.syn_timeout_ns),
            d
        )
    });
    push("capture-ended-early", a.tls_ended_early, &|n, d| {
        format!("{} TLS handshake{} still waiting for a ServerHello when the capture ended (inconclusive, not reported as tls-stall), e.g. {}", n, s(n, " was", "s were"), d)
    });
    push("request-pending", a.request_pending, &|n, d| {
        format!(
            "{} HTTP request{} still waiting for a response when the capture ended, for less than --response-timeout {} (pending, not reported as upstream-timeout), e.g. {}",
            n,
            s(n, " was", "s were"),
            human_duration(th.response_timeout_ns),
            d
        )
    });
    push("rst-outside-window", a.rst_outside, &|n, d| {
        format!("{} RST segment{} outside the receiver's window (RFC 5961: the receiver drops such a RST) and {} not counted as {}: possibly spoofed or injected by a middlebox, e.g. {}", n, s(n, " was", "s were"), s(n, "was", "were"), s(n, "a reset", "resets"), d)
    });
    push("retransmission-inconsistency", a.inconsistent, &|n, d| {
        format!("{} retransmission{} carried bytes different from the original segment (same sequence number and length): the receiver kept one version and the capture cannot tell which, so the application data shown may not be what the receiver got (evasion, a faulty middlebox or NIC), e.g. {}", n, s(n, "", "s"), d)
    });
    push("http-unparsed", a.http_unparsed, &|n, d| {
        format!("{} HTTP connection{} could not be followed to the end (the parser stopped), so {} later requests and responses are not judged, e.g. {}", n, s(n, "", "s"), s(n, "its", "their"), d)
    });
    push("request-cap", a.request_cap, &|n, d| {
        format!("{} pipelined HTTP request{} arrived while {} requests were already waiting for a response on the same connection (the per-connection cap, max_pending_requests): counted but not paired with responses, e.g. {}", n, s(n, "", "s"), pending_cap, d)
    });
    push("one-direction-only", a.one_direction, &|n, d| {
        format!("{} connection{} only one direction: the capture missed the other (asymmetric routing, `tcpdump -Q`, or a filter), e.g. {}", n, s(n, " shows", "s show"), d)
    });
    for (kind, msg) in capture_warnings(&capture) {
        warnings.push(Warning {
            kind,
            message: msg,
            count: 1,
            frames: Vec::new(),
        });
    }
    let mut verdicts = a.agg.finish(|c, s| topology.hop(c, s));
    escalate_paired_causes(&mut verdicts, &chains);
    cap_warnings(
        &mut warnings,
        &verdicts,
        &th,
        a.endpoint_overflow,
        a.max_evidence,
    );
    // Never ask for a leg that is in the file: a proxy whose backend attempts were captured.
    for v in verdicts.iter_mut() {
        let leg_seen = topology
            .proxies
            .iter()
            .any(|p| p.front.contains(&v.server) && !p.backends.is_empty());
        if leg_seen {
            v.next_checks
                .retain(|c| !c.starts_with("capture the proxy→backend leg"));
        }
    }
    let mut endpoints: Vec<EndpointSummary> = a.endpoints.into_values().collect();
    endpoints.sort_by(|x, y| {
        y.connections
            .cmp(&x.connections)
            .then(x.server.cmp(&y.server))
    });
    endpoints.truncate(MAX_ENDPOINTS_REPORTED);
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
    }
}

/// The report-level caps that were hit, one warning each with its counts: endpoints tracked
/// (`Thresholds::max_endpoints`), notes per verdict (`Thresholds::max_notes`), evidence frames
/// per verdict (`--max-evidence`). (The connection table's cap is a capture warning from the
/// pipeline; the pending-request cap is counted per connection.)
fn cap_warnings(
    warnings: &mut Vec<Warning>,
    verdicts: &[Verdict],
    th: &Thresholds,
    endpoint_overflow: u64,
    max_evidence: usize,
) {
    let mut warn = |kind: &'static str, count: u64, message: String| {
        warnings.push(Warning {
            kind,
            message,
            count,
            frames: Vec::new(),
        })
    };
    if endpoint_overflow > 0 {
        warn(
            "endpoint-cap",
            endpoint_overflow,
            format!(
                "more than {} server endpoints (max_endpoints): {} connection{} to further endpoints {} counted together as \"(other endpoints)\"",
                th.max_endpoints,
                endpoint_overflow,
                if endpoint_overflow == 1 { "" } else { "s" },
                if endpoint_overflow == 1 { "is" } else { "are" }
            ),
        );
    }
    let noted: Vec<&Verdict> = verdicts.iter().filter(|v| v.notes_omitted > 0).collect();
    if !noted.is_empty() {
        let conns: u64 = noted.iter().map(|v| v.notes_omitted).sum();
        warn(
            "note-cap",
            conns,
            format!(
                "{} verdict{} had more than {} distinct per-connection notes (max_notes): the notes of {} connection{} are not listed (the earliest are), e.g. {} on {}",
                noted.len(),
                if noted.len() == 1 { "" } else { "s" },
                th.max_notes,
                conns,
                if conns == 1 { "" } else { "s" },
                noted[0].signature.name(),
                noted[0].server
            ),
        );
    }
    let capped: Vec<&Verdict> = verdicts.iter().filter(|v| v.evidence_capped).collect();
    if !capped.is_empty() {
        warn(
            "evidence-cap",
            capped.len() as u64,
            format!(
                "{} verdict{} had more evidence frames than --max-evidence {}: the most severe and earliest are listed, e.g. {} on {}",
                capped.len(),
                if capped.len() == 1 { "" } else { "s" },
                max_evidence,
                capped[0].signature.name(),
                capped[0].server
            ),
        );
    }
}

/// A backend-leg verdict that paired client exchanges prove user-visible is critical, whatever
/// its own rule said (a backend refusing between successes is a warning alone; when each refusal
/// became a client's 502 it is the outage). The note says why.
fn escalate_paired_causes(verdicts: &mut [Verdict], chains: &[Chain]) {
    let mut changed = false;
    for c in chains.iter().filter(|c| c.explained > 0) {
        let (Some(sig), Some(backend)) = (c.back_signature, c.backend) else {
            continue;
        };
        for v in verdicts.iter_mut().filter(|v| {
            v.signature == sig
                && v.server == backend
                && v.hop == crate::verdict::Hop::ProxyToBackend
                && v.severity < Severity::Critical
        }) {
            v.severity = Severity::Critical;
            v.notes.push((
                format!(
                    "critical: {} client exchange{} at the proxy {} failed because of it ({} pairing)",
                    c.explained,
                    if c.explained == 1 { "" } else { "s" },
                    c.proxy,
                    c.pairing.name()
                ),
                c.explained,
            ));
            changed = true;
        }
    }
    if changed {
        verdicts.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.first_ts.cmp(&b.first_ts))
                .then(a.signature.cmp(&b.signature))
        });
    }
}

/// `direct-ok-proxied-fails`: a client got a gateway error from a proxy for a request that the
/// same client had answered successfully (status < 400) by another endpoint — the service works,
/// the proxy in front of it does not. "The same request" is the same method and target.
fn direct_ok_proxied_fails(
    front: &[FrontFailure],
    ok: &[DirectOk],
    topo: &Topology,
) -> Vec<Finding> {
    let fronts: Vec<SocketAddr> = topo
        .proxies
        .iter()
        .flat_map(|p| p.front.iter().copied())
        .collect();
    let mut out = Vec::new();
    for e in front {
        let Some(d) = ok.iter().find(|d| {
            d.client == e.client
                && d.server != e.server
                && !fronts.contains(&d.server)
                && d.method == e.method
                && correlate::origin_form(&d.target) == correlate::origin_form(&e.target)
        }) else {
            continue;
        };
        let mut ev = vec![
            Evidence {
                frame: d.response,
                kind: EvidenceKind::Data,
                description: format!(
                    "{} {} answered {} directly by {}",
                    d.method, d.target, d.status, d.server
                ),
            },
            Evidence {
                frame: e.response,
                kind: EvidenceKind::Data,
                description: format!(
                    "the same {} {} through {} answered {}",
                    e.method, e.target, e.server, e.status
                ),
            },
        ];
        ev.sort_by_key(|x| (x.frame.file, x.frame.number));
        out.push(Finding {
            signature: SignatureId::DirectOkProxiedFails,
            // A policy refusal (403/407) is the proxy's rule, not an outage: warning.
            severity: if matches!(e.status, 403 | 407) {
                Severity::Warning
            } else {
                Severity::Critical
            },
            client: e.client,
            server: e.server,
            flow: None,
            weight: 1,
            first_ts: d.response.ts.min(e.response.ts),
            last_ts: d.response.ts.max(e.response.ts),
            note: format!(
                "{} {}: {} directly from {}, {} through {}",
                e.method, e.target, d.status, d.server, e.status, e.server
            ),
            evidence: ev,
            facts: vec![("direct_server", d.server.to_string())],
        });
    }
    out
}

fn capture_warnings(c: &CaptureSummary) -> Vec<(&'static str, String)> {
    let mut w = Vec::new();
    for line in c.warnings() {
        let kind = if line.contains("time jump between merged files") {
            "time-gap"
        } else if line.contains("its clock is") {
            "clock-offset"
        } else if line.contains("truncated or corrupt") {
            "file-truncated"
        } else if line.contains("snaplen") {
            "snaplen"
        } else if line.contains("fragments") {
            "ip-fragments"
        } else if line.contains("backwards") {
            "time-reversal"
        } else if line.contains("--max-connections") {
            "connection-cap"
        } else if line.contains("caplen > len") {
            "record-length"
        } else {
            "malformed"
        };
        w.push((kind, line));
    }
    w
}

/// Chooses the frames that `--evidence-pcap` writes: every frame of the connections behind the
/// verdicts (matched by 4-tuple and time span) plus every evidence frame.
pub struct EvidenceSelector {
    flows: rustc_hash::FxHashMap<
        (std::net::SocketAddr, std::net::SocketAddr),
        Vec<(Timestamp, Timestamp)>,
    >,
    frames: rustc_hash::FxHashSet<(u16, u64)>,
}

impl EvidenceSelector {
    pub fn new(verdicts: &[Verdict]) -> EvidenceSelector {
        let mut flows: rustc_hash::FxHashMap<_, Vec<_>> = Default::default();
        let mut frames = rustc_hash::FxHashSet::default();
        for v in verdicts {
            for f in &v.flows {
                flows
                    .entry((f.orig, f.resp))
                    .or_default()
                    .push((f.first.ts, f.last.ts));
            }
            for e in &v.evidence {
                frames.insert((e.frame.file, e.frame.number));
            }
        }
        EvidenceSelector { flows, frames }
    }

    pub fn keep(&self, f: &crate::capture::Frame<'_>) -> bool {
        if self.frames.contains(&(f.file, f.number)) {
            return true;
        }
        let crate::decode::Decoded::Tcp(seg) = crate::decode::decode(f.link, f.data) else {
            return false;
        };
        let a = std::net::SocketAddr::new(seg.src, seg.sport);
        let b = std::net::SocketAddr::new(seg.dst, seg.dport);
        [(a, b), (b, a)].iter().any(|k| {
            self.flows
                .get(k)
                .is_some_and(|spans| spans.iter().any(|(s, e)| f.ts >= *s && f.ts <= *e))
        })
    }
}

#[cfg(test)]
mod tests {
    //! Scan and listen-queue recognition through the `Analyzer` (flow_end → conclude) on
    //! hand-built summaries; frame n is at n ms.

    use super::*;
    use crate::flow::testkit::fr;
    use crate::flow::{ConnState, DirStats, Direction, EndReason, RstInfo};

    /// A connection `orig` → `resp` starting at frame `n`, established with data, closed.
    fn ok(id: u64, orig: &str, resp: &str, n: u64) -> FlowSummary {
        FlowSummary {
            id,
            slot: 0,
            orig: orig.parse().unwrap(),
            resp: resp.parse().unwrap(),
            partial: false,
            conn_state: ConnState::SF,
            history: "ShADadFf".into(),
            orig_stats: DirStats {
                pkts: 4,
                bytes: 100,
                ..Default::default()
            },
            resp_stats: DirStats {
                pkts: 4,
                bytes: 1000,
                ..Default::default()
            },
            first: fr(n),
            last: fr(n + 5),
            start: fr(n).ts,
            end: fr(n + 5).ts,
            syn_count: 1,
            first_syn: Some(fr(n)),
            last_syn: Some(fr(n)),
            synack: Some(fr(n + 1)),
            rtt_ns: None,
            rst: None,
            rst_count: 0,
            icmp: None,
            first_fin_from: None,
            closed_at: None,
            port_reused: false,
            reused_in_time_wait: false,
            end_reason: EndReason::Closed,
        }
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

    #[test]
    fn time_gap_line_is_its_own_warning_kind() {
        let w = capture_warnings(&CaptureSummary {
            files: vec![
                crate::capture::FileInfo {
                    path: "a.pcap".into(),
                    first_ts: Some(fr(1).ts),
                    last_ts: Some(fr(2).ts),
                    ..Default::default()
                },
                crate::capture::FileInfo {
                    path: "b.pcap".into(),
                    first_ts: Some(fr(1).ts.add_nanos(7200 * crate::time::NANOS_PER_SEC)),
                    last_ts: Some(fr(2).ts.add_nanos(7200 * crate::time::NANOS_PER_SEC)),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].0, "time-gap");
    }
}
