//! Correlation: every failing client exchange at a proxy, paired with the backend attempts it
//! caused, and the causal chains built from those pairs.
//!
//! Owns: the per-connection records kept for pairing (`ConnRecord`), the pairing rules and their
//! kinds, and `Chain`s. Must not: judge connections (the signatures did) or format output.
//!
//! A **client exchange** is one failure on a proxy's client leg: an HTTP request answered with a
//! gateway status (502/503/504), or a client connection that failed as a whole (TLS stall or
//! alert, reset, truncated response). Its **window** runs from the request (or the connection's
//! start) to the answer (or the failure's last frame).
//!
//! **Pairing**, strongest evidence first; every pair records its kind and confidence:
//! 1. `connect-authority`: the client's `CONNECT host:port` names the destination of a backend
//!    connection the proxy opened inside the window (high);
//! 2. `client-hello` / `first-payload`: the first 64 client bytes (a ClientHello with its random,
//!    or any first payload) reappear byte for byte on a backend connection (high) — TCP/TLS
//!    passthrough and tunnels;
//! 3. `http-request`: a backend request with the same method and target (absolute-form reduced to
//!    origin-form) sent inside the window (high when a forwarding header names the client,
//!    medium otherwise);
//! 4. `time`: a backend connection that started inside the window and that no stronger pair
//!    claimed, given to the exchange whose request came last before it (medium when only one
//!    exchange's window holds it, low when several do). A proxy's retries (several attempts in
//!    one window) all belong to that exchange.
//!
//! One backend attempt explains only the exchanges paired with it: a connection claimed by a
//! stronger pair is never used again by time. An exchange with no pair says so, with the number
//! of candidates, and is never explained by a guess.

use crate::flow::FrameRef;
use crate::signature::{Evidence, EvidenceKind, Severity, SignatureId};
use crate::time::{human_duration, Timestamp, NANOS_PER_MILLI};
use crate::topology::{Proxy, Topology};
use serde::Serialize;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// Connection records kept for pairing (a capture with more connections pairs the first ones
/// and says so in the chain notes).
pub const MAX_RECORDS: usize = 50_000;
/// HTTP requests kept per connection record.
pub const MAX_REQUESTS_PER_CONN: usize = 8;
/// A backend attempt belongs to a window when it starts within this margin of it.
const MARGIN_NS: i64 = NANOS_PER_MILLI;
/// First bytes shorter than this are too common to pair on.
const MIN_FIRST_BYTES: u16 = 32;

/// An HTTP request seen on a connection and what answered it.
#[derive(Clone, Debug)]
/// The strings are shared (`Legs` interns them: a busy proxy repeats a few methods, targets and
/// `Server` headers across tens of thousands of records).
pub struct ReqRecord {
    pub frame: FrameRef,
    pub method: Arc<str>,
    pub target: Arc<str>,
    pub forwarded_for: Option<Arc<str>>,
    /// (status, response frame, `Server` header).
    pub answer: Option<(u16, FrameRef, Option<Arc<str>>)>,
}

/// What correlation keeps of one finished connection.
#[derive(Clone, Debug)]
pub struct ConnRecord {
    pub id: u64,
    pub orig: SocketAddr,
    pub resp: SocketAddr,
    pub start: Timestamp,
    pub end: Timestamp,
    /// The first SYN when captured, else the first frame (`first_is_syn` says which).
    pub first: FrameRef,
    pub first_is_syn: bool,
    /// Fingerprint of the client's first bytes (hash, length).
    pub first_bytes: Option<(u64, u16)>,
    pub tls: bool,
    pub requests: Vec<ReqRecord>,
    /// The worst finding on this connection above info: signature, severity, evidence.
    pub failure: Option<(SignatureId, Severity, Vec<Evidence>)>,
}

impl ConnRecord {
    /// Records a finding on this connection, keeping the worst.
    pub fn finding(&mut self, sig: SignatureId, sev: Severity, ev: &[Evidence]) {
        if sev == Severity::Info || sig == SignatureId::AbortiveClose {
            return;
        }
        if self.failure.as_ref().is_none_or(|f| sev > f.1) {
            self.failure = Some((sig, sev, ev.to_vec()));
        }
    }
}

/// How a client exchange was tied to its backend attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum PairKind {
    ConnectAuthority,
    ClientHello,
    FirstPayload,
    HttpRequest,
    Time,
    /// No backend attempt could be tied to the exchange.
    NotPaired,
}

impl PairKind {
    pub fn name(self) -> &'static str {
        match self {
            PairKind::ConnectAuthority => "connect-authority",
            PairKind::ClientHello => "client-hello",
            PairKind::FirstPayload => "first-payload",
            PairKind::HttpRequest => "http-request",
            PairKind::Time => "time",
            PairKind::NotPaired => "not-paired",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum PairConfidence {
    None,
    Low,
    Medium,
    High,
}

/// One backend attempt of an exchange and how it ended.
#[derive(Clone, Debug, Serialize)]
pub struct Attempt {
    /// First frame of the backend connection (its SYN).
    pub frame: u64,
    pub from: String,
    pub to: String,
    /// `refused`, `syn-unanswered`, `reset`, `no-response`, `tls-stall`, `tls-alert`,
    /// `truncated`, `backend-5xx`, `retransmissions`, or `ok`.
    pub outcome: &'static str,
    /// The backend's own HTTP status for the paired request, when seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
}

/// A client-leg failure and what its paired backend attempts show: one incident, both halves.
#[derive(Clone, Debug)]
pub struct Chain {
    pub summary: String,
    /// The proxy endpoint clients talked to.
    pub proxy: SocketAddr,
    /// What clients saw (`gateway-error` with its status, `tls-stall`, ...).
    pub front_signature: SignatureId,
    pub front_status: Option<u16>,
    /// What the backend leg showed (None: the paired attempts did not fail, or no pair).
    pub back_signature: Option<SignatureId>,
    pub backend: Option<SocketAddr>,
    /// Client failures this cause explains (paired exchanges only), out of all client failures
    /// of that kind at that proxy.
    pub explained: u64,
    pub front_failures: u64,
    /// How the exchanges of this chain were paired (the weakest kind among them) and how sure.
    pub pairing: PairKind,
    pub confidence: PairConfidence,
    /// The backend attempts of the example exchange.
    pub attempts: Vec<Attempt>,
    /// One exchange traced end to end: client request → backend attempt(s) → answer.
    pub example: Vec<Evidence>,
}

/// One failing client exchange and the backend attempts paired with it (the per-exchange view
/// behind the chains; the report's `exchanges[]`).
#[derive(Clone, Debug, Serialize)]
pub struct PairedExchange {
    /// First frame of the client's connection (its SYN when captured).
    pub client_first: u64,
    /// The client's request frame (HTTP request or CONNECT), when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<u64>,
    /// What the client got: the error response, or the last frame of its connection's failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub answer: Option<u64>,
    pub proxy: String,
    pub front_signature: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    pub pairing: &'static str,
    pub confidence: PairConfidence,
    pub attempts: Vec<Attempt>,
}

/// Failing exchanges listed per report at most (chains aggregate all of them).
pub const MAX_EXCHANGES_LISTED: usize = 1000;

/// A failing client exchange at a proxy.
struct Exchange<'a> {
    conn: &'a ConnRecord,
    proxy: &'a Proxy,
    signature: SignatureId,
    status: Option<u16>,
    request: Option<&'a ReqRecord>,
    t0: Timestamp,
    t1: Timestamp,
    /// The frame of what the client got (the error response; for a failed connection, the last
    /// frame of its failure).
    answer: Option<FrameRef>,
}

/// Normalises a request target: absolute-form `http://host/path` becomes `/path`.
pub fn origin_form(t: &str) -> &str {
    for scheme in ["http://", "https://"] {
        if let Some(rest) = t.strip_prefix(scheme) {
            return rest.find('/').map_or("/", |i| &rest[i..]);
        }
    }
    t
}

fn in_window(t: Timestamp, t0: Timestamp, t1: Timestamp) -> bool {
    t.0 >= t0.0 - MARGIN_NS && t.0 <= t1.0 + MARGIN_NS
}

/// The failing exchanges on a proxy's client leg.
fn exchanges<'a>(recs: &'a [ConnRecord], topo: &'a Topology) -> Vec<Exchange<'a>> {
    let mut out = Vec::new();
    for c in recs {
        let Some(p) = topo.proxies.iter().find(|p| p.front.contains(&c.resp)) else {
            continue;
        };
        let mut any = false;
        for r in &c.requests {
            let Some((status, fr, _)) = &r.answer else {
                continue;
            };
            if crate::signature::gateway_error::GATEWAY_STATUSES.contains(status) {
                any = true;
                out.push(Exchange {
                    conn: c,
                    proxy: p,
                    signature: SignatureId::GatewayError,
                    status: Some(*status),
                    request: Some(r),
                    t0: r.frame.ts,
                    t1: fr.ts,
                    answer: Some(*fr),
                });
            }
        }
        if any {
            continue;
        }
        if let Some((sig, _, ev)) = &c.failure {
            if matches!(
                sig,
                SignatureId::TlsStall
                    | SignatureId::TlsAlert
                    | SignatureId::ConnectionReset
                    | SignatureId::TruncatedResponse
                    | SignatureId::UpstreamTimeout
            ) {
                let last = ev.iter().map(|e| e.frame).max_by_key(|f| (f.ts, f.number));
                out.push(Exchange {
                    conn: c,
                    proxy: p,
                    signature: *sig,
                    status: None,
                    request: c.requests.first(),
                    t0: c.start,
                    t1: last.map_or(c.end, |f| f.ts),
                    answer: last,
                });
            }
        }
    }
    out.sort_by_key(|e| (e.t0, e.conn.id));
    out
}

/// Backend-leg connections of a proxy (never its client leg).
fn is_backend_attempt(p: &Proxy, b: &ConnRecord) -> bool {
    p.back_addresses.contains(&b.orig.ip()) && !p.front.contains(&b.resp)
}

/// How a backend attempt ended, for the paired request when there is one.
fn outcome(b: &ConnRecord, req: Option<&ReqRecord>) -> (&'static str, Option<u16>) {
    if let Some((s, _, _)) = req.and_then(|r| r.answer.as_ref()) {
        if *s >= 500 {
            return ("backend-5xx", Some(*s));
        }
    }
    let status = req.and_then(|r| r.answer.as_ref()).map(|a| a.0);
    let o = match b.failure.as_ref().map(|f| f.0) {
        Some(SignatureId::ConnectionRefused) => "refused",
        Some(SignatureId::SynUnanswered) => "syn-unanswered",
        Some(SignatureId::ConnectionReset) => "reset",
        Some(SignatureId::UpstreamTimeout) => "no-response",
        Some(SignatureId::TlsStall) => "tls-stall",
        Some(SignatureId::TlsAlert) => "tls-alert",
        Some(SignatureId::TruncatedResponse) => "truncated",
        Some(SignatureId::RetransmissionStorm) => "retransmissions",
        Some(SignatureId::GatewayError) if status.is_some_and(|s| s >= 500) => "backend-5xx",
        _ => "ok",
    };
    (o, status)
}

/// The signature that stands for an outcome in a chain.
fn outcome_signature(o: &str) -> Option<SignatureId> {
    Some(match o {
        "refused" => SignatureId::ConnectionRefused,
        "syn-unanswered" => SignatureId::SynUnanswered,
        "reset" => SignatureId::ConnectionReset,
        "no-response" => SignatureId::UpstreamTimeout,
        "tls-stall" => SignatureId::TlsStall,
        "tls-alert" => SignatureId::TlsAlert,
        "truncated" => SignatureId::TruncatedResponse,
        "retransmissions" => SignatureId::RetransmissionStorm,
        "backend-5xx" => SignatureId::GatewayError,
        _ => return None,
    })
}

/// What a backend outcome means, in words.
fn outcome_words(o: &str, status: Option<u16>, server: Option<&str>) -> String {
    match o {
        "refused" => "refused the connection (RST): nothing listens there".into(),
        "syn-unanswered" => "never answered the SYN".into(),
        "reset" => "reset the connection with the request outstanding".into(),
        "no-response" => {
            "accepted the request but never answered it until the proxy gave up".into()
        }
        "tls-stall" => "never answered the TLS ClientHello".into(),
        "tls-alert" => "failed the TLS handshake".into(),
        "truncated" => "cut its response body short".into(),
        "retransmissions" => "lost packets repeatedly (retransmission storm)".into(),
        "backend-5xx" => format!(
            "answered {} itself{}: look at the application, not the proxy",
            status.map_or("5xx".to_string(), |s| s.to_string()),
            server
                .map(|s| format!(" (Server: {})", s))
                .unwrap_or_default()
        ),
        _ => "did not fail: look at the proxy itself (its configuration, limits, health checks)"
            .into(),
    }
}

struct Paired<'a> {
    kind: PairKind,
    confidence: PairConfidence,
    /// (backend record, the backend request paired, when HTTP).
    attempts: Vec<(&'a ConnRecord, Option<&'a ReqRecord>)>,
    candidates: usize,
}

/// Pairs every exchange with its backend attempts (the module comment gives the rules).
fn pair<'a>(ex: &[Exchange<'a>], recs: &'a [ConnRecord]) -> Vec<Paired<'a>> {
    let mut claimed: rustc_hash::FxHashSet<u64> = Default::default();
    let mut out: Vec<Paired<'a>> = ex
        .iter()
        .map(|_| Paired {
            kind: PairKind::NotPaired,
            confidence: PairConfidence::None,
            attempts: Vec::new(),
            candidates: 0,
        })
        .collect();
    // Pass 1: identity.
    for (i, e) in ex.iter().enumerate() {
        let cands = || {
            recs.iter()
                .filter(|b| b.id != e.conn.id && is_backend_attempt(e.proxy, b))
        };
        // a. CONNECT authority.
        if let Some(r) = e.request.filter(|r| &*r.method == "CONNECT") {
            if let Ok(dst) = r.target.parse::<SocketAddr>() {
                let hit: Vec<_> = cands()
                    .filter(|b| b.resp == dst && in_window(b.start, e.t0, e.t1))
                    .map(|b| (b, None))
                    .collect();
                if !hit.is_empty() {
                    out[i] = Paired {
                        kind: PairKind::ConnectAuthority,
                        confidence: PairConfidence::High,
                        attempts: hit,
                        candidates: 0,
                    };
                    continue;
                }
            }
        }
        // b/c. The same first client bytes.
        if e.request.is_none() {
            if let Some((h, n)) = e.conn.first_bytes.filter(|fb| fb.1 >= MIN_FIRST_BYTES) {
                let hit: Vec<_> = cands()
                    .filter(|b| b.first_bytes == Some((h, n)))
                    .map(|b| (b, None))
                    .collect();
                if !hit.is_empty() {
                    out[i] = Paired {
                        kind: if e.conn.tls {
                            PairKind::ClientHello
                        } else {
                            PairKind::FirstPayload
                        },
                        confidence: PairConfidence::High,
                        attempts: hit,
                        candidates: 0,
                    };
                    continue;
                }
            }
        }
        // d. HTTP request identity.
        if let Some(r) = e.request.filter(|r| &*r.method != "CONNECT") {
            let target = origin_form(&r.target);
            let client = e.conn.orig.ip().to_string();
            let mut hit: Vec<(&ConnRecord, Option<&ReqRecord>)> = Vec::new();
            let mut named = false;
            for b in cands() {
                for q in &b.requests {
                    if q.method == r.method
                        && origin_form(&q.target) == target
                        && in_window(q.frame.ts, e.t0, e.t1)
                    {
                        named |= q
                            .forwarded_for
                            .as_deref()
                            .is_some_and(|f| f.contains(&client));
                        hit.push((b, Some(q)));
                    }
                }
            }
            if !hit.is_empty() {
                out[i] = Paired {
                    kind: PairKind::HttpRequest,
                    confidence: if named {
                        PairConfidence::High
                    } else {
                        PairConfidence::Medium
                    },
                    attempts: hit,
                    candidates: 0,
                };
            }
        }
    }
    for p in &out {
        for (b, _) in &p.attempts {
            claimed.insert(b.id);
        }
    }
    // Pass 2: time, for exchanges without an identity pair, over unclaimed attempts only.
    let mut time_pairs: Vec<Vec<&ConnRecord>> = vec![Vec::new(); ex.len()];
    let mut ambiguous = vec![false; ex.len()];
    for b in recs {
        if claimed.contains(&b.id) {
            continue;
        }
        let holders: Vec<usize> = (0..ex.len())
            .filter(|&i| {
                out[i].kind == PairKind::NotPaired
                    && b.id != ex[i].conn.id
                    && is_backend_attempt(ex[i].proxy, b)
                    && in_window(b.start, ex[i].t0, ex[i].t1)
            })
            .collect();
        for &i in &holders {
            out[i].candidates += 1;
        }
        // The exchange whose request came last before the attempt started: a proxy connects
        // right after it reads a request.
        if let Some(&best) = holders
            .iter()
            .filter(|&&i| ex[i].t0.0 <= b.start.0 + MARGIN_NS)
            .max_by_key(|&&i| (ex[i].t0, i))
        {
            time_pairs[best].push(b);
            // Ambiguous when another exchange was still waiting for its answer as the attempt
            // started (not one answered a moment before, inside the margin only).
            let waiting = holders
                .iter()
                .filter(|&&i| b.start.0 >= ex[i].t0.0 - MARGIN_NS && b.start.0 < ex[i].t1.0)
                .count();
            if waiting > 1 {
                ambiguous[best] = true;
            }
        }
    }
    for (i, bs) in time_pairs.into_iter().enumerate() {
        if !bs.is_empty() {
            out[i].kind = PairKind::Time;
            out[i].confidence = if ambiguous[i] {
                PairConfidence::Low
            } else {
                PairConfidence::Medium
            };
            out[i].attempts = bs.into_iter().map(|b| (b, None)).collect();
        }
    }
    out
}

type GroupKey = (
    SocketAddr,
    SignatureId,
    Option<u16>,
    &'static str,
    Option<SocketAddr>,
    PairKind,
);

/// Builds the chains: exchanges grouped by (proxy, what the client saw, backend outcome,
/// backend, pairing kind); counts are of paired exchanges only.
pub fn chains(recs: &[ConnRecord], topo: &Topology) -> (Vec<Chain>, Vec<PairedExchange>) {
    let ex = exchanges(recs, topo);
    let pairs = pair(&ex, recs);
    let listed: Vec<PairedExchange> = ex
        .iter()
        .zip(&pairs)
        .take(MAX_EXCHANGES_LISTED)
        .map(|(e, p)| PairedExchange {
            client_first: e.conn.first.number,
            request: e.request.map(|r| r.frame.number),
            answer: e.answer.map(|a| a.number),
            proxy: e.conn.resp.to_string(),
            front_signature: e.signature.name(),
            status: e.status,
            pairing: p.kind.name(),
            confidence: p.confidence,
            attempts: p
                .attempts
                .iter()
                .map(|(b, q)| {
                    let (o, s) = outcome(b, *q);
                    Attempt {
                        frame: b.first.number,
                        from: b.orig.to_string(),
                        to: b.resp.to_string(),
                        outcome: o,
                        status: s,
                    }
                })
                .collect(),
        })
        .collect();
    let mut totals: rustc_hash::FxHashMap<(SocketAddr, SignatureId, Option<u16>), u64> =
        Default::default();
    for e in &ex {
        *totals
            .entry((e.conn.resp, e.signature, e.status))
            .or_default() += 1;
    }
    let mut groups: Vec<(GroupKey, u64, PairConfidence, usize)> = Vec::new();
    for (i, (e, p)) in ex.iter().zip(&pairs).enumerate() {
        // The attempt that decided the outcome: the worst one (a failed attempt explains more
        // than a successful retry), else the last.
        let (o, _) = p
            .attempts
            .iter()
            .map(|(b, q)| outcome(b, *q))
            .find(|(o, _)| *o != "ok")
            .unwrap_or(if p.attempts.is_empty() {
                ("none", None)
            } else {
                ("ok", None)
            });
        let backend = p
            .attempts
            .iter()
            .find(|(b, q)| outcome(b, *q).0 == o)
            .map(|(b, _)| b.resp);
        let key = (e.conn.resp, e.signature, e.status, o, backend, p.kind);
        match groups.iter_mut().find(|g| g.0 == key) {
            Some(g) => {
                g.1 += 1;
                g.2 = g.2.min(p.confidence);
            }
            None => groups.push((key, 1, p.confidence, i)),
        }
    }
    let mut out = Vec::new();
    for ((proxy, sig, status, o, backend, kind), n, confidence, i) in groups {
        let e = &ex[i];
        let p = &pairs[i];
        let total = totals.get(&(proxy, sig, status)).copied().unwrap_or(n);
        let what = match status {
            Some(s) => format!("client requests answered {} by the proxy {}", s, proxy),
            None => format!(
                "client connections to the proxy {} that failed with {}",
                proxy,
                sig.name()
            ),
        };
        let server_hdr = p
            .attempts
            .iter()
            .find_map(|(_, q)| q.and_then(|q| q.answer.as_ref()).and_then(|a| a.2.clone()));
        let back_from: Vec<String> = {
            let mut v: Vec<IpAddr> = p.attempts.iter().map(|(b, _)| b.orig.ip()).collect();
            v.sort();
            v.dedup();
            v.iter().map(|a| a.to_string()).collect()
        };
        let tries = if p.attempts.len() > 1 {
            format!(" ({} attempts each: the proxy retried)", p.attempts.len())
        } else {
            String::new()
        };
        let backend_leg_seen = recs.iter().any(|b| is_backend_attempt(e.proxy, b));
        let summary = if kind == PairKind::NotPaired {
            if backend_leg_seen {
                format!(
                    "{} of {} {} could not be paired with a backend attempt ({} candidate connection{} in their window): the proxy may have answered without contacting a backend (its configuration, limits, health checks), or the attempt is outside the capture",
                    n,
                    total,
                    what,
                    p.candidates,
                    if p.candidates == 1 { "" } else { "s" }
                )
            } else {
                format!(
                    "{} of {} {}: the proxy's backend leg is not in the capture, so the cause cannot be placed (capture with `tcpdump -i any` on the proxy)",
                    n, total, what
                )
            }
        } else {
            format!(
                "{} of {} {} are explained by their own backend attempts ({} pairing, {} confidence): {} → {} {}{}",
                n,
                total,
                what,
                kind.name(),
                match confidence {
                    PairConfidence::High => "high",
                    PairConfidence::Medium => "medium",
                    PairConfidence::Low => "low: several exchanges were in flight",
                    PairConfidence::None => "no",
                },
                back_from.join("/"),
                backend.map_or("the backend".to_string(), |b| b.to_string()),
                outcome_words(o, status.filter(|_| o == "backend-5xx").or_else(|| {
                    p.attempts.iter().find_map(|(b, q)| outcome(b, *q).1)
                }), server_hdr.as_deref()),
                tries
            )
        };
        let attempts: Vec<Attempt> = p
            .attempts
            .iter()
            .map(|(b, q)| {
                let (o, s) = outcome(b, *q);
                Attempt {
                    frame: b.first.number,
                    from: b.orig.to_string(),
                    to: b.resp.to_string(),
                    outcome: o,
                    status: s,
                }
            })
            .collect();
        out.push(Chain {
            summary,
            proxy,
            front_signature: sig,
            front_status: status,
            back_signature: outcome_signature(o),
            backend,
            explained: if kind == PairKind::NotPaired { 0 } else { n },
            front_failures: total,
            pairing: kind,
            confidence,
            attempts,
            example: example(e, p),
        });
    }
    out.sort_by(|a, b| {
        b.explained
            .cmp(&a.explained)
            .then(a.proxy.cmp(&b.proxy))
            .then(a.front_status.cmp(&b.front_status))
    });
    (out, listed)
}

/// One exchange end to end: what the client sent, each backend attempt's key frames, and what the
/// client got; times relative to the client's request.
fn example(e: &Exchange<'_>, p: &Paired<'_>) -> Vec<Evidence> {
    let t0 = e.t0;
    let rel = |t: Timestamp| {
        let d = t.nanos_since(t0);
        if d >= 0 {
            format!("+{}", human_duration(d))
        } else {
            format!("-{}", human_duration(-d))
        }
    };
    let mut ev = Vec::new();
    match e.request {
        Some(r) => ev.push(Evidence {
            frame: r.frame,
            kind: EvidenceKind::Data,
            description: format!(
                "client {} sends {} {} to {}",
                e.conn.orig.ip(),
                r.method,
                r.target,
                e.conn.resp
            ),
        }),
        None => ev.push(Evidence {
            frame: e.conn.first,
            kind: if e.conn.first_is_syn {
                EvidenceKind::Syn
            } else {
                EvidenceKind::Data
            },
            description: format!("client {} connects to {}", e.conn.orig, e.conn.resp),
        }),
    }
    for (b, q) in &p.attempts {
        let mut frames: Vec<Evidence> = Vec::new();
        if let Some(q) = q {
            frames.push(Evidence {
                frame: q.frame,
                kind: EvidenceKind::Data,
                description: format!("{} {} forwarded to {}", q.method, q.target, b.resp),
            });
            if let Some((s, fr, _)) = &q.answer {
                frames.push(Evidence {
                    frame: *fr,
                    kind: EvidenceKind::Data,
                    description: format!("{} answers {}", b.resp, s),
                });
            }
        }
        if let Some((_, _, fev)) = &b.failure {
            for x in fev {
                if !frames.iter().any(|y| y.frame == x.frame) {
                    frames.push(x.clone());
                }
            }
        }
        if frames.is_empty() && b.first_is_syn {
            frames.push(Evidence {
                frame: b.first,
                kind: EvidenceKind::Syn,
                description: format!("SYN {} → {}", b.orig, b.resp),
            });
        }
        for x in frames {
            ev.push(Evidence {
                frame: x.frame,
                kind: x.kind,
                description: format!("backend leg, {}: {}", rel(x.frame.ts), x.description),
            });
        }
    }
    match (e.status, e.answer, &e.conn.failure) {
        (Some(s), Some(a), _) => ev.push(Evidence {
            frame: a,
            kind: EvidenceKind::Data,
            description: format!("{}: {} answers {} to the client", rel(a.ts), e.conn.resp, s),
        }),
        (None, _, Some((_, _, fev))) => {
            for x in fev {
                if !ev.iter().any(|y| y.frame == x.frame) {
                    ev.push(Evidence {
                        frame: x.frame,
                        kind: x.kind,
                        description: format!("client leg, {}: {}", rel(x.frame.ts), x.description),
                    });
                }
            }
        }
        _ => {}
    }
    ev.sort_by_key(|x| (x.frame.ts, x.frame.number));
    ev.dedup_by_key(|x| (x.frame.file, x.frame.number));
    ev
}

/// Passthrough relays: a connection whose first client bytes (≥ `MIN_FIRST_BYTES`) reappear on a
/// connection from another host that started at most `topology::MATCH_WINDOW` later. Returns
/// (front endpoint, backend-side address, backend endpoint, kind) for the topology.
pub fn relays(recs: &[ConnRecord]) -> Vec<(SocketAddr, IpAddr, SocketAddr, &'static str)> {
    let mut by_bytes: rustc_hash::FxHashMap<(u64, u16), Vec<&ConnRecord>> = Default::default();
    for r in recs {
        if let Some(fb) = r.first_bytes.filter(|fb| fb.1 >= MIN_FIRST_BYTES) {
            by_bytes.entry(fb).or_default().push(r);
        }
    }
    // Within a group, only connections that start within MATCH_WINDOW of each other can be a
    // relay: sorted by start, each connection is compared with the few that follow it (a group of
    // identical requests from a load generator holds tens of thousands of connections).
    let mut seen: rustc_hash::FxHashSet<(SocketAddr, IpAddr, SocketAddr, &'static str)> =
        Default::default();
    for group in by_bytes.values_mut() {
        // A relay's two connections come from different hosts: a group from one host (a load
        // generator's identical requests, tens of thousands) holds no pair, and is not scanned.
        let first_ip = group[0].orig.ip();
        if group.iter().all(|r| r.orig.ip() == first_ip) {
            continue;
        }
        group.sort_by_key(|r| r.start);
        for a in group.iter() {
            let lo = group.partition_point(|b| b.start < a.start);
            for b in &group[lo..] {
                let d = b.start.nanos_since(a.start);
                if d > crate::topology::MATCH_WINDOW {
                    break;
                }
                if a.orig.ip() != b.orig.ip() && a.resp != b.resp && b.resp.ip() != a.orig.ip() {
                    seen.insert((
                        a.resp,
                        b.orig.ip(),
                        b.resp,
                        if a.tls {
                            "a TLS ClientHello"
                        } else {
                            "the first payload"
                        },
                    ));
                }
            }
        }
    }
    let mut out: Vec<_> = seen.into_iter().collect();
    out.sort();
    out
}

#[cfg(test)]
mod tests;
