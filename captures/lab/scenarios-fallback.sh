# shellcheck shell=bash
# Address-family fallback on loopback, sourced by run.sh: a real curl resolving a name to [::1]
# and 127.0.0.1 (--resolve with both) against python3 -m http.server bound to 127.0.0.1 only.
# curl tries [::1] first (refused: RST), then 127.0.0.1 (200). Healthy traffic: the refusal
# must be info (absorbed by the fallback), never an outage.

sc_fallback() {
  teardown; T=$(mktemp -d /tmp/pslab.XXXXXX)
  printf 'hello from loopback\n' > "$T/index.html"
  if ss -tanH "( sport = :29183 or dport = :29183 )" | grep -q .; then
    log "port 29183 busy on loopback; aborting fallback scenario"; return 1
  fi
  bg - "$PY" -m http.server 29183 --bind 127.0.0.1 --directory "$T" >"$T/backend.log" 2>&1
  local i
  for i in $(seq 1 100); do ss -ltnH "sport = :29183" | grep -q . && break; sleep 0.05; done
  cap loopback-fallback-curl - lo tcp port 29183
  curl -s -o /dev/null --resolve 'fallback.test:29183:[::1],127.0.0.1' http://fallback.test:29183/ || true
  curl -s -o /dev/null --resolve 'fallback.test:29183:[::1],127.0.0.1' http://fallback.test:29183/index.html || true
  cap_stop 0.5
  teardown
}

ALL+=(fallback)
