//! Capture artefacts as report warnings: about how the capture was taken, never outages.
//!
//! Two sources: connection-level artefacts counted while connections finish (picked up
//! mid-stream, ended before an answer could come, one direction missing, a request still
//! pending) and the capture-level `pipeline::Artefact`s (snaplen, truncated file, time gaps, …).

use crate::app::AppSummary;
use crate::flow::{FlowSummary, FrameRef};
use crate::pipeline::CaptureSummary;
use crate::signature::Thresholds;
use crate::time::human_duration;
use crate::verdict::Verdict;
use serde::Serialize;

/// Example frames kept per warning.
const MAX_WARNING_FRAMES: usize = 5;

/// A capture artefact: something about how the capture was taken, never an outage.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    /// Stable kind: `partial-flow`, `capture-ended-early`, `request-pending`,
    /// `one-direction-only`, `snaplen`, `file-truncated`, `malformed`, `ip-fragments`,
    /// `time-reversal`, `time-gap` (merged files far apart in time), `clock-offset`,
    /// `connection-cap` (`--max-connections` reached), the other caps (`request-cap`,
    /// `endpoint-cap`, `note-cap`, `evidence-cap`), `rst-outside-window`,
    /// `retransmission-inconsistency`, `http-unparsed`, `record-length`, and in live mode
    /// `kernel-drops` and `ring-overwritten` (`--write` with `-W`).
    pub kind: &'static str,
    pub message: String,
    pub count: u64,
    /// Example frames (first frame of the connections concerned).
    pub frames: Vec<FrameRef>,
}

#[derive(Clone, Default)]
pub(crate) struct WarnAcc {
    count: u64,
    frames: Vec<FrameRef>,
    detail: Option<String>,
}

impl WarnAcc {
    pub(crate) fn add(&mut self, fr: FrameRef, detail: impl FnOnce() -> String) {
        self.add_n(1, fr, detail)
    }

    /// Counts `n` occurrences at once (e.g. the RSTs of one connection).
    pub(crate) fn add_n(&mut self, n: u64, fr: FrameRef, detail: impl FnOnce() -> String) {
        self.count += n;
        if self.frames.len() < MAX_WARNING_FRAMES {
            self.frames.push(fr);
        }
        if self.detail.is_none() {
            self.detail = Some(detail());
        }
    }
}

/// Connection-level artefacts counted while connections finish.
#[derive(Clone, Default)]
pub(crate) struct ConnectionArtefacts {
    pub partial: WarnAcc,
    pub one_direction: WarnAcc,
    pub ended_early: WarnAcc,
    pub tls_ended_early: WarnAcc,
    pub request_pending: WarnAcc,
    /// RSTs outside the receiver's window (RFC 5961), not counted as resets.
    pub rst_outside: WarnAcc,
    /// Retransmissions whose bytes differ from the original.
    pub inconsistent: WarnAcc,
    /// HTTP connections whose parser stopped (unparsable, over a cap): what they said later is
    /// not known.
    pub http_unparsed: WarnAcc,
    /// Requests beyond `TrackerConfig::max_pending_requests` (one example per connection).
    pub request_cap: WarnAcc,
}

impl ConnectionArtefacts {
    /// The artefacts a finished connection shows whatever the rules say of it: RSTs outside
    /// the window, inconsistent retransmissions, the HTTP parser stopping, the pending-request
    /// cap.
    pub fn observe(&mut self, f: &FlowSummary, app: &AppSummary) {
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
    }

    /// The report's warnings: connection-level ones first, then the capture-level ones.
    pub fn into_warnings(self, th: &Thresholds, capture: &CaptureSummary) -> Vec<Warning> {
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
        push("partial-flow", self.partial, &|n, d| {
            format!("{} connection{} already open when the capture began (no handshake seen; originator guessed), e.g. {}", n, s(n, " was", "s were"), d)
        });
        push("capture-ended-early", self.ended_early, &|n, d| {
            format!(
                "{} connection attempt{} still waiting for an answer when the capture ended (inconclusive, not reported as syn-unanswered; --syn-timeout {}), e.g. {}",
                n,
                s(n, " was", "s were"),
                human_duration(th.syn_timeout.nanos()),
                d
            )
        });
        push("capture-ended-early", self.tls_ended_early, &|n, d| {
            format!("{} TLS handshake{} still waiting for a ServerHello when the capture ended (inconclusive, not reported as tls-stall), e.g. {}", n, s(n, " was", "s were"), d)
        });
        push("request-pending", self.request_pending, &|n, d| {
            format!(
                "{} HTTP request{} still waiting for a response when the capture ended, for less than --response-timeout {} (pending, not reported as upstream-timeout), e.g. {}",
                n,
                s(n, " was", "s were"),
                human_duration(th.response_timeout.nanos()),
                d
            )
        });
        let pending_cap = capture.max_pending_requests;
        push("rst-outside-window", self.rst_outside, &|n, d| {
            format!("{} RST segment{} outside the receiver's window (RFC 5961: the receiver drops such a RST) and {} not counted as {}: possibly spoofed or injected by a middlebox, e.g. {}", n, s(n, " was", "s were"), s(n, "was", "were"), s(n, "a reset", "resets"), d)
        });
        push(
            "retransmission-inconsistency",
            self.inconsistent,
            &|n, d| {
                format!("{} retransmission{} carried bytes different from the original segment (same sequence number and length): the receiver kept one version and the capture cannot tell which, so the application data shown may not be what the receiver got (evasion, a faulty middlebox or NIC), e.g. {}", n, s(n, "", "s"), d)
            },
        );
        push("http-unparsed", self.http_unparsed, &|n, d| {
            format!("{} HTTP connection{} could not be followed to the end (the parser stopped), so {} later requests and responses are not judged, e.g. {}", n, s(n, "", "s"), s(n, "its", "their"), d)
        });
        push("request-cap", self.request_cap, &|n, d| {
            format!("{} pipelined HTTP request{} arrived while {} requests were already waiting for a response on the same connection (the per-connection cap, max_pending_requests): counted but not paired with responses, e.g. {}", n, s(n, "", "s"), pending_cap, d)
        });
        push("one-direction-only", self.one_direction, &|n, d| {
            format!("{} connection{} only one direction: the capture missed the other (asymmetric routing, `tcpdump -Q`, or a filter), e.g. {}", n, s(n, " shows", "s show"), d)
        });
        for a in capture.artefacts() {
            warnings.push(Warning {
                kind: a.kind(),
                message: a.to_string(),
                count: a.count(),
                frames: Vec::new(),
            });
        }
        warnings
    }
}

/// Why a capture with no TCP connection has nothing to judge.
pub(crate) fn nothing_to_judge(c: &CaptureSummary, connections: u64) -> Option<String> {
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

/// The report-level caps that were hit, one warning each with its counts: endpoints tracked
/// (`Thresholds::max_endpoints`), notes per verdict (`Thresholds::max_notes`), evidence frames
/// per verdict (`--max-evidence`). (The connection table's cap is a capture artefact from the
/// pipeline; the pending-request cap is counted per connection.)
pub(crate) fn cap_warnings(
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::FileInfo;
    use crate::flow::testkit::fr;
    use crate::time::NANOS_PER_SEC;

    fn warnings(c: &CaptureSummary) -> Vec<Warning> {
        ConnectionArtefacts::default().into_warnings(&Thresholds::default(), c)
    }

    #[test]
    fn time_gap_is_its_own_warning_kind() {
        let w = warnings(&CaptureSummary {
            files: vec![
                FileInfo {
                    path: "a.pcap".into(),
                    first_ts: Some(fr(1).ts),
                    last_ts: Some(fr(2).ts),
                    ..Default::default()
                },
                FileInfo {
                    path: "b.pcap".into(),
                    first_ts: Some(fr(1).ts.add_nanos(7200 * NANOS_PER_SEC)),
                    last_ts: Some(fr(2).ts.add_nanos(7200 * NANOS_PER_SEC)),
                    ..Default::default()
                },
            ],
            ..Default::default()
        });
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, "time-gap");
        assert!(
            w[0].message.contains("start 1h59m after the end of a.pcap"),
            "{}",
            w[0].message
        );
        assert_eq!(w[0].count, 1);
    }

    #[test]
    fn each_capture_artefact_keeps_its_kind_and_count() {
        // The kind comes from the artefact's type, not from its words: a full connection table
        // was once reported as `malformed` because its sentence matched no keyword.
        let mut c = CaptureSummary {
            max_connections: 1000,
            time_reversals: 3,
            ..Default::default()
        };
        c.table.evicted = 42;
        c.table.evictions = 2;
        c.skipped.malformed = 5;
        c.skipped.ip_fragment = 7;
        let w = warnings(&c);
        let got: Vec<(&str, u64)> = w.iter().map(|w| (w.kind, w.count)).collect();
        assert_eq!(
            got,
            vec![
                ("malformed", 5),
                ("ip-fragments", 7),
                ("connection-cap", 42),
                ("time-reversal", 3)
            ]
        );
        assert!(w[2].message.contains("1000 connections at once"));
    }

    #[test]
    fn connection_artefacts_come_first_with_their_examples() {
        let mut a = ConnectionArtefacts::default();
        for n in 1..=7 {
            a.partial.add(fr(n), || format!("conn {}", n));
        }
        let w = a.into_warnings(&Thresholds::default(), &CaptureSummary::default());
        assert_eq!(w.len(), 1);
        assert_eq!(w[0].kind, "partial-flow");
        assert_eq!(w[0].count, 7);
        // Five example frames at most, the first detail kept.
        assert_eq!(w[0].frames.len(), 5);
        assert!(w[0].message.contains("7 connections were already open"));
        assert!(w[0].message.ends_with("e.g. conn 1"), "{}", w[0].message);
    }

    #[test]
    fn nothing_to_judge_says_why() {
        let mut c = CaptureSummary {
            frames: 10,
            ..Default::default()
        };
        assert!(nothing_to_judge(&c, 1).is_none());
        assert!(nothing_to_judge(&c, 0)
            .unwrap()
            .contains("the filter matched 0 of 10 packets"));
        c.frames_matched = 10;
        c.skipped.tunnelled = 4;
        assert!(nothing_to_judge(&c, 0)
            .unwrap()
            .contains("4 of 10 packets are UDP tunnels"));
        c.skipped.tunnelled = 0;
        c.tcp_segments = 3;
        assert!(nothing_to_judge(&c, 0)
            .unwrap()
            .contains("3 TCP segments but no connection"));
    }
}
