#!/usr/bin/env python3
"""Writes the fuzz seed corpora from real captures (captures/*.pcap*, ../shared/corpus/*.pcap*):

  corpus/decode/          one frame each: a link-type byte (index into proxyscope_fuzz::LINKS) + frame
  corpus/http_stream/     one TCP connection each whose payload looks like HTTP, as
  corpus/tls_stream/      [seed u64 LE][orig length u16 LE][orig stream][resp stream] (TLS-looking)
  corpus/analyze_capture/ each capture cut to its first records (at most MAX_CAPTURE bytes)

The tracker target has no seeds: its input is structure-aware (`arbitrary`) and grows its own.
Usage: fuzz/make-seeds.py [capture ...]   (no arguments: the default capture sets)
"""
import glob, hashlib, os, struct, sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
MAX_CAPTURE = 64 * 1024
MAX_STREAM = 16 * 1024
MAX_FRAMES_PER_FILE = 300
# DLT -> index into proxyscope_fuzz::LINKS.
LINK_INDEX = {1: 0, 113: 1, 276: 2, 12: 3, 14: 3, 101: 3, 228: 4, 229: 5, 0: 6, 108: 7}


def records(path):
    """Yields (dlt, frame bytes) and returns the raw cut capture (bytes) via the last item."""
    data = open(path, "rb").read()
    magic = data[:4]
    out = []
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        dlt = struct.unpack(e + "I", data[20:24])[0] & 0x0FFFFFFF
        off = 24
        cut = len(data)
        while off + 16 <= len(data):
            incl = struct.unpack(e + "I", data[off + 8:off + 12])[0]
            if off + 16 + incl > len(data):
                break
            out.append((dlt, data[off + 16:off + 16 + incl]))
            if off + 16 + incl > MAX_CAPTURE and cut == len(data):
                cut = off
            off += 16 + incl
        return out, data[:max(cut, 24 + 16)]
    if magic == b"\x0a\x0d\x0d\x0a":
        e = "<" if data[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off, ifaces, cut = 0, [], len(data)
        while off + 12 <= len(data):
            btype, blen = struct.unpack(e + "II", data[off:off + 8])
            if blen < 12 or off + blen > len(data):
                break
            body = data[off + 8:off + blen - 4]
            if btype == 0x0A0D0D0A:
                ifaces = []
            elif btype == 1:
                ifaces.append(struct.unpack(e + "H", body[:2])[0])
            elif btype == 6 and len(body) >= 20:
                iface, _, _, caplen, _ = struct.unpack(e + "IIIII", body[:20])
                if iface < len(ifaces):
                    out.append((ifaces[iface], body[20:20 + caplen]))
            elif btype == 3 and ifaces:
                out.append((ifaces[0], body[4:]))
            if off + blen > MAX_CAPTURE and cut == len(data):
                cut = off
            off += blen
        return out, data[:cut]
    return [], b""


def ip_layer(dlt, f):
    if dlt == 1:
        off, et = 14, int.from_bytes(f[12:14], "big") if len(f) >= 14 else 0
        while et in (0x8100, 0x88A8, 0x9100) and len(f) >= off + 4:
            et = int.from_bytes(f[off + 2:off + 4], "big")
            off += 4
        return f[off:] if et in (0x0800, 0x86DD) else None
    if dlt == 113:
        return f[16:]
    if dlt == 276:
        return f[20:]
    if dlt in (12, 14, 101, 228, 229):
        return f
    if dlt in (0, 108):
        return f[4:]
    return None


def tcp(ip):
    if not ip:
        return None
    v = ip[0] >> 4
    if v == 4 and len(ip) >= 20 and ip[9] == 6:
        hl = (ip[0] & 15) * 4
        total = int.from_bytes(ip[2:4], "big") or len(ip)
        src, dst, t = ip[12:16], ip[16:20], ip[hl:total]
    elif v == 6 and len(ip) >= 40 and ip[6] == 6:
        src, dst, t = ip[8:24], ip[24:40], ip[40:40 + int.from_bytes(ip[4:6], "big")]
    else:
        return None
    if len(t) < 20:
        return None
    sp, dp, seq = struct.unpack(">HHI", t[:8])
    off = (t[12] >> 4) * 4
    return (src, sp), (dst, dp), seq, t[13], t[off:]


def streams(frames):
    conns = {}
    for dlt, f in frames:
        s = tcp(ip_layer(dlt, f))
        if not s:
            continue
        a, b, seq, flags, pl = s
        key = tuple(sorted([a, b]))
        c = conns.setdefault(key, {"orig": None, "segs": {}})
        if c["orig"] is None and (flags & 0x12 == 0x02 or pl):
            c["orig"] = a
        if pl:
            c["segs"].setdefault(a, {})[seq] = pl
    for key, c in conns.items():
        if c["orig"] is None:
            continue
        other = key[0] if key[1] == c["orig"] else key[1]
        out = []
        for side in (c["orig"], other):
            segs = c["segs"].get(side, {})
            buf, nxt = b"", None
            for seq in sorted(segs):
                pl = segs[seq]
                if nxt is not None and seq < nxt:
                    pl = pl[nxt - seq:]
                buf += pl
                nxt = seq + len(segs[seq])
            out.append(buf[:MAX_STREAM])
        yield out


def save(d, blob):
    os.makedirs(d, exist_ok=True)
    name = hashlib.sha1(blob).hexdigest()
    with open(os.path.join(d, name), "wb") as fh:
        fh.write(blob)


def main():
    paths = sys.argv[1:] or sorted(
        glob.glob(os.path.join(ROOT, "captures", "*.pcap*"))
        + glob.glob(os.path.join(ROOT, "captures", "adversarial", "*.pcap"))
        + glob.glob(os.path.join(ROOT, "..", "shared", "corpus", "*.pcap*")))
    corpus = os.path.join(HERE, "corpus")
    n = {"decode": 0, "http_stream": 0, "tls_stream": 0, "analyze_capture": 0}
    for p in paths:
        frames, cut = records(p)
        if cut:
            save(os.path.join(corpus, "analyze_capture"), cut)
            n["analyze_capture"] += 1
        for dlt, f in frames[:MAX_FRAMES_PER_FILE]:
            if dlt in LINK_INDEX:
                save(os.path.join(corpus, "decode"), bytes([LINK_INDEX[dlt]]) + f)
                n["decode"] += 1
        for orig, resp in streams(frames):
            if not orig and not resp:
                continue
            head = orig[:1] + resp[:1]
            if b"\x16" in head:
                target = "tls_stream"
            elif orig[:8].split(b" ")[0] in (b"GET", b"POST", b"HEAD", b"PUT", b"CONNECT", b"DELETE", b"OPTIONS") or resp.startswith(b"HTTP/1."):
                target = "http_stream"
            else:
                continue
            save(os.path.join(corpus, target), struct.pack("<QH", 0, len(orig)) + orig + resp)
            n[target] += 1
    print(" ".join("%s=%d" % kv for kv in n.items()), "(before deduplication) from", len(paths), "captures")


if __name__ == "__main__":
    main()
