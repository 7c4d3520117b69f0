#!/usr/bin/env python3
"""Writes captures/expected.toml and the per-capture part of captures/README.md.

The ground truth (scenario, verdicts, check filters) is written by hand below; the numbers
(frame counts, link types, check counts, key frame numbers) are measured with tshark 4.0 on the
committed files, exactly the way tests/lab_captures.rs measures them:

    tshark -n -2 -r FILE [-d SPEC ...] -Y FILTER -T fields -e frame.number

A check with `want` must measure exactly that (the run fails otherwise): those are the facts
that define the scenario (e.g. "two 502s"); checks without `want` pin whatever the capture has
but must be > 0 unless `zero_ok` is set.

Usage: captures/lab/make_expected.py        (after captures/lab/run.sh)
"""
import os
import subprocess
import sys
import tempfile
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
CAPS = os.path.dirname(HERE)
ENV = dict(os.environ, WIRESHARK_CONFIG_DIR=tempfile.mkdtemp(prefix="ps-wsconf-"))
ENCAP = {"1": "ethernet", "25": "linux-sll", "210": "linux-sll2"}

SIGS = ["syn-unanswered", "connection-refused", "connection-reset", "retransmission-storm",
        "tls-stall", "tls-alert", "gateway-error", "upstream-timeout", "time-wait-pileup",
        "direct-ok-proxied-fails"]
HEALTHY_FORBID = ["syn-unanswered", "connection-refused", "connection-reset",
                  "retransmission-storm", "gateway-error", "upstream-timeout"]

SYN = "tcp.flags.syn==1 && tcp.flags.ack==0"
SYNACK = "tcp.flags.syn==1 && tcp.flags.ack==1"
RST = "tcp.flags.reset==1"
CH = "tls.handshake.type == 1"
SH = "tls.handshake.type == 2"
P = "10.78.2.1"   # proxy, backend side
B = "10.78.2.2"   # backend
PF = "10.78.1.1"  # proxy, client side
CL = "10.78.1.2"  # client
BE = "10.78.2.2:8080"
FE = "10.78.1.1:80"


def tshark_frames(path, flt, decode_as=()):
    cmd = ["tshark", "-n", "-2", "-r", path]
    for d in decode_as:
        cmd += ["-d", d]
    if flt:
        cmd += ["-Y", flt]
    cmd += ["-T", "fields", "-e", "frame.number"]
    out = subprocess.run(cmd, env=ENV, capture_output=True, text=True, check=True).stdout
    return [int(x) for x in out.split()]


def iostat_counts(path, filters, decode_as=()):
    """One tshark pass: frame count per display filter (what tests/lab_captures.rs does)."""
    for f in filters:
        assert "," not in f, "io,stat filters cannot contain commas: %r" % f
    cmd = ["tshark", "-n", "-2", "-r", path, "-q"]
    for d in decode_as:
        cmd += ["-d", d]
    cmd += ["-z", "io,stat,0," + ",".join(filters)]
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


def most_resent_segment(path, src, sport):
    out = subprocess.run(["tshark", "-n", "-r", path, "-Y", "ip.src==%s && tcp.srcport==%d && tcp.len>0" % (src, sport),
                          "-T", "fields", "-e", "tcp.seq_raw"], env=ENV, capture_output=True, text=True,
                         check=True).stdout.split()
    counts = {}
    for s in out:
        counts[s] = counts.get(s, 0) + 1
    seq, n = max(counts.items(), key=lambda kv: (kv[1], -int(kv[0])))
    return int(seq), n


def C(filt, want=None, why="", zero_ok=False):
    return {"filter": filt, "want": want, "why": why, "zero_ok": zero_ok}


SEVERITIES = ["info", "warning", "critical"]


def E(sig, hop, server, severity):
    """An expected verdict. `severity` is the truth for an on-call SRE, decided from what the
    capture shows (not copied from proxyscope's output):
    - critical: requests fail. A client-facing 502/503/504, and the backend-leg cause behind it
      (refused, unanswered SYNs, no response, stalled or failed TLS handshake, a reset with a
      request outstanding or a response cut mid-body): the proxy has nowhere else to send them.
    - warning: degraded, nothing failed yet (a lossy link that still delivers, 4-tuples recycled
      out of TIME_WAIT).
    - info: normal behaviour worth knowing (an RST after a complete response)."""
    assert severity in SEVERITIES, severity
    return {"signature": sig, "hop": hop, "server": server, "severity": severity}


CRIT = "critical"
WARN = "warning"


# ------------------------------------------------------------------ ground truth
CAPTURES = [
    # 1 healthy
    dict(file="healthy-nginx-frontleg.pcap", scenario="healthy", healthy=True,
         summary="client->nginx: 2 HTTP requests on one keep-alive connection, 1 with Connection: close, 2 HTTPS requests on one TLS connection; all 200",
         did="curl http://10.78.1.1/ + /page.html (keep-alive), curl -H 'Connection: close', curl -k https://proxy.lab/ + /page.html (--resolve to 10.78.1.1:443); backend python3 -m http.server",
         failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 3, "three client connections (keep-alive HTTP, close HTTP, HTTPS)"),
                 C("http.response.code == 200", 3, "the three clear-text 200s"),
                 C(CH, 1, "ClientHello of the HTTPS connection"),
                 C(RST, 0, "no resets", zero_ok=True),
                 C("tcp.analysis.retransmission", 0, "no retransmissions", zero_ok=True)]),
    dict(file="healthy-nginx-backleg.pcap", scenario="healthy", healthy=True,
         summary="nginx->backend: 5 short HTTP/1.0 upstream connections, all 200",
         did="same traffic as healthy-nginx-frontleg, backend leg", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 5, "one upstream connection per request"),
                 C("http.request", 5), C("http.response.code == 200", 5),
                 C(RST, 0, zero_ok=True)]),
    dict(file="healthy-nginx-any.pcap", scenario="healthy", healthy=True,
         summary="both legs (tcpdump -i any, SLL2) of the healthy nginx traffic",
         did="same traffic as healthy-nginx-frontleg, tcpdump -i any in ps-proxy", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 8, "3 client + 5 upstream connections"),
                 C("http.response.code == 200", 8, "3 front + 5 back"),
                 C(CH, 1), C(RST, 0, zero_ok=True)]),
    dict(file="healthy-haproxy-frontleg.pcap", scenario="healthy", healthy=True,
         summary="client->haproxy: keep-alive pair and one Connection: close request, all 200",
         did="curl http://10.78.1.1/ + /page.html, curl -H 'Connection: close' through haproxy (backend python3 -m http.server)",
         failed="none", forbid=HEALTHY_FORBID,
         checks=[C("http.request", 3), C("http.response.code == 200", 3), C(RST, 0, zero_ok=True)]),
    dict(file="healthy-haproxy-backleg.pcap", scenario="healthy", healthy=True,
         summary="haproxy->backend for the same three requests, all 200",
         did="same traffic as healthy-haproxy-frontleg, backend leg", failed="none", forbid=HEALTHY_FORBID,
         checks=[C("http.request", 3), C("http.response.code == 200", 3),
                 C("%s && ip.src==%s" % (RST, P), 3, "haproxy closes each finished server connection with RST,ACK (abortive close): normal, not an outage")]),
    # 2 refused
    dict(file="refused-nginx-backleg.pcap", scenario="refused", healthy=False,
         summary="nothing listens on 10.78.2.2:8080: both nginx SYNs answered by RST,ACK",
         did="no backend process; two client requests through nginx", failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, CRIT)],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout", "retransmission-storm"],
         checks=[C(SYN, 2, "nginx's connection attempts"),
                 C("%s && ip.src==%s" % (RST, B), 2, "the refusals"),
                 C(SYNACK, 0, zero_ok=True)]),
    dict(file="refused-nginx-frontleg.pcap", scenario="refused", healthy=False,
         summary="client side of the refused backend: nginx answers 502 Bad Gateway twice",
         did="as refused-nginx-backleg, client leg", failed="proxy->backend (seen here as 502 from the proxy)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 502", 2, "nginx's 502s"), C("http.request", 2), C(RST, 0, zero_ok=True)]),
    dict(file="refused-nginx-any.pcap", scenario="refused", healthy=False,
         summary="both legs (SLL2): SYN->RST on the backend leg, 502 on the client leg",
         did="as refused-nginx-backleg, tcpdump -i any in ps-proxy", failed="proxy->backend",
         expect=[E("connection-refused", "proxy->backend", BE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["syn-unanswered", "connection-reset"],
         checks=[C("%s && ip.dst==%s" % (SYN, B), 2), C("%s && ip.src==%s" % (RST, B), 2),
                 C("http.response.code == 502", 2)]),
    dict(file="refused-haproxy-backleg.pcap", scenario="refused", healthy=False,
         summary="haproxy (retries 1) tries the closed backend port twice, RST both times",
         did="no backend process; one client request through haproxy", failed="proxy->backend (port closed)",
         expect=[E("connection-refused", "proxy->backend", BE, CRIT)],
         forbid=["syn-unanswered", "connection-reset", "upstream-timeout"],
         checks=[C(SYN, 2, "first attempt + 1 retry"), C("%s && ip.src==%s" % (RST, B), 2)]),
    dict(file="refused-haproxy-frontleg.pcap", scenario="refused", healthy=False,
         summary="haproxy answers 503 Service Unavailable after the refused attempts",
         did="as refused-haproxy-backleg, client leg", failed="proxy->backend (seen here as 503)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 503", 1), C("http.request", 1)]),
    # 3 blackhole
    dict(file="blackhole-nginx-backleg.pcap", scenario="blackhole", healthy=False,
         summary="backend drops SYNs (nft): each nginx connect = SYN + 1 retransmit, no answer, gives up after 2 s",
         did="nft in ps-backend drops TCP SYNs to 8080; two client requests; proxy_connect_timeout 2s",
         failed="proxy->backend (SYNs black-holed)",
         expect=[E("syn-unanswered", "proxy->backend", BE, CRIT)],
         forbid=["connection-refused", "connection-reset", "retransmission-storm"],
         checks=[C(SYN, 4, "2 attempts x (SYN + 1 retransmission)"),
                 C("tcp.analysis.retransmission", 2, "the SYN retransmissions after 1 s"),
                 C(SYNACK, 0, zero_ok=True), C(RST, 0, zero_ok=True)]),
    dict(file="blackhole-nginx-frontleg.pcap", scenario="blackhole", healthy=False,
         summary="client side: nginx answers 504 Gateway Time-out after 2 s, twice",
         did="as blackhole-nginx-backleg, client leg", failed="proxy->backend (seen here as 504)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 504", 2), C("http.request", 2)]),
    dict(file="blackhole-nginx-any.pcap", scenario="blackhole", healthy=False,
         summary="both legs (SLL2): unanswered SYNs to the backend and the 504s",
         did="as blackhole-nginx-backleg, tcpdump -i any", failed="proxy->backend",
         expect=[E("syn-unanswered", "proxy->backend", BE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "connection-reset"],
         checks=[C("%s && ip.dst==%s" % (SYN, B), 4), C("%s && ip.src==%s" % (SYNACK, B), 0, zero_ok=True),
                 C("http.response.code == 504", 2)]),
    # 4 hang
    dict(file="hang-nginx-backleg.pcap", scenario="hang", healthy=False,
         summary="backend reads the request and never answers; nginx closes (FIN) after proxy_read_timeout 3 s",
         did="captures/lab/backend.py --mode hang; one client request", failed="proxy->backend (no response)",
         expect=[E("upstream-timeout", "proxy->backend", BE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset", "retransmission-storm"],
         checks=[C("http.request", 1), C("http.response", 0, zero_ok=True),
                 C("tcp.flags.fin==1 && ip.src==%s && frame.time_relative > 2.9" % P, 1, "nginx gives up after 3 s")]),
    dict(file="hang-nginx-frontleg.pcap", scenario="hang", healthy=False,
         summary="client side: 504 Gateway Time-out after 3 s",
         did="as hang-nginx-backleg, client leg", failed="proxy->backend (seen here as 504)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 504", 1), C("http.response.code == 504 && frame.time_relative > 2.9", 1)]),
    dict(file="hang-nginx-any.pcap", scenario="hang", healthy=False,
         summary="both legs (SLL2): request to the backend unanswered for 3 s, then 504 to the client",
         did="as hang-nginx-backleg, tcpdump -i any", failed="proxy->backend",
         expect=[E("upstream-timeout", "proxy->backend", BE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.request", 2), C("http.response.code == 504", 1),
                 C("http.response && ip.src==%s" % B, 0, zero_ok=True)]),
    dict(file="hang-haproxy-backleg.pcap", scenario="hang", healthy=False,
         summary="backend never answers; haproxy aborts the server connection with RST after timeout server 3 s",
         did="backend.py --mode hang; one client request through haproxy", failed="proxy->backend (no response)",
         expect=[E("upstream-timeout", "proxy->backend", BE, CRIT)],
         forbid=["connection-refused", "syn-unanswered"],
         checks=[C("http.request", 1), C("http.response", 0, zero_ok=True),
                 C("%s && ip.src==%s && frame.time_relative > 2.9" % (RST, P), 1, "haproxy's abort (RST from the proxy side)")]),
    dict(file="hang-haproxy-frontleg.pcap", scenario="hang", healthy=False,
         summary="client side: haproxy 504 Gateway Time-out after 3 s",
         did="as hang-haproxy-backleg, client leg", failed="proxy->backend (seen here as 504)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 504", 1), C("http.response.code == 504 && frame.time_relative > 2.9", 1)]),
    # 6 tls-stall
    dict(file="tls-stall-nginx-backleg.pcap", scenario="tls-stall", healthy=False,
         summary="nginx proxy_pass https:// to a port that accepts TCP but never answers the ClientHello; nginx FINs after 2 s",
         did="backend.py --mode tls-stall on 10.78.2.2:8443; location /tls/ proxy_pass https://10.78.2.2:8443/",
         failed="proxy->backend (TLS handshake never answered)",
         expect=[E("tls-stall", "proxy->backend", "10.78.2.2:8443", CRIT)],
         forbid=["tls-alert", "connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C(CH, 1), C(SH, 0, zero_ok=True), C("tls.alert_message", 0, zero_ok=True),
                 C("tcp.flags.fin==1 && ip.src==%s && frame.time_relative > 1.9" % P, 1, "nginx gives up (connect timeout covers the handshake)")]),
    dict(file="tls-stall-nginx-frontleg.pcap", scenario="tls-stall", healthy=False,
         summary="client side: nginx 504 after the stalled upstream TLS handshake",
         did="as tls-stall-nginx-backleg, client leg", failed="proxy->backend (seen here as 504)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["tls-stall", "tls-alert", "connection-refused", "connection-reset"],
         checks=[C("http.response.code == 504", 1), C("http.request", 1)]),
    # 7 tls-alert
    dict(file="tls-alert-nginx-backleg.pcap", scenario="tls-alert", healthy=False,
         summary="openssl s_server -tls1_3 answers nginx's TLS1.2-only ClientHello with a fatal protocol_version alert",
         did="openssl s_server -tls1_3 on 10.78.2.2:8443; nginx proxy_ssl_protocols TLSv1.2",
         failed="proxy->backend (TLS version mismatch)",
         expect=[E("tls-alert", "proxy->backend", "10.78.2.2:8443", CRIT)],
         forbid=["tls-stall", "connection-refused", "connection-reset"],
         checks=[C(CH, 1), C(SH, 0, zero_ok=True),
                 C("tls.alert_message.level == 2 && tls.alert_message.desc == 70", 1, "fatal protocol_version from the backend")]),
    dict(file="tls-alert-nginx-frontleg.pcap", scenario="tls-alert", healthy=False,
         summary="client side: nginx 502 after the upstream TLS alert",
         did="as tls-alert-nginx-backleg, client leg", failed="proxy->backend (seen here as 502)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["tls-alert", "tls-stall", "connection-refused"],
         checks=[C("http.response.code == 502", 1), C("http.request", 1)]),
    dict(file="tls-alert-alpn-client.pcap", scenario="tls-alert", healthy=False,
         summary="openssl s_client (ALPN http/1.1) to openssl s_server -alpn h2: fatal no_application_protocol alert",
         did="openssl s_server -alpn h2 on 10.78.1.1:443 (in ps-proxy, no proxy software); openssl s_client -alpn http/1.1 from ps-client; captured on the client",
         failed="client->server (ALPN mismatch)",
         expect=[E("tls-alert", "client->server", "10.78.1.1:443", CRIT)],
         forbid=["tls-stall", "connection-refused", "connection-reset"],
         checks=[C(CH, 1), C("tls.handshake.extensions_alpn_str == \"http/1.1\"", 1, "ALPN offered in clear"),
                 C("tls.alert_message.level == 2 && tls.alert_message.desc == 120", 1, "fatal no_application_protocol"),
                 C(SH, 0, zero_ok=True)]),
    # 8 reset
    dict(file="reset-nginx-backleg.pcap", scenario="reset", healthy=False,
         summary="backend RSTs (SO_LINGER 0): once right after the request, once after 200 + 64 KiB of a 1 MiB body",
         did="backend.py: GET /reset-early (RST, no response) then GET /reset-mid (headers + 64 KiB then RST)",
         failed="proxy->backend (backend reset the connection)",
         expect=[E("connection-reset", "proxy->backend", BE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "upstream-timeout"],
         checks=[C("%s && ip.src==%s" % (RST, B), 2, "the two resets from the backend"),
                 C("http.request", 2), C(SYNACK, 2, "both connections were accepted first")]),
    dict(file="reset-nginx-frontleg.pcap", scenario="reset", healthy=False,
         summary="client side: 502 for /reset-early; /reset-mid gets 200 with Content-Length 1048576 but only ~64 KiB before nginx closes",
         did="as reset-nginx-backleg, client leg", failed="proxy->backend (seen here as 502 and a truncated body)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered"],
         checks=[C("http.response.code == 502", 1), C("tcp.payload contains \"Content-Length: 1048576\"", 1, "the 200 header whose body is cut short (tshark never completes the HTTP PDU)"),
                 C("tcp.flags.fin==1 && ip.src==%s" % PF, 2), C(RST, 0, "nginx closes with FIN towards the client", zero_ok=True)]),
    dict(file="reset-nginx-any.pcap", scenario="reset", healthy=False,
         summary="both legs (SLL2) of the reset scenario",
         did="as reset-nginx-backleg, tcpdump -i any", failed="proxy->backend",
         expect=[E("connection-reset", "proxy->backend", BE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered"],
         checks=[C("%s && ip.src==%s" % (RST, B), 2), C("http.response.code == 502", 1), C("http.request", 4)]),
    # 5 lossy
    dict(file="lossy-nginx-backleg.pcap", scenario="lossy", healthy=False, lossy=True,
         summary="2 MiB download over a link losing 25% of backend data segments: segments resent many times; snaplen 128",
         did="backend.py --mode large --size 2097152; nft in ps-proxy prerouting drops 25% of backend->proxy segments (numgen random) after the capture point; tcpdump -s 128",
         failed="proxy->backend (lossy link)",
         expect=[E("retransmission-storm", "proxy->backend", BE, WARN)],
         forbid=["connection-reset", "connection-refused", "syn-unanswered", "upstream-timeout"],
         checks=[C(SYN, 1), C("tcp.analysis.retransmission && ip.src==%s" % B, None, "backend's retransmissions"),
                 "MOST_RESENT", C(RST, 0, zero_ok=True)]),
    # 9 time-wait
    dict(file="time-wait-nginx-backleg.pcap", scenario="time-wait", healthy=False,
         summary="1200 short nginx->backend connections in 8 s over 200 source ports (tcp_tw_reuse=1): nginx closes first, 4-tuples reused; snaplen 80",
         did="ps-proxy ip_local_port_range 40000-40199, tcp_tw_reuse=1; backend.py keeps connections open so nginx closes first; curl sends 1200 requests at 150/s on one keep-alive client connection; backleg only, tcpdump -s 80",
         failed="proxy->backend (TIME_WAIT pile-up on the proxy, ports recycled)",
         expect=[E("time-wait-pileup", "proxy->backend", BE, WARN)],
         forbid=["connection-refused", "connection-reset", "syn-unanswered", "retransmission-storm"],
         checks=[C(SYN, 1200), C("tcp.analysis.reused_ports", None, "SYNs on a 4-tuple seen before"),
                 C("tcp.flags.fin==1 && ip.src==%s" % P, 1200), C(RST, 0, zero_ok=True)]),
    # 10 direct vs proxied
    dict(file="direct-vs-proxy-nginx-client.pcap", scenario="direct-vs-proxy", healthy=False,
         summary="client gets 200 straight from 10.78.2.2:8080 but 502 for the same paths through nginx (nft rejects nginx's own connections)",
         did="ps-proxy forwards (ip_forward=1) so the client reaches the backend directly; nft output rule in ps-proxy rejects locally generated TCP to 10.78.2.2:8080 with tcp reset; GET / and /page.html direct then via nginx",
         failed="proxy->backend (only the proxy's path is broken)",
         expect=[E("direct-ok-proxied-fails", "client->proxy", FE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 200 && ip.src==%s" % B, 2, "direct answers"),
                 C("http.response.code == 502 && ip.src==%s" % PF, 2, "proxied failures"),
                 C("http.request && ip.dst==%s" % B, 2), C("http.request && ip.dst==%s" % PF, 2)]),
    # 11 mixed
    dict(file="mixed-nginx-frontleg.pcap", scenario="mixed", healthy=False,
         summary="28 requests every ~0.26 s; backend stopped for ~3 s in the middle: 8 x 200, 12 x 502, 8 x 200",
         did="python3 -m http.server killed (by PID) before request 9, restarted before request 21",
         failed="proxy->backend (temporarily)",
         expect=[E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["connection-refused", "syn-unanswered", "connection-reset"],
         checks=[C("http.response.code == 200", 16), C("http.response.code == 502", 12), C(SYN, 28)]),
    dict(file="mixed-nginx-backleg.pcap", scenario="mixed", healthy=False,
         summary="backend leg of the mixed capture: 16 served connections, 12 refused in the middle",
         did="as mixed-nginx-frontleg, backend leg", failed="proxy->backend (temporarily)",
         expect=[E("connection-refused", "proxy->backend", BE, CRIT)],
         forbid=["syn-unanswered", "connection-reset"],
         checks=[C(SYN, 28), C("%s && ip.src==%s" % (RST, B), 12), C("http.response.code == 200", 16)]),
    dict(file="mixed-nginx-any.pcap", scenario="mixed", healthy=False,
         summary="both legs (SLL2) of the mixed capture",
         did="as mixed-nginx-frontleg, tcpdump -i any", failed="proxy->backend (temporarily)",
         expect=[E("connection-refused", "proxy->backend", BE, CRIT), E("gateway-error", "client->proxy", FE, CRIT)],
         forbid=["syn-unanswered", "connection-reset"],
         checks=[C("%s && ip.src==%s" % (RST, B), 12), C("http.response.code == 502", 12),
                 C("http.response.code == 200", 32, "16 front + 16 back")]),
    # 12 artefacts
    dict(file="partial-flow-nginx-frontleg.pcap", scenario="artefact-partial-flow", healthy=True,
         warnings=["partial-flow"],
         summary="1 s of the middle of a paced 1 MiB download: no SYN, no FIN, no HTTP header",
         did="curl of /large (200 kB/s) through nginx started 1.5 s before tcpdump; tcpdump stopped after 1 s, before the download ended",
         failed="none (capture artefact)",
         forbid=["syn-unanswered", "connection-reset", "retransmission-storm", "upstream-timeout"],
         checks=[C("tcp.flags.syn==1", 0, zero_ok=True), C("tcp.flags.fin==1 || tcp.flags.reset==1", 0, zero_ok=True),
                 C("tcp.len > 0 && ip.src==%s" % PF, None, "mid-stream data segments"), C("http.response", 0, zero_ok=True)]),
    dict(file="capture-ended-early-nginx-backleg.pcap", scenario="artefact-capture-ended-early", healthy=True,
         warnings=["capture-ended-early"],
         summary="one healthy upstream exchange, then the capture stops ~0.15 s after a SYN to a black-holed port",
         did="GET / (200), then GET /bh (nginx -> 10.78.2.2:8081, dropped by nft in ps-backend); tcpdump stopped 0.15 s after the request",
         failed="none judgeable (the last SYN is too close to the end of the capture)",
         forbid=["syn-unanswered", "connection-refused", "upstream-timeout"],
         checks=[C(SYN, 2), C("tcp.dstport == 8081", 1, "the last frame: SYN to the black-holed port"),
                 C(SYNACK, 1), C("http.response.code == 200", 1)]),
    dict(file="one-direction-nginx-backleg.pcap", scenario="artefact-one-direction", healthy=True,
         warnings=["one-direction-only"],
         summary="tcpdump -Q out on the proxy's backend interface: only proxy->backend packets of 3 healthy exchanges",
         did="healthy traffic (3 requests) with tcpdump -Q out -i veth-pb", failed="none (capture artefact)",
         forbid=["syn-unanswered", "upstream-timeout", "connection-refused", "gateway-error"],
         checks=[C("ip.src==%s" % B, 0, "nothing from the backend", zero_ok=True), C(SYN, 3), C("http.request", 3)]),
    # loopback
    dict(file="loopback-http-curl.pcap", scenario="loopback-healthy", healthy=True,
         summary="curl -> python3 -m http.server (HTTP/1.1) on 127.0.0.1:29180: 2 requests on one keep-alive connection + 1 with Connection: close",
         did="root namespace, tcpdump -i lo 'tcp port 29180'", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 2), C("http.request", 3), C("http.response.code == 200", 3)]),
    dict(file="loopback-any-sll2.pcap", scenario="loopback-healthy", healthy=True,
         summary="same loopback HTTP traffic captured with tcpdump -i any (SLL2)",
         did="root namespace, tcpdump -i any 'tcp port 29180'", failed="none", forbid=HEALTHY_FORBID,
         checks=[C(SYN, 2), C("http.request", 3), C("http.response.code == 200", 3)]),
    dict(file="loopback-refused.pcap", scenario="loopback-refused", healthy=False,
         summary="two curl connects to closed 127.0.0.1:29181, each SYN answered by RST,ACK",
         did="root namespace, nothing listens on 29181; tcpdump -i lo 'tcp port 29181'", failed="client->server (port closed)",
         expect=[E("connection-refused", "client->server", "127.0.0.1:29181", CRIT)],
         forbid=["syn-unanswered", "connection-reset"],
         checks=[C(SYN, 2), C(RST, 2)]),
]


def q(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def main():
    # Captures described by another ground-truth file (captures/expected-*.toml, written by its
    # own generator) are not this script's.
    others = set()
    for name in sorted(os.listdir(CAPS)):
        if name.startswith("expected-") and name.endswith(".toml"):
            with open(os.path.join(CAPS, name), "rb") as f:
                others |= {c["file"] for c in tomllib.load(f).get("capture", [])}
    files = sorted(f for f in os.listdir(CAPS) if f.endswith((".pcap", ".pcapng")) and f not in others)
    described = [c["file"] for c in CAPTURES]
    missing = set(files) - set(described)
    absent = set(described) - set(files)
    if missing or absent:
        sys.exit("captures without entry: %s; entries without file: %s" % (sorted(missing), sorted(absent)))
    toml = ["# Ground truth for the lab captures (captures/README.md explains each one).",
            "# Generated by captures/lab/make_expected.py from tshark 4.0 measurements; checked by",
            "# tests/lab_captures.rs. Counts = frames matching the display filter in tshark -n -2 (default prefs),",
            "# i.e. -Y FILTER; the test evaluates all filters of a capture in one -z io,stat,0,F1,F2,... pass.",
            ""]
    md = []
    errors = []
    for c in CAPTURES:
        path = os.path.join(CAPS, c["file"])
        size = os.path.getsize(path)
        if size > 2 * 1024 * 1024:
            errors.append("%s is %d bytes" % (c["file"], size))
        da = c.get("decode_as", [])
        packets = len(tshark_frames(path, None, da))
        link = encap(path)
        checks = []
        for ch in c["checks"]:
            if ch == "MOST_RESENT":
                seq, n = most_resent_segment(path, B, 8080)
                if n < 3:
                    errors.append("%s: no segment sent >= 3 times (max %d)" % (c["file"], n))
                ch = C("ip.src==%s && tcp.srcport==8080 && tcp.seq_raw==%d && tcp.len>0" % (B, seq), n,
                       "the same data segment (raw seq %d) sent %d times" % (seq, n))
            frames = tshark_frames(path, ch["filter"], da)
            n = len(frames)
            if ch["want"] is not None and n != ch["want"]:
                errors.append("%s: %r gives %d, want %d" % (c["file"], ch["filter"], n, ch["want"]))
            if n == 0 and not ch["zero_ok"]:
                errors.append("%s: %r matches nothing" % (c["file"], ch["filter"]))
            checks.append((ch, n, frames))
        num = {"ethernet": "1", "linux-sll": "25", "linux-sll2": "210"}.get(link, "?")
        io = iostat_counts(path, ["frame", "frame.encap_type == " + num] + [ch["filter"] for ch, _, _ in checks], da)
        if io != [packets, packets] + [n for _, n, _ in checks]:
            errors.append("%s: io,stat %r disagrees with -Y counts %r" % (c["file"], io, [packets, packets] + [n for _, n, _ in checks]))
        if not (2 <= len(checks) <= 5):
            errors.append("%s: %d checks" % (c["file"], len(checks)))
        # toml
        toml.append("[[capture]]")
        toml.append("file = %s" % q(c["file"]))
        toml.append("scenario = %s" % q(c["scenario"]))
        toml.append("link_type = %s" % q(link))
        toml.append("packets = %d" % packets)
        toml.append("healthy = %s" % ("true" if c["healthy"] else "false"))
        toml.append("summary = %s" % q(c["summary"]))
        if da:
            toml.append("decode_as = [%s]" % ", ".join(q(d) for d in da))
        if c.get("warnings"):
            toml.append("warnings = [%s]" % ", ".join(q(w) for w in c["warnings"]))
        for e in c.get("expect", []):
            assert e["signature"] in SIGS
            toml += ["[[capture.expect]]", "signature = %s" % q(e["signature"]), "hop = %s" % q(e["hop"]),
                     "server = %s" % q(e["server"]), "severity = %s" % q(e["severity"])]
        for f in c.get("forbid", []):
            assert f in SIGS
            toml += ["[[capture.forbid]]", "signature = %s" % q(f)]
        for ch, n, _ in checks:
            toml += ["[[capture.check]]", "filter = %s" % q(ch["filter"]), "count = %d" % n]
        toml.append("")
        # README entry
        md.append("### `%s`" % c["file"])
        md.append("")
        md.append("- **What:** %s." % c["summary"])
        md.append("- **How:** %s." % c["did"])
        md.append("- **Failed hop:** %s." % c["failed"])
        md.append("- **File:** %d frames, %s, %d bytes." % (packets, link, size))
        md.append("- **Key packets** (tshark 4.0 display filter -> frames):")
        for ch, n, frames in checks:
            shown = ", ".join(str(x) for x in frames[:8]) + (", ..." if len(frames) > 8 else "")
            why = " — %s" % ch["why"] if ch["why"] else ""
            md.append("  - `%s`: %d%s%s" % (ch["filter"], n, (" (frames %s)" % shown) if n else "", why))
        exp = ", ".join("`%s` on %s (server %s, %s)" % (e["signature"], e["hop"], e["server"], e["severity"])
                        for e in c.get("expect", []))
        md.append("- **Must report:** %s." % (exp or ("nothing (healthy)" if c["healthy"] else "-")))
        if c.get("warnings"):
            md.append("- **Must warn (capture artefact):** %s." % ", ".join("`%s`" % w for w in c["warnings"]))
        if c.get("forbid"):
            md.append("- **Must not report:** %s%s." % (", ".join("`%s`" % f for f in c["forbid"]),
                                                       " (and no warning/critical verdict at all: healthy = true)" if c["healthy"] else ""))
        md.append("")
    if errors:
        sys.exit("\n".join(errors))
    with open(os.path.join(CAPS, "expected.toml"), "w") as f:
        f.write("\n".join(toml))
    head = open(os.path.join(HERE, "README.head.md")).read()
    with open(os.path.join(CAPS, "README.md"), "w") as f:
        f.write(head.rstrip("\n") + "\n\n## The captures\n\n" +
                "Generated from `captures/lab/make_expected.py` (the same facts as `expected.toml`). Frame numbers are 1-based as in Wireshark.\n\n" +
                "\n".join(md))
    print("wrote expected.toml and README.md for %d captures" % len(CAPTURES))


if __name__ == "__main__":
    main()
