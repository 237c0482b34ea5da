"""matdiff: symbolic matrix calculus from Python.

Gradients with their derivation steps, verdicts on hand-derived formulas,
finite-difference checks, and numeric plans that run on NumPy, PyTorch and
JAX, from matdiff's Rust engine.

>>> import matdiff as md
>>> d = md.derive("W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; W1*W2*W3*X")
>>> d["W2"].expr
'W1^T * G * X^T * W3^T'
>>> d["W2"].shape
(4, 5)
>>> bool(md.verify("W1*W2*W3*X", wrt="W2", claim="W1^T*G*X^T*W3^T"))
True

Each function reads like the command of the same name (docs/cli.md): it
runs that command in-process in the native module, with ``--json``, and
wraps the document (docs/json.md) in a Python object whose attributes are
the document's keys; nothing is computed in Python. In a notebook the
results typeset themselves (``_repr_latex_``). Errors are exceptions
(:class:`MatdiffError` and its subclasses) whose ``str`` is the caret
diagnostic the command line prints.
"""

from __future__ import annotations

import collections.abc
import json
import re
import types
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple, Union

from . import _native

__all__ = [
    "derive",
    "verify",
    "check",
    "plan",
    "hessian",
    "jacobian",
    "latex",
    "Derivation",
    "Gradient",
    "Steps",
    "Step",
    "DerivationSteps",
    "Verdict",
    "CheckReport",
    "Plan",
    "PlanStep",
    "SecondOrder",
    "MatdiffError",
    "ParseError",
    "ShapeError",
    "UnsupportedError",
    "UsageError",
    "LimitError",
    "InternalError",
    "__version__",
]

__version__: str = _native.version()


# --------------------------------------------------------------------------
# Errors


class MatdiffError(Exception):
    """An error of the engine: parse, shape, unsupported construct, usage, limit.

    ``str(error)`` is the diagnostic the command line prints, the program
    with a caret under the place the error is about. The JSON error object
    (docs/json.md, Errors) is on the attributes: ``kind`` (``"parse"``,
    ``"shape"``, ...), ``message``, ``labels`` (``[{start, end, message}]``,
    byte offsets into ``source``), ``notes``; ``span`` is the first label's
    ``(start, end)``, or ``None`` when the error is about no place;
    ``source`` is the program text the engine read (declarations from
    ``shapes=`` included).
    """

    def __init__(
        self,
        diagnostic: str,
        *,
        kind: str = "internal",
        message: str = "",
        labels: Optional[List[Dict[str, Any]]] = None,
        notes: Optional[List[str]] = None,
        source: str = "",
    ) -> None:
        super().__init__(diagnostic.rstrip("\n"))
        self.diagnostic: str = diagnostic.rstrip("\n")
        self.kind: str = kind
        self.message: str = message
        self.labels: List[Dict[str, Any]] = list(labels or [])
        self.notes: List[str] = list(notes or [])
        self.source: str = source
        first = self.labels[0] if self.labels else None
        self.span: Optional[Tuple[int, int]] = (first["start"], first["end"]) if first else None

    def __str__(self) -> str:
        return self.diagnostic

    def _repr_html_(self) -> str:
        return "<pre>" + _html(self.diagnostic) + "</pre>"


class ParseError(MatdiffError):
    """The program is not in the expression language (docs/language.md)."""


class ShapeError(MatdiffError):
    """The shapes do not fit: a product of 3x4 by 5x6, a declaration twice, ..."""


class UnsupportedError(MatdiffError):
    """A construct matdiff refuses by name rather than approximate."""


class UsageError(MatdiffError):
    """An argument the command refuses: an unknown variable in ``wrt``, bad ``dims``, ..."""


class LimitError(MatdiffError):
    """A size or count beyond one of matdiff's limits."""


class InternalError(MatdiffError):
    """A bug in matdiff."""


_ERRORS = {
    "parse": ParseError,
    "shape": ShapeError,
    "unsupported": UnsupportedError,
    "usage": UsageError,
    "limit": LimitError,
    "internal": InternalError,
}

# The titles of the rendered diagnostics (matdiff::ErrorKind::title), for a
# command that prints no JSON error object (the LaTeX and code outputs).
_TITLES = {
    "parse error": "parse",
    "shape error": "shape",
    "not supported": "unsupported",
    "usage error": "usage",
    "limit reached": "limit",
    "internal error": "internal",
}


def _error(out: str, err: str, source: str, json_output: bool) -> MatdiffError:
    document: Dict[str, Any] = {}
    if json_output:
        try:
            document = json.loads(out)
        except ValueError:
            document = {}
    kind = document.get("kind")
    if kind is None:
        first = err.split("\n", 1)[0]
        m = re.match(r"(?i)error: ([a-z ]+?)(?: \(|:)", first)
        kind = _TITLES.get(m.group(1).lower(), "usage") if m else "usage"
    cls = _ERRORS.get(kind, MatdiffError)
    return cls(
        err or document.get("message", "matdiff failed"),
        kind=kind,
        message=document.get("message", err.split("\n", 1)[0]),
        labels=document.get("labels"),
        notes=document.get("notes"),
        source=source,
    )


# --------------------------------------------------------------------------
# Running a command


def _run(args: List[str], source: str, json_output: bool = True) -> Tuple[int, str]:
    """Runs ``matdiff ARGS -- SOURCE``; raises the error on status 2."""
    if json_output:
        args = args + ["--json"]
    # The program comes after `--`, so that no program is read as an option.
    # A program of just `-` would mean standard input to the command line.
    status, out, err = _native.run(args + ["--", source if source != "-" else "- "])
    if status == 2:
        raise _error(out, err, source, json_output)
    return status, out


def _run_json(args: List[str], source: str) -> Tuple[int, Dict[str, Any]]:
    status, out = _run(args, source)
    return status, json.loads(out)


def _program(expr: str, shapes: Optional[Mapping[str, Any]]) -> str:
    """The program text: declarations from ``shapes`` (in their order), then ``expr``."""
    if not isinstance(expr, str):
        raise TypeError(f"the expression must be a str, not {type(expr).__name__}")
    if not shapes:
        return expr
    if not isinstance(shapes, collections.abc.Mapping):
        raise TypeError("shapes must be a mapping of variable names to shapes, e.g. {'W1': (3, 4)}")
    decls = [f"{name} : {_shape_text(name, shape)}" for name, shape in shapes.items()]
    return "; ".join(decls + [expr])


def _dim_text(name: str, dim: Any) -> str:
    if isinstance(dim, bool) or not isinstance(dim, (int, str)):
        raise TypeError(f"shapes[{name!r}]: a dimension is an int or a name, not {dim!r}")
    return str(dim)


def _shape_text(name: str, shape: Any) -> str:
    """``(3, 4)`` as ``3 x 4``, ``5`` or ``"n"`` as a column, a str as written (``"n x n spd"``)."""
    if isinstance(shape, str):
        return shape
    if isinstance(shape, int) and not isinstance(shape, bool):
        return str(shape)
    if isinstance(shape, (tuple, list)) and len(shape) == 2:
        return f"{_dim_text(name, shape[0])} x {_dim_text(name, shape[1])}"
    raise TypeError(
        f"shapes[{name!r}] = {shape!r}: give (rows, cols), a length for a column, or a declaration such as 'n x n spd'"
    )


def _names(what: str, value: Union[None, str, Iterable[str]]) -> List[str]:
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    names = list(value)
    for n in names:
        if not isinstance(n, str):
            raise TypeError(f"{what} holds variable names (str), not {n!r}")
    return names


def _wrt_args(wrt: Union[None, str, Iterable[str]]) -> List[str]:
    return [a for w in _names("wrt", wrt) for a in ("--wrt", w)]


def _dims_args(dims: Optional[Mapping[str, int]]) -> List[str]:
    if not dims:
        return []
    parts = []
    for name, size in dims.items():
        if isinstance(size, bool) or not isinstance(size, int):
            raise TypeError(f"dims[{name!r}] = {size!r}: a size is an int")
        parts.append(f"{name}={size}")
    return ["--dims", ",".join(parts)]


def _domain_args(domains: Optional[Mapping[str, str]]) -> List[str]:
    return [a for name, d in (domains or {}).items() for a in ("--domain", f"{name}={d}")]


def _upstream_args(upstream: Optional[str]) -> List[str]:
    return [] if upstream is None else ["--upstream", upstream]


def _order_args(order: int, jacobian: bool) -> List[str]:
    if jacobian:
        return ["--jacobian"]
    return [] if order == 1 else ["--order", str(order)]


# --------------------------------------------------------------------------
# Display helpers (presentation only: the formulas are the engine's LaTeX)


def _html(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


_DISPLAY = re.compile(r"\\\[(.*?)\\\]", re.S)


def _blocks(latex_text: str) -> List[str]:
    """The bodies of the ``\\[ ... \\]`` displays the command line prints."""
    return [b.strip() for b in _DISPLAY.findall(latex_text)]


def _display(bodies: Iterable[str]) -> str:
    """Display math as notebooks typeset it: one ``$$ ... $$`` per body."""
    return "\n".join(f"$$ {b} $$" for b in bodies)


def _text_latex(text: str) -> str:
    """Plain text inside ``\\text{}``, its special characters escaped."""
    out = []
    for c in str(text):
        if c in "&%$#_{}":
            out.append("\\" + c)
        elif c == "\\":
            out.append("\\textbackslash{}")
        elif c == "^":
            out.append("\\textasciicircum{}")
        elif c == "~":
            out.append("\\textasciitilde{}")
        else:
            out.append(c)
    return "\\text{" + "".join(out) + "}"


def _shape(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


class _Document:
    """A JSON document of the command line (docs/json.md), its keys as attributes."""

    json: Dict[str, Any]

    def __init__(self, document: Dict[str, Any]) -> None:
        self.json = document

    def __getattr__(self, name: str) -> Any:
        document = self.__dict__.get("json")
        if document is not None and name in document:
            return document[name]
        raise AttributeError(f"{type(self).__name__!s} has no attribute {name!r}")

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self.json))


# --------------------------------------------------------------------------
# derive


class Step(_Document):
    """One line of a derivation: ``expr`` (and its ``latex``), justified by ``why`` (and ``why_latex``)."""

    def __repr__(self) -> str:
        return f"Step({self.json['expr']!r}, why={self.json['why']!r})"

    def _repr_latex_(self) -> str:
        return f"$$ {self.json['latex']} \\quad {self.json['why_latex']} $$"


class Steps(collections.abc.Sequence):
    """The derivation of one gradient: differential, trace, rotation, read-off.

    A sequence of :class:`Step`; ``shape_check`` is the shape check factor
    by factor, as text; ``latex`` the derivation as an ``aligned``
    environment, as ``matdiff derive --steps --latex`` prints it.
    """

    def __init__(self, wrt: str, steps: List[Dict[str, Any]], shape_check: List[str], latex: str) -> None:
        self.wrt = wrt
        self._steps = [Step(s) for s in steps]
        self.shape_check: List[str] = shape_check
        self.latex: str = latex

    def __getitem__(self, i):  # type: ignore[override]
        return self._steps[i]

    def __len__(self) -> int:
        return len(self._steps)

    def __str__(self) -> str:
        width = max((len(s.expr) for s in self._steps), default=0)
        lines = [f"  = {s.expr:<{width}}    ({s.why})" for s in self._steps]
        return "\n".join([f"d/d{self.wrt}:"] + lines + [f"  shape check: {c}" for c in self.shape_check])

    def __repr__(self) -> str:
        return f"<Steps of d/d{self.wrt}: {len(self)} steps>"

    def _repr_latex_(self) -> Optional[str]:
        # None: Jupyter shows the text instead (no block was found for this gradient).
        return _display([self.latex]) if self.latex else None


class DerivationSteps(collections.abc.Mapping):
    """Every gradient's :class:`Steps`, by variable; typesets as ``derive --steps --latex``."""

    def __init__(self, steps: Dict[str, Steps], latex: str) -> None:
        self._steps = steps
        self.latex: str = latex

    def __getitem__(self, wrt: str) -> Steps:
        return self._steps[wrt]

    def __iter__(self):
        return iter(self._steps)

    def __len__(self) -> int:
        return len(self._steps)

    def __str__(self) -> str:
        return "\n".join(str(s) for s in self._steps.values())

    def __repr__(self) -> str:
        return f"<DerivationSteps of {', '.join(self._steps)}>"

    def _repr_latex_(self) -> str:
        return _display(_blocks(self.latex))


class Gradient(_Document):
    """The gradient dL/dV of one variable.

    Attributes (docs/json.md, derive): ``wrt`` the variable, ``expr`` the
    formula in the expression language, ``latex`` the same as LaTeX,
    ``shape`` (rows, cols) (an int where known, the dimension's name
    otherwise), ``occurrences``, ``saturated``, and where present
    ``condition``, ``shared_expr``, ``shared_latex``. ``steps`` is the
    derivation (computed on first use).
    """

    def __init__(self, document: Dict[str, Any], derivation: "Derivation") -> None:
        super().__init__(document)
        self._derivation = derivation

    @property
    def wrt(self) -> str:
        return self.json["wrt"]

    @property
    def expr(self) -> str:
        return self.json["expr"]

    @property
    def latex(self) -> str:
        return self.json["latex"]

    @property
    def shape(self) -> Tuple[Any, Any]:
        return _shape(self.json["shape"])

    @property
    def steps(self) -> Steps:
        return self._derivation.steps[self.wrt]

    def __str__(self) -> str:
        rows, cols = self.shape
        return f"d/d{self.wrt} = {self.expr}  : {rows} x {cols}"

    def __repr__(self) -> str:
        return f"<Gradient d/d{self.wrt} = {self.expr}>"

    def _repr_latex_(self) -> str:
        return _display([self._derivation._expanded_latex()[self.wrt]])


class Derivation(collections.abc.Mapping):
    """The gradients of an expression: a mapping of variable name to :class:`Gradient`.

    Attributes (docs/json.md, derive): ``expr``, ``shape`` (of the value),
    ``upstream`` (the upstream gradient's name, ``None`` for a scalar loss),
    ``saturated``, ``definitions`` (shared subexpressions, ``[{name, expr,
    latex}]``), ``gradients`` (in order), ``json`` (the whole document),
    ``latex`` (``derive --latex``) and ``steps`` (a :class:`DerivationSteps`).
    """

    def __init__(self, document: Dict[str, Any], args: List[str], source: str) -> None:
        self.json: Dict[str, Any] = document
        self._args = args
        self._source = source
        self.gradients: List[Gradient] = [Gradient(g, self) for g in document["gradients"]]
        self._by_name = {g.wrt: g for g in self.gradients}
        self._latex: Optional[str] = None
        self._expanded: Optional[Dict[str, str]] = None
        self._steps: Optional[DerivationSteps] = None
        self._text: Optional[str] = None

    expr = property(lambda self: self.json["expr"], doc="The expression, as matdiff prints it.")
    shape = property(lambda self: _shape(self.json["shape"]), doc="The shape of the expression's value.")
    upstream = property(lambda self: self.json["upstream"], doc="The upstream gradient's name, or None.")
    saturated = property(lambda self: self.json["saturated"], doc="Whether every gradient is simplest.")
    definitions = property(
        lambda self: self.json.get("definitions", []), doc="Shared subexpressions: [{name, expr, latex}]."
    )

    def __getitem__(self, wrt: str) -> Gradient:
        return self._by_name[wrt]

    def __iter__(self):
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    @property
    def latex(self) -> str:
        """The gradients as LaTeX, as ``matdiff derive --latex`` prints them."""
        if self._latex is None:
            self._latex = _run(self._args + ["--latex"], self._source, json_output=False)[1]
        return self._latex

    def _expanded_latex(self) -> Dict[str, str]:
        if self._expanded is None:
            args = self._args + ([] if "--expanded" in self._args else ["--expanded"])
            text = _run(args + ["--latex"], self._source, json_output=False)[1]
            self._expanded = dict(zip(self._by_name, _blocks(text)))
        return self._expanded

    @property
    def steps(self) -> DerivationSteps:
        """Every gradient's derivation (computed on first use)."""
        if self._steps is None:
            args = self._args + ["--steps"]
            _, document = _run_json(args, self._source)
            latex_text = _run(args + ["--latex"], self._source, json_output=False)[1]
            blocks = _blocks(latex_text)
            steps = {}
            for k, g in enumerate(document["gradients"]):
                block = blocks[k] if len(blocks) == len(document["gradients"]) else ""
                steps[g["wrt"]] = Steps(g["wrt"], g.get("steps", []), g.get("shape_check", []), block)
            self._steps = DerivationSteps(steps, latex_text)
        return self._steps

    def __str__(self) -> str:
        if self._text is None:
            self._text = _run(self._args, self._source, json_output=False)[1].rstrip("\n")
        return self._text

    def __repr__(self) -> str:
        inner = ", ".join(f"{g.wrt}: {g.expr!r}" for g in self.gradients)
        return f"<Derivation of {self.expr!r}: {{{inner}}}>"

    def _repr_latex_(self) -> str:
        return _display(_blocks(self.latex))


def derive(
    expr: str,
    wrt: Union[None, str, Iterable[str]] = None,
    upstream: Optional[str] = "G",
    *,
    shapes: Optional[Mapping[str, Any]] = None,
    expanded: bool = False,
) -> Derivation:
    """The gradient of every variable of ``expr`` (or of those in ``wrt``), like ``matdiff derive``.

    ``expr`` is a program in matdiff's language: declarations and an
    expression, ``;``-separated (``"W1 : 3x4; W1*X"``); ``shapes`` adds
    declarations, ``{"W1": (3, 4), "x": "n", "S": "n x n spd"}``. For a
    matrix-valued expression the gradients are those of a loss L whose
    gradient in the value is ``upstream`` (dL/dZ, default ``G``).
    ``expanded`` writes every formula in full, without shared names.

    Returns a :class:`Derivation`, a mapping from variable name to
    :class:`Gradient` (``.expr``, ``.shape``, ``.latex``, ``.steps``). Raises
    :class:`ParseError`, :class:`ShapeError`, :class:`UnsupportedError`,
    :class:`UsageError` (e.g. ``wrt`` names no variable).

    >>> d = derive("W1*W2*W3*X")
    >>> str(d["W2"])
    'd/dW2 = W1^T * G * X^T * W3^T  : d1 x d2'
    """
    source = _program(expr, shapes)
    args = ["derive"] + _wrt_args(wrt) + _upstream_args(upstream) + (["--expanded"] if expanded else [])
    _, document = _run_json(args, source)
    return Derivation(document, args, source)


# --------------------------------------------------------------------------
# verify


class Verdict(_Document):
    """Whether a claimed gradient is right: truthy exactly when ``outcome`` is ``"equivalent"``.

    Attributes (docs/json.md, verify): ``equivalent``, ``outcome``
    (``"equivalent"``, ``"not equivalent"``, ``"undecided"``), ``method``
    (``"symbolic"`` or ``"numeric"``), ``detail`` (how the verdict was
    reached), ``derived`` (matdiff's own formula), ``evidence`` (``{instances,
    decided, tolerance, worst_rel_err, domains}`` or ``None``).
    """

    def __bool__(self) -> bool:
        return bool(self.json["equivalent"])

    def __str__(self) -> str:
        return f"{self.json['outcome']} ({self.json['method']}): {self.json['detail']}"

    def __repr__(self) -> str:
        return f"<Verdict {self.json['outcome']} ({self.json['method']})>"

    def _repr_html_(self) -> str:
        colour = {"equivalent": "green", "not equivalent": "#b00"}.get(self.json["outcome"], "#a60")
        return (
            f"<p><b style='color:{colour}'>{_html(self.json['outcome'])}</b> ({_html(self.json['method'])}): "
            f"{_html(self.json['detail'])}</p><p>derived: <code>{_html(self.json['derived'])}</code></p>"
        )


def verify(
    expr: str,
    wrt: Union[str, Sequence[str]],
    claim: str,
    *,
    upstream: Optional[str] = None,
    domains: Optional[Mapping[str, str]] = None,
    shapes: Optional[Mapping[str, Any]] = None,
    order: int = 1,
    jacobian: bool = False,
) -> Verdict:
    """Decides whether ``claim`` is the gradient of ``expr`` in ``wrt``, like ``matdiff verify``.

    First symbolically (the claim and the derived gradient in one e-graph
    class), else numerically on random instances. ``order=2``: the claim is
    the Hessian (its matrix, or the map ``H[dV]``; two variables in ``wrt``
    for the mixed derivative); ``jacobian=True``: the Jacobian. ``domains``
    restricts values, ``{"X": "positive"}`` (positive, negative, nonzero,
    spd, onehot). Returns a :class:`Verdict`, truthy when equivalent; a
    wrong claim is a falsy verdict, not an exception.

    >>> bool(verify("x : n; A : n x n; x^T*A*x", "x", "2*A*x"))
    False
    """
    if not isinstance(claim, str):
        raise TypeError(f"the claim must be a str, not {type(claim).__name__}")
    source = _program(expr, shapes)
    args = (
        ["verify"]
        + _wrt_args(wrt)
        + ["--claim", claim]
        + _upstream_args(upstream)
        + _domain_args(domains)
        + _order_args(order, jacobian)
    )
    _, document = _run_json(args, source)
    return Verdict(document)


# --------------------------------------------------------------------------
# check


class CheckReport(_Document):
    """Derived gradients against finite differences: truthy exactly when ``ok``.

    Attributes (docs/json.md, check): ``ok``, ``undecided``, ``results``
    (``[{wrt, outcome, ok, max_rel_err, fd_error, reason, compared,
    directions}]``), ``sizes``, ``indices``, ``seed``, ``domains``,
    ``redraws``, ``instances``, ``tolerance``. A second-order check
    (``order=2``, ``jacobian=True``) has the second-order document instead
    (``first``, ``second``, ``ok``, ...).
    """

    def __bool__(self) -> bool:
        return bool(self.json["ok"])

    def __repr__(self) -> str:
        return f"<CheckReport {'ok' if self else 'not ok'}>"

    def _repr_html_(self) -> str:
        rows = "".join(
            "<tr><td>d/d{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                _html(str(r.get("wrt"))),
                _html(str(r.get("outcome"))),
                "" if r.get("max_rel_err") is None else f"{r['max_rel_err']:.2e}",
                _html(r.get("reason") or ""),
            )
            for r in self.json.get("results", [])
        )
        head = "<tr><th>gradient</th><th>outcome</th><th>max rel err</th><th>reason</th></tr>"
        summary = "ok" if self else "not ok"
        return f"<p><b>{summary}</b> (seed {_html(str(self.json.get('seed')))})</p><table>{head}{rows}</table>"


def check(
    expr: str,
    dims: Optional[Mapping[str, int]] = None,
    seed: int = 1,
    *,
    wrt: Union[None, str, Iterable[str]] = None,
    upstream: Optional[str] = None,
    domains: Optional[Mapping[str, str]] = None,
    shapes: Optional[Mapping[str, Any]] = None,
    method: str = "auto",
    order: int = 1,
    jacobian: bool = False,
) -> CheckReport:
    """Compares every derived gradient with finite differences, like ``matdiff check``.

    ``dims`` sizes symbolic dimensions (``{"d0": 3, "n": 5}``; the others
    are drawn, 2..5) and ``seed`` the random sizes and matrices. ``method``
    is ``"auto"``, ``"entries"`` or ``"directions"``; ``order=2`` checks the
    Hessian, ``jacobian=True`` the Jacobian (one variable in ``wrt``).
    Returns a :class:`CheckReport`, truthy when every gradient agrees.
    """
    source = _program(expr, shapes)
    args = (
        ["check"]
        + _wrt_args(wrt)
        + _upstream_args(upstream)
        + _dims_args(dims)
        + _domain_args(domains)
        + ["--seed", str(int(seed)), "--method", method]
        + _order_args(order, jacobian)
    )
    _, document = _run_json(args, source)
    return CheckReport(document)


# --------------------------------------------------------------------------
# plan


class PlanStep(_Document):
    """One step of a plan: ``out = op``, its ``shape`` and ``madds`` (and ``base``, ``range`` in a symbolic plan)."""

    shape = property(lambda self: _shape(self.json["shape"]))

    def __repr__(self) -> str:
        return f"<PlanStep {self.json['out']} = {self.json['op']}>"


_FRAMEWORKS = {"numpy": ("numpy", "value_and_grads"), "torch": ("pytorch", "plan"), "jax": ("jax", "plan")}


class Plan(_Document):
    """A numeric plan: the value and every gradient, sharing products.

    Attributes (docs/json.md, plan): ``steps`` (a list of :class:`PlanStep`),
    ``cost`` (``total_madds``: the multiply-adds, an int, or a polynomial as
    text where sizes are symbolic), ``outputs``, ``forward_madds``,
    ``separate_madds``, ``products``, ``sweeps``, ``symbolic``; ``code()``
    is the emitted source, and ``numpy()``, ``torch()``, ``jax()`` the
    emitted function, ready to call (the framework is imported then).
    """

    def __init__(self, document: Dict[str, Any], args: List[str], source: str) -> None:
        super().__init__(document)
        self._args = args
        self._source = source
        self._code: Dict[Tuple[str, Optional[str]], str] = {}
        self.steps: List[PlanStep] = [PlanStep(s) for s in document.get("steps", [])]

    @property
    def cost(self) -> Union[int, str]:
        """The plan's multiply-adds (``total_madds``)."""
        return self.json["total_madds"]

    @property
    def symbolic(self) -> bool:
        """Whether the plan is a recurrence over a product of symbolic length."""
        return bool(self.json.get("symbolic", False))

    def code(self, framework: str = "numpy", name: Optional[str] = None) -> str:
        """The plan as source code, like ``matdiff plan --emit``.

        ``framework``: ``"numpy"`` (a function returning the value and
        ``{name: gradient}``), ``"torch"`` (a ``torch.autograd.Function``, a
        function applying it and a module) or ``"jax"`` (a ``jax.custom_vjp``
        function). ``name`` is the function's name.
        """
        if framework not in _FRAMEWORKS:
            raise ValueError(f"framework is one of {', '.join(_FRAMEWORKS)}, not {framework!r}")
        key = (framework, name)
        if key not in self._code:
            args = self._args + ["--emit", _FRAMEWORKS[framework][0]] + ([] if name is None else ["--name", name])
            self._code[key] = _run(args, self._source, json_output=False)[1]
        return self._code[key]

    def module(self, framework: str = "numpy") -> types.ModuleType:
        """The emitted code run in a fresh module (which imports the framework)."""
        code = self.code(framework)
        module = types.ModuleType(f"matdiff_plan_{framework}")
        module.__dict__["__matdiff_source__"] = code
        exec(compile(code, f"<matdiff plan: {framework}>", "exec"), module.__dict__)
        return module

    def numpy(self) -> Callable[..., Any]:
        """``value_and_grads(**arrays) -> (value, {name: gradient})`` on NumPy arrays (keywords only)."""
        return getattr(self.module("numpy"), _FRAMEWORKS["numpy"][1])

    def torch(self) -> Callable[..., Any]:
        """``plan(**tensors) -> value``, differentiable: its backward is the plan's (a ``torch.autograd.Function``)."""
        return getattr(self.module("torch"), _FRAMEWORKS["torch"][1])

    def jax(self) -> Callable[..., Any]:
        """``plan(*arrays) -> value``, a ``jax.custom_vjp`` function whose VJP is the plan's."""
        return getattr(self.module("jax"), _FRAMEWORKS["jax"][1])

    def __str__(self) -> str:
        return _run(self._args, self._source, json_output=False)[1].rstrip("\n")

    def __repr__(self) -> str:
        return f"<Plan of {self.json.get('expr')!r}: {len(self.steps)} steps, {self.cost} multiply-adds>"

    def _repr_latex_(self) -> str:
        symbolic = self.symbolic
        head = ["\\text{step}", "\\text{operation}", "\\text{shape}", "\\text{multiply-adds}"]
        if symbolic:
            head[2:2] = ["\\text{base}", "\\text{range}"]
        rows = [" & ".join(head) + " \\\\ \\hline"]
        for s in self.steps:
            d = s.json
            rows_, cols_ = d["shape"]
            cells = [
                _text_latex(d["out"]),
                _text_latex(d["op"]),
                _text_latex(f"{rows_} x {cols_}"),
                _text_latex(f"{d['madds']:,}".replace(",", " ") if isinstance(d["madds"], int) else d["madds"]),
            ]
            if symbolic:
                cells[2:2] = [_text_latex(d.get("base", "")), _text_latex(d.get("range", ""))]
            rows.append(" & ".join(cells) + " \\\\")
        total = self.cost
        total_text = f"{total:,}".replace(",", " ") if isinstance(total, int) else total
        cols = "l" * (len(head) - 1) + "r"
        table = "\\begin{array}{" + cols + "}\n" + "\n".join(rows) + "\n\\end{array}"
        return f"$$ {table} $$\n$$ {_text_latex('total: ' + str(total_text) + ' multiply-adds')} $$"


def plan(
    expr: str,
    dims: Optional[Mapping[str, int]] = None,
    *,
    wrt: Union[None, str, Iterable[str]] = None,
    upstream: Optional[str] = None,
    shapes: Optional[Mapping[str, Any]] = None,
    order: int = 1,
    full: bool = False,
) -> Plan:
    """Compiles the value and every gradient into one numeric plan, like ``matdiff plan``.

    ``dims`` sizes the symbolic dimensions and product lengths
    (``{"d0": 64, "B": 65536}``); with them the costs are numbers and the
    bracketing is chosen by them. ``order=2`` plans the Hessian-vector
    product (one variable in ``wrt``; ``full=True``: the whole Hessian
    matrix of a vector). Returns a :class:`Plan`: ``.steps``, ``.cost``,
    and ``.numpy()``, ``.torch()``, ``.jax()``, the emitted code as callables.
    """
    source = _program(expr, shapes)
    args = ["plan"] + _wrt_args(wrt) + _upstream_args(upstream) + _dims_args(dims) + _order_args(order, False)
    if full:
        args.append("--full")
    _, document = _run_json(args, source)
    return Plan(document, args, source)


# --------------------------------------------------------------------------
# hessian, jacobian


class SecondOrder(_Document):
    """A Hessian or Jacobian (docs/json.md, hessian and jacobian).

    Attributes: ``kind`` (``"hessian"``, ``"mixed"``, ``"jacobian"``),
    ``expr``, ``wrt``, ``along``, ``direction``, ``first``, ``map`` and
    ``map_latex`` (``H[dV]`` or ``dZ``), ``matrix`` and ``matrix_latex``
    (``None`` where there is none, ``no_matrix`` says why), ``vec_form``,
    ``vec_form_latex``, the shapes, ``off_kinks``, ``saturated``; ``latex``
    as ``matdiff hessian --latex`` prints it; ``steps`` the two derivations.
    """

    def __init__(self, document: Dict[str, Any], args: List[str], source: str) -> None:
        super().__init__(document)
        self._args = args
        self._source = source
        self._latex: Optional[str] = None
        self._steps: Optional[Dict[str, Any]] = None

    # Shapes as tuples, as a gradient's: (rows, cols), each an int or the text of a size.
    direction_shape = property(lambda self: _shape(self.json["direction_shape"]), doc="The direction's shape.")
    map_shape = property(lambda self: _shape(self.json["map_shape"]), doc="The shape of the map's value.")
    matrix_shape = property(
        lambda self: _shape(self.json["matrix_shape"]), doc="The matrix's shape, or None where there is none."
    )
    vec_shape = property(
        lambda self: _shape(self.json["vec_shape"]),
        doc='The vec form\'s shape, or None; a product of symbolic sizes is the text "n*m".',
    )

    @property
    def latex(self) -> str:
        """The result as LaTeX, as the command line prints it with ``--latex``."""
        if self._latex is None:
            self._latex = _run(self._args + ["--latex"], self._source, json_output=False)[1]
        return self._latex

    @property
    def steps(self) -> Dict[str, Any]:
        """The two derivations, ``{first, second}``, each as ``derive --steps`` shows a gradient's."""
        if self._steps is None:
            self._steps = _run_json(self._args + ["--steps"], self._source)[1].get("steps", {})
        return self._steps

    def __str__(self) -> str:
        return _run(self._args, self._source, json_output=False)[1].rstrip("\n")

    def __repr__(self) -> str:
        shown = self.json.get("matrix") or self.json.get("map")
        return f"<{self.json['kind'].capitalize()} of {self.json['expr']!r} in {self.json['wrt']}: {shown}>"

    def _repr_latex_(self) -> str:
        return _display(_blocks(self.latex))


def hessian(
    expr: str,
    wrt: Union[str, Sequence[str]],
    *,
    shapes: Optional[Mapping[str, Any]] = None,
) -> SecondOrder:
    """The Hessian of a scalar expression, like ``matdiff hessian``.

    Its matrix for a vector (or scalar) variable, the linear map ``H[dV]``
    for a matrix; with two variables in ``wrt``, the mixed second
    derivative d2L/dV dU^T.
    """
    source = _program(expr, shapes)
    args = ["hessian"] + _wrt_args(wrt)
    _, document = _run_json(args, source)
    return SecondOrder(document, args, source)


def jacobian(expr: str, wrt: str, *, shapes: Optional[Mapping[str, Any]] = None) -> SecondOrder:
    """The Jacobian of an expression in ``wrt``, like ``matdiff jacobian``.

    Its matrix dZ/dx for a vector-valued expression of a vector, the
    differential dZ in the direction dX otherwise.
    """
    if not isinstance(wrt, str):
        raise TypeError("jacobian takes one variable, a str")
    source = _program(expr, shapes)
    args = ["jacobian", "--wrt", wrt]
    _, document = _run_json(args, source)
    return SecondOrder(document, args, source)


def latex(expr: str, *, shapes: Optional[Mapping[str, Any]] = None) -> str:
    """The expression as LaTeX math, like ``matdiff latex`` (without the ``\\[ \\]``)."""
    source = _program(expr, shapes)
    text = _run(["latex"], source, json_output=False)[1]
    blocks = _blocks(text)
    return blocks[0] if blocks else text.strip()
