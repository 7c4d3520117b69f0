# shellcheck shell=bash
# Scenario "hostile" (issues 13 and 15): a real nginx relays a backend whose error answers carry
# markup, Markdown and terminal escape sequences — in the 502/503 bodies, in the Server header
# (passed through with proxy_pass_header) and in a custom header — for requests whose targets
# and Host carry markup and Markdown too. The reports must show all of it as text: no HTML or
# Markdown renders, no escape sequence reaches a terminal (tests/hostile.rs).
# Sourced by run.sh; the ground truth is in captures/expected-hostile.toml.
#
#   captures/lab/run.sh hostile

sc_hostile() {
  topo
  bg ps-backend "$PY" "$LAB/backend_hostile.py" --listen 10.78.2.2:8080 >>"$T/backend.log" 2>&1
  BACKEND_PID=$LASTPID
  wait_listen ps-backend 8080
  # /h/ goes to the hostile backend with its own Server header; /down/ to a closed port, so
  # nginx answers its own 502 page (<center><h1>502 Bad Gateway</h1></center>). One line: the
  # template's header comment quotes the placeholder, so a line break would leave the comment.
  nginx_up 10.78.2.2:8080 '        location /h/ { proxy_pass http://10.78.2.2:8080; proxy_pass_header Server; } location /down/ { proxy_pass http://10.78.2.2:8082; }'
  cap hostile-nginx-any ps-proxy any
  C "$PY" "$LAB/client_hostile.py" 10.78.1.1:80 'shop.invalid' \
    '/h/502/<img%20src="https://example.invalid/u.png">/<script>x()</script>/**bold**/`tick`/a|b' \
    '/h/503/[link](https://example.invalid/)/__u__/~~s~~/$x$/%1b[31m' \
    '/down/<h1>down</h1>' >"$T/client.out" 2>>"$T/curl.err" || true
  C "$PY" "$LAB/client_hostile.py" 10.78.1.1:80 '**host**`x`|.invalid' '/h/502/host' \
    >>"$T/client.out" 2>>"$T/curl.err" || true
  log "hostile client: $(tr '\n' ' ' <"$T/client.out")"
  cap_stop 0.5
  teardown
}
ALL+=(hostile)
