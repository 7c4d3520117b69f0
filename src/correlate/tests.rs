//! Pairing tests on hand-built records (the module comment is the contract).
//!
//! Conventions: the client 10.0.0.1 talks to the proxy's front 10.0.1.1:8080; the proxy connects
//! to backends from 10.0.2.1. Times are milliseconds after T0; a record's first frame is numbered
//! by its start time (distinct times keep frame numbers distinct).

use super::*;
use crate::signature::{Evidence, EvidenceKind, Severity, SignatureId};
use crate::time::{Timestamp, NANOS_PER_MILLI};
use crate::topology::{Confidence, Proxy, Topology};

const T0: i64 = 1_700_000_000_000_000_000;
const FRONT: &str = "10.0.1.1:8080";
const BACK_FROM: &str = "10.0.2.1";
const BACKEND: &str = "10.0.2.2:80";

fn fr(ms: i64) -> FrameRef {
    FrameRef {
        file: 0,
        number: ms as u64,
        ts: Timestamp(T0 + ms * NANOS_PER_MILLI),
    }
}

fn sa(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// One proxy: front `FRONT`, back address `BACK_FROM`.
fn topo() -> Topology {
    let mut t = Topology::default();
    t.proxies.push(Proxy {
        front: vec![sa(FRONT)],
        back_addresses: vec![BACK_FROM.parse().unwrap()],
        backends: vec![sa(BACKEND)],
        confidence: Confidence::High,
        evidence: Vec::new(),
    });
    t
}

fn rec(id: u64, orig: &str, resp: &str, start: i64, end: i64) -> ConnRecord {
    ConnRecord {
        id,
        orig: sa(orig),
        resp: sa(resp),
        start: fr(start).ts,
        end: fr(end).ts,
        first: fr(start),
        first_is_syn: true,
        first_bytes: None,
        tls: false,
        requests: Vec::new(),
        failure: None,
    }
}

/// A client connection to the proxy's front.
fn client(id: u64, start: i64, end: i64) -> ConnRecord {
    rec(id, &format!("10.0.0.1:{}", 50000 + id), FRONT, start, end)
}

/// A proxy → backend connection.
fn backend(id: u64, to: &str, start: i64, end: i64) -> ConnRecord {
    rec(id, &format!("{}:{}", BACK_FROM, 40000 + id), to, start, end)
}

fn req(at: i64, method: &str, target: &str, answer: Option<(u16, i64)>) -> ReqRecord {
    ReqRecord {
        frame: fr(at),
        method: method.into(),
        target: target.into(),
        forwarded_for: None,
        answer: answer.map(|(s, t)| (s, fr(t), None)),
    }
}

fn ev(at: i64, kind: EvidenceKind) -> Evidence {
    Evidence {
        frame: fr(at),
        kind,
        description: format!("frame {at}"),
    }
}

/// A backend attempt refused at `start` + 1 ms.
fn refused(id: u64, to: &str, start: i64) -> ConnRecord {
    let mut b = backend(id, to, start, start + 1);
    b.finding(
        SignatureId::ConnectionRefused,
        Severity::Critical,
        &[
            ev(start, EvidenceKind::Syn),
            ev(start + 1, EvidenceKind::Rst),
        ],
    );
    b
}

fn attempt_frames(c: &Chain) -> Vec<u64> {
    c.attempts.iter().map(|a| a.frame).collect()
}

#[track_caller]
fn chain_for(chains: &[Chain], status: u16) -> &Chain {
    let v: Vec<&Chain> = chains
        .iter()
        .filter(|c| c.front_status == Some(status))
        .collect();
    assert_eq!(v.len(), 1, "one chain for {status}: {chains:#?}");
    v[0]
}

#[test]
fn concurrent_requests_pair_by_identity_and_time_without_sharing_attempts() {
    // 502: GET /other at 100, answered at 300. 504: GET /slow at 150, answered at 5150.
    let mut c502 = client(1, 90, 310);
    c502.requests
        .push(req(100, "GET", "/other", Some((502, 300))));
    let mut c504 = client(2, 140, 5160);
    c504.requests
        .push(req(150, "GET", "/slow", Some((504, 5150))));
    // The refused attempt (in the 502's window only) and the one carrying GET /slow, which
    // starts inside both windows: it is claimed by identity and never given to the 502 by time.
    let r = refused(10, "10.0.2.3:80", 101);
    let mut slow = backend(11, BACKEND, 151, 5150);
    slow.requests.push(req(152, "GET", "/slow", None));
    slow.finding(
        SignatureId::UpstreamTimeout,
        Severity::Critical,
        &[ev(152, EvidenceKind::Data)],
    );
    let recs = vec![c502, c504, r, slow];
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 2, "{chains:#?}");

    let a = chain_for(&chains, 504);
    assert_eq!(a.pairing, PairKind::HttpRequest);
    assert_eq!(a.confidence, PairConfidence::Medium);
    assert_eq!(attempt_frames(a), vec![151]);
    assert_eq!(a.attempts[0].outcome, "no-response");
    assert_eq!(a.backend, Some(sa(BACKEND)));
    assert_eq!(a.back_signature, Some(SignatureId::UpstreamTimeout));
    assert_eq!((a.explained, a.front_failures), (1, 1));

    let b = chain_for(&chains, 502);
    assert_eq!(b.pairing, PairKind::Time);
    assert_eq!(b.confidence, PairConfidence::Medium);
    assert_eq!(attempt_frames(b), vec![101]);
    assert_eq!(b.attempts[0].outcome, "refused");
    assert_eq!(b.backend, Some(sa("10.0.2.3:80")));
    assert_eq!(b.back_signature, Some(SignatureId::ConnectionRefused));
    assert_eq!(b.explained, 1);
}

#[test]
fn refused_retries_in_one_window_are_one_exchange() {
    let mut c = client(1, 90, 410);
    c.requests.push(req(100, "GET", "/", Some((503, 400))));
    let recs = vec![
        c,
        refused(10, BACKEND, 110),
        refused(11, BACKEND, 210),
        refused(12, BACKEND, 310),
    ];
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let ch = &chains[0];
    assert_eq!(ch.front_status, Some(503));
    assert_eq!(ch.pairing, PairKind::Time);
    assert_eq!(attempt_frames(ch), vec![110, 210, 310]);
    assert!(ch.attempts.iter().all(|a| a.outcome == "refused"));
    assert_eq!((ch.explained, ch.front_failures), (1, 1));
    assert!(ch.summary.contains("3 attempts each"), "{}", ch.summary);
    // The example traces the request, every attempt and the answer, in time order.
    let frames: Vec<u64> = ch.example.iter().map(|e| e.frame.number).collect();
    assert_eq!(frames, vec![100, 110, 111, 210, 211, 310, 311, 400]);
}

#[test]
fn connect_pairs_with_its_authority_not_a_concurrent_port() {
    let mut c = client(1, 90, 310);
    c.requests
        .push(req(100, "CONNECT", "10.0.2.2:9443", Some((502, 300))));
    // Another port of the same host, started first, inside the window.
    let other = refused(10, "10.0.2.2:9444", 120);
    let named = refused(11, "10.0.2.2:9443", 150);
    let recs = vec![c, other, named];
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let ch = &chains[0];
    assert_eq!(ch.pairing, PairKind::ConnectAuthority);
    assert_eq!(ch.confidence, PairConfidence::High);
    assert_eq!(attempt_frames(ch), vec![150]);
    assert_eq!(ch.backend, Some(sa("10.0.2.2:9443")));
}

/// A failed TLS client connection (no HTTP) and a backend connection with the same first bytes.
fn passthrough(len: u16, tls: bool) -> Vec<ConnRecord> {
    let mut c = client(1, 100, 3100);
    c.tls = tls;
    c.first_bytes = Some((0xfeed_beef, len));
    c.finding(
        SignatureId::TlsStall,
        Severity::Critical,
        &[ev(102, EvidenceKind::Data), ev(3100, EvidenceKind::Fin)],
    );
    let mut b = backend(10, "10.0.2.2:443", 101, 3100);
    b.tls = tls;
    b.first_bytes = Some((0xfeed_beef, len));
    b.finding(
        SignatureId::TlsStall,
        Severity::Critical,
        &[ev(103, EvidenceKind::Data)],
    );
    vec![c, b]
}

#[test]
fn same_first_bytes_pair_as_client_hello() {
    let recs = passthrough(64, true);
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    assert_eq!(chains[0].front_signature, SignatureId::TlsStall);
    assert_eq!(chains[0].pairing, PairKind::ClientHello);
    assert_eq!(chains[0].confidence, PairConfidence::High);
    assert_eq!(attempt_frames(&chains[0]), vec![101]);
    assert_eq!(chains[0].attempts[0].outcome, "tls-stall");
    // The boundary length pairs too; without TLS it is a first payload.
    assert_eq!(
        super::chains(&passthrough(32, true), &topo()).0[0].pairing,
        PairKind::ClientHello
    );
    assert_eq!(
        super::chains(&passthrough(64, false), &topo()).0[0].pairing,
        PairKind::FirstPayload
    );
}

#[test]
fn short_first_bytes_are_not_an_identity() {
    let recs = passthrough(31, true);
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    assert_ne!(chains[0].pairing, PairKind::ClientHello);
    // The backend connection still started inside the window: a time pair, nothing stronger.
    assert_eq!(chains[0].pairing, PairKind::Time);

    // Outside the window, short first bytes leave the exchange unpaired.
    let mut recs = passthrough(31, true);
    recs[1].start = fr(5000).ts;
    recs[1].first = fr(5000);
    let chains = super::chains(&recs, &topo()).0;
    assert_eq!(chains[0].pairing, PairKind::NotPaired);
}

#[test]
fn proxy_answer_without_a_backend_attempt_is_not_paired() {
    let mut c = client(1, 90, 110);
    c.requests.push(req(100, "GET", "/", Some((503, 105))));
    // The backend leg is in the capture, but nothing started inside the window.
    let mut later = backend(10, BACKEND, 5000, 5100);
    later
        .requests
        .push(req(5001, "GET", "/", Some((200, 5050))));
    let mut earlier = backend(11, BACKEND, 10, 20);
    earlier.requests.push(req(11, "GET", "/", Some((200, 15))));
    let recs = vec![c, later, earlier];
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let ch = &chains[0];
    assert_eq!(ch.pairing, PairKind::NotPaired);
    assert_eq!(ch.confidence, PairConfidence::None);
    assert_eq!(ch.explained, 0);
    assert_eq!(ch.front_failures, 1);
    assert!(ch.attempts.is_empty());
    assert_eq!(ch.back_signature, None);
    assert!(ch.summary.contains("could not be paired"), "{}", ch.summary);
    assert!(
        ch.summary.contains("0 candidate connections"),
        "{}",
        ch.summary
    );
}

#[test]
fn proxy_answer_without_a_backend_leg_says_the_leg_is_missing() {
    let mut c = client(1, 90, 110);
    c.requests.push(req(100, "GET", "/", Some((503, 105))));
    let chains = chains(&[c], &topo()).0;
    assert_eq!(chains.len(), 1);
    assert_eq!(chains[0].explained, 0);
    assert!(
        chains[0]
            .summary
            .contains("backend leg is not in the capture"),
        "{}",
        chains[0].summary
    );
}

#[test]
fn backend_answering_503_itself_is_backend_5xx() {
    let mut c = client(1, 90, 310);
    c.requests.push(req(
        100,
        "GET",
        "http://shop.example/api?q=1",
        Some((503, 300)),
    ));
    let mut b = backend(10, BACKEND, 150, 295);
    let mut q = req(160, "GET", "/api?q=1", None);
    q.answer = Some((503, fr(290), Some("gunicorn".into())));
    q.forwarded_for = Some("10.0.0.1".into());
    b.requests.push(q);
    let recs = vec![c, b];
    let chains = chains(&recs, &topo()).0;
    assert_eq!(chains.len(), 1, "{chains:#?}");
    let ch = &chains[0];
    assert_eq!(ch.pairing, PairKind::HttpRequest);
    assert_eq!(ch.confidence, PairConfidence::High);
    assert_eq!(ch.attempts.len(), 1);
    assert_eq!(ch.attempts[0].outcome, "backend-5xx");
    assert_eq!(ch.attempts[0].status, Some(503));
    assert_eq!(ch.back_signature, Some(SignatureId::GatewayError));
    assert!(ch.summary.contains("itself"), "{}", ch.summary);
    assert!(
        ch.summary
            .contains("answered 503 itself (Server: gunicorn)"),
        "{}",
        ch.summary
    );
}

#[test]
fn finding_keeps_the_worst_and_ignores_info_and_abortive_close() {
    let mut b = backend(10, BACKEND, 100, 200);
    b.finding(SignatureId::ConnectionReset, Severity::Info, &[]);
    b.finding(SignatureId::AbortiveClose, Severity::Warning, &[]);
    assert!(b.failure.is_none());
    b.finding(SignatureId::RetransmissionStorm, Severity::Warning, &[]);
    b.finding(SignatureId::ConnectionReset, Severity::Critical, &[]);
    b.finding(SignatureId::TlsStall, Severity::Critical, &[]);
    assert_eq!(
        b.failure.as_ref().map(|f| (f.0, f.1)),
        Some((SignatureId::ConnectionReset, Severity::Critical))
    );
}

#[test]
fn origin_form_reduces_absolute_targets() {
    assert_eq!(origin_form("http://a.example/x/y?z"), "/x/y?z");
    assert_eq!(origin_form("https://a.example"), "/");
    assert_eq!(origin_form("/x"), "/x");
    assert_eq!(origin_form("a.example:443"), "a.example:443");
}

/// `relays` looks only at connections starting within `MATCH_WINDOW` of each other: the same
/// pairs as the definition (every pair of a group), on a mix of hosts, times and fingerprints.
#[test]
fn relays_equal_the_all_pairs_definition() {
    let mut recs = Vec::new();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = |m: u64| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x % m
    };
    for id in 0..600 {
        let orig = format!("10.0.{}.{}:{}", next(3), next(4), 40000 + id);
        let resp = format!("10.1.0.{}:{}", next(4), 80 + next(2));
        // Frames are milliseconds apart: starts from 0 to 400 ms, windows of 50 ms overlap.
        let start = next(400) as i64;
        let mut r = rec(id, &orig, &resp, start, start + 5);
        r.first_bytes = Some((next(3), 64));
        r.tls = next(2) == 0;
        recs.push(r);
    }
    let mut naive = Vec::new();
    for a in &recs {
        for b in &recs {
            let d = b.start.nanos_since(a.start);
            if a.first_bytes == b.first_bytes
                && a.orig.ip() != b.orig.ip()
                && a.resp != b.resp
                && (0..=crate::topology::MATCH_WINDOW).contains(&d)
                && b.resp.ip() != a.orig.ip()
            {
                let how = if a.tls {
                    "a TLS ClientHello"
                } else {
                    "the first payload"
                };
                naive.push((a.resp, b.orig.ip(), b.resp, how));
            }
        }
    }
    naive.sort();
    naive.dedup();
    assert!(naive.len() > 10, "the test data pairs something");
    assert_eq!(relays(&recs), naive);
}
