#!/usr/bin/env python3
"""Adversarial captures: traffic built to fool or exhaust a passive analyser (issue 15).

Unlike the lab captures (real software in network namespaces), these are written packet by
packet: no real stack produces them on purpose. Each has a stated expectation in
captures/expected-adversarial.toml (read by tests/golden.rs) and, for the large ones, in
tests/adversarial.rs.

  make.py            writes the small captures next to this script (committed)
  make.py --big DIR  writes the large ones into DIR (generated at test time, never committed):
                     pipelined-100k.pcap, header-1mb.pcap

Pure Python 3, no dependencies. Deterministic: the same bytes every run.
"""
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CLI = bytes([10, 99, 0, 1])
SRV = bytes([10, 99, 0, 2])
T0 = 1_700_000_000.0
SYN, FIN, RST, PSH, ACK = 0x02, 0x01, 0x04, 0x08, 0x10


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


class Pcap:
    """An Ethernet pcap with microsecond timestamps; `raw` writes a record header as given."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 262144, 1))
        self.ip_id = 1

    def raw(self, t, data, caplen=None, wirelen=None):
        sec = int(t)
        usec = int(round((t - sec) * 1e6))
        caplen = len(data) if caplen is None else caplen
        wirelen = len(data) if wirelen is None else wirelen
        self.f.write(struct.pack("<IIII", sec, usec, caplen, wirelen) + data)

    def tcp(self, t, src, dst, sport, dport, seq, ack, flags, payload=b"", ttl=64, win=64240):
        tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                          5 << 4, flags, win, 0, 0)
        pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp) + len(payload))
        c = csum(pseudo + tcp + payload)
        tcp = tcp[:16] + struct.pack("!H", c) + tcp[18:]
        ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp) + len(payload), self.ip_id,
                         0x4000, ttl, 6, 0, src, dst)
        self.ip_id = (self.ip_id + 1) & 0xFFFF
        ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
        eth = b"\x02\x00\x00\x00\x00\x02" + b"\x02\x00\x00\x00\x00\x01" + b"\x08\x00"
        if src == SRV:
            eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
        self.raw(t, eth + ip + tcp + payload)

    def close(self):
        self.f.close()


class Conn:
    """One TCP connection client -> server:80, tracking both sides' sequence numbers."""

    def __init__(self, pcap, t, sport=40000, cisn=1000, sisn=5000, dport=80):
        self.p, self.t, self.sport, self.dport = pcap, t, sport, dport
        self.c, self.s = cisn, sisn

    def at(self, dt):
        self.t += dt
        return self.t

    def handshake(self):
        self.p.tcp(self.at(0), CLI, SRV, self.sport, self.dport, self.c, 0, SYN)
        self.p.tcp(self.at(0.001), SRV, CLI, self.dport, self.sport, self.s, self.c + 1, SYN | ACK, ttl=60)
        self.c += 1
        self.s += 1
        self.p.tcp(self.at(0.001), CLI, SRV, self.sport, self.dport, self.c, self.s, ACK)

    def send(self, from_client, data, dt=0.001, seq=None):
        if from_client:
            s = self.c if seq is None else seq
            self.p.tcp(self.at(dt), CLI, SRV, self.sport, self.dport, s, self.s, PSH | ACK, data)
            if seq is None:
                self.c += len(data)
        else:
            s = self.s if seq is None else seq
            self.p.tcp(self.at(dt), SRV, CLI, self.dport, self.sport, s, self.c, PSH | ACK, data, ttl=60)
            if seq is None:
                self.s += len(data)

    def ack(self, from_client, dt=0.001):
        if from_client:
            self.p.tcp(self.at(dt), CLI, SRV, self.sport, self.dport, self.c, self.s, ACK)
        else:
            self.p.tcp(self.at(dt), SRV, CLI, self.dport, self.sport, self.s, self.c, ACK, ttl=60)

    def close(self):
        self.p.tcp(self.at(0.001), CLI, SRV, self.sport, self.dport, self.c, self.s, FIN | ACK)
        self.c += 1
        self.p.tcp(self.at(0.001), SRV, CLI, self.dport, self.sport, self.s, self.c, FIN | ACK, ttl=60)
        self.s += 1
        self.p.tcp(self.at(0.001), CLI, SRV, self.sport, self.dport, self.c, self.s, ACK)


GET = b"GET / HTTP/1.1\r\nHost: adversarial.test\r\n\r\n"


def ok(body):
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


def retrans_inconsistent(path):
    """A response segment resent with the same sequence number and length but other bytes."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    c.send(True, GET)
    first = ok(b"hello")
    seq = c.s
    c.send(False, first)
    # 200 ms later the "same" segment again, other body bytes: the receiver keeps one of them.
    c.send(False, first.replace(b"hello", b"HELLO"), dt=0.2, seq=seq)
    c.ack(True)
    c.close()
    p.close()


def rst_outside_window(path):
    """A RST claiming to come from the server, its sequence number 2^30 below anything the
    client would accept, with another TTL; the exchange then completes normally."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    c.send(True, GET)
    p.tcp(c.at(0.0005), SRV, CLI, 80, c.sport, c.s - 0x40000000, 0, RST, ttl=250)
    c.send(False, ok(b"still here"), dt=0.002)
    c.ack(True)
    c.close()
    p.close()


def chunk_overflow(path):
    """Chunk sizes that overflow 64 bits, then one that is merely huge."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    c.send(True, GET)
    c.send(False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF\r\nabc\r\n0\r\n\r\n")
    c.ack(True)
    c.close()
    c2 = Conn(p, c.t + 0.01, sport=40001)
    c2.handshake()
    c2.send(True, GET)
    c2.send(False, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                   b"FFFFFFFFFFFFFFF\r\nabc")
    c2.ack(True)
    c2.close()
    p.close()


def tls_records(sni):
    """A minimal TLS 1.2 ClientHello (with SNI) and ServerHello, as records."""
    host = sni.encode()
    sni_ext = struct.pack("!HHHBH", 0, len(host) + 5, len(host) + 3, 0, len(host)) + host
    exts = sni_ext
    body = (b"\x03\x03" + bytes(range(32)) + b"\x00" + struct.pack("!H", 2) + b"\xc0\x2f"
            + b"\x01\x00" + struct.pack("!H", len(exts)) + exts)
    ch = b"\x01" + struct.pack("!I", len(body))[1:] + body
    sbody = (b"\x03\x03" + bytes(range(32, 64)) + b"\x00" + b"\xc0\x2f" + b"\x00"
             + struct.pack("!H", 0))
    sh = b"\x02" + struct.pack("!I", len(sbody))[1:] + sbody
    done = b"\x0e\x00\x00\x00"
    rec = lambda t, b: bytes([t, 3, 3]) + struct.pack("!H", len(b)) + b
    return rec(22, ch), rec(22, sh + done)


def tls_one_byte_segments(path):
    """A TLS handshake whose every record byte travels in its own TCP segment."""
    p = Pcap(path)
    c = Conn(p, T0, dport=443)
    c.handshake()
    ch, sh = tls_records("one-byte.adversarial.test")
    for b in ch:
        c.send(True, bytes([b]), dt=0.0001)
    for b in sh:
        c.send(False, bytes([b]), dt=0.0001)
    # Change cipher spec + an encrypted application-data record each way, then close.
    c.send(True, b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x20" + bytes(32))
    c.send(False, b"\x14\x03\x03\x00\x01\x01" + b"\x17\x03\x03\x00\x20" + bytes(range(32)))
    c.close()
    p.close()


def seq_wrap(path):
    """Both sequence spaces wrap past 2^32 in the middle of the request and the response."""
    p = Pcap(path)
    c = Conn(p, T0, cisn=0xFFFFFFFF - 20, sisn=0xFFFFFFFF - 100)
    c.handshake()
    c.send(True, GET)
    body = bytes((i * 7) & 0x7F | 0x20 for i in range(3000))
    resp = ok(body)
    for i in range(0, len(resp), 1000):
        c.send(False, resp[i:i + 1000])
    c.ack(True)
    c.close()
    p.close()


def time_backwards(path):
    """Capture time jumps 5 s back in the middle of an exchange (a clock step)."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    c.send(True, GET)
    c.t -= 5.0
    c.send(False, ok(b"from the past"))
    c.ack(True)
    c.close()
    p.close()


def zero_length_frames(path):
    """Records of 0 captured bytes (one of them 0 on the wire too), and a record whose captured
    length exceeds its wire length, around one healthy exchange."""
    p = Pcap(path)
    p.raw(T0, b"", caplen=0, wirelen=0)
    p.raw(T0 + 0.0001, b"", caplen=0, wirelen=60)
    c = Conn(p, T0 + 0.001)
    c.handshake()
    c.send(True, GET)
    # The response frame claims 40 bytes on the wire but holds all of them.
    start = p.f.tell()
    c.send(False, ok(b"caplen > len"))
    end = p.f.tell()
    p.f.seek(start + 12)
    p.f.write(struct.pack("<I", 40))
    p.f.seek(end)
    c.ack(True)
    c.close()
    p.close()


def pipelined_100k(path):
    """100 000 pipelined requests on one connection, then 100 000 responses."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    n = 100_000
    per = 32
    for i in range(0, n, per):
        c.send(True, b"".join(b"GET /r%d HTTP/1.1\r\nHost: a\r\n\r\n" % j for j in range(i, min(n, i + per))), dt=0.00001)
    resp = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    for i in range(0, n, per):
        c.send(False, resp * min(per, n - i), dt=0.00001)
        if i % (per * 16) == 0:
            c.ack(True, dt=0.00001)
    c.ack(True)
    c.close()
    p.close()


def header_1mb(path):
    """A request whose header block is 1 MiB (one header line of 1 MiB), answered 431."""
    p = Pcap(path)
    c = Conn(p, T0)
    c.handshake()
    req = b"GET / HTTP/1.1\r\nHost: big.adversarial.test\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n"
    for i in range(0, len(req), 1448):
        c.send(True, req[i:i + 1448], dt=0.00001)
    c.send(False, b"HTTP/1.1 431 Request Header Fields Too Large\r\nContent-Length: 0\r\n\r\n")
    c.ack(True)
    c.close()
    p.close()


SMALL = {
    "retrans-inconsistent.pcap": retrans_inconsistent,
    "rst-outside-window.pcap": rst_outside_window,
    "chunk-overflow.pcap": chunk_overflow,
    "tls-one-byte-segments.pcap": tls_one_byte_segments,
    "seq-wrap-response.pcap": seq_wrap,
    "time-backwards.pcap": time_backwards,
    "zero-length-frames.pcap": zero_length_frames,
}
BIG = {
    "pipelined-100k.pcap": pipelined_100k,
    "header-1mb.pcap": header_1mb,
}


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "--big":
        out, which = sys.argv[2], BIG
    else:
        out, which = HERE, SMALL
    os.makedirs(out, exist_ok=True)
    for name, fn in which.items():
        fn(os.path.join(out, name))
        print(os.path.join(out, name))


if __name__ == "__main__":
    main()
