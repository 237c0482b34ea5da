//! Shape inference: one rule per operator, over dimension variables unified
//! with union-find.
//!
//! Named symbols (`d0`, `n`) are rigid: `d0` never equals `3` or `d1`, since a
//! declaration `W : d0 x d1` promises a result for every size. Dimensions of
//! undeclared variables are flexible and take whatever the expression needs.

use rustc_hash::FxHashMap;
use std::rc::Rc;

use super::dim::{Dim, Shape};
use crate::error::{Error, ErrorKind, Result};
use crate::syntax::{BinOp, DimSpec, Expr, ExprKind, Func, Index, ShapeSpec, Span, VarName};

/// A dimension variable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct DimId(u32);

/// A shape whose dimensions are still variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IShape {
    /// The row dimension.
    pub rows: DimId,
    /// The column dimension.
    pub cols: DimId,
}

/// What [`Typer::infer_as`] found out about a formula.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Inferred {
    /// The formula's shape.
    pub shape: IShape,
    /// Whether that shape can be the one wanted (they unified).
    pub fits: bool,
    /// Whether the formula tells the size of every `I` in it.
    pub sized: bool,
}

/// A declared family `W[i] : d[i-1] x d[i]`.
#[derive(Clone, Debug)]
struct Family {
    binder: Option<String>,
    rows: DimSpec,
    cols: DimSpec,
}

/// The inference state: union-find over dimensions, and the shape of every
/// variable seen so far.
#[derive(Clone, Debug, Default)]
pub struct Typer {
    parent: Vec<u32>,
    /// The number of dimensions under each root: the smaller tree goes
    /// under the larger, so that a find takes O(log n) steps (without it a
    /// chain of definitions built chains of thousands of links).
    size: Vec<u32>,
    binding: Vec<Option<Dim>>,
    // Shared between clones: simplification clones the typer once per
    // formula, and a thousand-variable map copied each time would dominate.
    vars: Rc<FxHashMap<VarName, IShape>>,
    /// The program's variable nodes and their shapes, by address
    /// ([`Typer::know_nodes`]): the factors of a chain's gradients are these
    /// nodes, and an address hashes in one step where a name takes a pass
    /// over its bytes. Each node is held, so its address is never another's.
    var_nodes: Rc<FxHashMap<*const Expr, (Rc<Expr>, IShape)>>,
    families: Rc<FxHashMap<String, Family>>,
    /// Inside [`Typer::scratch`]: the old value of every entry overwritten.
    trail: Option<Vec<Undo>>,
    /// Where a column or row is broadcast, when [`Typer::broadcasting`]
    /// allows it: only the pass that makes broadcasts explicit does.
    broadcasts: Option<Vec<(*const Expr, Broadcast)>>,
    /// Sizes of `ones(…)` given by name are open (the numeric evaluator,
    /// whose dimensions are numbers).
    open_ones: bool,
    /// The open dimension each such name stands for: one per name, so that
    /// `ones(m, n) / sum(ones(m, n))` sizes both ones alike.
    open_names: FxHashMap<String, DimId>,
}

/// A broadcast operand of `+`, `-`, `.*` or `./`: which side, and along
/// which axis it repeats to the size of the other side.
#[derive(Clone, Debug, PartialEq)]
pub struct Broadcast {
    /// The left operand is broadcast (else the right).
    pub left: bool,
    /// An m×1 column repeated over the other side's columns (else a 1×n
    /// row repeated over its rows).
    pub column: bool,
    /// The number of repetitions: the other side's columns (or rows).
    pub times: Dim,
}

/// An entry of a dimension before it was overwritten.
#[derive(Clone, Debug)]
enum Undo {
    Parent(u32, u32),
    Size(u32, u32),
    Binding(u32, Option<Dim>),
}

impl Typer {
    /// A typer with no variables.
    pub fn new() -> Typer {
        Typer::default()
    }

    /// A typer that accepts an m×1 column (1×n row) where an m×B (B×n)
    /// operand of `+`, `-`, `.*` or `./` is needed, when the other side's
    /// columns (rows) are known not to be 1, and records each such place.
    pub fn broadcasting() -> Typer {
        Typer { broadcasts: Some(Vec::new()), ..Typer::default() }
    }

    /// The broadcasts recorded (see [`Typer::broadcasting`]).
    pub fn take_broadcasts(&mut self) -> Vec<(*const Expr, Broadcast)> {
        self.broadcasts.take().unwrap_or_default()
    }

    /// A typer for numbers: the named sizes of `ones(…)` are open, decided
    /// by the context.
    pub fn with_open_ones(mut self) -> Typer {
        self.open_ones = true;
        self
    }

    /// Gives the open name `name` of `ones(…)` a size (see
    /// [`Typer::with_open_ones`]).
    pub fn size_open_name(&mut self, name: &str, n: u64) {
        let id = self.bound(Dim::Const(n));
        self.open_names.insert(name.to_string(), id);
    }

    /// Known to be a dimension other than 1: a number above 1 or a name.
    fn not_one(&self, d: DimId) -> bool {
        matches!(self.term(d), Some(t) if *t != Dim::Const(1))
    }

    /// Records a broadcast in `e` when one side is a column (row) and the
    /// other's columns (rows) are known not to be 1; the shape, if so.
    fn broadcast(&mut self, e: &Expr, a: IShape, b: IShape) -> Option<IShape> {
        self.broadcasts.as_ref()?;
        let mut found = None;
        for (left, (x, y)) in [(true, (a, b)), (false, (b, a))] {
            if self.is_scalar(x) {
                return None;
            }
            if self.is_one(x.cols) && self.not_one(y.cols) && self.same(x.rows, y.rows) {
                found = Some((left, true, y.cols, y));
            } else if self.is_one(x.rows) && self.not_one(y.rows) && self.same(x.cols, y.cols) {
                found = Some((left, false, y.rows, y));
            }
            if found.is_some() {
                break;
            }
        }
        let (left, column, times, shape) = found?;
        let times = self.resolve_dim(times);
        self.broadcasts.as_mut()?.push((e as *const Expr, Broadcast { left, column, times }));
        Some(shape)
    }

    fn fresh(&mut self) -> DimId {
        self.parent.push(self.parent.len() as u32);
        self.size.push(1);
        self.binding.push(None);
        DimId(self.parent.len() as u32 - 1)
    }

    fn bound(&mut self, d: Dim) -> DimId {
        let id = self.fresh();
        self.binding[id.0 as usize] = Some(d);
        id
    }

    /// Runs `f` on this typer, then forgets everything `f` taught it: new
    /// dimensions, unifications, variables. Every formula of a derivation is
    /// typed this way against the program's typer; a clone per formula would
    /// copy every dimension of the program each time.
    ///
    /// ```
    /// use matdiff::{shape, syntax};
    /// let p = syntax::parse_program("A : 2x3; A").unwrap();
    /// let mut typer = shape::infer(&p).unwrap().typer().clone();
    /// let z = syntax::parse_var("Z").unwrap();
    /// typer.scratch(|t| {
    ///     let (a, z) = (t.var(&syntax::parse_var("A").unwrap()).unwrap(), t.var(&z).unwrap());
    ///     assert!(t.unify_shapes(a, z));
    ///     assert_eq!(t.var_shape(&syntax::parse_var("Z").unwrap()).unwrap().to_string(), "2x3");
    /// });
    /// assert!(typer.declared(&z).is_none());
    /// ```
    pub fn scratch<R>(&mut self, f: impl FnOnce(&mut Typer) -> R) -> R {
        let (dims, vars, families) = (self.parent.len(), self.vars.clone(), self.families.clone());
        let outer = self.trail.replace(Vec::new());
        let result = f(self);
        let trail = std::mem::replace(&mut self.trail, outer).expect("set above");
        for undo in trail.into_iter().rev() {
            match undo {
                Undo::Parent(i, old) => self.parent[i as usize] = old,
                Undo::Size(i, old) => self.size[i as usize] = old,
                Undo::Binding(i, old) => self.binding[i as usize] = old,
            }
        }
        self.parent.truncate(dims);
        self.size.truncate(dims);
        self.binding.truncate(dims);
        self.vars = vars;
        self.families = families;
        result
    }

    fn set_parent(&mut self, i: u32, root: u32) {
        if let Some(trail) = &mut self.trail {
            trail.push(Undo::Parent(i, self.parent[i as usize]));
        }
        self.parent[i as usize] = root;
    }

    fn set_size(&mut self, i: u32, size: u32) {
        if let Some(trail) = &mut self.trail {
            trail.push(Undo::Size(i, self.size[i as usize]));
        }
        self.size[i as usize] = size;
    }

    fn set_binding(&mut self, i: u32, d: Option<Dim>) {
        if let Some(trail) = &mut self.trail {
            trail.push(Undo::Binding(i, self.binding[i as usize].clone()));
        }
        self.binding[i as usize] = d;
    }

    fn find(&self, mut id: DimId) -> DimId {
        while self.parent[id.0 as usize] != id.0 {
            id = DimId(self.parent[id.0 as usize]);
        }
        id
    }

    fn term(&self, id: DimId) -> Option<&Dim> {
        self.binding[self.find(id).0 as usize].as_ref()
    }

    /// Makes two dimensions equal, or says they cannot be.
    fn unify(&mut self, a: DimId, b: DimId) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return true;
        }
        let (bound_a, bound_b) = (&self.binding[ra.0 as usize], &self.binding[rb.0 as usize]);
        if matches!((bound_a, bound_b), (Some(x), Some(y)) if x != y) {
            return false;
        }
        // The smaller tree under the larger; the root keeps the binding.
        let (root, child) =
            if self.size[ra.0 as usize] >= self.size[rb.0 as usize] { (ra, rb) } else { (rb, ra) };
        if self.binding[root.0 as usize].is_none() {
            if let Some(d) = self.binding[child.0 as usize].clone() {
                self.set_binding(root.0, Some(d));
            }
        }
        self.set_parent(child.0, root.0);
        let size = self.size[root.0 as usize].saturating_add(self.size[child.0 as usize]);
        self.set_size(root.0, size);
        true
    }

    /// Points every dimension straight at its root, so that later lookups
    /// (every gradient types its formula against this state) take one step.
    pub fn compress(&mut self) {
        for i in 0..self.parent.len() {
            let root = self.find(DimId(i as u32));
            self.set_parent(i as u32, root.0);
        }
    }

    /// Whether two dimensions are known to be equal: one, or bound to the
    /// same size (without unifying anything, so `false` for two open ones).
    pub fn same(&self, a: DimId, b: DimId) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        ra == rb || matches!((self.term(ra), self.term(rb)), (Some(x), Some(y)) if x == y)
    }

    fn is_one(&self, d: DimId) -> bool {
        self.term(d) == Some(&Dim::Const(1))
    }

    /// Remembers the shapes of the variable nodes under `e` (a program's
    /// expression, typed), for [`Typer::chain_shape`].
    pub(crate) fn know_nodes(&mut self, e: &Expr) {
        let mut nodes = FxHashMap::default();
        e.for_each(|node| {
            for c in node.kind.child_links() {
                if let ExprKind::Var(v) = &c.kind {
                    if let Some(s) = self.declared(v) {
                        nodes.insert(Rc::as_ptr(c), (Rc::clone(c), s));
                    }
                }
            }
        });
        self.var_nodes = Rc::new(nodes);
    }

    /// The shape of a product of variables (their nodes), each transposed or
    /// not, where the typing already makes it a chain of matrix products:
    /// no variable 1×1 (a scalar factor to tidy) and each neighbour's
    /// inner dimensions known equal. `None` otherwise, where only
    /// [`Typer::rule`]'s unification, or a scalar multiple, could tell.
    /// Every gradient of a matrix chain is such a product: this types it
    /// without a walk over its nodes.
    pub fn chain_shape<'e>(&self, factors: impl IntoIterator<Item = (&'e Expr, bool)>) -> Option<IShape> {
        let mut shape: Option<IShape> = None;
        for (e, transposed) in factors {
            let s = match self.var_nodes.get(&(e as *const Expr)) {
                Some(&(_, s)) => s,
                None => match &e.kind {
                    ExprKind::Var(v) => self.declared(v)?,
                    _ => return None,
                },
            };
            if self.is_scalar(s) {
                return None;
            }
            let s = if transposed { IShape { rows: s.cols, cols: s.rows } } else { s };
            shape = Some(match shape {
                None => s,
                Some(acc) if self.same(acc.cols, s.rows) => IShape { rows: acc.rows, cols: s.cols },
                Some(_) => return None,
            });
        }
        shape
    }

    /// Known to be 1×1.
    pub fn is_scalar(&self, s: IShape) -> bool {
        self.is_one(s.rows) && self.is_one(s.cols)
    }

    /// The dimension as far as inference has bound it (`Dim::Unknown` if open).
    pub fn resolve_dim(&self, d: DimId) -> Dim {
        let root = self.find(d);
        self.term(root).cloned().unwrap_or(Dim::Unknown(root.0))
    }

    /// The shape as far as inference has bound it.
    pub fn resolve(&self, s: IShape) -> Shape {
        Shape::new(self.resolve_dim(s.rows), self.resolve_dim(s.cols))
    }

    /// A fixed shape as variables.
    pub fn lift(&mut self, s: &Shape) -> IShape {
        let mut one = |d: &Dim| match d {
            Dim::Unknown(_) => self.fresh(),
            d => self.bound(d.clone()),
        };
        IShape { rows: one(&s.rows), cols: one(&s.cols) }
    }

    /// A fresh 1×1 shape.
    pub fn scalar(&mut self) -> IShape {
        IShape { rows: self.bound(Dim::Const(1)), cols: self.bound(Dim::Const(1)) }
    }

    /// Records a declaration; a second declaration must agree with the first.
    pub fn declare(&mut self, name: &str, binder: Option<&str>, spec: &ShapeSpec, span: Span) -> Result<()> {
        let (rows, cols) = match spec {
            ShapeSpec::Scalar => (DimSpec::Const(1), DimSpec::Const(1)),
            ShapeSpec::Vector(d) => (d.clone(), DimSpec::Const(1)),
            ShapeSpec::Matrix(r, c) => (r.clone(), c.clone()),
        };
        // An empty matrix has no entries to differentiate, and its sums,
        // traces and products degenerate: refused where it is declared.
        if rows == DimSpec::Const(0) || cols == DimSpec::Const(0) {
            return Err(Error::new(ErrorKind::Shape, format!("`{name}` is declared with a dimension of 0"))
                .label(span, "a dimension of 0")
                .note("every dimension is at least 1"));
        }
        if let Some(binder) = binder {
            let family = Family { binder: Some(binder.to_string()), rows, cols };
            Rc::make_mut(&mut self.families).insert(name.to_string(), family);
            return Ok(());
        }
        let declared = IShape { rows: self.dim_spec(&rows, None)?, cols: self.dim_spec(&cols, None)? };
        let var = VarName::plain(name);
        if let Some(&old) = self.vars.get(&var) {
            if !(self.unify(old.rows, declared.rows) && self.unify(old.cols, declared.cols)) {
                return Err(Error::new(
                    ErrorKind::Shape,
                    format!(
                        "`{name}` is declared twice with different shapes: {} and {}",
                        self.resolve(old),
                        self.resolve(declared)
                    ),
                )
                .label(span, "second declaration"));
            }
        } else {
            Rc::make_mut(&mut self.vars).insert(var, declared);
        }
        Ok(())
    }

    fn dim_spec(&mut self, d: &DimSpec, subst: Option<(&str, &Index)>) -> Result<DimId> {
        let dim = match d {
            DimSpec::Const(n) => Dim::Const(*n),
            DimSpec::Symbol(s) => Dim::Symbol(s.clone()),
            DimSpec::Indexed(s, i) => {
                let i = match subst {
                    Some((var, value)) => i.subst(var, value)?,
                    None => i.clone(),
                };
                Dim::Indexed(s.clone(), i)
            }
        };
        Ok(self.bound(dim))
    }

    /// The shape of a variable, declaring it with fresh dimensions (or from
    /// its family's declaration) on first sight; an error when the member's
    /// index, put into the family's dimensions, leaves the range of
    /// [`Index`].
    pub fn var(&mut self, v: &VarName) -> Result<IShape> {
        if let Some(&s) = self.vars.get(v) {
            return Ok(s);
        }
        let s = match (&v.index, self.families.get(&v.name).cloned()) {
            (Some(index), Some(fam)) => {
                let subst = fam.binder.as_deref().map(|b| (b, index));
                IShape { rows: self.dim_spec(&fam.rows, subst)?, cols: self.dim_spec(&fam.cols, subst)? }
            }
            (Some(_), None) => match self.undeclared_member_shape(&v.name) {
                Some(s) => s,
                None => IShape { rows: self.fresh(), cols: self.fresh() },
            },
            _ => IShape { rows: self.fresh(), cols: self.fresh() },
        };
        Rc::make_mut(&mut self.vars).insert(v.clone(), s);
        Ok(s)
    }

    /// The shape of a member of an undeclared family that a product has
    /// typed (`W[i]` in `prod(W[i], i=1..n)`, square so that the factors
    /// chain): every member of such a family has it (`W[j]` of a gradient,
    /// `W[2]` of an instance), where a shape of its own would be left open
    /// (`?6 x ?7`). Only a shape free of indexed sizes, which holds for
    /// every index; the least such member, so that the choice is the same
    /// on every run.
    fn undeclared_member_shape(&self, name: &str) -> Option<IShape> {
        let symbolic =
            |w: &VarName| w.name == name && w.index.as_ref().is_some_and(|i| i.as_constant().is_none());
        let (_, &s) = self.vars.iter().filter(|(w, _)| symbolic(w)).min_by(|a, b| a.0.cmp(b.0))?;
        let indexed = |d: DimId| matches!(self.term(d), Some(Dim::Indexed(..)));
        (!indexed(s.rows) && !indexed(s.cols)).then_some(s)
    }

    /// The shape a variable was declared with, without declaring it.
    pub fn declared(&self, v: &VarName) -> Option<IShape> {
        self.vars.get(v).copied()
    }

    /// Makes two shapes equal, or says they cannot be.
    pub fn unify_shapes(&mut self, a: IShape, b: IShape) -> bool {
        self.unify(a.rows, b.rows) && self.unify(a.cols, b.cols)
    }

    /// The declared or inferred shape of a variable, if it has one.
    pub fn var_shape(&self, v: &VarName) -> Option<Shape> {
        self.vars.get(v).map(|&s| self.resolve(s))
    }

    /// Infers the shape of `e`, calling `visit` on every node with its shape
    /// (children before parents).
    pub fn infer_with(&mut self, e: &Expr, visit: &mut dyn FnMut(&Expr, IShape)) -> Result<IShape> {
        e.try_fold(&mut |e, kids: crate::syntax::Kids<IShape>| {
            let s = match &e.kind {
                ExprKind::Prod(prod) => self.prod(e, kids[0], &prod.var, &prod.lo, &prod.hi)?,
                _ => self.rule(e, &kids)?,
            };
            visit(e, s);
            Ok(s)
        })
    }

    /// Infers `e` as a value of shape `want`: its shape, whether that can
    /// be `want`, and whether the formula tells the size of every `I` in it
    /// (`sum(a * I)` does not: any size would type).
    pub fn infer_as(&mut self, e: &Expr, want: IShape) -> Result<Inferred> {
        let mut identities = Vec::new();
        let got = self.infer_with(e, &mut |e, s| {
            if e.kind == ExprKind::Identity {
                identities.push(s);
            }
        })?;
        let fits = self.unify_shapes(got, want);
        let sized = identities.iter().all(|&s| !matches!(self.resolve(s).rows, Dim::Unknown(_)));
        Ok(Inferred { shape: got, fits, sized })
    }

    /// The shape of `e`, unifying dimensions as it goes; an error where shapes do not fit.
    pub fn infer(&mut self, e: &Expr) -> Result<IShape> {
        self.infer_with(e, &mut |_, _| {})
    }

    /// The shape rule of one node, given its children's shapes. This is the
    /// only place that knows how operators combine shapes.
    pub fn rule(&mut self, e: &Expr, kids: &[IShape]) -> Result<IShape> {
        Ok(match &e.kind {
            ExprKind::Var(v) => self.var(v).map_err(|err| err.label(e.span, "this member"))?,
            ExprKind::Identity => {
                let n = self.fresh();
                IShape { rows: n, cols: n }
            }
            ExprKind::Num(_) => self.scalar(),
            ExprKind::Ones(sizes) => {
                let mut size = |d: &DimSpec| match d {
                    DimSpec::Symbol(_) | DimSpec::Indexed(..) if self.open_ones => {
                        let name = d.to_string();
                        Ok(match self.open_names.get(&name) {
                            Some(&id) => id,
                            None => {
                                let id = self.fresh();
                                self.open_names.insert(name, id);
                                id
                            }
                        })
                    }
                    d => self.dim_spec(d, None),
                };
                IShape { rows: size(&sizes.0)?, cols: size(&sizes.1)? }
            }
            ExprKind::Neg(_) | ExprKind::HadamardPower(..) => kids[0],
            ExprKind::Transpose(_) => IShape { rows: kids[0].cols, cols: kids[0].rows },
            ExprKind::Power(..) => {
                let what = "a matrix power needs a square matrix";
                self.square(e, kids[0], what)?;
                kids[0]
            }
            ExprKind::Call(f, _) if f.is_entrywise() => kids[0],
            ExprKind::Call(Func::Softmax, _) => kids[0],
            ExprKind::Call(Func::SumCols | Func::Logsumexp, _) => {
                IShape { rows: self.bound(Dim::Const(1)), cols: kids[0].cols }
            }
            ExprKind::Call(Func::SumRows, _) => {
                IShape { rows: kids[0].rows, cols: self.bound(Dim::Const(1)) }
            }
            ExprKind::Call(f @ (Func::Tr | Func::Det | Func::Logdet), _) => {
                self.square(e, kids[0], &format!("{} needs a square matrix", f.name()))?;
                self.scalar()
            }
            ExprKind::Call(Func::Norm2, _) => {
                self.vector(e, kids[0])?;
                self.scalar()
            }
            ExprKind::Call(Func::Diag, _) => self.diag(e, kids[0])?,
            ExprKind::Call(Func::Vec, arg) => {
                let rows = self.times(kids[0].rows, kids[0].cols, (arg, kids[0]), (arg, kids[0]), "vec")?;
                IShape { rows, cols: self.bound(Dim::Const(1)) }
            }
            ExprKind::Call(..) => self.scalar(),
            ExprKind::Binary { op, op_span, lhs, rhs } => {
                let (a, b) = (kids[0], kids[1]);
                match op {
                    BinOp::Mul => self.product(a, b).ok_or_else(|| {
                        let error = self.mismatch(
                            format!(
                                "cannot multiply {} by {}: {} columns against {} rows",
                                self.resolve(a),
                                self.resolve(b),
                                self.resolve_dim(a.cols),
                                self.resolve_dim(b.rows)
                            ),
                            *op_span,
                            (lhs, a),
                            (rhs, b),
                        );
                        // Two vectors of one length: an inner or outer product was meant.
                        let (sa, sb) = (self.resolve(a), self.resolve(b));
                        let (x, y) = (operand(lhs), operand(rhs));
                        if sa.cols == Dim::Const(1) && sb.cols == Dim::Const(1) && sa.rows == sb.rows {
                            error.note(format!(
                                "for the inner product of two columns write `{x}^T * {y}`, for the outer product `{x} * {y}^T`, entrywise `{x} .* {y}`"
                            ))
                        } else if sa.rows == Dim::Const(1) && sb.rows == Dim::Const(1) && sa.cols == sb.cols {
                            error.note(format!(
                                "for the inner product of two rows write `{x} * {y}^T`, for the outer product `{x}^T * {y}`, entrywise `{x} .* {y}`"
                            ))
                        } else {
                            error
                        }
                    })?,
                    BinOp::Div => {
                        let one = self.scalar();
                        if !(self.unify(b.rows, one.rows) && self.unify(b.cols, one.cols)) {
                            return Err(self.mismatch(
                                format!("can only divide by a scalar, not by {}", self.resolve(b)),
                                *op_span,
                                (lhs, a),
                                (rhs, b),
                            ));
                        }
                        a
                    }
                    BinOp::Power => {
                        let one = self.scalar();
                        if !(self.unify(b.rows, one.rows) && self.unify(b.cols, one.cols)) {
                            let x = operand(rhs);
                            return Err(Error::new(
                                ErrorKind::Shape,
                                format!(
                                    "the exponent of `.^` must be a scalar, but `{}` is {}",
                                    brief(rhs),
                                    self.resolve(b)
                                ),
                            )
                            .label(rhs.span, format!("{} exponent", self.resolve(b)))
                            .note(format!(
                                "`X .^ p` raises every entry to one scalar p: declare `{x} : scalar`, or reduce it (`sum({x})`); for a power entry by entry write `exp({x} .* log(X))`"
                            )));
                        }
                        a
                    }
                    BinOp::Kron => IShape {
                        rows: self.times(a.rows, b.rows, (lhs, a), (rhs, b), "kron")?,
                        cols: self.times(a.cols, b.cols, (lhs, a), (rhs, b), "kron")?,
                    },
                    BinOp::Add | BinOp::Sub | BinOp::Hadamard | BinOp::HadamardDiv | BinOp::Max | BinOp::Min => {
                        if let Some(s) = self.broadcast(e, a, b) {
                            return Ok(s);
                        }
                        self.entrywise(a, b).ok_or_else(|| {
                            let verb = match op {
                                BinOp::Add => "add",
                                BinOp::Sub => "subtract",
                                BinOp::Max => "take the maximum of",
                                BinOp::Min => "take the minimum of",
                                _ => "combine entrywise",
                            };
                            self.mismatch(
                                format!(
                                    "cannot {verb} {} and {}: shapes differ",
                                    self.resolve(a),
                                    self.resolve(b)
                                ),
                                *op_span,
                                (lhs, a),
                                (rhs, b),
                            )
                        })?
                    }
                }
            }
            ExprKind::Prod(_) => unreachable!("prod is typed by infer_with"),
        })
    }

    /// `A * B`: a matrix product when the inner dimensions agree (or can be
    /// made to), scalar·matrix when a side is 1×1 and they do not.
    pub fn product(&mut self, a: IShape, b: IShape) -> Option<IShape> {
        if self.same(a.cols, b.rows) {
            Some(IShape { rows: a.rows, cols: b.cols })
        } else if self.is_scalar(a) {
            Some(b)
        } else if self.is_scalar(b) {
            Some(a)
        } else if self.unify(a.cols, b.rows) {
            Some(IShape { rows: a.rows, cols: b.cols })
        } else {
            None
        }
    }

    /// Whether `A * B` is a scalar multiple rather than a matrix product:
    /// [`Shape::scales`] of the resolved shapes, without resolving them.
    pub fn is_scaling(&self, a: IShape, b: IShape) -> bool {
        let scales = !self.same(a.cols, b.rows) && (self.is_scalar(a) || self.is_scalar(b));
        debug_assert_eq!(scales, self.resolve(a).scales(&self.resolve(b)));
        scales
    }

    /// `A + B` and entrywise operations: equal shapes, or a scalar broadcast.
    fn entrywise(&mut self, a: IShape, b: IShape) -> Option<IShape> {
        match (self.is_scalar(a), self.is_scalar(b)) {
            (true, false) => Some(b),
            (false, true) => Some(a),
            _ => (self.unify(a.rows, b.rows) && self.unify(a.cols, b.cols)).then_some(a),
        }
    }

    /// The product of two sizes, for `kron` and `vec`. [`Dim`] has no
    /// products of symbolic sizes (unification would have to factor them),
    /// so the sizes must be numbers, or one of them 1 (`vec(x)` of a column,
    /// `kron(x, y)` of two columns' widths); anything else is refused by
    /// name at the operand whose size is symbolic.
    fn times(
        &mut self,
        a: DimId,
        b: DimId,
        lhs: (&Expr, IShape),
        rhs: (&Expr, IShape),
        what: &str,
    ) -> Result<DimId> {
        if self.is_one(a) {
            return Ok(b);
        }
        if self.is_one(b) {
            return Ok(a);
        }
        let (da, db) = (self.resolve_dim(a), self.resolve_dim(b));
        if let (Dim::Const(x), Dim::Const(y)) = (&da, &db) {
            return match x.checked_mul(*y) {
                Some(n) => Ok(self.bound(Dim::Const(n))),
                None => Err(Error::new(ErrorKind::Shape, format!("{what}: the size {x} * {y} is too large"))
                    .label(lhs.0.span.to(rhs.0.span), "too large")),
            };
        }
        let (culprit, shape) = if matches!(da, Dim::Const(_)) { rhs } else { lhs };
        let shape = self.resolve(shape);
        let size = if matches!(da, Dim::Const(_)) { &db } else { &da };
        let example = match &culprit.kind {
            ExprKind::Var(v) => format!("`{v} : 3x2`"),
            _ => "`A : 3x2`".to_string(),
        };
        let error = if let Dim::Unknown(_) = size {
            Error::new(
                ErrorKind::Shape,
                format!("{what} multiplies sizes, and the size of `{}` is not known here", brief(culprit)),
            )
            .label(culprit.span, "size not known")
        } else {
            Error::new(
                ErrorKind::Shape,
                format!(
                    "{what} multiplies sizes, and the size {size} of `{}` is not a number",
                    brief(culprit)
                ),
            )
            .label(culprit.span, format!("{shape}"))
        };
        Err(if culprit.kind == ExprKind::Identity {
            error.note("a lone `I` takes its size from beside it, and kron gives it none: write the identity of size 3 as `diag(ones(3))`")
        } else {
            error.note(format!(
                "the shape system has no products of symbolic sizes: declare the sizes as numbers ({example}); a factor 1 is fine (`kron(x, y^T)` of two columns)"
            ))
        })
    }

    /// `norm(x, 2)`: x must be a vector (a dimension known to be 1); a
    /// matrix's 2-norm is its spectral norm, which the language lacks.
    fn vector(&mut self, e: &Expr, s: IShape) -> Result<()> {
        if self.is_one(s.rows) || self.is_one(s.cols) {
            return Ok(());
        }
        let arg = e.children().next().expect("a function has an argument");
        let shape = self.resolve(s);
        let (message, label) = if matches!(
            (&shape.rows, &shape.cols),
            (Dim::Unknown(_), _) | (_, Dim::Unknown(_))
        ) {
            (format!("norm(x, 2) is the Euclidean norm of a vector, and the shape of `{}` does not say it is one", brief(arg)), "not known to be a vector".to_string())
        } else {
            (
                format!("norm(x, 2) is the Euclidean norm of a vector, but `{}` is {shape}", brief(arg)),
                format!("{shape} is not a vector"),
            )
        };
        Err(Error::new(ErrorKind::Shape, message)
        .label(e.span, label)
        .note("the 2-norm of a matrix is its spectral norm (the largest singular value), which the language does not have; norm(A) is the Frobenius norm")
        .note("for a vector, declare it as one (`x : n` is n x 1)"))
    }

    /// `diag(x)` of a vector (a dimension known to be 1) is the square
    /// matrix with x on its diagonal; `diag(A)` of a matrix known to be
    /// square is the column of its diagonal. The argument's shape decides:
    /// one that may be either is an error asking to declare it.
    fn diag(&mut self, e: &Expr, s: IShape) -> Result<IShape> {
        if self.is_one(s.cols) {
            return Ok(IShape { rows: s.rows, cols: s.rows });
        }
        if self.is_one(s.rows) {
            return Ok(IShape { rows: s.cols, cols: s.cols });
        }
        if self.same(s.rows, s.cols) {
            let one = self.bound(Dim::Const(1));
            return Ok(IShape { rows: s.rows, cols: one });
        }
        let arg = e.children().next().expect("a function has an argument");
        let shape = self.resolve(s);
        let known = |d: &Dim| !matches!(d, Dim::Unknown(_));
        let error = if known(&shape.rows) && known(&shape.cols) {
            Error::new(
                ErrorKind::Shape,
                format!("diag needs a vector or a square matrix, but `{}` is {shape}", brief(arg)),
            )
            .label(e.span, format!("{shape} is neither"))
        } else {
            Error::new(
                ErrorKind::Shape,
                format!("diag of `{}`: its shape does not tell a vector from a square matrix", brief(arg)),
            )
            .label(e.span, "a vector or a matrix?")
            .note("declare it: `x : n` for a vector (diag(x) is n x n), `A : n x n` for a matrix (diag(A) is n x 1)")
        };
        Err(error.note("diag(x) of a vector is the diagonal matrix; diag(A) of a square matrix is the column of its diagonal"))
    }

    fn square(&mut self, e: &Expr, s: IShape, what: &str) -> Result<()> {
        if self.unify(s.rows, s.cols) {
            return Ok(());
        }
        let arg = e.children().next().expect("a function has an argument");
        Err(Error::new(ErrorKind::Shape, format!("{what}, but `{arg}` is {}", self.resolve(s)))
            .label(e.span, format!("{} is not square", self.resolve(s))))
    }

    /// An error at the operator, naming both operands and their shapes.
    fn mismatch(&self, message: String, op: Span, lhs: (&Expr, IShape), rhs: (&Expr, IShape)) -> Error {
        let (a, b) = (self.resolve(lhs.1), self.resolve(rhs.1));
        Error::new(ErrorKind::Shape, message)
            .label(op, format!("{a} on the left, {b} on the right"))
            .note(format!("left:  `{}` is {a}", brief(lhs.0)))
            .note(format!("right: `{}` is {b}", brief(rhs.0)))
    }

    /// `prod(F(i), i=lo..hi)`: F(i) must chain into F(i+1); the product runs
    /// from the rows of F(lo) to the columns of F(hi).
    fn prod(&mut self, e: &Expr, body: IShape, var: &str, lo: &Index, hi: &Index) -> Result<IShape> {
        let in_prod = |err: Error| err.label(e.span, "in this product");
        let next = Index::symbol(var).plus(&Index::constant(1)).map_err(in_prod)?;
        let at = |t: &mut Typer, d: DimId, value: &Index| -> Result<DimId> {
            Ok(match t.term(d).cloned() {
                Some(dim) => t.bound(dim.subst(var, value).map_err(in_prod)?),
                None => d,
            })
        };
        let rows_next = at(self, body.rows, &next)?;
        if !self.unify(body.cols, rows_next) {
            return Err(Error::new(
                ErrorKind::Shape,
                format!(
                    "the factors of this product do not chain: factor {var} is {} but factor {var}+1 has {} rows",
                    self.resolve(body),
                    self.resolve_dim(rows_next)
                ),
            )
            .label(e.span, "here"));
        }
        Ok(IShape { rows: at(self, body.rows, lo)?, cols: at(self, body.cols, hi)? })
    }

    /// Names every open dimension of the variables `d0, d1, …` (in order of
    /// first occurrence, skipping names in use), so a chain `W1*W2*X` reads
    /// `W1 : d0 x d1, W2 : d1 x d2, X : d2 x d3`.
    pub fn name_open_dims(&mut self, order: &[VarName], taken: &std::collections::HashSet<String>) {
        let mut used = taken.clone();
        for d in &self.binding {
            if let Some(Dim::Symbol(s) | Dim::Indexed(s, _)) = d {
                used.insert(s.clone());
            }
        }
        let mut next = 0usize;
        for v in order {
            let Some(&s) = self.vars.get(v) else { continue };
            for d in [s.rows, s.cols] {
                if self.term(d).is_none() {
                    let name = loop {
                        let candidate = format!("d{next}");
                        next += 1;
                        if !used.contains(&candidate) {
                            break candidate;
                        }
                    };
                    let root = self.find(d);
                    self.set_binding(root.0, Some(Dim::Symbol(name)));
                }
            }
        }
    }

    /// Gives the index symbol `name` a value in every dimension bound so far
    /// (`X : d[n] x B` with n = 3 is `d[3] x B`), for a plan of known length.
    pub fn bind_index(&mut self, name: &str, value: i64) -> Result<()> {
        for k in 0..self.binding.len() {
            if let Some(Dim::Indexed(base, i)) = &self.binding[k] {
                let bound = Dim::Indexed(base.clone(), i.subst(name, &Index::constant(value))?);
                self.set_binding(k as u32, Some(bound));
            }
        }
        Ok(())
    }

    /// Adds a variable of a given shape (the upstream gradient `G`).
    pub fn insert_var(&mut self, v: VarName, s: &Shape) {
        let s = self.lift(s);
        Rc::make_mut(&mut self.vars).insert(v.clone(), s);
    }
}

/// An operand as text, shortened for messages.
/// `e` as an operand of a postfix or product: bracketed unless an atom.
fn operand(e: &Expr) -> String {
    if crate::syntax::prec(e) == crate::syntax::Prec::Atom {
        brief(e)
    } else {
        format!("({})", brief(e))
    }
}

fn brief(e: &Expr) -> String {
    let text = e.to_string();
    if text.chars().count() <= 40 {
        text
    } else {
        format!("{}...", text.chars().take(37).collect::<String>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A product of the program's own variable nodes (looked up by
    /// address) is typed as the same product of new nodes (looked up by
    /// name), factor by factor and transposed.
    #[test]
    fn the_programs_nodes_have_their_variables_shapes() {
        let p = crate::parse("A : 3x4; B : 4x5; C : 5x2; D : 2x2; A*B*C*D + A*B*C*D^T").unwrap();
        let t = crate::shape::infer(&p).unwrap();
        let typer = t.typer();
        let mut held: Vec<Rc<Expr>> = Vec::new();
        p.expr.for_each(|e| {
            for c in e.kind.child_links() {
                if matches!(c.kind, ExprKind::Var(_)) {
                    held.push(Rc::clone(c));
                }
            }
        });
        let nodes: Vec<&Expr> = held.iter().map(|e| &**e).collect();
        assert_eq!(nodes.len(), 8);
        let fresh: Vec<Expr> = nodes
            .iter()
            .map(|e| match &e.kind {
                ExprKind::Var(v) => Expr::var(&v.name),
                _ => unreachable!("variables"),
            })
            .collect();
        assert!(nodes.iter().all(|e| typer.var_nodes.contains_key(&(*e as *const Expr))));
        assert!(fresh.iter().all(|e| !typer.var_nodes.contains_key(&(e as *const Expr))));
        for t_ in [false, true] {
            for (n, f) in nodes.iter().zip(&fresh) {
                let (by_node, by_name) = (typer.chain_shape([(*n, t_)]), typer.chain_shape([(f, t_)]));
                assert_eq!(by_node.map(|s| typer.resolve(s)), by_name.map(|s| typer.resolve(s)));
                assert!(by_node.is_some());
            }
        }
        let chain = |list: Vec<&Expr>| {
            typer.chain_shape(list.into_iter().map(|e| (e, false))).map(|s| typer.resolve(s))
        };
        // The program's first node of each name, A to D.
        let node = |name: &str| {
            *nodes.iter().find(|e| matches!(&e.kind, ExprKind::Var(v) if v.name == name)).unwrap()
        };
        let (a, b, c, d) = (node("A"), node("B"), node("C"), node("D"));
        let fresh: Vec<Expr> = ["A", "B", "C", "D"].map(Expr::var).into();
        assert_eq!(chain(vec![a, b, c, d]), chain(fresh.iter().collect()));
        assert_eq!(chain(vec![a, b, c, d]).unwrap().to_string(), "3x2");
        assert_eq!(chain(vec![b, c]).unwrap().to_string(), "4x2");
        assert_eq!(chain(vec![a, c]), None);
    }
}
