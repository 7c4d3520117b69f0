#!/usr/bin/env python3
"""Small misbehaving HTTP/TCP backend for the proxyscope capture lab.

Usage: backend.py --listen IP:PORT --mode MODE [--size BYTES] [--rate BYTES_PER_S]

Modes (the behaviour applies to every connection):
  normal      read one request, answer 200 with a small body (HTTP/1.1,
              Content-Length) and keep the connection open until the peer
              closes it, so the *proxy* closes first and holds TIME_WAIT
  large       like normal but the body is --size bytes (optionally paced
              with --rate bytes/s)
  hang        read the request, then never answer (sleep until the peer closes)
  reset-early read the request, then close with SO_LINGER 0 (RST, no response)
  reset-mid   read the request, send headers (Content-Length --size) and the
              first 64 KiB of the body, then close with SO_LINGER 0 (RST)
  close-early read the request, then close normally (FIN, no response)
  tls-stall   accept TCP and read whatever comes (e.g. a ClientHello), never
              write anything
Paths override the mode per request: a request for /reset-mid, /reset-early,
/hang, /close-early or /large uses that behaviour instead.
"""
import argparse
import socket
import struct
import sys
import threading
import time

CHUNK = 16384


def read_request(conn):
    data = b""
    while b"\r\n\r\n" not in data:
        part = conn.recv(4096)
        if not part:
            return None
        data += part
        if len(data) > 65536:
            break
    line = data.split(b"\r\n", 1)[0].decode("latin-1", "replace")
    parts = line.split(" ")
    return parts[1] if len(parts) > 1 else "/"


def rst_close(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def wait_peer_close(conn):
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def send_body(conn, size, rate):
    sent = 0
    block = b"x" * CHUNK
    start = time.monotonic()
    while sent < size:
        n = min(CHUNK, size - sent)
        conn.sendall(block[:n])
        sent += n
        if rate:
            ahead = sent / rate - (time.monotonic() - start)
            if ahead > 0:
                time.sleep(ahead)


def handle(conn, args):
    try:
        if args.mode == "tls-stall":
            wait_peer_close(conn)
            return
        while True:
            path = read_request(conn)
            if path is None:
                return
            mode = args.mode
            for m in ("reset-mid", "reset-early", "hang", "close-early", "large"):
                if path.startswith("/" + m):
                    mode = m
            if mode == "hang":
                wait_peer_close(conn)
                return
            if mode == "reset-early":
                rst_close(conn)
                return
            if mode == "close-early":
                conn.close()
                return
            if mode == "reset-mid":
                hdr = ("HTTP/1.1 200 OK\r\nServer: lab-backend\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %d\r\n\r\n" % args.size)
                conn.sendall(hdr.encode())
                send_body(conn, 65536, 0)
                time.sleep(0.2)
                rst_close(conn)
                return
            size = args.size if mode == "large" else 0
            body = b"hello from backend %s\n" % args.listen.encode()
            length = size if size else len(body)
            hdr = ("HTTP/1.1 200 OK\r\nServer: lab-backend\r\nContent-Type: text/plain\r\n"
                   "Content-Length: %d\r\n\r\n" % length)
            if size:
                conn.sendall(hdr.encode())
                send_body(conn, size, args.rate)
            else:
                conn.sendall(hdr.encode() + body)
            # keep-alive: loop for the next request; the peer closes first
    except OSError:
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--mode", default="normal")
    ap.add_argument("--size", type=int, default=1 << 20)
    ap.add_argument("--rate", type=int, default=0)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(1024)
    print("backend listening on %s mode %s" % (args.listen, args.mode), file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, args), daemon=True).start()


if __name__ == "__main__":
    main()
