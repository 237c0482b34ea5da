//! Second order's one new step: reading a matrix off a linear map.
//!
//! Second derivatives are first derivatives of first-order results (the
//! Hessian-vector product `H[d]` is the gradient of tr(dᵀ ∂L/∂V), see
//! `crate::hessian`), so the calculus proper is reused unchanged. What is
//! new is the last step: a map `e(d)`, linear in a column `d`, written as
//! `M * d`, so that M is the Hessian or the Jacobian in matrix form. Each
//! node contributes by one identity (`a .* d = diag(a) * d`,
//! `(aᵀ d) b = b aᵀ d`, `sum(d) = 1ᵀ d`, …); a node no identity covers is
//! refused by name, and the caller keeps the map form.

use crate::error::{Error, ErrorKind, Result};
use crate::shape::Shape;
use crate::syntax::{BinOp, DimSpec, Expr, ExprKind, Func, VarName};

/// The shape of a subexpression of the map, as the caller's typing infers it.
pub type ShapeOf<'a> = dyn FnMut(&Expr) -> Result<Shape> + 'a;

/// M with `e = M * d` for every column `d`, where `e` is linear in the
/// column variable `d` (a column itself, or 1×1); `None` when `e` does not
/// depend on `d` (the zero map). Not simplified: the caller simplifies M.
///
/// An error (Unsupported) names the subexpression that has no matrix form
/// here, such as `d` inside a matrix that is not a column.
///
/// ```
/// use matdiff::calculus::second::matrix_of;
/// use matdiff::syntax::{parse_program, parse_var};
/// let p = parse_program("X : m x n; a : m; d : n; X^T * (a .* (X * d))").unwrap();
/// let t = matdiff::shape::infer(&p).unwrap();
/// let mut shape = |e: &matdiff::syntax::Expr| {
///     let mut typer = t.typer().clone();
///     typer.infer(e).map(|s| typer.resolve(s))
/// };
/// let m = matrix_of(&p.expr, &parse_var("d").unwrap(), &mut shape).unwrap().unwrap();
/// assert_eq!(m.to_string(), "X^T * (diag(a) * (X * I))");
/// ```
pub fn matrix_of(e: &Expr, d: &VarName, shape: &mut ShapeOf<'_>) -> Result<Option<Expr>> {
    ReadOff { d, shape }.matrix(e)
}

struct ReadOff<'a, 'b> {
    d: &'a VarName,
    shape: &'a mut ShapeOf<'b>,
}

impl ReadOff<'_, '_> {
    fn mentions(&self, e: &Expr) -> bool {
        e.mentions(self.d)
    }

    fn refuse(&self, e: &Expr, why: &str) -> Error {
        Error::new(
            ErrorKind::Unsupported,
            format!(
                "`{e}` is linear in `{}` but is not written as a matrix times `{}`: {why}",
                self.d, self.d
            ),
        )
        .label(e.span, "here")
    }

    fn is_scalar(&mut self, e: &Expr) -> Result<bool> {
        Ok((self.shape)(e)?.is_scalar())
    }

    fn is_column(&mut self, e: &Expr) -> Result<bool> {
        Ok((self.shape)(e)?.cols == crate::shape::Dim::Const(1))
    }

    /// M with e = M d. Recursion follows the tree of a derived map, one
    /// level per operator, so its depth is the map's; guarded all the same.
    fn matrix(&mut self, e: &Expr) -> Result<Option<Expr>> {
        if !self.mentions(e) {
            return Ok(None);
        }
        crate::stack::ensure(|| self.matrix_node(e))
    }

    fn matrix_node(&mut self, e: &Expr) -> Result<Option<Expr>> {
        Ok(Some(match &e.kind {
            ExprKind::Var(v) if **v == *self.d => Expr::identity(),
            ExprKind::Neg(x) => return Ok(self.matrix(x)?.map(Expr::negate)),
            ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs, rhs, .. } => {
                let (l, r) = (self.matrix(lhs)?, self.matrix(rhs)?);
                return Ok(match (l, r) {
                    (Some(l), Some(r)) => Some(Expr::binary(*op, l, r)),
                    (l @ Some(_), None) => l,
                    (None, Some(r)) if *op == BinOp::Sub => Some(Expr::negate(r)),
                    (None, r) => r,
                });
            }
            ExprKind::Transpose(x) => {
                if self.is_scalar(x)? {
                    return self.matrix(x);
                }
                match transpose_inward(x) {
                    Some(t) => return self.matrix(&t),
                    None => return Err(self.refuse(e, "a transposed row")),
                }
            }
            ExprKind::Binary { op: BinOp::Mul, .. } => return self.product(e),
            ExprKind::Binary { op: BinOp::Hadamard, .. } => {
                // The chain a1 .* x .* a2 …: one factor x depends on d, the
                // others make one coefficient a.
                let chain = hadamard_factors(e);
                let at: Vec<usize> = (0..chain.len()).filter(|&i| self.mentions(chain[i])).collect();
                let [k] = at[..] else { return Err(self.refuse(e, "more than one factor depends on it")) };
                let x = chain[k];
                let a = chain
                    .iter()
                    .enumerate()
                    .filter(|(i, _)| *i != k)
                    .map(|(_, f)| (*f).clone())
                    .reduce(|l, r| Expr::binary(BinOp::Hadamard, l, r))
                    .expect("a product of two or more factors");
                let Some(m) = self.matrix(x)? else { return Ok(None) };
                // a .* x with a 1×1 is a x; a column a times a 1×1 x = r d is
                // a r d; two columns: a .* x = diag(a) x.
                if self.is_scalar(&a)? || self.is_scalar(x)? {
                    Expr::product(a, m)
                } else if self.is_column(&a)? {
                    Expr::product(Expr::call(Func::Diag, a), m)
                } else {
                    return Err(self.refuse(e, "an entrywise product with a matrix"));
                }
            }
            ExprKind::Binary { op: op @ (BinOp::HadamardDiv | BinOp::Div), lhs, rhs, .. } => {
                if self.mentions(rhs) {
                    return Err(self.refuse(e, "it divides by it"));
                }
                let Some(m) = self.matrix(lhs)? else { return Ok(None) };
                if self.is_scalar(rhs)? {
                    Expr::binary(BinOp::Div, m, rhs.clone())
                } else if *op == BinOp::HadamardDiv && self.is_scalar(lhs)? {
                    // s ./ b = (1 ./ b) s, with s = r d.
                    Expr::product(Expr::binary(BinOp::HadamardDiv, Expr::num(1.0), rhs.clone()), m)
                } else if self.is_column(rhs)? {
                    let inverse = Expr::binary(BinOp::HadamardDiv, Expr::num(1.0), rhs.clone());
                    Expr::product(Expr::call(Func::Diag, inverse), m)
                } else {
                    return Err(self.refuse(e, "an entrywise quotient by a matrix"));
                }
            }
            ExprKind::Call(Func::Tr, x) if self.is_scalar(x)? => return self.matrix(x),
            ExprKind::Call(Func::Sum | Func::SumCols, x) if self.is_column(x)? => {
                // sum(a .* x) = aᵀ x, and sum(x) = 1ᵀ x: the column sums of M.
                if let ExprKind::Binary { op: BinOp::Hadamard, lhs, rhs, .. } = &x.kind {
                    let (a, y) = match (self.mentions(lhs), self.mentions(rhs)) {
                        (true, false) => (&**rhs, &**lhs),
                        _ => (&**lhs, &**rhs),
                    };
                    if !self.mentions(a) && self.is_column(a)? && !self.is_scalar(a)? && self.is_column(y)? {
                        let Some(m) = self.matrix(y)? else { return Ok(None) };
                        return Ok(Some(Expr::product(Expr::transpose(a.clone()), m)));
                    }
                }
                let Some(m) = self.matrix(x)? else { return Ok(None) };
                Expr::call(Func::SumCols, m)
            }
            // The row sums of a column are the column; of a matrix X, X 1.
            ExprKind::Call(Func::SumRows, x) => {
                if self.is_column(x)? {
                    return self.matrix(x);
                }
                let cols = (self.shape)(x)?.cols;
                let Some(n) = dim_spec(&cols) else {
                    return Err(self.refuse(e, "its columns are not counted"));
                };
                return self.matrix(&Expr::product((**x).clone(), Expr::ones(n, DimSpec::Const(1))));
            }
            ExprKind::Call(Func::Sum, x) => {
                // sum(x) of a row is sum(xᵀ).
                let x = transpose_inward(x).ok_or_else(|| self.refuse(e, "the sum of a matrix"))?;
                if !self.is_column(&x)? {
                    return Err(self.refuse(e, "the sum of a matrix"));
                }
                return self.matrix(&Expr::call(Func::Sum, x));
            }
            _ => return Err(self.refuse(e, "no identity writes this node as a matrix product")),
        }))
    }

    /// A product L * R with one side linear in d, the other constant.
    fn product(&mut self, e: &Expr) -> Result<Option<Expr>> {
        let ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } = &e.kind else {
            unreachable!("called on a product")
        };
        let (l, r) = (&**lhs, &**rhs);
        match (self.mentions(l), self.mentions(r)) {
            (true, true) => Err(self.refuse(e, "both factors depend on it")),
            (false, false) => Ok(None),
            // L x = L M d, and L s = L r d for a 1×1 s = r d.
            (false, true) => Ok(self.matrix(r)?.map(|m| Expr::product(l.clone(), m))),
            (true, false) => {
                // x s = s x; s c = c r d for a 1×1 s = r d and a column c.
                if self.is_scalar(r)? || self.is_scalar(l)? {
                    return Ok(self.matrix(l)?.map(|m| Expr::product(r.clone(), m)));
                }
                // A row x times a column c is 1×1: x c = cᵀ xᵀ.
                if (self.shape)(l)?.rows == crate::shape::Dim::Const(1) {
                    let Some(column) = transpose_inward(l) else {
                        return Err(self.refuse(e, "a row that is not written as a transpose"));
                    };
                    return Ok(self.matrix(&column)?.map(|m| Expr::product(Expr::transpose(r.clone()), m)));
                }
                // A matrix depending on d, times a constant column c.
                match &l.kind {
                    // (P Q) c = P (Q c)
                    ExprKind::Binary { op: BinOp::Mul, lhs: p, rhs: q, .. } => {
                        self.matrix(&Expr::product(p.clone(), Expr::product(q.clone(), r.clone())))
                    }
                    // (A ± B) c = A c ± B c
                    ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs: a, rhs: b, .. } => self
                        .matrix(&Expr::binary(
                            *op,
                            Expr::product(a.clone(), r.clone()),
                            Expr::product(b.clone(), r.clone()),
                        )),
                    ExprKind::Neg(a) => {
                        Ok(self.matrix(&Expr::product(a.clone(), r.clone()))?.map(Expr::negate))
                    }
                    // diag(x) c = diag(c) x
                    ExprKind::Call(Func::Diag, x) if self.is_column(x)? => {
                        let Some(m) = self.matrix(x)? else { return Ok(None) };
                        Ok(Some(Expr::product(Expr::call(Func::Diag, r.clone()), m)))
                    }
                    ExprKind::Transpose(_) => match transpose_inward(l) {
                        Some(t) if t != *l => self.matrix(&Expr::product(t, r.clone())),
                        _ => Err(self.refuse(e, "it stands inside a matrix that is not a column")),
                    },
                    _ => Err(self.refuse(e, "it stands inside a matrix that is not a column")),
                }
            }
        }
    }
}

/// A dimension as the language writes it, where it can.
fn dim_spec(d: &crate::shape::Dim) -> Option<DimSpec> {
    use crate::shape::Dim;
    match d {
        Dim::Const(n) => Some(DimSpec::Const(*n)),
        Dim::Symbol(s) => Some(DimSpec::Symbol(s.clone())),
        Dim::Indexed(s, i) => Some(DimSpec::Indexed(s.clone(), i.clone())),
        Dim::Unknown(_) => None,
    }
}

/// The operands of a chain of `.*`, left to right however it nests.
fn hadamard_factors(e: &Expr) -> Vec<&Expr> {
    let mut out = Vec::new();
    let mut stack = vec![e];
    while let Some(x) = stack.pop() {
        match &x.kind {
            ExprKind::Binary { op: BinOp::Hadamard, lhs, rhs, .. } => {
                stack.push(rhs);
                stack.push(lhs);
            }
            _ => out.push(x),
        }
    }
    out
}

/// `xᵀ` with the transpose taken one level in (`(A B)ᵀ = Bᵀ Aᵀ`,
/// `(a + b)ᵀ = aᵀ + bᵀ`, `f(a)ᵀ = f(aᵀ)` entrywise, `(aᵀ)ᵀ = a`); `None`
/// where it cannot go in (a `diag`, a `sum` along an axis, …).
pub fn transpose_inward(x: &Expr) -> Option<Expr> {
    Some(match &x.kind {
        ExprKind::Transpose(y) => (**y).clone(),
        ExprKind::Num(_) | ExprKind::Identity => x.clone(),
        ExprKind::Var(_) => Expr::transpose(x.clone()),
        ExprKind::Neg(y) => Expr::negate(Expr::transpose((**y).clone())),
        ExprKind::Binary { op: BinOp::Mul, .. } => {
            Expr::product_of(x.factors().into_iter().rev().map(|f| Expr::transpose(f.clone())))?
        }
        ExprKind::Binary { op, lhs, rhs, .. } => match op {
            // (A ⊗ B)ᵀ = Aᵀ ⊗ Bᵀ, as the entrywise operators' transposes.
            BinOp::Add
            | BinOp::Sub
            | BinOp::Hadamard
            | BinOp::HadamardDiv
            | BinOp::Max
            | BinOp::Min
            | BinOp::Kron => {
                Expr::binary(*op, Expr::transpose((**lhs).clone()), Expr::transpose((**rhs).clone()))
            }
            BinOp::Div | BinOp::Power => Expr::binary(*op, Expr::transpose((**lhs).clone()), (**rhs).clone()),
            BinOp::Mul => unreachable!("matched above"),
        },
        ExprKind::HadamardPower(y, p) => {
            Expr::synthetic(ExprKind::HadamardPower(Expr::transpose((**y).clone()).into(), *p))
        }
        ExprKind::Call(f, y) if f.is_entrywise() => Expr::call(*f, Expr::transpose((**y).clone())),
        _ => return None,
    })
}

/// `e` with a `diag(a)` next to a ones matrix absorbed into it, as the
/// read-off leaves it after distributing: `diag(a) * ones(n, c)` is
/// `a * ones(1, c)` (`a` for a column), `ones(r, n) * diag(a)` is
/// `ones(r, 1) * aᵀ` (`aᵀ` for a row); so `diag(s) * ones(n) * sᵀ` reads
/// `s * sᵀ`. `None` where there is none. (A ones matrix with n ≠ 1 rows
/// beside `diag(a)` makes `diag(a)` n×n, so `a` is a vector: the `diag`
/// of a square matrix is a column.)
pub fn absorb_ones(e: &Expr) -> Option<Expr> {
    let mut any = false;
    let out = e.fold(&mut |node: &Expr, kids: crate::syntax::Kids<Expr>| {
        let mut kids = kids.into_iter();
        let node = node.map_children(|_| kids.next().expect("a child").into());
        if !matches!(node.kind, ExprKind::Binary { op: BinOp::Mul, .. }) {
            return node;
        }
        let mut factors: Vec<Expr> = node.factors().into_iter().cloned().collect();
        let one = DimSpec::Const(1);
        let mut changed = false;
        let mut i = 0;
        while i + 1 < factors.len() {
            let pair = (&factors[i].kind, &factors[i + 1].kind);
            let replacement = match pair {
                (ExprKind::Call(Func::Diag, a), ExprKind::Ones(dims)) if dims.0 != one => {
                    let cols = dims.1.clone();
                    Some(if cols == one {
                        vec![(**a).clone()]
                    } else {
                        vec![(**a).clone(), Expr::ones(one.clone(), cols)]
                    })
                }
                (ExprKind::Ones(dims), ExprKind::Call(Func::Diag, a)) if dims.1 != one => {
                    let rows = dims.0.clone();
                    let at = Expr::transpose((**a).clone());
                    Some(if rows == one { vec![at] } else { vec![Expr::ones(rows, one.clone()), at] })
                }
                _ => None,
            };
            match replacement {
                Some(r) => {
                    factors.splice(i..i + 2, r);
                    changed = true;
                    i = i.saturating_sub(1);
                }
                None => i += 1,
            }
        }
        if !changed {
            return node;
        }
        any = true;
        Expr::product_of(factors).expect("a product has factors")
    });
    any.then_some(out)
}
