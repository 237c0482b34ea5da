//! Matrix differentials: the contribution of every occurrence of a variable,
//! each brought to the form tr(Aᵀ dV) and read off as ∂L/∂V += A.
//!
//! Entry point: [`differentiate`]. Walking from the root to an occurrence,
//! the current statement is always `dL = tr(Aᵀ dE) + …` for the subexpression
//! E on the path; each node rewrites it for its child by one identity
//! (product rule with the other factors frozen and a cyclic rotation, the
//! transpose of a trace, linearity). At the variable itself, A is the
//! contribution. Every rewrite is kept as a [`Step`], so explanations are a
//! rendering of the record, not a second derivation.

use crate::error::{Error, ErrorKind, Result};
use crate::shape::Typing;
use crate::syntax::{BinOp, Expr, ExprKind, Func, Span, VarName};

/// How the loss L relates to the expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Mode {
    /// The expression is the scalar L itself: dL = tr(1ᵀ dL).
    Scalar,
    /// The expression Z is a layer inside some loss, with the upstream
    /// gradient G = ∂L/∂Z: dL = tr(Gᵀ dZ).
    Layer { upstream: VarName },
}

/// The identity applied at one step of the walk to an occurrence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Rule {
    /// dL = tr(Gᵀ dZ) (layer) or dL = tr(1ᵀ dL) (scalar).
    Start,
    /// d(A ± B) = dA ± dB.
    Sum,
    /// d(−A) = −dA.
    Negation,
    /// A scalar s broadcast over a matrix: tr(Aᵀ (ds·𝟙)) = ds · sum(A).
    Broadcast,
    /// Product rule with the other factors frozen, then cyclic rotation:
    /// tr(Aᵀ P dF S) = tr((Pᵀ A Sᵀ)ᵀ dF).
    Product,
    /// A scalar factor: tr(Aᵀ (ds R)) = ds · tr(Aᵀ R).
    Scaling,
    /// tr(Aᵀ dFᵀ) = tr((Aᵀ)ᵀ dF).
    Transpose,
    /// a · tr(dF) = tr((a I)ᵀ dF).
    Trace,
}

impl Rule {
    /// The identity, as a user reads it in an explanation.
    pub fn identity(self) -> &'static str {
        match self {
            Rule::Start => "dL = tr(G^T dZ)",
            Rule::Sum => "d(A + B) = dA + dB",
            Rule::Negation => "d(-A) = -dA",
            Rule::Broadcast => "tr(A^T (ds 1)) = ds sum(A)",
            Rule::Product => "tr(A^T P dF S) = tr((P^T A S^T)^T dF)",
            Rule::Scaling => "tr(A^T ds R) = ds tr(A^T R)",
            Rule::Transpose => "tr(A^T dF^T) = tr((A^T)^T dF)",
            Rule::Trace => "a tr(dF) = tr((a I)^T dF)",
        }
    }
}

/// One equality of the walk: dL = tr(adjointᵀ · d(target)) + (other terms).
#[derive(Clone, Debug)]
pub struct Step<'p> {
    pub rule: Rule,
    pub target: &'p Expr,
    pub adjoint: Expr,
}

/// What one occurrence of the variable contributes to its gradient.
#[derive(Clone, Debug)]
pub struct Contribution<'p> {
    /// Where the occurrence stands in the source.
    pub occurrence: Span,
    pub steps: Vec<Step<'p>>,
    /// The A of tr(Aᵀ dV), before simplification.
    pub adjoint: Expr,
}

/// The raw gradient of one variable: the sum of its contributions.
#[derive(Clone, Debug)]
pub struct Differential<'p> {
    pub wrt: VarName,
    pub contributions: Vec<Contribution<'p>>,
}

impl Differential<'_> {
    /// ∂L/∂V as the plain sum of the contributions (not simplified).
    pub fn sum(&self) -> Expr {
        let mut terms = self.contributions.iter().map(|c| c.adjoint.clone());
        let first = terms
            .next()
            .expect("a variable that occurs has a contribution");
        terms.fold(first, Expr::plus)
    }
}

/// The differential of the typed program's expression with respect to `wrt`.
///
/// ```
/// use matdiff::{calculus, shape, syntax};
/// let p = syntax::parse_program("A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)").unwrap();
/// let t = shape::infer(&p).unwrap();
/// let d = calculus::differentiate(&t, &syntax::parse_var("X").unwrap(), &calculus::Mode::Scalar).unwrap();
/// assert_eq!(d.contributions.len(), 1);
/// assert_eq!(d.sum().to_string(), "A^T * (1 * I) * B^T");
/// ```
pub fn differentiate<'p>(
    typing: &Typing<'p>,
    wrt: &VarName,
    mode: &Mode,
) -> Result<Differential<'p>> {
    let root = &typing.program.expr;
    check_target(root, wrt)?;
    let start = match mode {
        Mode::Scalar => Expr::num(1.0),
        Mode::Layer { upstream } => Expr::synthetic(ExprKind::Var(upstream.clone())),
    };
    let mut walk = Walk {
        typing,
        wrt,
        out: vec![],
    };
    let steps = vec![Step {
        rule: Rule::Start,
        target: root,
        adjoint: start.clone(),
    }];
    walk.visit(root, start, steps)?;
    Ok(Differential {
        wrt: wrt.clone(),
        contributions: walk.out,
    })
}

/// Refuses a variable whose gradient cannot be derived (yet): a family
/// member of symbolic index, or one that may be the same matrix as a member
/// `W[j]` of symbolic index; matdiff does not guess.
pub fn check_target(root: &Expr, wrt: &VarName) -> Result<()> {
    if let Some(i) = &wrt.index {
        if i.as_constant().is_none() {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("gradients with respect to a family member of symbolic index (`{wrt}`) are not supported yet"),
            ));
        }
    }
    let mut clash: Option<&Expr> = None;
    visit_all(root, &mut |e| {
        if let ExprKind::Var(v) = &e.kind {
            let symbolic = v.index.as_ref().is_some_and(|i| i.as_constant().is_none());
            if v.name == wrt.name && wrt.index.is_some() && symbolic && clash.is_none() {
                clash = Some(e);
            }
        }
    });
    if let Some(e) = clash {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("`{e}` may be the same matrix as `{wrt}`: derivatives through families with symbolic indices (and `prod`) are not supported yet"),
        )
        .label(e.span, "symbolic index"));
    }
    Ok(())
}

fn visit_all<'e>(e: &'e Expr, f: &mut impl FnMut(&'e Expr)) {
    f(e);
    for c in e.children() {
        visit_all(c, f);
    }
}

struct Walk<'t, 'p> {
    typing: &'t Typing<'p>,
    wrt: &'t VarName,
    out: Vec<Contribution<'p>>,
}

/// A factor of a flattened product, and whether it multiplies as a scalar.
struct Factor<'p> {
    expr: &'p Expr,
    scalar: bool,
}

impl<'t, 'p> Walk<'t, 'p> {
    fn is_scalar(&self, e: &Expr) -> bool {
        self.typing.node_shape(e).is_some_and(|s| s.is_scalar())
    }

    fn visit(&mut self, e: &'p Expr, adjoint: Expr, steps: Vec<Step<'p>>) -> Result<()> {
        if !e.mentions(self.wrt) {
            return Ok(());
        }
        let next = |mut steps: Vec<Step<'p>>, rule, target, adjoint: &Expr| {
            steps.push(Step {
                rule,
                target,
                adjoint: adjoint.clone(),
            });
            steps
        };
        match &e.kind {
            ExprKind::Var(_) => {
                self.out.push(Contribution {
                    occurrence: e.span,
                    steps,
                    adjoint,
                });
                Ok(())
            }
            ExprKind::Neg(a) => {
                let adj = Expr::negate(adjoint);
                let steps = next(steps, Rule::Negation, a, &adj);
                self.visit(a, adj, steps)
            }
            ExprKind::Transpose(a) => {
                let adj = Expr::transpose(adjoint);
                let steps = next(steps, Rule::Transpose, a, &adj);
                self.visit(a, adj, steps)
            }
            ExprKind::Call(Func::Tr, a) => {
                let adj = Expr::product(adjoint, Expr::identity());
                let steps = next(steps, Rule::Trace, a, &adj);
                self.visit(a, adj, steps)
            }
            ExprKind::Binary {
                op: BinOp::Add | BinOp::Sub,
                ..
            } => {
                let mut terms = vec![];
                flatten_sum(e, false, &mut terms);
                let whole_scalar = self.is_scalar(e);
                for (negative, term) in terms {
                    if !term.mentions(self.wrt) {
                        continue;
                    }
                    let signed = if negative {
                        Expr::negate(adjoint.clone())
                    } else {
                        adjoint.clone()
                    };
                    let (rule, adj) = if self.is_scalar(term) && !whole_scalar {
                        (Rule::Broadcast, self.broadcast_adjoint(e, term, signed)?)
                    } else {
                        (Rule::Sum, signed)
                    };
                    let steps = next(steps.clone(), rule, term, &adj);
                    self.visit(term, adj, steps)?;
                }
                Ok(())
            }
            ExprKind::Binary { op: BinOp::Mul, .. } => {
                let mut factors = vec![];
                self.flatten_product(e, &mut factors);
                for (i, f) in factors.iter().enumerate() {
                    if !f.expr.mentions(self.wrt) {
                        continue;
                    }
                    let (rule, adj) = if f.scalar {
                        (Rule::Scaling, scaling_adjoint(&factors, i, &adjoint))
                    } else {
                        (Rule::Product, product_adjoint(&factors, i, &adjoint))
                    };
                    let steps = next(steps.clone(), rule, f.expr, &adj);
                    self.visit(f.expr, adj, steps)?;
                }
                Ok(())
            }
            _ => Err(refusal(e)),
        }
    }

    /// sum(A) for a scalar broadcast over the sum `whole`. When A is c·I
    /// (from a trace), sum(c·I) = n·c: the size n must be a number, since the
    /// language has no way to write a symbolic dimension.
    fn broadcast_adjoint(&self, whole: &Expr, term: &Expr, adjoint: Expr) -> Result<Expr> {
        let (negative, core) = match &adjoint.kind {
            ExprKind::Neg(inner) => (true, &**inner),
            _ => (false, &adjoint),
        };
        let ExprKind::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
            ..
        } = &core.kind
        else {
            return Ok(Expr::call(Func::Sum, adjoint));
        };
        if rhs.kind != ExprKind::Identity {
            return Ok(Expr::call(Func::Sum, adjoint));
        }
        let n = match self.typing.node_shape(whole).map(|s| s.rows) {
            Some(crate::shape::Dim::Const(n)) => n,
            other => {
                let n = other.map(|d| d.to_string()).unwrap_or_default();
                return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("this gradient is {n} times a scalar, and a symbolic dimension cannot be written in a formula; declare a number for `{n}`"),
                )
                .label(term.span, "a scalar broadcast inside a trace"));
            }
        };
        let scaled = Expr::product(Expr::num(n as f64), (**lhs).clone());
        Ok(if negative {
            Expr::negate(scaled)
        } else {
            scaled
        })
    }

    /// The factors of a product, flattened through nested products; a 1×1
    /// side of a scalar multiple is one scalar factor.
    fn flatten_product(&self, e: &'p Expr, out: &mut Vec<Factor<'p>>) {
        if let ExprKind::Binary {
            op: BinOp::Mul,
            lhs,
            rhs,
            ..
        } = &e.kind
        {
            let (a, b) = (self.typing.node_shape(lhs), self.typing.node_shape(rhs));
            let (a, b) = (a.expect("typed node"), b.expect("typed node"));
            let scaling = a.scales(&b);
            for (side, shape) in [(&**lhs, &a), (&**rhs, &b)] {
                if scaling && shape.is_scalar() {
                    out.push(Factor {
                        expr: side,
                        scalar: true,
                    });
                } else {
                    self.flatten_product(side, out);
                }
            }
        } else {
            out.push(Factor {
                expr: e,
                scalar: false,
            });
        }
    }
}

/// Splits `a + b - (c - d)` into signed terms, through negations.
fn flatten_sum<'p>(e: &'p Expr, negative: bool, out: &mut Vec<(bool, &'p Expr)>) {
    match &e.kind {
        ExprKind::Binary {
            op: op @ (BinOp::Add | BinOp::Sub),
            lhs,
            rhs,
            ..
        } => {
            flatten_sum(lhs, negative, out);
            flatten_sum(rhs, negative ^ (*op == BinOp::Sub), out);
        }
        _ => out.push((negative, e)),
    }
}

fn fold_product(parts: impl IntoIterator<Item = Expr>) -> Option<Expr> {
    parts.into_iter().reduce(Expr::product)
}

/// For matrix factor i of s·M1⋯Mk: s · (M1⋯M(i−1))ᵀ · A · (M(i+1)⋯Mk)ᵀ.
fn product_adjoint(factors: &[Factor], i: usize, adjoint: &Expr) -> Expr {
    let scalars = factors
        .iter()
        .enumerate()
        .filter(|(j, f)| f.scalar && *j != i)
        .map(|(_, f)| f.expr.clone());
    let matrices: Vec<(usize, &Factor)> = factors
        .iter()
        .enumerate()
        .filter(|(_, f)| !f.scalar)
        .collect();
    let before = fold_product(
        matrices
            .iter()
            .filter(|(j, _)| *j < i)
            .map(|(_, f)| f.expr.clone()),
    );
    let after = fold_product(
        matrices
            .iter()
            .filter(|(j, _)| *j > i)
            .map(|(_, f)| f.expr.clone()),
    );
    let parts = scalars
        .chain(before.map(Expr::transpose))
        .chain(std::iter::once(adjoint.clone()))
        .chain(after.map(Expr::transpose));
    fold_product(parts).expect("the adjoint is a part")
}

/// For scalar factor i of a product R·s: tr(Aᵀ R).
fn scaling_adjoint(factors: &[Factor], i: usize, adjoint: &Expr) -> Expr {
    let scalars = factors
        .iter()
        .enumerate()
        .filter(|(j, f)| f.scalar && *j != i);
    let matrices = factors.iter().enumerate().filter(|(_, f)| !f.scalar);
    let rest = fold_product(scalars.chain(matrices).map(|(_, f)| f.expr.clone()))
        .expect("a product has another factor");
    Expr::call(
        Func::Tr,
        Expr::product(Expr::transpose(adjoint.clone()), rest),
    )
}

/// Names the construct whose derivative is not derived (yet).
fn refusal(e: &Expr) -> Error {
    let what = match &e.kind {
        ExprKind::Call(f, _) => format!("{}(...)", f.name()),
        ExprKind::Power(_, -1) => "the inverse (A^-1)".to_string(),
        ExprKind::Power(..) => "a power (A^k)".to_string(),
        ExprKind::HadamardPower(..) => "an entrywise power (.^)".to_string(),
        ExprKind::Binary {
            op: BinOp::Hadamard,
            ..
        } => "the Hadamard product (.*)".to_string(),
        ExprKind::Binary {
            op: BinOp::HadamardDiv,
            ..
        } => "the entrywise division (./)".to_string(),
        ExprKind::Binary { op: BinOp::Div, .. } => "a division by a scalar (/)".to_string(),
        ExprKind::Prod { .. } => "prod(...)".to_string(),
        _ => format!("`{e}`"),
    };
    let name = match &e.kind {
        ExprKind::Call(f, _) => f.name().to_string(),
        _ => what.clone(),
    };
    Error::new(
        ErrorKind::Unsupported,
        format!("derivative of {name} is not supported yet"),
    )
    .label(e.span, format!("the variable occurs inside {what}"))
}
