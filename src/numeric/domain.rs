//! Where each variable's random values must come from for the expression to
//! be defined and well conditioned: positive entries under `log`, `sqrt`,
//! divisors and fractional powers; well-conditioned invertible matrices under
//! inverses, `det` and `logdet`. Never symmetric ones: on a symmetric X,
//! X⁻¹ and X⁻ᵀ agree, and a misplaced transpose would go unseen.

use std::collections::BTreeMap;

use rand::rngs::StdRng;
use rand::Rng;

use super::Matrix;
use crate::syntax::{BinOp, Expr, ExprKind, Func, VarName};

/// The distribution a variable is drawn from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum Domain {
    /// Entries uniform in [-1, 1].
    #[default]
    Any,
    /// Entries uniform in [0.5, 2].
    Positive,
    /// B + (n + 1) I with B uniform in [-1, 1]: strictly diagonally
    /// dominant, so invertible, well conditioned and of positive determinant.
    Invertible,
    /// B + (2n + 1) I with B uniform in [0.5, 2]: also positive entries.
    InvertiblePositive,
}

impl Domain {
    pub fn name(self) -> &'static str {
        match self {
            Domain::Any => "any",
            Domain::Positive => "positive",
            Domain::Invertible => "invertible",
            Domain::InvertiblePositive => "invertible-positive",
        }
    }

    fn with(self, positive: bool, invertible: bool) -> Domain {
        let positive = positive || matches!(self, Domain::Positive | Domain::InvertiblePositive);
        let invertible = invertible || matches!(self, Domain::Invertible | Domain::InvertiblePositive);
        match (positive, invertible) {
            (false, false) => Domain::Any,
            (true, false) => Domain::Positive,
            (false, true) => Domain::Invertible,
            (true, true) => Domain::InvertiblePositive,
        }
    }

    /// A random matrix of this domain; a non-square matrix cannot be
    /// inverted and keeps only the sign constraint.
    pub fn draw(self, rows: usize, cols: usize, rng: &mut StdRng) -> Matrix {
        let positive = matches!(self, Domain::Positive | Domain::InvertiblePositive);
        let range = if positive { 0.5..2.0 } else { -1.0..1.0 };
        let b = Matrix::from_fn(rows, cols, |_, _| rng.random_range(range.clone()));
        if rows == cols && matches!(self, Domain::Invertible | Domain::InvertiblePositive) {
            let shift = if positive { 2 * rows + 1 } else { rows + 1 } as f64;
            b + Matrix::identity(rows, rows) * shift
        } else {
            b
        }
    }
}

/// The domain each variable of `e` needs.
///
/// ```
/// use matdiff::numeric::Domain;
/// let e = matdiff::syntax::parse_expr("logdet(X) + sum(log(W * Y))").unwrap();
/// let d = matdiff::numeric::domains(&e);
/// assert_eq!(d[&matdiff::syntax::parse_var("X").unwrap()], Domain::Invertible);
/// assert_eq!(d[&matdiff::syntax::parse_var("W").unwrap()], Domain::Positive);
/// ```
pub fn domains(e: &Expr) -> BTreeMap<VarName, Domain> {
    let mut out = BTreeMap::new();
    walk(e, false, false, &mut out);
    out
}

/// `positive`: inside the argument of log, sqrt, a divisor or a fractional
/// power. `invertible`: the matrix (up to sums, negation, transposes and
/// numbers) is inverted or its determinant taken.
fn walk(e: &Expr, positive: bool, invertible: bool, out: &mut BTreeMap<VarName, Domain>) {
    crate::stack::ensure(|| match &e.kind {
        ExprKind::Var(v) => {
            let d = out.entry(VarName::clone(v)).or_default();
            *d = d.with(positive, invertible);
        }
        ExprKind::Num(_) | ExprKind::Identity => {}
        ExprKind::Neg(x) | ExprKind::Transpose(x) => walk(x, positive, invertible, out),
        ExprKind::Binary { op, lhs, rhs, .. } => {
            let (l_inv, r_inv) = match op {
                BinOp::Add | BinOp::Sub => (invertible, invertible),
                BinOp::Mul if matches!(lhs.kind, ExprKind::Num(_)) => (false, invertible),
                _ => (false, false),
            };
            let r_pos = positive || matches!(op, BinOp::HadamardDiv | BinOp::Div);
            walk(lhs, positive, l_inv, out);
            walk(rhs, r_pos, r_inv, out);
        }
        ExprKind::Power(x, k) => walk(x, positive, invertible || *k < 0, out),
        ExprKind::HadamardPower(x, p) => walk(x, positive || p.fract() != 0.0 || *p < 0.0, false, out),
        ExprKind::Call(f, x) => match f {
            Func::Log | Func::Sqrt => walk(x, true, false, out),
            Func::Det | Func::Logdet => walk(x, positive, true, out),
            _ => walk(x, positive, false, out),
        },
        ExprKind::Prod(p) => walk(&p.body, positive, false, out),
        ExprKind::Differential(x) => walk(x, positive, invertible, out),
    })
}
