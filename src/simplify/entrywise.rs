//! Entrywise algebra: a region of `+ - .* ./` and numbers read as a sum of
//! entrywise monomials, `c · f1^k1 .* f2^k2 ⋯`, where the factors are the
//! region's other subexpressions (sums inside a product are expanded).
//! Equal factors merge their exponents — opposite signs only where the
//! factor is nowhere zero (`sigmoid(u) .* (a ./ sigmoid(u))` is `a`) — and
//! like monomials are collected, so the backward pass of a logistic loss,
//! `-(y .* (1 ./ s) .* (s .* (1 - s))) + s .* (1 - s) .* ((1 - y) .* (1 ./ (1 - s)))`,
//! becomes `s - y`.
//!
//! The e-graph does not do this: distributing over sums with commutative
//! products grows it past its limits, and picks among equal-sized forms at
//! random. Here the result replaces the region only when it prints
//! smaller, so a factored textbook form (`Y .* (1 - t .^ 2)`) stays.

use std::rc::Rc;

use crate::shape::Typer;
use crate::syntax::{BinOp, Expr, ExprKind};

/// Regions larger than this (in nodes, as printed) are left as they are:
/// expanding a product of sums multiplies their terms.
const MAX_REGION_NODES: usize = 400;

/// Most monomials an expansion may make before it gives up.
const MAX_MONOMIALS: usize = 64;

/// `e` with each entrywise region replaced by its collected form where that
/// is smaller; bottom-up, so that each node is read as a region once.
pub(super) fn collect(e: &Expr, typer: &mut Typer) -> Expr {
    changed(e, typer).unwrap_or_else(|| e.clone())
}

/// [`collect`], or `None` where nothing changed: an unchanged subtree is
/// kept as the same `Rc`, so the leaves one [`super::Simplifier`] shares
/// stay shared.
fn changed(e: &Expr, typer: &mut Typer) -> Option<Expr> {
    crate::stack::ensure(|| {
        // The children first: a node none of whose children changed is not
        // rebuilt (most nodes of a gradient, and every one of a chain's).
        let mut new: [Option<Expr>; 2] = [None, None];
        for (slot, c) in new.iter_mut().zip(e.children()) {
            *slot = changed(c, typer);
        }
        let rebuilt = new.iter().any(Option::is_some).then(|| {
            let mut slots = new.into_iter();
            e.map_children(|c| slots.next().flatten().map(Rc::new).unwrap_or_else(|| c.clone()))
        });
        let node = rebuilt.as_ref().unwrap_or(e);
        if is_region(node) {
            if let Some(better) = collect_region(node, typer).or_else(|| collect_factored(node, typer)) {
                return Some(better);
            }
        }
        rebuilt
    })
}

/// `±P * R1 ± P * R2 …` (one left factor P, entrywise Rs) as
/// `P * (±R1 ± R2 …)` collected, where that cancels and is smaller: the
/// gradient of a loss through `X * w` is `X^T` times one such sum per term.
/// Likewise a common right factor: `±R1 * w^T ± R2 * w^T` is
/// `(±R1 ± R2 …) * w^T` (the gradient of the matrix in `X * w`).
fn collect_factored(e: &Expr, typer: &mut Typer) -> Option<Expr> {
    collect_factored_on(e, typer, true).or_else(|| collect_factored_on(e, typer, false))
}

/// [`collect_factored`] with the common factor on the left (`left`) or right.
fn collect_factored_on(e: &Expr, typer: &mut Typer, left: bool) -> Option<Expr> {
    let size = e.size_within(MAX_REGION_NODES)?;
    let terms = e.sum_terms_through_neg();
    if terms.len() < 2 {
        return None;
    }
    let mut common: Option<Expr> = None;
    let mut inner: Option<Expr> = None;
    for (negative, term) in terms {
        let mut factors: Vec<Expr> = term.factors().into_iter().cloned().collect();
        if factors.len() < 2 {
            return None;
        }
        // Tidy writes -(P * R) as (-P) * R.
        let negative = match &factors[0].kind {
            ExprKind::Neg(p) => {
                factors[0] = (**p).clone();
                !negative
            }
            _ => negative,
        };
        let shared = if left { factors.remove(0) } else { factors.pop()? };
        if common.as_ref().is_some_and(|c| *c != shared) {
            return None;
        }
        common = Some(shared);
        let rest = Expr::product_of(factors)?;
        inner = Some(match (inner, negative) {
            (None, false) => rest,
            (None, true) => Expr::negate(rest),
            (Some(acc), false) => Expr::plus(acc, rest),
            (Some(acc), true) => Expr::minus(acc, rest),
        });
    }
    let collected = collect_region(&inner?, typer)?;
    let out = if left { Expr::product(common?, collected) } else { Expr::product(collected, common?) };
    out.size_within(size - 1).map(|_| out)
}

fn is_region(e: &Expr) -> bool {
    matches!(
        e.kind,
        ExprKind::Binary { op: BinOp::Add | BinOp::Sub | BinOp::Hadamard | BinOp::HadamardDiv, .. }
            | ExprKind::Neg(_)
    )
}

/// A monomial: coefficient and factors with their (nonzero) exponents, the
/// factors in the order of their printed text.
#[derive(Clone, Debug)]
struct Monomial {
    coeff: f64,
    factors: Vec<(Expr, i32)>,
}

impl Monomial {
    fn constant(c: f64) -> Monomial {
        Monomial { coeff: c, factors: vec![] }
    }

    /// The product of two monomials (`None` where an exponent would
    /// overflow). A factor that meets its reciprocal sets `cancelled`: where
    /// that factor is 0 the product is undefined, and the merged exponent
    /// gives its continuous extension (`x .* (y ./ x)` is `y`), equal to it
    /// wherever it is defined — as a gradient, on the loss's own domain.
    fn times(&self, other: &Monomial, cancelled: &mut bool) -> Option<Monomial> {
        let mut factors = self.factors.clone();
        for (f, k) in &other.factors {
            match factors.iter_mut().position(|(g, _)| g == f) {
                Some(i) => {
                    let j = factors[i].1;
                    if (j > 0) != (*k > 0) {
                        *cancelled = true;
                    }
                    factors[i].1 = j.checked_add(*k)?;
                }
                None => factors.push((f.clone(), *k)),
            }
        }
        factors.retain(|(_, k)| *k != 0);
        factors.sort_by_cached_key(|(f, k)| (f.to_string(), *k));
        Some(Monomial { coeff: self.coeff * other.coeff, factors })
    }
}

type Poly = Vec<Monomial>;

/// The sum of two polynomials; like monomials set `cancelled`.
fn add(mut a: Poly, b: Poly, cancelled: &mut bool) -> Option<Poly> {
    for m in b {
        match a.iter_mut().find(|n| same_factors(n, &m)) {
            Some(n) => {
                n.coeff += m.coeff;
                *cancelled = true;
            }
            None => a.push(m),
        }
    }
    a.retain(|m| m.coeff != 0.0);
    (a.len() <= MAX_MONOMIALS).then_some(a)
}

fn same_factors(a: &Monomial, b: &Monomial) -> bool {
    a.factors.len() == b.factors.len() && a.factors.iter().zip(&b.factors).all(|(x, y)| x == y)
}

fn times(a: &Poly, b: &Poly, cancelled: &mut bool) -> Option<Poly> {
    let mut out: Poly = vec![];
    for m in a {
        for n in b {
            let product = m.times(n, cancelled)?;
            out = add(out, vec![product], cancelled)?;
        }
    }
    Some(out)
}

fn negate(mut a: Poly) -> Poly {
    for m in &mut a {
        m.coeff = -m.coeff;
    }
    a
}

/// The region as a polynomial. A Hadamard product is first read as its
/// factors with exponents, so that a sum meets its reciprocal before it is
/// expanded (`(1 - s) .* (a ./ (1 - s))` is `a`); the sums left with a
/// positive exponent are then expanded.
fn poly(e: &Expr, cancelled: &mut bool) -> Option<Poly> {
    match &e.kind {
        ExprKind::Num(c) => Some(if *c == 0.0 { vec![] } else { vec![Monomial::constant(*c)] }),
        ExprKind::Neg(a) => Some(negate(poly(a, cancelled)?)),
        ExprKind::Binary { op: BinOp::Add, lhs, rhs, .. } => {
            add(poly(lhs, cancelled)?, poly(rhs, cancelled)?, cancelled)
        }
        ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } => {
            add(poly(lhs, cancelled)?, negate(poly(rhs, cancelled)?), cancelled)
        }
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } if matches!(lhs.kind, ExprKind::Num(_)) => {
            let ExprKind::Num(c) = lhs.kind else { unreachable!("matched above") };
            let mut p = poly(rhs, cancelled)?;
            for m in &mut p {
                m.coeff *= c;
            }
            p.retain(|m| m.coeff != 0.0);
            Some(p)
        }
        ExprKind::Binary { op: BinOp::Hadamard | BinOp::HadamardDiv, .. } => {
            let mut product = Monomial::constant(1.0);
            factors(e, 1, &mut product, cancelled)?;
            let mut out = vec![Monomial::constant(product.coeff)];
            for (f, k) in &product.factors {
                let part = if *k > 0 && is_region(f) {
                    let base = poly(f, cancelled)?;
                    let mut p = base.clone();
                    for _ in 1..*k {
                        p = times(&p, &base, cancelled)?;
                    }
                    p
                } else {
                    vec![Monomial { coeff: 1.0, factors: vec![(f.clone(), *k)] }]
                };
                out = times(&out, &part, cancelled)?;
            }
            Some(out)
        }
        _ => Some(vec![Monomial { coeff: 1.0, factors: vec![(e.clone(), 1)] }]),
    }
}

/// Multiplies `into` by the factors of the Hadamard product `e` raised to
/// `k` (±1): through `.*`, `./`, negations and numbers; any other node is
/// one factor. Equal factors merge (see [`Monomial::times`]); where they
/// may not, the product is not read (`None`).
fn factors(e: &Expr, k: i32, into: &mut Monomial, cancelled: &mut bool) -> Option<()> {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Hadamard, lhs, rhs, .. } => {
            factors(lhs, k, into, cancelled)?;
            factors(rhs, k, into, cancelled)
        }
        ExprKind::Binary { op: BinOp::HadamardDiv, lhs, rhs, .. } => {
            factors(lhs, k, into, cancelled)?;
            factors(rhs, -k, into, cancelled)
        }
        ExprKind::Neg(a) => {
            into.coeff = -into.coeff;
            factors(a, k, into, cancelled)
        }
        ExprKind::Num(c) if *c != 0.0 => {
            into.coeff *= if k > 0 { *c } else { 1.0 / c };
            Some(())
        }
        // A number times a matrix: the number goes to the coefficient.
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } if matches!(lhs.kind, ExprKind::Num(c) if c != 0.0) =>
        {
            let ExprKind::Num(c) = lhs.kind else { unreachable!("matched above") };
            into.coeff *= if k > 0 { c } else { 1.0 / c };
            factors(rhs, k, into, cancelled)
        }
        // A ones matrix is 1 in every entry; the region keeps its shape (see
        // `collect_region`).
        ExprKind::Ones(_) => Some(()),
        // An integer power is its base, that many times.
        ExprKind::HadamardPower(a, p) if p.fract() == 0.0 && p.abs() <= 8.0 && *p != 0.0 => {
            let single = Monomial { coeff: 1.0, factors: vec![((**a).clone(), k * (*p as i32))] };
            *into = into.times(&single, cancelled)?;
            Some(())
        }
        _ => {
            *into = into.times(&Monomial { coeff: 1.0, factors: vec![(e.clone(), k)] }, cancelled)?;
            Some(())
        }
    }
}

/// The collected form of a region, if something cancelled or collected in
/// it and it is smaller than the region (an expansion that collects
/// nothing, `s .* (1 - s)` to `s - s .^ 2`, is no simpler for a reader).
fn collect_region(e: &Expr, typer: &mut Typer) -> Option<Expr> {
    let size = e.size_within(MAX_REGION_NODES)?;
    let mut cancelled = false;
    let p = poly(e, &mut cancelled)?;
    if !cancelled {
        return None;
    }
    // A region whose factors all cancelled is a constant of its shape:
    // `s .* (1 ./ s)` is a matrix of ones, which a bare `1` would not say.
    let out = match p.iter().all(|m| m.factors.is_empty()) {
        true => constant(typer, e, p.first().map_or(0.0, |m| m.coeff))?,
        false => build(&p),
    };
    (out.size_within(size - 1).is_some() && same_shape(typer, e, &out)).then_some(out)
}

/// The constant `c` in `e`'s shape: a number for a scalar, `c * ones(m, n)`
/// for a matrix whose sizes can be written (`0 * ones(m, n)`, which a
/// gradient prints as `0`).
fn constant(typer: &mut Typer, e: &Expr, c: f64) -> Option<Expr> {
    let shape = typer.scratch(|t| t.infer(e).ok().map(|s| t.resolve(s)))?;
    if shape.is_scalar() {
        return Some(Expr::num(c));
    }
    let ones = Expr::ones(super::tidy::dim_spec(&shape.rows)?, super::tidy::dim_spec(&shape.cols)?);
    Some(if c == 1.0 { ones } else { Expr::product(Expr::num(c), ones) })
}

/// Whether `b` has `a`'s shape: a term whose matrix factors all cancelled
/// is a scalar, and where it stood alone it would no longer be broadcast
/// (`sum(s .* (a ./ s))` is not `sum(a)`).
fn same_shape(typer: &mut Typer, a: &Expr, b: &Expr) -> bool {
    typer.scratch(|t| match (t.infer(a), t.infer(b)) {
        (Ok(x), Ok(y)) => t.resolve(x) == t.resolve(y),
        _ => false,
    })
}

fn build(p: &Poly) -> Expr {
    // Positive coefficients first, so that `s - y` does not print `-y + s`.
    let mut terms: Vec<&Monomial> = p.iter().collect();
    terms.sort_by_key(|m| m.coeff < 0.0);
    let mut out: Option<Expr> = None;
    for m in terms {
        let magnitude = monomial(m.coeff.abs(), &m.factors);
        out = Some(match out {
            None if m.coeff < 0.0 => Expr::negate(magnitude),
            None => magnitude,
            Some(acc) if m.coeff < 0.0 => Expr::minus(acc, magnitude),
            Some(acc) => Expr::plus(acc, magnitude),
        });
    }
    out.unwrap_or_else(|| Expr::num(0.0))
}

fn monomial(c: f64, factors: &[(Expr, i32)]) -> Expr {
    let power = |f: &Expr, k: i32| {
        if k == 1 {
            f.clone()
        } else {
            Expr::synthetic(ExprKind::HadamardPower(Rc::new(f.clone()), f64::from(k)))
        }
    };
    let hadamard = |parts: Vec<Expr>| parts.into_iter().reduce(|a, b| Expr::binary(BinOp::Hadamard, a, b));
    let up = hadamard(factors.iter().filter(|(_, k)| *k > 0).map(|(f, k)| power(f, *k)).collect());
    let down = hadamard(factors.iter().filter(|(_, k)| *k < 0).map(|(f, k)| power(f, -k)).collect());
    let numerator = match (c == 1.0, up) {
        (true, Some(u)) => u,
        (false, Some(u)) => Expr::product(Expr::num(c), u),
        (_, None) => Expr::num(c),
    };
    match down {
        Some(d) => Expr::binary(BinOp::HadamardDiv, numerator, d),
        None => numerator,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syntax::{parse_expr, parse_program};

    fn collected(program: &str, region: &str) -> String {
        let p = parse_program(&format!("{program}; {region}")).unwrap();
        let t = crate::shape::infer(&p).unwrap();
        let mut typer = t.typer().clone();
        collect(&parse_expr(region).unwrap(), &mut typer).to_string()
    }

    #[test]
    fn reciprocals_cancel() {
        let p = "y : 5; z : 5; x : 5";
        // The logistic loss' backward pass, term by term and summed.
        assert_eq!(
            collected(p, "-(y .* (1 ./ sigmoid(z)) .* (sigmoid(z) .* (1 - sigmoid(z)))) + sigmoid(z) .* (1 - sigmoid(z)) .* ((1 - y) .* (1 ./ (1 - sigmoid(z))))"),
            "sigmoid(z) - y"
        );
        assert_eq!(collected(p, "exp(z) .* (y ./ exp(z))"), "y");
        // Where x is 0 the left side is undefined; y is its continuous extension.
        assert_eq!(collected(p, "x .* (y ./ x)"), "y");
        assert_eq!(collected(p, "x .^ 2 ./ x"), "x");
        // All factors cancel: a constant of the region's shape.
        assert_eq!(collected(p, "x ./ x"), "ones(5)");
        assert_eq!(collected("X : 3x4", "ones(3, 4) ./ X - X ./ X .^ 2"), "0 * ones(3, 4)");
        assert_eq!(collected("X : 3x4", "2 * ones(3, 4) ./ X - X ./ X .^ 2"), "1 ./ X");
        // Nothing cancels or collects: the factored form stays.
        assert_eq!(collected(p, "sigmoid(z) .* (1 - sigmoid(z))"), "sigmoid(z) .* (1 - sigmoid(z))");
    }

    #[test]
    fn a_common_left_factor_is_taken_out_to_collect() {
        let p = "X : 4x5; y : 4; w : 5";
        assert_eq!(
            collected(p, "-X^T * (y - sigmoid(X*w) .* y) + X^T * (sigmoid(X*w) - sigmoid(X*w) .* y)"),
            "X^T * (sigmoid(X * w) - y)"
        );
    }

    #[test]
    fn a_common_right_factor_is_taken_out_to_collect() {
        let p = "X : 4x5; y : 4; w : 5";
        assert_eq!(
            collected(p, "-(y - sigmoid(X*w) .* y) * w^T - (sigmoid(X*w) .* y - sigmoid(X*w)) * w^T"),
            "(sigmoid(X * w) - y) * w^T"
        );
        // Different right factors: nothing is taken out.
        let p = "X : 4x5; y : 4; w : 5; v : 5";
        assert_eq!(
            collected(p, "-(y - sigmoid(X*w) .* y) * w^T - (sigmoid(X*w) .* y - sigmoid(X*w)) * v^T"),
            "-(y - sigmoid(X * w) .* y) * w^T - (sigmoid(X * w) .* y - sigmoid(X * w)) * v^T"
        );
    }

    #[test]
    fn a_term_that_loses_its_matrix_factors_keeps_its_shape() {
        // s .* (a ./ s) with a scalar a is a matrix of a's, not a.
        let p = "W : 3x3; a : scalar";
        assert_eq!(collected(p, "sigmoid(W) .* (a ./ sigmoid(W))"), "sigmoid(W) .* (a ./ sigmoid(W))");
    }
}
