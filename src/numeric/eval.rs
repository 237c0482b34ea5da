//! Evaluation of expressions on nalgebra matrices (f64).

use std::collections::HashMap;

use std::cell::Cell;

use nalgebra::DMatrix;

use super::Deadline;

use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};

/// A dense matrix of f64, the values of evaluation.
pub type Matrix = DMatrix<f64>;

/// Values of the variables. Family members are stored under constant
/// indices (`W[2]`).
#[derive(Clone, Debug, Default)]
pub struct Env {
    /// Values of the variables, by name.
    pub vars: HashMap<VarName, Matrix>,
    /// Values of free index symbols (`n`, `j`).
    pub indices: Vec<(String, i64)>,
    /// Sizes of the named dimensions (`m`, `d[2]`): what sizes a `ones(m, n)`
    /// that nothing beside it sizes (`x / sum(ones(m, n))`).
    pub sizes: Vec<(String, usize)>,
}

/// Evaluates `e`. With the expected shape of the result given, every `I`
/// whose size only that shape decides (a gradient `a * I`) gets it.
///
/// ```
/// use matdiff::numeric::{eval, Env, Matrix};
/// let mut env = Env::default();
/// env.vars.insert(matdiff::syntax::parse_var("A").unwrap(), Matrix::from_row_slice(2, 2, &[1., 2., 3., 4.]));
/// let e = matdiff::syntax::parse_expr("tr(A^T * A)").unwrap();
/// assert_eq!(eval(&e, &env, None).unwrap()[(0, 0)], 30.0);
/// ```
pub fn eval(e: &Expr, env: &Env, shape: Option<(usize, usize)>) -> Result<Matrix> {
    Evaluator::new(e, env, shape).eval(env)
}

/// An expression ready to evaluate on instances of fixed sizes: the size of
/// every `I` is settled once by shape inference against the variables'
/// sizes (`s - I` with a 1×1 s broadcasts s over an I that only the context
/// sizes), then each evaluation is a plain walk.
pub struct Evaluator<'e> {
    expr: &'e Expr,
    identity: HashMap<*const Expr, usize>,
    ones: HashMap<*const Expr, (usize, usize)>,
    shape: Option<(usize, usize)>,
    deadline: Option<Deadline>,
    /// Operations since the clock was last read.
    ticks: Cell<u32>,
    /// Values of subtrees that do not change (see [`Evaluator::varying_only`]).
    held: HashMap<*const Expr, Value>,
}

impl<'e> Evaluator<'e> {
    /// An evaluator of `expr` on the values in `env`; `shape`, when given, is the result's expected shape.
    pub fn new(expr: &'e Expr, env: &Env, shape: Option<(usize, usize)>) -> Evaluator<'e> {
        // Named sizes of `ones(…)` are open: the variables' sizes decide them.
        let mut typer = Typer::new().with_open_ones();
        for (name, n) in &env.sizes {
            typer.size_open_name(name, *n as u64);
        }
        for (v, m) in &env.vars {
            let shape = Shape::new(Dim::Const(m.nrows() as u64), Dim::Const(m.ncols() as u64));
            typer.insert_var(v.clone(), &shape);
        }
        let mut nodes = Vec::new();
        let inferred = typer.infer_with(expr, &mut |e, s| {
            if matches!(e.kind, ExprKind::Identity | ExprKind::Ones(_)) {
                nodes.push((e as *const Expr, s, matches!(e.kind, ExprKind::Ones(_))));
            }
        });
        let (mut identity, mut ones) = (HashMap::new(), HashMap::new());
        if let (Ok(got), Some((r, c))) = (&inferred, shape) {
            let want = typer.lift(&Shape::new(Dim::Const(r as u64), Dim::Const(c as u64)));
            typer.unify_shapes(*got, want);
        }
        if inferred.is_ok() {
            for (node, s, is_ones) in nodes {
                match (typer.resolve_dim(s.rows), typer.resolve_dim(s.cols)) {
                    (Dim::Const(r), Dim::Const(c)) if is_ones => {
                        ones.insert(node, (r as usize, c as usize));
                    }
                    (Dim::Const(n), _) if !is_ones => {
                        identity.insert(node, n as usize);
                    }
                    _ => {}
                }
            }
        }
        Evaluator { expr, identity, ones, shape, deadline: None, ticks: Cell::new(0), held: HashMap::new() }
    }

    /// The evaluator, stopping with a limit error once `deadline` passes
    /// (checked between operations: one product of two 1000x1000 matrices
    /// is the longest wait).
    pub fn within(mut self, deadline: Deadline) -> Evaluator<'e> {
        self.deadline = Some(deadline);
        self
    }

    /// The evaluator for environments that differ from `env` only in the
    /// variables named `name` (finite differences in one variable): the
    /// largest subtrees that do not mention them are evaluated once, here,
    /// and read back on every evaluation after. (Not inside a product,
    /// whose body depends on its index.)
    ///
    /// ```
    /// use matdiff::numeric::{Env, Evaluator, Matrix};
    /// use matdiff::syntax::{parse_expr, parse_var};
    /// let e = parse_expr("sum(tanh(A * B) .* (C * D))").unwrap();
    /// let mut env = Env::default();
    /// for (k, name) in ["A", "B", "C", "D"].into_iter().enumerate() {
    ///     let m = Matrix::from_fn(2, 2, |i, j| (k + 2 * i + j) as f64 / 10.0);
    ///     env.vars.insert(parse_var(name).unwrap(), m);
    /// }
    /// let held = Evaluator::new(&e, &env, None).varying_only("C", &env).unwrap();
    /// // C moves: the held evaluator agrees with a fresh one.
    /// env.vars.get_mut(&parse_var("C").unwrap()).unwrap()[(0, 1)] += 0.5;
    /// let fresh = Evaluator::new(&e, &env, None).eval(&env).unwrap();
    /// assert_eq!(held.eval(&env).unwrap(), fresh);
    /// ```
    pub fn varying_only(mut self, name: &str, env: &Env) -> Result<Evaluator<'e>> {
        // Which nodes mention the variable, bottom-up in one pass.
        let mut mentioning = std::collections::HashSet::new();
        self.expr.try_fold(&mut |e, kids: crate::syntax::Kids<bool>| -> Result<bool> {
            let here = kids.into_iter().any(|k| k) || matches!(&e.kind, ExprKind::Var(v) if v.name == name);
            if here {
                mentioning.insert(e as *const Expr);
            }
            Ok(here)
        })?;
        let mut held = HashMap::new();
        let mut todo = vec![self.expr];
        while let Some(e) = todo.pop() {
            let mentions = mentioning.contains(&(e as *const Expr));
            match &e.kind {
                // A leaf costs nothing to read.
                ExprKind::Var(_) | ExprKind::Num(_) | ExprKind::Ones(_) | ExprKind::Identity => {}
                _ if !mentions => {
                    let value = self.eval_in(e, env, &mut env.indices.clone())?;
                    held.insert(e as *const Expr, value);
                }
                ExprKind::Prod(_) => {}
                _ => todo.extend(e.children()),
            }
        }
        self.held = held;
        Ok(self)
    }

    /// Reads the clock every few operations, and after every large one.
    fn tick(&self, large: bool) -> Result<()> {
        let Some(deadline) = &self.deadline else { return Ok(()) };
        let n = self.ticks.get() + 1;
        if large || n >= 64 {
            self.ticks.set(0);
            deadline.check()
        } else {
            self.ticks.set(n);
            Ok(())
        }
    }

    /// The value; a result that is a bare `I` of open size gets the shape.
    pub fn eval(&self, env: &Env) -> Result<Matrix> {
        match self.eval_in(self.expr, env, &mut env.indices.clone())? {
            Value::Matrix(m) => Ok(m),
            Value::Identity(c) => match self.shape {
                Some((n, _)) => Ok(Matrix::identity(n, n) * c),
                None => Err(fail(format!("the size of I in `{}` is not determined", self.expr))),
            },
        }
    }
}

/// An intermediate value: a matrix, or c·I whose size the context decides.
#[derive(Clone, Debug)]
enum Value {
    Matrix(Matrix),
    Identity(f64),
}

fn fail(message: String) -> Error {
    Error::new(ErrorKind::Internal, message)
}

fn matrix(v: Value, what: &Expr) -> Result<Matrix> {
    match v {
        Value::Matrix(m) => Ok(m),
        Value::Identity(_) => Err(fail(format!("the size of I in `{what}` is not determined"))),
    }
}

fn is_one(m: &Matrix) -> bool {
    m.nrows() == 1 && m.ncols() == 1
}

/// Entrywise `f(a, b)` with a 1×1 side broadcast.
pub(super) fn zip(a: &Matrix, b: &Matrix, f: impl Fn(f64, f64) -> f64) -> Option<Matrix> {
    if a.shape() == b.shape() {
        Some(a.zip_map(b, f))
    } else if is_one(a) {
        Some(b.map(|y| f(a[(0, 0)], y)))
    } else if is_one(b) {
        Some(a.map(|x| f(x, b[(0, 0)])))
    } else {
        None
    }
}

fn bound_index(i: &Index, bound: &[(String, i64)]) -> Result<Index> {
    bound.iter().try_fold(i.clone(), |i, (name, value)| i.subst(name, &Index::constant(*value)))
}

impl Evaluator<'_> {
    fn eval_in(&self, e: &Expr, env: &Env, bound: &mut Vec<(String, i64)>) -> Result<Value> {
        // Explicit recursion, not a fold: a `prod` evaluates its body once
        // per index, with the index bound.
        if let Some(v) = self.held.get(&(e as *const Expr)) {
            return Ok(v.clone());
        }
        crate::stack::ensure(|| {
            let m = |v: Value| matrix(v, e);
            Ok(Value::Matrix(match &e.kind {
                ExprKind::Num(x) => Matrix::from_element(1, 1, *x),
                ExprKind::Ones(_) => match self.ones.get(&(e as *const Expr)) {
                    Some(&(r, c)) => Matrix::from_element(r, c, 1.0),
                    None => return Err(fail(format!("the size of `{e}` is not determined"))),
                },
                ExprKind::Identity => match self.identity.get(&(e as *const Expr)) {
                    Some(&n) => Matrix::identity(n, n),
                    None => return Ok(Value::Identity(1.0)),
                },
                ExprKind::Var(v) => {
                    let key = VarName {
                        name: v.name.clone(),
                        index: v.index.as_ref().map(|i| bound_index(i, bound)).transpose()?,
                    };
                    env.vars.get(&key).cloned().ok_or_else(|| fail(format!("no value for `{key}`")))?
                }
                ExprKind::Neg(a) => match self.eval_in(a, env, bound)? {
                    Value::Identity(c) => return Ok(Value::Identity(-c)),
                    Value::Matrix(x) => -x,
                },
                ExprKind::Transpose(a) => match self.eval_in(a, env, bound)? {
                    Value::Identity(c) => return Ok(Value::Identity(c)),
                    Value::Matrix(x) => x.transpose(),
                },
                ExprKind::Binary { op, lhs, rhs, .. } => {
                    let (a, b) = (self.eval_in(lhs, env, bound)?, self.eval_in(rhs, env, bound)?);
                    let value = binary(*op, a, b, e)?;
                    self.tick(matches!(&value, Value::Matrix(m) if m.len() > 10_000))?;
                    return Ok(value);
                }
                ExprKind::Power(a, k) => {
                    let x = m(self.eval_in(a, env, bound)?)?;
                    if x.nrows() != x.ncols() {
                        return Err(fail(format!("power of a non-square matrix in `{e}`")));
                    }
                    let base = if *k < 0 {
                        x.try_inverse().ok_or_else(|| {
                            Error::new(ErrorKind::Usage, format!("`{a}` is singular on this instance"))
                        })?
                    } else {
                        x
                    };
                    // By squaring: |k| may be anything the parser accepts.
                    let n = base.nrows();
                    let (mut result, mut square, mut k) = (Matrix::identity(n, n), base, k.unsigned_abs());
                    while k > 0 {
                        self.tick(n > 100)?;
                        if k & 1 == 1 {
                            result = &result * &square;
                        }
                        k >>= 1;
                        if k > 0 {
                            square = &square * &square;
                        }
                    }
                    result
                }
                ExprKind::HadamardPower(a, p) => m(self.eval_in(a, env, bound)?)?.map(|x| x.powf(*p)),
                ExprKind::Call(f, a) => {
                    let x = m(self.eval_in(a, env, bound)?)?;
                    self.tick(x.len() > 10_000)?;
                    call(*f, &x)
                }
                ExprKind::Prod(prod) => {
                    let crate::syntax::Prod { body, var, lo, hi } = &**prod;
                    let (lo, hi) = (bound_index(lo, bound)?, bound_index(hi, bound)?);
                    let (Some(lo), Some(hi)) = (lo.as_constant(), hi.as_constant()) else {
                        return Err(fail(format!("the range of `{e}` is not numeric")));
                    };
                    let mut acc = Value::Identity(1.0);
                    for i in lo..=hi {
                        self.tick(false)?;
                        bound.push((var.clone(), i));
                        let factor = self.eval_in(body, env, bound);
                        bound.pop();
                        acc = binary(BinOp::Mul, acc, factor?, e)?;
                    }
                    return Ok(acc);
                }
            }))
        })
    }
}

/// A function of the language applied to a matrix: the one place that
/// says what `tr`, `logdet`, `sigmoid`, … compute.
pub(super) fn call(f: Func, x: &Matrix) -> Matrix {
    let scalar = |v: f64| Matrix::from_element(1, 1, v);
    match f {
        Func::Tr => scalar(x.trace()),
        Func::Det => scalar(x.determinant()),
        Func::Logdet => scalar(x.determinant().abs().ln()),
        Func::Sum => scalar(x.sum()),
        Func::Norm | Func::Norm2 => scalar(x.norm()),
        Func::Norm1 => scalar(x.iter().map(|v| v.abs()).sum()),
        // A vector (1×1 too: both readings agree) to its diagonal matrix, a
        // square matrix to the column of its diagonal.
        Func::Diag if x.nrows() == 1 || x.ncols() == 1 => {
            Matrix::from_diagonal(&nalgebra::DVector::from_iterator(x.len(), x.iter().copied()))
        }
        Func::Diag => {
            let n = x.nrows().min(x.ncols());
            Matrix::from_fn(n, 1, |i, _| x[(i, i)])
        }
        // nalgebra stores column-major: its order is vec's.
        Func::Vec => Matrix::from_column_slice(x.len(), 1, x.as_slice()),
        Func::Sign => x.map(sign),
        Func::Exp => x.map(f64::exp),
        Func::Log => x.map(f64::ln),
        Func::Sqrt => x.map(f64::sqrt),
        Func::Sin => x.map(f64::sin),
        Func::Cos => x.map(f64::cos),
        Func::Tanh => x.map(f64::tanh),
        Func::Sigmoid => x.map(|v| 1.0 / (1.0 + (-v).exp())),
        Func::Relu => x.map(|v| if v < 0.0 { 0.0 } else { v }),
        Func::Abs => x.map(f64::abs),
        Func::Step => x.map(step),
        Func::Softplus => x.map(softplus),
        Func::Tan => x.map(f64::tan),
        Func::Arcsin => x.map(f64::asin),
        Func::Arccos => x.map(f64::acos),
        Func::Arctan => x.map(f64::atan),
        Func::Sinh => x.map(f64::sinh),
        Func::Cosh => x.map(f64::cosh),
        Func::Log1p => x.map(f64::ln_1p),
        Func::SumCols => Matrix::from_fn(1, x.ncols(), |_, j| x.column(j).sum()),
        Func::SumRows => Matrix::from_fn(x.nrows(), 1, |i, _| x.row(i).sum()),
        Func::Softmax => softmax(x),
        Func::Logsumexp => Matrix::from_fn(1, x.ncols(), |_, j| logsumexp(x.column(j).iter().copied())),
    }
}

/// -1, 0 or 1 (`f64::signum` gives 1 at 0); NaN stays NaN.
fn sign(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v < 0.0 {
        -1.0
    } else {
        v * 0.0
    }
}

/// 1 where v > 0, 0 where v <= 0; NaN stays NaN.
fn step(v: f64) -> f64 {
    if v > 0.0 {
        1.0
    } else if v <= 0.0 {
        0.0
    } else {
        v
    }
}

/// log(1 + e^v) without overflow: max(v, 0) + log1p(e^-|v|).
fn softplus(v: f64) -> f64 {
    v.max(0.0) + (-v.abs()).exp().ln_1p()
}

/// The entrywise operators of the language on two numbers: the one place
/// that says what `+`, `.*`, `max`, … compute (a NaN operand gives NaN,
/// where `f64::max` would drop it).
pub(super) fn entrywise(op: BinOp) -> fn(f64, f64) -> f64 {
    match op {
        BinOp::Add => |a, b| a + b,
        BinOp::Sub => |a, b| a - b,
        BinOp::Hadamard | BinOp::Mul => |a, b| a * b,
        BinOp::HadamardDiv | BinOp::Div => |a, b| a / b,
        BinOp::Max => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.max(b) },
        BinOp::Min => |a, b| if a.is_nan() || b.is_nan() { f64::NAN } else { a.min(b) },
        BinOp::Power => f64::powf,
        BinOp::Kron => unreachable!("kron is not entrywise"),
    }
}

/// log(sum(exp(z))), with the largest entry taken out first so that no
/// exp overflows.
pub(super) fn logsumexp(z: impl Iterator<Item = f64> + Clone) -> f64 {
    let top = z.clone().fold(f64::NEG_INFINITY, f64::max);
    if !top.is_finite() {
        return top;
    }
    top + z.map(|v| (v - top).exp()).sum::<f64>().ln()
}

/// Column-wise softmax, each column shifted by its largest entry.
pub(super) fn softmax(x: &Matrix) -> Matrix {
    let mut out = x.clone();
    for mut col in out.column_iter_mut() {
        let top = col.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        col.apply(|v| *v = (*v - top).exp());
        let total = col.sum();
        col.apply(|v| *v /= total);
    }
    out
}

fn binary(op: BinOp, a: Value, b: Value, e: &Expr) -> Result<Value> {
    use Value::{Identity as Id, Matrix as M};
    let mismatch = |a: &Matrix, b: &Matrix| {
        fail(format!("shapes {:?} and {:?} do not fit `{}` in `{e}`", a.shape(), b.shape(), op.symbol()))
    };
    Ok(M(match (op, a, b) {
        // An I beside kron has no size to take (the shape rule refuses it).
        (BinOp::Kron, Id(_), _) | (BinOp::Kron, _, Id(_)) => {
            return Err(fail(format!("the size of I in `{e}` is not determined")));
        }
        (BinOp::Kron, M(x), M(y)) => x.kronecker(&y),
        (BinOp::Mul, Id(c), Id(d)) => return Ok(Id(c * d)),
        // A 1×1 factor may be a scalar times an I of any size: stay lazy.
        (BinOp::Mul, Id(c), M(x)) | (BinOp::Mul, M(x), Id(c)) if is_one(&x) => return Ok(Id(c * x[(0, 0)])),
        (BinOp::Mul, Id(c), M(x)) | (BinOp::Mul, M(x), Id(c)) => x * c,
        (BinOp::Add | BinOp::Sub, Id(c), Id(d)) => {
            return Ok(Id(if op == BinOp::Add { c + d } else { c - d }))
        }
        (BinOp::Add | BinOp::Sub, Id(c), M(x)) => {
            let n = x.nrows();
            let i = Matrix::identity(n, n) * c;
            if op == BinOp::Add {
                i + x
            } else {
                i - x
            }
        }
        (BinOp::Add | BinOp::Sub, M(x), Id(c)) => {
            let n = x.nrows();
            let i = Matrix::identity(n, n) * c;
            if op == BinOp::Add {
                x + i
            } else {
                x - i
            }
        }
        // The exponent is a scalar: c I of size 1 is c.
        (BinOp::Power, M(x), Id(c)) => x.map(|v| v.powf(c)),
        // Elsewhere I takes the size of the other side.
        (op, Id(c), M(x)) if x.is_square() => {
            return binary(op, M(Matrix::identity(x.nrows(), x.nrows()) * c), M(x), e)
        }
        (op, M(x), Id(c)) if x.is_square() => {
            return binary(op, M(x.clone()), M(Matrix::identity(x.nrows(), x.nrows()) * c), e)
        }
        (_, Id(_), _) | (_, _, Id(_)) => {
            return Err(fail(format!("the size of I in `{e}` is not determined")));
        }
        (BinOp::Mul, M(x), M(y)) => {
            if x.ncols() == y.nrows() {
                x * y
            } else if is_one(&x) {
                y * x[(0, 0)]
            } else if is_one(&y) {
                x * y[(0, 0)]
            } else {
                return Err(mismatch(&x, &y));
            }
        }
        (BinOp::Div, M(x), M(y)) => {
            if !is_one(&y) {
                return Err(mismatch(&x, &y));
            }
            x / y[(0, 0)]
        }
        (op, M(x), M(y)) => zip(&x, &y, entrywise(op)).ok_or_else(|| mismatch(&x, &y))?,
    }))
}
