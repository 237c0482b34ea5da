//! Mutations of a gradient formula: the slips of a hand derivation. Each
//! mutant changes the formula in one place (or the whole of it), and says
//! what it did; whether it still has the variable's shape, and whether it
//! still has the same value, is for the caller (and the judge) to find out.

use std::rc::Rc;

use matdiff::syntax::{BinOp, Expr, ExprKind, Func};

/// The kinds of mutation, for counting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Kind {
    /// `E^T` for a subterm E (or the whole).
    AddTranspose,
    /// `E^T` → `E`.
    DropTranspose,
    /// `2 * g`.
    Double,
    /// `-g`; `-E` → `E`; `A + B` ↔ `A - B`; `A ± B` → `-A ± B`.
    FlipSign,
    /// `A * B` ↔ `A .* B`.
    SwapProduct,
    /// `A * B` → `A` or `B` (also `.*`, and a divisor dropped).
    DropFactor,
    /// `A ± B` → `A` or `±B`.
    DropTerm,
    /// `f(E)` → `f(sqrt(E .^ 2))`, `E .^ p` → `sqrt(E .^ 2) .^ p`, and an
    /// operand of `.*`, `./` or `/` likewise.
    Abs,
    /// `A * B` → `B * A`.
    SwapOperands,
    /// `E^-k` → `(E^-k)^T`.
    InverseTranspose,
    /// `0`.
    Zero,
    /// `1.0001 * g`.
    Scale,
    /// The slips of piecewise functions: `step(E)` ↔ `sign(E)`,
    /// `max(A, B)` ↔ `min(A, B)`.
    Piecewise,
    /// Not a mutation: a wrong claim written by hand.
    Claim,
}

impl Kind {
    /// The mutations.
    pub const ALL: [Kind; 13] = [
        Kind::AddTranspose,
        Kind::DropTranspose,
        Kind::Double,
        Kind::FlipSign,
        Kind::SwapProduct,
        Kind::DropFactor,
        Kind::DropTerm,
        Kind::Abs,
        Kind::SwapOperands,
        Kind::InverseTranspose,
        Kind::Zero,
        Kind::Scale,
        Kind::Piecewise,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Kind::AddTranspose => "add ^T",
            Kind::DropTranspose => "drop ^T",
            Kind::Double => "double",
            Kind::FlipSign => "flip sign",
            Kind::SwapProduct => "* <-> .*",
            Kind::DropFactor => "drop factor",
            Kind::DropTerm => "drop term",
            Kind::Abs => "abs argument",
            Kind::SwapOperands => "swap operands",
            Kind::InverseTranspose => "X^-1 -> X^-T",
            Kind::Zero => "zero",
            Kind::Scale => "scale 1+1e-4",
            Kind::Piecewise => "step <-> sign, max <-> min",
            Kind::Claim => "claim",
        }
    }
}

/// One mutant: what was done, where, and the result.
#[derive(Clone, Debug)]
pub struct Mutant {
    pub kind: Kind,
    /// The subterm that was changed (the whole formula for whole mutations).
    pub at: String,
    pub expr: Expr,
}

/// Every mutant of `g`, each printed differently from `g` and from the
/// others (the first of two that print alike is kept).
pub fn mutants(g: &Expr) -> Vec<Mutant> {
    let mut out = vec![];
    let whole = |kind, expr| Mutant { kind, at: "the whole".to_string(), expr };
    match &g.kind {
        ExprKind::Transpose(a) => out.push(whole(Kind::DropTranspose, Expr::clone(a))),
        ExprKind::Num(_) => {}
        _ => out.push(whole(Kind::AddTranspose, Expr::transpose(g.clone()))),
    }
    out.push(whole(Kind::Double, Expr::product(Expr::num(2.0), g.clone())));
    match &g.kind {
        ExprKind::Neg(a) => out.push(whole(Kind::FlipSign, Expr::clone(a))),
        _ => out.push(whole(Kind::FlipSign, Expr::negate(g.clone()))),
    }
    out.push(whole(Kind::Zero, Expr::num(0.0)));
    out.push(whole(Kind::Scale, Expr::product(Expr::num(1.0001), g.clone())));
    // Inside: one node changed, anywhere (the root too, for the local kinds).
    for (kind, at, expr) in inside(g, true) {
        out.push(Mutant { kind, at, expr });
    }
    let original = g.to_string();
    let mut seen = std::collections::HashSet::new();
    out.retain(|m| {
        let text = m.expr.to_string();
        text != original && seen.insert(text)
    });
    out
}

/// Mutants of `e` that change one node of it: the node's own mutations,
/// then those of each child put back in place. `transposable`: adding a
/// transpose here is not the same as dropping the parent's.
fn inside(e: &Expr, transposable: bool) -> Vec<(Kind, String, Expr)> {
    let mut out: Vec<(Kind, String, Expr)> =
        local(e, transposable).into_iter().map(|(k, m)| (k, e.to_string(), m)).collect();
    let under_transpose = matches!(e.kind, ExprKind::Transpose(_));
    for (i, child) in e.children().enumerate() {
        for (kind, at, m) in inside(child, !under_transpose) {
            out.push((kind, at, with_child(e, i, m)));
        }
    }
    out
}

/// The mutations of one node.
fn local(e: &Expr, transposable: bool) -> Vec<(Kind, Expr)> {
    let mut out = vec![];
    let abs =
        |a: &Expr| Expr::call(Func::Sqrt, Expr::synthetic(ExprKind::HadamardPower(Rc::new(a.clone()), 2.0)));
    match &e.kind {
        ExprKind::Num(_) | ExprKind::Identity => return out,
        ExprKind::Transpose(a) => out.push((Kind::DropTranspose, Expr::clone(a))),
        // An inverse transposed is X^-1 -> X^-T, below.
        ExprKind::Power(_, k) if *k < 0 => {}
        _ if transposable => out.push((Kind::AddTranspose, Expr::transpose(e.clone()))),
        _ => {}
    }
    match &e.kind {
        ExprKind::Neg(a) => out.push((Kind::FlipSign, Expr::clone(a))),
        ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs, rhs, .. } => {
            let flipped = if *op == BinOp::Add { BinOp::Sub } else { BinOp::Add };
            out.push((Kind::FlipSign, Expr::binary(flipped, lhs.clone(), rhs.clone())));
            out.push((Kind::FlipSign, Expr::binary(*op, Expr::negate(lhs.clone()), rhs.clone())));
            out.push((Kind::DropTerm, Expr::clone(lhs)));
            let rest = if *op == BinOp::Add { Expr::clone(rhs) } else { Expr::negate(rhs.clone()) };
            out.push((Kind::DropTerm, rest));
        }
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
            out.push((Kind::SwapProduct, Expr::binary(BinOp::Hadamard, lhs.clone(), rhs.clone())));
            out.push((Kind::DropFactor, Expr::clone(lhs)));
            out.push((Kind::DropFactor, Expr::clone(rhs)));
            out.push((Kind::SwapOperands, Expr::binary(BinOp::Mul, rhs.clone(), lhs.clone())));
        }
        ExprKind::Binary { op: BinOp::Hadamard, lhs, rhs, .. } => {
            out.push((Kind::SwapProduct, Expr::binary(BinOp::Mul, lhs.clone(), rhs.clone())));
            out.push((Kind::DropFactor, Expr::clone(lhs)));
            out.push((Kind::DropFactor, Expr::clone(rhs)));
            out.push((Kind::Abs, Expr::binary(BinOp::Hadamard, abs(lhs), rhs.clone())));
            out.push((Kind::Abs, Expr::binary(BinOp::Hadamard, lhs.clone(), abs(rhs))));
        }
        ExprKind::Binary { op: op @ (BinOp::HadamardDiv | BinOp::Div), lhs, rhs, .. } => {
            out.push((Kind::DropFactor, Expr::clone(lhs)));
            out.push((Kind::Abs, Expr::binary(*op, abs(lhs), rhs.clone())));
            out.push((Kind::Abs, Expr::binary(*op, lhs.clone(), abs(rhs))));
        }
        ExprKind::Power(_, k) if *k < 0 && transposable => {
            out.push((Kind::InverseTranspose, Expr::transpose(e.clone())))
        }
        ExprKind::HadamardPower(a, p) => {
            out.push((Kind::Abs, Expr::synthetic(ExprKind::HadamardPower(Rc::new(abs(a)), *p))));
        }
        ExprKind::Call(f, a) => out.push((Kind::Abs, Expr::call(*f, abs(a)))),
        _ => {}
    }
    match &e.kind {
        ExprKind::Call(Func::Step, a) => out.push((Kind::Piecewise, Expr::call(Func::Sign, a.clone()))),
        ExprKind::Call(Func::Sign, a) => out.push((Kind::Piecewise, Expr::call(Func::Step, a.clone()))),
        ExprKind::Binary { op: op @ (BinOp::Max | BinOp::Min), lhs, rhs, .. } => {
            let other = if *op == BinOp::Max { BinOp::Min } else { BinOp::Max };
            out.push((Kind::Piecewise, Expr::binary(other, lhs.clone(), rhs.clone())));
        }
        _ => {}
    }
    out
}

/// `e` with its `i`-th child (in [`Expr::children`] order) replaced.
fn with_child(e: &Expr, i: usize, new: Expr) -> Expr {
    let new = Rc::new(new);
    let kind = match &e.kind {
        ExprKind::Neg(_) => ExprKind::Neg(new),
        ExprKind::Transpose(_) => ExprKind::Transpose(new),
        ExprKind::Power(_, k) => ExprKind::Power(new, *k),
        ExprKind::HadamardPower(_, p) => ExprKind::HadamardPower(new, *p),
        ExprKind::Call(f, _) => ExprKind::Call(*f, new),
        ExprKind::Binary { op, op_span, lhs, rhs } => {
            let (lhs, rhs) = if i == 0 { (new, rhs.clone()) } else { (lhs.clone(), new) };
            ExprKind::Binary { op: *op, op_span: *op_span, lhs, rhs }
        }
        ExprKind::Prod(p) => ExprKind::Prod(Rc::new(matdiff::syntax::Prod {
            body: new,
            var: p.var.clone(),
            lo: p.lo.clone(),
            hi: p.hi.clone(),
        })),
        ExprKind::Var(_) | ExprKind::Identity | ExprKind::Num(_) | ExprKind::Ones(_) => {
            unreachable!("a leaf has no child")
        }
    };
    Expr::new(kind, e.span)
}
