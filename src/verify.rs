//! Deciding whether a hand-derived gradient is right: symbolically in the
//! e-graph where it can, otherwise by randomized identity testing.
//!
//! Products, sums, transposes and traces are polynomials in the entries,
//! inverses and determinants rational functions, the entrywise functions
//! analytic: two different ones disagree on random instances with
//! probability 1, so agreement on several independent instances with
//! random sizes decides equality in practice — provided the instances
//! could have told a difference. So the instances are drawn with both
//! signs wherever the expression is defined for both (a sign analysis,
//! [`crate::numeric::domains`]), and an instance decides only where the
//! two values are well above their own rounding noise: a gradient of 1e-28
//! is compared with a claim of 0 relatively, not against a floor. Where no
//! instance can decide, the verdict is UNDECIDED, never "equivalent".

use std::collections::BTreeMap;
use std::time::Duration;

use rand::SeedableRng;

use crate::error::{Error, ErrorKind, Result};
use crate::numeric::{
    compare, eval, gradient_value, rounding_noise, CheckOptions, Deadline, Domain, Instance, Matrix, Outcome,
    Tolerances,
};
use crate::syntax::{parse_expr, DomainSpec, Expr, ExprKind, Program, VarName};
use crate::{derive, DeriveOptions, Steps};

/// Independent random instances a numeric decision needs, every one decided.
pub const INSTANCES: u64 = 16;

/// Draws tried for one instance that the values could not decide (both
/// below their rounding, or the claim not finite there).
const ATTEMPTS: u64 = 3;

/// Largest relative difference taken for equality: both sides are computed
/// exactly (no finite differences), so only rounding separates them.
pub const TOLERANCE: f64 = 1e-7;

/// Rounding noise of the two values, relative to them, above which a
/// difference within it decides nothing.
pub const MAX_NOISE: f64 = 1e-6;

/// Default [`VerifyOptions::time_limit`].
pub const VERIFY_TIME_LIMIT: Duration = Duration::from_secs(30);

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    /// Decided by comparing formulas.
    Symbolic,
    /// Decided on random numeric instances.
    Numeric,
}

impl Method {
    /// The method's name in reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Symbolic => "symbolic",
            Method::Numeric => "numeric",
        }
    }
}

/// What a numeric decision rests on.
#[derive(Clone, Debug, PartialEq)]
pub struct Evidence {
    /// Instances compared (draws that could not decide included).
    pub instances: usize,
    /// Instances on which the values were well above their noise.
    pub decided: usize,
    /// The relative tolerance of agreement.
    pub tolerance: f64,
    /// The largest relative difference on a deciding instance.
    pub worst_rel_err: f64,
    /// Variables drawn from a restricted domain (the others: both signs, uniform in [-s, s] for the instance's scale s).
    pub domains: BTreeMap<VarName, Domain>,
}

/// The answer of [`verify`].
#[derive(Clone, Debug)]
pub struct Verdict {
    /// [`Outcome::Agree`]: equivalent; [`Outcome::Differ`]: not equivalent;
    /// [`Outcome::Undecided`]: the instances could not tell.
    pub outcome: Outcome,
    /// How the verdict was reached.
    pub method: Method,
    /// A sentence on why.
    pub detail: String,
    /// matdiff's own gradient, for comparison.
    pub derived: Expr,
    /// The numeric evidence, where instances were drawn.
    pub evidence: Option<Evidence>,
}

impl Verdict {
    /// The claim is the gradient.
    pub fn equivalent(&self) -> bool {
        self.outcome == Outcome::Agree
    }

    /// The verdict as a user reads it: `equivalent`, `not equivalent`, `UNDECIDED`.
    pub fn word(&self) -> &'static str {
        match self.outcome {
            Outcome::Agree => "equivalent",
            Outcome::Differ => "not equivalent",
            Outcome::Undecided => "UNDECIDED",
        }
    }
}

/// What to verify against, beside the program.
#[derive(Clone, Debug)]
pub struct VerifyOptions {
    /// The name of the upstream gradient of a matrix-valued expression.
    pub upstream: Option<String>,
    /// Domains given for variables, beside (and over) the declared ones.
    pub domains: BTreeMap<VarName, DomainSpec>,
    /// Wall-clock time the decision may take.
    pub time_limit: Duration,
    /// What the derived result is called in the verdict: `dL/dV` when None
    /// (a Hessian's map is `H[dV]`).
    pub name: Option<String>,
    /// Stops the decision, with an [`ErrorKind::Interrupted`] error (never
    /// a verdict), once interrupted.
    pub control: crate::Control,
}

impl Default for VerifyOptions {
    fn default() -> VerifyOptions {
        VerifyOptions {
            upstream: None,
            domains: BTreeMap::new(),
            time_limit: VERIFY_TIME_LIMIT,
            name: None,
            control: crate::Control::default(),
        }
    }
}

/// The name of the derived result in verdicts.
fn derived_name(options: &VerifyOptions, wrt: &VarName) -> String {
    options.name.clone().unwrap_or_else(|| format!("dL/d{wrt}"))
}

/// Decides whether `claim` is ∂L/∂`wrt` of the program's expression.
///
/// ```
/// use matdiff::verify::{verify, VerifyOptions};
/// let p = matdiff::syntax::parse_program("W1*W2*W3*X").unwrap();
/// let w2 = matdiff::syntax::parse_var("W2").unwrap();
/// let v = verify(&p, &w2, "W1^T*G*X^T*W3^T", &VerifyOptions::default()).unwrap();
/// assert!(v.equivalent());
/// let v = verify(&p, &w2, "W1^T*G*X^T*W3", &VerifyOptions::default()).unwrap();
/// assert!(!v.equivalent());
/// ```
pub fn verify(program: &Program, wrt: &VarName, claim: &str, options: &VerifyOptions) -> Result<Verdict> {
    let derive_options = DeriveOptions {
        wrt: vec![wrt.clone()],
        upstream: options.upstream.clone(),
        steps: Steps::Skip,
        sharing: crate::Sharing::Expanded,
        control: options.control.clone(),
    };
    // ∂L/∂H of a definition H: H kept as a variable, a free input.
    let mut program = program.with_definitions_kept(&derive_options.wrt);
    // A domain given for a declared variable replaces its declared one in
    // the derivation too: what the simplifier assumes of a `onehot` Y
    // must hold of the Y the instances draw.
    for d in &mut program.declarations {
        let given = options.domains.iter().find(|(v, _)| {
            v.name == d.name
                && match &v.index {
                    None => d.binder.is_none(),
                    Some(i) => d.binder.is_some() && i.as_constant().is_none(),
                }
        });
        if let Some((_, domain)) = given {
            d.domain = Some(*domain);
        }
    }
    let d = derive(&program, &derive_options)?;
    let g = &d.gradients[0];
    let claim = parse_expr(claim).map_err(|e| {
        Error::new(ErrorKind::Usage, format!("the claim does not parse: {}", e.message))
            .hint(crate::Hint::Claim)
    })?;
    // Broadcasts in the claim (`W*X + b`) are written out as in the program.
    let claim = crate::shape::explicit_broadcasts(Program {
        declarations: program.declarations.clone(),
        definitions: vec![],
        expr: claim,
        name: None,
    })
    .expr;
    let verdict = |outcome, method, detail: String, evidence| Verdict {
        outcome,
        method,
        detail,
        derived: g.expr.clone(),
        evidence,
    };

    // The claim must be a formula in the expression's variables, of V's
    // shape; a bare `0` is the zero of V's shape.
    let mut typer = d.typing.typer().clone();
    let known: Vec<VarName> = d.typing.variables().iter().cloned().chain(upstream_of(&d)).collect();
    let families = d.typing.families();
    if let Some(v) = unknown_variable(&claim, &known).filter(|v| !families.contains(&v.name)) {
        let detail = format!("the claim uses `{v}`, which is not a variable of the expression");
        return Ok(verdict(Outcome::Differ, Method::Symbolic, detail, None));
    }
    let zero = claim.kind == ExprKind::Num(0.0);
    let shape = match typer.infer(&claim) {
        Ok(s) => s,
        Err(e) => {
            let detail = format!("the claim is not well formed: {}", e.message);
            return Ok(verdict(Outcome::Differ, Method::Symbolic, detail, None));
        }
    };
    let want = typer.lift(&g.shape);
    let claimed_shape = typer.resolve(shape);
    if !zero && !typer.unify_shapes(shape, want) {
        let detail = format!(
            "the claim has shape {claimed_shape}, but {} has the shape of {wrt}, {}",
            derived_name(options, wrt),
            g.shape
        );
        return Ok(verdict(Outcome::Differ, Method::Symbolic, detail, None));
    }

    let deadline = Deadline::after(options.time_limit).polling(&options.control);
    // The e-graph knows what the domains tell (an `spd` variable is
    // symmetric, a `onehot` one's columns sum to 1), as derive's simplifier does.
    let symbolic = crate::simplify::Simplifier::default()
        .with_domains(&program, &options.domains)
        .with_control(&options.control)
        .equivalent(&g.expr, &claim, d.typing.typer(), Some(&g.shape))?
        == Some(true);
    let numeric = decide_numerically(&d, &claim, options, &deadline);
    if symbolic {
        // The e-graph's rewrites are checked by the numbers too: a class
        // that merged two different functions is a bug, never a verdict.
        // (Where no instance can be drawn, the e-graph decides alone.)
        let evidence = match numeric {
            Ok(n) if n.outcome == Outcome::Differ => {
                return Err(Error::new(
                    ErrorKind::Internal,
                    format!(
                        "the e-graph took the claim for {} = {}, but they differ numerically: {}",
                        derived_name(options, wrt),
                        g.expr,
                        n.detail
                    ),
                ))
            }
            Ok(n) => Some(n.evidence),
            Err(e) if matches!(e.kind, ErrorKind::Internal | ErrorKind::Interrupted) => return Err(e),
            Err(_) => None,
        };
        let detail =
            format!("the claim and {} = {} are one class of the e-graph", derived_name(options, wrt), g.expr);
        return Ok(verdict(Outcome::Agree, Method::Symbolic, detail, evidence));
    }
    let numeric = numeric?;
    Ok(verdict(numeric.outcome, Method::Numeric, numeric.detail, Some(numeric.evidence)))
}

/// A numeric decision: the outcome, why, and its evidence.
struct Decision {
    outcome: Outcome,
    detail: String,
    evidence: Evidence,
}

/// Compares the gradient with the claim on [`INSTANCES`] random instances
/// (or every n and j of a chain of symbolic length), each drawn again up to
/// [`ATTEMPTS`] times where its values cannot decide. A difference on any
/// instance decides "not equivalent"; agreement needs every instance.
fn decide_numerically(
    d: &crate::derive::Derivation,
    claim: &Expr,
    options: &VerifyOptions,
    deadline: &Deadline,
) -> Result<Decision> {
    let g = &d.gradients[0];
    let tolerances = Tolerances { relative: TOLERANCE, max_noise: MAX_NOISE, zero_scale: 0.0 };
    let mut evidence = Evidence {
        instances: 0,
        decided: 0,
        tolerance: TOLERANCE,
        worst_rel_err: 0.0,
        domains: BTreeMap::new(),
    };
    let bases = instances(g);
    let mut undecided: Option<String> = None;
    for (k, base) in bases.iter().enumerate() {
        let mut decided = false;
        let mut why = String::new();
        for attempt in 0..ATTEMPTS {
            let what = || format!("verifying on instance {} of {}", k + 1, bases.len());
            deadline.control().step(what, k, bases.len())?;
            deadline.check()?;
            let seed = base.seed + 1000 * attempt;
            let instance = k + attempt as usize;
            let check_options =
                CheckOptions { seed, domains: options.domains.clone(), instance, ..base.clone() };
            // Instances at scales 1, 1/2, 2, 4, 1/4 (`instance::SCALES`):
            // `1 - y` keeps its sign for every y in [-1, 1], and |1 - y|
            // would pass for it there.
            let instance = Instance::draw_within(d, &check_options, 0, deadline)?;
            evidence.instances += 1;
            if evidence.domains.is_empty() {
                evidence.domains = instance.domains.clone();
            }
            let env = &instance.env;
            let ours = gradient_value(g, env)?;
            let shape = ours.shape();
            let theirs_at = |env: &crate::numeric::Env| -> Result<Matrix> {
                let m = eval(claim, env, Some(shape))?;
                Ok(if m.shape() == (1, 1) && shape != (1, 1) {
                    Matrix::from_element(shape.0, shape.1, m[(0, 0)])
                } else {
                    m
                })
            };
            let theirs = match theirs_at(env) {
                Ok(m) if m.iter().all(|x| x.is_finite()) => m,
                Ok(_) => {
                    why = "the claim is not finite on the instances drawn".into();
                    continue;
                }
                Err(e) if e.kind == ErrorKind::Internal => return Err(e),
                Err(e) => {
                    why = format!("the claim cannot be evaluated on the instances drawn: {}", e.message);
                    continue;
                }
            };
            let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
            let noise = rounding_noise(&mut |e| gradient_value(g, e), env, &ours, &mut rng)?
                + rounding_noise(&mut |e| theirs_at(e), env, &theirs, &mut rng).unwrap_or(f64::INFINITY);
            let c = compare(&ours, &theirs, noise, &tolerances);
            // Both exactly zero where the gradient is not `0`: underflow
            // (exp(-1000*sum(X .^ 2))) would make any claim agree.
            let zero = |m: &Matrix| m.iter().all(|x| *x == 0.0);
            if zero(&ours) && zero(&theirs) && g.expr.kind != ExprKind::Num(0.0) {
                why = "the gradient and the claim are both exactly zero on the instances drawn (underflow?)"
                    .into();
                continue;
            }
            match c.outcome {
                Outcome::Differ => {
                    evidence.decided += 1;
                    evidence.worst_rel_err = c.rel_err;
                    let sizes: Vec<String> = instance.sizes.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    let sizes = if sizes.is_empty() {
                        String::new()
                    } else {
                        format!(" (sizes {})", sizes.join(" "))
                    };
                    let detail = format!(
                        "on random instance {seed}{sizes} the claim differs from {} = {} by a relative error of {:.2e}, beyond rounding (±{:.1e}); {}",
                        derived_name(options, &g.wrt),
                        g.expr,
                        c.rel_err,
                        c.rel_noise,
                        domains_text(&instance.domains)
                    );
                    return Ok(Decision { outcome: Outcome::Differ, detail, evidence });
                }
                Outcome::Agree => {
                    evidence.decided += 1;
                    evidence.worst_rel_err = evidence.worst_rel_err.max(c.rel_err);
                    decided = true;
                    break;
                }
                Outcome::Undecided => {
                    why = format!(
                        "the values are within their rounding noise (±{:.1e} relative) on the instances drawn",
                        c.rel_noise
                    );
                }
            }
        }
        if !decided && undecided.is_none() {
            undecided = Some(why);
        }
    }
    let domains = domains_text(&evidence.domains);
    Ok(match undecided {
        None => Decision {
            outcome: Outcome::Agree,
            detail: format!(
                "the claim agrees with {} = {} on {} of {} random instances (largest relative difference {:.1e}, tolerance {TOLERANCE:.0e}; {domains})",
                derived_name(options, &g.wrt),
                g.expr,
                evidence.decided,
                evidence.instances,
                evidence.worst_rel_err
            ),
            evidence,
        },
        Some(why) => Decision {
            outcome: Outcome::Undecided,
            detail: format!(
                "{why}: {} of {} instances decided, none differed, and agreement needs {} ({} = {}; {domains})",
                evidence.decided,
                evidence.instances,
                bases.len(),
                derived_name(options, &g.wrt),
                g.expr
            ),
            evidence,
        },
    })
}

/// "both signs", or the restricted domains.
fn domains_text(domains: &BTreeMap<VarName, Domain>) -> String {
    if domains.is_empty() {
        return "every variable drawn with both signs".to_string();
    }
    let d: Vec<String> = domains.iter().map(|(v, d)| format!("{v} {d}")).collect();
    format!("drawn {}, the others with both signs", d.join(", "))
}

/// The instances a numeric decision draws: INSTANCES seeds; for a gradient
/// under a side condition `lo <= j <= hi` of one more index `n`, every
/// n in 1..=6 and every j the condition allows, each with random sizes.
fn instances(g: &crate::derive::Gradient) -> Vec<CheckOptions> {
    let seeds = || (1..=INSTANCES).map(|seed| CheckOptions { seed, ..Default::default() }).collect();
    let (Some(index), [condition]) = (&g.wrt.index, &g.differential.conditions[..]) else { return seeds() };
    let inner: Vec<&String> = index.terms.keys().collect();
    let mut outer: Vec<&String> = condition.lo.terms.keys().chain(condition.hi.terms.keys()).collect();
    outer.sort();
    outer.dedup();
    let ([j], [n]) = (&inner[..], &outer[..]) else { return seeds() };
    let mut out = vec![];
    for n_value in 1..=6i64 {
        let at = |i: &crate::syntax::Index| {
            i.subst(n, &crate::syntax::Index::constant(n_value)).ok().and_then(|i| i.as_constant())
        };
        let offset =
            condition.at.subst(j, &crate::syntax::Index::constant(0)).ok().and_then(|i| i.as_constant());
        let (Some(lo), Some(hi), Some(c)) = (at(&condition.lo), at(&condition.hi), offset) else {
            return seeds();
        };
        // (Checked: the bounds come from the input, anywhere in i64.)
        let (Some(from), Some(to)) = (lo.checked_sub(c), hi.checked_sub(c)) else { return seeds() };
        for j_value in from.max(0)..=to {
            let dims =
                [((*n).clone(), n_value as usize), ((*j).clone(), j_value as usize)].into_iter().collect();
            out.push(CheckOptions { seed: out.len() as u64 + 1, dims, ..Default::default() });
        }
    }
    out
}

fn upstream_of(d: &crate::derive::Derivation) -> Option<VarName> {
    match &d.mode {
        crate::calculus::Mode::Layer { upstream } => Some(upstream.clone()),
        crate::calculus::Mode::Scalar => None,
    }
}

fn unknown_variable(e: &Expr, known: &[VarName]) -> Option<VarName> {
    let mut unknown = None;
    e.any(|e| match &e.kind {
        ExprKind::Var(v) if !known.contains(v) => {
            unknown = Some(VarName::clone(v));
            true
        }
        _ => false,
    });
    unknown
}
