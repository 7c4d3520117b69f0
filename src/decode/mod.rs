//! Decoding one frame into a borrowed view of its TCP segment (or ICMP error about one).
//!
//! Owns: link-layer framing (Ethernet with 802.1Q/QinQ, PPPoE and MPLS, Linux SLL and SLL2, raw IP, BSD
//! NULL/LOOP) and `etherparse` in *lax* mode for IPv4/IPv6 (with extension headers), TCP and
//! ICMP. Must not: keep state or allocate.
//!
//! Lax means a frame cut short by the snaplen still yields whatever headers it holds: the TCP
//! header and the captured part of the payload, with `payload_len` taken from the IP header (the
//! length on the wire) and `truncated` set. Anything else that cannot be decoded is returned as a
//! named `Skip` reason, counted by the caller — never an error.

use crate::capture::LinkType;
use etherparse::{LaxNetSlice, LaxSlicedPacket, TransportSlice};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// TCP flag bits as on the wire.
pub mod flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
}

/// A TCP segment, borrowed from the frame.
#[derive(Clone, Copy, Debug)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: u8,
    pub window: u16,
    pub checksum: u16,
    /// IPv4 identification (None for IPv6).
    pub ip_id: Option<u16>,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Payload bytes on the wire (from the IP length fields), Wireshark's `tcp.len`.
    pub payload_len: u32,
    /// The captured part of the payload (shorter than `payload_len` when truncated).
    pub payload: &'a [u8],
    /// The frame was cut by the snaplen inside the TCP payload.
    pub truncated: bool,
}

impl TcpSegment<'_> {
    #[inline]
    pub fn has(&self, f: u8) -> bool {
        self.flags & f != 0
    }
}

/// An ICMP/ICMPv6 destination-unreachable (or time-exceeded) message quoting a TCP segment.
#[derive(Clone, Copy, Debug)]
pub struct IcmpError {
    /// Who sent the ICMP message (a router, firewall or the destination host).
    pub reporter: IpAddr,
    pub v6: bool,
    pub icmp_type: u8,
    pub code: u8,
    /// The quoted segment's addresses and ports (as the original sender sent them).
    pub src: IpAddr,
    pub dst: IpAddr,
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
}

/// Why a frame was not decoded into a TCP segment (counted per reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Skip {
    /// Not IP (ARP, LLDP, ...).
    NotIp,
    /// IP but not TCP (UDP, ICMP that quotes no TCP, ...).
    NotTcp,
    /// UDP to or from a tunnel port (GTP-U 2152, VXLAN 4789, Geneve 6081): whatever TCP it
    /// carries is not decoded.
    Tunnel,
    /// A non-first IP fragment, or a fragmented TCP segment (not reassembled).
    Fragment,
    /// Link, IP or TCP header cut short or invalid.
    Malformed,
}

impl Skip {
    pub fn name(self) -> &'static str {
        match self {
            Skip::NotIp => "not-ip",
            Skip::NotTcp => "not-tcp",
            Skip::Tunnel => "tunnel",
            Skip::Fragment => "ip-fragment",
            Skip::Malformed => "malformed",
        }
    }
}

#[derive(Clone, Copy, Debug)]
pub enum Decoded<'a> {
    Tcp(TcpSegment<'a>),
    Icmp(IcmpError),
    Skip(Skip),
}

/// UDP ports of tunnels that carry whole IP packets (GTP-U, VXLAN, Geneve).
const TUNNEL_PORTS: [u16; 3] = [2152, 4789, 6081];
const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88A8, 0x9100];
const ETH_PPPOE_SESSION: u16 = 0x8864;
const PPP_IPV4: u16 = 0x0021;
const PPP_IPV6: u16 = 0x0057;
const ETH_MPLS: u16 = 0x8847;
const ETH_MPLS_MC: u16 = 0x8848;
/// Most MPLS labels popped.
const MAX_MPLS_LABELS: usize = 8;
/// Most VLAN tags unwrapped (QinQ is 2; a third is tolerated).
const MAX_VLAN_TAGS: usize = 3;

#[inline]
fn be16(d: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*d.get(at)?, *d.get(at + 1)?]))
}

/// Returns the network-layer bytes of a frame (starting at the IP header), or why not.
pub fn network_layer(link: LinkType, data: &[u8]) -> Result<&[u8], Skip> {
    let (ethertype, off) = match link {
        LinkType::Ethernet => {
            let mut et = be16(data, 12).ok_or(Skip::Malformed)?;
            let mut off = 14;
            let mut tags = 0;
            while ETH_VLAN.contains(&et) && tags < MAX_VLAN_TAGS {
                et = be16(data, off + 2).ok_or(Skip::Malformed)?;
                off += 4;
                tags += 1;
            }
            match et {
                // PPPoE session (RFC 2516): 6-byte header, then the PPP protocol number.
                ETH_PPPOE_SESSION => {
                    let proto = be16(data, off + 6).ok_or(Skip::Malformed)?;
                    off += 8;
                    match proto {
                        PPP_IPV4 => (ETH_IPV4, off),
                        PPP_IPV6 => (ETH_IPV6, off),
                        _ => return Err(Skip::NotIp),
                    }
                }
                // MPLS (RFC 3032): pop labels up to the bottom of the stack, then IP by version.
                ETH_MPLS | ETH_MPLS_MC => {
                    let mut bottom = false;
                    let mut labels = 0;
                    while !bottom && labels < MAX_MPLS_LABELS {
                        bottom = data.get(off + 2).ok_or(Skip::Malformed)? & 1 == 1;
                        off += 4;
                        labels += 1;
                    }
                    match data.get(off).map(|b| b >> 4) {
                        Some(4) => (ETH_IPV4, off),
                        Some(6) => (ETH_IPV6, off),
                        _ => return Err(Skip::NotIp),
                    }
                }
                _ => (et, off),
            }
        }
        // SLL: packet type(2) ARPHRD(2) addr len(2) addr(8) protocol(2)
        LinkType::LinuxSll => (be16(data, 14).ok_or(Skip::Malformed)?, 16),
        // SLL2: protocol(2) reserved(2) ifindex(4) ARPHRD(2) packet type(1) addr len(1) addr(8)
        LinkType::LinuxSll2 => (be16(data, 0).ok_or(Skip::Malformed)?, 20),
        LinkType::RawIp => {
            let v = data.first().ok_or(Skip::Malformed)? >> 4;
            match v {
                4 => (ETH_IPV4, 0),
                6 => (ETH_IPV6, 0),
                _ => return Err(Skip::NotIp),
            }
        }
        LinkType::Ipv4 => (ETH_IPV4, 0),
        LinkType::Ipv6 => (ETH_IPV6, 0),
        LinkType::Null | LinkType::Loop => {
            let b: [u8; 4] = data.get(..4).ok_or(Skip::Malformed)?.try_into().unwrap();
            // DLT_NULL is in the capturing host's byte order: accept both.
            let fam = if link == LinkType::Loop {
                u32::from_be_bytes(b)
            } else {
                let le = u32::from_le_bytes(b);
                if le < 0x10000 {
                    le
                } else {
                    u32::from_be_bytes(b)
                }
            };
            match fam {
                2 => (ETH_IPV4, 4),
                // AF_INET6 on Linux, NetBSD/OpenBSD, FreeBSD, macOS
                10 | 24 | 28 | 30 => (ETH_IPV6, 4),
                _ => return Err(Skip::NotIp),
            }
        }
    };
    if ethertype != ETH_IPV4 && ethertype != ETH_IPV6 {
        return Err(Skip::NotIp);
    }
    data.get(off..).ok_or(Skip::Malformed)
}

/// Decodes one frame.
/// Which way a frame went relative to the capturing host, when the link layer says so (Linux
/// cooked captures, `tcpdump -i any`): `Some(true)` sent by this host (PACKET_OUTGOING),
/// `Some(false)` addressed to it (PACKET_HOST), `None` otherwise or for other link types.
pub fn host_direction(link: LinkType, data: &[u8]) -> Option<bool> {
    let t = match link {
        LinkType::LinuxSll => be16(data, 0)?,
        LinkType::LinuxSll2 => *data.get(10)? as u16,
        _ => return None,
    };
    match t {
        0 => Some(false),
        4 => Some(true),
        _ => None,
    }
}

pub fn decode(link: LinkType, data: &[u8]) -> Decoded<'_> {
    let ip = match network_layer(link, data) {
        Ok(ip) => ip,
        Err(s) => return Decoded::Skip(s),
    };
    decode_ip(ip)
}

fn decode_ip(ip: &[u8]) -> Decoded<'_> {
    match plain_ipv4_tcp(ip) {
        Some(seg) => Decoded::Tcp(seg),
        None => decode_ip_general(ip),
    }
}

/// The common case read directly (etherparse's general slicing was 5 % of a connection-heavy
/// capture's run): an unfragmented IPv4 packet (options allowed) whose protocol is TCP, with a
/// total length and a TCP data offset that fit the captured bytes (Ethernet padding after the
/// total length allowed). Anything else (IPv6, AH, fragments, a total length of 0 or beyond the
/// capture, a short or cut TCP header) returns None and goes through `decode_ip_general`. The
/// result is the one `decode_ip_general` gives: a test compares both on every frame of the
/// repository's captures and on every frame with its header bytes mutated.
#[inline]
fn plain_ipv4_tcp(ip: &[u8]) -> Option<TcpSegment<'_>> {
    // Fixed-size views of both headers: the field reads below need no bounds checks.
    let h: &[u8; 20] = ip.get(..20)?.try_into().ok()?;
    let ihl = (h[0] & 0x0f) as usize * 4;
    if h[0] >> 4 != 4 || ihl < 20 || ip.len() < ihl || h[9] != 6 {
        return None;
    }
    let total = u16::from_be_bytes([h[2], h[3]]) as usize;
    // More fragments, or a fragment offset: not this path.
    if u16::from_be_bytes([h[6], h[7]]) & 0x3fff != 0 || total < ihl + 20 || total > ip.len() {
        return None;
    }
    let tcp = &ip[ihl..total];
    let t: &[u8; 20] = tcp.get(..20)?.try_into().ok()?;
    let doff = (t[12] >> 4) as usize * 4;
    if doff < 20 || doff > tcp.len() {
        return None;
    }
    let payload = &tcp[doff..];
    Some(TcpSegment {
        src: IpAddr::V4(Ipv4Addr::from([h[12], h[13], h[14], h[15]])),
        dst: IpAddr::V4(Ipv4Addr::from([h[16], h[17], h[18], h[19]])),
        sport: u16::from_be_bytes([t[0], t[1]]),
        dport: u16::from_be_bytes([t[2], t[3]]),
        seq: u32::from_be_bytes([t[4], t[5], t[6], t[7]]),
        ack: u32::from_be_bytes([t[8], t[9], t[10], t[11]]),
        flags: t[13],
        window: u16::from_be_bytes([t[14], t[15]]),
        checksum: u16::from_be_bytes([t[16], t[17]]),
        ip_id: Some(u16::from_be_bytes([h[4], h[5]])),
        ttl: h[8],
        payload_len: payload.len() as u32,
        payload,
        truncated: false,
    })
}

/// Any IP packet, through etherparse.
fn decode_ip_general(ip: &[u8]) -> Decoded<'_> {
    let Ok(pkt) = LaxSlicedPacket::from_ip(ip) else {
        return Decoded::Skip(Skip::Malformed);
    };
    let Some(net) = &pkt.net else {
        return Decoded::Skip(Skip::Malformed);
    };
    let (src, dst, ip_id, ttl, declared_payload, fragmented) = match net {
        LaxNetSlice::Ipv4(v4) => {
            let h = v4.header();
            let hl = h.ihl() as u32 * 4;
            let total = h.total_len() as u32;
            let ext = v4
                .extensions()
                .auth
                .map(|a| a.slice().len() as u32)
                .unwrap_or(0);
            // total_len 0: TSO/GRO on the capturing host; fall back to what was captured.
            let declared = if total >= hl {
                Some(total - hl - ext.min(total - hl))
            } else {
                None
            };
            (
                IpAddr::V4(Ipv4Addr::from(h.source())),
                IpAddr::V4(Ipv4Addr::from(h.destination())),
                Some(h.identification()),
                h.ttl(),
                declared.filter(|_| total != 0),
                v4.is_payload_fragmented(),
            )
        }
        LaxNetSlice::Ipv6(v6) => {
            let h = v6.header();
            let pl = h.payload_length() as u32;
            let ext = v6.extensions().slice().len() as u32;
            (
                IpAddr::V6(Ipv6Addr::from(h.source())),
                IpAddr::V6(Ipv6Addr::from(h.destination())),
                None,
                h.hop_limit(),
                if pl != 0 && pl >= ext {
                    Some(pl - ext)
                } else {
                    None
                },
                v6.is_payload_fragmented(),
            )
        }
        LaxNetSlice::Arp(_) => return Decoded::Skip(Skip::NotIp),
    };
    if fragmented {
        return Decoded::Skip(Skip::Fragment);
    }
    match &pkt.transport {
        Some(TransportSlice::Tcp(tcp)) => {
            let hlen = tcp.header_slice().len() as u32;
            let captured = tcp.payload().len() as u32;
            let payload_len = match declared_payload {
                Some(d) if d >= hlen => d - hlen,
                Some(_) => return Decoded::Skip(Skip::Malformed),
                None => captured,
            };
            let payload = &tcp.payload()[..captured.min(payload_len) as usize];
            Decoded::Tcp(TcpSegment {
                src,
                dst,
                sport: tcp.source_port(),
                dport: tcp.destination_port(),
                seq: tcp.sequence_number(),
                ack: tcp.acknowledgment_number(),
                flags: tcp.slice()[13],
                window: tcp.window_size(),
                checksum: tcp.checksum(),
                ip_id,
                ttl,
                payload_len,
                truncated: (payload.len() as u32) < payload_len,
                payload,
            })
        }
        Some(TransportSlice::Icmpv4(icmp)) => {
            icmp_error(src, false, icmp.type_u8(), icmp.code_u8(), icmp.payload())
        }
        Some(TransportSlice::Icmpv6(icmp)) => {
            icmp_error(src, true, icmp.type_u8(), icmp.code_u8(), icmp.payload())
        }
        Some(TransportSlice::Udp(udp))
            if [udp.source_port(), udp.destination_port()]
                .iter()
                .any(|p| TUNNEL_PORTS.contains(p)) =>
        {
            Decoded::Skip(Skip::Tunnel)
        }
        Some(_) => Decoded::Skip(Skip::NotTcp),
        None => match pkt.stop_err {
            Some(_) => Decoded::Skip(Skip::Malformed),
            None => Decoded::Skip(Skip::NotTcp),
        },
    }
}

/// ICMPv4 3 (unreachable) / 11 (time exceeded), ICMPv6 1 (unreachable) / 3 (time exceeded) quote
/// the offending IP header and at least 8 bytes of TCP: ports and sequence number.
fn icmp_error(reporter: IpAddr, v6: bool, t: u8, code: u8, quoted: &[u8]) -> Decoded<'_> {
    let is_error = if v6 {
        t == 1 || t == 3
    } else {
        t == 3 || t == 11
    };
    if !is_error {
        return Decoded::Skip(Skip::NotTcp);
    }
    let Ok(inner) = LaxSlicedPacket::from_ip(quoted) else {
        return Decoded::Skip(Skip::NotTcp);
    };
    let (src, dst, proto, l4) = match &inner.net {
        Some(LaxNetSlice::Ipv4(v4)) => (
            IpAddr::V4(Ipv4Addr::from(v4.header().source())),
            IpAddr::V4(Ipv4Addr::from(v4.header().destination())),
            v4.payload().ip_number.0,
            v4.payload().payload,
        ),
        Some(LaxNetSlice::Ipv6(v6)) => (
            IpAddr::V6(Ipv6Addr::from(v6.header().source())),
            IpAddr::V6(Ipv6Addr::from(v6.header().destination())),
            v6.payload().ip_number.0,
            v6.payload().payload,
        ),
        _ => return Decoded::Skip(Skip::NotTcp),
    };
    if proto != 6 || l4.len() < 8 {
        return Decoded::Skip(Skip::NotTcp);
    }
    Decoded::Icmp(IcmpError {
        reporter,
        v6,
        icmp_type: t,
        code,
        src,
        dst,
        sport: be16(l4, 0).unwrap_or(0),
        dport: be16(l4, 2).unwrap_or(0),
        seq: u32::from_be_bytes([l4[4], l4[5], l4[6], l4[7]]),
    })
}

#[cfg(test)]
mod tests;
