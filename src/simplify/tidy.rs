//! `tidy` rewrites an expression into a signed sum of products: transposes
//! pushed to the leaves ((AB)ᵀ = BᵀAᵀ, (A+B)ᵀ = Aᵀ+Bᵀ, (Aᵀ)ᵀ = A, f(A)ᵀ = f(Aᵀ)
//! for entrywise f), products flattened with numbers gathered into one
//! coefficient and scalar factors in front (a division by a number folded
//! into it where the quotient is exact; `./` by a scalar is `/`),
//! identities dropped from products,
//! the trace of a scalar dropped, and negations moved to the front of a term.
//! Sums are not distributed over products: `(A + B) * x` stays factored.
//! It is the first normal form, which the e-graph ([`super`]) starts from.

use std::collections::VecDeque;
use std::rc::Rc;

use smallvec::{smallvec, SmallVec};

use rustc_hash::FxHashMap;

use super::Simplifier;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{IShape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};

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
    Simplifier::default().tidy(e, &mut typer.clone())
}

/// [`tidy()`] with `leaves` shared with earlier formulas
/// ([`Simplifier::tidy`]); `typer` keeps the typing of `e`'s nodes.
pub(super) fn tidy_sharing(e: &Expr, typer: &mut Typer, leaves: &mut Leaves) -> Result<Expr> {
    let mut tidier = Tidier { typer, leaves };
    let (sum, _) = tidier.norm(&Rc::new(e.clone()), false)?;
    Ok(build_sum(sum))
}

/// What [`tidy_sharing`] makes of a product of matrix variables under
/// transposes, in any bracketing (every gradient of a matrix chain,
/// `W1^T * G * (W3 * X)^T`), found without building its terms: the
/// variables in order, transposes at the leaves, as one left-bracketed
/// product. `None` for anything else, and where tidy's rules could see
/// more than the order: a 1×1 variable (a scalar factor), two neighbours
/// whose dimensions the typing does not already equate (a product of a
/// 1×1 part may be a scalar multiple), or two neighbours alike (`X * X`,
/// the e-graph's `X^2`). The unit test `plain_chains_are_what_tidy_makes_of_them`
/// holds the two equal.
pub(super) fn plain_chain(e: &Expr, typer: &Typer, leaves: &mut Leaves) -> Option<Expr> {
    let root = Rc::new(e.clone());
    let mut vars: Vec<(&Rc<Expr>, &VarName, bool)> = Vec::new();
    // Explicit stack, right child first out when transposed: no recursion.
    let mut todo: Vec<(&Rc<Expr>, bool)> = vec![(&root, false)];
    while let Some((node, t)) = todo.pop() {
        match &node.kind {
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                let (first, second) = if t { (rhs, lhs) } else { (lhs, rhs) };
                todo.push((second, t));
                todo.push((first, t));
            }
            ExprKind::Transpose(a) => todo.push((a, !t)),
            ExprKind::Var(v) => vars.push((node, v, t)),
            _ => return None,
        }
    }
    if vars.len() < 2 {
        return None;
    }
    typer.chain_shape(vars.iter().map(|&(node, _, t)| (&**node, t)))?;
    let mut factors = Vec::with_capacity(vars.len());
    let mut last = None;
    for (node, v, t) in vars {
        let leaf = leaves.get(node, v, t);
        let this = (matches!(leaf.kind, ExprKind::Transpose(_)), v);
        if last == Some(this) {
            return None;
        }
        last = Some(this);
        factors.push(leaf);
    }
    Expr::product_of(factors)
}

/// The variables of the formulas tidied so far, plain and transposed, as
/// shared nodes.
#[derive(Default)]
pub(super) struct Leaves {
    /// The leaves by the node they were asked for, and whether transposed: a
    /// chain's gradients share the program's variable nodes, and an address
    /// hashes in one step where a name takes a pass over its bytes. The node
    /// is held, so its address never becomes another's.
    by_node: FxHashMap<(*const Expr, bool), Held>,
    plain: FxHashMap<VarName, Rc<Expr>>,
    transposed: FxHashMap<VarName, Rc<Expr>>,
    /// Variables known to be symmetric (declared `spd`): their transpose is
    /// themselves.
    pub(super) symmetric: Symmetric,
    /// Variables whose every column sums to 1 (declared `onehot`).
    pub(super) stochastic: rustc_hash::FxHashSet<String>,
}

/// A node asked for, held, and its leaf.
type Held = (Rc<Expr>, Rc<Expr>);

/// The variables declared symmetric, by name, and whether the name is a
/// family's (`W[i] : n x n spd` makes every member symmetric; `W` is not a
/// member of `W[i]`).
#[derive(Clone, Debug, Default)]
pub struct Symmetric(rustc_hash::FxHashSet<(String, bool)>);

impl Symmetric {
    /// The variables a program declares `spd`.
    pub fn declared_in(program: &crate::syntax::Program) -> Symmetric {
        Symmetric(
            program
                .declarations
                .iter()
                .filter(|d| d.domain == Some(crate::syntax::DomainSpec::Spd))
                .map(|d| (d.name.clone(), d.binder.is_some()))
                .collect(),
        )
    }

    /// The variables named, each with whether the name is a family's.
    pub(super) fn from_names(names: impl IntoIterator<Item = (String, bool)>) -> Symmetric {
        Symmetric(names.into_iter().collect())
    }

    /// Whether `v` is its own transpose.
    pub fn contains(&self, v: &VarName) -> bool {
        !self.0.is_empty() && self.0.contains(&(v.name.clone(), v.index.is_some()))
    }
}

impl Leaves {
    /// `e` (the variable `v`), or its transpose.
    fn get(&mut self, e: &Rc<Expr>, v: &VarName, transposed: bool) -> Rc<Expr> {
        let key = (Rc::as_ptr(e), transposed);
        if let Some((_, leaf)) = self.by_node.get(&key) {
            return leaf.clone();
        }
        let leaf = self.by_name(e, v, transposed);
        self.by_node.insert(key, (e.clone(), leaf.clone()));
        leaf
    }

    /// [`Leaves::get`] by the variable's name.
    fn by_name(&mut self, e: &Rc<Expr>, v: &VarName, transposed: bool) -> Rc<Expr> {
        let transposed = transposed && !self.symmetric.contains(v);
        let map = if transposed { &mut self.transposed } else { &mut self.plain };
        if let Some(leaf) = map.get(v) {
            return leaf.clone();
        }
        let leaf = if transposed { Rc::new(Expr::transpose(e.clone())) } else { e.clone() };
        map.insert(v.clone(), leaf.clone());
        leaf
    }
}

/// c · s1 ⋯ sm · M1 ⋯ Mk: scalar factors commute, matrix factors do not.
#[derive(Clone, Debug)]
struct Monomial {
    coeff: f64,
    scalars: Vec<Rc<Expr>>,
    chain: VecDeque<Rc<Expr>>,
    /// A scalar broadcast over the matrix the sum it stands in adds up to.
    broadcast: bool,
    /// A cancelled term (coefficient 0) kept, printed `0 * M`, so that its
    /// sum keeps its shape ([`collect_like_terms`]).
    holds_shape: bool,
}

impl Monomial {
    fn number(x: f64) -> Monomial {
        Monomial { coeff: x, scalars: vec![], chain: VecDeque::new(), broadcast: false, holds_shape: false }
    }

    fn leaf(e: impl Into<Rc<Expr>>, scalar: bool) -> Monomial {
        let e = e.into();
        if scalar {
            Monomial {
                coeff: 1.0,
                scalars: vec![e],
                chain: VecDeque::new(),
                broadcast: false,
                holds_shape: false,
            }
        } else {
            Monomial {
                coeff: 1.0,
                scalars: vec![],
                chain: VecDeque::from([e]),
                broadcast: false,
                holds_shape: false,
            }
        }
    }

    /// The term as one scalar factor (its chain is a 1×1 product).
    fn into_scalar_factor(self) -> Monomial {
        let mut scalars = self.scalars;
        if let Some(chain) = Expr::product_of(self.chain) {
            scalars.push(Rc::new(chain));
        }
        Monomial { coeff: self.coeff, scalars, chain: VecDeque::new(), broadcast: false, holds_shape: false }
    }

    /// Printed: a term that did not cancel, or a cancelled one that holds
    /// the sum's shape. (A coefficient of -0, which only arithmetic on zero
    /// coefficients makes, `-(0 * A)`, is kept too.)
    fn kept(&self) -> bool {
        self.coeff != 0.0 || self.holds_shape || self.coeff.is_sign_negative()
    }

    fn times(mut self, other: Monomial) -> Monomial {
        self.coeff *= other.coeff;
        self.scalars.extend(other.scalars);
        self.chain = concat(self.chain, other.chain);
        self.broadcast = false;
        self
    }

    /// (A B)ᵀ = Bᵀ Aᵀ for the transposed halves `a`, `b`: the chains swap,
    /// the scalars commute and keep their order.
    fn times_transposed(a: Monomial, b: Monomial) -> Monomial {
        let mut scalars = a.scalars;
        scalars.extend(b.scalars);
        Monomial {
            coeff: a.coeff * b.coeff,
            scalars,
            chain: concat(b.chain, a.chain),
            broadcast: false,
            holds_shape: false,
        }
    }
}

/// The terms of a sum: most are one term (every product), kept inline.
type Sum = SmallVec<[Monomial; 1]>;

/// The sum's one term, or the sum when it has another number of terms.
fn one_term(sum: Sum) -> std::result::Result<Monomial, Sum> {
    if sum.len() == 1 {
        Ok(sum.into_iter().next().expect("one term"))
    } else {
        Err(sum)
    }
}

/// `a` then `b`, moving the shorter side: products nest to any depth on
/// either side, and copying the longer one at every level is quadratic.
fn concat(mut a: VecDeque<Rc<Expr>>, mut b: VecDeque<Rc<Expr>>) -> VecDeque<Rc<Expr>> {
    // ones(m) * ones(1, n) is ones(m, n).
    if let (Some(x), Some(y)) = (a.back(), b.front()) {
        if let (ExprKind::Ones(p), ExprKind::Ones(q)) = (&x.kind, &y.kind) {
            if p.1 == crate::syntax::DimSpec::Const(1) {
                let merged = Rc::new(Expr::ones(p.0.clone(), q.1.clone()));
                a.pop_back();
                b.pop_front();
                b.push_front(merged);
            }
        }
    }
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

struct Tidier<'a> {
    typer: &'a mut Typer,
    leaves: &'a mut Leaves,
}

impl Tidier<'_> {
    fn shape(&mut self, e: &Expr, kids: &[IShape]) -> Result<IShape> {
        self.typer.rule(e, kids).map_err(|err| {
            Error::new(ErrorKind::Internal, format!("simplifying `{e}` met a shape conflict: {err}"))
        })
    }

    /// A sum as one factor: its single term, or the whole sum as a leaf.
    fn single(&self, sum: Sum, scalar: bool) -> Monomial {
        if sum.len() == 1 {
            sum.into_iter().next().expect("one term")
        } else {
            Monomial::leaf(build_sum(sum), scalar)
        }
    }

    /// A leaf of shape `s`, transposed when `t` (a scalar is its own transpose).
    fn leaf(&self, e: impl Into<Rc<Expr>>, s: IShape, t: bool) -> Monomial {
        let (e, scalar) = (e.into(), self.typer.is_scalar(s));
        Monomial::leaf(if t && !scalar { Rc::new(Expr::transpose(e)) } else { e }, scalar)
    }

    /// The normal form of `e`, or of `eᵀ` when `t`; and the shape of `e`.
    fn norm(&mut self, e: &Rc<Expr>, t: bool) -> Result<(Sum, IShape)> {
        // Explicit recursion: the transpose flag `t` flows down, and a node
        // may normalise a child twice or not at all (`(X^a)^b`, `X .^ 1`).
        crate::stack::ensure(|| {
            Ok(match &e.kind {
                ExprKind::Var(v) => {
                    let s = self.shape(e, &[])?;
                    let scalar = self.typer.is_scalar(s);
                    (smallvec![Monomial::leaf(self.leaves.get(e, v, t && !scalar), scalar)], s)
                }
                ExprKind::Identity => {
                    let s = self.shape(e, &[])?;
                    (smallvec![Monomial::leaf(e.clone(), self.typer.is_scalar(s))], s)
                }
                // The transpose of a ones matrix is the ones matrix of the other shape.
                ExprKind::Ones(sizes) => {
                    let s = self.shape(e, &[])?;
                    let leaf = match t {
                        true => Rc::new(Expr::ones(sizes.1.clone(), sizes.0.clone())),
                        false => e.clone(),
                    };
                    (smallvec![Monomial::leaf(leaf, self.typer.is_scalar(s))], s)
                }
                ExprKind::Num(x) => (smallvec![Monomial::number(*x)], self.shape(e, &[])?),
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
                ExprKind::Binary { op: op @ (BinOp::Add | BinOp::Sub), lhs, rhs, .. } => {
                    self.norm_sum(e, op, lhs, rhs, t)?
                }
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => self.norm_product(e, lhs, rhs, t)?,
                ExprKind::Call(Func::Tr, a) => self.norm_trace(e, a)?,
                // Sums along an axis are linear: numbers and scalars move out
                // (`sum(-Y, 1)` is `-sum(Y, 1)`); a column-stochastic
                // variable's column sums are ones.
                ExprKind::Call(f @ (Func::SumCols | Func::SumRows), a) => {
                    let (sum, sa) = self.norm(a, false)?;
                    let s = self.shape(e, &[sa])?;
                    let mut outer = Monomial::number(1.0);
                    let inner = factor_out(sum, &mut outer);
                    let whole = match &inner.kind {
                        ExprKind::Var(v)
                            if *f == Func::SumCols && self.leaves.stochastic.contains(&v.name) =>
                        {
                            let cols = self.typer.resolve(s).cols;
                            match dim_spec(&cols) {
                                Some(c) => Expr::ones(crate::syntax::DimSpec::Const(1), c),
                                None => Expr::call(*f, inner),
                            }
                        }
                        _ => Expr::call(*f, inner),
                    };
                    (smallvec![outer.times(self.leaf(whole, s, t))], s)
                }
                ExprKind::Call(Func::Sum, a) => self.norm_sum_all(e, a, t)?,
                ExprKind::Call(f, a) => {
                    // A function of a matrix is a leaf; transposed, it stays
                    // whole (`tanh(W * X)^T`), as the forward pass computed it.
                    let (sum, sa) = self.norm(a, false)?;
                    let s = self.shape(e, &[sa])?;
                    (smallvec![self.leaf(Expr::call(*f, build_sum(sum)), s, t)], s)
                }
                ExprKind::Power(a, k) => self.norm_power(e, a, k, t)?,
                ExprKind::HadamardPower(a, p) => self.norm_hadamard_power(e, a, p, t)?,
                ExprKind::Binary { op: BinOp::Div, lhs, rhs, .. } => self.norm_div(e, lhs, rhs, t)?,
                ExprKind::Binary { op, lhs, rhs, .. } => self.norm_entrywise(e, op, lhs, rhs, t)?,
                // A range of one member is that member, prod(F, i=a..a) = F(a);
                // an empty one, prod(F, i=a..a-1), the identity.
                ExprKind::Prod(p) if p.hi.minus(&p.lo).ok().and_then(|d| d.as_constant()) == Some(0) => {
                    let member = p.body.subst_index(&p.var, &p.lo)?;
                    self.norm(&Rc::new(member), t)?
                }
                ExprKind::Prod(p) if p.hi.minus(&p.lo).ok().and_then(|d| d.as_constant()) == Some(-1) => {
                    self.norm(&Rc::new(Expr::identity().at(e.span)), t)?
                }
                ExprKind::Prod(_) => {
                    let s = self.typer.infer(e).map_err(|err| {
                        Error::new(ErrorKind::Internal, format!("simplifying `{e}`: {err}"))
                    })?;
                    (smallvec![self.leaf(e.clone(), s, t)], s)
                }
            })
        })
    }

    /// `lhs ± rhs`: the terms of both sides, a scalar side broadcast.
    fn norm_sum(
        &mut self,
        e: &Rc<Expr>,
        op: &BinOp,
        lhs: &Rc<Expr>,
        rhs: &Rc<Expr>,
        t: bool,
    ) -> Result<(Sum, IShape)> {
        let (mut a, sa) = self.norm(lhs, t)?;
        let (mut b, sb) = self.norm(rhs, t)?;
        if *op == BinOp::Sub {
            for term in &mut b {
                term.coeff = -term.coeff;
            }
        }
        let s = self.shape(e, &[sa, sb])?;
        let whole = self.typer.is_scalar(s);
        for (side, shape) in [(&mut a, sa), (&mut b, sb)] {
            if self.typer.is_scalar(shape) && !whole {
                side.iter_mut().for_each(|t| t.broadcast = true);
            }
        }
        a.append(&mut b);
        Ok((a, s))
    }

    /// `lhs * rhs`: one term, a scalar side a scalar factor; transposed, the chains swap.
    fn norm_product(
        &mut self,
        e: &Rc<Expr>,
        lhs: &Rc<Expr>,
        rhs: &Rc<Expr>,
        t: bool,
    ) -> Result<(Sum, IShape)> {
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
        let term = if t { Monomial::times_transposed(a, b) } else { a.times(b) };
        Ok((smallvec![term], s))
    }

    /// `tr(a)`: a scalar's trace is the scalar; one term's chain goes inside `tr`.
    fn norm_trace(&mut self, e: &Rc<Expr>, a: &Rc<Expr>) -> Result<(Sum, IShape)> {
        let (sum, sa) = self.norm(a, false)?;
        let s = self.shape(e, &[sa])?;
        if self.typer.is_scalar(sa) {
            Ok((sum, s))
        } else if sum.len() == 1 {
            let mut term = sum.into_iter().next().expect("one term");
            let mut chain = std::mem::take(&mut term.chain);
            // tr(ones · M) = tr(M · ones) = sum(M): every entry of M once.
            let is_ones = |f: Option<&Rc<Expr>>| f.is_some_and(|f| matches!(f.kind, ExprKind::Ones(_)));
            if chain.len() >= 2 && (is_ones(chain.front()) || is_ones(chain.back())) {
                if is_ones(chain.front()) {
                    chain.pop_front();
                } else {
                    chain.pop_back();
                }
                let inner = Expr::product_of(chain).expect("a factor is left");
                return Ok((smallvec![term.times(self.sum_all(inner)?)], s));
            }
            let inner = Expr::product_of(chain).unwrap_or_else(Expr::identity);
            term.scalars.push(Rc::new(Expr::call(Func::Tr, inner)));
            Ok((smallvec![term], s))
        } else {
            Ok((smallvec![Monomial::leaf(Expr::call(Func::Tr, build_sum(sum)), true)], s))
        }
    }

    /// `sum(a)`: a leaf, but the sum of c·ones(m, n) of known sizes is the
    /// number c·m·n (`sum(ones(3, 3))` is 9).
    fn norm_sum_all(&mut self, e: &Rc<Expr>, a: &Rc<Expr>, t: bool) -> Result<(Sum, IShape)> {
        let (sum, sa) = self.norm(a, false)?;
        let s = self.shape(e, &[sa])?;
        if let (Some(scale), Some(n)) = (scaled_ones(&sum), self.entries(sa)) {
            let number = Monomial { coeff: scale.coeff * n, broadcast: false, holds_shape: false, ..scale };
            return Ok((smallvec![number], s));
        }
        Ok((smallvec![self.leaf(Expr::call(Func::Sum, build_sum(sum)), s, t)], s))
    }

    /// `sum(m)` of a product `m` (a chain), normalised as [`Tidier::norm_sum_all`].
    fn sum_all(&mut self, m: Expr) -> Result<Monomial> {
        let whole = Rc::new(Expr::call(Func::Sum, m));
        let (sum, _) = self.norm(&whole, false)?;
        Ok(one_term(sum).unwrap_or_else(|sum| Monomial::leaf(build_sum(sum), true)))
    }

    /// The number of entries of a matrix of shape `s`, when its sizes are known.
    fn entries(&mut self, s: IShape) -> Option<f64> {
        use crate::shape::Dim;
        match self.typer.resolve(s) {
            crate::shape::Shape { rows: Dim::Const(m), cols: Dim::Const(n) } => Some(m as f64 * n as f64),
            _ => None,
        }
    }

    /// `a^k`: a leaf, with (X^a)^b = X^(ab).
    fn norm_power(&mut self, e: &Rc<Expr>, a: &Rc<Expr>, k: &i64, t: bool) -> Result<(Sum, IShape)> {
        // (X^a)^b = X^(ab) for integers: (X^-1)^-1 = X.
        if let ExprKind::Power(inner, j) = &a.kind {
            if let Some(jk) = j.checked_mul(*k) {
                let merged = Rc::new(Expr::synthetic(ExprKind::Power(inner.clone(), jk)));
                return self.norm(if jk == 1 { inner } else { &merged }, t);
            }
        }
        // (Xᵏ)ᵀ = (Xᵀ)ᵏ: the transpose goes to the leaves, where a
        // symmetric X drops it. (A power is square: the shapes agree.)
        let (sum, sa) = self.norm(a, t)?;
        let s = self.shape(e, &[sa])?;
        Ok((smallvec![self.leaf(Expr::synthetic(ExprKind::Power(Rc::new(build_sum(sum)), *k)), s, false)], s))
    }

    /// `a .^ p`: a leaf; `a .^ 1` is `a`.
    fn norm_hadamard_power(&mut self, e: &Rc<Expr>, a: &Rc<Expr>, p: &f64, t: bool) -> Result<(Sum, IShape)> {
        if *p == 1.0 {
            // X .^ 1 is X: normalised once (twice doubled the time per level).
            let (sum, sa) = self.norm(a, t)?;
            return Ok((sum, self.shape(e, &[sa])?));
        }
        let (sum, sa) = self.norm(a, false)?;
        let s = self.shape(e, &[sa])?;
        if *p == 0.0 && !self.typer.is_scalar(s) {
            // X .^ 0 is the ones matrix of X's shape, written `ones(m, n)`
            // where its sizes have names (the derivative of `sum(X)`).
            let shape = self.typer.resolve(s);
            if let (Some(r), Some(c)) = (dim_spec(&shape.rows), dim_spec(&shape.cols)) {
                let (r, c) = if t { (c, r) } else { (r, c) };
                return Ok((smallvec![Monomial::leaf(Expr::ones(r, c), false)], s));
            }
        }
        Ok((
            smallvec![self.leaf(Expr::synthetic(ExprKind::HadamardPower(Rc::new(build_sum(sum)), *p)), s, t)],
            s,
        ))
    }

    /// `lhs / rhs` (rhs a scalar): a leaf, the numbers and scalars of `lhs` moved out.
    fn norm_div(&mut self, e: &Rc<Expr>, lhs: &Rc<Expr>, rhs: &Rc<Expr>, t: bool) -> Result<(Sum, IShape)> {
        // (A / s)ᵀ = Aᵀ / s; numbers and scalars of A move out.
        let (a, sa) = self.norm(lhs, t)?;
        let (b, sb) = self.norm(rhs, false)?;
        let s = self.shape(e, &[sa, sb])?;
        Ok((self.divide(a, b, s), s))
    }

    /// `a / b` of shape `s`, `b` a scalar: a number divides the
    /// coefficients where that is exact, else a leaf, the numbers and
    /// scalars of `a` moved out.
    fn divide(&mut self, a: Sum, b: Sum, s: IShape) -> Sum {
        if let Some(a) = divide_numbers(&a, &b) {
            return a;
        }
        let mut outer = Monomial::number(1.0);
        let numerator = match one_term(a) {
            // A scalar's number moves out too: 0.5 / s is 0.5 * (1 / s).
            Ok(term) if term.chain.is_empty() => {
                outer.coeff = term.coeff;
                Rc::new(build_sum(smallvec![Monomial { coeff: 1.0, ..term }]))
            }
            Ok(term) => factor_out(smallvec![term], &mut outer),
            Err(a) => factor_out(a, &mut outer),
        };
        let leaf = Expr::binary(BinOp::Div, numerator, build_sum(b));
        smallvec![outer.times(Monomial::leaf(leaf, self.typer.is_scalar(s)))]
    }

    /// `lhs .* rhs`, `lhs ./ rhs`: entrywise, so they commute with the transpose.
    fn norm_entrywise(
        &mut self,
        e: &Rc<Expr>,
        op: &BinOp,
        lhs: &Rc<Expr>,
        rhs: &Rc<Expr>,
        t: bool,
    ) -> Result<(Sum, IShape)> {
        // Entrywise operations commute with the transpose.
        let (a, sa) = self.norm(lhs, t)?;
        let (b, sb) = self.norm(rhs, t)?;
        let s = self.shape(e, &[sa, sb])?;
        if *op == BinOp::Power {
            // A number exponent is the literal power (`X .^ (2 - 1)` is `X .^ 1`).
            let exponent = build_sum(b);
            if exponent.kind == ExprKind::Num(1.0) {
                return Ok((a, s));
            }
            let base = build_sum(a);
            let literal = match &exponent.kind {
                ExprKind::Num(c) => Some(*c),
                ExprKind::Neg(x) => match x.kind {
                    ExprKind::Num(c) => Some(-c),
                    _ => None,
                },
                _ => None,
            };
            let leaf = match literal {
                Some(c) => Expr::synthetic(ExprKind::HadamardPower(Rc::new(base), c)),
                None => Expr::binary(*op, base, exponent),
            };
            return Ok((smallvec![Monomial::leaf(leaf, self.typer.is_scalar(s))], s));
        }
        if op.is_call() {
            // max, min and `.^` keep their operands whole: max(2 A, B) is not 2 max(A, B).
            let leaf = Expr::binary(*op, build_sum(a), build_sum(b));
            return Ok((smallvec![Monomial::leaf(leaf, self.typer.is_scalar(s))], s));
        }
        let (a_scalar, b_scalar) = (self.typer.is_scalar(sa), self.typer.is_scalar(sb));
        if *op == BinOp::HadamardDiv && b_scalar {
            // By a scalar, `./` is the division `/`.
            return Ok((self.divide(a, b, s), s));
        }
        if *op == BinOp::Hadamard {
            // 𝟙 ⊙ B = B, and a scalar side is a scalar multiple.
            if is_ones(&a) && !b_scalar {
                return Ok((b, s));
            }
            if is_ones(&b) && !a_scalar {
                return Ok((a, s));
            }
            // (c 𝟙) ⊙ B = c B.
            for (ones, other, other_scalar) in [(&a, &b, b_scalar), (&b, &a, a_scalar)] {
                if let Some(scale) = scaled_ones(ones).filter(|_| !other_scalar) {
                    let terms = other.iter().map(|m| scale.clone().times(m.clone())).collect();
                    return Ok((terms, s));
                }
            }
            if a_scalar || b_scalar {
                let a = self.single(a, a_scalar);
                let b = self.single(b, b_scalar);
                let (a, b) = if a_scalar { (a.into_scalar_factor(), b) } else { (a, b.into_scalar_factor()) };
                return Ok((smallvec![a.times(b)], s));
            }
        }
        // Numbers and scalar factors of the operands move out:
        // (c A) ⊙ B = c (A ⊙ B); only the numerator of ./ gives them.
        let mut outer = Monomial::number(1.0);
        let a = factor_out(a, &mut outer);
        let b = if *op == BinOp::Hadamard { factor_out(b, &mut outer) } else { Rc::new(build_sum(b)) };
        let leaf = Expr::binary(*op, a, b);
        Ok((smallvec![outer.times(Monomial::leaf(leaf, self.typer.is_scalar(s)))], s))
    }
}

/// A dimension as written in `ones(…)`, when it can be: a number or a
/// name. A member of a family of sizes (`d[j]`) is not: the formulas of a
/// chain are instantiated member by member, and a `ones(d[0], d[n])` would
/// keep its sizes unbound.
pub(super) fn dim_spec(d: &crate::shape::Dim) -> Option<crate::syntax::DimSpec> {
    use crate::shape::Dim;
    use crate::syntax::DimSpec;
    match d {
        Dim::Const(n) => Some(DimSpec::Const(*n)),
        Dim::Symbol(s) => Some(DimSpec::Symbol(s.clone())),
        Dim::Indexed(..) | Dim::Unknown(_) => None,
    }
}

/// The factor c (a number and scalars) of a sum that is one term `c * ones(m, n)`.
fn scaled_ones(sum: &Sum) -> Option<Monomial> {
    match sum.as_slice() {
        [t] if t.chain.len() == 1 && matches!(t.chain[0].kind, ExprKind::Ones(_)) => {
            Some(Monomial { chain: VecDeque::new(), ..t.clone() })
        }
        _ => None,
    }
}

/// Whether a sum is the ones matrix `X .^ 0` (or its transpose).
fn is_ones(sum: &Sum) -> bool {
    let ones = |e: &Expr| {
        matches!(e.kind, ExprKind::HadamardPower(_, p) if p == 0.0) || matches!(e.kind, ExprKind::Ones(_))
    };
    matches!(sum.as_slice(), [t] if t.coeff == 1.0 && t.scalars.is_empty() && t.chain.len() == 1
        && (ones(&t.chain[0]) || matches!(&t.chain[0].kind, ExprKind::Transpose(x) if ones(x))))
}

/// `a / c` for a number `c` whose quotients with `a`'s coefficients are
/// exact (`2 * A / 2` is `A`; `A / 3` stays, as 1/3 is no double).
fn divide_numbers(a: &Sum, c: &Sum) -> Option<Sum> {
    let c = match c.as_slice() {
        [t] if t.scalars.is_empty() && t.chain.is_empty() && t.coeff != 0.0 => t.coeff,
        _ => return None,
    };
    a.iter()
        .map(|t| {
            let q = t.coeff / c;
            // q·c − k computed exactly: zero when q is the quotient itself.
            (q.is_finite() && q.mul_add(c, -t.coeff) == 0.0).then(|| Monomial { coeff: q, ..t.clone() })
        })
        .collect()
}

/// The operand of an entrywise operation with its number and scalar factors
/// moved into `outer` when it is one term with a matrix part.
fn factor_out(sum: Sum, outer: &mut Monomial) -> Rc<Expr> {
    match one_term(sum) {
        Ok(term) if !term.chain.is_empty() => {
            outer.coeff *= term.coeff;
            outer.scalars.extend(term.scalars);
            Rc::new(Expr::product_of(term.chain).expect("a matrix part"))
        }
        Ok(term) => Rc::new(build_sum(smallvec![term])),
        Err(sum) => Rc::new(build_sum(sum)),
    }
}

/// `prod(F, i=a..b)` as its parts.
fn as_prod(e: &Expr) -> Option<(&Rc<Expr>, &str, &Index, &Index)> {
    match &e.kind {
        ExprKind::Prod(p) => Some((&p.body, &p.var, &p.lo, &p.hi)),
        _ => None,
    }
}

/// Adjacent ranges merge: prod(F, i=a..b) F(b+1) = prod(F, i=a..b+1), F(a-1)
/// prod(F, i=a..b) = prod(F, i=a-1..b), prod(F, i=a..b) prod(F, i=b+1..c) =
/// prod(F, i=a..c); a range with b = a - 1 is empty, the identity.
fn merge_ranges(chain: VecDeque<Rc<Expr>>) -> VecDeque<Rc<Expr>> {
    let one = Index::constant(1);
    // (A bound past the range of an index does not merge.)
    let merge = |x: &Expr, y: &Expr| -> Option<Expr> {
        match (as_prod(x), as_prod(y)) {
            (Some((b1, v1, lo1, hi1)), Some((b2, v2, lo2, hi2)))
                if b1 == b2 && v1 == v2 && hi1.plus(&one).ok().as_ref() == Some(lo2) =>
            {
                Some(Expr::prod(b1.clone(), v1, lo1.clone(), hi2.clone()))
            }
            (Some((b, v, lo, hi)), None) => {
                let next = hi.plus(&one).ok()?;
                (b.subst_index(v, &next).ok()? == *y).then(|| Expr::prod(b.clone(), v, lo.clone(), next))
            }
            (None, Some((b, v, lo, hi))) => {
                let before = lo.minus(&one).ok()?;
                (b.subst_index(v, &before).ok()? == *x).then(|| Expr::prod(b.clone(), v, before, hi.clone()))
            }
            _ => None,
        }
    };
    let untranspose = |e: &Expr| match &e.kind {
        ExprKind::Transpose(x) => Some(x.clone()),
        _ => None,
    };
    let mut out: VecDeque<Rc<Expr>> = VecDeque::with_capacity(chain.len());
    for e in chain {
        let e = match as_prod(&e) {
            Some((_, _, lo, hi)) if hi.plus(&one).ok().as_ref() == Some(lo) => Rc::new(Expr::identity()),
            _ => e,
        };
        let merged = out.back().and_then(|last| {
            merge(last, &e).or_else(|| {
                // (B A)^T = A^T B^T: transposed neighbours merge in reverse.
                let (a, b) = (untranspose(last)?, untranspose(&e)?);
                merge(&b, &a).map(Expr::transpose)
            })
        });
        match merged {
            Some(m) => {
                out.pop_back();
                out.push_back(Rc::new(m));
            }
            None => out.push_back(e),
        }
    }
    out
}

/// A term as an expression: its sign, and `c * s1 * … * M1 * …`.
fn build_term(term: Monomial) -> (bool, Expr) {
    let negative = term.coeff < 0.0;
    let magnitude = term.coeff.abs();
    let chain = merge_ranges(term.chain);
    let has_matrix = chain.iter().any(|m| m.kind != ExprKind::Identity);
    let mut chain = chain;
    if has_matrix {
        chain.retain(|m| m.kind != ExprKind::Identity);
    } else {
        chain.truncate(1);
    }
    let chain = sums_along_axes(chain);
    let mut parts = Vec::new();
    if magnitude != 1.0 || (term.scalars.is_empty() && chain.is_empty()) {
        parts.push(Rc::new(Expr::num(magnitude)));
    }
    parts.extend(term.scalars);
    parts.extend(chain);
    (negative, Expr::product_of(parts).expect("a term has a factor"))
}

/// A product with a ones vector at an end as a sum along an axis:
/// `M * ones(n)` is `sum(M, 2)`, `ones(1, m) * M` is `sum(M, 1)`, both
/// `sum(M)`; and `ones(m) * ones(1, n)` is `ones(m, n)`.
fn sums_along_axes(mut chain: VecDeque<Rc<Expr>>) -> VecDeque<Rc<Expr>> {
    use crate::syntax::DimSpec;
    let one = |d: &DimSpec| *d == DimSpec::Const(1);
    let sizes = |e: &Expr| match &e.kind {
        ExprKind::Ones(s) => Some((s.0.clone(), s.1.clone())),
        _ => None,
    };
    // Neighbouring ones: (m×k)(k×n) with k = 1 is ones(m, n).
    let mut merged: VecDeque<Rc<Expr>> = VecDeque::with_capacity(chain.len());
    for f in chain.drain(..) {
        match (merged.back().and_then(|b| sizes(b)), sizes(&f)) {
            (Some((m, k)), Some((_, n))) if one(&k) => {
                merged.pop_back();
                merged.push_back(Rc::new(Expr::ones(m, n)));
            }
            _ => merged.push_back(f),
        }
    }
    let mut chain = merged;
    if chain.len() < 2 {
        return chain;
    }
    let column_last = chain.back().and_then(|b| sizes(b)).is_some_and(|(_, c)| one(&c));
    let row_first = chain.front().and_then(|f| sizes(f)).is_some_and(|(r, _)| one(&r));
    let (row_first, column_last) = match chain.len() {
        2 if row_first && column_last => (true, false),
        _ => (row_first, column_last),
    };
    if column_last {
        chain.pop_back();
    }
    if row_first {
        chain.pop_front();
    }
    if !(row_first || column_last) || chain.is_empty() {
        return chain;
    }
    let inner = Expr::product_of(chain).expect("a factor left");
    let f = match (row_first, column_last) {
        (true, true) => Func::Sum,
        (true, false) => Func::SumCols,
        _ => Func::SumRows,
    };
    VecDeque::from([Rc::new(Expr::call(f, inner))])
}

/// Like terms merged: `A + A` is `2 * A`, `A - A` vanishes. Terms are alike
/// when their factors print the same (spans aside, that is equality). When
/// every matrix term of a broadcast sum (`s + M - M`) cancels, one stays with
/// coefficient 0, so the sum keeps its shape.
fn collect_like_terms(sum: Sum) -> Sum {
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut out = Sum::with_capacity(sum.len());
    for term in sum {
        // Scalar factors commute: `tr(M) * s` and `s * tr(M)` are alike.
        let mut scalars = term.scalars.clone();
        scalars.sort_by_cached_key(|e| e.to_string());
        let key = build_term(Monomial { coeff: 1.0, scalars, ..term.clone() }).1.to_string();
        match index.get(&key) {
            Some(&i) => out[i].coeff += term.coeff,
            None => {
                index.insert(key, out.len());
                out.push(term);
            }
        }
    }
    // Broadcast scalars and identities take their size from the other
    // terms: when only cancelled terms told it, one of them stays, and
    // prints `0 * M` (`a + M - M` is `a + 0 * M`; `0 * M * Mᵀ + I` is not
    // a bare `I`).
    let broadcast = out.iter().any(|t| t.broadcast);
    let matrix_left = out.iter().any(|t| !t.broadcast && t.coeff != 0.0);
    if broadcast && !matrix_left {
        if let Some(holder) = out.iter_mut().find(|t| !t.broadcast) {
            (holder.coeff, holder.holds_shape) = (0.0, true);
        }
    }
    let tells_size = |t: &Monomial| !t.broadcast && t.chain.iter().any(|m| m.kind != ExprKind::Identity);
    let identity = |t: &Monomial| !t.broadcast && !t.chain.is_empty() && !tells_size(t);
    if out.iter().any(|t| t.kept() && identity(t)) && !out.iter().any(|t| t.kept() && tells_size(t)) {
        if let Some(holder) = out.iter_mut().find(|t| tells_size(t)) {
            (holder.coeff, holder.holds_shape) = (0.0, true);
        }
    }
    out
}

/// A sum as `t1 + t2 - t3`; a leading minus goes on the first factor. A sum
/// whose terms all cancel is `0 * t1`, which keeps t1's shape. A sum that
/// would begin with a negated term begins with its first positive one
/// (`S - Y`, not `-Y + S`).
fn build_sum(sum: Sum) -> Expr {
    let mut out: Option<Expr> = None;
    let sum = if sum.len() > 1 { collect_like_terms(sum) } else { sum };
    let zero = sum.first().map(|t| Monomial { coeff: 0.0, ..t.clone() });
    let mut kept: Vec<Monomial> = sum.into_iter().filter(Monomial::kept).collect();
    if kept.first().is_some_and(|t| t.coeff < 0.0) {
        if let Some(i) = kept.iter().position(|t| t.coeff > 0.0) {
            let positive = kept.remove(i);
            kept.insert(0, positive);
        }
    }
    for term in kept {
        let (negative, e) = build_term(term);
        out = Some(match (out, negative) {
            (None, false) => e,
            (None, true) => negate_first_factor(e),
            (Some(acc), false) => Expr::plus(acc, e),
            (Some(acc), true) => Expr::minus(acc, e),
        });
    }
    out.unwrap_or_else(|| match zero {
        Some(t) if !(t.scalars.is_empty() && t.chain.is_empty()) => {
            Expr::product(Expr::num(0.0), build_term(Monomial { coeff: 1.0, ..t }).1)
        }
        _ => Expr::num(0.0),
    })
}

/// −(A * B) as (−A) * B, which prints `-A * B`: down the left spine of the
/// product, without recursion.
fn negate_first_factor(e: Expr) -> Expr {
    let mut spine = vec![];
    let mut first = &e;
    while let ExprKind::Binary { op: op @ (BinOp::Mul | BinOp::Div), op_span, lhs, rhs } = &first.kind {
        spine.push((*op, *op_span, rhs.clone()));
        first = lhs;
    }
    let negated = if spine.is_empty() { Expr::negate(e) } else { Expr::negate(first.clone()) };
    spine.into_iter().rev().fold(negated, |lhs, (op, op_span, rhs)| {
        Expr::synthetic(ExprKind::Binary { op, op_span, lhs: Rc::new(lhs), rhs })
    })
}
