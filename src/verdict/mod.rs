//! Verdicts: findings merged into one verdict per (signature, hop, server endpoint), never one per
//! packet, with severity, counts out of all connections to that endpoint, time window, summary,
//! likely causes, next checks, a Wireshark display filter and up to `max_evidence` evidence
//! frames. Must not: format output.

use crate::flow::{FlowSummary, FrameRef};
use crate::signature::{Evidence, Fact, Finding, Severity, SignatureId, Thresholds};
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

pub use crate::topology::Hop;

#[cfg(test)]
mod caps_tests;

/// A connection behind a verdict (for `--evidence-pcap`).
#[derive(Clone, Copy, Debug)]
pub struct FlowRef {
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub first: FrameRef,
    pub last: FrameRef,
}

impl FlowRef {
    pub fn of(f: &FlowSummary) -> FlowRef {
        FlowRef {
            orig: f.orig,
            resp: f.resp,
            first: f.first,
            last: f.last,
        }
    }
}

/// Builders (one per signature, server endpoint and client) kept at most; see `Aggregator::add_ref`.
pub const MAX_CLIENT_BUILDERS: usize = 20_000;

/// Connections remembered per verdict for `--evidence-pcap`.
pub const MAX_FLOW_REFS: usize = 1000;
/// Per-connection notes kept per verdict: the default of `Thresholds::max_notes`.
pub const MAX_NOTES: usize = crate::signature::DEFAULT_MAX_NOTES;
/// (client, endpoint) pairs whose successful connection starts are kept, and starts per pair.
const MAX_SUCCESS_KEYS: usize = 10_000;
const MAX_SUCCESS_TIMES: usize = 4096;
/// Server endpoints whose connections are counted (the "of m" of verdicts) at most; beyond it a
/// verdict's total falls back to its own count. Bounds memory in a long live run.
pub const MAX_ENDPOINT_COUNTS: usize = 100_000;
/// Connection attempts kept per builder for severity settling (the earliest).
pub const MAX_ATTEMPTS: usize = 4096;

#[derive(Clone, Debug)]
pub struct Verdict {
    pub signature: SignatureId,
    pub severity: Severity,
    pub hop: Hop,
    /// The client (first seen) and how many distinct clients were affected.
    pub client: IpAddr,
    pub clients: u32,
    pub server: SocketAddr,
    /// Connections affected.
    pub flow_count: u64,
    /// All connections to `server` in the capture.
    pub total_flows: u64,
    /// Affected connections per severity.
    pub by_severity: [u64; 3],
    pub first_ts: Timestamp,
    pub last_ts: Timestamp,
    pub summary: String,
    /// One line per distinct per-connection note, with how many connections it describes.
    pub notes: Vec<(String, u64)>,
    pub likely_causes: Vec<String>,
    pub next_checks: Vec<String>,
    pub wireshark_filter: String,
    pub evidence: Vec<Evidence>,
    pub facts: Vec<(&'static str, Fact)>,
    pub flows: Vec<FlowRef>,
    /// Connections whose per-connection note is not listed because the verdict already had
    /// `max_notes` distinct notes (reported as a `note-cap` capture warning).
    pub notes_omitted: u64,
    /// More evidence frames existed than `max_evidence` (reported as an `evidence-cap` capture
    /// warning).
    pub evidence_capped: bool,
}

#[derive(Clone)]
struct Builder {
    v: Verdict,
    client_set: Vec<IpAddr>,
    /// Findings' (severity, first evidence frame) for evidence selection.
    findings: Vec<(Severity, Vec<Evidence>)>,
    attempts: Vec<(IpAddr, Timestamp)>,
    /// Values of selected facts counted across findings (e.g. HTTP status → responses).
    tallies: std::collections::BTreeMap<(&'static str, String), u64>,
    /// When each note was first seen (parallel to `v.notes`): notes are kept and listed in time
    /// order, whatever order connections finished in.
    note_ts: Vec<Timestamp>,
    /// When the finding whose facts `v.facts` holds began: the earliest finding's facts are
    /// shown, whatever order connections finished in.
    facts_ts: Option<Timestamp>,
}

/// Keeps the `MAX_FLOW_REFS` earliest flows (by first frame) once `flows` holds twice as many
/// (amortised); with `all` (the verdict is final) keeps them in capture order: neither depends
/// on the order connections finished in.
fn keep_earliest_flows(flows: &mut Vec<FlowRef>, all: bool) {
    if all || flows.len() > 2 * MAX_FLOW_REFS {
        flows.sort_unstable_by_key(|f| (f.first.file, f.first.number, f.first.ts));
        flows.truncate(MAX_FLOW_REFS);
    }
}

/// Distinct clients remembered per verdict (beyond it, the count is a lower bound).
const MAX_CLIENTS: usize = crate::signature::MAX_CLIENTS_COUNTED;

#[derive(Clone)]
pub struct Aggregator {
    max_evidence: usize,
    /// For the signatures' whole-capture severity rules (`signature::settle`).
    th: Thresholds,
    /// Distinct per-connection notes kept per verdict (`Thresholds::max_notes`).
    max_notes: usize,
    /// One builder per (signature, server endpoint, client address): the hop of a client is
    /// known only once the whole capture has been seen (`finish` merges them per hop).
    builders: FxHashMap<(SignatureId, SocketAddr, IpAddr), Builder>,
    /// (signature, server) → the client whose builder takes the findings of clients beyond
    /// `MAX_CLIENT_BUILDERS`.
    overflow: FxHashMap<(SignatureId, SocketAddr), IpAddr>,
    /// Findings that went to an overflow builder.
    overflowed: u64,
    endpoint_flows: FxHashMap<SocketAddr, u64>,
    endpoint_established: FxHashMap<SocketAddr, u64>,
    /// (client host, server port) -> (server ip, successful connection start), capped at
    /// `MAX_SUCCESS_KEYS` keys and `MAX_SUCCESS_TIMES` starts per key. The client host is
    /// `same_host(ip)`: a client falling back from `[::1]` to `127.0.0.1` is one host.
    successes: FxHashMap<(IpAddr, u16), Vec<(IpAddr, Timestamp)>>,
    /// (client ip, server endpoint) -> starts of its successful connections (capped), to tell a
    /// refusal that a retry absorbed from one that stood.
    success_times: FxHashMap<(IpAddr, SocketAddr), Vec<Timestamp>>,
    /// Findings not aggregated because twice `MAX_CLIENT_BUILDERS` builders existed.
    pub dropped_findings: u64,
}

impl Verdict {
    /// The read-only view a signature writes words and settles severity from.
    fn aggregate(&self, established: u64) -> crate::signature::Aggregate<'_> {
        crate::signature::Aggregate {
            signature: self.signature,
            severity: self.severity,
            hop: self.hop,
            client: self.client,
            clients: self.clients,
            server: self.server,
            flow_count: self.flow_count,
            total_flows: self.total_flows,
            by_severity: self.by_severity,
            first_ts: self.first_ts,
            established,
            backend_leg_captured: false,
            notes: &self.notes,
            facts: &self.facts,
        }
    }

    /// The notes as lines, with "(×n)" where a note describes several connections.
    pub fn note_lines(&self) -> Vec<String> {
        self.notes
            .iter()
            .map(|(n, c)| {
                if *c > 1 {
                    format!("{} (×{})", n, c)
                } else {
                    n.clone()
                }
            })
            .collect()
    }
}

impl Aggregator {
    pub fn new(max_evidence: usize, th: Thresholds) -> Aggregator {
        Aggregator {
            max_evidence,
            th,
            max_notes: MAX_NOTES,
            builders: FxHashMap::default(),
            overflow: FxHashMap::default(),
            overflowed: 0,
            endpoint_flows: FxHashMap::default(),
            endpoint_established: FxHashMap::default(),
            successes: FxHashMap::default(),
            success_times: FxHashMap::default(),
            dropped_findings: 0,
        }
    }

    /// Verdict builders held.
    pub fn builders(&self) -> usize {
        self.builders.len()
    }

    /// Entries held in its tables (tests: memory stays bounded over a long run).
    pub fn retained(&self) -> usize {
        self.builders.len()
            + self
                .builders
                .values()
                .map(|b| b.attempts.len() + b.client_set.len() + b.findings.len())
                .sum::<usize>()
            + self.endpoint_flows.len()
            + self.endpoint_established.len()
            + self.successes.len()
            + self.success_times.len()
    }

    /// Counts every finished connection (the denominators of "n of m").
    pub fn observe_flow(&mut self, f: &FlowSummary) {
        let counted = self.endpoint_flows.len() < MAX_ENDPOINT_COUNTS
            || self.endpoint_flows.contains_key(&f.resp);
        if counted {
            *self.endpoint_flows.entry(f.resp).or_default() += 1;
        }
        if f.synack.is_some() || f.resp_stats.bytes > 0 {
            if counted {
                *self.endpoint_established.entry(f.resp).or_default() += 1;
            }
            let key = (same_host(f.orig.ip()), f.resp.port());
            if self.successes.len() < MAX_SUCCESS_KEYS || self.successes.contains_key(&key) {
                let v = self.successes.entry(key).or_default();
                if v.len() < MAX_SUCCESS_TIMES {
                    v.push((f.resp.ip(), f.start));
                }
            }
            if self.success_times.len() < MAX_SUCCESS_KEYS
                || self.success_times.contains_key(&(f.orig.ip(), f.resp))
            {
                let t = self.success_times.entry((f.orig.ip(), f.resp)).or_default();
                if t.len() < MAX_SUCCESS_TIMES {
                    t.push(f.start);
                }
            }
        }
    }

    pub fn add(&mut self, fd: Finding, flow: Option<&FlowSummary>) {
        self.add_ref(fd, flow.map(FlowRef::of))
    }

    /// `add`, with only what the verdict keeps of the connection.
    pub fn add_ref(&mut self, mut fd: Finding, flow: Option<FlowRef>) {
        // Capture time can run backwards (a clock step): a window is never inverted.
        if fd.last_ts < fd.first_ts {
            std::mem::swap(&mut fd.first_ts, &mut fd.last_ts);
        }
        let hop = Hop::ClientToServer;
        // One builder per client (the hop is known per client only at the end), at most
        // `MAX_CLIENT_BUILDERS`: beyond, a new client's findings join the builder of the first
        // client that overflowed for that signature and server (a flood of spoofed sources must
        // not hold a builder each). Counts stay exact; such clients take that client's hop.
        let mut key = (fd.signature, fd.server, fd.client);
        if self.builders.len() >= MAX_CLIENT_BUILDERS && !self.builders.contains_key(&key) {
            let rep = *self
                .overflow
                .entry((fd.signature, fd.server))
                .or_insert(fd.client);
            key = (fd.signature, fd.server, rep);
            self.overflowed += 1;
            // Representatives are one per (signature, server): past twice the cap even those
            // stop, and such findings are only counted.
            if self.builders.len() >= 2 * MAX_CLIENT_BUILDERS && !self.builders.contains_key(&key) {
                self.dropped_findings += 1;
                return;
            }
        }
        let b = self.builders.entry(key).or_insert_with(|| Builder {
            v: Verdict {
                signature: fd.signature,
                severity: fd.severity,
                hop,
                client: fd.client,
                clients: 0,
                server: fd.server,
                flow_count: 0,
                total_flows: 0,
                by_severity: [0; 3],
                first_ts: fd.first_ts,
                last_ts: fd.last_ts,
                summary: String::new(),
                notes: Vec::new(),
                likely_causes: Vec::new(),
                next_checks: Vec::new(),
                wireshark_filter: String::new(),
                evidence: Vec::new(),
                facts: Vec::new(),
                flows: Vec::new(),
                notes_omitted: 0,
                evidence_capped: false,
            },
            client_set: Vec::new(),
            findings: Vec::new(),
            attempts: Vec::new(),
            tallies: Default::default(),
            note_ts: Vec::new(),
            facts_ts: None,
        });
        let v = &mut b.v;
        v.severity = v.severity.max(fd.severity);
        v.flow_count += fd.weight;
        v.by_severity[fd.severity as usize] += fd.weight;
        if fd.first_ts < v.first_ts {
            v.first_ts = fd.first_ts;
            v.client = fd.client;
        }
        v.last_ts = v.last_ts.max(fd.last_ts);
        if !b.client_set.contains(&fd.client) && b.client_set.len() < MAX_CLIENTS {
            b.client_set.push(fd.client);
        }
        v.notes_omitted += add_note(
            &mut v.notes,
            &mut b.note_ts,
            fd.note.clone(),
            fd.weight,
            fd.first_ts,
            self.max_notes,
        );
        if b.facts_ts.is_none_or(|t| fd.first_ts < t) && !fd.facts.is_empty() {
            v.facts = fd.facts.clone();
            b.facts_ts = Some(fd.first_ts);
        }
        for (k, val) in &fd.facts {
            if matches!(
                *k,
                "status" | "server_header" | "body" | "alert" | "alert_from" | "sni"
            ) {
                *b.tallies.entry((k, val.to_string())).or_default() += fd.weight;
            }
        }
        if crate::signature::settles_on_attempts(fd.signature) && b.attempts.len() < MAX_ATTEMPTS {
            b.attempts.push((fd.client, fd.first_ts));
        }
        if let Some(f) = flow {
            v.flows.push(f);
            keep_earliest_flows(&mut v.flows, false);
        }
        // Keep the evidence of the most severe, earliest findings only (bounded).
        b.findings.push((fd.severity, fd.evidence));
        if b.findings.len() > self.max_evidence.max(1) * 4 {
            b.findings.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(first_frame(&a.1).cmp(&first_frame(&b.1)))
            });
            if b.findings[self.max_evidence.max(1)..]
                .iter()
                .any(|(_, e)| !e.is_empty())
            {
                b.v.evidence_capped = true;
            }
            b.findings.truncate(self.max_evidence.max(1));
        }
    }

    /// Evidence frames kept per verdict.
    pub fn max_evidence(&self) -> usize {
        self.max_evidence
    }

    /// Keeps at most `max_notes` distinct per-connection notes per verdict (default
    /// `MAX_NOTES`); the connections of the others are counted in `Verdict::notes_omitted`.
    pub fn with_max_notes(mut self, max_notes: usize) -> Aggregator {
        self.max_notes = max_notes.max(1);
        self
    }

    /// The verdicts, most severe first, then by time: one per (signature, hop, server), the hop
    /// of each client given by the topology.
    pub fn finish(self, topo: &crate::topology::Topology) -> Vec<Verdict> {
        let hop_of = |c, s| topo.hop(c, s);
        let max_ev = self.max_evidence;
        let mut merged: FxHashMap<(SignatureId, Hop, SocketAddr), Builder> = FxHashMap::default();
        let mut keys: Vec<_> = self.builders.keys().copied().collect();
        keys.sort();
        let mut builders = self.builders;
        let succ = Settle {
            successes: &self.successes,
            success_times: &self.success_times,
        };
        for k in keys {
            let mut b = builders.remove(&k).expect("key listed");
            let hop = hop_of(k.2, k.1);
            b.v.hop = hop;
            if self.overflow.get(&(k.0, k.1)) == Some(&k.2) {
                let at = b.v.last_ts;
                add_note(
                    &mut b.v.notes,
                    &mut b.note_ts,
                    format!(
                        "more than {} clients had findings: later clients' findings are counted with {}'s and take its hop",
                        MAX_CLIENT_BUILDERS, k.2
                    ),
                    0,
                    at,
                    usize::MAX,
                );
            }
            match merged.get_mut(&(k.0, hop, k.1)) {
                Some(m) => m.merge(b, max_ev, self.max_notes),
                None => {
                    merged.insert((k.0, hop, k.1), b);
                }
            }
        }
        let mut out: Vec<Verdict> = Vec::new();
        for (_, mut b) in merged {
            let v = &mut b.v;
            keep_earliest_flows(&mut v.flows, true);
            v.clients = b.client_set.len() as u32;
            v.total_flows = self
                .endpoint_flows
                .get(&v.server)
                .copied()
                .unwrap_or(v.flow_count)
                .max(v.flow_count);
            let established = self
                .endpoint_established
                .get(&v.server)
                .copied()
                .unwrap_or(0);
            // Severity rules that need the whole capture (each signature's own `settle`).
            let settled =
                crate::signature::settle(&v.aggregate(established), &b.attempts, &succ, &self.th);
            if let Some(st) = settled {
                v.severity = st.severity;
                // Every affected connection is now counted at the settled severity.
                v.by_severity = [0; 3];
                v.by_severity[st.severity as usize] = v.flow_count;
                if let Some(n) = st.note {
                    v.notes.push((n.to_string(), v.flow_count));
                    b.note_ts.push(v.last_ts);
                }
            }
            let mut order: Vec<usize> = (0..v.notes.len()).collect();
            order.sort_by_key(|&i| (b.note_ts[i], i));
            v.notes = order.iter().map(|&i| v.notes[i].clone()).collect();
            // Evidence: most severe findings first, each finding's frames together, in frame order.
            b.findings.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(first_frame(&a.1).cmp(&first_frame(&b.1)))
            });
            let mut ev: Vec<Evidence> = Vec::new();
            for (_, e) in b.findings {
                for x in e {
                    if !ev.iter().any(|y| y.frame == x.frame) {
                        if ev.len() < max_ev {
                            ev.push(x);
                        } else {
                            v.evidence_capped = true;
                        }
                    }
                }
            }
            ev.sort_by_key(|e| (e.frame.file, e.frame.number));
            v.evidence = ev;
            // Facts seen with several values are summed up: "502×10, 504×2".
            let mut keys: Vec<&'static str> = b.tallies.keys().map(|(k, _)| *k).collect();
            keys.dedup();
            for k in keys {
                let vals: Vec<String> = b
                    .tallies
                    .iter()
                    .filter(|((kk, _), _)| *kk == k)
                    .map(|((_, val), n)| {
                        if *n > 1 && k == "status" {
                            format!("{}×{}", val, n)
                        } else {
                            val.clone()
                        }
                    })
                    .collect();
                v.facts.retain(|(fk, _)| *fk != k);
                v.facts.push((k, Fact::Text(vals.join(", "))));
            }
            // A proxy whose backend attempts are in the capture: its leg need not be asked for.
            let backend_leg_captured = topo
                .proxies
                .iter()
                .any(|p| p.front.contains(&v.server) && !p.backends.is_empty());
            let w = crate::signature::words(&crate::signature::Aggregate {
                backend_leg_captured,
                ..v.aggregate(established)
            });
            v.summary = w.summary;
            v.likely_causes = w.likely_causes;
            v.next_checks = w.next_checks;
            v.wireshark_filter = w.wireshark_filter;
            out.push(b.v);
        }
        out.sort_by(|a, b| {
            b.severity
                .cmp(&a.severity)
                .then(a.first_ts.cmp(&b.first_ts))
                .then(a.signature.cmp(&b.signature))
        });
        out
    }
}

impl Builder {
    /// Folds another client's builder (same signature, hop and server) into this one.
    fn merge(&mut self, o: Builder, max_ev: usize, max_notes: usize) {
        let (v, w) = (&mut self.v, o.v);
        v.severity = v.severity.max(w.severity);
        v.flow_count += w.flow_count;
        for i in 0..3 {
            v.by_severity[i] += w.by_severity[i];
        }
        if w.first_ts < v.first_ts {
            v.first_ts = w.first_ts;
            v.client = w.client;
        }
        v.last_ts = v.last_ts.max(w.last_ts);
        v.notes_omitted += w.notes_omitted;
        for ((n, c), t) in w.notes.into_iter().zip(o.note_ts) {
            v.notes_omitted += add_note(&mut v.notes, &mut self.note_ts, n, c, t, max_notes);
        }
        v.evidence_capped |= w.evidence_capped;
        if let Some(t) = o.facts_ts.filter(|&t| self.facts_ts.is_none_or(|s| t < s)) {
            v.facts = w.facts;
            self.facts_ts = Some(t);
        }
        v.flows.extend(w.flows);
        keep_earliest_flows(&mut v.flows, false);
        for c in o.client_set {
            if !self.client_set.contains(&c) && self.client_set.len() < MAX_CLIENTS {
                self.client_set.push(c);
            }
        }
        self.findings.extend(o.findings);
        if self.findings.len() > max_ev.max(1) * 4 {
            self.findings.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(first_frame(&a.1).cmp(&first_frame(&b.1)))
            });
            if self.findings[max_ev.max(1)..]
                .iter()
                .any(|(_, e)| !e.is_empty())
            {
                self.v.evidence_capped = true;
            }
            self.findings.truncate(max_ev.max(1));
        }
        self.attempts.extend(o.attempts);
        for (k, n) in o.tallies {
            *self.tallies.entry(k).or_default() += n;
        }
    }
}

/// A backend-leg verdict that paired client exchanges prove user-visible is critical, whatever
/// its own rule said (a backend refusing between successes is a warning alone; when each refusal
/// became a client's 502 it is the outage). The note says why.
pub fn escalate_paired_causes(verdicts: &mut [Verdict], chains: &[crate::correlate::Chain]) {
    let mut changed = false;
    for c in chains.iter().filter(|c| c.explained > 0) {
        let (Some(sig), Some(backend)) = (c.back_signature, c.backend) else {
            continue;
        };
        for v in verdicts.iter_mut().filter(|v| {
            v.signature == sig
                && v.server == backend
                && v.hop == Hop::ProxyToBackend
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

/// Adds a per-connection note (or counts it again), keeping the `max_notes` earliest; returns
/// the connections (weight) whose note is no longer listed.
fn add_note(
    notes: &mut Vec<(String, u64)>,
    ts: &mut Vec<Timestamp>,
    note: String,
    weight: u64,
    at: Timestamp,
    max_notes: usize,
) -> u64 {
    if let Some(i) = notes.iter().position(|(n, _)| *n == note) {
        notes[i].1 += weight;
        ts[i] = ts[i].min(at);
        0
    } else if notes.len() < max_notes.max(1) {
        notes.push((note, weight));
        ts.push(at);
        0
    } else if let Some((i, _)) = ts
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .filter(|(_, t)| **t > at)
    {
        let dropped = notes[i].1;
        notes[i] = (note, weight);
        ts[i] = at;
        dropped
    } else {
        weight
    }
}

fn first_frame(e: &[Evidence]) -> (u16, u64) {
    e.first()
        .map(|x| (x.frame.file, x.frame.number))
        .unwrap_or((u16::MAX, u64::MAX))
}

/// One key per client host where the capture shows it is one host: every loopback address
/// (`127.0.0.0/8`, `::1`) is the local host, and an IPv4-mapped IPv6 address is its IPv4
/// address. A dual-stack client's global IPv6 and IPv4 addresses cannot be tied from packets and
/// stay two hosts.
fn same_host(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) if v6.is_loopback() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        IpAddr::V4(v4) if v4.is_loopback() => IpAddr::from([127, 0, 0, 1]),
        IpAddr::V4(_) => ip,
    }
}

/// Whether a success on `other` after a refusal on `refused` (same port) is an address fallback
/// of the same service: the other address family (happy eyeballs: `[::1]` then `127.0.0.1`, or a
/// name's AAAA then its A record), or another loopback address. Another address of the same
/// family is another server — a proxy failing over from a dead backend to a live one — and does
/// not make the dead one's refusals info.
fn is_fallback_address(other: IpAddr, refused: IpAddr) -> bool {
    other != refused
        && (other.is_ipv4() != refused.is_ipv4() || same_host(other) == same_host(refused))
}

/// The aggregator's success records, as the signatures' `settle` rules ask for them.
struct Settle<'a> {
    successes: &'a FxHashMap<(IpAddr, u16), Vec<(IpAddr, Timestamp)>>,
    success_times: &'a FxHashMap<(IpAddr, SocketAddr), Vec<Timestamp>>,
}

impl crate::signature::Successes for Settle<'_> {
    fn to_endpoint_after(
        &self,
        client: IpAddr,
        server: SocketAddr,
        t: Timestamp,
        window_ns: i64,
    ) -> bool {
        self.success_times.get(&(client, server)).is_some_and(|s| {
            s.iter()
                .any(|st| (0..=window_ns).contains(&st.nanos_since(t)))
        })
    }

    fn to_other_address_after(
        &self,
        client: IpAddr,
        server: SocketAddr,
        t: Timestamp,
        window_ns: i64,
    ) -> bool {
        self.successes
            .get(&(same_host(client), server.port()))
            .is_some_and(|s| {
                s.iter().any(|(ip, st)| {
                    is_fallback_address(*ip, server.ip())
                        && (0..=window_ns).contains(&st.nanos_since(t))
                })
            })
    }
}

#[cfg(test)]
mod tests {
    //! Aggregation on hand-built findings: clients 10.0.0.x connect to the server 10.0.0.2:8080
    //! (and its other address 10.0.0.3:8080); frame n is at n ms after T0.

    use super::*;
    use crate::correlate::{Chain, PairConfidence, PairKind};
    use crate::flow::testkit::{established, fr};
    use crate::signature::EvidenceKind;
    use crate::topology::{Confidence, Proxy, Topology};

    const SERVER: &str = "10.0.0.2:8080";

    /// A finding of `sig` from `client` to `server`, starting at frame `at` (its one evidence
    /// frame) and ending 1 ms later.
    fn finding(
        sig: SignatureId,
        sev: Severity,
        client: &str,
        server: &str,
        at: u64,
        note: &str,
    ) -> Finding {
        Finding {
            signature: sig,
            severity: sev,
            client: client.parse().unwrap(),
            server: server.parse().unwrap(),
            flow: Some(at),
            weight: 1,
            first_ts: fr(at).ts,
            last_ts: fr(at + 1).ts,
            note: note.into(),
            evidence: vec![Evidence {
                frame: fr(at),
                kind: EvidenceKind::Syn,
                description: format!("frame {}", at),
            }],
            facts: Vec::new(),
        }
    }

    fn refused(client: &str, at: u64) -> Finding {
        finding(
            SignatureId::ConnectionRefused,
            Severity::Critical,
            client,
            SERVER,
            at,
            "SYN answered by RST",
        )
    }

    /// A successful connection from `orig` to `resp` starting at frame `at`.
    fn success(orig: &str, resp: &str, at: u64) -> FlowSummary {
        established(at, orig, resp, at, at + 5)
    }

    /// A connection from `orig` to `resp` at frame `at` that never got an answer.
    fn failed(orig: &str, resp: &str, at: u64) -> FlowSummary {
        let mut f = established(at, orig, resp, at, at);
        f.synack = None;
        f
    }

    fn run(agg: Aggregator) -> Vec<Verdict> {
        agg.finish(&Topology::default())
    }

    #[track_caller]
    fn one(agg: Aggregator) -> Verdict {
        let mut v = run(agg);
        assert_eq!(v.len(), 1, "{:?}", v);
        v.pop().unwrap()
    }

    #[test]
    fn counts_are_n_of_all_connections_to_the_endpoint() {
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..3 {
            agg.observe_flow(&success("10.0.0.1:40000", SERVER, 100 + i));
        }
        agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1));
        agg.observe_flow(&failed("10.0.0.1:40002", SERVER, 5_000));
        agg.observe_flow(&success("10.0.0.1:40003", "10.0.0.9:80", 7));
        agg.add(refused("10.0.0.1", 1), None);
        agg.add(refused("10.0.0.1", 5_000), None);
        let v = one(agg);
        assert_eq!((v.flow_count, v.total_flows), (2, 5));
        assert_eq!(v.signature, SignatureId::ConnectionRefused);
        assert_eq!(v.server, SERVER.parse().unwrap());
        assert_eq!(v.hop, Hop::ClientToServer);
        assert_eq!((v.first_ts, v.last_ts), (fr(1).ts, fr(5_001).ts));
        assert!(v
            .summary
            .starts_with("2 connection attempts of 5 from 10.0.0.1 to 10.0.0.2:8080"));
        assert!(!v.likely_causes.is_empty() && !v.next_checks.is_empty());
        assert!(v
            .wireshark_filter
            .starts_with("ip.addr==10.0.0.2 && tcp.port==8080"));
    }

    #[test]
    fn without_observed_connections_the_findings_are_the_total() {
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(refused("10.0.0.1", 1), None);
        agg.add(refused("10.0.0.1", 3_000), None);
        let v = one(agg);
        assert_eq!((v.flow_count, v.total_flows), (2, 2));
        // Fewer observed connections than findings (an aggregate finding's weight): never "3 of 1".
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1));
        let mut fd = refused("10.0.0.1", 1);
        fd.weight = 3;
        agg.add(fd, None);
        let v = one(agg);
        assert_eq!((v.flow_count, v.total_flows), (3, 3));
        assert_eq!(v.by_severity, [0, 0, 3]);
    }

    #[test]
    fn severity_is_the_worst_and_counted_per_level() {
        let mut agg = Aggregator::new(10, Thresholds::default());
        let sig = SignatureId::ConnectionReset;
        agg.add(
            finding(sig, Severity::Info, "10.0.0.1", SERVER, 1, "a"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.4", SERVER, 5, "b"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 9, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 13, "c"),
            None,
        );
        let v = one(agg);
        assert_eq!(v.severity, Severity::Critical);
        assert_eq!(v.by_severity, [1, 2, 1]);
        assert_eq!(v.flow_count, 4);
        assert_eq!(v.clients, 3);
        assert_eq!(v.client, "10.0.0.1".parse::<IpAddr>().unwrap());
        // The first client is the earliest one, whichever was added first.
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 9, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 8, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.4", SERVER, 5, "b"),
            None,
        );
        let v = one(agg);
        assert_eq!(v.client, "10.0.0.4".parse::<IpAddr>().unwrap());
        assert_eq!((v.first_ts, v.last_ts), (fr(5).ts, fr(10).ts));
        assert_eq!(v.clients, 2);
    }

    #[test]
    fn a_refusal_falling_back_to_another_address_within_2_s_is_info() {
        // curl's fallback on loopback: [::1]:8080 refused, then 127.0.0.1:8080 answers.
        let refused_v6 = |at| {
            let mut f = refused("::1", at);
            f.server = "[::1]:8080".parse().unwrap();
            f
        };
        for (ok_at, severity) in [(3_000, Severity::Info), (3_001, Severity::Critical)] {
            let mut agg = Aggregator::new(10, Thresholds::default());
            agg.observe_flow(&success("127.0.0.1:40002", "127.0.0.1:8080", ok_at));
            agg.add(refused_v6(1_000), None);
            let v = one(agg);
            assert_eq!(v.severity, severity, "success at {}", ok_at);
            assert_eq!(v.by_severity[severity as usize], 1);
            assert_eq!(v.by_severity.iter().sum::<u64>(), 1);
            assert_eq!(
                v.notes.iter().any(|n| n.0.contains("another address")),
                severity == Severity::Info
            );
        }
        // Another server of the same family is a failover (a proxy leaving a dead backend for a
        // live one), not a fallback of the same service: the refusals stand.
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("10.0.0.1:40002", "10.0.0.3:8080", 1_010));
        agg.add(refused("10.0.0.1", 1_000), None);
        assert_eq!(one(agg).severity, Severity::Critical);
    }

    #[test]
    fn a_success_before_the_refusal_or_of_another_client_does_not_absorb_it() {
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("10.0.0.1:40002", "10.0.0.3:8080", 999));
        agg.observe_flow(&success("10.0.0.1:40003", SERVER, 999));
        agg.observe_flow(&success("10.0.0.7:40004", "10.0.0.3:8080", 1_001));
        agg.observe_flow(&success("10.0.0.7:40005", SERVER, 1_001));
        agg.observe_flow(&success("10.0.0.1:40006", "10.0.0.3:9090", 1_001));
        agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1_000));
        agg.add(refused("10.0.0.1", 1_000), None);
        assert_eq!(one(agg).severity, Severity::Critical);
    }

    #[test]
    fn a_refusal_a_retry_absorbed_within_1_s_is_a_warning() {
        for (ok_at, severity) in [(2_000, Severity::Warning), (2_001, Severity::Critical)] {
            let mut agg = Aggregator::new(10, Thresholds::default());
            agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1_000));
            agg.observe_flow(&success("10.0.0.1:40002", SERVER, ok_at));
            agg.add(refused("10.0.0.1", 1_000), None);
            let v = one(agg);
            assert_eq!(v.severity, severity, "retry at {}", ok_at);
            assert_eq!(
                v.notes.iter().any(|n| n.0.contains("absorbed by a retry")),
                severity == Severity::Warning
            );
        }
    }

    #[test]
    fn every_refusal_must_be_absorbed_even_across_clients() {
        // Two clients' builders merge into one verdict; only the first client retried.
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("10.0.0.1:40002", SERVER, 1_500));
        agg.add(refused("10.0.0.1", 1_000), None);
        agg.add(refused("10.0.0.5", 1_200), None);
        let v = one(agg);
        assert_eq!(v.severity, Severity::Critical);
        assert_eq!(v.clients, 2);
        assert_eq!(v.by_severity, [0, 0, 2]);
        // Both retried.
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("10.0.0.1:40002", SERVER, 1_500));
        agg.observe_flow(&success("10.0.0.5:40002", SERVER, 1_600));
        agg.add(refused("10.0.0.1", 1_000), None);
        agg.add(refused("10.0.0.5", 1_200), None);
        let v = one(agg);
        assert_eq!(v.severity, Severity::Warning);
        assert_eq!(v.by_severity, [0, 2, 0]);
        assert_eq!(v.notes.last().unwrap().1, 2);
    }

    #[test]
    fn a_server_seen_sending_bytes_counts_as_established() {
        // No SYN-ACK captured (the capture started mid-connection), but the server sent data.
        let mut agg = Aggregator::new(10, Thresholds::default());
        let mut f = failed("10.0.0.1:40002", SERVER, 1_500);
        f.resp_stats.bytes = 1;
        agg.observe_flow(&f);
        agg.add(refused("10.0.0.1", 1_000), None);
        assert_eq!(one(agg).severity, Severity::Warning);
    }

    #[test]
    fn unanswered_syns_to_an_endpoint_that_accepted_others_are_a_warning() {
        let syn = |c| {
            finding(
                SignatureId::SynUnanswered,
                Severity::Critical,
                "10.0.0.1",
                SERVER,
                c,
                "1 SYN over 0µs, no answer",
            )
        };
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1));
        agg.add(syn(1), None);
        assert_eq!(one(agg).severity, Severity::Critical);
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&failed("10.0.0.1:40001", SERVER, 1));
        agg.observe_flow(&success("10.0.0.9:40002", SERVER, 50_000));
        agg.add(syn(1), None);
        let v = one(agg);
        assert_eq!(v.severity, Severity::Warning);
        assert_eq!(v.by_severity, [0, 1, 0]);
        assert!(v.summary.ends_with("(1 other connections to it succeeded)"));
    }

    #[test]
    fn notes_are_listed_in_time_order_and_counted() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 30, "late"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 10, "early"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 20, "middle"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 5, "late"),
            None,
        );
        let v = one(agg);
        // "late" was first seen at frame 5 (its second connection): it comes first.
        let notes: Vec<(&str, u64)> = v.notes.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(notes, vec![("late", 2), ("early", 1), ("middle", 1)]);
        assert_eq!(v.note_lines(), vec!["late (×2)", "early", "middle"]);
    }

    #[test]
    fn notes_are_capped_keeping_the_earliest() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_NOTES as u64 {
            let at = 100 + 10 * i;
            agg.add(
                finding(
                    sig,
                    Severity::Warning,
                    "10.0.0.1",
                    SERVER,
                    at,
                    &format!("n{}", at),
                ),
                None,
            );
        }
        // Later than all kept: dropped. Earlier than the latest kept: replaces it.
        agg.add(
            finding(
                sig,
                Severity::Warning,
                "10.0.0.1",
                SERVER,
                10_000,
                "dropped",
            ),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 1, "earliest"),
            None,
        );
        let v = one(agg);
        assert_eq!(v.notes.len(), MAX_NOTES);
        assert_eq!(v.notes[0].0, "earliest");
        assert_eq!(v.notes[1].0, "n100");
        let last = format!("n{}", 100 + 10 * (MAX_NOTES as u64 - 2));
        assert_eq!(v.notes.last().unwrap().0, last);
        assert!(!v.notes.iter().any(|n| n.0 == "dropped"));
        assert_eq!(v.flow_count, MAX_NOTES as u64 + 2);
    }

    #[test]
    fn notes_of_merged_clients_keep_their_times() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        // Builders are merged in (signature, server, client) order: 10.0.0.1 first.
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 50, "same"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 40, "one"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 10, "same"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.5", SERVER, 20, "five"),
            None,
        );
        let v = one(agg);
        let notes: Vec<(&str, u64)> = v.notes.iter().map(|(n, c)| (n.as_str(), *c)).collect();
        assert_eq!(notes, vec![("same", 2), ("five", 1), ("one", 1)]);
    }

    #[test]
    fn evidence_is_the_most_severe_findings_first_capped() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(2, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 1, "w"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.1", SERVER, 9, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Info, "10.0.0.1", SERVER, 2, "i"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.5", SERVER, 7, "c"),
            None,
        );
        let v = one(agg);
        let frames: Vec<u64> = v.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![7, 9]);
        // With room for more: the warning's frame next, listed in frame order.
        let mut agg = Aggregator::new(3, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 1, "w"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.1", SERVER, 9, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Info, "10.0.0.1", SERVER, 2, "i"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.5", SERVER, 7, "c"),
            None,
        );
        let frames: Vec<u64> = one(agg).evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![1, 7, 9]);
    }

    #[test]
    fn evidence_keeps_a_findings_frames_together_without_duplicates() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(3, Thresholds::default());
        let mut a = finding(sig, Severity::Critical, "10.0.0.1", SERVER, 5, "a");
        a.evidence.push(Evidence {
            frame: fr(6),
            kind: EvidenceKind::Rst,
            description: "rst".into(),
        });
        let mut b = finding(sig, Severity::Critical, "10.0.0.1", SERVER, 5, "b");
        b.evidence.push(Evidence {
            frame: fr(8),
            kind: EvidenceKind::Rst,
            description: "rst".into(),
        });
        agg.add(a, None);
        agg.add(b, None);
        let frames: Vec<u64> = one(agg).evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![5, 6, 8]);
    }

    #[test]
    fn many_findings_keep_the_most_severe_earliest_evidence() {
        // More than 4 × max_evidence findings: the builder trims as it goes.
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(2, Thresholds::default());
        for i in 0..20 {
            agg.add(
                finding(sig, Severity::Warning, "10.0.0.1", SERVER, 100 + i, "w"),
                None,
            );
        }
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.1", SERVER, 500, "c"),
            None,
        );
        for i in 0..20 {
            agg.add(
                finding(sig, Severity::Warning, "10.0.0.5", SERVER, 50 + i, "w"),
                None,
            );
        }
        let frames: Vec<u64> = one(agg).evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![50, 500]);
    }

    #[test]
    fn statuses_are_tallied_across_findings_and_clients() {
        let gw = |client: &str, at: u64, status: u16| {
            let mut f = finding(
                SignatureId::GatewayError,
                Severity::Critical,
                client,
                SERVER,
                at,
                "502",
            );
            f.facts = vec![
                ("status", status.into()),
                ("server_header", "nginx".into()),
                ("other", "first".into()),
            ];
            f
        };
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(gw("10.0.0.1", 1, 502), None);
        agg.add(gw("10.0.0.1", 3, 504), None);
        agg.add(gw("10.0.0.5", 5, 502), None);
        let v = one(agg);
        let fact = |k: &str| v.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string());
        assert_eq!(fact("status").as_deref(), Some("502×2, 504"));
        // Only statuses carry counts; other tallied facts list their values.
        assert_eq!(fact("server_header").as_deref(), Some("nginx"));
        assert_eq!(fact("other").as_deref(), Some("first"));
        assert_eq!(v.facts.iter().filter(|f| f.0 == "status").count(), 1);
        assert!(v
            .summary
            .contains("gateway error: 502×2, 504 (Server: nginx)"));
        assert_eq!(v.next_checks.len(), 3);
    }

    #[test]
    fn a_proxy_front_with_its_backends_captured_is_not_asked_for_them() {
        let mut topo = Topology::default();
        topo.proxies.push(Proxy {
            front: vec![SERVER.parse().unwrap()],
            back_addresses: vec!["10.0.0.2".parse().unwrap()],
            backends: vec!["10.0.0.3:80".parse().unwrap()],
            confidence: Confidence::High,
            evidence: Vec::new(),
        });
        let mut f = finding(
            SignatureId::GatewayError,
            Severity::Critical,
            "10.0.0.1",
            SERVER,
            1,
            "502",
        );
        f.facts = vec![("status", 502u16.into())];
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(f.clone(), None);
        let v = agg.finish(&topo);
        assert_eq!(v[0].hop, Hop::ClientToProxy);
        assert_eq!(v[0].next_checks.len(), 2);
        topo.proxies[0].backends.clear();
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(f, None);
        assert_eq!(agg.finish(&topo)[0].next_checks.len(), 3);
    }

    #[test]
    fn one_verdict_per_hop_and_verdicts_most_severe_first() {
        let mut topo = Topology::default();
        topo.proxies.push(Proxy {
            front: vec!["10.0.0.2:80".parse().unwrap()],
            back_addresses: vec!["10.0.0.2".parse().unwrap()],
            backends: vec![SERVER.parse().unwrap()],
            confidence: Confidence::High,
            evidence: Vec::new(),
        });
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, 1, "direct"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.2", SERVER, 2, "proxied"),
            None,
        );
        agg.add(
            finding(
                SignatureId::SynUnanswered,
                Severity::Critical,
                "10.0.0.1",
                "10.0.0.9:1",
                9,
                "x",
            ),
            None,
        );
        agg.add(
            finding(
                SignatureId::TlsStall,
                Severity::Warning,
                "10.0.0.1",
                "10.0.0.9:2",
                1,
                "y",
            ),
            None,
        );
        let v = agg.finish(&topo);
        let got: Vec<(SignatureId, Hop, i64)> = v
            .iter()
            .map(|v| {
                (
                    v.signature,
                    v.hop,
                    v.first_ts.nanos_since(fr(0).ts) / 1_000_000,
                )
            })
            .collect();
        assert_eq!(
            got,
            vec![
                (SignatureId::SynUnanswered, Hop::ClientToServer, 9),
                (SignatureId::ConnectionReset, Hop::ClientToServer, 1),
                (SignatureId::TlsStall, Hop::ClientToServer, 1),
                (SignatureId::ConnectionReset, Hop::ProxyToBackend, 2),
            ]
        );
    }

    /// Summaries arrive in the order connections finish (the tracker's timeouts decide it):
    /// the facts shown and the flows listed are the earliest in the capture either way.
    #[test]
    fn facts_and_flows_do_not_depend_on_the_order_findings_arrive_in() {
        let run_in = |order: &[u64]| {
            let mut agg = Aggregator::new(10, Thresholds::default());
            for &at in order {
                let mut fd = refused("10.0.0.1", at);
                fd.facts = vec![("received", at.into())];
                let f = failed(&format!("10.0.0.1:{}", 40000 + at), SERVER, at);
                agg.add(fd, Some(&f));
            }
            one(agg)
        };
        let forward: Vec<u64> = (1..=MAX_FLOW_REFS as u64 * 3).collect();
        let backward: Vec<u64> = forward.iter().rev().copied().collect();
        let (a, b) = (run_in(&forward), run_in(&backward));
        let fact = |v: &Verdict| {
            v.facts
                .iter()
                .find(|f| f.0 == "received")
                .map(|f| f.1.to_string())
        };
        assert_eq!(fact(&a).as_deref(), Some("1"));
        assert_eq!(fact(&b).as_deref(), Some("1"));
        let firsts = |v: &Verdict| v.flows.iter().map(|f| f.first.number).collect::<Vec<_>>();
        assert_eq!(firsts(&a), (1..=MAX_FLOW_REFS as u64).collect::<Vec<_>>());
        assert_eq!(firsts(&b), firsts(&a));
    }

    #[test]
    fn flows_behind_a_verdict_are_remembered_up_to_the_cap() {
        // One client beyond the cap on its own, a second one merged in.
        let mut agg = Aggregator::new(10, Thresholds::default());
        let f = failed("10.0.0.1:40001", SERVER, 1);
        for i in 0..MAX_FLOW_REFS as u64 + 1 {
            agg.add(refused("10.0.0.1", 1 + i), Some(&f));
        }
        for i in 0..5 {
            agg.add(refused("10.0.0.5", 2 + i), Some(&f));
        }
        let v = one(agg);
        assert_eq!(v.flows.len(), MAX_FLOW_REFS);
        assert_eq!((v.flows[0].orig, v.flows[0].resp), (f.orig, f.resp));
        assert_eq!((v.flows[0].first, v.flows[0].last), (f.first, f.last));
        assert_eq!(v.flow_count, MAX_FLOW_REFS as u64 + 6);
        // Two clients each below the cap, together above it.
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_FLOW_REFS as u64 / 2 + 1 {
            agg.add(refused("10.0.0.1", 1 + i), Some(&f));
            agg.add(refused("10.0.0.5", 1 + i), Some(&f));
        }
        assert_eq!(one(agg).flows.len(), MAX_FLOW_REFS);
    }

    #[test]
    fn distinct_clients_are_counted_up_to_the_cap() {
        let mut agg = Aggregator::new(1, Thresholds::default());
        for i in 0..MAX_CLIENTS as u32 + 1 {
            let c = std::net::Ipv4Addr::from(0x0a01_0000 + i).to_string();
            agg.add(refused(&c, 1 + i as u64), None);
        }
        let v = one(agg);
        assert_eq!(v.clients, MAX_CLIENTS as u32);
        assert_eq!(v.flow_count, MAX_CLIENTS as u64 + 1);
        assert_eq!(v.client, "10.1.0.0".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn clients_seen_at_the_same_instant_name_the_first_address() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.7", SERVER, 5, "a"),
            None,
        );
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.3", SERVER, 5, "a"),
            None,
        );
        assert_eq!(one(agg).client, "10.0.0.3".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_fallback_to_an_address_used_before_still_counts_and_starts_are_capped() {
        let refused_v6 = |at| {
            let mut f = refused("::1", at);
            f.server = "[::1]:8080".parse().unwrap();
            f
        };
        // The client used the other address long before: its later success right after the
        // refusal is what absorbs the refusal (not only the first success per address).
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("127.0.0.1:40000", "127.0.0.1:8080", 1));
        agg.observe_flow(&success("127.0.0.1:40001", "127.0.0.1:8080", 10_010));
        agg.add(refused_v6(10_000), None);
        assert_eq!(one(agg).severity, Severity::Info);
        // Beyond MAX_SUCCESS_TIMES starts for a (client host, port), later ones are not kept.
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_SUCCESS_TIMES as u64 {
            agg.observe_flow(&success("127.0.0.1:40000", "127.0.0.2:8080", 1 + i));
        }
        agg.observe_flow(&success("127.0.0.1:40001", "127.0.0.1:8080", 100_010));
        agg.add(refused_v6(100_000), None);
        assert_eq!(one(agg).severity, Severity::Critical);
    }

    #[test]
    fn success_records_are_capped_per_pair_and_in_pairs() {
        // A pair's starts beyond MAX_SUCCESS_TIMES are not kept: a retry after them is unseen.
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_SUCCESS_TIMES as u64 {
            agg.observe_flow(&success("10.0.0.1:40000", SERVER, 1 + i));
        }
        agg.observe_flow(&success("10.0.0.1:40001", SERVER, 100_500));
        agg.add(refused("10.0.0.1", 100_000), None);
        assert_eq!(one(agg).severity, Severity::Critical);
        // Beyond MAX_SUCCESS_KEYS (client, endpoint) pairs, a new pair is not kept.
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_SUCCESS_KEYS as u32 {
            let c = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            agg.observe_flow(&success(&format!("{}:40000", c), SERVER, 1));
        }
        agg.observe_flow(&success("10.0.0.1:40001", SERVER, 100_500));
        agg.add(refused("10.0.0.1", 100_000), None);
        assert_eq!(one(agg).severity, Severity::Critical);
        // A pair already kept still records new starts.
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.observe_flow(&success("10.0.0.1:40000", SERVER, 1));
        for i in 1..MAX_SUCCESS_KEYS as u32 {
            let c = std::net::Ipv4Addr::from(0x0b00_0000 + i);
            agg.observe_flow(&success(&format!("{}:40000", c), SERVER, 1));
        }
        agg.observe_flow(&success("10.0.0.1:40001", SERVER, 100_500));
        agg.add(refused("10.0.0.1", 100_000), None);
        assert_eq!(one(agg).severity, Severity::Warning);
    }

    #[test]
    fn among_equally_severe_findings_the_earliest_frames_are_evidence() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(1, Thresholds::default());
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.1", SERVER, 9, "c"),
            None,
        );
        agg.add(
            finding(sig, Severity::Critical, "10.0.0.5", SERVER, 7, "c"),
            None,
        );
        let frames: Vec<u64> = one(agg).evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![7]);
    }

    #[test]
    fn a_note_as_late_as_the_latest_kept_is_dropped_at_the_cap() {
        let sig = SignatureId::ConnectionReset;
        let mut agg = Aggregator::new(10, Thresholds::default());
        for i in 0..MAX_NOTES as u64 {
            let n = format!("n{}", i);
            agg.add(
                finding(sig, Severity::Warning, "10.0.0.1", SERVER, 100 + i, &n),
                None,
            );
        }
        let latest = 100 + MAX_NOTES as u64 - 1;
        agg.add(
            finding(sig, Severity::Warning, "10.0.0.1", SERVER, latest, "tied"),
            None,
        );
        let v = one(agg);
        assert!(!v.notes.iter().any(|n| n.0 == "tied"));
        assert_eq!(v.notes.last().unwrap().0, format!("n{}", MAX_NOTES - 1));
    }

    fn chain(back: Option<SignatureId>, backend: &str, explained: u64) -> Chain {
        Chain {
            summary: String::new(),
            proxy: "10.0.0.2:80".parse().unwrap(),
            front_signature: SignatureId::GatewayError,
            front_status: Some(502),
            back_signature: back,
            backend: Some(backend.parse().unwrap()),
            explained,
            front_failures: explained,
            pairing: PairKind::Time,
            confidence: PairConfidence::Medium,
            attempts: Vec::new(),
            example: Vec::new(),
        }
    }

    fn verdict(sig: SignatureId, sev: Severity, hop: Hop, server: &str, at: u64) -> Verdict {
        let mut agg = Aggregator::new(10, Thresholds::default());
        agg.add(finding(sig, sev, "10.0.0.1", server, at, "n"), None);
        let mut v = one(agg);
        v.severity = sev;
        v.hop = hop;
        v
    }

    #[test]
    fn a_backend_cause_paired_with_client_failures_becomes_critical() {
        let refused = SignatureId::ConnectionRefused;
        let mut vs = vec![
            verdict(
                SignatureId::TlsStall,
                Severity::Warning,
                Hop::ClientToServer,
                "10.0.0.9:443",
                1,
            ),
            verdict(refused, Severity::Warning, Hop::ProxyToBackend, SERVER, 5),
        ];
        escalate_paired_causes(&mut vs, &[chain(Some(refused), SERVER, 2)]);
        assert_eq!(
            vs[0].signature, refused,
            "re-sorted: the escalated verdict comes first"
        );
        assert_eq!(vs[0].severity, Severity::Critical);
        assert_eq!(
            vs[0].notes.last().unwrap(),
            &(
                "critical: 2 client exchanges at the proxy 10.0.0.2:80 failed because of it (time pairing)".to_string(),
                2
            )
        );
        let mut vs = vec![verdict(
            refused,
            Severity::Info,
            Hop::ProxyToBackend,
            SERVER,
            5,
        )];
        escalate_paired_causes(&mut vs, &[chain(Some(refused), SERVER, 1)]);
        assert!(vs[0]
            .notes
            .last()
            .unwrap()
            .0
            .starts_with("critical: 1 client exchange at the proxy"));
    }

    #[test]
    fn only_the_paired_backend_verdict_below_critical_is_escalated() {
        let refused = SignatureId::ConnectionRefused;
        let cases = [
            (
                "nothing explained",
                chain(Some(refused), SERVER, 0),
                Hop::ProxyToBackend,
                refused,
                SERVER,
            ),
            (
                "no backend cause",
                chain(None, SERVER, 2),
                Hop::ProxyToBackend,
                refused,
                SERVER,
            ),
            (
                "another signature",
                chain(Some(refused), SERVER, 2),
                Hop::ProxyToBackend,
                SignatureId::SynUnanswered,
                SERVER,
            ),
            (
                "another backend",
                chain(Some(refused), SERVER, 2),
                Hop::ProxyToBackend,
                refused,
                "10.0.0.3:8080",
            ),
            (
                "another hop",
                chain(Some(refused), SERVER, 2),
                Hop::ClientToServer,
                refused,
                SERVER,
            ),
        ];
        for (name, c, hop, sig, server) in cases {
            let mut vs = vec![
                verdict(
                    SignatureId::TlsStall,
                    Severity::Warning,
                    Hop::ClientToServer,
                    "10.0.0.9:443",
                    1,
                ),
                verdict(sig, Severity::Warning, hop, server, 5),
            ];
            escalate_paired_causes(&mut vs, &[c]);
            assert_eq!(vs[1].severity, Severity::Warning, "{}", name);
            assert_eq!(vs[1].notes.len(), 1, "{}", name);
            assert_eq!(vs[0].signature, SignatureId::TlsStall, "{}", name);
        }
        // Already critical: no second note.
        let mut vs = vec![verdict(
            refused,
            Severity::Critical,
            Hop::ProxyToBackend,
            SERVER,
            5,
        )];
        escalate_paired_causes(&mut vs, &[chain(Some(refused), SERVER, 2)]);
        assert_eq!(vs[0].notes.len(), 1);
        // No backend named.
        let mut c = chain(Some(refused), SERVER, 2);
        c.backend = None;
        let mut vs = vec![verdict(
            refused,
            Severity::Warning,
            Hop::ProxyToBackend,
            SERVER,
            5,
        )];
        escalate_paired_causes(&mut vs, &[c]);
        assert_eq!(vs[0].severity, Severity::Warning);
    }
}
