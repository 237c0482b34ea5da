//! Deciding whether a hand-derived gradient is right: symbolically in the
//! e-graph where it can, otherwise by randomized identity testing.
//!
//! Products, sums, transposes and traces are polynomials in the entries,
//! inverses and determinants rational functions: two different ones
//! disagree on random instances with probability 1, so agreement on several
//! independent instances with random sizes decides equality in practice.

use crate::error::{Error, ErrorKind, Result};
use crate::numeric::{eval, gradient_value, relative_error, CheckOptions, Instance};
use crate::syntax::{parse_expr, Expr, Program, VarName};
use crate::{derive, DeriveOptions};

/// Independent random instances of a numeric decision.
pub const INSTANCES: u64 = 8;

/// Largest relative difference still taken for equality: both sides are
/// computed exactly (no finite differences), so only rounding separates them.
pub const TOLERANCE: f64 = 1e-7;

/// How a verdict was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Symbolic,
    Numeric,
}

impl Method {
    pub fn name(self) -> &'static str {
        match self {
            Method::Symbolic => "symbolic",
            Method::Numeric => "numeric",
        }
    }
}

/// The answer of [`verify`].
#[derive(Clone, Debug)]
pub struct Verdict {
    pub equivalent: bool,
    pub method: Method,
    pub detail: String,
    /// matdiff's own gradient, for comparison.
    pub derived: Expr,
}

/// Decides whether `claim` is ∂L/∂`wrt` of the program's expression.
///
/// ```
/// let p = matdiff::syntax::parse_program("W1*W2*W3*X").unwrap();
/// let w2 = matdiff::syntax::parse_var("W2").unwrap();
/// let v = matdiff::verify::verify(&p, &w2, "W1^T*G*X^T*W3^T", None).unwrap();
/// assert!(v.equivalent);
/// let v = matdiff::verify::verify(&p, &w2, "W1^T*G*X^T*W3", None).unwrap();
/// assert!(!v.equivalent);
/// ```
pub fn verify(program: &Program, wrt: &VarName, claim: &str, upstream: Option<String>) -> Result<Verdict> {
    let d = derive(program, &DeriveOptions { wrt: vec![wrt.clone()], upstream, lean: true })?;
    let g = &d.gradients[0];
    let claim = parse_expr(claim).map_err(|e| {
        Error::new(ErrorKind::Usage, format!("the claim does not parse: {}", e.message))
            .note("pass it with --claim 'FORMULA'")
    })?;
    let not =
        |method, detail: String| Ok(Verdict { equivalent: false, method, detail, derived: g.expr.clone() });

    // The claim must be a formula in the expression's variables, of V's shape.
    let mut typer = d.typing.typer().clone();
    let known: Vec<VarName> = d.typing.variables().iter().cloned().chain(upstream_of(&d)).collect();
    let families = d.typing.families();
    if let Some(v) = unknown_variable(&claim, &known).filter(|v| !families.contains(&v.name)) {
        return not(
            Method::Symbolic,
            format!("the claim uses `{v}`, which is not a variable of the expression"),
        );
    }
    let shape = match typer.infer(&claim) {
        Ok(s) => s,
        Err(e) => return not(Method::Symbolic, format!("the claim is not well formed: {}", e.message)),
    };
    let want = typer.lift(&g.shape);
    let claimed_shape = typer.resolve(shape);
    if !typer.unify_shapes(shape, want) {
        return not(
            Method::Symbolic,
            format!("the claim has shape {claimed_shape}, but dL/d{wrt} has the shape of {wrt}, {}", g.shape),
        );
    }

    if crate::simplify::equivalent(&g.expr, &claim, d.typing.typer(), Some(&g.shape))? == Some(true) {
        return Ok(Verdict {
            equivalent: true,
            method: Method::Symbolic,
            detail: format!("the claim and dL/d{wrt} = {} are one class of the e-graph", g.expr),
            derived: g.expr.clone(),
        });
    }

    let mut worst = 0.0f64;
    for options in instances(g) {
        let seed = options.seed;
        let instance = Instance::draw(&d, &options)?;
        let ours = gradient_value(g, &instance.env)?;
        let theirs = eval(&claim, &instance.env, Some(ours.shape()))?;
        let theirs = if theirs.shape() == (1, 1) && ours.shape() != (1, 1) {
            crate::numeric::Matrix::from_element(ours.nrows(), ours.ncols(), theirs[(0, 0)])
        } else {
            theirs
        };
        let err = relative_error(&ours, &theirs);
        if err.is_nan() || err > TOLERANCE {
            let sizes: Vec<String> = instance.sizes.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let sizes =
                if sizes.is_empty() { String::new() } else { format!(" (sizes {})", sizes.join(" ")) };
            return not(
                Method::Numeric,
                format!(
                    "on random instance {seed}{sizes} the claim differs from dL/d{wrt} = {} by a relative error of {err:.2e}",
                    g.expr
                ),
            );
        }
        worst = worst.max(err);
    }
    Ok(Verdict {
        equivalent: true,
        method: Method::Numeric,
        detail: format!(
            "the claim agrees with dL/d{wrt} = {} on {} random instances (largest relative difference {worst:.1e})",
            g.expr,
            instances(g).len()
        ),
        derived: g.expr.clone(),
    })
}

/// The instances a numeric decision draws: INSTANCES seeds; for a gradient
/// under a side condition `lo <= j <= hi` of one more index `n`, every
/// n in 1..=6 and every j the condition allows, each with random sizes.
fn instances(g: &crate::Gradient) -> Vec<CheckOptions> {
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

fn upstream_of(d: &crate::Derivation) -> Option<VarName> {
    match &d.mode {
        crate::calculus::Mode::Layer { upstream } => Some(upstream.clone()),
        crate::calculus::Mode::Scalar => None,
    }
}

fn unknown_variable(e: &Expr, known: &[VarName]) -> Option<VarName> {
    crate::stack::ensure(|| {
        if let crate::syntax::ExprKind::Var(v) = &e.kind {
            if !known.contains(v) {
                return Some(VarName::clone(v));
            }
        }
        e.children().find_map(|c| unknown_variable(c, known))
    })
}
