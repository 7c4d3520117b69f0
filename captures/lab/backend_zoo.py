#!/usr/bin/env python3
"""Static-file HTTP(S) backend for the zoo scenarios of the proxyscope capture lab.

backend.py answers every path with the same generated body; the zoo needs real files
(a ~2 MB body, and a GOPROXY tree: /$module/@v/list, .info, .mod, .zip), HTTP/1.1
keep-alive (unlike `python3 -m http.server`, which speaks HTTP/1.0 and closes first),
TLS with a certificate from the lab's test CA, and a slow mode.

Usage: backend_zoo.py --listen IP:PORT --dir DIR [--tls CERT KEY] [--delay SECONDS]

  --dir DIR        serve the files under DIR (GET/HEAD; Content-Length, HTTP/1.1 keep-alive)
  --tls CERT KEY   speak HTTPS with that certificate chain and key
  --delay SECONDS  wait that long after reading each request before answering (slow backend)

Every request is logged to stderr (method, path, status).
"""
import argparse
import functools
import http.server
import ssl
import sys
import time


class Handler(http.server.SimpleHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "lab-zoo-backend"
    sys_version = ""
    delay = 0.0

    def send_head(self):
        if self.delay:
            time.sleep(self.delay)
        return super().send_head()

    def end_headers(self):
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, fmt, *args):
        sys.stderr.write("backend_zoo %s - %s\n" % (self.address_string(), fmt % args))
        sys.stderr.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True)
    ap.add_argument("--dir", required=True)
    ap.add_argument("--tls", nargs=2, metavar=("CERT", "KEY"))
    ap.add_argument("--delay", type=float, default=0.0)
    args = ap.parse_args()
    host, port = args.listen.rsplit(":", 1)
    Handler.delay = args.delay
    handler = functools.partial(Handler, directory=args.dir)
    http.server.ThreadingHTTPServer.daemon_threads = True
    http.server.ThreadingHTTPServer.request_queue_size = 128
    srv = http.server.ThreadingHTTPServer((host, int(port)), handler)
    if args.tls:
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(args.tls[0], args.tls[1])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    print("backend_zoo listening on %s (%s) dir %s delay %s" % (
        args.listen, "https" if args.tls else "http", args.dir, args.delay), file=sys.stderr, flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
