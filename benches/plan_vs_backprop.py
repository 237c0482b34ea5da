#!/usr/bin/env python3
"""The plan's emitted NumPy code against backprop written by hand, in one
process, single-threaded (issue 25): all gradients of W1*...*Wn*X with the
upstream gradient G, on the seed chain (square weights) and on a bottleneck
whose widths alternate 1024, 16, 1024, ...

Hand backprop keeps each layer's input on the forward sweep, then walks back:
dWk = H @ A(k+1).T, H = Wk.T @ H. The plan is `matdiff plan --emit numpy
--dims ...` for the same sizes. Each case times both alternately, best of
`--repeat` runs each, and checks that they agree.

Run from the project's root after `cargo build --release`, with NumPy:
    OPENBLAS_NUM_THREADS=1 python3 benches/plan_vs_backprop.py [--repeat 5]
"""
import argparse
import os
import subprocess
import time
import types

import numpy as np

BINARY = "target/release/matdiff"


def widths_square(n, w):
    return [w] * (n + 1)


def widths_bottleneck(n, _w):
    return [1024 if i % 2 == 0 else 16 for i in range(n + 1)]


def widths_narrow(n, _w):
    return [1024, 16] + [1024] * (n - 1)


# (name, n, widths(n), batch)
CASES = [
    ("seed", 3, widths_square(3, 64), 65536),
    ("seed", 8, widths_square(8, 64), 65536),
    ("seed", 32, widths_square(32, 64), 65536),
    ("seed", 3, widths_square(3, 1024), 256),
    ("seed", 8, widths_square(8, 1024), 256),
    ("seed", 32, widths_square(32, 1024), 256),
    ("bottleneck", 3, widths_bottleneck(3, 0), 256),
    ("bottleneck", 8, widths_bottleneck(8, 0), 256),
    ("bottleneck", 32, widths_bottleneck(32, 0), 256),
    ("narrow", 3, widths_narrow(3, 0), 8192),
    ("narrow", 8, widths_narrow(8, 0), 8192),
    ("narrow", 3, widths_narrow(3, 0), 256),
    ("narrow", 8, widths_narrow(8, 0), 256),
    ("bottleneck", 3, widths_bottleneck(3, 0), 65536),
    ("bottleneck", 8, widths_bottleneck(8, 0), 65536),
    ("bottleneck", 32, widths_bottleneck(32, 0), 65536),
]


def hand_backprop(ws, x, g):
    acts = [x]
    for w in reversed(ws):
        acts.append(w @ acts[-1])
    acts.reverse()  # acts[k] is the input of layer k (0-based), acts[0] the value
    value = acts[0]
    grads = {}
    h = g
    for k, w in enumerate(ws):
        grads[f"W{k + 1}"] = h @ acts[k + 1].T
        h = w.T @ h
    grads["X"] = h
    return value, grads


def best_of(f, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", help="run only the cases of this chain (seed, narrow, bottleneck)")
    args = parser.parse_args()
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: OPENBLAS_NUM_THREADS is not 1; BLAS may use every core")
    print("| chain | n | widths | batch | plan (ms) | hand backprop (ms) | plan / hand |")
    print("|---|---|---|---|---|---|---|")
    for name, n, widths, batch in CASES:
        if args.only and name != args.only:
            continue
        expr = "*".join([f"W{i}" for i in range(1, n + 1)] + ["X"])
        dims = ",".join([f"d{i}={d}" for i, d in enumerate(widths)] + [f"d{n + 1}={batch}"])
        code = subprocess.run([BINARY, "plan", expr, "--emit", "numpy", "--dims", dims],
                              capture_output=True, text=True, check=True).stdout
        module = types.ModuleType("plan")
        exec(code, module.__dict__)
        rng = np.random.default_rng(1)
        # Scaled to keep each layer's output the size of its input: long chains
        # of float32 stay finite, and the orders of the two comparable.
        ws = [(rng.uniform(-1, 1, (widths[i], widths[i + 1])) * np.sqrt(3 / widths[i + 1])).astype(np.float32)
              for i in range(n)]
        x = rng.uniform(-1, 1, (widths[n], batch)).astype(np.float32)
        g = rng.uniform(-1, 1, (widths[0], batch)).astype(np.float32)
        arrays = {f"W{i + 1}": w for i, w in enumerate(ws)}
        arrays.update(X=x, G=g)
        value, grads = module.value_and_grads(**arrays)
        want_value, want = hand_backprop(ws, x, g)
        for k, v in want.items():
            scale = np.abs(v).max()
            assert np.abs(grads[k] - v).max() <= 1e-3 * scale, (name, n, k)
        plan_t, hand_t = float("inf"), float("inf")
        for _ in range(args.repeat):
            plan_t = min(plan_t, best_of(lambda: module.value_and_grads(**arrays), 1))
            hand_t = min(hand_t, best_of(lambda: hand_backprop(ws, x, g), 1))
        shown = "×".join(str(d) for d in widths[:4]) + ("…" if len(widths) > 4 else "")
        print(f"| {name} | {n} | {shown} | {batch} | {1000 * plan_t:.1f} | {1000 * hand_t:.1f} | "
              f"{plan_t / hand_t:.2f} |", flush=True)


if __name__ == "__main__":
    main()
