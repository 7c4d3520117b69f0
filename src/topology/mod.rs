//! Who is client, proxy and backend, and which hop of the path a connection is on.
//!
//! Owns: role inference from finished connections, user-given roles (`--proxy`, `--backend`),
//! hop attribution (`client->proxy`, `proxy->backend`, `client->server`), and the evidence and
//! confidence of each inferred role. Must not: change flow state or judge outages.
//!
//! Inference (`infer`), each rule stating its evidence:
//! - **request match** (strong): a request seen arriving at endpoint F from a client and, within
//!   `MATCH_WINDOW`, the same method + target leaving host Y towards endpoint B (Y ≠ the client):
//!   F is a proxy whose backend side is Y, talking to backend B. Two matches, or one match plus
//!   another hint, are needed so that two unrelated servers that happen to serve the same path at
//!   the same moment are not taken for a proxy;
//! - **forwarding headers** (strong): `X-Forwarded-For`, `X-Real-IP`, `Forwarded` or `Via` on a
//!   request from Y: Y is a proxy's backend side;
//! - **gateway answers** (medium): F answered 502 or 504 (only a gateway does), or its responses
//!   carry `Via` / `X-Squid-Error`; a connection from host Y that starts inside the interval
//!   between such a request and its error response ties Y to F as its backend side;
//! - the proxy's own address is always one of its backend-side addresses (one-interface proxy).
//!
//! Memory: at most `MAX_REQUESTS` request records and `MAX_CONNECT_STARTS` connection starts are
//! kept for matching (a sample is enough to recognise a proxy); roles are per endpoint.

use crate::app::text::ShortText;
use crate::time::{Timestamp, NANOS_PER_MILLI};
use rustc_hash::{FxHashMap, FxHashSet};
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

/// A request on the backend leg must leave within this long after it arrived on the client leg.
/// Proxies forward a request within milliseconds; a longer window would pair a backend request
/// with the client's *next* request (the client's think time) and invert the roles.
pub const MATCH_WINDOW: i64 = 50 * NANOS_PER_MILLI;
/// Request records kept for matching.
pub const MAX_REQUESTS: usize = 20_000;
/// Connection starts kept for gateway-interval ties.
pub const MAX_CONNECT_STARTS: usize = 20_000;
/// Gateway-error intervals kept.
pub const MAX_GATEWAY_ERRORS: usize = 10_000;

/// A role given on the command line: an address, optionally with a port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RoleAddr {
    pub ip: IpAddr,
    pub port: Option<u16>,
}

impl RoleAddr {
    /// Parses `1.2.3.4`, `1.2.3.4:80`, `::1`, `[::1]:80`.
    pub fn parse(s: &str) -> Option<RoleAddr> {
        if let Ok(sa) = s.parse::<SocketAddr>() {
            return Some(RoleAddr {
                ip: sa.ip(),
                port: Some(sa.port()),
            });
        }
        let t = s.trim_start_matches('[').trim_end_matches(']');
        t.parse::<IpAddr>()
            .ok()
            .map(|ip| RoleAddr { ip, port: None })
    }

    fn matches(&self, ep: &SocketAddr) -> bool {
        self.ip == ep.ip() && self.port.is_none_or(|p| p == ep.port())
    }
}

/// Roles given by the user.
#[derive(Clone, Debug, Default)]
pub struct GivenRoles {
    pub proxies: Vec<RoleAddr>,
    pub backends: Vec<RoleAddr>,
}

/// How sure proxyscope is of a role.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Confidence {
    Medium,
    High,
    /// Given on the command line.
    Given,
}

/// One proxy and what proves it.
#[derive(Clone, Debug, Serialize)]
pub struct Proxy {
    /// Endpoints where it accepts client connections.
    pub front: Vec<SocketAddr>,
    /// Addresses it connects to backends from.
    pub back_addresses: Vec<IpAddr>,
    /// Backend endpoints it was seen connecting to.
    pub backends: Vec<SocketAddr>,
    pub confidence: Confidence,
    pub evidence: Vec<String>,
}

/// The roles of a capture.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Topology {
    pub proxies: Vec<Proxy>,
    #[serde(skip)]
    given: GivenRoles,
}

impl Topology {
    /// The hop of a connection from `client` to `server`.
    pub fn hop(&self, client: IpAddr, server: SocketAddr) -> Hop {
        let given_front = self.given.proxies.iter().any(|p| p.matches(&server));
        if given_front || self.proxies.iter().any(|p| p.front.contains(&server)) {
            return Hop::ClientToProxy;
        }
        let given_back = self.given.proxies.iter().any(|p| p.ip == client)
            || self.given.backends.iter().any(|b| b.matches(&server));
        if given_back
            || self
                .proxies
                .iter()
                .any(|p| p.back_addresses.contains(&client))
        {
            return Hop::ProxyToBackend;
        }
        Hop::ClientToServer
    }

    /// The proxy a hop belongs to (front endpoint or back address), if any.
    pub fn proxy_of(&self, client: IpAddr, server: SocketAddr) -> Option<&Proxy> {
        self.proxies
            .iter()
            .find(|p| p.front.contains(&server) || p.back_addresses.contains(&client))
    }
}

#[derive(Clone, Debug)]
struct Req {
    client: IpAddr,
    server: SocketAddr,
    /// Copied per request: inline when short (no allocation per connection).
    method: ShortText,
    target: ShortText,
    ts: Timestamp,
    /// (status, response time) when the response was seen.
    answer: Option<(u16, Timestamp)>,
}

/// The requests (sorted by time) as request matching compares them: client address, server
/// endpoint and method + target replaced by small ids, so that a pair is compared as numbers.
/// The `i`-th is `Collector::requests[i]`.
struct Slim {
    reqs: Vec<SlimReq>,
}

struct SlimReq {
    ts: i64,
    client: u32,
    server: u32,
    /// Method and target.
    what: u32,
    /// The response's status and time, when it was seen.
    status: u16,
    answer_ts: Option<i64>,
}

impl Slim {
    fn of(requests: &[Req]) -> Slim {
        let mut clients: FxHashMap<IpAddr, u32> = FxHashMap::default();
        let mut servers: FxHashMap<SocketAddr, u32> = FxHashMap::default();
        let mut whats: FxHashMap<(&str, &str), u32> = FxHashMap::default();
        fn id<K: std::hash::Hash + Eq>(m: &mut FxHashMap<K, u32>, k: K) -> u32 {
            let n = m.len() as u32;
            *m.entry(k).or_insert(n)
        }
        let reqs = requests
            .iter()
            .map(|r| SlimReq {
                ts: r.ts.0,
                client: id(&mut clients, r.client),
                server: id(&mut servers, r.server),
                what: id(&mut whats, (&*r.method, &*r.target)),
                status: r.answer.map_or(0, |a| a.0),
                answer_ts: r.answer.map(|a| a.1 .0),
            })
            .collect();
        Slim { reqs }
    }
}

/// "1 request", "3 requests".
fn count(n: u32, what: &str) -> String {
    format!("{} {}{}", n, what, if n == 1 { "" } else { "s" })
}

/// Endpoints, comma-separated, in order.
fn list(eps: &FxHashSet<SocketAddr>) -> String {
    let mut v: Vec<SocketAddr> = eps.iter().copied().collect();
    v.sort();
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Connections tied to a front by timing: their sources join its backend side, their
/// destinations its backends, and `why` says how each source was tied.
fn tie(
    v: &FxHashMap<IpAddr, (u32, FxHashSet<SocketAddr>)>,
    back: &mut Vec<IpAddr>,
    backends: &mut Vec<SocketAddr>,
    evidence: &mut Vec<String>,
    why: &dyn Fn(u32, IpAddr, &FxHashSet<SocketAddr>) -> String,
) {
    for (ip, (n, bs)) in v {
        if !back.contains(ip) {
            back.push(*ip);
        }
        backends.extend(bs.iter().copied());
        evidence.push(why(*n, *ip, bs));
    }
}

/// Addresses, comma-separated, in order.
fn list_ips(ips: &FxHashSet<IpAddr>) -> String {
    let mut v: Vec<IpAddr> = ips.iter().copied().collect();
    v.sort();
    v.iter()
        .map(|b| b.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the inference collects while connections finish.
#[derive(Clone, Default)]
pub struct Collector {
    requests: Vec<Req>,
    /// (originator ip, server endpoint, start) of every connection (sampled).
    starts: Vec<(IpAddr, SocketAddr, Timestamp)>,
    /// Requests carrying forwarding headers: the sending address and header.
    forwarded_from: FxHashMap<IpAddr, String>,
    /// Endpoints that answered 502/503/504 or carried Via / X-Squid-Error, with the reason first
    /// seen in capture time (the order connections finish in does not choose it).
    gateways: FxHashMap<SocketAddr, (Timestamp, String)>,
    /// (proxy endpoint, request ts, error response ts).
    gateway_errors: Vec<(SocketAddr, Timestamp, Timestamp)>,
    /// Client addresses per server endpoint (to exclude the client itself from ties).
    clients_of: FxHashMap<SocketAddr, FxHashSet<IpAddr>>,
    /// Endpoints that answered 503: a gateway only when backend connections started inside the
    /// failing request tie it to a backend side (an origin server may answer 503 itself).
    maybe_gateways: FxHashMap<SocketAddr, (Timestamp, String)>,
    /// Passthrough relays: front endpoint -> (relays seen, backend-side addresses, backends, kind).
    relays: FxHashMap<SocketAddr, Relay>,
    /// Addresses of the capturing host itself (Linux cooked captures mark each packet as sent by
    /// or addressed to the host): at most `MAX_LOCALS`.
    locals: FxHashSet<IpAddr>,
    /// (originator ip, server endpoint, start, end) of connections (sampled), for ties on the
    /// capturing host.
    spans: Vec<(IpAddr, SocketAddr, Timestamp, Timestamp)>,
}

/// Local addresses remembered.
const MAX_LOCALS: usize = 64;

/// Connections whose first client bytes reappeared on a connection from another host.
#[derive(Clone, Debug, Default)]
struct Relay {
    n: u32,
    back: FxHashSet<IpAddr>,
    backends: FxHashSet<SocketAddr>,
    kind: &'static str,
}

/// Most distinct client addresses remembered per endpoint.
const MAX_CLIENTS_PER_ENDPOINT: usize = 1024;

impl Collector {
    /// `ip` is an address of the capturing host.
    pub fn local_address(&mut self, ip: IpAddr) {
        if self.locals.len() < MAX_LOCALS {
            self.locals.insert(ip);
        }
    }

    /// A connection's whole span (for ties on the capturing host).
    pub fn span(&mut self, orig: SocketAddr, resp: SocketAddr, start: Timestamp, end: Timestamp) {
        if self.spans.len() < MAX_CONNECT_STARTS {
            self.spans.push((orig.ip(), resp, start, end));
        }
    }

    pub fn connection(&mut self, orig: SocketAddr, resp: SocketAddr, start: Timestamp) {
        if self.starts.len() < MAX_CONNECT_STARTS {
            self.starts.push((orig.ip(), resp, start));
        }
        let c = self.clients_of.entry(resp).or_default();
        if c.len() < MAX_CLIENTS_PER_ENDPOINT {
            c.insert(orig.ip());
        }
    }

    pub fn request(
        &mut self,
        client: IpAddr,
        server: SocketAddr,
        method: &str,
        target: &str,
        ts: Timestamp,
        forwarded: Option<&str>,
    ) {
        self.request_answered(client, server, method, target, ts, forwarded, None)
    }

    /// `request` with the status and time of its response, when seen.
    #[allow(clippy::too_many_arguments)]
    pub fn request_answered(
        &mut self,
        client: IpAddr,
        server: SocketAddr,
        method: &str,
        target: &str,
        ts: Timestamp,
        forwarded: Option<&str>,
        answer: Option<(u16, Timestamp)>,
    ) {
        if self.requests.len() < MAX_REQUESTS {
            self.requests.push(Req {
                client,
                server,
                method: method.into(),
                target: target.into(),
                ts,
                answer,
            });
        }
        if let Some(h) = forwarded {
            self.forwarded_from
                .entry(client)
                .or_insert_with(|| h.to_string());
        }
    }

    pub fn gateway_error(
        &mut self,
        server: SocketAddr,
        status: u16,
        req_ts: Timestamp,
        resp_ts: Timestamp,
    ) {
        // 502 and 504 are gateway-only statuses (RFC 9110 §15.6.3, §15.6.5); an origin server
        // may answer 503 itself, so a 503 needs backend connections inside the request too.
        let map = if status == 503 {
            &mut self.maybe_gateways
        } else {
            &mut self.gateways
        };
        keep_earliest(map, server, resp_ts, || {
            if status == 503 {
                "answered HTTP 503 while its backend connections failed".to_string()
            } else {
                format!("answered HTTP {} (only a gateway does)", status)
            }
        });
        if self.gateway_errors.len() < MAX_GATEWAY_ERRORS {
            self.gateway_errors.push((server, req_ts, resp_ts));
        }
    }

    /// The first client bytes of a connection to `front` (from a client) reappeared on a
    /// connection from `back` to `backend` (another host) shortly after: `front` relays them
    /// (a passthrough proxy: haproxy `mode tcp`, nginx `stream`).
    pub fn relay(
        &mut self,
        front: SocketAddr,
        back: IpAddr,
        backend: SocketAddr,
        kind: &'static str,
    ) {
        let r = self.relays.entry(front).or_default();
        r.n += 1;
        r.back.insert(back);
        r.backends.insert(backend);
        r.kind = kind;
    }

    /// `server`'s traffic marks it as a proxy (`what`), first seen at `ts`.
    pub fn proxy_header(&mut self, server: SocketAddr, what: &str, ts: Timestamp) {
        keep_earliest(&mut self.gateways, server, ts, || {
            format!("its responses carry {}", what)
        });
    }

    /// Infers the roles. `given` roles come first and are never overridden.
    pub fn infer(mut self, given: GivenRoles) -> Topology {
        self.requests.sort_by_key(|r| r.ts);
        self.starts.sort_by_key(|s| s.2);
        let (votes, opened) = self.request_matches();
        let gw_ties = self.gateway_ties();
        self.promote_503_gateways(&gw_ties);
        let host_ties = self.host_ties();
        let ties = Ties {
            votes: &votes,
            opened: &opened,
            gateway: &gw_ties,
            host: &host_ties,
        };
        let proxies: Vec<Proxy> = self
            .front_candidates(&ties)
            .into_iter()
            .filter_map(|f| self.proxy_at(f, &ties))
            .collect();
        let proxies = self.with_sibling_listeners(proxies);
        let mut proxies = merge_by_host(proxies);
        self.add_header_only_proxies(&mut proxies);
        let proxies = self.apply_given(proxies, &given);
        Topology { proxies, given }
    }

    /// Rule: request match. Returns, per front endpoint, the backend-side addresses its requests
    /// left from (matches, backends), and the (front, back address) pairs where a matched
    /// request's backend connection was opened on demand and its answer relayed.
    ///
    /// Every pair of requests less than `MATCH_WINDOW` apart (up to the first one's answer) is
    /// looked at, so on a busy proxy (thousands of requests in a window) this is the
    /// inference's hot loop, and `live` runs it at every verdict check: the pairs are compared
    /// as numbers (addresses and method + target replaced by small ids), and one request's
    /// matches are gathered before they are counted into the maps, in the order they were found
    /// (so `votes` is built exactly as one insert per match would build it; `opened`, only ever
    /// looked up, may get its keys in another order).
    fn request_matches(&self) -> (TieMap, FxHashMap<(SocketAddr, IpAddr), u32>) {
        let slim = Slim::of(&self.requests);
        let mut votes = TieMap::default();
        let mut opened: FxHashMap<(SocketAddr, IpAddr), u32> = FxHashMap::default();
        // One request's matches: per backend-side address, in the order first matched: (the
        // first matching request, matches, relayed-and-opened matches); and the backends seen,
        // in order, as (index in `per_client`, a request to it), for the backend sets.
        let mut per_client: Vec<(usize, u32, u32)> = Vec::new();
        let mut client_at: FxHashMap<u32, usize> = FxHashMap::default();
        let mut servers: Vec<(usize, usize)> = Vec::new();
        let mut server_seen: FxHashSet<(u32, u32)> = FxHashSet::default();
        for (i, r) in slim.reqs.iter().enumerate() {
            // Where the connections started after this request begin (found once per request).
            let mut lo: Option<usize> = None;
            // A proxy forwards a request while its client is still waiting for the answer: a
            // "match" sent after the first request was answered is the client's next request
            // (short think time), not a forwarded one. The requests are in time order, so the
            // look stops at the answer, or at the end of the window if that comes first.
            let until = r.answer_ts.map_or(i64::MAX, |ta| ta.saturating_sub(r.ts));
            for (j, r2) in slim.reqs[i + 1..].iter().enumerate() {
                let after = r2.ts.saturating_sub(r.ts);
                if after > MATCH_WINDOW || after > until {
                    break;
                }
                if r2.client == r.client || r2.server == r.server || r2.what != r.what {
                    continue;
                }
                let j = i + 1 + j;
                let q2 = &self.requests[j];
                // A second hint from the same match: the answers match too — the backend
                // answered with the same status before the front did — and the backend
                // connection was opened after the client's request arrived (a proxy
                // connects on demand and relays the answer).
                let relayed = matches!(
                    (r.answer_ts, r2.answer_ts),
                    (Some(t1), Some(t2)) if r.status == r2.status && t2 <= t1
                );
                let was_opened = relayed && {
                    let lo =
                        *lo.get_or_insert_with(|| self.starts.partition_point(|st| st.2 .0 < r.ts));
                    self.starts[lo..]
                        .iter()
                        .take_while(|st| st.2 <= q2.ts)
                        .any(|st| st.0 == q2.client && st.1 == q2.server)
                };
                let k = *client_at.entry(r2.client).or_insert_with(|| {
                    per_client.push((j, 0, 0));
                    per_client.len() - 1
                });
                per_client[k].1 += 1;
                per_client[k].2 += u32::from(was_opened);
                if server_seen.insert((r2.client, r2.server)) {
                    servers.push((k, j));
                }
            }
            if per_client.is_empty() {
                continue;
            }
            // Each address's backends together, in the order they were found (a stable sort).
            servers.sort_by_key(|s| s.0);
            let mut sv = servers.iter().peekable();
            let front = self.requests[i].server;
            let v = votes.entry(front).or_default();
            for (k, &(first, n, o)) in per_client.iter().enumerate() {
                let ip = self.requests[first].client;
                let e = v.entry(ip).or_default();
                e.0 += n;
                while let Some(&(_, to)) = sv.next_if(|s| s.0 == k) {
                    e.1.insert(self.requests[to].server);
                }
                if o > 0 {
                    *opened.entry((front, ip)).or_default() += o;
                }
            }
            per_client.clear();
            client_at.clear();
            servers.clear();
            server_seen.clear();
        }
        (votes, opened)
    }

    /// Rule: gateway interval ties (a connection started while the gateway was working on a
    /// request it then failed).
    fn gateway_ties(&self) -> TieMap {
        // request it then failed).
        let mut gw_ties = TieMap::default();
        for &(f, t0, t1) in &self.gateway_errors {
            let lo = self.starts.partition_point(|s| s.2 < t0);
            let clients = self.clients_of.get(&f);
            for &(ip, server, st) in self.starts[lo..].iter().take_while(|s| s.2 <= t1) {
                let _ = st;
                if server != f && clients.is_none_or(|c| !c.contains(&ip)) {
                    let e = gw_ties.entry(f).or_default().entry(ip).or_default();
                    e.0 += 1;
                    e.1.insert(server);
                }
            }
        }
        gw_ties
    }

    /// Rule: a 503 is a gateway's when connections started inside the request it failed.
    fn promote_503_gateways(&mut self, gw_ties: &TieMap) {
        for (f, (ts, why)) in std::mem::take(&mut self.maybe_gateways) {
            if gw_ties.contains_key(&f) {
                keep_earliest(&mut self.gateways, f, ts, || why);
            }
        }
    }

    /// Rule: captured on the proxy host itself (`tcpdump -i any`): a connection from a local
    /// address to a remote endpoint that started while a remote client's connection to a local
    /// endpoint F was open ties that local address to F as its backend side. Medium: timing
    /// on one host, identity is the pairing stage's job.
    fn host_ties(&self) -> TieMap {
        let mut host_ties = TieMap::default();
        if !self.locals.is_empty() {
            let mut outgoing: Vec<&(IpAddr, SocketAddr, Timestamp, Timestamp)> = self
                .spans
                .iter()
                .filter(|d| self.locals.contains(&d.0) && !self.locals.contains(&d.1.ip()))
                .collect();
            outgoing.sort_by_key(|d| d.2);
            for c in self
                .spans
                .iter()
                .filter(|c| self.locals.contains(&c.1.ip()) && !self.locals.contains(&c.0))
            {
                let lo = outgoing.partition_point(|d| d.2 < c.2);
                for d in outgoing[lo..].iter().take_while(|d| d.2 <= c.3) {
                    if d.1 != c.1 {
                        let e = host_ties.entry(c.1).or_default().entry(d.0).or_default();
                        e.0 += 1;
                        e.1.insert(d.1);
                    }
                }
            }
        }
        host_ties
    }

    /// Endpoints some rule points at as a proxy front. Passthrough relays (the same first client
    /// bytes on both legs) count as request matches: identical 64 bytes holding a ClientHello's
    /// random do not happen by chance. Endpoints some proxy was seen forwarding to are backends:
    /// a backend that answers 5xx itself (or carries Via) is not a second proxy unless its own
    /// backend leg is seen.
    fn front_candidates(&self, t: &Ties) -> Vec<SocketAddr> {
        let (votes, gw_ties, host_ties) = (t.votes, t.gateway, t.host);
        let backends_of_others: FxHashSet<SocketAddr> = votes
            .values()
            .flat_map(|v| v.values().flat_map(|(_, bs)| bs.iter().copied()))
            .chain(
                self.relays
                    .values()
                    .flat_map(|r| r.backends.iter().copied()),
            )
            .collect();
        let mut fronts: Vec<SocketAddr> = votes
            .keys()
            .chain(gw_ties.keys())
            .chain(self.gateways.keys())
            .chain(self.relays.keys())
            .chain(host_ties.keys())
            .copied()
            .collect();
        fronts.sort();
        fronts.dedup();
        fronts.retain(|f| {
            !backends_of_others.contains(f)
                || votes.contains_key(f)
                || gw_ties.contains_key(f)
                || self.relays.contains_key(f)
                || host_ties.contains_key(f)
        });
        fronts
    }

    /// The proxy at front endpoint `f`, with its evidence, if the rules' evidence is enough.
    fn proxy_at(&self, f: SocketAddr, t: &Ties) -> Option<Proxy> {
        let (votes, opened, gw_ties, host_ties) = (t.votes, t.opened, t.gateway, t.host);
        let mut evidence = Vec::new();
        let mut back: Vec<IpAddr> = Vec::new();
        let mut backends: Vec<SocketAddr> = Vec::new();
        let mut strong = 0u32;
        if let Some(v) = votes.get(&f) {
            for (ip, (n, bs)) in v {
                let hint = self.forwarded_from.contains_key(ip)
                    || self.gateways.contains_key(&f)
                    || opened.contains_key(&(f, *ip));
                if *n >= 2 || (*n >= 1 && hint) {
                    strong += *n;
                    back.push(*ip);
                    backends.extend(bs.iter().copied());
                    evidence.push(format!(
                    "{} arriving at {} left {} for {} with the same method and target within {} ms",
                    count(*n, "request"),
                    f,
                    ip,
                    list(bs),
                    MATCH_WINDOW / NANOS_PER_MILLI
                ));
                }
            }
        }
        if let Some(r) = self.relays.get(&f) {
            strong += r.n.max(2);
            back.extend(r.back.iter().copied());
            backends.extend(r.backends.iter().copied());
        }
        if let Some(v) = host_ties.get(&f) {
            tie(v, &mut back, &mut backends, &mut evidence, &|n, ip, bs| {
                format!(
            "captured on the host itself (the link layer marks packets sent by and to it): {} from its address {} to {} started while clients were connected to {}",
            count(n, "connection"), ip, list(bs), f
        )
            });
        }
        if let Some((_, g)) = self.gateways.get(&f) {
            evidence.push(format!("{} {}", f, g));
            if let Some(v) = gw_ties.get(&f) {
                tie(v, &mut back, &mut backends, &mut evidence, &|n, ip, bs| {
                    format!(
                        "{} from {} to {} started while {} was handling a request it then failed",
                        count(n, "connection"),
                        ip,
                        list(bs),
                        f
                    )
                });
            }
        } else if strong == 0 && !host_ties.contains_key(&f) {
            return None;
        }
        for (ip, h) in &self.forwarded_from {
            if back.contains(ip) {
                evidence.push(format!("requests from {} carry {}", ip, h));
            }
        }
        if let Some(r) = self.relays.get(&f) {
            evidence.push(format!(
            "{} to {} reappeared byte for byte ({}) on connections from {} to {}: a passthrough proxy",
            count(r.n, "connection's first client bytes"),
            f,
            r.kind,
            list_ips(&r.back),
            list(&r.backends)
        ));
        }
        if !back.contains(&f.ip()) {
            back.push(f.ip());
        }
        back.sort();
        back.dedup();
        backends.sort();
        backends.dedup();
        backends.retain(|b| *b != f);
        let confidence = if strong >= 2 || (strong >= 1 && self.gateways.contains_key(&f)) {
            Confidence::High
        } else {
            Confidence::Medium
        };
        Some(Proxy {
            front: vec![f],
            back_addresses: back,
            backends,
            confidence,
            evidence,
        })
    }

    /// Rule: other listeners on a proxy's front address (a passthrough proxy on :443 and :8443,
    /// squid on :3128 and :3129) are fronts of the same proxy when their clients are not the
    /// proxy itself and they are not one of its backends.
    fn with_sibling_listeners(&self, mut proxies: Vec<Proxy>) -> Vec<Proxy> {
        let all_backends: FxHashSet<SocketAddr> = proxies
            .iter()
            .flat_map(|p| p.backends.iter().copied())
            .collect();
        let all_fronts: FxHashSet<SocketAddr> = proxies
            .iter()
            .flat_map(|p| p.front.iter().copied())
            .collect();
        for p in &mut proxies {
            let ips: Vec<IpAddr> = p.front.iter().map(|f| f.ip()).collect();
            let mut more: Vec<SocketAddr> = self
                .clients_of
                .iter()
                .filter(|(e, clients)| {
                    ips.contains(&e.ip())
                        && !all_fronts.contains(e)
                        && !all_backends.contains(e)
                        && clients.iter().any(|c| !p.back_addresses.contains(c))
                })
                .map(|(e, _)| *e)
                .collect();
            more.sort();
            for e in more {
                p.evidence.push(format!(
                    "{} also accepts client connections (the same address as {})",
                    e, p.front[0]
                ));
                p.front.push(e);
            }
        }
        proxies
    }

    /// Forwarding headers alone: a proxy whose client side is not in the capture.
    fn add_header_only_proxies(&self, proxies: &mut Vec<Proxy>) {
        for (ip, h) in &self.forwarded_from {
            if !proxies.iter().any(|p| p.back_addresses.contains(ip)) {
                let backends: Vec<SocketAddr> = {
                    let mut b: Vec<SocketAddr> = self
                        .requests
                        .iter()
                        .filter(|r| r.client == *ip)
                        .map(|r| r.server)
                        .collect();
                    b.sort();
                    b.dedup();
                    b
                };
                proxies.push(Proxy {
                    front: Vec::new(),
                    back_addresses: vec![*ip],
                    backends,
                    confidence: Confidence::High,
                    evidence: vec![format!("requests from {} carry {}", ip, h)],
                });
            }
        }
    }

    /// Given roles: all `--proxy` addresses name one proxy (a proxy host's client-side listener
    /// and its backend-side address), merged into an inferred proxy that shares an address with
    /// it so that nothing inference found (other backend-side addresses, backends) is lost.
    fn apply_given(&self, mut proxies: Vec<Proxy>, given: &GivenRoles) -> Vec<Proxy> {
        if !given.proxies.is_empty() {
            let mut front: Vec<SocketAddr> = Vec::new();
            let mut back: Vec<IpAddr> = Vec::new();
            for p in &given.proxies {
                match p.port {
                    Some(port) => front.push(SocketAddr::new(p.ip, port)),
                    None => {
                        front.extend(self.clients_of.keys().filter(|s| s.ip() == p.ip).copied())
                    }
                }
                back.push(p.ip);
            }
            let mut backends: Vec<SocketAddr> = self
                .starts
                .iter()
                .filter(|s| back.contains(&s.0))
                .map(|s| s.1)
                .chain(
                    given
                        .backends
                        .iter()
                        .filter_map(|b| b.port.map(|port| SocketAddr::new(b.ip, port))),
                )
                .filter(|b| !front.contains(b))
                .collect();
            let evidence = format!(
                "given with {}",
                given
                    .proxies
                    .iter()
                    .map(|p| format!(
                        "--proxy {}",
                        p.port
                            .map_or(p.ip.to_string(), |port| SocketAddr::new(p.ip, port)
                                .to_string())
                    ))
                    .collect::<Vec<_>>()
                    .join(" ")
            );
            let overlaps = |x: &Proxy| {
                x.front.iter().any(|f| front.contains(f))
                    || x.back_addresses.iter().any(|b| back.contains(b))
            };
            let mut merged = Proxy {
                front: Vec::new(),
                back_addresses: Vec::new(),
                backends: Vec::new(),
                confidence: Confidence::Given,
                evidence: vec![evidence],
            };
            let mut rest = Vec::new();
            for x in proxies.drain(..) {
                if overlaps(&x) {
                    merged.front.extend(x.front);
                    merged.back_addresses.extend(x.back_addresses);
                    merged.backends.extend(x.backends);
                    merged.evidence.extend(x.evidence);
                } else {
                    rest.push(x);
                }
            }
            merged.front.extend(front);
            merged.back_addresses.extend(back);
            merged.backends.append(&mut backends);
            for v in [&mut merged.front, &mut merged.backends] {
                v.sort();
                v.dedup();
            }
            merged.back_addresses.sort();
            merged.back_addresses.dedup();
            let fronts = merged.front.clone();
            merged.backends.retain(|b| !fronts.contains(b));
            rest.push(merged);
            proxies = rest;
        }
        proxies
    }
}

/// Per front endpoint: backend-side address → (ties, backends seen from it).
type TieMap = FxHashMap<SocketAddr, FxHashMap<IpAddr, (u32, FxHashSet<SocketAddr>)>>;

/// What the tie rules found, for deciding each front.
struct Ties<'a> {
    votes: &'a TieMap,
    opened: &'a FxHashMap<(SocketAddr, IpAddr), u32>,
    gateway: &'a TieMap,
    host: &'a TieMap,
}

/// One proxy per host: proxies whose fronts share an address are the same proxy (two rules may
/// have found it from two of its listeners).
fn merge_by_host(proxies: Vec<Proxy>) -> Vec<Proxy> {
    let mut merged: Vec<Proxy> = Vec::new();
    for p in proxies {
        match merged.iter_mut().find(|m| {
            m.front
                .iter()
                .any(|f| p.front.iter().any(|g| g.ip() == f.ip()))
        }) {
            Some(m) => {
                for f in p.front {
                    if !m.front.contains(&f) {
                        m.front.push(f);
                    }
                }
                m.back_addresses.extend(p.back_addresses);
                m.back_addresses.sort();
                m.back_addresses.dedup();
                m.backends.extend(p.backends);
                m.backends.sort();
                m.backends.dedup();
                m.backends.retain(|b| !m.front.contains(b));
                for e in p.evidence {
                    if !m.evidence.contains(&e) {
                        m.evidence.push(e);
                    }
                }
                m.confidence = m.confidence.max(p.confidence);
            }
            None => merged.push(p),
        }
    }
    merged
}

/// Keeps for `key` the reason seen earliest in capture time (ties: the first given).
fn keep_earliest(
    map: &mut FxHashMap<SocketAddr, (Timestamp, String)>,
    key: SocketAddr,
    ts: Timestamp,
    why: impl FnOnce() -> String,
) {
    match map.get_mut(&key) {
        Some(old) if old.0 <= ts => {}
        Some(old) => *old = (ts, why()),
        None => {
            map.insert(key, (ts, why()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }
    fn t(ms: i64) -> Timestamp {
        Timestamp(ms * NANOS_PER_MILLI)
    }

    #[test]
    fn parses_role_addresses() {
        assert_eq!(
            RoleAddr::parse("10.0.0.1"),
            Some(RoleAddr {
                ip: ip("10.0.0.1"),
                port: None
            })
        );
        assert_eq!(
            RoleAddr::parse("10.0.0.1:80"),
            Some(RoleAddr {
                ip: ip("10.0.0.1"),
                port: Some(80)
            })
        );
        assert_eq!(
            RoleAddr::parse("[::1]:8080"),
            Some(RoleAddr {
                ip: ip("::1"),
                port: Some(8080)
            })
        );
        assert_eq!(
            RoleAddr::parse("::1"),
            Some(RoleAddr {
                ip: ip("::1"),
                port: None
            })
        );
        assert_eq!(RoleAddr::parse("nonsense"), None);
    }

    /// The rule as written first: every pair in the window, one map insert per match.
    fn request_matches_by_definition(
        c: &Collector,
    ) -> (TieMap, FxHashMap<(SocketAddr, IpAddr), u32>) {
        let mut votes = TieMap::default();
        let mut opened: FxHashMap<(SocketAddr, IpAddr), u32> = FxHashMap::default();
        for (i, r) in c.requests.iter().enumerate() {
            for r2 in c.requests[i + 1..].iter() {
                if r2.ts.nanos_since(r.ts) > MATCH_WINDOW {
                    break;
                }
                let forwarded_in_time = r.answer.is_none_or(|(_, ta)| r2.ts <= ta);
                if r2.client != r.client
                    && r2.server != r.server
                    && r2.method == r.method
                    && r2.target == r.target
                    && forwarded_in_time
                {
                    let relayed = matches!(
                        (r.answer, r2.answer),
                        (Some((s1, t1)), Some((s2, t2))) if s1 == s2 && t2 <= t1
                    );
                    if relayed
                        && c.starts.iter().any(|st| {
                            st.2 >= r.ts && st.2 <= r2.ts && st.0 == r2.client && st.1 == r2.server
                        })
                    {
                        *opened.entry((r.server, r2.client)).or_default() += 1;
                    }
                    let e = votes
                        .entry(r.server)
                        .or_default()
                        .entry(r2.client)
                        .or_default();
                    e.0 += 1;
                    e.1.insert(r2.server);
                }
            }
        }
        (votes, opened)
    }

    /// Maps as lists in iteration order: equal lists mean the maps were built alike.
    type Listed = Vec<(SocketAddr, Vec<(IpAddr, u32, Vec<SocketAddr>)>)>;

    fn in_order(t: &TieMap) -> Listed {
        t.iter()
            .map(|(f, v)| {
                let inner = v
                    .iter()
                    .map(|(ip, (n, bs))| (*ip, *n, bs.iter().copied().collect()))
                    .collect();
                (*f, inner)
            })
            .collect()
    }

    #[test]
    fn request_matching_counts_every_pair_the_rule_defines() {
        // Pseudo-random requests between few clients, servers and targets, close in time, with
        // and without answers, and connection starts among them: the matching used by `infer`
        // must build the same maps, in the same order, as one insert per matching pair.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let clients = ["10.0.0.1", "10.0.0.2", "10.0.9.9", "::1"];
        let servers = ["10.0.0.1:80", "10.0.1.1:8080", "10.0.1.2:8080", "[::1]:81"];
        let targets = ["/", "/a", "/b"];
        let mut matched = 0;
        for round in 0..200 {
            let mut c = Collector::default();
            let n = 5 + next(60);
            // Spread: from requests all inside one window to requests far apart.
            let spread = [2, 20, 80, 400][round % 4];
            for _ in 0..n {
                let ts = t(next(spread) as i64);
                let client = ip(clients[next(4) as usize]);
                let server = ep(servers[next(4) as usize]);
                if next(3) == 0 {
                    c.connection(SocketAddr::new(client, 40000), server, ts);
                }
                let answer = match next(3) {
                    0 => None,
                    _ => Some((
                        [200, 502][next(2) as usize],
                        t(ts.0 / NANOS_PER_MILLI + next(60) as i64),
                    )),
                };
                let method = if next(5) == 0 { "POST" } else { "GET" };
                let target = targets[next(3) as usize];
                c.request_answered(client, server, method, target, ts, None, answer);
            }
            c.requests.sort_by_key(|r| r.ts);
            c.starts.sort_by_key(|s| s.2);
            let (v1, o1) = c.request_matches();
            let (v2, o2) = request_matches_by_definition(&c);
            assert_eq!(in_order(&v1), in_order(&v2), "votes, round {}", round);
            let mut o1: Vec<_> = o1.into_iter().collect();
            let mut o2: Vec<_> = o2.into_iter().collect();
            o1.sort();
            o2.sort();
            assert_eq!(o1, o2, "opened, round {}", round);
            matched += v2.values().map(|v| v.len()).sum::<usize>();
        }
        // The rounds do exercise matches (not only empty maps).
        assert!(matched > 100, "{} matches", matched);
    }

    #[test]
    fn request_matching_finds_a_proxy_with_two_addresses() {
        let mut c = Collector::default();
        for k in 0..3 {
            let base = k * 100;
            c.connection(ep("10.0.1.2:40000"), ep("10.0.1.1:80"), t(base));
            c.request(
                ip("10.0.1.2"),
                ep("10.0.1.1:80"),
                "GET",
                "/a",
                t(base + 1),
                None,
            );
            c.connection(ep("10.0.2.1:50000"), ep("10.0.2.2:8080"), t(base + 2));
            c.request(
                ip("10.0.2.1"),
                ep("10.0.2.2:8080"),
                "GET",
                "/a",
                t(base + 2),
                None,
            );
        }
        let topo = c.infer(GivenRoles::default());
        assert_eq!(topo.proxies.len(), 1);
        let p = &topo.proxies[0];
        assert_eq!(p.front, vec![ep("10.0.1.1:80")]);
        assert!(p.back_addresses.contains(&ip("10.0.2.1")));
        assert_eq!(p.backends, vec![ep("10.0.2.2:8080")]);
        assert_eq!(
            topo.hop(ip("10.0.1.2"), ep("10.0.1.1:80")),
            Hop::ClientToProxy
        );
        assert_eq!(
            topo.hop(ip("10.0.2.1"), ep("10.0.2.2:8080")),
            Hop::ProxyToBackend
        );
    }

    #[test]
    fn a_single_coincidence_does_not_invent_a_proxy() {
        let mut c = Collector::default();
        c.connection(ep("10.0.0.5:40000"), ep("10.0.0.1:80"), t(0));
        c.request(ip("10.0.0.5"), ep("10.0.0.1:80"), "GET", "/", t(1), None);
        c.connection(ep("10.9.9.9:40000"), ep("10.0.0.2:80"), t(2));
        c.request(ip("10.9.9.9"), ep("10.0.0.2:80"), "GET", "/", t(2), None);
        let topo = c.infer(GivenRoles::default());
        assert!(topo.proxies.is_empty());
        assert_eq!(
            topo.hop(ip("10.0.0.5"), ep("10.0.0.1:80")),
            Hop::ClientToServer
        );
    }

    #[test]
    fn plain_client_server_has_no_proxy() {
        let mut c = Collector::default();
        for k in 0..10 {
            c.connection(ep("10.0.0.5:40000"), ep("10.0.0.1:80"), t(k * 10));
            c.request(
                ip("10.0.0.5"),
                ep("10.0.0.1:80"),
                "GET",
                "/",
                t(k * 10 + 1),
                None,
            );
        }
        assert!(c.infer(GivenRoles::default()).proxies.is_empty());
    }

    #[test]
    fn gateway_errors_tie_the_backend_attempts_inside_them() {
        let mut c = Collector::default();
        c.connection(ep("10.0.1.2:40000"), ep("10.0.1.1:80"), t(0));
        c.connection(ep("10.0.2.1:50000"), ep("10.0.2.2:8080"), t(2));
        c.gateway_error(ep("10.0.1.1:80"), 502, t(1), t(3));
        // An unrelated connection outside the interval is not tied.
        c.connection(ep("10.0.9.9:1234"), ep("10.0.2.2:8080"), t(50));
        let topo = c.infer(GivenRoles::default());
        assert_eq!(topo.proxies.len(), 1);
        assert!(topo.proxies[0].back_addresses.contains(&ip("10.0.2.1")));
        assert!(!topo.proxies[0].back_addresses.contains(&ip("10.0.9.9")));
    }

    #[test]
    fn forwarding_headers_mark_the_backend_side() {
        let mut c = Collector::default();
        c.connection(ep("10.0.2.1:50000"), ep("10.0.2.2:8080"), t(0));
        c.request(
            ip("10.0.2.1"),
            ep("10.0.2.2:8080"),
            "GET",
            "/",
            t(1),
            Some("x-forwarded-for: 10.0.1.2"),
        );
        let topo = c.infer(GivenRoles::default());
        assert_eq!(
            topo.hop(ip("10.0.2.1"), ep("10.0.2.2:8080")),
            Hop::ProxyToBackend
        );
    }

    #[test]
    fn given_roles_win() {
        let c = Collector::default();
        let given = GivenRoles {
            proxies: vec![
                RoleAddr {
                    ip: ip("10.0.1.1"),
                    port: Some(80),
                },
                RoleAddr {
                    ip: ip("10.0.2.1"),
                    port: None,
                },
            ],
            backends: vec![],
        };
        let topo = c.infer(given);
        assert_eq!(
            topo.hop(ip("10.0.1.2"), ep("10.0.1.1:80")),
            Hop::ClientToProxy
        );
        assert_eq!(
            topo.hop(ip("10.0.2.1"), ep("10.0.2.2:8080")),
            Hop::ProxyToBackend
        );
        assert_eq!(
            topo.hop(ip("10.0.3.3"), ep("10.0.4.4:443")),
            Hop::ClientToServer
        );
    }
}
