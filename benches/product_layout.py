#!/usr/bin/env python3
"""Whether a tall product is faster computed as its transpose in NumPy
(OpenBLAS, one thread, float32): A @ B against (B.T @ A.T).T for A r x k,
B k x c, with A stored as it is used (C order) or as the transpose of a
stored matrix (a `.T` view, as the plan's `G^T * W1` reads G). The
question behind issue 25's layout-aware pricing (BENCHMARKS.md).

    OPENBLAS_NUM_THREADS=1 python3 benches/product_layout.py
"""
import time

import numpy as np


def best(f, runs=7):
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return 1000 * min(times)


def main():
    rng = np.random.default_rng(0)
    print("| r | c | k | A @ B, A in C order (ms) | as the transpose | ratio | A a .T view (ms) | as the transpose | ratio |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in [16384, 65536]:
        for c in [16, 64, 256]:
            for k in [16, 64, 256, 1024]:
                a = rng.standard_normal((r, k)).astype(np.float32)
                b = rng.standard_normal((k, c)).astype(np.float32)
                stored = np.ascontiguousarray(a.T)
                direct, flipped = best(lambda: a @ b), best(lambda: (b.T @ a.T).T)
                view, view_flipped = best(lambda: stored.T @ b), best(lambda: (b.T @ stored).T)
                print(f"| {r} | {c} | {k} | {direct:.2f} | {flipped:.2f} | {direct / flipped:.2f} | "
                      f"{view:.2f} | {view_flipped:.2f} | {view / view_flipped:.2f} |", flush=True)


if __name__ == "__main__":
    main()
