# Scenario "scan": one client connects to 300 ports of the proxy host (nothing listens but a python
# http.server on port 80), the way `nc -z` or a SYN scan probes: proxyscope must report ONE info
# `port-scan` verdict, not hundreds of connection-refused verdicts (issue 11, item 6).
# Sourced by run.sh.

sc_scan() {
  topo
  bg ps-proxy "$PY" -m http.server 80 --bind 10.78.1.1 --directory "$T/www" >>"$T/backend.log" 2>&1
  wait_listen ps-proxy 80
  cap scan-client ps-client veth-c
  # bash's /dev/tcp: a real connect() per port; closed ports answer RST at once.
  C bash -c 'for p in $(seq 1 300); do (exec 3<>/dev/tcp/10.78.1.1/$p) 2>/dev/null; done; true'
  cap_stop 0.5
  teardown
}
ALL+=(scan)
