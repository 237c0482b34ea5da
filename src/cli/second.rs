//! The second-order commands' output: `hessian` and `jacobian` as text,
//! LaTeX and JSON, with the steps of both derivations; `check --order 2`
//! and `check --jacobian`, `verify --order 2` and `verify --jacobian`, as
//! the engine judges them ([`crate::hessian::check`], [`crate::hessian::verify`]).

use serde_json::{json, Value};

use super::render::{pretty, render_check};
use crate::error::{Error, ErrorKind, Result};
use crate::explain;
use crate::hessian::{value_name, Compared, Kind, SecondOrder, SecondVerdict};
use crate::numeric::CheckOptions;
use crate::syntax::{self, to_latex, var_latex, Program, VarName};
use crate::{derive, Control, Steps};

/// How the output is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    /// Lines of text.
    Text,
    /// LaTeX display math.
    Latex,
    /// A JSON document.
    Json,
}

/// The second-order derivative of `program`: the Hessian or mixed block
/// (`wrt` one or two variables) of a scalar, or the Jacobian.
pub fn derive_second(
    program: &Program,
    kind: Kind,
    wrt: &[VarName],
    control: &Control,
) -> Result<SecondOrder> {
    match kind {
        Kind::Jacobian => match wrt {
            [x] => crate::hessian::jacobian(program, x, control),
            _ => Err(Error::new(
                ErrorKind::Usage,
                "a Jacobian is taken with respect to one variable (--wrt X)",
            )),
        },
        _ => crate::hessian::hessian(program, wrt, control),
    }
}

/// `hessian` / `jacobian` output.
pub fn render(program: &Program, s: &SecondOrder, steps: bool, format: Format) -> Result<String> {
    let z = value_name(program);
    match format {
        Format::Json => json_doc(program, s, steps),
        Format::Latex => latex(program, s, steps, &z),
        Format::Text => text(program, s, steps, &z),
    }
}

fn text(program: &Program, s: &SecondOrder, steps: bool, z: &str) -> Result<String> {
    let mut lines: Vec<(String, String)> = vec![];
    let typing = crate::shape::infer(program)?;
    let mut out = match s.kind {
        Kind::Jacobian => format!("{z} = {}  : {}\n", program.expr, typing.shape()),
        _ => format!("L = {}\n", program.expr),
    };
    if s.kind != Kind::Jacobian {
        lines.push((format!("d/d{} = {}", s.along, s.first), s.direction_shape.to_string()));
    }
    lines.push((format!("{} = {}", s.map_name(z), s.map), s.map_shape.to_string()));
    if let (Some(m), Some(shape)) = (&s.matrix, &s.matrix_shape) {
        lines.push((format!("{} = {m}", s.matrix_name(z)), shape.to_string()));
    }
    if let (Some(k), Some(shape)) = (&s.vec_form, &s.vec_shape) {
        lines.push((format!("{} = {k}", s.vec_name(z)), crate::hessian::vec_shape_text(shape)));
    }
    let width = lines.iter().map(|(l, _)| l.chars().count()).max().unwrap_or(0).min(100);
    for (line, shape) in lines {
        out.push_str(&format!("{line:<width$}  : {shape}\n"));
    }
    if let Some(why) = &s.no_matrix {
        out.push_str(&format!("note: no matrix form, the map above is the result: {why}\n"));
    }
    if let Some(why) = &s.no_vec_form {
        out.push_str(&format!("note: no vec form, the map above is the result: {why}\n"));
    }
    if has_kinks(s) {
        out.push_str(&format!(
            "note: {} has step or sign (of relu, abs, max, min, norm1, ...), whose derivative is 0 away from its jump at 0 and undefined there: the second derivative holds where no argument of step or sign is 0\n",
            match s.kind { Kind::Jacobian => "the first derivative".to_string(), _ => format!("d/d{}", s.along) }
        ));
    }
    if !s.saturated {
        out.push_str("note: simplification stopped at a limit: right, but maybe not simplest\n");
    }
    if steps {
        let (first, second) = derivations(program, s)?;
        out.push_str(&format!("\n{}\n", first_heading(s)));
        out.push_str(&explain::to_text(&explain::explain(&first)));
        if let Some(second) = second {
            out.push_str(&format!("\n{}\n", second_heading(s)));
            out.push_str(&explain::to_text(&explain::explain(&second)));
        }
        if let Some(m) = &s.matrix {
            out.push_str(&format!("\n{}\n", read_off_line(s, m, z)));
        }
    }
    Ok(out)
}

/// Whether the first derivative jumps (step, sign): its derivative is 0
/// almost everywhere, and the second derivative holds off the jumps.
fn has_kinks(s: &SecondOrder) -> bool {
    s.first.any(|e| matches!(e.kind, syntax::ExprKind::Call(syntax::Func::Step | syntax::Func::Sign, _)))
}

fn first_heading(s: &SecondOrder) -> String {
    match s.kind {
        Kind::Jacobian => format!(
            "First, the vector-Jacobian product: the gradient of tr({}^T {}) with respect to {}.",
            upstream_name(s),
            "Z",
            s.wrt
        ),
        _ => format!("First, the gradient with respect to {}.", s.along),
    }
}

fn upstream_name(s: &SecondOrder) -> String {
    s.upstream.as_ref().map(|u| u.to_string()).unwrap_or_else(|| "1".into())
}

fn second_heading(s: &SecondOrder) -> String {
    match (s.kind, &s.second_upstream) {
        (Kind::Jacobian, _) => format!(
            "Then its transpose, dZ = J[{d}]: the gradient of tr({d}^T (the product above)) with respect to {u}.",
            d = s.direction,
            u = upstream_name(s)
        ),
        (_, Some(d)) => format!(
            "Then the gradient of tr({d}^T d/d{a}) with respect to {v}: the second derivative applied to the direction {d} (here {d} is a variable, and d(…) the differential).",
            a = s.along,
            v = s.wrt
        ),
        (_, None) => format!("Then the gradient of the scalar d/d{} with respect to {}.", s.along, s.wrt),
    }
}

fn read_off_line(s: &SecondOrder, m: &syntax::Expr, z: &str) -> String {
    let d = syntax::Expr::synthetic(syntax::ExprKind::Var(std::rc::Rc::new(s.direction.clone())));
    format!(
        "Read off: {} = {}, so {} = {m}   (a .* {d} = diag(a) * {d}, (a^T {d}) b = b a^T {d}, sum(a .* {d}) = a^T {d})",
        s.map_name(z),
        syntax::Expr::product(m.clone(), d.clone()),
        s.matrix_name(z),
        d = s.direction
    )
}

/// The two derivations, with their steps: the first-order one, and the
/// second (`None` where the first result does not depend on the variable).
fn derivations<'a>(
    program: &'a Program,
    s: &'a SecondOrder,
) -> Result<(crate::Derivation<'a>, Option<crate::Derivation<'a>>)> {
    let first = derive(program, &s.first_options(Steps::Record))?;
    let second = if s.program.expr.mentions(&s.second_wrt) {
        Some(derive(&s.program, &s.second_options(Steps::Record))?)
    } else {
        None
    };
    Ok((first, second))
}

/// The results as LaTeX equations, `(lhs, rhs)`: the map applied to the
/// direction, the matrix, the vec form, those that exist.
fn equations(s: &SecondOrder, z: &str) -> Vec<(String, String)> {
    let d = var_latex(&s.direction);
    let (v, a) = (var_latex(&s.wrt), var_latex(&s.along));
    let map_lhs = match s.kind {
        Kind::Hessian => format!("H[{d}]"),
        Kind::Mixed => format!("\\frac{{\\partial}}{{\\partial {v}}} \\operatorname{{tr}}\\left({d}^{{\\top}} \\frac{{\\partial \\mathcal{{L}}}}{{\\partial {a}}}\\right)"),
        Kind::Jacobian => format!("d{}", if z == "Z" { "Z".to_string() } else { z.to_string() }),
    };
    let mut out = vec![(map_lhs, to_latex(&s.map))];
    if let Some(m) = &s.matrix {
        let lhs = match s.kind {
            Kind::Hessian => {
                format!("\\frac{{\\partial^2 \\mathcal{{L}}}}{{\\partial {v} \\, \\partial {v}^{{\\top}}}}")
            }
            Kind::Mixed => {
                format!("\\frac{{\\partial^2 \\mathcal{{L}}}}{{\\partial {v} \\, \\partial {a}^{{\\top}}}}")
            }
            Kind::Jacobian => format!("\\frac{{\\partial {z}}}{{\\partial {v}}}"),
        };
        out.push((lhs, to_latex(m)));
    }
    if let Some(k) = &s.vec_form {
        let lhs = if s.kind == Kind::Jacobian {
            format!("\\frac{{\\partial \\operatorname{{vec}}({z})}}{{\\partial \\operatorname{{vec}}({v})}}")
        } else if s.wrt == s.along {
            format!("\\frac{{\\partial^2 \\mathcal{{L}}}}{{\\partial \\operatorname{{vec}}({v}) \\, \\partial \\operatorname{{vec}}({v})^{{\\top}}}}")
        } else {
            format!("\\frac{{\\partial^2 \\mathcal{{L}}}}{{\\partial \\operatorname{{vec}}({v}) \\, \\partial \\operatorname{{vec}}({a})^{{\\top}}}}")
        };
        out.push((lhs, to_latex(k)));
    }
    out
}

fn latex(program: &Program, s: &SecondOrder, steps: bool, z: &str) -> Result<String> {
    let mut out = String::new();
    for (lhs, rhs) in equations(s, z) {
        out.push_str(&format!("\\[ {lhs} = {rhs} \\]\n"));
    }
    if steps {
        let (first, second) = derivations(program, s)?;
        out.push_str(&format!("% {}\n", first_heading(s)));
        out.push_str(&explain::to_latex_blocks(&explain::explain(&first)));
        if let Some(second) = second {
            out.push_str(&format!("% {}\n", second_heading(s)));
            out.push_str(&explain::to_latex_blocks(&explain::explain(&second)));
        }
    }
    Ok(out)
}

/// `hessian` / `jacobian --latex --standalone`: a document like
/// `derive`'s — the program and its shapes, the gradient (for a Hessian),
/// then the second derivative with its derivation when `steps` are asked
/// for, its map, matrix and vec form, and why a form is missing.
pub fn document(program: &Program, s: &SecondOrder, steps: bool) -> Result<String> {
    let z = value_name(program);
    let (first, second) = derivations(program, s)?;
    let shapes = super::render::shapes_latex(&first);
    let (v, a, d) = (var_latex(&s.wrt), var_latex(&s.along), var_latex(&s.direction));
    let mut out = String::new();
    let value = match s.kind {
        Kind::Jacobian => {
            let z = var_latex(&VarName::plain(&z));
            out.push_str(&format!("\\section*{{The Jacobian of ${z}$}}\n"));
            z
        }
        _ => {
            out.push_str("\\section*{The second derivative of a scalar function}\n");
            "\\mathcal{L}".to_string()
        }
    };
    out.push_str(&super::render::display_latex(&value, &to_latex(&program.expr)));
    if !shapes.is_empty() {
        out.push_str(&format!("with {shapes}.\n"));
    }
    if s.kind != Kind::Jacobian {
        out.push_str(&format!("\n\\subsection*{{The gradient with respect to ${a}$}}\n"));
        match steps {
            true => out
                .push_str(&explain::to_latex_align(&explain::explain(&first)[0], super::render::TEXT_WIDTH)),
            false => out.push_str(&super::render::display_latex(
                &format!("\\frac{{\\partial \\mathcal{{L}}}}{{\\partial {a}}}"),
                &to_latex(&s.first),
            )),
        }
    }
    out.push_str(&match s.kind {
        Kind::Hessian => format!("\n\\subsection*{{The Hessian with respect to ${v}$}}\n"),
        Kind::Mixed => format!("\n\\subsection*{{The second derivative with respect to ${v}$ and ${a}$}}\n"),
        Kind::Jacobian => format!("\n\\subsection*{{The Jacobian with respect to ${v}$}}\n"),
    });
    if let (true, Some(second)) = (steps, second) {
        let upstream = s.upstream.as_ref().map_or("1".to_string(), var_latex);
        out.push_str(&match (s.kind, &s.second_upstream) {
            (Kind::Jacobian, _) => format!(
                "First, the vector-Jacobian product, the gradient of $\\operatorname{{tr}}({upstream}^{{\\top}} {value})$ with respect to ${v}$:\n{}Its differential in ${upstream}$, read off as the gradient of $\\operatorname{{tr}}({d}^{{\\top}} \\cdot)$ with respect to ${upstream}$, is $\\mathrm{{d}}{value} = J[{d}]$:\n",
                explain::to_latex_align(&explain::explain(&first)[0], super::render::TEXT_WIDTH)
            ),
            (_, Some(_)) => format!(
                "The gradient of $\\operatorname{{tr}}({d}^{{\\top}} \\partial \\mathcal{{L}} / \\partial {a})$ with respect to ${v}$, the direction ${d}$ held fixed, is the second derivative applied to ${d}$:\n"
            ),
            (_, None) => format!(
                "The gradient of the scalar $\\partial \\mathcal{{L}} / \\partial {a}$ with respect to ${v}$:\n"
            ),
        });
        out.push_str(&explain::to_latex_align(&explain::explain(&second)[0], super::render::TEXT_WIDTH));
        out.push_str("In matrix form:\n");
    }
    let rows: Vec<String> =
        equations(s, &z).iter().flat_map(|(lhs, rhs)| super::render::aligned_rows(lhs, rhs)).collect();
    out.push_str(&format!("\\begin{{align*}}\n{}\n\\end{{align*}}\n", rows.join(" \\\\\n")));
    if let Some(why) = &s.no_matrix {
        out.push_str(&format!("No matrix form: {}.\n", note_latex(why)));
    }
    if let Some(why) = &s.no_vec_form {
        out.push_str(&format!("No vec form: {}.\n", note_latex(why)));
    }
    if !s.saturated {
        out.push_str("The simplification stopped at a limit: the result is right, but maybe not simplest.\n");
    }
    Ok(super::render::latex_document(&out, true))
}

/// A note for a page: its words as text, each `quoted` formula as math
/// (as text in a typewriter face where it is not one).
fn note_latex(note: &str) -> String {
    note.split('`')
        .enumerate()
        .map(|(i, part)| match (i % 2, syntax::parse_expr(part)) {
            (0, _) => explain::escape_text(part),
            (_, Ok(e)) => format!("${}$", to_latex(&e)),
            (_, Err(_)) => format!("\\texttt{{{}}}", explain::escape_text(part)),
        })
        .collect()
}

fn json_doc(program: &Program, s: &SecondOrder, steps: bool) -> Result<String> {
    let mut doc = json!({
        "kind": s.kind.name(),
        "expr": program.expr.to_string(),
        "wrt": s.wrt.to_string(),
        "along": s.along.to_string(),
        "direction": s.direction.to_string(),
        "direction_shape": s.direction_shape,
        "first": s.first.to_string(),
        "map": s.map.to_string(),
        "map_latex": to_latex(&s.map),
        "map_shape": s.map_shape,
        "matrix": s.matrix.as_ref().map(|m| m.to_string()),
        "matrix_latex": s.matrix.as_ref().map(to_latex),
        "matrix_shape": s.matrix_shape,
        "no_matrix": s.no_matrix,
        "vec_form": s.vec_form.as_ref().map(|k| k.to_string()),
        "vec_form_latex": s.vec_form.as_ref().map(to_latex),
        "vec_shape": s.vec_shape,
        "no_vec_form": s.no_vec_form,
        "off_kinks": has_kinks(s),
        "saturated": s.saturated,
    });
    if let Some(u) = &s.upstream {
        doc["upstream"] = Value::String(u.to_string());
    }
    if steps {
        let (first, second) = derivations(program, s)?;
        let to_value = |d: &crate::Derivation| {
            serde_json::to_value(explain::Explained::new(d)).expect("results serialize")
        };
        doc["steps"] = json!({
            "first": to_value(&first),
            "second": second.as_ref().map(to_value),
        });
    }
    Ok(pretty(&doc))
}

/// `check --order 2` / `check --jacobian` ([`crate::hessian::check`]), as
/// text or JSON, and whether it passed.
pub fn check(
    program: &Program,
    s: &SecondOrder,
    options: &CheckOptions,
    json: bool,
) -> Result<(String, bool)> {
    let found = crate::hessian::check(program, s, options)?;
    let ok = found.ok();
    if json {
        return Ok((pretty(&found), ok));
    }
    let z = value_name(program);
    let mut out = String::new();
    out.push_str(&match s.kind {
        Kind::Jacobian => format!(
            "The vector-Jacobian product d/d{} of tr({}^T {z}), against finite differences of {z}:\n",
            s.wrt,
            upstream_name(s)
        ),
        _ => format!("The gradient d/d{}, against finite differences of L:\n", s.along),
    });
    out.push_str(&indent(&render_check(&found.first, false)));
    match &found.second {
        Some(r) => {
            out.push_str(&format!(
                "{} = {}, against finite differences of the derived {}:\n",
                s.map_name(&z),
                s.map,
                match s.kind {
                    Kind::Jacobian => "vector-Jacobian product (its transpose)",
                    _ => "gradient",
                }
            ));
            out.push_str(&indent(&render_check(r, false)));
        }
        None => out.push_str(&format!(
            "{} = 0: the first derivative does not depend on {}\n",
            s.map_name(&z),
            s.second_wrt
        )),
    }
    if let Some(v) = &found.matrix {
        let m = s.matrix.as_ref().expect("a matrix was verified");
        out.push_str(&format!(
            "{} = {m}, against the map: {} ({})\n",
            s.matrix_name(&z),
            v.word(),
            v.method.name()
        ));
    }
    out.push_str(if ok {
        "ok: the second derivative agrees\n"
    } else {
        "FAILED: the second derivative does not agree\n"
    });
    Ok((out, ok))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("  {l}\n")).collect()
}

/// `verify --order 2` / `verify --jacobian` ([`crate::hessian::verify`]),
/// as text (how the claim was read, then the verdict) or JSON, and whether
/// the claim holds.
pub fn verify(
    s: &SecondOrder,
    claim: &str,
    domains: &std::collections::BTreeMap<VarName, syntax::DomainSpec>,
    control: &Control,
    json: bool,
) -> Result<(String, bool)> {
    let SecondVerdict { verdict, compared } = crate::hessian::verify(s, claim, domains, control)?;
    let ok = verdict.equivalent();
    if json {
        return Ok((pretty(&verdict), ok));
    }
    let how = match compared {
        Compared::VecForm => {
            format!("the claim is compared with the derived vec form {}", s.vec_name(&value_name(&s.program)))
        }
        Compared::Map => format!("the claim is the map {} applied to `{}`", s.map_name("Z"), s.direction),
        Compared::MatrixAsMap => format!(
            "the claim C is compared as the map C * {} with the derived {}",
            s.second_upstream.as_ref().expect("a map in a direction"),
            s.map_name("Z")
        ),
        Compared::Matrix => "the claim is compared with the derived matrix".to_string(),
    };
    Ok((format!("{how}\n{}", super::render::verdict(&verdict, false)), ok))
}

pub use crate::hessian::Planned;

/// `plan --order 2`: the plan of the second derivation, whose value is the
/// gradient and whose output is the Hessian-vector product: both computed
/// by one plan, sharing their products (the direction is the plan's
/// upstream input).
pub fn plan(
    s: &SecondOrder,
    options: &crate::plan::PlanOptions,
    emit: Option<super::command::Emit>,
    name: Option<String>,
    json: bool,
    form: Planned,
) -> Result<String> {
    if !s.program.expr.mentions(&s.second_wrt) {
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("the gradient does not depend on `{}`: the second derivative is 0, and there is nothing to plan", s.second_wrt),
        ));
    }
    let second = s.planned(form)?;
    let output = match (emit, json) {
        (Some(e), _) => super::render::PlanOutput::Code { emit: e.into(), name },
        (None, true) => super::render::PlanOutput::Json,
        (None, false) => super::render::PlanOutput::Text,
    };
    let text_output = matches!(output, super::render::PlanOutput::Text);
    let text = super::render::plan(&second, options, output)?;
    if !text_output {
        return Ok(text);
    }
    let upstream = match &s.second_upstream {
        Some(d) => format!("the direction {d} (its input) as the upstream gradient, "),
        None => String::new(),
    };
    if form == Planned::Matrix {
        let m = s.matrix.as_ref().expect("checked above");
        return Ok(format!(
            "# The Hessian {} = {m}: the plan of the gradient Z = d/d{} with the Hessian as the output of d/d{}\n{text}",
            s.matrix_name("Z"),
            s.along,
            s.wrt
        ));
    }
    Ok(format!(
        "# The Hessian-vector product {} = {}: the plan of the gradient Z = d/d{} with {upstream}and d/d{} its output\n{text}",
        s.map_name("Z"),
        s.map,
        s.along,
        s.wrt
    ))
}
