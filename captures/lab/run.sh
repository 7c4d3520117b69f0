#!/usr/bin/env bash
# proxyscope capture lab: regenerates the captures in captures/ from real software
# (nginx, haproxy, python backends, openssl, curl) running in network namespaces.
#
#   captures/lab/run.sh all            # every scenario
#   captures/lab/run.sh healthy hang   # selected scenarios
#   captures/lab/run.sh list           # scenario names
#
# Needs root, iproute2, nftables, ethtool, tcpdump, nginx, haproxy, openssl, curl, python3.
# SAFETY: traffic only on loopback or between the namespaces created here (10.78.x.y);
# every namespace and process created is torn down at the end of each scenario (trap).
set -euo pipefail

LAB=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-$(cd "$LAB/.." && pwd)}
PY=${PY:-/usr/bin/python3}
[ -x "$PY" ] || PY=python3
NSS=(ps-client ps-proxy ps-backend)
PIDS=()      # every background process started by this script (by PID)
CAPS=()      # tcpdump PIDs of the running scenario
T=""         # per-scenario temp dir

log() { printf '[lab] %s\n' "$*" >&2; }
C() { ip netns exec ps-client "$@"; }
P() { ip netns exec ps-proxy "$@"; }
B() { ip netns exec ps-backend "$@"; }

# ---------------------------------------------------------------- teardown
teardown() {
  local pid ns
  for pid in "${CAPS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  sleep 0.3
  for pid in "${PIDS[@]}"; do kill -KILL "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; done
  for ns in "${NSS[@]}"; do
    if ip netns list | grep -qw "^$ns"; then
      # anything still alive inside our own namespaces was started by us
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -KILL "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
  done
  PIDS=(); CAPS=()
  if [ -n "$T" ] && [ -d "$T" ]; then rm -rf "$T"; fi
  T=""
}
trap teardown EXIT
trap 'exit 130' INT TERM

bg() { # bg NS CMD... : start CMD in namespace NS (or "-" for the root ns), remember its PID
  local ns=$1; shift
  if [ "$ns" = "-" ]; then "$@" & else ip netns exec "$ns" "$@" & fi
  PIDS+=($!)
  LASTPID=$!
}

stop_pid() { # stop one of our processes and forget it
  local pid=$1 sig=${2:-TERM}
  kill -"$sig" "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
}

# ---------------------------------------------------------------- topology
topo() {
  teardown
  T=$(mktemp -d /tmp/pslab.XXXXXX)
  local ns
  for ns in "${NSS[@]}"; do
    ip netns add "$ns"
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done
  ip link add veth-c netns ps-client address 02:78:01:00:00:02 type veth \
     peer name veth-pc netns ps-proxy address 02:78:01:00:00:01
  ip link add veth-pb netns ps-proxy address 02:78:02:00:00:01 type veth \
     peer name veth-b netns ps-backend address 02:78:02:00:00:02
  ip -n ps-client addr add 10.78.1.2/24 dev veth-c
  ip -n ps-proxy addr add 10.78.1.1/24 dev veth-pc
  ip -n ps-proxy addr add 10.78.2.1/24 dev veth-pb
  ip -n ps-backend addr add 10.78.2.2/24 dev veth-b
  local pair
  for pair in ps-client:veth-c ps-proxy:veth-pc ps-proxy:veth-pb ps-backend:veth-b; do
    ns=${pair%%:*}; local dev=${pair#*:}
    # real MTU-sized segments with real checksums in the captures
    ip netns exec "$ns" ethtool -K "$dev" tx off tso off gso off gro off >/dev/null 2>&1 || true
    ip -n "$ns" link set "$dev" up
  done
  P sysctl -qw net.ipv4.ip_forward=0
  mkdir -p "$T/www" "$T/tmp"
  printf 'hello from the lab backend\n' > "$T/www/index.html"
  head -c 20000 /dev/zero | tr '\0' 'a' > "$T/www/page.html"
  log "topology up in $T"
}

direct_path() { # scenario 10: client may reach the backend through the proxy ns as a router
  P sysctl -qw net.ipv4.ip_forward=1
  C ip route add 10.78.2.0/24 via 10.78.1.1
  B ip route add 10.78.1.0/24 via 10.78.2.1
}

wait_listen() { # wait_listen NS PORT
  local i
  for i in $(seq 1 100); do
    if ip netns exec "$1" ss -ltnH "sport = :$2" | grep -q .; then return 0; fi
    sleep 0.05
  done
  log "nothing listens on port $2 in $1"; return 1
}

# ---------------------------------------------------------------- captures
cap() { # cap NAME NS IFACE [tcpdump args...]
  local name=$1 ns=$2 ifc=$3; shift 3
  local f="$OUT/$name.pcap" err="$T/tcpdump-$name.err"
  rm -f "$f"
  # immediate mode sizes ring frames by snaplen on "any" (no MTU): give it a big ring
  if [ "$ifc" = any ]; then set -- -B 65536 "$@"; fi
  if [ "$ns" = "-" ]; then
    tcpdump -U --immediate-mode -n -Z root -i "$ifc" -w "$f" "$@" 2>"$err" &
  else
    ip netns exec "$ns" tcpdump -U --immediate-mode -n -Z root -i "$ifc" -w "$f" "$@" 2>"$err" &
  fi
  local pid=$!
  PIDS+=("$pid"); CAPS+=("$pid")
  local i
  for i in $(seq 1 100); do
    if grep -q "listening on" "$err" 2>/dev/null; then sleep 0.2; return 0; fi
    sleep 0.05
  done
  log "tcpdump for $name did not start: $(cat "$err")"; return 1
}

cap_stop() { # stop all running captures cleanly (SIGINT, wait)
  sleep "${1:-0.5}"
  local pid
  for pid in "${CAPS[@]}"; do kill -INT "$pid" 2>/dev/null || true; done
  for pid in "${CAPS[@]}"; do
    local n=0
    while kill -0 "$pid" 2>/dev/null && [ $n -lt 30 ]; do sleep 0.1; n=$((n + 1)); done
    kill -TERM "$pid" 2>/dev/null || true     # tcpdump also flushes and exits cleanly on TERM
    wait "$pid" 2>/dev/null || true
  done
  CAPS=()
  local e
  for e in "$T"/tcpdump-*.err; do
    [ -f "$e" ] || continue
    log "$(basename "$e" .err | sed 's/^tcpdump-//'): $(grep -E 'captured|dropped by kernel' "$e" | tr '\n' ' ')"
    if grep -Eq '^[1-9][0-9]* packets dropped by kernel' "$e"; then log "WARNING: kernel dropped packets in $(basename "$e")"; fi
    rm -f "$e"
  done
}

# ---------------------------------------------------------------- servers
certs() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$1" -addext "subjectAltName=DNS:$1" \
    -keyout "$T/$1.key" -out "$T/$1.crt" >/dev/null 2>&1
}

nginx_up() { # nginx_up UPSTREAM [extra server-block config]
  local upstream=$1 extra=${2:-}
  certs proxy.lab
  local conf
  conf=$(<"$LAB/nginx.conf.in")
  conf=${conf//@T@/"$T"}
  conf=${conf//@UPSTREAM@/"$upstream"}
  conf=${conf//@EXTRA@/"$extra"}
  printf '%s\n' "$conf" > "$T/nginx.conf"
  bg ps-proxy nginx -c "$T/nginx.conf" -g 'daemon off;'
  NGINX_PID=$LASTPID
  wait_listen ps-proxy 80
}

haproxy_up() { # haproxy_up UPSTREAM
  sed -e "s/@UPSTREAM@/$1/" "$LAB/haproxy.cfg.in" > "$T/haproxy.cfg"
  bg ps-proxy haproxy -db -f "$T/haproxy.cfg"
  HAPROXY_PID=$LASTPID
  wait_listen ps-proxy 80
}

httpserver_up() { # python3 -m http.server on the backend
  bg ps-backend "$PY" -m http.server 8080 --bind 10.78.2.2 --directory "$T/www" >>"$T/backend.log" 2>&1
  BACKEND_PID=$LASTPID
  wait_listen ps-backend 8080
}

labbackend_up() { # labbackend_up PORT MODE [args]
  local port=$1 mode=$2; shift 2
  bg ps-backend "$PY" "$LAB/backend.py" --listen "10.78.2.2:$port" --mode "$mode" "$@" >>"$T/backend.log" 2>&1
  BACKEND_PID=$LASTPID
  wait_listen ps-backend "$port"
}

nft_backend() { B nft -f - ; }
nft_proxy() { P nft -f - ; }

# client helpers: print the status codes to the lab log
curl_c() { # curl_c ARGS... (from the client ns)
  local codes a outs=()
  for a in "$@"; do case $a in http://*|https://*) outs+=(-o /dev/null);; esac; done
  codes=$(C curl -sS "${outs[@]}" -w '%{http_code} ' --max-time "${CURL_MAX:-10}" "$@" 2>>"$T/curl.err" || true)
  log "curl $* -> ${codes:-none}"
}

three_legs() { # three_legs PREFIX : frontleg + backleg + any captures in the proxy ns
  cap "$1-frontleg" ps-proxy veth-pc
  cap "$1-backleg" ps-proxy veth-pb
  cap "$1-any" ps-proxy any
}

# ================================================================ scenarios
sc_healthy() {
  topo; httpserver_up; nginx_up 10.78.2.2:8080
  three_legs healthy-nginx
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html                 # keep-alive, 2 requests on one connection
  curl_c -H 'Connection: close' http://10.78.1.1/                     # non-keep-alive
  curl_c -k --resolve proxy.lab:443:10.78.1.1 https://proxy.lab/ https://proxy.lab/page.html   # HTTPS through nginx
  cap_stop 0.5
  teardown
  topo; httpserver_up; haproxy_up 10.78.2.2:8080
  cap healthy-haproxy-frontleg ps-proxy veth-pc
  cap healthy-haproxy-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/
  cap_stop 0.5
  teardown
}

sc_refused() {
  topo; nginx_up 10.78.2.2:8080            # nothing listens on the backend: kernel answers SYN with RST
  three_legs refused-nginx
  curl_c http://10.78.1.1/
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  teardown
  topo; haproxy_up 10.78.2.2:8080
  cap refused-haproxy-frontleg ps-proxy veth-pc
  cap refused-haproxy-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/
  cap_stop 0.5
  teardown
}

sc_blackhole() {
  topo; httpserver_up; nginx_up 10.78.2.2:8080
  nft_backend <<'EOF'
table inet lab {
  chain in {
    type filter hook input priority 0
    tcp dport 8080 tcp flags & (syn|ack) == syn drop
  }
}
EOF
  three_legs blackhole-nginx
  curl_c http://10.78.1.1/                 # nginx: proxy_connect_timeout 2s -> 504
  curl_c http://10.78.1.1/page.html
  cap_stop 0.5
  teardown
}

sc_hang() {
  topo; labbackend_up 8080 hang; nginx_up 10.78.2.2:8080
  three_legs hang-nginx
  curl_c http://10.78.1.1/                 # nginx: proxy_read_timeout 3s -> 504
  cap_stop 0.5
  teardown
  topo; labbackend_up 8080 hang; haproxy_up 10.78.2.2:8080
  cap hang-haproxy-frontleg ps-proxy veth-pc
  cap hang-haproxy-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/                 # haproxy: timeout server 3s -> 504
  cap_stop 0.5
  teardown
}

sc_tls() {
  # tls-stall: backend accepts TCP on 8443 and reads the ClientHello but never answers;
  # nginx proxy_pass https:// gives up after proxy_connect_timeout (2 s, covers the handshake).
  topo; labbackend_up 8443 tls-stall
  nginx_up 10.78.2.2:8080 '        location /tls/ { proxy_pass https://10.78.2.2:8443/; proxy_ssl_server_name on; proxy_ssl_name backend.lab; }'
  cap tls-stall-nginx-frontleg ps-proxy veth-pc
  cap tls-stall-nginx-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/tls/
  cap_stop 0.5
  teardown
  # tls-alert (backend): openssl s_server only speaks TLS 1.3, nginx offers at most TLS 1.2
  topo; certs backend.lab
  bg ps-backend openssl s_server -accept 10.78.2.2:8443 -tls1_3 -cert "$T/backend.lab.crt" -key "$T/backend.lab.key" -www -quiet
  wait_listen ps-backend 8443
  nginx_up 10.78.2.2:8080 '        location /tls/ { proxy_pass https://10.78.2.2:8443/; proxy_ssl_server_name on; proxy_ssl_name backend.lab; proxy_ssl_protocols TLSv1.2; }'
  cap tls-alert-nginx-frontleg ps-proxy veth-pc
  cap tls-alert-nginx-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/tls/
  cap_stop 0.5
  teardown
  # tls-alert (client side, ALPN): openssl s_server in the proxy ns insists on ALPN "h2"
  # (-alpn h2), openssl s_client offers only http/1.1 -> no_application_protocol alert
  topo; certs proxy.lab
  bg ps-proxy openssl s_server -accept 10.78.1.1:443 -cert "$T/proxy.lab.crt" -key "$T/proxy.lab.key" -alpn h2 -www -quiet
  wait_listen ps-proxy 443
  cap tls-alert-alpn-client ps-client veth-c
  C openssl s_client -connect 10.78.1.1:443 -servername proxy.lab -alpn http/1.1 </dev/null >"$T/s_client.out" 2>&1 || true
  log "s_client: $(grep -m1 -i alert "$T/s_client.out" || echo 'no alert line')"
  cap_stop 0.5
  teardown
}

sc_reset() {
  # backend resets: /reset-early (RST right after the request -> nginx 502)
  # and /reset-mid (200 + 64 KiB of a 1 MiB body, then RST -> truncated body to the client)
  topo; labbackend_up 8080 normal --size 1048576; nginx_up 10.78.2.2:8080
  three_legs reset-nginx
  curl_c http://10.78.1.1/reset-early
  curl_c http://10.78.1.1/reset-mid
  cap_stop 0.5
  teardown
}

sc_lossy() {
  # large download over a lossy backend link. The loss is applied on the proxy's ingress
  # from the backend (nft in ps-proxy, prerouting), i.e. after the proxy-side capture
  # point: the backleg capture sees every transmission of a segment, including the ones
  # the "link" then loses.
  topo; labbackend_up 8080 large --size "${LOSSY_SIZE:-2097152}"
  nginx_up 10.78.2.2:8080 '        location /large { proxy_pass http://10.78.2.2:8080; proxy_read_timeout 30s; }'
  nft_proxy <<EOF
table inet lab {
  chain pre {
    type filter hook prerouting priority -300
    iifname "veth-pb" ip saddr 10.78.2.2 tcp sport 8080 meta length > 100 numgen random mod 100 < ${LOSSY_PCT:-25} drop
  }
}
EOF
  cap lossy-nginx-backleg ps-proxy veth-pb -s 128
  CURL_MAX=60 curl_c http://10.78.1.1/large
  cap_stop 0.5
  teardown
}

sc_timewait() {
  # >1000 short proxy->backend connections in ~8 s over a 200-port ephemeral range
  # with tcp_tw_reuse=1: nginx closes first (holds TIME_WAIT) and the kernel reuses the
  # TIME_WAIT 4-tuples. Backleg only, snaplen 80 to stay under 2 MB.
  topo
  P sysctl -qw net.ipv4.ip_local_port_range="40000 40199" net.ipv4.tcp_tw_reuse=1
  labbackend_up 8080 normal; nginx_up 10.78.2.2:8080
  cap time-wait-nginx-backleg ps-proxy veth-pb -s 80
  local i
  for i in $(seq 1 "${TW_REQS:-1200}"); do printf 'url = "http://10.78.1.1/r%d"\noutput = "/dev/null"\n' "$i"; done > "$T/tw.curlrc"
  # one keep-alive client connection, paced at 150 requests/s: each request is a new
  # nginx->backend connection; 200 ports at 150/s means a port comes back every ~1.3 s,
  # just over the kernel's 1 s tcp_tw_reuse threshold
  C curl -s --rate "${TW_RATE:-150}/s" -w '%{http_code}\n' -K "$T/tw.curlrc" > "$T/tw-codes.txt" 2>/dev/null || true
  log "time-wait: status codes: $(sort "$T/tw-codes.txt" | uniq -c | tr '\n' ' ')"
  P ss -tanH state time-wait | wc -l | sed 's/^/[lab] TIME_WAIT sockets in proxy ns: /' >&2
  cap_stop 0.5
  teardown
}

sc_direct() {
  # the backend answers the client directly (200), but nginx's own connections to the same
  # backend ip:port are rejected by nft on the proxy (output hook, reject with tcp reset) -> 502
  topo; direct_path; httpserver_up; nginx_up 10.78.2.2:8080
  nft_proxy <<'EOF'
table inet lab {
  chain out {
    type filter hook output priority 0
    ip daddr 10.78.2.2 tcp dport 8080 reject with tcp reset
  }
}
EOF
  cap direct-vs-proxy-nginx-client ps-client veth-c
  curl_c http://10.78.2.2:8080/
  curl_c http://10.78.1.1/
  curl_c http://10.78.2.2:8080/page.html
  curl_c http://10.78.1.1/page.html
  cap_stop 0.5
  teardown
}

sc_mixed() {
  # healthy traffic every 0.25 s for ~7 s; backend stopped for ~3 s in the middle
  topo; httpserver_up; nginx_up 10.78.2.2:8080
  three_legs mixed-nginx
  local i
  for i in $(seq 1 28); do
    if [ "$i" = 9 ]; then stop_pid "$BACKEND_PID"; log "backend stopped"; fi
    if [ "$i" = 21 ]; then httpserver_up; log "backend restarted"; fi
    curl_c -H 'Connection: close' "http://10.78.1.1/?n=$i"
    sleep 0.25
  done
  cap_stop 0.5
  teardown
}

sc_artefacts() {
  # (a) capture started mid-connection: a paced 1 MiB download is running before tcpdump starts,
  #     and tcpdump stops before it ends
  topo; labbackend_up 8080 large --size 1048576 --rate 200000
  nginx_up 10.78.2.2:8080 '        location /large { proxy_pass http://10.78.2.2:8080; proxy_read_timeout 30s; }'
  bg ps-client curl -s -o /dev/null --max-time 20 http://10.78.1.1/large
  local dl=$LASTPID
  sleep 1.5
  cap partial-flow-nginx-frontleg ps-proxy veth-pc
  sleep 1.0
  cap_stop 0
  stop_pid "$dl"
  teardown
  # (b) capture ended right after a SYN to a black-holed port
  topo; httpserver_up
  nginx_up 10.78.2.2:8080 '        location /bh { proxy_pass http://10.78.2.2:8081; }'
  nft_backend <<'EOF'
table inet lab {
  chain in {
    type filter hook input priority 0
    tcp dport 8081 drop
  }
}
EOF
  cap capture-ended-early-nginx-backleg ps-proxy veth-pb
  curl_c http://10.78.1.1/
  sleep 0.3
  bg ps-client curl -s -o /dev/null --max-time 5 http://10.78.1.1/bh
  local c=$LASTPID
  sleep 0.15
  cap_stop 0
  stop_pid "$c"
  teardown
  # (c) one direction only: tcpdump -Q out on the proxy's backend interface
  topo; httpserver_up; nginx_up 10.78.2.2:8080
  cap one-direction-nginx-backleg ps-proxy veth-pb -Q out
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/
  cap_stop 0.5
  teardown
}

sc_loopback() {
  # plain loopback in the root namespace, no proxy: python3 -m http.server (HTTP/1.1, so
  # curl's keep-alive really reuses the connection) on 127.0.0.1:29180; 29181 stays closed.
  # Ports below the ephemeral range so no other local connection can collide with them.
  teardown; T=$(mktemp -d /tmp/pslab.XXXXXX)
  printf 'hello from loopback\n' > "$T/index.html"
  if ss -tanH "( sport = :29180 or dport = :29180 or sport = :29181 or dport = :29181 )" | grep -q .; then
    log "ports 29180/29181 busy on loopback; aborting loopback scenario"; return 1
  fi
  bg - "$PY" -m http.server 29180 --bind 127.0.0.1 --protocol HTTP/1.1 --directory "$T" >"$T/backend.log" 2>&1
  local i
  for i in $(seq 1 100); do ss -ltnH "sport = :29180" | grep -q . && break; sleep 0.05; done
  cap loopback-http-curl - lo tcp port 29180
  cap loopback-any-sll2 - any tcp port 29180
  curl -s -o /dev/null -o /dev/null http://127.0.0.1:29180/ http://127.0.0.1:29180/index.html || true   # keep-alive
  curl -s -o /dev/null -H 'Connection: close' http://127.0.0.1:29180/ || true
  cap_stop 0.5
  cap loopback-refused - lo tcp port 29181
  curl -s -o /dev/null --max-time 3 http://127.0.0.1:29181/ || true
  curl -s -o /dev/null --max-time 3 http://127.0.0.1:29181/ || true
  cap_stop 0.5
  teardown
}

ALL=(healthy refused blackhole hang tls reset lossy timewait direct mixed artefacts loopback)

# More scenarios live in scenarios-*.sh beside this file: each defines sc_NAME functions with the
# helpers above and appends its names to ALL.
for f in "$LAB"/scenarios-*.sh; do
  [ -e "$f" ] || continue
  # shellcheck source=/dev/null
  . "$f"
done

main() {
  [ "$(id -u)" = 0 ] || { echo "run as root" >&2; exit 1; }
  [ $# -gt 0 ] || set -- all
  if [ "$1" = list ]; then printf '%s\n' "${ALL[@]}"; exit 0; fi
  if [ "$1" = all ]; then set -- "${ALL[@]}"; fi
  # One lab at a time on a machine: the namespaces and addresses are fixed, so a second run
  # waits here for the first to finish.
  exec 9>/tmp/proxyscope-lab.lock
  flock 9
  local s
  for s in "$@"; do
    declare -F "sc_$s" >/dev/null || { echo "unknown scenario $s (try: list)" >&2; exit 2; }
    log "=== scenario $s"
    "sc_$s"
  done
  log "done; captures in $OUT"
}
main "$@"
