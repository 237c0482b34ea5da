#!/usr/bin/env python3
"""matdiff against SymPy on the same derivations, side by side, in one run.

For n = 4, 16, 32, 64: all n gradients of tr(G^T W1 ... Wn X), which is what
`matdiff derive 'W1*...*Wn*X'` derives (the layer with upstream G), timed
end to end: SymPy differentiates the trace of MatrixSymbols with respect to
each Wi; matdiff runs its release binary (process start included).

SymPy is installed with pip into a temporary virtual environment, so the
machine's Python is left alone. Run from the project's root:
    cargo build --release && python3 benches/compare_sympy.py [n ...]
"""
import os
import subprocess
import sys
import tempfile
import time
import venv

SYMPY_RUN = r'''
import sys, time
from sympy import MatrixSymbol, Trace, symbols
n = int(sys.argv[1])
d = symbols("d0:%d" % (n + 2))
W = [MatrixSymbol("W%d" % (i + 1), d[i], d[i + 1]) for i in range(n)]
X = MatrixSymbol("X", d[n], d[n + 1])
G = MatrixSymbol("G", d[0], d[n + 1])
start = time.perf_counter()
Z = W[0]
for w in W[1:]:
    Z = Z * w
L = Trace(G.T * Z * X)
grads = [L.diff(w) for w in W]
text = sum(len(str(g)) for g in grads)
print(time.perf_counter() - start)
'''


def chain(n):
    return "*".join([f"W{i}" for i in range(1, n + 1)] + ["X"])


def time_matdiff(n, repeats=3):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(["target/release/matdiff", "derive", chain(n)], check=True, capture_output=True)
        best = min(best, time.perf_counter() - start)
    return best


def main():
    sizes = [int(a) for a in sys.argv[1:]] or [4, 16, 32, 64]
    if not os.path.exists("target/release/matdiff"):
        sys.exit("build first: cargo build --release")
    with tempfile.TemporaryDirectory() as tmp:
        venv.create(tmp, with_pip=True)
        python = os.path.join(tmp, "bin", "python")
        subprocess.run([python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "sympy"],
                       check=True)
        version = subprocess.run([python, "-c", "import sympy; print(sympy.__version__)"],
                                 check=True, capture_output=True, text=True).stdout.strip()
        print(f"all n gradients of tr(G^T W1...Wn X); SymPy {version} against matdiff (release)")
        print("| n | SymPy (s) | matdiff (s) | SymPy / matdiff |")
        print("|---|---|---|---|")
        for n in sizes:
            out = subprocess.run([python, "-c", SYMPY_RUN, str(n)], check=True, capture_output=True, text=True)
            sympy_s = float(out.stdout.strip().splitlines()[-1])
            ours = time_matdiff(n)
            print(f"| {n} | {sympy_s:.3f} | {ours:.4f} | {sympy_s / ours:.0f}x |", flush=True)


if __name__ == "__main__":
    main()
