//! Application-layer observers: TLS and HTTP/1.x, detected by content on any port, fed only
//! in-order stream events (`StreamEvent`: data, gap, end) from `flow/`'s reassembly.
//!
//! Owns: protocol detection, the per-connection parsers, and their frozen `AppSummary`.
//! Must not: see packets or change flow state. Per-connection memory is bounded by the parsers'
//! named caps (`tls::MAX_HANDSHAKE_MSG`, `http::MAX_HEADER_BYTES`, `http::MAX_PIPELINE`, …).

pub mod few;
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
/// Start and multiplier of the first-bytes hash (`fingerprint`).
const FP_SEED: u64 = 0xcbf2_9ce4_8422_2325;
const FP_MUL: u64 = 0x9e37_79b9_7f4a_7c15;

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
    /// Running hash over the first `FIRST_BYTES` bytes per direction (`fingerprint`), the bytes of
    /// an unfinished 8-byte word, and how many bytes so far.
    first_hash: [u64; 2],
    first_word: [u64; 2],
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
        self.event_with(dir, frame, ev, &mut Spares::default(), out)
    }

    /// `event`, taking a new HTTP parser from `spares` when the connection turns out to speak
    /// HTTP.
    pub fn event_with(
        &mut self,
        dir: Direction,
        frame: FrameRef,
        ev: StreamEvent<'_>,
        spares: &mut Spares,
        out: &mut impl FnMut(&AppEvent),
    ) {
        match ev {
            StreamEvent::Data(b) => {
                self.fingerprint(dir, b);
                self.data(dir, frame, b, spares);
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

    fn data(&mut self, dir: Direction, frame: FrameRef, b: &[u8], spares: &mut Spares) {
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
                        Proto::Http => self.http = Some(spares.http(self.max_pending)),
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

    /// Feeds the first-bytes fingerprint (no allocation; stops after `FIRST_BYTES`). The bytes
    /// are hashed as little-endian 8-byte words (a word split across segments waits in
    /// `first_word`), so that the hash does not depend on how the stream was segmented and costs
    /// one multiplication per 8 bytes, not per byte.
    fn fingerprint(&mut self, dir: Direction, b: &[u8]) {
        let i = dir.idx();
        if self.first_done[i] {
            return;
        }
        if self.first_len[i] == 0 {
            self.first_hash[i] = FP_SEED;
            self.first_word[i] = 0;
        }
        let take = (FIRST_BYTES - self.first_len[i] as usize).min(b.len());
        let (mut h, mut w, mut len) = (self.first_hash[i], self.first_word[i], self.first_len[i]);
        let mut rest = &b[..take];
        while len % 8 != 0 && !rest.is_empty() {
            w |= (rest[0] as u64) << (8 * (len % 8));
            len += 1;
            rest = &rest[1..];
            if len % 8 == 0 {
                h = fp_mix(h, w);
                w = 0;
            }
        }
        let mut words = rest.chunks_exact(8);
        for c in &mut words {
            let mut word = [0u8; 8];
            word.copy_from_slice(c);
            h = fp_mix(h, u64::from_le_bytes(word));
            len += 8;
        }
        for (k, &c) in words.remainder().iter().enumerate() {
            w |= (c as u64) << (8 * k);
            len += 1;
        }
        (self.first_hash[i], self.first_word[i], self.first_len[i]) = (h, w, len);
        if len as usize >= FIRST_BYTES {
            self.first_done[i] = true;
        }
    }

    /// The fingerprint of direction `i` so far: (hash, bytes hashed), None before any byte.
    fn first_bytes(&self, i: usize) -> Option<(u64, u16)> {
        let len = self.first_len[i];
        let h = if len % 8 != 0 {
            fp_mix(self.first_hash[i], self.first_word[i])
        } else {
            self.first_hash[i]
        };
        (len > 0).then_some((h, len))
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
        AppSummary {
            first_bytes: [self.first_bytes(0), self.first_bytes(1)],
            proto: self.proto,
            tls: self.tls.as_ref().map(|t| t.summary.clone()),
            http: self.http.as_ref().map(|h| h.peek()),
        }
    }

    pub fn finish(self) -> AppSummary {
        self.finish_with(&mut Spares::default())
    }

    /// `finish`, giving the HTTP parser back to `spares` for a later connection.
    pub fn finish_with(self, spares: &mut Spares) -> AppSummary {
        AppSummary {
            first_bytes: [self.first_bytes(0), self.first_bytes(1)],
            proto: self.proto,
            tls: self.tls.map(|t| t.summary),
            http: self.http.map(|mut h| {
                h.finish();
                let s = std::mem::take(&mut h.summary);
                spares.put(h);
                s
            }),
        }
    }
}

/// HTTP parsers of finished connections, kept for the next ones (`AppFlow::event_with`,
/// `AppFlow::finish_with`): a busy proxy's capture opens and closes thousands of connections a
/// second, and each new parser was a kilobyte allocated, plus its event list, and freed soon
/// after. A parser taken from here is reset to a new parser's state (`HttpParser::reset`);
/// at most `MAX_SPARES` wait.
#[derive(Default)]
pub struct Spares {
    // Boxed: an `AppFlow` holds its parser boxed, and the box itself is what is reused.
    #[allow(clippy::vec_box)]
    http: Vec<Box<http::HttpParser>>,
}

/// Parsers kept in `Spares` at most: about 0.7 MB with their buffers at their largest kept size.
/// Connections end in bursts (the tracker's sweeps finish many at once), so a few are not
/// enough: with 16, 64 % of capture B's new parsers were still allocated; with 256, none.
const MAX_SPARES: usize = 256;

impl Spares {
    fn http(&mut self, max_pending: usize) -> Box<http::HttpParser> {
        match self.http.pop() {
            Some(mut h) => {
                h.reset(max_pending);
                h
            }
            None => Box::new(http::HttpParser::with_max_pending(max_pending)),
        }
    }

    fn put(&mut self, h: Box<http::HttpParser>) {
        if self.http.len() < MAX_SPARES {
            self.http.push(h);
        }
    }
}

/// One step of the first-bytes hash: an 8-byte word mixed in (rotated so that every bit of the
/// word reaches the high half of the state after the multiplication).
fn fp_mix(h: u64, w: u64) -> u64 {
    (h.rotate_left(26) ^ w).wrapping_mul(FP_MUL)
}

#[cfg(test)]
mod tests;
