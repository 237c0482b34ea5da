"""matdiff: symbolic matrix calculus from Python (typed interface).

Each function reads like the command of the same name (docs/cli.md) and
returns the command's JSON document (docs/json.md) as an object whose
attributes are the document's keys; results typeset themselves in Jupyter.
"""

from types import ModuleType
from typing import (
    Any,
    Callable,
    Dict,
    Iterable,
    Iterator,
    List,
    Mapping,
    Optional,
    Sequence,
    Tuple,
    Union,
    overload,
)

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

__version__: str

_Dim = Union[int, str]
"""A dimension: an int where known, the dimension's name otherwise (``"d0"``, ``"n"``)."""
_ShapeSpec = Union[Tuple[_Dim, _Dim], List[_Dim], int, str]
"""A declared shape: ``(rows, cols)``, a length for a column, or declaration text (``"n x n spd"``)."""
_Names = Union[None, str, Iterable[str]]

class MatdiffError(Exception):
    """An error of the engine; ``str(error)`` is the command line's caret diagnostic."""

    diagnostic: str
    """The rendered diagnostic (the program, a caret under the place, notes)."""
    kind: str
    """``"parse"``, ``"shape"``, ``"unsupported"``, ``"usage"``, ``"limit"`` or ``"internal"``."""
    message: str
    """The one-line message."""
    labels: List[Dict[str, Any]]
    """The places the error is about: ``{start, end, message}``, byte offsets into ``source``."""
    notes: List[str]
    """Further facts, and how to give what is missing."""
    span: Optional[Tuple[int, int]]
    """The first label's byte range ``(start, end)`` in ``source``, or ``None``."""
    source: str
    """The program text the engine read (declarations from ``shapes=`` first)."""
    def __init__(
        self,
        diagnostic: str,
        *,
        kind: str = ...,
        message: str = ...,
        labels: Optional[List[Dict[str, Any]]] = ...,
        notes: Optional[List[str]] = ...,
        source: str = ...,
    ) -> None: ...

class ParseError(MatdiffError):
    """The program is not in the expression language."""

class ShapeError(MatdiffError):
    """The shapes do not fit."""

class UnsupportedError(MatdiffError):
    """A construct matdiff refuses by name rather than approximate."""

class UsageError(MatdiffError):
    """An argument the command refuses (an unknown ``wrt``, bad ``dims``, ...)."""

class LimitError(MatdiffError):
    """A size or count beyond one of matdiff's limits."""

class InternalError(MatdiffError):
    """A bug in matdiff."""

class Step:
    """One line of a derivation."""

    json: Dict[str, Any]
    expr: str
    """The right-hand side, in the expression language."""
    latex: str
    """The right-hand side as LaTeX."""
    why: str
    """The identity that justifies the line."""
    why_latex: str
    """The same as LaTeX math."""
    def _repr_latex_(self) -> str: ...

class Steps(Sequence[Step]):
    """The derivation of one gradient: differential, trace, rotation, read-off."""

    wrt: str
    shape_check: List[str]
    """The shape check, factor by factor."""
    latex: str
    """The derivation as an ``aligned`` environment (``derive --steps --latex``)."""
    @overload
    def __getitem__(self, i: int) -> Step: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[Step]: ...
    def __len__(self) -> int: ...
    def _repr_latex_(self) -> str: ...

class DerivationSteps(Mapping[str, Steps]):
    """Every gradient's :class:`Steps`, by variable name."""

    latex: str
    def __getitem__(self, wrt: str) -> Steps: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def _repr_latex_(self) -> str: ...

class Gradient:
    """The gradient dL/dV of one variable."""

    json: Dict[str, Any]
    """The gradient's JSON object (docs/json.md, derive)."""
    @property
    def wrt(self) -> str:
        """The variable (``"W2"``, ``"W[j]"``)."""
    @property
    def expr(self) -> str:
        """The gradient in the expression language, written in full."""
    @property
    def latex(self) -> str:
        """The gradient as LaTeX."""
    @property
    def shape(self) -> Tuple[_Dim, _Dim]:
        """(rows, cols), the variable's shape."""
    @property
    def steps(self) -> Steps:
        """The derivation (computed on first use)."""
    occurrences: int
    saturated: bool
    def _repr_latex_(self) -> str: ...

class Derivation(Mapping[str, Gradient]):
    """The gradients of an expression, by variable name, in the engine's order."""

    json: Dict[str, Any]
    """The whole JSON document (docs/json.md, derive)."""
    gradients: List[Gradient]
    @property
    def expr(self) -> str: ...
    @property
    def shape(self) -> Tuple[_Dim, _Dim]: ...
    @property
    def upstream(self) -> Optional[str]: ...
    @property
    def saturated(self) -> bool: ...
    @property
    def definitions(self) -> List[Dict[str, str]]: ...
    @property
    def latex(self) -> str:
        """The gradients as ``matdiff derive --latex`` prints them."""
    @property
    def steps(self) -> DerivationSteps:
        """Every gradient's derivation."""
    def __getitem__(self, wrt: str) -> Gradient: ...
    def __iter__(self) -> Iterator[str]: ...
    def __len__(self) -> int: ...
    def _repr_latex_(self) -> str: ...

def derive(
    expr: str,
    wrt: _Names = None,
    upstream: Optional[str] = "G",
    *,
    shapes: Optional[Mapping[str, _ShapeSpec]] = None,
    expanded: bool = False,
) -> Derivation:
    """The gradient of every variable of ``expr`` (or of those in ``wrt``), like ``matdiff derive``.

    ``expr`` is declarations and an expression, ``;``-separated
    (``"W1 : 3x4; W1*X"``); ``shapes`` adds declarations
    (``{"W1": (3, 4)}``). ``upstream`` names dL/dZ of a matrix-valued
    expression. Raises :class:`ParseError`, :class:`ShapeError`,
    :class:`UnsupportedError`, :class:`UsageError`.
    """

class Verdict:
    """Whether a claimed gradient is right; truthy when equivalent."""

    json: Dict[str, Any]
    equivalent: bool
    outcome: str
    """``"equivalent"``, ``"not equivalent"`` or ``"undecided"``."""
    method: str
    """``"symbolic"`` or ``"numeric"``."""
    detail: str
    derived: str
    """matdiff's own formula."""
    evidence: Optional[Dict[str, Any]]
    """``{instances, decided, tolerance, worst_rel_err, domains}``, or ``None``."""
    def __bool__(self) -> bool: ...
    def _repr_html_(self) -> str: ...

def verify(
    expr: str,
    wrt: Union[str, Sequence[str]],
    claim: str,
    *,
    upstream: Optional[str] = None,
    domains: Optional[Mapping[str, str]] = None,
    shapes: Optional[Mapping[str, _ShapeSpec]] = None,
    order: int = 1,
    jacobian: bool = False,
) -> Verdict:
    """Decides whether ``claim`` is the gradient of ``expr`` in ``wrt``, like ``matdiff verify``."""

class CheckReport:
    """Derived gradients against finite differences; truthy when every one agrees."""

    json: Dict[str, Any]
    ok: bool
    undecided: int
    results: List[Dict[str, Any]]
    sizes: Dict[str, int]
    indices: Dict[str, int]
    seed: int
    domains: Dict[str, str]
    redraws: int
    instances: int
    tolerance: float
    def __bool__(self) -> bool: ...
    def _repr_html_(self) -> str: ...

def check(
    expr: str,
    dims: Optional[Mapping[str, int]] = None,
    seed: int = 1,
    *,
    wrt: _Names = None,
    upstream: Optional[str] = None,
    domains: Optional[Mapping[str, str]] = None,
    shapes: Optional[Mapping[str, _ShapeSpec]] = None,
    method: str = "auto",
    order: int = 1,
    jacobian: bool = False,
) -> CheckReport:
    """Compares every derived gradient with finite differences, like ``matdiff check``."""

class PlanStep:
    """One step of a plan: ``out = op``."""

    json: Dict[str, Any]
    out: str
    op: str
    madds: Union[int, str]
    @property
    def shape(self) -> Tuple[_Dim, _Dim]: ...

class Plan:
    """A numeric plan of the value and every gradient, sharing products."""

    json: Dict[str, Any]
    steps: List[PlanStep]
    outputs: List[Dict[str, Any]]
    @property
    def cost(self) -> Union[int, str]:
        """The plan's multiply-adds (``total_madds``)."""
    @property
    def symbolic(self) -> bool: ...
    def code(self, framework: str = "numpy", name: Optional[str] = None) -> str:
        """The plan as source code (``"numpy"``, ``"torch"`` or ``"jax"``), like ``plan --emit``."""
    def module(self, framework: str = "numpy") -> ModuleType:
        """The emitted code run in a fresh module."""
    def numpy(self) -> Callable[..., Tuple[Any, Dict[str, Any]]]:
        """``value_and_grads(**arrays) -> (value, {name: gradient})``."""
    def torch(self) -> Callable[..., Any]:
        """``plan(**tensors) -> value``, differentiable through the plan's backward."""
    def jax(self) -> Callable[..., Any]:
        """``plan(*arrays) -> value``, a ``jax.custom_vjp`` function."""
    def _repr_latex_(self) -> str: ...

def plan(
    expr: str,
    dims: Optional[Mapping[str, int]] = None,
    *,
    wrt: _Names = None,
    upstream: Optional[str] = None,
    shapes: Optional[Mapping[str, _ShapeSpec]] = None,
    order: int = 1,
    full: bool = False,
) -> Plan:
    """Compiles the value and every gradient into one numeric plan, like ``matdiff plan``."""

class SecondOrder:
    """A Hessian or Jacobian (docs/json.md, hessian and jacobian)."""

    json: Dict[str, Any]
    kind: str
    expr: str
    wrt: Any
    first: str
    map: str
    map_latex: str
    matrix: Optional[str]
    matrix_latex: Optional[str]
    vec_form: Optional[str]
    vec_form_latex: Optional[str]
    @property
    def direction_shape(self) -> Tuple[_Dim, _Dim]: ...
    @property
    def map_shape(self) -> Tuple[_Dim, _Dim]: ...
    @property
    def matrix_shape(self) -> Optional[Tuple[_Dim, _Dim]]: ...
    @property
    def vec_shape(self) -> Optional[Tuple[_Dim, _Dim]]: ...
    @property
    def latex(self) -> str: ...
    @property
    def steps(self) -> Dict[str, Any]: ...
    def _repr_latex_(self) -> str: ...

def hessian(
    expr: str, wrt: Union[str, Sequence[str]], *, shapes: Optional[Mapping[str, _ShapeSpec]] = None
) -> SecondOrder:
    """The Hessian of a scalar expression, like ``matdiff hessian``."""

def jacobian(expr: str, wrt: str, *, shapes: Optional[Mapping[str, _ShapeSpec]] = None) -> SecondOrder:
    """The Jacobian of an expression in ``wrt``, like ``matdiff jacobian``."""

def latex(expr: str, *, shapes: Optional[Mapping[str, _ShapeSpec]] = None) -> str:
    """The expression as LaTeX math, like ``matdiff latex``."""
