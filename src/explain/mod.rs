//! Explanations: a derivation's recorded steps as numbered equalities, each
//! naming its identity, rendered as text or LaTeX from one list of lines.
//!
//! Entry point: [`explain`]. Nothing here differentiates: every formula
//! comes from the calculus' record ([`crate::calculus::Step`]) or from the
//! simplified gradient.

use crate::calculus::{Mode, Rule, Step, RECORDED_OCCURRENCES};
use crate::shape::{Dim, Shape};
use crate::syntax::{var_latex, Expr, ExprKind, Func, VarName};
use crate::{Derivation, Gradient};

mod formula;
pub use formula::Formula;

/// What stands left of the relation.
#[derive(Clone, Debug)]
pub enum Lhs {
    /// dL
    Loss,
    /// ∂L/∂V
    Gradient(VarName),
    /// Continues the previous line.
    Same,
}

/// One line of an explanation: `lhs = rhs` and why.
#[derive(Clone, Debug)]
pub struct Line {
    /// The left-hand side.
    pub lhs: Lhs,
    /// The right-hand side.
    pub rhs: Formula,
    /// Terms of dL without the variable's differential are left out.
    pub partial: bool,
    /// The identity that justifies the line.
    pub why: String,
}

/// A derivation with the explanation of each of its gradients: what
/// `derive --steps --json` prints.
#[derive(Debug)]
pub struct Explained<'d, 'p> {
    /// The derivation explained.
    pub derivation: &'d Derivation<'p>,
    /// One explanation per gradient, in the derivation's order.
    pub explanations: Vec<Explanation>,
}

impl<'d, 'p> Explained<'d, 'p> {
    /// The derivation with its explanations ([`explain`]).
    pub fn new(derivation: &'d Derivation<'p>) -> Explained<'d, 'p> {
        Explained { derivation, explanations: explain(derivation) }
    }
}

/// The explanation of one gradient.
#[derive(Clone, Debug)]
pub struct Explanation {
    /// The variable explained.
    pub wrt: VarName,
    /// The lines, from dL down to the gradient.
    pub lines: Vec<Line>,
    /// Factor by factor: shapes, contracted dimensions, the result.
    pub shape_check: Vec<String>,
}

fn tr(e: Expr) -> Expr {
    Expr::call(Func::Tr, e)
}

/// `tr(Aᵀ d(E))`.
fn read_off(adjoint: &Expr, e: &Expr) -> Formula {
    Formula::with_differential(e, |d| tr(Expr::product(Expr::transpose(adjoint.clone()), d)))
}

/// Steps of one occurrence an explanation shows: the first and the last
/// half of them; those between are one line that names their rules (each
/// step restates the formula, and 10 000 nested negations wrote 300 MB).
pub const SHOWN_STEPS: usize = 40;

/// Formula nodes all the lines of one derivation's explanations may print;
/// the gradients after the one that reaches it show their result only.
pub const MAX_EXPLAINED_NODES: usize = 2_000_000;

/// Explains every gradient of a derivation: of each, the first
/// [`RECORDED_OCCURRENCES`] occurrences, [`SHOWN_STEPS`] steps of each,
/// within [`MAX_EXPLAINED_NODES`] for all; lines say what they leave out.
///
/// ```
/// let p = matdiff::syntax::parse_program("A : 3x4; X : 4x5; B : 5x3; tr(A*X*B)").unwrap();
/// let d = matdiff::derive(&p, &Default::default()).unwrap();
/// let e = matdiff::explain::explain(&d);
/// assert_eq!(e[1].lines.last().unwrap().rhs.to_string(), "A^T * B^T");
/// ```
pub fn explain(d: &Derivation) -> Vec<Explanation> {
    let mut budget = MAX_EXPLAINED_NODES;
    d.gradients
        .iter()
        .map(|g| {
            let mut lines = Lines { lines: vec![], budget: &mut budget };
            match explain_gradient(d, g, &mut lines) {
                Some(()) => {
                    Explanation { wrt: g.wrt.clone(), lines: lines.lines, shape_check: shape_check(d, g) }
                }
                None => {
                    budget = 0; // the later gradients are not shown either
                    not_shown(g)
                }
            }
        })
        .collect()
}

/// The lines of one explanation, against the nodes left to print.
struct Lines<'b> {
    lines: Vec<Line>,
    budget: &'b mut usize,
}

impl Lines<'_> {
    /// Adds a line; `None` when its formula does not fit in what is left.
    fn push(&mut self, line: Line) -> Option<()> {
        let size = line.rhs.size_within(*self.budget)?;
        *self.budget -= size;
        self.lines.push(line);
        Some(())
    }
}

/// A gradient whose steps did not fit: its result, and why.
fn not_shown(g: &Gradient) -> Explanation {
    let why = format!(
        "steps not shown: the explanations reached their limit of {MAX_EXPLAINED_NODES} formula nodes; ask for the gradient of `{}` alone",
        g.wrt
    );
    let line = Line { lhs: Lhs::Gradient(g.wrt.clone()), rhs: Formula::from(&g.expr), partial: false, why };
    Explanation { wrt: g.wrt.clone(), lines: vec![line], shape_check: vec![] }
}

fn explain_gradient(d: &Derivation, g: &Gradient, lines: &mut Lines) -> Option<()> {
    let contributions = &g.differential.contributions;
    // Only the first occurrences have their steps recorded.
    let shown = contributions.iter().take_while(|c| !c.steps.is_empty()).count().min(RECORDED_OCCURRENCES);
    for (k, c) in contributions.iter().enumerate().take(shown) {
        let steps = &c.steps;
        let start = &steps[0];
        let (first, why) = match &d.mode {
            Mode::Layer { upstream } => {
                let z = Expr::var(d.typing.program.name.as_deref().unwrap_or("Z"));
                let g = Expr::synthetic(ExprKind::Var(std::rc::Rc::new(upstream.clone())));
                (read_off(&g, &z), format!("the upstream gradient {upstream} = dL/d{z}"))
            }
            Mode::Scalar => {
                (Formula::with_differential(&start.target, |d| d), "L is the expression".to_string())
            }
        };
        let why = if contributions.len() > 1 {
            format!("{why}; occurrence {} of {} of {}", k + 1, contributions.len(), g.wrt)
        } else {
            why
        };
        lines.push(Line { lhs: Lhs::Loss, rhs: first, partial: false, why })?;
        if let Mode::Layer { .. } = d.mode {
            lines.push(Line {
                lhs: Lhs::Same,
                rhs: read_off(&start.adjoint, &start.target),
                partial: false,
                why: format!("substitute d{}", d.typing.program.name.as_deref().unwrap_or("Z")),
            })?;
        }
        let pairs: Vec<&[Step]> = steps.windows(2).collect();
        let (head, tail) = if pairs.len() > SHOWN_STEPS {
            (SHOWN_STEPS / 2, pairs.len() - SHOWN_STEPS / 2)
        } else {
            (pairs.len(), pairs.len())
        };
        for pair in &pairs[..head] {
            explain_step(&pair[0], &pair[1], lines)?;
        }
        if tail > head {
            lines.push(left_out(&pairs[head..tail]))?;
        }
        for pair in &pairs[tail..] {
            explain_step(&pair[0], &pair[1], lines)?;
        }
        lines.push(Line {
            lhs: Lhs::Gradient(g.wrt.clone()),
            rhs: Formula::from(&c.adjoint),
            partial: contributions.len() > 1,
            why: format!("read off: tr(A^T d{0}) gives dL/d{0} = A", g.wrt),
        })?;
    }
    if contributions.len() > 1 {
        let sum = g.differential.sum();
        let rest = contributions.len() - shown;
        let why = if rest > 0 {
            format!(
                "the sum of the {} occurrences (tied); … and {rest} more occurrences, not shown (the steps of the first {shown} are)",
                contributions.len()
            )
        } else {
            format!("the sum of the {} occurrences (tied)", contributions.len())
        };
        lines.push(Line {
            lhs: Lhs::Gradient(g.wrt.clone()),
            rhs: Formula::from(&sum),
            partial: false,
            why,
        })?;
    }
    lines.push(Line {
        lhs: Lhs::Same,
        rhs: Formula::from(&g.expr),
        partial: false,
        why: "simplified: transposes at the leaves, like terms collected".to_string(),
    })
}

/// One line for the steps an explanation leaves out: where they arrive
/// (the formula the last of them reads off) and the rules they apply.
fn left_out(pairs: &[&[Step]]) -> Line {
    let last = &pairs[pairs.len() - 1][1];
    let rhs = read_off(&last.adjoint, &last.target);
    let mut rules: Vec<(Rule, usize)> = vec![];
    for pair in pairs {
        match rules.iter_mut().find(|(r, _)| *r == pair[1].rule) {
            Some((_, n)) => *n += 1,
            None => rules.push((pair[1].rule, 1)),
        }
    }
    let named: Vec<String> = rules.iter().map(|(r, n)| format!("{} ({n} times)", r.identity())).collect();
    let why = format!("… {} more steps, not shown: {}", pairs.len(), named.join(", "));
    Line { lhs: Lhs::Same, rhs, partial: true, why }
}

/// The equalities that take `tr(Aᵀ d(E))` (the previous step) to
/// `tr(A'ᵀ d(F))` (this one).
fn explain_step(prev: &Step, step: &Step, lines: &mut Lines) -> Option<()> {
    // The scalar mode's first adjoint is the number 1: no `1^T *` in print.
    let one = prev.adjoint.kind == ExprKind::Num(1.0);
    let a_t = Expr::transpose(prev.adjoint.clone());
    let times_a_t = |x: Expr| if one { x } else { Expr::product(a_t.clone(), x) };
    let read = read_off(&step.adjoint, &step.target);
    let line = |rhs: Formula, why: &str| Line { lhs: Lhs::Same, rhs, partial: true, why: why.to_string() };
    let Some(frozen) = &step.frozen else {
        return lines.push(line(read, step.rule.identity()));
    };
    // P · d(F) · S, each side flattened into its factors.
    let mut before = vec![];
    let mut after = vec![];
    for f in &frozen.factors[..frozen.at] {
        before.extend(f.factors().into_iter().cloned());
    }
    for f in &frozen.factors[frozen.at + 1..] {
        after.extend(f.factors().into_iter().cloned());
    }
    let target = &frozen.factors[frozen.at];
    let product_rule = Formula::with_differential(target, |d| {
        let parts = before.iter().cloned().chain([d]).chain(after.iter().cloned());
        tr(times_a_t(Expr::product_of(parts).expect("a differential")))
    });
    let split = "split the product at the factor that holds the variable: prod(F, i=a..b) = prod(F, i=a..j-1) * F(j) * prod(F, i=j+1..b)";
    let why = if step.rule == Rule::ProdSplit { split } else { "product rule, the other factors frozen" };
    lines.push(line(product_rule, why))?;
    match step.rule {
        Rule::Product | Rule::ProdSplit => {
            if !after.is_empty() {
                let rotated = Formula::with_differential(target, |d| {
                    let parts =
                        after.iter().cloned().chain((!one).then(|| a_t.clone())).chain(before.clone());
                    tr(Expr::product_of(parts.chain([d])).expect("a differential"))
                });
                lines.push(line(rotated, "cyclic rotation of the trace: tr(P dF S) = tr(S P dF)"))?;
            }
            lines.push(line(read, "transpose: tr(S A^T P dF) = tr((P^T A S^T)^T dF)"))
        }
        Rule::Scaling => lines.push(line(read, "a scalar leaves the trace: tr(A^T ds R) = ds tr(A^T R)")),
        rule => lines.push(line(read, rule.identity())),
    }
}

/// `d/dW2: W1^T (4x3) G (3x2) X^T (2x6) W3^T (6x5) = 4x5 = shape of W2`, per
/// product term of the simplified gradient, naming the contracted
/// dimensions (the batch: the columns of a layer's output).
fn shape_check(d: &Derivation, g: &Gradient) -> Vec<String> {
    let terms = g.expr.sum_terms_through_neg();
    let batch = match d.mode {
        Mode::Layer { .. } => Some(d.typing.shape().cols),
        Mode::Scalar => None,
    };
    let mut out = vec![];
    let mut typer = d.typing.typer().clone();
    for (_, term) in terms {
        let factors = term.factors();
        let mut parts = vec![];
        let mut shapes: Vec<Shape> = vec![];
        for f in &factors {
            let Ok(s) = typer.infer(f) else { return vec![] };
            let s = typer.resolve(s);
            parts.push(format!("{f} ({s})"));
            shapes.push(s);
        }
        let matrices: Vec<&Shape> = shapes.iter().filter(|s| !s.is_scalar()).collect();
        let mut contracted = vec![];
        for pair in matrices.windows(2) {
            let dim = &pair[0].cols;
            if *dim != Dim::Const(1) || pair[1].rows != Dim::Const(1) {
                let mark = if Some(dim) == batch.as_ref() && *dim != Dim::Const(1) { " (batch)" } else { "" };
                contracted.push(format!("{dim}{mark}"));
            }
        }
        let contracted = if contracted.is_empty() {
            String::new()
        } else {
            format!("; contracted: {}", contracted.join(", "))
        };
        out.push(format!("{} = {} = shape of {}{contracted}", parts.join(" · "), g.shape, g.wrt));
    }
    out
}

/// The explanations as text: numbered equalities with their reasons.
pub fn to_text(explanations: &[Explanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        out.push_str(&format!("d/d{}   (… stands for the terms of dL without d{})\n", e.wrt, e.wrt));
        let rendered: Vec<(String, &str)> = e
            .lines
            .iter()
            .map(|l| {
                let lhs = match &l.lhs {
                    Lhs::Loss => "dL =".to_string(),
                    Lhs::Gradient(v) if l.partial => format!("=> dL/d{v} ∋"),
                    Lhs::Gradient(v) => format!("dL/d{v} ="),
                    Lhs::Same => "   =".to_string(),
                };
                let tail = if l.partial && !matches!(l.lhs, Lhs::Gradient(_)) { " + …" } else { "" };
                (format!("{lhs} {}{tail}", l.rhs), l.why.as_str())
            })
            .collect();
        let width = rendered.iter().map(|(t, _)| t.chars().count()).max().unwrap_or(0).min(90);
        for (i, (text, why)) in rendered.iter().enumerate() {
            out.push_str(&format!("  ({:>2}) {text:<width$}   [{why}]\n", i + 1));
        }
        for check in &e.shape_check {
            out.push_str(&format!("  shape check: {check}\n"));
        }
        out.push('\n');
    }
    out
}

fn text_latex(s: &str) -> String {
    let escaped: String = s
        .chars()
        .map(|c| match c {
            '_' => "\\_".to_string(),
            '^' => "\\textasciicircum{}".to_string(),
            '&' | '%' | '$' | '#' | '{' | '}' => format!("\\{c}"),
            '~' => "\\textasciitilde{}".to_string(),
            '\\' => "\\textbackslash{}".to_string(),
            c => c.to_string(),
        })
        .collect();
    format!("\\text{{{escaped}}}")
}

/// The explanations as LaTeX: one `aligned` block per gradient, in `\[ \]`.
pub fn to_latex_blocks(explanations: &[Explanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        out.push_str("\\[\n\\begin{aligned}\n");
        for l in &e.lines {
            let lhs = match &l.lhs {
                Lhs::Loss => "\\mathrm{d}\\mathcal{L}".to_string(),
                Lhs::Gradient(v) => {
                    format!("\\frac{{\\partial \\mathcal{{L}}}}{{\\partial {}}}", var_latex(v))
                }
                Lhs::Same => String::new(),
            };
            let rel = if l.partial && matches!(l.lhs, Lhs::Gradient(_)) { "\\ni" } else { "=" };
            let tail = if l.partial && !matches!(l.lhs, Lhs::Gradient(_)) { " + \\dots" } else { "" };
            out.push_str(&format!("{lhs} &{rel} {}{tail} && {} \\\\\n", l.rhs.latex(), text_latex(&l.why)));
        }
        out.push_str("\\end{aligned}\n\\]\n");
    }
    out
}
