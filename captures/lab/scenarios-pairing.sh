# shellcheck shell=bash
# Pairing scenarios for issue 10 ("which request broke, end to end"): sourced by run.sh.
# Each scenario records, with real nginx / haproxy / squid / python backends, client exchanges
# whose failures must be paired with the backend attempt(s) they caused. The ground truth
# (frames, pairs, verdicts) is in captures/expected-pairing.toml, written by
# captures/lab/pairing_expected.py; captures/lab/pairing.md explains each capture.
#
#   captures/lab/run.sh pair-two-locations pair-backend-5xx ...     (or: run.sh list)
#
# The proxies' own logs (nginx access/error log with client port and upstream timers, haproxy
# httplog/tcplog with the backend source port, squid access.log with the server-side local
# port) are copied to $PAIR_LOGS/<scenario>/ before the teardown removes the temp dir.

PAIR_LOGS=${PAIR_LOGS:-/tmp/proxyscope-pairing-logs}

pair_keep_logs() { # pair_keep_logs NAME : keep the proxy/backend/curl logs of this run
  local d="$PAIR_LOGS/$1" f
  rm -rf "$d"; mkdir -p "$d"
  sleep 0.3   # let the proxies flush their logs
  for f in "$T"/*.log "$T"/curl.err "$T"/*.out "$T"/squid/*.log; do
    [ -f "$f" ] && cp "$f" "$d/"
  done
  log "logs kept in $d"
}

pnginx_up() { # pnginx_up LOCATIONS [STREAM-BLOCK] : nginx from pairing-nginx.conf.in
  local locs=$1 stream=${2:-} conf
  conf=$(<"$LAB/pairing-nginx.conf.in")
  conf=${conf//@T@/"$T"}
  conf=${conf//@LOCATIONS@/"$locs"}
  conf=${conf//@STREAM@/"$stream"}
  printf '%s\n' "$conf" > "$T/nginx.conf"
  bg ps-proxy nginx -c "$T/nginx.conf" -g 'daemon off;'
  NGINX_PID=$LASTPID
  wait_listen ps-proxy 80
}

phaproxy_up() { # phaproxy_up : haproxy with $T/haproxy.cfg, log lines (stdout) in $T/haproxy.log
  bg ps-proxy haproxy -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1
  HAPROXY_PID=$LASTPID
}

# haproxy's default httplog / tcplog formats plus the backend-side source address (%bi:%bp),
# so each log line names the backend connection it used (the last attempt's, for retries)
PAIR_HTTPLOG='%ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r be_src=%bi:%bp'
PAIR_TCPLOG='%ci:%cp [%t] %ft %b/%s %Tw/%Tc/%Tt %B %ts %ac/%fc/%bc/%sc/%rc %sq/%bq be_src=%bi:%bp'

pair_haproxy_global() { # common head of the haproxy configs
  cat <<EOF
global
    maxconn 1000
    log stdout format raw local0 info

defaults
    log global
    timeout connect 2s
    timeout client 10s
    timeout server 3s
EOF
}

pb_up() { # pb_up PORT MODE [args] : backend_pairing.py in ps-backend
  local port=$1 mode=$2; shift 2
  bg ps-backend "$PY" "$LAB/backend_pairing.py" --listen "10.78.2.2:$port" --mode "$mode" "$@" >>"$T/backend.log" 2>&1
  BACKEND_PID=$LASTPID
  wait_listen ps-backend "$port"
}

curl_bg() { # curl_bg TAG ARGS... : curl in the client ns in the background; codes in $T/TAG.out
  local tag=$1; shift
  bg ps-client curl -sS -o /dev/null -w "%{http_code} exit=%{exitcode}\n" --max-time "${CURL_MAX:-10}" "$@" \
    >"$T/$tag.out" 2>>"$T/curl.err"
  CURL_BG_PID=$LASTPID
}

curl_wait() { # curl_wait PID TAG : wait for a background curl and log its result
  wait "$1" 2>/dev/null || true
  log "curl ($2) -> $(tr '\n' ' ' <"$T/$2.out" 2>/dev/null)"
}

# ---------------------------------------------------------------- 1 two locations at once
sc_pair-two-locations() {
  # /slow/ -> backend that accepts and never answers (proxy_read_timeout 2s -> 504);
  # 0.5 s later /down/ -> closed port 8082 (502). Both requests are in flight together.
  topo; labbackend_up 8081 hang
  pnginx_up '        location /slow/ { proxy_pass http://10.78.2.2:8081; proxy_read_timeout 2s; }
        location /down/ { proxy_pass http://10.78.2.2:8082; }'
  three_legs pair-two-locations-nginx
  curl_bg slow http://10.78.1.1/slow/report
  local slow=$CURL_BG_PID
  sleep 0.5
  curl_c http://10.78.1.1/down/status
  curl_wait "$slow" slow
  cap_stop 0.5
  pair_keep_logs pair-two-locations
  teardown
}

# ---------------------------------------------------------------- 2 backend answers 5xx itself
sc_pair-backend-5xx() {
  # (a) nginx passes through the backend's own 503 (gunicorn, maintenance page)
  topo; pb_up 8088 maint503
  pnginx_up '        location / { proxy_pass http://10.78.2.2:8088; }'
  cap pair-backend503-nginx-any ps-proxy any
  curl_c http://10.78.1.1/shop/ http://10.78.1.1/shop/cart      # keep-alive: 2 requests, 1 client connection
  cap_stop 0.5
  pair_keep_logs pair-backend503-nginx
  teardown
  # (b) haproxy (mode http, option forwardfor) passes through the backend's own 502 (uvicorn, JSON)
  topo; pb_up 8086 app502
  { pair_haproxy_global; cat <<EOF
    mode http
    option forwardfor
    log-format "$PAIR_HTTPLOG"
    retries 1

frontend fe
    bind 10.78.1.1:80
    default_backend be

backend be
    server s1 10.78.2.2:8086
EOF
  } > "$T/haproxy.cfg"
  phaproxy_up; wait_listen ps-proxy 80
  cap pair-backend502-haproxy-any ps-proxy any
  curl_c http://10.78.1.1/api/orders http://10.78.1.1/api/orders/17   # keep-alive: haproxy reuses its server connection
  curl_c http://10.78.1.1/api/health                                    # new client connection
  cap_stop 0.5
  pair_keep_logs pair-backend502-haproxy
  teardown
}

# ---------------------------------------------------------------- 3 haproxy 503 after retries
sc_pair-haproxy-retries() {
  # closed backend port, retries 2: 3 SYNs (each answered by RST) per request, then 503
  topo
  { pair_haproxy_global; cat <<EOF
    mode http
    option forwardfor
    log-format "$PAIR_HTTPLOG"
    retries 2

frontend fe
    bind 10.78.1.1:80
    default_backend be

backend be
    server s1 10.78.2.2:8080
EOF
  } > "$T/haproxy.cfg"
  phaproxy_up; wait_listen ps-proxy 80
  cap pair-haproxy-retries-any ps-proxy any
  curl_c http://10.78.1.1/login
  curl_c http://10.78.1.1/static/app.js
  cap_stop 0.5
  pair_keep_logs pair-haproxy-retries
  teardown
}

# ---------------------------------------------------------------- 4 squid CONNECT tunnels
sc_pair-squid-connect() {
  # squid 5 forward proxy on 10.78.1.1:3128, cache off.
  # (a) CONNECT 10.78.2.2:9443: backend accepts and never answers the ClientHello
  #     (backend.py --mode tls-stall); curl gives up after 4 s
  # (b) CONNECT 10.78.2.2:9444: nothing listens -> squid answers 503 (ERR_CONNECT_FAIL)
  topo; labbackend_up 9443 tls-stall
  mkdir -p "$T/squid"; chmod 0777 "$T/squid"; chmod o+x "$T"   # squid drops to user proxy
  cat > "$T/squid.conf" <<EOF
http_port 10.78.1.1:3128
acl labnet src 10.78.1.0/24 10.78.2.0/24
http_access allow labnet
http_access deny all
cache deny all
cache_mem 8 MB
pid_filename $T/squid/squid.pid
logformat pair %ts.%03tu %6tr %>a:%>p %Ss/%03>Hs %<st %rm %ru %Sh/%<a:%<p local=%<la:%<lp
access_log stdio:$T/squid/access.log pair
cache_log $T/squid/cache.log
cache_store_log none
coredump_dir $T/squid
dns_nameservers 127.0.0.1
pinger_enable off
netdb_filename none
icp_port 0
htcp_port 0
shutdown_lifetime 0 seconds
connect_timeout 2 seconds
connect_retries 0
forward_max_tries 1
visible_hostname proxy.lab
logfile_rotate 0
EOF
  bg ps-proxy squid -N -f "$T/squid.conf" >>"$T/squid-stdout.log" 2>&1
  SQUID_PID=$LASTPID
  wait_listen ps-proxy 3128 || { log "squid did not start: $(tail -5 "$T/squid/cache.log" "$T/squid-stdout.log" 2>/dev/null)"; return 1; }
  # squid looks up the client address (PTR) on its dns_nameservers 127.0.0.1, where nothing
  # listens: keep that loopback noise out of the capture
  cap pair-squid-connect-any ps-proxy any not host 127.0.0.1
  CURL_MAX=4 curl_c -k -x http://10.78.1.1:3128 https://10.78.2.2:9443/login
  sleep 0.5
  CURL_MAX=4 curl_c -k -x http://10.78.1.1:3128 https://10.78.2.2:9444/login
  cap_stop 0.5
  pair_keep_logs pair-squid-connect
  teardown
}

# ---------------------------------------------------------------- 5 TLS passthrough
PAIR_STREAM='stream {
    log_format pair "$msec $remote_addr:$remote_port $server_addr:$server_port $protocol $status $bytes_sent $bytes_received $session_time upstream=$upstream_addr uconnect=$upstream_connect_time ufirst=$upstream_first_byte_time";
    access_log @T@/nginx-stream.log pair;
    proxy_connect_timeout 2s;
    proxy_timeout 3s;
    server { listen 10.78.1.1:443; ssl_preread on; proxy_pass 10.78.2.2:9443; }
    server { listen 10.78.1.1:8443; ssl_preread on; proxy_pass 10.78.2.2:9444; }
}'

sc_pair-passthrough() {
  # TLS passthrough: :443 -> 10.78.2.2:9443 (accepts, never answers the ClientHello),
  # :8443 -> 10.78.2.2:9444 (closed). Client: curl -k --max-time 5, stall first, then refused.
  # Both proxies wait for the ClientHello before they connect upstream (haproxy
  # tcp-request inspect-delay + req_ssl_hello_type, nginx ssl_preread, as SNI routing setups
  # do): without that, whether the backend SYN comes before or after the client's ClientHello
  # is a race, and the captures would not have the same shape on every run.
  # (a) haproxy mode tcp (retries 1), timeout server 3s
  topo; labbackend_up 9443 tls-stall
  { pair_haproxy_global; cat <<EOF
    mode tcp
    log-format "$PAIR_TCPLOG"
    retries 1

frontend tls_stall
    bind 10.78.1.1:443
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    default_backend be_stall

frontend tls_refused
    bind 10.78.1.1:8443
    tcp-request inspect-delay 5s
    tcp-request content accept if { req_ssl_hello_type 1 }
    default_backend be_refused

backend be_stall
    server s1 10.78.2.2:9443

backend be_refused
    server s2 10.78.2.2:9444
EOF
  } > "$T/haproxy.cfg"
  phaproxy_up; wait_listen ps-proxy 443; wait_listen ps-proxy 8443
  cap pair-passthrough-haproxy-any ps-proxy any
  CURL_MAX=5 curl_c -k --resolve app.lab:443:10.78.1.1 https://app.lab/
  sleep 0.5
  CURL_MAX=5 curl_c -k --resolve app.lab:8443:10.78.1.1 https://app.lab:8443/
  cap_stop 0.5
  pair_keep_logs pair-passthrough-haproxy
  teardown
  # (b) nginx stream {} (proxy_connect_timeout 2s, proxy_timeout 3s)
  topo; labbackend_up 9443 tls-stall
  pnginx_up '        location / { return 404; }' "${PAIR_STREAM//@T@/"$T"}"
  wait_listen ps-proxy 443; wait_listen ps-proxy 8443
  cap pair-passthrough-nginx-any ps-proxy any
  CURL_MAX=5 curl_c -k --resolve app.lab:443:10.78.1.1 https://app.lab/
  sleep 0.5
  CURL_MAX=5 curl_c -k --resolve app.lab:8443:10.78.1.1 https://app.lab:8443/
  cap_stop 0.5
  pair_keep_logs pair-passthrough-nginx
  teardown
}

# ---------------------------------------------------------------- 6 backend killed mid-body
sc_pair-midbody-kill() {
  # backend declares Content-Length 4000000, sends 600000 body bytes, then RST (SO_LINGER 0);
  # nginx passes the 200 and the 600000 bytes on and closes: truncated 200 at the client
  topo; pb_up 8087 reset-after --size 4000000 --cut 600000 --rate 2000000   # 0.3 s of body
  pnginx_up '        location / { proxy_pass http://10.78.2.2:8087; proxy_read_timeout 10s; }'
  # one tcpdump only, and the body paced at 2 MB/s: unpaced, or with three tcpdumps at once,
  # the "any" capture had kernel drops
  cap pair-midbody-kill-nginx-any ps-proxy any
  curl_c http://10.78.1.1/download/backup.tar
  cap_stop 0.5
  pair_keep_logs pair-midbody-kill
  teardown
}

# ---------------------------------------------------------------- 7 HTTPS upstream, no answer
sc_pair-https-upstream() {
  # nginx proxy_pass https://10.78.2.2:8443 (proxy_read_timeout 3s); the python TLS server
  # completes the handshake, reads the request and never answers -> 504 after 3 s, 3 times
  topo; certs backend.lab
  pb_up 8443 tls-hang --cert "$T/backend.lab.crt" --key "$T/backend.lab.key"
  pnginx_up '        location / { proxy_pass https://10.78.2.2:8443; proxy_read_timeout 3s; }'
  cap pair-https-upstream-nginx-any ps-proxy any
  curl_c http://10.78.1.1/v2/mod/@v/list http://10.78.1.1/v2/mod/@v/v1.2.3.info   # keep-alive: 2 requests
  curl_c http://10.78.1.1/v2/mod/@latest
  cap_stop 0.5
  pair_keep_logs pair-https-upstream
  teardown
}

ALL+=(pair-two-locations pair-backend-5xx pair-haproxy-retries pair-squid-connect pair-passthrough
      pair-midbody-kill pair-https-upstream)
