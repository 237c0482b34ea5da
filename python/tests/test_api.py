"""Every public function of the package, its documented fields, and its arguments."""

import doctest

import pytest

import matdiff as md

SEED = "W1*W2*W3*X"


def test_derive_is_a_mapping_of_gradients():
    d = md.derive(SEED)
    assert list(d) == ["W1", "W2", "W3", "X"]
    assert len(d) == 4 and "W2" in d and "G" not in d
    g = d["W2"]
    assert isinstance(g, md.Gradient)
    assert g.wrt == "W2"
    assert g.expr == "W1^T * G * X^T * W3^T"
    assert g.shape == ("d1", "d2")
    assert g.latex == "W_{1}^{\\top} G X^{\\top} W_{3}^{\\top}"
    assert g.occurrences == 1 and g.saturated is True
    assert d.expr == "W1 * W2 * W3 * X"
    assert d.shape == ("d0", "d4")
    assert d.upstream == "G"
    assert [x.wrt for x in d.gradients] == list(d)
    assert d.definitions == []


def test_derive_fields_are_those_of_the_json_document():
    # docs/json.md, derive: {expr, shape, upstream, gradients, saturated}, each gradient
    # {wrt, expr, latex, shape, occurrences, saturated}.
    d = md.derive(SEED, wrt="W2")
    assert set(d.json) == {"expr", "shape", "upstream", "gradients", "saturated"}
    assert set(d["W2"].json) == {"wrt", "expr", "latex", "shape", "occurrences", "saturated"}


def test_derive_wrt_upstream_and_shapes():
    d = md.derive(SEED, wrt=["X", "W1"], upstream="D")
    assert list(d) == ["X", "W1"]
    assert d.upstream == "D"
    assert d["X"].expr == "W3^T * W2^T * W1^T * D"
    d = md.derive("W1*X", shapes={"W1": (3, 4), "X": (4, "B")})
    assert d["W1"].shape == (3, 4)
    assert d["X"].shape == (4, "B")
    # A length declares a column; text is a declaration as written.
    d = md.derive("x^T*S*x", shapes={"x": "n", "S": "n x n spd"})
    assert d["x"].expr == "2 * S * x"
    assert d["x"].shape == ("n", 1)
    assert md.derive("x^T*x", shapes={"x": 5})["x"].shape == (5, 1)
    s = md.derive("x : n; A : n x n; x^T*A*x")
    assert s.upstream is None and s.shape == (1, 1)
    assert s["x"].expr == "(A + A^T) * x"


def test_derive_shared_names_and_expanded():
    program = "W : k x m; X : m x B; Y : k x B; norm(sigmoid(W*X) - Y)^2"
    d = md.derive(program, wrt="W")
    assert [n["name"] for n in d.definitions] == ["T1"]
    assert d["W"].shared_expr == "2 * ((T1 - Y) .* (T1 .* (1 - T1))) * X^T"
    assert "T1" not in d["W"].expr
    assert md.derive(program, wrt="W", expanded=True).definitions == []


def test_derive_steps():
    d = md.derive("W1*W2*X", wrt="W2")
    steps = d["W2"].steps
    assert isinstance(steps, md.Steps)
    assert steps[0].expr == "tr(G^T * dZ)"
    assert steps[0].why == "the upstream gradient G = dL/dZ"
    assert steps[-1].expr == d["W2"].expr
    assert all(s.latex and s.why_latex for s in steps)
    assert steps.shape_check[0].startswith("W1^T (d1 x d0)")
    assert "\\begin{aligned}" in steps.latex
    assert list(d.steps) == ["W2"]
    assert "d/dW2:" in str(steps)


def test_derive_text_is_the_command_lines():
    text = str(md.derive("W1*W2*X", wrt="W2"))
    assert "d/dW2 = W1^T * G * X^T" in text
    assert str(md.derive("W1*W2*X")["W1"]) == "d/dW1 = G * X^T * W2^T  : d0 x d1"


def test_verify_truthy_on_the_right_claim_falsy_on_a_mutant():
    right = md.verify(SEED, wrt="W2", claim="W1^T*G*X^T*W3^T")
    assert right and right.equivalent and right.outcome == "equivalent"
    assert right.method == "symbolic"
    assert right.derived == "W1^T * G * X^T * W3^T"
    assert set(right.json) == {"equivalent", "outcome", "method", "detail", "derived", "evidence"}
    # The right claim, mutated: twice it, and a sign.
    wrong = md.verify(SEED, wrt="W2", claim="2*W1^T*G*X^T*W3^T")
    assert not wrong and wrong.outcome == "not equivalent"
    wrong = md.verify(SEED, wrt="W2", claim="-W1^T*G*X^T*W3^T")
    assert not wrong and wrong.outcome == "not equivalent"
    wrong = md.verify("x : n; A : n x n; x^T*A*x", "x", "2*A*x")
    assert not wrong and wrong.method == "numeric"
    assert wrong.evidence["worst_rel_err"] > 1e-3


def test_verify_domains_order_and_jacobian():
    v = md.verify("X : 3x3; sum(log(X))", "X", "1 ./ X", domains={"X": "positive"})
    assert v
    h = md.verify("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "X", "A*dX*B + A^T*dX*B^T", order=2)
    assert h
    assert not md.verify("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "X", "A*dX*B", order=2)
    j = md.verify("W : m x n; x : n; tanh(W*x)", "x", "diag(1 - tanh(W*x).^2) * W", jacobian=True)
    assert j
    assert not md.verify("W : m x n; x : n; tanh(W*x)", "x", "diag(1 - tanh(W*x)) * W", jacobian=True)


def test_check():
    report = md.check(SEED, dims={"d0": 3, "d4": 2}, seed=7)
    assert report and report.ok
    assert report.seed == 7
    assert report.sizes["d0"] == 3 and report.sizes["d4"] == 2
    assert [r["wrt"] for r in report.results] == ["W1", "W2", "W3", "X"]
    assert all(r["outcome"] == "ok" for r in report.results)
    assert set(report.json) >= {"ok", "undecided", "results", "sizes", "seed", "tolerance"}
    assert md.check(SEED, seed=2, wrt="X").results[0]["wrt"] == "X"
    assert md.check("X : 3x3; logdet(X)", domains={"X": "spd"})
    assert md.check("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", wrt="X", order=2)
    assert md.check("x : 4; A : 4x4; x^T*A*x", method="directions").results[0]["compared"] == "directions"


def test_plan():
    p = md.plan("W1*W2*X", dims={"d0": 64, "d1": 64, "d2": 64, "d3": 65536})
    assert p.cost == 806092800 == p.total_madds
    assert p.products == 6
    assert [s.out for s in p.steps][:2] == ["H1", "value"]
    assert p.steps[0].op == "W1 * W2" and p.steps[0].shape == (64, 64) and p.steps[0].madds == 262144
    assert [o["wrt"] for o in p.outputs] == [None, "W1", "W2", "X"]
    assert not p.symbolic
    # Symbolic lengths: a recurrence, counts as text.
    s = md.plan("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X")
    assert s.symbolic and isinstance(s.cost, str) and s.steps[0].range == "j = 1..n"
    assert "def value_and_grads(" in p.code("numpy")
    assert "torch.autograd.Function" in p.code("torch")
    assert "jax.custom_vjp" in p.code("jax")
    assert "def my_layer(" in p.code("numpy", name="my_layer")
    with pytest.raises(ValueError):
        p.code("tensorflow")
    assert "6 matrix products" in str(p) or "H1 = W1 * W2" in str(p)


def test_hessian_and_jacobian():
    h = md.hessian("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "X")
    assert h.kind == "hessian"
    assert h.map == "A * dX * B + A^T * dX * B^T"
    assert h.vec_form == "kron(B^T, A) + kron(B, A^T)"
    assert h.matrix is None
    assert set(h.steps) == {"first", "second"}
    assert "\\otimes" in h.latex
    m = md.hessian("x : n; A : n x n; y : n; x^T*A*y", ["x", "y"])
    assert m.kind == "mixed"
    j = md.jacobian("W : m x n; x : n; tanh(W*x)", "x")
    assert j.kind == "jacobian"
    assert j.matrix == "diag(1 - tanh(W * x) .^ 2) * W"
    assert j.matrix_shape == ("m", "n") and j.direction_shape == ("n", 1) and j.vec_shape is None
    assert md.hessian("X : n x m; A : n x n; tr(X^T*A*X)", "X").vec_shape == ("n*m", "n*m")
    with pytest.raises(TypeError):
        md.jacobian("W*x", ["x", "W"])


def test_latex():
    assert md.latex("W[i]*x") == "W_{i} x"
    assert md.latex("W*x", shapes={"W": (3, 4), "x": 4}) == "W x"


def test_arguments_of_the_wrong_type():
    with pytest.raises(TypeError):
        md.derive(3)
    with pytest.raises(TypeError):
        md.derive("W*X", wrt=[1])
    with pytest.raises(TypeError):
        md.derive("W*X", shapes={"W": (3, 4, 5)})
    with pytest.raises(TypeError):
        md.check("W*X", dims={"d0": 2.5})
    with pytest.raises(TypeError):
        md.verify("W*X", "W", claim=None)


def test_version_and_native_run():
    assert md.__version__.count(".") == 2
    status, out, err = md._native.run(["derive", "--", "W1*W2"])
    assert status == 0 and "d/dW1" in out and err == ""
    assert md._native.run([])[0] == 2


def test_docstrings_and_doctests():
    assert "like ``matdiff derive``" in md.derive.__doc__
    for name in md.__all__:
        obj = getattr(md, name)
        if callable(obj):
            assert obj.__doc__, name
    failures, tried = doctest.testmod(md, verbose=False)
    assert tried >= 5 and failures == 0
