//! The pipeline from a parsed program to its simplified gradients:
//! shape inference, the calculus, simplification, and a shape check of
//! every gradient. [`derive()`] is the entry point; its result, a
//! [`Derivation`], is what plan, numeric, explain and verify consume.

use crate::calculus::{self, Differential, Mode, Steps};
use crate::error::{Error, ErrorKind, Hint, Result};
use crate::shape::{self, Shape, Typing};
use crate::simplify;
use crate::syntax::{self, Expr, ExprKind, Program, VarName};

mod share;
pub use share::{share, Shared, SharedName, Sharing, MAX_NAMES, MAX_SHARED_NODES, MIN_SAVING};

/// Most nodes all the gradients of one derivation may have together.
pub const MAX_TOTAL_NODES: usize = 4_000_000;

/// What to differentiate.
#[derive(Clone, Debug, Default)]
pub struct DeriveOptions {
    /// The variables; empty means every variable of the expression.
    pub wrt: Vec<VarName>,
    /// The name of the upstream gradient of a matrix-valued expression
    /// (default `G`).
    pub upstream: Option<String>,
    /// Whether the gradients keep their derivation steps. Only
    /// explanations read them, and for a chain of a thousand factors they
    /// are half the memory: [`Steps::Skip`] records none and drops the
    /// contributions once simplified, keeping the side conditions and the
    /// number of occurrences.
    pub steps: Steps,
    /// Whether subexpressions repeated across the gradients are named ([`Derivation::shared`]); the gradients stay expanded either way.
    pub sharing: Sharing,
    /// Stops the derivation, with an [`ErrorKind::Interrupted`] error, once
    /// interrupted: polled before each gradient, which it reports, and by the e-graph.
    pub control: crate::Control,
}

/// The simplified gradient of one variable, with its derivation.
#[derive(Clone, Debug)]
pub struct Gradient {
    /// The variable V.
    pub wrt: VarName,
    /// ∂L/∂V, simplified; it has V's shape.
    pub expr: Expr,
    /// The gradient's shape, V's shape.
    pub shape: Shape,
    /// The raw differential the gradient was simplified from.
    pub differential: Differential,
    /// Whether the e-graph saturated while simplifying it.
    pub saturated: bool,
    /// How many times the variable occurs (tied weights: more than once).
    pub occurrences: usize,
}

/// Every requested gradient of a program's expression.
#[derive(Clone, Debug)]
pub struct Derivation<'p> {
    /// The shapes of the program.
    pub typing: Typing<'p>,
    /// How the loss relates to the expression.
    pub mode: Mode,
    /// One gradient per requested variable.
    pub gradients: Vec<Gradient>,
    /// The gradients with their repeated subexpressions named
    /// ([`share`]); `None` when nothing is worth a name or
    /// [`Sharing::Expanded`] was asked for.
    pub shared: Option<Shared>,
}

impl Derivation<'_> {
    /// The k-th gradient as printed: in terms of the shared names, if any.
    pub fn printed_gradient(&self, k: usize) -> &Expr {
        self.shared.as_ref().map_or(&self.gradients[k].expr, |s| &s.gradients[k])
    }
}

/// The program of `src` as the stages take it: parsed
/// ([`syntax::parse_program`]) and its broadcasts written out
/// ([`shape::explicit_broadcasts`]: `W*X + b`, with `b` a column, is
/// `W*X + b * ones(1, B)`). The command line reads every program so.
///
/// ```
/// let p = matdiff::parse("W : n x d; X : d x B; b : n; W*X + b").unwrap();
/// assert_eq!(p.expr.to_string(), "W * X + b * ones(1, B)");
/// ```
pub fn parse(src: &str) -> Result<Program> {
    Ok(shape::explicit_broadcasts(syntax::parse_program(src)?))
}

/// Runs shape inference, the calculus and simplification on a program.
///
/// A scalar expression is the loss itself; a matrix-valued one is a layer
/// with upstream gradient `G` (docs/language.md, What a derivation means). Every gradient's shape is checked
/// against its variable's: a mismatch is an internal error, never output.
pub fn derive<'p>(program: &'p Program, options: &DeriveOptions) -> Result<Derivation<'p>> {
    let mut gradients = Vec::new();
    let (typing, mode) = derive_each(program, options, &mut |_, _, g| {
        gradients.push(g);
        Ok(())
    })?;
    Ok(finish(typing, mode, gradients, options.sharing))
}

/// Where [`derive_streaming`] hands a large derivation over, part by part,
/// as it is derived.
pub trait GradientSink<'p> {
    /// Before the first gradient: the program's shapes and the mode.
    fn begin(&mut self, typing: &Typing<'p>, mode: &Mode) -> Result<()>;
    /// The next gradient, in [`derive()`]'s order and as it would have it.
    fn gradient(&mut self, typing: &Typing<'p>, gradient: Gradient) -> Result<()>;
}

/// What [`derive_streaming`] did with a derivation.
#[derive(Debug)]
pub enum Streamed<'p> {
    /// Small enough for shared names: the derivation as [`derive()`] returns
    /// it; the sink was given nothing.
    Whole(Box<Derivation<'p>>),
    /// Handed to the sink: [`GradientSink::begin`], then every gradient.
    /// Such a derivation has no shared names.
    Parts,
}

/// [`derive()`], for output written as it is derived: a derivation whose
/// gradients together pass [`MAX_SHARED_NODES`] has no shared names (and
/// no sum reordered across gradients), so from that point each gradient
/// is final as soon as it is simplified, and `sink` gets it then instead
/// of a [`Derivation`] holding them all. A front end writes the same text
/// either way; for a chain of a thousand factors it never holds more than
/// one gradient.
///
/// ```
/// use matdiff::{calculus::Mode, shape::Typing, Gradient, GradientSink, Result, Streamed};
/// struct Count(usize);
/// impl<'p> GradientSink<'p> for Count {
///     fn begin(&mut self, _: &Typing<'p>, _: &Mode) -> Result<()> { Ok(()) }
///     fn gradient(&mut self, _: &Typing<'p>, _: Gradient) -> Result<()> { self.0 += 1; Ok(()) }
/// }
/// let chain = |n: usize| (1..=n).map(|i| format!("W{i}*")).collect::<String>() + "X";
/// let options = matdiff::DeriveOptions { steps: matdiff::Steps::Skip, ..Default::default() };
/// // Four factors: the whole derivation, as `derive` returns it.
/// let p = matdiff::parse(&chain(4)).unwrap();
/// let mut count = Count(0);
/// assert!(matches!(matdiff::derive_streaming(&p, &options, &mut count).unwrap(), Streamed::Whole(_)));
/// assert_eq!(count.0, 0);
/// // Five hundred: each gradient as it is derived.
/// let p = matdiff::parse(&chain(500)).unwrap();
/// assert!(matches!(matdiff::derive_streaming(&p, &options, &mut count).unwrap(), Streamed::Parts));
/// assert_eq!(count.0, 501);
/// ```
pub fn derive_streaming<'p>(
    program: &'p Program,
    options: &DeriveOptions,
    sink: &mut dyn GradientSink<'p>,
) -> Result<Streamed<'p>> {
    // Held until they pass the size past which nothing is shared.
    let mut held = Some((Vec::new(), 0usize));
    let (typing, mode) = derive_each(program, options, &mut |typing, mode, g| {
        let Some((gradients, total)) = &mut held else {
            return sink.gradient(typing, g);
        };
        match share::add_size(*total, &g.expr) {
            Some(sum) => {
                *total = sum;
                gradients.push(g);
            }
            None => {
                sink.begin(typing, mode)?;
                for g in held.take().expect("held until now").0.into_iter().chain([g]) {
                    sink.gradient(typing, g)?;
                }
            }
        }
        Ok(())
    })?;
    Ok(match held {
        Some((gradients, _)) => Streamed::Whole(Box::new(finish(typing, mode, gradients, options.sharing))),
        None => Streamed::Parts,
    })
}

/// The gradients written as one: each sum in one order of its terms, and
/// the shared names.
fn finish<'p>(
    typing: Typing<'p>,
    mode: Mode,
    mut gradients: Vec<Gradient>,
    sharing: Sharing,
) -> Derivation<'p> {
    let exprs: Vec<Expr> = gradients.iter().map(|g| g.expr.clone()).collect();
    let exprs = share::one_order_per_sum(&exprs);
    for (g, e) in gradients.iter_mut().zip(&exprs) {
        g.expr = e.clone();
    }
    let shared = share(typing.program, &exprs, sharing);
    Derivation { typing, mode, gradients, shared }
}

/// The pipeline of [`derive()`], each gradient handed to `each` as soon as
/// it is simplified and checked, before the steps that need them all.
fn derive_each<'p>(
    program: &'p Program,
    options: &DeriveOptions,
    each: &mut dyn FnMut(&Typing<'p>, &Mode, Gradient) -> Result<()>,
) -> Result<(Typing<'p>, Mode)> {
    let mut typing = shape::infer(program)?;
    let value_shape = typing.shape();
    let mode = if value_shape.is_scalar() {
        Mode::Scalar
    } else {
        let name = options.upstream.clone().unwrap_or_else(|| "G".to_string());
        let upstream = syntax::parse_var(&name)?;
        if typing.variables().iter().any(|v| v.name == upstream.name) {
            return Err(Error::new(
                ErrorKind::Usage,
                format!(
                    "the upstream gradient is called `{name}`, but `{name}` already occurs in the expression"
                ),
            )
            .hint(Hint::NameUpstream));
        }
        typing.insert_var(upstream.clone(), &value_shape);
        Mode::Layer { upstream }
    };
    let wrt: Vec<VarName> = if options.wrt.is_empty() {
        // Every variable, and a generic member `W[j]` of every family.
        let index = fresh_index_name(&program.expr);
        let members = typing
            .families()
            .iter()
            .map(|name| VarName { name: name.clone(), index: Some(syntax::Index::symbol(&index)) });
        typing.variables().iter().cloned().chain(members).collect()
    } else {
        options.wrt.clone()
    };
    let mut total = 0usize;
    // One simplifier for all the gradients, which share their leaves; one
    // index of the expression, so that no gradient rescans it.
    let mut simplifier = simplify::Simplifier::default()
        .with_domains(typing.program, &Default::default())
        .with_control(&options.control);
    let mut occurrences = calculus::Occurrences::new(&typing);
    let variables: std::collections::HashSet<VarName> = typing.variables().iter().cloned().collect();
    // Every target is checked before any gradient is derived (and a
    // streamed derivation has written anything).
    for v in &wrt {
        occurrences.check_target(v)?; // before the errors of declare_member and occurrence
                                      // A member of a family of `prod` factors (`W[j]`, `W[2]`).
        let member = v.index.is_some() && typing.families().contains(&v.name);
        if member {
            typing.declare_member(v)?;
        } else if !variables.contains(v) {
            // Inside a definition kept as a variable (`--wrt H` beside `--wrt W1`)?
            let kept = program
                .definitions
                .iter()
                .rev()
                .find(|d| variables.contains(&VarName::plain(&d.name)) && d.expr.mentions(v));
            if let Some(d) = kept {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!("`{v}` occurs only inside `{}`, which is asked for as a variable", d.name),
                )
                .label(d.span, format!("`{v}` is inside this definition"))
                .note(format!(
                    "dL/d{} holds `{}` fixed as an input; ask for `{v}` in a derivation of its own",
                    d.name, d.name
                )));
            }
            let known: Vec<String> = typing.variables().iter().map(|v| v.to_string()).collect();
            return Err(Error::new(ErrorKind::Usage, format!("`{v}` does not occur in the expression"))
                .note(format!("its variables are: {}", known.join(", "))));
        }
    }
    let count = wrt.len();
    for (k, v) in wrt.into_iter().enumerate() {
        options.control.step(|| format!("deriving d/d{v} ({} of {count})", k + 1), k, count)?;
        let differential = occurrences.differentiate_checked(&typing, &v, &mode, options.steps)?;
        for c in &differential.contributions {
            // Each was counted by the calculus, up to its own limit.
            total = total.saturating_add(c.size);
            if total > MAX_TOTAL_NODES {
                return Err(Error::new(
                    ErrorKind::Limit,
                    format!("the gradients together would have more than {MAX_TOTAL_NODES} nodes"),
                )
                .hint(Hint::FewerTargets));
            }
        }
        let shape = typing.var_shape(&v).expect("a variable of the expression has a shape");
        let simplified =
            typing.scratch(|typer| simplifier.simplify_gradient(&differential.sum(), typer, &shape))?;
        let expr = simplified.expr;
        typing.scratch(|typer| check_shape(typer, &expr, &shape, &v))?;
        let mut differential = differential;
        let occurrences = differential.contributions.len();
        if options.steps == Steps::Skip {
            differential.contributions.clear();
        }
        let saturated = simplified.saturated;
        each(&typing, &mode, Gradient { wrt: v, expr, shape, differential, saturated, occurrences })?;
    }
    Ok((typing, mode))
}

/// `j`, or another index name the expression does not use (as a
/// variable, an index symbol or a `prod`'s bound variable).
fn fresh_index_name(expr: &Expr) -> String {
    ["j", "k", "m", "p", "q"].into_iter().find(|c| !uses_name(expr, c)).unwrap_or("j_").to_string()
}

/// Whether `name` names a variable, an index symbol or a bound variable in `e`.
fn uses_name(e: &Expr, name: &str) -> bool {
    e.any(|x| match &x.kind {
        ExprKind::Var(v) => v.name == name || v.index.as_ref().is_some_and(|i| i.mentions(name)),
        ExprKind::Prod(p) => p.var == name || p.lo.mentions(name) || p.hi.mentions(name),
        _ => false,
    })
}

/// The read-off gradient must have the variable's shape, and every `I` in
/// it a size the formula determines (`sum(a * I)` would not say which I).
fn check_shape(typer: &mut shape::Typer, grad: &Expr, want: &Shape, v: &VarName) -> Result<()> {
    if grad.kind == ExprKind::Num(0.0) {
        return Ok(()); // the zero gradient, `0`, of any shape
    }
    // A product of variables (a chain's gradient) typed without a walk; a
    // mismatch, or anything else, takes the walk, which names it.
    let factors: Option<Vec<(&Expr, bool)>> = grad
        .factors()
        .into_iter()
        .map(|f| match &f.kind {
            ExprKind::Var(_) => Some((f, false)),
            ExprKind::Transpose(a) => match &a.kind {
                ExprKind::Var(_) => Some((&**a, true)),
                _ => None,
            },
            _ => None,
        })
        .collect();
    if let Some(got) = factors.and_then(|f| typer.chain_shape(f)) {
        if typer.resolve(got) == *want {
            return Ok(());
        }
    }
    let want_i = typer.lift(want);
    let shape::Inferred { shape: got, fits, sized } = typer.infer_as(grad, want_i)?;
    if !fits {
        return Err(Error::new(
            ErrorKind::Internal,
            format!("the gradient `{grad}` has shape {} but `{v}` is {want}", typer.resolve(got)),
        ));
    }
    if !sized {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("the gradient with respect to `{v}` is `{grad}`, where the size of I cannot be told from the formula; such gradients (a scalar broadcast inside a trace) are not supported yet"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shape check types a product of variables without a walk (the
    /// chain's gradients): it passes each gradient at its own variable's
    /// shape and fails it at every other.
    #[test]
    fn the_shape_check_of_a_chain_fails_a_wrong_shape() {
        let program = crate::parse("W1 : 2x3; W2 : 3x4; X : 4x5; W1*W2*X").unwrap();
        let d = derive(&program, &DeriveOptions::default()).unwrap();
        let mut typing = d.typing.clone();
        for g in &d.gradients {
            assert!(g.expr.factors().len() >= 2, "{}", g.expr);
            for h in &d.gradients {
                let checked = typing.scratch(|typer| check_shape(typer, &g.expr, &h.shape, &h.wrt));
                match checked {
                    Ok(()) => assert_eq!(g.wrt, h.wrt, "{} passed as d/d{}", g.expr, h.wrt),
                    Err(e) => {
                        assert_ne!(g.wrt, h.wrt, "{}", g.expr);
                        assert_eq!(e.kind, ErrorKind::Internal);
                    }
                }
            }
        }
    }
}
