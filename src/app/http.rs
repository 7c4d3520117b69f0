//! HTTP/1.x observer, fed only in-order stream bytes (`httparse` for the header blocks).
//!
//! Requests (method, target, Host) and responses (status, reason, `Server`, the first
//! `BODY_SNIPPET` bytes of the body) are paired in order over keep-alive and pipelining. Bodies are
//! skipped — never buffered — by Content-Length, chunked encoding, or connection close; `HEAD`,
//! 1xx, 204 and 304 have none; a `CONNECT` answered 2xx turns the connection into a tunnel (the
//! caller then looks for TLS inside); `101 Switching Protocols` ends HTTP parsing.
//! Header blocks are buffered up to `MAX_HEADER_BYTES`; exceeding it or an unparsable block stops
//! the parser for that connection with an anomaly. A gap outside a body makes that direction
//! resynchronise on the next message start (the request whose response was lost is forgotten,
//! and `response_gap` is set so that no "no response byte" conclusion is drawn).

use super::few::Few;
use super::text::ShortText;
use crate::flow::{Direction, FrameRef};
use serde::Serialize;
use std::borrow::Cow;
use std::collections::VecDeque;

/// Largest request or response header block buffered.
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// Headers parsed per message (more is an anomaly).
pub const MAX_HEADERS: usize = 64;
/// Requests waiting for their response (HTTP pipelining depth): the default of
/// `TrackerConfig::max_pending_requests`.
pub const MAX_PIPELINE: usize = crate::flow::DEFAULT_MAX_PENDING_REQUESTS;
/// Body bytes kept from error responses, as text.
pub const BODY_SNIPPET: usize = 256;
/// Error exchanges (status ≥ 500) remembered per connection.
pub const MAX_ERRORS: usize = 8;
/// Distinct status codes counted per connection.
pub const MAX_STATUS_KINDS: usize = 16;
/// Requests and successful exchanges sampled per connection (for proxy inference).
pub const MAX_SAMPLES: usize = 8;
/// Header buffer capacity kept between messages (larger ones are freed).
const SMALL_HEADER_BUF: usize = 1024;
/// Longest method / target / host / server value kept.
const MAX_FIELD: usize = 256;

#[derive(Clone, Debug, Serialize)]
pub struct Request {
    pub frame: FrameRef,
    pub method: ShortText,
    pub target: ShortText,
    pub host: Option<ShortText>,
    /// When the whole request (headers and body) had been sent.
    #[serde(skip)]
    pub complete_at: Option<FrameRef>,
    /// Proxy headers naming the client (`X-Forwarded-For`, `X-Real-IP`, `Forwarded`, `Via`).
    pub forwarded_for: Option<ShortText>,
}

#[derive(Clone, Debug, Serialize)]
pub struct Response {
    pub frame: FrameRef,
    pub status: u16,
    pub reason: ShortText,
    pub server: Option<ShortText>,
    pub via: Option<ShortText>,
    /// The first `BODY_SNIPPET` bytes of the body as text (set when the connection ends, from
    /// `body_raw`, so a character split across segments decodes whole).
    pub body_snippet: String,
    #[serde(skip)]
    pub body_raw: Vec<u8>,
}

/// A response and the request it answered (None when the request was not captured).
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    pub request: Option<Request>,
    pub response: Response,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct HttpSummary {
    pub requests: u32,
    pub responses: u32,
    /// (status, count), at most `MAX_STATUS_KINDS` kinds.
    pub status_counts: Few<(u16, u32)>,
    /// Exchanges answered with 5xx (first `MAX_ERRORS`).
    pub errors: Vec<Exchange>,
    /// Requests with no response when the connection ended (the oldest first, at most
    /// `MAX_PIPELINE`).
    pub unanswered: Vec<Request>,
    /// Response bytes received (since the last complete response header) while the
    /// unanswered requests were waiting: 0 means the server sent nothing at all.
    pub bytes_after_unanswered: u64,
    /// Hosts seen in requests (first few).
    pub hosts: Few<ShortText>,
    pub servers: Few<ShortText>,
    /// A CONNECT tunnel was established (TLS follows inside).
    pub tunnel: bool,
    /// The response stream had a gap (bytes not captured): "no response byte" cannot be claimed.
    pub response_gap: bool,
    /// Answered requests not kept in `ok_sample` or `errors` (at most `MAX_SAMPLES`); together
    /// with those and `unanswered`, every request seen is represented up to the caps.
    pub request_sample: Vec<Request>,
    /// The first exchanges answered below 400 (at most `MAX_SAMPLES`).
    pub ok_sample: Vec<Exchange>,
    /// A `Via` or `X-Squid-Error` header seen in a response: the responder is a proxy.
    pub proxy_mark: Option<ShortText>,
    /// The last response's body had not ended (declared `Content-Length` not reached, chunked
    /// terminator not seen) when the connection ended.
    pub truncated: Option<Truncation>,
    /// Proxy refusals: 407, and 403 marked by a proxy (`X-Squid-Error`, an answer to CONNECT)
    /// (first `MAX_ERRORS`).
    pub denied: Vec<Denial>,
    pub anomaly: Option<&'static str>,
    /// Requests seen while `max_pending` were already waiting: counted in `requests`, not kept
    /// for pairing (their responses are paired with no request).
    pub requests_over_cap: u32,
}

/// A response whose body the connection's end cut short.
#[derive(Clone, Debug, Serialize)]
pub struct Truncation {
    /// The response's header frame and status.
    pub response: FrameRef,
    pub status: u16,
    /// The request it answered, when captured.
    pub request: Option<FrameRef>,
    /// Declared body length (`Content-Length`); None for a chunked body.
    pub declared: Option<u64>,
    /// Body bytes that arrived (gaps in the capture counted as arrived).
    pub received: u64,
    /// The last frame that carried body bytes.
    pub last_data: FrameRef,
}

/// A proxy refusing a request by policy.
#[derive(Clone, Debug, Serialize)]
pub struct Denial {
    pub request: Option<Request>,
    pub response: FrameRef,
    pub status: u16,
    pub server: Option<ShortText>,
    /// `X-Squid-Error`, `Proxy-Authenticate` scheme, or the product's own words.
    pub reason: ShortText,
}

#[derive(Debug, Default)]
enum Body {
    #[default]
    None,
    Length(u64),
    Chunked(Chunk),
    UntilClose,
}

#[derive(Debug, Default, Clone, Copy)]
enum Chunk {
    #[default]
    Size,
    /// Skipping a chunk extension up to the end of the size line.
    Ext,
    SizeLf,
    Data(u64),
    DataCr,
    DataLf,
    /// After the last (0-size) chunk: trailer lines until an empty line.
    Trailer {
        line_len: u32,
        cr: bool,
    },
}

#[derive(Debug, Default)]
struct DirState {
    buf: Vec<u8>,
    body: Body,
    chunk_size: u64,
    stopped: bool,
    /// Lost sync in a gap: skip data until a chunk starts with a request / status line.
    resync: bool,
    /// Body bytes to copy into the last error response's snippet.
    snippet: bool,
}

#[derive(Debug, Default)]
pub struct HttpParser {
    req: DirState,
    resp: DirState,
    pending: Pending,
    /// Set when a CONNECT got a 2xx: bytes that follow are the tunnel's.
    pub tunnel: bool,
    /// 101 Switching Protocols: no more HTTP/1 on this connection.
    switched: bool,
    pub summary: HttpSummary,
    /// Events since the caller last drained them (reused buffer).
    pub events: Vec<super::AppEvent>,
    /// Response bytes received since the last response header while a request was waiting.
    resp_bytes_while_pending: u64,
    /// Responses presumed lost in gaps of the response stream (pending requests to forget).
    lost_in_gap: u32,
    /// The response whose body is being skipped: (header frame, status, request frame,
    /// declared length, body bytes so far, last body frame).
    body_of: Option<BodyProgress>,
    /// Requests kept waiting for their response at most (0 = `MAX_PIPELINE`).
    max_pending: usize,
}

/// Requests waiting for their response, the oldest first. The oldest is kept in place: most
/// connections have one request waiting at a time, and a `VecDeque` allocates on its first push.
#[derive(Debug, Default)]
struct Pending {
    /// The oldest; None only when `rest` is empty too.
    front: Option<Request>,
    rest: VecDeque<Request>,
}

impl Pending {
    fn len(&self) -> usize {
        self.front.is_some() as usize + self.rest.len()
    }

    fn is_empty(&self) -> bool {
        self.front.is_none()
    }

    fn push_back(&mut self, r: Request) {
        if self.front.is_none() {
            self.front = Some(r);
        } else {
            self.rest.push_back(r);
        }
    }

    fn pop_front(&mut self) -> Option<Request> {
        let r = self.front.take();
        self.front = self.rest.pop_front();
        r
    }

    fn back_mut(&mut self) -> Option<&mut Request> {
        self.rest.back_mut().or(self.front.as_mut())
    }

    fn iter(&self) -> impl Iterator<Item = &Request> {
        self.front.iter().chain(&self.rest)
    }

    fn drain(&mut self) -> impl Iterator<Item = Request> + '_ {
        self.front.take().into_iter().chain(self.rest.drain(..))
    }
}

#[derive(Debug, Clone, Copy)]
struct BodyProgress {
    response: FrameRef,
    status: u16,
    request: Option<FrameRef>,
    declared: Option<u64>,
    received: u64,
    last_data: FrameRef,
}

const METHODS: [&[u8]; 9] = [
    b"GET ",
    b"POST ",
    b"HEAD ",
    b"PUT ",
    b"DELETE ",
    b"OPTIONS ",
    b"CONNECT ",
    b"PATCH ",
    b"TRACE ",
];

/// Whether `b` starts like an HTTP/1 request (originator) or response (responder): `Some(true)`
/// once a whole method token / `HTTP/1.` is there, `Some(false)` when it cannot be, `None` while
/// `b` is still a prefix of one.
pub fn http_start(dir: Direction, b: &[u8]) -> Option<bool> {
    let tokens: &[&[u8]] = match dir {
        Direction::Orig => &METHODS,
        Direction::Resp => &[b"HTTP/1."],
    };
    if tokens.iter().any(|t| b.starts_with(t)) {
        Some(true)
    } else if tokens.iter().any(|t| t.starts_with(b)) {
        None
    } else {
        Some(false)
    }
}

/// Offset just past the first CRLFCRLF (the end of a header block) in `b`.
fn find_block_end(b: &[u8]) -> Option<usize> {
    static END: std::sync::OnceLock<memchr::memmem::Finder<'static>> = std::sync::OnceLock::new();
    END.get_or_init(|| memchr::memmem::Finder::new(b"\r\n\r\n"))
        .find(b)
        .map(|p| p + 4)
}

/// Offset of the first message start (a method token / `HTTP/1.`) right after a CRLF in `b`.
fn find_message_start(dir: Direction, b: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(p) = b[i..].windows(2).position(|w| w == b"\r\n") {
        let at = i + p + 2;
        if at >= b.len() {
            return None;
        }
        if http_start(dir, &b[at..]) == Some(true) {
            return Some(at);
        }
        i = at;
    }
    None
}

/// The first `MAX_FIELD` bytes of a field, invalid UTF-8 replaced (borrowed when valid, so that
/// it can be joined to other text before anything is copied).
fn lossy(b: &[u8]) -> Cow<'_, str> {
    let b = &b[..b.len().min(MAX_FIELD)];
    // Valid nearly always: `from_utf8` checks it faster than `from_utf8_lossy`'s chunking.
    match std::str::from_utf8(b) {
        Ok(s) => Cow::Borrowed(s),
        Err(_) => String::from_utf8_lossy(b),
    }
}

fn text(b: &[u8]) -> ShortText {
    lossy(b).into()
}

/// A C0 control other than tab, CR and LF, or DEL: httparse refuses these in a request target,
/// a reason phrase or a header value, but real peers send them (a careless backend's `Server`
/// header, a scanner's target).
fn is_control(b: u8) -> bool {
    (b < 0x20 && !matches!(b, b'\t' | b'\r' | b'\n')) || b == 0x7f
}

/// A copy of a header block with each control byte (`is_control`) replaced by `?`, for httparse
/// to parse; None when there is none. Values are then read back from the original bytes at the
/// same offsets (`original`), so the reports show — escaped — what was really sent.
fn lenient_copy(block: &[u8]) -> Option<Vec<u8>> {
    // Folded without an early exit, so that the compiler checks 16 or 32 bytes at a time: a
    // clean block (nearly all of them) is read to its end either way.
    let any = block.iter().fold(false, |any, &b| any | is_control(b));
    any.then(|| {
        block
            .iter()
            .map(|&b| if is_control(b) { b'?' } else { b })
            .collect()
    })
}

/// The bytes of `block` where `v` (a slice of `parsed`, a same-length copy of `block`) lies; `v`
/// itself when it is not inside `parsed`.
fn original<'a>(block: &'a [u8], parsed: &[u8], v: &'a [u8]) -> &'a [u8] {
    let start = (v.as_ptr() as usize).wrapping_sub(parsed.as_ptr() as usize);
    if start <= parsed.len() && start + v.len() <= parsed.len() && block.len() == parsed.len() {
        &block[start..start + v.len()]
    } else {
        v
    }
}

fn header<'a>(hs: &'a [httparse::Header<'a>], name: &str) -> Option<&'a [u8]> {
    hs.iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value)
}

fn content_length(hs: &[httparse::Header<'_>]) -> Option<u64> {
    let v = header(hs, "content-length")?;
    // Plain digits (nearly always), read as they are; at most 19 cannot overflow a u64.
    if (1..=19).contains(&v.len()) && v.iter().all(u8::is_ascii_digit) {
        return Some(v.iter().fold(0, |n, &d| n * 10 + (d - b'0') as u64));
    }
    std::str::from_utf8(v)
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

fn is_chunked(hs: &[httparse::Header<'_>]) -> bool {
    header(hs, "transfer-encoding").is_some_and(|v| {
        String::from_utf8_lossy(v)
            .rsplit(',')
            .next()
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("chunked"))
    })
}

impl HttpParser {
    /// A parser keeping at most `max_pending` requests waiting for their response (0 = the
    /// default, `MAX_PIPELINE`).
    pub fn with_max_pending(max_pending: usize) -> HttpParser {
        HttpParser {
            max_pending,
            ..Default::default()
        }
    }

    /// Back to the state of `with_max_pending(max_pending)`, keeping the event list's and the
    /// header buffers' memory when it is small (`SMALL_HEADER_BUF`): see `app::Spares`.
    pub fn reset(&mut self, max_pending: usize) {
        let mut events = std::mem::take(&mut self.events);
        events.clear();
        let keep = |mut b: Vec<u8>| {
            b.clear();
            if b.capacity() <= SMALL_HEADER_BUF {
                b
            } else {
                Vec::new()
            }
        };
        let (req, resp) = (
            keep(std::mem::take(&mut self.req.buf)),
            keep(std::mem::take(&mut self.resp.buf)),
        );
        *self = HttpParser {
            events,
            ..HttpParser::with_max_pending(max_pending)
        };
        self.req.buf = req;
        self.resp.buf = resp;
    }

    fn max_pending(&self) -> usize {
        if self.max_pending == 0 {
            MAX_PIPELINE
        } else {
            self.max_pending
        }
    }

    fn stop(&mut self, why: &'static str) {
        self.req.stopped = true;
        self.resp.stopped = true;
        self.summary.anomaly.get_or_insert(why);
    }

    pub fn gap(&mut self, dir: Direction, n: u32) {
        if dir == Direction::Resp {
            self.summary.response_gap = true;
        }
        let d = match dir {
            Direction::Orig => &mut self.req,
            Direction::Resp => &mut self.resp,
        };
        if d.stopped || self.tunnel || self.switched {
            return;
        }
        // Inside a body a gap is just skipped body; anywhere else we lost sync.
        let in_body = matches!(
            d.body,
            Body::Length(left) if left >= n as u64
        ) || matches!(d.body, Body::UntilClose)
            || matches!(d.body, Body::Chunked(Chunk::Data(left)) if left >= n as u64);
        match &mut d.body {
            Body::Length(left) if *left >= n as u64 => {
                *left -= n as u64;
                if *left == 0 {
                    d.body = Body::None;
                }
            }
            Body::UntilClose => {}
            Body::Chunked(Chunk::Data(left)) if *left >= n as u64 => {
                *left -= n as u64;
                if *left == 0 {
                    d.body = Body::Chunked(Chunk::DataCr);
                }
            }
            _ => {
                if dir == Direction::Resp {
                    self.body_of = None;
                }
                // Lost sync: wait for the next chunk that starts a message (as Wireshark
                // re-dissects every segment). A response lost in the gap answered the oldest
                // pending request: that request is forgotten, not reported unanswered.
                d.buf.clear();
                d.body = Body::None;
                d.resync = true;
                d.snippet = false;
                self.summary
                    .anomaly
                    .get_or_insert("gap in the HTTP stream: resynchronised on the next message");
                if dir == Direction::Resp {
                    self.lost_in_gap += 1;
                }
            }
        }
        if in_body && dir == Direction::Resp {
            if let Some(p) = &mut self.body_of {
                p.received += n as u64;
            }
            if matches!(self.resp.body, Body::None) {
                self.body_of = None;
            }
        }
    }

    /// Body bytes of the current response arrived (or were skipped over a capture gap).
    fn body_progress(&mut self, n: u64, frame: FrameRef) {
        if matches!(self.resp.body, Body::None) {
            self.body_of = None;
        } else if let Some(p) = &mut self.body_of {
            p.received += n;
            p.last_data = frame;
        }
    }

    /// Feeds in-order bytes; returns how many were consumed before a CONNECT tunnel began (the
    /// rest belong to the tunnel).
    pub fn data(&mut self, dir: Direction, frame: FrameRef, mut b: &[u8]) -> usize {
        let total = b.len();
        while !b.is_empty() {
            if self.tunnel || self.switched {
                return total - b.len();
            }
            let d = match dir {
                Direction::Orig => &mut self.req,
                Direction::Resp => &mut self.resp,
            };
            if d.stopped {
                return total;
            }
            if d.resync {
                // After a gap a message can begin at the start of a delivered chunk (as
                // Wireshark re-dissects each segment) or right after a line end inside it.
                let at = if b.len() == total && http_start(dir, b) == Some(true) {
                    Some(0)
                } else {
                    find_message_start(dir, b)
                };
                let Some(at) = at else { return total };
                b = &b[at..];
                d.resync = false;
                if dir == Direction::Resp {
                    for _ in 0..std::mem::take(&mut self.lost_in_gap) {
                        self.pending.pop_front();
                    }
                }
                continue;
            }
            let waiting = dir == Direction::Resp && !self.pending.is_empty();
            let responses = self.summary.responses;
            let in_body = !matches!(d.body, Body::None);
            let used = if in_body {
                self.body(dir, frame, b)
            } else {
                self.headers(dir, frame, b)
            };
            if in_body && dir == Direction::Resp {
                self.body_progress(used as u64, frame);
            }
            // Response bytes that arrived while a request waited, counted once each; a response
            // header completed in this step reset the count.
            if waiting && self.summary.responses == responses {
                self.resp_bytes_while_pending += used as u64;
            }
            b = &b[used..];
        }
        total
    }

    /// Skips / decodes body bytes; returns bytes consumed.
    fn body(&mut self, dir: Direction, frame: FrameRef, b: &[u8]) -> usize {
        let d = match dir {
            Direction::Orig => &mut self.req,
            Direction::Resp => &mut self.resp,
        };
        let errors = &mut self.summary.errors;
        let mut snippet = |d: &mut DirState, bytes: &[u8]| {
            if d.snippet {
                if let Some(e) = errors.last_mut() {
                    let room = BODY_SNIPPET.saturating_sub(e.response.body_raw.len());
                    if room == 0 {
                        d.snippet = false;
                    } else {
                        e.response
                            .body_raw
                            .extend_from_slice(&bytes[..bytes.len().min(room)]);
                    }
                }
            }
        };
        match &mut d.body {
            Body::Length(left) => {
                let n = (*left).min(b.len() as u64) as usize;
                *left -= n as u64;
                if *left == 0 {
                    d.body = Body::None;
                }
                snippet(d, &b[..n]);
                if matches!(d.body, Body::None) {
                    d.snippet = false;
                    if dir == Direction::Orig {
                        self.request_complete_frame_pending(frame);
                    }
                }
                n
            }
            Body::UntilClose => {
                snippet(d, b);
                b.len()
            }
            Body::Chunked(_) => {
                let mut i = 0;
                while i < b.len() {
                    let Body::Chunked(state) = &mut d.body else {
                        break;
                    };
                    let c = b[i];
                    match *state {
                        Chunk::Size => match c {
                            b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                                // More than 16 significant hex digits: no such chunk (and no
                                // honest sender); stop rather than saturate into a wrong size.
                                if d.chunk_size > u64::MAX >> 4 {
                                    self.summary
                                        .anomaly
                                        .get_or_insert("chunk size overflows 64 bits");
                                    d.stopped = true;
                                    if dir == Direction::Resp {
                                        self.body_of = None;
                                    }
                                    // Consumed up to the offending byte, however the stream
                                    // was segmented (what follows is not counted).
                                    return i;
                                }
                                let v = (c as char).to_digit(16).unwrap_or(0) as u64;
                                d.chunk_size = d.chunk_size * 16 + v;
                                i += 1;
                            }
                            b';' | b' ' | b'\t' => {
                                *state = Chunk::Ext;
                                i += 1;
                            }
                            b'\r' => {
                                *state = Chunk::SizeLf;
                                i += 1;
                            }
                            b'\n' => {
                                *state = Chunk::SizeLf;
                            }
                            _ => {
                                self.summary.anomaly.get_or_insert("bad chunk size");
                                d.stopped = true;
                                return i;
                            }
                        },
                        Chunk::Ext => {
                            if c == b'\r' || c == b'\n' {
                                *state = Chunk::SizeLf;
                            }
                            i += (c != b'\n') as usize;
                        }
                        Chunk::SizeLf => {
                            if c == b'\n' {
                                i += 1;
                            }
                            *state = if d.chunk_size == 0 {
                                Chunk::Trailer {
                                    line_len: 0,
                                    cr: false,
                                }
                            } else {
                                Chunk::Data(d.chunk_size)
                            };
                            d.chunk_size = 0;
                        }
                        Chunk::Data(left) => {
                            let n = left.min((b.len() - i) as u64) as usize;
                            let chunk = &b[i..i + n];
                            i += n;
                            let left = left - n as u64;
                            *state = if left == 0 {
                                Chunk::DataCr
                            } else {
                                Chunk::Data(left)
                            };
                            snippet(d, chunk);
                        }
                        Chunk::DataCr => {
                            *state = Chunk::DataLf;
                            i += (c == b'\r') as usize;
                        }
                        Chunk::DataLf => {
                            *state = Chunk::Size;
                            i += (c == b'\n') as usize;
                        }
                        Chunk::Trailer { line_len, cr } => {
                            i += 1;
                            match c {
                                b'\r' => *state = Chunk::Trailer { line_len, cr: true },
                                b'\n' if line_len == 0 => {
                                    d.body = Body::None;
                                    d.snippet = false;
                                    if dir == Direction::Orig {
                                        self.request_complete_frame_pending(frame);
                                    }
                                    return i;
                                }
                                b'\n' => {
                                    *state = Chunk::Trailer {
                                        line_len: 0,
                                        cr: false,
                                    }
                                }
                                _ => {
                                    *state = Chunk::Trailer {
                                        line_len: line_len.saturating_add(1 + cr as u32),
                                        cr: false,
                                    }
                                }
                            }
                        }
                    }
                }
                b.len()
            }
            Body::None => 0,
        }
    }

    /// Marks the newest request as completely sent (its body ended) — frame set by `data`.
    /// The body of the newest request ended in `frame`: the request was complete then.
    fn request_complete_frame_pending(&mut self, frame: FrameRef) {
        if let Some(r) = self.pending.back_mut() {
            if r.complete_at.is_none() {
                r.complete_at = Some(frame);
            }
        }
    }

    /// Buffers a header block; parses it when complete. Returns bytes consumed.
    fn headers(&mut self, dir: Direction, frame: FrameRef, b: &[u8]) -> usize {
        let d = match dir {
            Direction::Orig => &mut self.req,
            Direction::Resp => &mut self.resp,
        };
        // Common case: the whole header block is in this chunk — parse it in place, no copy.
        if d.buf.is_empty() {
            if let Some(p) = find_block_end(&b[..b.len().min(MAX_HEADER_BYTES + 4)]) {
                match dir {
                    Direction::Orig => self.parse_request(frame, &b[..p]),
                    Direction::Resp => self.parse_response(frame, &b[..p]),
                }
                return p;
            }
        }
        // Find the end of the header block across the old buffer and the new bytes.
        let old = d.buf.len();
        let search_from = old.saturating_sub(3);
        d.buf
            .extend_from_slice(&b[..b.len().min((MAX_HEADER_BYTES + 4).saturating_sub(old))]);
        let end = find_block_end(&d.buf[search_from..]).map(|p| search_from + p);
        let Some(end) = end else {
            // The whole window (`MAX_HEADER_BYTES` + the 4 bytes of a terminator) is buffered
            // and holds no end: stop there, however the stream was segmented (the in-place path
            // above searches exactly that window too). Only the bytes up to the stop point count
            // as consumed.
            if d.buf.len() >= MAX_HEADER_BYTES + 4 {
                self.stop("HTTP header block larger than the cap");
                return MAX_HEADER_BYTES + 4 - old;
            }
            return b.len();
        };
        let used = end - old;
        let block = std::mem::take(&mut d.buf);
        match dir {
            Direction::Orig => self.parse_request(frame, &block[..end]),
            Direction::Resp => self.parse_response(frame, &block[..end]),
        }
        let d = match dir {
            Direction::Orig => &mut self.req,
            Direction::Resp => &mut self.resp,
        };
        // Keep a small buffer for the next header block; give a large one back (a connection
        // that lingers after closing must not hold kilobytes of old headers).
        if block.capacity() <= SMALL_HEADER_BUF {
            d.buf = block;
            d.buf.clear();
        }
        used
    }

    fn parse_request(&mut self, frame: FrameRef, block: &[u8]) {
        // Left uninitialised: httparse writes the headers it parses (zeroing 64 of them cost
        // more than parsing a typical request).
        let mut hs = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut req = httparse::Request::new(&mut []);
        let copy = lenient_copy(block);
        let parsed: &[u8] = copy.as_deref().unwrap_or(block);
        match req.parse_with_uninit_headers(parsed, &mut hs) {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return self.stop("unparsable HTTP request"),
        }
        let orig = |v: &[u8]| text(original(block, parsed, v));
        let method = req.method.unwrap_or("");
        let host = header(req.headers, "host").map(orig);
        // Name and value joined into one string, not copied twice.
        let fwd = ["x-forwarded-for", "x-real-ip", "forwarded", "via"]
            .iter()
            .find_map(|n| {
                let v = lossy(original(block, parsed, header(req.headers, n)?));
                Some(ShortText::concat(&[n, ": ", &v]))
            });
        let body = if is_chunked(req.headers) {
            Body::Chunked(Chunk::Size)
        } else {
            match content_length(req.headers) {
                Some(n) if n > 0 => Body::Length(n),
                _ => Body::None,
            }
        };
        let complete = matches!(body, Body::None);
        // Copied only when it is new to the list (most requests repeat a host already there).
        if let Some(h) = &host {
            if self.summary.hosts.len() < 4 && !self.summary.hosts.contains(h) {
                self.summary.hosts.push(h.clone());
            }
        }
        let r = Request {
            frame,
            method: text(method.as_bytes()),
            target: orig(req.path.unwrap_or("").as_bytes()),
            host,
            complete_at: complete.then_some(frame),
            forwarded_for: fwd,
        };
        self.summary.requests += 1;
        self.events.push(super::AppEvent::HttpRequest { frame });
        if self.pending.len() < self.max_pending() {
            self.pending.push_back(r);
        } else {
            self.summary.requests_over_cap += 1;
            self.summary
                .anomaly
                .get_or_insert("more pipelined requests than the cap");
        }
        self.req.body = body;
    }

    fn parse_response(&mut self, frame: FrameRef, block: &[u8]) {
        let mut hs = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
        let mut resp = httparse::Response::new(&mut []);
        let copy = lenient_copy(block);
        let parsed: &[u8] = copy.as_deref().unwrap_or(block);
        match httparse::ParserConfig::default()
            .parse_response_with_uninit_headers(&mut resp, parsed, &mut hs)
        {
            Ok(httparse::Status::Complete(_)) => {}
            _ => return self.stop("unparsable HTTP response"),
        }
        let orig = |v: &[u8]| text(original(block, parsed, v));
        let status = resp.code.unwrap_or(0);
        let server = header(resp.headers, "server").map(orig);
        let via = header(resp.headers, "via").map(orig);
        // Joined to its name where it is used (never copied on its own).
        let squid_error =
            header(resp.headers, "x-squid-error").map(|v| lossy(original(block, parsed, v)));
        if self.summary.proxy_mark.is_none() {
            self.summary.proxy_mark = via
                .as_ref()
                .map(|v| ShortText::concat(&["Via: ", v]))
                .or_else(|| {
                    let e = squid_error.as_ref()?;
                    Some(ShortText::concat(&["X-Squid-Error: ", e]))
                });
        }
        if let Some(s) = &server {
            if self.summary.servers.len() < 4 && !self.summary.servers.contains(s) {
                self.summary.servers.push(s.clone());
            }
        }
        // 1xx (except 101) are interim: the request stays pending.
        let interim = (100..200).contains(&status) && status != 101;
        let request = if interim {
            None
        } else {
            self.pending.pop_front()
        };
        self.summary.responses += 1;
        self.resp_bytes_while_pending = 0;
        self.events
            .push(super::AppEvent::HttpResponse { frame, status });
        if let Some((_, n)) = self
            .summary
            .status_counts
            .iter_mut()
            .find(|(s, _)| *s == status)
        {
            *n += 1;
        } else if self.summary.status_counts.len() < MAX_STATUS_KINDS {
            self.summary.status_counts.push((status, 1));
        }
        // Compared as bytes (a `ShortText` read as a `str` is checked for UTF-8 first).
        let method: &[u8] = request.as_ref().map_or(b"", |r| r.method.as_bytes());
        let no_body =
            method == b"HEAD" || (100..200).contains(&status) || status == 204 || status == 304;
        let body = if no_body {
            Body::None
        } else if method == b"CONNECT" && (200..300).contains(&status) {
            self.tunnel = true;
            self.summary.tunnel = true;
            Body::None
        } else if is_chunked(resp.headers) {
            Body::Chunked(Chunk::Size)
        } else {
            match content_length(resp.headers) {
                Some(0) => Body::None,
                Some(n) => Body::Length(n),
                None => Body::UntilClose,
            }
        };
        if status == 101 {
            self.switched = true;
        }
        self.body_of = match body {
            Body::Length(n) => Some(Some(n)),
            Body::Chunked(_) => Some(None),
            _ => None,
        }
        .map(|declared| BodyProgress {
            response: frame,
            status,
            request: request.as_ref().map(|r| r.frame),
            declared,
            received: 0,
            last_data: frame,
        });
        // A proxy refusing by policy: 407 is a proxy's status by definition (RFC 9110
        // §15.5.8); a 403 is a proxy's when it answers a CONNECT or an absolute-form target
        // (only a forward proxy receives those) or carries squid's `X-Squid-Error`.
        let forward = request.as_ref().is_some_and(|r| {
            r.method == "CONNECT"
                || r.target.as_bytes().starts_with(b"http://")
                || r.target.as_bytes().starts_with(b"https://")
        });
        if (status == 407 || (status == 403 && (forward || squid_error.is_some())))
            && self.summary.denied.len() < MAX_ERRORS
        {
            let reason = if let Some(e) = &squid_error {
                ShortText::concat(&["X-Squid-Error: ", e])
            } else if let Some(a) = header(resp.headers, "proxy-authenticate") {
                let a = lossy(original(block, parsed, a));
                let scheme = a.split_whitespace().next().unwrap_or("");
                ShortText::concat(&["Proxy-Authenticate: ", scheme])
            } else {
                format!("{} {}", status, orig(resp.reason.unwrap_or("").as_bytes())).into()
            };
            push_small(
                &mut self.summary.denied,
                Denial {
                    request: request.clone(),
                    response: frame,
                    status,
                    server: server.clone(),
                    reason,
                },
            );
        }
        // The answered request moves (no copy) into the error list, the successful sample, or the
        // plain request sample, whichever has room; every sample keeps its request. An error
        // (≥ 500) is never a success (< 400), so the response's strings move too.
        let kept_error = status >= 500 && self.summary.errors.len() < MAX_ERRORS;
        let ok = (200..400).contains(&status) && self.summary.ok_sample.len() < MAX_SAMPLES;
        let mut request = request;
        if kept_error || ok {
            let exchange = Exchange {
                request: request.take(),
                response: Response {
                    frame,
                    status,
                    reason: orig(resp.reason.unwrap_or("").as_bytes()),
                    server,
                    via,
                    body_snippet: String::new(),
                    body_raw: Vec::new(),
                },
            };
            let list = if kept_error {
                &mut self.summary.errors
            } else {
                &mut self.summary.ok_sample
            };
            push_small(list, exchange);
        }
        if let Some(r) = request {
            if self.summary.request_sample.len() < MAX_SAMPLES {
                push_small(&mut self.summary.request_sample, r);
            }
        }
        self.resp.snippet = kept_error && !matches!(body, Body::None);
        self.resp.body = body;
    }

    /// A request is waiting for its response.
    pub fn has_pending(&self) -> bool {
        !self.pending.is_empty()
    }

    /// The summary as `finish` would leave it for the pending requests (unanswered so far),
    /// without ending anything: see `AppFlow::peek`.
    pub fn peek(&self) -> HttpSummary {
        let mut s = self.summary.clone();
        if !self.pending.is_empty() {
            s.bytes_after_unanswered = self.resp_bytes_while_pending;
            s.unanswered.extend(self.pending.iter().cloned());
        }
        s
    }

    /// The connection ended: requests still pending are unanswered; a body still being read
    /// was cut short.
    pub fn finish(&mut self) {
        if let Some(p) = self.body_of.take() {
            if matches!(self.resp.body, Body::Length(_) | Body::Chunked(_)) && !self.resp.stopped {
                self.summary.truncated = Some(Truncation {
                    response: p.response,
                    status: p.status,
                    request: p.request,
                    declared: p.declared,
                    received: p.received,
                    last_data: p.last_data,
                });
            }
        }
        for e in &mut self.summary.errors {
            let text = String::from_utf8_lossy(&e.response.body_raw);
            // Within the cap in bytes, cut at a character boundary (U+FFFD takes 3 bytes).
            let mut end = text.len().min(BODY_SNIPPET);
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            e.response.body_snippet = text[..end].to_string();
            e.response.body_raw = Vec::new();
        }
        if !self.pending.is_empty() {
            self.summary.bytes_after_unanswered = self.resp_bytes_while_pending;
        }
        self.summary.unanswered.extend(self.pending.drain());
    }
}

/// Pushes onto a per-connection list that usually holds one item: the first push allocates room
/// for one, not the four `Vec` starts with (a busy proxy holds thousands of connections open,
/// each with one exchange).
fn push_small<T>(v: &mut Vec<T>, x: T) {
    if v.capacity() == 0 {
        v.reserve_exact(1);
    }
    v.push(x);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::testkit::fr;

    fn req(n: u64) -> Request {
        Request {
            frame: fr(n),
            method: "GET".into(),
            target: ShortText::new(&format!("/{}", n)),
            host: None,
            complete_at: None,
            forwarded_for: None,
        }
    }

    fn frames<'a>(it: impl Iterator<Item = &'a Request>) -> Vec<u64> {
        it.map(|r| r.frame.number).collect()
    }

    #[test]
    fn pending_requests_keep_their_order_across_the_inline_front() {
        let mut p = Pending::default();
        assert_eq!((p.is_empty(), p.len()), (true, 0));
        assert!(p.pop_front().is_none());
        assert!(p.back_mut().is_none());
        p.push_back(req(1));
        assert_eq!(
            (p.len(), p.rest.len()),
            (1, 0),
            "the first one is kept in place"
        );
        p.back_mut().unwrap().complete_at = Some(fr(9));
        p.push_back(req(2));
        p.push_back(req(3));
        assert_eq!(p.back_mut().unwrap().frame.number, 3, "back is the newest");
        assert_eq!(frames(p.iter()), [1, 2, 3]);
        assert_eq!(p.pop_front().unwrap().complete_at, Some(fr(9)));
        assert_eq!(frames(p.iter()), [2, 3]);
        p.push_back(req(4));
        assert_eq!(p.len(), 3);
        assert_eq!(p.pop_front().unwrap().frame.number, 2);
        assert_eq!(p.pop_front().unwrap().frame.number, 3);
        assert_eq!(p.back_mut().unwrap().frame.number, 4);
        p.push_back(req(5));
        let drained: Vec<u64> = p.drain().map(|r| r.frame.number).collect();
        assert_eq!(drained, [4, 5]);
        assert_eq!((p.is_empty(), p.len()), (true, 0));
        assert!(p.iter().next().is_none());
        p.push_back(req(6));
        assert_eq!(frames(p.iter()), [6]);
    }

    /// The plain-digits path of `content_length` gives what parsing the trimmed text gives.
    #[test]
    fn content_length_digits_read_as_parsing_would() {
        let general = |v: &[u8]| -> Option<u64> {
            std::str::from_utf8(v)
                .ok()
                .and_then(|s| s.trim().parse().ok())
        };
        let values: [&[u8]; 14] = [
            b"0",
            b"5",
            b"007",
            b"1234567890123456789",
            b"9999999999999999999",
            b"18446744073709551615",
            b"18446744073709551616",
            b"00000000000000000001",
            b"",
            b" 42 ",
            b"+5",
            b"5a",
            b"-1",
            "\u{a0}7".as_bytes(),
        ];
        for v in values {
            let hs = [httparse::Header {
                name: "Content-Length",
                value: v,
            }];
            assert_eq!(
                content_length(&hs),
                general(v),
                "{:?}",
                String::from_utf8_lossy(v)
            );
        }
        for n in [
            0u64,
            1,
            9,
            10,
            99,
            1 << 40,
            u64::MAX / 10,
            999_999_999_999_999_999,
        ] {
            let v = n.to_string();
            let hs = [httparse::Header {
                name: "content-length",
                value: v.as_bytes(),
            }];
            assert_eq!(content_length(&hs), Some(n));
        }
    }
}
