//! Running a compiled [`Plan`] on nalgebra matrices.

use std::borrow::Cow;
use std::collections::HashMap;

use super::eval::{call, entrywise, zip, Env, Matrix};
use super::Deadline;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Op, Operand, Plan, Value};
use crate::shape::Dim;
use crate::syntax::BinOp;

/// Runs every step of `plan` on the variables of `env`; returns the outputs
/// in order (the value, then each gradient, a scalar formula filled out to
/// its variable's shape).
///
/// ```
/// use matdiff::numeric::{run_plan, Env, Matrix};
/// let p = matdiff::syntax::parse_program("tr(A^T * A)").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let plan = matdiff::plan::compile(&d, &Default::default()).unwrap();
/// let mut env = Env::default();
/// env.vars.insert(matdiff::syntax::parse_var("A").unwrap(), Matrix::from_row_slice(2, 2, &[1., 2., 3., 4.]));
/// let out = run_plan(&plan, &env).unwrap();
/// assert_eq!(out[0][(0, 0)], 30.0);
/// assert_eq!(out[1], Matrix::from_row_slice(2, 2, &[2., 4., 6., 8.]));
/// ```
pub fn run_plan(plan: &Plan, env: &Env) -> Result<Vec<Matrix>> {
    run_plan_within(plan, env, None)
}

/// [`run_plan`], stopping with a limit error once `deadline` passes
/// (checked between steps).
pub fn run_plan_within(plan: &Plan, env: &Env, deadline: Option<&Deadline>) -> Result<Vec<Matrix>> {
    let mut inputs = Vec::with_capacity(plan.inputs.len());
    let mut sizes: HashMap<&Dim, usize> = HashMap::new();
    for i in &plan.inputs {
        let m = env.vars.get(&i.var).ok_or_else(|| fail(format!("no value for `{}`", i.var)))?;
        sizes.insert(&i.shape.rows, m.nrows());
        sizes.insert(&i.shape.cols, m.ncols());
        inputs.push(m);
    }
    // Each value freed once its last reader has run (outputs are kept):
    // the peak is the plan's `peak_entries`, not every step at once.
    let dead = plan.dead_after();
    let mut steps: Vec<Option<Matrix>> = Vec::with_capacity(plan.steps.len());
    for (k, s) in plan.steps.iter().enumerate() {
        if let Some(d) = deadline {
            d.check()?;
        }
        // Operands borrowed, copied only to be transposed or changed.
        let get = |o: &Operand| -> Result<Cow<'_, Matrix>> {
            let m = match o.value {
                Value::Input(k) => Cow::Borrowed(inputs[k]),
                Value::Step(j) => Cow::Borrowed(
                    steps[j].as_ref().ok_or_else(|| fail(format!("step `{}` reads a freed value", s.out)))?,
                ),
                Value::Num(x) => Cow::Owned(Matrix::from_element(1, 1, x)),
            };
            Ok(if o.transposed { Cow::Owned(m.transpose()) } else { m })
        };
        let mismatch = |a: &Matrix, b: &Matrix| {
            fail(format!("shapes {:?} and {:?} do not fit step `{}`", a.shape(), b.shape(), s.out))
        };
        let scalar = |m: &Matrix| -> Result<f64> {
            if m.shape() == (1, 1) {
                Ok(m[(0, 0)])
            } else {
                Err(fail(format!("step `{}` wants a scalar, not {:?}", s.out, m.shape())))
            }
        };
        let two = |a: &Operand, b: &Operand, f: fn(f64, f64) -> f64| -> Result<Matrix> {
            let (x, y) = (get(a)?, get(b)?);
            zip(&x, &y, f).ok_or_else(|| mismatch(&x, &y))
        };
        let value = match &s.op {
            Op::MatMul(a, b) => {
                let (x, y) = (get(a)?, get(b)?);
                if x.ncols() != y.nrows() {
                    return Err(mismatch(&x, &y));
                }
                &*x * &*y
            }
            Op::Scale(a, b) => get(b)?.into_owned() * scalar(&*get(a)?)?,
            Op::Add(a, b) => two(a, b, |x, y| x + y)?,
            Op::Sub(a, b) => two(a, b, |x, y| x - y)?,
            Op::Hadamard(a, b) => two(a, b, |x, y| x * y)?,
            Op::HadamardDiv(a, b) => two(a, b, |x, y| x / y)?,
            Op::Max(a, b) => two(a, b, entrywise(BinOp::Max))?,
            Op::Power(a, b) => {
                let p = scalar(&*get(b)?)?;
                get(a)?.map(|x| x.powf(p))
            }
            Op::Min(a, b) => two(a, b, entrywise(BinOp::Min))?,
            Op::Kron(a, b) => get(a)?.kronecker(&*get(b)?),
            Op::Div(a, b) => get(a)?.into_owned() / scalar(&*get(b)?)?,
            Op::Neg(a) => -get(a)?.into_owned(),
            Op::HadamardPower(a, p) => get(a)?.map(|x| x.powf(*p)),
            Op::Inverse(a) => get(a)?.into_owned().try_inverse().ok_or_else(|| {
                Error::new(ErrorKind::Usage, format!("step `{}` inverts a singular matrix", s.out))
            })?,
            Op::Identity => {
                let n = match &s.shape.rows {
                    Dim::Const(n) => Some(*n as usize),
                    d => sizes.get(d).copied(),
                };
                let n = n.ok_or_else(|| fail(format!("no size for the I of step `{}`", s.out)))?;
                Matrix::identity(n, n)
            }
            Op::Ones => {
                let size = |d: &Dim| match d {
                    Dim::Const(n) => Some(*n as usize),
                    d => sizes.get(d).copied(),
                };
                match (size(&s.shape.rows), size(&s.shape.cols)) {
                    (Some(r), Some(c)) => Matrix::from_element(r, c, 1.0),
                    _ => return Err(fail(format!("no size for the ones of step `{}`", s.out))),
                }
            }
            Op::Call(f, a) => call(*f, &*get(a)?),
            Op::ScaleRows(v, a) => {
                let (v, mut x) = (get(v)?, get(a)?.into_owned());
                if v.shape() != (x.nrows(), 1) {
                    return Err(mismatch(&v, &x));
                }
                for (i, mut row) in x.row_iter_mut().enumerate() {
                    row *= v[(i, 0)];
                }
                x
            }
            Op::ScaleCols(a, v) => {
                let (mut x, v) = (get(a)?.into_owned(), get(v)?);
                if v.shape() != (x.ncols(), 1) {
                    return Err(mismatch(&x, &v));
                }
                for (j, mut col) in x.column_iter_mut().enumerate() {
                    col *= v[(j, 0)];
                }
                x
            }
        };
        steps.push(Some(value));
        for &j in &dead[k] {
            steps[j] = None;
        }
    }
    let mut outputs = Vec::with_capacity(plan.outputs.len());
    for o in &plan.outputs {
        let m = match o.operand.value {
            Value::Input(k) => inputs[k].clone(),
            Value::Step(k) => steps[k].clone().ok_or_else(|| fail(format!("output step {k} was freed")))?,
            Value::Num(x) => Matrix::from_element(1, 1, x),
        };
        let m = if o.operand.transposed { m.transpose() } else { m };
        let want = o.wrt.as_ref().and_then(|v| env.vars.get(v)).map(|v| v.shape());
        outputs.push(match want {
            Some((r, c)) if m.shape() == (1, 1) && (r, c) != (1, 1) => Matrix::from_element(r, c, m[(0, 0)]),
            _ => m,
        });
    }
    Ok(outputs)
}

fn fail(message: String) -> Error {
    Error::new(ErrorKind::Internal, message)
}
