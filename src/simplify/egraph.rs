//! The e-graph language of matrix expressions, its shape analysis, and the
//! conversions from and to [`Expr`].
//!
//! Products are one n-ary node, `(* f1 f2 … fn)`, in order, and scalar
//! multiples a separate `(scale s x)`: associativity is never a rewrite, so
//! a product of 64 factors is one node, not the Catalan number of its
//! bracketings. Rules that need the whole factor list (transpose of a
//! product, the trace's cyclic rotations, factoring sums) are written in
//! Rust over that list (`rules.rs`).

use std::collections::HashMap;
use std::fmt;
use std::rc::Rc;
use std::str::FromStr;

use egg::{define_language, Analysis, DidMerge, EGraph, Id, Language, RecExpr, Symbol};

use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, IShape, Shape, Typer};
use crate::syntax::{parse_var, BinOp, Expr, ExprKind, Func, VarName};

/// A numeric literal, by its bits so that it can be hashed and ordered.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Constant(u64);

impl Constant {
    pub fn new(x: f64) -> Constant {
        Constant(if x == 0.0 { 0.0f64.to_bits() } else { x.to_bits() })
    }

    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl fmt::Display for Constant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value())
    }
}

impl FromStr for Constant {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Constant, ()> {
        s.parse::<f64>().ok().filter(|x| x.is_finite()).map(Constant::new).ok_or(())
    }
}

/// The integer exponent of `^`, kept exact: as an f64 [`Constant`],
/// `X^9007199254740993` was `X^9007199254740992`, and the two one class.
/// Written `k-1`, `k2` in patterns, apart from numbers; it has no value in
/// the analysis, so the folding of numbers never merges it with one.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Exponent(pub i64);

impl fmt::Display for Exponent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "k{}", self.0)
    }
}

impl FromStr for Exponent {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Exponent, ()> {
        s.strip_prefix('k').and_then(|k| k.parse().ok()).map(Exponent).ok_or(())
    }
}

/// The size of an identity, `#3` or `#d0`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct Size(Symbol);

impl Size {
    pub fn named(dim: &str) -> Size {
        Size(Symbol::from(dim))
    }

    /// The size when it is a number.
    pub fn value(self) -> Option<u64> {
        self.0.as_str().parse().ok()
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

impl FromStr for Size {
    type Err = ();
    fn from_str(s: &str) -> std::result::Result<Size, ()> {
        s.strip_prefix('#').map(|d| Size(Symbol::from(d))).ok_or(())
    }
}

define_language! {
    /// Matrix expressions in the e-graph: the operators of the language
    /// under their e-graph names (`"*"` is an n-ary product, `"scale"` a
    /// 1×1 factor times a matrix), numbers, exponents, sizes and leaves.
    // `define_language!` takes no attributes on variants; each is named by
    // the operator it stands for.
    #[allow(missing_docs)]
    pub enum Mat {
        "+" = Add([Id; 2]),
        "neg" = Neg(Id),
        "*" = Mul(Box<[Id]>),
        "scale" = Scale([Id; 2]),
        "T" = Trans(Id),
        "^" = Pow([Id; 2]),
        ".*" = Had([Id; 2]),
        "./" = HadDiv([Id; 2]),
        ".^" = HadPow([Id; 2]),
        "/" = Div([Id; 2]),
        "I" = Ident(Id),
        "tr" = Tr(Id),
        "det" = Det(Id),
        "logdet" = Logdet(Id),
        "exp" = Exp(Id),
        "log" = Log(Id),
        "sqrt" = Sqrt(Id),
        "sin" = Sin(Id),
        "cos" = Cos(Id),
        "tanh" = Tanh(Id),
        "sigmoid" = Sigmoid(Id),
        "relu" = Relu(Id),
        "abs" = Abs(Id),
        "sign" = Sign(Id),
        "step" = Step(Id),
        "softplus" = Softplus(Id),
        "tan" = Tan(Id),
        "arcsin" = Arcsin(Id),
        "arccos" = Arccos(Id),
        "arctan" = Arctan(Id),
        "sinh" = Sinh(Id),
        "cosh" = Cosh(Id),
        "log1p" = Log1p(Id),
        "max" = Max([Id; 2]),
        "min" = Min([Id; 2]),
        "sum" = Sum(Id),
        "norm" = Norm(Id),
        "norm1" = Norm1(Id),
        "norm2" = Norm2(Id),
        "diag" = Diag(Id),
        "sum1" = SumCols(Id),
        "sum2" = SumRows(Id),
        "softmax" = Softmax(Id),
        "logsumexp" = Logsumexp(Id),
        "kron" = Kron([Id; 2]),
        "vec" = Vec(Id),
        Num(Constant),
        Exponent(Exponent),
        Size(Size),
        Leaf(Symbol),
    }
}

/// Per e-class: its shape and, for numbers, its value.
#[derive(Clone, Debug, Default)]
pub struct Data {
    pub shape: Option<Shape>,
    pub constant: Option<f64>,
}

/// The shape analysis. It knows the shape of every leaf; a merge of two
/// classes of different shapes is a bug in a rule, recorded in `conflict`.
#[derive(Clone, Debug, Default)]
pub struct Shapes {
    pub leaves: HashMap<Symbol, Shape>,
    pub conflict: Option<String>,
    /// Most factors a product built by the rules may have: the number of
    /// leaves of the inputs. Equalities like `B = A C A` and `C = A^-1 B
    /// A^-1` would otherwise unfold into ever longer products.
    pub longest: usize,
}

pub type MatGraph = EGraph<Mat, Shapes>;

fn square(d: Dim) -> Shape {
    Shape::new(d.clone(), d)
}

impl Analysis<Mat> for Shapes {
    type Data = Data;

    fn make(egraph: &mut MatGraph, enode: &Mat, _id: Id) -> Data {
        let shape = |id: &Id| egraph[*id].data.shape.clone();
        let constant = |id: &Id| egraph[*id].data.constant;
        let value = match enode {
            Mat::Num(c) => Some(c.value()),
            Mat::Neg(a) => constant(a).map(|x| -x),
            Mat::Add([a, b]) => constant(a).zip(constant(b)).map(|(x, y)| x + y),
            Mat::Scale([a, b]) => constant(a).zip(constant(b)).map(|(x, y)| x * y),
            _ => None,
        };
        let scalar = Some(Shape::scalar());
        let shape = match enode {
            Mat::Num(_) => scalar,
            Mat::Size(_) | Mat::Exponent(_) => None,
            Mat::Leaf(s) => egraph.analysis.leaves.get(s).cloned(),
            Mat::Ident(n) => match &egraph[*n].nodes[0] {
                Mat::Size(Size(d)) => Some(square(dim_of(*d))),
                _ => None,
            },
            Mat::Mul(fs) => match (shape(&fs[0]), shape(&fs[fs.len() - 1])) {
                (Some(a), Some(b)) => Some(Shape::new(a.rows, b.cols)),
                _ => None,
            },
            Mat::Scale([_, x]) => shape(x),
            Mat::Add([a, b])
            | Mat::Had([a, b])
            | Mat::HadDiv([a, b])
            | Mat::Max([a, b])
            | Mat::Min([a, b]) => match (shape(a), shape(b)) {
                (Some(x), Some(y)) if x.is_scalar() => Some(y),
                (x, _) => x,
            },
            Mat::Neg(a) | Mat::Pow([a, _]) | Mat::HadPow([a, _]) | Mat::Div([a, _]) => shape(a),
            Mat::Exp(a)
            | Mat::Log(a)
            | Mat::Sqrt(a)
            | Mat::Sin(a)
            | Mat::Cos(a)
            | Mat::Tanh(a)
            | Mat::Sigmoid(a)
            | Mat::Relu(a)
            | Mat::Abs(a)
            | Mat::Sign(a)
            | Mat::Step(a)
            | Mat::Softplus(a)
            | Mat::Tan(a)
            | Mat::Arcsin(a)
            | Mat::Arccos(a)
            | Mat::Arctan(a)
            | Mat::Sinh(a)
            | Mat::Cosh(a)
            | Mat::Log1p(a)
            | Mat::Softmax(a) => shape(a),
            Mat::SumCols(a) | Mat::Logsumexp(a) => shape(a).map(|s| Shape::new(Dim::Const(1), s.cols)),
            Mat::SumRows(a) => shape(a).map(|s| Shape::new(s.rows, Dim::Const(1))),

            Mat::Trans(a) => shape(a).map(|s| s.transposed()),
            Mat::Tr(_)
            | Mat::Det(_)
            | Mat::Logdet(_)
            | Mat::Sum(_)
            | Mat::Norm(_)
            | Mat::Norm1(_)
            | Mat::Norm2(_) => scalar,
            Mat::Diag(a) => shape(a).map(|s| s.diag()),
            Mat::Kron([a, b]) => shape(a)
                .zip(shape(b))
                .and_then(|(x, y)| Some(Shape::new(x.rows.times(&y.rows)?, x.cols.times(&y.cols)?))),
            Mat::Vec(a) => shape(a).and_then(|s| Some(Shape::new(s.rows.times(&s.cols)?, Dim::Const(1)))),
        };
        Data { shape, constant: value }
    }

    fn merge(&mut self, a: &mut Data, b: Data) -> DidMerge {
        let mut changed = DidMerge(false, false);
        match (&a.shape, b.shape) {
            (None, Some(s)) => {
                a.shape = Some(s);
                changed.0 = true;
            }
            (Some(x), Some(y)) if *x != y && self.conflict.is_none() => {
                self.conflict = Some(format!("a rule equated shapes {x} and {y}"));
            }
            _ => {}
        }
        if a.constant.is_none() && b.constant.is_some() {
            a.constant = b.constant;
            changed.0 = true;
        }
        changed
    }

    /// Folds numbers: a class with a known value gets the literal.
    fn modify(egraph: &mut MatGraph, id: Id) {
        if let Some(x) = egraph[id].data.constant {
            if x.is_finite() && !egraph[id].nodes.iter().any(|n| matches!(n, Mat::Num(_))) {
                let literal = egraph.add(Mat::Num(Constant::new(x)));
                egraph.union(id, literal);
            }
        }
    }
}

fn dim_of(s: Symbol) -> Dim {
    let text = s.as_str();
    if let Some(k) = text.strip_prefix('?').and_then(|k| k.parse::<u32>().ok()) {
        return Dim::Unknown(k);
    }
    match text.parse::<u64>() {
        Ok(n) => Dim::Const(n),
        Err(_) => Dim::Symbol(text.to_string()),
    }
}

/// Builds e-graph expressions from [`Expr`]s typed against one [`Typer`],
/// and turns extracted ones back.
pub struct Converter {
    typer: Typer,
    leaves: HashMap<Symbol, Shape>,
    names: HashMap<Symbol, VarName>,
    /// Constructs the e-graph does not model (`prod`, differentials), kept
    /// whole as leaves `@0`, `@1`, ….
    opaque: Vec<Expr>,
    /// Leaves of the expressions built so far.
    leaf_count: usize,
}

impl Converter {
    pub fn new(typer: &Typer) -> Converter {
        Converter {
            typer: typer.clone(),
            leaves: HashMap::new(),
            names: HashMap::new(),
            opaque: vec![],
            leaf_count: 0,
        }
    }

    /// The leaf shapes seen so far, for the analysis.
    pub fn shapes(&self) -> Shapes {
        Shapes { leaves: self.leaves.clone(), conflict: None, longest: self.leaf_count.max(2) }
    }

    /// `e` as an e-graph expression; `expect` is its shape when the context
    /// fixes it (a gradient has its variable's shape), which sizes a bare `I`.
    pub fn build(&mut self, e: &Expr, expect: Option<&Shape>) -> Result<RecExpr<Mat>> {
        let mut shapes: HashMap<*const Expr, IShape> = HashMap::new();
        let root = self.typer.infer_with(e, &mut |node, s| {
            shapes.insert(node as *const Expr, s);
        })?;
        if let Some(want) = expect {
            let want = self.typer.lift(want);
            self.typer.unify_shapes(root, want);
        }
        let mut rec = RecExpr::default();
        self.add(e, &shapes, &mut rec)?;
        self.leaf_count += rec.as_ref().iter().filter(|n| matches!(n, Mat::Leaf(_) | Mat::Ident(_))).count();
        Ok(rec)
    }

    fn shape(&self, shapes: &HashMap<*const Expr, IShape>, e: &Expr) -> Result<IShape> {
        shapes
            .get(&(e as *const Expr))
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::Internal, format!("no shape for `{e}`")))
    }

    fn leaf(&mut self, name: String, shape: Shape, rec: &mut RecExpr<Mat>) -> Id {
        let sym = Symbol::from(name);
        self.leaves.insert(sym, shape);
        rec.add(Mat::Leaf(sym))
    }

    fn add(&mut self, e: &Expr, shapes: &HashMap<*const Expr, IShape>, rec: &mut RecExpr<Mat>) -> Result<Id> {
        // Explicit recursion, not a fold: product chains are read whole, a
        // scalar side goes first, and `prod` bodies are not entered.
        crate::stack::ensure(|| {
            let resolved =
                |c: &Converter, e: &Expr| -> Result<Shape> { Ok(c.typer.resolve(c.shape(shapes, e)?)) };
            let num = |rec: &mut RecExpr<Mat>, x: f64| rec.add(Mat::Num(Constant::new(x)));
            Ok(match &e.kind {
                ExprKind::Var(v) => {
                    let s = resolved(self, e)?;
                    let id = self.leaf(v.to_string(), s, rec);
                    if let Mat::Leaf(sym) = rec[id] {
                        self.names.insert(sym, VarName::clone(v));
                    }
                    id
                }
                ExprKind::Num(x) => num(rec, *x),
                ExprKind::Identity => {
                    // An inferred size the typer left open is `?k`, as in
                    // the leaves' shapes: `G^T * I` with G of size ?k keeps
                    // one size (a fresh name would make `A * I = A` equate
                    // two shapes).
                    let size = resolved(self, e)?.rows.to_string();
                    let n = rec.add(Mat::Size(Size(Symbol::from(size))));
                    rec.add(Mat::Ident(n))
                }
                ExprKind::Neg(a) => {
                    let a = self.add(a, shapes, rec)?;
                    rec.add(Mat::Neg(a))
                }
                ExprKind::Transpose(a) => {
                    let a = self.add(a, shapes, rec)?;
                    rec.add(Mat::Trans(a))
                }
                ExprKind::Power(a, k) => {
                    let a = self.add(a, shapes, rec)?;
                    let k = rec.add(Mat::Exponent(Exponent(*k)));
                    rec.add(Mat::Pow([a, k]))
                }
                ExprKind::HadamardPower(a, p) => {
                    let a = self.add(a, shapes, rec)?;
                    let p = num(rec, *p);
                    rec.add(Mat::HadPow([a, p]))
                }
                ExprKind::Call(f, a) => {
                    let a = self.add(a, shapes, rec)?;
                    rec.add(match f {
                        Func::Tr => Mat::Tr(a),
                        Func::Det => Mat::Det(a),
                        Func::Logdet => Mat::Logdet(a),
                        Func::Exp => Mat::Exp(a),
                        Func::Log => Mat::Log(a),
                        Func::Sqrt => Mat::Sqrt(a),
                        Func::Sin => Mat::Sin(a),
                        Func::Cos => Mat::Cos(a),
                        Func::Tanh => Mat::Tanh(a),
                        Func::Sigmoid => Mat::Sigmoid(a),
                        Func::Relu => Mat::Relu(a),
                        Func::Abs => Mat::Abs(a),
                        Func::Sign => Mat::Sign(a),
                        Func::Step => Mat::Step(a),
                        Func::Softplus => Mat::Softplus(a),
                        Func::Tan => Mat::Tan(a),
                        Func::Arcsin => Mat::Arcsin(a),
                        Func::Arccos => Mat::Arccos(a),
                        Func::Arctan => Mat::Arctan(a),
                        Func::Sinh => Mat::Sinh(a),
                        Func::Cosh => Mat::Cosh(a),
                        Func::Log1p => Mat::Log1p(a),
                        Func::Sum => Mat::Sum(a),
                        Func::Norm => Mat::Norm(a),
                        Func::Norm1 => Mat::Norm1(a),
                        Func::Norm2 => Mat::Norm2(a),
                        Func::Diag => Mat::Diag(a),
                        Func::SumCols => Mat::SumCols(a),
                        Func::SumRows => Mat::SumRows(a),
                        Func::Softmax => Mat::Softmax(a),
                        Func::Logsumexp => Mat::Logsumexp(a),
                        Func::Vec => Mat::Vec(a),
                    })
                }
                ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
                    let (sa, sb) = (self.shape(shapes, lhs)?, self.shape(shapes, rhs)?);
                    if self.typer.is_scaling(sa, sb) {
                        let (s, m) = if self.typer.is_scalar(sa) { (lhs, rhs) } else { (rhs, lhs) };
                        let s = self.add(s, shapes, rec)?;
                        let m = self.add(m, shapes, rec)?;
                        rec.add(Mat::Scale([s, m]))
                    } else {
                        let mut factors = vec![];
                        self.factors(e, shapes, rec, &mut factors)?;
                        rec.add(Mat::Mul(factors.into_boxed_slice()))
                    }
                }
                ExprKind::Binary { op, lhs, rhs, .. } => {
                    let a = self.add(lhs, shapes, rec)?;
                    let b = self.add(rhs, shapes, rec)?;
                    let b = if *op == BinOp::Sub { rec.add(Mat::Neg(b)) } else { b };
                    rec.add(match op {
                        BinOp::Add | BinOp::Sub => Mat::Add([a, b]),
                        BinOp::Hadamard => Mat::Had([a, b]),
                        BinOp::HadamardDiv => Mat::HadDiv([a, b]),
                        BinOp::Max => Mat::Max([a, b]),
                        BinOp::Min => Mat::Min([a, b]),
                        BinOp::Kron => Mat::Kron([a, b]),
                        BinOp::Div => Mat::Div([a, b]),
                        // One node with the literal power: its exponent a class
                        // that may be a number (then `X .^ 2` when read back).
                        BinOp::Power => Mat::HadPow([a, b]),
                        BinOp::Mul => unreachable!("handled above"),
                    })
                }
                ExprKind::Prod(_) | ExprKind::Ones(_) => {
                    // Equal constructs are one leaf, so that they can cancel and match.
                    let s = resolved(self, e)?;
                    let k = match self.opaque.iter().position(|o| o == e) {
                        Some(k) => k,
                        None => {
                            self.opaque.push(e.clone());
                            self.opaque.len() - 1
                        }
                    };
                    self.leaf(format!("@{k}"), s, rec)
                }
            })
        })
    }

    /// The factors of a chain of matrix products, in order (a worklist: a
    /// chain is as long as its input).
    fn factors(
        &mut self,
        e: &Expr,
        shapes: &HashMap<*const Expr, IShape>,
        rec: &mut RecExpr<Mat>,
        out: &mut Vec<Id>,
    ) -> Result<()> {
        let mut stack = vec![e];
        while let Some(e) = stack.pop() {
            if let ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } = &e.kind {
                let (sa, sb) = (self.shape(shapes, lhs)?, self.shape(shapes, rhs)?);
                if !self.typer.is_scaling(sa, sb) {
                    stack.push(rhs);
                    stack.push(lhs);
                    continue;
                }
            }
            out.push(self.add(e, shapes, rec)?);
        }
        Ok(())
    }

    /// An extracted expression back as an [`Expr`].
    pub fn read_back(&self, rec: &RecExpr<Mat>) -> Result<Expr> {
        self.back(rec, Id::from(rec.as_ref().len() - 1))
    }

    fn back(&self, rec: &RecExpr<Mat>, id: Id) -> Result<Expr> {
        // Explicit recursion: this walks the extracted `RecExpr`, not an `Expr`.
        crate::stack::ensure(|| {
            let b = |i: &Id| self.back(rec, *i);
            let rc = |e: Expr| Rc::new(e);
            let node = &rec[id];
            let constant = |i: &Id| match &rec[*i] {
                Mat::Num(c) => Ok(c.value()),
                other => {
                    Err(Error::new(ErrorKind::Internal, format!("an exponent is `{other}`, not a number")))
                }
            };
            let exponent = |i: &Id| match &rec[*i] {
                Mat::Exponent(k) => Ok(k.0),
                other => Err(Error::new(
                    ErrorKind::Internal,
                    format!("a power's exponent is `{other}`, not an integer"),
                )),
            };
            let call = |f: Func, a: &Id| -> Result<Expr> { Ok(Expr::call(f, b(a)?)) };
            Ok(match node {
                Mat::Num(c) => {
                    let x = c.value();
                    if x < 0.0 || (x == 0.0 && x.is_sign_negative()) {
                        Expr::negate(Expr::num(-x))
                    } else {
                        Expr::num(x)
                    }
                }
                Mat::Leaf(s) => match s.as_str().strip_prefix('@') {
                    Some(k) => self.opaque[k.parse::<usize>().expect("opaque index")].clone(),
                    None => match self.names.get(s) {
                        Some(v) => Expr::synthetic(ExprKind::Var(Rc::new(v.clone()))),
                        None => Expr::synthetic(ExprKind::Var(Rc::new(parse_var(s.as_str())?))),
                    },
                },
                Mat::Size(_) => return Err(Error::new(ErrorKind::Internal, "a size outside an identity")),
                Mat::Exponent(_) => {
                    return Err(Error::new(ErrorKind::Internal, "an exponent outside a power"))
                }
                Mat::Ident(_) => Expr::identity(),
                Mat::Add([x, y]) => match &rec[*y] {
                    Mat::Neg(z) => Expr::minus(b(x)?, b(z)?),
                    _ => Expr::plus(b(x)?, b(y)?),
                },
                Mat::Neg(x) => Expr::negate(b(x)?),
                Mat::Mul(fs) => {
                    let parts = fs.iter().map(b).collect::<Result<Vec<_>>>()?;
                    Expr::product_of(parts).expect("a product has factors")
                }
                Mat::Scale([s, x]) => Expr::product(b(s)?, b(x)?),
                Mat::Trans(x) => Expr::transpose(b(x)?),
                Mat::Pow([x, k]) => Expr::synthetic(ExprKind::Power(rc(b(x)?), exponent(k)?)),
                Mat::HadPow([x, p]) => match &rec[*p] {
                    Mat::Num(_) => Expr::synthetic(ExprKind::HadamardPower(rc(b(x)?), constant(p)?)),
                    _ => Expr::binary(BinOp::Power, b(x)?, b(p)?),
                },
                Mat::Had([x, y]) => Expr::binary(BinOp::Hadamard, b(x)?, b(y)?),
                Mat::HadDiv([x, y]) => Expr::binary(BinOp::HadamardDiv, b(x)?, b(y)?),
                Mat::Max([x, y]) => Expr::binary(BinOp::Max, b(x)?, b(y)?),
                Mat::Min([x, y]) => Expr::binary(BinOp::Min, b(x)?, b(y)?),
                Mat::Div([x, y]) => Expr::binary(BinOp::Div, b(x)?, b(y)?),
                Mat::Tr(x) => call(Func::Tr, x)?,
                Mat::Det(x) => call(Func::Det, x)?,
                Mat::Logdet(x) => call(Func::Logdet, x)?,
                Mat::Exp(x) => call(Func::Exp, x)?,
                Mat::Log(x) => call(Func::Log, x)?,
                Mat::Sqrt(x) => call(Func::Sqrt, x)?,
                Mat::Sin(x) => call(Func::Sin, x)?,
                Mat::Cos(x) => call(Func::Cos, x)?,
                Mat::Tanh(x) => call(Func::Tanh, x)?,
                Mat::Sigmoid(x) => call(Func::Sigmoid, x)?,
                Mat::Relu(x) => call(Func::Relu, x)?,
                Mat::Abs(x) => call(Func::Abs, x)?,
                Mat::Sign(x) => call(Func::Sign, x)?,
                Mat::Step(x) => call(Func::Step, x)?,
                Mat::Softplus(x) => call(Func::Softplus, x)?,
                Mat::Tan(x) => call(Func::Tan, x)?,
                Mat::Arcsin(x) => call(Func::Arcsin, x)?,
                Mat::Arccos(x) => call(Func::Arccos, x)?,
                Mat::Arctan(x) => call(Func::Arctan, x)?,
                Mat::Sinh(x) => call(Func::Sinh, x)?,
                Mat::Cosh(x) => call(Func::Cosh, x)?,
                Mat::Log1p(x) => call(Func::Log1p, x)?,
                Mat::Sum(x) => call(Func::Sum, x)?,
                Mat::Norm(x) => call(Func::Norm, x)?,
                Mat::Norm1(x) => call(Func::Norm1, x)?,
                Mat::Norm2(x) => call(Func::Norm2, x)?,
                Mat::Diag(x) => call(Func::Diag, x)?,
                Mat::SumCols(x) => call(Func::SumCols, x)?,
                Mat::SumRows(x) => call(Func::SumRows, x)?,
                Mat::Softmax(x) => call(Func::Softmax, x)?,
                Mat::Logsumexp(x) => call(Func::Logsumexp, x)?,
                Mat::Kron([x, y]) => Expr::binary(BinOp::Kron, b(x)?, b(y)?),
                Mat::Vec(x) => call(Func::Vec, x)?,
            })
        })
    }
}

/// Whether a node is a leaf for the cost of transposes.
pub fn is_atom(node: &Mat) -> bool {
    node.is_leaf() || matches!(node, Mat::Ident(_))
}
