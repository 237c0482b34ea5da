//! Derivations and checks as text and as JSON (docs/cli.md, JSON).

use std::io::Write;

use crate::calculus::Mode;
use crate::explain;
use crate::numeric::{CheckReport, Compared, Outcome, NOISE_MARGIN, TOLERANCE};
use crate::plan::PlanOptions;
use crate::shape::Typing;
use crate::syntax::Expr;
use crate::syntax::{index_latex, latex_lines, latex_width, to_latex, var_latex, VarName};
use crate::{Derivation, Gradient};

/// `derive` output: a header, then `d/dV = FORMULA  : SHAPE` per variable
/// (`derive --json`'s document, docs/cli.md, is written separately).
pub fn render_derivation(d: &Derivation) -> String {
    let mut out = Vec::new();
    write_derivation(&mut out, d).expect("a vector takes every write");
    String::from_utf8(out).expect("text is UTF-8")
}

/// [`render_derivation`]'s text, written to `out` as it is formatted (for a
/// chain of a thousand factors, 9 MB that a string would hold beside the
/// derivation).
pub fn write_derivation(out: &mut dyn Write, d: &Derivation) -> std::io::Result<()> {
    let mut out = std::io::BufWriter::new(out);
    // The names of repeated subexpressions first, as definitions of the
    // language: pasted before a formula below, they make it a program.
    if let Some(shared) = &d.shared {
        out.write_all(shared.definitions_text().as_bytes())?;
    }
    write_header(&mut out, &d.typing, &d.mode)?;
    let lines: Vec<(String, String)> =
        d.gradients.iter().enumerate().map(|(k, g)| gradient_line(g, d.printed_gradient(k))).collect();
    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(MAX_ALIGNED);
    write_lines(&mut out, lines, width)?;
    let stopped: Vec<String> =
        d.gradients.iter().filter(|g| !g.saturated).map(|g| format!("d/d{}", g.wrt)).collect();
    write_stopped(&mut out, &stopped)?;
    out.flush()
}

/// The shapes are aligned in a column after the longest formula, or after
/// this many characters, past which alignment no longer helps.
const MAX_ALIGNED: usize = 100;

/// The expression, and the upstream gradient of a layer, with their shapes.
fn write_header(out: &mut dyn Write, typing: &Typing, mode: &Mode) -> std::io::Result<()> {
    let expr = &typing.program.expr;
    let shape = typing.shape();
    match mode {
        Mode::Scalar => writeln!(out, "L = {expr}")?,
        Mode::Layer { upstream } => {
            let name = typing.program.name.as_deref().unwrap_or("Z");
            writeln!(out, "{name} = {expr}  : {shape}")?;
            writeln!(out, "{upstream} = dL/d{name}  : {shape}")?;
        }
    }
    // A definition kept as a variable (`--wrt H`): what it stands for.
    for v in typing.variables() {
        let program = typing.program;
        let def = program.definitions.iter().rev().find(|x| v.index.is_none() && x.name == v.name);
        if let (Some(def), Some(s)) = (def, typing.var_shape(v)) {
            writeln!(out, "{v} = {}  : {s}   (held fixed as an input)", def.expr)?;
        }
    }
    Ok(())
}

/// `d/dV = formula` and the shape column (with the side conditions) of a gradient.
fn gradient_line(g: &Gradient, printed: &Expr) -> (String, String) {
    let conditions = &g.differential.conditions;
    let shape = if conditions.is_empty() {
        g.shape.to_string()
    } else {
        let c: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
        format!("{}   for {}", g.shape, c.join(", "))
    };
    (format!("d/d{} = {}", g.wrt, printed), shape)
}

fn write_lines(out: &mut dyn Write, lines: Vec<(String, String)>, width: usize) -> std::io::Result<()> {
    for (line, shape) in lines {
        writeln!(out, "{line:<width$}  : {shape}")?;
    }
    Ok(())
}

/// The note naming the gradients whose simplification stopped at a limit.
fn write_stopped(out: &mut dyn Write, stopped: &[String]) -> std::io::Result<()> {
    if !stopped.is_empty() {
        use crate::simplify::{BUDGET, ITER_LIMIT, MAX_INPUT_NODES, NODE_LIMIT, TIME_LIMIT};
        writeln!(
            out,
            "note: {}: simplification stopped at a limit (e-graph {NODE_LIMIT} nodes, {ITER_LIMIT} iterations, {} ms per formula, {} s per derivation; no e-graph past {MAX_INPUT_NODES} nodes): right, but maybe not simplest",
            stopped.join(", "),
            TIME_LIMIT.as_millis(),
            BUDGET.as_secs_f64(),
        )?;
    }
    Ok(())
}

/// [`write_derivation`]'s text for a derivation handed over part by part
/// ([`crate::derive_streaming`]): each line written once the width of the
/// shape column is known, which is as soon as one line reaches it.
pub struct TextSink<'o> {
    out: std::io::BufWriter<&'o mut dyn Write>,
    /// The lines not yet written, while the column's width is unknown.
    pending: Vec<(String, String)>,
    width: Option<usize>,
    stopped: Vec<String>,
}

impl<'o> TextSink<'o> {
    /// Writing to `out`.
    pub fn new(out: &'o mut dyn Write) -> TextSink<'o> {
        TextSink { out: std::io::BufWriter::new(out), pending: Vec::new(), width: None, stopped: Vec::new() }
    }

    /// The lines still held and the note, once every gradient was given.
    pub fn finish(mut self) -> std::io::Result<()> {
        let width = self.pending.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(MAX_ALIGNED);
        write_lines(&mut self.out, std::mem::take(&mut self.pending), self.width.unwrap_or(width))?;
        write_stopped(&mut self.out, &self.stopped)?;
        self.out.flush()
    }
}

impl<'p> crate::GradientSink<'p> for TextSink<'_> {
    fn begin(&mut self, typing: &Typing<'p>, mode: &Mode) -> crate::Result<()> {
        write_header(&mut self.out, typing, mode).map_err(io_error)
    }

    fn gradient(&mut self, _: &Typing<'p>, g: Gradient) -> crate::Result<()> {
        if !g.saturated {
            self.stopped.push(format!("d/d{}", g.wrt));
        }
        let line = gradient_line(&g, &g.expr);
        drop(g);
        if self.width.is_none() && line.0.chars().count() >= MAX_ALIGNED {
            self.width = Some(MAX_ALIGNED);
        }
        self.pending.push(line);
        if let Some(width) = self.width {
            write_lines(&mut self.out, std::mem::take(&mut self.pending), width).map_err(io_error)?;
        }
        Ok(())
    }
}

/// [`write_derivation_json`]'s document (without steps) for a derivation
/// handed over part by part ([`crate::derive_streaming`]): the same bytes,
/// each gradient written as it comes. Such a derivation has no shared names.
pub struct JsonSink<'o> {
    out: std::io::BufWriter<&'o mut dyn Write>,
    /// What follows the gradients: `saturated` (of them all), `shape` and
    /// `upstream` (as JSON, from the program).
    saturated: bool,
    shape: String,
    upstream: String,
    count: usize,
    /// A gradient's document, reused from one to the next.
    buffer: Vec<u8>,
}

impl<'o> JsonSink<'o> {
    /// Writing to `out`.
    pub fn new(out: &'o mut dyn Write) -> JsonSink<'o> {
        JsonSink {
            out: std::io::BufWriter::new(out),
            saturated: true,
            shape: String::new(),
            upstream: String::new(),
            count: 0,
            buffer: Vec::new(),
        }
    }

    /// The document's end, once every gradient was given.
    pub fn finish(mut self) -> std::io::Result<()> {
        // The keys in the order of every document (a `serde_json::Value`'s,
        // sorted): `expr`, `gradients` (begun), `saturated`, `shape`, `upstream`.
        let close = if self.count == 0 { "]" } else { "\n  ]" };
        write!(self.out, "{close},\n  \"saturated\": {},\n", self.saturated)?;
        write!(self.out, "  \"shape\": {},\n  \"upstream\": {}\n}}\n", self.shape, self.upstream)?;
        self.out.flush()
    }
}

impl<'p> crate::GradientSink<'p> for JsonSink<'_> {
    fn begin(&mut self, typing: &Typing<'p>, mode: &Mode) -> crate::Result<()> {
        self.shape = indented(&typing.shape(), 1);
        self.upstream = indented(
            &match mode {
                Mode::Scalar => None,
                Mode::Layer { upstream } => Some(upstream),
            },
            1,
        );
        let expr = indented(&typing.program.expr.to_string(), 1);
        write!(self.out, "{{\n  \"expr\": {expr},\n  \"gradients\": [").map_err(io_error)
    }

    fn gradient(&mut self, _: &Typing<'p>, g: Gradient) -> crate::Result<()> {
        self.saturated &= g.saturated;
        let sep = if self.count == 0 { "\n    " } else { ",\n    " };
        self.count += 1;
        self.out.write_all(sep.as_bytes()).map_err(io_error)?;
        // Directly, not through a `Value` (its keys are in the documents'
        // order already); each line two levels in (a JSON string holds no raw
        // line break: each is the layout's).
        self.buffer.clear();
        serde_json::to_writer_pretty(&mut self.buffer, &g).expect("results serialize");
        drop(g);
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', &self.buffer) {
            self.out.write_all(&self.buffer[start..end]).map_err(io_error)?;
            self.out.write_all(b"\n    ").map_err(io_error)?;
            start = end + 1;
        }
        self.out.write_all(&self.buffer[start..]).map_err(io_error)?;
        Ok(())
    }
}

/// `value` as [`pretty`] writes it at `depth` levels of nesting (each two
/// spaces; a JSON string holds no raw line break, so every one is the layout's).
fn indented(value: &impl serde::Serialize, depth: usize) -> String {
    let value = serde_json::to_value(value).expect("results serialize");
    let text = serde_json::to_string_pretty(&value).expect("results serialize");
    text.replace('\n', &format!("\n{}", "  ".repeat(depth)))
}

fn io_error(e: std::io::Error) -> crate::Error {
    crate::Error::new(crate::ErrorKind::Usage, format!("cannot write output: {e}"))
}

/// The derivation steps as text (empty unless asked for).
pub fn steps_text(d: &Derivation, steps: bool) -> String {
    if steps {
        format!("\n{}", explain::to_text(&explain::explain(d)))
    } else {
        String::new()
    }
}

/// `derive --json`: the [`Derivation`] as data, with each gradient's
/// steps (`steps`: `{expr, latex, why, why_latex}`, and `shape_check`) when asked for.
/// Written to `out` as it is formatted: for a chain of a thousand factors
/// the document is 26 MB, which a string would hold twice over beside the
/// derivation.
pub fn write_derivation_json(out: &mut dyn Write, d: &Derivation, steps: bool) -> std::io::Result<()> {
    if steps {
        write_pretty(out, &explain::Explained::new(d))
    } else {
        write_pretty(out, d)
    }
}

/// A JSON document as printed: pretty, keys in order, a final newline.
pub fn pretty(value: &impl serde::Serialize) -> String {
    let mut out = Vec::new();
    write_pretty(&mut out, value).expect("a vector takes every write");
    String::from_utf8(out).expect("JSON is UTF-8")
}

/// [`pretty`], written to `out` through a buffer as it is formatted.
pub fn write_pretty(out: &mut dyn Write, value: &impl serde::Serialize) -> std::io::Result<()> {
    // (Through a `Value`, whose maps keep their keys in order.)
    let value = serde_json::to_value(value).expect("results serialize");
    let mut out = std::io::BufWriter::new(out);
    serde_json::to_writer_pretty(&mut out, &value)?;
    out.write_all(b"\n")?;
    out.flush()
}

/// `derive --latex`: each gradient as display math, or the derivations.
pub fn derivation_latex(d: &Derivation, steps: bool) -> String {
    if steps {
        return explain::to_latex_blocks(&explain::explain(d));
    }
    let mut out: String = d
        .gradients
        .iter()
        .enumerate()
        .map(|(k, g)| {
            format!(
                "\\[ \\frac{{\\partial \\mathcal{{L}}}}{{\\partial {}}} = {} \\]\n",
                var_latex(&g.wrt),
                to_latex(d.printed_gradient(k))
            )
        })
        .collect();
    if let Some(shared) = &d.shared {
        let rows: Vec<String> = shared
            .definitions
            .iter()
            .enumerate()
            .map(|(i, n)| {
                let lead = if i == 0 { "\\text{where } " } else { "" };
                format!("{lead}{} &= {}", var_latex(&VarName::plain(&n.name)), to_latex(&n.expr))
            })
            .collect();
        out.push_str(&format!("\\[ \\begin{{aligned}} {} \\end{{aligned}} \\]\n", rows.join(" \\\\ ")));
    }
    out
}

/// The preamble of every standalone document: an A4 page with 2.5 cm
/// margins, amsmath and mathtools, booktabs for tables, display math
/// that may break across pages.
pub const PREAMBLE: &str = "\\documentclass[11pt]{article}
\\usepackage[a4paper,margin=2.5cm]{geometry}
\\usepackage{amsmath,amssymb,mathtools}
\\usepackage{booktabs}
\\usepackage{microtype}
\\allowdisplaybreaks
";

/// The width of [`PREAMBLE`]'s text block (160 mm at 11 pt), in the
/// units of [`latex_lines`](crate::syntax::latex_lines), with a margin
/// for the estimate's error.
pub const TEXT_WIDTH: f64 = 70.0;

/// Math as is, or wrapped in a complete document ([`PREAMBLE`]).
pub fn latex_document(math: &str, standalone: bool) -> String {
    if standalone {
        format!("{PREAMBLE}\\begin{{document}}\n{math}\\end{{document}}\n")
    } else {
        math.to_string()
    }
}

/// `derive --latex --standalone`: a document, the program first (its
/// expression, the shapes of its variables), then per gradient a heading,
/// its derivation when `steps` are asked for, and its shape check.
pub fn derivation_document(d: &Derivation, steps: bool) -> String {
    let mut out = String::new();
    out.push_str(&program_latex(d));
    let explanations = if steps { explain::explain(d) } else { vec![] };
    // The derivations write their formulas out; the bare gradients use the names.
    let shared = if steps { None } else { d.shared.as_ref() };
    if let Some(shared) = shared {
        out.push_str("\n\\subsection*{Names for repeated subexpressions}\n");
        let rows: Vec<String> = shared
            .definitions
            .iter()
            .flat_map(|n| aligned_rows(&var_latex(&VarName::plain(&n.name)), &to_latex(&n.expr)))
            .collect();
        out.push_str(&format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", rows.join(" \\\\\n")));
    }
    for (k, g) in d.gradients.iter().enumerate() {
        let v = var_latex(&g.wrt);
        out.push_str(&format!("\n\\subsection*{{The gradient with respect to ${v}$}}\n"));
        if !g.differential.conditions.is_empty() {
            let c: Vec<String> = g
                .differential
                .conditions
                .iter()
                .map(|c| {
                    format!(
                        "${} \\le {} \\le {}$",
                        index_latex(&c.lo),
                        index_latex(&c.at),
                        index_latex(&c.hi)
                    )
                })
                .collect();
            out.push_str(&format!("It holds for {}.\n", c.join(" and ")));
        }
        match explanations.get(k) {
            Some(e) => {
                out.push_str(&explain::to_latex_align(e, TEXT_WIDTH));
                out.push_str(&shape_checks_latex(e));
            }
            None => {
                let lhs = format!("\\frac{{\\partial \\mathcal{{L}}}}{{\\partial {v}}}");
                out.push_str(&display_latex(&lhs, &to_latex(d.printed_gradient(k))));
            }
        }
        if !g.saturated {
            out.push_str(
                "The simplification stopped at a limit: the gradient is right, but maybe not simplest.\n",
            );
        }
    }
    latex_document(&out, true)
}

/// `lhs = formula` as an `align*`, the formula broken to fit the page.
pub(super) fn display_latex(lhs: &str, formula: &str) -> String {
    format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", aligned_rows(lhs, formula).join(" \\\\\n"))
}

/// The rows of `lhs &= formula` in an `align*`, the formula broken to fit the page.
pub(super) fn aligned_rows(lhs: &str, formula: &str) -> Vec<String> {
    let budget = TEXT_WIDTH - latex_width(lhs) - 7.0;
    let rows = latex_lines(formula, budget.max(TEXT_WIDTH / 3.0));
    rows.iter()
        .enumerate()
        .map(|(i, r)| if i == 0 { format!("{lhs} &= {r}") } else { format!("&\\qquad {r}") })
        .collect()
}

/// The program as the opening of a document: its expression, the shapes,
/// the upstream gradient of a layer, definitions held fixed.
fn program_latex(d: &Derivation) -> String {
    let program = d.typing.program;
    let mut out = String::new();
    let shapes = shapes_latex(d);
    match &d.mode {
        Mode::Scalar => {
            out.push_str("\\section*{The gradients of a scalar function}\n");
            out.push_str(&display_latex("\\mathcal{L}", &to_latex(&program.expr)));
            if !shapes.is_empty() {
                out.push_str(&format!("with {shapes}.\n"));
            }
        }
        Mode::Layer { upstream } => {
            let name = program.name.as_deref().unwrap_or("Z");
            let z = to_latex(&crate::syntax::Expr::var(name));
            out.push_str(&format!("\\section*{{Backpropagation through ${z}$}}\n"));
            out.push_str(&display_latex(&z, &to_latex(&program.expr)));
            let upstream = var_latex(upstream);
            let with = if shapes.is_empty() { String::new() } else { format!(" with {shapes}") };
            out.push_str(&format!(
                "is a layer{with}, inside some loss $\\mathcal{{L}}$; the upstream gradient is ${upstream} = \\partial \\mathcal{{L}} / \\partial {z} \\in \\mathbb{{R}}^{{{}}}$.\n",
                explain::shape_latex(&d.typing.shape())
            ));
        }
    }
    for v in d.typing.variables() {
        let def = program.definitions.iter().rev().find(|x| v.index.is_none() && x.name == v.name);
        if let Some(def) = def {
            out.push_str(&format!(
                "The definition ${} = {}$ is held fixed as an input.\n",
                var_latex(v),
                to_latex(&def.expr)
            ));
        }
    }
    out
}

/// The shapes of a derivation's variables as a phrase of inline math,
/// families first (`$W_{i} \in \mathbb{R}^{d_{i-1} \times d_{i}}$, … and
/// $X \in \mathbb{R}^{6 \times 2}$`); empty when there are none.
pub fn shapes_latex(d: &Derivation) -> String {
    use crate::syntax::{DimSpec, ShapeSpec, VarName};
    let dim = |s: &DimSpec| match s {
        DimSpec::Const(n) => n.to_string(),
        DimSpec::Symbol(s) => var_latex(&VarName::plain(s)),
        DimSpec::Indexed(s, i) => var_latex(&VarName { name: s.clone(), index: Some(i.clone()) }),
    };
    let mut shapes: Vec<String> = vec![];
    for family in d.typing.families() {
        let declared = d.typing.program.declarations.iter().find(|x| x.binder.is_some() && x.name == *family);
        if let Some(decl) = declared {
            let binder = decl.binder.as_deref().expect("a family");
            let member = VarName { name: family.clone(), index: Some(crate::syntax::Index::symbol(binder)) };
            let shape = match &decl.shape {
                ShapeSpec::Scalar => "1 \\times 1".to_string(),
                ShapeSpec::Vector(n) => format!("{} \\times 1", dim(n)),
                ShapeSpec::Matrix(m, n) => format!("{} \\times {}", dim(m), dim(n)),
            };
            shapes.push(format!("${} \\in \\mathbb{{R}}^{{{shape}}}$", var_latex(&member)));
        }
    }
    for v in d.typing.variables() {
        if let Some(s) = d.typing.var_shape(v) {
            shapes.push(format!("${} \\in \\mathbb{{R}}^{{{}}}$", var_latex(v), explain::shape_latex(&s)));
        }
    }
    match shapes.len() {
        0 => String::new(),
        1 => shapes.remove(0),
        n => format!("{} and {}", shapes[..n - 1].join(", "), shapes[n - 1]),
    }
}

/// The shape checks of an explanation: per product term, the factors
/// with their shapes below them, and what is contracted; a factor too wide
/// for that on a row of its own, with its shape beside it.
fn shape_checks_latex(e: &explain::Explanation) -> String {
    let mut out = String::new();
    let budget = TEXT_WIDTH - CONTINUED_ROW;
    for check in &e.shape_check {
        let contracted = check.contracted_latex();
        let contracted =
            if contracted.is_empty() { String::new() } else { format!(", contracting ${contracted}$") };
        let result = format!("\\mathbb{{R}}^{{{}}}", explain::shape_latex(&check.shape));
        let wide = check.factors.iter().any(|(f, _)| latex_width(&to_latex(f)) > budget / 2.0);
        if !wide {
            out.push_str(&format!("Shape check{contracted}:\n"));
            let rows = latex_lines(&check.latex(), budget);
            let rows: Vec<String> = rows
                .iter()
                .enumerate()
                .map(|(i, r)| if i == 0 { r.clone() } else { format!("\\qquad {r}") })
                .collect();
            out.push_str(&format!("\\begin{{gather*}}\n{}\n\\end{{gather*}}\n", rows.join(" \\\\\n")));
            continue;
        }
        out.push_str(&format!(
            "Shape check{contracted}: the product of these factors is in ${result}$, the shape of ${}$.\n",
            var_latex(&check.wrt)
        ));
        let mut rows = vec![];
        for (f, s) in &check.factors {
            let shape = format!(" \\in \\mathbb{{R}}^{{{}}}", explain::shape_latex(s));
            let lines = latex_lines(&format!("{}{shape}", to_latex(f)), budget);
            for (i, l) in lines.iter().enumerate() {
                rows.push(if i == 0 { format!("& {l}") } else { format!("&\\qquad {l}") });
            }
        }
        out.push_str(&format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", rows.join(" \\\\\n")));
    }
    out
}

/// The indent of a continued row, in units.
const CONTINUED_ROW: f64 = 4.0;

/// `verify` output: the verdict, how it was reached, and the evidence.
pub fn verdict(v: &crate::verify::Verdict, json: bool) -> String {
    if json {
        return pretty(v);
    }
    let mut out = format!("{} ({}): {}\n", v.word(), v.method.name(), v.detail);
    if let (Some(e), crate::verify::Method::Symbolic) = (&v.evidence, v.method) {
        out.push_str(&format!(
            "  and numerically: {} of {} random instances agree (largest relative difference {:.1e})\n",
            e.decided, e.instances, e.worst_rel_err
        ));
    }
    if v.outcome == Outcome::Undecided {
        out.push_str("  UNDECIDED: no instance could tell the claim from the gradient; declare the domains the expression lives on (`X : 3x3 positive`, --domain X=positive) or rewrite the claim\n");
    }
    out
}

/// `check` output: the sizes drawn, one line per gradient, a verdict.
pub fn render_check(r: &CheckReport, json: bool) -> String {
    if json {
        return pretty(r);
    }
    let mut out = String::new();
    let sizes: Vec<String> = r.sizes.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let sizes = if sizes.is_empty() { "all dimensions fixed".to_string() } else { sizes.join(" ") };
    out.push_str(&format!("sizes: {sizes}  (seed {})\n", r.seed));
    if !r.indices.is_empty() {
        let i: Vec<String> = r.indices.iter().map(|(k, v)| format!("{k}={v}")).collect();
        out.push_str(&format!("indices: {}\n", i.join(" ")));
    }
    out.push_str(&domains_line(&r.domains));
    if r.redraws > 0 {
        out.push_str(&format!(
            "redrew the instance {} time(s): it was not finite, underflowed to a zero gradient, or was ill-conditioned (cond > 1e8 under an inverse, an entry near 0 under log, sqrt or a division, near a kink of relu, abs, sign, step, max or min, or near the edge of the domain of tan, arcsin, arccos or log1p)\n",
            r.redraws
        ));
    }
    out.push_str(&format!("compared on {} random instances of these sizes\n", r.instances));
    // Aligned up to 100 characters, as `derive` aligns (std's formatter
    // panics on a width past u16::MAX, and a name can be longer).
    let width = r.results.iter().map(|c| c.wrt.to_string().chars().count()).max().unwrap_or(0).min(100);
    for c in &r.results {
        let verdict = match c.outcome {
            Outcome::Agree => "ok".to_string(),
            Outcome::Differ => "MISMATCH".to_string(),
            Outcome::Undecided => format!(
                "UNDECIDED ({}; try another --seed)",
                c.reason.as_deref().unwrap_or("finite differences cannot tell")
            ),
        };
        let err = match c.max_rel_err {
            Some(e) => format!("max rel err {e:.1e}"),
            None => "not measured".to_string(),
        };
        // The differences' own error, where it is what decided.
        let noisy = match c.fd_error {
            Some(e) if e > TOLERANCE / NOISE_MARGIN => format!(" (finite differences ±{e:.1e})"),
            _ => String::new(),
        };
        // Entry by entry is the default; directions are named.
        let along = match c.compared {
            Compared::Entries => String::new(),
            Compared::Directions(k) => format!(" along {k} random directions"),
        };
        out.push_str(&format!("d/d{:<width$}  {err}{along}{noisy}  {verdict}\n", c.wrt.to_string()));
    }
    let bad = r.results.iter().filter(|c| !c.ok()).count();
    if bad == 0 {
        out.push_str(&format!(
            "ok: {} gradient(s) agree with finite differences (tolerance {TOLERANCE:.0e})\n",
            r.results.len()
        ));
    } else {
        let undecided = r.results.iter().filter(|c| c.undecided()).count();
        let why = if undecided > 0 { format!(" ({undecided} undecided)") } else { String::new() };
        out.push_str(&format!(
            "FAILED: {bad} of {} gradient(s) do not agree with finite differences{why} (tolerance {TOLERANCE:.0e})\n",
            r.results.len()
        ));
    }
    out
}

/// The domains variables were drawn from, as a line of a report.
fn domains_line(
    domains: &std::collections::BTreeMap<crate::syntax::VarName, crate::numeric::Domain>,
) -> String {
    let d: Vec<String> = domains.iter().map(|(v, d)| format!("{v} {}", d.name())).collect();
    if d.is_empty() {
        return "domains: every variable of either sign (entries uniform in [-s, s], the scale s varying by instance)\n"
            .to_string();
    }
    format!(
        "domains: {}  (the others: entries uniform in [-s, s], the scale s varying by instance)\n",
        d.join(", ")
    )
}

/// What `plan` prints.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PlanOutput {
    /// The steps with shapes and multiply-adds, the outputs, the totals.
    Text,
    /// The plan as data (docs/json.md).
    Json,
    /// The plan as code, its function named `name` (`--name`) or by default.
    Code {
        /// The language.
        emit: crate::plan::Language,
        /// The emitted function's name.
        name: Option<String>,
    },
}

/// `plan` output, as `output` asks.
pub fn plan(d: &Derivation, options: &PlanOptions, output: PlanOutput) -> crate::Result<String> {
    let expr = &d.typing.program.expr;
    if let PlanOutput::Code { emit, name } = &output {
        return crate::plan::code(d, options, *emit, name.as_deref());
    }
    if crate::plan::symbolic_length(d, &options.dims) {
        return symbolic_plan(d, output);
    }
    let plan = crate::plan::compile(d, options)?;
    if output == PlanOutput::Json {
        return Ok(pretty(&plan));
    }
    let mut out = String::new();
    let what = match &d.mode {
        Mode::Scalar => format!("L = {expr}"),
        Mode::Layer { upstream } => format!("{expr}, upstream {upstream}"),
    };
    out.push_str(&format!(
        "plan for {what}: the value and {} gradient(s) in {} steps, {} matrix products\n",
        plan.outputs.len() - 1,
        plan.steps.len(),
        plan.products()
    ));
    for s in &plan.sweeps {
        let (cycle, a, b) = plan.cycle_text(s);
        let kind = match sweep_order(d, &plan, s) {
            Some(SweepOrder::Backprop) => " (standard backprop: S forward, H backward)",
            Some(SweepOrder::BatchFirst) => {
                " (batch first: S from the upstream, H the products of the weights)"
            }
            None => "",
        };
        out.push_str(&format!(
            "two sweeps around the cycle {}, meeting between {a} and {b}{kind}\n",
            cycle.join(" ")
        ));
        let choice_mattered = s.prices.iter().any(|p| (p - s.prices[s.cut]).abs() > 1e-9 * p.abs());
        if choice_mattered && plan.total.as_number().is_none() && !plan.total.is_overflow() {
            out.push_str(&format!(
                "  (the cut is chosen by price; sizes not given were priced as {}: give them with --dims)\n",
                options.default_size
            ));
        }
    }
    out.push_str(&plan.to_string());
    // Outputs that are not a step of their own name (`d/dX = H2^T`, `d/dA = 0`).
    for o in &plan.outputs {
        let label = crate::plan::Plan::output_label(o);
        let text = plan.operand_text(o.operand);
        if !o.named {
            out.push_str(&format!("  {label} = {text}   {}\n", o.shape));
        }
    }
    out.push_str(&format!("multiply-adds: {}\n", readable(&plan.total)));
    out.push_str(&format!("  the forward value alone: {}\n", readable(&plan.forward)));
    let separate = match &plan.separate {
        Some(c) => readable(c),
        None => format!(
            "a polynomial of more than {} terms (give the sizes with --dims)",
            crate::plan::MAX_COST_TERMS
        ),
    };
    out.push_str(&format!(
        "  the value and each gradient separately: {separate}, in {} matrix products\n",
        plan.separate_products
    ));
    if let Some(peak) = plan.peak_entries() {
        // Each value freed after its last read, as the evaluator and the NumPy code do.
        out.push_str(&format!(
            "intermediates at their peak: {peak} entries ({} in float64)\n",
            bytes(peak.saturating_mul(8))
        ));
    }
    Ok(out)
}

/// A number of bytes as a reader takes it in: `248 B`, `12.0 KiB`,
/// `64.1 MiB`, `1.01 GiB`.
fn bytes(n: u128) -> String {
    let x = n as f64;
    match n {
        0..1024 => format!("{n} B"),
        1024..1_048_576 => format!("{:.1} KiB", x / 1024.0),
        1_048_576..1_073_741_824 => format!("{:.1} MiB", x / 1_048_576.0),
        _ => format!("{:.2} GiB", x / 1_073_741_824.0),
    }
}

/// A count of multiply-adds as printed: its polynomial (up to 12 terms), and
/// a number of a million or more also to three digits, `212600881152
/// (2.13e11)`, which reads at a glance; the exact count stays for checking.
fn readable(cost: &crate::plan::Cost) -> String {
    match cost.as_number() {
        Some(n) if n >= 1_000_000 => format!("{n} ({:.2e})", n as f64),
        _ => cost.brief(12),
    }
}

/// The order of a layer's two sweeps, when it is one with a name.
pub enum SweepOrder {
    /// They meet just before the upstream gradient: S forward, H backward.
    Backprop,
    /// They meet just after it: S from the upstream, H the weights' products.
    BatchFirst,
}

/// Which named order a family's sweeps take, if any.
pub fn sweep_order(d: &Derivation, plan: &crate::plan::Plan, s: &crate::plan::Sweeps) -> Option<SweepOrder> {
    let Mode::Layer { upstream } = &d.mode else { return None };
    let (_, a, b) = plan.cycle_text(s);
    let upstream_t = format!("{upstream}^T");
    if b == upstream_t {
        Some(SweepOrder::Backprop)
    } else if a == upstream_t {
        Some(SweepOrder::BatchFirst)
    } else {
        None
    }
}

/// `plan` for a chain of symbolic length: the recurrences of each member's
/// gradient and their cost per index.
fn symbolic_plan(d: &Derivation, output: PlanOutput) -> crate::Result<String> {
    let plan = crate::plan::compile_symbolic(d)?;
    if output == PlanOutput::Json {
        return Ok(pretty(&plan));
    }
    let expr = &plan.expr;
    let mut out = String::new();
    for r in &plan.gradients {
        out.push_str(&format!(
            "plan for {expr}, every {} in {}..{}: two sweeps, one product each per {}, and one product per gradient\n",
            r.index, r.lo, r.hi, r.index
        ));
        let rows: Vec<(String, String, String, String)> = r
            .lines
            .iter()
            .map(|l| {
                let from = l.base.as_ref().map(|(v, e)| format!(", from {v} = {e}")).unwrap_or_default();
                (
                    format!("{} = {}", l.out, l.formula),
                    format!("for {}{from}", l.range),
                    l.shape.to_string(),
                    l.madds.to_string(),
                )
            })
            .collect();
        // Aligned up to 100 characters, as the numeric plan's table.
        let w0 = rows.iter().map(|r| r.0.chars().count()).max().unwrap_or(0).min(100);
        let w1 = rows.iter().map(|r| r.1.chars().count()).max().unwrap_or(0).min(100);
        let w2 = rows.iter().map(|r| r.2.chars().count()).max().unwrap_or(0).min(100);
        for (a, b, c, m) in rows {
            out.push_str(&format!("  {a:<w0$}   {b:<w1$}   {c:<w2$}   {m}\n"));
        }
        out.push_str(&format!(
            "multiply-adds: sum_{{{}={}..{}}} {}   (each gradient on its own: {})\n",
            r.index, r.lo, r.hi, r.per_index, r.separate
        ));
    }
    out.push_str("for numbers, give the length: --dims n=8 (and sizes, d[0]=64,...)\n");
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::GradientSink;

    /// Derivations of every kind a sink may be given: layer and scalar, side
    /// conditions, a definition kept as a variable, short and long lines,
    /// a gradient whose simplification stopped, none at all.
    fn derivations() -> Vec<(&'static str, Vec<&'static str>)> {
        vec![
            ("W1*W2*X", vec![]),
            ("x : n; A : n x n; x^T*A*x", vec![]),
            ("prod(W[i], i=1..n) * X", vec![]),
            ("H = tanh(W*X); V*H", vec!["H", "V"]),
            ("V*X + W1*W2*W3*W4*W5*W6*W7*W8*W9*W10*W11*W12*W13*W14*W15*W16*W17*W18*W19*W20*X", vec![]),
            ("W1*W2*W3*W4*W5*W6*W7*W8*W9*W10*W11*W12*W13*W14*W15*W16*W17*W18*W19*W20*X + V*X", vec![]),
        ]
    }

    /// The sinks write what the whole derivation's renderers write, byte
    /// for byte, for a derivation without shared names (the only kind
    /// streamed).
    #[test]
    fn sinks_write_what_the_whole_derivation_renders() {
        for (src, wrt) in derivations() {
            let wrt: Vec<VarName> = wrt.iter().map(|w| crate::syntax::parse_var(w).unwrap()).collect();
            let program = crate::parse(src).unwrap().with_definitions_kept(&wrt);
            let options = crate::DeriveOptions { wrt, ..Default::default() };
            let whole = crate::derive(&program, &options).unwrap();
            let mut variants = vec![whole.clone()];
            let mut stopped = whole.clone();
            stopped.gradients[0].saturated = false;
            variants.push(stopped);
            let mut none = whole.clone();
            none.gradients.clear();
            variants.push(none);
            for mut d in variants {
                d.shared = None;
                let (mut text, mut json) = (Vec::new(), Vec::new());
                let mut sink = TextSink::new(&mut text);
                sink.begin(&d.typing, &d.mode).unwrap();
                for g in &d.gradients {
                    sink.gradient(&d.typing, g.clone()).unwrap();
                }
                sink.finish().unwrap();
                assert_eq!(String::from_utf8(text).unwrap(), render_derivation(&d), "{src}");
                let mut sink = JsonSink::new(&mut json);
                sink.begin(&d.typing, &d.mode).unwrap();
                for g in &d.gradients {
                    sink.gradient(&d.typing, g.clone()).unwrap();
                }
                sink.finish().unwrap();
                let mut want = Vec::new();
                write_derivation_json(&mut want, &d, false).unwrap();
                assert_eq!(String::from_utf8(json).unwrap(), String::from_utf8(want).unwrap(), "{src}");
            }
        }
    }
}
