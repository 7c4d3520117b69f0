# shellcheck shell=bash
# The zoo (issue 11): real proxies and clients besides nginx/haproxy mode http, each with a
# healthy baseline and the failures it can show. Sourced by run.sh; uses its helpers (topo, bg,
# cap, cap_stop, curl_c, direct_path, wait_listen, ...). Captures: captures/zoo-*.pcap,
# ground truth: captures/expected-zoo.toml (captures/lab/zoo_expected.py), notes: zoo.md.
#
# Vantage: most zoo captures are `tcpdump -i any` in ps-proxy (`-any`, Linux SLL2, both legs in
# one file). Each healthy baseline is two captures: `zoo-X-any` (full frames: keep-alive pair,
# Connection: close, TLS) and `zoo-X-big-any` (one keep-alive connection with a small request and
# a 2 MiB body, frames cut at 256 bytes with -s 256 to stay small).
# The proxy/backend/client logs of every run are kept in $ZOO_LOGS/<scenario>/ (outside the repo).

ZOO_LOGS=${ZOO_LOGS:-/tmp/proxyscope-zoo-logs}
ZOO_SNAP=256
ZOO_BIG=2097152

zoo_tpl() { # zoo_tpl IN OUT KEY=VALUE... : copy template IN to OUT replacing @T@ and every @KEY@
  local in=$1 out=$2 conf kv; shift 2
  conf=$(<"$in")
  conf=${conf//@T@/"$T"}
  for kv in "$@"; do conf=${conf//@${kv%%=*}@/"${kv#*=}"}; done
  printf '%s\n' "$conf" > "$out"
}

zoo_keep() { # zoo_keep NAME : keep the logs of this run in $ZOO_LOGS/NAME
  local d="$ZOO_LOGS/$1" f
  rm -rf "$d"; mkdir -p "$d"
  for f in "$T"/*.log "$T"/*.err "$T"/*.out "$T"/squid/*.log "$T"/apache/*.log "$T"/caddy*.log "$T"/go-*.txt; do
    [ -f "$f" ] && cp "$f" "$d/" || true
  done
  log "logs kept in $d"
}

zoo_prep() { # common files: 2 MiB body, test CA + leaf certs, hosts file, world-readable $T
  chmod 755 "$T"
  chmod -R a+rX "$T/www"
  head -c "$ZOO_BIG" /dev/urandom > "$T/www/big.bin"
  # test CA and leaf certificates (EC P-256) signed by it
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=proxyscope lab test CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -keyout "$T/ca.key" -out "$T/ca.crt" >/dev/null 2>&1
  zoo_leaf proxy.lab "DNS:proxy.lab,IP:10.78.1.1"
  zoo_leaf modules.lab "DNS:modules.lab,IP:10.78.2.2"
  printf '10.78.1.1 proxy.lab\n10.78.1.2 client.lab\n10.78.2.1 proxy-backside.lab\n10.78.2.2 modules.lab backend.lab\n127.0.0.1 localhost\n' > "$T/hosts"
  chmod 644 "$T"/*.crt "$T/hosts"
}

zoo_leaf() { # zoo_leaf NAME SAN
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$1" \
    -keyout "$T/$1.key" -out "$T/$1.csr" >/dev/null 2>&1
  printf 'subjectAltName=%s\nextendedKeyUsage=serverAuth\n' "$2" > "$T/$1.ext"
  openssl x509 -req -in "$T/$1.csr" -CA "$T/ca.crt" -CAkey "$T/ca.key" -CAcreateserial \
    -days 3650 -extfile "$T/$1.ext" -out "$T/$1.crt" >/dev/null 2>&1
}

zoo_backend() { # zoo_backend PORT [--tls] [--delay S] [--dir D] : backend_zoo.py on 10.78.2.2:PORT
  local port=$1 args=(); shift
  local dir="$T/www"
  while [ $# -gt 0 ]; do
    case $1 in
      --tls) args+=(--tls "$T/modules.lab.crt" "$T/modules.lab.key");;
      --delay) args+=(--delay "$2"); shift;;
      --dir) dir=$2; shift;;
    esac
    shift
  done
  bg ps-backend "$PY" "$LAB/backend_zoo.py" --listen "10.78.2.2:$port" --dir "$dir" "${args[@]}" >>"$T/backend.log" 2>&1
  wait_listen ps-backend "$port"
}

zoo_haproxy() { # zoo_haproxy TEMPLATE [OPTION] [UPSTREAM]
  zoo_tpl "$LAB/$1" "$T/haproxy.cfg" "OPTION=${2:-}" "UPSTREAM=${3:-10.78.2.2:8080}"
  bg ps-proxy haproxy -db -f "$T/haproxy.cfg" >>"$T/haproxy.log" 2>&1
  wait_listen ps-proxy 80
}

zoo_nginx() { # zoo_nginx TEMPLATE PORT
  mkdir -p "$T/tmp"
  zoo_tpl "$LAB/$1" "$T/nginx.conf"
  bg ps-proxy nginx -c "$T/nginx.conf" -g 'daemon off;'
  wait_listen ps-proxy "$2"
}

zoo_squid() { # zoo_squid PORTS RULES [listen port to wait for]
  mkdir -p "$T/squid"; chown proxy:proxy "$T/squid"
  zoo_tpl "$LAB/zoo-squid.conf.in" "$T/squid/squid.conf" "PORTS=$1" "RULES=$2"
  chmod 644 "$T/squid/squid.conf"
  bg ps-proxy squid -N -f "$T/squid/squid.conf" >>"$T/squid-stdout.log" 2>&1
  wait_listen ps-proxy "${3:-3128}" || { log "squid: $(cat "$T/squid-stdout.log" 2>&1)"; return 1; }
  sleep 0.5
}

zoo_tinyproxy() { # zoo_tinyproxy CONNECTPORT
  zoo_tpl "$LAB/zoo-tinyproxy.conf.in" "$T/tinyproxy.conf" "CONNECTPORT=$1"
  bg ps-proxy tinyproxy -d -c "$T/tinyproxy.conf" >>"$T/tinyproxy-stdout.log" 2>&1
  wait_listen ps-proxy 8888
}

zoo_apache() {
  mkdir -p "$T/apache"
  zoo_tpl "$LAB/zoo-apache.conf.in" "$T/apache/httpd.conf"
  bg ps-proxy apache2 -f "$T/apache/httpd.conf" -DFOREGROUND >>"$T/apache-stdout.log" 2>&1
  wait_listen ps-proxy 80
  wait_listen ps-proxy 3128
}

zoo_varnish() {
  zoo_tpl "$LAB/zoo-varnish.vcl.in" "$T/zoo.vcl"
  chmod 644 "$T/zoo.vcl"
  bg ps-proxy varnishd -F -n "$T/varnish" -a 10.78.1.1:80 -T none -f "$T/zoo.vcl" -s malloc,32m >>"$T/varnish.log" 2>&1
  wait_listen ps-proxy 80
  sleep 0.3
}

zoo_any() { cap "$1" ps-proxy any "${@:2}"; }

zoo_big() { # zoo_big CAPTURE BASE-URL [curl args] : / then the 2 MiB /big.bin on one keep-alive
  # connection, in its own capture cut at $ZOO_SNAP bytes per frame (-s) to stay small
  local name=$1 base=$2; shift 2
  zoo_any "$name" -s "$ZOO_SNAP"
  curl_c "$@" "$base/" "$base/big.bin"
  cap_stop 0.5
}

# ================================================================ haproxy mode http
sc_zoo-haproxy() {
  # (1) default http-keep-alive, HTTP/1.1 keep-alive backend (backend_zoo.py)
  topo; zoo_prep; zoo_backend 8080; zoo_haproxy zoo-haproxy-http.cfg.in "option http-keep-alive"
  zoo_big zoo-haproxy-keepalive-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_haproxy zoo-haproxy-http.cfg.in "option http-keep-alive"
  zoo_any zoo-haproxy-keepalive-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html      # keep-alive: two requests on one connection
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/
  cap_stop 0.5
  zoo_keep zoo-haproxy-keepalive
  teardown
  # (2) option http-server-close, HTTP/1.0 backend (python3 -m http.server closes first: FIN,
  #     then haproxy's abortive close, RST)
  topo; zoo_prep; httpserver_up; zoo_haproxy zoo-haproxy-http.cfg.in "option http-server-close"
  zoo_big zoo-haproxy-server-close-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; httpserver_up; zoo_haproxy zoo-haproxy-http.cfg.in "option http-server-close"
  zoo_any zoo-haproxy-server-close-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/
  cap_stop 0.5
  zoo_keep zoo-haproxy-server-close
  teardown
}

sc_zoo-haproxy-churn() {
  # 200 short requests, each its own client connection (Connection: close) and its own backend
  # connection (python3 -m http.server, HTTP/1.0): 200 FIN-then-RST backend closes. Healthy.
  topo; zoo_prep; httpserver_up; zoo_haproxy zoo-haproxy-http.cfg.in "option http-keep-alive"
  zoo_any zoo-haproxy-churn-any
  local i
  for i in $(seq 1 200); do printf 'url = "http://10.78.1.1/?n=%d"\noutput = "/dev/null"\n' "$i"; done > "$T/churn.curlrc"
  C curl -s -H 'Connection: close' -w '%{http_code}\n' -K "$T/churn.curlrc" > "$T/churn-codes.out" 2>>"$T/curl.err" || true
  log "churn: status codes: $(sort "$T/churn-codes.out" | uniq -c | tr '\n' ' ')"
  cap_stop 0.5
  zoo_keep zoo-haproxy-churn
  teardown
}

# ================================================================ TCP/TLS passthrough
zoo_passthrough_clients() {
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  curl_c --cacert "$T/ca.crt" --resolve modules.lab:443:10.78.1.1 https://modules.lab/ https://modules.lab/page.html
  C openssl s_client -connect 10.78.1.1:443 -servername modules.lab -CAfile "$T/ca.crt" -verify_return_error \
    < /dev/null > "$T/s_client.out" 2>&1 || true
  log "s_client: $(grep -m1 'Verify return code' "$T/s_client.out" || echo 'no verify line')"
}

sc_zoo-haproxy-tcp() {
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_haproxy zoo-haproxy-tcp.cfg.in
  wait_listen ps-proxy 443
  zoo_big zoo-haproxy-tcp-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_haproxy zoo-haproxy-tcp.cfg.in
  wait_listen ps-proxy 443
  zoo_any zoo-haproxy-tcp-any
  zoo_passthrough_clients
  cap_stop 0.5
  zoo_keep zoo-haproxy-tcp
  teardown
  # the same TLS passthrough traffic, frames cut at 256 bytes: TLS 1.3 handshakes whose server
  # flight is cut must not read as failed handshakes (healthy)
  topo; zoo_prep; zoo_backend 8443 --tls; zoo_haproxy zoo-haproxy-tcp.cfg.in
  wait_listen ps-proxy 443
  zoo_any zoo-haproxy-tcp-tls-snap256-any -s "$ZOO_SNAP"
  curl_c --cacert "$T/ca.crt" --resolve modules.lab:443:10.78.1.1 https://modules.lab/ https://modules.lab/page.html
  C openssl s_client -connect 10.78.1.1:443 -servername modules.lab -CAfile "$T/ca.crt" -verify_return_error \
    < /dev/null > "$T/s_client.out" 2>&1 || true
  log "s_client: $(grep -m1 'Verify return code' "$T/s_client.out" || echo 'no verify line')"
  cap_stop 0.5
  zoo_keep zoo-haproxy-tcp-tls-snap256
  teardown
}

sc_zoo-nginx-stream() {
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_nginx zoo-nginx-stream.conf.in 80
  wait_listen ps-proxy 443
  zoo_big zoo-nginx-stream-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_nginx zoo-nginx-stream.conf.in 80
  wait_listen ps-proxy 443
  zoo_any zoo-nginx-stream-any
  zoo_passthrough_clients
  cap_stop 0.5
  zoo_keep zoo-nginx-stream
  teardown
}

# ================================================================ squid
sc_zoo-squid() {
  # forward proxy: absolute-form GETs (keep-alive small + 2 MiB, and Connection: close) and a
  # CONNECT to the TLS backend (squid resolves modules.lab from its hosts_file)
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_squid "" ""
  zoo_big zoo-squid-forward-big-any http://10.78.2.2:8080 -x http://10.78.1.1:3128
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_squid "" ""
  zoo_any zoo-squid-forward-any
  curl_c -x http://10.78.1.1:3128 http://10.78.2.2:8080/ http://10.78.2.2:8080/page.html
  curl_c -x http://10.78.1.1:3128 -H 'Connection: close' http://10.78.2.2:8080/page.html
  curl_c -x http://10.78.1.1:3128 --cacert "$T/ca.crt" https://modules.lab:8443/ https://modules.lab:8443/page.html
  cap_stop 0.5
  zoo_keep zoo-squid-forward
  teardown
  # accelerator (reverse proxy) on 10.78.1.1:80
  topo; zoo_prep; zoo_backend 8080
  zoo_squid "http_port 10.78.1.1:80 accel defaultsite=backend.lab no-vhost
cache_peer 10.78.2.2 parent 8080 0 no-query no-digest originserver name=be
cache_peer_access be allow all" "" 80
  zoo_big zoo-squid-accel-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080
  zoo_squid "http_port 10.78.1.1:80 accel defaultsite=backend.lab no-vhost
cache_peer 10.78.2.2 parent 8080 0 no-query no-digest originserver name=be
cache_peer_access be allow all" "" 80
  zoo_any zoo-squid-accel-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-squid-accel
  teardown
}

sc_zoo-squid-denied() {
  # 403 ERR_ACCESS_DENIED for the backend (http_access deny by dst), while the same client
  # reaches it directly through the proxy ns as a router. Captured on the client.
  topo; zoo_prep; direct_path; zoo_backend 8080; zoo_backend 8443 --tls
  zoo_squid "" "acl lab_backend dst 10.78.2.2/32
http_access deny lab_backend"
  cap zoo-squid-denied-client ps-client veth-c
  curl_c http://10.78.2.2:8080/                                              # direct: 200
  curl_c -x http://10.78.1.1:3128 http://10.78.2.2:8080/                     # proxied: 403
  curl_c --cacert "$T/ca.crt" https://10.78.2.2:8443/                        # direct TLS: 200
  curl_c -x http://10.78.1.1:3128 --cacert "$T/ca.crt" https://10.78.2.2:8443/   # CONNECT: 403
  cap_stop 0.5
  zoo_keep zoo-squid-denied
  teardown
}

sc_zoo-squid-auth() {
  # 407 Proxy Authentication Required (auth_param basic, basic_ncsa_auth): no credentials sent
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls
  mkdir -p "$T/squid"
  printf 'lab:%s\n' "$(openssl passwd -apr1 labsecret)" > "$T/squid/passwd"
  chmod 644 "$T/squid/passwd"
  zoo_squid "" "auth_param basic program /usr/lib/squid/basic_ncsa_auth $T/squid/passwd
auth_param basic realm proxyscope-lab
acl authed proxy_auth REQUIRED
http_access deny !authed"
  zoo_any zoo-squid-auth-any
  curl_c -x http://10.78.1.1:3128 http://10.78.2.2:8080/                        # 407
  curl_c -x http://10.78.1.1:3128 --cacert "$T/ca.crt" https://modules.lab:8443/  # CONNECT 407
  cap_stop 0.5
  zoo_keep zoo-squid-auth
  teardown
}

sc_zoo-squid-refused() {
  # nothing listens on the backend: squid answers 503 (ERR_CONNECT_FAIL)
  topo; zoo_prep; zoo_squid "" ""
  zoo_any zoo-squid-refused-any
  curl_c -x http://10.78.1.1:3128 http://10.78.2.2:8080/
  curl_c -x http://10.78.1.1:3128 -H 'Connection: close' http://10.78.2.2:8080/page.html
  cap_stop 0.5
  zoo_keep zoo-squid-refused
  teardown
}

# ================================================================ tinyproxy
sc_zoo-tinyproxy() {
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_tinyproxy 8443
  zoo_big zoo-tinyproxy-forward-big-any http://10.78.2.2:8080 -x http://10.78.1.1:8888
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_tinyproxy 8443
  zoo_any zoo-tinyproxy-forward-any
  curl_c -x http://10.78.1.1:8888 http://10.78.2.2:8080/ http://10.78.2.2:8080/page.html
  curl_c -x http://10.78.1.1:8888 -H 'Connection: close' http://10.78.2.2:8080/page.html
  curl_c -x http://10.78.1.1:8888 --cacert "$T/ca.crt" https://10.78.2.2:8443/ https://10.78.2.2:8443/page.html
  cap_stop 0.5
  zoo_keep zoo-tinyproxy-forward
  teardown
  # ConnectPort 443 only: CONNECT to 8443 refused with 403; a plain GET still works
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_tinyproxy 443
  zoo_any zoo-tinyproxy-denied-any
  curl_c -x http://10.78.1.1:8888 http://10.78.2.2:8080/
  curl_c -x http://10.78.1.1:8888 --cacert "$T/ca.crt" https://10.78.2.2:8443/
  curl_c -x http://10.78.1.1:8888 --cacert "$T/ca.crt" https://10.78.2.2:8443/page.html
  cap_stop 0.5
  zoo_keep zoo-tinyproxy-denied
  teardown
}

# ================================================================ Apache httpd
sc_zoo-apache() {
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_apache
  zoo_big zoo-apache-healthy-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_backend 8443 --tls; zoo_apache
  zoo_any zoo-apache-healthy-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html                        # ProxyPass, keep-alive
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  curl_c -x http://10.78.1.1:3128 http://10.78.2.2:8080/                      # forward, absolute-form
  curl_c -x http://10.78.1.1:3128 --cacert "$T/ca.crt" https://10.78.2.2:8443/  # mod_proxy_connect
  cap_stop 0.5
  zoo_keep zoo-apache-healthy
  teardown
  # backend refused: ProxyPass answers 503
  topo; zoo_prep; zoo_apache
  zoo_any zoo-apache-refused-any
  curl_c http://10.78.1.1/
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-apache-refused
  teardown
}

# ================================================================ Varnish
sc_zoo-varnish() {
  topo; zoo_prep; zoo_backend 8080; zoo_varnish
  zoo_big zoo-varnish-healthy-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_varnish
  zoo_any zoo-varnish-healthy-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-varnish-healthy
  teardown
  # backend down: 503 Backend fetch failed
  topo; zoo_prep; zoo_varnish
  zoo_any zoo-varnish-down-any
  curl_c http://10.78.1.1/
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-varnish-down
  teardown
  # slow backend (answers after 5 s): first_byte_timeout 3s -> 503
  topo; zoo_prep; zoo_backend 8080 --delay 5; zoo_varnish
  zoo_any zoo-varnish-slow-any
  curl_c http://10.78.1.1/
  cap_stop 0.5
  zoo_keep zoo-varnish-slow
  teardown
}

# ================================================================ Caddy
zoo_caddy() {
  mkdir -p "$T/caddy" "$T/caddy-home"
  zoo_tpl "$LAB/zoo-caddy.Caddyfile.in" "$T/Caddyfile"
  bg ps-proxy env HOME="$T/caddy-home" XDG_DATA_HOME="$T/caddy" XDG_CONFIG_HOME="$T/caddy" \
    caddy run --adapter caddyfile --config "$T/Caddyfile" >>"$T/caddy-stdout.log" 2>&1
  wait_listen ps-proxy 80 || { log "caddy: $(cat "$T/caddy-stdout.log" "$T/caddy.log" 2>&1 | tail -n 5)"; return 1; }
}

sc_zoo-caddy() {
  topo; zoo_prep; zoo_backend 8080; zoo_caddy
  zoo_big zoo-caddy-healthy-big-any http://10.78.1.1
  teardown                 # a fresh proxy for the main capture: no pooled connections carried over
  topo; zoo_prep; zoo_backend 8080; zoo_caddy
  zoo_any zoo-caddy-healthy-any
  curl_c http://10.78.1.1/ http://10.78.1.1/page.html
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-caddy-healthy
  teardown
  # backend refused: reverse_proxy answers 502
  topo; zoo_prep; zoo_caddy
  zoo_any zoo-caddy-refused-any
  curl_c http://10.78.1.1/
  curl_c -H 'Connection: close' http://10.78.1.1/page.html
  cap_stop 0.5
  zoo_keep zoo-caddy-refused
  teardown
}

# ================================================================ the Go command
zoo_gomodules() { # module lab.example/hello v1.0.0 served as a GOPROXY tree in $T/goproxy
  local src="$T/gosrc" fp="$T/gofileproxy/lab.example/hello/@v"
  mkdir -p "$src" "$fp"
  printf 'module lab.example/hello\n\ngo 1.19\n' > "$src/go.mod"
  printf 'package hello\n\n// Hello greets the lab.\nfunc Hello() string { return "hello from the zoo" }\n' > "$src/hello.go"
  # the module zip (golang.org/x/mod/zip layout: every file under module@version/)
  "$PY" - "$src" "$fp/v1.0.0.zip" <<'EOF'
import os, sys, zipfile
src, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as z:
    for name in sorted(os.listdir(src)):
        z.write(os.path.join(src, name), "lab.example/hello@v1.0.0/" + name)
EOF
  cp "$src/go.mod" "$fp/v1.0.0.mod"
  printf '{"Version":"v1.0.0","Time":"2026-01-01T00:00:00Z"}\n' > "$fp/v1.0.0.info"
  printf 'v1.0.0\n' > "$fp/list"
  # let the go command itself check the module (file:// proxy, no network) and write the
  # download cache; that cache is the tree the lab's module server serves
  zoo_goenv "$T/goseed" "file://$T/gofileproxy"
  (cd "$T/goseed/client" && env "${ZGOENV[@]}" go mod download -json lab.example/hello@v1.0.0 > "$T/go-seed.txt" 2>&1) \
    || { log "go could not read the seed module: $(cat "$T/go-seed.txt")"; return 1; }
  mkdir -p "$T/goproxy"
  cp -r "$T/goseed/modcache/cache/download/lab.example" "$T/goproxy/"
  chmod -R a+rX "$T/goproxy"
  log "GOPROXY tree: $(cd "$T/goproxy" && find . -type f | sort | tr '\n' ' ')"
}

zoo_goenv() { # zoo_goenv DIR GOPROXY : fresh GOPATH/GOCACHE/GOMODCACHE under DIR, env in ZGOENV
  local d=$1
  mkdir -p "$d/gopath" "$d/gocache" "$d/modcache" "$d/client" "$d/home"
  printf 'module lab.example/client\n\ngo 1.19\n\nrequire lab.example/hello v1.0.0\n' > "$d/client/go.mod"
  ZGOENV=(-i PATH=/usr/lib/go-1.19/bin:/usr/bin:/bin HOME="$d/home" GOPATH="$d/gopath" GOCACHE="$d/gocache"
         GOMODCACHE="$d/modcache" GOPROXY="$2" GOSUMDB=off GONOSUMDB='*' GONOSUMCHECK=1 GOFLAGS=-mod=mod
         GOTOOLCHAIN=local GOENV=off GOTELEMETRY=off SSL_CERT_FILE="$T/ca.crt")
}

zoo_go() { # zoo_go NAME [VAR=VALUE...] : go mod download in the client ns (lab.example/hello)
  local name=$1 rc; shift
  zoo_goenv "$T/$name" "${GOPROXY_LAB:-https://proxy.lab}"
  set +e
  C unshare -m sh -c 'mount --bind "$1" /etc/hosts && shift && cd "$1" && shift && exec "$@"' sh \
    "$T/hosts" "$T/$name/client" env "${ZGOENV[@]}" "$@" go mod download -x > "$T/go-$name.txt" 2>&1
  rc=$?
  set -e
  echo "exit status $rc" >> "$T/go-$name.txt"
  log "go mod download ($name): exit $rc: $(grep -v '^#' "$T/go-$name.txt" | grep -v '^exit' | head -3 | tr '\n' ' ')"
}

sc_zoo-go() {
  # (a) GOPROXY=https://proxy.lab: nginx (TLS, test CA) reverse-proxies to the module server
  topo; zoo_prep; zoo_gomodules; zoo_backend 8443 --tls --dir "$T/goproxy"
  zoo_tpl "$LAB/zoo-nginx-goproxy.conf.in" "$T/nginx.conf"; mkdir -p "$T/tmp"
  bg ps-proxy nginx -c "$T/nginx.conf" -g 'daemon off;'; wait_listen ps-proxy 443
  zoo_any zoo-go-nginx-any
  GOPROXY_LAB=https://proxy.lab zoo_go nginx
  cap_stop 0.5
  zoo_keep zoo-go-nginx
  teardown
  # (b) HTTPS_PROXY=http://10.78.1.1:3128 (squid CONNECT) to the module server
  topo; zoo_prep; zoo_gomodules; zoo_backend 8443 --tls --dir "$T/goproxy"; zoo_squid "" ""
  zoo_any zoo-go-squid-any
  GOPROXY_LAB=https://modules.lab:8443 zoo_go squid HTTPS_PROXY=http://10.78.1.1:3128
  cap_stop 0.5
  zoo_keep zoo-go-squid
  teardown
  # (c) the same, squid requires proxy authentication: 407
  topo; zoo_prep; zoo_gomodules; zoo_backend 8443 --tls --dir "$T/goproxy"
  mkdir -p "$T/squid"
  printf 'lab:%s\n' "$(openssl passwd -apr1 labsecret)" > "$T/squid/passwd"; chmod 644 "$T/squid/passwd"
  zoo_squid "" "auth_param basic program /usr/lib/squid/basic_ncsa_auth $T/squid/passwd
auth_param basic realm proxyscope-lab
acl authed proxy_auth REQUIRED
http_access deny !authed"
  zoo_any zoo-go-squid-407-any
  GOPROXY_LAB=https://modules.lab:8443 zoo_go squid-407 HTTPS_PROXY=http://10.78.1.1:3128
  cap_stop 0.5
  zoo_keep zoo-go-squid-407
  teardown
  # (d) module server down behind nginx: 502 (inside TLS on the client leg)
  topo; zoo_prep; zoo_gomodules
  zoo_tpl "$LAB/zoo-nginx-goproxy.conf.in" "$T/nginx.conf"; mkdir -p "$T/tmp"
  bg ps-proxy nginx -c "$T/nginx.conf" -g 'daemon off;'; wait_listen ps-proxy 443
  zoo_any zoo-go-nginx-down-any
  GOPROXY_LAB=https://proxy.lab zoo_go nginx-down
  cap_stop 0.5
  zoo_keep zoo-go-nginx-down
  teardown
}

ALL+=(zoo-haproxy zoo-haproxy-churn zoo-haproxy-tcp zoo-nginx-stream zoo-squid zoo-squid-denied
      zoo-squid-auth zoo-squid-refused zoo-tinyproxy zoo-apache zoo-varnish zoo-caddy zoo-go)
