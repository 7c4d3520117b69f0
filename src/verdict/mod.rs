//! Verdicts: findings merged into one verdict per (signature, hop, server endpoint), never one per
//! packet, with severity, counts out of all connections to that endpoint, time window, summary,
//! likely causes, next checks, a Wireshark display filter and up to `max_evidence` evidence
//! frames. Must not: format output.

use crate::flow::{FlowSummary, FrameRef};
use crate::signature::{Evidence, Fact, Finding, Severity, SignatureId};
use crate::time::Timestamp;
use rustc_hash::FxHashMap;
use std::net::{IpAddr, SocketAddr};

pub use crate::topology::Hop;

/// A connection behind a verdict (for `--evidence-pcap`).
#[derive(Clone, Copy, Debug)]
pub struct FlowRef {
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub first: FrameRef,
    pub last: FrameRef,
}

/// Connections remembered per verdict for `--evidence-pcap`.
pub const MAX_FLOW_REFS: usize = 1000;
/// Per-connection notes kept per verdict.
pub const MAX_NOTES: usize = 20;
/// (client, endpoint) pairs whose successful connection starts are kept, and starts per pair.
const MAX_SUCCESS_KEYS: usize = 10_000;
const MAX_SUCCESS_TIMES: usize = 4096;
/// Server endpoints whose connections are counted (the "of m" of verdicts) at most; beyond it a
/// verdict's total falls back to its own count. Bounds memory in a long live run.
pub const MAX_ENDPOINT_COUNTS: usize = 100_000;
/// Per-client builders at most; beyond it findings of new (signature, server, client) keys are
/// kept under an unspecified client address (one per signature and server, hop then judged
/// without the client), and beyond twice that they are counted in `dropped_findings` only.
pub const MAX_BUILDERS: usize = 50_000;
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
}

/// Distinct clients remembered per verdict (beyond it, the count is a lower bound).
const MAX_CLIENTS: usize = 256;

#[derive(Clone)]
pub struct Aggregator {
    max_evidence: usize,
    /// One builder per (signature, server endpoint, client address): the hop of a client is
    /// known only once the whole capture has been seen (`finish` merges them per hop).
    builders: FxHashMap<(SignatureId, SocketAddr, IpAddr), Builder>,
    endpoint_flows: FxHashMap<SocketAddr, u64>,
    endpoint_established: FxHashMap<SocketAddr, u64>,
    /// (client ip, server port) -> (server ip, first successful connection start), capped.
    successes: FxHashMap<(IpAddr, u16), Vec<(IpAddr, Timestamp)>>,
    /// (client ip, server endpoint) -> starts of its successful connections (capped), to tell a
    /// refusal that a retry absorbed from one that stood.
    success_times: FxHashMap<(IpAddr, SocketAddr), Vec<Timestamp>>,
    /// Findings not aggregated because `MAX_BUILDERS` was reached twice over.
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
    pub fn new(max_evidence: usize) -> Aggregator {
        Aggregator {
            max_evidence,
            builders: FxHashMap::default(),
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
            let key = (f.orig.ip(), f.resp.port());
            if self.successes.len() < MAX_SUCCESS_KEYS || self.successes.contains_key(&key) {
                let v = self.successes.entry(key).or_default();
                if v.len() < 4 && !v.iter().any(|(ip, _)| *ip == f.resp.ip()) {
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
        let hop = Hop::ClientToServer;
        let mut key = (fd.signature, fd.server, fd.client);
        if self.builders.len() >= MAX_BUILDERS && !self.builders.contains_key(&key) {
            key.2 = match fd.client {
                IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
                IpAddr::V6(_) => IpAddr::from([0u16; 8]),
            };
            if self.builders.len() >= 2 * MAX_BUILDERS && !self.builders.contains_key(&key) {
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
            },
            client_set: Vec::new(),
            findings: Vec::new(),
            attempts: Vec::new(),
            tallies: Default::default(),
            note_ts: Vec::new(),
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
        add_note(
            &mut v.notes,
            &mut b.note_ts,
            fd.note.clone(),
            fd.weight,
            fd.first_ts,
        );
        if v.facts.is_empty() {
            v.facts = fd.facts.clone();
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
            if v.flows.len() < MAX_FLOW_REFS {
                v.flows.push(FlowRef {
                    orig: f.orig,
                    resp: f.resp,
                    first: f.first,
                    last: f.last,
                });
            }
        }
        // Keep the evidence of the most severe, earliest findings only (bounded).
        b.findings.push((fd.severity, fd.evidence));
        if b.findings.len() > self.max_evidence.max(1) * 4 {
            b.findings.sort_by(|a, b| {
                b.0.cmp(&a.0)
                    .then(first_frame(&a.1).cmp(&first_frame(&b.1)))
            });
            b.findings.truncate(self.max_evidence.max(1));
        }
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
            match merged.get_mut(&(k.0, hop, k.1)) {
                Some(m) => m.merge(b, max_ev),
                None => {
                    merged.insert((k.0, hop, k.1), b);
                }
            }
        }
        let mut out: Vec<Verdict> = Vec::new();
        for (_, mut b) in merged {
            let v = &mut b.v;
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
            let settled = crate::signature::settle(&v.aggregate(established), &b.attempts, &succ);
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
                    if ev.len() < max_ev && !ev.iter().any(|y| y.frame == x.frame) {
                        ev.push(x);
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
    fn merge(&mut self, o: Builder, max_ev: usize) {
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
        for ((n, c), t) in w.notes.into_iter().zip(o.note_ts) {
            add_note(&mut v.notes, &mut self.note_ts, n, c, t);
        }
        if v.facts.is_empty() {
            v.facts = w.facts;
        }
        for f in w.flows {
            if v.flows.len() < MAX_FLOW_REFS {
                v.flows.push(f);
            }
        }
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

/// Adds a per-connection note (or counts it again), keeping the `MAX_NOTES` earliest.
fn add_note(
    notes: &mut Vec<(String, u64)>,
    ts: &mut Vec<Timestamp>,
    note: String,
    weight: u64,
    at: Timestamp,
) {
    if let Some(i) = notes.iter().position(|(n, _)| *n == note) {
        notes[i].1 += weight;
        ts[i] = ts[i].min(at);
    } else if notes.len() < MAX_NOTES {
        notes.push((note, weight));
        ts.push(at);
    } else if let Some((i, _)) = ts
        .iter()
        .enumerate()
        .max_by_key(|(_, t)| **t)
        .filter(|(_, t)| **t > at)
    {
        notes[i] = (note, weight);
        ts[i] = at;
    }
}

fn first_frame(e: &[Evidence]) -> (u16, u64) {
    e.first()
        .map(|x| (x.frame.file, x.frame.number))
        .unwrap_or((u16::MAX, u64::MAX))
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
            .get(&(client, server.port()))
            .is_some_and(|s| {
                s.iter().any(|(ip, st)| {
                    *ip != server.ip() && (0..=window_ns).contains(&st.nanos_since(t))
                })
            })
    }
}
