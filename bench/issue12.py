#!/usr/bin/env python3
"""issue12.py RUNS TSHARK_RUNS FILE... - interleaved timings for issue 12.

For each FILE, RUNS rounds; in each round every command runs once, in a fixed order (tshark only
in its first TSHARK_RUNS rounds), under /usr/bin/time. Prints, per file and command, the medians
of wall, CPU (user+sys) and peak RSS, and the ratios. Commands come from the environment:
NEW (default target/release/proxyscope), BASE (optional: a build to compare with), READLOOP
(default bench/out/readloop).
"""
import os, statistics, subprocess, sys

runs, truns = int(sys.argv[1]), int(sys.argv[2])
files = sys.argv[3:]
new = os.environ.get("NEW", "target/release/proxyscope")
base = os.environ.get("BASE")
readloop = os.environ.get("READLOOP", "bench/out/readloop")

def cmds(f):
    c = [("readloop", [readloop, f])]
    for tag, b in [("new", new)] + ([("base", base)] if base else []):
        c += [(f"{tag} flows json", [b, "flows", "--format", "json", f]),
              (f"{tag} flows table", [b, "flows", "--format", "table", f]),
              (f"{tag} analyze json", [b, "analyze", "--format", "json", f])]
        if tag == "new":
            c += [(f"new flows json --threads 1", [b, "flows", "--threads", "1", "--format", "json", f]),
                  (f"new analyze json --threads 1", [b, "analyze", "--threads", "1", "--format", "json", f])]
    c.append(("tshark -q -z expert", ["tshark", "-r", f, "-q", "-z", "expert"]))
    return c

def once(argv):
    r = subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M"] + argv, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    w, u, s, m = r.stderr.strip().splitlines()[-1].split()
    return float(w), float(u) + float(s), int(m) / 1024

for f in files:
    res = {}
    for i in range(runs):
        for label, argv in cmds(f):
            if label.startswith("tshark") and i >= truns:
                continue
            res.setdefault(label, []).append(once(argv))
            print(f"# {os.path.basename(f)} run {i+1} {label}: {res[label][-1]}", file=sys.stderr, flush=True)
    med = {k: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
               max(x[2] for x in v), len(v), min(x[0] for x in v), max(x[0] for x in v)) for k, v in res.items()}
    rl = med["readloop"][0]
    ts = med.get("tshark -q -z expert", (None,))[0]  # none with TSHARK_RUNS 0
    print(f"\n### {os.path.basename(f)} ({os.path.getsize(f)/2**20:.0f} MiB)\n")
    print("| command | runs | median wall s | min–max wall s | median CPU s | peak RSS MiB | × read loop (wall) | tshark ÷ this (wall) |")
    print("|---|---|---|---|---|---|---|---|")
    for k, (w, c, m, n, lo, hi) in med.items():
        print(f"| `{k}` | {n} | {w:.2f} | {lo:.2f}–{hi:.2f} | {c:.2f} | {m:.1f} | {w/rl:.2f} | {f'{ts/w:.1f}' if ts else '—'} |")
    sys.stdout.flush()
