#!/usr/bin/env python3
"""make-syn-flood.py OUT.pcap [COUNT] [RATE] - a capture of a spoofed-SYN flood.

Writes COUNT (default 1 000 000) TCP SYNs, each from a different pseudo-random IPv4 source
address and port (deterministic: seeded), to 198.18.0.1:80, RATE (default 100 000) per second of
capture time, as an Ethernet pcap (microsecond timestamps). Nothing answers them, so every SYN is
an unanswered connection attempt: the worst case for a flow table (each attempt is kept for the
attempt timeout, 60 s). Pure Python, no dependencies; about 5 s per million records.
"""
import random
import struct
import sys


def csum(b):
    if len(b) % 2:
        b += b"\0"
    s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def main():
    out = sys.argv[1]
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 1_000_000
    rate = int(sys.argv[3]) if len(sys.argv) > 3 else 100_000
    rnd = random.Random(12)
    dst = bytes([198, 18, 0, 1])
    eth = b"\x02\x00\x00\x00\x00\x01" + b"\x02\x00\x00\x00\x00\x02" + b"\x08\x00"
    t0 = 1_700_000_000
    with open(out, "wb") as f:
        f.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
        buf = []
        for i in range(count):
            src = struct.pack("!I", rnd.randrange(0x0B000000, 0xDF000000))
            sport = rnd.randrange(1024, 65536)
            seq = rnd.randrange(0, 1 << 32)
            tcp = struct.pack("!HHIIBBHHH", sport, 80, seq, 0, 5 << 4, 0x02, 64240, 0, 0)
            pseudo = src + dst + struct.pack("!BBH", 0, 6, len(tcp))
            tcp = tcp[:16] + struct.pack("!H", csum(pseudo + tcp)) + tcp[18:]
            ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), i & 0xFFFF, 0, 64, 6, 0, src, dst)
            ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
            frame = eth + ip + tcp
            us = i * 1_000_000 // rate
            buf.append(struct.pack("<IIII", t0 + us // 1_000_000, us % 1_000_000, len(frame), len(frame)) + frame)
            if len(buf) >= 10000:
                f.write(b"".join(buf))
                buf.clear()
        f.write(b"".join(buf))


if __name__ == "__main__":
    main()
