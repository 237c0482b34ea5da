//! Where each variable's random values come from: decided by what the
//! expression means, not by how it is written.
//!
//! A sign analysis says, for every node, which signs its entries take on a
//! set of draws of positive probability (`1 + exp(z)` is positive, `z .^ 2`
//! and `x^T*x` are positive but for a null set, `W*X` takes both signs). A
//! variable is restricted to positive entries only where some argument of
//! `log`, `sqrt` or a fractional power is not already positive without it;
//! everything else is drawn with both signs, so that a claim that is right
//! only for positive inputs (σ(|z|) for σ(z)) is seen to be wrong. Matrices
//! that are inverted or whose determinant is taken are drawn invertible and
//! well conditioned, never symmetric: on a symmetric X, X⁻¹ and X⁻ᵀ agree
//! and a misplaced transpose would go unseen. Declared domains
//! (`X : 3x3 positive`, `S : n x n spd`, `--domain`) are honoured as given.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use rand::rngs::StdRng;
use rand::Rng;

use super::Matrix;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::Typing;
use crate::syntax::{BinOp, DomainSpec, Expr, ExprKind, Func, VarName};

/// The signs a variable's entries are drawn with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Sign {
    /// Uniform in [-1, 1].
    #[default]
    Any,
    /// Magnitudes in [0.5, 2], either sign: under a divisor or a log, away
    /// from the pole, but with both signs.
    NonZero,
    /// In [0.5, 2].
    Positive,
    /// In [-2, -0.5].
    Negative,
}

/// The matrix structure a variable is drawn with.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Structure {
    /// No structure: entries drawn independently.
    #[default]
    General,
    /// Strictly diagonally dominant, of determinant of order 1, rows of
    /// random signs: invertible, well conditioned, not symmetric.
    Invertible,
    /// Diagonally dominant with a positive diagonal: a sum of such is
    /// still invertible (`inv(A + B)`).
    DominantPositive,
    /// Diagonally dominant with a negative diagonal: what a subtracted
    /// term needs (`inv(A - B)`).
    DominantNegative,
    /// Symmetric positive definite (declared only).
    Spd,
    /// Each column one-hot (declared only).
    OneHot,
}

/// The distribution a variable is drawn from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Domain {
    /// The sign of the entries.
    pub sign: Sign,
    /// The matrix structure.
    pub structure: Structure,
}

impl Domain {
    /// Entries uniform in [-1, 1]: what a variable gets when nothing asks for more.
    pub const ANY: Domain = Domain { sign: Sign::Any, structure: Structure::General };

    /// A declared domain as a distribution.
    pub fn declared(spec: DomainSpec) -> Domain {
        match spec {
            DomainSpec::Positive => Domain { sign: Sign::Positive, ..Domain::ANY },
            DomainSpec::Negative => Domain { sign: Sign::Negative, ..Domain::ANY },
            DomainSpec::NonZero => Domain { sign: Sign::NonZero, ..Domain::ANY },
            DomainSpec::Spd => Domain { structure: Structure::Spd, ..Domain::ANY },
            DomainSpec::OneHot => Domain { structure: Structure::OneHot, ..Domain::ANY },
        }
    }

    /// The name shown in reports: `positive`, `invertible`, `spd positive`, ….
    pub fn name(self) -> String {
        let sign = match self.sign {
            Sign::Any => None,
            Sign::NonZero => Some("nonzero"),
            Sign::Positive => Some("positive"),
            Sign::Negative => Some("negative"),
        };
        let structure = match self.structure {
            Structure::General => None,
            Structure::Invertible => Some("invertible"),
            Structure::DominantPositive => Some("invertible (positive diagonal)"),
            Structure::DominantNegative => Some("invertible (negative diagonal)"),
            Structure::Spd => Some("spd"),
            Structure::OneHot => Some("onehot"),
        };
        match (structure, sign) {
            (None, None) => "any".to_string(),
            (Some(s), None) | (None, Some(s)) => s.to_string(),
            (Some(a), Some(b)) => format!("{a} {b}"),
        }
    }

    /// A random matrix of this domain. A non-square matrix cannot be
    /// inverted or definite and keeps only the sign.
    pub fn draw(self, rows: usize, cols: usize, rng: &mut StdRng) -> Matrix {
        let entry = |rng: &mut StdRng| match self.sign {
            Sign::Any => rng.random_range(-1.0..1.0),
            Sign::NonZero => {
                let x: f64 = rng.random_range(0.5..2.0);
                if rng.random_bool(0.5) {
                    x
                } else {
                    -x
                }
            }
            Sign::Positive => rng.random_range(0.5..2.0),
            Sign::Negative => -rng.random_range(0.5..2.0),
        };
        if self.structure == Structure::OneHot {
            let mut m = Matrix::zeros(rows, cols);
            for j in 0..cols {
                m[(rng.random_range(0..rows), j)] = 1.0;
            }
            return m;
        }
        let b = Matrix::from_fn(rows, cols, |_, _| entry(rng));
        if rows != cols {
            return b;
        }
        let n = rows as f64;
        // I + B/(4n+1) with |b| <= 2: each row's off-diagonal entries sum
        // to less than half its diagonal, so the matrix is invertible with
        // a condition number below 10, and its determinant is of order 1
        // (not n^n: exp(-det X) would underflow and decide nothing).
        let dominant = || Matrix::identity(rows, rows) + &b * (1.0 / (4.0 * n + 1.0));
        match (self.structure, self.sign) {
            (Structure::General, _) => b,
            // Every entry keeps its sign.
            (
                Structure::Invertible | Structure::DominantPositive | Structure::DominantNegative,
                Sign::Positive,
            ) => dominant(),
            (
                Structure::Invertible | Structure::DominantPositive | Structure::DominantNegative,
                Sign::Negative,
            ) => -(Matrix::identity(rows, rows) - &b * (1.0 / (4.0 * n + 1.0))),
            (Structure::DominantPositive, _) => dominant(),
            (Structure::DominantNegative, _) => -dominant(),
            // Rows of random signs: a determinant of either sign, and
            // entries of both signs on the diagonal too.
            (Structure::Invertible, _) => {
                let mut m = dominant();
                for mut row in m.row_iter_mut() {
                    if rng.random_bool(0.5) {
                        row *= -1.0;
                    }
                }
                m
            }
            // B Bᵀ / n + I/2: symmetric, eigenvalues at least 1/2; with
            // positive B, positive entries too.
            (Structure::Spd, _) => &b * b.transpose() * (1.0 / n) + Matrix::identity(rows, rows) * 0.5,
            (Structure::OneHot, _) => unreachable!("drawn above"),
        }
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name())
    }
}

/// The domain each variable of a typed program is drawn from: declared
/// domains (from the program's declarations, then `extra`, which overrides
/// them) as given, the rest from the sign analysis. Variables not in the
/// map are drawn from [`Domain::ANY`]. An expression that needs what a
/// declared domain forbids (`log(X)` with `X` negative) is an error.
///
/// ```
/// use matdiff::numeric::{Domain, Sign, Structure};
/// let p = matdiff::syntax::parse_program("W : 3x4; X : 4x5; sum(log(1 + exp(W*X))) + sum(log(W))").unwrap();
/// let t = matdiff::shape::infer(&p).unwrap();
/// let d = matdiff::numeric::domains(&t, &Default::default()).unwrap();
/// let var = |v| matdiff::syntax::parse_var(v).unwrap();
/// // log(1 + exp(·)) is defined everywhere; log(W) is not.
/// assert_eq!(d[&var("W")].sign, Sign::Positive);
/// assert_eq!(d.get(&var("X")).copied().unwrap_or(Domain::ANY), Domain::ANY);
/// ```
pub fn domains(typing: &Typing, extra: &BTreeMap<VarName, DomainSpec>) -> Result<BTreeMap<VarName, Domain>> {
    let mut declared: BTreeMap<VarName, DomainSpec> = BTreeMap::new();
    for d in &typing.program.declarations {
        if let Some(spec) = d.domain {
            let index = d.binder.as_deref().map(crate::syntax::Index::symbol);
            declared.insert(VarName { name: d.name.clone(), index }, spec);
        }
    }
    declared.extend(extra.iter().map(|(v, s)| (v.clone(), *s)));
    let mut analysis =
        Analysis { typing, declared: &declared, domains: BTreeMap::new(), facts: HashMap::new() };
    for (v, spec) in &declared {
        analysis.domains.insert(v.clone(), Domain::declared(*spec));
    }
    analysis.restrict_signs()?;
    analysis.mark_structure(&typing.program.expr, Context::Free);
    analysis.mark_poles(&typing.program.expr);
    Ok(analysis.domains.into_iter().filter(|(_, d)| *d != Domain::ANY).collect())
}

/// The domain of a variable (or family member) in a map of domains.
pub fn domain_of(domains: &BTreeMap<VarName, Domain>, v: &VarName) -> Domain {
    domains
        .get(v)
        .or_else(|| domains.iter().find(|(k, _)| same_variable(k, v)).map(|(_, d)| d))
        .copied()
        .unwrap_or_default()
}

/// The signs an expression's entries take with positive probability.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Signs(u8);

impl Signs {
    const NEG: Signs = Signs(1);
    const ZERO: Signs = Signs(2);
    const POS: Signs = Signs(4);
    /// Either sign, zero only on a null set: a variable drawn at random.
    const NONZERO: Signs = Signs(5);
    const NONNEG: Signs = Signs(6);
    const ALL: Signs = Signs(7);

    fn has(self, s: Signs) -> bool {
        self.0 & s.0 != 0
    }

    fn within(self, s: Signs) -> bool {
        self.0 & !s.0 == 0
    }

    fn union(self, s: Signs) -> Signs {
        Signs(self.0 | s.0)
    }

    fn neg(self) -> Signs {
        let mut out = self.0 & Signs::ZERO.0;
        if self.has(Signs::NEG) {
            out |= Signs::POS.0;
        }
        if self.has(Signs::POS) {
            out |= Signs::NEG.0;
        }
        Signs(out)
    }

    /// The signs of a sum. The language's functions are analytic, so a sum
    /// that is not identically zero is zero only on a null set: it can be
    /// zero (on a set that matters) only where both terms can; it can be
    /// positive where either can. (A sum that cancels identically, `x - x`,
    /// is found by the draws: its log or quotient is not finite.)
    fn add(self, other: Signs) -> Signs {
        let signs = (self.0 | other.0) & !Signs::ZERO.0;
        let zero = self.0 & other.0 & Signs::ZERO.0;
        Signs(signs | zero)
    }

    /// The signs of an entrywise product (or quotient).
    fn mul(self, other: Signs) -> Signs {
        let mut out = Signs(0);
        for a in [Signs::NEG, Signs::ZERO, Signs::POS].into_iter().filter(|a| self.has(*a)) {
            for b in [Signs::NEG, Signs::ZERO, Signs::POS].into_iter().filter(|b| other.has(*b)) {
                out = out.union(if a == Signs::ZERO || b == Signs::ZERO {
                    Signs::ZERO
                } else if a == b {
                    Signs::POS
                } else {
                    Signs::NEG
                });
            }
        }
        out
    }

    /// The signs of the entrywise maximum of entries of these signs.
    fn max(self, other: Signs) -> Signs {
        let mut out = Signs(0);
        for a in [Signs::NEG, Signs::ZERO, Signs::POS].into_iter().filter(|a| self.has(*a)) {
            for b in [Signs::NEG, Signs::ZERO, Signs::POS].into_iter().filter(|b| other.has(*b)) {
                // NEG < ZERO < POS as bits: the larger bit is the larger sign.
                out = out.union(Signs(a.0.max(b.0)));
            }
        }
        out
    }

    /// The signs of the entrywise minimum: -max(-a, -b).
    fn min(self, other: Signs) -> Signs {
        self.neg().max(other.neg()).neg()
    }

    /// The signs of step(x): 1 where x is positive, 0 elsewhere.
    fn step(self) -> Signs {
        let pos = if self.has(Signs::POS) { Signs::POS } else { Signs(0) };
        let zero = if self.has(Signs::NEG) || self.has(Signs::ZERO) { Signs::ZERO } else { Signs(0) };
        pos.union(zero)
    }

    /// The signs of a sum of any number of terms with these signs (a
    /// matrix product's entries, `sum`, `tr`).
    fn many(self) -> Signs {
        self.add(self)
    }

    /// The signs of `x .^ 2`.
    fn square(self) -> Signs {
        let zero = if self.has(Signs::ZERO) { Signs::ZERO } else { Signs(0) };
        let pos = if self.has(Signs::NEG) || self.has(Signs::POS) { Signs::POS } else { Signs(0) };
        zero.union(pos)
    }

    /// These signs, less those that bounds `[lo, hi]` rule out.
    fn within_bounds(self, lo: f64, hi: f64) -> Signs {
        let mut out = self.0;
        if lo >= 0.0 {
            out &= !Signs::NEG.0;
        }
        if lo > 0.0 {
            out &= !Signs::ZERO.0;
        }
        if hi <= 0.0 {
            out &= !Signs::POS.0;
        }
        if hi < 0.0 {
            out &= !Signs::ZERO.0;
        }
        if out == 0 {
            self
        } else {
            Signs(out)
        }
    }

    fn of_sign(sign: Sign) -> Signs {
        match sign {
            Sign::Any | Sign::NonZero => Signs::NONZERO,
            Sign::Positive => Signs::POS,
            Sign::Negative => Signs::NEG,
        }
    }
}

/// What the analysis knows of a node: the signs its entries take, and
/// bounds on them.
#[derive(Clone, Copy, Debug)]
struct Facts {
    signs: Signs,
    lo: f64,
    hi: f64,
}

/// The product of two intervals (0 · ∞ taken as 0: a bound, not a value).
fn interval_mul(a: (f64, f64), b: (f64, f64)) -> (f64, f64) {
    let times = |x: f64, y: f64| if x == 0.0 || y == 0.0 { 0.0 } else { x * y };
    let p = [times(a.0, b.0), times(a.0, b.1), times(a.1, b.0), times(a.1, b.1)];
    let lo = p.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = p.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_nan() || hi.is_nan() {
        (f64::NEG_INFINITY, f64::INFINITY)
    } else {
        (lo, hi)
    }
}

/// Bounds of a sum of any number (at least one) of terms within `t`.
fn many(t: (f64, f64)) -> (f64, f64) {
    let lo = if t.0 >= 0.0 { t.0 } else { f64::NEG_INFINITY };
    let hi = if t.1 <= 0.0 { t.1 } else { f64::INFINITY };
    (lo, hi)
}

/// Bounds of `x .^ p` for x within `t`.
fn power_bounds(t: (f64, f64), p: f64) -> (f64, f64) {
    let (lo, hi) = t;
    let even = p.fract() == 0.0 && (p / 2.0).fract() == 0.0;
    let odd = p.fract() == 0.0 && !even;
    let all = (f64::NEG_INFINITY, f64::INFINITY);
    if p == 0.0 {
        (1.0, 1.0)
    } else if lo > 0.0 || (lo >= 0.0 && p > 0.0) {
        // Monotone on the positive half-line.
        let (a, b) = (lo.powf(p), hi.powf(p));
        (a.min(b), a.max(b))
    } else if even && p > 0.0 {
        let top = lo.abs().max(hi.abs()).powf(p);
        if hi < 0.0 {
            (hi.powf(p), lo.powf(p))
        } else {
            (0.0, top)
        }
    } else if odd && p > 0.0 {
        (lo.powf(p), hi.powf(p))
    } else if even {
        (0.0, f64::INFINITY)
    } else {
        all
    }
}

struct Analysis<'a, 'p> {
    typing: &'a Typing<'p>,
    declared: &'a BTreeMap<VarName, DomainSpec>,
    domains: BTreeMap<VarName, Domain>,
    /// Signs and bounds of the nodes, by address, for the current domains.
    facts: HashMap<*const Expr, Facts>,
}

/// Rounds of the sign analysis that restrict one argument at a time (the
/// fewest variables); past them, every argument still failing at once.
const ONE_AT_A_TIME: usize = 64;

impl Analysis<'_, '_> {
    fn domain(&self, v: &VarName) -> Domain {
        domain_of(&self.domains, v)
    }

    fn is_declared(&self, v: &VarName) -> bool {
        self.declared.keys().any(|k| same_variable(k, v))
    }

    /// Restricts to positive entries the variables of every argument of
    /// log, sqrt or a fractional power that is not positive already.
    fn restrict_signs(&mut self) -> Result<()> {
        let expr = &self.typing.program.expr;
        for round in 0.. {
            self.facts.clear();
            let mut failing = Vec::new();
            self.sign_of(expr, &mut failing);
            if failing.is_empty() {
                return Ok(());
            }
            let now: Vec<(&Expr, &'static str)> =
                if round < ONE_AT_A_TIME { failing[..1].to_vec() } else { failing.clone() };
            let mut changed = false;
            for (arg, why) in now {
                let mut vars = Vec::new();
                collect_vars(arg, &mut vars);
                for v in vars {
                    let d = self.domain(&v);
                    if d.sign == Sign::Positive {
                        continue;
                    }
                    // Positive entries are within every declared domain but `negative`.
                    if self.is_declared(&v) && d.sign == Sign::Negative {
                        return Err(Error::new(
                            ErrorKind::Usage,
                            format!(
                                "`{arg}` must be positive under {why}, but `{v}` is declared {} and nothing else makes it so",
                                d.name()
                            ),
                        )
                        .label(arg.span, format!("not positive for every {} `{v}`", d.name()))
                        .note("declare a domain under which the expression is defined, or drop the declared one"));
                    }
                    self.domains.insert(v.clone(), Domain { sign: Sign::Positive, ..d });
                    changed = true;
                }
            }
            if !changed {
                // Positive variables could not make the argument positive
                // (`log(a - b)`): the draws find out, and say so.
                return Ok(());
            }
        }
        Ok(())
    }

    /// The signs of `e`; records every argument that must be positive and
    /// is not (innermost first).
    fn sign_of<'e>(&mut self, e: &'e Expr, failing: &mut Vec<(&'e Expr, &'static str)>) -> Signs {
        if let Some(f) = self.facts.get(&(e as *const Expr)) {
            return f.signs;
        }
        // Explicit recursion, not a fold: memoised by address, and a node
        // reads its children as it needs (and records failing arguments).
        let s = crate::stack::ensure(|| match &e.kind {
            ExprKind::Var(v) => Signs::of_sign(self.domain(v).sign),
            ExprKind::Num(x) if *x == 0.0 => Signs::ZERO,
            ExprKind::Num(_) => Signs::POS,
            // Ones on the diagonal, zeros elsewhere.
            ExprKind::Identity => Signs::NONNEG,
            ExprKind::Ones(_) => Signs::POS,
            ExprKind::Neg(a) => self.sign_of(a, failing).neg(),
            ExprKind::Transpose(a) => self.sign_of(a, failing),
            // X .^ p for a varying p is X^p = exp(p log X): X must be positive.
            ExprKind::Binary { op: BinOp::Power, lhs, rhs, .. } => {
                self.sign_of(rhs, failing);
                let s = self.need_positive(lhs, "a power by a scalar expression", failing);
                if s.has(Signs::ZERO) {
                    Signs::NONNEG
                } else {
                    Signs::POS
                }
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (self.sign_of(lhs, failing), self.sign_of(rhs, failing));
                let scales = self.typing.node_scales(lhs, rhs) == Some(true);
                match op {
                    BinOp::Add => a.add(b),
                    BinOp::Sub => a.add(b.neg()),
                    BinOp::Hadamard | BinOp::Mul if lhs == rhs && (scales || *op == BinOp::Hadamard) => {
                        a.square()
                    }
                    BinOp::Hadamard | BinOp::HadamardDiv | BinOp::Div => a.mul(b),
                    BinOp::Mul if scales => a.mul(b),
                    BinOp::Mul if self.typing.node_is_scalar(e) == Some(true) && self.is_gram(e) => {
                        Signs::POS
                    }
                    BinOp::Mul => a.mul(b).many(),
                    BinOp::Max => a.max(b),
                    BinOp::Min => a.min(b),
                    // Every entry of kron(A, B) is one entry of A times one of B.
                    BinOp::Kron => a.mul(b),
                    BinOp::Power => unreachable!("matched above"),
                }
            }
            ExprKind::Power(a, k) => {
                let s = self.sign_of(a, failing);
                let scalar = self.typing.node_is_scalar(a) == Some(true);
                match (scalar, *k) {
                    (_, 0) => Signs::NONNEG,
                    (true, k) if k % 2 == 0 => s.square(),
                    (true, _) => s,
                    // Powers of a matrix with entries of one sign keep it;
                    // inverses and other powers mix signs.
                    (false, k) if k > 0 && s.within(Signs::NONNEG) => s,
                    _ => Signs::ALL,
                }
            }
            ExprKind::HadamardPower(a, p) => {
                if p.fract() != 0.0 {
                    let s = self.need_positive(a, "a fractional power", failing);
                    if s.has(Signs::ZERO) {
                        Signs::NONNEG
                    } else {
                        Signs::POS
                    }
                } else if *p == 0.0 {
                    Signs::POS
                } else if (p / 2.0).fract() == 0.0 {
                    self.sign_of(a, failing).square()
                } else {
                    self.sign_of(a, failing)
                }
            }
            ExprKind::Call(f, a) => match f {
                Func::Log => {
                    self.need_positive(a, "log", failing);
                    Signs::ALL
                }
                Func::Sqrt => {
                    if self.need_positive(a, "sqrt", failing).has(Signs::ZERO) {
                        Signs::NONNEG
                    } else {
                        Signs::POS
                    }
                }
                Func::Exp | Func::Sigmoid | Func::Softmax => {
                    self.sign_of(a, failing);
                    Signs::POS
                }
                Func::Logsumexp => {
                    self.sign_of(a, failing);
                    Signs::ALL
                }
                // Odd and increasing (or of the argument's sign): its signs.
                // log1p, arcsin and arccos are not restricted here: their
                // arguments keep both signs, and the draws that leave the
                // domain (x <= -1, |x| >= 1) are drawn again.
                Func::Tanh | Func::Sign | Func::Arctan | Func::Sinh | Func::Arcsin | Func::Log1p => {
                    self.sign_of(a, failing)
                }
                // Zero wherever the argument is not positive: a set that matters.
                Func::Relu | Func::Step => self.sign_of(a, failing).step(),
                Func::Abs => self.sign_of(a, failing).square(),
                Func::Softplus | Func::Cosh | Func::Arccos => {
                    self.sign_of(a, failing);
                    Signs::POS
                }
                Func::Det if self.is_spd(a) => Signs::POS,
                // tan changes sign at every multiple of π/2.
                Func::Sin | Func::Cos | Func::Tan | Func::Det | Func::Logdet => {
                    self.sign_of(a, failing);
                    Signs::ALL
                }
                Func::Sum | Func::SumCols | Func::SumRows => self.sign_of(a, failing).many(),
                Func::Tr => {
                    let s = self.sign_of(a, failing);
                    if self.is_spd(a) || self.is_gram(a) {
                        Signs::POS
                    } else {
                        s.many()
                    }
                }
                // The same entries, in one column.
                Func::Vec => self.sign_of(a, failing),
                // Each entry's sign, and zeros off the diagonal of a matrix
                // made from a vector (not a 1×1 one).
                Func::Diag => {
                    let s = self.sign_of(a, failing);
                    match self.typing.node_shape(e) {
                        Some(shape) if shape.rows == crate::shape::Dim::Const(1) => s,
                        Some(shape) if shape.cols == crate::shape::Dim::Const(1) => s,
                        _ => s.union(Signs::ZERO),
                    }
                }
                Func::Norm | Func::Norm1 | Func::Norm2 => {
                    if self.sign_of(a, failing) == Signs::ZERO {
                        Signs::ZERO
                    } else {
                        Signs::POS
                    }
                }
            },
            // A product of matrices with entries of one sign, or I when
            // the range is empty.
            ExprKind::Prod(p) => {
                if self.sign_of(&p.body, failing).within(Signs::NONNEG) {
                    Signs::NONNEG
                } else {
                    Signs::ALL
                }
            }
        });
        // What the bounds add: 1 - sigmoid(z) is at least 0, and zero only
        // on a null set (the signs say), so it is positive.
        let (lo, hi) = self.bounds(e);
        let s = s.within_bounds(lo, hi);
        self.facts.insert(e as *const Expr, Facts { signs: s, lo, hi });
        s
    }

    /// Bounds of every entry of `e` (closed; ±inf where there are none),
    /// from its children's, which are known by now.
    fn bounds(&self, e: &Expr) -> (f64, f64) {
        const ALL: (f64, f64) = (f64::NEG_INFINITY, f64::INFINITY);
        let of = |x: &Expr| self.facts.get(&(x as *const Expr)).map_or(ALL, |f| (f.lo, f.hi));
        let scalar = |x: &Expr| self.typing.node_is_scalar(x) == Some(true);
        match &e.kind {
            ExprKind::Var(v) => match self.domain(v).sign {
                Sign::Positive => (0.0, f64::INFINITY),
                Sign::Negative => (f64::NEG_INFINITY, 0.0),
                _ => ALL,
            },
            ExprKind::Num(x) => (*x, *x),
            ExprKind::Identity => (0.0, 1.0),
            ExprKind::Ones(_) => (1.0, 1.0),
            ExprKind::Neg(a) => {
                let (lo, hi) = of(a);
                (-hi, -lo)
            }
            ExprKind::Transpose(a) => of(a),
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (of(lhs), of(rhs));
                match op {
                    BinOp::Add => (a.0 + b.0, a.1 + b.1),
                    BinOp::Sub => (a.0 - b.1, a.1 - b.0),
                    BinOp::Hadamard => interval_mul(a, b),
                    BinOp::Mul if self.typing.node_scales(lhs, rhs) == Some(true) => interval_mul(a, b),
                    BinOp::Mul => many(interval_mul(a, b)),
                    BinOp::HadamardDiv | BinOp::Div if b.0 > 0.0 || b.1 < 0.0 => {
                        interval_mul(a, (1.0 / b.1, 1.0 / b.0))
                    }
                    BinOp::HadamardDiv | BinOp::Div => ALL,
                    BinOp::Max => (a.0.max(b.0), a.1.max(b.1)),
                    BinOp::Min => (a.0.min(b.0), a.1.min(b.1)),
                    BinOp::Kron => interval_mul(a, b),
                    BinOp::Power => (0.0, f64::INFINITY),
                }
            }
            ExprKind::Power(a, k) if scalar(a) => power_bounds(of(a), *k as f64),
            ExprKind::Power(a, k) if *k > 0 && of(a).0 >= 0.0 => (0.0, f64::INFINITY),
            ExprKind::Power(..) => ALL,
            ExprKind::HadamardPower(a, p) => power_bounds(of(a), *p),
            ExprKind::Call(f, a) => {
                let (lo, hi) = of(a);
                let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
                let softplus = |x: f64| x.max(0.0) + (-x.abs()).exp().ln_1p();
                match f {
                    Func::Exp => (lo.exp(), hi.exp()),
                    Func::Sigmoid => (sigmoid(lo), sigmoid(hi)),
                    Func::Tanh => (lo.tanh(), hi.tanh()),
                    Func::Relu => (lo.max(0.0), hi.max(0.0)),
                    Func::Abs if lo >= 0.0 => (lo, hi),
                    Func::Abs if hi <= 0.0 => (-hi, -lo),
                    Func::Abs => (0.0, hi.max(-lo)),
                    Func::Sign | Func::Step => {
                        let at = |x: f64| match (x > 0.0, x < 0.0 && *f == Func::Sign) {
                            (true, _) => 1.0,
                            (_, true) => -1.0,
                            _ => 0.0,
                        };
                        (at(lo), at(hi))
                    }
                    Func::Softplus => (softplus(lo), softplus(hi)),
                    Func::Arctan => (lo.atan(), hi.atan()),
                    Func::Sinh => (lo.sinh(), hi.sinh()),
                    Func::Cosh if lo >= 0.0 => (lo.cosh(), hi.cosh()),
                    Func::Cosh if hi <= 0.0 => (hi.cosh(), lo.cosh()),
                    Func::Cosh => (1.0, lo.cosh().max(hi.cosh())),
                    Func::Arcsin => (lo.clamp(-1.0, 1.0).asin(), hi.clamp(-1.0, 1.0).asin()),
                    Func::Arccos => (hi.clamp(-1.0, 1.0).acos(), lo.clamp(-1.0, 1.0).acos()),
                    Func::Log1p if hi > -1.0 => {
                        (if lo > -1.0 { lo.ln_1p() } else { f64::NEG_INFINITY }, hi.ln_1p())
                    }
                    Func::Sin | Func::Cos => (-1.0, 1.0),
                    Func::Log if hi > 0.0 => (if lo > 0.0 { lo.ln() } else { f64::NEG_INFINITY }, hi.ln()),
                    Func::Sqrt if hi >= 0.0 => (lo.max(0.0).sqrt(), hi.sqrt()),
                    Func::Norm | Func::Norm1 | Func::Norm2 => (0.0, f64::INFINITY),
                    Func::Diag => (lo.min(0.0), hi.max(0.0)),
                    Func::Vec => (lo, hi),
                    Func::Sum | Func::Tr | Func::SumCols | Func::SumRows => many((lo, hi)),
                    // Each entry a probability: exp(z) over a sum that holds it.
                    Func::Softmax => (0.0, 1.0),
                    _ => ALL,
                }
            }
            ExprKind::Prod(p) if of(&p.body).0 >= 0.0 => (0.0, f64::INFINITY),
            ExprKind::Prod(_) => ALL,
        }
    }

    /// The signs of an argument that must be positive, recording it when
    /// it is not.
    fn need_positive<'e>(
        &mut self,
        arg: &'e Expr,
        why: &'static str,
        failing: &mut Vec<(&'e Expr, &'static str)>,
    ) -> Signs {
        let s = self.sign_of(arg, failing);
        if !s.within(Signs::POS) {
            failing.push((arg, why));
        }
        s
    }

    /// Whether `e` is a product that reads the same transposed backwards
    /// (`x^T*x`, `(A*x)^T*A*x`, `x^T*S*x` with S spd): a Gram form, whose
    /// trace (or value, when 1x1) is positive but for a null set.
    fn is_gram(&self, e: &Expr) -> bool {
        let mut factors = Vec::new();
        flatten_product(e, false, &mut factors);
        if factors.len() < 2 || factors.iter().any(|(f, _)| f.kind == ExprKind::Num(0.0)) {
            return false;
        }
        // Positive numbers scale a Gram form without changing its sign.
        factors.retain(|(f, _)| !matches!(f.kind, ExprKind::Num(_)));
        let (mut i, mut j) = (0, factors.len().saturating_sub(1));
        while i < j {
            let ((a, ta), (b, tb)) = (factors[i], factors[j]);
            if a != b || ta == tb {
                return false;
            }
            i += 1;
            j -= 1;
        }
        i > j || (i == j && self.is_spd(factors[i].0))
    }

    fn is_spd(&self, e: &Expr) -> bool {
        match &e.kind {
            ExprKind::Var(v) => self.domain(v).structure == Structure::Spd,
            ExprKind::Transpose(a) | ExprKind::Power(a, -1) => self.is_spd(a),
            ExprKind::Identity => true,
            _ => false,
        }
    }

    /// Variables inside inverses, `det` and `logdet` (through sums,
    /// negation, transposes and scalar multiples) are drawn invertible; the
    /// terms of a sum so that the sum is too: positive diagonals for added
    /// terms, negative for subtracted ones.
    fn mark_structure(&mut self, e: &Expr, context: Context) {
        use Context::{Free, InSum, Lone};
        // Explicit recursion: the context flows down, top to bottom.
        crate::stack::ensure(|| match &e.kind {
            ExprKind::Var(v) => {
                let d = self.domain(v);
                let wanted = match context {
                    Free => return,
                    Lone => Structure::Invertible,
                    InSum(true) => Structure::DominantPositive,
                    InSum(false) => Structure::DominantNegative,
                };
                // A term of a sum needs more than a lone inverse; the first
                // sum decides a variable's diagonal.
                let stronger = match d.structure {
                    Structure::General => true,
                    Structure::Invertible => wanted != Structure::Invertible,
                    _ => false,
                };
                if stronger {
                    self.domains.insert(VarName::clone(v), Domain { structure: wanted, ..d });
                }
            }
            ExprKind::Num(_) | ExprKind::Identity | ExprKind::Ones(_) => {}
            ExprKind::Neg(x) => self.mark_structure(x, context.negated()),
            ExprKind::Transpose(x) => self.mark_structure(x, context),
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let in_sum = match context {
                    Free => Free,
                    Lone => InSum(true),
                    c => c,
                };
                let (l, r) = match op {
                    BinOp::Add => (in_sum, in_sum),
                    BinOp::Sub => (in_sum, in_sum.negated()),
                    BinOp::Mul if matches!(lhs.kind, ExprKind::Num(_)) => (Free, context),
                    _ => (Free, Free),
                };
                self.mark_structure(lhs, l);
                self.mark_structure(rhs, r);
            }
            ExprKind::Power(x, k) if *k < 0 || (*k != 0 && context != Free) => self.mark_structure(x, Lone),
            ExprKind::Power(x, _) | ExprKind::HadamardPower(x, _) => self.mark_structure(x, Free),
            ExprKind::Call(f, x) => {
                let c = if matches!(f, Func::Det | Func::Logdet) { Lone } else { Free };
                self.mark_structure(x, c)
            }
            ExprKind::Prod(p) => self.mark_structure(&p.body, Free),
        })
    }

    /// Variables whose zero is a pole of the expression (`1 ./ x`,
    /// `log(x .* y)`, `sqrt(x .^ 2)`) keep both signs but are drawn away
    /// from zero, where finite differences would straddle the pole.
    fn mark_poles(&mut self, e: &Expr) {
        e.for_each_once(|e| {
            let arg = match &e.kind {
                ExprKind::Binary { op: BinOp::HadamardDiv | BinOp::Div, rhs, .. } => Some(&**rhs),
                ExprKind::Call(Func::Log | Func::Sqrt, x) => Some(&**x),
                ExprKind::HadamardPower(x, p) if *p < 0.0 || p.fract() != 0.0 => Some(&**x),
                ExprKind::Binary { op: BinOp::Power, lhs, .. } => Some(&**lhs),
                ExprKind::Power(x, k) if *k < 0 && self.typing.node_is_scalar(x) == Some(true) => Some(&**x),
                _ => None,
            };
            if let Some(arg) = arg {
                let mut vars = Vec::new();
                self.zero_at_zero(arg, &mut vars);
                for v in vars {
                    let d = self.domain(&v);
                    if d.sign == Sign::Any && !self.is_declared(&v) {
                        self.domains.insert(v, Domain { sign: Sign::NonZero, ..d });
                    }
                }
            }
        })
    }

    /// The variables at whose zero `e` has a zero entry: `e` is a variable,
    /// or an entrywise product, quotient or power of such.
    fn zero_at_zero(&self, e: &Expr, out: &mut Vec<VarName>) {
        // A worklist, left to right: only some nodes are read through.
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            match &e.kind {
                ExprKind::Var(v) => out.push(VarName::clone(v)),
                ExprKind::Neg(x) | ExprKind::Transpose(x) | ExprKind::HadamardPower(x, _) => stack.push(x),
                ExprKind::Call(
                    Func::Tanh
                    | Func::Sin
                    | Func::Sqrt
                    | Func::Abs
                    | Func::Tan
                    | Func::Arcsin
                    | Func::Arctan
                    | Func::Sinh
                    | Func::Log1p,
                    x,
                ) => stack.push(x),
                ExprKind::Binary {
                    op: BinOp::Hadamard | BinOp::HadamardDiv | BinOp::Div, lhs, rhs, ..
                } => {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. }
                    if self.typing.node_scales(lhs, rhs) == Some(true) =>
                {
                    stack.push(rhs);
                    stack.push(lhs);
                }
                _ => {}
            }
        }
    }
}

/// Where a node sits with respect to inverses and determinants.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Context {
    /// Not inverted.
    Free,
    /// Inverted (or its determinant taken) on its own.
    Lone,
    /// A term of a sum that is inverted, added (`true`) or subtracted.
    InSum(bool),
}

impl Context {
    fn negated(self) -> Context {
        match self {
            Context::InSum(added) => Context::InSum(!added),
            c => c,
        }
    }
}

/// Whether two names denote one variable, or members of one family
/// (`W[i]` and `W[3]`; a plain `W` is another variable).
fn same_variable(a: &VarName, b: &VarName) -> bool {
    a == b || (a.name == b.name && a.index.is_some() && b.index.is_some())
}

/// The variables of `e`, each once.
fn collect_vars(e: &Expr, out: &mut Vec<VarName>) {
    e.for_each_once(|e| {
        if let ExprKind::Var(v) = &e.kind {
            if !out.contains(v) {
                out.push(VarName::clone(v));
            }
        }
    })
}

/// The factors of a product, each with whether it is transposed:
/// `(A*x)^T` is `x` and `A`, both transposed.
///
/// (Not [`Expr::factors`]: it reads through transposes, reversing the order.)
fn flatten_product<'e>(e: &'e Expr, transposed: bool, out: &mut Vec<(&'e Expr, bool)>) {
    let mut stack = vec![(e, transposed)];
    while let Some((e, transposed)) = stack.pop() {
        match &e.kind {
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                let (first, second) = if transposed { (rhs, lhs) } else { (lhs, rhs) };
                stack.push((second, transposed));
                stack.push((first, transposed));
            }
            ExprKind::Transpose(inner) => stack.push((inner, !transposed)),
            _ => out.push((e, transposed)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The domain each variable gets, as `name:domain` pairs (restricted ones only).
    fn drawn(src: &str) -> String {
        let p = crate::syntax::parse_program(src).unwrap();
        let t = crate::shape::infer(&p).unwrap();
        let d = domains(&t, &BTreeMap::new()).unwrap();
        d.iter().map(|(v, d)| format!("{v}:{}", d.name())).collect::<Vec<_>>().join(" ")
    }

    /// Arguments positive for every input leave their variables both signs;
    /// only arguments that are not get positive draws.
    #[test]
    fn restrictions_follow_meaning() {
        let cases = [
            // Positive whatever the variables: nothing restricted.
            ("W : 3x4; X : 4x5; sum(log(1 + exp(W*X)))", ""),
            ("W : 3x4; X : 4x5; sum(sqrt((W*X) .^ 2))", ""),
            ("x : 4; log(x^T*x)", ""),
            ("A : 3x4; x : 4; log((A*x)^T*(A*x))", ""),
            ("x : 4; sqrt(norm(x)^2)", ""),
            ("z : 4; sum(log(sigmoid(z)))", ""),
            ("X : 5x3; w : 3; y : 5; sum(log(1 + exp(-y .* (X*w))))", ""),
            // A pole at x = 0: both signs, away from it.
            ("x : 4; sum(log(x .* x))", "x:nonzero"),
            ("S : 3x3 spd; x : 3; log(x^T*S*x)", "S:spd"),
            ("x : 3; sum(log(exp(x) + x .^ 2))", ""),
            // Bounded functions: 1 - sigmoid(z) and 1 - tanh(z)^2 are positive.
            ("X : 6x3; w : 3; y : 6; -sum(y .* log(sigmoid(X*w)) + (1 - y) .* log(1 - sigmoid(X*w)))", ""),
            ("z : 4; sum(log(1 - tanh(z) .^ 2))", ""),
            ("z : 4; sum(sqrt(2 + sin(z)))", ""),
            // Not positive: the variables inside are.
            ("W : 3x4; X : 4x5; sum(log(W*X))", "W:positive X:positive"),
            ("U : 3x4; sum(sqrt(U))", "U:positive"),
            ("P : 3x4; sum(P .^ -0.5)", "P:positive"),
            ("x : 4; log(sum(x))", "x:positive"),
            ("a : scalar; b : scalar; log(a - b)", "a:positive b:positive"),
            ("z : 4; sum(log(1 - sigmoid(z) - sigmoid(z)))", "z:positive"),
            // Only what the first restriction leaves unsettled.
            ("x : 4; y : 4; sum(log(x)) + sum(log(x .* y .^ 2))", "x:positive y:nonzero"),
            // Divisors keep both signs, away from zero.
            ("A : 3x4; B : 3x4; sum(A ./ B)", "B:nonzero"),
            ("s : scalar; A : 3x4; A / s", "s:nonzero"),
            // Inverses and determinants: invertible, signs free.
            ("X : 3x3; logdet(X)", "X:invertible"),
            (
                "X : 3x3; A : 3x3; tr(inv(X + A))",
                "A:invertible (positive diagonal) X:invertible (positive diagonal)",
            ),
            (
                "X : 3x3; A : 3x3; logdet(X - A)",
                "A:invertible (negative diagonal) X:invertible (positive diagonal)",
            ),
            ("X : 3x3; sum(log(X)) + det(X)", "X:invertible positive"),
        ];
        for (src, want) in cases {
            assert_eq!(drawn(src), want, "{src}");
        }
    }

    #[test]
    fn declared_domains_are_kept() {
        assert_eq!(drawn("X : 3x4 negative; sum(X)"), "X:negative");
        assert_eq!(drawn("S : 3x3 spd; logdet(S)"), "S:spd");
        assert_eq!(drawn("X : 3x4 nonzero; sum(log(X))"), "X:positive");
        let p = crate::syntax::parse_program("X : 3x4 negative; sum(log(X))").unwrap();
        let t = crate::shape::infer(&p).unwrap();
        let e = domains(&t, &BTreeMap::new()).unwrap_err();
        assert!(e.message.contains("declared negative"), "{e}");
        // `--domain` over the declaration.
        let p = crate::syntax::parse_program("X : 3x4 negative; sum(X)").unwrap();
        let t = crate::shape::infer(&p).unwrap();
        let extra = [(VarName::plain("X"), DomainSpec::Positive)].into_iter().collect();
        assert_eq!(domains(&t, &extra).unwrap()[&VarName::plain("X")].sign, Sign::Positive);
    }

    /// Every draw lies in its domain: signs, invertibility, symmetry.
    #[test]
    fn draws_lie_in_their_domains() {
        use rand::SeedableRng;
        let mut rng = StdRng::seed_from_u64(7);
        for n in 1..=6 {
            for sign in [Sign::Any, Sign::NonZero, Sign::Positive, Sign::Negative] {
                for structure in [
                    Structure::General,
                    Structure::Invertible,
                    Structure::DominantPositive,
                    Structure::DominantNegative,
                    Structure::Spd,
                ] {
                    let d = Domain { sign, structure };
                    for _ in 0..20 {
                        let m = d.draw(n, n, &mut rng);
                        let ok_sign = match (sign, structure) {
                            (Sign::Positive, Structure::Spd) => m.iter().all(|x| *x > 0.0),
                            (_, Structure::Spd) => true,
                            (Sign::Positive, _) => m.iter().all(|x| *x > 0.0),
                            (Sign::Negative, _) => m.iter().all(|x| *x < 0.0),
                            (Sign::NonZero, Structure::General) => m.iter().all(|x| x.abs() >= 0.5),
                            _ => true,
                        };
                        assert!(ok_sign, "{d} {n}x{n}: {m}");
                        let s = m.clone().singular_values();
                        match structure {
                            Structure::Invertible
                            | Structure::DominantPositive
                            | Structure::DominantNegative => {
                                assert!(s.max() / s.min() < 10.0, "{d}: condition {}", s.max() / s.min());
                                let det = m.determinant().abs();
                                assert!((0.1..10.0).contains(&det), "{d}: det {det}");
                            }
                            Structure::Spd => {
                                assert_eq!(m, m.transpose(), "{d}");
                                assert!(m.clone().symmetric_eigenvalues().min() >= 0.49, "{d}");
                            }
                            Structure::General | Structure::OneHot => {}
                        }
                    }
                }
            }
        }
    }
}
