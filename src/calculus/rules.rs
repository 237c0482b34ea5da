//! The identities of the calculus, one function per operator: given the
//! adjoint A of a node (dL = tr(Aᵀ dE) + …), the adjoint of one child.
//! Formulas are built unsimplified; `simplify::tidy` gives them their form.

use std::rc::Rc;

use super::Factor;
use crate::syntax::{BinOp, DimSpec, Expr, ExprKind, Func};

fn num(x: f64) -> Expr {
    Expr::num(x)
}

fn hadamard(a: Expr, b: Expr) -> Expr {
    Expr::binary(BinOp::Hadamard, a, b)
}

fn power(x: &Expr, k: i64) -> Expr {
    Expr::synthetic(ExprKind::Power(Rc::new(x.clone()), k))
}

fn entry_power(x: &Expr, p: f64) -> Expr {
    Expr::synthetic(ExprKind::HadamardPower(Rc::new(x.clone()), p))
}

/// `c * e` for a signed number c, keeping literals non-negative.
fn times(c: f64, e: Expr) -> Expr {
    let scaled = if c.abs() == 1.0 { e } else { Expr::product(num(c.abs()), e) };
    if c < 0.0 {
        Expr::negate(scaled)
    } else {
        scaled
    }
}

/// A product of parts, leaving out the literal 1 (the scalar mode's first
/// adjoint) so the recorded steps read as a person would write them.
fn fold_product<P: Into<Rc<Expr>>>(parts: impl IntoIterator<Item = P>) -> Option<Expr> {
    let one = |e: &Rc<Expr>| e.kind == ExprKind::Num(1.0);
    let parts: Vec<Rc<Expr>> = parts.into_iter().map(Into::into).collect();
    let n = parts.len();
    let all_ones = n > 0 && parts.iter().all(one);
    Expr::product_of(parts.into_iter().filter(|p| !one(p))).or_else(|| all_ones.then(|| num(1.0)))
}

/// `a * b` without a literal 1 factor.
pub(super) fn times_expr(a: &Expr, b: Expr) -> Expr {
    fold_product([a.clone(), b]).expect("two parts")
}

/// For matrix factor i of s·M1⋯Mk: s · (M1⋯M(i−1))ᵀ · A · (M(i+1)⋯Mk)ᵀ.
pub(super) fn product(factors: &[Factor], i: usize, a: &Expr) -> Expr {
    let scalars =
        factors.iter().enumerate().filter(|(j, f)| f.scalar && *j != i).map(|(_, f)| f.expr.clone());
    let matrices: Vec<(usize, &Factor)> = factors.iter().enumerate().filter(|(_, f)| !f.scalar).collect();
    // The program's own node for the factors before, where it is their
    // product as built here (no scalar or literal 1 among them).
    let plain = |f: &Factor| !f.scalar && f.expr.kind != ExprKind::Num(1.0);
    let shared = match i.checked_sub(1).map(|j| &factors[j]) {
        Some(Factor { prefix: Some(p), .. }) if factors[..i].iter().all(plain) => Some(Rc::clone(p)),
        _ => None,
    };
    let before = shared.or_else(|| {
        fold_product(matrices.iter().filter(|(j, _)| *j < i).map(|(_, f)| f.expr.clone())).map(Rc::new)
    });
    let after = fold_product(matrices.iter().filter(|(j, _)| *j > i).map(|(_, f)| f.expr.clone()));
    // An identity adjoint (from a trace) vanishes between other factors.
    let keep_a = a.kind != ExprKind::Identity || (before.is_none() && after.is_none());
    let parts = scalars
        .chain(before.map(|b| Rc::new(Expr::transpose(b))))
        .chain(keep_a.then(|| Rc::new(a.clone())))
        .chain(after.map(|b| Rc::new(Expr::transpose(b))));
    fold_product(parts).expect("the adjoint is a part")
}

/// For scalar factor i of a product R·s: tr(Aᵀ R).
pub(super) fn scaling(factors: &[Factor], i: usize, a: &Expr) -> Expr {
    let scalars = factors.iter().enumerate().filter(|(j, f)| f.scalar && *j != i);
    let matrices = factors.iter().enumerate().filter(|(_, f)| !f.scalar);
    let rest = fold_product(scalars.chain(matrices).map(|(_, f)| f.expr.clone()))
        .expect("a product has another factor");
    Expr::call(Func::Tr, Expr::product(Expr::transpose(a.clone()), rest))
}

/// A scalar broadcast over a matrix collects the sum of its adjoint.
pub(super) fn sum_if(broadcast: bool, adjoint: Expr) -> Expr {
    if broadcast {
        Expr::call(Func::Sum, adjoint)
    } else {
        adjoint
    }
}

/// X in X ⊙ Y: A ⊙ Y.
pub(super) fn hadamard_factor(a: &Expr, other: &Expr) -> Expr {
    hadamard(a.clone(), other.clone())
}

/// P in P ./ Q (or P / s): A ./ Q.
pub(super) fn div_numerator(a: &Expr, q: &Expr) -> Expr {
    Expr::binary(BinOp::HadamardDiv, a.clone(), q.clone())
}

/// Q in P ./ Q: −A ⊙ P ./ Q.^2, summed when Q is a broadcast scalar.
pub(super) fn div_denominator(a: &Expr, p: &Expr, q: &Expr, broadcast: bool) -> Expr {
    let raw = Expr::binary(BinOp::HadamardDiv, hadamard(a.clone(), p.clone()), entry_power(q, 2.0));
    Expr::negate(sum_if(broadcast, raw))
}

/// X in ‖X‖²: 2·a·X.
pub(super) fn norm_squared(a: &Expr, x: &Expr) -> Expr {
    Expr::product(num(2.0), times_expr(a, x.clone()))
}

/// Largest |k| whose power rule is expanded term by term.
pub const MAX_POWER: i64 = 64;

/// X in X^k. A scalar X gives k·X^(k−1)·A; a matrix gives
/// Σᵢ (Xⁱ)ᵀ A (X^(k−1−i))ᵀ, and for k = −m < 0, with d(X⁻¹) = −X⁻¹ dX X⁻¹,
/// −Σᵢ (X^−(i+1))ᵀ A (X^−(m−i))ᵀ. None when k = 0 (a constant). The caller
/// keeps |k| ≤ [`MAX_POWER`], so k − 1 and −k exist.
pub(super) fn power_rule(a: &Expr, x: &Expr, k: i64, scalar: bool) -> Option<Expr> {
    debug_assert!(k.unsigned_abs() <= MAX_POWER.unsigned_abs(), "power {k} past the limit");
    if k == 0 {
        return None;
    }
    if scalar {
        let base = match k - 1 {
            0 => a.clone(),
            1 => times_expr(a, x.clone()),
            j => times_expr(a, power(x, j)),
        };
        return Some(times(k as f64, base));
    }
    let pow_t = |j: i64| match j {
        0 => None,
        1 => Some(Expr::transpose(x.clone())),
        j => Some(Expr::transpose(power(x, j))),
    };
    let term = |left: i64, right: i64| {
        fold_product(pow_t(left).into_iter().chain(std::iter::once(a.clone())).chain(pow_t(right)))
            .expect("the adjoint is a factor")
    };
    let terms: Vec<Expr> = if k > 0 {
        (0..k).map(|i| term(i, k - 1 - i)).collect()
    } else {
        let m = -k;
        (0..m).map(|i| term(-(i + 1), -(m - i))).collect()
    };
    let sum = terms.into_iter().reduce(Expr::plus).expect("k != 0");
    Some(if k > 0 { sum } else { Expr::negate(sum) })
}

/// X in X .^ p: p · (A ⊙ X .^ (p−1)), with p − 1 given exactly (as its
/// decimal, [`crate::syntax::exact_minus_one`]). None when p = 0.
pub(super) fn hadamard_power(a: &Expr, x: &Expr, p: f64, p_minus_one: f64) -> Option<Expr> {
    if p == 0.0 {
        return None;
    }
    let base = if p == 1.0 {
        a.clone()
    } else if p == 2.0 {
        hadamard(a.clone(), x.clone())
    } else {
        hadamard(a.clone(), entry_power(x, p_minus_one))
    };
    Some(times(p, base))
}

/// X in X .^ p, p a scalar expression: A ⊙ (p X .^ (p − 1)).
pub(super) fn power_base(a: &Expr, x: &Expr, p: &Expr) -> Expr {
    let lowered = Expr::binary(BinOp::Power, x.clone(), Expr::minus(p.clone(), num(1.0)));
    let derivative = Expr::product(p.clone(), lowered);
    if a.kind == ExprKind::Num(1.0) {
        derivative
    } else {
        hadamard(a.clone(), derivative)
    }
}

/// p in X .^ p (the node `x_p`): sum(A ⊙ X .^ p ⊙ log(X)), the sum left
/// out where X is a scalar.
pub(super) fn power_exponent(a: &Expr, x_p: &Expr, x: &Expr, matrix: bool) -> Expr {
    let derivative = hadamard(x_p.clone(), Expr::call(Func::Log, x.clone()));
    let adj = if a.kind == ExprKind::Num(1.0) { derivative } else { hadamard(a.clone(), derivative) };
    sum_if(matrix, adj)
}

/// X in det(X): a · det(X) · (X⁻¹)ᵀ.
pub(super) fn det(a: &Expr, det_x: &Expr, x: &Expr) -> Expr {
    Expr::product(times_expr(a, det_x.clone()), Expr::transpose(power(x, -1)))
}

/// X in logdet(X): a · (X⁻¹)ᵀ.
pub(super) fn logdet(a: &Expr, x: &Expr) -> Expr {
    times_expr(a, Expr::transpose(power(x, -1)))
}

/// X in sum(X): a·𝟙, written `X .^ 0` (x⁰ = 1 for every x; the size of X
/// may be one no name gives). A later ⊙ with the same shape absorbs it.
pub(super) fn sum_entries(a: &Expr, x: &Expr, scalar: bool) -> Expr {
    if scalar {
        a.clone()
    } else {
        times_expr(a, entry_power(x, 0.0))
    }
}

/// Z in log(softmax(Z)), column by column: a − s (1ᵀa), that is
/// `A - S .* (ones(m) * sum(A, 1))`.
pub(super) fn log_softmax(a: &Expr, s: &Expr, ones_m: Expr) -> Expr {
    let spread = fold_product([ones_m, Expr::call(Func::SumCols, a.clone())]).expect("two parts");
    Expr::minus(a.clone(), hadamard(s.clone(), spread))
}

/// X in sum(X, 1): `ones(m) * A`, the row A repeated down the m rows.
pub(super) fn sum_columns(a: &Expr, ones_m: Expr) -> Expr {
    fold_product([ones_m, a.clone()]).expect("two parts")
}

/// X in sum(X, 2): `A * ones(1, n)`, the column A repeated over the n columns.
pub(super) fn sum_rows(a: &Expr, ones_n: Expr) -> Expr {
    fold_product([a.clone(), ones_n]).expect("two parts")
}

/// Z in S = softmax(Z), column by column: s ⊙ a − s (sᵀa), that is
/// `S .* (A - ones(m) * sum(A .* S, 1))`.
pub(super) fn softmax(a: &Expr, s: &Expr, ones_m: Expr) -> Expr {
    let inner = Expr::call(Func::SumCols, hadamard(a.clone(), s.clone()));
    hadamard(s.clone(), Expr::minus(a.clone(), Expr::product(ones_m, inner)))
}

/// Z in logsumexp(Z): each column gets softmax(z) times its entry of the
/// row A: `softmax(Z) .* (ones(m) * A)`; for a column Z (a scalar result),
/// `a * softmax(Z)`.
pub(super) fn logsumexp(a: &Expr, z: &Expr, ones_m: Expr, scalar: bool) -> Expr {
    let s = Expr::call(Func::Softmax, z.clone());
    if scalar {
        times_expr(a, s)
    } else {
        hadamard(s, fold_product([ones_m, a.clone()]).expect("two parts"))
    }
}

/// X in norm(X): a · X / norm(X).
pub(super) fn norm(a: &Expr, norm_x: &Expr, x: &Expr) -> Expr {
    Expr::binary(BinOp::Div, times_expr(a, x.clone()), norm_x.clone())
}

/// X in norm1(X): a · sign(X).
pub(super) fn norm1(a: &Expr, x: &Expr) -> Expr {
    times_expr(a, Expr::call(Func::Sign, x.clone()))
}

/// x in diag(x), or X in diag(X): diag(A), transposed for a row vector x
/// (the diagonal of A is a column). The adjoint of a diagonal matrix is the
/// diagonal of A; that of a diagonal (a column a) is diag(a), a matrix.
pub(super) fn diag(a: &Expr, row: bool) -> Expr {
    let d = Expr::call(Func::Diag, a.clone());
    if row {
        Expr::transpose(d)
    } else {
        d
    }
}

/// The identity matrix of size k, as the language can write a sized one
/// (a lone `I` takes its size from beside it, and `kron` gives it none).
fn eye(k: DimSpec) -> Expr {
    Expr::call(Func::Diag, Expr::ones(k, DimSpec::Const(1)))
}

/// Whether `e` is `ones(1, 1)` or the identity of size 1 built by [`eye`].
fn is_unit(e: &Expr) -> bool {
    let one = DimSpec::Const(1);
    match &e.kind {
        ExprKind::Ones(d) => d.0 == one && d.1 == one,
        ExprKind::Call(Func::Diag, x) => is_unit(x),
        _ => false,
    }
}

/// Whether `e` is an identity built by [`eye`].
fn is_eye(e: &Expr) -> bool {
    matches!(&e.kind, ExprKind::Call(Func::Diag, x) if matches!(&x.kind, ExprKind::Ones(d) if d.1 == DimSpec::Const(1)))
}

/// kron(a, b), where a 1×1 one is left out: kron(1, B) = B, kron(A, 1) = A.
fn kron(a: Expr, b: Expr) -> Expr {
    if is_unit(&a) {
        b
    } else if is_unit(&b) {
        a
    } else {
        Expr::binary(BinOp::Kron, a, b)
    }
}

/// l * m * r for the block sums of the kron rules, an identity factor
/// left out (m is never one: it is the masked adjoint).
fn between(l: Expr, m: Expr, r: Expr) -> Expr {
    let m = if is_eye(&l) { m } else { Expr::product(l, m) };
    if is_eye(&r) {
        m
    } else {
        Expr::product(m, r)
    }
}

/// The sizes of the operands of kron(X, Y): X is m×n, Y is p×q.
pub(super) struct KronSizes {
    pub m: DimSpec,
    pub n: DimSpec,
    pub p: DimSpec,
    pub q: DimSpec,
}

/// X in kron(X, Y), from d kron(X, Y) = kron(dX, Y) + kron(X, dY):
/// tr(Aᵀ kron(dX, Y)) = Σᵢⱼ dXᵢⱼ ⟨Aᵢⱼ, Y⟩ for the p×q blocks Aᵢⱼ of A, so
/// the adjoint sums each block of A ⊙ kron(𝟙ₘₓₙ, Y):
/// (Iₘ ⊗ 𝟙ₚᵀ) (A ⊙ kron(𝟙ₘₓₙ, Y)) (Iₙ ⊗ 𝟙_q).
pub(super) fn kron_left(a: &Expr, y: &Expr, s: &KronSizes) -> Expr {
    let one = DimSpec::Const(1);
    let masked = hadamard(a.clone(), kron(Expr::ones(s.m.clone(), s.n.clone()), y.clone()));
    between(
        kron(eye(s.m.clone()), Expr::ones(one.clone(), s.p.clone())),
        masked,
        kron(eye(s.n.clone()), Expr::ones(s.q.clone(), one)),
    )
}

/// Y in kron(X, Y): tr(Aᵀ kron(X, dY)) = tr((Σᵢⱼ xᵢⱼ Aᵢⱼ)ᵀ dY), the sum of
/// the blocks of A ⊙ kron(X, 𝟙ₚₓ_q): (𝟙ₘᵀ ⊗ Iₚ) (A ⊙ kron(X, 𝟙ₚₓ_q)) (𝟙ₙ ⊗ I_q).
pub(super) fn kron_right(a: &Expr, x: &Expr, s: &KronSizes) -> Expr {
    let one = DimSpec::Const(1);
    let masked = hadamard(a.clone(), kron(x.clone(), Expr::ones(s.p.clone(), s.q.clone())));
    between(
        kron(Expr::ones(one.clone(), s.m.clone()), eye(s.p.clone())),
        masked,
        kron(Expr::ones(s.n.clone(), one), eye(s.q.clone())),
    )
}

/// X (m×n) in vec(X), from d vec(X) = vec(dX): tr(aᵀ vec(dX)) = tr(unvec(a)ᵀ dX),
/// and unvec(a) = (𝟙ₙᵀ ⊗ Iₘ) ((a 𝟙ₙᵀ) ⊙ (Iₙ ⊗ 𝟙ₘ)): column j of a 𝟙ₙᵀ masked
/// to its j-th block of m entries, the blocks then summed.
pub(super) fn vec(a: &Expr, m: DimSpec, n: DimSpec) -> Expr {
    let one = DimSpec::Const(1);
    // A column X is its own vec: unvec(a) = a.
    if n == one {
        return a.clone();
    }
    let spread = Expr::product(a.clone(), Expr::ones(one.clone(), n.clone()));
    let masked = hadamard(spread, kron(eye(n.clone()), Expr::ones(m.clone(), one.clone())));
    between(kron(Expr::ones(one, n), eye(m)), masked, eye(DimSpec::Const(1)))
}

/// U in f(U): A ⊙ f′(U), with f′ in the language; `f_u` is the node f(U).
pub(super) fn entrywise(a: &Expr, f: Func, f_u: &Expr, u: &Expr, scalar: bool) -> Expr {
    let one_minus = |e: Expr| Expr::minus(num(1.0), e);
    let derivative = match f {
        Func::Exp => f_u.clone(),
        Func::Log => Expr::binary(BinOp::HadamardDiv, num(1.0), u.clone()),
        Func::Sqrt => Expr::binary(BinOp::HadamardDiv, num(0.5), f_u.clone()),
        Func::Sin => Expr::call(Func::Cos, u.clone()),
        Func::Cos => Expr::negate(Expr::call(Func::Sin, u.clone())),
        Func::Tanh => one_minus(entry_power(f_u, 2.0)),
        Func::Sigmoid => hadamard(f_u.clone(), one_minus(f_u.clone())),
        // relu, abs, sign and step have a kink at 0, where no derivative
        // exists; the numeric commands draw their arguments away from it.
        Func::Relu => Expr::call(Func::Step, u.clone()),
        Func::Abs => Expr::call(Func::Sign, u.clone()),
        // Constant on each side of the kink: the derivative is 0 wherever it exists.
        Func::Sign | Func::Step => num(0.0),
        Func::Softplus => Expr::call(Func::Sigmoid, u.clone()),
        Func::Tan => Expr::plus(num(1.0), entry_power(f_u, 2.0)),
        Func::Arcsin => Expr::binary(BinOp::HadamardDiv, num(1.0), sqrt_one_minus_square(u)),
        Func::Arccos => Expr::negate(Expr::binary(BinOp::HadamardDiv, num(1.0), sqrt_one_minus_square(u))),
        Func::Arctan => Expr::binary(BinOp::HadamardDiv, num(1.0), Expr::plus(num(1.0), entry_power(u, 2.0))),
        Func::Sinh => Expr::call(Func::Cosh, u.clone()),
        Func::Cosh => Expr::call(Func::Sinh, u.clone()),
        Func::Log1p => Expr::binary(BinOp::HadamardDiv, num(1.0), Expr::plus(num(1.0), u.clone())),
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
        | Func::Vec => {
            unreachable!("{} is not entrywise", f.name())
        }
    };
    if scalar {
        times_expr(a, derivative)
    } else if a.kind == ExprKind::Num(1.0) {
        derivative
    } else {
        hadamard(a.clone(), derivative)
    }
}

/// sqrt(1 - U .^ 2), the denominator of arcsin′ and arccos′.
fn sqrt_one_minus_square(u: &Expr) -> Expr {
    Expr::call(Func::Sqrt, Expr::minus(num(1.0), entry_power(u, 2.0)))
}

/// A in max(A, B) (`Winner::Larger`) or in min(A, B) (`Winner::Smaller`):
/// the upstream where A is taken, summed when A is a broadcast scalar.
/// Where A and B tie (a kink) one side gets all of it (`tie`), so that a
/// max whose sides tie on a whole region (max(A, min(A, B)) is A) has the
/// derivative of either: with the tie, `a ⊙ (1 − step(B − A))` for max,
/// without, `a ⊙ step(A − B)`.
pub(super) fn extremum(a: &Expr, this: &Expr, other: &Expr, wins: Winner, tie: Tie, broadcast: bool) -> Expr {
    let (hi, lo) = match wins {
        Winner::Larger => (this, other),
        Winner::Smaller => (other, this),
    };
    let route = match tie {
        Tie::Other => step_of_difference(hi, lo),
        Tie::This => Expr::minus(num(1.0), step_of_difference(lo, hi)),
    };
    let adj = if a.kind == ExprKind::Num(1.0) { route } else { hadamard(a.clone(), route) };
    sum_if(broadcast, adj)
}

/// step(X − Y), read as a person writes it: step(X) for Y = 0, step(−Y) for X = 0.
fn step_of_difference(x: &Expr, y: &Expr) -> Expr {
    let zero = |e: &Expr| e.kind == ExprKind::Num(0.0);
    let gap = if zero(y) {
        x.clone()
    } else if zero(x) {
        Expr::negate(y.clone())
    } else {
        Expr::minus(x.clone(), y.clone())
    };
    Expr::call(Func::Step, gap)
}

/// Which operand of max or min is taken where they differ.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Winner {
    /// max: the larger.
    Larger,
    /// min: the smaller.
    Smaller,
}

/// Which operand of max or min gets the upstream where they tie.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Tie {
    /// The operand whose adjoint is built.
    This,
    /// The other one.
    Other,
}
