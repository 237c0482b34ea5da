//! The plan for a chain of symbolic length: two recurrences read off the
//! formula of ∂L/∂W[j].
//!
//! The formula of a member's gradient is, up to a scalar,
//! `prod(F, i=a..j-1)^T * M * prod(F, i=j+1..b)^T`. Cut M where the numeric
//! planner cuts (after the upstream gradient, or after a computed factor such
//! as a residual): the left part is H[j-1], the right part S[j]^T. Peeling
//! one factor off each range gives the recurrences
//! H[j] = F(j)^T * H[j-1] from H[a-1] = M_left, and
//! S[j-1] = F(j) * S[j] from S[b] = M_right^T, and ∂L/∂W[j] = H[j-1] * S[j]^T;
//! their costs come from the family's declared shapes.

use super::Cost;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Index, VarName};
use std::rc::Rc;

/// One recurrence or formula of the symbolic plan.
#[derive(Clone, Debug)]
pub struct Recurrence {
    /// What it defines, `S[j-1]`, `H[j]`, `d/dW[j]`.
    pub out: String,
    /// The sweep's member it defines (`S[j-1]`, `H[j]`); `None` for the
    /// gradient.
    pub defines: Option<Expr>,
    /// Its formula.
    pub formula: Expr,
    /// Its base case, `S[n]` and `X`, if it is a recurrence.
    pub base: Option<(Expr, Expr)>,
    /// The range of j it runs over, as text: `j = n..1`.
    pub range: String,
    /// The first and the last j it runs over, in order.
    pub bounds: (Index, Index),
    /// The shape of what it defines.
    pub shape: Shape,
    /// Multiply-adds of one application.
    pub madds: Cost,
}

/// The plan of a program whose product has symbolic length: the
/// recurrences of every gradient with respect to a member `W[j]`.
#[derive(Clone, Debug)]
pub struct SymbolicPlan {
    /// The expression planned, as the program wrote it.
    pub expr: crate::syntax::Expr,
    /// One per member gradient.
    pub gradients: Vec<Recurrences>,
}

/// The symbolic plan of one member's gradient.
#[derive(Clone, Debug)]
pub struct Recurrences {
    /// The family member, `W[j]`.
    pub wrt: VarName,
    /// The definitions, in order.
    pub lines: Vec<Recurrence>,
    /// Multiply-adds per j: one step of each sweep and one meet.
    pub per_index: Cost,
    /// Multiply-adds of the gradient at j computed on its own, as text:
    /// the sweeps up to j, then the meet.
    pub separate: String,
    /// `j`, and the range `a..b` the gradients cover.
    pub index: String,
    /// The first index of the range.
    pub lo: Index,
    /// The last index of the range.
    pub hi: Index,
}

/// A factor of a flattened product: an expression, maybe transposed.
type Factor = (Expr, bool);

/// The matrix factors of `e` (through transposes, each with whether it is
/// transposed) onto `out`, its 1×1 factors onto `scalars`; left to right, by
/// a worklist of (node, transposed, is a side whose shape to ask first).
fn flatten(e: &Expr, t: bool, out: &mut Vec<Factor>, scalars: &mut Vec<Expr>, typer: &mut Typer) {
    let mut stack = vec![(e, t, false)];
    while let Some((e, t, side)) = stack.pop() {
        if side && typer.infer(e).is_ok_and(|s| typer.is_scalar(s)) {
            scalars.push(e.clone());
            continue;
        }
        match &e.kind {
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                let (first, second) = if t { (rhs, lhs) } else { (lhs, rhs) };
                stack.push((&**second, t, true));
                stack.push((&**first, t, true));
            }
            ExprKind::Transpose(a) => stack.push((&**a, !t, false)),
            _ => out.push((e.clone(), t)),
        }
    }
}

fn product(factors: &[Factor]) -> Expr {
    let factors = factors.iter().map(|(e, t)| if *t { Expr::transpose(e.clone()) } else { e.clone() });
    Expr::product_of(factors).unwrap_or_else(Expr::identity)
}

/// The range factor `prod(body, i=lo..hi)` as (body, binder, lo, hi).
fn range(e: &Expr) -> Option<(&Expr, &str, &Index, &Index)> {
    match &e.kind {
        ExprKind::Prod(p) => Some((&p.body, &p.var, &p.lo, &p.hi)),
        _ => None,
    }
}

fn refuse(why: &str) -> Error {
    Error::new(ErrorKind::Unsupported, format!("no two-sweep form for this gradient: {why}"))
}

/// The recurrences of the gradient `formula` of the member `wrt` (index
/// symbol `j`, valid for `lo <= j <= hi`), with `upstream` the layer's
/// upstream gradient if any.
///
/// ```
/// let p = matdiff::syntax::parse_program("W[i] : d[i-1] x d[i]; X : d[n] x B; prod(W[i], i=1..n) * X").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let g = &d.gradients[1];
/// let c = &g.differential.conditions[0];
/// let r = matdiff::plan::recurrences(&g.expr, &g.wrt, "j", &c.lo, &c.hi, d.typing.typer(), Some("G")).unwrap();
/// assert_eq!(r.lines[0].formula.to_string(), "W[j]^T * H[j-1]");
/// assert_eq!(r.lines[1].formula.to_string(), "W[j] * S[j]");
/// assert_eq!(r.per_index.to_string(), "3*B*d[j-1]*d[j]");
/// ```
pub fn recurrences(
    formula: &Expr,
    wrt: &VarName,
    j: &str,
    lo: &Index,
    hi: &Index,
    typer: &Typer,
    upstream: Option<&str>,
) -> Result<Recurrences> {
    let mut typer = typer.clone();
    let mut factors = vec![];
    let mut scalars = vec![];
    flatten(formula, false, &mut factors, &mut scalars, &mut typer);
    let jm1 = Index::symbol(j).minus(&Index::constant(1))?;
    let jp1 = Index::symbol(j).plus(&Index::constant(1))?;
    let ends_before = |f: &Factor| range(&f.0).is_some_and(|(_, _, _, h)| *h == jm1);
    let starts_after = |f: &Factor| range(&f.0).is_some_and(|(_, _, l, _)| *l == jp1);
    // In the orientation where prod(.., j-1)^T leads and prod(j+1..)^T ends.
    if factors.len() >= 2 && starts_after(&factors[0]) && ends_before(&factors[factors.len() - 1]) {
        factors = factors.into_iter().rev().map(|(e, t)| (e, !t)).collect();
    }
    let (Some(first), Some(last)) = (factors.first(), factors.last()) else {
        return Err(refuse("the gradient is not a product"));
    };
    if !(ends_before(first) && first.1 && starts_after(last) && last.1) {
        return Err(refuse("it is not prod(.., j-1)^T * ... * prod(j+1, ..)^T"));
    }
    let middle = &factors[1..factors.len() - 1];
    if middle.is_empty() {
        return Err(refuse("nothing lies between the two ranges"));
    }
    // Cut beside the upstream gradient, else beside the last computed factor
    // (a residual), else after the first: after it, unless that leaves the
    // right part empty.
    let is_upstream = |f: &Factor| matches!(&f.0.kind, ExprKind::Var(v) if Some(v.name.as_str()) == upstream);
    let computed = |f: &Factor| !matches!(f.0.kind, ExprKind::Var(_));
    let seed = middle.iter().position(is_upstream).or_else(|| middle.iter().rposition(computed)).unwrap_or(0);
    let cut = if seed + 1 < middle.len() || seed == 0 { seed } else { seed - 1 };
    let (m_left, m_right) = middle.split_at(cut + 1);
    let (body, binder, a, _) = range(&first.0).expect("a range");
    let (_, _, _, b) = range(&last.0).expect("a range");
    let member = |at: &Index| body.subst_index(binder, at);
    let f_j = member(&Index::symbol(j))?;

    let var = |name: &str, at: &Index| {
        Expr::synthetic(ExprKind::Var(Rc::new(VarName { name: name.into(), index: Some(at.clone()) })))
    };
    let h_base = product(m_left);
    let s_base = product(&m_right.iter().rev().map(|(e, t)| (e.clone(), !t)).collect::<Vec<_>>());
    // Shapes: H[j-1] = prod(a..j-1)^T * M_left; S[j] = prod(j+1..b) * M_right^T.
    let shape_of = |typer: &mut Typer, e: &Expr| -> Result<Shape> {
        let s = typer.infer(e)?;
        Ok(typer.resolve(s))
    };
    let h_prev = Expr::product(Expr::transpose(first.0.clone()), h_base.clone());
    let s_this = Expr::product(last.0.clone(), s_base.clone());
    let h_shape = shape_of(&mut typer, &h_prev)?;
    let s_shape = shape_of(&mut typer, &s_this)?;
    let f_shape = shape_of(&mut typer, &f_j)?;
    let bump =
        |s: &Shape| -> Result<Shape> { Ok(Shape::new(s.rows.subst(j, &jp1)?, s.cols.subst(j, &jp1)?)) };
    let h_cost = Cost::product(&[f_shape.cols.clone(), f_shape.rows.clone(), h_shape.cols.clone()]);
    let s_cost = Cost::product(&[f_shape.rows.clone(), f_shape.cols.clone(), s_shape.cols.clone()]);
    let meet_cost = Cost::product(&[h_shape.rows.clone(), h_shape.cols.clone(), s_shape.rows.clone()]);

    let h = |at: &Index| var("H", at);
    let s = |at: &Index| var("S", at);
    let coefficient = Expr::product_of(scalars.iter().cloned());
    let left = match coefficient {
        Some(c) => Expr::product(c, h(&jm1)),
        None => h(&jm1),
    };
    let grad = Expr::product(left, Expr::transpose(s(&Index::symbol(j))));
    let am1 = a.minus(&Index::constant(1))?;
    let range_text = |from: &Index, to: &Index| format!("{j} = {from}..{to}");
    let lines = vec![
        Recurrence {
            out: h(&Index::symbol(j)).to_string(),
            defines: Some(h(&Index::symbol(j))),
            formula: Expr::product(Expr::transpose(f_j.clone()), h(&jm1)),
            base: Some((h(&am1), h_base.clone())),
            range: range_text(a, b),
            bounds: (a.clone(), b.clone()),
            shape: bump(&h_shape)?,
            madds: h_cost.clone(),
        },
        Recurrence {
            out: s(&jm1).to_string(),
            defines: Some(s(&jm1)),
            formula: Expr::product(f_j.clone(), s(&Index::symbol(j))),
            base: Some((s(b), s_base.clone())),
            range: range_text(b, a),
            bounds: (b.clone(), a.clone()),
            shape: Shape::new(f_shape.rows.clone(), s_shape.cols.clone()),
            madds: s_cost.clone(),
        },
        Recurrence {
            out: format!("d/d{wrt}"),
            defines: None,
            formula: grad,
            base: None,
            range: range_text(lo, hi),
            bounds: (lo.clone(), hi.clone()),
            shape: Shape::new(h_shape.rows.clone(), s_shape.rows.clone()),
            madds: meet_cost.clone(),
        },
    ];
    Ok(Recurrences {
        wrt: wrt.clone(),
        lines,
        separate: format!("sum_{{{j}={a}..{b}}} (({b}-{j})*({h_cost}) + ({j}-{a})*({s_cost}) + {meet_cost})"),
        per_index: h_cost + s_cost + meet_cost,
        index: j.to_string(),
        lo: lo.clone(),
        hi: hi.clone(),
    })
}
