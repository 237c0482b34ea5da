//! Explanations: a derivation's recorded steps as numbered equalities, each
//! naming its identity, rendered as text or LaTeX from one list of lines.
//!
//! Entry point: [`explain`]. Nothing here differentiates: every formula
//! comes from the calculus' record ([`crate::calculus::Step`]) or from the
//! simplified gradient.

use crate::calculus::{Mode, Rule, Step, RECORDED_OCCURRENCES};
use crate::shape::{Dim, Shape};
use crate::syntax::{latex_lines, latex_width, to_latex, var_latex, Expr, ExprKind, Func, VarName};
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
    pub why: Why,
}

/// Why a line holds: words and formulas, each formula both in the
/// expression syntax and in LaTeX, so that a reason prints as text, as
/// math (words in `\text{}`) or as a sentence (formulas in `$…$`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Why {
    parts: Vec<Part>,
}

/// A piece of a [`Why`].
#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    /// Prose, spaces included.
    Words(String),
    /// A formula: as text (`tr(P dF S)`) and as LaTeX math.
    Formula { text: String, latex: String },
}

impl Why {
    /// Words alone.
    pub fn words(text: &str) -> Why {
        Why { parts: vec![Part::Words(text.to_string())] }
    }

    /// A formula alone, as text and as LaTeX math.
    pub fn formula(text: &str, latex: &str) -> Why {
        Why { parts: vec![Part::Formula { text: text.to_string(), latex: latex.to_string() }] }
    }

    /// A calculus rule's identity ([`Rule::identity`], [`Rule::identity_latex`]).
    pub fn rule(rule: Rule) -> Why {
        Why::formula(rule.identity(), rule.identity_latex())
    }

    /// This reason followed by words.
    pub fn then_words(mut self, text: &str) -> Why {
        self.parts.push(Part::Words(text.to_string()));
        self
    }

    /// This reason followed by a formula.
    pub fn then_formula(mut self, text: &str, latex: &str) -> Why {
        self.parts.push(Part::Formula { text: text.to_string(), latex: latex.to_string() });
        self
    }

    /// This reason followed by another.
    pub fn then(mut self, more: Why) -> Why {
        self.parts.extend(more.parts);
        self
    }

    /// Words, then a formula: `words: formula`.
    fn labelled(words: &str, formula: Why) -> Why {
        Why::words(&format!("{words}: ")).then(formula)
    }

    /// As text: `read off: tr(A^T dW) gives dL/dW = A`.
    pub fn text(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Words(w) => w.as_str(),
                Part::Formula { text, .. } => text.as_str(),
            })
            .collect()
    }

    /// As LaTeX math (for display or inline math): words in `\text{}`.
    pub fn latex(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Words(w) => format!("\\text{{{}}}", escape_text(w)),
                Part::Formula { latex, .. } => latex.clone(),
            })
            .collect()
    }

    /// As a LaTeX sentence (text mode): formulas in `$…$`, so that the
    /// words break across lines as a paragraph's do.
    pub fn latex_sentence(&self) -> String {
        self.parts
            .iter()
            .map(|p| match p {
                Part::Words(w) => escape_text(w),
                Part::Formula { latex, .. } => inline_math(latex),
            })
            .collect()
    }
}

/// Math for a sentence: `$…$`, with the words of a top-level `\text{…}`
/// set as words outside it, so that they break across lines as words do.
fn inline_math(latex: &str) -> String {
    let mut out = String::new();
    let mut math = String::new();
    let mut rest = latex;
    let mut depth = 0usize;
    let close = |math: &mut String, out: &mut String| {
        if !math.trim().is_empty() {
            out.push_str(&format!("${}$", math.trim()));
        }
        math.clear();
    };
    while !rest.is_empty() {
        // Only a `\text` outside braces is taken out: inside, it is an
        // argument (a subscript, a fraction's part).
        if let (0, Some(after)) = (depth, rest.strip_prefix("\\text{")) {
            let mut inner = 1;
            let end = after
                .char_indices()
                .find(|&(_, c)| {
                    match c {
                        '{' => inner += 1,
                        '}' => inner -= 1,
                        _ => {}
                    }
                    inner == 0
                })
                .map_or(after.len(), |(i, _)| i);
            close(&mut math, &mut out);
            // A space at either end of the words stays a space.
            out.push_str(&after[..end]);
            rest = after.get(end + 1..).unwrap_or("");
            continue;
        }
        let c = rest.chars().next().expect("not empty");
        match c {
            // `\{` and `\}` are characters, not braces.
            '\\' if rest[1..].starts_with(['{', '}']) => {
                math.push_str(&rest[..2]);
                rest = &rest[2..];
                continue;
            }
            '{' => depth += 1,
            '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
        math.push(c);
        rest = &rest[c.len_utf8()..];
    }
    close(&mut math, &mut out);
    out
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
    pub shape_check: Vec<ShapeCheck>,
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
    let why = Why::words(&why);
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
                let why = Why::words("the upstream gradient ").then_formula(
                    &format!("{upstream} = dL/d{z}"),
                    &format!(r"{} = \partial\mathcal{{L}} / \partial {}", var_latex(upstream), to_latex(&z)),
                );
                (read_off(&g, &z), why)
            }
            Mode::Scalar => (
                Formula::with_differential(&start.target, |d| d),
                Why::formula("L", r"\mathcal{L}").then_words(" is the expression"),
            ),
        };
        let why = if contributions.len() > 1 {
            why.then_words(&format!("; occurrence {} of {} of ", k + 1, contributions.len()))
                .then_formula(&g.wrt.to_string(), &var_latex(&g.wrt))
        } else {
            why
        };
        lines.push(Line { lhs: Lhs::Loss, rhs: first, partial: false, why })?;
        if let Mode::Layer { .. } = d.mode {
            lines.push(Line {
                lhs: Lhs::Same,
                rhs: read_off(&start.adjoint, &start.target),
                partial: false,
                why: {
                    let z = d.typing.program.name.as_deref().unwrap_or("Z");
                    Why::words("substitute ")
                        .then_formula(&format!("d{z}"), &format!(r"\mathrm{{d}}{}", to_latex(&Expr::var(z))))
                },
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
            why: {
                let (w, v) = (&g.wrt, var_latex(&g.wrt));
                Why::words("read off: ")
                    .then_formula(
                        &format!("tr(A^T d{w})"),
                        &format!(r"\operatorname{{tr}}(A^{{\top}} \mathrm{{d}}{v})"),
                    )
                    .then_words(" gives ")
                    .then_formula(
                        &format!("dL/d{w} = A"),
                        &format!(r"\partial\mathcal{{L}} / \partial {v} = A"),
                    )
            },
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
            why: Why::words(&why),
        })?;
    }
    lines.push(Line {
        lhs: Lhs::Same,
        rhs: Formula::from(&g.expr),
        partial: false,
        why: Why::words("simplified: transposes at the leaves, like terms collected"),
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
    let mut why = Why::words(&format!("… {} more steps, not shown: ", pairs.len()));
    for (i, (rule, n)) in rules.iter().enumerate() {
        if i > 0 {
            why = why.then_words(", ");
        }
        why = why.then(Why::rule(*rule)).then_words(&format!(" ({n} times)"));
    }
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
    let line = |rhs: Formula, why: Why| Line { lhs: Lhs::Same, rhs, partial: true, why };
    let Some(frozen) = &step.frozen else {
        return lines.push(line(read, Why::rule(step.rule)));
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
    let why = if step.rule == Rule::ProdSplit {
        Why::labelled("split the product at the factor that holds the variable", Why::rule(Rule::ProdSplit))
    } else {
        Why::words("product rule, the other factors frozen")
    };
    lines.push(line(product_rule, why))?;
    match step.rule {
        Rule::Product | Rule::ProdSplit => {
            if !after.is_empty() {
                let rotated = Formula::with_differential(target, |d| {
                    let parts =
                        after.iter().cloned().chain((!one).then(|| a_t.clone())).chain(before.clone());
                    tr(Expr::product_of(parts.chain([d])).expect("a differential"))
                });
                let why = Why::formula(
                    "tr(P dF S) = tr(S P dF)",
                    r"\operatorname{tr}(P\, \mathrm{d}F\, S) = \operatorname{tr}(S P\, \mathrm{d}F)",
                );
                lines.push(line(rotated, Why::labelled("cyclic rotation of the trace", why)))?;
            }
            let why = Why::formula(
                "tr(S A^T P dF) = tr((P^T A S^T)^T dF)",
                r"\operatorname{tr}(S A^{\top} P\, \mathrm{d}F) = \operatorname{tr}\bigl((P^{\top} A S^{\top})^{\top} \mathrm{d}F\bigr)",
            );
            lines.push(line(read, Why::labelled("transpose", why)))
        }
        Rule::Scaling => {
            lines.push(line(read, Why::labelled("a scalar leaves the trace", Why::rule(Rule::Scaling))))
        }
        rule => lines.push(line(read, Why::rule(rule))),
    }
}

/// One product term of a gradient, factor by factor: each factor's
/// shape, the dimensions contracted between neighbours, the result.
#[derive(Clone, Debug)]
pub struct ShapeCheck {
    /// The factors and their shapes.
    pub factors: Vec<(Expr, Shape)>,
    /// The dimensions contracted between neighbouring matrix factors, each
    /// marked when it is the batch (the columns of a layer's output).
    pub contracted: Vec<(Dim, Batch)>,
    /// The gradient's shape, which is its variable's.
    pub shape: Shape,
    /// The variable.
    pub wrt: VarName,
}

/// Whether a contracted dimension is the batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Batch {
    /// The columns of a layer's output.
    Batch,
    /// Any other dimension.
    Other,
}

/// `W1^T (4x3) · G (3x2) · X^T (2x6) · W3^T (6x5) = 4x5 = shape of W2; contracted: 3, 2 (batch), 6`.
impl std::fmt::Display for ShapeCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .factors
            .iter()
            .map(|(e, s)| if self.bracketed(e) { format!("({e}) ({s})") } else { format!("{e} ({s})") })
            .collect();
        write!(f, "{} = {} = shape of {}", parts.join(" · "), self.shape, self.wrt)?;
        if !self.contracted.is_empty() {
            let c: Vec<String> = self
                .contracted
                .iter()
                .map(|(d, b)| if *b == Batch::Batch { format!("{d} (batch)") } else { d.to_string() })
                .collect();
            write!(f, "; contracted: {}", c.join(", "))?;
        }
        Ok(())
    }
}

impl ShapeCheck {
    /// The factors with their shapes below them and the result, as LaTeX
    /// math: `\underset{4 \times 3}{W_{1}^{\top}} \, \underset{3 \times 2}{G} \cdots : 4 \times 5`.
    pub fn latex(&self) -> String {
        let parts: Vec<String> = self
            .factors
            .iter()
            .map(|(e, s)| {
                let e =
                    if self.bracketed(e) { format!("\\left({}\\right)", to_latex(e)) } else { to_latex(e) };
                format!("\\underset{{{}}}{{{e}}}", shape_latex(s))
            })
            .collect();
        format!("{} \\in \\mathbb{{R}}^{{{}}}", parts.join(" \\, "), shape_latex(&self.shape))
    }

    /// Whether factor `e` needs brackets to be read as one factor of the
    /// product (`2 (W*H - Y) H^T`, not `2 W*H - Y H^T`): a sum, or another
    /// product-level operator (`A .* B`) beside other factors.
    fn bracketed(&self, e: &Expr) -> bool {
        self.factors.len() > 1
            && matches!(&e.kind, ExprKind::Binary { op, .. } if !op.is_call() && !matches!(op, crate::syntax::BinOp::Mul | crate::syntax::BinOp::Power))
    }

    /// The contracted dimensions as LaTeX math, the batch marked
    /// (`3,\ 2\ (\text{batch}),\ 6`); empty when there are none.
    pub fn contracted_latex(&self) -> String {
        let c: Vec<String> = self
            .contracted
            .iter()
            .map(|(d, b)| match b {
                Batch::Batch => format!("{}\\ (\\text{{batch}})", dim_latex(d)),
                Batch::Other => dim_latex(d),
            })
            .collect();
        c.join(",\\ ")
    }
}

/// A shape as LaTeX: `4 \times 5`, `d_{j-1} \times B`.
pub fn shape_latex(s: &Shape) -> String {
    format!("{} \\times {}", dim_latex(&s.rows), dim_latex(&s.cols))
}

/// A dimension as LaTeX: a number, a symbol as a variable name is
/// written (`d0` is `d_{0}`), a family member `d_{j-1}`.
pub fn dim_latex(d: &Dim) -> String {
    match d {
        Dim::Const(n) => n.to_string(),
        Dim::Symbol(s) => var_latex(&VarName::plain(s)),
        Dim::Indexed(s, i) => var_latex(&VarName { name: s.clone(), index: Some(i.clone()) }),
        Dim::Unknown(k) => format!("?_{{{k}}}"),
    }
}

/// The shape check of each product term of the simplified gradient,
/// naming the contracted dimensions (the batch: the columns of a layer's
/// output).
fn shape_check(d: &Derivation, g: &Gradient) -> Vec<ShapeCheck> {
    let terms = g.expr.sum_terms_through_neg();
    let batch = match d.mode {
        Mode::Layer { .. } => Some(d.typing.shape().cols),
        Mode::Scalar => None,
    };
    let mut out = vec![];
    let mut typer = d.typing.typer().clone();
    for (_, term) in terms {
        let mut factors = vec![];
        for f in term.factors() {
            let Ok(s) = typer.infer(f) else { return vec![] };
            factors.push((f.clone(), typer.resolve(s)));
        }
        let matrices: Vec<&Shape> = factors.iter().map(|(_, s)| s).filter(|s| !s.is_scalar()).collect();
        let mut contracted = vec![];
        for pair in matrices.windows(2) {
            let dim = &pair[0].cols;
            if *dim != Dim::Const(1) || pair[1].rows != Dim::Const(1) {
                let mark = if Some(dim) == batch.as_ref() && *dim != Dim::Const(1) {
                    Batch::Batch
                } else {
                    Batch::Other
                };
                contracted.push((dim.clone(), mark));
            }
        }
        out.push(ShapeCheck { factors, contracted, shape: g.shape.clone(), wrt: g.wrt.clone() });
    }
    out
}

/// The explanations as text: numbered equalities with their reasons.
pub fn to_text(explanations: &[Explanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        out.push_str(&format!("d/d{}   (… stands for the terms of dL without d{})\n", e.wrt, e.wrt));
        let rendered: Vec<(String, String)> = e
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
                (format!("{lhs} {}{tail}", l.rhs), l.why.text())
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

/// Text-mode LaTeX for words: TeX's special characters escaped; the
/// ellipsis as `\dots`, which needs no input encoding.
pub fn escape_text(s: &str) -> String {
    s.chars()
        .map(|c| match c {
            '_' | '&' | '%' | '$' | '#' | '{' | '}' => format!("\\{c}"),
            '^' => "\\textasciicircum{}".to_string(),
            '~' => "\\textasciitilde{}".to_string(),
            '\\' => "\\textbackslash{}".to_string(),
            '…' => "\\dots{}".to_string(),
            c => c.to_string(),
        })
        .collect()
}

/// The explanations as LaTeX: one `aligned` block per gradient, in `\[ \]`,
/// each line's reason beside it as math ([`Why::latex`]); for KaTeX and
/// pasting, where [`to_latex_align`] is for a printed page.
pub fn to_latex_blocks(explanations: &[Explanation]) -> String {
    let mut out = String::new();
    for e in explanations {
        out.push_str("\\[\n\\begin{aligned}\n");
        for l in &e.lines {
            let (lhs, rel) = lhs_latex(l);
            let tail = if l.partial && !matches!(l.lhs, Lhs::Gradient(_)) { " + \\dots" } else { "" };
            out.push_str(&format!("{lhs} &{rel} {}{tail} && {} \\\\\n", l.rhs.latex(), l.why.latex()));
        }
        out.push_str("\\end{aligned}\n\\]\n");
    }
    out
}

/// The left-hand side of a line as LaTeX, and the relation.
fn lhs_latex(l: &Line) -> (String, &'static str) {
    let lhs = match &l.lhs {
        Lhs::Loss => "\\mathrm{d}\\mathcal{L}".to_string(),
        Lhs::Gradient(v) => format!("\\frac{{\\partial \\mathcal{{L}}}}{{\\partial {}}}", var_latex(v)),
        Lhs::Same => String::new(),
    };
    let rel = if l.partial && matches!(l.lhs, Lhs::Gradient(_)) { "\\ni" } else { "=" };
    (lhs, rel)
}

/// One explanation for a printed page: an `align*` whose rows are the
/// lines, each preceded by its reason as a sentence (`\shortintertext`), each
/// formula broken into rows of at most `width` units (see
/// [`latex_lines`]) with its brackets sized. The document needs amsmath,
/// mathtools (`\shortintertext`) and, for a long explanation,
/// `\allowdisplaybreaks`.
pub fn to_latex_align(e: &Explanation, width: f64) -> String {
    let lhs: Vec<(String, &str)> = e.lines.iter().map(lhs_latex).collect();
    let lhs_width = lhs.iter().map(|(l, _)| latex_width(l)).fold(0.0, f64::max);
    // The relation, and the indent of a continued formula.
    let budget = (width - lhs_width - 3.0 - CONTINUED).max(width / 3.0);
    let mut out = String::from("\\begin{align*}\n");
    for (l, (lhs, rel)) in e.lines.iter().zip(&lhs) {
        out.push_str(&format!("\\shortintertext{{\\small {}}}\n", l.why.latex_sentence()));
        // `+ \dots` stays with the end of the formula.
        let tail = if l.partial && !matches!(l.lhs, Lhs::Gradient(_)) { " + \\dots" } else { "" };
        let mut rows = latex_lines(&l.rhs.latex(), budget - latex_width(tail));
        if let Some(last) = rows.last_mut() {
            last.push_str(tail);
        }
        for (i, row) in rows.iter().enumerate() {
            if i == 0 {
                out.push_str(&format!("{lhs} &{rel} {row}"));
            } else {
                out.push_str(&format!("&\\qquad {row}"));
            }
            out.push_str(" \\\\\n");
        }
    }
    // No row after the last.
    if out.ends_with(" \\\\\n") {
        out.truncate(out.len() - 4);
        out.push('\n');
    }
    out.push_str("\\end{align*}\n");
    out
}

/// The indent of a formula's continued rows (`\qquad`), in units.
const CONTINUED: f64 = 4.0;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reason_is_text_math_or_a_sentence() {
        let why = Why::words("read off: ")
            .then_formula("tr(A^T dW)", r"\operatorname{tr}(A^{\top} \mathrm{d}W)")
            .then_words(" gives a_b & 100%");
        assert_eq!(why.text(), "read off: tr(A^T dW) gives a_b & 100%");
        assert_eq!(
            why.latex(),
            r"\text{read off: }\operatorname{tr}(A^{\top} \mathrm{d}W)\text{ gives a\_b \& 100\%}"
        );
        assert_eq!(
            why.latex_sentence(),
            r"read off: $\operatorname{tr}(A^{\top} \mathrm{d}W)$ gives a\_b \& 100\%"
        );
    }

    #[test]
    fn words_inside_an_identity_are_words_in_a_sentence() {
        let why = Why::rule(Rule::Entrywise(Func::Relu));
        assert_eq!(
            why.latex_sentence(),
            r"$\mathrm{d}\operatorname{relu}(U) = \operatorname{step}(U) \odot \mathrm{d}U$ (no derivative at the kink $0$)"
        );
        // A `\text` inside an argument stays in the math.
        assert_eq!(inline_math(r"x_{\text{max}} = 1"), r"$x_{\text{max}} = 1$");
    }
}
