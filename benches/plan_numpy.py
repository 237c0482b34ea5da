#!/usr/bin/env python3
"""Wall time of the plan's emitted NumPy code, for the sizes of the
`plan_eval_nalgebra` criterion group (benches/plan.rs): all gradients of
W1*...*Wn*X with square n x n weights of width w and batch b.

Run from the project's root after `cargo build --release`, with NumPy:
    python3 benches/plan_numpy.py
"""
import subprocess
import time
import types

import numpy as np

BINARY = "target/release/matdiff"
CASES = [(8, 64, 64), (8, 256, 256), (32, 128, 32), (4, 64, 4096)]


def main():
    print("| case | NumPy median (ms) |")
    print("|---|---|")
    for n, w, b in CASES:
        expr = "*".join([f"W{i}" for i in range(1, n + 1)] + ["X"])
        dims = ",".join([f"d{i}={w}" for i in range(n + 1)] + [f"d{n + 1}={b}"])
        code = subprocess.run([BINARY, "plan", expr, "--emit", "numpy", "--dims", dims],
                              capture_output=True, text=True, check=True).stdout
        module = types.ModuleType("plan")
        exec(code, module.__dict__)
        rng = np.random.default_rng(1)
        arrays = {f"W{i}": rng.uniform(-1, 1, (w, w)) for i in range(1, n + 1)}
        arrays["X"] = rng.uniform(-1, 1, (w, b))
        arrays["G"] = rng.uniform(-1, 1, (w, b))
        times = []
        for _ in range(30):
            start = time.perf_counter()
            module.value_and_grads(**arrays)
            times.append(time.perf_counter() - start)
        print(f"| n{n}_w{w}_b{b} | {1000 * sorted(times)[len(times) // 2]:.3f} |")


if __name__ == "__main__":
    main()
