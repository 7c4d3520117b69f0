//! `port-scan`: one source sending SYNs to many ports of one host (≥ `scan_min_targets`
//! distinct ports) or to one port of many hosts (≥ `scan_min_targets` hosts) within
//! `scan_window`, nearly all of them refused or unanswered (≥ `SCAN_FAILED_PERMILLE` ‰). That
//! is a scan, not an outage: ONE info verdict, and the scan's probes (attempts without payload
//! from that source: refused, unanswered, or answered and dropped) are not reported under any
//! other signature. `analyze.rs` defers the probes' findings until the end of the capture and
//! drops those of sources this tracker calls scanners.
//!
//! Memory: at most `MAX_SCAN_SOURCES` sources with failed attempts are tracked, and
//! `MAX_SCAN_TARGETS` distinct (host, port) targets per source; beyond them counts stop growing
//! (a scan is recognised long before).

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::{ConnState, FlowSummary, FrameRef};
use crate::time::{human_duration, Timestamp};
use rustc_hash::{FxHashMap, FxHashSet};
use std::net::{IpAddr, SocketAddr};

/// Sources with failed attempts tracked at most.
pub const MAX_SCAN_SOURCES: usize = 10_000;
/// Distinct (host, port) targets remembered per source (a full port sweep of one host fits).
pub const MAX_SCAN_TARGETS: usize = 70_000;
/// Share of a scanner's attempts, in ‰, that were refused or unanswered ("nearly all").
pub const SCAN_FAILED_PERMILLE: u64 = 900;
/// Open ports named in the verdict at most.
const MAX_OPEN_LISTED: usize = 8;

/// Whether `f` is a probe: an attempt that carried no payload either way.
pub fn is_probe(f: &FlowSummary) -> bool {
    f.syn_count > 0 && !f.partial && f.orig_stats.bytes == 0 && f.resp_stats.bytes == 0
}

fn failed(f: &FlowSummary) -> bool {
    f.conn_state == ConnState::REJ || super::syn_unanswered::is_unanswered_attempt(f)
}

#[derive(Clone, Default)]
struct Source {
    failed: u64,
    refused: u64,
    /// Attempts that got a SYN-ACK (or data).
    answered: u64,
    first: Option<FrameRef>,
    last: Option<FrameRef>,
    targets: FxHashSet<SocketAddr>,
    open: Vec<SocketAddr>,
}

/// What the tracker decided about one scanning source.
#[derive(Clone, Debug)]
pub struct Scan {
    pub source: IpAddr,
    /// When the scan started and ended (first and last failed attempt).
    pub start: Timestamp,
    pub end: Timestamp,
}

/// Counts failed attempts per source, to recognise scans at the end of the capture.
#[derive(Clone, Default)]
pub struct ScanTracker {
    sources: FxHashMap<IpAddr, Source>,
}

impl ScanTracker {
    pub fn observe(&mut self, f: &FlowSummary) {
        if f.syn_count == 0 || f.partial {
            return;
        }
        let ip = f.orig.ip();
        if !failed(f) {
            // Only sources that already failed somewhere are worth counting successes for.
            if let Some(s) = self.sources.get_mut(&ip) {
                s.answered += 1;
                if is_probe(f) {
                    // An open port the scan found is one of its targets too.
                    if s.targets.len() < MAX_SCAN_TARGETS {
                        s.targets.insert(f.resp);
                    }
                    if s.open.len() < MAX_OPEN_LISTED && !s.open.contains(&f.resp) {
                        s.open.push(f.resp);
                    }
                }
            }
            return;
        }
        if self.sources.len() >= MAX_SCAN_SOURCES && !self.sources.contains_key(&ip) {
            return;
        }
        let s = self.sources.entry(ip).or_default();
        s.failed += 1;
        if f.conn_state == ConnState::REJ {
            s.refused += 1;
        }
        let at = f.first_syn.unwrap_or(f.first);
        if s.first.is_none_or(|x| at.ts < x.ts) {
            s.first = Some(at);
        }
        if s.last.is_none_or(|x| at.ts >= x.ts) {
            s.last = Some(at);
        }
        if s.targets.len() < MAX_SCAN_TARGETS {
            s.targets.insert(f.resp);
        }
    }

    /// The scanning sources and one info finding for each.
    pub fn scans(&self, th: &Thresholds) -> Vec<(Scan, Finding)> {
        let mut out = Vec::new();
        let mut ips: Vec<&IpAddr> = self.sources.keys().collect();
        ips.sort();
        for ip in ips {
            let s = &self.sources[ip];
            let (Some(first), Some(last)) = (s.first, s.last) else {
                continue;
            };
            let total = s.failed + s.answered;
            if s.failed * 1000 < total * SCAN_FAILED_PERMILLE
                || last.ts.nanos_since(first.ts) > th.scan_window.nanos()
            {
                continue;
            }
            // Widest fan-out: ports on one host (vertical) or hosts on one port (horizontal).
            let mut ports: FxHashMap<IpAddr, u64> = FxHashMap::default();
            let mut hosts: FxHashMap<u16, u64> = FxHashMap::default();
            for t in &s.targets {
                *ports.entry(t.ip()).or_default() += 1;
                *hosts.entry(t.port()).or_default() += 1;
            }
            let (v_host, v_n) = ports
                .iter()
                .max_by_key(|(h, n)| (**n, std::cmp::Reverse(**h)))
                .map(|(h, n)| (*h, *n))
                .unwrap_or((*ip, 0));
            let (h_port, h_n) = hosts
                .iter()
                .max_by_key(|(p, n)| (**n, std::cmp::Reverse(**p)))
                .map(|(p, n)| (*p, *n))
                .unwrap_or((0, 0));
            let min = th.scan_min_targets as u64;
            if v_n < min && h_n < min {
                continue;
            }
            // The verdict's "server": the scanned host (port 0 = many ports), or the scanned
            // port on the unspecified address (many hosts).
            let (server, what) = if v_n >= h_n {
                (
                    SocketAddr::new(v_host, 0),
                    format!("{} ports of {}", v_n, v_host),
                )
            } else {
                let any: IpAddr = if ip.is_ipv4() {
                    std::net::Ipv4Addr::UNSPECIFIED.into()
                } else {
                    std::net::Ipv6Addr::UNSPECIFIED.into()
                };
                (
                    SocketAddr::new(any, h_port),
                    format!("port {} on {} hosts", h_port, h_n),
                )
            };
            let span = last.ts.nanos_since(first.ts);
            let open: Vec<String> = s.open.iter().map(|a| a.to_string()).collect();
            let note = format!(
                "{} probed {} in {}: {} refused, {} unanswered, {} answered{}",
                ip,
                what,
                human_duration(span),
                s.refused,
                s.failed - s.refused,
                s.answered,
                if open.is_empty() {
                    String::new()
                } else {
                    format!(" ({})", open.join(", "))
                }
            );
            let mut ev = vec![Evidence {
                frame: first,
                kind: EvidenceKind::Syn,
                description: format!("first SYN of the scan from {}", ip),
            }];
            if last != first {
                ev.push(Evidence {
                    frame: last,
                    kind: EvidenceKind::Syn,
                    description: format!("last refused or unanswered SYN from {}", ip),
                });
            }
            let mut facts: Vec<(&'static str, super::Fact)> = vec![
                ("targets", s.targets.len().into()),
                ("refused", s.refused.into()),
                ("unanswered", (s.failed - s.refused).into()),
                ("answered", s.answered.into()),
                ("scope", what.into()),
            ];
            if !open.is_empty() {
                facts.push(("open", open.join(", ").into()));
            }
            out.push((
                Scan {
                    source: *ip,
                    start: first.ts,
                    end: last.ts,
                },
                Finding {
                    signature: SignatureId::PortScan,
                    severity: Severity::Info,
                    client: *ip,
                    server,
                    flow: None,
                    weight: total,
                    first_ts: first.ts,
                    last_ts: last.ts,
                    note,
                    evidence: ev,
                    facts,
                },
            ));
        }
        out
    }
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let mut w = super::Words::default();
    let af = if a.client.is_ipv4() { "ip" } else { "ipv6" };
    let fact = |k: &str| a.text(k).unwrap_or_default();
    let scope = fact("scope");
    w.summary = format!(
        "{} scanned {} ({} attempts, {} refused, {} unanswered): a port scan, not an outage; its attempts are not reported as connection-refused or syn-unanswered",
        a.client,
        scope,
        a.flow_count,
        fact("refused"),
        fact("unanswered")
    );
    w.likely_causes = vec![
        format!(
            "{} ran a port scanner (nmap, masscan, a security or inventory scan)",
            a.client
        ),
        "a misbehaving client probing every port (a service discovery or health-check bug)".into(),
    ];
    w.next_checks = vec![
        format!(
            "whether {} is expected to scan (security team, monitoring)",
            a.client
        ),
        "whether the open ports it found should be reachable from there (firewall rules)".into(),
    ];
    w.wireshark_filter = format!(
        "{af}.src=={} && tcp.flags.syn==1 && tcp.flags.ack==0",
        a.client
    );
    w
}
