#!/usr/bin/env python3
"""Hostile backend for the capture lab (captures/lab/scenarios-hostile.sh): an http.server
application whose error answers carry markup, Markdown and terminal escape sequences, the way a
compromised or merely careless backend can put anything into a 502/503 body and its headers.

  GET /h/502/...   502 Bad Gateway, hostile body, hostile Server and X-Hostile headers
  GET /h/503/...   503 Service Unavailable, the same
  anything else    200 OK, "ok"

Every answer is HTTP/1.1 with Content-Length. Stdout/stderr: one log line per request.
"""
import argparse
import http.server
import socketserver

ESC = "\x1b"
# proxyscope quotes the first 80 characters of a gateway error's body in its summary (120 in
# the JSON facts): the hostile parts come first, without spaces (runs of whitespace collapse).
BODY = (
    '<img src="https://example.invalid/x.png"><script>x()</script>' + ESC + "[31m**b**`t`"
    + ESC + "]0;T\x07 a|b [link](https://example.invalid/) " + ESC + "[2J\x08\x7f\u202eRLO "
    "<center><h1>backend error</h1></center>\n"
).encode("utf-8")
SERVER = "evil" + ESC + "[31m<b>**srv**</b>|`x`" + ESC + "]0;srv-title\x07"
CUSTOM = '<img src="https://example.invalid/h.png"> **hdr** | `x` ' + ESC + "[5mBLINK" + ESC + "[0m"


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def version_string(self):
        return SERVER

    def do_GET(self):
        if self.path.startswith("/h/502/"):
            code, body, extra = 502, BODY, True
        elif self.path.startswith("/h/503/"):
            code, body, extra = 503, BODY, True
        else:
            code, body, extra = 200, b"ok\n", False
        self.send_response(code)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        if extra:
            self.send_header("X-Hostile", CUSTOM)
        self.end_headers()
        self.wfile.write(body)


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--listen", required=True, help="ip:port")
    a = ap.parse_args()
    host, port = a.listen.rsplit(":", 1)
    Server((host, int(port)), Handler).serve_forever()


if __name__ == "__main__":
    main()
