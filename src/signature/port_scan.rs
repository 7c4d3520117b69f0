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
//! (a scan is recognised long before). Successes of sources that have not failed (yet) are held
//! for `RECENT_NS` of capture time only (at most `MAX_RECENT` sources): connections finish in an
//! order the tracker's timeouts decide (a completed close within milliseconds, a refused one
//! after `closed_timeout`), so a source's success can arrive before its earlier failures.

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
/// How long (capture time) successes of a source with no failure yet are held, waiting for its
/// failures to arrive: longer than any connection finishes after another that ended before it
/// (`closed_timeout`, 2 s).
pub const RECENT_NS: i64 = 10 * crate::time::NANOS_PER_SEC;
/// Sources with successes and no failure held at most.
pub const MAX_RECENT: usize = 65_536;

/// Whether `f` is a probe: an attempt that carried no payload either way.
pub fn is_probe(f: &FlowSummary) -> bool {
    f.syn_count > 0 && !f.partial && f.orig_stats.bytes == 0 && f.resp_stats.bytes == 0
}

fn failed(f: &FlowSummary) -> bool {
    f.conn_state == ConnState::REJ || super::syn_unanswered::is_unanswered_attempt(f)
}

impl Source {
    /// An attempt of this source that was answered (`probe`: without payload).
    fn success(&mut self, to: SocketAddr, probe: bool) {
        self.answered += 1;
        if probe {
            self.open_port(to);
        }
    }

    /// An open port the scan found: one of its targets too.
    fn open_port(&mut self, to: SocketAddr) {
        if self.targets.len() < MAX_SCAN_TARGETS {
            self.targets.insert(to);
        }
        if self.open.len() < MAX_OPEN_LISTED && !self.open.contains(&to) {
            self.open.push(to);
        }
    }
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
    /// Successes of sources not in `sources`, by source: (answered, the probes' targets (a
    /// few), when the last one started).
    recent: FxHashMap<IpAddr, (u64, Vec<SocketAddr>, Timestamp)>,
    recent_prune_at: usize,
}

impl ScanTracker {
    pub fn observe(&mut self, f: &FlowSummary) {
        if f.syn_count == 0 || f.partial {
            return;
        }
        let ip = f.orig.ip();
        if !failed(f) {
            // Only sources that failed somewhere are worth counting successes for; others wait
            // a little, in case their failures are still to come.
            match self.sources.get_mut(&ip) {
                Some(s) => s.success(f.resp, is_probe(f)),
                None => self.hold_success(ip, f),
            }
            return;
        }
        if self.sources.len() >= MAX_SCAN_SOURCES && !self.sources.contains_key(&ip) {
            return;
        }
        let s = self.sources.entry(ip).or_insert_with(|| {
            let mut s = Source::default();
            if let Some((answered, probes, _)) = self.recent.remove(&ip) {
                s.answered = answered;
                for t in probes {
                    s.open_port(t);
                }
            }
            s
        });
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

    /// Holds a success of `ip`, which has no failure yet (see `RECENT_NS`).
    fn hold_success(&mut self, ip: IpAddr, f: &FlowSummary) {
        let now = f.start;
        if self.recent.len() >= self.recent_prune_at.max(1024) {
            self.recent.retain(|_, r| now.nanos_since(r.2) < RECENT_NS);
            self.recent_prune_at = 2 * self.recent.len();
        }
        if self.recent.len() >= MAX_RECENT && !self.recent.contains_key(&ip) {
            return;
        }
        let r = self.recent.entry(ip).or_insert((0, Vec::new(), now));
        r.0 += 1;
        r.2 = r.2.max(now);
        if is_probe(f) && r.1.len() < MAX_OPEN_LISTED && !r.1.contains(&f.resp) {
            r.1.push(f.resp);
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

#[cfg(test)]
mod tests {
    //! The tracker on hand-built attempts from the scanner 10.0.0.66 (the thresholds as seen
    //! through the whole analysis are tested in `analyze`); frame n is at n ms after T0.

    use super::*;
    use crate::flow::testkit::{established, fr};
    use crate::signature::{test_aggregate, Aggregate, Fact};

    const SCANNER: &str = "10.0.0.66";

    /// An attempt from the scanner to `target` with its SYN at frame `at`.
    fn attempt(target: &str, at: u64) -> FlowSummary {
        established(at, &format!("{}:40000", SCANNER), target, at, at + 1)
    }

    fn refused(target: &str, at: u64) -> FlowSummary {
        let mut f = attempt(target, at);
        f.conn_state = ConnState::REJ;
        f.synack = None;
        f.resp_stats.pkts = 1;
        f
    }

    fn unanswered(target: &str, at: u64) -> FlowSummary {
        let mut f = attempt(target, at);
        f.conn_state = ConnState::S0;
        f.history = "S".into();
        f.synack = None;
        f
    }

    /// An attempt answered by a SYN-ACK and dropped without payload (an open port found).
    fn open(target: &str, at: u64) -> FlowSummary {
        let mut f = attempt(target, at);
        f.resp_stats.pkts = 1;
        f
    }

    fn scans(t: &ScanTracker) -> Vec<(Scan, Finding)> {
        t.scans(&Thresholds::default())
    }

    fn fact(fd: &Finding, k: &str) -> Option<Fact> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.clone())
    }

    #[test]
    fn a_probe_carries_no_payload_and_has_a_syn() {
        assert!(is_probe(&open("10.0.0.2:80", 1)));
        let mut f = open("10.0.0.2:80", 1);
        f.orig_stats.bytes = 1;
        assert!(!is_probe(&f));
        let mut f = open("10.0.0.2:80", 1);
        f.resp_stats.bytes = 1;
        assert!(!is_probe(&f));
        let mut f = open("10.0.0.2:80", 1);
        f.partial = true;
        assert!(!is_probe(&f));
        let mut f = open("10.0.0.2:80", 1);
        f.syn_count = 0;
        assert!(!is_probe(&f));
    }

    #[test]
    fn a_vertical_scan_is_one_info_finding_with_its_counts() {
        let mut t = ScanTracker::default();
        for p in 1..=12u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", p), 100 + p));
        }
        for p in 13..=20u64 {
            t.observe(&unanswered(&format!("10.0.0.2:{}", p), 100 + p));
        }
        t.observe(&open("10.0.0.2:22", 50));
        t.observe(&open("10.0.0.2:22", 300));
        let out = scans(&t);
        assert_eq!(out.len(), 1);
        let (scan, fd) = &out[0];
        assert_eq!(scan.source, SCANNER.parse::<IpAddr>().unwrap());
        assert_eq!((scan.start, scan.end), (fr(101).ts, fr(120).ts));
        assert_eq!(
            (fd.signature, fd.severity),
            (SignatureId::PortScan, Severity::Info)
        );
        assert_eq!(fd.server, "10.0.0.2:0".parse().unwrap());
        assert_eq!(fd.weight, 22);
        assert_eq!(
            fd.note,
            "10.0.0.66 probed 21 ports of 10.0.0.2 in 19.0ms: 12 refused, 8 unanswered, 2 answered (10.0.0.2:22)"
        );
        assert_eq!(fact(fd, "targets"), Some(Fact::Count(21)));
        assert_eq!(fact(fd, "refused"), Some(Fact::Count(12)));
        assert_eq!(fact(fd, "unanswered"), Some(Fact::Count(8)));
        assert_eq!(fact(fd, "answered"), Some(Fact::Count(2)));
        assert_eq!(fact(fd, "open"), Some(Fact::from("10.0.0.2:22")));
        let frames: Vec<u64> = fd.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(frames, vec![101, 120]);
    }

    #[test]
    fn a_horizontal_scan_names_the_port_on_the_unspecified_address() {
        let mut t = ScanTracker::default();
        for h in 1..=20u64 {
            t.observe(&unanswered(&format!("10.0.1.{}:445", h), 10 + h));
        }
        let out = scans(&t);
        let fd = &out[0].1;
        assert_eq!(fd.server, "0.0.0.0:445".parse().unwrap());
        assert_eq!(fact(fd, "scope"), Some(Fact::from("port 445 on 20 hosts")));
        assert_eq!(fact(fd, "open"), None);
        assert!(fd.note.ends_with(": 0 refused, 20 unanswered, 0 answered"));
    }

    #[test]
    fn as_many_ports_as_hosts_is_called_vertical_and_ties_pick_the_lowest() {
        // 20 ports on 10.0.0.3, 20 ports on 10.0.0.2, and port 1..20 on both: vertical wins the
        // tie of fan-outs, the lower address the tie of hosts.
        let mut t = ScanTracker::default();
        for p in 1..=20u64 {
            t.observe(&refused(&format!("10.0.0.3:{}", p), p));
            t.observe(&refused(&format!("10.0.0.2:{}", p), 100 + p));
        }
        let fd = &scans(&t)[0].1;
        assert_eq!(fd.server, "10.0.0.2:0".parse().unwrap());
        // One port of 20 hosts and 20 ports of one host... plus a lower port with as many hosts.
        let mut t = ScanTracker::default();
        for h in 1..=21u64 {
            t.observe(&refused(&format!("10.0.1.{}:446", h), h));
            t.observe(&refused(&format!("10.0.1.{}:445", h), 100 + h));
        }
        let fd = &scans(&t)[0].1;
        assert_eq!(fd.server, "0.0.0.0:445".parse().unwrap());
    }

    #[test]
    fn a_single_attempt_scan_window_shows_one_frame_and_order_does_not_matter() {
        let mut t = ScanTracker::default();
        // Observed out of time order (connections finish in any order); equal times too.
        for (p, at) in [(5u64, 30u64), (6, 10), (7, 10), (8, 50), (9, 50)] {
            t.observe(&refused(&format!("10.0.0.2:{}", p), at));
        }
        for p in 10..25u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", p), 20));
        }
        let (scan, fd) = &scans(&t)[0];
        assert_eq!((scan.start, scan.end), (fr(10).ts, fr(50).ts));
        // The first of the earliest, the last of the latest.
        let ids: Vec<u64> = fd.evidence.iter().map(|e| e.frame.number).collect();
        assert_eq!(ids, vec![10, 50]);
        // All at one instant: one evidence frame.
        let mut t = ScanTracker::default();
        for p in 1..=20u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", p), 7));
        }
        assert_eq!(scans(&t)[0].1.evidence.len(), 1);
    }

    #[test]
    fn the_window_and_failure_share_are_inclusive_boundaries() {
        let th = Thresholds::default();
        let window_ms = th.scan_window.nanos() / 1_000_000;
        // 20 refusals spanning exactly the window: a scan; 1 ms more: not.
        for (span, scan) in [(window_ms as u64, true), (window_ms as u64 + 1, false)] {
            let mut t = ScanTracker::default();
            for p in 1..=19u64 {
                t.observe(&refused(&format!("10.0.0.2:{}", p), p));
            }
            t.observe(&refused("10.0.0.2:20", 1 + span));
            assert_eq!(!scans(&t).is_empty(), scan, "span {} ms", span);
        }
        // 90 % failed: a scan; below: not.
        for (answered, scan) in [(2u64, true), (3, false)] {
            let mut t = ScanTracker::default();
            for p in 1..=18u64 {
                t.observe(&refused(&format!("10.0.0.2:{}", p), p));
            }
            for p in 0..answered {
                t.observe(&open(&format!("10.0.0.2:{}", 100 + p), 50));
            }
            // With 2 answered: 18 failed of 20 = 900 ‰; with 3: 18 of 21.
            let out = scans(&t);
            assert_eq!(!out.is_empty(), scan, "{} answered", answered);
        }
    }

    #[test]
    fn successes_of_sources_that_never_failed_are_not_tracked() {
        let mut t = ScanTracker::default();
        for p in 1..=25u64 {
            t.observe(&open(&format!("10.0.0.2:{}", p), p));
        }
        assert!(scans(&t).is_empty());
        // Attempts without SYN or partial ones do not count.
        let mut t = ScanTracker::default();
        for p in 1..=20u64 {
            let mut f = refused(&format!("10.0.0.2:{}", p), p);
            if p % 2 == 0 {
                f.syn_count = 0;
            } else {
                f.partial = true;
            }
            t.observe(&f);
        }
        assert!(scans(&t).is_empty());
    }

    /// A completed close finishes within milliseconds, a refused attempt after
    /// `closed_timeout`: a scanner's open port can arrive before the refusals around it.
    #[test]
    fn successes_arriving_before_the_failures_still_count() {
        let mut t = ScanTracker::default();
        t.observe(&open("10.0.0.2:80", 5));
        t.observe(&open("10.0.0.2:80", 6));
        t.observe(&open("10.0.0.2:443", 7));
        for p in 1..=30u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", 1000 + p), p));
        }
        let v = scans(&t);
        assert_eq!(v.len(), 1);
        let fd = &v[0].1;
        assert_eq!(fact(fd, "answered"), Some(Fact::Count(3)));
        assert_eq!(fact(fd, "targets"), Some(Fact::Count(32)));
        assert!(fact(fd, "open")
            .unwrap()
            .to_string()
            .contains("10.0.0.2:443"));
        // Held only for `RECENT_NS`: a success long before the first failure is not counted.
        let mut t = ScanTracker::default();
        t.observe(&open("10.0.0.2:80", 5));
        for i in 0..1024u32 {
            let mut f = open("10.0.0.9:80", 0);
            f.orig = SocketAddr::new(
                IpAddr::from(std::net::Ipv4Addr::from(0x0a01_0000 + i)),
                40000,
            );
            f.start = Timestamp(f.start.0 + RECENT_NS + 1_000_000_000);
            t.observe(&f);
        }
        let mut late = refused("10.0.0.2:1001", 0);
        late.start = Timestamp(late.start.0 + RECENT_NS + 1_000_000_000);
        t.observe(&late);
        assert_eq!(t.sources[&late.orig.ip()].answered, 0);
    }

    #[test]
    fn open_ports_are_listed_once_and_capped() {
        let mut t = ScanTracker::default();
        // 200 refused and 18 answered: 917 ‰ failed.
        for p in 1..=200u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", 1000 + p), p));
        }
        for p in 1..=(MAX_OPEN_LISTED as u64 + 1) {
            t.observe(&open(&format!("10.0.0.2:{}", p), 40));
            t.observe(&open(&format!("10.0.0.2:{}", p), 41));
        }
        let fd = &scans(&t)[0].1;
        let listed = fact(fd, "open").unwrap().to_string();
        assert_eq!(listed.split(", ").count(), MAX_OPEN_LISTED);
        assert!(listed.starts_with("10.0.0.2:1, 10.0.0.2:2,"));
        // Open ports count as targets (200 refused + 9 open).
        assert_eq!(fact(fd, "targets"), Some(Fact::Count(209)));
    }

    #[test]
    fn targets_beyond_the_cap_are_not_counted() {
        let mut t = ScanTracker::default();
        let template = refused("10.0.0.2:1", 1);
        let target = |i: u32| {
            SocketAddr::new(
                std::net::Ipv4Addr::from(0x0a01_0000 + i / 1000).into(),
                1 + (i % 1000) as u16,
            )
        };
        for i in 0..MAX_SCAN_TARGETS as u32 {
            let mut f = template.clone();
            f.resp = target(i);
            t.observe(&f);
        }
        // A further refused target and a further open port: counted as attempts, not targets.
        let mut f = template.clone();
        f.resp = target(MAX_SCAN_TARGETS as u32);
        t.observe(&f);
        let mut f = open("10.0.0.2:1", 2);
        f.resp = target(MAX_SCAN_TARGETS as u32 + 1);
        t.observe(&f);
        let fd = &scans(&t)[0].1;
        assert_eq!(
            fact(fd, "targets"),
            Some(Fact::Count(MAX_SCAN_TARGETS as u64))
        );
        assert_eq!(fd.weight, MAX_SCAN_TARGETS as u64 + 2);
    }

    #[test]
    fn sources_beyond_the_cap_are_not_tracked() {
        let mut t = ScanTracker::default();
        t.observe(&refused("10.0.0.2:1", 1));
        for i in 1..MAX_SCAN_SOURCES as u32 {
            let mut f = refused("10.0.0.2:1", 1);
            f.orig = SocketAddr::new(std::net::Ipv4Addr::from(0x0d00_0000 + i).into(), 40000);
            t.observe(&f);
        }
        for p in 2..=20u64 {
            t.observe(&refused(&format!("10.0.0.2:{}", p), p));
            let mut f = refused(&format!("10.0.0.2:{}", p), p);
            f.orig = "10.0.0.67:40000".parse().unwrap();
            t.observe(&f);
        }
        let sources: Vec<IpAddr> = scans(&t).iter().map(|s| s.0.source).collect();
        assert_eq!(sources, vec![SCANNER.parse::<IpAddr>().unwrap()]);
    }

    #[test]
    fn words_name_the_scanner_and_its_scope() {
        let facts = [
            ("scope", Fact::from("21 ports of 10.0.0.2")),
            ("refused", Fact::Count(12)),
            ("unanswered", Fact::Count(8)),
        ];
        let w = words(&Aggregate {
            client: SCANNER.parse().unwrap(),
            facts: &facts,
            ..test_aggregate(SignatureId::PortScan, "10.0.0.2:0", 22, 22)
        });
        assert!(w.summary.starts_with("10.0.0.66 scanned 21 ports of 10.0.0.2 (22 attempts, 12 refused, 8 unanswered): a port scan, not an outage"));
        assert!(w.likely_causes[0].starts_with("10.0.0.66 ran a port scanner"));
        assert!(w.next_checks[0].contains("whether 10.0.0.66 is expected"));
        assert_eq!(
            w.wireshark_filter,
            "ip.src==10.0.0.66 && tcp.flags.syn==1 && tcp.flags.ack==0"
        );
        let w = words(&Aggregate {
            client: "fd00::66".parse().unwrap(),
            ..test_aggregate(SignatureId::PortScan, "[fd00::2]:0", 1, 1)
        });
        assert_eq!(
            w.wireshark_filter,
            "ipv6.src==fd00::66 && tcp.flags.syn==1 && tcp.flags.ack==0"
        );
    }
}
