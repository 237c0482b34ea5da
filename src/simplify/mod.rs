//! Simplification: [`simplify`] (and [`equivalent`]) run an e-graph over a
//! first normal form given by [`tidy()`] (`tidy.rs`).
//!
//! The e-graph (`egraph.rs`, `rules.rs`) does the algebra that needs
//! search: factoring sums, the trace's rotations, transposes and inverses
//! of products, scalars, identities. Its runs are bounded by nodes,
//! iterations and time; a run that stops at a limit still yields its best
//! form so far, and says it did not saturate.

mod egraph;
mod entrywise;
mod present;
mod rules;
mod tidy;

use std::sync::OnceLock;
use std::time::Duration;

use egg::{Extractor, Rewrite, Runner, StopReason};

use crate::control::Control;
use crate::error::{Error, ErrorKind, Result};
use crate::shape::{Shape, Typer};
use crate::syntax::{BinOp, Expr, ExprKind, VarName};

pub use egraph::Mat;
use egraph::{Converter, Shapes};
use tidy::Leaves;
pub use tidy::{tidy, Symmetric};

/// Bounds on every e-graph run: at most this many e-nodes.
pub const NODE_LIMIT: usize = 20_000;
/// At most this many rewrite iterations.
pub const ITER_LIMIT: usize = 40;
/// At most this much wall-clock time.
pub const TIME_LIMIT: Duration = Duration::from_millis(500);
/// E-graph time for all the formulas of one [`Simplifier`] (all gradients
/// of one derivation): past it, formulas keep their tidy form, unsaturated.
/// Without it, a derivation of many gradients that each run to the time
/// limit takes many seconds.
pub const BUDGET: Duration = Duration::from_secs(2);
/// Larger inputs skip the e-graph and keep their tidy form.
pub const MAX_INPUT_NODES: usize = 4_000;
/// An e-graph that grew past this (within one iteration) is not extracted
/// from: the tidy form stands, marked unsaturated.
pub const MAX_EXTRACT_NODES: usize = NODE_LIMIT;

/// A simplified expression, and whether the e-graph saturated (false when
/// a limit stopped it, or the input was too large to enter it).
#[derive(Clone, Debug)]
pub struct Simplified {
    /// The simplified expression.
    pub expr: Expr,
    /// Whether the e-graph saturated.
    pub saturated: bool,
}

fn rewrites() -> &'static [Rewrite<Mat, Shapes>] {
    static RULES: OnceLock<Vec<Rewrite<Mat, Shapes>>> = OnceLock::new();
    RULES.get_or_init(rules::rules)
}

/// Matches one rule may apply per iteration before it backs off: it bounds
/// the growth of a single iteration, which the limits only see after it.
const MATCH_LIMIT: usize = 200;

/// A runner within the limits, stopping between iterations once
/// `control` is interrupted or past its deadline (the caller then sees
/// that, not the unsaturated graph).
fn runner(shapes: Shapes, time: Duration, control: &Control) -> Runner<Mat, Shapes> {
    let control = control.clone();
    Runner::new(shapes)
        .with_scheduler(egg::BackoffScheduler::default().with_initial_match_limit(MATCH_LIMIT))
        .with_node_limit(NODE_LIMIT)
        .with_iter_limit(ITER_LIMIT)
        .with_time_limit(time.min(TIME_LIMIT))
        .with_hook(move |_| if control.should_stop() { Err("stopped".to_string()) } else { Ok(()) })
}

/// The textbook form of `e`: tidied, then the cheapest form the e-graph
/// finds (transposes on leaves, sums factored, no `I` or `0` left over).
/// `expect` is the shape the context gives `e` (a gradient's variable's).
///
/// ```
/// use matdiff::{shape, simplify, syntax};
/// let p = syntax::parse_program("A : 3x3; x : 3; A*x + A^T*x").unwrap();
/// let t = shape::infer(&p).unwrap();
/// let s = simplify::simplify(&p.expr, t.typer(), None).unwrap();
/// assert_eq!(s.expr.to_string(), "(A + A^T) * x");
/// assert!(s.saturated);
/// ```
pub fn simplify(e: &Expr, typer: &Typer, expect: Option<&Shape>) -> Result<Simplified> {
    Simplifier::default().simplify(e, &mut typer.clone(), expect)
}

/// [`simplify`] and [`tidy()`] for many formulas over one typing, sharing
/// their leaves: the n gradients of an n-factor chain hold the same n
/// transposed variables, and a copy in every gradient would be most of
/// their memory.
///
/// ```
/// use matdiff::{shape, simplify::Simplifier, syntax};
/// let p = syntax::parse_program("A : 3x3; B : 3x3; A*B").unwrap();
/// let t = shape::infer(&p).unwrap();
/// let (mut s, mut typer) = (Simplifier::default(), t.typer().clone());
/// let one = s.simplify(&syntax::parse_expr("(A*B)^T").unwrap(), &mut typer, None).unwrap();
/// let two = s.simplify(&syntax::parse_expr("(B*A)^T").unwrap(), &mut typer, None).unwrap();
/// assert_eq!((one.expr.to_string(), two.expr.to_string()), ("B^T * A^T".into(), "A^T * B^T".into()));
/// ```
pub struct Simplifier {
    leaves: Leaves,
    /// E-graph time left, out of [`BUDGET`].
    time_left: Duration,
    control: Control,
}

impl Default for Simplifier {
    fn default() -> Simplifier {
        Simplifier::with_budget(BUDGET)
    }
}

impl Simplifier {
    /// A simplifier whose formulas may use `budget` of e-graph time in all.
    pub fn with_budget(budget: Duration) -> Simplifier {
        Simplifier { leaves: Leaves::default(), time_left: budget, control: Control::default() }
    }

    /// The simplifier, stopping with an [`ErrorKind::Interrupted`] error
    /// once `control` is interrupted.
    pub fn with_control(mut self, control: &Control) -> Simplifier {
        self.control = control.clone();
        self
    }

    /// The simplifier, knowing that the variables of `symmetric` are their
    /// own transposes (`S^T` is written `S`).
    pub fn with_symmetric(mut self, symmetric: Symmetric) -> Simplifier {
        self.leaves.symmetric = symmetric;
        self
    }

    /// The simplifier, knowing that every column of the variables named in
    /// `stochastic` sums to 1 (declared `onehot`): `sum(Y, 1)` is `ones(1, n)`.
    pub fn with_stochastic(mut self, stochastic: impl IntoIterator<Item = String>) -> Simplifier {
        self.leaves.stochastic = stochastic.into_iter().collect();
        self
    }

    /// The simplifier, knowing what the domains of `program`'s variables
    /// tell the algebra: an `spd` variable is symmetric
    /// ([`Simplifier::with_symmetric`]), every column of a `onehot` one sums
    /// to 1 ([`Simplifier::with_stochastic`]). A domain in `given` (`verify
    /// --domain`) stands over the variable's declared one; one given for a
    /// single member of a family (`W[2]`) tells nothing of the others, and
    /// is left out.
    ///
    /// ```
    /// use matdiff::{shape, simplify::Simplifier, syntax};
    /// let p = syntax::parse_program("S : 3x3 spd; x : 3; x^T*S*x").unwrap();
    /// let t = shape::infer(&p).unwrap();
    /// let claim = syntax::parse_expr("(S + S^T) * x").unwrap();
    /// let mut s = Simplifier::default().with_domains(&p, &Default::default());
    /// let out = s.simplify(&claim, &mut t.typer().clone(), None).unwrap();
    /// assert_eq!(out.expr.to_string(), "2 * S * x");
    /// ```
    pub fn with_domains(
        self,
        program: &crate::syntax::Program,
        given: &std::collections::BTreeMap<VarName, crate::syntax::DomainSpec>,
    ) -> Simplifier {
        use crate::syntax::DomainSpec;
        // (name, whether a family's) -> its domain, the given over the declared.
        let mut domains: std::collections::BTreeMap<(String, bool), DomainSpec> = program
            .declarations
            .iter()
            .filter_map(|d| Some(((d.name.clone(), d.binder.is_some()), d.domain?)))
            .collect();
        for (v, domain) in given {
            let family = match &v.index {
                None => false,
                Some(i) if i.as_constant().is_none() => true,
                Some(_) => continue,
            };
            domains.insert((v.name.clone(), family), *domain);
        }
        let with =
            |want: DomainSpec| domains.iter().filter(move |(_, d)| **d == want).map(|(k, _)| k.clone());
        let symmetric = Symmetric::from_names(with(DomainSpec::Spd));
        let stochastic: Vec<String> = with(DomainSpec::OneHot).map(|(name, _)| name).collect();
        self.with_symmetric(symmetric).with_stochastic(stochastic)
    }

    /// Whether the e-graph proves `a = b`, as [`equivalent`], knowing what
    /// this simplifier knows of the variables (their domains).
    pub fn equivalent(
        &mut self,
        a: &Expr,
        b: &Expr,
        typer: &Typer,
        expect: Option<&Shape>,
    ) -> Result<Option<bool>> {
        let mut typer = typer.clone();
        let (ta, tb) = (self.tidy(a, &mut typer)?, self.tidy(b, &mut typer)?);
        equivalent_tidied(&ta, &tb, &typer, expect, &self.control)
    }

    /// See [`simplify`]; `typer` comes back as it was.
    pub fn simplify(&mut self, e: &Expr, typer: &mut Typer, expect: Option<&Shape>) -> Result<Simplified> {
        self.control.check()?;
        // Every gradient of a matrix chain: its own normal form, found
        // without the general pass (see `is_plain_product`).
        if let Some(chain) = tidy::plain_chain(e, typer, &mut self.leaves) {
            return Ok(Simplified { expr: chain, saturated: true });
        }
        let tidied = self.tidy(e, typer)?;
        let tidied = typer.scratch(|typer| entrywise::collect(&tidied, typer));
        if is_plain_product(&tidied, typer) || is_plain_leaf(&tidied) {
            // No rule applies to it: the e-graph would saturate on it unchanged.
            return Ok(Simplified { expr: tidied, saturated: true });
        }
        if self.time_left.is_zero() {
            return Ok(Simplified { expr: present::divide_out(&tidied), saturated: false });
        }
        let start = crate::clock::Instant::now();
        let simplified = simplify_tidied(tidied, typer, expect, self.time_left, &self.control);
        self.time_left = self.time_left.saturating_sub(start.elapsed());
        // Sums the e-graph factored out (X^T * a + X^T * b) may collect further.
        simplified.map(|s| Simplified {
            expr: present::divide_out(&typer.scratch(|typer| entrywise::collect(&s.expr, typer))),
            ..s
        })
    }

    /// The gradient `e` of a variable of shape `shape`, simplified: as
    /// [`Simplifier::simplify`], and a gradient that cancels (`0 * M`) is
    /// `0`, the zero of any shape.
    pub fn simplify_gradient(&mut self, e: &Expr, typer: &mut Typer, shape: &Shape) -> Result<Simplified> {
        let mut simplified = self.simplify(e, typer, Some(shape))?;
        if let ExprKind::Binary { op: BinOp::Mul, lhs, .. } = &simplified.expr.kind {
            if lhs.kind == ExprKind::Num(0.0) {
                simplified.expr = Expr::num(0.0);
            }
        }
        Ok(simplified)
    }

    /// See [`tidy()`]; `typer` comes back as it was.
    pub fn tidy(&mut self, e: &Expr, typer: &mut Typer) -> Result<Expr> {
        typer.scratch(|typer| tidy::tidy_sharing(e, typer, &mut self.leaves))
    }
}

/// A product of matrix variables, each maybe transposed, no two neighbours
/// alike, maybe times a number: what tidy makes of every gradient of a
/// matrix chain. No rewrite rule matches such a product (none looks inside
/// a plain factor list but those for identities, neighbouring powers,
/// scaled factors, 1×1 transposes and sums), so it is its own normal form,
/// and a chain of a thousand factors skips the e-graph. The unit test
/// `plain_products_are_what_the_egraph_makes_of_them` holds the two equal.
fn is_plain_product<'e>(e: &'e Expr, typer: &Typer) -> bool {
    let mut e = e;
    if let ExprKind::Neg(a) = &e.kind {
        e = a;
    }
    let mut factors = e.factors();
    if let Some(ExprKind::Num(c)) = factors.first().map(|f| &f.kind) {
        if *c == 0.0 || *c == 1.0 {
            return false;
        }
        factors.remove(0);
    }
    let leaf = |f: &'e Expr| -> Option<(bool, &'e VarName)> {
        let (t, v) = match &f.kind {
            ExprKind::Var(v) => (false, v),
            ExprKind::Transpose(a) => match &a.kind {
                ExprKind::Var(v) => (true, v),
                _ => return None,
            },
            _ => return None,
        };
        (!typer.is_scalar(typer.declared(v)?)).then_some((t, v))
    };
    let mut previous = None;
    for &f in &factors {
        let Some(this) = leaf(f) else { return false };
        if previous.as_ref() == Some(&this) {
            return false;
        }
        previous = Some(this);
    }
    factors.len() >= 2
}

/// A variable, maybe transposed: what every gradient of a sum of
/// variables is (`G`). It skips the e-graph, whose setup copies the typing
/// of the whole program (a sum of 10 000 variables spent most of its time
/// there).
fn is_plain_leaf(e: &Expr) -> bool {
    match &e.kind {
        ExprKind::Var(_) => true,
        ExprKind::Transpose(a) => matches!(a.kind, ExprKind::Var(_)),
        _ => false,
    }
}

/// The e-graph's part of [`simplify`].
fn simplify_tidied(
    tidied: Expr,
    typer: &mut Typer,
    expect: Option<&Shape>,
    time: Duration,
    control: &Control,
) -> Result<Simplified> {
    if tidied.size() > MAX_INPUT_NODES {
        return Ok(Simplified { expr: tidied, saturated: false });
    }
    let mut converter = Converter::new(typer);
    let rec = converter.build(&tidied, expect)?;
    let runner = runner(converter.shapes(), time, control).with_expr(&rec).run(rewrites());
    control.check()?;
    if let Some(conflict) = &runner.egraph.analysis.conflict {
        return Err(Error::new(ErrorKind::Internal, format!("simplifying `{tidied}`: {conflict}")));
    }
    let saturated = matches!(runner.stop_reason, Some(StopReason::Saturated));
    if runner.egraph.total_number_of_nodes() > MAX_EXTRACT_NODES {
        return Ok(Simplified { expr: tidied, saturated: false });
    }
    let extractor = Extractor::new(&runner.egraph, rules::TextbookCost { egraph: &runner.egraph });
    let (_, best) = extractor.find_best(runner.roots[0]);
    if best.to_string() == rec.to_string() {
        return Ok(Simplified { expr: tidied, saturated }); // already the best form
    }
    let expr = tidy(&converter.read_back(&best)?, typer)?;
    // Extraction picks each class's best node alone, and may pick `I` where
    // only the rest of the input told its size: det(0·M + I) is det(I).
    // Such a form cannot be printed; the input's can.
    let sized = typer.scratch(|typer| -> Result<bool> {
        let want = typer.infer(&tidied)?;
        if let Some(shape) = expect {
            let shape = typer.lift(shape);
            typer.unify_shapes(want, shape);
        }
        let inferred = typer.infer_as(&expr, want)?;
        Ok(inferred.fits && inferred.sized)
    })?;
    if !sized {
        return Ok(Simplified { expr: tidied, saturated });
    }
    Ok(Simplified { expr, saturated })
}

/// Whether the e-graph proves `a = b` (both of shape `expect`, when given):
/// `Some(true)` when they end in one class, `None` when it cannot tell.
pub fn equivalent(a: &Expr, b: &Expr, typer: &Typer, expect: Option<&Shape>) -> Result<Option<bool>> {
    Simplifier::default().equivalent(a, b, typer, expect)
}

/// [`equivalent`] of two tidy forms.
fn equivalent_tidied(
    ta: &Expr,
    tb: &Expr,
    typer: &Typer,
    expect: Option<&Shape>,
    control: &Control,
) -> Result<Option<bool>> {
    if ta.size() + tb.size() > MAX_INPUT_NODES {
        return Ok(None);
    }
    let mut converter = Converter::new(typer);
    let (ra, rb) = (converter.build(ta, expect)?, converter.build(tb, expect)?);
    let runner =
        runner(converter.shapes(), TIME_LIMIT, control).with_expr(&ra).with_expr(&rb).run(rewrites());
    control.check()?;
    if let Some(conflict) = &runner.egraph.analysis.conflict {
        return Err(Error::new(ErrorKind::Internal, format!("comparing `{ta}` and `{tb}`: {conflict}")));
    }
    let same = runner.egraph.find(runner.roots[0]) == runner.egraph.find(runner.roots[1]);
    Ok(same.then_some(true))
}
#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    /// One simplifier's formulas share their leaves, plain and transposed:
    /// the memory of a chain's n gradients is one node per factor each.
    #[test]
    fn formulas_of_one_simplifier_share_their_leaves() {
        let program = crate::syntax::parse_program("A : n x n; B : n x n; C : n x n; A").unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        let mut typer = typing.typer().clone();
        let mut simplifier = Simplifier::default();
        let mut leaves = |text: &str| {
            let e = crate::syntax::parse_expr(text).unwrap();
            let out = simplifier.simplify(&e, &mut typer, None).unwrap().expr;
            let mut found: Vec<(String, *const Expr)> = vec![];
            let mut stack = vec![&out];
            while let Some(x) = stack.pop() {
                match &x.kind {
                    ExprKind::Binary { lhs, rhs, .. } => {
                        for side in [lhs, rhs] {
                            if matches!(side.kind, ExprKind::Binary { .. }) {
                                stack.push(side);
                            } else {
                                found.push((side.to_string(), Rc::as_ptr(side)));
                            }
                        }
                    }
                    _ => panic!("a product: {out}"),
                }
            }
            found.sort();
            (out.clone(), found)
        };
        let (one, first) = leaves("(A*B)^T * C");
        let (two, second) = leaves("C * (B*A^T)^T");
        assert_eq!((one.to_string(), two.to_string()), ("B^T * A^T * C".into(), "C * A * B^T".into()));
        let shared: Vec<&String> = first
            .iter()
            .filter(|(t, p)| second.iter().any(|(u, q)| t == u && p == q))
            .map(|(t, _)| t)
            .collect();
        assert_eq!(shared, ["B^T", "C"], "{first:?} {second:?}");
    }

    /// With no e-graph time left, a formula keeps its tidy form, marked
    /// unsaturated; a plain product needs no e-graph and is saturated.
    #[test]
    fn no_time_left_gives_the_tidy_form() {
        let program = crate::syntax::parse_program("A : n x n; B : n x n; A").unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        let mut typer = typing.typer().clone();
        let mut simplifier = Simplifier::with_budget(Duration::ZERO);
        let e = crate::syntax::parse_expr("A*B + A*A").unwrap();
        let out = simplifier.simplify(&e, &mut typer, None).unwrap();
        assert_eq!((out.expr.to_string(), out.saturated), ("A * B + A * A".into(), false));
        let e = crate::syntax::parse_expr("(B*A)^T").unwrap();
        let out = simplifier.simplify(&e, &mut typer, None).unwrap();
        assert_eq!((out.expr.to_string(), out.saturated), ("A^T * B^T".into(), true));
        let full = Simplifier::default().simplify(
            &crate::syntax::parse_expr("A*B + A*A").unwrap(),
            &mut typer,
            None,
        );
        assert_eq!(full.unwrap().expr.to_string(), "A * (A + B)");
    }

    /// Small formulas saturate, in their textbook form: identities and
    /// inverse pairs do not unfold into ever longer products (each of these
    /// once ran the e-graph to its time limit), and `tr(I)` is its size or
    /// is kept inside the trace.
    #[test]
    fn small_formulas_saturate() {
        let src = "W : 3x3; W2 : 3x3; G : 3x2; S : 1x1; X : n x n; W";
        let program = crate::syntax::parse_program(src).unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        for (e, want) in [
            ("(W^T + I) * G", "G + W^T * G"),
            ("W^T * (W * W2 * W)^-1^T * W^T", "W2^T^-1"),
            ("tr(W + I)", "tr(W) + 3"),
            ("tr(X + I)", "tr(X + I)"),
        ] {
            let out = simplify(&crate::syntax::parse_expr(e).unwrap(), typing.typer(), None).unwrap();
            assert_eq!((out.expr.to_string(), out.saturated), (want.to_string(), true), "{e}");
        }
        // This one still reaches the node limit, fast, with its simplest form.
        let e = "(W * W2 * W)^-1^T * W^T * W2^T + W2^T * W^T * (W * W2 * W)^-1^T";
        let out = simplify(&crate::syntax::parse_expr(e).unwrap(), typing.typer(), None).unwrap();
        assert_eq!(out.expr.to_string(), "2 * W^T^-1");
    }

    /// A scalar's power meets its divisor: `s^k * (A / s)` is `s^(k-1) * A`,
    /// through products of scalars, entrywise reciprocals and transposes.
    #[test]
    fn a_scalar_power_cancels_its_divisor() {
        let src = "x : n; a : scalar; b : scalar; X : 3x4; x";
        let program = crate::syntax::parse_program(src).unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        for (e, want) in [
            ("(a^2^T * (1 ./ a) * x^T)^T + (a^2 * x^T)^T * (1 ./ a)", "2 * a * x"),
            ("(2 * a^2 * x) / a", "2 * a * x"),
            ("3 * norm(X)^2 * (X / norm(X))", "3 * norm(X) * X"),
            ("b * a^3 * (X / a)", "b * a^2 * X"),
            ("a * (x / a)", "x"),
            ("a^2 / a", "a"),
            // Another scalar does not cancel.
            ("a^2 * (x / b)", "a^2 * (x / b)"),
        ] {
            let out = simplify(&crate::syntax::parse_expr(e).unwrap(), typing.typer(), None).unwrap();
            assert_eq!((out.expr.to_string(), out.saturated), (want.to_string(), true), "{e}");
        }
    }

    /// Where only cancelled terms told the size of an `I`, the result still
    /// tells it: tidy keeps one as `0 * M`, det(I) and logdet(I) are numbers,
    /// and the e-graph's `sum(I)` is not printed (found by the 100 000-case
    /// property run: `det(0·M + I)` became `det(I)`).
    #[test]
    fn identities_keep_a_size() {
        let src = "M : 2x1; S : 3x3; M";
        let program = crate::syntax::parse_program(src).unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        for (e, want) in [
            ("det((M^T - M^T)^T * (M^T - M^T) + I) + M - M", "0 * M + 1"),
            ("logdet(S * S^-1)", "0"),
            ("sum(0 * M * M^T + I)", "sum(0 * M * M^T + I)"),
            ("tr(0 * M * M^T + I)", "2"),
        ] {
            let tidied = tidy(&crate::syntax::parse_expr(e).unwrap(), typing.typer()).unwrap();
            let mut typer = typing.typer().clone();
            let shape = typer.infer(&crate::syntax::parse_expr(e).unwrap()).unwrap();
            let crate::shape::Inferred { fits, sized, .. } = typer.infer_as(&tidied, shape).unwrap();
            assert!(fits && sized, "{e}: tidied to {tidied}");
            let out = simplify(&crate::syntax::parse_expr(e).unwrap(), typing.typer(), None).unwrap();
            assert_eq!(out.expr.to_string(), want, "{e}");
        }
    }

    /// `X .^ 1` is X, transposed or not: its operand is normalised once.
    #[test]
    fn hadamard_power_one_is_its_operand() {
        let program = crate::syntax::parse_program("A : 3x4; B : 3x2; A").unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        for (e, want) in [("(A .^ 1)^T * B", "A^T * B"), ("(A .^ 1 .^ 1 .^ 2)^T * B", "A .^ 2^T * B")] {
            let tidied = tidy(&crate::syntax::parse_expr(e).unwrap(), typing.typer()).unwrap();
            assert_eq!(tidied.to_string(), want, "{e}");
        }
    }

    /// A lone variable, maybe transposed, is what the e-graph makes of it.
    /// What the e-graph alone makes of a tidy form.
    fn through_the_egraph(tidied: &Expr, typer: &Typer) -> Simplified {
        simplify_tidied(tidied.clone(), &mut typer.clone(), None, TIME_LIMIT, &Control::default()).unwrap()
    }

    #[test]
    fn plain_leaves_are_what_the_egraph_makes_of_them() {
        let program = crate::syntax::parse_program("A : n x n; B : 2x3; s : scalar; A").unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        for text in ["A", "A^T", "B", "B^T", "s", "C", "C^T"] {
            let tidied = tidy(&crate::syntax::parse_expr(text).unwrap(), typing.typer()).unwrap();
            assert!(is_plain_leaf(&tidied), "{text}");
            let via_egraph = through_the_egraph(&tidied, typing.typer());
            assert!(via_egraph.saturated, "{text}");
            assert_eq!(via_egraph.expr.to_string(), tidied.to_string(), "{text}");
        }
    }

    /// The fast path of `simplify` returns what the e-graph returns.
    #[test]
    fn plain_products_are_what_the_egraph_makes_of_them() {
        let mut rng = StdRng::seed_from_u64(3);
        let names = ["A", "B", "C", "D"];
        let program = crate::syntax::parse_program("A : n x n; B : n x n; C : n x n; D : n x n; A").unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        let mut plain = 0;
        for _ in 0..300 {
            let len = rng.random_range(2..7);
            let mut text = if rng.random_bool(0.3) { "3 * ".to_string() } else { String::new() };
            let factors: Vec<String> = (0..len)
                .map(|_| {
                    let v = names[rng.random_range(0..names.len())];
                    if rng.random_bool(0.4) {
                        format!("{v}^T")
                    } else {
                        v.to_string()
                    }
                })
                .collect();
            text.push_str(&factors.join(" * "));
            let e = crate::syntax::parse_expr(&text).unwrap();
            let tidied = tidy(&e, typing.typer()).unwrap();
            if !is_plain_product(&tidied, typing.typer()) {
                continue;
            }
            plain += 1;
            let via_egraph = through_the_egraph(&tidied, typing.typer());
            assert!(via_egraph.saturated, "{text}");
            assert_eq!(via_egraph.expr.to_string(), tidied.to_string(), "{text}");
        }
        assert!(plain > 100, "the fast path was taken {plain} times");
    }

    /// A random product of `names` under transposes and brackets.
    fn random_product(rng: &mut StdRng, names: &[&str], depth: usize) -> String {
        let leaf = depth == 0 || rng.random_bool(0.3);
        let e = if leaf {
            names[rng.random_range(0..names.len())].to_string()
        } else {
            let (l, r) = (random_product(rng, names, depth - 1), random_product(rng, names, depth - 1));
            format!("({l} * {r})")
        };
        if rng.random_bool(0.3) {
            format!("{e}^T")
        } else {
            e
        }
    }

    /// The chain fast path of `simplify` (`tidy::plain_chain`) returns what
    /// tidy and the entrywise pass make of the same product, a plain
    /// product; and it declines scalars, scalar multiples and neighbours alike.
    #[test]
    fn plain_chains_are_what_tidy_makes_of_them() {
        let mut rng = StdRng::seed_from_u64(7);
        let names = ["A", "B", "C", "S", "A", "B", "C", "S", "A", "B", "C", "x", "y", "R", "Q", "s"];
        let src = "A : n x n; B : n x n; C : n x n; S : n x n spd; x : n; y : n; R : n x m; Q : m x n; s : scalar; A";
        let program = crate::syntax::parse_program(src).unwrap();
        let typing = crate::shape::infer(&program).unwrap();
        let (mut taken, mut declined) = (0, 0);
        for _ in 0..6000 {
            let text = random_product(&mut rng, &names, 4);
            let e = crate::syntax::parse_expr(&text).unwrap();
            let mut typer = typing.typer().clone();
            let mut simplifier = Simplifier::default().with_domains(&program, &Default::default());
            let fast = tidy::plain_chain(&e, &typer, &mut simplifier.leaves);
            let Ok(tidied) = simplifier.tidy(&e, &mut typer) else {
                assert!(fast.is_none(), "{text}: a chain of an ill-typed product");
                continue;
            };
            let general = typer.scratch(|typer| entrywise::collect(&tidied, typer));
            match fast {
                Some(chain) => {
                    taken += 1;
                    assert_eq!(chain.to_string(), general.to_string(), "{text}");
                    assert!(is_plain_product(&general, &typer), "{text}");
                    // One node per variable, shared with the general pass.
                    let nodes = |e: &Expr| -> Vec<*const Expr> {
                        e.factors().into_iter().map(|f| f as *const Expr).collect()
                    };
                    assert_eq!(nodes(&chain), nodes(&general), "{text}");
                }
                None => declined += 1,
            }
        }
        assert!(taken > 300 && declined > 300, "taken {taken}, declined {declined}");
    }
}
