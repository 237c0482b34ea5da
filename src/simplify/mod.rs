//! Simplification. For now, one normalisation ([`tidy`]) that gives
//! gradients their textbook form; the e-graph simplifier will replace or
//! reuse it.
//!
//! `tidy` rewrites an expression into a signed sum of products: transposes
//! pushed to the leaves ((AB)ᵀ = BᵀAᵀ, (A+B)ᵀ = Aᵀ+Bᵀ, (Aᵀ)ᵀ = A, f(A)ᵀ = f(Aᵀ)
//! for entrywise f), products flattened with numbers gathered into one
//! coefficient and scalar factors in front, identities dropped from products,
//! the trace of a scalar dropped, and negations moved to the front of a term.
//! Sums are not distributed over products: `(A + B) * x` stays factored.

use std::collections::VecDeque;
use std::rc::Rc;

use crate::error::{Error, ErrorKind, Result};
use crate::shape::{IShape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func};

/// The normal form of `e`, equal to it as a function of its variables.
///
/// `typer` must know the shape of every variable in `e`; it decides which
/// products are scalar multiples.
///
/// ```
/// use matdiff::{shape, simplify, syntax};
/// let p = syntax::parse_program("W1*W2*W3*X").unwrap();
/// let t = shape::infer(&p).unwrap();
/// let e = syntax::parse_expr("W1^T * G * (W3 * X)^T").unwrap();
/// let mut typer = t.typer().clone();
/// let g = typer.infer(&p.expr).map(|s| typer.resolve(s)).unwrap();
/// typer.insert_var(syntax::parse_var("G").unwrap(), &g);
/// assert_eq!(simplify::tidy(&e, &typer).unwrap().to_string(), "W1^T * G * X^T * W3^T");
/// ```
pub fn tidy(e: &Expr, typer: &Typer) -> Result<Expr> {
    let mut tidier = Tidier {
        typer: typer.clone(),
    };
    let (sum, _) = tidier.norm(e, false)?;
    Ok(build_sum(sum))
}

/// c · s1 ⋯ sm · M1 ⋯ Mk: scalar factors commute, matrix factors do not.
#[derive(Clone, Debug)]
struct Term {
    coeff: f64,
    scalars: Vec<Expr>,
    chain: VecDeque<Expr>,
}

impl Term {
    fn number(x: f64) -> Term {
        Term {
            coeff: x,
            scalars: vec![],
            chain: VecDeque::new(),
        }
    }

    fn leaf(e: Expr, scalar: bool) -> Term {
        if scalar {
            Term {
                coeff: 1.0,
                scalars: vec![e],
                chain: VecDeque::new(),
            }
        } else {
            Term {
                coeff: 1.0,
                scalars: vec![],
                chain: VecDeque::from([e]),
            }
        }
    }

    /// The term as one scalar factor (its chain is a 1×1 product).
    fn into_scalar_factor(self) -> Term {
        let mut scalars = self.scalars;
        if let Some(chain) = self.chain.into_iter().reduce(Expr::product) {
            scalars.push(chain);
        }
        Term {
            coeff: self.coeff,
            scalars,
            chain: VecDeque::new(),
        }
    }

    fn times(mut self, other: Term) -> Term {
        self.coeff *= other.coeff;
        self.scalars.extend(other.scalars);
        self.chain = concat(self.chain, other.chain);
        self
    }

    /// (A B)ᵀ = Bᵀ Aᵀ for the transposed halves `a`, `b`: the chains swap,
    /// the scalars commute and keep their order.
    fn times_transposed(a: Term, b: Term) -> Term {
        let mut scalars = a.scalars;
        scalars.extend(b.scalars);
        Term {
            coeff: a.coeff * b.coeff,
            scalars,
            chain: concat(b.chain, a.chain),
        }
    }
}

type Sum = Vec<Term>;

/// `a` then `b`, moving the shorter side: products nest to any depth on
/// either side, and copying the longer one at every level is quadratic.
fn concat(mut a: VecDeque<Expr>, mut b: VecDeque<Expr>) -> VecDeque<Expr> {
    if a.len() >= b.len() {
        a.append(&mut b);
        a
    } else {
        while let Some(x) = a.pop_back() {
            b.push_front(x);
        }
        b
    }
}

struct Tidier {
    typer: Typer,
}

impl Tidier {
    fn shape(&mut self, e: &Expr, kids: &[IShape]) -> Result<IShape> {
        self.typer.rule(e, kids).map_err(|err| {
            Error::new(
                ErrorKind::Internal,
                format!("simplifying `{e}` met a shape conflict: {err}"),
            )
        })
    }

    /// A sum as one factor: its single term, or the whole sum as a leaf.
    fn single(&self, sum: Sum, scalar: bool) -> Term {
        if sum.len() == 1 {
            sum.into_iter().next().expect("one term")
        } else {
            Term::leaf(build_sum(sum), scalar)
        }
    }

    /// The normal form of `e`, or of `eᵀ` when `t`; and the shape of `e`.
    fn norm(&mut self, e: &Expr, t: bool) -> Result<(Sum, IShape)> {
        Ok(match &e.kind {
            ExprKind::Var(_) | ExprKind::Identity => {
                let s = self.shape(e, &[])?;
                let scalar = self.typer.is_scalar(s);
                let leaf = if t && !scalar && e.kind != ExprKind::Identity {
                    Expr::transpose(e.clone())
                } else {
                    e.clone()
                };
                (vec![Term::leaf(leaf, scalar)], s)
            }
            ExprKind::Num(x) => (vec![Term::number(*x)], self.shape(e, &[])?),
            ExprKind::Neg(a) => {
                let (mut sum, s) = self.norm(a, t)?;
                for term in &mut sum {
                    term.coeff = -term.coeff;
                }
                (sum, s)
            }
            ExprKind::Transpose(a) => {
                let (sum, s) = self.norm(a, !t)?;
                (sum, self.shape(e, &[s])?)
            }
            ExprKind::Binary {
                op: op @ (BinOp::Add | BinOp::Sub),
                lhs,
                rhs,
                ..
            } => {
                let (mut a, sa) = self.norm(lhs, t)?;
                let (mut b, sb) = self.norm(rhs, t)?;
                if *op == BinOp::Sub {
                    for term in &mut b {
                        term.coeff = -term.coeff;
                    }
                }
                a.append(&mut b);
                (a, self.shape(e, &[sa, sb])?)
            }
            ExprKind::Binary {
                op: BinOp::Mul,
                lhs,
                rhs,
                ..
            } => {
                let (a, sa) = self.norm(lhs, t)?;
                let (b, sb) = self.norm(rhs, t)?;
                let s = self.shape(e, &[sa, sb])?;
                let (a_scalar, b_scalar) = (self.typer.is_scalar(sa), self.typer.is_scalar(sb));
                let mut a = self.single(a, a_scalar);
                let mut b = self.single(b, b_scalar);
                if self.typer.is_scaling(sa, sb) {
                    if a_scalar {
                        a = a.into_scalar_factor();
                    } else {
                        b = b.into_scalar_factor();
                    }
                }
                let term = if t {
                    Term::times_transposed(a, b)
                } else {
                    a.times(b)
                };
                (vec![term], s)
            }
            ExprKind::Call(Func::Tr, a) => {
                let (sum, sa) = self.norm(a, false)?;
                let s = self.shape(e, &[sa])?;
                if self.typer.is_scalar(sa) {
                    (sum, s)
                } else if sum.len() == 1 {
                    let mut term = sum.into_iter().next().expect("one term");
                    let chain = std::mem::take(&mut term.chain);
                    let inner = chain
                        .into_iter()
                        .reduce(Expr::product)
                        .unwrap_or_else(Expr::identity);
                    term.scalars.push(Expr::call(Func::Tr, inner));
                    (vec![term], s)
                } else {
                    (
                        vec![Term::leaf(Expr::call(Func::Tr, build_sum(sum)), true)],
                        s,
                    )
                }
            }
            ExprKind::Call(f, a) => {
                // Entrywise functions commute with the transpose; the other
                // functions are scalars, unchanged by it (det Aᵀ = det A).
                let inner_t = t && f.is_entrywise();
                let (sum, sa) = self.norm(a, inner_t)?;
                let s = self.shape(e, &[sa])?;
                let scalar = self.typer.is_scalar(s);
                (vec![Term::leaf(Expr::call(*f, build_sum(sum)), scalar)], s)
            }
            ExprKind::Power(a, k) => {
                // (A^k)ᵀ = (Aᵀ)^k, including the inverse.
                let (sum, sa) = self.norm(a, t)?;
                let s = self.shape(e, &[sa])?;
                let scalar = self.typer.is_scalar(s);
                let leaf = Expr::synthetic(ExprKind::Power(Rc::new(build_sum(sum)), *k));
                (vec![Term::leaf(leaf, scalar)], s)
            }
            ExprKind::HadamardPower(a, p) => {
                let (sum, sa) = self.norm(a, t)?;
                let s = self.shape(e, &[sa])?;
                let scalar = self.typer.is_scalar(s);
                let leaf = Expr::synthetic(ExprKind::HadamardPower(Rc::new(build_sum(sum)), *p));
                (vec![Term::leaf(leaf, scalar)], s)
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                // Entrywise operations commute with the transpose, and
                // (A / s)ᵀ = Aᵀ / s.
                let (a, sa) = self.norm(lhs, t)?;
                let (b, sb) = self.norm(rhs, t && *op != BinOp::Div)?;
                let s = self.shape(e, &[sa, sb])?;
                let scalar = self.typer.is_scalar(s);
                let leaf = Expr::binary(*op, build_sum(a), build_sum(b));
                (vec![Term::leaf(leaf, scalar)], s)
            }
            ExprKind::Prod { .. } => {
                let s = self.typer.infer(e).map_err(|err| {
                    Error::new(ErrorKind::Internal, format!("simplifying `{e}`: {err}"))
                })?;
                let scalar = self.typer.is_scalar(s);
                let leaf = if t && !scalar {
                    Expr::transpose(e.clone())
                } else {
                    e.clone()
                };
                (vec![Term::leaf(leaf, scalar)], s)
            }
        })
    }
}

/// A term as an expression: its sign, and `c * s1 * … * M1 * …`.
fn build_term(term: Term) -> (bool, Expr) {
    let negative = term.coeff < 0.0;
    let magnitude = term.coeff.abs();
    let has_matrix = term.chain.iter().any(|m| m.kind != ExprKind::Identity);
    let mut chain = term.chain;
    if has_matrix {
        chain.retain(|m| m.kind != ExprKind::Identity);
    } else {
        chain.truncate(1);
    }
    let mut parts = Vec::new();
    if magnitude != 1.0 || (term.scalars.is_empty() && chain.is_empty()) {
        parts.push(Expr::num(magnitude));
    }
    parts.extend(term.scalars);
    parts.extend(chain);
    (
        negative,
        parts
            .into_iter()
            .reduce(Expr::product)
            .expect("a term has a factor"),
    )
}

/// A sum as `t1 + t2 - t3`; a leading minus goes on the first factor.
fn build_sum(sum: Sum) -> Expr {
    let mut out: Option<Expr> = None;
    for term in sum.into_iter().filter(|t| t.coeff != 0.0) {
        let (negative, e) = build_term(term);
        out = Some(match (out, negative) {
            (None, false) => e,
            (None, true) => negate_first_factor(e),
            (Some(acc), false) => Expr::plus(acc, e),
            (Some(acc), true) => Expr::minus(acc, e),
        });
    }
    out.unwrap_or_else(|| Expr::num(0.0))
}

/// −(A * B) as (−A) * B, which prints `-A * B`.
fn negate_first_factor(e: Expr) -> Expr {
    match e.kind {
        ExprKind::Binary {
            op: BinOp::Mul,
            op_span,
            lhs,
            rhs,
        } => Expr::synthetic(ExprKind::Binary {
            op: BinOp::Mul,
            op_span,
            lhs: Rc::new(negate_first_factor((*lhs).clone())),
            rhs,
        }),
        _ => Expr::negate(e),
    }
}
