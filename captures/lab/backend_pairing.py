#!/usr/bin/env python3
"""Extra misbehaving backends for the pairing scenarios of the capture lab
(captures/lab/scenarios-pairing.sh). backend.py is left as it is; this file adds the modes it
lacks.

Usage: backend_pairing.py --listen IP:PORT --mode MODE [--size N] [--cut N] [--cert F --key F]

Modes (the behaviour applies to every connection / request):
  maint503     answer every request with 503 Service Unavailable and a maintenance page,
               "Server: gunicorn", "Retry-After: 120", "Connection: close", then close (FIN)
               -- an application in maintenance answering the 503 itself
  app502       answer every request with 502 Bad Gateway, "Server: uvicorn", a JSON error body,
               keep-alive -- an application whose own dependency failed answering 502 itself
  reset-after  read the request, send "200 OK" headers declaring Content-Length --size
               (default 4000000), then --cut body bytes (default 600000, paced at --rate
               bytes/s if given), wait 0.3 s, and close
               with SO_LINGER 0 (RST): a backend dying in the middle of the body
  tls-hang     TLS server (--cert/--key): complete the handshake, read the (encrypted) request,
               never answer; close when the peer closes
The TLS "never answers the ClientHello" backend is backend.py --mode tls-stall.
"""
import argparse
import socket
import ssl
import struct
import sys
import threading
import time

MAINT = (b"<!DOCTYPE html>\n<html><head><title>Down for maintenance</title></head>\n"
         b"<body><h1>Down for maintenance</h1>\n"
         b"<p>shop.lab is being upgraded. Please come back in a few minutes.</p></body></html>\n")
APP502 = b'{"error": "bad gateway", "detail": "payments-db upstream unreachable", "service": "orders-api"}\n'


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


def wait_peer_close(conn):
    try:
        while conn.recv(4096):
            pass
    except OSError:
        pass


def rst_close(conn):
    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()


def handle(conn, args, ctx):
    try:
        if args.mode == "tls-hang":
            tls = ctx.wrap_socket(conn, server_side=True)
            conn = tls
            read_request(tls)          # the proxy's encrypted request
            wait_peer_close(tls)       # ... and never answer
            return
        while True:
            path = read_request(conn)
            if path is None:
                return
            if args.mode == "maint503":
                hdr = ("HTTP/1.1 503 Service Unavailable\r\nServer: gunicorn\r\n"
                       "Date: %s\r\nConnection: close\r\nContent-Type: text/html; charset=utf-8\r\n"
                       "Retry-After: 120\r\nContent-Length: %d\r\n\r\n"
                       % (time.strftime("%a, %d %b %Y %H:%M:%S GMT", time.gmtime()), len(MAINT)))
                conn.sendall(hdr.encode() + MAINT)
                conn.shutdown(socket.SHUT_WR)
                wait_peer_close(conn)
                return
            if args.mode == "app502":
                hdr = ("HTTP/1.1 502 Bad Gateway\r\nServer: uvicorn\r\n"
                       "content-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(APP502))
                conn.sendall(hdr.encode() + APP502)
                continue
            if args.mode == "reset-after":
                hdr = ("HTTP/1.1 200 OK\r\nServer: lab-backend\r\nContent-Type: application/octet-stream\r\n"
                       "Content-Length: %d\r\n\r\n" % args.size)
                conn.sendall(hdr.encode())
                block = b"x" * 16384
                sent = 0
                start = time.monotonic()
                while sent < args.cut:
                    n = min(len(block), args.cut - sent)
                    conn.sendall(block[:n])
                    sent += n
                    if args.rate:   # pace, so that tcpdump -i any keeps up (no kernel drops)
                        ahead = sent / args.rate - (time.monotonic() - start)
                        if ahead > 0:
                            time.sleep(ahead)
                time.sleep(0.3)
                rst_close(conn)
                return
            raise SystemExit("unknown mode %s" % args.mode)
    except (OSError, ssl.SSLError):
        pass
    finally:
        try:
            conn.close()
        except OSError:
            pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--mode", required=True, choices=["maint503", "app502", "reset-after", "tls-hang"])
    ap.add_argument("--size", type=int, default=4000000)
    ap.add_argument("--cut", type=int, default=600000)
    ap.add_argument("--rate", type=int, default=0, help="reset-after: body bytes per second (0 = as fast as possible)")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    args = ap.parse_args()
    ctx = None
    if args.mode == "tls-hang":
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.cert, args.key)
    host, port = args.listen.rsplit(":", 1)
    srv = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind((host, int(port)))
    srv.listen(128)
    print("backend_pairing listening on %s mode %s" % (args.listen, args.mode), file=sys.stderr, flush=True)
    while True:
        conn, _ = srv.accept()
        threading.Thread(target=handle, args=(conn, args, ctx), daemon=True).start()


if __name__ == "__main__":
    main()
