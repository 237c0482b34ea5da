//! The check: every gradient, computed by the derivation's plan, against
//! Ridders' finite differences of the expression, on random instances.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::ridders::{derivative_from, quick_derivative, TABLEAU_EVALUATIONS};
use super::{
    compare, instance_plan, member, norm, run_plan_within, Comparison, Deadline, Domain, Env, Evaluator,
    Instance, Matrix, Outcome, Tolerances, NOISE_MARGIN, TOLERANCE,
};
use crate::calculus::Mode;
use crate::derive::Derivation;
use crate::error::{Error, ErrorKind, Result};
use crate::syntax::{DomainSpec, ExprKind, VarName};

/// Where the finite differences are less accurate than [`TOLERANCE`] (a
/// large loss whose rounding swamps a small gradient), a gradient within
/// [`super::NOISE_MARGIN`] times their error agrees only while that error
/// is below this, relative to the gradient: noisier differences decide
/// nothing (and a gradient off by 1e-4 is always told apart).
pub const MAX_FD_ERROR: f64 = 5e-6;

/// Default [`CheckOptions::time_limit`]. Finite differences evaluate the
/// expression some 40 times per entry of every gradient: at sizes of a few
/// hundred that is hours, which the check refuses to spend silently.
pub const CHECK_TIME_LIMIT: Duration = Duration::from_secs(30);

/// Most multiply-adds the finite differences of one instance may take
/// (up to 40 evaluations of the expression per gradient entry, 20 per
/// direction, each of the steps that read the variable), refused before
/// they start: at 10¹¹ the check would run for minutes.
pub const MAX_FD_MADDS: u128 = 20_000_000_000;

/// Instances every check compares on: the sizes of the seed, fresh values
/// at scales 1, 1/2, 2 and 4 ([`super::SCALES`]). A claim wrong
/// only for some signs, or at some scale, shows on one of them where it
/// might not on one alone.
pub const CHECK_INSTANCES: usize = 4;

/// How to instantiate a check.
#[derive(Clone, Debug)]
pub struct CheckOptions {
    /// Sizes for symbolic dimensions; the others are drawn from 2..=5.
    pub dims: HashMap<String, usize>,
    /// Seed of the random sizes and matrices.
    pub seed: u64,
    /// Wall-clock time the whole check may take before it stops and says so.
    pub time_limit: Duration,
    /// Domains given for variables, beside (and over) the declared ones.
    pub domains: BTreeMap<VarName, DomainSpec>,
    /// Which of several instances of one seed this is (0 for the first):
    /// each scalar variable, and the determinant of each invertible one,
    /// takes both signs within any three consecutive instances.
    pub instance: usize,
    /// Entry by entry, along random directions, or whichever is cheap enough.
    pub method: CheckMethod,
    /// Stops the check, with an [`crate::ErrorKind::Interrupted`] error, once interrupted.
    pub control: crate::Control,
}

/// How [`check`] compares a gradient with finite differences.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum CheckMethod {
    /// Entry by entry where that costs at most [`AUTO_ENTRIES_MADDS`]
    /// multiply-adds per instance (every small size), else along directions.
    #[default]
    Auto,
    /// Every entry of every gradient: one Ridders derivative per entry, so
    /// a gradient wrong in one entry shows in that entry. Its cost grows
    /// with the number of entries times the cost of the expression.
    Entries,
    /// ⟨∇L, V⟩ against the derivative of t ↦ L(X + tV) along
    /// [`DIRECTIONS`] random directions V per variable (entries uniform in
    /// [-1, 1], as JAX's `check_grads` does): a cost independent of the
    /// number of entries, so that real sizes can be checked. A gradient off
    /// by D shows as ⟨D, V⟩, which is zero only for V on a hyperplane:
    /// never, for directions drawn at random.
    Directions,
}

/// How a gradient was compared (see [`CheckMethod`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compared {
    /// Entry by entry.
    Entries,
    /// Along this many random directions.
    Directions(usize),
}

/// Random directions per variable of [`CheckMethod::Directions`].
pub const DIRECTIONS: usize = 4;

/// The most multiply-adds the finite differences of one instance may take
/// entry by entry before [`CheckMethod::Auto`] compares along directions
/// (about a second's work at default sizes' speed).
pub const AUTO_ENTRIES_MADDS: u128 = 200_000_000;

impl Default for CheckOptions {
    fn default() -> CheckOptions {
        CheckOptions {
            dims: HashMap::new(),
            seed: 0,
            time_limit: CHECK_TIME_LIMIT,
            domains: BTreeMap::new(),
            instance: 0,
            method: CheckMethod::Auto,
            control: crate::Control::default(),
        }
    }
}

/// The comparison for one variable.
#[derive(Clone, Debug)]
pub struct CheckResult {
    /// The variable.
    pub wrt: VarName,
    /// The verdict of the comparison.
    pub outcome: Outcome,
    /// ‖symbolic − numeric‖ / max(‖symbolic‖, ‖numeric‖) (Frobenius), on
    /// the instance that decided; `None` where nothing could be measured.
    pub max_rel_err: Option<f64>,
    /// The finite differences' own error (Ridders' estimate), on the same scale.
    pub fd_error: Option<f64>,
    /// Why it is undecided, when it is.
    pub reason: Option<String>,
    /// Entry by entry, or along random directions.
    pub compared: Compared,
}

impl CheckResult {
    /// Agrees with finite differences, on evidence that could tell.
    pub fn ok(&self) -> bool {
        self.outcome == Outcome::Agree
    }

    /// Nothing decided: the differences were too noisy, or not finite.
    pub fn undecided(&self) -> bool {
        self.outcome == Outcome::Undecided
    }
}

/// The outcome of [`check`].
#[derive(Clone, Debug)]
pub struct CheckReport {
    /// The size given to each symbolic dimension.
    pub sizes: BTreeMap<String, usize>,
    /// Seed the sizes and matrices were drawn with.
    pub seed: u64,
    /// Values of the index symbols (`n`, `j`).
    pub indices: BTreeMap<String, i64>,
    /// Variables drawn from a restricted domain (the others: both signs, uniform in [-s, s] for the instance's scale s).
    pub domains: BTreeMap<VarName, Domain>,
    /// Draws discarded before the first instance (not finite, ill-conditioned).
    pub redraws: usize,
    /// Instances compared: [`CHECK_INSTANCES`], more where those left a gradient undecided.
    pub instances: usize,
    /// One result per compared gradient.
    pub results: Vec<CheckResult>,
}

impl CheckReport {
    /// Every gradient agrees.
    pub fn ok(&self) -> bool {
        self.results.iter().all(CheckResult::ok)
    }
}

/// Instantiates the symbolic dimensions with small random sizes (or the
/// given ones), draws seeded random matrices from each variable's domain
/// (both signs wherever the expression allows) on [`CHECK_INSTANCES`] instances,
/// and compares every gradient with finite differences of the expression.
/// A gradient that differs on any instance is a mismatch; one that agrees
/// on one and differs on none is ok; one the differences cannot resolve
/// is compared again on fresh instances, and is UNDECIDED when none
/// resolves it.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*X").unwrap();
/// let d = matdiff::derive(&p, &matdiff::DeriveOptions::default()).unwrap();
/// let report = matdiff::numeric::check(&d, &Default::default()).unwrap();
/// assert!(report.ok());
/// ```
pub fn check(derivation: &Derivation, options: &CheckOptions) -> Result<CheckReport> {
    let deadline = Deadline::after(options.time_limit).polling(&options.control);
    let first = Instance::draw_within(derivation, options, 0, &deadline)?;
    let (sizes, indices, domains, redraws) =
        (first.sizes.clone(), first.indices.clone(), first.domains.clone(), first.redraws);
    let mut skipped = redraws + 1;
    let mut results = check_on(derivation, first, options.method, &deadline, 0)?;
    let mut instances = 1;
    let mut tries = 1;
    let wanted = |results: &[CheckResult], instances: usize| {
        instances < CHECK_INSTANCES
            || (results.iter().any(CheckResult::undecided) && instances < CHECK_INSTANCES + MAX_NOISY_REDRAWS)
    };
    while wanted(&results, instances) && tries < 2 * (CHECK_INSTANCES + MAX_NOISY_REDRAWS) {
        tries += 1;
        // Another scale may overflow where the first did not: go on to the next.
        let nth = CheckOptions { instance: instances, ..options.clone() };
        let Ok(instance) = Instance::draw_within(derivation, &nth, skipped, &deadline) else {
            deadline.check()?;
            skipped += 1;
            continue;
        };
        skipped = instance.redraws + 1;
        instances += 1;
        let again = check_on(derivation, instance, options.method, &deadline, instances - 1)?;
        for (r, new) in results.iter_mut().zip(again) {
            // A difference anywhere is a mismatch; else the first agreement.
            if new.outcome == Outcome::Differ || (r.undecided() && new.outcome == Outcome::Agree) {
                *r = new;
            }
        }
    }
    Ok(CheckReport { sizes, seed: options.seed, indices, domains, redraws, instances, results })
}

/// Why a gradient that, with the expression and its differences, is
/// exactly zero on every instance is undecided.
pub const EXACTLY_ZERO: &str =
    "the expression and its differences are exactly zero here, and this gradient is zero to within its rounding (underflow, or zero everywhere): nothing is tested";

/// Below this size (Frobenius, absolute) a gradient counts as zero when
/// weighing the differences' noise: a zero gradient agrees with
/// differences whose noise is below `MAX_FD_ERROR` times this.
const ZERO_SCALE: f64 = 1e-3;

/// A value whose rounding noise is above this fraction of it has cancelled.
const CANCELLED: f64 = 1e-3;

/// Two evaluation orders of an accurate value may differ by this many
/// times its estimated rounding before the plan is taken to be wrong.
const PLAN_MARGIN: f64 = 1000.0;

/// More instances tried, at most, for gradients those left undecided.
const MAX_NOISY_REDRAWS: usize = 6;

/// Compares every gradient on one instance, the `nth` (from 0), reporting
/// each gradient to the deadline's control.
fn check_on(
    derivation: &Derivation,
    instance: Instance,
    method: CheckMethod,
    deadline: &Deadline,
    nth: usize,
) -> Result<Vec<CheckResult>> {
    let env = instance.env;
    let evaluator = || Evaluator::new(&derivation.typing.program.expr, &env, None).within(deadline.clone());
    let forward = evaluator();
    let loss_by = |forward: &Evaluator, env: &Env| -> Result<f64> {
        let z = forward.eval(env)?;
        Ok(match &derivation.mode {
            Mode::Scalar => z[(0, 0)],
            Mode::Layer { upstream } => env.vars[upstream].component_mul(&z).sum(),
        })
    };
    // The gradients as the plan computes them; its value must be the expression's.
    let shapes: Vec<(VarName, usize, usize)> =
        env.vars.iter().map(|(v, m)| (v.clone(), m.nrows(), m.ncols())).collect();
    let indices: Vec<(String, i64)> = env.indices.clone();
    let plan = instance_plan(derivation, &shapes, &indices, &env.sizes)?;
    // The differences cost evaluations of the expression, each of the
    // forward steps that read the gradient's variable (the rest is held):
    // entry by entry two tableaus per entry; along directions, where the
    // gradient is right, one tableau per direction. A gradient that differs
    // takes the second tableau too, and is bounded by the time limit.
    let priced: Vec<(u128, u128)> = derivation
        .gradients
        .iter()
        .map(|g| {
            let v = member(&g.wrt, &env)?;
            let entries = env.vars.get(&v).map_or(0, |m| m.len() as u128);
            Ok((entries, plan.forward_varying(&v).as_number().unwrap_or(u128::MAX).max(1)))
        })
        .collect::<Result<_>>()?;
    let work = |compared: Compared| -> u128 {
        priced
            .iter()
            .map(|(entries, madds)| match compared {
                Compared::Entries => madds.saturating_mul(*entries).saturating_mul(2 * TABLEAU_EVALUATIONS),
                Compared::Directions(k) => {
                    madds.saturating_mul(k as u128).saturating_mul(TABLEAU_EVALUATIONS)
                }
            })
            .fold(0, u128::saturating_add)
    };
    let compared = match method {
        CheckMethod::Entries => Compared::Entries,
        CheckMethod::Directions => Compared::Directions(DIRECTIONS),
        CheckMethod::Auto if work(Compared::Entries) <= AUTO_ENTRIES_MADDS => Compared::Entries,
        CheckMethod::Auto => Compared::Directions(DIRECTIONS),
    };
    let what = match compared {
        Compared::Entries => {
            format!("{} gradient entries", priced.iter().map(|(entries, _)| entries).sum::<u128>())
        }
        Compared::Directions(k) => {
            format!("{k} directions for each of {} gradients", derivation.gradients.len())
        }
    };
    if let Some(madds) = plan.forward.as_number().filter(|_| work(compared) > MAX_FD_MADDS) {
        let note = match compared {
            Compared::Entries => "check at smaller sizes, or along random directions (`--method directions`): declare smaller shapes, or give symbolic dimensions small sizes",
            Compared::Directions(_) => "check at smaller sizes: declare smaller shapes, or give symbolic dimensions small sizes",
        };
        return Err(Error::new(
            ErrorKind::Limit,
            format!(
                "finite differences at these sizes would take about {} multiply-adds ({what}, up to {madds} per evaluation), more than the {MAX_FD_MADDS} a check may spend",
                work(compared)
            ),
        )
        .note(note));
    }
    let outputs = run_plan_within(&plan, &env, Some(deadline))?;
    // The gradients' own rounding: (a*a*b - a*b*a)*G with 1x1 a and b is
    // zero, evaluated as rounding noise, and must not differ from zero.
    let gradient_noise = super::rounding_noises(
        &mut |e| run_plan_within(&plan, e, Some(deadline)),
        &env,
        &outputs,
        &mut seeded(1),
    )?;
    let direct = forward.eval(&env)?;
    let value_noise = super::rounding_noise(&mut |e| forward.eval(e), &env, &direct, &mut seeded(0))?;
    // The plan evaluates in another order: on instances conditioned up to
    // MAX_CONDITION, and through nested inverses, rounding alone differs by
    // 1e-9 (a deep property case: 1.8e-9). Where the value cancels to its
    // rounding (logdet(A^64) - 64*logdet(A)), the two orders differ
    // entirely and neither the value nor its differences mean anything; a
    // wrong plan is off by far more than rounding on an accurate value.
    let same = Tolerances { relative: TOLERANCE, max_noise: TOLERANCE, zero_scale: 0.0 };
    let value = compare(&outputs[0], &direct, value_noise, &same);
    if value.rel_err > TOLERANCE {
        if value.rel_noise > CANCELLED || value.rel_err <= PLAN_MARGIN * value.rel_noise {
            let reason = format!(
                "the expression cancels to within its rounding here (±{:.1e} of its value), so its differences mean nothing",
                value.rel_noise
            );
            return Ok(undecided_all(derivation, reason, compared));
        }
        return Err(Error::new(
            ErrorKind::Internal,
            format!(
                "the plan's value differs from the expression's by {:.1e}, far beyond rounding ({:.1e})",
                value.rel_err, value.rel_noise
            ),
        ));
    }
    let tolerances = Tolerances { relative: TOLERANCE, max_noise: MAX_FD_ERROR, zero_scale: ZERO_SCALE };
    let mut results = Vec::new();
    let count = derivation.gradients.len();
    'gradients: for (k, ((g, symbolic), own_noise)) in derivation
        .gradients
        .iter()
        .zip(outputs.into_iter().skip(1))
        .zip(gradient_noise.into_iter().skip(1))
        .enumerate()
    {
        let what = || format!("checking d/d{} ({} of {count}, instance {})", g.wrt, k + 1, nth + 1);
        deadline.control().step(what, nth * count + k, CHECK_INSTANCES.max(nth + 1) * count)?;
        let wrt = member(&g.wrt, &env)?;
        // The differences move only wrt: what does not depend on it is
        // evaluated once.
        let varying = evaluator().varying_only(&wrt.name, &env)?;
        let loss = |env: &Env| loss_by(&varying, env);
        let probes = match compared {
            Compared::Entries => Probes::Entries,
            Compared::Directions(k) => Probes::directions(&env.vars[&wrt], k),
        };
        // Along directions, the gradient's projections (and their rounding:
        // at most its own times each direction's size).
        let (symbolic, own_noise) = match &probes {
            Probes::Entries => (symbolic, own_noise),
            Probes::Directions(v) => (
                Matrix::from_iterator(1, v.len(), v.iter().map(|v| symbolic.component_mul(v).sum())),
                own_noise * v.iter().map(|v| norm(v).powi(2)).sum::<f64>().sqrt(),
            ),
        };
        // Along directions, one tableau each first: where those agree with the
        // gradient, that settles it (differences do not match a wrong gradient by
        // chance); anything else is decided on the full differences.
        let quick = match &probes {
            Probes::Entries => None,
            Probes::Directions(_) => differences(&loss, &env, &wrt, &probes, QUICK_STEP, Estimator::Quick)?
                .filter(|(numeric, noise)| {
                    compare(&symbolic, numeric, norm(noise) + own_noise, &tolerances).outcome
                        == Outcome::Agree
                }),
        };
        let first = match quick {
            agreed @ Some(_) => agreed,
            None => differences(&loss, &env, &wrt, &probes, DEFAULT_STEP, Estimator::Full)?,
        };
        let Some((mut numeric, noise)) = first else {
            results.push(not_finite(g, compared));
            continue;
        };
        let mut c = compare(&symbolic, &numeric, norm(&noise) + own_noise, &tolerances);
        let mut unsettled = false;
        if c.outcome != Outcome::Agree {
            // Before calling a gradient wrong or undecided, the differences
            // must have settled: a loss that varies faster than the steps
            // resolve (sum(sin(1e6*A)), or a sine of a large argument deep
            // in a program) gives a smooth-looking but wrong tableau, or a
            // noisy one. Shrink the first step a hundredfold at a time (each
            // estimate looks at its first step and a tenth of it) until the
            // gradient agrees, or two in a row give the same differences.
            let mut previous = (numeric.clone(), norm(&noise));
            let mut settled = false;
            for refinement in 1..=REFINEMENTS {
                let step = DEFAULT_STEP * 100f64.powi(-refinement);
                let Some((fine, noise)) = differences(&loss, &env, &wrt, &probes, step, Estimator::Full)?
                else {
                    results.push(not_finite(g, compared));
                    continue 'gradients;
                };
                let fine_noise = norm(&noise);
                c = compare(&symbolic, &fine, fine_noise + own_noise, &tolerances);
                settled = compare(&previous.0, &fine, previous.1 + fine_noise, &tolerances).outcome
                    == Outcome::Agree;
                numeric = fine;
                if c.outcome == Outcome::Agree || settled {
                    break;
                }
                previous = (numeric.clone(), fine_noise);
            }
            unsettled = c.outcome == Outcome::Differ && !settled;
        }
        // Everything exactly zero tests nothing: the expression underflowed
        // (exp(-1000*sum(X .^ 2))), or is zero everywhere.
        let zero = |m: &Matrix| m.iter().all(|x| *x == 0.0);
        let vacuous = c.outcome == Outcome::Agree
            && g.expr.kind != ExprKind::Num(0.0)
            && zero(&direct)
            && zero(&numeric)
            && norm(&symbolic) <= NOISE_MARGIN * own_noise;
        let Comparison { outcome, rel_err, rel_noise } = c;
        let (outcome, reason) = if vacuous {
            (Outcome::Undecided, Some(EXACTLY_ZERO.to_string()))
        } else if unsettled {
            (
                Outcome::Undecided,
                Some("finite differences do not settle as their step shrinks (the expression varies faster than the steps resolve)".to_string()),
            )
        } else if outcome == Outcome::Undecided {
            (
                outcome,
                Some(format!("finite differences too noisy here (±{rel_noise:.1e} of the gradient's size)")),
            )
        } else {
            (outcome, None)
        };
        results.push(CheckResult {
            wrt: g.wrt.clone(),
            outcome,
            max_rel_err: Some(rel_err).filter(|e| e.is_finite()),
            fd_error: Some(rel_noise).filter(|e| e.is_finite()),
            reason,
            compared,
        });
    }
    Ok(results)
}

/// The first step of finite differences: a tenth of an entry of typical size.
const DEFAULT_STEP: f64 = 0.1;

/// Times the first step shrinks a hundredfold, at most (to 1e-9, below
/// which rounding swamps any difference), before differences that keep
/// changing leave a gradient undecided rather than wrong.
const REFINEMENTS: i32 = 4;

/// How each finite difference is extrapolated.
#[derive(Clone, Copy)]
enum Estimator {
    /// Two Ridders tableaus, each run until its error grows ([`derivative_from`]).
    Full,
    /// One tableau, stopped once its error is [`QUICK_SETTLED`] of its value
    /// ([`quick_derivative`]): only for a first look whose disagreement is
    /// decided again on [`Estimator::Full`].
    Quick,
}

/// The first step of a quick tableau along a direction (entries up to 1 in
/// size, scaled by the step): a thousandth of [`DEFAULT_STEP`], where the
/// expression is close to its tangent and a tableau settles in a few
/// rounds. Measured on a 3-layer tanh network: at widths 128, from 0.1,
/// 14 of its 20 gradients-on-an-instance went on to full differences, from
/// 10⁻³ none; at widths 256, 7.5 evaluations per direction from 10⁻³
/// (settled at 10⁻⁹), 5.7 from 10⁻⁴ (settled at [`QUICK_SETTLED`]).
const QUICK_STEP: f64 = 1e-4;

/// Where a quick tableau stops: its error estimate a hundredth of the
/// tolerance of a comparison.
const QUICK_SETTLED: f64 = 1e-2 * TOLERANCE;

/// What the finite differences of a variable probe.
enum Probes {
    /// Each entry.
    Entries,
    /// Each of these directions (the variable's shape).
    Directions(Vec<Matrix>),
}

impl Probes {
    /// `k` directions of `value`'s shape, entries uniform in [-1, 1], drawn
    /// from the value itself: each instance, and each variable, its own.
    fn directions(value: &Matrix, k: usize) -> Probes {
        use rand::Rng;
        let seed = value.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, x| h.rotate_left(7) ^ x.to_bits());
        let mut rng = seeded(seed);
        let draw = |_| Matrix::from_fn(value.nrows(), value.ncols(), |_, _| rng.random_range(-1.0..=1.0));
        Probes::Directions((0..k).map(draw).collect::<Vec<_>>())
    }
}

/// Finite differences of the loss in `wrt` along each probe (every entry
/// of `wrt`, in its shape; or each direction, a row), each from the first
/// step `step`, with their errors; `None` where the loss is not finite
/// within a step.
fn differences(
    loss: &dyn Fn(&Env) -> Result<f64>,
    env: &Env,
    wrt: &VarName,
    probes: &Probes,
    step: f64,
    estimator: Estimator,
) -> Result<Option<(Matrix, Matrix)>> {
    let derivative = |f: &mut dyn FnMut(f64) -> Result<f64>, x: f64| match estimator {
        Estimator::Full => derivative_from(f, x, step),
        Estimator::Quick => quick_derivative(f, x, step, QUICK_SETTLED),
    };
    let value = &env.vars[wrt];
    let mut probe = env.clone();
    let (mut numeric, mut noise) = match probes {
        Probes::Entries => {
            (Matrix::zeros(value.nrows(), value.ncols()), Matrix::zeros(value.nrows(), value.ncols()))
        }
        Probes::Directions(v) => (Matrix::zeros(1, v.len()), Matrix::zeros(1, v.len())),
    };
    for idx in 0..numeric.len() {
        let estimate = match probes {
            Probes::Entries => {
                let x = value[idx];
                let estimate = derivative(
                    &mut |at| {
                        probe.vars.get_mut(wrt).expect("variable")[idx] = at;
                        loss(&probe)
                    },
                    x,
                )?;
                probe.vars.get_mut(wrt).expect("variable")[idx] = x;
                estimate
            }
            Probes::Directions(v) => derivative(
                &mut |t| {
                    let x = probe.vars.get_mut(wrt).expect("variable");
                    for (x, (x0, v)) in x.iter_mut().zip(value.iter().zip(v[idx].iter())) {
                        *x = x0 + t * v;
                    }
                    loss(&probe)
                },
                0.0,
            )?,
        };
        match estimate {
            Some(e) => (numeric[idx], noise[idx]) = (e.value, e.error),
            None => return Ok(None),
        }
    }
    Ok(Some((numeric, noise)))
}

fn not_finite(g: &crate::derive::Gradient, compared: Compared) -> CheckResult {
    CheckResult {
        wrt: g.wrt.clone(),
        outcome: Outcome::Undecided,
        max_rel_err: None,
        fd_error: None,
        reason: Some("the expression is not finite within a step of the instance".into()),
        compared,
    }
}

/// Every gradient undecided, for one reason.
fn undecided_all(derivation: &Derivation, reason: String, compared: Compared) -> Vec<CheckResult> {
    derivation
        .gradients
        .iter()
        .map(|g| CheckResult {
            wrt: g.wrt.clone(),
            outcome: Outcome::Undecided,
            max_rel_err: None,
            fd_error: None,
            reason: Some(reason.clone()),
            compared,
        })
        .collect()
}

fn seeded(seed: u64) -> rand::rngs::StdRng {
    rand::SeedableRng::seed_from_u64(seed)
}
