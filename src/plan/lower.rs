//! Lowering expressions to one shared graph: every distinct subexpression
//! once (hash-consed), transposes moved onto the edges, products flattened
//! into chains of matrix factors with their scalar factors apart.
//!
//! After lowering, `W1^T * G * X^T` and the `X^T` inside `(W*X)^T` name the
//! same node, and a chain is the only place where associativity matters:
//! [`super::schedule`] decides its bracketing.

use std::collections::HashMap;

use rustc_hash::FxHashMap;

use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape, Typer};
use crate::syntax::{BinOp, DimSpec, Expr, ExprKind, Func, Index, VarName};

pub type NodeId = u32;

/// A dimension, interned in the graph ([`Graph::dims`]).
pub type DimRef = u32;

/// The first and last matrix factors a flattening appended, if any.
type Ends = Option<(Atom, Atom)>;

/// A node used as it is, or transposed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Atom {
    pub node: NodeId,
    pub t: bool,
}

impl Atom {
    pub fn plain(node: NodeId) -> Atom {
        Atom { node, t: false }
    }

    pub fn transposed(self) -> Atom {
        Atom { node: self.node, t: !self.t }
    }
}

/// One distinct value. Numbers are kept as bits so nodes hash.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Node {
    Input(VarName),
    Num(u64),
    /// The identity of the given size.
    Identity(Dim),
    /// The matrix of ones of the given shape.
    Ones(Dim, Dim),
    /// A matrix product of two or more matrix factors (no 1×1 factor).
    Chain(Vec<Atom>),
    /// A 1×1 value times anything.
    Scale(Atom, Atom),
    Add(Atom, Atom),
    Sub(Atom, Atom),
    Neg(Atom),
    Hadamard(Atom, Atom),
    HadamardDiv(Atom, Atom),
    Max(Atom, Atom),
    Min(Atom, Atom),
    /// The Kronecker product, left then right (not commutative).
    Kron(Atom, Atom),
    HadamardPower(Atom, u64),
    /// `X .^ p` with a 1×1 value p: the base, then the exponent.
    Power(Atom, Atom),
    /// Division by a 1×1 value.
    Div(Atom, Atom),
    Call(Func, Atom),
    Inverse(Atom),
    /// `diag(v) * M`, a column v scaling the rows of M (never the dense n×n diagonal).
    ScaleRows(Atom, Atom),
    /// `M * diag(v)`, a column v scaling the columns of M.
    ScaleCols(Atom, Atom),
}

/// The shared graph of every output's expression, with each node's shape.
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub shapes: Vec<Shape>,
    index: FxHashMap<Node, NodeId>,
    /// Sizes given to symbolic dimensions (`d0=64`, `d[2]=16`).
    sizes: HashMap<String, u64>,
    /// Every dimension of a node's shape, once; and each node's rows and columns.
    pub dims: Vec<Dim>,
    dim_index: FxHashMap<Dim, DimRef>,
    node_dims: Vec<[DimRef; 2]>,
    /// The input node of each variable seen (a chain of a thousand factors
    /// looks each one up once per target).
    inputs: FxHashMap<VarName, Atom>,
}

/// Largest number of factors a product may expand to (`prod` ranges and
/// integer powers), so that a plan stays a readable, bounded program.
pub const MAX_FACTORS: usize = 100_000;

impl Graph {
    pub fn new(sizes: HashMap<String, u64>) -> Graph {
        Graph { sizes, ..Graph::default() }
    }

    /// A shape with the given sizes.
    pub fn fix_shape(&self, s: &Shape) -> Shape {
        Shape::new(self.fix(s.rows.clone()), self.fix(s.cols.clone()))
    }

    /// A dimension with its given size, if it has one.
    fn fix(&self, d: Dim) -> Dim {
        let size = match &d {
            Dim::Symbol(s) => self.sizes.get(s),
            Dim::Indexed(name, i) => self.sizes.get(&format!("{name}[{i}]")),
            _ => None,
        };
        size.map_or(d, |&n| Dim::Const(n))
    }

    /// The rows and columns of an atom, as interned dimensions.
    pub fn atom_dims(&self, a: Atom) -> [DimRef; 2] {
        let [r, c] = self.node_dims[a.node as usize];
        if a.t {
            [c, r]
        } else {
            [r, c]
        }
    }

    fn dim_id(&mut self, d: Dim) -> DimRef {
        if let Some(&id) = self.dim_index.get(&d) {
            return id;
        }
        let id = self.dims.len() as DimRef;
        self.dim_index.insert(d.clone(), id);
        self.dims.push(d);
        id
    }

    pub fn shape(&self, a: Atom) -> Shape {
        let s = &self.shapes[a.node as usize];
        if a.t {
            s.transposed()
        } else {
            s.clone()
        }
    }

    fn is_scalar(&self, a: Atom) -> bool {
        self.shapes[a.node as usize].is_scalar()
    }

    fn intern(&mut self, node: Node, shape: Shape) -> Atom {
        if let Some(&id) = self.index.get(&node) {
            return Atom::plain(id);
        }
        let id = self.nodes.len() as NodeId;
        let shape = Shape::new(self.fix(shape.rows), self.fix(shape.cols));
        let dims = [self.dim_id(shape.rows.clone()), self.dim_id(shape.cols.clone())];
        self.index.insert(node.clone(), id);
        self.nodes.push(node);
        self.shapes.push(shape);
        self.node_dims.push(dims);
        Atom::plain(id)
    }

    fn num(&mut self, x: f64) -> Atom {
        self.intern(Node::Num(x.to_bits()), Shape::scalar())
    }

    /// Lowers `e` (its `prod` ranges numeric) into the graph. `typer` knows
    /// every variable's shape (it is shared by the targets of one plan, so
    /// it is not cloned per target); `want` is the shape the result must
    /// have (it sizes an `I` that only the result's shape determines).
    pub fn lower(&mut self, e: &Expr, typer: &mut Typer, want: Option<&Shape>) -> Result<Atom> {
        let expanded;
        let e = if e.any(|x| matches!(x.kind, ExprKind::Prod(_))) {
            expanded = expand_products(e, &mut 0)?;
            &expanded
        } else {
            e
        };
        // Shape inference only sizes the identities (gradients were typed
        // when they were derived); a chain of a thousand factors skips it.
        let mut sizes = FxHashMap::default();
        if e.any(|x| x.kind == ExprKind::Identity) {
            let mut identities = vec![];
            let got = typer.infer_with(e, &mut |x, s| {
                if x.kind == ExprKind::Identity {
                    identities.push((x as *const Expr, s));
                }
            })?;
            if let Some(want) = want {
                let want = typer.lift(want);
                if !typer.unify_shapes(got, want) && !typer.is_scalar(got) {
                    return Err(Error::new(
                        ErrorKind::Internal,
                        format!("`{e}` does not have the expected shape"),
                    ));
                }
            }
            for (ptr, s) in identities {
                let d = typer.resolve_dim(s.rows);
                if let Dim::Unknown(_) = d {
                    return Err(Error::new(
                        ErrorKind::Unsupported,
                        format!("the size of an I in `{e}` cannot be told; declare the shapes"),
                    ));
                }
                sizes.insert(ptr, d);
            }
        }
        // A named size of `ones(…)` where the variables have numbers (an
        // instance's plan): the numbers, read off by inference.
        let mut ones = FxHashMap::default();
        let named = |x: &Expr| matches!(&x.kind, ExprKind::Ones(s) if !matches!(**s, (DimSpec::Const(_), DimSpec::Const(_))));
        if e.any(named) {
            let mut open = typer.clone().with_open_ones();
            let mut found = vec![];
            let got = open.infer_with(e, &mut |x, s| {
                if named(x) {
                    found.push((x as *const Expr, s));
                }
            });
            if let Ok(got) = got {
                if let Some(want) = want {
                    let want = open.lift(want);
                    open.unify_shapes(got, want);
                }
                for (ptr, s) in found {
                    if let (Dim::Const(r), Dim::Const(c)) =
                        (open.resolve_dim(s.rows), open.resolve_dim(s.cols))
                    {
                        ones.insert(ptr, (Dim::Const(r), Dim::Const(c)));
                    }
                }
            }
        }
        Lowering { graph: self, typer, identity: &sizes, ones: &ones }.expr(e)
    }
}

/// The shape of a column-wise function of a value of shape `s` (`None`
/// for the functions whose value is a scalar).
fn along_columns(f: Func, s: Shape) -> Option<Shape> {
    match f {
        Func::Softmax => Some(s),
        Func::SumCols | Func::Logsumexp => Some(Shape::new(Dim::Const(1), s.cols)),
        Func::SumRows => Some(Shape::new(s.rows, Dim::Const(1))),
        // vec(Aᵀ) is not vec(A): the operand as it is.
        Func::Vec => Some(Shape::new(s.rows.times(&s.cols)?, Dim::Const(1))),
        _ => None,
    }
}

struct Lowering<'a> {
    graph: &'a mut Graph,
    typer: &'a mut Typer,
    identity: &'a FxHashMap<*const Expr, Dim>,
    ones: &'a FxHashMap<*const Expr, (Dim, Dim)>,
}

impl Lowering<'_> {
    fn expr(&mut self, e: &Expr) -> Result<Atom> {
        // Explicit recursion: products are read whole by `flatten_span`
        // (which recurses here for their factors), not child by child.
        crate::stack::ensure(|| {
            Ok(match &e.kind {
                ExprKind::Var(v) => {
                    if let Some(&a) = self.graph.inputs.get(v) {
                        return Ok(a);
                    }
                    // (A family's member is declared from the family on first sight.)
                    let s = self.typer.var(v)?;
                    let shape = self.typer.resolve(s);
                    let a = self.graph.intern(Node::Input(VarName::clone(v)), shape);
                    self.graph.inputs.insert(VarName::clone(v), a);
                    a
                }
                ExprKind::Num(x) => self.graph.num(*x),
                ExprKind::Identity => {
                    let d = self.identity.get(&(e as *const Expr)).cloned().ok_or_else(|| {
                        Error::new(ErrorKind::Internal, "an I without a size in the plan".to_string())
                    })?;
                    self.graph.intern(Node::Identity(d.clone()), Shape::new(d.clone(), d))
                }
                ExprKind::Ones(sizes) => {
                    let dim = |d: &DimSpec| match d {
                        DimSpec::Const(n) => Dim::Const(*n),
                        DimSpec::Symbol(s) => Dim::Symbol(s.clone()),
                        DimSpec::Indexed(s, i) => Dim::Indexed(s.clone(), i.clone()),
                    };
                    let (r, c) = match self.ones.get(&(e as *const Expr)) {
                        Some((r, c)) => (r.clone(), c.clone()),
                        None => (self.graph.fix(dim(&sizes.0)), self.graph.fix(dim(&sizes.1))),
                    };
                    self.graph.intern(Node::Ones(r.clone(), c.clone()), Shape::new(r, c))
                }
                ExprKind::Binary { op: BinOp::Mul, .. } | ExprKind::Power(..) => self.product(e)?,
                ExprKind::Transpose(_) => self.product(e)?,
                ExprKind::Neg(a) => {
                    let a = self.expr(a)?;
                    let shape = self.graph.shape(Atom::plain(a.node));
                    Atom { t: a.t, ..self.graph.intern(Node::Neg(Atom::plain(a.node)), shape) }
                }
                ExprKind::Binary { op, lhs, rhs, .. } => {
                    if let Some((factored, p, q)) = common_factor(*op, lhs, rhs) {
                        // Only terms of one shape: `A*F - 2*F` is not `(A - 2)*F`
                        // (a number or a 1×1 value beside a matrix is a scaling,
                        // and `A - 2` would subtract it from every entry).
                        let (a, b) = (self.expr(p)?, self.expr(q)?);
                        if self.graph.shape(a) == self.graph.shape(b) {
                            return self.expr(&factored);
                        }
                    }
                    let (a, b) = (self.expr(lhs)?, self.expr(rhs)?);
                    let (sa, sb) = (self.graph.shape(a), self.graph.shape(b));
                    if *op == BinOp::Kron {
                        let shape = sa.rows.times(&sb.rows).zip(sa.cols.times(&sb.cols));
                        let Some((rows, cols)) = shape else {
                            return Err(Error::new(
                                ErrorKind::Unsupported,
                                format!("the size of `{e}` is a product of symbolic sizes, which a plan cannot name"),
                            )
                            .label(e.span, "here"));
                        };
                        return Ok(self.graph.intern(Node::Kron(a, b), Shape::new(rows, cols)));
                    }
                    let shape = if sa.is_scalar() && *op != BinOp::Power { sb } else { sa };
                    // Commutative: one order, so that A + B and B + A are one node.
                    let (x, y) = if (a.node, a.t) <= (b.node, b.t) { (a, b) } else { (b, a) };
                    let node = match op {
                        BinOp::Add => Node::Add(x, y),
                        BinOp::Hadamard => Node::Hadamard(x, y),
                        BinOp::Max => Node::Max(x, y),
                        BinOp::Min => Node::Min(x, y),
                        BinOp::Sub => Node::Sub(a, b),
                        BinOp::HadamardDiv => Node::HadamardDiv(a, b),
                        BinOp::Div => Node::Div(a, b),
                        BinOp::Power => Node::Power(a, b),
                        BinOp::Mul | BinOp::Kron => unreachable!("products are chains, kron above"),
                    };
                    self.graph.intern(node, shape)
                }
                ExprKind::HadamardPower(a, p) => {
                    let a = self.expr(a)?;
                    let shape = self.graph.shape(Atom::plain(a.node));
                    let node = Node::HadamardPower(Atom::plain(a.node), p.to_bits());
                    Atom { t: a.t, ..self.graph.intern(node, shape) }
                }
                ExprKind::Call(f, a) => {
                    let a = self.expr(a)?;
                    if *f == Func::Diag {
                        // diag(Aᵀ) = diag(A): a vector's diagonal matrix, or a
                        // square matrix's diagonal, does not see a transpose.
                        let shape = self.graph.shape(Atom::plain(a.node)).diag();
                        self.graph.intern(Node::Call(*f, Atom::plain(a.node)), shape)
                    } else if f.is_entrywise() {
                        // f(Aᵀ) = f(A)ᵀ: one node for both.
                        let shape = self.graph.shape(Atom::plain(a.node));
                        Atom { t: a.t, ..self.graph.intern(Node::Call(*f, Atom::plain(a.node)), shape) }
                    } else if let Some(shape) = along_columns(*f, self.graph.shape(a)) {
                        // Column-wise: the operand as it is, transposed or not.
                        self.graph.intern(Node::Call(*f, a), shape)
                    } else {
                        // tr, det, logdet, sum and the norms do not see a transpose.
                        self.graph.intern(Node::Call(*f, Atom::plain(a.node)), Shape::scalar())
                    }
                }
                ExprKind::Prod(_) => unreachable!("expanded before lowering"),
            })
        })
    }

    /// A product, transpose or power: its factors in order, transposes
    /// pushed to the leaves; 1×1 factors and numbers multiply apart.
    fn product(&mut self, e: &Expr) -> Result<Atom> {
        let mut factors = vec![];
        let mut coefficient = 1.0;
        self.flatten(e, false, &mut factors, &mut coefficient)?;
        Ok(self.assemble(factors, coefficient))
    }

    /// Whether a product whose first and last matrix (not 1×1) factors are
    /// these is 1×1.
    fn is_scalar_span(&self, ends: Ends) -> bool {
        match ends {
            None => true,
            Some((first, last)) => {
                let one = |d: DimRef| self.graph.dims[d as usize] == Dim::Const(1);
                one(self.graph.atom_dims(first)[0]) && one(self.graph.atom_dims(last)[1])
            }
        }
    }

    /// The product of factors times a number: scalars apart, the matrix
    /// factors one chain.
    fn assemble(&mut self, factors: Vec<Atom>, coefficient: f64) -> Atom {
        let (scalars, matrices): (Vec<Atom>, Vec<Atom>) =
            factors.into_iter().partition(|&a| self.graph.is_scalar(a));
        let matrices: Vec<Atom> = {
            let identities = |a: &Atom| matches!(self.graph.nodes[a.node as usize], Node::Identity(_));
            let kept: Vec<Atom> = matrices.iter().copied().filter(|a| !identities(a)).collect();
            if kept.is_empty() {
                matrices.into_iter().take(1).collect()
            } else {
                kept
            }
        };
        let matrix = (!matrices.is_empty()).then(|| self.chain(matrices));
        let scalar = scalars.into_iter().reduce(|a, b| self.graph.intern(Node::Scale(a, b), Shape::scalar()));
        let scalar = match (scalar, coefficient) {
            (s, c) if c == 1.0 || c == -1.0 => s,
            (None, c) => Some(self.graph.num(c.abs())),
            (Some(s), c) => {
                let c = self.graph.num(c.abs());
                Some(self.graph.intern(Node::Scale(c, s), Shape::scalar()))
            }
        };
        let value = match (scalar, matrix) {
            (None, None) => self.graph.num(1.0),
            (Some(s), None) => s,
            (None, Some(m)) => m,
            (Some(s), Some(m)) => {
                let shape = self.graph.shape(m);
                self.graph.intern(Node::Scale(s, m), shape)
            }
        };
        if coefficient < 0.0 {
            let shape = self.graph.shape(value);
            self.graph.intern(Node::Neg(value), shape)
        } else {
            value
        }
    }

    /// The product of matrix factors (one or more), a diagonal factor
    /// `diag(v)` of a vector taken as the scaling of its neighbour's rows or
    /// columns: n·k multiply-adds instead of the n²·k of a dense diagonal (a
    /// Hessian `X^T * diag(s) * X` is otherwise dominated by it).
    fn chain(&mut self, matrices: Vec<Atom>) -> Atom {
        let first_diag = matrices.iter().position(|&a| self.diagonal_of(a).is_some());
        match first_diag {
            Some(k) if matrices.len() > 1 => {
                let v = self.diagonal_of(matrices[k]).expect("found above");
                if k + 1 < matrices.len() {
                    let right = self.chain(matrices[k + 1..].to_vec());
                    let shape = self.graph.shape(right);
                    let scaled = self.graph.intern(Node::ScaleRows(v, right), shape);
                    let mut left = matrices[..k].to_vec();
                    left.push(scaled);
                    self.chain(left)
                } else {
                    let left = self.chain(matrices[..k].to_vec());
                    let shape = self.graph.shape(left);
                    self.graph.intern(Node::ScaleCols(left, v), shape)
                }
            }
            _ if matrices.len() == 1 => matrices[0],
            _ if matrices.len() == 2
                && self.sum_of_inputs(matrices[0]).is_some()
                && self.is_column(matrices[1]) =>
            {
                // (P ± Q) * v as P*v ± Q*v, P and Q variables: two passes over
                // them instead of forming P ± Q (as costly in memory as a
                // product with a column, and strided when Q is P^T).
                let (node, p, q) = self.sum_of_inputs(matrices[0]).expect("checked");
                let v = matrices[1];
                let (pv, qv) = (self.chain(vec![p, v]), self.chain(vec![q, v]));
                let shape = self.graph.shape(pv);
                let (x, y) = if (pv.node, pv.t) <= (qv.node, qv.t) { (pv, qv) } else { (qv, pv) };
                let sum = match node {
                    Node::Add(..) => Node::Add(x, y),
                    _ => Node::Sub(pv, qv),
                };
                self.graph.intern(sum, shape)
            }
            _ => {
                let shape = Shape::new(
                    self.graph.shape(matrices[0]).rows,
                    self.graph.shape(*matrices.last().expect("two or more")).cols,
                );
                self.graph.intern(Node::Chain(matrices), shape)
            }
        }
    }

    /// A sum or difference of two variables (either transposed), as the
    /// node and its two terms as `a` reads them.
    fn sum_of_inputs(&self, a: Atom) -> Option<(Node, Atom, Atom)> {
        let node = self.graph.nodes[a.node as usize].clone();
        let (Node::Add(p, q) | Node::Sub(p, q)) = node else { return None };
        let input = |x: Atom| matches!(self.graph.nodes[x.node as usize], Node::Input(_));
        // Both of the sum's own shape: a 1×1 term broadcast over the other
        // is not a factor of the product (`s * v` is a scaling, not `s*v`
        // as a matrix product).
        let shape = self.graph.shape(Atom::plain(a.node));
        if !(input(p) && input(q)) || self.graph.shape(p) != shape || self.graph.shape(q) != shape {
            return None;
        }
        let t = |x: Atom| if a.t { x.transposed() } else { x };
        Some((node, t(p), t(q)))
    }

    /// Whether the atom has one column.
    fn is_column(&self, a: Atom) -> bool {
        self.graph.shape(a).cols == Dim::Const(1)
    }

    /// The column v of a factor `diag(v)` (square, of a vector), as an atom of shape n×1.
    fn diagonal_of(&self, a: Atom) -> Option<Atom> {
        let Node::Call(Func::Diag, v) = self.graph.nodes[a.node as usize] else { return None };
        let vs = self.graph.shape(v);
        let one = Dim::Const(1);
        match (vs.rows == one, vs.cols == one) {
            (_, true) => Some(v),
            (true, false) => Some(v.transposed()),
            (false, false) => None,
        }
    }

    fn flatten(&mut self, e: &Expr, t: bool, out: &mut Vec<Atom>, coefficient: &mut f64) -> Result<()> {
        self.flatten_span(e, t, out, coefficient).map(|_| ())
    }

    /// Appends the factors of `e` to `out`; returns the first and last
    /// matrix factors it appended, so that each level of a deep product
    /// knows in O(1) whether a side is 1×1.
    fn flatten_span(
        &mut self,
        e: &Expr,
        t: bool,
        out: &mut Vec<Atom>,
        coefficient: &mut f64,
    ) -> Result<Ends> {
        // Explicit recursion: the transpose flag flows down, and each level
        // regroups the factors its two sides appended.
        crate::stack::ensure(|| {
            if out.len() > MAX_FACTORS {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("a product in the plan has more than {MAX_FACTORS} factors"),
                ));
            }
            let push = |this: &Self, out: &mut Vec<Atom>, a: Atom| -> Ends {
                out.push(a);
                (!this.graph.is_scalar(a)).then_some((a, a))
            };
            Ok(match &e.kind {
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                    // A 1×1 side scales the other: it stays one scalar factor, whatever
                    // its own factors (x^T*y in (x^T*y)*W is not part of a chain with W).
                    let (first, second) = if t { (rhs, lhs) } else { (lhs, rhs) };
                    let start = out.len();
                    let mut a = self.flatten_span(first, t, out, coefficient)?;
                    let mid = out.len();
                    let mut b = self.flatten_span(second, t, out, coefficient)?;
                    match (self.is_scalar_span(a), self.is_scalar_span(b)) {
                        (true, false) if mid - start > 1 => {
                            let side: Vec<Atom> = out.drain(start..mid).collect();
                            let x = self.assemble(side, 1.0);
                            out.insert(start, x);
                            a = None;
                        }
                        (false, true) if out.len() - mid > 1 => {
                            let side: Vec<Atom> = out.drain(mid..).collect();
                            let x = self.assemble(side, 1.0);
                            out.push(x);
                            b = None;
                        }
                        _ => {}
                    }
                    match (a, b) {
                        (Some((f, _)), Some((_, l))) => Some((f, l)),
                        (a, b) => a.or(b),
                    }
                }
                ExprKind::Transpose(a) => self.flatten_span(a, !t, out, coefficient)?,
                ExprKind::Num(x) => {
                    *coefficient *= x;
                    None
                }
                ExprKind::Neg(a) => {
                    *coefficient = -*coefficient;
                    self.flatten_span(a, t, out, coefficient)?
                }
                ExprKind::Power(a, k) if *k != -1 => {
                    let base = if *k < 0 {
                        let inner = self.expr(a)?;
                        self.inverse(inner)
                    } else {
                        self.expr(a)?
                    };
                    let base = if t { base.transposed() } else { base };
                    let mut span = None;
                    if *k == 0 {
                        let d = self.graph.shape(base).rows;
                        let id = self.graph.intern(Node::Identity(d.clone()), Shape::new(d.clone(), d));
                        span = push(self, out, id);
                    }
                    if out.len().saturating_add(k.unsigned_abs() as usize) > MAX_FACTORS {
                        return Err(Error::new(
                            ErrorKind::Limit,
                            format!("a product in the plan has more than {MAX_FACTORS} factors"),
                        )
                        .label(e.span, format!("power {k}")));
                    }
                    for _ in 0..k.unsigned_abs() {
                        span = push(self, out, base);
                    }
                    span
                }
                ExprKind::Power(a, _) => {
                    let inner = self.expr(a)?;
                    let inv = self.inverse(inner);
                    push(self, out, if t { inv.transposed() } else { inv })
                }
                _ => {
                    let a = self.expr(e)?;
                    push(self, out, if t { a.transposed() } else { a })
                }
            })
        })
    }

    /// inv(Aᵀ) = inv(A)ᵀ: one node for both.
    fn inverse(&mut self, a: Atom) -> Atom {
        let shape = self.graph.shape(Atom::plain(a.node));
        Atom { t: a.t, ..self.graph.intern(Node::Inverse(Atom::plain(a.node)), shape) }
    }
}

/// `P*F ± Q*F` as `(P ± Q)*F`, and `F*P ± F*Q` as `F*(P ± Q)`, when P and Q
/// are each one value (not a product, up to a number factor): one matrix
/// product instead of two (a Hessian-vector product is often such a sum).
/// Products of several factors are left alone: their own bracketing may be
/// cheaper than the factored form (`A*B*x + C*D*x`).
///
/// Returns the factored form and the two terms P and Q, whose shapes the
/// caller compares.
fn common_factor<'e>(op: BinOp, lhs: &'e Expr, rhs: &'e Expr) -> Option<(Expr, &'e Expr, &'e Expr)> {
    use std::rc::Rc;
    if !matches!(op, BinOp::Add | BinOp::Sub) {
        return None;
    }
    let (
        ExprKind::Binary { op: BinOp::Mul, lhs: p, rhs: f, .. },
        ExprKind::Binary { op: BinOp::Mul, lhs: q, rhs: g, .. },
    ) = (&lhs.kind, &rhs.kind)
    else {
        return None;
    };
    // Shared subtrees (Rc clones), so that the sizes found for each `I` and
    // `ones(…)` of the program, by address, still apply.
    if f == g && one_value(p) && one_value(q) {
        let sum = Expr::binary(op, Rc::clone(p), Rc::clone(q));
        return Some((Expr::product(sum, Rc::clone(f)), p, q));
    }
    if p == q && one_value(f) && one_value(g) {
        let sum = Expr::binary(op, Rc::clone(f), Rc::clone(g));
        return Some((Expr::product(Rc::clone(p), sum), f, g));
    }
    None
}

/// Whether `e` is one value, up to a number factor or a sign: not a product
/// of matrices, whose bracketing the chain planner chooses.
fn one_value(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
            matches!(lhs.kind, ExprKind::Num(_)) && one_value(rhs)
        }
        ExprKind::Neg(a) | ExprKind::Transpose(a) => one_value(a),
        ExprKind::Power(..) | ExprKind::Prod(_) => false,
        _ => true,
    }
}

/// The factors the `prod` ranges of `e` expand to (as [`expand_products`]
/// counts them), and those its integer powers expand to (a factor per unit
/// of the exponent), without expanding either. (One past [`MAX_FACTORS`]
/// counts as MAX_FACTORS + 1: lowering refuses it by itself.)
pub(super) fn expansion(e: &Expr) -> (usize, usize) {
    let one = |n: u128| usize::try_from(n).unwrap_or(usize::MAX).min(MAX_FACTORS + 1);
    let (mut ranges, mut powers) = (0usize, 0usize);
    let mut stack = vec![e];
    while let Some(e) = stack.pop() {
        match &e.kind {
            ExprKind::Prod(prod) => {
                if let (Some(a), Some(b)) = (prod.lo.as_constant(), prod.hi.as_constant()) {
                    let len = (i128::from(b) - i128::from(a) + 1).max(0);
                    ranges = ranges.saturating_add(one(len as u128));
                }
            }
            ExprKind::Power(_, k) => powers = powers.saturating_add(one(u128::from(k.unsigned_abs())).max(1)),
            _ => {}
        }
        stack.extend(e.children());
    }
    (ranges, powers)
}

/// `prod(F, i=a..b)` with numeric bounds as the explicit product
/// `F(a) * ... * F(b)` (`I` when empty).
fn expand_products(e: &Expr, count: &mut usize) -> Result<Expr> {
    let expand = |c: &std::rc::Rc<Expr>, count: &mut usize| expand_products(c, count).map(std::rc::Rc::new);
    if let ExprKind::Prod(prod) = &e.kind {
        let crate::syntax::Prod { var, lo, hi, .. } = &**prod;
        let (Some(a), Some(b)) = (lo.as_constant(), hi.as_constant()) else {
            return Err(Error::new(
                    ErrorKind::Unsupported,
                    format!("the length of `{e}` is not known (its range {lo}..{hi} is symbolic); a numeric plan needs it"),
                )
                .hint(crate::Hint::GiveSize("n=8".into())));
        };
        // In i128: the bounds may be anywhere in i64, and b - a with them.
        let members = (i128::from(b) - i128::from(a) + 1).max(0);
        *count = count.saturating_add(usize::try_from(members).unwrap_or(usize::MAX));
        if *count > MAX_FACTORS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("the products in the plan expand to more than {MAX_FACTORS} factors"),
            ));
        }
        // The body expanded (through the guarded `try_map_children`).
        let mapped = e.try_map_children(|c| expand(c, count))?;
        let ExprKind::Prod(expanded) = &mapped.kind else { unreachable!("a prod maps to a prod") };
        let members = (a..=b).map(|k| expanded.body.subst_index(var, &Index::constant(k)));
        let members = members.collect::<Result<Vec<_>>>()?;
        return Ok(Expr::product_of(members).unwrap_or_else(Expr::identity));
    }
    e.try_map_children(|c| expand(c, count))
}
