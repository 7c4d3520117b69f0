#!/usr/bin/env python3
"""Paired timing of two commands on a shared, noisy machine.

    bench/paired.py N 'COMMAND A' 'COMMAND B'

Runs A and B N times each as N back-to-back pairs, the order flipped every pair (A B, B A, ...),
output to /dev/null. The machine's speed drifts by tens of percent over minutes here (other
tenants), so medians taken over a long interleaved run can favour whichever command happened to
run in the quiet minutes; the ratio within a pair (seconds apart) cancels that drift. Prints each
command's median wall and CPU seconds and peak RSS, and the median of the per-pair ratios
A ÷ B (wall and CPU) with how many pairs had B faster.
"""
import shlex, statistics, subprocess, sys


def main():
    n, a, b = int(sys.argv[1]), shlex.split(sys.argv[2]), shlex.split(sys.argv[3])
    res = {"A": [], "B": []}
    for i in range(n):
        order = [("A", a), ("B", b)] if i % 2 == 0 else [("B", b), ("A", a)]
        for tag, cmd in order:
            r = subprocess.run(
                ["/usr/bin/time", "-f", "%e %U %S %M"] + cmd,
                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            e, u, s, m = r.stderr.strip().splitlines()[-1].split()
            res[tag].append((float(e), float(u) + float(s), int(m) / 1024))
            print(f"# pair {i + 1} {tag}: {res[tag][-1]}", file=sys.stderr, flush=True)
    for tag, cmd in (("A", a), ("B", b)):
        w = statistics.median(x[0] for x in res[tag])
        c = statistics.median(x[1] for x in res[tag])
        m = max(x[2] for x in res[tag])
        print(f"{tag}: `{' '.join(cmd)}`: median wall {w:.2f} s, CPU {c:.2f} s, peak RSS {m:.1f} MiB")
    rw = [x[0] / y[0] for x, y in zip(res["A"], res["B"])]
    rc = [x[1] / y[1] for x, y in zip(res["A"], res["B"])]
    faster = sum(r > 1 for r in rw)
    print(f"A ÷ B per pair: wall median {statistics.median(rw):.2f} "
          f"(range {min(rw):.2f}–{max(rw):.2f}), CPU median {statistics.median(rc):.2f}; "
          f"B faster in {faster} of {n} pairs")


if __name__ == "__main__":
    main()
