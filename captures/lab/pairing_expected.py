#!/usr/bin/env python3
"""Writes captures/expected-pairing.toml: the ground truth of the pairing captures
(captures/pair-*.pcap, recorded by captures/lab/scenarios-pairing.sh) for issue 10.

Same format as captures/expected.toml ([[capture]], [[capture.expect]], [[capture.forbid]],
[[capture.check]]), plus
  * `severity` on every [[capture.expect]]: what an on-call SRE should be told (not what the
    tool says today);
  * [[capture.proposed]]: verdicts that no current signature expresses (e.g. a truncated body
    on the client leg), with the severity they should have;
  * [[capture.pair]]: one per failing client exchange, the ground-truth pairing:
      client_syn      SYN of the client connection that carried the exchange
      client_request  the client's request (HTTP request line / CONNECT / ClientHello)
      client_answer   first thing the client got back for it (status line, FIN, RST), 0 if none
      client_outcome  what the client saw, in words
      backend         SYN of every backend connection that carried an attempt of this
                      exchange, retries included ([] if none); `reused = true` when the
                      connection had been opened for an earlier exchange (keep-alive upstream)
      backend_request the frames carrying the forwarded request/ClientHello on the backend leg
                      ([] when no attempt got that far, e.g. refused)
      server          the backend ip:port
      kind            strongest evidence in the capture that ties them: connect-authority |
                      client-hello | first-payload | http-request | time
      outcome         backend outcome: refused | syn-unanswered | reset | no-response |
                      tls-stall | truncated | backend-5xx | ok
      note            why the pairing is right (the proxy's own log line)

The pairings are held below as tshark display filters (hand-written ground truth) and every
frame number is measured again with tshark 4.0 (`tshark -n -2 -r F -Y FILTER`, default prefs);
the run fails if a recording does not reproduce the shape (counts marked `want`, number of
backend attempts). When the proxies' logs kept by scenarios-pairing.sh are present
($PAIR_LOGS, default /tmp/proxyscope-pairing-logs), the backend source port each log names is
compared with the measured backend SYN.

Usage: captures/lab/pairing_expected.py          (after run.sh pair-...)
"""
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CAPS = os.path.dirname(HERE)
sys.path.insert(0, HERE)
import make_expected as ME  # noqa: E402  (tshark helpers, same measurement as expected.toml)

LOGS = os.environ.get("PAIR_LOGS", "/tmp/proxyscope-pairing-logs")
# expected.toml's signatures plus the ones added in src/signature/mod.rs since (working tree)
SIGS = ME.SIGS + ["truncated-response", "proxy-denied", "abortive-close"]
SEVERITIES = ("critical", "warning", "info")
KINDS = ("connect-authority", "client-hello", "first-payload", "http-request", "time")
OUTCOMES = ("refused", "syn-unanswered", "reset", "no-response", "tls-stall", "truncated", "backend-5xx", "ok")

SYN, SYNACK, RST, CH, SH = ME.SYN, ME.SYNACK, ME.RST, ME.CH, ME.SH
P, B, PF, CL = ME.P, ME.B, ME.PF, ME.CL
FE = "10.78.1.1:80"
REQ = "http.request && ip.src==%s" % CL          # client-leg requests
BREQ = "http.request && ip.src==%s" % P          # backend-leg requests


def C(filt, want=None, why="", zero_ok=False):
    return ME.C(filt, want, why, zero_ok)


def E(sig, hop, server, severity):
    return {"signature": sig, "hop": hop, "server": server, "severity": severity}


def PR(sig, hop, server, severity, why):
    return {"signature": sig, "hop": hop, "server": server, "severity": severity, "why": why}


def PAIR(req, ans, backend, kind, outcome, server, client_outcome, note, syn=None, breq=None,
         n_backend=None, reused=False, log=None):
    """req/ans/syn: (filter, index) or a bare filter (index 0); backend/breq: filter templates
    ({req}, {ans}, {syn} replaced by the measured frames) listing every matching frame."""
    return dict(req=req, ans=ans, backend=backend, breq=breq, kind=kind, outcome=outcome, server=server,
                client_outcome=client_outcome, note=note, syn=syn, n_backend=n_backend, reused=reused, log=log)


def csyn_of(req_filter_port):
    return req_filter_port


# ------------------------------------------------------------------ log cross-checks
def log_lines(scen, name):
    path = os.path.join(LOGS, scen, name)
    if not os.path.exists(path):
        return None
    return open(path).read().splitlines()


def haproxy_be_src(scen, needle):
    """source port of the (last) backend connection haproxy logged for a line containing needle"""
    lines = log_lines(scen, "haproxy.log")
    if lines is None:
        return None
    for ln in lines:
        if needle in ln:
            m = re.search(r"be_src=[\d.]+:(\d+)", ln)
            return int(m.group(1)) if m else None
    return "missing"


def nginx_stream_port(scen, server):
    lines = log_lines(scen, "nginx-error.log")
    if lines is None:
        return None
    conn = None
    for ln in lines:
        m = re.search(r"\*(\d+) client [\d.]+:\d+ connected to %s" % re.escape(server), ln)
        if m:
            conn = m.group(1)
    if conn is None:
        return "missing"
    for ln in lines:
        m = re.search(r"\*%s proxy [\d.]+:(\d+) connected to" % conn, ln)
        if m:
            return int(m.group(1))
    return 0   # no "proxy ... connected" line: the connection was never established (refused)


def squid_local_port(scen, authority):
    lines = log_lines(scen, "access.log")
    if lines is None:
        return None
    for ln in lines:
        if " CONNECT %s " % authority in ln:
            m = re.search(r"local=[\d.]+:(\d+)", ln)
            return int(m.group(1)) if m else "missing"
    return "missing"


def nginx_error_has(scen, *needles):
    lines = log_lines(scen, "nginx-error.log")
    if lines is None:
        return None
    return any(all(n in ln for n in needles) for ln in lines)


# ------------------------------------------------------------------ ground truth
NGINX_FORBID_HTTP = ["syn-unanswered", "tls-stall", "tls-alert"]

CAPTURES = [
    # 1 two locations failing differently at once ------------------------------------------
    dict(file="pair-two-locations-nginx-any.pcap", scenario="pair-two-locations", healthy=False,
         summary="nginx, two locations failing at once: /slow/ -> 10.78.2.2:8081 accepts and never answers (504 after proxy_read_timeout 2s); 0.5 s later /down/ -> closed 10.78.2.2:8082 (502) while /slow/ is still pending",
         did="backend.py --mode hang on 8081, nothing on 8082; location /slow/ { proxy_pass http://10.78.2.2:8081; proxy_read_timeout 2s; } location /down/ { proxy_pass http://10.78.2.2:8082; }; curl /slow/report in the background, 0.5 s later curl /down/status; tcpdump -i any in ps-proxy",
         failed="proxy->backend, two different causes: no response (8081) and refused (8082)",
         expect=[E("upstream-timeout", "proxy->backend", "10.78.2.2:8081", "critical"),
                 E("connection-refused", "proxy->backend", "10.78.2.2:8082", "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-reset", "tls-stall", "retransmission-storm"],
         checks=[C(REQ, 2, "GET /slow/report, GET /down/status"),
                 C(BREQ, 1, "only /slow/ reaches a backend; /down/ is refused at SYN"),
                 C("http.response.code == 504", 1), C("http.response.code == 502", 1),
                 C("%s && ip.src==%s" % (RST, B), 1, "the refusal of the /down/ attempt")],
         pairs=[
             PAIR(req=REQ + ' && http.request.uri == "/slow/report"', ans="http.response.code == 504",
                  syn="%s && ip.src==%s && frame.number < {req}" % (SYN, CL),
                  backend="%s && ip.dst==%s && tcp.dstport==8081" % (SYN, B),
                  breq=BREQ + ' && http.request.uri == "/slow/report"', n_backend=1,
                  kind="http-request", outcome="no-response", server="10.78.2.2:8081",
                  client_outcome="504 Gateway Time-out after 2.0 s",
                  note='same method+target on both legs (GET /slow/report); nginx error.log: "upstream timed out (110: Connection timed out) while reading response header from upstream, ... request: \\"GET /slow/report HTTP/1.1\\", upstream: \\"http://10.78.2.2:8081/slow/report\\""; access log: 504 upstream=10.78.2.2:8081 uresp=2.003. The RST of 8082 happens inside this request\'s lifetime but belongs to /down/'),
             PAIR(req=REQ + ' && http.request.uri == "/down/status"', ans="http.response.code == 502",
                  syn=("%s && ip.src==%s && frame.number < {req}" % (SYN, CL), -1),
                  backend="%s && ip.dst==%s && tcp.dstport==8082" % (SYN, B), breq=None, n_backend=1,
                  kind="time", outcome="refused", server="10.78.2.2:8082",
                  client_outcome="502 Bad Gateway after 0.2 ms",
                  note='no request reaches 8082, so only time ties them: the SYN to 8082 is the only backend attempt between GET /down/status and its 502 (0.2 ms), and the other pending request (/slow/) already has its own connection to 8081; nginx error.log: "connect() failed (111: Connection refused) while connecting to upstream, ... request: \\"GET /down/status HTTP/1.1\\", upstream: \\"http://10.78.2.2:8082/down/status\\""'),
         ]),
    dict(file="pair-two-locations-nginx-frontleg.pcap", scenario="pair-two-locations", healthy=False,
         summary="client leg of pair-two-locations: 504 for /slow/report (2 s) and, while it is pending, 502 for /down/status",
         did="as pair-two-locations-nginx-any, tcpdump on veth-pc", failed="proxy->backend (seen here as 504 and 502)",
         expect=[E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["connection-refused", "syn-unanswered", "connection-reset", "upstream-timeout"],
         checks=[C("http.request", 2), C("http.response.code == 504", 1), C("http.response.code == 502", 1),
                 C(RST, 0, zero_ok=True)]),
    dict(file="pair-two-locations-nginx-backleg.pcap", scenario="pair-two-locations", healthy=False,
         summary="backend leg of pair-two-locations: request to 8081 unanswered until nginx FINs after 2 s; SYN to 8082 refused",
         did="as pair-two-locations-nginx-any, tcpdump on veth-pb", failed="proxy->backend",
         expect=[E("upstream-timeout", "proxy->backend", "10.78.2.2:8081", "critical"),
                 E("connection-refused", "proxy->backend", "10.78.2.2:8082", "critical")],
         forbid=["syn-unanswered", "connection-reset", "gateway-error"],
         checks=[C(SYN, 2), C("http.request", 1), C("%s && ip.src==%s" % (RST, B), 1),
                 C("tcp.flags.fin==1 && ip.src==%s && frame.time_relative > 1.9" % P, 1, "nginx gives up after 2 s")]),
    # 2a backend 503 itself behind nginx ---------------------------------------------------
    dict(file="pair-backend503-nginx-any.pcap", scenario="pair-backend-5xx", healthy=False,
         summary="the backend (Server: gunicorn, maintenance page, Retry-After) answers 503 itself; nginx passes both 503s through, with its own Server header on the client leg",
         did="backend_pairing.py --mode maint503 on 10.78.2.2:8088; nginx proxy_pass http://10.78.2.2:8088; curl /shop/ + /shop/cart on one keep-alive connection; tcpdump -i any",
         failed="proxy->backend: the application answers 503 (maintenance), the proxy and network are fine",
         expect=[E("gateway-error", "proxy->backend", "10.78.2.2:8088", "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["connection-refused", "connection-reset", "upstream-timeout", "syn-unanswered"],
         checks=[C(REQ, 2), C(BREQ, 2),
                 C('http.response.code == 503 && http.server contains "gunicorn"', 2, "the backend's own 503s"),
                 C('http.response.code == 503 && http.server contains "nginx"', 2, "the same 503s relayed by nginx (Server rewritten)"),
                 C(RST, 0, zero_ok=True)],
         pairs=[
             PAIR(req=REQ + ' && http.request.uri == "/shop/"', ans=("http.response.code == 503 && ip.src==%s" % PF, 0),
                  syn="%s && ip.src==%s" % (SYN, CL), backend=("%s && ip.dst==%s" % (SYN, B), 0),
                  breq=BREQ + ' && http.request.uri == "/shop/"', n_backend=1,
                  kind="http-request", outcome="backend-5xx", server="10.78.2.2:8088",
                  client_outcome="503 Service Unavailable (Server: nginx/1.22.1, the gunicorn maintenance page as body)",
                  note='same GET /shop/ on both legs; the backend sent "503 Service Unavailable", Server: gunicorn, and nginx relayed it; access log: 503 upstream=10.78.2.2:8088 ustatus=503; nginx error.log has no upstream error (nothing failed at the proxy)'),
             PAIR(req=REQ + ' && http.request.uri == "/shop/cart"', ans=("http.response.code == 503 && ip.src==%s" % PF, 1),
                  syn="%s && ip.src==%s" % (SYN, CL), backend=("%s && ip.dst==%s" % (SYN, B), 1),
                  breq=BREQ + ' && http.request.uri == "/shop/cart"', n_backend=1,
                  kind="http-request", outcome="backend-5xx", server="10.78.2.2:8088",
                  client_outcome="503 Service Unavailable (relayed)",
                  note='same GET /shop/cart on both legs (second request of the keep-alive client connection, new upstream connection: nginx speaks HTTP/1.0 upstream); access log: 503 upstream=10.78.2.2:8088 ustatus=503'),
         ]),
    # 2b backend 502 itself behind haproxy ---------------------------------------------------
    dict(file="pair-backend502-haproxy-any.pcap", scenario="pair-backend-5xx", healthy=False,
         summary="the backend (Server: uvicorn, JSON error) answers 502 itself; haproxy (mode http) relays three 502s, two of them on one reused server connection",
         did="backend_pairing.py --mode app502 on 10.78.2.2:8086; haproxy mode http, option forwardfor, server s1 10.78.2.2:8086; curl /api/orders + /api/orders/17 (keep-alive), then curl /api/health; tcpdump -i any",
         failed="proxy->backend: the application answers 502 itself (its own dependency is down); 10.78.2.2:8086 is a backend, not a second proxy",
         expect=[E("gateway-error", "proxy->backend", "10.78.2.2:8086", "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["connection-refused", "connection-reset", "upstream-timeout", "syn-unanswered"],
         checks=[C(REQ, 3), C(BREQ, 3), C("%s && ip.dst==%s" % (SYN, B), 2, "2 server connections for 3 requests (haproxy reuses one)"),
                 C("http.response.code == 502", 6, "3 from the backend + the same 3 relayed"),
                 C('http.x_forwarded_for == "10.78.1.2"', 3, "option forwardfor names the client on the backend leg")],
         pairs=[
             PAIR(req=REQ + ' && http.request.uri == "/api/orders"', ans=("http.response.code == 502 && ip.src==%s" % PF, 0),
                  syn=("%s && ip.src==%s" % (SYN, CL), 0), backend=("%s && ip.dst==%s" % (SYN, B), 0),
                  breq=BREQ + ' && http.request.uri == "/api/orders"', n_backend=1,
                  kind="http-request", outcome="backend-5xx", server="10.78.2.2:8086",
                  client_outcome="502 Bad Gateway (Server: uvicorn, JSON body), relayed unchanged",
                  note='same GET /api/orders on both legs, X-Forwarded-For: 10.78.1.2; haproxy log: "fe be/s1 0/0/0/0/0 502 196 - - ---- ... \\"GET /api/orders HTTP/1.1\\"" (termination ----: haproxy saw a normal response)',
                  log=("pair-backend502-haproxy", '"GET /api/orders HTTP/1.1"')),
             PAIR(req=REQ + ' && http.request.uri == "/api/orders/17"', ans=("http.response.code == 502 && ip.src==%s" % PF, 1),
                  syn=("%s && ip.src==%s" % (SYN, CL), 0), backend=("%s && ip.dst==%s" % (SYN, B), 0),
                  breq=BREQ + ' && http.request.uri == "/api/orders/17"', n_backend=1, reused=True,
                  kind="http-request", outcome="backend-5xx", server="10.78.2.2:8086",
                  client_outcome="502 Bad Gateway (relayed)",
                  note='no new backend connection: haproxy sent it on the server connection opened for /api/orders (same be_src port in its log); tied by GET /api/orders/17 on both legs',
                  log=("pair-backend502-haproxy", '"GET /api/orders/17 HTTP/1.1"')),
             PAIR(req=REQ + ' && http.request.uri == "/api/health"', ans=("http.response.code == 502 && ip.src==%s" % PF, 2),
                  syn=("%s && ip.src==%s" % (SYN, CL), 1), backend=("%s && ip.dst==%s" % (SYN, B), 1),
                  breq=BREQ + ' && http.request.uri == "/api/health"', n_backend=1,
                  kind="http-request", outcome="backend-5xx", server="10.78.2.2:8086",
                  client_outcome="502 Bad Gateway (relayed)",
                  note='same GET /api/health on both legs; new client connection -> new server connection (http-reuse safe); haproxy log line for /api/health names that connection\'s source port',
                  log=("pair-backend502-haproxy", '"GET /api/health HTTP/1.1"')),
         ]),
    # 3 haproxy 503 after retries --------------------------------------------------------------
    dict(file="pair-haproxy-retries-any.pcap", scenario="pair-haproxy-retries", healthy=False,
         summary="haproxy (mode http, retries 2) to a closed port: 3 refused SYNs per request, 1 s apart, then its own 503 'No server is available'; two requests, both legs in one -i any file",
         did="nothing listens on 10.78.2.2:8080; haproxy retries 2, timeout connect 2s; curl /login, then curl /static/app.js; tcpdump -i any in ps-proxy",
         failed="proxy->backend (port closed); the 503s are haproxy's own",
         expect=[E("connection-refused", "proxy->backend", "10.78.2.2:8080", "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout"],
         checks=[C(REQ, 2), C("%s && ip.dst==%s" % (SYN, B), 6, "2 requests x (1 attempt + 2 retries)"),
                 C("%s && ip.src==%s" % (RST, B), 6), C("http.response.code == 503", 2),
                 C(BREQ, 0, "no request ever reaches the backend", zero_ok=True)],
         pairs=[
             PAIR(req=(REQ, 0), ans=("http.response.code == 503", 0), syn=("%s && ip.src==%s" % (SYN, CL), 0),
                  backend="%s && ip.dst==%s && frame.number > {req} && frame.number < {ans}" % (SYN, B), n_backend=3,
                  kind="time", outcome="refused", server="10.78.2.2:8080",
                  client_outcome="503 Service Unavailable (haproxy: No server is available to handle this request) after 2.0 s",
                  note='three attempts of ONE request (retries 2), all inside GET /login ... 503; haproxy log: "fe be/s1 0/0/-1/-1/2003 503 217 - - SC-- 1/1/0/0/2 0/0 \\"GET /login HTTP/1.1\\"" (SC = server refused at connect, %rc = 2 retries; be_src = the third SYN\'s port)',
                  log=("pair-haproxy-retries", '"GET /login HTTP/1.1"')),
             PAIR(req=(REQ, 1), ans=("http.response.code == 503", 1), syn=("%s && ip.src==%s" % (SYN, CL), 1),
                  backend="%s && ip.dst==%s && frame.number > {req} && frame.number < {ans}" % (SYN, B), n_backend=3,
                  kind="time", outcome="refused", server="10.78.2.2:8080",
                  client_outcome="503 Service Unavailable (haproxy) after 2.0 s",
                  note='haproxy log: "... 503 217 - - SC-- 1/1/0/0/2 0/0 \\"GET /static/app.js HTTP/1.1\\"", be_src = the third SYN\'s port',
                  log=("pair-haproxy-retries", '"GET /static/app.js HTTP/1.1"')),
         ]),
    # 4 squid CONNECT ----------------------------------------------------------------------------
    dict(file="pair-squid-connect-any.pcap", scenario="pair-squid-connect", healthy=False,
         summary="squid 5.7 forward proxy: CONNECT 10.78.2.2:9443 -> 200 Connection established, the ClientHello is relayed and never answered (client gives up after 4 s); then CONNECT 10.78.2.2:9444 -> refused -> squid 503 (X-Squid-Error: ERR_CONNECT_FAIL 111)",
         did="squid -N -f conf (http_port 10.78.1.1:3128, cache deny all); backend.py --mode tls-stall on 9443, nothing on 9444; curl -k -x http://10.78.1.1:3128 https://10.78.2.2:9443/login --max-time 4, then https://10.78.2.2:9444/login; tcpdump -i any 'not host 127.0.0.1' in ps-proxy",
         failed="proxy->backend: 9443 stalls the TLS handshake inside the tunnel, 9444 refuses",
         expect=[E("tls-stall", "proxy->backend", "10.78.2.2:9443", "critical"),
                 E("connection-refused", "proxy->backend", "10.78.2.2:9444", "critical"),
                 E("gateway-error", "client->proxy", "10.78.1.1:3128", "critical")],
         forbid=["syn-unanswered", "tls-alert", "upstream-timeout"],
         checks=[C('http.request.method == "CONNECT"', 2), C("http.response.code == 200", 1, "200 Connection established"),
                 C("http.response.code == 503", 1), C(CH, 2, "the ClientHello on the client leg and relayed on the backend leg"),
                 C(SH, 0, "no ServerHello anywhere", zero_ok=True)],
         pairs=[
             PAIR(req='http.request.method == "CONNECT" && http.request.uri == "10.78.2.2:9443"',
                  ans="http.response.code == 200", syn=("%s && ip.src==%s" % (SYN, CL), 0),
                  backend="%s && ip.dst==%s && tcp.dstport==9443" % (SYN, B),
                  breq="%s && ip.src==%s" % (CH, P), n_backend=1,
                  kind="connect-authority", outcome="tls-stall", server="10.78.2.2:9443",
                  client_outcome="200 Connection established, then no ServerHello to its ClientHello; curl gave up after 4 s (FIN)",
                  note='CONNECT authority 10.78.2.2:9443 = destination of the only backend connection squid opened between the CONNECT and its 200; the same ClientHello crosses both legs; squid access.log: "4000 10.78.1.2:<port> TCP_TUNNEL/200 39 CONNECT 10.78.2.2:9443 HIER_DIRECT/10.78.2.2:9443 local=10.78.2.1:<backend SYN port>"',
                  log=("pair-squid-connect", "10.78.2.2:9443")),
             PAIR(req='http.request.method == "CONNECT" && http.request.uri == "10.78.2.2:9444"',
                  ans="http.response.code == 503", syn=("%s && ip.src==%s" % (SYN, CL), 1),
                  backend="%s && ip.dst==%s && tcp.dstport==9444" % (SYN, B), breq=None, n_backend=1,
                  kind="connect-authority", outcome="refused", server="10.78.2.2:9444",
                  client_outcome="503 Service Unavailable (Server: squid/5.7, X-Squid-Error: ERR_CONNECT_FAIL 111)",
                  note='CONNECT authority 10.78.2.2:9444 = destination of the refused SYN, sent between the CONNECT and the 503; squid access.log: "NONE_NONE/503 0 CONNECT 10.78.2.2:9444 HIER_DIRECT/10.78.2.2:9444 local=0.0.0.0:0" (never connected); the 503 body says "(111) Connection refused"',
                  log=("pair-squid-connect", "10.78.2.2:9444")),
         ]),
    # 5a haproxy mode tcp ---------------------------------------------------------------------------
    dict(file="pair-passthrough-haproxy-any.pcap", scenario="pair-passthrough", healthy=False,
         summary="haproxy mode tcp (TLS passthrough, waits for the ClientHello): :443 -> 10.78.2.2:9443 gets the ClientHello and never answers, haproxy closes after timeout server 3s; :8443 -> closed 10.78.2.2:9444, 2 refused SYNs (retries 1), haproxy closes the client",
         did="haproxy mode tcp, tcp-request inspect-delay 5s + accept if req_ssl_hello_type 1, retries 1; backend.py --mode tls-stall on 9443, nothing on 9444; curl -k --max-time 5 https://app.lab/ (443) then https://app.lab:8443/; tcpdump -i any",
         failed="proxy->backend: TLS stall (9443) and refused (9444)",
         expect=[E("tls-stall", "proxy->backend", "10.78.2.2:9443", "critical"),
                 E("connection-refused", "proxy->backend", "10.78.2.2:9444", "critical"),
                 E("tls-stall", "client->proxy", "10.78.1.1:443", "critical")],
         forbid=["syn-unanswered", "tls-alert", "gateway-error"],
         checks=[C(CH, 3, "2 on the client leg, 1 relayed to 9443"), C(SH, 0, zero_ok=True),
                 C("%s && ip.dst==%s && tcp.dstport==9444" % (SYN, B), 2, "attempt + 1 retry"),
                 C("%s && ip.src==%s" % (RST, B), 2),
                 C("%s && ip.src==%s" % (RST, P), 1, "haproxy aborts its 9443 connection after its FIN (proxy-side, not a backend reset)")],
         pairs=[
             PAIR(req="%s && ip.src==%s && tcp.dstport==443" % (CH, CL),
                  ans="tcp.flags.fin==1 && ip.src==%s && tcp.srcport==443" % PF, syn="%s && tcp.dstport==443" % SYN,
                  backend="%s && ip.dst==%s && tcp.dstport==9443" % (SYN, B), breq="%s && ip.src==%s" % (CH, P), n_backend=1,
                  kind="client-hello", outcome="tls-stall", server="10.78.2.2:9443",
                  client_outcome="no ServerHello; haproxy FINs after 3.0 s",
                  note='the identical ClientHello (random, SNI app.lab) on both legs; haproxy log: "tls_stall be_stall/s1 1/0/3003 0 sD" (sD = server-side timeout during data) with be_src = that connection',
                  log=("pair-passthrough-haproxy", "tls_stall be_stall/s1")),
             PAIR(req="%s && ip.src==%s && tcp.dstport==8443" % (CH, CL),
                  ans="tcp.flags.fin==1 && ip.src==%s && tcp.srcport==8443" % PF, syn="%s && tcp.dstport==8443" % SYN,
                  backend="%s && ip.dst==%s && tcp.dstport==9444" % (SYN, B), breq=None, n_backend=2,
                  kind="time", outcome="refused", server="10.78.2.2:9444",
                  client_outcome="no ServerHello; haproxy FINs after 1.0 s (both attempts refused)",
                  note='nothing is relayed, so only time ties them: both SYNs to 9444 fall between the ClientHello and haproxy\'s FIN on the :8443 connection, 1 s apart (retry); haproxy log: "tls_refused be_refused/s2 .../-1/1009 0 SC 1/1/0/0/1" (SC, 1 retry), be_src = the second SYN',
                  log=("pair-passthrough-haproxy", "tls_refused be_refused/s2")),
         ]),
    # 5b nginx stream ---------------------------------------------------------------------------------
    dict(file="pair-passthrough-nginx-any.pcap", scenario="pair-passthrough", healthy=False,
         summary="nginx stream {} (TLS passthrough, ssl_preread on): :443 -> 10.78.2.2:9443 gets the ClientHello and never answers, nginx closes after proxy_timeout 3s; :8443 -> closed 10.78.2.2:9444, refused, nginx closes the client",
         did="nginx stream { proxy_connect_timeout 2s; proxy_timeout 3s; ssl_preread on; }; backend.py --mode tls-stall on 9443, nothing on 9444; curl -k --max-time 5 https://app.lab/ (443) then https://app.lab:8443/; tcpdump -i any",
         failed="proxy->backend: TLS stall (9443) and refused (9444)",
         expect=[E("tls-stall", "proxy->backend", "10.78.2.2:9443", "critical"),
                 E("connection-refused", "proxy->backend", "10.78.2.2:9444", "critical"),
                 E("tls-stall", "client->proxy", "10.78.1.1:443", "critical")],
         forbid=["syn-unanswered", "tls-alert", "gateway-error", "connection-reset"],
         checks=[C(CH, 3, "2 on the client leg, 1 relayed to 9443"), C(SH, 0, zero_ok=True),
                 C("%s && ip.dst==%s" % (SYN, B), 2), C("%s && ip.src==%s" % (RST, B), 1),
                 C(RST, 1, "the only reset is the refusal")],
         pairs=[
             PAIR(req="%s && ip.src==%s && tcp.dstport==443" % (CH, CL),
                  ans="tcp.flags.fin==1 && ip.src==%s && tcp.srcport==443" % PF, syn="%s && tcp.dstport==443" % SYN,
                  backend="%s && ip.dst==%s && tcp.dstport==9443" % (SYN, B), breq="%s && ip.src==%s" % (CH, P), n_backend=1,
                  kind="client-hello", outcome="tls-stall", server="10.78.2.2:9443",
                  client_outcome="no ServerHello; nginx FINs after 3.0 s",
                  note='the identical ClientHello on both legs; nginx error.log: "*1 proxy 10.78.2.1:<backend SYN port> connected to 10.78.2.2:9443" then "connection timed out (110) while proxying connection, ... bytes from/to upstream:0/517"',
                  log=("pair-passthrough-nginx", "10.78.1.1:443")),
             PAIR(req="%s && ip.src==%s && tcp.dstport==8443" % (CH, CL),
                  ans="tcp.flags.fin==1 && ip.src==%s && tcp.srcport==8443" % PF, syn="%s && tcp.dstport==8443" % SYN,
                  backend="%s && ip.dst==%s && tcp.dstport==9444" % (SYN, B), breq=None, n_backend=1,
                  kind="time", outcome="refused", server="10.78.2.2:9444",
                  client_outcome="no ServerHello; nginx FINs 5 ms after the ClientHello",
                  note='nothing is relayed: the SYN to 9444 is the only backend attempt between the ClientHello and nginx\'s FIN on :8443; nginx error.log: "*3 connect() failed (111: Connection refused) while connecting to upstream, client: 10.78.1.2, server: 10.78.1.1:8443, upstream: \\"10.78.2.2:9444\\""',
                  log=("pair-passthrough-nginx", "10.78.1.1:8443")),
         ]),
    # 6 backend killed mid-body -------------------------------------------------------------------
    dict(file="pair-midbody-kill-nginx-any.pcap", scenario="pair-midbody-kill", healthy=False,
         summary="backend declares Content-Length 4000000, sends 600000 body bytes and resets (SO_LINGER 0); nginx relays the 200 and 597911 body bytes, then FINs: the client gets a truncated 200",
         did="backend_pairing.py --mode reset-after --size 4000000 --cut 600000 --rate 2000000 on 10.78.2.2:8087; nginx proxy_pass http://10.78.2.2:8087 (proxy_read_timeout 10s); curl /download/backup.tar (exit 18); tcpdump -i any alone",
         failed="proxy->backend: the backend died in the middle of the body; the client leg carries a truncated 200",
         expect=[E("truncated-response", "proxy->backend", "10.78.2.2:8087", "critical"),
                 E("truncated-response", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-refused", "upstream-timeout", "gateway-error"],
         checks=[C('frame contains "HTTP/1.1 200 OK"', 2, "the 200 headers on both legs (tshark does not dissect a 200 whose body never completes as http.response)"),
                 C("%s && ip.src==%s" % (RST, B), 1, "the backend's reset"),
                 C("%s && ip.src==%s && tcp.seq == 600106" % (RST, B), 1, "RST at relative seq 600106: 105 header + 600000 body bytes sent"),
                 C("tcp.flags.fin==1 && ip.src==%s && tcp.seq == 598079" % PF, 1, "nginx FINs after 598078 bytes: 167 header + 597911 body"),
                 C("tcp.analysis.lost_segment || tcp.analysis.ack_lost_segment", 0, "complete capture: no segment missing (tcpdump had no kernel drops)", zero_ok=True)],
         pairs=[
             PAIR(req=REQ, ans='frame contains "HTTP/1.1 200 OK" && ip.src==%s' % PF, syn="%s && ip.src==%s" % (SYN, CL),
                  backend="%s && ip.dst==%s" % (SYN, B), breq=BREQ, n_backend=1,
                  kind="http-request", outcome="truncated", server="10.78.2.2:8087",
                  client_outcome="200 OK, Content-Length 4000000, 597911 body bytes, then FIN from nginx (curl: transfer closed with 3402089 bytes remaining)",
                  note='same GET /download/backup.tar on both legs; nginx error.log: "readv() failed (104: Connection reset by peer) while reading upstream, ... request: \\"GET /download/backup.tar HTTP/1.1\\", upstream: \\"http://10.78.2.2:8087/download/backup.tar\\""; access log: 200 597911 ustatus=200'),
         ]),
    # 7 HTTPS upstream that never answers -------------------------------------------------------
    dict(file="pair-https-upstream-nginx-any.pcap", scenario="pair-https-upstream", healthy=False,
         summary="nginx proxy_pass https://10.78.2.2:8443 (proxy_read_timeout 3s): the python TLS backend completes the handshake, takes the encrypted request and never answers; 504 x3 (two on one keep-alive client connection)",
         did="backend_pairing.py --mode tls-hang on 10.78.2.2:8443; nginx location / { proxy_pass https://10.78.2.2:8443; proxy_read_timeout 3s; }; curl /v2/mod/@v/list + /v2/mod/@v/v1.2.3.info (keep-alive), then /v2/mod/@latest; tcpdump -i any",
         failed="proxy->backend: no response after a completed TLS handshake (upstream timeout on an encrypted leg)",
         expect=[E("upstream-timeout", "proxy->backend", "10.78.2.2:8443", "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["tls-stall", "tls-alert", "connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 504", 3), C(SH, 3, "every upstream handshake completes (ServerHello)"),
                 C("tls.record.content_type == 23 && ip.src==%s" % P, 3, "one encrypted request per upstream connection"),
                 C("tls.record.content_type == 23 && ip.src==%s" % B, 0, "the backend never sends application data", zero_ok=True),
                 C("tls.record.content_type == 21 && ip.src==%s" % P, 3, "nginx's close_notify when it gives up (not a failure alert)")],
         pairs=[
             PAIR(req=(REQ, i), ans=("http.response.code == 504", i), syn=("%s && ip.src==%s" % (SYN, CL), [0, 0, 1][i]),
                  backend=("%s && ip.dst==%s" % (SYN, B), i), breq=("tls.record.content_type == 23 && ip.src==%s" % P, i),
                  n_backend=1, kind="time", outcome="no-response", server="10.78.2.2:8443",
                  client_outcome="504 Gateway Time-out after 3.0 s",
                  note=('the upstream leg is encrypted: the connection opened 0.2 ms after %s, its one application-data record, 3.0 s of silence, and nginx\'s close_notify+FIN 0.1 ms before the 504 tie them (requests are sequential); nginx error.log: "upstream timed out (110: Connection timed out) while reading response header from upstream, ... request: \\"GET %s HTTP/1.1\\", upstream: \\"https://10.78.2.2:8443%s\\""'
                        % (u, u, u)))
             for i, u in enumerate(["/v2/mod/@v/list", "/v2/mod/@v/v1.2.3.info", "/v2/mod/@latest"])
         ]),
]


def q(s):
    return ME.q(s)


def pick(path, spec, subst):
    flt, idx = spec if isinstance(spec, tuple) else (spec, 0)
    flt = flt.format(**subst)
    frames = ME.tshark_frames(path, flt)
    if not frames or (idx >= 0 and idx >= len(frames)):
        raise LookupError("%s: %r has no match #%d (matches %r)" % (os.path.basename(path), flt, idx, frames))
    return frames[idx]


def pick_all(path, spec, subst):
    if spec is None:
        return []
    if isinstance(spec, tuple):
        return [pick(path, spec, subst)]
    return ME.tshark_frames(path, spec.format(**subst))


def srcport(path, frame):
    out = ME.subprocess.run(["tshark", "-n", "-r", path, "-Y", "frame.number==%d" % frame, "-T", "fields", "-e", "tcp.srcport"],
                            env=ME.ENV, capture_output=True, text=True, check=True).stdout.strip()
    return int(out)


def log_port(log, pair):
    scen, needle = log
    if scen.startswith("pair-squid"):
        return squid_local_port(scen, needle)
    if scen.startswith("pair-passthrough-nginx"):
        return nginx_stream_port(scen, needle)
    return haproxy_be_src(scen, needle)


def main():
    errors, notes = [], []
    toml = ["# Ground truth for the pairing captures (issue 10): captures/pair-*.pcap, recorded by",
            "# captures/lab/scenarios-pairing.sh and explained in captures/lab/pairing.md.",
            "# Generated by captures/lab/pairing_expected.py from tshark 4.0 measurements (tshark -n -2 -r F -Y FILTER,",
            "# default prefs), in the format of expected.toml plus: `severity` on every expect (what an on-call SRE",
            "# should be told), [[capture.proposed]] (verdicts no current signature expresses) and [[capture.pair]]",
            "# (per failing client exchange: client frames, backend SYNs incl. retries, evidence kind, outcome).",
            ""]
    files = sorted(f for f in os.listdir(CAPS) if f.startswith("pair-") and f.endswith(".pcap"))
    described = [c["file"] for c in CAPTURES]
    if set(files) != set(described):
        sys.exit("pair captures without entry: %s; entries without file: %s"
                 % (sorted(set(files) - set(described)), sorted(set(described) - set(files))))
    total = 0
    for c in CAPTURES:
        path = os.path.join(CAPS, c["file"])
        size = os.path.getsize(path)
        total += size
        if size > 2 * 1024 * 1024:
            errors.append("%s is %d bytes (> 2 MiB, the limit of tests/lab_captures.rs)" % (c["file"], size))
        packets = len(ME.tshark_frames(path, None))
        link = ME.encap(path)
        checks = []
        for ch in c["checks"]:
            frames = ME.tshark_frames(path, ch["filter"])
            n = len(frames)
            if ch["want"] is not None and n != ch["want"]:
                errors.append("%s: %r gives %d, want %d" % (c["file"], ch["filter"], n, ch["want"]))
            if n == 0 and not ch["zero_ok"]:
                errors.append("%s: %r matches nothing" % (c["file"], ch["filter"]))
            checks.append((ch, n, frames))
        num = {"ethernet": "1", "linux-sll": "25", "linux-sll2": "210"}.get(link, "?")
        io = ME.iostat_counts(path, ["frame", "frame.encap_type == " + num] + [ch["filter"] for ch, _, _ in checks])
        if io != [packets, packets] + [n for _, n, _ in checks]:
            errors.append("%s: io,stat %r disagrees with -Y counts" % (c["file"], io))
        pairs = []
        for p in c.get("pairs", []):
            try:
                req = pick(path, p["req"], {})
                ans = pick(path, p["ans"], {"req": req}) if p["ans"] else 0
                subst = {"req": req, "ans": ans}
                syn = pick(path, p["syn"], subst) if p["syn"] else 0
                subst["syn"] = syn
                backend = pick_all(path, p["backend"], subst)
                breq = pick_all(path, p["breq"], subst)
            except LookupError as e:
                errors.append(str(e))
                continue
            if p["n_backend"] is not None and len(backend) != p["n_backend"]:
                errors.append("%s: pair %d has %d backend attempts %r, want %d" % (c["file"], req, len(backend), backend, p["n_backend"]))
            assert p["kind"] in KINDS and p["outcome"] in OUTCOMES
            if p["log"] and backend:
                want = log_port(p["log"], p)
                got = srcport(path, backend[-1])
                if want is None:
                    notes.append("%s: no kept logs for %s, pairing not cross-checked" % (c["file"], p["log"][0]))
                elif p["outcome"] == "refused" and p["log"][0].startswith(("pair-squid", "pair-passthrough-nginx")):
                    if want not in (0, "missing") and want != got:
                        errors.append("%s: log names port %r for %s, capture %d" % (c["file"], want, p["log"][1], got))
                elif want != got:
                    errors.append("%s: %s log names backend port %r for %r, last backend SYN %d has %d"
                                  % (c["file"], p["log"][0], want, p["log"][1], backend[-1], got))
            pairs.append((p, req, ans, syn, backend, breq))
        # toml
        toml += ["[[capture]]", "file = %s" % q(c["file"]), "scenario = %s" % q(c["scenario"]),
                 "link_type = %s" % q(link), "packets = %d" % packets, "healthy = false",
                 "summary = %s" % q(c["summary"])]
        for e in c["expect"]:
            assert e["signature"] in SIGS and e["severity"] in SEVERITIES
            toml += ["[[capture.expect]]", "signature = %s" % q(e["signature"]), "hop = %s" % q(e["hop"]),
                     "server = %s" % q(e["server"]), "severity = %s" % q(e["severity"])]
        for e in c.get("proposed", []):
            toml += ["[[capture.proposed]]", "signature = %s" % q(e["signature"]), "hop = %s" % q(e["hop"]),
                     "server = %s" % q(e["server"]), "severity = %s" % q(e["severity"]), "why = %s" % q(e["why"])]
        for f in c["forbid"]:
            assert f in SIGS
            toml += ["[[capture.forbid]]", "signature = %s" % q(f)]
        for ch, n, _ in checks:
            toml += ["[[capture.check]]", "filter = %s" % q(ch["filter"]), "count = %d" % n]
        for p, req, ans, syn, backend, breq in pairs:
            toml += ["[[capture.pair]]",
                     "client_syn = %d" % syn,
                     "client_request = %d" % req,
                     "client_answer = %d" % ans,
                     "client_outcome = %s" % q(p["client_outcome"]),
                     "backend = [%s]" % ", ".join(str(x) for x in backend),
                     "backend_request = [%s]" % ", ".join(str(x) for x in breq)]
            if p["reused"]:
                toml.append("reused = true")
            toml += ["server = %s" % q(p["server"]), "kind = %s" % q(p["kind"]), "outcome = %s" % q(p["outcome"]),
                     "note = %s" % q(p["note"])]
        toml.append("")
        print("%-40s %5d frames %-10s %8d bytes  %s" % (c["file"], packets, link, size,
              "; ".join("req %d -> ans %d, backend %s%s" % (r, a, b, " (reused)" if p["reused"] else "")
                        for p, r, a, _, b, _ in pairs)))
    for n in notes:
        print("note:", n)
    if total > 15 * 1024 * 1024:
        errors.append("pair captures total %d bytes (> 15 MB)" % total)
    if errors:
        sys.exit("\n".join(errors))
    with open(os.path.join(CAPS, "expected-pairing.toml"), "w") as f:
        f.write("\n".join(toml))
    print("wrote expected-pairing.toml for %d captures (%d bytes of pcap)" % (len(CAPTURES), total))


if __name__ == "__main__":
    main()
