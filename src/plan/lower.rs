//! Lowering expressions to one shared graph: every distinct subexpression
//! once (hash-consed), transposes moved onto the edges, products flattened
//! into chains of matrix factors with their scalar factors apart.
//!
//! After lowering, `W1^T * G * X^T` and the `X^T` inside `(W*X)^T` name the
//! same node, and a chain is the only place where associativity matters:
//! [`super::schedule`] decides its bracketing.

use std::collections::{HashMap, HashSet};

use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};

pub type NodeId = u32;

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
    /// A matrix product of two or more matrix factors (no 1×1 factor).
    Chain(Vec<Atom>),
    /// A 1×1 value times anything.
    Scale(Atom, Atom),
    Add(Atom, Atom),
    Sub(Atom, Atom),
    Neg(Atom),
    Hadamard(Atom, Atom),
    HadamardDiv(Atom, Atom),
    HadamardPower(Atom, u64),
    /// Division by a 1×1 value.
    Div(Atom, Atom),
    Call(Func, Atom),
    Inverse(Atom),
}

/// The shared graph of every output's expression, with each node's shape.
#[derive(Debug, Default)]
pub struct Graph {
    pub nodes: Vec<Node>,
    pub shapes: Vec<Shape>,
    index: HashMap<Node, NodeId>,
    /// Sizes given to symbolic dimensions (`d0=64`, `d[2]=16`).
    sizes: HashMap<String, u64>,
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
        self.index.insert(node.clone(), id);
        self.nodes.push(node);
        self.shapes.push(shape);
        Atom::plain(id)
    }

    fn num(&mut self, x: f64) -> Atom {
        self.intern(Node::Num(x.to_bits()), Shape::scalar())
    }

    /// Lowers `e` (its `prod` ranges numeric) into the graph. `typer` knows
    /// every variable's shape; `want` is the shape the result must have (it
    /// sizes an `I` that only the result's shape determines).
    pub fn lower(&mut self, e: &Expr, typer: &Typer, want: Option<&Shape>) -> Result<Atom> {
        let e = expand_products(e, &mut 0)?;
        let mut typer = typer.clone();
        let mut identities = HashMap::new();
        let mut scalars = Vec::new();
        let got = typer.infer_with(&e, &mut |x, s| {
            if x.kind == ExprKind::Identity {
                identities.insert(x as *const Expr, s);
            }
            scalars.push((x as *const Expr, s));
        })?;
        if let Some(want) = want {
            let want = typer.lift(want);
            if !typer.unify_shapes(got, want) && !typer.is_scalar(got) {
                return Err(Error::new(ErrorKind::Internal, format!("`{e}` does not have the expected shape")));
            }
        }
        let mut sizes = HashMap::new();
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
        let scalars = scalars.into_iter().filter(|(_, s)| typer.is_scalar(*s)).map(|(p, _)| p).collect();
        Lowering { graph: self, typer: &typer, identity: &sizes, scalars: &scalars }.expr(&e)
    }
}

struct Lowering<'a> {
    graph: &'a mut Graph,
    typer: &'a Typer,
    identity: &'a HashMap<*const Expr, Dim>,
    /// The nodes that are 1×1.
    scalars: &'a HashSet<*const Expr>,
}

impl Lowering<'_> {
    fn expr(&mut self, e: &Expr) -> Result<Atom> {
        Ok(match &e.kind {
            ExprKind::Var(v) => {
                let shape = self.typer.var_shape(v).ok_or_else(|| {
                    Error::new(ErrorKind::Internal, format!("`{v}` has no shape in the plan"))
                })?;
                self.graph.intern(Node::Input(v.clone()), shape)
            }
            ExprKind::Num(x) => self.graph.num(*x),
            ExprKind::Identity => {
                let d = self.identity.get(&(e as *const Expr)).cloned().ok_or_else(|| {
                    Error::new(ErrorKind::Internal, "an I without a size in the plan".to_string())
                })?;
                self.graph.intern(Node::Identity(d.clone()), Shape::new(d.clone(), d))
            }
            ExprKind::Binary { op: BinOp::Mul, .. } | ExprKind::Power(..) => self.product(e)?,
            ExprKind::Transpose(_) => self.product(e)?,
            ExprKind::Neg(a) => {
                let a = self.expr(a)?;
                let shape = self.graph.shape(Atom::plain(a.node));
                Atom { t: a.t, ..self.graph.intern(Node::Neg(Atom::plain(a.node)), shape) }
            }
            ExprKind::Binary { op, lhs, rhs, .. } => {
                let (a, b) = (self.expr(lhs)?, self.expr(rhs)?);
                let (sa, sb) = (self.graph.shape(a), self.graph.shape(b));
                let shape = if sa.is_scalar() { sb } else { sa };
                // Commutative: one order, so that A + B and B + A are one node.
                let (x, y) = if (a.node, a.t) <= (b.node, b.t) { (a, b) } else { (b, a) };
                let node = match op {
                    BinOp::Add => Node::Add(x, y),
                    BinOp::Hadamard => Node::Hadamard(x, y),
                    BinOp::Sub => Node::Sub(a, b),
                    BinOp::HadamardDiv => Node::HadamardDiv(a, b),
                    BinOp::Div => Node::Div(a, b),
                    BinOp::Mul => unreachable!("products are chains"),
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
                if f.is_entrywise() {
                    // f(Aᵀ) = f(A)ᵀ: one node for both.
                    let shape = self.graph.shape(Atom::plain(a.node));
                    Atom { t: a.t, ..self.graph.intern(Node::Call(*f, Atom::plain(a.node)), shape) }
                } else {
                    // tr, det, logdet, sum and norm do not see a transpose.
                    self.graph.intern(Node::Call(*f, Atom::plain(a.node)), Shape::scalar())
                }
            }
            ExprKind::Prod { .. } => unreachable!("expanded before lowering"),
            ExprKind::Differential(_) => {
                return Err(Error::new(ErrorKind::Internal, format!("`{e}` is a differential, not a value")))
            }
        })
    }

    /// A product, transpose or power: its factors in order, transposes
    /// pushed to the leaves; 1×1 factors and numbers multiply apart.
    fn product(&mut self, e: &Expr) -> Result<Atom> {
        let mut factors = vec![];
        let mut coefficient = 1.0;
        self.flatten(e, false, &mut factors, &mut coefficient)?;
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
        let matrix = match matrices.len() {
            0 => None,
            1 => Some(matrices[0]),
            _ => {
                let shape = Shape::new(
                    self.graph.shape(matrices[0]).rows,
                    self.graph.shape(*matrices.last().expect("two or more")).cols,
                );
                Some(self.graph.intern(Node::Chain(matrices), shape))
            }
        };
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
        Ok(if coefficient < 0.0 {
            let shape = self.graph.shape(value);
            self.graph.intern(Node::Neg(value), shape)
        } else {
            value
        })
    }

    fn flatten(&mut self, e: &Expr, t: bool, out: &mut Vec<Atom>, coefficient: &mut f64) -> Result<()> {
        if out.len() > MAX_FACTORS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("a product in the plan has more than {MAX_FACTORS} factors"),
            ));
        }
        match &e.kind {
            ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                // A 1×1 side scales the other: it is one scalar factor, whatever its
                // own factors (x^T*y in (x^T*y)*W is not part of a chain with W).
                let scalar = |x: &Expr| self.scalars.contains(&(x as *const Expr));
                let (first, second) = if t { (rhs, lhs) } else { (lhs, rhs) };
                let number = |x: &Expr| match &x.kind {
                    ExprKind::Num(_) => true,
                    ExprKind::Neg(y) => matches!(y.kind, ExprKind::Num(_)),
                    _ => false,
                };
                for side in [first, second] {
                    if scalar(side) && !scalar(e) && !number(side) {
                        let a = self.expr(side)?;
                        out.push(a);
                    } else {
                        self.flatten(side, t, out, coefficient)?;
                    }
                }
            }
            ExprKind::Transpose(a) => self.flatten(a, !t, out, coefficient)?,
            ExprKind::Num(x) => *coefficient *= x,
            ExprKind::Neg(a) => {
                *coefficient = -*coefficient;
                self.flatten(a, t, out, coefficient)?;
            }
            ExprKind::Power(a, k) if *k != -1 => {
                let base = if *k < 0 {
                    let inner = self.expr(a)?;
                    self.inverse(inner)
                } else {
                    self.expr(a)?
                };
                if *k == 0 {
                    let d = self.graph.shape(base).rows;
                    let id = self.graph.intern(Node::Identity(d.clone()), Shape::new(d.clone(), d));
                    out.push(id);
                }
                for _ in 0..k.unsigned_abs() {
                    out.push(if t { base.transposed() } else { base });
                }
            }
            ExprKind::Power(a, _) => {
                let inner = self.expr(a)?;
                let inv = self.inverse(inner);
                out.push(if t { inv.transposed() } else { inv });
            }
            _ => {
                let a = self.expr(e)?;
                out.push(if t { a.transposed() } else { a });
            }
        }
        Ok(())
    }

    /// inv(Aᵀ) = inv(A)ᵀ: one node for both.
    fn inverse(&mut self, a: Atom) -> Atom {
        let shape = self.graph.shape(Atom::plain(a.node));
        Atom { t: a.t, ..self.graph.intern(Node::Inverse(Atom::plain(a.node)), shape) }
    }
}

/// `prod(F, i=a..b)` with numeric bounds as the explicit product
/// `F(a) * ... * F(b)` (`I` when empty).
fn expand_products(e: &Expr, count: &mut usize) -> Result<Expr> {
    if let ExprKind::Prod { body, var, lo, hi } = &e.kind {
        let (Some(a), Some(b)) = (lo.as_constant(), hi.as_constant()) else {
            return Err(Error::new(
                ErrorKind::Unsupported,
                format!("`{e}` has a symbolic range; a numeric plan needs its length (give it with --dims, e.g. n=8)"),
            ));
        };
        *count += usize::try_from(b - a + 1).unwrap_or(0);
        if *count > MAX_FACTORS {
            return Err(Error::new(
                ErrorKind::Limit,
                format!("the products in the plan expand to more than {MAX_FACTORS} factors"),
            ));
        }
        let body = expand_products(body, count)?;
        return Ok((a..=b)
            .map(|k| body.subst_index(var, &Index::constant(k)))
            .reduce(Expr::product)
            .unwrap_or_else(Expr::identity));
    }
    let kids: Vec<Expr> =
        e.children().into_iter().map(|c| expand_products(c, count)).collect::<Result<_>>()?;
    Ok(rebuild(e, kids))
}

/// `e` with new children, in the order [`Expr::children`] gives them.
fn rebuild(e: &Expr, kids: Vec<Expr>) -> Expr {
    use std::rc::Rc;
    let mut kids = kids.into_iter().map(Rc::new);
    let mut next = || kids.next().expect("one child per slot");
    let kind = match &e.kind {
        ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Identity | ExprKind::Prod { .. } => {
            return e.clone()
        }
        ExprKind::Neg(_) => ExprKind::Neg(next()),
        ExprKind::Transpose(_) => ExprKind::Transpose(next()),
        ExprKind::Differential(_) => ExprKind::Differential(next()),
        ExprKind::Power(_, k) => ExprKind::Power(next(), *k),
        ExprKind::HadamardPower(_, p) => ExprKind::HadamardPower(next(), *p),
        ExprKind::Call(f, _) => ExprKind::Call(*f, next()),
        ExprKind::Binary { op, op_span, .. } => {
            let lhs = next();
            ExprKind::Binary { op: *op, op_span: *op_span, lhs, rhs: next() }
        }
    };
    Expr::new(kind, e.span)
}
