//! Capture artefacts as report warnings: about how the capture was taken, never outages.
//!
//! Two sources: connection-level artefacts counted while connections finish (picked up
//! mid-stream, ended before an answer could come, one direction missing, a request still
//! pending) and the capture-level `pipeline::Artefact`s (snaplen, truncated file, time gaps, …).

use crate::flow::FrameRef;
use crate::pipeline::CaptureSummary;
use crate::signature::Thresholds;
use crate::time::human_duration;
use serde::Serialize;

/// Example frames kept per warning.
const MAX_WARNING_FRAMES: usize = 5;

/// A capture artefact: something about how the capture was taken, never an outage.
#[derive(Clone, Debug, Serialize)]
pub struct Warning {
    /// Stable kind: `partial-flow`, `capture-ended-early`, `request-pending`,
    /// `one-direction-only`, `snaplen`, `file-truncated`, `malformed`, `ip-fragments`,
    /// `time-reversal`, `time-gap` (merged files far apart in time), `clock-offset`,
    /// `table-full` (`--max-connections` reached), and in live mode
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
        self.count += 1;
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
}

impl ConnectionArtefacts {
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
                human_duration(th.syn_timeout_ns),
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
                human_duration(th.response_timeout_ns),
                d
            )
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
                ("table-full", 42),
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
