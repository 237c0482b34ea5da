//! Numbers: evaluation on nalgebra, random instances, and the check of every
//! derived gradient against central finite differences in f64.
//!
//! Entry point: [`check`].

mod eval;

use std::collections::{BTreeMap, HashMap};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use eval::{eval, Env, Matrix};

use crate::calculus::Mode;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape};
use crate::syntax::VarName;
use crate::Derivation;

/// Largest relative error accepted between a gradient and finite differences.
pub const TOLERANCE: f64 = 1e-6;

/// Step of the central differences.
const STEP: f64 = 1e-5;

/// How to instantiate a check.
#[derive(Clone, Debug, Default)]
pub struct CheckOptions {
    /// Sizes for symbolic dimensions; the others are drawn from 2..=5.
    pub dims: HashMap<String, usize>,
    pub seed: u64,
}

/// The comparison for one variable.
#[derive(Clone, Debug)]
pub struct CheckResult {
    pub wrt: VarName,
    /// ‖symbolic − numeric‖ / ‖numeric‖ (Frobenius).
    pub max_rel_err: f64,
    pub ok: bool,
}

/// The outcome of [`check`].
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The size given to each symbolic dimension.
    pub sizes: BTreeMap<String, usize>,
    pub seed: u64,
    pub results: Vec<CheckResult>,
}

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.results.iter().all(|r| r.ok)
    }
}

/// The size of a dimension under an assignment of the symbols.
pub fn size_of(d: &Dim, sizes: &BTreeMap<String, usize>) -> Result<usize> {
    match d {
        Dim::Const(n) => usize::try_from(*n)
            .ok()
            .filter(|n| *n <= 10_000)
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Limit,
                    format!("dimension {n} is too large to check numerically (limit 10000)"),
                )
            }),
        Dim::Unknown(_) => Err(Error::new(
            ErrorKind::Usage,
            "a dimension is undetermined (a lone `I`?); declare the shapes",
        )),
        d => sizes
            .get(&d.to_string())
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::Usage, format!("no size for dimension `{d}`"))),
    }
}

/// Draws a random matrix of the given shape, entries uniform in [-1, 1].
pub fn random_matrix(
    shape: &Shape,
    sizes: &BTreeMap<String, usize>,
    rng: &mut StdRng,
) -> Result<Matrix> {
    let (r, c) = (size_of(&shape.rows, sizes)?, size_of(&shape.cols, sizes)?);
    if r.saturating_mul(c) > 1_000_000 {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("a {r}x{c} matrix is too large to check numerically"),
        ));
    }
    Ok(Matrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0)))
}

/// Instantiates the symbolic dimensions with small random sizes (or the
/// given ones), draws seeded random matrices, and compares every gradient
/// with central finite differences of the expression.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &matdiff::DeriveOptions::default()).unwrap();
/// let report = matdiff::numeric::check(&d, &Default::default()).unwrap();
/// assert!(report.ok());
/// ```
pub fn check(derivation: &Derivation, options: &CheckOptions) -> Result<CheckReport> {
    let typing = &derivation.typing;
    let mut rng = StdRng::seed_from_u64(options.seed);
    let mut sizes = BTreeMap::new();
    for symbol in typing.symbols() {
        let n = match options.dims.get(&symbol) {
            Some(&n) => n,
            None => rng.random_range(2..=5),
        };
        sizes.insert(symbol, n);
    }
    for name in options.dims.keys() {
        if !sizes.contains_key(name) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!("--dims names `{name}`, which is not a dimension of the expression"),
            )
            .note(format!(
                "its dimensions are: {}",
                sizes.keys().cloned().collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let mut env = Env::default();
    let mut vars: Vec<VarName> = typing.variables().to_vec();
    if let Mode::Layer { upstream } = &derivation.mode {
        vars.push(upstream.clone());
    }
    for v in &vars {
        let shape = typing.var_shape(v).expect("every variable has a shape");
        env.vars
            .insert(v.clone(), random_matrix(&shape, &sizes, &mut rng)?);
    }
    let expr = &typing.program.expr;
    let loss = |env: &Env| -> Result<f64> {
        let z = eval(expr, env, None)?;
        Ok(match &derivation.mode {
            Mode::Scalar => z[(0, 0)],
            Mode::Layer { upstream } => env.vars[upstream].component_mul(&z).sum(),
        })
    };
    let mut results = Vec::new();
    for g in &derivation.gradients {
        let value = &env.vars[&g.wrt];
        let symbolic = eval(&g.expr, &env, Some(value.nrows()))?;
        let mut numeric = Matrix::zeros(value.nrows(), value.ncols());
        let mut probe = env.clone();
        for idx in 0..value.len() {
            let x = value[idx];
            probe.vars.get_mut(&g.wrt).expect("variable")[idx] = x + STEP;
            let up = loss(&probe)?;
            probe.vars.get_mut(&g.wrt).expect("variable")[idx] = x - STEP;
            let down = loss(&probe)?;
            probe.vars.get_mut(&g.wrt).expect("variable")[idx] = x;
            numeric[idx] = (up - down) / (2.0 * STEP);
        }
        let err = relative_error(&symbolic, &numeric);
        results.push(CheckResult {
            wrt: g.wrt.clone(),
            max_rel_err: err,
            ok: err <= TOLERANCE,
        });
    }
    Ok(CheckReport {
        sizes,
        seed: options.seed,
        results,
    })
}

/// ‖a − b‖ / max(‖a‖, ‖b‖, 10⁻³): relative for gradients of ordinary size,
/// absolute near zero, where central differences leave rounding noise
/// (about 10⁻¹¹·|L|) that a relative measure would blow up. Infinite on a
/// shape mismatch or a NaN.
pub fn relative_error(a: &Matrix, b: &Matrix) -> f64 {
    if a.shape() != b.shape() {
        return f64::INFINITY;
    }
    let scale = a.norm().max(b.norm()).max(1e-3);
    let err = (a - b).norm() / scale;
    if err.is_nan() {
        f64::INFINITY
    } else {
        err
    }
}
