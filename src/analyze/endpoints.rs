//! Per server endpoint: what was asked of it and how it answered (every report lists them).

use crate::app::AppSummary;
use crate::flow::{ConnState, FlowSummary};
use rustc_hash::FxHashMap;
use serde::Serialize;
use std::net::SocketAddr;

/// Per server endpoint: what was asked of it and how it answered (every report has it).
#[derive(Clone, Debug, Default, Serialize)]
pub struct EndpointSummary {
    pub server: String,
    /// SNI and Host names seen towards it (first few).
    pub names: Vec<String>,
    pub connections: u64,
    /// Connections whose handshake completed (SYN-ACK seen or data from the server).
    pub established: u64,
    pub refused: u64,
    pub unanswered: u64,
    pub reset: u64,
    pub requests: u64,
    pub responses: u64,
    /// HTTP status code → responses.
    pub status_counts: std::collections::BTreeMap<u16, u64>,
    pub tls_handshakes: u64,
    pub tls_ok: u64,
    pub tls_alerts: u64,
    pub tls_stalled: u64,
    /// `Server` headers seen in its responses (first few).
    pub server_headers: Vec<String>,
}

/// Endpoints listed in a report at most (the busiest first).
pub const MAX_ENDPOINTS_REPORTED: usize = 50;
/// Names kept per endpoint.
const MAX_NAMES: usize = 4;

/// The endpoint table, bounded by `Thresholds::max_endpoints` (beyond it, new endpoints are
/// summed into one "(other endpoints)" entry, and the connections counted there are reported as
/// an `endpoint-cap` warning).
#[derive(Clone)]
pub(crate) struct Endpoints {
    map: FxHashMap<SocketAddr, EndpointSummary>,
    max: usize,
    overflow: u64,
}

impl Endpoints {
    pub fn new(max: usize) -> Endpoints {
        Endpoints {
            map: FxHashMap::default(),
            max: max.max(1),
            overflow: 0,
        }
    }

    /// Connections counted under "(other endpoints)".
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    pub fn get(&mut self, f: &FlowSummary) -> &mut EndpointSummary {
        if self.map.len() >= self.max && !self.map.contains_key(&f.resp) {
            // Over the cap: count into a shared overflow bucket.
            return self
                .map
                .entry(SocketAddr::from(([0, 0, 0, 0], 0)))
                .or_insert_with(|| EndpointSummary {
                    server: "(other endpoints)".into(),
                    ..Default::default()
                });
        }
        self.map.entry(f.resp).or_insert_with(|| EndpointSummary {
            server: f.resp.to_string(),
            ..Default::default()
        })
    }

    /// Counts a finished connection towards its server endpoint.
    pub fn count(&mut self, f: &FlowSummary, app: &AppSummary) {
        if self.map.len() >= self.max && !self.map.contains_key(&f.resp) {
            self.overflow += 1;
        }
        let e = self.get(f);
        e.connections += 1;
        if f.synack.is_some() || f.resp_stats.bytes > 0 {
            e.established += 1;
        }
        match f.conn_state {
            ConnState::REJ => e.refused += 1,
            ConnState::S0 => e.unanswered += 1,
            _ => {}
        }
        if f.rst.is_some() && f.conn_state != ConnState::REJ {
            e.reset += 1;
        }
        let add_name = |e: &mut EndpointSummary, n: &str| {
            if e.names.len() < MAX_NAMES && !e.names.iter().any(|x| x == n) {
                e.names.push(n.to_string());
            }
        };
        if let Some(t) = &app.tls {
            if let Some(ch) = &t.client_hello {
                e.tls_handshakes += 1;
                if let Some(sni) = &ch.sni {
                    add_name(e, sni);
                }
                if t.server_hello.is_some()
                    && !t.alerts.iter().any(|a| a.level == 2 && !a.encrypted)
                {
                    e.tls_ok += 1;
                }
            }
            if t.alerts.iter().any(|a| a.level == 2 && !a.encrypted) {
                e.tls_alerts += 1;
            }
        }
        if let Some(h) = &app.http {
            e.requests += h.requests as u64;
            e.responses += h.responses as u64;
            for (s, n) in &h.status_counts {
                *e.status_counts.entry(*s).or_default() += *n as u64;
            }
            for host in &h.hosts {
                add_name(e, host);
            }
            for sv in &h.servers {
                if e.server_headers.len() < MAX_NAMES && !e.server_headers.iter().any(|x| sv == x) {
                    e.server_headers.push(sv.to_string());
                }
            }
        }
    }

    /// The busiest endpoints first, at most `MAX_ENDPOINTS_REPORTED`.
    pub fn into_report(self) -> Vec<EndpointSummary> {
        let mut endpoints: Vec<EndpointSummary> = self.map.into_values().collect();
        endpoints.sort_by(|x, y| {
            y.connections
                .cmp(&x.connections)
                .then(x.server.cmp(&y.server))
        });
        endpoints.truncate(MAX_ENDPOINTS_REPORTED);
        endpoints
    }
}
