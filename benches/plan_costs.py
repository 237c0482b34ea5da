#!/usr/bin/env python3
"""Multiply-adds of the plan against evaluating the value and each gradient
separately, for n-factor chains W1*...*Wn*X (widths 256, batch 32, and a
large batch 65536), from `matdiff plan --json`.

Run from the project's root after `cargo build --release`:
    python3 benches/plan_costs.py
"""
import json
import subprocess
import sys
import time

BINARY = "target/release/matdiff"


def chain(n):
    return "*".join([f"W{i}" for i in range(1, n + 1)] + ["X"])


def plan(n, width, batch):
    dims = ",".join([f"d{i}={width}" for i in range(n + 1)] + [f"d{n + 1}={batch}"])
    start = time.perf_counter()
    out = subprocess.run([BINARY, "plan", chain(n), "--json", "--dims", dims],
                         capture_output=True, text=True, check=True).stdout
    seconds = time.perf_counter() - start
    return json.loads(out), seconds


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [4, 16, 64, 256, 1024]
    print("| n | batch | products | plan madds | forward madds | plan / forward | separate madds | separate / plan | cut | derive+plan (s) |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for n in sizes:
        for batch in [32, 65536]:
            doc, seconds = plan(n, 256, batch)
            total, forward, separate = doc["total_madds"], doc["forward_madds"], doc["separate_madds"]
            cut = "|".join(doc["sweeps"][0]["between"]) if doc["sweeps"] else "-"
            print(f"| {n} | {batch} | {doc['products']} | {total:.3e} | {forward:.3e} | {total / forward:.2f} "
                  f"| {separate:.3e} | {separate / total:.1f} | {cut} | {seconds:.2f} |")


if __name__ == "__main__":
    main()
