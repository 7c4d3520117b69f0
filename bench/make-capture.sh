#!/usr/bin/env bash
# make-capture.sh [OUT] [SIZE_MB]
#
# Builds a large, real pcap of HTTP traffic through an nginx reverse proxy,
# all on loopback (127.0.0.1 only):
#
#   wrk --> 127.0.0.1:18080 (nginx proxy) --> 127.0.0.1:18081 (nginx static)
#
# and records both hops with
#   tcpdump -i lo -s 0 -B 65536 -w OUT 'tcp port 18080 or tcp port 18081'
# until OUT reaches SIZE_MB MiB (default 1100 MiB, i.e. > 1 GiB), then stops
# everything it started (by PID; also on error / Ctrl-C).
#
# Also builds bench/out/readloop (the libpcap baseline) if it is missing or
# older than bench/readloop.c.
#
# Environment:
#   SMALL=1        only the small files (0.5 KB, 4 KB): many more packets
#                  and connections per GB.  Default off.
#   MAX_SECS=900   hard time limit on the load; the capture stops then even
#                  if SIZE_MB was not reached.
#   KA_CONNS=32    wrk connections of the keep-alive client.
#   CLOSE_CONNS=16 wrk connections of the 'Connection: close' client.
#   LOAD_NICE=15   nice value of nginx workers and wrk, so that tcpdump gets
#                  the CPU first and the kernel does not drop packets (on 2
#                  cores, un-niced load made tcpdump drop ~35 %).
#   RATE=0         nginx limit_rate per proxy response (e.g. 512k); 0 = none.
#                  The knob to turn if tcpdump reports drops.  Default 0,
#                  or 512k with MTU=... (1500-byte packets cost tcpdump ~8x
#                  more per byte; without it ~3 % were dropped).
#   KEEP_WORK=1    keep the temporary nginx prefix (config, logs) for a look.
#   MTU=1500       Ethernet-sized packets: re-run this script inside a
#                  private network namespace (unshare -n, root) whose own
#                  loopback gets this MTU and TSO/GSO/GRO off (ethtool), so
#                  TCP segments are real MSS-sized packets instead of the
#                  host loopback's up-to-64 KiB GSO frames.  Still 127.0.0.1
#                  only; the host's lo is not touched.  ~8x more packets per
#                  GB.  Default: unset = host loopback, MTU 65536.
#
# Traffic mix (see mix.lua written below): half the requests go to /ka/...,
# which the proxy forwards over a keep-alive upstream pool (HTTP/1.1, few
# long backend connections); the other half to /c/..., forwarded with
# HTTP/1.0 + a fresh backend connection per request.  Two wrk clients run in
# parallel, one keep-alive, one sending 'Connection: close' (a new client
# connection per request).  So the capture has a few long connections
# carrying thousands of requests and many thousands of one-request ones,
# on both hops.
set -euo pipefail

if [[ -n "${MTU:-}" && -z "${__PS_IN_NETNS:-}" ]]; then
    command -v ethtool >/dev/null || { echo "MTU=... needs ethtool (apt-get install ethtool)" >&2; exit 1; }
    exec unshare -n env __PS_IN_NETNS=1 "$0" "$@"
fi
if [[ -n "${__PS_IN_NETNS:-}" ]]; then
    ip link set lo mtu "$MTU" up
    ethtool -K lo tso off gso off gro off >/dev/null 2>&1 || true
    echo "private netns: $(ip -o link show lo | grep -o 'mtu [0-9]*'), $(ethtool -k lo | grep -E '^(tcp-segmentation|generic-segmentation)-offload' | tr '\n' ' ')"
fi

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT="${1:-$BENCH_DIR/out/big.pcap}"
SIZE_MB="${2:-1100}"
SMALL="${SMALL:-0}"
MAX_SECS="${MAX_SECS:-900}"
KA_CONNS="${KA_CONNS:-32}"
CLOSE_CONNS="${CLOSE_CONNS:-16}"
LOAD_NICE="${LOAD_NICE:-15}"
if [[ -n "${MTU:-}" ]]; then RATE="${RATE:-512k}"; else RATE="${RATE:-0}"; fi
PROXY_PORT=18080
BACKEND_PORT=18081
HOST=127.0.0.1 # loopback only -- never change this

case "$SIZE_MB" in ''|*[!0-9]*) echo "SIZE_MB must be an integer (MiB)" >&2; exit 2;; esac
for t in nginx wrk tcpdump capinfos gcc; do
    command -v "$t" >/dev/null || { echo "missing tool: $t" >&2; exit 1; }
done

mkdir -p "$BENCH_DIR/out" "$(dirname "$OUT")"
OUT="$(cd "$(dirname "$OUT")" && pwd)/$(basename "$OUT")"

# --- baseline reader ---------------------------------------------------------
if [[ ! -x "$BENCH_DIR/out/readloop" || "$BENCH_DIR/readloop.c" -nt "$BENCH_DIR/out/readloop" ]]; then
    gcc -O2 -Wall -o "$BENCH_DIR/out/readloop" "$BENCH_DIR/readloop.c" -lpcap
fi

# refuse to start if the ports are taken (someone else's server)
for port in $PROXY_PORT $BACKEND_PORT; do
    if ss -Hltn "sport = :$port" | grep -q .; then
        echo "port $port is already in use; not starting" >&2; exit 1
    fi
done

WORK="$(mktemp -d "$BENCH_DIR/out/nginx.XXXXXX")"
NGINX_PID="" TCPDUMP_PID="" WRK_KA_PID="" WRK_CLOSE_PID=""

stop_pid() { # stop_pid PID SIGNAL: signal, wait up to 10 s, then KILL
    local pid="$1" sig="$2" i
    [[ -n "$pid" ]] || return 0
    kill -0 "$pid" 2>/dev/null || { wait "$pid" 2>/dev/null || true; return 0; }
    kill "-$sig" "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
}
cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    stop_pid "$WRK_KA_PID" INT
    stop_pid "$WRK_CLOSE_PID" INT
    stop_pid "$TCPDUMP_PID" INT   # SIGINT: tcpdump flushes and closes OUT
    stop_pid "$NGINX_PID" QUIT    # master; workers exit with it
    if [[ "${KEEP_WORK:-0}" == 1 ]]; then echo "kept $WORK" >&2; else rm -rf "$WORK"; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- content ------------------------------------------------------------------
mkdir -p "$WORK/www" "$WORK/logs" "$WORK/tmp"
head -c 512     /dev/urandom > "$WORK/www/s.bin"   # 0.5 KB
head -c 4096    /dev/urandom > "$WORK/www/m.bin"   # 4 KB
head -c 65536   /dev/urandom > "$WORK/www/l.bin"   # 64 KB
head -c 1048576 /dev/urandom > "$WORK/www/xl.bin"  # 1 MB
# nginx workers run as 'nobody' when started as root; mktemp -d is 0700
chmod 755 "$WORK" "$WORK/www"; chmod 644 "$WORK"/www/*

# --- nginx: proxy on :18080, static backend on :18081, one master -------------
cat > "$WORK/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
worker_priority $LOAD_NICE;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log warn;
events { worker_connections 8192; }
http {
    access_log off;
    client_body_temp_path $WORK/tmp/body;
    proxy_temp_path       $WORK/tmp/proxy;
    fastcgi_temp_path     $WORK/tmp/fastcgi;
    uwsgi_temp_path       $WORK/tmp/uwsgi;
    scgi_temp_path        $WORK/tmp/scgi;
    default_type application/octet-stream;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000;
    keepalive_timeout 30s;

    upstream backend_ka {
        server $HOST:$BACKEND_PORT;
        keepalive 16;
    }

    # the proxy (the hop under test)
    server {
        listen $HOST:$PROXY_PORT backlog=4096;
        proxy_buffer_size 16k;
        proxy_buffers 16 64k;
        proxy_max_temp_file_size 0;          # stream big bodies, no temp files
        limit_rate $RATE;
        location /ka/ {                      # keep-alive upstream pool
            proxy_pass http://backend_ka/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location /c/ {                       # HTTP/1.0, one connection per request
            proxy_pass http://$HOST:$BACKEND_PORT/;
        }
        location = /health { return 200 "ok\n"; }
    }

    # the backend: static files
    server {
        listen $HOST:$BACKEND_PORT backlog=4096;
        root $WORK/www;
        location / { }
    }
}
EOF

# --- wrk request mix ------------------------------------------------------------
if [[ "$SMALL" == 1 ]]; then
    # 0.5 KB x 6, 4 KB x 4
    FILES='"s.bin","s.bin","s.bin","s.bin","s.bin","s.bin","m.bin","m.bin","m.bin","m.bin"'
else
    # by request count: 0.5 KB 40 %, 4 KB 30 %, 64 KB 25 %, 1 MB 5 %
    FILES='"s.bin","s.bin","s.bin","s.bin","s.bin","s.bin","s.bin","s.bin","m.bin","m.bin","m.bin","m.bin","m.bin","m.bin","l.bin","l.bin","l.bin","l.bin","l.bin","xl.bin"'
fi
cat > "$WORK/mix.lua" <<EOF
local files = { $FILES }
local prefixes = { "/ka/", "/c/" }
setup = function(thread) thread:set("seed", math.random(1, 1000000)) end
init = function(args) math.randomseed(seed or os.time()) end
request = function()
    local path = prefixes[math.random(#prefixes)] .. files[math.random(#files)]
    return wrk.format("GET", path)
end
EOF

nginx -t -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/error.log" >/dev/null 2>"$WORK/logs/nginx-t.log" \
    || { cat "$WORK/logs/nginx-t.log" >&2; exit 1; }
nginx -p "$WORK" -c "$WORK/nginx.conf" -e "$WORK/logs/error.log" &
NGINX_PID=$!

for ((i = 0; i < 50; i++)); do
    curl -fsS "http://$HOST:$PROXY_PORT/health" >/dev/null 2>&1 && break
    kill -0 "$NGINX_PID" 2>/dev/null || { echo "nginx died:" >&2; cat "$WORK/logs/error.log" >&2; exit 1; }
    sleep 0.1
done
curl -fsS -o /dev/null "http://$HOST:$PROXY_PORT/ka/m.bin" && curl -fsS -o /dev/null "http://$HOST:$PROXY_PORT/c/xl.bin" \
    || { echo "proxy does not serve" >&2; cat "$WORK/logs/error.log" >&2; exit 1; }

# --- capture ---------------------------------------------------------------------
rm -f "$OUT"
# -Z root: Debian's tcpdump drops to user 'tcpdump' before opening -w files.
tcpdump -i lo -s 0 -B 65536 -Z root -w "$OUT" \
    "tcp port $PROXY_PORT or tcp port $BACKEND_PORT" 2>"$WORK/logs/tcpdump.log" &
TCPDUMP_PID=$!
for ((i = 0; i < 100; i++)); do   # wait until tcpdump is listening
    grep -q "listening on" "$WORK/logs/tcpdump.log" 2>/dev/null && break
    kill -0 "$TCPDUMP_PID" 2>/dev/null || { cat "$WORK/logs/tcpdump.log" >&2; exit 1; }
    sleep 0.1
done

TARGET=$((SIZE_MB * 1024 * 1024))
URL="http://$HOST:$PROXY_PORT/"
echo "capturing to $OUT until $SIZE_MB MiB (max ${MAX_SECS}s, SMALL=$SMALL, RATE=$RATE, MTU=$(cat /sys/class/net/lo/mtu)) ..."
START=$SECONDS
nice -n "$LOAD_NICE" wrk -t1 -c"$KA_CONNS" -d"${MAX_SECS}s" --timeout 10s -s "$WORK/mix.lua" "$URL" >"$WORK/logs/wrk-ka.log" 2>&1 &
WRK_KA_PID=$!
nice -n "$LOAD_NICE" wrk -t1 -c"$CLOSE_CONNS" -d"${MAX_SECS}s" --timeout 10s -s "$WORK/mix.lua" -H 'Connection: close' "$URL" >"$WORK/logs/wrk-close.log" 2>&1 &
WRK_CLOSE_PID=$!

last_report=$SECONDS
while :; do
    size=$(stat -c %s "$OUT" 2>/dev/null || echo 0)
    (( size >= TARGET )) && break
    if (( SECONDS - START >= MAX_SECS + 5 )); then echo "time limit reached at $((size >> 20)) MiB" >&2; break; fi
    if ! kill -0 "$WRK_KA_PID" 2>/dev/null && ! kill -0 "$WRK_CLOSE_PID" 2>/dev/null; then
        echo "load generators ended at $((size >> 20)) MiB" >&2; break
    fi
    kill -0 "$TCPDUMP_PID" 2>/dev/null || { echo "tcpdump died" >&2; cat "$WORK/logs/tcpdump.log" >&2; exit 1; }
    if (( SECONDS - last_report >= 10 )); then
        echo "  $((SECONDS - START))s: $((size >> 20)) MiB"; last_report=$SECONDS
    fi
    sleep 0.2
done
ELAPSED=$((SECONDS - START))

stop_pid "$WRK_KA_PID" INT; WRK_KA_PID=""
stop_pid "$WRK_CLOSE_PID" INT; WRK_CLOSE_PID=""
sleep 0.5                         # let the last responses / FINs be captured
stop_pid "$TCPDUMP_PID" INT; TCPDUMP_PID=""
stop_pid "$NGINX_PID" QUIT; NGINX_PID=""

echo
echo "== load (${ELAPSED}s) =="
echo "-- wrk keep-alive ($KA_CONNS conns):";          grep -E "requests in|Requests/sec|Transfer/sec|errors" "$WORK/logs/wrk-ka.log" || true
echo "-- wrk Connection: close ($CLOSE_CONNS conns):"; grep -E "requests in|Requests/sec|Transfer/sec|errors" "$WORK/logs/wrk-close.log" || true
echo "-- tcpdump:"; grep -E "captured|received|dropped" "$WORK/logs/tcpdump.log" || true
DROPPED=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$WORK/logs/tcpdump.log")
if [[ -n "$DROPPED" && "$DROPPED" != 0 ]]; then
    echo "WARNING: tcpdump dropped $DROPPED packets: the capture has holes (TCP flows with missing" \
         "segments).  Re-run with a lower RATE= (e.g. RATE=512k) or fewer connections." >&2
fi
if grep -q -E "\[(error|crit|alert|emerg)\]" "$WORK/logs/error.log"; then
    echo "-- nginx errors (first 5 of $(grep -c -E '\[(error|crit|alert|emerg)\]' "$WORK/logs/error.log")):"
    grep -E "\[(error|crit|alert|emerg)\]" "$WORK/logs/error.log" | head -5
fi

echo
echo "== capture =="
capinfos -c -s -d -u -y -i -E -l "$OUT" || true
echo "-- TCP connection attempts (SYN without ACK, via readloop --syns):"
"$BENCH_DIR/out/readloop" --syns "$OUT"
