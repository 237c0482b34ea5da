# Runs emitted plans (tests/emit.rs): reads a JSON list of cases, prints a
# JSON list of results. Each target is run under try/except, so that one
# failure is reported with its traceback and does not hide the others.
import importlib.util, inspect, json, sys, traceback

import numpy as np

CASES = json.load(open(sys.argv[1]))
TARGETS = sys.argv[2].split(",")
if "jax" in TARGETS:
    import jax
    import jax.numpy as jnp
    import jax.test_util

    jax.config.update("jax_enable_x64", True)
if "torch" in TARGETS:
    import torch


def load(path):
    spec = importlib.util.spec_from_file_location("emitted_" + path.replace("/", "_").replace(".", "_"), path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def symmetric(case):
    """Per argument, what the derivation may use of it: "sym" where it is drawn symmetric
    (declared sym or spd), "onehot" where its columns are one-hot (declared onehot: each
    sums to 1), else None. Second derivatives agree along the directions that keep that
    only: symmetric ones, or ones that keep every column's sum."""
    out = []
    for i in case["args"]:
        a = np.array(case["arrays"][i])
        if a.ndim == 2 and a.shape[0] == a.shape[1] > 1 and np.array_equal(a, a.T):
            out.append("sym")
        elif a.ndim == 2 and a.shape[0] > 1 and np.isin(a, (0.0, 1.0)).all() and (a.sum(axis=0) == 1).all():
            out.append("onehot")
        else:
            out.append(None)
    return out


def along(g, kind):
    """The part of a gradient `g` (torch or jax) along the directions `kind` keeps."""
    if g is None or kind is None:
        return g
    if kind == "sym":
        return (g + g.mT) / 2
    torch_tensor = type(g).__module__.startswith("torch")
    columns = g.sum(-2, keepdim=True) if torch_tensor else g.sum(axis=-2, keepdims=True)
    return g - columns / g.shape[-2]


def listed(x):
    """A value or gradient as rows of float64 (a scalar as [[x]])."""
    a = np.asarray(x, dtype=np.float64)
    return a.reshape(1, 1).tolist() if a.ndim == 0 else a.tolist()


def run_numpy(case, dtype):
    f = getattr(load(case["numpy"]), case["numpy_name"])
    names = list(inspect.signature(f).parameters)
    arrays = [np.array(a, dtype=dtype) for a in case["arrays"]]
    before = [a.copy() for a in arrays]
    value, grads = f(**dict(zip(names, arrays)))
    # Steps write into their intermediates' buffers (`out=`), never into an argument.
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(arrays, before)), "an argument was overwritten"
    kinds = {str(np.asarray(value).dtype)} | {str(g.dtype) for g in grads.values()}
    assert kinds == {dtype}, f"dtype {dtype} in, {kinds} out"
    out = {"value": listed(value), "grads": {k: listed(g) for k, g in grads.items()}}
    # Two batch axes (3 x 2) on every argument but the first: the value per
    # element, each batched variable's gradient per element, and the first
    # variable's (a weight shared by the batch) summed over the batch.
    batch = [arrays[0]] + [np.stack([np.stack([a * (1 + 0.01 * (2 * i + j)) for j in range(2)]) for i in range(3)]) for a in arrays[1:]]
    before = [a.copy() for a in batch]
    bvalue, bgrads = f(**dict(zip(names, batch)))
    assert all(np.array_equal(a, b, equal_nan=True) for a, b in zip(batch, before)), "a batched argument was overwritten"
    bvalue = np.asarray(bvalue)
    each = {}
    for i in range(3):
        for j in range(2):
            v, g = f(**dict(zip(names, (b if n == 0 else b[i, j] for n, b in enumerate(batch)))))
            # (A value that reads no batched argument has no batch axes.)
            got = np.broadcast_to(bvalue, (3, 2) + np.shape(v))[i, j]
            assert np.allclose(got, v, rtol=1e-4, atol=1e-5), f"batch [{i},{j}]: {got} vs {v}"
            for k, x in g.items():
                each.setdefault(k, []).append(x)
    for k, g in bgrads.items():
        per = np.array(each[k])
        first = k == case["inputs"][0]
        want = per.sum(axis=0) if first else per.reshape((3, 2) + per.shape[1:])
        assert g.shape == want.shape, f"batched d/d{k}: shape {g.shape}, not {want.shape}"
        assert np.allclose(g, want, rtol=1e-4, atol=1e-5), f"batched d/d{k}: {g} vs {want}"
    return out


def run_torch(case, dtype):
    module = load(case["torch"])
    f = getattr(module, case["name"])
    tdtype = getattr(torch, dtype)
    names = list(inspect.signature(f).parameters)
    args = [torch.tensor(case["arrays"][i], dtype=tdtype, requires_grad=True) for i in case["args"]]
    value = f(**dict(zip(names, args)))
    assert value.dtype == tdtype, f"dtype {dtype} in, {value.dtype} out"
    up = case["upstream"]
    # The upstream gradient; ones where a layer's plan reads none (its gradients are 0).
    seed = torch.tensor(case["arrays"][up], dtype=tdtype) if up is not None else torch.ones_like(value)
    grads = torch.autograd.grad(value, args, seed, allow_unused=True)
    out = {"value": listed(value.detach()), "grads": {}}
    for i, g in zip(case["args"], grads):
        if g is not None:
            assert g.dtype == tdtype
            out["grads"][case["inputs"][i]] = listed(g)
    if args:
        # The module: the first variable a parameter, the others by name.
        m = getattr(module, case["module"])(**{names[0]: args[0].detach().clone()})
        v = m(**dict(zip(names[1:], args[1:])))
        assert torch.allclose(v, value), "the module's value"
        (g,) = torch.autograd.grad(v, [getattr(m, names[0])], seed, allow_unused=True)
        assert (g is None) == (grads[0] is None) and (g is None or torch.allclose(g, grads[0])), "the module's gradient"
    if dtype == "float64" and case["checks"]:
        apply = getattr(module, case["class"]).apply
        check = dict(raise_exception=False)
        out["gradcheck"] = torch.autograd.gradcheck(apply, args, **check)
        out["gradgradcheck"] = torch.autograd.gradgradcheck(apply, args, **check)
        # A gradient penalty (the sum of the squared gradients) differentiated
        # through the Function and through plain autograd of its forward.
        class Ctx:
            def save_for_backward(self, *xs):
                pass

        def penalty_grads(function):
            value = function(*args)
            grads = torch.autograd.grad(value, args, seed, create_graph=True, allow_unused=True)
            penalty = sum((g * g).sum() for g in grads if g is not None)
            if not torch.is_tensor(penalty) or not penalty.requires_grad:
                return [None for _ in args]
            return torch.autograd.grad(penalty, args, allow_unused=True)

        def same(ours, reference):
            zero = lambda g: g is None or not g.any()
            return all(
                (zero(a) and zero(b)) or (a is not None and b is not None and torch.allclose(along(a, s), along(b, s), rtol=1e-8, atol=1e-10))
                for a, b, s in zip(ours, reference, symmetric(case))
            )

        reference = penalty_grads(lambda *a: getattr(module, case["class"]).forward(Ctx(), *a))
        out["penalty"] = same(penalty_grads(apply), reference)
        if case.get("torch_mutant"):
            mutant = getattr(load(case["torch_mutant"]), case["class"]).apply
            out["mutant_penalty"] = same(penalty_grads(mutant), reference)
    return out


def run_jax(case, dtype):
    f = getattr(load(case["jax"]), case["name"])
    names = list(inspect.signature(f).parameters)
    args = [jnp.asarray(np.array(case["arrays"][i], dtype=dtype)) for i in case["args"]]
    value = f(**dict(zip(names, args)))
    assert str(value.dtype) == dtype, f"dtype {dtype} in, {value.dtype} out"
    up = case["upstream"]
    ct = jnp.asarray(np.array(case["arrays"][up], dtype=dtype)) if up is not None else jnp.ones_like(value)
    _, vjp = jax.vjp(f, *args)
    grads = vjp(ct)
    out = {"value": listed(value), "grads": {}}
    for i, g in zip(case["args"], grads):
        if case["inputs"][i] in case["wrt"]:
            out["grads"][case["inputs"][i]] = listed(g)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    # Under jit, the value and the gradients are the same.
    assert np.allclose(jax.jit(f)(*args), value, **tol), "jit value"
    jgrads = jax.jit(lambda *a: jax.vjp(f, *a)[1](ct))(*args)
    for g, h in zip(grads, jgrads):
        assert np.allclose(g, h, **tol), "jit gradient"
    if value.ndim == 0:
        # jax.grad of the loss itself.
        for g, h in zip(grads, jax.grad(f, argnums=tuple(range(len(args))))(*args)):
            assert np.allclose(g, h, **tol), "jax.grad"
    # Under vmap over a batch of 2, the value and gradients per element.
    batch = [jnp.stack([a, a * 1.01]) for a in args]
    bct = jnp.stack([ct, ct])
    bvalue = jax.vmap(f)(*batch)
    bgrads = jax.vmap(lambda c, *a: jax.vjp(f, *a)[1](c))(bct, *batch)
    for e in range(2):
        one = [b[e] for b in batch]
        assert np.allclose(bvalue[e], f(*one), **tol), f"vmap value [{e}]"
        for g, h in zip(bgrads, jax.vjp(f, *one)[1](ct)):
            assert np.allclose(g[e], h, **tol), f"vmap gradient [{e}]"
    if dtype == "float64" and case["checks"]:
        out["check_grads"] = checked(f, args)
        # The same gradient penalty through the custom_vjp and through plain
        # autodiff of its forward rule.
        plain = getattr(load(case["jax"]), case["name"] + "_fwd")

        def penalty(function):
            def p(*a):
                grads = jax.vjp(function, *a)[1](ct)
                return sum((g * g).sum() for g in grads)

            return jax.grad(p, argnums=tuple(range(len(args))))(*args)

        out["penalty"] = all(
            bool(np.allclose(along(a, s), along(b, s), rtol=1e-8, atol=1e-10))
            for a, b, s in zip(penalty(f), penalty(lambda *a: plain(*a)[0]), symmetric(case))
        )
        if case.get("jax_mutant"):
            g = getattr(load(case["jax_mutant"]), case["name"])
            out["mutant_first"] = checked(g, args, order=1)
            out["mutant_second"] = checked(g, args)
    return out


def checked(f, args, order=2):
    """jax.test_util.check_grads in reverse mode (custom_vjp has no forward mode): None when it passes."""
    try:
        jax.test_util.check_grads(f, tuple(args), order=order, modes=["rev"])
        return None
    except AssertionError as e:
        return str(e)[:2000]


def flat(case, grads):
    """Gradients by variable name, a family's list spread as W[1], W[2], ..."""
    out = {}
    for k, g in grads.items():
        if k in case["families"]:
            for n, x in enumerate(g):
                out[f"{k}[{case['families'][k] + n}]"] = listed(x)
        else:
            out[k] = listed(g)
    return out


def loop_args(case, convert):
    """The keyword arguments of a looped function: a family as a list."""
    return {k: [convert(a) for a in v] if k in case["families"] else convert(v) for k, v in case["params"].items()}


def spread(case, kwargs):
    """The arrays of the keyword arguments, the lists spread, with each one's name."""
    out = []
    for k, v in kwargs.items():
        if k in case["families"]:
            out += [(f"{k}[{case['families'][k] + n}]", x) for n, x in enumerate(v)]
        else:
            out.append((k, v))
    return out


def run_numpy_loop(case, dtype):
    f = getattr(load(case["numpy"]), "value_and_grads")
    kwargs = loop_args(case, lambda a: np.array(a, dtype=dtype))
    if case["upstream"] is not None:
        kwargs[case["upstream_name"]] = np.array(case["upstream"], dtype=dtype)
    value, grads = f(**kwargs)
    kinds = {str(np.asarray(value).dtype)} | {str(x.dtype) for g in grads.values() for x in (g if isinstance(g, list) else [g])}
    assert kinds == {dtype}, f"dtype {dtype} in, {kinds} out"
    out = {"value": listed(value), "grads": {}}
    for k, g in grads.items():
        out["grads"].update(flat(case, {k: g}) if k in case["families"] else {k: listed(g)})
    return out


def held_args(case, convert):
    """The keyword arguments of a looped function, those not differentiated (case["held"]) constant."""
    return {k: [convert(a, k not in case["held"]) for a in v] if k in case["families"] else convert(v, k not in case["held"]) for k, v in case["params"].items()}


def run_torch_loop(case, dtype):
    module = load(case["torch"])
    tdtype = getattr(torch, dtype)
    kwargs = held_args(case, lambda a, free: torch.tensor(a, dtype=tdtype, requires_grad=free))
    value = module.plan(**kwargs)
    assert value.dtype == tdtype
    seed = torch.tensor(case["upstream"], dtype=tdtype) if case["upstream"] is not None else torch.ones_like(value)
    named = [(n, x) for n, x in spread(case, kwargs) if x.requires_grad]
    grads = torch.autograd.grad(value, [x for _, x in named], seed, allow_unused=True)
    out = {"value": listed(value.detach()), "grads": {n: listed(g) for (n, _), g in zip(named, grads) if g is not None}}
    # The module: the family its parameters.
    family = next(iter(case["families"]))
    m = module.PlanModule(**{family: [x.detach().clone() for x in kwargs[family]]})
    others = {k: v for k, v in kwargs.items() if k != family}
    assert torch.allclose(m(**others), value), "the module's value"
    if dtype == "float64":
        # Function.apply(counts, the others..., *members).
        plain = [v for k, v in kwargs.items() if k not in case["families"]]
        members = [x for k, v in kwargs.items() if k in case["families"] for x in v]
        counts = tuple(len(v) for k, v in kwargs.items() if k in case["families"])
        args = [counts] + plain + members
        apply = module.Plan.apply
        check = dict(raise_exception=False)
        out["gradcheck"] = torch.autograd.gradcheck(apply, args, **check)
        out["gradgradcheck"] = torch.autograd.gradgradcheck(apply, args, **check)
        tensors = plain + members
        free = [x for x in tensors if x.requires_grad]

        class Ctx:
            def save_for_backward(self, *xs):
                pass

        def penalty_grads(function):
            value = function(counts, *tensors)
            grads = torch.autograd.grad(value, free, seed, create_graph=True, allow_unused=True)
            penalty = sum((g * g).sum() for g in grads if g is not None)
            if not torch.is_tensor(penalty) or not penalty.requires_grad:
                return [None for _ in free]
            return torch.autograd.grad(penalty, free, allow_unused=True)

        def same(ours, reference):
            zero = lambda g: g is None or not g.any()
            return all(
                (zero(a) and zero(b)) or (a is not None and b is not None and torch.allclose(a, b, rtol=1e-8, atol=1e-10))
                for a, b in zip(ours, reference)
            )

        reference = penalty_grads(lambda *a: module.Plan.forward(Ctx(), *a))
        out["penalty"] = same(penalty_grads(apply), reference)
        mutant = load(case["torch_mutant"]).Plan.apply
        out["mutant_penalty"] = same(penalty_grads(mutant), reference)
    return out


def run_jax_loop(case, dtype):
    kwargs = loop_args(case, lambda a: jnp.asarray(np.array(a, dtype=dtype)))
    names = [k for k in kwargs if k not in case["held"]]

    def over_free(function):
        """The function of the arguments differentiated, the others held at their values."""
        return lambda *a: function(**{**kwargs, **dict(zip(names, a))})

    f = over_free(load(case["jax"]).plan)
    args = [kwargs[k] for k in names]
    value = f(*args)
    assert str(value.dtype) == dtype
    ct = jnp.asarray(np.array(case["upstream"], dtype=dtype)) if case["upstream"] is not None else jnp.ones_like(value)
    _, vjp = jax.vjp(f, *args)
    grads = vjp(ct)
    out = {"value": listed(value), "grads": {}}
    for k, g in zip(names, grads):
        if k in case["families"]:
            out["grads"].update(flat(case, {k: g}))
        elif k in case["wrt"]:
            out["grads"][k] = listed(g)
    tol = dict(rtol=1e-4, atol=1e-5) if dtype == "float32" else dict(rtol=1e-10, atol=1e-12)
    assert np.allclose(jax.jit(f)(*args), value, **tol), "jit value"
    jgrads = jax.jit(lambda *a: jax.vjp(f, *a)[1](ct))(*args)
    for g, h in zip(jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(jgrads)):
        assert np.allclose(g, h, **tol), "jit gradient"
    # Under vmap over a batch of 2.
    batch = jax.tree_util.tree_map(lambda a: jnp.stack([a, a * 1.01]), args)
    bvalue = jax.vmap(f)(*batch)
    for e in range(2):
        one = jax.tree_util.tree_map(lambda b: b[e], batch)
        assert np.allclose(bvalue[e], f(*one), **tol), f"vmap value [{e}]"
    if dtype == "float64":
        out["check_grads"] = checked(f, args)
        g = over_free(load(case["jax_mutant"]).plan)
        out["mutant_first"] = checked(g, args, order=1)
        # With an argument held constant, the residuals may be ones no
        # derivative taken reads (X's in W * X): the mutant is judged only
        # where every argument is differentiated.
        if not case["held"]:
            out["mutant_second"] = checked(g, args)
    return out


results = []
for case in CASES:
    if case.get("loop"):
        result = {}
        for target in TARGETS:
            for dtype in ("float64", "float32"):
                try:
                    result[f"{target}/{dtype}"] = {"numpy": run_numpy_loop, "torch": run_torch_loop, "jax": run_jax_loop}[target](case, dtype)
                except Exception:
                    result[f"{target}/{dtype}"] = {"error": traceback.format_exc()}
        results.append(result)
        continue
    result = {}
    for target in TARGETS:
        for dtype in ("float64", "float32"):
            try:
                result[f"{target}/{dtype}"] = {"numpy": run_numpy, "torch": run_torch, "jax": run_jax}[target](case, dtype)
            except Exception:
                result[f"{target}/{dtype}"] = {"error": traceback.format_exc()}
    results.append(result)
print(json.dumps(results))
