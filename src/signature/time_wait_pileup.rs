//! `time-wait-pileup`: many actively closed connections held in TIME_WAIT on one host towards one
//! peer endpoint, or a new SYN reusing a 4-tuple still in TIME_WAIT.
//!
//! The side that sends the first FIN (the active closer) holds TIME_WAIT for `time_wait` (Linux:
//! 60 s) after the close. For each (holder address, fixed peer endpoint: the endpoint connected
//! to) this rule counts the **sockets concurrently in TIME_WAIT**: a sweep over the intervals
//! `[close, close + time_wait)`, where a new SYN on the same 4-tuple ends the old interval early
//! (the kernel ended that TIME_WAIT to allow the reuse; the tracker says when the replaced
//! connection closed and which side held it); the peak is the largest number of overlapping
//! intervals, not the number of distinct 4-tuples. Summaries arrive in the order connections
//! finish, not in close order, so closes wait `REORDER_NS` behind the latest close before the
//! sweep applies them (in a sorted FIFO when they arrive in time order or nearly, as they do
//! almost always; in a heap otherwise), and a later one counts from the sweep's time; every
//! TIME_WAIT lasts the same, so the ends of applied closes wait in a FIFO of times, each kept as
//! its 4-byte distance from the one before (`Ends`): memory is about 4 bytes per socket in
//! TIME_WAIT plus the closes of `REORDER_NS`.
//!
//! Reported when the peak reaches `time_wait_threshold` (default 1000), or when a SYN reused a
//! 4-tuple in TIME_WAIT. Ephemeral-port pressure is said only when the holder is the connecting
//! side (its source ports towards that one endpoint; Linux's default range has 28 232 ports): a
//! server's TIME_WAIT sits on its listening port and uses no ephemeral port. Connections closed by
//! RST hold no TIME_WAIT and never count.

use super::{Evidence, EvidenceKind, Finding, Severity, SignatureId, Thresholds};
use crate::flow::{Direction, FlowSummary, FrameRef};
use crate::time::{human_duration, Timestamp, NANOS_PER_SEC};
use crate::topology::Hop;
use rustc_hash::FxHashMap;
use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::net::{IpAddr, SocketAddr};

/// Linux's default ephemeral port range `32768–60999`: the source ports a connecting host can
/// use towards one destination endpoint.
pub const EPHEMERAL_PORTS: u32 = 28_232;
/// (holder, server) groups tracked at most; beyond it closes towards new groups are not counted
/// (bounds memory in a long live run).
pub const MAX_TW_GROUPS: usize = 100_000;
/// Reuse evidence frames kept per group.
const MAX_REUSE_EVIDENCE: usize = 10;

/// Sweep event kinds, in the order they apply at one instant (intervals are half-open: a socket
/// whose TIME_WAIT ends at t is gone before one closed at t arrives).
const END: u8 = 0;
const CLOSE: u8 = 2;
/// A close that arrived after the sweep had passed its time (see `REORDER_NS`): counted from
/// where the sweep is; its `END` is scheduled apart.
const LATE_CLOSE: u8 = 3;

/// How far behind the latest close the sweep stays, waiting for closes that arrive out of order
/// (summaries come when connections are finished: at most `closed_timeout` after their last
/// segment, so a few seconds after their close). A close older than that still counts, from
/// the sweep's time instead of its own.
pub const REORDER_NS: i64 = 10 * NANOS_PER_SEC;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
struct Key {
    /// The active closer (sent the first FIN): it holds TIME_WAIT.
    holder: IpAddr,
    /// The endpoint connected to (fixed across these connections).
    server: SocketAddr,
    /// The holder is the connecting side (it uses an ephemeral port per socket).
    holder_is_client: bool,
}

/// A min-queue for values that arrive nearly in order: they wait in a sorted FIFO (those a little
/// out of order are inserted near its back), only the others pay for the heap.
#[derive(Clone, Debug)]
struct MinQueue<T> {
    fifo: VecDeque<T>,
    heap: BinaryHeap<Reverse<T>>,
}

impl<T> Default for MinQueue<T> {
    fn default() -> Self {
        MinQueue {
            fifo: VecDeque::new(),
            heap: BinaryHeap::new(),
        }
    }
}

/// How far from the back of the FIFO a value slightly out of order is inserted into it (shifting
/// at most this many values) instead of going to the heap: summaries finish a little out of close
/// order all the time (capture B: about a third of the cancelled ends of 4-tuple reuses), and a
/// heap of a minute of them costs a cache miss per level on every pop.
const NEAR_BACK: usize = 16;

impl<T: Ord + Copy> MinQueue<T> {
    fn push(&mut self, x: T) {
        if self.fifo.back().is_none_or(|b| *b <= x) {
            self.fifo.push_back(x);
            return;
        }
        // The FIFO stays sorted: x goes after the last value not above it, if that is near the
        // back.
        let n = self.fifo.len();
        let near = self
            .fifo
            .range(n.saturating_sub(NEAR_BACK)..)
            .rposition(|v| *v <= x);
        match near {
            Some(i) => self.fifo.insert(n.saturating_sub(NEAR_BACK) + i + 1, x),
            None if n <= NEAR_BACK => self.fifo.push_front(x),
            None => self.heap.push(Reverse(x)),
        }
    }

    fn peek(&self) -> Option<T> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(&a), Some(&Reverse(b))) => Some(a.min(b)),
            (a, b) => a.copied().or(b.map(|r| r.0)),
        }
    }

    fn pop(&mut self) -> Option<T> {
        match (self.fifo.front(), self.heap.peek()) {
            (Some(a), Some(Reverse(b))) if b < a => self.heap.pop().map(|r| r.0),
            (Some(_), _) => self.fifo.pop_front(),
            _ => self.heap.pop().map(|r| r.0),
        }
    }

    fn len(&self) -> usize {
        self.fifo.len() + self.heap.len()
    }

    fn is_empty(&self) -> bool {
        self.fifo.is_empty() && self.heap.is_empty()
    }
}

/// Times in non-decreasing order, 4 bytes each: each is kept as its distance from the one before
/// (nanoseconds), and the rare distance of 2^32 - 1 ns (4.3 s) or more, or a time out of order,
/// whole in `far`. A minute of a busy proxy's closes is hundreds of thousands of ends: kept as
/// `i64`s they were the largest piece of `analyze`'s memory on capture B played twice over.
#[derive(Clone, Default)]
struct Ends {
    deltas: VecDeque<u32>,
    far: VecDeque<i64>,
    /// The first and the last time held (when there is one).
    first: i64,
    last: i64,
}

/// In `Ends::deltas`: this time is the next of `far`.
const FAR: u32 = u32::MAX;

impl Ends {
    fn push_back(&mut self, t: i64) {
        if self.deltas.is_empty() {
            self.first = t;
            self.deltas.push_back(0);
        } else {
            match t.checked_sub(self.last).and_then(|d| u32::try_from(d).ok()) {
                Some(d) if d != FAR => self.deltas.push_back(d),
                _ => {
                    self.deltas.push_back(FAR);
                    self.far.push_back(t);
                }
            }
        }
        self.last = t;
    }

    fn front(&self) -> Option<i64> {
        (!self.deltas.is_empty()).then_some(self.first)
    }

    fn pop_front(&mut self) {
        if self.deltas.pop_front() == Some(FAR) {
            self.far.pop_front();
        }
        match self.deltas.front() {
            Some(&FAR) => self.first = *self.far.front().expect("a far time for each mark"),
            Some(&d) => self.first += i64::from(d),
            None => {}
        }
    }

    fn len(&self) -> usize {
        self.deltas.len()
    }
}

/// A sweep event: (time, kind, frame file, frame number).
type Event = (i64, u8, u16, u64);

#[derive(Clone, Default)]
struct Group {
    /// Closes waiting out `REORDER_NS` (nearly all arrive in time order).
    waiting: MinQueue<Event>,
    /// The ends that reuses scheduled (at the reusing SYN): their times only (an end carries no
    /// frame), 8 bytes each rather than an `Event`'s 24. On a busy proxy with a narrow port
    /// range these are a minute of reuses (4 MB on capture B twice over).
    reuse_ends: MinQueue<i64>,
    /// Closes that came after the sweep had passed their time, with their ends.
    late: MinQueue<Event>,
    /// TIME_WAIT ends of the closes applied so far, in time order (every socket holds it for
    /// the same time, and closes are applied in time order): 4 bytes per socket held.
    ends: Ends,
    /// Scheduled ends that a reuse made void (it ended that TIME_WAIT early): 8 bytes each.
    cancelled: MinQueue<i64>,
    /// The sweep has applied every event up to this time.
    applied: i64,
    /// Sockets in TIME_WAIT after the events applied so far.
    held: i64,
    peak: u32,
    peak_at: Timestamp,
    peak_frame: Option<(u16, u64)>,
    closes: u64,
    first_close: Option<Timestamp>,
    last_close: Option<Timestamp>,
    first_start: Option<Timestamp>,
    example: Option<Evidence>,
    reuses: u64,
    reuse_evidence: Vec<Evidence>,
    clients: u64,
    last_client: Option<IpAddr>,
}

impl Group {
    fn unswept() -> Group {
        Group {
            applied: i64::MIN,
            ..Group::default()
        }
    }

    /// A close at `t` (its first FIN's frame): it waits for the sweep, or, when the sweep has
    /// already passed `t`, it is held from the sweep's time to its own end (a TIME_WAIT that
    /// ended before the sweep's time is not counted at all).
    fn close(&mut self, t: i64, time_wait: i64, file: u16, number: u64) {
        let end = t.saturating_add(time_wait);
        if t > self.applied {
            self.waiting.push((t, CLOSE, file, number));
        } else if end > self.applied {
            self.late.push((self.applied, LATE_CLOSE, file, number));
            self.late.push((end, END, 0, 0));
        }
    }

    /// A SYN at `syn` reused the 4-tuple of a TIME_WAIT that was to end at `end`: it ends at the
    /// SYN instead. When the sweep already passed `end` (the reusing connection lived long and
    /// finished late), the past is not revised.
    fn cut_short(&mut self, syn: i64, end: i64) {
        if end > self.applied {
            self.reuse_ends.push(syn);
            self.cancelled.push(end);
        }
    }

    /// Applies the events at or before `upto`, in time order, tracking the peak.
    fn drain(&mut self, upto: i64, time_wait: i64) {
        while self.step(upto, time_wait) {}
        self.applied = self.applied.max(upto);
    }

    /// Applies the remaining events as far as they can still raise the peak (the end of the
    /// capture): once no close waits (`waiting`, `late`), what is left are ends, which only
    /// lower `held`. `held` and `applied` are then not final; the peak, its time and frame are.
    /// In `live` every verdict check drains a copy like this, and the ends of the closes of the
    /// last `time_wait` (on a busy proxy, millions) would otherwise be popped one by one.
    fn drain_for_peak(&mut self, time_wait: i64) {
        while !(self.waiting.is_empty() && self.late.is_empty()) && self.step(i64::MAX, time_wait) {
        }
    }

    /// Applies the earliest event if it is at or before `upto`; false when there is none.
    fn step(&mut self, upto: i64, time_wait: i64) -> bool {
        // The earliest of the four sources; an end goes first at an equal time (`END` sorts
        // first).
        let candidates = [
            self.ends.front().map(|e| (e, END, 0, 0)),
            self.waiting.peek(),
            self.reuse_ends.peek().map(|t| (t, END, 0, 0)),
            self.late.peek(),
        ];
        let Some((source, ev)) = candidates
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.map(|c| (i, c)))
            .min_by_key(|&(_, c)| c)
        else {
            return false;
        };
        let (t, kind, file, number) = ev;
        if t > upto {
            return false;
        }
        match source {
            0 => {
                self.ends.pop_front();
            }
            1 => {
                self.waiting.pop();
            }
            2 => {
                self.reuse_ends.pop();
            }
            _ => {
                self.late.pop();
            }
        }
        self.applied = self.applied.max(t);
        if kind == END {
            // Cancellations of ends that were never scheduled here are dropped.
            while self.cancelled.peek().is_some_and(|c| c < t) {
                self.cancelled.pop();
            }
            if self.cancelled.peek() == Some(t) {
                self.cancelled.pop();
            } else {
                self.held -= 1;
            }
            return true;
        }
        if kind == CLOSE {
            self.ends.push_back(t.saturating_add(time_wait));
        }
        self.held += 1;
        if self.held > self.peak as i64 {
            self.peak = self.held as u32;
            self.peak_at = Timestamp(t);
            self.peak_frame = Some((file, number));
        }
        true
    }
}

#[derive(Clone)]
pub struct TimeWaitTracker {
    th: Thresholds,
    groups: FxHashMap<Key, Group>,
    /// The latest close seen: events more than `REORDER_NS` before it are final.
    latest_close: i64,
}

impl TimeWaitTracker {
    pub fn new(th: Thresholds) -> TimeWaitTracker {
        TimeWaitTracker {
            th,
            groups: FxHashMap::default(),
            latest_close: i64::MIN,
        }
    }

    fn key(f: &FlowSummary, holder_is_client: bool) -> Key {
        Key {
            holder: if holder_is_client {
                f.orig.ip()
            } else {
                f.resp.ip()
            },
            server: f.resp,
            holder_is_client,
        }
    }

    /// A SYN reused a 4-tuple in TIME_WAIT: the kernel ended that TIME_WAIT at the SYN.
    fn reuse(&mut self, f: &FlowSummary) {
        let s = f.start.0;
        let tw = self.th.time_wait.nanos();
        // The tracker says when the old connection closed and which side held TIME_WAIT; it is
        // still held by this rule's clock when it closed less than `time_wait` before the SYN.
        let held = f
            .reused_close
            .filter(|(c, _)| c.0 <= s && s < c.0.saturating_add(tw));
        // Not known (a summary not from the tracker, or a shorter `time_wait` here): count the
        // reuse where the closes are — the client-holder group if there is one, else the
        // server-holder group.
        let holder_is_client = match held {
            Some((_, holder)) => holder == Direction::Orig,
            None => {
                self.groups.contains_key(&Self::key(f, true))
                    || !self.groups.contains_key(&Self::key(f, false))
            }
        };
        let Some(g) = self.groups.get_mut(&Self::key(f, holder_is_client)) else {
            return;
        };
        if let Some((closed, _)) = held {
            g.cut_short(s, closed.0.saturating_add(tw));
        }
        g.reuses += 1;
        // The earliest reuses in the capture (summaries arrive in the order connections finish).
        if let Some(syn) = f.first_syn {
            let key = |e: &Evidence| (e.frame.file, e.frame.number);
            let at = g
                .reuse_evidence
                .partition_point(|e| key(e) < (syn.file, syn.number));
            if at < MAX_REUSE_EVIDENCE {
                g.reuse_evidence.insert(
                    at,
                    Evidence {
                        frame: syn,
                        kind: EvidenceKind::Syn,
                        description: format!(
                            "SYN {} → {} reuses a 4-tuple still in TIME_WAIT",
                            f.orig, f.resp
                        ),
                    },
                );
                g.reuse_evidence.truncate(MAX_REUSE_EVIDENCE);
            }
        }
    }

    /// Groups, events and sockets held (tests: bounded over a long run).
    pub fn retained(&self) -> usize {
        self.groups.len()
            + self
                .groups
                .values()
                .map(|g| {
                    g.ends.len()
                        + g.waiting.len()
                        + g.reuse_ends.len()
                        + g.late.len()
                        + g.cancelled.len()
                })
                .sum::<usize>()
    }

    pub fn observe(&mut self, f: &FlowSummary) {
        if f.reused_in_time_wait {
            self.reuse(f);
        }
        let (Some(closed), None, Some(first)) = (f.closed_at, f.rst, f.first_fin_from) else {
            return;
        };
        let holder_is_client = first == Direction::Orig;
        let key = Self::key(f, holder_is_client);
        let holder = key.holder;
        let tw = self.th.time_wait.nanos();
        let t = closed.0;
        self.latest_close = self.latest_close.max(t);
        let settled = self.latest_close.saturating_sub(REORDER_NS);
        if self.groups.len() >= MAX_TW_GROUPS && !self.groups.contains_key(&key) {
            return;
        }
        let g = self.groups.entry(key).or_insert_with(Group::unswept);
        let fin = f.stats(first).first_fin;
        let (file, number) = fin.map_or((0, 0), |fr| (fr.file, fr.number));
        g.close(t, tw, file, number);
        g.closes += 1;
        if g.last_client != Some(f.orig.ip()) {
            g.clients += 1;
            g.last_client = Some(f.orig.ip());
        }
        g.first_close = Some(g.first_close.map_or(closed, |c| c.min(closed)));
        g.last_close = Some(g.last_close.map_or(closed, |c| c.max(closed)));
        g.first_start = Some(g.first_start.map_or(f.start, |c| c.min(f.start)));
        if g.example.is_none() {
            g.example = fin.map(|fr| Evidence {
                frame: fr,
                kind: EvidenceKind::Fin,
                description: format!(
                    "first FIN from {} (the active closer: it will hold TIME_WAIT)",
                    holder
                ),
            });
        }
        g.drain(settled, tw);
    }

    pub fn findings(self) -> Vec<Finding> {
        let th = self.th;
        let mut out = Vec::new();
        let tw = th.time_wait.nanos();
        for (k, mut g) in self.groups {
            g.drain_for_peak(tw);
            let pileup = g.peak >= th.time_wait_threshold;
            if !pileup && g.reuses == 0 {
                continue;
            }
            let (first, last) = (
                g.first_close.unwrap_or_default(),
                g.last_close.unwrap_or_default(),
            );
            let window_ns = last.nanos_since(first).max(1);
            let rate = g.closes as f64 / (window_ns as f64 / NANOS_PER_SEC as f64).max(1e-3);
            let share = 100.0 * g.peak as f64 / EPHEMERAL_PORTS as f64;
            let mut note = if k.holder_is_client {
                format!(
                    "{} (the connecting side) closes first and holds up to {} sockets in TIME_WAIT towards {} at once, each on one of its ephemeral ports: {:.1}% of the 28 232 ports (32768–60999) it can use towards that endpoint; {} closes at {:.0}/s over {}",
                    k.holder, g.peak, k.server, share, g.closes, rate, human_duration(window_ns)
                )
            } else {
                format!(
                    "{} (the server) closes first and holds up to {} sockets in TIME_WAIT at once on its listening port (no ephemeral ports: the clients' ports are free at the close); {} closes from {} at {:.0}/s over {}",
                    k.server,
                    g.peak,
                    g.closes,
                    if g.clients == 1 {
                        g.last_client.map_or_else(String::new, |c| c.to_string())
                    } else {
                        format!("{} clients", g.clients)
                    },
                    rate,
                    human_duration(window_ns)
                )
            };
            if g.reuses > 0 {
                note.push_str(&format!(
                    "; {} new SYNs reused a 4-tuple still in TIME_WAIT",
                    g.reuses
                ));
            }
            // Both a pileup at the threshold and a reuse inside TIME_WAIT are warnings: the
            // host is one rate increase away from failing to connect.
            let severity = Severity::Warning;
            let peak_evidence = g.peak_frame.map(|(file, number)| Evidence {
                frame: FrameRef {
                    file,
                    number,
                    ts: g.peak_at,
                },
                kind: EvidenceKind::Fin,
                description: format!(
                    "close at the peak: {} sockets in TIME_WAIT on {}",
                    g.peak, k.holder
                ),
            });
            let mut ev: Vec<Evidence> = g.example.into_iter().chain(peak_evidence).collect();
            ev.extend(g.reuse_evidence);
            ev.sort_by_key(|e| (e.frame.file, e.frame.number));
            ev.dedup_by_key(|e| (e.frame.file, e.frame.number));
            let mut facts = vec![
                ("holder", k.holder.to_string().into()),
                (
                    "holder_side",
                    if k.holder_is_client {
                        "client"
                    } else {
                        "server"
                    }
                    .into(),
                ),
                ("peak_time_wait", g.peak.into()),
                ("peak_at", g.peak_at.to_string().into()),
                ("time_wait_threshold", th.time_wait_threshold.into()),
                ("closes", g.closes.into()),
                ("close_rate_per_s", ((rate * 10.0).round() / 10.0).into()),
            ];
            if k.holder_is_client {
                facts.push((
                    "ephemeral_range_share_pct",
                    ((share * 10.0).round() / 10.0).into(),
                ));
            }
            facts.push(("reused_in_time_wait", g.reuses.into()));
            out.push(Finding {
                signature: SignatureId::TimeWaitPileup,
                severity,
                client: if k.holder_is_client {
                    k.holder
                } else {
                    g.last_client.unwrap_or(k.holder)
                },
                server: k.server,
                flow: None,
                weight: g.closes,
                first_ts: g.first_start.unwrap_or(first),
                last_ts: last,
                note,
                evidence: ev,
                facts,
            });
        }
        out
    }
}

/// The proxy products whose connection reuse towards backends ends a TIME_WAIT pileup, with the
/// option that turns it on.
const REUSE_OPTIONS: [(&str, &str); 4] = [
    ("nginx", "nginx: `keepalive 32;` in the `upstream` block, with `proxy_http_version 1.1;` and `proxy_set_header Connection \"\";`"),
    ("haproxy", "haproxy: `http-reuse safe` (or `always`) in the backend, without `option httpclose`"),
    ("squid", "squid: `server_persistent_connections on`"),
    ("apache", "Apache httpd: `ProxyPass … keepalive=On` (and not `disablereuse=On`)"),
];

/// The connection-reuse fix for the product named by `server_header` (`nginx/1.22.1`,
/// `Apache/2.4.57`, `squid/6.6`, `haproxy`), or for each product when none is recognised.
pub fn reuse_fix(server_header: Option<&str>) -> String {
    let seen = server_header.map(|s| s.to_ascii_lowercase());
    let known = seen.as_deref().and_then(|s| {
        REUSE_OPTIONS
            .iter()
            .find(|(name, _)| s.contains(name) || (*name == "apache" && s.contains("httpd")))
    });
    match known {
        Some((_, option)) => format!(
            "reuse connections instead of opening one per request (Server: {}): {}",
            server_header.unwrap_or_default(),
            option
        ),
        None => format!(
            "reuse connections instead of opening one per request, in whichever proxy makes them — {}",
            REUSE_OPTIONS
                .iter()
                .map(|(_, o)| *o)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    }
}

/// The verdict's words (summary, likely causes, next checks, Wireshark filter).
pub fn words(a: &super::Aggregate) -> super::Words {
    let mut w = super::Words::default();
    let s = a.server;
    let (ip, port) = (s.ip(), s.port());
    let af = if s.is_ipv4() { "ip" } else { "ipv6" };
    let fact = |k: &str| a.text(k);
    let holder = fact("holder").unwrap_or_default();
    let by_client = fact("holder_side").as_deref() != Some("server");
    let server_header = fact("server_header");
    let who = match (by_client, a.hop) {
        (true, Hop::ProxyToBackend) => format!(
            "the proxy ({}) is the active closer of its backend connections and holds these sockets",
            holder
        ),
        (true, Hop::ClientToProxy) => format!(
            "the client ({}) closes its connections to the proxy first and holds these sockets",
            holder
        ),
        (true, Hop::ClientToServer) => format!(
            "if {} is a proxy, these are its backend connections and the proxy itself is the active closer",
            holder
        ),
        (false, Hop::ClientToProxy) => format!(
            "the proxy ({}) closes its client connections first: the proxy is the active closer and holds these sockets",
            s
        ),
        (false, Hop::ProxyToBackend) => format!(
            "the backend ({}) closes first and holds these sockets, not the proxy (the proxy likely asks for a close: HTTP/1.0 or `Connection: close`)",
            s
        ),
        (false, Hop::ClientToServer) => {
            format!("the server ({}) closes first and holds these sockets", s)
        }
    };
    let first = a.notes.first().map(|n| n.0.clone()).unwrap_or_default();
    w.summary = format!("{}; {}", first, who);
    w.likely_causes = vec![
        "no keep-alive / connection reuse between these hosts: a new connection per request, closed after one response".into(),
    ];
    if by_client {
        w.likely_causes.push(format!(
            "ephemeral-port exhaustion on {} towards {} when the close rate keeps up: 28 232 ports held 60 s each allow about 470 new connections/s",
            holder, s
        ));
    } else {
        w.likely_causes.push(
            "the server ends connections itself (`Connection: close`, HTTP/1.0 requests, keep-alive timeout or request limit); its TIME_WAIT costs memory, not ports".into(),
        );
    }
    let ss_dir = if by_client { "dst" } else { "src" };
    w.next_checks = vec![
        format!(
            "on {}: `ss -tan state time-wait {} {} | wc -l`",
            holder, ss_dir, s
        ),
        reuse_fix(server_header.as_deref()),
    ];
    if by_client {
        w.next_checks.push(format!(
            "on {}: `sysctl net.ipv4.ip_local_port_range net.ipv4.tcp_tw_reuse`",
            holder
        ));
    }
    w.wireshark_filter = format!(
        "{af}.addr=={ip} && tcp.port=={port} && (tcp.flags.fin==1 || tcp.analysis.reused_ports)"
    );
    w
}

#[cfg(test)]
mod tests {
    //! The rule's boundaries on hand-built summaries: connections from 10.0.0.1 (ports 40000+)
    //! to 10.0.0.2:8080; times are in milliseconds after T0 and TIME_WAIT lasts 60 s.

    use super::*;
    use crate::flow::{ConnState, DirStats, EndReason, FrameRef, RstInfo};
    use crate::time::NANOS_PER_MILLI;

    const T0: i64 = 1_700_000_000_000_000_000;
    const TW_MS: i64 = 60_000;

    /// The final drain stops when only ends are left, and finds the same peak, time and frame
    /// as draining every event: on groups fed as `observe` and `reuse` feed them (closes nearly
    /// in order, some late, reuses cancelling ends), swept part-way as the tracker sweeps.
    #[test]
    fn the_final_drain_finds_the_peak_of_the_full_drain() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n) as i64
        };
        let (tw, reorder) = (100i64, 30i64);
        let mut stopped_early = 0;
        for round in 0..300 {
            let mut g = Group::unswept();
            let mut latest = i64::MIN;
            let mut closes: Vec<i64> = Vec::new();
            let n = 1 + next(200);
            for k in 0..n {
                // Mostly in order, sometimes from well behind the latest close.
                let t = closes.last().map_or(0, |&c| c + next(6)) - next(4) * next(2) * 20;
                latest = latest.max(t);
                g.close(t, tw, 0, k as u64 + 1);
                closes.push(t);
                if next(5) == 0 {
                    // A SYN reusing the 4-tuple of an earlier close while it is held.
                    let c = closes[next(closes.len() as u64) as usize];
                    g.cut_short(c + 1 + next(tw as u64 - 1), c + tw);
                }
                if next(round % 7 + 1) == 0 {
                    g.drain(latest - reorder, tw);
                }
            }
            if round % 3 == 0 {
                // The sweep went past every close, then closes came late: only `late` holds
                // them.
                g.drain(latest + tw / 2, tw);
                for k in 0..next(3 * n as u64) {
                    g.close(g.applied - next(tw as u64 - 1), tw, 1, k as u64 + 1);
                }
            }
            let mut full = g.clone();
            full.drain(i64::MAX, tw);
            let left = g.ends.len() + g.reuse_ends.len();
            g.drain_for_peak(tw);
            assert_eq!(
                (g.peak, g.peak_at, g.peak_frame),
                (full.peak, full.peak_at, full.peak_frame),
                "round {}",
                round
            );
            if g.ends.len() + g.reuse_ends.len() > 0 && left > 0 {
                stopped_early += 1;
            }
        }
        // The shortcut is taken (ends were left unapplied) in most rounds.
        assert!(stopped_early > 150, "{}", stopped_early);
    }

    /// `MinQueue` pops in the order a heap does, whatever share of its pushes arrive in order.
    #[test]
    fn min_queue_pops_like_a_heap() {
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        // Values out of order inserted into the FIFO, and sent to the heap.
        let (mut inserted, mut to_heap) = (0, 0);
        for disorder in [0, 1, 10, 50, 100] {
            let mut q = MinQueue::default();
            let mut heap = BinaryHeap::new();
            let mut t: i64 = 0;
            for _ in 0..5000 {
                if next() % 3 == 0 {
                    assert_eq!(q.pop(), heap.pop().map(|r: Reverse<i64>| r.0));
                } else {
                    t += (next() % 5) as i64;
                    let v = if (next() % 100) < disorder {
                        t - (next() % 50) as i64
                    } else {
                        t
                    };
                    let (back, in_heap) = (q.fifo.back().copied(), q.heap.len());
                    q.push(v);
                    heap.push(Reverse(v));
                    if back.is_some_and(|b| v < b) {
                        if q.heap.len() > in_heap {
                            to_heap += 1;
                        } else {
                            inserted += 1;
                        }
                    }
                }
                assert_eq!(q.peek(), heap.peek().map(|r| r.0));
                assert_eq!(q.len(), heap.len());
            }
            while let Some(Reverse(v)) = heap.pop() {
                assert_eq!(q.pop(), Some(v));
            }
            assert_eq!(q.pop(), None);
        }
        assert!(inserted > 1000 && to_heap > 100, "{} {}", inserted, to_heap);
    }

    fn fr(n: u64, ms: i64) -> FrameRef {
        FrameRef {
            file: 0,
            number: n,
            ts: Timestamp(T0 + ms * NANOS_PER_MILLI),
        }
    }

    /// A connection from `orig` to `resp` opened at `start_ms` and closed with FINs at
    /// `close_ms`, the first FIN from `closer`.
    fn conn(
        orig: &str,
        resp: &str,
        start_ms: i64,
        close_ms: i64,
        closer: Direction,
    ) -> FlowSummary {
        let n = (close_ms as u64) * 10 + 1;
        let fin = DirStats {
            pkts: 3,
            first_fin: Some(fr(n, close_ms)),
            ..Default::default()
        };
        let (orig_stats, resp_stats) = match closer {
            Direction::Orig => (
                fin,
                DirStats {
                    pkts: 3,
                    ..Default::default()
                },
            ),
            Direction::Resp => (
                DirStats {
                    pkts: 3,
                    ..Default::default()
                },
                fin,
            ),
        };
        FlowSummary {
            id: n,
            slot: 0,
            orig: orig.parse().unwrap(),
            resp: resp.parse().unwrap(),
            partial: false,
            conn_state: ConnState::SF,
            history: "ShADadFf".into(),
            orig_stats,
            resp_stats,
            first: fr(n - 1, start_ms),
            last: fr(n + 1, close_ms),
            start: fr(n - 1, start_ms).ts,
            end: fr(n + 1, close_ms).ts,
            syn_count: 1,
            first_syn: Some(fr(n - 1, start_ms)),
            last_syn: Some(fr(n - 1, start_ms)),
            synack: None,
            rtt_ns: None,
            rst: None,
            rst_count: 0,
            icmp: None,
            first_fin_from: Some(closer),
            closed_at: Some(fr(n + 1, close_ms).ts),
            port_reused: false,
            reused_in_time_wait: false,
            reused_close: None,
            end_reason: EndReason::Closed,
        }
    }

    /// The client 10.0.0.1:`port` closes first.
    fn client_closes(port: u16, start_ms: i64, close_ms: i64) -> FlowSummary {
        conn(
            &format!("10.0.0.1:{}", port),
            "10.0.0.2:8080",
            start_ms,
            close_ms,
            Direction::Orig,
        )
    }

    /// `f` with its SYN reusing the 4-tuple of a connection its client closed at `closed_ms`
    /// (as the tracker marks it).
    fn reuses(mut f: FlowSummary, closed_ms: i64) -> FlowSummary {
        f.reused_in_time_wait = true;
        f.reused_close = Some((fr(0, closed_ms).ts, Direction::Orig));
        f
    }

    fn th(threshold: u32) -> Thresholds {
        Thresholds {
            time_wait_threshold: threshold,
            ..Default::default()
        }
    }

    fn run(threshold: u32, flows: &[FlowSummary]) -> Vec<Finding> {
        let mut t = TimeWaitTracker::new(th(threshold));
        for f in flows {
            t.observe(f);
        }
        t.findings()
    }

    fn fact(fd: &Finding, k: &str) -> Option<String> {
        fd.facts.iter().find(|f| f.0 == k).map(|f| f.1.to_string())
    }

    fn peak(fd: &Finding) -> u32 {
        fact(fd, "peak_time_wait").unwrap().parse().unwrap()
    }

    /// `n` client closes on distinct ports, 1 ms apart.
    fn burst(n: u16) -> Vec<FlowSummary> {
        (0..n)
            .map(|i| client_closes(40_000 + i, i as i64, i as i64 + 1))
            .collect()
    }

    #[test]
    fn threshold_is_honoured_exactly() {
        assert!(run(5, &burst(4)).is_empty(), "peak 4 < threshold 5");
        let at = run(5, &burst(5));
        assert_eq!(at.len(), 1, "peak 5 reaches threshold 5");
        assert_eq!(peak(&at[0]), 5);
        assert_eq!(at[0].severity, Severity::Warning);
        let over = run(5, &burst(6));
        assert_eq!(over.len(), 1);
        assert_eq!(peak(&over[0]), 6);
    }

    #[test]
    fn the_peak_is_dated_and_shown_where_it_was_first_reached() {
        // Two bursts of three closes, the second after the first's TIME_WAIT ended: the same
        // peak twice; the first time counts, with the close that reached it as evidence.
        let flows = [
            client_closes(40_000, 0, 1),
            client_closes(40_001, 0, 2),
            client_closes(40_002, 0, 3),
            client_closes(40_003, TW_MS + 50, TW_MS + 100),
            client_closes(40_004, TW_MS + 50, TW_MS + 101),
            client_closes(40_005, TW_MS + 50, TW_MS + 102),
        ];
        let out = run(3, &flows);
        assert_eq!(out.len(), 1);
        assert_eq!(peak(&out[0]), 3);
        assert_eq!(
            fact(&out[0], "peak_at"),
            Some(Timestamp(T0 + 3 * NANOS_PER_MILLI).to_string())
        );
        let at_peak: Vec<u64> = out[0]
            .evidence
            .iter()
            .filter(|e| e.description.starts_with("close at the peak: 3 sockets"))
            .map(|e| e.frame.number)
            .collect();
        assert_eq!(at_peak, vec![31]);
    }

    #[test]
    fn rate_and_share_of_the_ephemeral_range_are_reported() {
        // 300 closes 1 ms apart (1..=300 ms): 300 over 299 ms, a peak of 300 sockets.
        let out = run(300, &burst(300));
        assert_eq!(out.len(), 1);
        let fd = &out[0];
        assert_eq!(fact(fd, "closes").as_deref(), Some("300"));
        assert_eq!(fact(fd, "close_rate_per_s").as_deref(), Some("1003.3"));
        assert_eq!(
            fact(fd, "ephemeral_range_share_pct").as_deref(),
            Some("1.1")
        );
        assert_eq!(fact(fd, "reused_in_time_wait").as_deref(), Some("0"));
        assert!(
            fd.note.contains(": 1.1% of the 28 232 ports"),
            "{}",
            fd.note
        );
        assert!(
            fd.note.contains("; 300 closes at 1003/s over 299.0ms"),
            "{}",
            fd.note
        );
        assert!(!fd.note.contains("reused"), "{}", fd.note);
    }

    #[test]
    fn peak_is_concurrent_sockets_not_distinct_tuples() {
        // Three 4-tuples, but the first TIME_WAIT has ended when the third closes.
        let flows = [
            client_closes(40_000, 0, 10),
            client_closes(40_001, 20, 30),
            client_closes(40_002, 100, 10 + TW_MS + 1),
        ];
        assert!(run(3, &flows).is_empty(), "never 3 at once");
        assert_eq!(peak(&run(2, &flows)[0]), 2);
    }

    #[test]
    fn time_wait_interval_is_half_open() {
        // The second close exactly 60 s after the first: the first socket is gone.
        let at_end = [
            client_closes(40_000, 0, 10),
            client_closes(40_001, 20, 10 + TW_MS),
        ];
        assert!(run(2, &at_end).is_empty());
        // 1 ms earlier both are held.
        let before = [
            client_closes(40_000, 0, 10),
            client_closes(40_001, 20, 10 + TW_MS - 1),
        ];
        assert_eq!(peak(&run(2, &before)[0]), 2);
    }

    /// `Ends` holds what a `VecDeque<i64>` holds, through pushes and pops in any mix: close
    /// times nanoseconds apart, gaps of 4.3 s and more (kept whole), the exact boundary, times out
    /// of order, emptying and starting again, and the `i64` extremes.
    #[test]
    fn ends_hold_what_a_deque_of_times_holds() {
        let mut ends = Ends::default();
        let mut model: VecDeque<i64> = VecDeque::new();
        let mut t = 1_000i64;
        let mut x = 0x2545_f491_4f6c_dd1du64;
        for i in 0..200_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if x % 3 != 0 || model.is_empty() {
                t = match x % 11 {
                    0 => t.saturating_add(i64::from(FAR) - 1),
                    1 => t.saturating_add(i64::from(FAR)),
                    2 => t.saturating_add(10 * i64::from(FAR)),
                    3 => t.saturating_sub((x % 5_000) as i64),
                    4 if i % 1000 == 0 => i64::MAX,
                    5 if i % 1000 == 1 => i64::MIN,
                    _ => t.saturating_add((x % 2_000_000) as i64),
                };
                ends.push_back(t);
                model.push_back(t);
            } else {
                ends.pop_front();
                model.pop_front();
            }
            assert_eq!(ends.front(), model.front().copied(), "step {i}");
            assert_eq!(ends.len(), model.len(), "step {i}");
        }
        while !model.is_empty() {
            ends.pop_front();
            model.pop_front();
            assert_eq!(ends.front(), model.front().copied());
        }
        assert!(ends.far.is_empty());
    }

    #[test]
    fn reuse_ends_the_old_time_wait_at_the_new_syn() {
        // 40000 closes at 10 ms; a SYN reuses it at 1 s and that connection stays open for 70 s.
        // 40001 and 40002 close at 2 s and 3 s: only 2 sockets are ever in TIME_WAIT together
        // (the old 40000 ended at 1 s), then the long one closes after both expired.
        let reused = reuses(client_closes(40_000, 1_000, 70_000), 10);
        // In the order the tracker finishes them.
        let flows = [
            client_closes(40_000, 0, 10),
            client_closes(40_001, 1_500, 2_000),
            client_closes(40_002, 2_500, 3_000),
            reused,
        ];
        let fd = run(1_000, &flows);
        assert_eq!(fd.len(), 1, "reported for the reuse");
        assert_eq!(peak(&fd[0]), 2);
        assert_eq!(fact(&fd[0], "reused_in_time_wait").as_deref(), Some("1"));
        assert!(fd[0].evidence.iter().any(|e| e.kind == EvidenceKind::Syn));
        assert!(fd[0].note.contains("1 new SYNs reused"));
    }

    /// A SYN at the very instant the old connection's TIME_WAIT began reuses it: that TIME_WAIT
    /// ends there, so two later closes make a peak of 2, not 3.
    #[test]
    fn a_reuse_at_the_instant_of_the_close_ends_that_time_wait() {
        let reused = reuses(client_closes(40_000, 10, 100_000), 10);
        let flows = [
            client_closes(40_000, 0, 10),
            client_closes(40_001, 15, 20),
            client_closes(40_002, 25, 30),
            reused,
        ];
        let fd = run(1, &flows);
        assert_eq!(peak(&fd[0]), 2);
        assert_eq!(fact(&fd[0], "reused_in_time_wait").as_deref(), Some("1"));
    }

    /// A reuse whose close was not seen (forgotten, or not in the capture) counts in the group
    /// that holds the closes towards that server: here the server closes first.
    #[test]
    fn a_reuse_whose_close_was_not_seen_counts_where_the_closes_are() {
        let server_closes = |port: u16, start: i64, close: i64| -> FlowSummary {
            conn(
                &format!("10.0.0.1:{}", port),
                "10.0.0.2:8080",
                start,
                close,
                Direction::Resp,
            )
        };
        let mut flows: Vec<FlowSummary> = (0..3)
            .map(|i| server_closes(40_000 + i, i as i64, i as i64 + 1))
            .collect();
        let mut reused = server_closes(41_000, 100, 200);
        reused.reused_in_time_wait = true;
        flows.push(reused);
        let fd = run(3, &flows);
        assert_eq!(fd.len(), 1);
        assert_eq!(fact(&fd[0], "holder_side").as_deref(), Some("server"));
        assert_eq!(fact(&fd[0], "reused_in_time_wait").as_deref(), Some("1"));
        // With closes on both sides, the client side (the one whose ports run out) takes it.
        let mut flows: Vec<FlowSummary> = (0..3)
            .map(|i| server_closes(40_000 + i, i as i64, i as i64 + 1))
            .collect();
        flows.extend((0..3).map(|i| client_closes(40_100 + i, i as i64, i as i64 + 1)));
        let mut reused = client_closes(41_000, 100, 200);
        reused.reused_in_time_wait = true;
        flows.push(reused);
        let fd = run(3, &flows);
        let reuses = |side: &str| {
            fd.iter()
                .find(|f| fact(f, "holder_side").as_deref() == Some(side))
                .and_then(|f| fact(f, "reused_in_time_wait"))
        };
        assert_eq!(reuses("client").as_deref(), Some("1"));
        assert_eq!(reuses("server").as_deref(), Some("0"));
    }

    #[test]
    fn reuse_evidence_is_capped() {
        let mut flows: Vec<FlowSummary> = (0..MAX_REUSE_EVIDENCE as u16 + 2)
            .map(|i| client_closes(40_000 + i, 0, 10))
            .collect();
        for i in 0..MAX_REUSE_EVIDENCE as u16 + 2 {
            let mut reused = client_closes(40_000 + i, 100 + i as i64, 200 + i as i64);
            reused.reused_in_time_wait = true;
            flows.push(reused);
        }
        let fd = run(1, &flows);
        assert_eq!(
            fact(&fd[0], "reused_in_time_wait").as_deref(),
            Some(&*(MAX_REUSE_EVIDENCE + 2).to_string())
        );
        let syns = fd[0]
            .evidence
            .iter()
            .filter(|e| e.kind == EvidenceKind::Syn)
            .count();
        assert_eq!(syns, MAX_REUSE_EVIDENCE);
    }

    #[test]
    fn reuse_fix_knows_apache_by_its_httpd_alias() {
        assert!(reuse_fix(Some("httpd")).contains("Apache httpd"));
        assert!(reuse_fix(Some("Apache/2.4.57 (Debian)")).contains("Apache httpd"));
        assert!(reuse_fix(Some("nginx/1.22.1")).contains("keepalive 32"));
    }

    #[test]
    fn closes_arriving_out_of_order_give_the_same_peak() {
        // Connections finish in slot order, not close order.
        let mut flows = burst(6);
        flows.push(client_closes(40_100, 0, 10 + TW_MS + 5));
        let forward = peak(&run(1, &flows)[0]);
        flows.reverse();
        assert_eq!(peak(&run(1, &flows)[0]), forward);
        assert_eq!(forward, 6);
    }

    /// A close that arrives more than `REORDER_NS` after later ones still counts, from the time
    /// the sweep reached; one whose TIME_WAIT had already ended there does not.
    #[test]
    fn a_close_later_than_the_reorder_window_counts_from_the_sweep() {
        let r = REORDER_NS / NANOS_PER_MILLI;
        let b = TW_MS + 2 * r; // the sweep stays at b - r
        let flows = [
            client_closes(40_000, 0, b),
            client_closes(40_001, 0, b - 2 * r), // late: held from b - r
            client_closes(40_002, 0, 5),         // late, its TIME_WAIT ended before b - r
        ];
        let fd = run(2, &flows);
        assert_eq!(peak(&fd[0]), 2);
        assert_eq!(fact(&fd[0], "closes").as_deref(), Some("3"));
        // Within the window, order does not matter: the peak is dated at the second close.
        let flows = [
            client_closes(40_000, 0, r / 2),
            client_closes(40_001, 0, 10),
        ];
        let fd = run(2, &flows);
        assert_eq!(
            fact(&fd[0], "peak_at").as_deref(),
            Some(&*fr(0, r / 2).ts.to_string())
        );
    }

    #[test]
    fn ephemeral_pressure_only_on_the_connecting_side() {
        let fd = &run(2, &burst(3))[0];
        assert_eq!(fact(fd, "holder").as_deref(), Some("10.0.0.1"));
        assert_eq!(fact(fd, "holder_side").as_deref(), Some("client"));
        assert_eq!(fact(fd, "ephemeral_range_share_pct").as_deref(), Some("0"));
        assert!(fd.note.contains("28 232 ports"));
        // The server closes first: TIME_WAIT on 10.0.0.2:8080, no port share.
        let flows: Vec<_> = (0..3)
            .map(|i| {
                conn(
                    &format!("10.0.0.1:{}", 40_000 + i),
                    "10.0.0.2:8080",
                    i,
                    i + 1,
                    Direction::Resp,
                )
            })
            .collect();
        let fd = &run(2, &flows)[0];
        assert_eq!(fact(fd, "holder").as_deref(), Some("10.0.0.2"));
        assert_eq!(fact(fd, "holder_side").as_deref(), Some("server"));
        assert_eq!(fact(fd, "ephemeral_range_share_pct").as_deref(), None);
        assert!(!fd.note.contains('%'), "{}", fd.note);
        assert_eq!(fd.server, "10.0.0.2:8080".parse().unwrap());
    }

    #[test]
    fn server_side_counts_each_client_address_apart() {
        // Two clients using the same source port: two sockets on the server, not one.
        let flows = [
            conn("10.0.0.1:40000", "10.0.0.2:8080", 0, 5, Direction::Resp),
            conn("10.0.0.3:40000", "10.0.0.2:8080", 1, 6, Direction::Resp),
        ];
        let fd = run(2, &flows);
        assert_eq!(fd.len(), 1);
        assert_eq!(peak(&fd[0]), 2);
        assert!(fd[0].note.contains("2 clients"));
    }

    #[test]
    fn reset_connections_hold_no_time_wait() {
        let mut flows = burst(3);
        flows[2].rst = Some(RstInfo {
            from: Direction::Orig,
            frame: fr(999, 5),
            ttl: 64,
            unacked_by_peer: 0,
            unacked_from_peer: 0,
            after_fin: true,
            last_data_from: None,
        });
        assert!(run(3, &flows).is_empty());
        assert_eq!(peak(&run(2, &flows)[0]), 2);
    }

    /// The words of a verdict made of this one finding, with extra facts.
    fn words_of(
        hop: Hop,
        fd: &Finding,
        extra: &[(&'static str, crate::signature::Fact)],
    ) -> crate::signature::Words {
        let notes = vec![(fd.note.clone(), fd.weight)];
        let mut facts = fd.facts.clone();
        facts.extend(extra.iter().cloned());
        words(&crate::signature::Aggregate {
            signature: SignatureId::TimeWaitPileup,
            severity: fd.severity,
            hop,
            client: fd.client,
            clients: 1,
            server: fd.server,
            flow_count: fd.weight,
            total_flows: fd.weight,
            by_severity: [0, fd.weight, 0],
            first_ts: fd.first_ts,
            established: fd.weight,
            backend_leg_captured: false,
            notes: &notes,
            facts: &facts,
        })
    }

    #[test]
    fn words_name_the_holder_and_the_proxy_as_active_closer() {
        let fd = &run(2, &burst(3))[0];
        let v = words_of(Hop::ProxyToBackend, fd, &[]);
        assert!(
            v.summary
                .contains("the proxy (10.0.0.1) is the active closer"),
            "{}",
            v.summary
        );
        assert!(v.next_checks[0].contains("ss -tan state time-wait dst 10.0.0.2:8080"));
        assert!(v
            .next_checks
            .iter()
            .any(|c| c.contains("ip_local_port_range")));
        // The proxy closes its client connections first.
        let flows: Vec<_> = (0..3)
            .map(|i| {
                conn(
                    &format!("10.0.0.1:{}", 40_000 + i),
                    "10.0.0.2:8080",
                    i,
                    i + 1,
                    Direction::Resp,
                )
            })
            .collect();
        let fd = &run(2, &flows)[0];
        let v = words_of(Hop::ClientToProxy, fd, &[]);
        assert!(
            v.summary
                .contains("the proxy (10.0.0.2:8080) closes its client connections first"),
            "{}",
            v.summary
        );
        assert!(!v
            .next_checks
            .iter()
            .any(|c| c.contains("ip_local_port_range")));
        assert!(v.likely_causes.iter().all(|c| !c.contains("ephemeral")));
    }

    #[test]
    fn fix_named_for_the_product_seen_or_for_each() {
        let all = reuse_fix(None);
        for o in [
            "`keepalive 32;`",
            "http-reuse",
            "server_persistent_connections",
            "keepalive=On",
        ] {
            assert!(all.contains(o), "{} missing from {}", o, all);
        }
        let squid = reuse_fix(Some("squid/6.6"));
        assert!(
            squid.contains("server_persistent_connections") && !squid.contains("upstream"),
            "{}",
            squid
        );
        let nginx = reuse_fix(Some("nginx/1.22.1"));
        assert!(nginx.contains("upstream") && !nginx.contains("http-reuse"));
        assert!(reuse_fix(Some("Apache/2.4.57 (Debian)")).contains("keepalive=On"));
        assert!(reuse_fix(Some("HAProxy")).contains("http-reuse"));
        // An unknown product: every option.
        assert_eq!(
            reuse_fix(Some("BaseHTTP/0.6 Python/3.11.2"))
                .matches(": `")
                .count(),
            4
        );
        // Through the verdict's facts.
        let fd = &run(2, &burst(3))[0];
        let v = words_of(
            Hop::ProxyToBackend,
            fd,
            &[("server_header", "squid/6.6".into())],
        );
        assert!(v
            .next_checks
            .iter()
            .any(|c| c.contains("server_persistent_connections")));
        assert!(!v.next_checks.iter().any(|c| c.contains("upstream")));
    }
}
