"""The emitted second-order plans against each framework's autodiff (issue 20, item 5).

For each loss and size n, on the CPU in float32, on the same inputs in one run:

- the full Hessian: the emitted NumPy function of `plan --order 2 --full --emit numpy`
  (which returns the gradient too) against `torch.autograd.functional.hessian`
  (vectorize=True, its faster mode) and `jax.jit(jax.hessian(f))`;
- the Hessian-vector product: the emitted NumPy function of `plan --order 2 --emit numpy`
  (the gradient too) against `torch.autograd.functional.hvp` and a jitted JAX
  forward-over-reverse product `jax.jvp(jax.grad(f), (x,), (v,))` (the gradient and the
  product, as the emitted function returns both).

The losses, every size n:

- quadratic: x^T*A*x, A n x n, by x (n);
- logistic: logistic regression, X n x n (n samples of n features), by w (n);
- two-layer: a two-layer network's squared error norm(tanh(W1*X)^T*w2 - y)^2, W1 n x n,
  X n x n (n samples), output weights w2 (n), targets y (n). Its full Hessian is that of the
  output layer's weights w2 (n x n); its Hessian-vector product is that of the hidden
  layer's weight matrix W1, H[dW1] for a direction dW1 (n x n, a Hessian of n^2 x n^2 entries
  that no one forms).

Every result is checked against PyTorch's before it is timed. Prints a Markdown table of
the best of several runs and the ratios (emitted / framework; below 1 is faster).

    cargo build --release
    python benches/hessian_vs_autodiff.py [--matdiff target/release/matdiff] [--repeat 5] [--sizes 100,500,1000]
"""

import argparse, importlib.util, os, subprocess, sys, tempfile, time

import numpy as np
import torch
import jax
import jax.numpy as jnp

LOSSES = {
    # name: (program, variable of the full Hessian, variable of the HVP)
    "quadratic": ("x : n; A : n x n; x^T*A*x", "x", "x"),
    "logistic": (
        "X : n x n; w : n; y : n; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))",
        "w",
        "w",
    ),
    "two-layer": ("W1 : n x n; X : n x n; w2 : n; y : n; norm(tanh(W1*X)^T*w2 - y)^2", "w2", "W1"),
}


def emit(matdiff, program, wrt, n, full, directory):
    args = [matdiff, "plan", program, "--wrt", wrt, "--order", "2", "--dims", f"n={n}"]
    args += ["--emit", "numpy", "--name", "second"] + (["--full"] if full else [])
    code = subprocess.run(args, check=True, capture_output=True, text=True).stdout
    path = os.path.join(directory, f"second_{abs(hash((program, wrt, n, full)))}.py")
    with open(path, "w") as f:
        f.write(code)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.second


def best(f, repeat):
    f()  # warm up (and compile, for JAX)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        f()
        times.append(time.perf_counter() - start)
    return min(times)


def inputs(name, n, seed=0):
    """The arrays of a loss as columns (the emitted code's shapes), float32."""
    rng = np.random.default_rng(seed)
    g = lambda *s: rng.standard_normal(s, dtype=np.float32)
    if name == "quadratic":
        return {"A": g(n, n), "x": g(n, 1)}
    if name == "logistic":
        return {"X": g(n, n) / np.float32(np.sqrt(n)), "w": g(n, 1), "y": (rng.random((n, 1)) < 0.5).astype(np.float32)}
    return {"W1": g(n, n) / np.float32(np.sqrt(n)), "X": g(n, n), "w2": g(n, 1) / np.float32(np.sqrt(n)), "y": g(n, 1)}


def loss(name, lib, a):
    """The loss in a framework `lib` (torch or jax.numpy), of arrays `a` shaped as columns."""
    if name == "quadratic":
        return (a["x"].T @ a["A"] @ a["x"]).sum()
    if name == "logistic":
        s = 1 / (1 + lib.exp(-(a["X"] @ a["w"])))
        return -(a["y"] * lib.log(s) + (1 - a["y"]) * lib.log(1 - s)).sum()
    r = lib.tanh(a["W1"] @ a["X"]).T @ a["w2"] - a["y"]
    return (r * r).sum()


def of(name, lib, arrays, wrt):
    """The loss as a function of `wrt` alone, the other arrays fixed."""
    return lambda v: loss(name, lib, {**arrays, wrt: v})


def measure(matdiff, name, n, repeat, directory):
    program, full_wrt, hvp_wrt = LOSSES[name]
    a = inputs(name, n)
    ta = {k: torch.tensor(v) for k, v in a.items()}
    ja = {k: jnp.asarray(v) for k, v in a.items()}
    row = {}

    # The full Hessian.
    ours = emit(matdiff, program, full_wrt, n, True, directory)
    want = torch.autograd.functional.hessian(of(name, torch, ta, full_wrt), ta[full_wrt], vectorize=True)
    want = want.reshape(n, n).numpy()
    got = ours(**a)[1][full_wrt]
    jax_hessian = jax.jit(jax.hessian(of(name, jnp, ja, full_wrt)))
    got_jax = np.asarray(jax_hessian(ja[full_wrt])).reshape(n, n)
    for what, h in (("emitted", got), ("jax", got_jax)):
        err = np.abs(h - want).max() / np.abs(want).max()
        assert err < 1e-3, f"{name} n={n}: the {what} Hessian differs from torch's by {err}"
    row["hessian"] = (
        best(lambda: ours(**a), repeat),
        best(lambda: torch.autograd.functional.hessian(of(name, torch, ta, full_wrt), ta[full_wrt], vectorize=True), repeat),
        best(lambda: jax.block_until_ready(jax_hessian(ja[full_wrt])), repeat),
    )

    # The Hessian-vector product.
    ours = emit(matdiff, program, hvp_wrt, n, False, directory)
    v = np.random.default_rng(1).standard_normal(a[hvp_wrt].shape, dtype=np.float32)
    tv, jv = torch.tensor(v), jnp.asarray(v)
    f_torch = of(name, torch, ta, hvp_wrt)
    want = torch.autograd.functional.hvp(f_torch, ta[hvp_wrt], tv)[1].numpy()
    got = ours(**a, **{"d" + hvp_wrt: v})[1][hvp_wrt]
    f_jax = of(name, jnp, ja, hvp_wrt)
    # The gradient and the product, as the emitted function and torch's hvp compute both.
    jax_hvp = jax.jit(lambda x, d: jax.jvp(jax.grad(f_jax), (x,), (d,)))
    got_jax = np.asarray(jax_hvp(ja[hvp_wrt], jv)[1])
    for what, h in (("emitted", got), ("jax", got_jax)):
        err = np.abs(h - want).max() / np.abs(want).max()
        assert err < 1e-3, f"{name} n={n}: the {what} HVP differs from torch's by {err}"
    row["hvp"] = (
        best(lambda: ours(**a, **{"d" + hvp_wrt: v}), repeat),
        best(lambda: torch.autograd.functional.hvp(f_torch, ta[hvp_wrt], tv), repeat),
        best(lambda: jax.block_until_ready(jax_hvp(ja[hvp_wrt], jv)), repeat),
    )
    return row


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--matdiff", default=os.path.join("target", "release", "matdiff"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--sizes", default="100,500,1000")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name in LOSSES:
            for n in sizes:
                row = measure(args.matdiff, name, n, args.repeat, directory)
                rows.append((name, n, row))
                print(name, n, row, file=sys.stderr)
    print("| loss | n | what | emitted NumPy | torch | jax.jit | emitted / torch | emitted / jax |")
    print("|---|---|---|---|---|---|---|---|")
    for name, n, row in rows:
        for what in ("hessian", "hvp"):
            ours, t, j = row[what]
            wrt = LOSSES[name][1 if what == "hessian" else 2]
            label = f"Hessian by {wrt}" if what == "hessian" else f"HVP by {wrt}"
            print(
                f"| {name} | {n} | {label} | {ours * 1e3:.2f} ms | {t * 1e3:.2f} ms | {j * 1e3:.2f} ms"
                f" | **{ours / t:.3f}** | **{ours / j:.3f}** |"
            )


if __name__ == "__main__":
    main()
