//! An independent judge of whether a formula differs from a derived
//! gradient, for the mutation tests.
//!
//! Both are evaluated exactly (`matdiff::numeric::eval`) on random instances
//! drawn here, never by matdiff's `numeric::domains` or `Instance::draw`,
//! which are what the mutation tests hold to account:
//!
//! - entries of both signs, uniform in [-s, s] for scales s of 2, 1 and 1/2
//!   (each variable a further factor in [0.7, 1.4]);
//! - positive entries only for a variable under a `log`, `sqrt`, divisor or
//!   fractional power whose argument an interval analysis (below) cannot
//!   show to be of one sign for every input: `log(1 + exp(z))`,
//!   `sqrt(z .^ 2)`, `x ./ sqrt(x .^ 2)` and `sqrt(x^T*x)` leave z and x signed;
//! - a square matrix that the program or the gradient inverts, or whose
//!   determinant it takes, as a random matrix plus c·I with |c| in
//!   [0.5, 1.5]·s and either sign: invertible, not symmetric, of
//!   determinant of order 1 and of either sign; instances where a matrix
//!   under an inverse has a condition number above 1e6 are not used.
//!
//! Two formulas differ when, on some instance where both are finite, they
//! differ by more than 1e-6 relative to the larger of their Frobenius norms,
//! with no floor; where both are 0 or rounding noise (a gradient that is 0
//! but for rounding, such as that of `sqrt(P) - P .^ 0.5`, and its double)
//! they agree. Rounding noise is told from a value by moving every entry of
//! the instance by a relative 1e-10: a value moves about as much, noise by
//! far more.
//!
//! [`Config`] also describes weaker judges, which mimic matdiff's draws: the
//! mutation tests use them to name the cause of a false verdict, and to
//! show that the judge's choices are what catch the known false verdicts.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use matdiff::calculus::Mode;
use matdiff::numeric::{eval, Env, Matrix};
use matdiff::shape::{Dim, Typer};
use matdiff::syntax::{BinOp, Expr, ExprKind, Func, Index, VarName};
use matdiff::{Derivation, Gradient};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Which variables are drawn positive.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Positive {
    /// Those under an argument the interval analysis cannot show of one
    /// sign, in the program or in the gradient (the judge).
    Analysed,
    /// Every variable that occurs anywhere under `log`, `sqrt`, a divisor
    /// or a fractional or negative power of the program (matdiff's rule today).
    Syntactic,
}

/// How a matrix that must be invertible is drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Invertible {
    /// B + c·I, |c| in [0.5, 1.5]·s, either sign (the judge).
    Shifted,
    /// B + (n + 1)·I with B in [-1, 1] (positive: B in [0.5, 2] plus
    /// (2n + 1)·I): diagonally dominant, det ≈ (n+1)^n (matdiff's today).
    Dominant,
}

/// How to judge.
#[derive(Clone, Copy, Debug)]
pub struct Config {
    /// Instances compared (where fewer are usable, fewer).
    pub draws: usize,
    /// Largest relative difference taken for agreement.
    pub tolerance: f64,
    /// The denominator is max(‖a‖, ‖b‖, floor).
    pub floor: f64,
    pub positive: Positive,
    pub invertible: Invertible,
    /// Scales 2, 1, 1/2 in turn and a factor per variable; otherwise entries
    /// in [-1, 1] (positive: [0.5, 2]) as matdiff draws them.
    pub scales: bool,
    /// Largest size of a symbolic dimension (the smallest is 2).
    pub max_size: usize,
}

/// The judge of the mutation tests.
pub const JUDGE: Config = Config {
    draws: 8,
    tolerance: 1e-6,
    floor: 0.0,
    positive: Positive::Analysed,
    invertible: Invertible::Shifted,
    scales: true,
    max_size: 4,
};

/// matdiff's draws and its relative error, as `verify` has them today: a
/// judge that cannot see what `verify` cannot.
pub const LIKE_MATDIFF: Config = Config {
    draws: 8,
    tolerance: 1e-6,
    floor: 1e-3,
    positive: Positive::Syntactic,
    invertible: Invertible::Dominant,
    scales: false,
    max_size: 5,
};

/// Largest condition number of a matrix under an inverse on a used instance.
pub const MAX_CONDITION: f64 = 1e6;

/// One instance: the values, the sizes, and the gradient's value on it.
#[derive(Clone, Debug)]
pub struct Sample {
    pub env: Env,
    pub sizes: BTreeMap<String, usize>,
    /// The shape of the variable (the gradient's shape) on this instance.
    pub shape: (usize, usize),
    pub gradient: Matrix,
    /// The instance with every entry moved by a relative 1e-10: a value that
    /// moves by more than [`NOISE`] relative is rounding noise (a formula
    /// that is 0 but for rounding), since the formulas are smooth and every
    /// inverse on the instance well conditioned.
    pub nudged: Env,
    /// The gradient is 0 or rounding noise on this instance.
    pub gradient_noise: bool,
}

impl Sample {
    /// `n=3 j=2 d0=4 ...`: the sizes and index values of the instance.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self.env.indices.iter().map(|(k, v)| format!("{k}={v}")).collect();
        parts.extend(self.sizes.iter().map(|(k, v)| format!("{k}={v}")));
        parts.join(" ")
    }
}

/// The judge's answer about one formula.
#[derive(Clone, Debug)]
pub enum Judgement {
    /// On instance `sample` (sizes `sizes`) the relative difference is `rel`.
    Differs { sample: usize, rel: f64, sizes: String },
    /// Agrees on every one of `samples` usable instances.
    Same { samples: usize },
    /// No instance where both are finite.
    Unjudged,
}

impl Judgement {
    pub fn differs(&self) -> bool {
        matches!(self, Judgement::Differs { .. })
    }
}

/// A derived gradient to judge formulas against, with what its variables
/// need: positive entries, invertibility.
pub struct Subject<'a, 'p> {
    pub derivation: &'a Derivation<'p>,
    pub gradient: &'a Gradient,
    /// Names of the variables (and families) drawn positive under
    /// [`Positive::Analysed`] and under [`Positive::Syntactic`].
    analysed_positive: BTreeSet<String>,
    syntactic_positive: BTreeSet<String>,
    /// Names of the variables (and families) drawn invertible.
    invertible: BTreeSet<String>,
    seed: u64,
}

impl<'a, 'p> Subject<'a, 'p> {
    pub fn new(derivation: &'a Derivation<'p>, gradient: &'a Gradient) -> Subject<'a, 'p> {
        let program = &derivation.typing.program.expr;
        let mut analysed = BTreeSet::new();
        let mut invertible = BTreeSet::new();
        for e in [program, &gradient.expr] {
            let scalars = scalar_nodes(derivation.typing.typer(), e);
            needs(e, &scalars, &mut analysed, &mut invertible);
        }
        let mut syntactic = BTreeSet::new();
        syntactic_positive(program, false, &mut syntactic);
        let text = format!("{program} / {}", gradient.wrt);
        let seed =
            text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x100_0000_01b3));
        Subject {
            derivation,
            gradient,
            analysed_positive: analysed,
            syntactic_positive: syntactic,
            invertible,
            seed,
        }
    }

    /// The variables drawn positive under `policy`.
    pub fn positive(&self, policy: Positive) -> &BTreeSet<String> {
        match policy {
            Positive::Analysed => &self.analysed_positive,
            Positive::Syntactic => &self.syntactic_positive,
        }
    }

    pub fn invertible(&self) -> &BTreeSet<String> {
        &self.invertible
    }

    /// Up to `config.draws` usable instances: the program and the gradient
    /// finite, every matrix under an inverse of condition at most
    /// [`MAX_CONDITION`]. Seeded by the program and the variable.
    pub fn samples(&self, config: &Config) -> Vec<Sample> {
        let mut rng = StdRng::seed_from_u64(self.seed);
        let mut out = vec![];
        for attempt in 0..config.draws * 6 {
            if out.len() == config.draws {
                break;
            }
            let Some(sample) = self.draw(config, attempt, &mut rng) else { continue };
            out.push(sample);
        }
        out
    }

    /// Whether `formula` differs from the gradient on the samples.
    pub fn judge(&self, samples: &[Sample], formula: &Expr, config: &Config) -> Judgement {
        let mut usable = 0;
        for (i, s) in samples.iter().enumerate() {
            let Some(rel) = compare(s, formula, config) else { continue };
            usable += 1;
            if rel > config.tolerance {
                return Judgement::Differs { sample: i + 1, rel, sizes: s.describe() };
            }
        }
        if usable == 0 {
            Judgement::Unjudged
        } else {
            Judgement::Same { samples: usable }
        }
    }

    /// On how many of the usable samples `formula` differs, and of how many.
    pub fn differing(&self, samples: &[Sample], formula: &Expr, config: &Config) -> (usize, usize) {
        let rels: Vec<f64> = samples.iter().filter_map(|s| compare(s, formula, config)).collect();
        (rels.iter().filter(|&&r| r > config.tolerance).count(), rels.len())
    }

    fn draw(&self, config: &Config, attempt: usize, rng: &mut StdRng) -> Option<Sample> {
        let d = self.derivation;
        let program = &d.typing.program.expr;
        // Index symbols: ranges of products and indexed dimensions first,
        // then the variable's own index within its side condition.
        let mut outer = BTreeSet::new();
        for (_, lo, hi) in product_ranges(program) {
            outer.extend(lo.terms.keys().cloned());
            outer.extend(hi.terms.keys().cloned());
        }
        for v in d.typing.variables() {
            if let Some(i) = &v.index {
                outer.extend(i.terms.keys().cloned());
            }
            let s = d.typing.var_shape(v)?;
            for dim in [s.rows, s.cols] {
                if let Dim::Indexed(_, i) = dim {
                    outer.extend(i.terms.keys().cloned());
                }
            }
        }
        let own: Vec<String> = self.gradient.wrt.index.iter().flat_map(|i| i.terms.keys().cloned()).collect();
        outer.retain(|k| !own.contains(k));
        let mut indices: Vec<(String, i64)> =
            outer.into_iter().map(|k| (k, rng.random_range(1..=4))).collect();
        let bind = |i: &Index, values: &[(String, i64)]| {
            values.iter().try_fold(i.clone(), |i, (k, v)| i.subst(k, &Index::constant(*v))).ok()
        };
        for name in own {
            let condition = self.gradient.differential.conditions.iter().find(|c| c.at.mentions(&name));
            let value = match condition {
                Some(c) => {
                    let offset =
                        bind(&c.at.subst(&name, &Index::constant(0)).ok()?, &indices)?.as_constant()?;
                    let lo = bind(&c.lo, &indices)?.as_constant()?.checked_sub(offset)?;
                    let hi = bind(&c.hi, &indices)?.as_constant()?.checked_sub(offset)?;
                    if lo > hi {
                        return None;
                    }
                    rng.random_range(lo..=hi)
                }
                None => rng.random_range(1..=4),
            };
            indices.push((name, value));
        }
        let concrete = |v: &VarName| {
            let index = match &v.index {
                Some(i) => Some(bind(i, &indices)?),
                None => None,
            };
            Some(VarName { name: v.name.clone(), index })
        };

        // The variables, the members of families products use, the upstream gradient.
        let mut vars: Vec<VarName> = d.typing.variables().iter().map(concrete).collect::<Option<_>>()?;
        for (family, lo, hi) in product_ranges(program) {
            let (lo, hi) = (bind(&lo, &indices)?.as_constant()?, bind(&hi, &indices)?.as_constant()?);
            for k in lo..=hi {
                vars.push(VarName { name: family.clone(), index: Some(Index::constant(k)) });
            }
        }
        if let Mode::Layer { upstream } = &d.mode {
            vars.push(upstream.clone());
        }
        let wrt = concrete(&self.gradient.wrt)?;
        vars.push(wrt.clone());
        let mut seen = HashSet::new();
        vars.retain(|v| seen.insert(v.clone()));

        let mut typer: Typer = d.typing.typer().clone();
        let mut sizes = BTreeMap::new();
        let mut size = |dim: Dim, rng: &mut StdRng| -> Option<usize> {
            let dim = indices.iter().try_fold(dim, |dim, (k, v)| dim.subst(k, &Index::constant(*v))).ok()?;
            let key = match &dim {
                Dim::Const(n) => return usize::try_from(*n).ok(),
                Dim::Unknown(_) => return None,
                d => d.to_string(),
            };
            Some(*sizes.entry(key).or_insert_with(|| rng.random_range(2..=config.max_size)))
        };
        let scale = if config.scales { [2.0, 1.0, 0.5][attempt % 3] } else { 1.0 };
        let mut env = Env { indices: indices.clone(), ..Env::default() };
        for v in vars {
            let shape = typer.var(&v).ok()?;
            let shape = typer.resolve(shape);
            let (r, c) = (size(shape.rows, rng)?, size(shape.cols, rng)?);
            let positive = self.positive(config.positive).contains(&v.name);
            let invertible = r == c && self.invertible.contains(&v.name);
            let factor = if config.scales { scale * rng.random_range(0.7..1.4) } else { 1.0 };
            env.vars.insert(v, draw_matrix(r, c, positive, invertible, factor, config, rng));
        }
        let wrt_value = env.vars.get(&wrt)?;
        let shape = wrt_value.shape();
        let value = eval(program, &env, None).ok()?;
        if !value.iter().all(|x| x.is_finite()) {
            return None;
        }
        let gradient = value_of(&self.gradient.expr, &env, shape)?;
        if !inverses_fine(program, &env) || !inverses_fine(&self.gradient.expr, &env) {
            return None;
        }
        let nudged = nudge(&env, rng);
        // Noise: moved by a nudge, or cancelled to far below its own terms
        // (`(a - a^T) * B` for 1x1 a: the rounding of a cancellation can be
        // the same after a nudge).
        let terms = value_of(&magnitude(&self.gradient.expr), &env, shape).map_or(0.0, |m| m.norm());
        let gradient_noise = noise(&gradient, &value_of(&self.gradient.expr, &nudged, shape)?)
            || gradient.norm() <= 1e-12 * terms;
        Some(Sample { env, sizes, shape, gradient, nudged, gradient_noise })
    }
}

fn draw_matrix(
    r: usize,
    c: usize,
    positive: bool,
    invertible: bool,
    factor: f64,
    config: &Config,
    rng: &mut StdRng,
) -> Matrix {
    match config.invertible {
        Invertible::Shifted => {
            let b = if positive {
                Matrix::from_fn(r, c, |_, _| rng.random_range(0.1..1.0) * factor)
            } else {
                Matrix::from_fn(r, c, |_, _| rng.random_range(-1.0..1.0) * factor)
            };
            if invertible {
                let sign = if positive || rng.random_bool(0.5) { 1.0 } else { -1.0 };
                let shift = sign * rng.random_range(0.5..1.5) * factor;
                b + Matrix::identity(r, r) * shift
            } else {
                b
            }
        }
        Invertible::Dominant => {
            let range = if positive { 0.5..2.0 } else { -1.0..1.0 };
            let b = Matrix::from_fn(r, c, |_, _| rng.random_range(range.clone()) * factor);
            if invertible {
                let shift = if positive { 2 * r + 1 } else { r + 1 } as f64;
                b + Matrix::identity(r, r) * shift * factor
            } else {
                b
            }
        }
    }
}

/// How far a value may move, relative, when the instance moves by 1e-10
/// relative, and still be a value rather than rounding noise.
pub const NOISE: f64 = 1e-4;

/// The relative difference of `formula` from the gradient on a sample, or
/// `None` where the formula cannot be evaluated, is not finite or inverts
/// an ill-conditioned matrix. Where both are 0 or rounding noise (a
/// gradient that is 0 but for rounding, and its double), they agree.
fn compare(s: &Sample, formula: &Expr, config: &Config) -> Option<f64> {
    let value = value_of(formula, &s.env, s.shape)?;
    let nudged = value_of(formula, &s.nudged, s.shape)?;
    if !inverses_fine(formula, &s.env) {
        return None;
    }
    // A gradient that is 0 or noise against a formula that is rounding
    // too: moved by a nudge, or far below the inputs (`sum(G^T) - sum(G)`
    // may round to the same tiny value both times).
    // So is one within a thousand times the gradient's own noise (a mutant
    // of a gradient that is zero everywhere: twice the noise is noise).
    let tiny = value.norm() <= 1e-12 * s.env.vars.values().map(|m| m.norm()).fold(0.0, f64::max)
        || value.norm() <= 1e3 * s.gradient.norm();
    if s.gradient_noise && (noise(&value, &nudged) || tiny) {
        return Some(0.0);
    }
    Some(difference(&s.gradient, &value, config.floor))
}

/// The formula with nothing cancelling: subtractions added, negations
/// dropped, variables and literals by their absolute values. Its size is
/// the scale of the formula's terms, below which its value is rounding.
fn magnitude(e: &Expr) -> Expr {
    let abs = |x: Expr| {
        let squared = Expr::synthetic(ExprKind::HadamardPower(std::rc::Rc::new(x), 2.0));
        Expr::synthetic(ExprKind::Call(Func::Sqrt, std::rc::Rc::new(squared)))
    };
    match &e.kind {
        ExprKind::Var(_) => abs(e.clone()),
        ExprKind::Num(x) => Expr::synthetic(ExprKind::Num(x.abs())),
        ExprKind::Neg(x) => magnitude(x),
        ExprKind::Binary { op: BinOp::Sub, lhs, rhs, .. } => {
            Expr::binary(BinOp::Add, magnitude(lhs), magnitude(rhs))
        }
        // Opaque to the bound: kept as they are, under an absolute value.
        ExprKind::Prod(_) | ExprKind::Call(..) | ExprKind::Power(..) => abs(e.clone()),
        _ => e.map_children(|c| std::rc::Rc::new(magnitude(c))),
    }
}

/// Every entry of every variable times (1 + 1e-10 u), u uniform in [-1, 1].
fn nudge(env: &Env, rng: &mut StdRng) -> Env {
    let mut out = env.clone();
    for m in out.vars.values_mut() {
        m.apply(|x| *x *= 1.0 + 1e-10 * rng.random_range(-1.0..1.0));
    }
    out
}

/// 0, or rounding noise: moved by more than [`NOISE`] relative by a nudge.
fn noise(value: &Matrix, nudged: &Matrix) -> bool {
    let norm = value.norm();
    norm == 0.0 || (value - nudged).norm() > NOISE * norm
}

/// The value of a formula as a matrix of the variable's shape (a 1×1 value
/// fills it), or `None` where it cannot be evaluated or is not finite.
pub fn value_of(e: &Expr, env: &Env, shape: (usize, usize)) -> Option<Matrix> {
    let m = eval(e, env, Some(shape)).ok()?;
    let m = if m.shape() == (1, 1) && shape != (1, 1) {
        Matrix::from_element(shape.0, shape.1, m[(0, 0)])
    } else {
        m
    };
    (m.shape() == shape && m.iter().all(|x| x.is_finite())).then_some(m)
}

/// ‖a − b‖ / max(‖a‖, ‖b‖, floor), Frobenius; 0 when both are exactly 0,
/// infinite for different shapes.
pub fn difference(a: &Matrix, b: &Matrix, floor: f64) -> f64 {
    if a.shape() != b.shape() {
        return f64::INFINITY;
    }
    let scale = a.norm().max(b.norm()).max(floor);
    if scale == 0.0 {
        return 0.0;
    }
    let rel = (a - b).norm() / scale;
    if rel.is_nan() {
        f64::INFINITY
    } else {
        rel
    }
}

/// Every matrix that `e` inverts is well conditioned on this instance
/// (those that cannot be evaluated alone, such as a body of `prod`, aside).
fn inverses_fine(e: &Expr, env: &Env) -> bool {
    match &e.kind {
        ExprKind::Prod(_) => true,
        ExprKind::Power(x, k) if *k < 0 => {
            let fine = match eval(x, env, None) {
                Ok(m) if m.is_square() && m.nrows() > 0 => {
                    let s = m.singular_values();
                    let cond = s.max() / s.min();
                    cond.is_finite() && cond <= MAX_CONDITION
                }
                Ok(_) => false,
                Err(_) => true,
            };
            fine && inverses_fine(x, env)
        }
        _ => e.children().all(|c| inverses_fine(c, env)),
    }
}

/// Every `prod(F, i=lo..hi)` of `e` as (the family its body uses, lo, hi).
fn product_ranges(e: &Expr) -> Vec<(String, Index, Index)> {
    let mut out = vec![];
    if let ExprKind::Prod(p) = &e.kind {
        let mut families = BTreeSet::new();
        family_members(&p.body, &p.var, &mut families);
        out.extend(families.into_iter().map(|f| (f, p.lo.clone(), p.hi.clone())));
    }
    for c in e.children() {
        out.extend(product_ranges(c));
    }
    out
}

fn family_members(e: &Expr, var: &str, out: &mut BTreeSet<String>) {
    if let ExprKind::Var(v) = &e.kind {
        if v.index.as_ref().is_some_and(|i| i.mentions(var)) {
            out.insert(v.name.clone());
        }
    }
    for c in e.children() {
        family_members(c, var, out);
    }
}

/// The names of the variables of `e` (families by their name).
fn names(e: &Expr, out: &mut BTreeSet<String>) {
    if let ExprKind::Var(v) = &e.kind {
        out.insert(v.name.clone());
    }
    for c in e.children() {
        names(c, out);
    }
}

/// The nodes of `e` that are 1×1, by address, as matdiff's shape inference
/// types them against the program's variables.
fn scalar_nodes(typer: &Typer, e: &Expr) -> HashSet<*const Expr> {
    let mut typer = typer.clone();
    let mut nodes = vec![];
    if typer.infer_with(e, &mut |node, s| nodes.push((node as *const Expr, s))).is_err() {
        return HashSet::new();
    }
    nodes.into_iter().filter(|(_, s)| typer.resolve(*s).is_scalar()).map(|(n, _)| n).collect()
}

// ------------------------------------------------------ the interval analysis

/// Every entry lies in [lo, hi] for almost every input (an expression that
/// is zero only on a set of measure zero, such as z .^ 2, counts as of one
/// sign).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Range {
    pub lo: f64,
    pub hi: f64,
}

const ANY: Range = Range { lo: f64::NEG_INFINITY, hi: f64::INFINITY };
const NONNEG: Range = Range { lo: 0.0, hi: f64::INFINITY };

impl Range {
    fn of(lo: f64, hi: f64) -> Range {
        if lo.is_nan() || hi.is_nan() {
            ANY
        } else {
            Range { lo, hi }
        }
    }

    /// Of one sign (zero allowed on a set of measure zero), not identically 0.
    pub fn one_signed(self) -> bool {
        (self.lo >= 0.0 || self.hi <= 0.0) && !(self.lo == 0.0 && self.hi == 0.0)
    }

    fn neg(self) -> Range {
        Range::of(-self.hi, -self.lo)
    }

    fn add(self, b: Range) -> Range {
        Range::of(self.lo + b.lo, self.hi + b.hi)
    }

    fn mul(self, b: Range) -> Range {
        let p = |x: f64, y: f64| if x == 0.0 || y == 0.0 { 0.0 } else { x * y };
        let c = [p(self.lo, b.lo), p(self.lo, b.hi), p(self.hi, b.lo), p(self.hi, b.hi)];
        Range::of(
            c.iter().copied().fold(f64::INFINITY, f64::min),
            c.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        )
    }

    fn recip(self) -> Range {
        if self.lo >= 0.0 && self.one_signed() {
            Range::of(1.0 / self.hi, if self.lo == 0.0 { f64::INFINITY } else { 1.0 / self.lo })
        } else if self.hi <= 0.0 && self.one_signed() {
            Range::of(if self.hi == 0.0 { f64::NEG_INFINITY } else { 1.0 / self.hi }, 1.0 / self.lo)
        } else {
            ANY
        }
    }

    fn monotone(self, f: impl Fn(f64) -> f64) -> Range {
        Range::of(f(self.lo), f(self.hi))
    }

    /// A sum of one or more entries of this range.
    fn sum(self) -> Range {
        Range::of(
            if self.lo >= 0.0 { self.lo } else { f64::NEG_INFINITY },
            if self.hi <= 0.0 { self.hi } else { f64::INFINITY },
        )
    }
}

/// The range of the entries of `e`; `scalars`: its 1×1 nodes.
pub fn range(e: &Expr, scalars: &HashSet<*const Expr>) -> Range {
    let r = |x: &Expr| range(x, scalars);
    let scalar = |x: &Expr| scalars.contains(&(x as *const Expr));
    match &e.kind {
        ExprKind::Num(c) => Range::of(*c, *c),
        ExprKind::Identity => Range::of(0.0, 1.0),
        ExprKind::Ones(_) => Range::of(1.0, 1.0),
        ExprKind::Var(_) | ExprKind::Prod(_) => ANY,
        ExprKind::Neg(a) => r(a).neg(),
        ExprKind::Transpose(a) => r(a),
        ExprKind::Binary { op, lhs, rhs, .. } => {
            let (a, b) = (r(lhs), r(rhs));
            match op {
                BinOp::Add => a.add(b),
                BinOp::Sub => a.add(b.neg()),
                BinOp::Hadamard => a.mul(b),
                BinOp::HadamardDiv | BinOp::Div => a.mul(b.recip()),
                BinOp::Max => Range::of(a.lo.max(b.lo), a.hi.max(b.hi)),
                BinOp::Min => Range::of(a.lo.min(b.lo), a.hi.min(b.hi)),
                // Each entry one entry of each side times the other.
                BinOp::Kron => a.mul(b),
                // X^p = exp(p log X), X positive: positive.
                BinOp::Power => Range::of(0.0, f64::INFINITY),
                BinOp::Mul if scalar(lhs) || scalar(rhs) => a.mul(b),
                BinOp::Mul => {
                    // x^T * x (and x * x^T when 1×1) is a sum of squares.
                    let gram = scalar(e)
                        && (matches!(&lhs.kind, ExprKind::Transpose(t) if **t == **rhs)
                            || matches!(&rhs.kind, ExprKind::Transpose(t) if **t == **lhs));
                    if gram {
                        NONNEG
                    } else {
                        a.mul(b).sum()
                    }
                }
            }
        }
        ExprKind::Power(a, k) => {
            if !scalar(e) {
                return if *k == 0 { Range::of(0.0, 1.0) } else { ANY };
            }
            let a = r(a);
            match *k {
                0 => Range::of(1.0, 1.0),
                k if k > 0 && k % 2 == 0 => NONNEG,
                k if k > 0 => a.monotone(|x| x.powi(k as i32)),
                k if k % 2 == 0 => NONNEG,
                _ => a.recip().sum_sign(),
            }
        }
        ExprKind::HadamardPower(a, p) => {
            let a = r(a);
            if *p == 0.0 {
                Range::of(1.0, 1.0)
            } else if p.fract() != 0.0 || (*p as i64) % 2 == 0 {
                NONNEG
            } else if *p > 0.0 {
                a.monotone(|x| x.powf(*p))
            } else {
                a.recip().sum_sign()
            }
        }
        ExprKind::Call(f, a) => {
            let a = r(a);
            match f {
                Func::Exp => a.monotone(f64::exp),
                Func::Log if a.lo > 0.0 => a.monotone(f64::ln),
                Func::Log => ANY,
                Func::Sqrt => a.monotone(|x| x.max(0.0).sqrt()),
                Func::Sigmoid => a.monotone(|x| 1.0 / (1.0 + (-x).exp())),
                Func::Tanh => a.monotone(f64::tanh),
                Func::Relu => a.monotone(|x| x.max(0.0)),
                Func::Abs => NONNEG,
                Func::Sign => {
                    Range::of(if a.lo >= 0.0 { 0.0 } else { -1.0 }, if a.hi <= 0.0 { 0.0 } else { 1.0 })
                }
                Func::Step => Range::of(0.0, 1.0),
                Func::Softplus => a.monotone(|x| x.max(0.0) + (-x.abs()).exp().ln_1p()),
                Func::Arctan => a.monotone(f64::atan),
                Func::Sinh => a.monotone(f64::sinh),
                Func::Cosh => Range::of(1.0, f64::INFINITY),
                Func::Tan => ANY,
                Func::Arcsin => a.monotone(|x| x.clamp(-1.0, 1.0).asin()),
                Func::Arccos => Range::of(0.0, std::f64::consts::PI),
                Func::Log1p if a.lo > -1.0 => a.monotone(f64::ln_1p),
                Func::Log1p => ANY,
                Func::Sin | Func::Cos => Range::of(-1.0, 1.0),
                Func::Sum | Func::Tr | Func::SumCols | Func::SumRows => a.sum(),
                Func::Softmax => Range::of(0.0, 1.0),
                Func::Logsumexp => ANY,
                Func::Norm | Func::Norm1 | Func::Norm2 => NONNEG,
                // The entries, and the zeros off a diagonal.
                Func::Diag => Range::of(a.lo.min(0.0), a.hi.max(0.0)),
                Func::Det | Func::Logdet => ANY,
                Func::Vec => a,
            }
        }
    }
}

impl Range {
    /// Only the sign of the range: nonnegative, nonpositive, or anything.
    fn sum_sign(self) -> Range {
        if self.lo >= 0.0 {
            NONNEG
        } else if self.hi <= 0.0 {
            NONNEG.neg()
        } else {
            ANY
        }
    }
}

/// What the variables of `e` need: positive entries under an argument of
/// `log`, `sqrt`, a divisor or a fractional power that is not of one sign
/// for every input; invertibility under an inverse, `det` or `logdet`.
fn needs(
    e: &Expr,
    scalars: &HashSet<*const Expr>,
    positive: &mut BTreeSet<String>,
    invertible: &mut BTreeSet<String>,
) {
    let nonneg = |x: &Expr| range(x, scalars).lo >= 0.0;
    match &e.kind {
        ExprKind::Call(Func::Log | Func::Sqrt, a) if !nonneg(a) => names(a, positive),
        ExprKind::Binary { op: BinOp::Div | BinOp::HadamardDiv, rhs, .. }
            if !range(rhs, scalars).one_signed() =>
        {
            names(rhs, positive)
        }
        ExprKind::HadamardPower(a, p) if p.fract() != 0.0 && !nonneg(a) => names(a, positive),
        ExprKind::Binary { op: BinOp::Power, lhs, .. } => names(lhs, positive),
        ExprKind::Power(a, k) if *k < 0 => names(a, invertible),
        ExprKind::Call(Func::Det | Func::Logdet, a) => names(a, invertible),
        _ => {}
    }
    for c in e.children() {
        needs(c, scalars, positive, invertible);
    }
}

/// matdiff's rule today: every variable under `log`, `sqrt`, a divisor, or
/// a fractional or negative entrywise power is positive.
fn syntactic_positive(e: &Expr, under: bool, out: &mut BTreeSet<String>) {
    match &e.kind {
        ExprKind::Var(v) if under => {
            out.insert(v.name.clone());
        }
        ExprKind::Call(Func::Log | Func::Sqrt, a) => syntactic_positive(a, true, out),
        ExprKind::Binary { op: BinOp::Div | BinOp::HadamardDiv, lhs, rhs, .. } => {
            syntactic_positive(lhs, under, out);
            syntactic_positive(rhs, true, out);
        }
        ExprKind::HadamardPower(a, p) => syntactic_positive(a, under || p.fract() != 0.0 || *p < 0.0, out),
        ExprKind::Binary { op: BinOp::Power, lhs, rhs, .. } => {
            syntactic_positive(lhs, true, out);
            syntactic_positive(rhs, under, out);
        }
        _ => {
            for c in e.children() {
                syntactic_positive(c, under, out);
            }
        }
    }
}
