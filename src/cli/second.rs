//! The second-order commands' output: `hessian` and `jacobian` as text,
//! LaTeX and JSON, with the steps of both derivations; `check --order 2`
//! and `check --jacobian`; `verify --order 2` and `verify --jacobian`.

use serde_json::{json, Value};

use super::render::{pretty, render_check};
use crate::error::{Error, ErrorKind, Result};
use crate::explain;
use crate::hessian::{Kind, SecondOrder};
use crate::numeric::{CheckOptions, CheckReport};
use crate::syntax::{self, to_latex, var_latex, Program, VarName};
use crate::{derive, Control, DeriveOptions, Steps};

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

/// The name of the matrix: `d2L/dx2`, `d2L/dx dy^T`, `dZ/dx`.
fn matrix_name(s: &SecondOrder, z: &str) -> String {
    match s.kind {
        Kind::Hessian => format!("d2L/d{} d{}^T", s.wrt, s.wrt),
        Kind::Mixed => format!("d2L/d{} d{}^T", s.wrt, s.along),
        Kind::Jacobian => format!("d{z}/d{}", s.wrt),
    }
}

/// The name of the map applied to the direction: `H[dx]`, `dZ`.
fn map_name(s: &SecondOrder, z: &str) -> String {
    match s.kind {
        Kind::Hessian => format!("H[{}]", s.direction),
        Kind::Mixed => format!("H_{}{}[{}]", s.wrt, s.along, s.direction),
        Kind::Jacobian => format!("d{z}"),
    }
}

fn value_name(program: &Program) -> String {
    program.name.clone().unwrap_or_else(|| "Z".to_string())
}

/// The name of the vec form: `vec(H[dX]) = K vec(dX)` is written by its
/// matrix, `d2L/dvec(X) dvec(X)^T` (as the matrix of a vector is
/// `d2L/dx dx^T`), `d2L/dvec(X) dvec(U)^T`; a Jacobian's
/// `vec(dZ) = K vec(dX)`, `dvec(Z)/dvec(X)` (as `dZ/dx`).
fn vec_name(s: &SecondOrder, z: &str) -> String {
    match s.kind {
        Kind::Jacobian => format!("dvec({z})/dvec({})", s.wrt),
        _ => format!("d2L/dvec({}) dvec({})^T", s.wrt, s.along),
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
    lines.push((format!("{} = {}", map_name(s, z), s.map), s.map_shape.to_string()));
    if let (Some(m), Some(shape)) = (&s.matrix, &s.matrix_shape) {
        lines.push((format!("{} = {m}", matrix_name(s, z)), shape.to_string()));
    }
    if let (Some(k), Some(shape)) = (&s.vec_form, &s.vec_shape) {
        lines.push((format!("{} = {k}", vec_name(s, z)), shape.clone()));
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
        map_name(s, z),
        syntax::Expr::product(m.clone(), d.clone()),
        matrix_name(s, z),
        d = s.direction
    )
}

/// The two derivations, with their steps: the first-order one, and the
/// second (`None` where the first result does not depend on the variable).
fn derivations<'a>(
    program: &'a Program,
    s: &'a SecondOrder,
) -> Result<(crate::Derivation<'a>, Option<crate::Derivation<'a>>)> {
    let first_options = DeriveOptions {
        wrt: vec![s.along.clone()],
        upstream: s.upstream.as_ref().map(|u| u.to_string()),
        steps: Steps::Record,
        sharing: crate::Sharing::Expanded,
        control: s.control.clone(),
    };
    let first = derive(program, &first_options)?;
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

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::Hessian => "hessian",
        Kind::Mixed => "mixed",
        Kind::Jacobian => "jacobian",
    }
}

fn json_doc(program: &Program, s: &SecondOrder, steps: bool) -> Result<String> {
    let mut doc = json!({
        "kind": kind_name(s.kind),
        "expr": program.expr.to_string(),
        "wrt": s.wrt.to_string(),
        "along": s.along.to_string(),
        "direction": s.direction.to_string(),
        "direction_shape": s.direction_shape.to_string(),
        "first": s.first.to_string(),
        "map": s.map.to_string(),
        "map_latex": to_latex(&s.map),
        "map_shape": s.map_shape.to_string(),
        "matrix": s.matrix.as_ref().map(|m| m.to_string()),
        "matrix_latex": s.matrix.as_ref().map(to_latex),
        "matrix_shape": s.matrix_shape.as_ref().map(|m| m.to_string()),
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

/// `check --order 2` / `check --jacobian`: the first derivative against
/// differences of the expression, the second against differences of the
/// first, and the matrix, when there is one, against the map.
pub fn check(
    program: &Program,
    s: &SecondOrder,
    options: &CheckOptions,
    json: bool,
) -> Result<(String, bool)> {
    let first_options = DeriveOptions {
        wrt: vec![s.along.clone()],
        upstream: s.upstream.as_ref().map(|u| u.to_string()),
        steps: Steps::Skip,
        sharing: crate::Sharing::Expanded,
        control: options.control.clone(),
    };
    let first = derive(program, &first_options)?;
    let first_report = crate::numeric::check(&first, options)?;
    let mut second_options = options.clone();
    second_options.domains.retain(|v, _| s.program.expr.mentions(v));
    let second_report: Option<CheckReport> = if s.program.expr.mentions(&s.second_wrt) {
        let second = derive(&s.program, &s.second_options(Steps::Skip))?;
        Some(crate::numeric::check(&second, &second_options)?)
    } else {
        None
    };
    let read_off = match &s.matrix {
        Some(m) if second_report.is_some() => {
            Some(verify_matrix(s, &m.to_string(), &second_options.domains, &options.control)?)
        }
        _ => None,
    };
    let ok = first_report.ok()
        && second_report.as_ref().is_none_or(|r| r.ok())
        && read_off.as_ref().is_none_or(|v| v.equivalent());
    if json {
        let doc = json!({
            "kind": kind_name(s.kind),
            "ok": ok,
            "first": serde_json::to_value(&first_report).expect("results serialize"),
            "second": second_report.as_ref().map(|r| serde_json::to_value(r).expect("results serialize")),
            "matrix": read_off.as_ref().map(|v| serde_json::to_value(v).expect("results serialize")),
        });
        return Ok((pretty(&doc), ok));
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
    out.push_str(&indent(&render_check(&first_report, false)));
    match &second_report {
        Some(r) => {
            out.push_str(&format!(
                "{} = {}, against finite differences of the derived {}:\n",
                map_name(s, &z),
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
            map_name(s, &z),
            s.second_wrt
        )),
    }
    if let Some(v) = &read_off {
        let m = s.matrix.as_ref().expect("a matrix was verified");
        out.push_str(&format!(
            "{} = {m}, against the map: {} ({})\n",
            matrix_name(s, &z),
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

/// Whether `claim`, a matrix, is the matrix of `s`'s map: `claim * d`
/// against the map, by `verify`.
fn verify_matrix(
    s: &SecondOrder,
    claim: &str,
    domains: &std::collections::BTreeMap<VarName, syntax::DomainSpec>,
    control: &Control,
) -> Result<crate::verify::Verdict> {
    let applied = match &s.second_upstream {
        Some(d) => format!("({claim}) * {d}"),
        None => claim.to_string(),
    };
    verify_map(s, &applied, domains, control)
}

/// Whether `claim` has the shape of the vec form (the map's value's size
/// by the direction's), where there is one to give: a matrix direction or
/// value, sizes numbers.
fn is_vec_claim(s: &SecondOrder, claim: &syntax::Expr) -> bool {
    use crate::shape::Dim;
    let column = |sh: &crate::shape::Shape| sh.cols == Dim::Const(1);
    if column(&s.direction_shape) && column(&s.map_shape) {
        return false;
    }
    let size = |sh: &crate::shape::Shape| sh.rows.times(&sh.cols);
    let (Some(rows), Some(cols)) = (size(&s.map_shape), size(&s.direction_shape)) else { return false };
    let program = Program {
        declarations: s.program.declarations.clone(),
        definitions: vec![],
        expr: claim.clone(),
        name: None,
    };
    crate::shape::infer(&program).is_ok_and(|t| {
        let shape = t.shape();
        shape.rows == rows && shape.cols == cols
    })
}

/// Whether `claim`, a matrix of the vec form's shape, is the derived vec
/// form K (`vec(map) = K vec(direction)`): as the gradient of `tr(P^T K)`
/// by a fresh P of K's shape, by `verify` (the e-graph, then the numbers).
/// K itself is checked against the map by the tests (constructs_kron).
fn verify_vec(
    s: &SecondOrder,
    claim: &str,
    domains: &std::collections::BTreeMap<VarName, syntax::DomainSpec>,
    control: &Control,
) -> Result<crate::verify::Verdict> {
    use crate::shape::Dim;
    let z = value_name(&s.program);
    let Some(k) = &s.vec_form else {
        let why = s.no_vec_form.clone().unwrap_or_else(|| "it is not derived here".to_string());
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!(
                "the claim has the shape of a vec form, but there is none to compare it with: {why}; give the claim as the map {} in `{}`",
                map_name(s, &z),
                s.direction
            ),
        ));
    };
    let size = |sh: &crate::shape::Shape| sh.rows.times(&sh.cols);
    let (Some(Dim::Const(rows)), Some(Dim::Const(cols))) = (size(&s.map_shape), size(&s.direction_shape))
    else {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "a vec form is compared only where its sizes are numbers",
        ));
    };
    let taken = |n: &str| {
        s.program.declarations.iter().any(|d| d.name == n) || s.program.expr.mentions(&VarName::plain(n))
    };
    let p = ["P", "P_vec", "K_vec"]
        .iter()
        .map(|c| c.to_string())
        .chain((1..).map(|k| format!("P{k}")))
        .find(|n| !taken(n))
        .expect("an unbounded supply of names");
    let mut declarations = s.program.declarations.clone();
    declarations.push(syntax::Declaration {
        name: p.clone(),
        binder: None,
        shape: syntax::ShapeSpec::Matrix(syntax::DimSpec::Const(rows), syntax::DimSpec::Const(cols)),
        domain: None,
        span: syntax::Span::SYNTHETIC,
    });
    let p = VarName::plain(&p);
    let expr = syntax::Expr::call(
        syntax::Func::Tr,
        syntax::Expr::product(syntax::Expr::transpose(syntax::Expr::var(&p.name)), k.clone()),
    );
    let program = Program { declarations, definitions: vec![], expr, name: None };
    let options = crate::verify::VerifyOptions {
        domains: domains.iter().filter(|(v, _)| k.mentions(v)).map(|(v, d)| (v.clone(), *d)).collect(),
        name: Some(vec_name(s, &z)),
        control: control.clone(),
        ..Default::default()
    };
    crate::verify::verify(&program, &p, claim, &options)
}

fn verify_map(
    s: &SecondOrder,
    claim: &str,
    domains: &std::collections::BTreeMap<VarName, syntax::DomainSpec>,
    control: &Control,
) -> Result<crate::verify::Verdict> {
    let options = crate::verify::VerifyOptions {
        upstream: s.second_upstream.as_ref().map(|d| d.to_string()),
        domains: domains
            .iter()
            .filter(|(v, _)| s.program.expr.mentions(v))
            .map(|(v, d)| (v.clone(), *d))
            .collect(),
        name: Some(map_name(s, "Z")),
        control: control.clone(),
        ..Default::default()
    };
    if !s.program.expr.mentions(&s.second_wrt) {
        // The zero map: the program has nothing to differentiate, so the
        // claim is compared with 0 by the e-graph and the numbers alone.
        return Err(Error::new(
            ErrorKind::Unsupported,
            format!("the first derivative does not depend on `{}`: the second derivative is 0", s.second_wrt),
        ));
    }
    crate::verify::verify(&s.program, &s.second_wrt, claim, &options)
}

/// `verify --order 2` / `verify --jacobian`: the claim is the matrix
/// (a Hessian, a mixed block, a Jacobian) or, where it mentions the
/// direction, the map applied to it (`H[dX]`, `dZ`).
pub fn verify(
    s: &SecondOrder,
    claim: &str,
    domains: &std::collections::BTreeMap<VarName, syntax::DomainSpec>,
    control: &Control,
    json: bool,
) -> Result<(String, bool)> {
    let claim_expr = syntax::parse_expr(claim)?;
    let is_map = claim_expr.mentions(&s.direction);
    // A matrix of the vec form's shape (`kron(I, A + A^T)`) is the vec form.
    let vec_claim = !is_map && is_vec_claim(s, &claim_expr);
    let verdict = if vec_claim {
        verify_vec(s, claim, domains, control)?
    } else if is_map {
        let applied = match &s.second_upstream {
            Some(_) => claim.to_string(),
            // A 1×1 first result: the map is M * d, the claim's d taken out.
            None => {
                return Err(Error::new(
                    ErrorKind::Usage,
                    format!(
                        "give the claim as a matrix, without `{}`: here the map is that matrix times `{}`",
                        s.direction, s.direction
                    ),
                ))
            }
        };
        verify_map(s, &applied, domains, control)?
    } else {
        verify_matrix(s, claim, domains, control)?
    };
    let ok = verdict.equivalent();
    if json {
        return Ok((pretty(&verdict), ok));
    }
    let how = if vec_claim {
        format!("the claim is compared with the derived vec form {}", vec_name(s, &value_name(&s.program)))
    } else if is_map {
        format!("the claim is the map {} applied to `{}`", map_name(s, "Z"), s.direction)
    } else {
        match &s.second_upstream {
            Some(d) => {
                format!("the claim C is compared as the map C * {d} with the derived {}", map_name(s, "Z"))
            }
            None => "the claim is compared with the derived matrix".to_string(),
        }
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
            matrix_name(s, "Z"),
            s.along,
            s.wrt
        ));
    }
    Ok(format!(
        "# The Hessian-vector product {} = {}: the plan of the gradient Z = d/d{} with {upstream}and d/d{} its output\n{text}",
        map_name(s, "Z"),
        s.map,
        s.along,
        s.wrt
    ))
}
