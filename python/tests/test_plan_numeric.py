"""Plan.numpy(), .torch() and .jax(): the emitted code, run, against central finite differences."""

import numpy as np
import pytest

import matdiff as md
from conftest import import_or_skip

# (program, dims): the seed problem and losses with elementwise functions,
# shared names, broadcasting and a scalar value.
CASES = [
    ("W1*W2*W3*X", {"d0": 3, "d1": 4, "d2": 2, "d3": 5, "d4": 3}),
    ("x : n; A : n x n; x^T*A*x", {"n": 4}),
    ("W : k x m; X : m x B; Y : k x B; norm(sigmoid(W*X) - Y)^2", {"k": 3, "m": 4, "B": 5}),
    ("W : k x d; X : d x B; b : k; Y : k x B; -sum(Y .* log(softmax(W*X + b)))", {"k": 3, "d": 2, "B": 4}),
    ("W1 : h x d; W2 : o x h; X : d x B; W2*tanh(W1*X)", {"h": 3, "d": 2, "o": 2, "B": 4}),
]


def instance(p, rng):
    """Random arguments for the plan `p`: every variable (shapes from its gradient outputs) and G."""
    arrays = {}
    for out in p.outputs:
        shape = tuple(out["shape"])
        if out["wrt"] is None:
            value_shape = shape
        else:
            arrays[out["wrt"]] = rng.standard_normal(shape)
    return arrays, value_shape


def loss(f, arrays, upstream):
    """L = sum(G .* value), the scalar whose gradients a plan with upstream G returns (the value itself when scalar)."""
    value, _ = f(**arrays, **upstream)
    return float(np.sum(np.asarray(value) * upstream["G"])) if upstream else float(np.sum(value))


def finite_differences(f, arrays, upstream, name, h=1e-6):
    grad = np.zeros_like(arrays[name])
    for idx in np.ndindex(*arrays[name].shape):
        plus = {k: v.copy() for k, v in arrays.items()}
        minus = {k: v.copy() for k, v in arrays.items()}
        plus[name][idx] += h
        minus[name][idx] -= h
        grad[idx] = (loss(f, plus, upstream) - loss(f, minus, upstream)) / (2 * h)
    return grad


@pytest.mark.parametrize("program,dims", CASES)
@pytest.mark.parametrize("seed", [0, 1])
def test_numpy_plan_gradients_agree_with_finite_differences(program, dims, seed):
    rng = np.random.default_rng(seed)
    p = md.plan(program, dims=dims)
    f = p.numpy()
    arrays, value_shape = instance(p, rng)
    d = md.derive(program)
    upstream = {"G": rng.standard_normal(value_shape)} if d.upstream else {}
    value, grads = f(**arrays, **upstream)
    assert value.shape == value_shape or (value_shape == (1, 1) and np.size(value) == 1)
    assert set(grads) == set(d)
    for name, grad in grads.items():
        fd = finite_differences(f, arrays, upstream, name)
        assert grad.shape == arrays[name].shape
        scale = max(np.max(np.abs(fd)), 1e-3)
        assert np.max(np.abs(grad - fd)) / scale < 1e-6, (name, grad, fd)


def test_numpy_plan_a_wrong_gradient_is_caught():
    # The check above can fail: a gradient off by a factor is beyond its tolerance.
    rng = np.random.default_rng(3)
    program, dims = CASES[0]
    p = md.plan(program, dims=dims)
    f = p.numpy()
    arrays, value_shape = instance(p, rng)
    upstream = {"G": rng.standard_normal(value_shape)}
    _, grads = f(**arrays, **upstream)
    fd = finite_differences(f, arrays, upstream, "W2")
    assert np.max(np.abs(1.01 * grads["W2"] - fd)) / np.max(np.abs(fd)) > 1e-6


def test_numpy_plan_checks_its_arguments():
    p = md.plan("W1*W2*W3*X", dims=CASES[0][1])
    f = p.numpy()
    with pytest.raises(ValueError, match="W1"):
        f(W1=np.ones((2, 2)), W2=np.ones((4, 2)), W3=np.ones((2, 5)), X=np.ones((5, 3)), G=np.ones((3, 3)))


def test_torch_plan_backward_is_the_gradient():
    torch = import_or_skip("torch", "torch")
    program, dims = CASES[4]
    p = md.plan(program, dims=dims)
    f = p.torch()
    rng = np.random.default_rng(5)
    arrays, value_shape = instance(p, rng)
    tensors = {k: torch.tensor(v, requires_grad=True) for k, v in arrays.items()}
    G = rng.standard_normal(value_shape)
    value = f(**tensors)
    (value * torch.tensor(G)).sum().backward()
    nvalue, ngrads = p.numpy()(**arrays, G=G)
    assert np.allclose(value.detach().numpy(), nvalue)
    for name, t in tensors.items():
        assert np.allclose(t.grad.numpy(), ngrads[name], rtol=1e-10, atol=1e-12), name
    assert torch.autograd.gradcheck(lambda W1, W2, X: f(W1=W1, W2=W2, X=X), tuple(tensors[k] for k in ("W1", "W2", "X")))


def test_jax_plan_vjp_is_the_gradient():
    jax = import_or_skip("jax", "jax")
    jax.config.update("jax_enable_x64", True)
    program, dims = CASES[4]
    p = md.plan(program, dims=dims)
    f = p.jax()
    rng = np.random.default_rng(6)
    arrays, value_shape = instance(p, rng)
    G = rng.standard_normal(value_shape)
    names = list(arrays)
    value, vjp = jax.vjp(lambda *a: f(**dict(zip(names, a))), *(arrays[k] for k in names))
    grads = vjp(jax.numpy.asarray(G))
    nvalue, ngrads = p.numpy()(**arrays, G=G)
    assert np.allclose(np.asarray(value), nvalue)
    for name, g in zip(names, grads):
        assert np.allclose(np.asarray(g), ngrads[name], rtol=1e-10, atol=1e-12), name


def test_numpy_hessian_plans_agree_with_differences_of_the_gradient():
    # order=2: the Hessian-vector product H[dx], its value the gradient; full=True: the matrix.
    program = "x : n; A : n x n; y : n; tanh(x)^T*A*y + sum(exp(x))"
    dims = {"n": 4}
    rng = np.random.default_rng(11)
    args = {"x": rng.standard_normal((4, 1)), "A": rng.standard_normal((4, 4)), "y": rng.standard_normal((4, 1))}
    gradient = md.plan(program, dims=dims).numpy()

    def grad_x(x):
        return gradient(**{**args, "x": x})[1]["x"]

    h = 1e-6
    columns = []
    for k in range(4):
        e = np.zeros((4, 1))
        e[k] = 1
        columns.append((grad_x(args["x"] + h * e) - grad_x(args["x"] - h * e)) / (2 * h))
    fd = np.hstack(columns)

    hvp = md.plan(program, dims=dims, order=2, wrt="x").numpy()
    dx = rng.standard_normal((4, 1))
    value, out = hvp(**args, dx=dx)
    assert np.allclose(value, grad_x(args["x"]), rtol=1e-12, atol=1e-12)
    assert np.max(np.abs(out["x"] - fd @ dx)) / np.max(np.abs(fd @ dx)) < 1e-6

    full = md.plan(program, dims=dims, order=2, wrt="x", full=True).numpy()
    _, out = full(**args)
    assert out["x"].shape == (4, 4)
    assert np.max(np.abs(out["x"] - fd)) / np.max(np.abs(fd)) < 1e-6
