//! Numbers: evaluation on nalgebra, random instances, and the check of every
//! derived gradient against central finite differences in f64.
//!
//! Entry point: [`check`].

mod domain;
mod eval;
mod plan;

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

pub use domain::{domains, Domain};
pub use eval::{eval, Env, Evaluator, Matrix};
pub use plan::run_plan;

use crate::calculus::Mode;
use crate::error::{Error, ErrorKind, Result};
use crate::plan::{Plan, PlanOptions, Target};
use crate::shape::{Dim, Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};
use crate::Derivation;

/// Largest relative error accepted between a gradient and finite differences.
pub const TOLERANCE: f64 = 1e-6;
/// Where the finite differences themselves are less accurate than
/// [`TOLERANCE`] (Ridders' error estimate, relative: a large loss whose
/// rounding noise swamps a small gradient), a gradient within this many
/// times their error agrees...
pub const FD_MARGIN: f64 = 10.0;
/// ...as long as that error is below this: noisier differences decide
/// nothing, and the gradient is reported as a mismatch.
pub const MAX_FD_ERROR: f64 = 1e-5;

/// First steps of Ridders' extrapolation of central differences (each
/// shrinks by 1.4 per round). Two tableaus, and the estimate with the smaller
/// error: one start alone is fooled now and then (1e-6 off on rational
/// functions such as (XᵀX + I)⁻¹ from 0.1; measured over 300 instances).
const FIRST_STEPS: [f64; 2] = [0.1, 0.01];

/// Ridders' method (Numerical Recipes, dfridr): central differences at
/// shrinking steps, extrapolated to step 0 in a Neville tableau. Unlike one
/// fixed step, it stays accurate (about 1e-12 relative) across curvatures,
/// from a linear map to exp(exp(exp(x))).
/// Returns the derivative and its error: the better tableau's estimate, or
/// the rounding floor where that is larger (a loss of 1e12 rounds to about
/// 1e-4, and a difference over a step h carries 1e-4 / h of noise that the
/// tableau does not always see).
fn derivative(mut f: impl FnMut(f64) -> Result<f64>, x: f64) -> Result<(f64, f64)> {
    let mut largest = 0.0f64;
    let mut f = |at: f64| -> Result<f64> {
        let y = f(at)?;
        largest = largest.max(y.abs());
        if y.is_finite() {
            Ok(y)
        } else {
            Err(Error::new(
                ErrorKind::Usage,
                "the expression is not finite near the drawn instance, so finite differences cannot be taken; try another --seed",
            ))
        }
    };
    let (a, ea, ha) = ridders(&mut f, x, FIRST_STEPS[0])?;
    let (b, eb, hb) = ridders(&mut f, x, FIRST_STEPS[1])?;
    let (value, err, h) = if ea <= eb { (a, ea, ha) } else { (b, eb, hb) };
    Ok((value, err.max(8.0 * f64::EPSILON * largest / h)))
}

/// One Ridders tableau from step `h`: the estimate, its error, and the
/// step of the estimate.
fn ridders(f: &mut impl FnMut(f64) -> Result<f64>, x: f64, mut h: f64) -> Result<(f64, f64, f64)> {
    const SHRINK: f64 = 1.4;
    const ROUNDS: usize = 10;
    let mut table = [[0.0f64; ROUNDS]; ROUNDS];
    let mut best = f64::NAN;
    let mut err = f64::INFINITY;
    let mut at = h;
    table[0][0] = (f(x + h)? - f(x - h)?) / (2.0 * h);
    for i in 1..ROUNDS {
        h /= SHRINK;
        table[0][i] = (f(x + h)? - f(x - h)?) / (2.0 * h);
        let mut fac = SHRINK * SHRINK;
        for j in 1..=i {
            table[j][i] = (table[j - 1][i] * fac - table[j - 1][i - 1]) / (fac - 1.0);
            fac *= SHRINK * SHRINK;
            let e = (table[j][i] - table[j - 1][i]).abs().max((table[j][i] - table[j - 1][i - 1]).abs());
            if e <= err {
                err = e;
                best = table[j][i];
                at = h;
            }
        }
        if (table[i][i] - table[i - 1][i - 1]).abs() >= 2.0 * err {
            break;
        }
    }
    Ok(if best.is_nan() { (table[0][0], f64::INFINITY, h) } else { (best, err, at) })
}

/// How to instantiate a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Sizes for symbolic dimensions; the others are drawn from 2..=5.
    pub dims: HashMap<String, usize>,
    pub seed: u64,
    /// Wall-clock time the check may take before it stops and says so.
    pub time_limit: Duration,
}

/// Default [`CheckOptions::time_limit`]. Finite differences evaluate the
/// expression some 40 times per entry of every gradient: at sizes of a few
/// hundred that is hours, which the check refuses to spend silently.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(30);

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions { dims: HashMap::new(), seed: 0, time_limit: CHECK_TIME_LIMIT }
    }
}

/// The comparison for one variable.
#[derive(Clone, Debug)]
pub struct CheckResult {
    pub wrt: VarName,
    /// ‖symbolic − numeric‖ / ‖numeric‖ (Frobenius).
    pub max_rel_err: f64,
    /// The finite differences' own error (Ridders' estimate), on the same scale.
    pub fd_error: f64,
    pub ok: bool,
}

impl CheckResult {
    /// Disagrees, but the differences were too noisy to decide.
    pub fn undecided(&self) -> bool {
        !self.ok && self.fd_error > MAX_FD_ERROR
    }
}

/// The outcome of [`check`].
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The size given to each symbolic dimension.
    pub sizes: BTreeMap<String, usize>,
    pub seed: u64,
    /// Values of the index symbols (`n`, `j`).
    pub indices: BTreeMap<String, i64>,
    /// Variables drawn from a restricted domain (the others: entries in [-1, 1]).
    pub domains: BTreeMap<VarName, Domain>,
    /// Instances discarded because the expression was not finite on them.
    pub redraws: usize,
    pub results: Vec<CheckResult>,
}

/// Instances tried before giving up on finding one where the expression is
/// defined and well conditioned.
const MAX_DRAWS: usize = 20;

impl CheckReport {
    pub fn ok(&self) -> bool {
        self.results.iter().all(|r| r.ok)
    }
}

/// The size of a dimension under an assignment of the symbols.
pub fn size_of(d: &Dim, sizes: &BTreeMap<String, usize>) -> Result<usize> {
    match d {
        Dim::Const(n) => usize::try_from(*n).ok().filter(|n| *n <= 10_000).ok_or_else(|| {
            Error::new(
                ErrorKind::Limit,
                format!("dimension {n} is too large to check numerically (limit 10000)"),
            )
        }),
        Dim::Unknown(_) => {
            Err(Error::new(ErrorKind::Usage, "a dimension is undetermined (a lone `I`?); declare the shapes"))
        }
        d => sizes
            .get(&d.to_string())
            .copied()
            .ok_or_else(|| Error::new(ErrorKind::Usage, format!("no size for dimension `{d}`"))),
    }
}

/// Draws a random matrix of the given shape, entries uniform in [-1, 1].
pub fn random_matrix(shape: &Shape, sizes: &BTreeMap<String, usize>, rng: &mut StdRng) -> Result<Matrix> {
    let (r, c) = (size_of(&shape.rows, sizes)?, size_of(&shape.cols, sizes)?);
    if r.saturating_mul(c) > 1_000_000 {
        return Err(Error::new(
            ErrorKind::Limit,
            format!("a {r}x{c} matrix is too large to check numerically"),
        ));
    }
    Ok(Matrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0)))
}

/// A random instance of a derivation: sizes for the symbolic dimensions and
/// values for every variable (and the upstream gradient), drawn from each
/// variable's domain, on which the expression and its gradients are finite.
#[derive(Clone, Debug)]
pub struct Instance {
    pub sizes: BTreeMap<String, usize>,
    /// Values of the index symbols (`n`, `j`).
    pub indices: BTreeMap<String, i64>,
    pub env: Env,
    pub domains: BTreeMap<VarName, Domain>,
    /// Draws discarded because something was not finite on them.
    pub redraws: usize,
}

impl Instance {
    /// Draws an instance (seeded). Index symbols (`n` of a product's range,
    /// `j` of a family member) get values first, within the gradients' side
    /// conditions; then every dimension a size, 2..=5. `options.dims` fixes
    /// any of them by name (`n=4`, `d0=3`, `d[2]=5`).
    pub fn draw(derivation: &Derivation, options: &CheckOptions) -> Result<Instance> {
        Instance::draw_from(derivation, options, 0)
    }

    /// [`Instance::draw`], counting `skipped` draws as done already: the
    /// same values at the next scale.
    fn draw_from(derivation: &Derivation, options: &CheckOptions, skipped: usize) -> Result<Instance> {
        let typing = &derivation.typing;
        let mut rng = StdRng::seed_from_u64(options.seed);
        let indices = draw_indices(derivation, options, &mut rng)?;
        let bind =
            |i: &Index| indices.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)));
        let concrete = |v: &VarName| -> Result<VarName> {
            Ok(VarName { name: v.name.clone(), index: v.index.as_ref().map(bind).transpose()? })
        };

        // The variables, the members of families that products use, and G.
        let mut typer = typing.typer().clone();
        let mut vars: Vec<(VarName, Shape)> = vec![];
        for v in typing.variables() {
            vars.push((concrete(v)?, typing.var_shape(v).expect("typed")));
        }
        for (family, lo, hi) in product_ranges(&typing.program.expr) {
            let (lo, hi) = (bind(&lo)?.as_constant(), bind(&hi)?.as_constant());
            let (Some(lo), Some(hi)) = (lo, hi) else {
                return Err(Error::new(
                    ErrorKind::Usage,
                    "a product's range has no value; give its symbols with --dims",
                ));
            };
            for k in lo..=hi {
                let member = VarName { name: family.clone(), index: Some(Index::constant(k)) };
                let s = typer.var(&member)?;
                vars.push((member, typer.resolve(s)));
            }
        }
        if let Mode::Layer { upstream } = &derivation.mode {
            vars.push((upstream.clone(), typing.var_shape(upstream).expect("typed")));
        }
        let mut sizes = BTreeMap::new();
        let mut size = |d: &Dim, rng: &mut StdRng| -> Result<usize> {
            let key = match d {
                Dim::Indexed(name, i) => format!("{name}[{}]", bind(i)?),
                d => d.to_string(),
            };
            if let Dim::Const(_) | Dim::Unknown(_) = d {
                return size_of(d, &BTreeMap::new());
            }
            let n = *sizes.entry(key.clone()).or_insert_with(|| {
                options.dims.get(&key).copied().unwrap_or_else(|| rng.random_range(2..=5))
            });
            Ok(n)
        };
        let mut shapes = vec![];
        for (v, shape) in &vars {
            let (r, c) = (size(&shape.rows, &mut rng)?, size(&shape.cols, &mut rng)?);
            if r.saturating_mul(c) > 1_000_000 {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("a {r}x{c} matrix is too large to check numerically"),
                ));
            }
            shapes.push((v.clone(), r, c));
        }
        for name in options.dims.keys() {
            if !sizes.contains_key(name) && !indices.iter().any(|(k, _)| k == name) {
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
        let domains = domains(&typing.program.expr);
        let domain_of = |v: &VarName| {
            domains
                .get(v)
                .copied()
                .or_else(|| domains.iter().find(|(k, _)| k.name == v.name).map(|(_, d)| *d))
        };
        let mut redraws = skipped;
        loop {
            // Redraws alternate smaller and larger scales (1/2, 2, 1/4, 4, ...):
            // `sigmoid(-norm(P) * norm(M)^2)` underflows at scale 1, and
            // `1 - sigmoid(...)` at a small one.
            let scale = 2f64.powi((redraws as i32 + 1) / 2 * if redraws % 2 == 1 { -1 } else { 1 });
            let mut env = Env { indices: indices.clone(), ..Env::default() };
            for (v, r, c) in &shapes {
                env.vars.insert(v.clone(), domain_of(v).unwrap_or_default().draw(*r, *c, &mut rng) * scale);
            }
            let finite = |m: Result<Matrix>| m.is_ok_and(|m| m.iter().all(|x| x.is_finite()));
            let fine = finite(eval(&typing.program.expr, &env, None))
                && derivation.gradients.iter().all(|g| finite(gradient_value(g, &env)));
            let trouble =
                if fine { trouble(&typing.program.expr, &env) } else { Some("not finite".to_string()) };
            if trouble.is_none() {
                let domains = domains.into_iter().filter(|(_, d)| *d != Domain::Any).collect();
                return Ok(Instance { sizes, env, domains, redraws, indices: indices.into_iter().collect() });
            }
            redraws += 1;
            if redraws >= skipped + MAX_DRAWS {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "found no well-conditioned instance in {MAX_DRAWS} draws (the last: {})",
                        trouble.unwrap_or_default()
                    ),
                ));
            }
        }
    }
}

/// Largest condition number accepted under an inverse, `det` or `logdet`.
pub const MAX_CONDITION: f64 = 1e8;
/// Smallest magnitude accepted under `log`, `sqrt`, a divisor or a fractional power.
pub const MIN_MAGNITUDE: f64 = 1e-6;

/// Why an instance is a poor place for finite differences: a matrix that is
/// inverted while ill-conditioned, or an entry near zero where the
/// expression divides by it or takes its log. `None` when it is fine.
fn trouble(e: &Expr, env: &Env) -> Option<String> {
    crate::stack::ensure(|| {
        let value = |x: &Expr| eval(x, env, None).ok();
        let ill_conditioned = |x: &Expr, what: &str| {
            let m = value(x).filter(|m| m.is_square() && m.nrows() > 0)?;
            let s = m.singular_values();
            let cond = s.max() / s.min();
            let fine = cond.is_finite() && cond <= MAX_CONDITION;
            (!fine).then(|| format!("`{x}` has condition number {cond:.1e}, under {what}"))
        };
        let near_zero = |x: &Expr, what: &str| {
            let m = value(x)?;
            let smallest = m.iter().fold(f64::INFINITY, |a, v| a.min(v.abs()));
            (smallest < MIN_MAGNITUDE).then(|| format!("an entry of `{x}` is {smallest:.1e}, under {what}"))
        };
        let here = match &e.kind {
            ExprKind::Power(x, k) if *k < 0 => ill_conditioned(x, "an inverse"),
            ExprKind::Call(Func::Det | Func::Logdet, x) => ill_conditioned(x, "det"),
            ExprKind::Call(Func::Log, x) => near_zero(x, "log"),
            ExprKind::Call(Func::Sqrt, x) => near_zero(x, "sqrt"),
            ExprKind::Binary { op: BinOp::HadamardDiv | BinOp::Div, rhs, .. } => near_zero(rhs, "a division"),
            ExprKind::HadamardPower(x, p) if p.fract() != 0.0 || *p < 0.0 => {
                near_zero(x, "a fractional power")
            }
            ExprKind::Prod(_) => None,
            _ => None,
        };
        here.or_else(|| match &e.kind {
            ExprKind::Prod(_) => None,
            _ => e.children().find_map(|c| trouble(c, env)),
        })
    })
}

/// Values for the free index symbols: those of product ranges and of
/// declared dimensions first (1..=5), then the gradients' own indices,
/// within their side conditions.
fn draw_indices(d: &Derivation, options: &CheckOptions, rng: &mut StdRng) -> Result<Vec<(String, i64)>> {
    let mut outer = std::collections::BTreeSet::new();
    for (_, lo, hi) in product_ranges(&d.typing.program.expr) {
        outer.extend(lo.terms.keys().cloned());
        outer.extend(hi.terms.keys().cloned());
    }
    for v in d.typing.variables() {
        let s = d.typing.var_shape(v).expect("typed");
        for dim in [s.rows, s.cols] {
            if let Dim::Indexed(_, i) = dim {
                outer.extend(i.terms.keys().cloned());
            }
        }
    }
    let mut values: Vec<(String, i64)> = vec![];
    for name in outer {
        let v = options.dims.get(&name).map(|&n| n as i64).unwrap_or_else(|| rng.random_range(1..=5));
        values.push((name, v));
    }
    let bind = |i: &Index, values: &[(String, i64)]| {
        values.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v)))
    };
    for g in &d.gradients {
        let Some(index) = &g.wrt.index else { continue };
        for name in index.terms.keys() {
            if values.iter().any(|(k, _)| k == name) {
                continue;
            }
            // The condition lo <= at <= hi, with at = name + c.
            // (Checked: bounds and offsets come from the input, anywhere in i64.)
            let range = g.differential.conditions.iter().find(|c| c.at.mentions(name)).and_then(|c| {
                let c0 = c.at.subst(name, &Index::constant(0)).ok()?;
                let (lo, hi, off) = (bind(&c.lo, &values), bind(&c.hi, &values), bind(&c0, &values));
                let (lo, hi, off) =
                    (lo.ok()?.as_constant()?, hi.ok()?.as_constant()?, off.ok()?.as_constant()?);
                Some((lo.checked_sub(off)?, hi.checked_sub(off)?))
            });
            let v = match (options.dims.get(name), range) {
                (Some(&n), _) => n as i64,
                (None, Some((lo, hi))) if lo <= hi => rng.random_range(lo..=hi),
                (None, Some(_)) => {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!("no value of `{name}` satisfies its side condition"),
                    ));
                }
                (None, None) => rng.random_range(1..=5),
            };
            values.push((name.clone(), v));
        }
    }
    Ok(values)
}

/// Every `prod(F, i=lo..hi)` as (the family its body uses, lo, hi).
fn product_ranges(e: &Expr) -> Vec<(String, Index, Index)> {
    crate::stack::ensure(|| {
        let mut out = vec![];
        if let ExprKind::Prod(prod) = &e.kind {
            let crate::syntax::Prod { body, var, lo, hi } = &**prod;
            let mut families = vec![];
            collect_families(body, var, &mut families);
            out.extend(families.into_iter().map(|f| (f, lo.clone(), hi.clone())));
        }
        for c in e.children() {
            out.extend(product_ranges(c));
        }
        out
    })
}

fn collect_families(e: &Expr, var: &str, out: &mut Vec<String>) {
    crate::stack::ensure(|| {
        if let ExprKind::Var(v) = &e.kind {
            if v.index.as_ref().is_some_and(|i| i.mentions(var)) && !out.contains(&v.name) {
                out.push(v.name.clone());
            }
        }
        for c in e.children() {
            collect_families(c, var, out);
        }
    })
}

/// The value of a gradient formula, as a matrix of its variable's shape (a
/// lone `I` takes that size, a scalar `0` fills it).
pub fn gradient_value(g: &crate::Gradient, env: &Env) -> Result<Matrix> {
    let wrt = member(&g.wrt, env)?;
    let value =
        env.vars.get(&wrt).ok_or_else(|| Error::new(ErrorKind::Internal, format!("no value for `{wrt}`")))?;
    let m = eval(&g.expr, env, Some(value.shape()))?;
    Ok(if m.shape() == (1, 1) && value.shape() != (1, 1) {
        Matrix::from_element(value.nrows(), value.ncols(), m[(0, 0)])
    } else {
        m
    })
}

/// The concrete variable a gradient's variable names on an instance (`W[j]`
/// with j = 2 is `W[2]`).
pub fn member(v: &VarName, env: &Env) -> Result<VarName> {
    let index = v
        .index
        .as_ref()
        .map(|i| env.indices.iter().try_fold(i.clone(), |i, (k, x)| i.subst(k, &Index::constant(*x))))
        .transpose()?;
    Ok(VarName { name: v.name.clone(), index })
}

/// Instantiates the symbolic dimensions with small random sizes (or the
/// given ones), draws seeded random matrices from each variable's domain,
/// and compares every gradient with central finite differences of the
/// expression.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &matdiff::DeriveOptions::default()).unwrap();
/// let report = matdiff::numeric::check(&d, &Default::default()).unwrap();
/// assert!(report.ok());
/// ```
pub fn check(derivation: &Derivation, options: &CheckOptions) -> Result<CheckReport> {
    // Where the differences are too noisy to decide (a huge loss rounds off
    // a small gradient), the same instance at other scales may not be.
    let deadline = Instant::now() + options.time_limit;
    let first = check_on(derivation, options, Instance::draw(derivation, options)?, deadline)?;
    let undecided = |r: &CheckReport| r.results.iter().any(CheckResult::undecided);
    let mut skipped = first.redraws;
    while undecided(&first) && skipped < first.redraws + MAX_NOISY_REDRAWS {
        skipped += 1;
        // Another scale may overflow where this one did not: go on to the next.
        let Ok(instance) = Instance::draw_from(derivation, options, skipped) else { continue };
        let Ok(report) = check_on(derivation, options, instance, deadline) else { continue };
        if !undecided(&report) {
            return Ok(report);
        }
        skipped = report.redraws;
    }
    Ok(first)
}

/// Redraws for finite differences too noisy to decide, at most.
const MAX_NOISY_REDRAWS: usize = 6;

fn check_on(
    derivation: &Derivation,
    options: &CheckOptions,
    instance: Instance,
    deadline: Instant,
) -> Result<CheckReport> {
    let Instance { sizes, env, domains, redraws, indices } = instance;
    let forward = Evaluator::new(&derivation.typing.program.expr, &env, None);
    let loss = |env: &Env| -> Result<f64> {
        if Instant::now() > deadline {
            return Err(Error::new(
                ErrorKind::Limit,
                format!(
                    "the numeric check stopped at its time limit ({} s): finite differences evaluate the expression about 40 times per gradient entry",
                    options.time_limit.as_secs_f64()
                ),
            )
            .note("check at smaller sizes: declare smaller shapes, or give symbolic ones with --dims n=3"));
        }
        let z = forward.eval(env)?;
        Ok(match &derivation.mode {
            Mode::Scalar => z[(0, 0)],
            Mode::Layer { upstream } => env.vars[upstream].component_mul(&z).sum(),
        })
    };
    // The gradients as the plan computes them; its value must be the expression's.
    let plan = instance_plan(derivation, &env)?;
    let outputs = run_plan(&plan, &env)?;
    let direct = forward.eval(&env)?;
    // The plan evaluates in another order: on instances conditioned up to
    // MAX_CONDITION, and through nested inverses, rounding alone differs by
    // 1e-9 (a deep property case: 1.8e-9). A wrong plan is off by far more.
    if relative_error(&outputs[0], &direct) > TOLERANCE {
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "the plan's value differs from the expression's by {:.1e}",
                relative_error(&outputs[0], &direct)
            ),
        ));
    }
    let mut results = Vec::new();
    for (g, symbolic) in derivation.gradients.iter().zip(outputs.into_iter().skip(1)) {
        let wrt = member(&g.wrt, &env)?;
        let value = &env.vars[&wrt];
        let mut numeric = Matrix::zeros(value.nrows(), value.ncols());
        let mut noise = Matrix::zeros(value.nrows(), value.ncols());
        let mut probe = env.clone();
        for idx in 0..value.len() {
            let x = value[idx];
            (numeric[idx], noise[idx]) = derivative(
                |at| {
                    probe.vars.get_mut(&wrt).expect("variable")[idx] = at;
                    loss(&probe)
                },
                x,
            )?;
            probe.vars.get_mut(&wrt).expect("variable")[idx] = x;
        }
        let err = relative_error(&symbolic, &numeric);
        let fd_error = noise.norm() / symbolic.norm().max(numeric.norm()).max(1e-3);
        let ok = err <= TOLERANCE || (fd_error <= MAX_FD_ERROR && err <= FD_MARGIN * fd_error);
        results.push(CheckResult { wrt: g.wrt.clone(), max_rel_err: err, fd_error, ok });
    }
    Ok(CheckReport { sizes, seed: options.seed, indices, domains, redraws, results })
}

/// The plan of a derivation on an instance: index symbols bound, every
/// dimension the size of the instance's matrices.
pub fn instance_plan(derivation: &Derivation, env: &Env) -> Result<Plan> {
    let bind =
        |e: &Expr| env.indices.iter().try_fold(e.clone(), |e, (k, v)| e.subst_index(k, &Index::constant(*v)));
    let mut typer = Typer::new();
    for (v, m) in &env.vars {
        let shape = Shape::new(Dim::Const(m.nrows() as u64), Dim::Const(m.ncols() as u64));
        typer.insert_var(v.clone(), &shape);
    }
    let concrete = |m: &Matrix| Shape::new(Dim::Const(m.nrows() as u64), Dim::Const(m.ncols() as u64));
    let value = eval(&derivation.typing.program.expr, env, None)?;
    let mut targets =
        vec![Target { wrt: None, expr: bind(&derivation.typing.program.expr)?, shape: concrete(&value) }];
    for g in &derivation.gradients {
        let wrt = member(&g.wrt, env)?;
        let shape = concrete(&env.vars[&wrt]);
        targets.push(Target { wrt: Some(wrt), expr: bind(&g.expr)?, shape });
    }
    let upstream = match &derivation.mode {
        Mode::Layer { upstream } => Some(upstream),
        Mode::Scalar => None,
    };
    crate::plan::compile_targets(&targets, &typer, upstream, &PlanOptions::default())
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
