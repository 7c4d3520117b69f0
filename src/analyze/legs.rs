//! What role inference (`topology/`), pairing (`correlate/`) and `direct-ok-proxied-fails` keep
//! of each finished connection: the legs of the path, collected while the capture is read and
//! turned into topology, chains and exchanges at its end.

use crate::app::AppSummary;
use crate::correlate::{self, Chain, PairedExchange};
use crate::flow::FlowSummary;
use crate::signature::direct_ok_proxied_fails::{self, DirectOk, FrontFailure};
use crate::signature::{gateway_error, Finding};
use crate::topology::{Collector, GivenRoles, Topology};
use rustc_hash::FxHashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// Failure / success records kept for `direct-ok-proxied-fails` (each list).
const MAX_CHAIN_RECORDS: usize = 10_000;

#[derive(Clone, Default)]
pub(crate) struct Legs {
    roles: Collector,
    front_failures: Vec<FrontFailure>,
    direct_ok: Vec<DirectOk>,
    /// Per-connection records for pairing client exchanges with backend attempts (capped at
    /// `correlate::MAX_RECORDS`).
    records: Vec<correlate::ConnRecord>,
    /// Connection id → index in `records`.
    record_of: FxHashMap<u64, usize>,
    /// The records' strings, shared.
    strings: Interner,
}

/// Distinct strings kept shared at most; later ones are stored per record (the records are
/// capped, so memory stays bounded either way).
const MAX_INTERNED: usize = 65_536;

/// Shares equal strings between records.
#[derive(Clone, Default)]
struct Interner {
    set: rustc_hash::FxHashSet<Arc<str>>,
}

impl Interner {
    fn get(&mut self, s: &str) -> Arc<str> {
        if let Some(a) = self.set.get(s) {
            return a.clone();
        }
        let a: Arc<str> = s.into();
        if self.set.len() < MAX_INTERNED {
            self.set.insert(a.clone());
        }
        a
    }
}

/// What the legs say once the whole capture is known.
pub(crate) struct Concluded {
    pub topology: Topology,
    pub direct_ok_proxied_fails: Vec<Finding>,
    pub chains: Vec<Chain>,
    pub exchanges: Vec<PairedExchange>,
    /// The per-connection records (the HTML report draws its timeline from them).
    pub records: Vec<correlate::ConnRecord>,
}

impl Legs {
    /// Keeps what role inference and pairing need of a finished connection.
    pub fn observe(&mut self, f: &FlowSummary, app: &AppSummary) {
        self.collect_roles(f, app);
        self.record(f, app);
    }

    /// An address the capturing host owns (Linux cooked captures mark its packets).
    pub fn local_address(&mut self, a: IpAddr) {
        self.roles.local_address(a);
    }

    /// Marks a connection's record with a finding (its failure, for pairing).
    pub fn finding(&mut self, fd: &Finding) {
        if let Some(i) = fd.flow.and_then(|id| self.record_of.get(&id)) {
            self.records[*i].finding(fd.signature, fd.severity, &fd.evidence);
        }
    }

    /// Roles (inferred, or given by the user), then the findings and pairings that need them.
    pub fn conclude(mut self, given: GivenRoles) -> Concluded {
        // In capture order, not in the order connections finished (which the tracker's
        // timeouts decide), so that pairing and its listing do not depend on them.
        self.records
            .sort_by_key(|r| (r.start, r.first.file, r.first.number));
        for (front, back, backend, kind) in correlate::relays(&self.records) {
            self.roles.relay(front, back, backend, kind);
        }
        let topology = self.roles.infer(given);
        let direct =
            direct_ok_proxied_fails::check(&self.front_failures, &self.direct_ok, &topology);
        let (chains, exchanges) = correlate::chains(&self.records, &topology);
        Concluded {
            topology,
            direct_ok_proxied_fails: direct,
            chains,
            exchanges,
            records: self.records,
        }
    }

    /// Keeps what pairing needs of a finished connection.
    fn record(&mut self, f: &FlowSummary, app: &AppSummary) {
        if self.records.len() >= correlate::MAX_RECORDS {
            return;
        }
        let mut requests: Vec<correlate::ReqRecord> = Vec::new();
        if let Some(h) = &app.http {
            let answered = h
                .errors
                .iter()
                .chain(h.ok_sample.iter())
                .filter_map(|x| x.request.as_ref().map(|q| (q, Some(&x.response))));
            let others = h
                .denied
                .iter()
                .filter_map(|d| d.request.as_ref().map(|q| (q, None)))
                .chain(h.unanswered.iter().map(|q| (q, None)))
                .chain(h.request_sample.iter().map(|q| (q, None)));
            let strings = &mut self.strings;
            // Sized before it is filled: one allocation of exactly the final size (collecting
            // would start at four and need a trim, a second allocation per connection).
            let kept = answered
                .chain(others)
                .take(correlate::MAX_REQUESTS_PER_CONN);
            requests = Vec::with_capacity(kept.clone().count());
            requests.extend(kept.map(|(q, r)| correlate::ReqRecord {
                frame: q.frame,
                method: strings.get(&q.method),
                target: strings.get(&q.target),
                forwarded_for: q.forwarded_for.as_deref().map(|s| strings.get(s)),
                answer: r.map(|r| {
                    (
                        r.status,
                        r.frame,
                        r.server.as_deref().map(|s| strings.get(s)),
                    )
                }),
            }));
            requests.sort_by_key(|r| (r.frame.ts, r.frame.number));
        }
        if self.records.len() == self.records.capacity() && self.records.len() >= 1 << 14 {
            // Grow straight to the cap past 16 384 records rather than doubling beyond it.
            let more = (2 * self.records.len()).min(correlate::MAX_RECORDS) - self.records.len();
            self.records.reserve_exact(more.max(1));
        }
        self.record_of.insert(f.id, self.records.len());
        self.records.push(correlate::ConnRecord {
            id: f.id,
            orig: f.orig,
            resp: f.resp,
            start: f.start,
            end: f.end,
            first: f.first_syn.unwrap_or(f.first),
            first_is_syn: f.first_syn.is_some(),
            first_bytes: app.first_bytes[0],
            tls: app.tls.is_some(),
            requests,
            failure: None,
        });
    }

    /// Feeds role inference and the chain / direct-vs-proxied records.
    fn collect_roles(&mut self, f: &FlowSummary, app: &AppSummary) {
        self.roles.connection(f.orig, f.resp, f.start);
        self.roles.span(f.orig, f.resp, f.start, f.end);
        let Some(h) = &app.http else { return };
        let requests = h
            .request_sample
            .iter()
            .map(|q| (q, None))
            .chain(h.ok_sample.iter().chain(h.errors.iter()).filter_map(|x| {
                x.request
                    .as_ref()
                    .map(|q| (q, Some((x.response.status, x.response.frame.ts))))
            }))
            .chain(h.unanswered.iter().map(|q| (q, None)));
        for (r, answer) in requests {
            if r.method == "CONNECT" {
                self.roles
                    .proxy_header(f.resp, "CONNECT requests (a forward proxy)", r.frame.ts);
            }
            self.roles.request_answered(
                f.orig.ip(),
                f.resp,
                &r.method,
                &r.target,
                r.frame.ts,
                r.forwarded_for.as_deref(),
                answer,
            );
        }
        if let Some(m) = &h.proxy_mark {
            self.roles.proxy_header(f.resp, m, f.start);
        }
        for x in &h.errors {
            if !gateway_error::GATEWAY_STATUSES.contains(&x.response.status) {
                continue;
            }
            let req_ts = x
                .request
                .as_ref()
                .map(|q| q.frame.ts)
                .unwrap_or(x.response.frame.ts);
            // The topology decides what a 503 means (a gateway's only with backend ties).
            self.roles
                .gateway_error(f.resp, x.response.status, req_ts, x.response.frame.ts);
            if self.front_failures.len() < MAX_CHAIN_RECORDS {
                self.front_failures.push(FrontFailure {
                    client: f.orig.ip(),
                    server: f.resp,
                    status: x.response.status,
                    method: x
                        .request
                        .as_ref()
                        .map(|q| q.method.clone())
                        .unwrap_or_default(),
                    target: x
                        .request
                        .as_ref()
                        .map(|q| q.target.clone())
                        .unwrap_or_default(),
                    response: x.response.frame,
                });
            }
        }
        // A proxy's policy refusals fail requests as gateway errors do (direct-ok-proxied-fails).
        for d in &h.denied {
            if let Some(q) = &d.request {
                if self.front_failures.len() < MAX_CHAIN_RECORDS {
                    self.front_failures.push(FrontFailure {
                        client: f.orig.ip(),
                        server: f.resp,
                        status: d.status,
                        method: q.method.clone(),
                        target: q.target.clone(),
                        response: d.response,
                    });
                }
            }
        }
        for x in &h.ok_sample {
            if let Some(q) = &x.request {
                if self.direct_ok.len() < MAX_CHAIN_RECORDS {
                    self.direct_ok.push(DirectOk {
                        client: f.orig.ip(),
                        server: f.resp,
                        method: q.method.clone(),
                        target: q.target.clone(),
                        status: x.response.status,
                        response: x.response.frame,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_strings_are_shared_until_the_cap() {
        let mut i = Interner::default();
        let a = i.get("GET");
        let b = i.get(&String::from("GET"));
        assert!(Arc::ptr_eq(&a, &b));
        for n in 0..MAX_INTERNED {
            i.get(&n.to_string());
        }
        assert_eq!(i.set.len(), MAX_INTERNED);
        let c = i.get("/after-the-cap");
        let d = i.get("/after-the-cap");
        assert_eq!((&*c, &*d), ("/after-the-cap", "/after-the-cap"));
        assert!(!Arc::ptr_eq(&c, &d), "not kept beyond the cap");
        assert!(Arc::ptr_eq(&i.get("GET"), &a));
    }
}
