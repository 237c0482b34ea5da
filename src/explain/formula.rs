//! The formulas of an explanation: expressions in which one subexpression
//! may stand under a differential, `d(F)`.
//!
//! A differential is not a value, so the core tree has no node for it: a
//! formula is an expression with a hole (a variable no input can name)
//! and the expression the hole stands for, printed `dX` or `d(F)` in text
//! and `\mathrm{d}X` in LaTeX. The hole is an atom to the printers, as the
//! differential is, so the brackets around it come out the same.

use crate::syntax::{prec, to_latex, Expr, ExprKind, Prec};

/// The hole's name: the grammar's identifiers are ASCII, so no program
/// names it, and it prints as itself in text and in LaTeX.
const HOLE: &str = "∂";

/// The right-hand side of an explanation's line.
///
/// ```
/// use matdiff::explain::Formula;
/// use matdiff::syntax::{parse_expr, Expr, Func};
/// let x = parse_expr("W * X").unwrap();
/// let f = Formula::with_differential(&x, |d| Expr::call(Func::Tr, Expr::product(Expr::var("G"), d)));
/// assert_eq!(f.to_string(), "tr(G * d(W * X))");
/// assert_eq!(f.latex(), r"\operatorname{tr}\left(G \mathrm{d}\left(W X\right)\right)");
/// ```
#[derive(Clone, Debug)]
pub struct Formula {
    /// The formula, with [`HOLE`] where the differential stands.
    expr: Expr,
    /// What stands under the differential, if anything does.
    differential: Option<Expr>,
}

impl Formula {
    /// The formula `build(d(of))`: `build` places the differential, given
    /// as an atom, in the formula.
    pub fn with_differential(of: &Expr, build: impl FnOnce(Expr) -> Expr) -> Formula {
        Formula { expr: build(Expr::var(HOLE)), differential: Some(of.clone()) }
    }

    /// The expression under the differential, if there is one.
    pub fn differential(&self) -> Option<&Expr> {
        self.differential.as_ref()
    }

    /// The formula as LaTeX, as [`to_latex`] writes expressions.
    pub fn latex(&self) -> String {
        let text = to_latex(&self.expr);
        match &self.differential {
            None => text,
            Some(of) => {
                let inner = if prec(of) == Prec::Atom {
                    to_latex(of)
                } else {
                    format!("\\left({}\\right)", to_latex(of))
                };
                text.replace(HOLE, &format!("\\mathrm{{d}}{inner}"))
            }
        }
    }

    /// Number of nodes as printed, if at most `limit` (see
    /// [`Expr::size_within`]).
    pub fn size_within(&self, limit: usize) -> Option<usize> {
        let outer = self.expr.size_within(limit)?;
        match &self.differential {
            None => Some(outer),
            Some(of) => Some(outer + of.size_within(limit - outer)?),
        }
    }
}

/// A formula without a differential.
impl From<&Expr> for Formula {
    fn from(e: &Expr) -> Formula {
        Formula { expr: e.clone(), differential: None }
    }
}

/// The formula as text: `tr(G^T * dW)`, `d(W * X)`.
impl std::fmt::Display for Formula {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = self.expr.to_string();
        match &self.differential {
            None => f.write_str(&text),
            Some(of) => {
                let d = match of.kind {
                    ExprKind::Var(_) => format!("d{of}"),
                    _ => format!("d({of})"),
                };
                f.write_str(&text.replace(HOLE, &d))
            }
        }
    }
}
