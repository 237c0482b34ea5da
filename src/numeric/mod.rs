//! Numbers: evaluation on nalgebra, random instances, and the check of every
//! derived gradient against finite differences in f64.
//!
//! Entry point: [`check`]. Its parts: where values are drawn from
//! (`domain.rs`, a sign analysis of the expression), drawing an instance
//! (`instance.rs`), Ridders' finite differences (`ridders.rs`), the check
//! (`check.rs`), and evaluation of expressions and plans (`eval.rs`,
//! `plan.rs`). [`compare`] is the one rule by which a check or a claim is
//! judged: agree, differ, or undecided where the evidence cannot tell.

mod check;
mod domain;
mod eval;
mod instance;
mod plan;
mod ridders;

use std::collections::BTreeMap;
use std::time::Duration;

use crate::clock::Instant;

use rand::rngs::StdRng;
use rand::Rng;

pub use check::{
    check, CheckMethod, CheckOptions, CheckReport, CheckResult, Compared, AUTO_ENTRIES_MADDS,
    CHECK_INSTANCES, CHECK_TIME_LIMIT, DIRECTIONS, EXACTLY_ZERO, MAX_FD_ERROR,
};
pub use domain::{domain_of, domains, Domain, Sign, Structure};
pub use eval::{eval, Env, Evaluator, Matrix};
pub use instance::{instance_plan, scale_of, Instance, MAX_CONDITION, SCALES};
pub use plan::{run_plan, run_plan_within};

use crate::control::Control;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Dim, Shape};
use crate::syntax::{Index, VarName};

/// Largest relative difference between a gradient and finite differences
/// that is agreement on its own.
pub const TOLERANCE: f64 = 1e-6;

/// Differences within this many times the estimated noise of the compared
/// values are not evidence of a difference.
pub const NOISE_MARGIN: f64 = 10.0;

/// What a comparison of two values concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// They agree, on evidence that could have told a difference.
    Agree,
    /// They differ by more than any rounding or truncation explains.
    Differ,
    /// The evidence cannot tell: the values are below their own noise.
    Undecided,
}

/// The judgement of one comparison, with its numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Comparison {
    /// The judgement.
    pub outcome: Outcome,
    /// ‖a − b‖ / max(‖a‖, ‖b‖, zero scale) (Frobenius; 0 when both are zero).
    pub rel_err: f64,
    /// The noise of the compared values, on the same scale.
    pub rel_noise: f64,
}

/// How [`compare`] weighs noise.
#[derive(Clone, Copy, Debug)]
pub struct Tolerances {
    /// A relative difference up to this agrees whatever the noise.
    pub relative: f64,
    /// Noise above this, relative to the larger value, leaves a difference
    /// within [`NOISE_MARGIN`] times the noise undecided rather than agreed.
    pub max_noise: f64,
    /// The scale below which values count as zero when weighing their
    /// noise (absolute): finite differences of a zero gradient leave
    /// rounding noise, which must be small against this to be agreement.
    pub zero_scale: f64,
}

/// Compares `a` with `b`, given an absolute bound on their noise (the
/// rounding of exact evaluations, or the error of finite differences).
///
/// They *agree* when they are relatively close (`tolerances.relative`), or
/// within [`NOISE_MARGIN`] times a noise that is itself small against them.
/// They *differ* when the difference exceeds both the relative tolerance
/// and the noise margin. Anything else, such as two values that are both
/// below their own rounding, is *undecided*: never agreement on evidence
/// that could not have told a difference.
///
/// ```
/// use matdiff::numeric::{compare, Matrix, Outcome, Tolerances};
/// let t = Tolerances { relative: 1e-7, max_noise: 1e-6, zero_scale: 0.0 };
/// let tiny = Matrix::from_element(2, 2, 1e-28);
/// // A gradient of 1e-28 is not zero when its noise is 1e-40.
/// assert_eq!(compare(&tiny, &Matrix::zeros(2, 2), 1e-40, &t).outcome, Outcome::Differ);
/// assert_eq!(compare(&tiny, &tiny, 1e-40, &t).outcome, Outcome::Agree);
/// // Two values that are all rounding decide nothing.
/// let noise = Matrix::from_element(2, 2, 1e-16);
/// assert_eq!(compare(&noise, &Matrix::zeros(2, 2), 1e-16, &t).outcome, Outcome::Undecided);
/// ```
pub fn compare(a: &Matrix, b: &Matrix, noise: f64, tolerances: &Tolerances) -> Comparison {
    if a.shape() != b.shape() {
        return Comparison { outcome: Outcome::Differ, rel_err: f64::INFINITY, rel_noise: 0.0 };
    }
    let finite = |m: &Matrix| m.iter().all(|x| x.is_finite());
    if !finite(a) || !finite(b) || !noise.is_finite() {
        return Comparison { outcome: Outcome::Undecided, rel_err: f64::NAN, rel_noise: f64::NAN };
    }
    let d = norm(&(a - b));
    let s = norm(a).max(norm(b));
    // Relative to the larger value, or to the scale of zero below it.
    let scale = s.max(tolerances.zero_scale);
    let rel_err = if scale > 0.0 { d / scale } else { 0.0 };
    let rel_noise = if scale > 0.0 { noise / scale } else { noise };
    let close = s > 0.0 && d <= tolerances.relative * s;
    let within_noise =
        d <= NOISE_MARGIN * noise && noise <= tolerances.max_noise * s.max(tolerances.zero_scale);
    let outcome = if close || within_noise {
        Outcome::Agree
    } else if d > tolerances.relative * s && d > NOISE_MARGIN * noise {
        Outcome::Differ
    } else {
        Outcome::Undecided
    };
    Comparison { outcome, rel_err, rel_noise }
}

/// The Frobenius norm, without overflow for entries beyond 1e154.
pub fn norm(m: &Matrix) -> f64 {
    let largest = m.amax();
    if largest == 0.0 || !largest.is_finite() {
        return largest;
    }
    largest * (m / largest).norm()
}

/// A time limit for one command's numeric work as a whole: draws,
/// conditioning tests, evaluations of the plan and of the expression;
/// and the caller's [`Control`], polled with it.
#[derive(Clone, Debug)]
pub struct Deadline {
    start: Instant,
    limit: Duration,
    control: Control,
}

impl Deadline {
    /// A deadline `limit` from now.
    pub fn after(limit: Duration) -> Deadline {
        Deadline { start: Instant::now(), limit, control: Control::default() }
    }

    /// The deadline, also ending the work once `control` is interrupted.
    pub fn polling(self, control: &Control) -> Deadline {
        Deadline { control: control.clone(), ..self }
    }

    /// The control this deadline polls, for reporting progress to.
    pub fn control(&self) -> &Control {
        &self.control
    }

    /// An error naming the limit once it has passed, or the interruption
    /// once the control is interrupted.
    pub fn check(&self) -> Result<()> {
        self.control.check()?;
        if self.start.elapsed() <= self.limit {
            return Ok(());
        }
        Err(Error::new(
            ErrorKind::Limit,
            format!(
                "the numeric work stopped at its time limit ({} s): finite differences evaluate the expression about 40 times per gradient entry",
                self.limit.as_secs_f64()
            ),
        )
        .note("check at smaller sizes: declare smaller shapes, or give symbolic dimensions small sizes"))
    }
}

/// ‖a − b‖ / max(‖a‖, ‖b‖, 10⁻³): relative for values of ordinary size,
/// absolute near zero. Infinite on a shape mismatch or a NaN. (A measure
/// for tests and benches; verdicts are judged by [`compare`], which knows
/// the noise instead of assuming a floor.)
pub fn relative_error(a: &Matrix, b: &Matrix) -> f64 {
    if a.shape() != b.shape() {
        return f64::INFINITY;
    }
    let scale = norm(a).max(norm(b)).max(1e-3);
    let err = norm(&(a - b)) / scale;
    if err.is_nan() {
        f64::INFINITY
    } else {
        err
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

/// The value of a gradient formula, as a matrix of its variable's shape (a
/// lone `I` takes that size, a scalar `0` fills it).
pub fn gradient_value(g: &crate::derive::Gradient, env: &Env) -> Result<Matrix> {
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

/// An estimate of the rounding noise of evaluating `f` on `env`: how far
/// its value moves when every input moves by a few hundred units in the
/// last place (the largest of two such moves). An evaluation that loses
/// its digits to cancellation or ill conditioning moves by as much as it
/// rounds; a well-conditioned one by about 10⁻¹³ of itself.
pub fn rounding_noise(
    f: &mut dyn FnMut(&Env) -> Result<Matrix>,
    env: &Env,
    at: &Matrix,
    rng: &mut StdRng,
) -> Result<f64> {
    let noises = rounding_noises(&mut |e| Ok(vec![f(e)?]), env, std::slice::from_ref(at), rng)?;
    Ok(noises[0])
}

/// [`rounding_noise`] of each of several values computed together (the
/// outputs of one plan), from the same moves of the inputs.
pub fn rounding_noises(
    f: &mut dyn FnMut(&Env) -> Result<Vec<Matrix>>,
    env: &Env,
    at: &[Matrix],
    rng: &mut StdRng,
) -> Result<Vec<f64>> {
    const NUDGE: f64 = 1e-13;
    let mut worst = vec![0.0f64; at.len()];
    for _ in 0..2 {
        let mut moved = env.clone();
        // In the order of the names, so that a seed means one estimate.
        let mut names: Vec<&VarName> = env.vars.keys().collect();
        names.sort();
        for v in names {
            let m = moved.vars.get_mut(v).expect("a variable of env");
            m.iter_mut().for_each(|x| *x *= 1.0 + NUDGE * rng.random_range(-1.0..1.0));
        }
        let there = f(&moved)?;
        for ((w, t), a) in worst.iter_mut().zip(&there).zip(at) {
            *w = if t.shape() == a.shape() { w.max(norm(&(t - a))) } else { f64::INFINITY };
        }
    }
    // An exact evaluation still rounds its last place.
    Ok(worst.into_iter().zip(at).map(|(w, a)| w.max(4.0 * f64::EPSILON * norm(a))).collect())
}
