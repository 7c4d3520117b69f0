#!/usr/bin/env python3
"""Writes captures/expected-zoo.toml and captures/lab/zoo.md for the zoo captures (issue 11).

The ground truth (scenario, verdicts with the severity an on-call SRE should be told, check
filters) is written by hand below; the numbers (frame counts, link types, check counts, key
frame numbers) are measured with tshark 4.0 on the files in captures/, the way
tests/lab_captures.rs and captures/lab/make_expected.py measure them:

    tshark -n -2 -r FILE -Y FILTER -T fields -e frame.number

A check with `want` must measure exactly that (the run fails otherwise): those are the facts
that define the scenario (e.g. "two 407s"); checks without `want` pin whatever the capture has
but must be > 0 unless `zero_ok` is set.

Same format as captures/expected.toml, plus `severity` on every [[capture.expect]] and the new
signature `proxy-denied` (a proxy's own 403/407: policy, not an outage).

Usage: captures/lab/zoo_expected.py        (after captures/lab/run.sh zoo-...)
"""
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
CAPS = os.path.dirname(HERE)
ENV = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp(prefix="ps-wsconf-"))
ENCAP = {"1": "ethernet", "25": "linux-sll", "210": "linux-sll2"}
MAX_BYTES = 2 * 1024 * 1024     # per capture
MAX_TOTAL = 15 * 1024 * 1024    # all zoo captures together

SIGS = ["syn-unanswered", "connection-refused", "connection-reset", "retransmission-storm",
        "tls-stall", "tls-alert", "gateway-error", "upstream-timeout", "time-wait-pileup",
        "direct-ok-proxied-fails", "proxy-denied"]
# healthy: nothing above info, whatever the signature (a haproxy abortive close may be an info note)
HEALTHY_FORBID = list(SIGS)
SEVERITIES = ("critical", "warning", "info")

SYN = "tcp.flags.syn==1 && tcp.flags.ack==0"
SYNACK = "tcp.flags.syn==1 && tcp.flags.ack==1"
RST = "tcp.flags.reset==1"
CH = "tls.handshake.type == 1"
OK = "http.response.code == 200"
ERR = "http.response.code >= 400"
CUT = "frame.cap_len < frame.len"
BIGLEN = "http.content_length == 2097152"
P = "10.78.2.1"   # proxy, backend side
B = "10.78.2.2"   # backend
PF = "10.78.1.1"  # proxy, client side
CL = "10.78.1.2"  # client
BE = "10.78.2.2:8080"
BTLS = "10.78.2.2:8443"
FE = "10.78.1.1:80"
SQ = "10.78.1.1:3128"
TP = "10.78.1.1:8888"

# Debian packages behind each product (versions are read with dpkg-query when this runs)
PRODUCTS = {
    "haproxy": ["haproxy"],
    "nginx-stream": ["nginx", "libnginx-mod-stream"],
    "nginx": ["nginx"],
    "squid": ["squid"],
    "tinyproxy": ["tinyproxy"],
    "apache": ["apache2"],
    "varnish": ["varnish"],
    "caddy": ["caddy"],
    "go": ["golang-1.19-go"],
}
COMMON = ["curl", "openssl", "python3", "tcpdump"]


def tshark_frames(path, flt):
    cmd = ["tshark", "-n", "-2", "-r", path]
    if flt:
        cmd += ["-Y", flt]
    cmd += ["-T", "fields", "-e", "frame.number"]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def tshark_fields(path, flt, fields):
    cmd = ["tshark", "-n", "-2", "-r", path, "-Y", flt, "-T", "fields"]
    for f in fields:
        cmd += ["-e", f]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    return [line.split("\t") for line in out.splitlines() if line.strip()]


def iostat_counts(path, filters):
    """One tshark pass: frame count per display filter (what tests/lab_captures.rs does)."""
    for f in filters:
        assert "," not in f, "io,stat filters cannot contain commas: %r" % f
    cmd = ["tshark", "-n", "-2", "-r", path, "-q", "-z", "io,stat,0," + ",".join(filters)]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    totals = [0] * len(filters)
    for line in out.splitlines():
        if "<>" not in line:
            continue
        cells = [x.strip() for x in line.strip().strip("|").split("|")]
        for i in range(len(filters)):
            totals[i] += int(cells[1 + 2 * i])
    return totals


def encap(path):
    out = subprocess.run(["tshark", "-n", "-r", path, "-c", "1", "-T", "fields", "-e", "frame.encap_type"],
                         env=ENV, capture_output=True, text=True, check=True).stdout.strip()
    return ENCAP.get(out, "encap-" + out)


def version(pkg):
    r = subprocess.run(["dpkg-query", "-W", "-f", "${Version}", pkg], capture_output=True, text=True)
    return r.stdout.strip() if r.returncode == 0 else "not installed"


def rst_after_fin(path, closer_ip, peer_ip):
    """Connections where closer_ip sent a RST after peer_ip's FIN (haproxy's abortive close after the
    backend closed), and all connections closer_ip reset: (n_after_fin, n_reset, example (fin, rst))."""
    rows = tshark_fields(path, "(%s && ip.src==%s) || (tcp.flags.fin==1 && ip.src==%s)" % (RST, closer_ip, peer_ip),
                         ["frame.number", "tcp.stream", "ip.src", "tcp.flags.reset"])
    fin = {}
    after, reset, example = 0, set(), None
    for num, stream, src, r in rows:
        if src == peer_ip and r != "1" and r != "True":
            fin.setdefault(stream, int(num))
        elif src == closer_ip:
            if stream in reset:
                continue
            reset.add(stream)
            if stream in fin:
                after += 1
                example = example or (fin[stream], int(num))
    return after, len(reset), example


def C(filt, want=None, why="", zero_ok=False):
    return {"filter": filt, "want": want, "why": why, "zero_ok": zero_ok}


def E(sig, hop, server, severity):
    return {"signature": sig, "hop": hop, "server": server, "severity": severity}


def healthy_main(name, product, summary, did, logged, checks, rst_note=None):
    return dict(file="zoo-%s-any.pcap" % name, scenario="zoo-" + name, product=product, healthy=True,
                summary=summary, did=did, logged=logged, failed="none", forbid=HEALTHY_FORBID, checks=checks,
                rst_note=rst_note)


def healthy_big(name, product, via, checks=None, rst_note=None):
    return dict(file="zoo-%s-big-any.pcap" % name, scenario="zoo-" + name, product=product, healthy=True,
                summary="%s: one keep-alive client connection with GET / and GET /big.bin (2 MiB body, 200); frames cut at 256 bytes (tcpdump -s 256)" % via,
                did="same setup as zoo-%s-any.pcap, fresh processes; curl of / and /big.bin in one invocation; tcpdump -i any -s 256 in ps-proxy" % name,
                logged="200 for both requests", failed="none", forbid=HEALTHY_FORBID,
                checks=checks or [C(BIGLEN, None, "the 2 MiB response headers (front and back legs)"),
                                  C("http.request", 4, "2 requests x 2 legs"),
                                  C(CUT, None, "frames cut by the 256-byte snaplen (the body segments)"),
                                  C(ERR, 0, "no error status", zero_ok=True)],
                rst_note=rst_note)


# ------------------------------------------------------------------ ground truth
CAPTURES = [
    # ---------------------------------------------------------------- haproxy mode http
    healthy_main("haproxy-keepalive", "haproxy",
                 "haproxy mode http, option http-keep-alive, HTTP/1.1 keep-alive backend (backend_zoo.py): a keep-alive pair and two Connection: close requests, all 200; haproxy resets one idle server connection when its client leaves",
                 "haproxy -db (zoo-haproxy-http.cfg.in, option http-keep-alive) in front of backend_zoo.py on 10.78.2.2:8080; curl / + /page.html (one connection), curl -H 'Connection: close' /page.html, curl -H 'Connection: close' /",
                 "curl: 200 200, 200, 200; backend_zoo logs 4 GETs (HTTP/1.1)",
                 [C(SYN, None, "client connections + server connections (haproxy reuses idle server connections)"),
                  C(OK, 8, "4 on each leg"),
                  C("%s && ip.src==%s" % (RST, P), None, "haproxy's abortive close of a finished server connection (RST): normal, at most info"),
                  C(ERR, 0, zero_ok=True)],
                 rst_note=(P, B)),
    healthy_big("haproxy-keepalive", "haproxy", "client->haproxy->backend_zoo.py (http-keep-alive)"),
    healthy_main("haproxy-server-close", "haproxy",
                 "haproxy mode http, option http-server-close, python3 -m http.server (HTTP/1.0) backend: every server connection ends with haproxy's RST, some right after the backend's FIN; all 200",
                 "haproxy -db (option http-server-close) in front of python3 -m http.server 8080; curl / + /page.html (one connection), two Connection: close requests",
                 "curl: 200 200, 200, 200",
                 [C(SYN, None), C(OK, 8, "4 on each leg"),
                  C("%s && ip.src==%s" % (RST, P), None, "haproxy's abortive closes (RST after a complete response, often right after the backend's FIN): normal, at most info"),
                  C("tcp.flags.fin==1 && ip.src==%s" % B, None, "the backend closes first (HTTP/1.0)"),
                  C(ERR, 0, zero_ok=True)],
                 rst_note=(P, B)),
    healthy_big("haproxy-server-close", "haproxy", "client->haproxy->python3 -m http.server (http-server-close)",
                checks=[C(BIGLEN, None, "the 2 MiB response headers"), C("http.request", 4, "2 requests x 2 legs"),
                        C(CUT, None, "frames cut by the 256-byte snaplen"),
                        C("%s && ip.src==%s" % (RST, P), None, "haproxy's abortive close after the backend's FIN", zero_ok=True),
                        C(ERR, 0, zero_ok=True)],
                rst_note=(P, B)),
    dict(file="zoo-haproxy-churn-any.pcap", scenario="zoo-haproxy-churn", product="haproxy", healthy=True,
         summary="churn: 200 short requests through haproxy (http-keep-alive), each its own client and server connection; about half of the server connections end with haproxy's RST right after the backend's FIN; all 200",
         did="haproxy -db in front of python3 -m http.server (HTTP/1.0, closes first); one curl with 200 URLs (-K) and -H 'Connection: close'",
         logged="curl: 200 x 200", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 400, "200 client + 200 server connections"), C(OK, 400, "200 on each leg"),
                 C("%s && ip.src==%s" % (RST, P), None, "haproxy's abortive closes: the false alarm of issue 11, normal"),
                 C("tcp.flags.fin==1 && ip.src==%s" % B, None, "the backend's FINs"),
                 C(ERR, 0, zero_ok=True)],
         rst_note=(P, B)),
    # ---------------------------------------------------------------- TCP/TLS passthrough
    healthy_main("haproxy-tcp", "haproxy",
                 "haproxy mode tcp: plain HTTP (:80 -> 10.78.2.2:8080) and TLS passthrough (:443 -> 10.78.2.2:8443, the backend terminates TLS with a test-CA certificate): keep-alive pair, Connection: close, two HTTPS requests on one TLS connection, one openssl s_client handshake; all 200 / verify ok",
                 "haproxy -db (zoo-haproxy-tcp.cfg.in) in front of backend_zoo.py (HTTP 8080, HTTPS 8443); curl, curl --cacert ca.crt --resolve modules.lab:443:10.78.1.1, openssl s_client -verify_return_error < /dev/null",
                 "curl: 200 200, 200, 200 200; s_client: Verify return code: 0 (ok)",
                 [C(SYN, 8, "4 client + 4 server connections (one server connection per client connection)"),
                  C(OK, 6, "3 clear-text 200s on each leg"), C(CH, 4, "2 ClientHellos (curl, s_client) on each leg"),
                  C(ERR, 0, zero_ok=True), C("tls.alert_message", 0, "no clear-text TLS alert", zero_ok=True)]),
    healthy_big("haproxy-tcp", "haproxy", "client->haproxy mode tcp->backend_zoo.py"),
    dict(file="zoo-haproxy-tcp-tls-snap256-any.pcap", scenario="zoo-haproxy-tcp", product="haproxy", healthy=True,
         summary="haproxy mode tcp TLS passthrough only (two HTTPS requests on one TLS 1.3 connection + one openssl s_client handshake), frames cut at 256 bytes (tcpdump -s 256): the server's encrypted flight is cut, the handshakes all succeeded",
         did="as zoo-haproxy-tcp-any, TLS backend only; tcpdump -i any -s 256",
         logged="curl: 200 200; s_client: Verify return code: 0 (ok)", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(CH, 4, "2 ClientHellos on each leg"), C("tls.handshake.type == 2", 4, "2 ServerHellos on each leg"),
                 C(CUT, None, "frames cut by the snaplen (the server flights among them)"),
                 C("tls.alert_message", 0, "no clear-text alert", zero_ok=True), C(RST, 0, zero_ok=True)]),
    healthy_main("nginx-stream", "nginx-stream",
                 "nginx stream {} (libnginx-mod-stream): the same plain TCP and TLS passthrough traffic as zoo-haproxy-tcp-any; the backend's TLS 1.3 session ticket arrives after nginx closed the upstream socket, so the kernel answers it with one RST: a normal teardown",
                 "nginx -c zoo-nginx-stream.conf.in (stream servers 10.78.1.1:80 -> 10.78.2.2:8080, 10.78.1.1:443 -> 10.78.2.2:8443) in front of backend_zoo.py; same clients as zoo-haproxy-tcp-any",
                 "curl: 200 200, 200, 200 200; s_client: Verify return code: 0 (ok); nginx stream log: status=200 for every session",
                 [C(SYN, 8), C(OK, 6), C(CH, 4),
                  C("%s && ip.src==%s" % (RST, P), None, "nginx's socket is closed when the backend's late NewSessionTicket arrives (s_client quit first): RST, a normal teardown", zero_ok=True),
                  C(ERR, 0, zero_ok=True)]),
    healthy_big("nginx-stream", "nginx-stream", "client->nginx stream->backend_zoo.py"),
    # ---------------------------------------------------------------- squid
    healthy_main("squid-forward", "squid",
                 "squid forward proxy on 10.78.1.1:3128: absolute-form GETs (keep-alive pair, Connection: close) and a CONNECT tunnel to modules.lab:8443 carrying two HTTPS requests; all 200",
                 "squid -N (zoo-squid.conf.in, hosts_file with modules.lab) with backend_zoo.py on 8080 and 8443; curl -x http://10.78.1.1:3128 http://10.78.2.2:8080/..., curl -x ... --cacert ca.crt https://modules.lab:8443/ + /page.html",
                 "curl: 200 200, 200, 200 200; squid access.log: TCP_MISS/200 x3, TCP_TUNNEL/200 CONNECT modules.lab:8443",
                 [C(SYN, None), C("http.request.method == \"CONNECT\"", 1, "the CONNECT"),
                  C("%s && ip.src==%s" % (OK, PF), 4, "3 GETs + the CONNECT's 200 Connection established"),
                  C(CH, 2, "the tunnelled ClientHello, seen on each leg"), C(ERR, 0, zero_ok=True)]),
    healthy_big("squid-forward", "squid", "client->squid (forward, absolute-form)->backend_zoo.py",
                checks=[C(BIGLEN, None, "the 2 MiB response headers"), C("http.request", 3, "2 client requests + squid's one server fetch seen complete (the second server request follows the cut body)"),
                        C(CUT, None), C(ERR, 0, zero_ok=True)]),
    healthy_main("squid-accel", "squid",
                 "squid accelerator (reverse proxy, http_port accel + cache_peer originserver no-digest) on 10.78.1.1:80: keep-alive pair and Connection: close, all 200",
                 "squid -N with 'http_port 10.78.1.1:80 accel defaultsite=backend.lab no-vhost' and 'cache_peer 10.78.2.2 parent 8080 0 no-query no-digest originserver'; backend_zoo.py (sends Cache-Control: no-store)",
                 "curl: 200 200, 200; squid access.log: TCP_MISS/200 FIRSTUP_PARENT/10.78.2.2 x3",
                 [C(SYN, None), C(OK, 6, "3 on each leg"), C("http.request", 6), C(ERR, 0, zero_ok=True)]),
    healthy_big("squid-accel", "squid", "client->squid accelerator->backend_zoo.py",
                checks=[C(BIGLEN, None), C("http.request", None, "client requests + squid's server fetches dissected before the cut body"),
                        C(CUT, None), C(ERR, 0, zero_ok=True)]),
    dict(file="zoo-squid-denied-client.pcap", scenario="zoo-squid-denied", product="squid", healthy=False,
         summary="client vantage: GET http://10.78.2.2:8080/ directly -> 200, the same through squid -> 403 (X-Squid-Error: ERR_ACCESS_DENIED); direct TLS to 10.78.2.2:8443 works, CONNECT 10.78.2.2:8443 through squid -> 403; curl resets the proxy connection after the refused CONNECT",
         did="ps-proxy routes (ip_forward=1) so the client reaches 10.78.2.2 directly; squid rules 'acl lab_backend dst 10.78.2.2/32' + 'http_access deny lab_backend'; tcpdump on veth-c",
         logged="curl: 200 (direct), 403 (proxied GET), 200 (direct TLS), 000 (curl: CONNECT refused, 'Received HTTP code 403 from proxy after CONNECT'); squid access.log: TCP_DENIED/403 GET http://10.78.2.2:8080/, TCP_DENIED/403 CONNECT 10.78.2.2:8443",
         failed="client->proxy (policy: squid's ACL denies the destination; the server itself is fine)",
         expect=[E("proxy-denied", "client->proxy", SQ, "warning"),
                 E("direct-ok-proxied-fails", "client->proxy", SQ, "warning")],
         forbid=["connection-reset", "connection-refused", "syn-unanswered", "gateway-error", "upstream-timeout"],
         checks=[C("http.response.code == 403 && http contains \"X-Squid-Error: ERR_ACCESS_DENIED\"", 2, "squid's two denials"),
                 C("%s && ip.src==%s" % (OK, B), 1, "the direct answer"),
                 C("http.request.method == \"CONNECT\"", 1),
                 C(CH, 1, "the direct TLS handshake"),
                 C("%s && ip.src==%s" % (RST, CL), None, "curl resets the proxy connection after the refused CONNECT: normal", zero_ok=True)]),
    dict(file="zoo-squid-auth-any.pcap", scenario="zoo-squid-auth", product="squid", healthy=False,
         summary="squid with auth_param basic (basic_ncsa_auth): a GET and a CONNECT without credentials both get 407 Proxy Authentication Required (Proxy-Authenticate: Basic realm=\"proxyscope-lab\"); squid never connects to the backend",
         did="squid rules 'auth_param basic program /usr/lib/squid/basic_ncsa_auth passwd' (user lab, openssl passwd -apr1), 'acl authed proxy_auth REQUIRED', 'http_access deny !authed'; curl -x without -U",
         logged="curl: 407, 000 (CONNECT: 'Received HTTP code 407 from proxy after CONNECT'); squid access.log: TCP_DENIED/407 GET http://10.78.2.2:8080/, TCP_DENIED/407 CONNECT modules.lab:8443",
         failed="client->proxy (policy: proxy authentication required)",
         expect=[E("proxy-denied", "client->proxy", SQ, "warning")],
         forbid=["gateway-error", "connection-refused", "connection-reset", "syn-unanswered", "upstream-timeout"],
         checks=[C("http.response.code == 407", 2), C("http.proxy_authenticate contains \"Basic\"", 2, "the scheme to name"),
                 C("ip.addr==%s" % B, 0, "no backend traffic", zero_ok=True), C(SYN, 2)]),
    dict(file="zoo-squid-refused-any.pcap", scenario="zoo-squid-refused", product="squid", healthy=False,
         summary="squid forward proxy, nothing listens on 10.78.2.2:8080: each GET -> SYN answered by RST on the backend leg, squid answers 503 Service Unavailable (ERR_CONNECT_FAIL)",
         did="squid forward proxy, no backend process; two curl -x GETs",
         logged="curl: 503, 503; squid access.log: TCP_MISS/503 ... HIER_DIRECT/10.78.2.2 x2",
         failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, "critical"),
                 E("gateway-error", "client->proxy", SQ, "critical")],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout", "proxy-denied"],
         checks=[C("http.response.code == 503", 2), C("%s && ip.src==%s" % (RST, B), 2, "the refusals"),
                 C("%s && ip.dst==%s" % (SYN, B), 2), C("http contains \"ERR_CONNECT_FAIL\"", 2)]),
    # ---------------------------------------------------------------- tinyproxy
    healthy_main("tinyproxy-forward", "tinyproxy",
                 "tinyproxy forward proxy on 10.78.1.1:8888: absolute-form GETs (tinyproxy closes the client connection after each request, so curl's second URL opens a new one), Connection: close, a CONNECT tunnel with two HTTPS requests; all 200",
                 "tinyproxy -d (zoo-tinyproxy.conf.in, Allow 10.78.1.0/24, ConnectPort 8443) with backend_zoo.py on 8080 and 8443; curl -x http://10.78.1.1:8888 ...",
                 "curl: 200 200, 200, 200 200; tinyproxy.log: 'Established connection to host \"10.78.2.2\"' per request",
                 [C(SYN, None), C("http.request.method == \"CONNECT\"", 1),
                  C("%s && ip.src==%s" % (OK, PF), 4, "3 GETs + the CONNECT's 200 Connection established"),
                  C(CH, 2), C(ERR, 0, zero_ok=True)]),
    healthy_big("tinyproxy-forward", "tinyproxy", "client->tinyproxy->backend_zoo.py",
                checks=[C(BIGLEN, None), C("http.request", 4), C(CUT, None), C(ERR, 0, zero_ok=True)]),
    dict(file="zoo-tinyproxy-denied-any.pcap", scenario="zoo-tinyproxy-denied", product="tinyproxy", healthy=False,
         summary="tinyproxy with ConnectPort 443 only: a plain GET works (200), two CONNECTs to 10.78.2.2:8443 get 403 Access violation; curl resets after each refusal",
         did="tinyproxy -d with ConnectPort 443; curl -x http://10.78.1.1:8888 http://10.78.2.2:8080/, then twice curl -x ... https://10.78.2.2:8443/",
         logged="curl: 200, 000, 000; tinyproxy.log: 'Refused CONNECT method on port 8443' x2",
         failed="client->proxy (policy: CONNECT port not allowed)",
         expect=[E("proxy-denied", "client->proxy", TP, "warning")],
         forbid=["connection-reset", "gateway-error", "connection-refused", "syn-unanswered", "upstream-timeout"],
         checks=[C("frame contains \"HTTP/1.1 403 Access violation\"", 2, "tinyproxy's two 403 header segments (curl may close before the body arrives, so tshark does not always complete the HTTP response)"),
                 C("http.request.method == \"CONNECT\"", 2), C("%s && ip.src==%s" % (OK, B), 1, "the allowed GET"),
                 C("%s && ip.src==%s" % (RST, CL), None, "curl resets after the refused CONNECT: normal", zero_ok=True)]),
    # ---------------------------------------------------------------- Apache httpd
    healthy_main("apache-healthy", "apache",
                 "Apache httpd mod_proxy: reverse proxy (ProxyPass / http://10.78.2.2:8080/) with a keep-alive pair and Connection: close, and the forward proxy on :3128 (ProxyRequests On) with an absolute-form GET and a mod_proxy_connect CONNECT to 10.78.2.2:8443; all 200",
                 "apache2 -DFOREGROUND -f zoo-apache.conf.in (mpm_event, proxy, proxy_http, proxy_connect) with backend_zoo.py on 8080 and 8443",
                 "curl: 200 200, 200, 200, 200; access.log: 200 for every request",
                 [C(SYN, None), C("%s && ip.src==%s" % (OK, PF), 5, "3 reverse + 1 forward GET + the CONNECT's 200"),
                  C("http.request.method == \"CONNECT\"", 1), C(CH, 2, "the tunnelled ClientHello on each leg"),
                  C(ERR, 0, zero_ok=True)]),
    healthy_big("apache-healthy", "apache", "client->Apache ProxyPass->backend_zoo.py",
                checks=[C(BIGLEN, None), C("http.request", 4), C(CUT, None), C(ERR, 0, zero_ok=True)]),
    dict(file="zoo-apache-refused-any.pcap", scenario="zoo-apache-refused", product="apache", healthy=False,
         summary="Apache ProxyPass to a closed port: each request -> SYN answered by RST, Apache answers 503 Service Unavailable",
         did="apache2 as in zoo-apache-healthy-any, no backend process; two curl GETs",
         logged="curl: 503, 503; error.log: '(111)Connection refused: AH00957: http: attempt to connect to 10.78.2.2:8080 (10.78.2.2:8080) failed', 'AH01114: HTTP: failed to make connection to backend: 10.78.2.2'",
         failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout", "proxy-denied"],
         checks=[C("http.response.code == 503", 2), C("%s && ip.src==%s" % (RST, B), 2),
                 C("%s && ip.dst==%s" % (SYN, B), 2), C("http.server contains \"Apache\"", 2)]),
    # ---------------------------------------------------------------- Varnish
    healthy_main("varnish-healthy", "varnish",
                 "Varnish (vcl_recv return(pass), every request fetched from the backend): keep-alive pair and Connection: close, all 200",
                 "varnishd -F -n T/varnish -a 10.78.1.1:80 -T none -f zoo-varnish.vcl.in -s malloc,32m in front of backend_zoo.py",
                 "curl: 200 200, 200",
                 [C(SYN, None), C(OK, 6, "3 on each leg"), C("http.request", 6), C(ERR, 0, zero_ok=True)]),
    healthy_big("varnish-healthy", "varnish", "client->Varnish->backend_zoo.py"),
    dict(file="zoo-varnish-down-any.pcap", scenario="zoo-varnish-down", product="varnish", healthy=False,
         summary="Varnish, backend down: the first request's backend connect is refused (RST), Varnish answers 503 Backend fetch failed; the second request gets 503 at once without a connect attempt (backend_local_error_holddown)",
         did="varnishd as in zoo-varnish-healthy-any, no backend process; two curl GETs",
         logged="curl: 503, 503 (body '<title>503 Backend fetch failed</title>')",
         failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout", "proxy-denied"],
         checks=[C("http.response.code == 503", 2), C("%s && ip.src==%s" % (RST, B), 1),
                 C("%s && ip.dst==%s" % (SYN, B), 1, "one connect for two requests"),
                 C("http contains \"Backend fetch failed\"", 2)]),
    dict(file="zoo-varnish-slow-any.pcap", scenario="zoo-varnish-slow", product="varnish", healthy=False,
         summary="Varnish, slow backend (answers after 5 s): the backend accepts and reads the request, Varnish gives up after first_byte_timeout 3 s (FIN) and answers 503 Backend fetch failed",
         did="backend_zoo.py --delay 5; varnishd with .first_byte_timeout = 3s; one curl GET",
         logged="curl: 503",
         failed="proxy->backend (no response within 3 s)",
         expect=[E("upstream-timeout", "proxy->backend", BE, "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["connection-refused", "syn-unanswered", "connection-reset", "proxy-denied"],
         checks=[C("http.response.code == 503 && frame.time_relative > 2.9", 1),
                 C("http.request && ip.dst==%s" % B, 1),
                 C("http.response && ip.src==%s" % B, 0, zero_ok=True),
                 C("tcp.flags.fin==1 && ip.src==%s && frame.time_relative > 2.9" % P, 1, "Varnish gives up")]),
    # ---------------------------------------------------------------- Caddy
    healthy_main("caddy-healthy", "caddy",
                 "Caddy reverse_proxy (HTTP/1.1 keep-alive upstream pool): keep-alive pair and Connection: close, all 200",
                 "caddy run --adapter caddyfile (zoo-caddy.Caddyfile.in: admin off, auto_https off, reverse_proxy 10.78.2.2:8080) in front of backend_zoo.py",
                 "curl: 200 200, 200; caddy-access.log: status 200 x3",
                 [C(SYN, None), C(OK, 6, "3 on each leg"), C("http.request", 6), C(ERR, 0, zero_ok=True)]),
    healthy_big("caddy-healthy", "caddy", "client->Caddy->backend_zoo.py"),
    dict(file="zoo-caddy-refused-any.pcap", scenario="zoo-caddy-refused", product="caddy", healthy=False,
         summary="Caddy reverse_proxy to a closed port: each request -> SYN answered by RST, Caddy answers 502 Bad Gateway (empty body)",
         did="caddy as in zoo-caddy-healthy-any, no backend process; two curl GETs",
         logged="curl: 502, 502; caddy.log: 'upstream roundtrip' error 'dial tcp 10.78.2.2:8080: connect: connection refused'; access log status 502",
         failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, "critical"),
                 E("gateway-error", "client->proxy", FE, "critical")],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout", "proxy-denied"],
         checks=[C("http.response.code == 502", 2), C("%s && ip.src==%s" % (RST, B), 2),
                 C("%s && ip.dst==%s" % (SYN, B), 2), C("http.server == \"Caddy\"", 2)]),
    # ---------------------------------------------------------------- the Go command
    dict(file="zoo-go-nginx-any.pcap", scenario="zoo-go-nginx", product=("go", "nginx"), healthy=True,
         summary="go mod download with GOPROXY=https://proxy.lab: nginx (TLS, test CA) reverse-proxies to the lab module server (HTTPS); .mod, .info and .zip of lab.example/hello v1.0.0 fetched, exit 0",
         did="go 1.19 in ps-client (fresh GOPATH/GOCACHE/GOMODCACHE, GOSUMDB=off, GOFLAGS=-mod=mod, SSL_CERT_FILE=test CA, /etc/hosts bind-mounted in a private mount ns: proxy.lab=10.78.1.1); nginx zoo-nginx-goproxy.conf.in (proxy_pass https://10.78.2.2:8443); backend_zoo.py --tls serving the go command's own download cache (made from a file:// GOPROXY)",
         logged="go mod download -x: '# get https://proxy.lab/lab.example/hello/@v/v1.0.0.mod: 200 OK', '.info: 200 OK', '.zip: 200 OK'; exit status 0",
         failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 4, "1 go connection to nginx (3 requests on it) + 3 nginx upstream connections (one per request)"),
                 C(CH, 4), C(RST, 0, zero_ok=True), C("tls.alert_message", 0, zero_ok=True)]),
    dict(file="zoo-go-squid-any.pcap", scenario="zoo-go-squid", product=("go", "squid"), healthy=True,
         summary="go mod download with HTTPS_PROXY=http://10.78.1.1:3128 (squid CONNECT modules.lab:8443) and GOPROXY=https://modules.lab:8443: one tunnel, three 200s inside TLS, exit 0",
         did="as zoo-go-nginx-any but GOPROXY=https://modules.lab:8443 HTTPS_PROXY=http://10.78.1.1:3128; squid resolves modules.lab from its hosts_file",
         logged="go mod download -x: '# get https://modules.lab:8443/lab.example/hello/@v/v1.0.0.mod: 200 OK', '.info: 200 OK', '.zip: 200 OK'; exit status 0; squid access.log: TCP_TUNNEL/200 CONNECT modules.lab:8443",
         failed="none", forbid=HEALTHY_FORBID,
         checks=[C("http.request.method == \"CONNECT\"", 1), C("%s && ip.src==%s" % (OK, PF), 1, "200 Connection established"),
                 C(CH, 2, "the tunnelled ClientHello on each leg"), C(RST, 0, zero_ok=True)]),
    dict(file="zoo-go-squid-407-any.pcap", scenario="zoo-go-squid-407", product=("go", "squid"), healthy=False,
         summary="go mod download through squid requiring proxy auth: CONNECT modules.lab:8443 -> 407 Proxy Authentication Required (Basic); go gives up, exit 1",
         did="as zoo-go-squid-any, squid with auth_param basic + http_access deny !authed; no credentials in HTTPS_PROXY",
         logged="go: lab.example/hello@v1.0.0: Get \"https://modules.lab:8443/lab.example/hello/@v/v1.0.0.mod\": Proxy Authentication Required  (exit status 1); squid access.log: TCP_DENIED/407 CONNECT modules.lab:8443",
         failed="client->proxy (policy: proxy authentication required)",
         expect=[E("proxy-denied", "client->proxy", SQ, "warning")],
         forbid=["gateway-error", "connection-refused", "connection-reset", "syn-unanswered", "tls-alert", "tls-stall"],
         checks=[C("http.response.code == 407", 1), C("http.proxy_authenticate contains \"Basic\"", 1),
                 C("http.request.method == \"CONNECT\"", 1), C("ip.addr==%s" % B, 0, "squid never connects", zero_ok=True)]),
    dict(file="zoo-go-nginx-down-any.pcap", scenario="zoo-go-nginx-down", product=("go", "nginx"), healthy=False,
         summary="go mod download via nginx (GOPROXY=https://proxy.lab) with the module server down: nginx's upstream connect is refused (RST) and nginx answers 502 inside the client's TLS connection (not visible in clear); go exits 1",
         did="as zoo-go-nginx-any without the module server",
         logged="go: lab.example/hello@v1.0.0: reading https://proxy.lab/lab.example/hello/@v/v1.0.0.mod: 502 Bad Gateway  (exit status 1)",
         failed="proxy->backend (module server port closed; the 502 to go is encrypted)",
         expect=[E("connection-refused", "proxy->backend", BTLS, "critical")],
         forbid=["syn-unanswered", "connection-reset", "tls-alert", "tls-stall", "proxy-denied"],
         checks=[C("%s && ip.src==%s" % (RST, B), 1), C("%s && ip.dst==%s" % (SYN, B), 1),
                 C(CH, 1, "the client's handshake with nginx completes"), C("http.response", 0, "all HTTP is inside TLS", zero_ok=True)]),
]


HEAD = """# The zoo: real proxies and clients (issue 11)

The zoo captures (`captures/zoo-*.pcap`) extend the lab beyond nginx and haproxy `mode http`:
haproxy `http-keep-alive` / `http-server-close` / `mode tcp`, nginx `stream {}`, squid (forward with
CONNECT, accelerator, ACL 403, auth 407), tinyproxy, Apache httpd `mod_proxy` + `mod_proxy_connect`,
Varnish, Caddy, and the Go command (`go mod download`) through nginx and squid. Each proxy has a
healthy baseline and, where cheap, the failures it shows. Ground truth: `captures/expected-zoo.toml`
(with the `severity` an on-call SRE should be told on every expected verdict); regenerate with

```
sudo captures/lab/run.sh zoo-haproxy zoo-haproxy-churn zoo-haproxy-tcp zoo-nginx-stream zoo-squid \\
     zoo-squid-denied zoo-squid-auth zoo-squid-refused zoo-tinyproxy zoo-apache zoo-varnish zoo-caddy zoo-go
captures/lab/zoo_expected.py        # re-measures expected-zoo.toml and this file
```

Scenarios live in `captures/lab/scenarios-zoo.sh` (sourced by run.sh), configs in
`captures/lab/zoo-*.in`, the static HTTP(S) backend in `captures/lab/backend_zoo.py`. The proxy,
backend and client logs of a run are kept in `/tmp/proxyscope-zoo-logs/<scenario>/` (not committed).

Recorded with (dpkg -l): @VERSIONS@.

## Conventions

- **Vantage.** `-any` = `tcpdump -i any` in ps-proxy (Linux cooked v2, both legs in one file);
  `-client` = tcpdump on the client's veth-c. Hops: `client->proxy` (server = the proxy's
  listener: 10.78.1.1:80 reverse proxies, :3128 squid and Apache forward, :8888 tinyproxy,
  :443 passthrough) and `proxy->backend` (10.78.2.2:8080 HTTP, 10.78.2.2:8443 HTTPS).
- **Two captures per healthy baseline.** `zoo-X-any` has full frames (keep-alive pair, a
  `Connection: close` request, TLS where the product passes it). `zoo-X-big-any` has one keep-alive
  connection with `GET /` and `GET /big.bin` (2 MiB) and is cut at 256 bytes per frame
  (`tcpdump -s 256`) to stay small; each of the two runs with fresh processes, so no pooled
  connection crosses from one file into the other. tshark cannot reassemble the cut body, so
  responses after it are not counted as `http.response`.
- **Severity** (`expected-zoo.toml`): a backend that refuses or times out behind the proxy is
  `critical` (`connection-refused` / `upstream-timeout` on proxy->backend, and the proxy's 5xx as
  `gateway-error` on client->proxy); a proxy's own policy answer (403 ACL, 407 authentication,
  CONNECT port refused) is `proxy-denied`, `warning`, on client->proxy with the proxy's listener as
  server; `direct-ok-proxied-fails` for "direct 200, proxied 403" is a `warning`.
- **Healthy** (`healthy = true`): no verdict above info. Resets after a complete exchange are
  normal closes here: haproxy's abortive close of finished server connections (RST, often right
  after the backend's FIN), curl's RST after a refused CONNECT, and the kernel's RST when a TLS 1.3
  session ticket arrives at a socket nginx `stream` already closed.
- **Not in the zoo.** envoy and traefik are not packaged in Debian 12 (`apt-cache policy`: no
  candidate). Caddy is (2.6.2-5, installed for the zoo). nginx `stream` needs the
  `libnginx-mod-stream` package (installed for the zoo).
- **The Go command.** The module `lab.example/hello v1.0.0` is zipped by hand (module@version/
  layout), then fetched by `go mod download` from a `file://` GOPROXY in the root namespace (no
  network); the go command's own download cache (`cache/download/...`: list, .info, .mod, .zip,
  .ziphash) is what `backend_zoo.py --tls` serves as the module server on 10.78.2.2:8443. go runs in
  ps-client with `env -i`, fresh GOPATH/GOCACHE/GOMODCACHE, `GOSUMDB=off GONOSUMDB=* GONOSUMCHECK=1
  GOFLAGS=-mod=mod GOTOOLCHAIN=local`, `SSL_CERT_FILE` = the lab's test CA, and `/etc/hosts`
  bind-mounted in a private mount namespace (proxy.lab = 10.78.1.1). GOPROXY only ever names lab
  addresses. go's own error text is quoted verbatim under **Logged**.
"""


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    files = sorted(f for f in os.listdir(CAPS) if f.startswith("zoo-") and f.endswith((".pcap", ".pcapng")))
    described = [c["file"] for c in CAPTURES]
    missing = set(files) - set(described)
    absent = set(described) - set(files)
    if missing or absent:
        sys.exit("zoo captures without entry: %s; entries without file: %s" % (sorted(missing), sorted(absent)))
    versions = {p: version(p) for ps in PRODUCTS.values() for p in ps}
    versions.update({p: version(p) for p in COMMON})
    toml = ["# Ground truth for the zoo captures (issue 11): real proxies and clients beyond nginx/haproxy",
            "# mode http. Generated by captures/lab/zoo_expected.py from tshark 4.0 measurements; notes in",
            "# captures/lab/zoo.md. Same format as expected.toml, plus `severity` on every expected verdict",
            "# (what an on-call SRE should be told) and the signature `proxy-denied` (a proxy's own 403/407).",
            "# healthy = true: no verdict above info at all (an abortive close may be an info note).",
            "# Counts = frames matching the display filter in tshark -n -2 (default prefs), i.e. -Y FILTER.",
            ""]
    md = []
    errors = []
    total = 0
    for c in CAPTURES:
        path = os.path.join(CAPS, c["file"])
        size = os.path.getsize(path)
        total += size
        if size > MAX_BYTES:
            errors.append("%s is %d bytes" % (c["file"], size))
        packets = len(tshark_frames(path, None))
        link = encap(path)
        checks = []
        for ch in c["checks"]:
            frames = tshark_frames(path, ch["filter"])
            n = len(frames)
            if ch["want"] is not None and n != ch["want"]:
                errors.append("%s: %r gives %d, want %d" % (c["file"], ch["filter"], n, ch["want"]))
            if n == 0 and not ch["zero_ok"]:
                errors.append("%s: %r matches nothing" % (c["file"], ch["filter"]))
            checks.append((ch, n, frames))
        num = {"ethernet": "1", "linux-sll": "25", "linux-sll2": "210"}.get(link, "?")
        io = iostat_counts(path, ["frame", "frame.encap_type == " + num] + [ch["filter"] for ch, _, _ in checks])
        if io != [packets, packets] + [n for _, n, _ in checks]:
            errors.append("%s: io,stat %r disagrees with -Y counts %r" % (c["file"], io, [packets, packets] + [n for _, n, _ in checks]))
        for e in c.get("expect", []):
            assert e["signature"] in SIGS and e["severity"] in SEVERITIES, e
        for f in c.get("forbid", []):
            assert f in SIGS, f
        assert c["healthy"] == (not c.get("expect")), c["file"]
        # toml
        toml.append("[[capture]]")
        toml.append("file = %s" % q(c["file"]))
        toml.append("scenario = %s" % q(c["scenario"]))
        toml.append("link_type = %s" % q(link))
        toml.append("packets = %d" % packets)
        toml.append("healthy = %s" % ("true" if c["healthy"] else "false"))
        toml.append("summary = %s" % q(c["summary"]))
        for e in c.get("expect", []):
            toml += ["[[capture.expect]]", "signature = %s" % q(e["signature"]), "hop = %s" % q(e["hop"]),
                     "server = %s" % q(e["server"]), "severity = %s" % q(e["severity"])]
        for f in c.get("forbid", []):
            toml += ["[[capture.forbid]]", "signature = %s" % q(f)]
        for ch, n, _ in checks:
            toml += ["[[capture.check]]", "filter = %s" % q(ch["filter"]), "count = %d" % n]
        toml.append("")
        # zoo.md entry
        keys = c["product"] if isinstance(c["product"], tuple) else (c["product"],)
        prod = ", ".join("%s %s" % (p, versions[p]) for k in keys for p in PRODUCTS[k])
        md.append("### `%s`" % c["file"])
        md.append("")
        md.append("- **What:** %s." % c["summary"])
        md.append("- **Software:** %s." % prod)
        md.append("- **How:** %s." % c["did"])
        md.append("- **Logged:** %s." % c["logged"])
        md.append("- **Failed hop:** %s." % c["failed"])
        md.append("- **File:** %d frames, %s, %d bytes." % (packets, link, size))
        md.append("- **Key packets** (tshark 4.0 display filter -> frames):")
        for ch, n, frames in checks:
            shown = ", ".join(str(x) for x in frames[:8]) + (", ..." if len(frames) > 8 else "")
            why = " — %s" % ch["why"] if ch["why"] else ""
            md.append("  - `%s`: %d%s%s" % (ch["filter"], n, (" (frames %s)" % shown) if n else "", why))
        if c.get("rst_note"):
            closer, peer = c["rst_note"]
            after, nreset, ex = rst_after_fin(path, closer, peer)
            line = "- **Abortive closes:** %s reset %d connection(s) to %s after complete responses" % (closer, nreset, peer)
            if after:
                line += "; %d of them right after %s's FIN (e.g. FIN frame %d, RST frame %d)" % (after, peer, ex[0], ex[1])
            md.append(line + ". Normal: at most `info`, never a warning, never on the path's ✗.")
        if c.get("expect"):
            md.append("- **Must report:** %s." % ", ".join(
                "`%s` **%s** on %s (server %s)" % (e["signature"], e["severity"], e["hop"], e["server"]) for e in c["expect"]))
        else:
            md.append("- **Must report:** nothing above info (healthy).")
        if c.get("forbid") and not c["healthy"]:
            md.append("- **Must not report** (above info): %s." % ", ".join("`%s`" % f for f in c["forbid"]))
        md.append("")
    if total > MAX_TOTAL:
        errors.append("zoo captures total %d bytes" % total)
    if errors:
        sys.exit("\n".join(errors))
    with open(os.path.join(CAPS, "expected-zoo.toml"), "w") as f:
        f.write("\n".join(toml))
    head = HEAD
    vers = ", ".join("%s %s" % (p, v) for p, v in sorted(versions.items()))
    with open(os.path.join(HERE, "zoo.md"), "w") as f:
        f.write(head.replace("@VERSIONS@", vers).rstrip("\n") + "\n\n## The zoo captures\n\n" +
                "Generated by `captures/lab/zoo_expected.py` (the same facts as `captures/expected-zoo.toml`). "
                "Frame numbers are 1-based as in Wireshark. %d captures, %d bytes in all.\n\n" % (len(CAPTURES), total) +
                "\n".join(md))
    print("wrote expected-zoo.toml and lab/zoo.md for %d captures (%d bytes)" % (len(CAPTURES), total))


if __name__ == "__main__":
    main()
