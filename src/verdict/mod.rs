//! Verdicts: findings merged into one verdict per (signature, hop, server endpoint), never one per
//! packet, with severity, counts out of all connections to that endpoint, time window, summary,
//! likely causes, next checks, a Wireshark display filter and up to `max_evidence` evidence
//! frames. Must not: format output.

use crate::flow::{FlowSummary, FrameRef};
use crate::signature::{Evidence, Finding, Severity, SignatureId};
use crate::time::{Timestamp, NANOS_PER_SEC};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};

/// Which leg of the path a verdict is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Hop {
    #[serde(rename = "client->proxy")]
    ClientToProxy,
    #[serde(rename = "proxy->backend")]
    ProxyToBackend,
    #[serde(rename = "client->server")]
    ClientToServer,
}

impl Hop {
    pub fn name(self) -> &'static str {
        match self {
            Hop::ClientToProxy => "client->proxy",
            Hop::ProxyToBackend => "proxy->backend",
            Hop::ClientToServer => "client->server",
        }
    }
}

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
/// Per-connection notes kept per verdict: the default of `Thresholds::max_notes`.
pub const MAX_NOTES: usize = crate::signature::DEFAULT_MAX_NOTES;
/// A refusal followed this soon by a successful connection from the same client to the same port
/// on another address of the server (happy eyeballs: ::1 then 127.0.0.1) is only info.
pub const FALLBACK_WINDOW_NS: i64 = 2 * NANOS_PER_SEC;
/// A refused attempt followed this soon by a successful connection from the same client to the
/// same endpoint was absorbed by a retry (warning); one that was not stood (critical).
pub const RETRY_WINDOW_NS: i64 = NANOS_PER_SEC;
/// (client, endpoint) pairs whose successful connection starts are kept, and starts per pair.
const MAX_SUCCESS_KEYS: usize = 10_000;
const MAX_SUCCESS_TIMES: usize = 4096;

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
    pub facts: Vec<(&'static str, String)>,
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
    refused_times: Vec<(IpAddr, Timestamp)>,
    /// Values of selected facts counted across findings (e.g. HTTP status → responses).
    tallies: std::collections::BTreeMap<(&'static str, String), u64>,
    /// When each note was first seen (parallel to `v.notes`): notes are kept and listed in time
    /// order, whatever order connections finished in.
    note_ts: Vec<Timestamp>,
}

/// Distinct clients remembered per verdict (beyond it, the count is a lower bound).
const MAX_CLIENTS: usize = 256;

/// Distinct clients with their own builder per (signature, server); the findings of further
/// clients share one builder (their hop is that of its earliest client).
pub const MAX_CLIENT_BUILDERS: usize = 1024;
/// Key of the shared builder of the clients beyond `MAX_CLIENT_BUILDERS`.
const OVERFLOW_CLIENT: IpAddr = IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED);

#[derive(Clone)]
pub struct Aggregator {
    /// Client builders per (signature, server), up to `MAX_CLIENT_BUILDERS`.
    client_builders: FxHashMap<(SignatureId, SocketAddr), u32>,
    max_evidence: usize,
    /// Distinct per-connection notes kept per verdict (`Thresholds::max_notes`).
    max_notes: usize,
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
}

impl Verdict {
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
            client_builders: FxHashMap::default(),
            max_evidence,
            max_notes: MAX_NOTES,
            builders: FxHashMap::default(),
            endpoint_flows: FxHashMap::default(),
            endpoint_established: FxHashMap::default(),
            successes: FxHashMap::default(),
            success_times: FxHashMap::default(),
        }
    }

    /// Counts every finished connection (the denominators of "n of m").
    pub fn observe_flow(&mut self, f: &FlowSummary) {
        *self.endpoint_flows.entry(f.resp).or_default() += 1;
        if f.synack.is_some() || f.resp_stats.bytes > 0 {
            *self.endpoint_established.entry(f.resp).or_default() += 1;
            let v = self
                .successes
                .entry((f.orig.ip(), f.resp.port()))
                .or_default();
            if v.len() < 4 && !v.iter().any(|(ip, _)| *ip == f.resp.ip()) {
                v.push((f.resp.ip(), f.start));
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

    pub fn add(&mut self, mut fd: Finding, flow: Option<&FlowSummary>) {
        // Capture time can run backwards (a clock step): a window is never inverted.
        if fd.last_ts < fd.first_ts {
            std::mem::swap(&mut fd.first_ts, &mut fd.last_ts);
        }
        let hop = Hop::ClientToServer;
        let mut key = (fd.signature, fd.server, fd.client);
        if !self.builders.contains_key(&key) {
            // One builder per client only up to `MAX_CLIENT_BUILDERS` per (signature, server):
            // a flood from a million spoofed sources shares one builder beyond that.
            let n = self
                .client_builders
                .entry((fd.signature, fd.server))
                .or_default();
            if *n as usize >= MAX_CLIENT_BUILDERS {
                key.2 = OVERFLOW_CLIENT;
            } else {
                *n += 1;
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
            refused_times: Vec::new(),
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
        v.notes_omitted += add_note(
            &mut v.notes,
            &mut b.note_ts,
            fd.note.clone(),
            fd.weight,
            fd.first_ts,
            self.max_notes,
        );
        if v.facts.is_empty() {
            v.facts = fd.facts.clone();
        }
        for (k, val) in &fd.facts {
            if matches!(
                *k,
                "status" | "server_header" | "body" | "alert" | "alert_from" | "sni"
            ) {
                *b.tallies.entry((k, val.clone())).or_default() += fd.weight;
            }
        }
        if fd.signature == SignatureId::ConnectionRefused {
            b.refused_times.push((fd.client, fd.first_ts));
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
            if b.findings[self.max_evidence.max(1)..]
                .iter()
                .any(|(_, e)| !e.is_empty())
            {
                b.v.evidence_capped = true;
            }
            b.findings.truncate(self.max_evidence.max(1));
        }
    }

    /// Keeps at most `max_notes` distinct per-connection notes per verdict (default
    /// `MAX_NOTES`); the connections of the others are counted in `Verdict::notes_omitted`.
    pub fn with_max_notes(mut self, max_notes: usize) -> Aggregator {
        self.max_notes = max_notes.max(1);
        self
    }

    /// The verdicts, most severe first, then by time: one per (signature, hop, server), the hop
    /// of each client given by `hop_of(client, server)`.
    pub fn finish(self, hop_of: impl Fn(IpAddr, SocketAddr) -> Hop) -> Vec<Verdict> {
        let max_ev = self.max_evidence;
        let mut merged: FxHashMap<(SignatureId, Hop, SocketAddr), Builder> = FxHashMap::default();
        let mut keys: Vec<_> = self.builders.keys().copied().collect();
        keys.sort();
        let mut builders = self.builders;
        for k in keys {
            let mut b = builders.remove(&k).expect("key listed");
            // The builder's earliest client (its key's client, except in the overflow builder).
            let hop = hop_of(b.v.client, k.1);
            b.v.hop = hop;
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
            // Severity adjustments that need the whole capture.
            match v.signature {
                SignatureId::ConnectionRefused => {
                    let all_fell_back = !b.refused_times.is_empty()
                        && b.refused_times.iter().all(|(client, t)| {
                            self.successes
                                .get(&(*client, v.server.port()))
                                .is_some_and(|s| {
                                    s.iter().any(|(ip, st)| {
                                        *ip != v.server.ip()
                                            && st.nanos_since(*t) >= 0
                                            && st.nanos_since(*t) <= FALLBACK_WINDOW_NS
                                    })
                                })
                        });
                    if all_fell_back {
                        v.severity = Severity::Info;
                        v.by_severity = [v.flow_count, 0, 0];
                        v.notes.push(("each refused client connected to the same port on another address right after (address-family fallback, e.g. ::1 then 127.0.0.1)".into(), v.flow_count));
                        b.note_ts.push(v.last_ts);
                    } else {
                        // The class "a refusal absorbed by a retry": every refused attempt was
                        // followed within RETRY_WINDOW_NS by a success of the same client to
                        // the same endpoint. Otherwise the refusals stood (a restart window, a
                        // backend down): critical, however many other connections succeeded.
                        let absorbed = !b.refused_times.is_empty()
                            && b.refused_times.iter().all(|(client, t)| {
                                self.success_times
                                    .get(&(*client, v.server))
                                    .is_some_and(|s| {
                                        s.iter().any(|st| {
                                            (0..=RETRY_WINDOW_NS).contains(&st.nanos_since(*t))
                                        })
                                    })
                            });
                        if absorbed {
                            v.severity = Severity::Warning;
                            v.notes.push(("each refused attempt was followed within 1 s by a successful connection of the same client (absorbed by a retry)".into(), v.flow_count));
                            b.note_ts.push(v.last_ts);
                        }
                    }
                }
                SignatureId::SynUnanswered if established > 0 => v.severity = Severity::Warning,
                _ => {}
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
                v.facts.push((k, vals.join(", ")));
            }
            crate::verdict::text::fill(v, established);
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
            if self.findings[max_ev.max(1)..]
                .iter()
                .any(|(_, e)| !e.is_empty())
            {
                self.v.evidence_capped = true;
            }
            self.findings.truncate(max_ev.max(1));
        }
        self.refused_times.extend(o.refused_times);
        for (k, n) in o.tallies {
            *self.tallies.entry(k).or_default() += n;
        }
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

pub mod text;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testkit::fr;
    use crate::signature::EvidenceKind;

    fn finding(client: &str, first: u64, last: u64) -> Finding {
        Finding {
            signature: SignatureId::ConnectionReset,
            severity: Severity::Warning,
            client: client.parse().unwrap(),
            server: "10.0.0.2:80".parse().unwrap(),
            flow: None,
            first_ts: fr(first).ts,
            last_ts: fr(last).ts,
            weight: 1,
            note: "reset".into(),
            evidence: vec![Evidence {
                frame: fr(first),
                kind: EvidenceKind::Rst,
                description: "RST".into(),
            }],
            facts: Vec::new(),
        }
    }

    /// Fuzzing regression (analyze_capture): a connection whose RST is timestamped before its
    /// data (capture time stepped back) gave a verdict window that ended before it began.
    #[test]
    fn a_finding_with_time_running_backwards_gives_an_ordered_window() {
        let mut a = Aggregator::new(10);
        a.add(finding("10.0.0.1", 900, 5), None);
        let v = a.finish(|_, _| Hop::ClientToServer);
        assert_eq!((v[0].first_ts, v[0].last_ts), (fr(5).ts, fr(900).ts));
    }

    /// A flood from many sources shares builders beyond `MAX_CLIENT_BUILDERS`: one verdict that
    /// counts every connection.
    #[test]
    fn clients_beyond_the_builder_cap_share_one_builder() {
        let mut a = Aggregator::new(10);
        let n = MAX_CLIENT_BUILDERS as u64 + 500;
        for i in 0..n {
            let ip = format!("10.{}.{}.{}", i >> 16, (i >> 8) & 255, i & 255);
            a.add(finding(&ip, i + 1, i + 1), None);
        }
        assert_eq!(a.builders.len(), MAX_CLIENT_BUILDERS + 1);
        let v = a.finish(|_, _| Hop::ClientToServer);
        assert_eq!(v.len(), 1);
        assert_eq!(v[0].flow_count, n);
        assert_eq!(v[0].evidence.len(), 10);
    }
}
