"""The Jupyter reprs: LaTeX that is balanced and that KaTeX renders, HTML where LaTeX cannot say it."""

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import matdiff as md
from conftest import require

PROGRAMS = [
    "W1*W2*W3*X",
    "x : n; A : n x n; x^T*A*x",
    "W : k x m; X : m x B; Y : k x B; norm(sigmoid(W*X) - Y)^2",
    "W : k x d; X : d x B; b : k; Y : k x B onehot; -sum(Y .* log(softmax(W*X + b)))",
    "X : n x n; logdet(X)",
    "W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X",
]


def reprs():
    """(what, LaTeX) for every object with a _repr_latex_."""
    out = []
    for program in PROGRAMS:
        d = md.derive(program)
        out.append((f"derivation {program}", d._repr_latex_()))
        out.append((f"steps {program}", d.steps._repr_latex_()))
        for name, g in d.items():
            out.append((f"gradient {name} of {program}", g._repr_latex_()))
            out.append((f"steps of {name} in {program}", g.steps._repr_latex_()))
            out.append((f"step 0 of {name} in {program}", g.steps[0]._repr_latex_()))
    out.append(("plan", md.plan("W1*W2*X", dims={"d0": 64, "d1": 64, "d2": 64, "d3": 65536})._repr_latex_()))
    out.append(("symbolic plan", md.plan(PROGRAMS[-1])._repr_latex_()))
    out.append(("hessian", md.hessian("X : 3x2; A : 3x3; B : 2x2; tr(A*X*B*X^T)", "X")._repr_latex_()))
    out.append(("jacobian", md.jacobian("W : m x n; x : n; tanh(W*x)", "x")._repr_latex_()))
    return out


def bodies(text):
    """The bodies of the `$$ ... $$` displays; nothing outside them but white space."""
    parts = text.split("$$")
    assert len(parts) % 2 == 1, "an odd number of $$"
    assert all(not p.strip() for p in parts[0::2]), f"text outside $$: {text!r}"
    return [p for p in parts[1::2]]


def balanced(body):
    depth = 0
    for i, c in enumerate(body):
        if c in "{}" and i > 0 and body[i - 1] == "\\":
            continue
        depth += {"{": 1, "}": -1}.get(c, 0)
        if depth < 0:
            return False
    if depth != 0:
        return False
    if len(re.findall(r"\\left\b", body)) != len(re.findall(r"\\right\b", body)):
        return False
    begins = re.findall(r"\\begin\{(\w+\*?)\}", body)
    ends = re.findall(r"\\end\{(\w+\*?)\}", body)
    return sorted(begins) == sorted(ends)


def test_every_repr_is_balanced_display_math():
    for what, text in reprs():
        found = bodies(text)
        assert found, what
        for body in found:
            assert balanced(body), f"{what}: {body}"


def test_the_balance_check_can_fail():
    assert not balanced("\\frac{a}{b")
    assert not balanced("\\left( a")
    assert not balanced("\\begin{aligned} a")


def test_derivation_repr_typesets_the_gradients():
    d = md.derive("W1*W2*W3*X")
    text = d._repr_latex_()
    assert text.count("$$") == 8
    assert "\\frac{\\partial \\mathcal{L}}{\\partial W_{2}} = W_{1}^{\\top} G X^{\\top} W_{3}^{\\top}" in text
    assert d["W2"]._repr_latex_() == (
        "$$ \\frac{\\partial \\mathcal{L}}{\\partial W_{2}} = W_{1}^{\\top} G X^{\\top} W_{3}^{\\top} $$"
    )
    # The where-block of shared names.
    shared = md.derive(PROGRAMS[2])._repr_latex_()
    assert "\\text{where } T_{1} &= \\sigma\\left(W X\\right)" in shared


def test_plan_repr_is_a_table():
    p = md.plan("W1*W2*X", dims={"d0": 64, "d1": 64, "d2": 64, "d3": 65536})
    text = p._repr_latex_()
    assert "\\begin{array}" in text and "\\hline" in text
    assert text.count("\\\\") == len(p.steps) + 1
    assert "806 092 800" in text


def test_html_reprs():
    v = md.verify("W1*W2*W3*X", "W2", "W1^T*G*X^T*W3^T")
    assert "equivalent" in v._repr_html_() and "<code>W1^T * G * X^T * W3^T</code>" in v._repr_html_()
    r = md.check("W1*W2*W3*X")
    assert r._repr_html_().count("<tr>") == 5
    with pytest.raises(md.ShapeError) as info:
        md.derive("W1 : 3x4; W2 : 5x6; W1*W2")
    assert info.value._repr_html_().startswith("<pre>error: shape error")


def katex_dir():
    found = os.environ.get("MATDIFF_KATEX_DIR")
    if found and (Path(found) / "node_modules" / "katex").is_dir() and shutil.which("node"):
        return found
    if require("katex"):
        pytest.fail("MATDIFF_REQUIRE_KATEX=1 but MATDIFF_KATEX_DIR has no node_modules/katex (or no node)")
    pytest.skip("KaTeX not found: set MATDIFF_KATEX_DIR to a directory with node_modules/katex")


def katex_errors(bodies_):
    script = Path(__file__).with_name("katex_render.js")
    run = subprocess.run(
        ["node", str(script), katex_dir()], input=json.dumps(bodies_), capture_output=True, text=True, check=True
    )
    return json.loads(run.stdout)


def test_every_repr_renders_with_katex():
    items = [(what, body) for what, text in reprs() for body in bodies(text)]
    errors = katex_errors([body for _, body in items])
    failed = [(what, body, e) for (what, body), e in zip(items, errors) if e is not None]
    assert not failed, failed[:3]
    # And KaTeX does refuse what it cannot render.
    assert all(e is not None for e in katex_errors(["\\frac{a}{b", "\\notacommand x"]))
