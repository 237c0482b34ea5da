"""The emitted plans against each framework's own autodiff (issue 22, item 5).

For each case, the value and every gradient of a layer W1*...*X with upstream
gradient G, on the CPU in float32: the emitted NumPy function against a
textbook backprop in NumPy, the emitted PyTorch Function against
torch.autograd of the plain product, the emitted JAX custom_vjp (jitted)
against jax.vjp of the plain product (jitted). Prints a Markdown table of
the best of several runs and each ratio (emitted / reference; below 1 is
faster).

    cargo build --release
    python benches/emit_vs_autodiff.py [--matdiff target/release/matdiff] [--repeat 5]
"""

import argparse, importlib.util, os, subprocess, sys, tempfile, time

import numpy as np

CASES = [
    # (name, expression, widths d0..dn, batch)
    ("seed chain, widths 64, batch 65536", "W1*W2*W3*X", [64, 64, 64, 64], 65536),
    ("seed chain, widths 1024, batch 256", "W1*W2*W3*X", [1024, 1024, 1024, 1024], 256),
    ("bottleneck 1024-16-1024, batch 65536", "W1*W2*X", [1024, 16, 1024], 65536),
]


def emit(matdiff, expr, dims, target, directory):
    spec = ",".join(f"d{i}={n}" for i, n in enumerate(dims))
    code = subprocess.run(
        [matdiff, "plan", expr, "--dims", spec, "--emit", target, "--name", "layer"],
        check=True, capture_output=True, text=True,
    ).stdout
    path = os.path.join(directory, f"{target}_{abs(hash((expr, spec)))}.py")
    with open(path, "w") as f:
        f.write(code)
    spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def best(ours, reference, repeat):
    """The best time of each of the two, run alternately: on a shared machine a load that
    comes and goes then falls on both alike (run one after the other, a PyTorch case once
    measured 2x slower than its reference, and 1.01 interleaved)."""
    ours(), reference()  # warm up (and compile, for JAX)
    times = ([], [])
    for _ in range(repeat):
        for f, t in zip((ours, reference), times):
            start = time.perf_counter()
            f()
            t.append(time.perf_counter() - start)
    return min(times[0]), min(times[1])


def arrays(widths, batch, seed=0):
    rng = np.random.default_rng(seed)
    dims = widths + [batch]
    n = len(widths) - 1
    ws = [rng.standard_normal((dims[i], dims[i + 1]), dtype=np.float32) / np.float32(np.sqrt(dims[i + 1])) for i in range(n)]
    x = rng.standard_normal((dims[n], batch), dtype=np.float32)
    g = rng.standard_normal((dims[0], batch), dtype=np.float32)
    return ws, x, g


def numpy_backprop(ws, x, g):
    """Textbook backprop: activations forward, the upstream gradient backward."""
    acts = [x]
    for w in reversed(ws):
        acts.append(w @ acts[-1])
    value = acts[-1]
    grads, h = [], g
    for i, w in enumerate(ws):
        grads.append(h @ acts[len(ws) - 1 - i].T)
        h = w.T @ h
    return value, grads, h


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--matdiff", default=os.path.join("target", "release", "matdiff"))
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as directory:
        for name, expr, widths, batch in CASES:
            ws, x, g = arrays(widths, batch)
            names = {f"W{i + 1}": w for i, w in enumerate(ws)}
            row = {"case": name}
            np_mod = emit(args.matdiff, expr, widths + [batch], "numpy", directory)
            row["numpy"] = best(lambda: np_mod.layer(**names, X=x, G=g), lambda: numpy_backprop(ws, x, g), args.repeat)
            try:
                import torch

                torch_mod = emit(args.matdiff, expr, widths + [batch], "pytorch", directory)
                tw = [torch.tensor(w, requires_grad=True) for w in ws]
                tx = torch.tensor(x, requires_grad=True)
                tg = torch.tensor(g)

                def plain(*a):
                    out = a[-1]
                    for w in reversed(a[:-1]):
                        out = w @ out
                    return out

                def run(f):
                    value = f(*tw, tx)
                    return torch.autograd.grad(value, tw + [tx], tg)

                row["pytorch"] = best(lambda: run(torch_mod.Layer.apply), lambda: run(plain), args.repeat)
            except ImportError:
                pass
            try:
                import jax
                import jax.numpy as jnp

                jax_mod = emit(args.matdiff, expr, widths + [batch], "jax", directory)
                jw = [jnp.asarray(w) for w in ws]
                jx, jg = jnp.asarray(x), jnp.asarray(g)

                def plain_jax(*a):
                    out = a[-1]
                    for w in reversed(a[:-1]):
                        out = w @ out
                    return out

                def vjp_of(f):
                    def value_and_grads(c, *a):
                        value, vjp = jax.vjp(f, *a)
                        return value, vjp(c)

                    step = jax.jit(value_and_grads)
                    return lambda: jax.block_until_ready(step(jg, *jw, jx))

                row["jax"] = best(vjp_of(jax_mod.layer), vjp_of(plain_jax), args.repeat)
            except ImportError:
                pass
            rows.append(row)
            print(row, file=sys.stderr)
    print("| case | NumPy: emitted / backprop | PyTorch: emitted / autograd | JAX: emitted / jax.vjp |")
    print("|---|---|---|---|")
    for row in rows:
        cells = []
        for target in ["numpy", "pytorch", "jax"]:
            if target in row:
                ours, ref = row[target]
                cells.append(f"{ours * 1e3:.1f} ms / {ref * 1e3:.1f} ms = **{ours / ref:.2f}**")
            else:
                cells.append("not installed")
        print(f"| {row['case']} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
