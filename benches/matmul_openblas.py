#!/usr/bin/env python3
"""NumPy's matrix product (its bundled OpenBLAS) on one thread, float64,
square n x n, best of many runs: the yardstick for the evaluator's products
(`cargo bench --bench check`, group matmul_nalgebra; BENCHMARKS.md).

    OPENBLAS_NUM_THREADS=1 python3 benches/matmul_openblas.py
"""
import os
import time

import numpy as np


def main():
    if os.environ.get("OPENBLAS_NUM_THREADS") != "1":
        print("note: OPENBLAS_NUM_THREADS is not 1; BLAS may use every core")
    rng = np.random.default_rng(0)
    print("| n | OpenBLAS, one thread (ms) |")
    print("|---|---|")
    for n in [64, 128, 256, 512]:
        a, b = rng.standard_normal((n, n)), rng.standard_normal((n, n))
        runs = 200 if n < 512 else 20
        best = float("inf")
        for _ in range(runs):
            start = time.perf_counter()
            a @ b
            best = min(best, time.perf_counter() - start)
        print(f"| {n} | {1000 * best:.3f} |")


if __name__ == "__main__":
    main()
