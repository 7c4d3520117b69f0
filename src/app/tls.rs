//! TLS handshake observer, fed only in-order stream bytes (`tls-parser` for the messages).
//!
//! Per direction it walks the record layer (5-byte headers, bodies skipped unless needed),
//! reassembles handshake messages across records (several per record work too), and extracts the
//! ClientHello (SNI, ALPN list, offered versions), the ServerHello (chosen version and ALPN, or a
//! HelloRetryRequest), plaintext alerts (level, description), and the point where each direction
//! became encrypted (ChangeCipherSpec in TLS ≤ 1.2; right after the ServerHello in TLS 1.3).
//! After that it only counts encrypted records. Memory per direction is capped by
//! `MAX_HANDSHAKE_MSG` (only ClientHello and ServerHello bodies are buffered); a gap before the
//! handshake is understood stops the parser for that direction with an anomaly.

use crate::flow::{Direction, FrameRef};
use serde::Serialize;
use tls_parser::{
    parse_tls_client_hello_extensions, parse_tls_message_handshake,
    parse_tls_server_hello_extensions, TlsExtension, TlsMessage, TlsMessageHandshake,
};

/// Largest ClientHello / ServerHello buffered (bigger ones are skipped with an anomaly).
pub const MAX_HANDSHAKE_MSG: usize = 64 * 1024;
/// Alerts remembered per connection.
pub const MAX_ALERTS: usize = 4;
/// Largest TLS record body accepted (2^14 + 2048, RFC 8446 §5.2); larger means not TLS.
const MAX_RECORD: u16 = 16384 + 2048;

const HS_CLIENT_HELLO: u8 = 1;
const HS_SERVER_HELLO: u8 = 2;
const REC_CCS: u8 = 20;
const REC_ALERT: u8 = 21;
const REC_HANDSHAKE: u8 = 22;
const REC_APPDATA: u8 = 23;
/// SHA-256("HelloRetryRequest"): a ServerHello with this random is a HelloRetryRequest.
const HRR_RANDOM: [u8; 32] = [
    0xCF, 0x21, 0xAD, 0x74, 0xE5, 0x9A, 0x61, 0x11, 0xBE, 0x1D, 0x8C, 0x02, 0x1E, 0x65, 0xB8, 0x91,
    0xC2, 0xA2, 0x11, 0x16, 0x7A, 0xBB, 0x8C, 0x5E, 0x07, 0x9E, 0x09, 0xE2, 0xC8, 0xA8, 0x33, 0x9C,
];

#[derive(Clone, Debug, Serialize)]
pub struct ClientHello {
    pub frame: FrameRef,
    pub sni: Option<String>,
    pub alpn: Vec<String>,
    /// Offered versions (supported_versions, else the legacy version), e.g. 0x0304 = TLS 1.3.
    pub versions: Vec<u16>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ServerHello {
    pub frame: FrameRef,
    /// The negotiated version (supported_versions, else the legacy version).
    pub version: u16,
    pub alpn: Option<String>,
    pub cipher: u16,
    pub hello_retry: bool,
}

#[derive(Clone, Copy, Debug, Serialize)]
pub struct Alert {
    pub frame: FrameRef,
    pub from: Direction,
    /// 1 warning, 2 fatal; 0 when encrypted (unknown).
    pub level: u8,
    pub description: u8,
    pub encrypted: bool,
}

/// What the TLS observer learned about one connection.
#[derive(Clone, Debug, Default, Serialize)]
pub struct TlsSummary {
    pub client_hello: Option<ClientHello>,
    pub server_hello: Option<ServerHello>,
    pub hello_retry: Option<FrameRef>,
    pub alerts: Vec<Alert>,
    /// Frame from which each direction was encrypted.
    pub encrypted_from: [Option<FrameRef>; 2],
    /// Encrypted records (type 23, and handshake records after encryption) per direction.
    pub encrypted_records: [u32; 2],
    pub encrypted_bytes: [u64; 2],
    /// First frame of encrypted data from each direction after the ServerHello.
    pub first_encrypted: [Option<FrameRef>; 2],
    /// Per direction, the last frame that began an application-data record that is not a
    /// likely encrypted alert (a TLS 1.3 alert is a 19-byte record with AES-GCM/ChaCha20):
    /// on an encrypted leg, "the client sent a request after the server's last data" is read
    /// from these.
    pub last_app_data: [Option<FrameRef>; 2],
    pub anomaly: Option<&'static str>,
}

impl TlsSummary {
    pub fn negotiated_tls13(&self) -> bool {
        self.server_hello
            .as_ref()
            .is_some_and(|s| is_tls13(s.version) && !s.hello_retry)
    }
}

/// Length of a TLS 1.3 record holding an encrypted alert (2 bytes + content type + 16-byte tag).
const TLS13_ALERT_RECORD: u16 = 19;

/// Record-layer state of one direction.
#[derive(Debug, Default)]
struct DirState {
    hdr: [u8; 5],
    hdr_len: u8,
    /// Body bytes left in the current record.
    body_left: u16,
    rec_type: u8,
    /// Length of the current record (an alert is plaintext only when it is exactly 2 bytes).
    rec_len: u16,
    encrypted: bool,
    stopped: bool,
    /// Alert body (2 bytes) being collected.
    alert: [u8; 2],
    alert_len: u8,
    /// Handshake message reassembly.
    hs_hdr: [u8; 4],
    hs_hdr_len: u8,
    hs_left: u32,
    hs_keep: bool,
    hs_buf: Vec<u8>,
    /// ClientHello / ServerHello messages completed in the current record (their types, in
    /// order): reported in the frame that completes the record, as Wireshark dissects a record
    /// once it is whole. At most a record's length / 4 entries, emptied at the record's end.
    hello_pending: Vec<u8>,
    /// The frame in which the first ClientHello (0) / ServerHello (1) of the current record
    /// completed (the summary's frame until the record ends).
    hello_at: [Option<FrameRef>; 2],
}

#[derive(Debug, Default)]
pub struct TlsParser {
    dirs: [DirState; 2],
    pub summary: TlsSummary,
    /// Events since the caller last drained them (reused buffer).
    pub events: Vec<super::AppEvent>,
}

/// Whether `b` starts like a TLS record (handshake or alert, SSL 3.0 .. TLS 1.3 record version).
pub fn looks_like_tls(b: &[u8]) -> bool {
    b.len() >= 3 && matches!(b[0], REC_HANDSHAKE | REC_ALERT) && b[1] == 3 && b[2] <= 4
}

/// TLS 1.3 draft versions that early deployments negotiated: 0x7fNN is IETF draft NN
/// (draft-ietf-tls-tls13-NN); 0xfb17 and 0xfb1a are Facebook's (Fizz) builds of drafts 23 and 26.
/// Unknown values stay raw numbers ("0x7e02").
pub fn tls13_draft(v: u16) -> Option<(u8, &'static str)> {
    match v {
        0x7f00..=0x7fff => Some((v as u8, "")),
        0xfb17 => Some((23, " (Facebook)")),
        0xfb1a => Some((26, " (Facebook)")),
        _ => None,
    }
}

/// Whether `v` is TLS 1.3 or one of its drafts: everything after such a ServerHello is
/// encrypted.
pub fn is_tls13(v: u16) -> bool {
    v == 0x0304 || tls13_draft(v).is_some()
}

fn version_name(v: u16) -> String {
    match v {
        0x0300 => "SSL 3.0".into(),
        0x0301 => "TLS 1.0".into(),
        0x0302 => "TLS 1.1".into(),
        0x0303 => "TLS 1.2".into(),
        0x0304 => "TLS 1.3".into(),
        v => match tls13_draft(v) {
            Some((n, who)) => format!("TLS 1.3 draft {}{}", n, who),
            None => format!("0x{:04x}", v),
        },
    }
}

/// (version, random, cipher, extensions) of a draft ServerHello.
type DraftHello<'a> = (u16, &'a [u8], u16, Option<&'a [u8]>);

/// The fields of a ServerHello (`msg` without its 4-byte handshake header) whose legacy version
/// is a TLS 1.3 draft, which `tls-parser` rejects (it knows only draft 18). Drafts before 22 put
/// the draft number in the version field and drop the session id and compression (version,
/// random, cipher, extensions); later builds (Facebook's 0xfb1a) may keep the TLS 1.2 layout.
/// Both are tried; the layout whose extensions end the message exactly wins.
/// Returns (version, random, cipher, extensions).
fn draft_server_hello(msg: &[u8]) -> Option<DraftHello<'_>> {
    let version = u16::from_be_bytes([*msg.first()?, *msg.get(1)?]);
    tls13_draft(version)?;
    let random = msg.get(2..34)?;
    let be16 = |i: usize| Some(u16::from_be_bytes([*msg.get(i)?, *msg.get(i + 1)?]));
    // Extensions starting at `i` (length-prefixed), or none when the message ends at `i`.
    let ext_at = |i: usize| -> Option<Option<&[u8]>> {
        if i == msg.len() {
            return Some(None);
        }
        let n = be16(i)? as usize;
        (i + 2 + n == msg.len()).then(|| Some(&msg[i + 2..]))
    };
    // Draft layout: cipher at 34, extensions at 36.
    if let (Some(cipher), Some(ext)) = (be16(34), ext_at(36)) {
        return Some((version, random, cipher, ext));
    }
    // TLS 1.2 layout: session id, cipher, compression, extensions.
    let sid = *msg.get(34)? as usize;
    let cipher = be16(35 + sid)?;
    msg.get(37 + sid)?;
    let ext = ext_at(38 + sid)?;
    Some((version, random, cipher, ext))
}

/// Human name of a TLS version number.
pub fn tls_version(v: u16) -> String {
    version_name(v)
}

/// RFC 8446 §6 / IANA alert names.
pub fn alert_name(d: u8) -> &'static str {
    match d {
        0 => "close_notify",
        10 => "unexpected_message",
        20 => "bad_record_mac",
        21 => "decryption_failed",
        22 => "record_overflow",
        30 => "decompression_failure",
        40 => "handshake_failure",
        41 => "no_certificate",
        42 => "bad_certificate",
        43 => "unsupported_certificate",
        44 => "certificate_revoked",
        45 => "certificate_expired",
        46 => "certificate_unknown",
        47 => "illegal_parameter",
        48 => "unknown_ca",
        49 => "access_denied",
        50 => "decode_error",
        51 => "decrypt_error",
        60 => "export_restriction",
        70 => "protocol_version",
        71 => "insufficient_security",
        80 => "internal_error",
        86 => "inappropriate_fallback",
        90 => "user_canceled",
        100 => "no_renegotiation",
        109 => "missing_extension",
        110 => "unsupported_extension",
        111 => "certificate_unobtainable",
        112 => "unrecognized_name",
        113 => "bad_certificate_status_response",
        114 => "bad_certificate_hash_value",
        115 => "unknown_psk_identity",
        116 => "certificate_required",
        120 => "no_application_protocol",
        _ => "unknown",
    }
}

/// What an alert usually means when it ends a handshake.
pub fn alert_meaning(d: u8) -> &'static str {
    match d {
        40 => "no common cipher suite / parameters, or the server rejected the ClientHello (often SNI or client-certificate policy)",
        42 | 43 | 44 | 45 | 46 | 48 => "a certificate was rejected (expired, unknown CA, wrong name, revoked)",
        47 => "a handshake field was invalid for the peer",
        50 => "the peer could not decode a message (not speaking the same TLS, or a middlebox altered it)",
        70 => "no common TLS version (e.g. a TLS 1.3-only server and a TLS 1.2 client)",
        71 => "the client's offer was below the server's minimum security",
        80 => "the peer hit an internal error",
        86 => "a version-fallback retry was refused",
        109 => "a required extension was missing",
        112 => "the server has no certificate for the requested SNI name",
        116 => "the server requires a client certificate",
        120 => "no common ALPN protocol (e.g. the client offers only h2 and the server only http/1.1)",
        _ => "the handshake was aborted",
    }
}

impl TlsParser {
    pub fn stop(&mut self, dir: Direction, why: &'static str) {
        self.dirs[dir.idx()].stopped = true;
        if self.summary.anomaly.is_none() {
            self.summary.anomaly = Some(why);
        }
    }

    pub fn gap(&mut self, dir: Direction) {
        let d = &self.dirs[dir.idx()];
        // A gap inside encrypted data loses nothing we parse; before that it desynchronises
        // the record layer.
        if !d.encrypted && !d.stopped {
            self.stop(dir, "gap in the TLS stream before the handshake was read");
        } else if d.encrypted {
            // Resynchronising on record boundaries is not possible: stop counting.
            self.dirs[dir.idx()].stopped = true;
        }
    }

    pub fn data(&mut self, dir: Direction, frame: FrameRef, mut b: &[u8]) {
        let di = dir.idx();
        while !b.is_empty() && !self.dirs[di].stopped {
            let d = &mut self.dirs[di];
            if d.body_left == 0 {
                // Record header.
                let need = 5 - d.hdr_len as usize;
                let take = need.min(b.len());
                d.hdr[d.hdr_len as usize..d.hdr_len as usize + take].copy_from_slice(&b[..take]);
                d.hdr_len += take as u8;
                b = &b[take..];
                if d.hdr_len < 5 {
                    return;
                }
                d.hdr_len = 0;
                let (t, major, len) =
                    (d.hdr[0], d.hdr[1], u16::from_be_bytes([d.hdr[3], d.hdr[4]]));
                if !(REC_CCS..=REC_APPDATA).contains(&t)
                    || major != 3
                    || len > MAX_RECORD
                    || len == 0
                {
                    self.stop(dir, "not a TLS record");
                    return;
                }
                d.rec_type = t;
                d.rec_len = len;
                d.body_left = len;
                d.alert_len = 0;
                let encrypted = d.encrypted;
                if t == REC_APPDATA && len != TLS13_ALERT_RECORD {
                    self.summary.last_app_data[di] = Some(frame);
                }
                if t == REC_APPDATA || (encrypted && t == REC_HANDSHAKE) {
                    self.summary.encrypted_records[di] += 1;
                    self.summary.encrypted_bytes[di] += len as u64;
                    if self.summary.server_hello.is_some()
                        && self.summary.first_encrypted[di].is_none()
                    {
                        self.summary.first_encrypted[di] = Some(frame);
                    }
                }
                if t == REC_ALERT && (encrypted || len != 2) {
                    self.push_alert(Alert {
                        frame,
                        from: dir,
                        level: 0,
                        description: 0,
                        encrypted: true,
                    });
                }
                continue;
            }
            // Record body.
            let take = (d.body_left as usize).min(b.len());
            let chunk = &b[..take];
            b = &b[take..];
            d.body_left -= take as u16;
            let (rec_type, encrypted, alert_len, rec_len) =
                (d.rec_type, d.encrypted, d.alert_len, d.rec_len);
            match rec_type {
                REC_HANDSHAKE if !encrypted => self.handshake_bytes(dir, frame, chunk),
                REC_ALERT if !encrypted && rec_len == 2 && alert_len < 2 => {
                    let d = &mut self.dirs[di];
                    for &x in chunk.iter().take(2 - d.alert_len as usize) {
                        d.alert[d.alert_len as usize] = x;
                        d.alert_len += 1;
                    }
                    if d.alert_len == 2 && d.body_left == 0 {
                        let (level, description) = (d.alert[0], d.alert[1]);
                        self.push_alert(Alert {
                            frame,
                            from: dir,
                            level,
                            description,
                            encrypted: false,
                        });
                    }
                }
                REC_CCS => {
                    // ChangeCipherSpec switches a TLS <= 1.2 direction to encryption. Only after a
                    // real ServerHello: the dummy CCS of TLS 1.3 compatibility mode after a
                    // HelloRetryRequest must not hide the second ClientHello / ServerHello.
                    let real_sh = self
                        .summary
                        .server_hello
                        .as_ref()
                        .is_some_and(|sh| !sh.hello_retry);
                    let d = &mut self.dirs[di];
                    if d.body_left == 0
                        && !d.encrypted
                        && real_sh
                        && !self.summary.negotiated_tls13()
                    {
                        d.encrypted = true;
                        self.summary.encrypted_from[di] = Some(frame);
                    }
                }
                _ => {}
            }
            // The record is whole (whatever it turned into: a TLS 1.3 ServerHello encrypts the
            // rest of its own record): a hello that completed inside it is reported now.
            if self.dirs[di].body_left == 0 && !self.dirs[di].hello_pending.is_empty() {
                self.hellos_at_record_end(dir, frame);
            }
        }
    }

    fn push_alert(&mut self, a: Alert) {
        self.events.push(super::AppEvent::TlsAlert {
            frame: a.frame,
            level: a.level,
            description: a.description,
            encrypted: a.encrypted,
        });
        if self.summary.alerts.len() < MAX_ALERTS {
            self.summary.alerts.push(a);
        }
    }

    /// Handshake-layer bytes: 4-byte message headers, bodies kept only for the hellos.
    fn handshake_bytes(&mut self, dir: Direction, frame: FrameRef, mut b: &[u8]) {
        let di = dir.idx();
        while !b.is_empty() {
            let d = &mut self.dirs[di];
            if d.hs_left == 0 && d.hs_hdr_len < 4 {
                let take = (4 - d.hs_hdr_len as usize).min(b.len());
                d.hs_hdr[d.hs_hdr_len as usize..d.hs_hdr_len as usize + take]
                    .copy_from_slice(&b[..take]);
                d.hs_hdr_len += take as u8;
                b = &b[take..];
                if d.hs_hdr_len < 4 {
                    return;
                }
                let len = u32::from_be_bytes([0, d.hs_hdr[1], d.hs_hdr[2], d.hs_hdr[3]]);
                let t = d.hs_hdr[0];
                let wanted = (t == HS_CLIENT_HELLO
                    && dir == Direction::Orig
                    && self.summary.client_hello.is_none())
                    || (t == HS_SERVER_HELLO
                        && dir == Direction::Resp
                        && (self.summary.server_hello.is_none()
                            || self.summary.hello_retry.is_some()));
                d.hs_keep = wanted && (len as usize) <= MAX_HANDSHAKE_MSG;
                if wanted && !d.hs_keep {
                    self.summary
                        .anomaly
                        .get_or_insert("TLS hello larger than the buffer cap");
                }
                let d = &mut self.dirs[di];
                d.hs_buf.clear();
                if d.hs_keep {
                    d.hs_buf.extend_from_slice(&d.hs_hdr);
                }
                d.hs_left = len;
                if len == 0 {
                    d.hs_hdr_len = 0;
                    self.message_done(dir, frame);
                }
            } else {
                let take = (d.hs_left as usize).min(b.len());
                if d.hs_keep {
                    d.hs_buf.extend_from_slice(&b[..take]);
                }
                d.hs_left -= take as u32;
                b = &b[take..];
                if d.hs_left == 0 {
                    d.hs_hdr_len = 0;
                    self.message_done(dir, frame);
                }
            }
            // A TLS 1.3 ServerHello encrypts what follows it: the rest of its record is not
            // read as plaintext handshake, whether it came in the same chunk or a later one
            // (the record layer checks `encrypted` per chunk).
            if self.dirs[di].encrypted {
                return;
            }
        }
    }

    fn message_done(&mut self, dir: Direction, frame: FrameRef) {
        let di = dir.idx();
        let msg = self.dirs[di].hs_hdr[0];
        if msg == HS_CLIENT_HELLO || msg == HS_SERVER_HELLO {
            // Reported when the record is whole (`hellos_at_record_end`), however the record
            // was segmented.
            let d = &mut self.dirs[di];
            d.hello_pending.push(msg);
            d.hello_at[(msg == HS_SERVER_HELLO) as usize].get_or_insert(frame);
        }
        if !self.dirs[di].hs_keep {
            return;
        }
        let buf = std::mem::take(&mut self.dirs[di].hs_buf);
        if msg == HS_SERVER_HELLO {
            if let Some((version, random, cipher, ext)) = buf.get(4..).and_then(draft_server_hello)
            {
                self.server_hello(frame, version, random, cipher, ext);
                return;
            }
        }
        match parse_tls_message_handshake(&buf) {
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ClientHello(ch)))) => {
                let mut hello = ClientHello {
                    frame,
                    sni: None,
                    alpn: Vec::new(),
                    versions: vec![ch.version.0],
                };
                if let Some(ext) = ch.ext {
                    if let Ok((_, exts)) = parse_tls_client_hello_extensions(ext) {
                        for e in exts {
                            match e {
                                TlsExtension::SNI(names) => {
                                    hello.sni = names
                                        .first()
                                        .map(|(_, n)| String::from_utf8_lossy(n).into_owned());
                                }
                                TlsExtension::ALPN(protos) => {
                                    hello.alpn = protos
                                        .iter()
                                        .map(|p| String::from_utf8_lossy(p).into_owned())
                                        .collect();
                                }
                                TlsExtension::SupportedVersions(v) => {
                                    let offered: Vec<u16> = v
                                        .iter()
                                        .map(|x| x.0)
                                        .filter(|x| x & 0x0F0F != 0x0A0A)
                                        .collect();
                                    if !offered.is_empty() {
                                        hello.versions = offered;
                                    }
                                }
                                _ => {}
                            }
                        }
                    }
                }
                self.summary.client_hello = Some(hello);
            }
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHello(sh)))) => {
                self.server_hello(frame, sh.version.0, sh.random, sh.cipher.0, sh.ext);
            }
            Ok((_, TlsMessage::Handshake(TlsMessageHandshake::ServerHelloV13Draft18(sh)))) => {
                self.server_hello(frame, sh.version.0, sh.random, sh.cipher.0, sh.ext);
            }
            Ok(_) => {}
            Err(_) => {
                self.summary.anomaly.get_or_insert("malformed TLS hello");
            }
        }
    }

    /// A ServerHello's fields (any layout): the negotiated version (supported_versions, else
    /// the legacy version), ALPN, HelloRetryRequest, and for TLS 1.3 and its drafts the switch
    /// to encryption.
    /// The record holding hellos ended in frame `end`: their events, and their frames in the
    /// summary, are `end`'s.
    fn hellos_at_record_end(&mut self, dir: Direction, end: FrameRef) {
        let d = &mut self.dirs[dir.idx()];
        let [ch_at, sh_at] = std::mem::take(&mut d.hello_at);
        for &msg in &d.hello_pending {
            self.events
                .push(super::AppEvent::TlsHandshake { frame: end, msg });
        }
        d.hello_pending.clear();
        let s = &mut self.summary;
        if let Some(at) = ch_at {
            if let Some(h) = s.client_hello.as_mut().filter(|h| h.frame == at) {
                h.frame = end;
            }
        }
        if let Some(at) = sh_at {
            if let Some(h) = s.server_hello.as_mut().filter(|h| h.frame == at) {
                h.frame = end;
            }
            if s.hello_retry == Some(at) {
                s.hello_retry = Some(end);
            }
            for e in s.encrypted_from.iter_mut().flatten() {
                if *e == at {
                    *e = end;
                }
            }
        }
    }

    fn server_hello(
        &mut self,
        frame: FrameRef,
        version: u16,
        random: &[u8],
        cipher: u16,
        ext: Option<&[u8]>,
    ) {
        let hrr = random == HRR_RANDOM;
        let mut hello = ServerHello {
            frame,
            version,
            alpn: None,
            cipher,
            hello_retry: hrr,
        };
        if let Some(ext) = ext {
            if let Ok((_, exts)) = parse_tls_server_hello_extensions(ext) {
                for e in exts {
                    match e {
                        TlsExtension::SupportedVersions(v) => {
                            if let Some(x) = v.first() {
                                hello.version = x.0;
                            }
                        }
                        TlsExtension::ALPN(p) => {
                            hello.alpn = p.first().map(|x| String::from_utf8_lossy(x).into_owned())
                        }
                        _ => {}
                    }
                }
            }
        }
        if hrr {
            self.summary.hello_retry = Some(frame);
            if self.summary.server_hello.is_none() {
                self.summary.server_hello = Some(hello);
            }
        } else {
            let tls13 = is_tls13(hello.version);
            self.summary.server_hello = Some(hello);
            if tls13 {
                // TLS 1.3 (and its drafts): everything after the ServerHello is encrypted, both
                // ways.
                for d in 0..2 {
                    if !self.dirs[d].encrypted {
                        self.dirs[d].encrypted = true;
                        self.summary.encrypted_from[d] = Some(frame);
                    }
                }
                // Stop looking for another ServerHello.
                self.dirs[Direction::Resp.idx()].hs_keep = false;
            }
        }
    }
}
