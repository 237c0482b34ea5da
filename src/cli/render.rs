//! Derivations and checks as text and as JSON (docs/cli.md, JSON).

use super::command::Emit;

use crate::calculus::Mode;
use crate::explain;
use crate::numeric::{CheckReport, Outcome, NOISE_MARGIN, TOLERANCE};
use crate::plan::PlanOptions;
use crate::syntax::{to_latex, var_latex};
use crate::Derivation;

/// `derive` output: a header, then `d/dV = FORMULA  : SHAPE` per variable;
/// or the JSON document of docs/cli.md, JSON.
pub fn render_derivation(d: &Derivation, json: bool) -> String {
    if json {
        return derivation_json(d, false);
    }
    let expr = &d.typing.program.expr;
    let shape = d.typing.shape();
    let mut out = String::new();
    match &d.mode {
        Mode::Scalar => out.push_str(&format!("L = {expr}\n")),
        Mode::Layer { upstream } => {
            let name = d.typing.program.name.as_deref().unwrap_or("Z");
            out.push_str(&format!("{name} = {expr}  : {shape}\n"));
            out.push_str(&format!("{upstream} = dL/d{name}  : {shape}\n"));
        }
    }
    // A definition kept as a variable (`--wrt H`): what it stands for.
    for v in d.typing.variables() {
        let program = d.typing.program;
        let def = program.definitions.iter().rev().find(|x| v.index.is_none() && x.name == v.name);
        if let (Some(def), Some(s)) = (def, d.typing.var_shape(v)) {
            out.push_str(&format!("{v} = {}  : {s}   (held fixed as an input)\n", def.expr));
        }
    }
    let lines: Vec<(String, String)> = d
        .gradients
        .iter()
        .map(|g| {
            let conditions = &g.differential.conditions;
            let shape = if conditions.is_empty() {
                g.shape.to_string()
            } else {
                let c: Vec<String> = conditions.iter().map(|c| c.to_string()).collect();
                format!("{}   for {}", g.shape, c.join(", "))
            };
            (format!("d/d{} = {}", g.wrt, g.expr), shape)
        })
        .collect();
    // Align the shapes, unless a formula is too long for alignment to help.
    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(100);
    for (line, shape) in lines {
        out.push_str(&format!("{line:<width$}  : {shape}\n"));
    }
    let stopped: Vec<String> =
        d.gradients.iter().filter(|g| !g.saturated).map(|g| format!("d/d{}", g.wrt)).collect();
    if !stopped.is_empty() {
        use crate::simplify::{BUDGET, ITER_LIMIT, MAX_INPUT_NODES, NODE_LIMIT, TIME_LIMIT};
        out.push_str(&format!(
            "note: {}: simplification stopped at a limit (e-graph {NODE_LIMIT} nodes, {ITER_LIMIT} iterations, {} ms per formula, {} s per derivation; no e-graph past {MAX_INPUT_NODES} nodes): right, but maybe not simplest\n",
            stopped.join(", "),
            TIME_LIMIT.as_millis(),
            BUDGET.as_secs_f64(),
        ));
    }
    out
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
/// steps (`steps`: `{expr, latex, why}`, and `shape_check`) when asked for.
pub fn derivation_json(d: &Derivation, steps: bool) -> String {
    if steps {
        pretty(&explain::Explained::new(d))
    } else {
        pretty(d)
    }
}

/// A JSON document as printed: pretty, keys in order, a final newline.
pub fn pretty(value: &impl serde::Serialize) -> String {
    let value = serde_json::to_value(value).expect("results serialize");
    format!(
        "{}
",
        serde_json::to_string_pretty(&value).expect("JSON values serialize")
    )
}

/// `derive --latex`: each gradient as display math, or the derivations.
pub fn derivation_latex(d: &Derivation, steps: bool) -> String {
    if steps {
        return explain::to_latex_blocks(&explain::explain(d));
    }
    d.gradients
        .iter()
        .map(|g| {
            format!(
                "\\[ \\frac{{\\partial \\mathcal{{L}}}}{{\\partial {}}} = {} \\]\n",
                var_latex(&g.wrt),
                to_latex(&g.expr)
            )
        })
        .collect()
}

/// Math as is, or wrapped in a complete amsmath document.
pub fn latex_document(math: &str, standalone: bool) -> String {
    if standalone {
        format!(
            "\\documentclass{{article}}\n\\usepackage{{amsmath,amssymb}}\n\\begin{{document}}\n{math}\\end{{document}}\n"
        )
    } else {
        math.to_string()
    }
}

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
        out.push_str(&format!("d/d{:<width$}  {err}{noisy}  {verdict}\n", c.wrt.to_string()));
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
        emit: Emit,
        /// The emitted function's name.
        name: Option<String>,
    },
}

/// `plan` output, as `output` asks.
pub fn plan(d: &Derivation, options: &PlanOptions, output: PlanOutput) -> crate::Result<String> {
    let expr = &d.typing.program.expr;
    if crate::plan::symbolic_length(d, &options.dims) {
        if let PlanOutput::Code { .. } = output {
            return Err(crate::Error::new(
                crate::ErrorKind::Usage,
                "code is emitted for a numeric plan: give the product's length with --dims (e.g. n=8)",
            ));
        }
        return symbolic_plan(d, output);
    }
    let plan = crate::plan::compile(d, options)?;
    match output {
        PlanOutput::Code { emit, name } => {
            let upstream = match &d.mode {
                Mode::Layer { upstream } => Some(upstream),
                Mode::Scalar => None,
            };
            let header = format!("{expr}");
            return match emit {
                Emit::Pytorch => crate::plan::pytorch(&plan, &header, upstream, name.as_deref()),
                Emit::Numpy => crate::plan::numpy(&plan, &header, name.as_deref()),
                Emit::Jax => crate::plan::jax(&plan, &header, upstream, name.as_deref()),
            };
        }
        PlanOutput::Json => return Ok(pretty(&plan)),
        PlanOutput::Text => {}
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
        let (a, b) = (&a, &b);
        let kind = match &d.mode {
            Mode::Layer { upstream } if *b == format!("{upstream}^T") => {
                " (standard backprop: S forward, H backward)"
            }
            Mode::Layer { upstream } if *a == format!("{upstream}^T") => {
                " (batch first: S from the upstream, H the products of the weights)"
            }
            _ => "",
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
    out.push_str(&format!("multiply-adds: {}\n", plan.total.brief(12)));
    out.push_str(&format!("  the forward value alone: {}\n", plan.forward.brief(12)));
    let separate = match &plan.separate {
        Some(c) => c.brief(12),
        None => format!(
            "a polynomial of more than {} terms (give the sizes with --dims)",
            crate::plan::MAX_COST_TERMS
        ),
    };
    out.push_str(&format!(
        "  the value and each gradient separately: {separate}, in {} matrix products\n",
        plan.separate_products
    ));
    Ok(out)
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
                let from = l.base.as_ref().map(|b| format!(", from {b}")).unwrap_or_default();
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
