//! Expressions → text in the input syntax, with the fewest parentheses that
//! re-parse to the same tree. Products print as `A * B`, transposes as `A^T`.

use std::fmt;

use super::ast::{BinOp, Expr, ExprKind};

/// Binding strength, loosest first; mirrors the PrattParser's table.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Prec {
    Loosest,
    Sum,
    Product,
    Prefix,
    Postfix,
    Atom,
}

impl Prec {
    pub(crate) fn tighter(self) -> Prec {
        match self {
            Prec::Loosest => Prec::Sum,
            Prec::Sum => Prec::Product,
            Prec::Product => Prec::Prefix,
            Prec::Prefix => Prec::Postfix,
            Prec::Postfix | Prec::Atom => Prec::Atom,
        }
    }
}

pub(crate) fn prec(e: &Expr) -> Prec {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Add | BinOp::Sub, .. } => Prec::Sum,
        ExprKind::Binary { .. } => Prec::Product,
        ExprKind::Neg(_) => Prec::Prefix,
        ExprKind::Transpose(_) | ExprKind::Power(..) | ExprKind::HadamardPower(..) => Prec::Postfix,
        ExprKind::Var(_)
        | ExprKind::Identity
        | ExprKind::Num(_)
        | ExprKind::Call(..)
        | ExprKind::Prod(_)
        | ExprKind::Differential(_) => Prec::Atom,
    }
}

/// A literal as the shortest text that parses back to the same f64.
///
/// ```
/// use matdiff::syntax::format_number;
/// assert_eq!(format_number(2.0), "2");
/// assert_eq!(format_number(0.5), "0.5");
/// assert_eq!(format_number(1e-7), "1e-7");
/// ```
pub fn format_number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:?}")
    }
}

impl fmt::Display for Expr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_expr(f, self, Prec::Loosest)
    }
}

fn write_expr(f: &mut fmt::Formatter<'_>, e: &Expr, min: Prec) -> fmt::Result {
    crate::stack::ensure(|| {
        let p = prec(e);
        if p < min {
            f.write_str("(")?;
            write_expr(f, e, Prec::Loosest)?;
            return f.write_str(")");
        }
        match &e.kind {
            ExprKind::Var(v) => write!(f, "{v}"),
            ExprKind::Identity => f.write_str("I"),
            ExprKind::Num(x) => f.write_str(&format_number(*x)),
            ExprKind::Neg(a) => {
                f.write_str("-")?;
                write_expr(f, a, Prec::Postfix)
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                // `A .* B * C` parses as `(A .* B) * C`, but a reader should not
                // have to know that: mixed product-level operators get parentheses.
                let mixed = |x: &Expr| {
                    p == Prec::Product
                        && matches!(&x.kind, ExprKind::Binary { op: o, .. } if prec(x) == Prec::Product && o != op)
                };
                write_expr(f, lhs, if mixed(lhs) { Prec::Atom } else { p })?;
                write!(f, " {} ", op.symbol())?;
                write_expr(f, rhs, p.tighter())
            }
            ExprKind::Transpose(a) => {
                write_expr(f, a, Prec::Postfix)?;
                f.write_str("^T")
            }
            ExprKind::Power(a, k) => {
                write_expr(f, a, Prec::Postfix)?;
                write!(f, "^{k}")
            }
            ExprKind::HadamardPower(a, k) => {
                write_expr(f, a, Prec::Postfix)?;
                let sign = if *k < 0.0 { "-" } else { "" };
                write!(f, " .^ {sign}{}", format_number(k.abs()))
            }
            ExprKind::Call(func, a) => {
                write!(f, "{}(", func.name())?;
                write_expr(f, a, Prec::Loosest)?;
                f.write_str(")")
            }
            ExprKind::Differential(a) if matches!(a.kind, ExprKind::Var(_)) => write!(f, "d{a}"),
            ExprKind::Differential(a) => write!(f, "d({a})"),
            ExprKind::Prod(prod) => {
                let crate::syntax::Prod { body, var, lo, hi } = &**prod;
                f.write_str("prod(")?;
                write_expr(f, body, Prec::Loosest)?;
                write!(f, ", {var}={lo}..{hi})")
            }
        }
    })
}
