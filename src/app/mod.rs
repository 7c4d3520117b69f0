//! Application-layer observers: TLS and HTTP/1.x, detected by content on any port, fed only
//! in-order stream events (`StreamEvent`: data, gap, end) from `flow/`'s reassembly.
//!
//! Owns: protocol detection, the per-connection parsers, and their frozen `AppSummary`.
//! Must not: see packets or change flow state. Per-connection memory is bounded by the parsers'
//! named caps (`tls::MAX_HANDSHAKE_MSG`, `http::MAX_HEADER_BYTES`, `http::MAX_PIPELINE`, …).

pub mod http;
pub mod text;
pub mod tls;

use crate::flow::{Direction, FrameRef, StreamEvent};
use serde::Serialize;

/// Bytes looked at before deciding what protocol a connection speaks.
const SNIFF_BYTES: usize = 8;
/// Stream bytes per direction fingerprinted for passthrough pairing (a TLS ClientHello's first
/// 64 bytes hold its 32-byte random: unique per connection).
pub const FIRST_BYTES: usize = 64;
const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Proto {
    /// No payload seen yet.
    #[default]
    Unknown,
    Tls,
    Http,
    /// An HTTP CONNECT tunnel (forward proxy) carrying TLS.
    HttpConnectTls,
    /// Something else (not parsed).
    Other,
}

/// One application-layer fact, as it happens (for live output and differential tests).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AppEvent {
    /// A complete HTTP request header block, in the frame that completed it.
    HttpRequest { frame: FrameRef },
    /// A complete HTTP response header block, in the frame that completed it.
    HttpResponse { frame: FrameRef, status: u16 },
    /// A TLS handshake message (1 ClientHello, 2 ServerHello) completed in this frame.
    TlsHandshake { frame: FrameRef, msg: u8 },
    /// A TLS alert record (level/description 0 when encrypted).
    TlsAlert {
        frame: FrameRef,
        level: u8,
        description: u8,
        encrypted: bool,
    },
}

/// What the application layer learned about one connection.
#[derive(Clone, Debug, Default, Serialize)]
pub struct AppSummary {
    pub proto: Proto,
    /// Fingerprint of the first `FIRST_BYTES` stream bytes of each direction (orig, resp):
    /// (FNV-1a hash, bytes hashed). A passthrough proxy relays them unchanged, so the same
    /// fingerprint on a client connection and a backend connection pairs the two.
    pub first_bytes: [Option<(u64, u16)>; 2],
    pub tls: Option<tls::TlsSummary>,
    pub http: Option<http::HttpSummary>,
}

/// Per-connection application state.
#[derive(Debug, Default)]
pub struct AppFlow {
    /// Connection number this state belongs to (`FlowSummary::id`).
    pub flow: u64,
    proto: Proto,
    sniff: [[u8; SNIFF_BYTES]; 2],
    sniff_len: [u8; 2],
    /// Running FNV-1a over the first `FIRST_BYTES` bytes per direction, and how many so far.
    first_hash: [u64; 2],
    first_len: [u16; 2],
    /// The fingerprint is complete (enough bytes, or a gap ended it).
    first_done: [bool; 2],
    tls: Option<Box<tls::TlsParser>>,
    http: Option<Box<http::HttpParser>>,
    /// Requests kept waiting per connection (`TrackerConfig::max_pending_requests`; 0 = default).
    max_pending: usize,
}

impl AppFlow {
    pub fn new(flow: u64) -> AppFlow {
        AppFlow {
            flow,
            ..Default::default()
        }
    }

    /// `new` with at most `max_pending` HTTP requests waiting for their response.
    pub fn with_max_pending(flow: u64, max_pending: usize) -> AppFlow {
        AppFlow {
            flow,
            max_pending,
            ..Default::default()
        }
    }

    pub fn event(
        &mut self,
        dir: Direction,
        frame: FrameRef,
        ev: StreamEvent<'_>,
        out: &mut impl FnMut(&AppEvent),
    ) {
        match ev {
            StreamEvent::Data(b) => {
                self.fingerprint(dir, b);
                self.data(dir, frame, b);
                for p in [
                    self.http.as_mut().map(|h| &mut h.events),
                    self.tls.as_mut().map(|t| &mut t.events),
                ]
                .into_iter()
                .flatten()
                {
                    for e in p.drain(..) {
                        out(&e);
                    }
                }
            }
            StreamEvent::Gap(n) => {
                // A gap ends the fingerprint where it is (bytes after it are not the first ones).
                self.first_done[dir.idx()] = true;
                self.gap(dir, n)
            }
            StreamEvent::End { .. } => {}
        }
    }

    fn gap(&mut self, dir: Direction, n: u32) {
        match self.proto {
            Proto::Unknown => self.proto = Proto::Other,
            Proto::Http => {
                if let Some(h) = &mut self.http {
                    h.gap(dir, n)
                }
            }
            Proto::Tls | Proto::HttpConnectTls => {
                if let Some(t) = &mut self.tls {
                    t.gap(dir)
                }
            }
            Proto::Other => {}
        }
    }

    fn data(&mut self, dir: Direction, frame: FrameRef, b: &[u8]) {
        if self.proto == Proto::Unknown {
            let di = dir.idx();
            let have = self.sniff_len[di] as usize;
            let take = (SNIFF_BYTES - have).min(b.len());
            self.sniff[di][have..have + take].copy_from_slice(&b[..take]);
            self.sniff_len[di] += take as u8;
            let seen = &self.sniff[di][..self.sniff_len[di] as usize];
            let decided = if tls::looks_like_tls(seen) {
                Some(Proto::Tls)
            } else {
                match http::http_start(dir, seen) {
                    Some(true) => Some(Proto::Http),
                    None if seen.len() < SNIFF_BYTES => None,
                    _ if seen.len() >= 3 => Some(Proto::Other),
                    _ => None,
                }
            };
            match decided {
                None => return,
                Some(p) => {
                    self.proto = p;
                    match p {
                        Proto::Tls => self.tls = Some(Box::default()),
                        Proto::Http => {
                            self.http = Some(Box::new(http::HttpParser::with_max_pending(
                                self.max_pending,
                            )))
                        }
                        _ => return,
                    }
                    // Replay what was sniffed before this chunk, then the chunk.
                    let before = self.sniff[di];
                    let data = &before[..have];
                    if !data.is_empty() {
                        self.route(dir, frame, data);
                    }
                }
            }
        }
        self.route(dir, frame, b);
    }

    fn route(&mut self, dir: Direction, frame: FrameRef, b: &[u8]) {
        match self.proto {
            Proto::Tls | Proto::HttpConnectTls => {
                if let Some(t) = &mut self.tls {
                    t.data(dir, frame, b);
                }
            }
            Proto::Http => {
                let Some(h) = &mut self.http else { return };
                let used = h.data(dir, frame, b);
                if h.tunnel {
                    // CONNECT answered 2xx: what follows is the tunnel's (TLS, as squid carries it).
                    self.proto = Proto::HttpConnectTls;
                    self.tls = Some(Box::default());
                    if used < b.len() {
                        self.route(dir, frame, &b[used..]);
                    }
                }
            }
            _ => {}
        }
    }

    /// Feeds the first-bytes fingerprint (no allocation; stops after `FIRST_BYTES`).
    fn fingerprint(&mut self, dir: Direction, b: &[u8]) {
        let i = dir.idx();
        if self.first_done[i] {
            return;
        }
        if self.first_len[i] == 0 {
            self.first_hash[i] = FNV_OFFSET;
        }
        let take = (FIRST_BYTES - self.first_len[i] as usize).min(b.len());
        for &c in &b[..take] {
            self.first_hash[i] = (self.first_hash[i] ^ c as u64).wrapping_mul(FNV_PRIME);
        }
        self.first_len[i] += take as u16;
        if self.first_len[i] as usize >= FIRST_BYTES {
            self.first_done[i] = true;
        }
    }

    /// Whether the connection waits for the server: an HTTP request without a response, a
    /// ClientHello without a ServerHello, or client application data after the server's last
    /// (what the time-based signatures judge when the connection ends).
    pub fn awaiting_answer(&self) -> bool {
        if let Some(h) = &self.http {
            if h.has_pending() {
                return true;
            }
        }
        if let Some(t) = &self.tls {
            let s = &t.summary;
            if s.client_hello.is_some() && s.server_hello.is_none() && s.alerts.is_empty() {
                return true;
            }
            let [o, r] = s.last_app_data;
            if o.is_some_and(|o| r.is_none_or(|r| o.ts > r.ts)) {
                return true;
            }
        }
        false
    }

    /// The summary `finish` would give if the connection ended now, without ending it (live
    /// mode judges still-open connections for time-based verdicts). Unlike `finish`, a body
    /// still being read is not called truncated and error bodies are not cut into snippets.
    pub fn peek(&self) -> AppSummary {
        let fp =
            |i: usize| (self.first_len[i] > 0).then_some((self.first_hash[i], self.first_len[i]));
        AppSummary {
            first_bytes: [fp(0), fp(1)],
            proto: self.proto,
            tls: self.tls.as_ref().map(|t| t.summary.clone()),
            http: self.http.as_ref().map(|h| h.peek()),
        }
    }

    pub fn finish(mut self) -> AppSummary {
        if let Some(h) = &mut self.http {
            h.finish();
        }
        let fp =
            |i: usize| (self.first_len[i] > 0).then_some((self.first_hash[i], self.first_len[i]));
        AppSummary {
            first_bytes: [fp(0), fp(1)],
            proto: self.proto,
            tls: self.tls.map(|t| t.summary),
            http: self.http.map(|h| h.summary),
        }
    }
}

#[cfg(test)]
mod tests;
