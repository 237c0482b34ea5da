//! The last touch that makes a normal form read as a textbook: a reciprocal
//! scalar factor divides the rest of its product (`2 * (1 / s) * x` is
//! `2 * x / s`). The normal forms keep `1 / s` as a factor, so that the
//! e-graph can factor it out of sums; only what is printed divides.

use std::rc::Rc;

use crate::syntax::{BinOp, Expr, ExprKind};

/// `e` with every product's reciprocal scalar factors moved into a divisor.
pub(super) fn divide_out(e: &Expr) -> Expr {
    changed(e).unwrap_or_else(|| e.clone())
}

/// [`divide_out`], or `None` where nothing changed (an unchanged subtree
/// keeps its `Rc`, and with it the leaves a `Simplifier` shares).
fn changed(e: &Expr) -> Option<Expr> {
    crate::stack::ensure(|| {
        if let ExprKind::Binary { op: BinOp::Mul, .. } = e.kind {
            let mut any = false;
            let mut numerator: Vec<Rc<Expr>> = vec![];
            let mut denominator: Vec<Rc<Expr>> = vec![];
            let mut negative = false;
            for f in e.factors() {
                match &f.kind {
                    ExprKind::Binary { op: BinOp::Div, lhs, rhs, .. } if is_one(lhs).is_some() => {
                        any = true;
                        negative ^= is_one(lhs) == Some(true);
                        denominator.push(changed(rhs).map(Rc::new).unwrap_or_else(|| rhs.clone()));
                    }
                    _ => numerator
                        .push(Rc::new(changed(f).inspect(|_| any = true).unwrap_or_else(|| f.clone()))),
                }
            }
            if !any {
                return None;
            }
            if negative {
                match numerator.first_mut() {
                    Some(first) => *first = Rc::new(Expr::negate(first.clone())),
                    None => numerator.push(Rc::new(Expr::negate(Expr::num(1.0)))),
                }
            }
            let product = Expr::product_of(numerator);
            return Some(match (product, Expr::product_of(denominator)) {
                (Some(n), Some(d)) => Expr::binary(BinOp::Div, n, d),
                (Some(n), None) => n,
                (None, Some(d)) => Expr::binary(BinOp::Div, Expr::num(1.0), d),
                (None, None) => unreachable!("a product has factors"),
            });
        }
        let mut any = false;
        let rebuilt = e.map_children(|c| match changed(c) {
            Some(new) => {
                any = true;
                Rc::new(new)
            }
            None => c.clone(),
        });
        any.then_some(rebuilt)
    })
}

/// `Some(false)` for 1, `Some(true)` for -1 (`-1` or `-(1)`).
fn is_one(e: &Expr) -> Option<bool> {
    match &e.kind {
        ExprKind::Num(x) if *x == 1.0 => Some(false),
        ExprKind::Num(x) if *x == -1.0 => Some(true),
        ExprKind::Neg(a) if a.kind == ExprKind::Num(1.0) => Some(true),
        _ => None,
    }
}
