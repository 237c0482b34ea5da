#!/usr/bin/env python3
"""All gradients of the n-factor chain W1*...*Wn*X through the release binary,
as text and as --json: wall time and peak memory of each run, process start
included (BENCHMARKS.md, issue 25).

    cargo build --release
    python3 benches/chain_cli.py [--n 1024] [--repeat 10] [--baseline OTHER_BINARY]

With --baseline, the two binaries run in turn (A B A B ...) and must print the
same bytes; the table gives each one's median and the ratio of the medians.
"""

import argparse
import hashlib
import os
import statistics
import subprocess
import sys
import tempfile
import time


def run(binary, args, out=subprocess.DEVNULL):
    """(wall seconds, peak resident MiB) of one run, its output to `out`. The
    peak is GNU time's (`/usr/bin/time`, Debian's `time`): a child forked from
    this script would count the script's own memory in its peak."""
    with tempfile.NamedTemporaryFile("r") as report:
        start = time.perf_counter()
        subprocess.run(["/usr/bin/time", "-f", "%M", "-o", report.name, binary, *args], stdout=out, check=True)
        wall = time.perf_counter() - start
        return wall, int(report.read().split()[-1]) / 1024


def digest(binary, args):
    """The output of one run, hashed."""
    with tempfile.TemporaryFile() as out:
        run(binary, args, out)
        out.seek(0)
        return hashlib.file_digest(out, "sha256").hexdigest()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=10)
    ap.add_argument("--binary", default="target/release/matdiff")
    ap.add_argument("--baseline")
    a = ap.parse_args()
    chain = "*".join(f"W{i}" for i in range(1, a.n + 1)) + "*X"
    binaries = [a.binary] + ([a.baseline] if a.baseline else [])
    print(f"n = {a.n}, {a.repeat} runs each, output to /dev/null, load average {os.getloadavg()[0]:.2f} at the start")
    print("| output | binary | wall (s), median | min–max | peak (MiB), median |")
    print("|---|---|---|---|---|")
    for form in (["derive", chain], ["derive", "--json", chain]):
        if len({digest(b, form) for b in binaries}) != 1:
            sys.exit("the binaries print different output")
        runs = {b: [] for b in binaries}
        for _ in range(a.repeat + 1):  # the first round warms the caches
            for b in binaries:
                runs[b].append(run(b, form))
        medians = {}
        for b in binaries:
            walls = [w for w, _ in runs[b][1:]]
            peaks = [p for _, p in runs[b][1:]]
            medians[b] = statistics.median(walls)
            name = "--json" if "--json" in form else "text"
            print(f"| {name} | {b} | {medians[b]:.3f} | {min(walls):.3f}–{max(walls):.3f} | {statistics.median(peaks):.1f} |")
        if a.baseline:
            print(f"| | ratio | {medians[a.binary] / medians[a.baseline]:.2f} | | |")


if __name__ == "__main__":
    main()
