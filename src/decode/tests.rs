//! Decoder tests: hand-built frames for every link type, then truncation and corruption sweeps.

use super::*;
use crate::capture::LinkType;

// ---------------------------------------------------------------------------------------------
// Frame builders
// ---------------------------------------------------------------------------------------------

const V4_SRC: [u8; 4] = [10, 0, 0, 1];
const V4_DST: [u8; 4] = [10, 0, 0, 2];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// The TCP fields a test may vary; everything else is fixed.
#[derive(Clone, Copy)]
struct Tcp {
    sport: u16,
    dport: u16,
    seq: u32,
    ack: u32,
    flags: u8,
    window: u16,
    checksum: u16,
}

const TCP: Tcp = Tcp {
    sport: 51000,
    dport: 443,
    seq: 0x0102_0304,
    ack: 0xA0B0_C0D0,
    flags: flags::PSH | flags::ACK,
    window: 0x1234,
    checksum: 0xBEEF,
};

const SYN: Tcp = Tcp {
    flags: flags::SYN,
    ack: 0,
    ..TCP
};

const IP_ID: u16 = 0x4242;
const TTL: u8 = 57;

/// A 20-byte TCP header followed by `payload`.
fn tcp_bytes(t: Tcp, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(20 + payload.len());
    v.extend_from_slice(&t.sport.to_be_bytes());
    v.extend_from_slice(&t.dport.to_be_bytes());
    v.extend_from_slice(&t.seq.to_be_bytes());
    v.extend_from_slice(&t.ack.to_be_bytes());
    v.push(5 << 4); // data offset 5 words
    v.push(t.flags);
    v.extend_from_slice(&t.window.to_be_bytes());
    v.extend_from_slice(&t.checksum.to_be_bytes());
    v.extend_from_slice(&[0, 0]); // urgent pointer
    v.extend_from_slice(payload);
    v
}

/// An IPv4 header (no options) whose total length claims `wire_len` bytes of payload, followed by
/// `l4` (which may be shorter: a snaplen cut).
fn ipv4_full(proto: u8, id: u16, frag: u16, wire_len: usize, l4: &[u8]) -> Vec<u8> {
    let total = (20 + wire_len) as u16;
    let mut v = vec![0x45, 0];
    v.extend_from_slice(&total.to_be_bytes());
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(&frag.to_be_bytes());
    v.push(TTL);
    v.push(proto);
    v.extend_from_slice(&[0, 0]); // header checksum (not verified)
    v.extend_from_slice(&V4_SRC);
    v.extend_from_slice(&V4_DST);
    v.extend_from_slice(l4);
    v
}

fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
    ipv4_full(proto, IP_ID, 0x4000 /* DF */, l4.len(), l4)
}

/// IPv4 + TCP with `payload`.
fn v4_tcp(t: Tcp, payload: &[u8]) -> Vec<u8> {
    ipv4(6, &tcp_bytes(t, payload))
}

/// An IPv6 header with `next` as next header, followed by `rest` (extensions + L4).
fn ipv6(next: u8, rest: &[u8]) -> Vec<u8> {
    let mut v = vec![0x60, 0, 0, 0];
    v.extend_from_slice(&(rest.len() as u16).to_be_bytes());
    v.push(next);
    v.push(TTL);
    v.extend_from_slice(&V6_SRC);
    v.extend_from_slice(&V6_DST);
    v.extend_from_slice(rest);
    v
}

fn v6_tcp(t: Tcp, payload: &[u8]) -> Vec<u8> {
    ipv6(6, &tcp_bytes(t, payload))
}

const MACS: [u8; 12] = [2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];

/// Ethernet II with the given tag stack (TPID, TCI pairs) and final ethertype.
fn eth_tagged(tags: &[u16], ethertype: u16, body: &[u8]) -> Vec<u8> {
    let mut v = MACS.to_vec();
    for &tpid in tags {
        v.extend_from_slice(&tpid.to_be_bytes());
        v.extend_from_slice(&0x0064u16.to_be_bytes()); // VLAN 100
    }
    v.extend_from_slice(&ethertype.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn eth(ethertype: u16, body: &[u8]) -> Vec<u8> {
    eth_tagged(&[], ethertype, body)
}

fn pppoe(ppp_proto: u16, body: &[u8]) -> Vec<u8> {
    let mut s = vec![0x11, 0x00, 0x12, 0x34];
    s.extend_from_slice(&((body.len() + 2) as u16).to_be_bytes());
    s.extend_from_slice(&ppp_proto.to_be_bytes());
    s.extend_from_slice(body);
    eth(0x8864, &s)
}

/// MPLS with `labels` label-stack entries (the last one has bottom-of-stack set).
fn mpls(labels: usize, body: &[u8]) -> Vec<u8> {
    let mut s = Vec::new();
    for i in 0..labels {
        let label: u32 = 1000 + i as u32;
        let bos = (i + 1 == labels) as u32;
        let entry = (label << 12) | (bos << 8) | 64;
        s.extend_from_slice(&entry.to_be_bytes());
    }
    s.extend_from_slice(body);
    eth(0x8847, &s)
}

fn sll(proto: u16, body: &[u8]) -> Vec<u8> {
    let mut v = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0];
    v.extend_from_slice(&proto.to_be_bytes());
    v.extend_from_slice(body);
    v
}

fn sll2(proto: u16, body: &[u8]) -> Vec<u8> {
    let mut v = proto.to_be_bytes().to_vec();
    v.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0]);
    assert_eq!(v.len(), 20);
    v.extend_from_slice(body);
    v
}

fn af_prefix(fam: [u8; 4], body: &[u8]) -> Vec<u8> {
    let mut v = fam.to_vec();
    v.extend_from_slice(body);
    v
}

// ---------------------------------------------------------------------------------------------
// Assertions
// ---------------------------------------------------------------------------------------------

#[track_caller]
fn tcp_of(link: LinkType, frame: &[u8]) -> TcpSegment<'_> {
    match decode(link, frame) {
        Decoded::Tcp(s) => s,
        other => panic!("expected Decoded::Tcp, got {other:?}"),
    }
}

#[track_caller]
fn skip_of(link: LinkType, frame: &[u8]) -> Skip {
    match decode(link, frame) {
        Decoded::Skip(s) => s,
        other => panic!("expected Decoded::Skip, got {other:?}"),
    }
}

/// Checks every TCP field against the template, for an IPv4 segment with `payload`.
#[track_caller]
fn assert_v4_segment(s: &TcpSegment<'_>, t: Tcp, payload: &[u8]) {
    assert_eq!(s.src, IpAddr::V4(Ipv4Addr::from(V4_SRC)));
    assert_eq!(s.dst, IpAddr::V4(Ipv4Addr::from(V4_DST)));
    assert_eq!(s.ip_id, Some(IP_ID));
    assert_tcp_fields(s, t, payload);
}

#[track_caller]
fn assert_v6_segment(s: &TcpSegment<'_>, t: Tcp, payload: &[u8]) {
    assert_eq!(s.src, IpAddr::V6(Ipv6Addr::from(V6_SRC)));
    assert_eq!(s.dst, IpAddr::V6(Ipv6Addr::from(V6_DST)));
    assert_eq!(s.ip_id, None);
    assert_tcp_fields(s, t, payload);
}

#[track_caller]
fn assert_tcp_fields(s: &TcpSegment<'_>, t: Tcp, payload: &[u8]) {
    assert_eq!((s.sport, s.dport), (t.sport, t.dport), "ports");
    assert_eq!((s.seq, s.ack), (t.seq, t.ack), "seq/ack");
    assert_eq!(s.flags, t.flags, "flags");
    assert_eq!(s.window, t.window, "window");
    assert_eq!(s.checksum, t.checksum, "checksum");
    assert_eq!(s.ttl, TTL, "ttl / hop limit");
    assert_eq!(s.payload_len, payload.len() as u32, "payload_len");
    assert_eq!(s.payload, payload, "payload");
    assert!(!s.truncated);
}

const DATA: &[u8] = b"GET / HTTP/1.1\r\n\r\n";

// ---------------------------------------------------------------------------------------------
// Link layers
// ---------------------------------------------------------------------------------------------

#[test]
fn ethernet_ipv4_tcp() {
    let f = eth(0x0800, &v4_tcp(TCP, DATA));
    let s = tcp_of(LinkType::Ethernet, &f);
    assert_v4_segment(&s, TCP, DATA);
    assert!(s.has(flags::PSH) && s.has(flags::ACK) && !s.has(flags::SYN));
}

#[test]
fn ethernet_ipv4_syn_without_payload() {
    let f = eth(0x0800, &v4_tcp(SYN, &[]));
    let s = tcp_of(LinkType::Ethernet, &f);
    assert_v4_segment(&s, SYN, &[]);
}

#[test]
fn ethernet_padding_is_not_payload() {
    // A 54-byte SYN padded to the 60-byte Ethernet minimum: the IP total length rules.
    let mut f = eth(0x0800, &v4_tcp(SYN, &[]));
    assert_eq!(f.len(), 54);
    f.resize(60, 0);
    let s = tcp_of(LinkType::Ethernet, &f);
    assert_eq!(s.payload_len, 0);
    assert!(s.payload.is_empty());
    assert!(!s.truncated);
}

#[test]
fn ethernet_ipv6_tcp() {
    let f = eth(0x86DD, &v6_tcp(TCP, DATA));
    assert_v6_segment(&tcp_of(LinkType::Ethernet, &f), TCP, DATA);
}

#[test]
fn ethernet_single_vlan_tag() {
    let f = eth_tagged(&[0x8100], 0x0800, &v4_tcp(TCP, DATA));
    assert_v4_segment(&tcp_of(LinkType::Ethernet, &f), TCP, DATA);
}

#[test]
fn ethernet_qinq() {
    let f = eth_tagged(&[0x88A8, 0x8100], 0x0800, &v4_tcp(TCP, DATA));
    assert_v4_segment(&tcp_of(LinkType::Ethernet, &f), TCP, DATA);
    let f6 = eth_tagged(&[0x88A8, 0x8100], 0x86DD, &v6_tcp(TCP, DATA));
    assert_v6_segment(&tcp_of(LinkType::Ethernet, &f6), TCP, DATA);
}

#[test]
fn ethernet_pppoe_session() {
    let f = pppoe(0x0021, &v4_tcp(TCP, DATA));
    assert_v4_segment(&tcp_of(LinkType::Ethernet, &f), TCP, DATA);
    let f6 = pppoe(0x0057, &v6_tcp(TCP, DATA));
    assert_v6_segment(&tcp_of(LinkType::Ethernet, &f6), TCP, DATA);
    // PPP LCP (0xC021) is not IP.
    assert_eq!(
        skip_of(LinkType::Ethernet, &pppoe(0xC021, &[1, 2, 3, 4])),
        Skip::NotIp
    );
}

#[test]
fn ethernet_mpls_label_stack() {
    for labels in 1..=3 {
        let f = mpls(labels, &v4_tcp(TCP, DATA));
        assert_v4_segment(&tcp_of(LinkType::Ethernet, &f), TCP, DATA);
        let f6 = mpls(labels, &v6_tcp(TCP, DATA));
        assert_v6_segment(&tcp_of(LinkType::Ethernet, &f6), TCP, DATA);
    }
}

#[test]
fn linux_sll() {
    let f = sll(0x0800, &v4_tcp(TCP, DATA));
    assert_v4_segment(&tcp_of(LinkType::LinuxSll, &f), TCP, DATA);
    let f6 = sll(0x86DD, &v6_tcp(TCP, DATA));
    assert_v6_segment(&tcp_of(LinkType::LinuxSll, &f6), TCP, DATA);
    assert_eq!(
        skip_of(LinkType::LinuxSll, &sll(0x0806, &[0; 28])),
        Skip::NotIp
    );
}

#[test]
fn linux_sll2() {
    let f = sll2(0x0800, &v4_tcp(TCP, DATA));
    assert_v4_segment(&tcp_of(LinkType::LinuxSll2, &f), TCP, DATA);
    let f6 = sll2(0x86DD, &v6_tcp(TCP, DATA));
    assert_v6_segment(&tcp_of(LinkType::LinuxSll2, &f6), TCP, DATA);
    assert_eq!(
        skip_of(LinkType::LinuxSll2, &sll2(0x0806, &[0; 28])),
        Skip::NotIp
    );
}

#[test]
fn raw_ip_both_versions() {
    assert_v4_segment(&tcp_of(LinkType::RawIp, &v4_tcp(TCP, DATA)), TCP, DATA);
    assert_v6_segment(&tcp_of(LinkType::RawIp, &v6_tcp(TCP, DATA)), TCP, DATA);
    assert_v4_segment(&tcp_of(LinkType::Ipv4, &v4_tcp(TCP, DATA)), TCP, DATA);
    assert_v6_segment(&tcp_of(LinkType::Ipv6, &v6_tcp(TCP, DATA)), TCP, DATA);
    // Version 5 is not IP.
    let mut bad = v4_tcp(TCP, DATA);
    bad[0] = 0x55;
    assert_eq!(skip_of(LinkType::RawIp, &bad), Skip::NotIp);
}

#[test]
fn bsd_null_both_byte_orders() {
    let v4 = v4_tcp(TCP, DATA);
    let v6 = v6_tcp(TCP, DATA);
    assert_v4_segment(
        &tcp_of(LinkType::Null, &af_prefix([2, 0, 0, 0], &v4)),
        TCP,
        DATA,
    );
    assert_v4_segment(
        &tcp_of(LinkType::Null, &af_prefix([0, 0, 0, 2], &v4)),
        TCP,
        DATA,
    );
    for fam in [10u8, 24, 28, 30] {
        let le = af_prefix([fam, 0, 0, 0], &v6);
        assert_v6_segment(&tcp_of(LinkType::Null, &le), TCP, DATA);
        let be = af_prefix([0, 0, 0, fam], &v6);
        assert_v6_segment(&tcp_of(LinkType::Null, &be), TCP, DATA);
    }
    // AF_UNIX (1) is not IP.
    assert_eq!(
        skip_of(LinkType::Null, &af_prefix([1, 0, 0, 0], &v4)),
        Skip::NotIp
    );
}

#[test]
fn loop_is_big_endian_only() {
    let v4 = v4_tcp(TCP, DATA);
    let v6 = v6_tcp(TCP, DATA);
    assert_v4_segment(
        &tcp_of(LinkType::Loop, &af_prefix([0, 0, 0, 2], &v4)),
        TCP,
        DATA,
    );
    assert_v6_segment(
        &tcp_of(LinkType::Loop, &af_prefix([0, 0, 0, 30], &v6)),
        TCP,
        DATA,
    );
    // Little-endian 2 read as big-endian is 0x02000000: not a known family.
    assert_eq!(
        skip_of(LinkType::Loop, &af_prefix([2, 0, 0, 0], &v4)),
        Skip::NotIp
    );
}

// ---------------------------------------------------------------------------------------------
// Network and transport layers
// ---------------------------------------------------------------------------------------------

#[test]
fn ipv6_hop_by_hop_before_tcp() {
    // Hop-by-hop: next header TCP, length 0 (8 bytes), PadN option filling 6 bytes.
    let mut rest = vec![6, 0, 1, 4, 0, 0, 0, 0];
    rest.extend_from_slice(&tcp_bytes(TCP, DATA));
    let f = eth(0x86DD, &ipv6(0, &rest));
    let s = tcp_of(LinkType::Ethernet, &f);
    // payload_len excludes the extension header.
    assert_v6_segment(&s, TCP, DATA);
}

#[test]
fn ipv4_header_fields() {
    let f = ipv4_full(6, 0xFFFE, 0, 20, &tcp_bytes(TCP, &[]));
    let s = tcp_of(LinkType::RawIp, &f);
    assert_eq!(s.ip_id, Some(0xFFFE));
    assert_eq!(s.ttl, TTL);
    assert_eq!(s.payload_len, 0);
}

#[test]
fn all_flag_bits_pass_through() {
    for fl in [
        flags::SYN,
        flags::SYN | flags::ACK,
        flags::FIN | flags::ACK,
        flags::RST,
        flags::RST | flags::ACK,
        flags::FIN | flags::PSH | flags::URG | flags::ACK,
        0xFF, // with ECE/CWR
    ] {
        let t = Tcp { flags: fl, ..TCP };
        assert_eq!(tcp_of(LinkType::RawIp, &v4_tcp(t, &[])).flags, fl);
    }
}

#[test]
fn ipv4_total_len_zero_falls_back_to_captured() {
    // TSO/GRO on the capturing host writes total length 0.
    let mut f = v4_tcp(TCP, DATA);
    f[2] = 0;
    f[3] = 0;
    let s = tcp_of(LinkType::RawIp, &f);
    assert_eq!(s.payload_len, DATA.len() as u32);
    assert_eq!(s.payload, DATA);
    assert!(!s.truncated);
}

#[test]
fn icmpv4_port_unreachable_quoting_syn() {
    let syn = Tcp {
        seq: 0xDEAD_BEEF,
        ..SYN
    };
    let quoted_full = v4_tcp(syn, &[]);
    // ICMP quotes the IP header and the first 8 bytes of TCP.
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted_full[..28]);
    // The reporter is a router, 192.0.2.1.
    let mut ip = ipv4(1, &icmp);
    ip[12..16].copy_from_slice(&[192, 0, 2, 1]);
    ip[16..20].copy_from_slice(&V4_SRC);
    let f = eth(0x0800, &ip);
    let Decoded::Icmp(e) = decode(LinkType::Ethernet, &f) else {
        panic!(
            "expected Decoded::Icmp, got {:?}",
            decode(LinkType::Ethernet, &f)
        );
    };
    assert_eq!(e.reporter, IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert!(!e.v6);
    assert_eq!((e.icmp_type, e.code), (3, 3));
    assert_eq!(e.src, IpAddr::V4(Ipv4Addr::from(V4_SRC)));
    assert_eq!(e.dst, IpAddr::V4(Ipv4Addr::from(V4_DST)));
    assert_eq!((e.sport, e.dport), (syn.sport, syn.dport));
    assert_eq!(e.seq, 0xDEAD_BEEF);
}

#[test]
fn icmpv6_unreachable_quoting_syn() {
    let quoted_full = v6_tcp(SYN, &[]);
    let mut icmp = vec![1, 4, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&quoted_full[..48]);
    let f = ipv6(58, &icmp);
    let Decoded::Icmp(e) = decode(LinkType::RawIp, &f) else {
        panic!(
            "expected Decoded::Icmp, got {:?}",
            decode(LinkType::RawIp, &f)
        );
    };
    assert!(e.v6);
    assert_eq!((e.icmp_type, e.code), (1, 4));
    assert_eq!((e.sport, e.dport, e.seq), (SYN.sport, SYN.dport, SYN.seq));
    assert_eq!(e.src, IpAddr::V6(Ipv6Addr::from(V6_SRC)));
}

#[test]
fn icmp_not_quoting_tcp_is_not_tcp() {
    // Echo request.
    let echo = ipv4(1, &[8, 0, 0, 0, 0, 1, 0, 1, b'p', b'i', b'n', b'g']);
    assert_eq!(skip_of(LinkType::RawIp, &echo), Skip::NotTcp);
    // Port unreachable quoting a UDP datagram.
    let udp = ipv4(17, &[0x30, 0x39, 0, 53, 0, 8, 0, 0]);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&udp);
    assert_eq!(skip_of(LinkType::RawIp, &ipv4(1, &icmp)), Skip::NotTcp);
    // Unreachable quoting only 4 bytes of TCP: no sequence number.
    let mut short = vec![3, 1, 0, 0, 0, 0, 0, 0];
    short.extend_from_slice(&v4_tcp(SYN, &[])[..24]);
    assert_eq!(skip_of(LinkType::RawIp, &ipv4(1, &short)), Skip::NotTcp);
}

#[test]
fn arp_is_not_ip() {
    let arp = [
        0, 1, 8, 0, 6, 4, 0, 1, 2, 0, 0, 0, 0, 1, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
    ];
    assert_eq!(skip_of(LinkType::Ethernet, &eth(0x0806, &arp)), Skip::NotIp);
    assert_eq!(
        skip_of(LinkType::Ethernet, &eth(0x88CC, &[0; 30])),
        Skip::NotIp
    );
}

#[test]
fn udp_is_not_tcp() {
    let udp = ipv4(17, &[0xC3, 0x50, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    assert_eq!(
        skip_of(LinkType::Ethernet, &eth(0x0800, &udp)),
        Skip::NotTcp
    );
    let udp6 = ipv6(17, &[0xC3, 0x50, 0, 53, 0, 12, 0, 0, 1, 2, 3, 4]);
    assert_eq!(skip_of(LinkType::RawIp, &udp6), Skip::NotTcp);
}

#[test]
fn ipv4_fragments_are_skipped() {
    let seg = tcp_bytes(TCP, DATA);
    // First fragment: MF set, offset 0.
    let first = ipv4_full(6, IP_ID, 0x2000, seg.len(), &seg);
    assert_eq!(skip_of(LinkType::RawIp, &first), Skip::Fragment);
    // A later fragment: offset 185 (1480 bytes), MF clear.
    let later = ipv4_full(6, IP_ID, 185, 8, &[0; 8]);
    assert_eq!(skip_of(LinkType::RawIp, &later), Skip::Fragment);
}

#[test]
fn ipv6_fragment_header_is_skipped() {
    // Fragment header: next TCP, reserved, offset 0 + M flag, identification.
    let mut rest = vec![6, 0, 0, 1, 0, 0, 0, 7];
    rest.extend_from_slice(&tcp_bytes(TCP, DATA));
    assert_eq!(skip_of(LinkType::RawIp, &ipv6(44, &rest)), Skip::Fragment);
}

#[test]
fn snaplen_cut_inside_payload() {
    let payload = [0x5Au8; 1000];
    let full = eth(0x0800, &v4_tcp(TCP, &payload));
    let cut = &full[..14 + 20 + 20 + 10];
    let s = tcp_of(LinkType::Ethernet, cut);
    assert_eq!(s.payload_len, 1000);
    assert_eq!(s.payload.len(), 10);
    assert_eq!(s.payload, &payload[..10]);
    assert!(s.truncated);
    assert_eq!((s.seq, s.ack), (TCP.seq, TCP.ack));
}

#[test]
fn snaplen_cut_inside_ipv6_payload() {
    let payload = [0xA5u8; 1000];
    let full = v6_tcp(TCP, &payload);
    let s = tcp_of(LinkType::RawIp, &full[..40 + 20 + 10]);
    assert_eq!(
        (s.payload_len, s.payload.len(), s.truncated),
        (1000, 10, true)
    );
}

#[test]
fn snaplen_cut_inside_tcp_header_is_malformed() {
    let full = eth(0x0800, &v4_tcp(TCP, DATA));
    for cut in [14 + 20, 14 + 20 + 1, 14 + 20 + 19] {
        assert_eq!(
            skip_of(LinkType::Ethernet, &full[..cut]),
            Skip::Malformed,
            "cut {cut}"
        );
    }
}

#[test]
fn short_link_headers_are_malformed() {
    assert_eq!(skip_of(LinkType::Ethernet, &MACS), Skip::Malformed);
    assert_eq!(skip_of(LinkType::LinuxSll, &[0; 15]), Skip::Malformed);
    assert_eq!(skip_of(LinkType::LinuxSll2, &[0x08]), Skip::Malformed);
    assert_eq!(skip_of(LinkType::Null, &[2, 0, 0]), Skip::Malformed);
    assert_eq!(skip_of(LinkType::RawIp, &[]), Skip::Malformed);
}

#[test]
fn ip_length_shorter_than_tcp_header_is_malformed() {
    // IPv4 total length claims 10 bytes of TCP, but a 20-byte header is there.
    let f = ipv4_full(6, IP_ID, 0, 10, &tcp_bytes(TCP, &[]));
    assert_eq!(skip_of(LinkType::RawIp, &f), Skip::Malformed);
}

// ---------------------------------------------------------------------------------------------
// Robustness: never panic on truncations or corruption
// ---------------------------------------------------------------------------------------------

/// Valid frames of every link type, with enough variety to reach every decoder branch.
fn corpus() -> Vec<(LinkType, Vec<u8>)> {
    let v4 = v4_tcp(TCP, DATA);
    let v6 = v6_tcp(TCP, DATA);
    let mut hbh = vec![6, 0, 1, 4, 0, 0, 0, 0];
    hbh.extend_from_slice(&tcp_bytes(TCP, DATA));
    let v6_hbh = ipv6(0, &hbh);
    let mut icmp = vec![3, 3, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&v4_tcp(SYN, &[])[..28]);
    let icmp4 = ipv4(1, &icmp);
    let mut icmp6 = vec![1, 4, 0, 0, 0, 0, 0, 0];
    icmp6.extend_from_slice(&v6_tcp(SYN, &[])[..48]);
    let icmp6 = ipv6(58, &icmp6);
    vec![
        (LinkType::Ethernet, eth(0x0800, &v4)),
        (LinkType::Ethernet, eth(0x86DD, &v6_hbh)),
        (
            LinkType::Ethernet,
            eth_tagged(&[0x88A8, 0x8100], 0x0800, &v4),
        ),
        (LinkType::Ethernet, pppoe(0x0021, &v4)),
        (LinkType::Ethernet, mpls(2, &v6)),
        (LinkType::Ethernet, eth(0x0800, &icmp4)),
        (LinkType::LinuxSll, sll(0x0800, &v4)),
        (LinkType::LinuxSll2, sll2(0x86DD, &v6)),
        (LinkType::RawIp, v4.clone()),
        (LinkType::RawIp, icmp6),
        (LinkType::Ipv4, v4.clone()),
        (LinkType::Ipv6, v6.clone()),
        (LinkType::Null, af_prefix([2, 0, 0, 0], &v4)),
        (LinkType::Null, af_prefix([0, 0, 0, 30], &v6)),
        (LinkType::Loop, af_prefix([0, 0, 0, 2], &v4)),
    ]
}

/// Decodes and touches every field (a panic anywhere fails the test).
fn decode_all_fields(link: LinkType, f: &[u8]) {
    match decode(link, f) {
        Decoded::Tcp(s) => {
            assert!(
                s.payload.len() as u32 <= s.payload_len
                    || s.payload_len == 0 && s.payload.is_empty()
            );
            assert_eq!(s.truncated, (s.payload.len() as u32) < s.payload_len);
            let _ = format!("{s:?}");
        }
        Decoded::Icmp(e) => {
            let _ = format!("{e:?}");
        }
        Decoded::Skip(s) => {
            let _ = s.name();
        }
    }
}

#[test]
fn corpus_decodes_cleanly() {
    for (link, f) in corpus() {
        assert!(
            !matches!(decode(link, &f), Decoded::Skip(_)),
            "{link:?} frame skipped: {:?}",
            decode(link, &f)
        );
    }
}

#[test]
fn every_prefix_decodes_without_panic() {
    for (link, f) in corpus() {
        for n in 0..=f.len() {
            decode_all_fields(link, &f[..n]);
        }
    }
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[test]
fn random_corruption_decodes_without_panic() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let links = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
    ];
    for (link, f) in corpus() {
        for _ in 0..2000 {
            let mut g = f.clone();
            for _ in 0..1 + rng.below(4) {
                let i = rng.below(g.len());
                g[i] ^= 1 << rng.below(8);
            }
            // Sometimes replace a whole byte, sometimes truncate as well.
            if rng.below(4) == 0 {
                let i = rng.below(g.len());
                g[i] = rng.next() as u8;
            }
            if rng.below(4) == 0 {
                g.truncate(rng.below(g.len() + 1));
            }
            decode_all_fields(link, &g);
            // The same bytes under another link type must not panic either.
            decode_all_fields(links[rng.below(links.len())], &g);
        }
    }
}

#[test]
fn random_bytes_decode_without_panic() {
    let mut rng = Rng(42);
    for _ in 0..5000 {
        let len = rng.below(120);
        let g: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Null,
            LinkType::Loop,
        ] {
            decode_all_fields(link, &g);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Header options and tag limits
// ---------------------------------------------------------------------------------------------

#[test]
fn tcp_options_are_not_payload() {
    // Data offset 8: 12 bytes of options (MSS, NOP, NOP, SACK-permitted... padded).
    let mut seg = tcp_bytes(TCP, &[]);
    seg[12] = 8 << 4;
    seg.extend_from_slice(&[2, 4, 0x05, 0xB4, 1, 1, 4, 2, 1, 1, 1, 0]);
    seg.extend_from_slice(DATA);
    let f = ipv4(6, &seg);
    assert_v4_segment(&tcp_of(LinkType::RawIp, &f), TCP, DATA);
}

#[test]
fn ipv4_options_are_skipped() {
    // IHL 6: one 4-byte option word (NOP NOP NOP EOL).
    let mut ip = ipv4(6, &tcp_bytes(TCP, DATA));
    ip[0] = 0x46;
    let total = u16::from_be_bytes([ip[2], ip[3]]) + 4;
    ip[2..4].copy_from_slice(&total.to_be_bytes());
    ip.splice(20..20, [1, 1, 1, 0]);
    assert_v4_segment(&tcp_of(LinkType::RawIp, &ip), TCP, DATA);
}

#[test]
fn three_vlan_tags_are_unwrapped_four_are_not() {
    let v4 = v4_tcp(TCP, DATA);
    let f3 = eth_tagged(&[0x9100, 0x88A8, 0x8100], 0x0800, &v4);
    assert_v4_segment(&tcp_of(LinkType::Ethernet, &f3), TCP, DATA);
    let f4 = eth_tagged(&[0x9100, 0x88A8, 0x8100, 0x8100], 0x0800, &v4);
    assert_eq!(skip_of(LinkType::Ethernet, &f4), Skip::NotIp);
}

#[test]
fn mpls_without_bottom_of_stack_is_not_decoded_as_garbage() {
    // Nine labels, none with bottom-of-stack: the decoder gives up after eight.
    let mut s = Vec::new();
    for _ in 0..9 {
        s.extend_from_slice(&((1000u32 << 12) | 64).to_be_bytes());
    }
    s.extend_from_slice(&v4_tcp(TCP, DATA));
    let f = eth(0x8847, &s);
    assert!(!matches!(decode(LinkType::Ethernet, &f), Decoded::Tcp(_)));
}

#[test]
fn skip_reason_names_are_stable() {
    assert_eq!(Skip::NotIp.name(), "not-ip");
    assert_eq!(Skip::NotTcp.name(), "not-tcp");
    assert_eq!(Skip::Fragment.name(), "ip-fragment");
    assert_eq!(Skip::Malformed.name(), "malformed");
}

// ---------------------------------------------------------------------------------------------
// The IPv4/TCP fast path against etherparse
// ---------------------------------------------------------------------------------------------

/// What both paths must agree on, field by field (`Decoded` has no `PartialEq`: its `Debug`
/// prints every field, the payload bytes included).
fn both(ip: &[u8]) -> (String, String, bool) {
    let fast = plain_ipv4_tcp(ip);
    let general = format!("{:?}", decode_ip_general(ip));
    let taken = fast.is_some();
    let via = format!("{:?}", decode_ip(ip));
    (via, general, taken)
}

/// `decode_ip` (the fast path first) gives what etherparse's general slicing gives, on every
/// frame of the repository's captures (and `../shared/corpus` when it is beside the checkout),
/// and on each IPv4 frame with every header byte (IP and TCP) and the length cut in turn.
#[test]
fn plain_ipv4_tcp_agrees_with_etherparse_on_every_frame() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut files = Vec::new();
    for d in ["captures", "tests", "../shared/corpus"] {
        crate::capture::capture_files(&root.join(d), &mut files);
    }
    let (mut frames, mut fast, mut mutated, mut mutated_fast) = (0u64, 0u64, 0u64, 0u64);
    for p in &files {
        let Ok(mut set) = crate::capture::OfflineSet::open(std::slice::from_ref(p), None) else {
            continue;
        };
        set.run(|fr| {
            let Ok(ip) = network_layer(fr.link, fr.data) else {
                return;
            };
            frames += 1;
            let (via, general, taken) = both(ip);
            assert_eq!(via, general, "{} frame {}", p.display(), fr.number);
            fast += taken as u64;
            // Mutations (up to a budget): every byte of the IP and TCP headers set to values
            // that move the checked fields across their limits, then every shorter length.
            if !taken || mutated > 400_000 {
                return;
            }
            let hdr = ip.len().min((ip[0] & 0x0f) as usize * 4 + 60);
            let mut m = ip.to_vec();
            for i in 0..hdr {
                for v in [
                    0u8, 1, 4, 5, 6, 0x0f, 0x10, 0x20, 0x3f, 0x40, 0x45, 0x4f, 0x50, 0xff,
                ] {
                    let keep = m[i];
                    m[i] = v;
                    let (via, general, taken) = both(&m);
                    assert_eq!(
                        via,
                        general,
                        "{} frame {} byte {i} = {v:#x}",
                        p.display(),
                        fr.number
                    );
                    mutated += 1;
                    mutated_fast += taken as u64;
                    m[i] = keep;
                }
            }
            for cut in 0..ip.len().min(hdr + 8) {
                let (via, general, _) = both(&ip[..cut]);
                assert_eq!(
                    via,
                    general,
                    "{} frame {} cut at {cut}",
                    p.display(),
                    fr.number
                );
            }
        });
    }
    assert!(frames > 10_000, "frames compared: {frames}");
    assert!(
        fast > 10_000,
        "fast path taken for {fast} of {frames} frames"
    );
    assert!(
        mutated_fast > 0 && mutated_fast < mutated,
        "mutations: {mutated}, on the fast path: {mutated_fast}"
    );
}
