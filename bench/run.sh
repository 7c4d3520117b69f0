#!/usr/bin/env bash
# run.sh [FILE]
#
# Times, in one run, on a warm page cache:
#   readloop FILE                        libpcap floor (1 MiB stdio buffer)
#   readloop --plain FILE                libpcap floor (pcap_open_offline)
#   proxyscope flows --format json FILE  (if the subcommand exists)
#   proxyscope analyze --format json FILE (if the subcommand exists)
#   tshark -r FILE -q -z conv,tcp        reference tool
# All stdout goes to /dev/null.  Every run is wrapped in /usr/bin/time for
# peak RSS (%M) and user/sys CPU; wall time is taken with a ns clock around
# it.  Runs are interleaved (round-robin over the commands) so that load
# from other processes on this shared machine hits all commands alike.
#
# Prints a table and writes it to bench/out/results.md (+ results.json).
#
# Environment:
#   RUNS=5           runs per command (median is reported)
#   TSHARK_RUNS=1    runs of tshark (slow); 0 skips it
#   PROXYSCOPE=path  binary (default target/release/proxyscope)
#   ONLY=regex       only the commands whose label matches (e.g. ONLY=readloop)
#   TIMEOUT=1800     seconds before one run is killed (counted as failed)
#   OUT_MD=path      where to write the markdown (default bench/out/results.md)
set -euo pipefail

BENCH_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(dirname "$BENCH_DIR")"
FILE="${1:-$BENCH_DIR/out/big.pcap}"
RUNS="${RUNS:-5}"
TSHARK_RUNS="${TSHARK_RUNS:-1}"
PROXYSCOPE="${PROXYSCOPE:-$ROOT/target/release/proxyscope}"
ONLY="${ONLY:-.}"
TIMEOUT="${TIMEOUT:-1800}"
OUT_MD="${OUT_MD:-$BENCH_DIR/out/results.md}"
READLOOP="$BENCH_DIR/out/readloop"

[[ -f "$FILE" ]] || { echo "no capture: $FILE (make one with bench/make-capture.sh)" >&2; exit 1; }
[[ -x /usr/bin/time ]] || { echo "/usr/bin/time missing: apt-get install time" >&2; exit 1; }
mkdir -p "$BENCH_DIR/out"
if [[ ! -x "$READLOOP" || "$BENCH_DIR/readloop.c" -nt "$READLOOP" ]]; then
    gcc -O2 -Wall -o "$READLOOP" "$BENCH_DIR/readloop.c" -lpcap
fi

# --- the commands: label <TAB> runs <TAB> command ------------------------------
CMDS=()
add() { [[ "$1" =~ $ONLY ]] && CMDS+=("$1"$'\t'"$2"$'\t'"$3") || true; }
q() { printf '%q' "$1"; }
add "readloop"         "$RUNS" "$(q "$READLOOP") $(q "$FILE")"
add "readloop --plain" "$RUNS" "$(q "$READLOOP") --plain $(q "$FILE")"

has_sub() { # has_sub NAME: the binary lists NAME as a subcommand in its help
    [[ -x "$PROXYSCOPE" ]] || return 1
    local help
    help="$("$PROXYSCOPE" help 2>&1 || true)"
    grep -Eq "^[[:space:]]+$1([[:space:]]|$)" <<<"$help"
}
for sub in flows analyze; do
    if has_sub "$sub"; then
        add "proxyscope $sub" "$RUNS" "$(q "$PROXYSCOPE") $sub --format json $(q "$FILE")"
    else
        echo "skip: proxyscope $sub (no such subcommand in '$(basename "$PROXYSCOPE") help', or no binary at $PROXYSCOPE)" >&2
    fi
done
if (( TSHARK_RUNS > 0 )) && command -v tshark >/dev/null; then
    add "tshark conv,tcp" "$TSHARK_RUNS" "tshark -r $(q "$FILE") -q -z conv,tcp"
fi
(( ${#CMDS[@]} > 0 )) || { echo "nothing to run" >&2; exit 1; }

# --- warm the page cache -------------------------------------------------------
SIZE=$(stat -c %s "$FILE")
echo "warming page cache: $FILE ($((SIZE >> 20)) MiB)" >&2
cat "$FILE" >/dev/null
COUNTS=$("$READLOOP" "$FILE")     # also a warm-up run of the baseline
echo "$COUNTS" >&2

RAW="$(mktemp "$BENCH_DIR/out/run.XXXXXX.tsv")"
TF="$(mktemp)"
trap 'rm -f "$TF"' EXIT

# --- interleaved runs ------------------------------------------------------------
maxruns=0
for c in "${CMDS[@]}"; do IFS=$'\t' read -r _ n _ <<<"$c"; (( n > maxruns )) && maxruns=$n; done
for ((i = 1; i <= maxruns; i++)); do
    for c in "${CMDS[@]}"; do
        IFS=$'\t' read -r label n cmd <<<"$c"
        (( i <= n )) || continue
        t0=$(date +%s%N)
        rc=0
        eval "timeout $TIMEOUT /usr/bin/time -f '%M %U %S' -o $(q "$TF") $cmd" >/dev/null 2>"$TF.err" || rc=$?
        t1=$(date +%s%N)
        read -r rss usr sys < <(tail -n 1 "$TF") || true
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", (b - a) / 1e9 }')
        if (( rc != 0 )); then
            echo "  FAILED (rc=$rc) $label: $(head -c 300 "$TF.err")" >&2
            printf '%s\t%d\t%s\t%s\t%s\t%s\t%d\n' "$label" "$i" "$wall" "${rss:-0}" "${usr:-0}" "${sys:-0}" "$rc" >>"$RAW"
            continue
        fi
        printf '%s\t%d\t%s\t%s\t%s\t%s\t%d\n' "$label" "$i" "$wall" "$rss" "$usr" "$sys" 0 >>"$RAW"
        printf '  run %d/%d  %-18s %8.3f s  %7.1f MB\n' "$i" "$n" "$label" "$wall" "$(awk -v k="$rss" 'BEGIN{print k/1024}')" >&2
    done
done
rm -f "$TF.err"

# --- summary -------------------------------------------------------------------------
PS_VER=""
[[ -x "$PROXYSCOPE" ]] && PS_VER="$("$PROXYSCOPE" --version 2>/dev/null | head -n 1 || true)"
PS_VER="${PS_VER:-n/a}"
GIT_REV="$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo 'n/a')"
python3 - "$RAW" "$OUT_MD" "$FILE" "$SIZE" "$COUNTS" "$PS_VER" "$GIT_REV" <<'PY'
import json, os, statistics, sys, time
raw, out_md, path, size, counts, ps_ver, git_rev = sys.argv[1:8]
rows = {}
order = []
for line in open(raw):
    label, i, wall, rss, usr, sys_, rc = line.rstrip("\n").split("\t")
    if label not in rows:
        rows[label] = []; order.append(label)
    rows[label].append(dict(wall=float(wall), rss_kb=int(rss or 0), cpu=float(usr or 0) + float(sys_ or 0), rc=int(rc)))

summ = {}
for label in order:
    ok = [r for r in rows[label] if r["rc"] == 0]
    if not ok:
        summ[label] = None; continue
    summ[label] = dict(
        runs=len(ok), failed=len(rows[label]) - len(ok),
        median=statistics.median(r["wall"] for r in ok),
        min=min(r["wall"] for r in ok), max=max(r["wall"] for r in ok),
        cpu=statistics.median(r["cpu"] for r in ok),
        rss_mb=max(r["rss_kb"] for r in ok) / 1024.0,
        walls=[r["wall"] for r in ok])

base = summ.get("readloop")
tsh = summ.get("tshark conv,tcp")
cnt = dict(kv.split("=") for kv in counts.split())
pk = int(cnt.get("packets", 0))

def f(x, fmt):
    return fmt % x if x is not None else "–"

hdr = ["command", "runs", "median wall s", "min–max s", "cpu s (u+s)", "peak RSS MiB", "× readloop", "tshark / this", "Mpkt/s"]
lines = ["| " + " | ".join(hdr) + " |", "|" + "|".join(["---"] * len(hdr)) + "|"]
for label in order:
    s = summ[label]
    if s is None:
        lines.append(f"| `{label}` | 0 ({len(rows[label])} failed) | – | – | – | – | – | – | – |")
        continue
    ratio = s["median"] / base["median"] if base else None
    tratio = tsh["median"] / s["median"] if tsh else None
    mpps = pk / s["median"] / 1e6 if s["median"] > 0 else None
    runs = str(s["runs"]) + (f" ({s['failed']} failed)" if s["failed"] else "")
    lines.append("| " + " | ".join([
        f"`{label}`", runs, f(s["median"], "%.3f"), f"{s['min']:.3f}–{s['max']:.3f}", f(s["cpu"], "%.2f"),
        f(s["rss_mb"], "%.1f"), f(ratio, "%.2f"), f(tratio, "%.1f"), f(mpps, "%.2f")]) + " |")
table = "\n".join(lines)

try:
    load = open("/proc/loadavg").read().split()[:3]
except OSError:
    load = ["?"]
head = [
    f"# proxyscope benchmark — {time.strftime('%Y-%m-%d %H:%M:%S %Z')}",
    "",
    f"- capture: `{path}` — {int(size) / 2**20:.0f} MiB, {pk} packets, {int(cnt.get('bytes', 0)) / 2**20:.0f} MiB captured data",
    f"- proxyscope: {ps_ver} (git {git_rev}); host: {os.cpu_count()} CPUs, load avg before summary {' '.join(load)}",
    "- warm page cache; wall = median of the runs; peak RSS = max over the runs (`/usr/bin/time %M`);",
    "  `× readloop` = median wall / median wall of `readloop` (1 MiB buffer); `tshark / this` = tshark median / this median.",
    "",
    "",
]
md = "\n".join(head) + table + "\n"
print()
print(md)
with open(out_md, "w") as fh:
    fh.write(md)
with open(os.path.splitext(out_md)[0] + ".json", "w") as fh:
    json.dump(dict(file=path, size=int(size), packets=pk, proxyscope=ps_ver, git=git_rev, results=summ), fh, indent=1)
print(f"wrote {out_md}", file=sys.stderr)
PY
rm -f "$RAW"
