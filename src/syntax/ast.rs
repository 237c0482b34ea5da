//! The abstract syntax tree: expressions with source spans, and programs
//! (declarations, definitions, one final expression).

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::rc::Rc;

use crate::error::{Error, ErrorKind, Result};

/// The results of a node's children in [`Expr::fold`]: at most two (an
/// operator's operands), so they are kept inline, not in an allocation per
/// node (the fold types every node of every gradient).
pub type Kids<T> = smallvec::SmallVec<[T; 2]>;

/// A byte range in the source text.
///
/// Spans are metadata, not part of a tree's identity: two spans always compare
/// equal, so `parse(print(e)) == e` holds although the printed text differs
/// from the original. Nodes built by later stages carry [`Span::SYNTHETIC`].
#[derive(Clone, Copy, Debug, Default, serde::Serialize)]
pub struct Span {
    /// First byte, inclusive.
    pub start: usize,
    /// One past the last byte.
    pub end: usize,
}

impl Span {
    /// The span of a node that has no place in the source.
    pub const SYNTHETIC: Span = Span { start: 0, end: 0 };

    /// The span from byte `start` up to, not including, byte `end`.
    pub fn new(start: usize, end: usize) -> Span {
        Span { start, end }
    }

    /// The smallest span covering both.
    pub fn to(self, other: Span) -> Span {
        Span::new(self.start.min(other.start), self.end.max(other.end))
    }

    /// Whether this is `Span::SYNTHETIC`, a node with no place in the source.
    pub fn is_synthetic(self) -> bool {
        self.start == 0 && self.end == 0
    }
}

impl PartialEq for Span {
    fn eq(&self, _: &Span) -> bool {
        true
    }
}

/// An index expression of a family member or range bound, kept as a linear
/// form: `j+1` is `{j: 1} + 1`. Two spellings of the same index (`1+j`,
/// `j+1`) are the same index.
///
/// Arithmetic is checked: the constant stays within ±[`MAX_INDEX_CONSTANT`]
/// (so that its negation, and its printed form, exist) and each symbol's
/// coefficient within ±[`MAX_INDEX_COEFFICIENT`]; an operation past either
/// is an error ([`ErrorKind::Limit`]), never a wrapped value.
///
/// ```
/// use matdiff::syntax::Index;
/// let i = Index::symbol("j").plus(&Index::constant(1)).unwrap();
/// assert_eq!(i.to_string(), "j+1");
/// assert!(Index::constant(i64::MAX).plus(&Index::constant(1)).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Index {
    /// Each symbol's coefficient; no coefficient is zero.
    pub terms: BTreeMap<String, i64>,
    /// The constant term.
    pub constant: i64,
}

/// Largest |constant| of an index: i64::MIN is left out, since its
/// negation does not exist and `-9223372036854775808` does not re-parse.
pub const MAX_INDEX_CONSTANT: i64 = i64::MAX;

/// Largest |coefficient| of a symbol in an index. The grammar has no
/// product, so 2j prints as `j+j`: a coefficient is that many copies of the
/// name, and substitution multiplies coefficients.
pub const MAX_INDEX_COEFFICIENT: i64 = 64;

/// The error of index arithmetic that leaves the range.
fn index_overflow(what: String) -> Error {
    Error::new(ErrorKind::Limit, format!("index arithmetic out of range: {what}")).note(format!(
        "an index's constant lies within ±{MAX_INDEX_CONSTANT} and a symbol counts at most \
         {MAX_INDEX_COEFFICIENT} times (`j+j` counts j twice)"
    ))
}

impl Index {
    /// The constant index `c`.
    pub fn constant(c: i64) -> Index {
        Index { terms: BTreeMap::new(), constant: c }
    }

    /// The index `name` (coefficient 1, constant 0).
    pub fn symbol(name: &str) -> Index {
        let mut terms = BTreeMap::new();
        terms.insert(name.to_string(), 1);
        Index { terms, constant: 0 }
    }

    /// `self + other`, or an error past the limits of [`Index`].
    pub fn plus(&self, other: &Index) -> Result<Index> {
        self.combine(other, 1).ok_or_else(|| index_overflow(format!("`{self}` + `{other}`")))
    }

    /// `self - other`, or an error past the limits of [`Index`].
    pub fn minus(&self, other: &Index) -> Result<Index> {
        self.combine(other, -1).ok_or_else(|| index_overflow(format!("`{self}` - `{other}`")))
    }

    fn combine(&self, other: &Index, sign: i64) -> Option<Index> {
        let mut out = self.clone();
        for (name, c) in &other.terms {
            let term = out.terms.entry(name.clone()).or_insert(0);
            *term = term.checked_add(sign.checked_mul(*c)?)?;
        }
        out.terms.retain(|_, c| *c != 0);
        out.constant = out.constant.checked_add(sign.checked_mul(other.constant)?)?;
        out.within_limits().then_some(out)
    }

    fn within_limits(&self) -> bool {
        // `checked_abs` fails only at i64::MIN, one past -MAX_INDEX_CONSTANT.
        self.constant.checked_abs().is_some()
            && self.terms.values().all(|c| c.unsigned_abs() <= MAX_INDEX_COEFFICIENT.unsigned_abs())
    }

    /// The value when no index symbol occurs.
    pub fn as_constant(&self) -> Option<i64> {
        self.terms.is_empty().then_some(self.constant)
    }

    /// Replaces the symbol `name` by `value`, or an error past the limits
    /// of [`Index`].
    pub fn subst(&self, name: &str, value: &Index) -> Result<Index> {
        let Some(&c) = self.terms.get(name) else {
            return Ok(self.clone());
        };
        let overflow = || index_overflow(format!("`{value}` for `{name}` in `{self}`"));
        let mut out = self.clone();
        out.terms.remove(name);
        let mut scaled = value.clone();
        for v in scaled.terms.values_mut() {
            *v = v.checked_mul(c).ok_or_else(overflow)?;
        }
        scaled.constant = scaled.constant.checked_mul(c).ok_or_else(overflow)?;
        out.combine(&scaled, 1).ok_or_else(overflow)
    }

    /// Whether the symbol `name` occurs (with a non-zero coefficient).
    pub fn mentions(&self, name: &str) -> bool {
        self.terms.contains_key(name)
    }
}

impl fmt::Display for Index {
    /// Positive symbols, then the constant, then negative symbols: `n-j+1`
    /// prints as `n+1-j`; every form re-parses to the same linear form.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut put = |f: &mut fmt::Formatter<'_>, negative: bool, text: &str| {
            let sign = match (first, negative) {
                (true, false) => "",
                (_, true) => "-",
                (false, false) => "+",
            };
            first = false;
            write!(f, "{sign}{text}")
        };
        // (Magnitudes by `unsigned_abs`: the fields are public, and -i64::MIN
        // does not exist.)
        for (name, &c) in self.terms.iter().filter(|(_, c)| **c > 0) {
            for _ in 0..c {
                put(f, false, name)?;
            }
        }
        if self.constant > 0 || (self.constant == 0 && self.terms.is_empty()) {
            put(f, false, &self.constant.to_string())?;
        }
        for (name, &c) in self.terms.iter().filter(|(_, c)| **c < 0) {
            for _ in 0..c.unsigned_abs() {
                put(f, true, name)?;
            }
        }
        if self.constant < 0 {
            put(f, true, &self.constant.unsigned_abs().to_string())?;
        }
        Ok(())
    }
}

/// A variable: a plain name (`W1`) or one member of a family (`W[j+1]`).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct VarName {
    /// The base name: `W` in `W[j+1]`.
    pub name: String,
    /// The member's index, for a family member; `None` for a plain name.
    pub index: Option<Index>,
}

impl VarName {
    /// A plain name, not a family member.
    pub fn plain(name: &str) -> VarName {
        VarName { name: name.to_string(), index: None }
    }
}

impl fmt::Display for VarName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.index {
            None => f.write_str(&self.name),
            Some(i) => write!(f, "{}[{i}]", self.name),
        }
    }
}

/// Binary operators, all left-associative.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    /// `+`, matrix sum.
    Add,
    /// `-`, matrix difference.
    Sub,
    /// Matrix product, or scalar·matrix when a side is 1×1.
    Mul,
    /// `.*`, the entrywise (Hadamard) product.
    Hadamard,
    /// `./`, entrywise division.
    HadamardDiv,
    /// Division by a scalar.
    Div,
    /// `max(A, B)`, the entrywise maximum; written as a call. An operator,
    /// not a [`Func`]: it has two operands of one shape (or a scalar
    /// broadcast), as `.*` has, and every walk over operands takes it so.
    Max,
    /// `min(A, B)`, the entrywise minimum; written as a call.
    Min,
    /// `X .^ p`, the entrywise power by a scalar expression p (`p : scalar`,
    /// `2*q`): the right operand is 1×1. A number literal exponent is
    /// [`ExprKind::HadamardPower`]; this is the power whose exponent may vary.
    Power,
    /// `kron(A, B)`, the Kronecker product: the (rows A · rows B) ×
    /// (cols A · cols B) matrix of blocks a_ij B; written as a call.
    Kron,
}

impl BinOp {
    /// The operator as written in source.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Hadamard => ".*",
            BinOp::HadamardDiv => "./",
            BinOp::Div => "/",
            BinOp::Max => "max",
            BinOp::Min => "min",
            BinOp::Power => ".^",
            BinOp::Kron => "kron",
        }
    }

    /// Whether the operator is written as a call, `max(A, B)`, not between
    /// its operands.
    pub fn is_call(self) -> bool {
        self.call_usage().is_some()
    }

    /// For an operator written as a call, how it is written and what it is
    /// (error messages quote it); `None` for the infix operators.
    pub fn call_usage(self) -> Option<&'static str> {
        match self {
            BinOp::Max => {
                Some("max(A, B): the larger of a and b for every pair of entries (a scalar broadcasts)")
            }
            BinOp::Min => {
                Some("min(A, B): the smaller of a and b for every pair of entries (a scalar broadcasts)")
            }
            BinOp::Kron => Some("kron(A, B): the Kronecker product, the matrix of blocks a_ij * B"),
            BinOp::Add
            | BinOp::Sub
            | BinOp::Mul
            | BinOp::Hadamard
            | BinOp::HadamardDiv
            | BinOp::Div
            | BinOp::Power => None,
        }
    }

    /// The operators written as calls.
    pub const CALLS: [BinOp; 3] = [BinOp::Max, BinOp::Min, BinOp::Kron];
}

/// Functions applied to one argument.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Func {
    /// `tr`, the trace.
    Tr,
    /// `det`, the determinant.
    Det,
    /// `logdet`, the log of the determinant.
    Logdet,
    /// `exp`, entrywise.
    Exp,
    /// `log`, entrywise natural logarithm.
    Log,
    /// `sqrt`, entrywise.
    Sqrt,
    /// `sin`, entrywise.
    Sin,
    /// `cos`, entrywise.
    Cos,
    /// `tanh`, entrywise.
    Tanh,
    /// `sigmoid`, entrywise logistic function 1/(1+exp(-x)).
    Sigmoid,
    /// `relu`, entrywise max(x, 0).
    Relu,
    /// `abs`, entrywise |x|.
    Abs,
    /// `sign`, entrywise -1, 0 or 1.
    Sign,
    /// `step`, entrywise 1 where x > 0, else 0 (the derivative of relu).
    Step,
    /// `softplus`, entrywise log(1 + exp(x)).
    Softplus,
    /// `tan`, entrywise.
    Tan,
    /// `arcsin`, entrywise, for entries in [-1, 1].
    Arcsin,
    /// `arccos`, entrywise, for entries in [-1, 1].
    Arccos,
    /// `arctan`, entrywise.
    Arctan,
    /// `sinh`, entrywise.
    Sinh,
    /// `cosh`, entrywise.
    Cosh,
    /// `log1p`, entrywise log(1 + x), for entries above -1.
    Log1p,
    /// `sum`, the sum of all entries.
    Sum,
    /// `norm`, the Frobenius norm.
    Norm,
    /// `norm1(x)`, also written `norm(x, 1)`: the sum of the absolute values
    /// of the entries.
    Norm1,
    /// `norm(x, 2)`: the Euclidean norm of a vector (a matrix's would be the
    /// spectral norm, which the language does not have).
    Norm2,
    /// `diag`: a vector (n×1 or 1×n) to the n×n matrix with it on the
    /// diagonal, or a square matrix to the column of its diagonal; which one
    /// is the argument's shape (a 1×1 argument is both, and the same value).
    Diag,
    /// `sum(A, 1)`, the column sums: a 1×n row.
    SumCols,
    /// `sum(A, 2)`, the row sums: an m×1 column.
    SumRows,
    /// `softmax`, column-wise: each column `exp(z) / sum(exp(z))`.
    Softmax,
    /// `logsumexp`, column-wise: a 1×n row, a scalar for a column.
    Logsumexp,
    /// `vec`, the columns stacked into one column (column-major, as in the
    /// Matrix Cookbook): an m×n matrix to an mn×1 column.
    Vec,
}

impl Func {
    /// Every function, in the order the language lists them.
    pub const ALL: [Func; 32] = [
        Func::Tr,
        Func::Det,
        Func::Logdet,
        Func::Exp,
        Func::Log,
        Func::Sqrt,
        Func::Sin,
        Func::Cos,
        Func::Tanh,
        Func::Sigmoid,
        Func::Relu,
        Func::Abs,
        Func::Sign,
        Func::Step,
        Func::Softplus,
        Func::Tan,
        Func::Arcsin,
        Func::Arccos,
        Func::Arctan,
        Func::Sinh,
        Func::Cosh,
        Func::Log1p,
        Func::Sum,
        Func::Norm,
        Func::Norm2,
        Func::Norm1,
        Func::Diag,
        Func::SumCols,
        Func::SumRows,
        Func::Softmax,
        Func::Logsumexp,
        Func::Vec,
    ];

    /// The function's name, as written in source.
    pub fn name(self) -> &'static str {
        match self {
            Func::Tr => "tr",
            Func::Det => "det",
            Func::Logdet => "logdet",
            Func::Exp => "exp",
            Func::Log => "log",
            Func::Sqrt => "sqrt",
            Func::Sin => "sin",
            Func::Cos => "cos",
            Func::Tanh => "tanh",
            Func::Sigmoid => "sigmoid",
            Func::Relu => "relu",
            Func::Abs => "abs",
            Func::Sign => "sign",
            Func::Step => "step",
            Func::Softplus => "softplus",
            Func::Tan => "tan",
            Func::Arcsin => "arcsin",
            Func::Arccos => "arccos",
            Func::Arctan => "arctan",
            Func::Sinh => "sinh",
            Func::Cosh => "cosh",
            Func::Log1p => "log1p",
            Func::Sum => "sum",
            // `norm(x, 2)`: the name of its call; `from_name("norm")` is `Norm`.
            Func::Norm | Func::Norm2 => "norm",
            Func::Norm1 => "norm1",
            Func::Diag => "diag",
            Func::SumCols | Func::SumRows => "sum",
            Func::Softmax => "softmax",
            Func::Logsumexp => "logsumexp",
            Func::Vec => "vec",
        }
    }

    /// The axis argument of `sum(A, 1)` and `sum(A, 2)`, which print with it.
    pub fn axis(self) -> Option<u8> {
        match self {
            Func::SumCols => Some(1),
            Func::SumRows => Some(2),
            _ => None,
        }
    }

    /// The function called `name`, if any (for `sum`, the sum of all
    /// entries: the axis is a second argument).
    pub fn from_name(name: &str) -> Option<Func> {
        Func::ALL.into_iter().find(|f| f.name() == name)
    }

    /// How the function is written, and what it is (error messages and
    /// the REPL's help quote it).
    pub fn usage(self) -> &'static str {
        match self {
            Func::Tr => "tr(A): the trace of a square matrix",
            Func::Det => "det(A): the determinant of a square matrix",
            Func::Logdet => "logdet(A): the log of |det(A)|",
            Func::Exp => "exp(A): e to every entry",
            Func::Log => "log(A): the natural logarithm of every entry",
            Func::Sqrt => "sqrt(A): the square root of every entry",
            Func::Sin => "sin(A): the sine of every entry",
            Func::Cos => "cos(A): the cosine of every entry",
            Func::Tanh => "tanh(A): the hyperbolic tangent of every entry",
            Func::Sigmoid => "sigmoid(A): 1 / (1 + exp(-a)) for every entry a",
            Func::Relu => "relu(A): max(a, 0) for every entry a",
            Func::Abs => "abs(A): |a| for every entry a",
            Func::Sign => "sign(A): -1, 0 or 1 for every entry a < 0, = 0, > 0",
            Func::Step => "step(A): 1 for every entry a > 0, else 0 (the derivative of relu)",
            Func::Softplus => "softplus(A): log(1 + exp(a)) for every entry a",
            Func::Tan => "tan(A): the tangent of every entry",
            Func::Arcsin => "arcsin(A): the inverse sine of every entry, in [-1, 1]",
            Func::Arccos => "arccos(A): the inverse cosine of every entry, in [-1, 1]",
            Func::Arctan => "arctan(A): the inverse tangent of every entry",
            Func::Sinh => "sinh(A): the hyperbolic sine of every entry",
            Func::Cosh => "cosh(A): the hyperbolic cosine of every entry",
            Func::Log1p => "log1p(A): log(1 + a) for every entry a > -1, exact near 0",
            Func::Sum => "sum(A): the sum of all entries",
            Func::Norm => "norm(A): the Frobenius norm, sqrt(sum(A .^ 2)); norm(x, 1) and norm(x, 2) of a vector",
            Func::Norm1 => "norm1(A): the sum of the absolute values of the entries, norm(x, 1) of a vector",
            Func::Norm2 => "norm(x, 2): the Euclidean norm of a vector, sqrt(sum(x .^ 2))",
            Func::Diag => "diag(x): the diagonal matrix of a vector; diag(A): the diagonal of a square matrix, as a column",
            Func::SumCols => "sum(A, 1): the column sums, a row",
            Func::SumRows => "sum(A, 2): the row sums, a column",
            Func::Softmax => "softmax(A): each column z becomes exp(z) / sum(exp(z))",
            Func::Logsumexp => "logsumexp(A): log(sum(exp(z))) of each column z, a row",
            Func::Vec => "vec(A): the columns of A stacked into one column (column-major)",
        }
    }

    /// Entrywise functions keep their argument's shape; the others are scalars.
    pub fn is_entrywise(self) -> bool {
        !matches!(
            self,
            Func::Tr
                | Func::Det
                | Func::Logdet
                | Func::Sum
                | Func::Norm
                | Func::Norm1
                | Func::Norm2
                | Func::Diag
                | Func::SumCols
                | Func::SumRows
                | Func::Softmax
                | Func::Logsumexp
                | Func::Vec
        )
    }
}

/// `prod(body, var=lo..hi)`, boxed: it is the largest node, and every
/// node of every formula would otherwise be its size.
#[derive(Clone, Debug, PartialEq)]
pub struct Prod {
    /// The factor, in terms of `var`.
    pub body: Rc<Expr>,
    /// The bound index variable.
    pub var: String,
    /// The first index (inclusive).
    pub lo: Index,
    /// The last index (inclusive).
    pub hi: Index,
}

/// An expression node with its span.
///
/// Equality and dropping walk the tree without recursion, so that any tree
/// the parser accepts (a 10 000-term sum nests 10 000 deep) can be compared
/// and freed on any thread's stack.
#[derive(Clone, Debug)]
pub struct Expr {
    /// What the node is.
    pub kind: ExprKind,
    /// Where it was written; `Span::SYNTHETIC` when built by a later stage.
    pub span: Span,
}

/// What an expression is. `inv(A)` and `A^-1` are both `Power(A, -1)`.
///
/// Two kinds are equal when their nodes and their subtrees are
/// (`Expr`'s equality, without recursion).
#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    /// Shared: a gradient of an n-factor chain repeats n variables, and a
    /// node is cloned wherever a formula reuses it.
    Var(Rc<VarName>),
    /// The identity matrix `I`; its size comes from the context.
    Identity,
    /// A non-negative literal (a leading minus is `Neg`).
    Num(f64),
    /// `ones(m, n)`, the m×n matrix of ones (`ones(m)` is m×1); each size a
    /// number or a dimension name. Broadcasting is made explicit with it.
    Ones(Rc<(DimSpec, DimSpec)>),
    /// `-A`, negation.
    Neg(Rc<Expr>),
    /// `op_span` is the operator's own span, where shape errors point.
    Binary {
        /// The operator.
        op: BinOp,
        /// The operator's span.
        op_span: Span,
        /// The left operand.
        lhs: Rc<Expr>,
        /// The right operand.
        rhs: Rc<Expr>,
    },
    /// `A^T`, the transpose.
    Transpose(Rc<Expr>),
    /// `A^k` for an integer k; k = -1 is the inverse.
    Power(Rc<Expr>, i64),
    /// `A .^ p` entrywise.
    HadamardPower(Rc<Expr>, f64),
    /// `f(A)`, a function applied to one argument.
    Call(Func, Rc<Expr>),
    /// `prod(body, var=lo..hi)`: body(lo) · body(lo+1) ⋯ body(hi).
    Prod(Rc<Prod>),
}

impl Expr {
    /// A node of the given kind at the given span.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        Expr { kind, span }
    }

    /// A node with no source position, for expressions built by later stages.
    pub fn synthetic(kind: ExprKind) -> Expr {
        Expr::new(kind, Span::SYNTHETIC)
    }

    /// A synthetic plain variable `name`.
    pub fn var(name: &str) -> Expr {
        Expr::synthetic(ExprKind::Var(Rc::new(VarName::plain(name))))
    }

    /// A synthetic non-negative literal `x` (negate with `Expr::negate`).
    pub fn num(x: f64) -> Expr {
        debug_assert!(x >= 0.0, "literals are non-negative; use Expr::negate");
        Expr::synthetic(ExprKind::Num(x))
    }

    /// A synthetic `ones(rows, cols)`.
    pub fn ones(rows: DimSpec, cols: DimSpec) -> Expr {
        Expr::synthetic(ExprKind::Ones(Rc::new((rows, cols))))
    }

    /// A synthetic identity matrix `I`.
    pub fn identity() -> Expr {
        Expr::synthetic(ExprKind::Identity)
    }

    // The builders take a node or a shared node (`impl Into<Rc<Expr>>`):
    // passing an `Rc` shares the subtree instead of copying it.

    /// A synthetic `lhs op rhs`.
    pub fn binary(op: BinOp, lhs: impl Into<Rc<Expr>>, rhs: impl Into<Rc<Expr>>) -> Expr {
        Expr::synthetic(ExprKind::Binary { op, op_span: Span::SYNTHETIC, lhs: lhs.into(), rhs: rhs.into() })
    }

    /// A synthetic matrix product `lhs * rhs`.
    pub fn product(lhs: impl Into<Rc<Expr>>, rhs: impl Into<Rc<Expr>>) -> Expr {
        Expr::binary(BinOp::Mul, lhs, rhs)
    }

    /// The synthetic product of `factors`, left to right and nested to the
    /// left (`A * B * C` is `(A * B) * C`, as the parser reads it); `None`
    /// when there are none. One factor is itself.
    ///
    /// ```
    /// use matdiff::syntax::Expr;
    /// let abc = Expr::product_of(["A", "B", "C"].map(Expr::var)).unwrap();
    /// assert_eq!(abc.to_string(), "A * B * C");
    /// assert_eq!(abc, Expr::product(Expr::product(Expr::var("A"), Expr::var("B")), Expr::var("C")));
    /// assert_eq!(Expr::product_of(Vec::<Expr>::new()), None);
    /// ```
    pub fn product_of<T: Into<Rc<Expr>>>(factors: impl IntoIterator<Item = T>) -> Option<Expr> {
        let mut factors = factors.into_iter().map(Into::into);
        let first = factors.next()?;
        Some(match factors.next() {
            None => Rc::unwrap_or_clone(first),
            Some(second) => factors.fold(Expr::product(first, second), Expr::product),
        })
    }

    /// A synthetic sum `lhs + rhs`.
    pub fn plus(lhs: impl Into<Rc<Expr>>, rhs: impl Into<Rc<Expr>>) -> Expr {
        Expr::binary(BinOp::Add, lhs, rhs)
    }

    /// A synthetic difference `lhs - rhs`.
    pub fn minus(lhs: impl Into<Rc<Expr>>, rhs: impl Into<Rc<Expr>>) -> Expr {
        Expr::binary(BinOp::Sub, lhs, rhs)
    }

    /// A synthetic negation `-e`.
    pub fn negate(e: impl Into<Rc<Expr>>) -> Expr {
        Expr::synthetic(ExprKind::Neg(e.into()))
    }

    /// A synthetic transpose `e^T`.
    pub fn transpose(e: impl Into<Rc<Expr>>) -> Expr {
        Expr::synthetic(ExprKind::Transpose(e.into()))
    }

    /// A synthetic call `f(e)`.
    pub fn call(f: Func, e: impl Into<Rc<Expr>>) -> Expr {
        Expr::synthetic(ExprKind::Call(f, e.into()))
    }

    /// `prod(body, var=lo..hi)`.
    pub fn prod(body: impl Into<Rc<Expr>>, var: impl Into<String>, lo: Index, hi: Index) -> Expr {
        Expr::synthetic(ExprKind::Prod(Rc::new(Prod { body: body.into(), var: var.into(), lo, hi })))
    }

    /// The same node at `span` in the source.
    pub fn at(mut self, span: Span) -> Expr {
        self.span = span;
        self
    }

    /// The direct children, in source order (at most two; no allocation,
    /// since every pass over a tree asks every node).
    pub fn children(&self) -> impl Iterator<Item = &Expr> {
        let (a, b): (Option<&Expr>, Option<&Expr>) = match &self.kind {
            ExprKind::Var(_) | ExprKind::Identity | ExprKind::Num(_) | ExprKind::Ones(_) => (None, None),
            ExprKind::Neg(a)
            | ExprKind::Transpose(a)
            | ExprKind::Power(a, _)
            | ExprKind::HadamardPower(a, _)
            | ExprKind::Call(_, a) => (Some(a), None),
            ExprKind::Binary { lhs, rhs, .. } => (Some(lhs), Some(rhs)),
            ExprKind::Prod(p) => (Some(&p.body), None),
        };
        a.into_iter().chain(b)
    }

    /// The terms of a chain of sums and differences, left to right, each
    /// with whether it is subtracted: `a - (b - c)` is `a`, `-b`, `+c`. A
    /// negation is a term (see [`Expr::sum_terms_through_neg`]); anything
    /// but `+` and `-` is one term. The walk does not recurse, at any depth.
    ///
    /// ```
    /// use matdiff::syntax::parse_expr;
    /// let e = parse_expr("a - (b - c) + -d").unwrap();
    /// let terms: Vec<String> =
    ///     e.sum_terms().iter().map(|(neg, t)| format!("{}{t}", if *neg { "-" } else { "+" })).collect();
    /// assert_eq!(terms, ["+a", "-b", "+c", "+-d"]);
    /// ```
    pub fn sum_terms(&self) -> Vec<(bool, &Expr)> {
        self.signed_terms(false)
    }

    /// [`Expr::sum_terms`] read through negations too, each flipping the
    /// sign of the terms below it: `a - -(b + c)` is `a`, `+b`, `+c`.
    ///
    /// ```
    /// use matdiff::syntax::parse_expr;
    /// let e = parse_expr("a - -(b - c)").unwrap();
    /// let terms: Vec<String> = e
    ///     .sum_terms_through_neg()
    ///     .iter()
    ///     .map(|(neg, t)| format!("{}{t}", if *neg { "-" } else { "+" }))
    ///     .collect();
    /// assert_eq!(terms, ["+a", "+b", "-c"]);
    /// ```
    pub fn sum_terms_through_neg(&self) -> Vec<(bool, &Expr)> {
        self.signed_terms(true)
    }

    fn signed_terms(&self, through_neg: bool) -> Vec<(bool, &Expr)> {
        let mut out = Vec::new();
        let mut stack = vec![(false, self)];
        while let Some((negative, e)) = stack.pop() {
            match &e.kind {
                ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs, rhs, .. } => {
                    stack.push((negative ^ (*op == BinOp::Sub), rhs));
                    stack.push((negative, lhs));
                }
                ExprKind::Neg(x) if through_neg => stack.push((!negative, x)),
                _ => out.push((negative, e)),
            }
        }
        out
    }

    /// The factors of a chain of matrix products `*`, left to right
    /// however it nests: `A * (B * C)` is `A`, `B`, `C`. Anything but `*`
    /// (a transpose of a product too) is one factor. The walk does not
    /// recurse, at any depth.
    ///
    /// ```
    /// use matdiff::syntax::parse_expr;
    /// let e = parse_expr("A * (B * C)^T * (D + E)").unwrap();
    /// let factors: Vec<String> = e.factors().iter().map(|f| f.to_string()).collect();
    /// assert_eq!(factors, ["A", "(B * C)^T", "D + E"]);
    /// ```
    pub fn factors(&self) -> Vec<&Expr> {
        let mut out = Vec::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                _ => out.push(e),
            }
        }
        out
    }

    /// Whether the variable occurs anywhere in the expression.
    pub fn mentions(&self, v: &VarName) -> bool {
        self.any(|e| matches!(&e.kind, ExprKind::Var(w) if **w == *v))
    }

    /// The expression with the index symbol `var` replaced by `value`
    /// (not inside a `prod` that binds `var` itself); an error when an
    /// index leaves the range of [`Index`].
    pub fn subst_index(&self, var: &str, value: &Index) -> Result<Expr> {
        // Recursion only through `try_map_children`, which guards the stack.
        let sub = |a: &Rc<Expr>| a.subst_index(var, value).map(Rc::new);
        match &self.kind {
            ExprKind::Var(v) if !v.index.as_ref().is_some_and(|i| i.mentions(var)) => Ok(self.clone()),
            ExprKind::Var(v) => {
                let index = v.index.as_ref().map(|i| i.subst(var, value)).transpose()?;
                let kind = ExprKind::Var(Rc::new(VarName { name: v.name.clone(), index }));
                Ok(Expr::new(kind, self.span))
            }
            ExprKind::Prod(p) if p.var == var => Ok(self.clone()),
            ExprKind::Prod(p) => {
                let mapped = self.try_map_children(sub)?;
                let ExprKind::Prod(q) = &mapped.kind else { unreachable!("a prod maps to a prod") };
                let (lo, hi) = (p.lo.subst(var, value)?, p.hi.subst(var, value)?);
                Ok(Expr::prod(q.body.clone(), p.var.clone(), lo, hi).at(self.span))
            }
            _ => self.try_map_children(sub),
        }
    }

    /// Whether a member of the family `name` (`name[...]`) occurs.
    pub fn mentions_family(&self, name: &str) -> bool {
        self.any(|e| matches!(&e.kind, ExprKind::Var(w) if w.name == name && w.index.is_some()))
    }

    /// `self` with each child `c` replaced by `f(c)`, in the order of
    /// [`Expr::children`] (a `prod`'s child is its body); a leaf comes back
    /// as it is. A pass that recurses through `f` is guarded against deep
    /// trees here (the stack grows on the heap when it runs short), so it
    /// need not guard itself.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use matdiff::syntax::{parse_expr, Expr, ExprKind};
    /// // Every variable transposed.
    /// fn t(e: &Expr) -> Expr {
    ///     match e.kind {
    ///         ExprKind::Var(_) => Expr::transpose(e.clone()),
    ///         _ => e.map_children(|c| Rc::new(t(c))),
    ///     }
    /// }
    /// assert_eq!(t(&parse_expr("A * (B + C)").unwrap()).to_string(), "A^T * (B^T + C^T)");
    /// ```
    pub fn map_children(&self, mut f: impl FnMut(&Rc<Expr>) -> Rc<Expr>) -> Expr {
        let result: std::result::Result<Expr, std::convert::Infallible> = self.try_map_children(|c| Ok(f(c)));
        match result {
            Ok(e) => e,
            Err(never) => match never {},
        }
    }

    /// [`Expr::map_children`] with a fallible `f`: the first error stops it.
    pub fn try_map_children<E>(
        &self,
        mut f: impl FnMut(&Rc<Expr>) -> std::result::Result<Rc<Expr>, E>,
    ) -> std::result::Result<Expr, E> {
        crate::stack::ensure(|| {
            let kind = match &self.kind {
                ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Identity | ExprKind::Ones(_) => {
                    return Ok(self.clone())
                }
                ExprKind::Neg(a) => ExprKind::Neg(f(a)?),
                ExprKind::Transpose(a) => ExprKind::Transpose(f(a)?),
                ExprKind::Power(a, k) => ExprKind::Power(f(a)?, *k),
                ExprKind::HadamardPower(a, p) => ExprKind::HadamardPower(f(a)?, *p),
                ExprKind::Call(g, a) => ExprKind::Call(*g, f(a)?),
                ExprKind::Binary { op, op_span, lhs, rhs } => {
                    let lhs = f(lhs)?;
                    ExprKind::Binary { op: *op, op_span: *op_span, lhs, rhs: f(rhs)? }
                }
                ExprKind::Prod(p) => ExprKind::Prod(Rc::new(Prod {
                    body: f(&p.body)?,
                    var: p.var.clone(),
                    lo: p.lo.clone(),
                    hi: p.hi.clone(),
                })),
            };
            Ok(Expr::new(kind, self.span))
        })
    }

    /// The tree folded bottom-up: `f(node, results of its children)`, the
    /// children in the order of [`Expr::children`]. A shared subtree is
    /// folded wherever it occurs. Guarded against deep trees, as
    /// [`Expr::map_children`] is.
    ///
    /// ```
    /// use matdiff::syntax::{parse_expr, Kids};
    /// let depth = parse_expr("A * (B + C^T)").unwrap().fold(&mut |_, kids: Kids<usize>| {
    ///     1 + kids.into_iter().max().unwrap_or(0)
    /// });
    /// assert_eq!(depth, 4);
    /// ```
    pub fn fold<T>(&self, f: &mut impl FnMut(&Expr, Kids<T>) -> T) -> T {
        let result: std::result::Result<T, std::convert::Infallible> =
            self.try_fold(&mut |e, kids| Ok(f(e, kids)));
        match result {
            Ok(t) => t,
            Err(never) => match never {},
        }
    }

    /// [`Expr::fold`] with a fallible `f`: children left to right, and the
    /// first error stops the walk (no later node is visited).
    ///
    /// ```
    /// use matdiff::syntax::{parse_expr, ExprKind, Kids};
    /// let leaves = |src: &str| {
    ///     parse_expr(src).unwrap().try_fold(&mut |e, kids: Kids<usize>| match e.kind {
    ///         ExprKind::Identity => Err(format!("an I at {}", e.span.start)),
    ///         _ => Ok(kids.iter().sum::<usize>().max(1)),
    ///     })
    /// };
    /// assert_eq!(leaves("A * (B + C^T)"), Ok(3));
    /// assert_eq!(leaves("A * (I + I)"), Err("an I at 5".to_string()));
    /// ```
    pub fn try_fold<T, E>(
        &self,
        f: &mut impl FnMut(&Expr, Kids<T>) -> std::result::Result<T, E>,
    ) -> std::result::Result<T, E> {
        crate::stack::ensure(|| {
            // A loop, not `collect` into a `Result`: this is every pass's
            // walk, and the adapters cost more than the node's own work.
            let mut kids = Kids::new();
            for c in self.children() {
                kids.push(c.try_fold(f)?);
            }
            f(self, kids)
        })
    }

    /// Whether `pred` holds at some node, the root first, then each
    /// subtree in source order. The walk keeps its own worklist: it does
    /// not recurse, at any depth.
    ///
    /// ```
    /// use matdiff::syntax::{parse_expr, ExprKind};
    /// let e = parse_expr("A * (B + I)").unwrap();
    /// assert!(e.any(|x| x.kind == ExprKind::Identity));
    /// assert!(!e.any(|x| matches!(x.kind, ExprKind::Transpose(_))));
    /// ```
    pub fn any(&self, mut pred: impl FnMut(&Expr) -> bool) -> bool {
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            if pred(e) {
                return true;
            }
            let at = stack.len();
            stack.extend(e.children());
            stack[at..].reverse();
        }
        false
    }

    /// Calls `f` at every node, in the order of [`Expr::any`] (preorder,
    /// source order), without recursion.
    pub fn for_each(&self, mut f: impl FnMut(&Expr)) {
        self.any(|e| {
            f(e);
            false
        });
    }

    /// Calls `f` at every node in the order of [`Expr::for_each`], but at a
    /// node shared by address (one `Rc` reached along two paths) only the
    /// first time, and not below it again: a formula that shares its parts
    /// is walked in the time of its distinct nodes. No recursion.
    ///
    /// ```
    /// use std::rc::Rc;
    /// use matdiff::syntax::Expr;
    /// let shared = Rc::new(Expr::transpose(Expr::var("A")));
    /// let e = Expr::product(shared.clone(), shared);
    /// let mut seen = vec![];
    /// e.for_each_once(|x| seen.push(x.to_string()));
    /// assert_eq!(seen, ["A^T * A^T", "A^T", "A"]);
    /// ```
    pub fn for_each_once(&self, mut f: impl FnMut(&Expr)) {
        let mut seen = std::collections::HashSet::new();
        let mut stack = vec![self];
        while let Some(e) = stack.pop() {
            if !seen.insert(e as *const Expr) {
                continue;
            }
            f(e);
            let at = stack.len();
            stack.extend(e.children());
            stack[at..].reverse();
        }
    }

    /// Whether `pred` holds at every node (see [`Expr::any`]).
    pub fn all(&self, mut pred: impl FnMut(&Expr) -> bool) -> bool {
        !self.any(|e| !pred(e))
    }

    /// Number of nodes.
    pub fn size(&self) -> usize {
        let mut stack = vec![self];
        let mut n = 0;
        while let Some(e) = stack.pop() {
            n += 1;
            stack.extend(e.children());
        }
        n
    }

    /// Number of nodes, as printed (a shared subtree counts wherever it
    /// occurs), if it is at most `limit`; `None` past it. The count stops at
    /// the limit: a formula that shares its parts can print 2²⁸ nodes from a
    /// few hundred.
    ///
    /// ```
    /// use matdiff::syntax::Expr;
    /// let mut e = Expr::var("A");
    /// for _ in 0..40 {
    ///     let shared = std::rc::Rc::new(e);
    ///     e = Expr::product(shared.clone(), shared);
    /// }
    /// assert_eq!(e.size_within(1000), None);
    /// assert_eq!(Expr::product(Expr::var("A"), Expr::var("B")).size_within(3), Some(3));
    /// ```
    pub fn size_within(&self, limit: usize) -> Option<usize> {
        let mut stack = vec![self];
        let mut n = 0;
        while let Some(e) = stack.pop() {
            n += 1;
            if n > limit {
                return None;
            }
            stack.extend(e.children());
        }
        Some(n)
    }
}

impl PartialEq for Expr {
    fn eq(&self, other: &Expr) -> bool {
        // Leaves and unequal roots allocate nothing; shared subtrees (the
        // leaves of one derivation's formulas) are equal at a glance.
        let mut pending = Vec::new();
        let (mut a, mut b) = (self, other);
        loop {
            if !std::ptr::eq(a, b) {
                if !a.kind.same_node(&b.kind) {
                    return false;
                }
                pending.extend(a.children().zip(b.children()));
            }
            match pending.pop() {
                Some(next) => (a, b) = next,
                None => return true,
            }
        }
    }
}

impl Drop for Expr {
    fn drop(&mut self) {
        // Subtrees this node alone owns are unlinked onto a worklist and
        // freed one by one; shared ones only lose a count. A node with no
        // such subtree (most, once formulas share their leaves) is left to
        // the ordinary drop, which then goes one level deep.
        let owns_subtree = |c: &Expr| c.children().next().is_some();
        if !self.kind.child_links().any(|c| Rc::strong_count(c) == 1 && owns_subtree(c)) {
            return;
        }
        let mut pending = Vec::new();
        self.kind.unlink_children(&mut pending);
        while let Some(child) = pending.pop() {
            if let Some(mut e) = Rc::into_inner(child) {
                e.kind.unlink_children(&mut pending);
            }
        }
    }
}

impl ExprKind {
    /// Equal as nodes: the same variant and the same data, children aside.
    fn same_node(&self, other: &ExprKind) -> bool {
        use ExprKind as K;
        match (self, other) {
            (K::Var(a), K::Var(b)) => a == b,
            (K::Identity, K::Identity) => true,
            (K::Ones(a), K::Ones(b)) => a == b,
            (K::Num(a), K::Num(b)) => a == b,
            (K::Neg(_), K::Neg(_)) | (K::Transpose(_), K::Transpose(_)) => true,
            (K::Binary { op: a, .. }, K::Binary { op: b, .. }) => a == b,
            (K::Power(_, a), K::Power(_, b)) => a == b,
            (K::HadamardPower(_, a), K::HadamardPower(_, b)) => a == b,
            (K::Call(f, _), K::Call(g, _)) => f == g,
            (K::Prod(a), K::Prod(b)) => a.var == b.var && a.lo == b.lo && a.hi == b.hi,
            _ => false,
        }
    }

    /// The links to the children that dropping this node would follow
    /// (a shared `prod` is not followed).
    pub(crate) fn child_links(&self) -> impl Iterator<Item = &Rc<Expr>> {
        use ExprKind as K;
        let (a, b) = match self {
            K::Var(_) | K::Identity | K::Num(_) | K::Ones(_) => (None, None),
            K::Neg(a) | K::Transpose(a) => (Some(a), None),
            K::Power(a, _) | K::HadamardPower(a, _) | K::Call(_, a) => (Some(a), None),
            K::Binary { lhs, rhs, .. } => (Some(lhs), Some(rhs)),
            K::Prod(p) if Rc::strong_count(p) == 1 => (Some(&p.body), None),
            K::Prod(_) => (None, None),
        };
        a.into_iter().chain(b)
    }

    /// Moves the children only this node holds onto `out`, leaving a leaf.
    fn unlink_children(&mut self, out: &mut Vec<Rc<Expr>>) {
        use ExprKind as K;
        if matches!(self, K::Var(_) | K::Identity | K::Num(_) | K::Ones(_)) {
            return;
        }
        // A shared child only loses a count, and a leaf frees nothing
        // below it: both are dropped here.
        let mut keep = |child: Rc<Expr>| {
            if Rc::strong_count(&child) == 1 && child.children().next().is_some() {
                out.push(child);
            }
        };
        match std::mem::replace(self, K::Identity) {
            K::Neg(a) | K::Transpose(a) => keep(a),
            K::Power(a, _) | K::HadamardPower(a, _) | K::Call(_, a) => keep(a),
            K::Binary { lhs, rhs, .. } => {
                keep(lhs);
                keep(rhs);
            }
            K::Prod(p) => {
                if let Some(p) = Rc::into_inner(p) {
                    keep(p.body);
                }
            }
            K::Var(_) | K::Identity | K::Num(_) | K::Ones(_) => {}
        }
    }
}

/// A declared shape, as written (`3x4`, `d0 x d1`, `n`, `scalar`).
#[derive(Clone, Debug, PartialEq)]
pub enum ShapeSpec {
    /// `scalar`, 1×1.
    Scalar,
    /// `n`: a column vector, n×1.
    Vector(DimSpec),
    /// `m x n`, a matrix.
    Matrix(DimSpec, DimSpec),
}

/// One declared dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum DimSpec {
    /// A literal size, such as `3`.
    Const(u64),
    /// A symbolic size, such as `n`.
    Symbol(String),
    /// A member of a dimension family, such as `d[i-1]`.
    Indexed(String, Index),
}

impl fmt::Display for DimSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DimSpec::Const(n) => write!(f, "{n}"),
            DimSpec::Symbol(s) => f.write_str(s),
            DimSpec::Indexed(s, i) => write!(f, "{s}[{i}]"),
        }
    }
}

/// `W1 : 3x4`, or for a family `W[i] : d[i-1] x d[i]` (binder `i`), with
/// an optional domain (`X : 3x3 positive`).
#[derive(Clone, Debug, PartialEq)]
pub struct Declaration {
    /// The declared name (the family's base name for `W[i]`).
    pub name: String,
    /// The family's binder (`i` in `W[i]`); `None` for a plain variable.
    pub binder: Option<String>,
    /// The declared shape.
    pub shape: ShapeSpec,
    /// Where the values lie, when declared: numeric checks draw from it.
    pub domain: Option<DomainSpec>,
    /// The declaration's source span.
    pub span: Span,
}

/// A declared domain: what the entries of a variable may be, for the random
/// instances of `check` and `verify`. A variable without one is drawn with
/// both signs wherever the expression allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DomainSpec {
    /// Every entry positive.
    Positive,
    /// Every entry negative.
    Negative,
    /// No entry zero (either sign).
    NonZero,
    /// Symmetric positive definite (a square matrix).
    Spd,
    /// Each column one-hot: one entry 1, the others 0 (labels of a
    /// classifier); so each column sums to 1.
    OneHot,
}

impl DomainSpec {
    /// Every domain, in the order the language lists them.
    pub const ALL: [DomainSpec; 5] = [
        DomainSpec::Positive,
        DomainSpec::Negative,
        DomainSpec::NonZero,
        DomainSpec::Spd,
        DomainSpec::OneHot,
    ];

    /// The keyword, as written in declarations and `--domain`.
    pub fn name(self) -> &'static str {
        match self {
            DomainSpec::Positive => "positive",
            DomainSpec::Negative => "negative",
            DomainSpec::NonZero => "nonzero",
            DomainSpec::Spd => "spd",
            DomainSpec::OneHot => "onehot",
        }
    }

    /// The domain named by a keyword.
    pub fn from_name(name: &str) -> Option<DomainSpec> {
        DomainSpec::ALL.into_iter().find(|d| d.name() == name)
    }
}

/// `Z = W1*W2`: a name for an expression, inlined into later statements.
#[derive(Clone, Debug, PartialEq)]
pub struct Definition {
    /// The defined name.
    pub name: String,
    /// The defining expression.
    pub expr: Expr,
    /// The definition's source span.
    pub span: Span,
}

/// A parsed program: declarations, definitions, and the final expression
/// (definitions already inlined into it).
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The declarations, in source order.
    pub declarations: Vec<Declaration>,
    /// The definitions, in source order.
    pub definitions: Vec<Definition>,
    /// The final expression, definitions inlined.
    pub expr: Expr,
    /// The name of the final expression when it was a definition (`Z = ...`).
    pub name: Option<String>,
}

impl Program {
    /// The program with each definition named among `targets` kept as a
    /// variable of that name where it was inlined (`H = W1*X; sum(tanh(H))`
    /// becomes `sum(tanh(H))`, with `H` defined as `W1*X`), so that its
    /// gradient, ∂L/∂H, is the gradient of a variable: `H` perturbed as a
    /// free input while the rest stays fixed. Other targets, and the
    /// definitions themselves, are untouched; shape inference gives `H` the
    /// shape of its definition.
    ///
    /// An inlined definition is found by its root's source span, which only
    /// its copies carry (a definition is inlined as a copy of its root that
    /// shares the subtrees below it); a later definition of the same name
    /// replaces an earlier one.
    ///
    /// ```
    /// use matdiff::syntax::{parse_program, parse_var};
    /// let p = parse_program("H = W1*X; Z = W2*H; sum(tanh(Z)) + sum(W1*X)").unwrap();
    /// let kept = p.with_definitions_kept(&[parse_var("H").unwrap()]);
    /// assert_eq!(kept.expr.to_string(), "sum(tanh(W2 * H)) + sum(W1 * X)");
    /// ```
    pub fn with_definitions_kept(&self, targets: &[VarName]) -> Program {
        let mut out = self.clone();
        for v in targets.iter().filter(|v| v.index.is_none()) {
            let Some(def) = self.definitions.iter().rev().find(|d| d.name == v.name) else { continue };
            let span = def.expr.span;
            if span.is_synthetic() {
                continue;
            }
            let var = Expr::new(ExprKind::Var(Rc::new(VarName::plain(&def.name))), span);
            let is_def = |e: &Expr| e.span.start == span.start && e.span.end == span.end && *e == def.expr;
            let mut memo = HashMap::new();
            if let Some(kept) = keep(&out.expr, &is_def, &var, &mut memo) {
                out.expr = kept;
            }
        }
        out
    }
}

/// `e` with every subtree that `is_def` picks replaced by `var`, or `None`
/// when there is none; a shared subtree is rebuilt once (`memo`), and one
/// without the definition stays shared.
fn keep(
    e: &Expr,
    is_def: &dyn Fn(&Expr) -> bool,
    var: &Expr,
    memo: &mut HashMap<*const Expr, Option<Rc<Expr>>>,
) -> Option<Expr> {
    if is_def(e) {
        return Some(var.clone());
    }
    let mut changed = false;
    // Recursion through `map_children`, which guards the stack.
    let mapped = e.map_children(|c| {
        let kept = match memo.get(&Rc::as_ptr(c)) {
            Some(done) => done.clone(),
            None => {
                let kept = keep(c, is_def, var, memo).map(Rc::new);
                memo.insert(Rc::as_ptr(c), kept.clone());
                kept
            }
        };
        changed |= kept.is_some();
        kept.unwrap_or_else(|| c.clone())
    });
    changed.then_some(mapped)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Index arithmetic stops at its limits instead of wrapping, and what it
    /// gives prints as text that re-parses to it.
    #[test]
    fn index_arithmetic_is_checked() {
        let (max, one, j) = (Index::constant(i64::MAX), Index::constant(1), Index::symbol("j"));
        assert!(max.plus(&one).is_err());
        assert!(Index::constant(-i64::MAX).minus(&one).is_err(), "i64::MIN is out of range");
        assert!(max.minus(&Index::constant(-1)).is_err());
        let low = Index::constant(0).minus(&max).unwrap();
        assert_eq!(low.to_string(), "-9223372036854775807");
        // Coefficients: 64 copies of j, not 65; substitution multiplies them.
        let mut many = Index::default();
        for _ in 0..64 {
            many = many.plus(&j).unwrap();
        }
        assert!(many.plus(&j).is_err());
        let twice = j.plus(&j).unwrap();
        assert!(many.subst("j", &twice).is_err());
        assert!(twice.subst("j", &Index::constant(i64::MAX / 2 + 1)).is_err());
        assert_eq!(
            twice.subst("j", &Index::constant(i64::MAX / 2)).unwrap().as_constant(),
            Some(i64::MAX - 1)
        );
        // Public fields can hold i64::MIN; printing does not overflow.
        assert_eq!(Index::constant(i64::MIN).to_string(), "-9223372036854775808");
        let e = Expr::synthetic(ExprKind::Var(Rc::new(VarName { name: "W".into(), index: Some(twice) })));
        assert!(e.subst_index("j", &max).is_err());
    }

    /// 200 000 nested negations (and a 200 000-term sum) are compared and
    /// freed on a 256 KiB thread: neither recurses.
    #[test]
    fn deep_trees_compare_and_drop_without_recursion() {
        let result = std::thread::Builder::new()
            .stack_size(256 * 1024)
            .spawn(|| {
                let deep = |leaf: &str| {
                    let mut neg = Expr::var(leaf);
                    let mut sum = Expr::var(leaf);
                    for _ in 0..200_000 {
                        neg = Expr::negate(neg);
                        sum = Expr::plus(sum, Expr::var(leaf));
                    }
                    (neg, sum)
                };
                let ((neg, sum), (neg2, sum2), (neg_b, _)) = (deep("A"), deep("A"), deep("B"));
                let equal = neg == neg2 && sum == sum2;
                let unequal = neg == neg_b;
                // Dropping a tree that shares a subtree leaves the subtree whole.
                let shared = Rc::new(neg);
                drop(Expr::transpose(shared.clone()));
                (equal, unequal, Rc::strong_count(&shared), *shared == neg2)
            })
            .unwrap()
            .join()
            .expect("no stack overflow");
        assert_eq!(result, (true, false, 1, true));
    }
}
