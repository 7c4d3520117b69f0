#!/usr/bin/env bash
# live-replay.sh FILE [LIVE ARGS...]
#
# Throughput of `proxyscope live`: replays FILE with `tcpreplay --topspeed` onto one end of a veth
# pair while the capturer listens on the other end, then the same replay with
# `tcpdump -w /dev/null` as the reference. Both ends of the pair live in a network namespace this
# script creates (ps-live-bench), with no address and no route: nothing leaves it. Prints, per
# capturer: packets replayed, tcpreplay's rate, packets the capturer analysed / libpcap received /
# kernel-dropped, and the capturer's CPU time and peak RSS (from /proc, just before it is stopped
# by its PID).
#
# Needs root, tcpreplay, tcpdump. The namespace is removed on exit.
# Environment: PROXYSCOPE=path (default target/release/proxyscope); LOOPS=N replays the file N
# times (a long run: the RSS of `live` is sampled every second); RATE=N replays at N packets/s
# (tcpreplay --pps) instead of at top speed.
set -euo pipefail
FILE=${1:?usage: $0 FILE [LIVE ARGS...]}
shift
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PROXYSCOPE="${PROXYSCOPE:-$ROOT/target/release/proxyscope}"
NS=ps-live-bench
TMP=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$TMP"
}
trap cleanup EXIT
[ -n "${KEEP_ERR:-}" ] && trap 'cp "$TMP/live.err" "$KEEP_ERR" 2>/dev/null; cleanup' EXIT
ip netns del "$NS" 2>/dev/null || true
ip netns add "$NS"
ip -n "$NS" link add rpl type veth peer name cap
ip -n "$NS" link set rpl mtu 9000 up
ip -n "$NS" link set cap mtu 9000 up
ip netns exec "$NS" ethtool -K cap gro off >/dev/null 2>&1 || true

replay() { # -> "packets rate"
  local speed=--topspeed
  [ -n "${RATE:-}" ] && speed="--pps=$RATE"
  ip netns exec "$NS" tcpreplay "$speed" --loop="${LOOPS:-1}" -i rpl "$FILE" >"$TMP/replay.txt" 2>&1
  local sent rate
  sent=$(awk '/Successful packets:/ {print $3}' "$TMP/replay.txt")
  rate=$(grep -o '[0-9.]* pps' "$TMP/replay.txt" | head -1)
  echo "$sent ${rate:-?}"
}

# CPU (user+sys seconds) and peak RSS (MiB) of a running process, from /proc.
usage_of() {
  local pid=$1 tck
  tck=$(getconf CLK_TCK)
  awk -v t="$tck" '{printf "CPU user %.2fs sys %.2fs", $14/t, $15/t}' "/proc/$pid/stat"
  awk '/VmHWM/ {printf "; peak RSS %d MiB", $2/1024}' "/proc/$pid/status"
}

echo "== proxyscope live $*"
# `ip netns exec` execs the command: $! is the capturer's own PID.
ip netns exec "$NS" "$PROXYSCOPE" live -i cap --format ndjson --report-every 1 "$@" \
  >"$TMP/live.ndjson" 2>"$TMP/live.err" &
live_pid=$!
pids+=("$live_pid")
for _ in $(seq 50); do grep -q '"summary"' "$TMP/live.ndjson" 2>/dev/null && break; sleep 0.1; done
# RSS (MiB) once a second while the replay runs.
( while kill -0 "$live_pid" 2>/dev/null; do
    awk '/VmRSS/ {printf "%d ", $2/1024}' "/proc/$live_pid/status" 2>/dev/null
    sleep 1
  done ) >"$TMP/rss.txt" &
pids+=($!)
read -r sent rate < <(replay)
sleep 2
usage=$(usage_of "$live_pid")
echo "live RSS each second (MiB): $(cat "$TMP/rss.txt")"
kill -TERM "$live_pid"
wait "$live_pid" || true
python3 - "$TMP/live.ndjson" "$sent" "$rate" "$usage" <<'EOF2'
import json, sys
lines = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
final = [l for l in lines if l["event"] == "final"][0]["report"]
live = final["capture"]["live"]
summ = [l for l in lines if l["event"] == "summary"]
print(f"replayed {sys.argv[2]} packets at {sys.argv[3]}")
print(f"live: analysed {final['capture']['packets']}, libpcap received {live['received']}, "
      f"kernel dropped {live['dropped']}, interface dropped {live['if_dropped']}; {sys.argv[4]}; "
      f"{len(summ)} summaries; {len(final['verdicts'])} verdicts")
EOF2

echo "== tcpdump -w /dev/null"
ip netns exec "$NS" tcpdump -i cap -s 2048 -B 32768 --immediate-mode -w /dev/null \
  2>"$TMP/td.err" &
td_pid=$!
pids+=("$td_pid")
sleep 1.5
read -r sent rate < <(replay)
sleep 2
usage=$(usage_of "$td_pid")
kill -TERM "$td_pid"
wait "$td_pid" || true
echo "replayed $sent packets at $rate"
echo "tcpdump: $(grep -E 'captured|dropped' "$TMP/td.err" | tr '\n' ' '); $usage"
