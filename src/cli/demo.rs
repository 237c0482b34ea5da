//! `matdiff demo`: the seed problem end to end. Everything printed is
//! computed by the pipeline; nothing here knows the answers.

use super::render::{render_check, render_derivation};
use crate::error::Result;
use crate::numeric::{check, CheckOptions};
use crate::syntax::{parse_program, BinOp, Expr, ExprKind};
use crate::{derive, Derivation};

const DECLARED: &str = "W1 : 3x4; W2 : 4x5; W3 : 5x6; X : 6x2; Z = W1*W2*W3*X";
const INFERRED: &str = "Z = W1*W2*W3*X";

/// The demo's text, and whether every numeric check passed.
pub fn run() -> Result<(String, bool)> {
    let mut out = String::new();
    out.push_str("matdiff demo: backprop through a matrix-product layer\n\n");
    out.push_str("The layer Z = W1 W2 W3 X sits inside some loss L; backprop hands it the upstream\n");
    out.push_str("gradient G = dL/dZ, so dL = tr(G^T dZ). Each gradient is read off that trace.\n\n");

    out.push_str(&format!("1. With declared shapes:  {DECLARED}\n\n"));
    let program = parse_program(DECLARED)?;
    let declared = derive(&program, &Default::default())?;
    out.push_str(&indent(&render_derivation(&declared, false)));
    out.push_str("\nShape check, factor by factor (every gradient has its variable's shape):\n");
    out.push_str(&indent(&shape_checks(&declared)?));

    out.push_str(&format!("\n2. With no declarations:  {INFERRED}\n"));
    out.push_str("   matdiff infers the chain's shapes, W_j : d(j-1) x d(j):\n\n");
    let program = parse_program(INFERRED)?;
    let inferred = derive(&program, &Default::default())?;
    out.push_str(&indent(&render_derivation(&inferred, false)));
    out.push_str(&indent(&variable_shapes(&inferred)));

    let mut ok = true;
    out.push_str("\n3. Numeric check against central differences (float64):\n\n");
    for (label, d) in [("declared shapes", &declared), ("inferred shapes, random sizes", &inferred)] {
        let report = check(d, &CheckOptions { seed: 2026, ..Default::default() })?;
        ok &= report.ok();
        out.push_str(&format!("   {label}:\n"));
        out.push_str(&indent(&render_check(&report, false)));
    }
    Ok((out, ok))
}

fn indent(text: &str) -> String {
    text.lines().map(|l| format!("   {l}\n")).collect()
}

fn variable_shapes(d: &Derivation) -> String {
    let shapes: Vec<String> = d
        .typing
        .variables()
        .iter()
        .map(|v| format!("{v} : {}", d.typing.var_shape(v).expect("typed")))
        .collect();
    format!("with {}\n", shapes.join(", "))
}

/// `d/dW2: (4x3)(3x2)(2x6)(6x5) = 4x5` for each gradient that is one product.
fn shape_checks(d: &Derivation) -> Result<String> {
    let mut out = String::new();
    for g in &d.gradients {
        let mut factors = Vec::new();
        flatten(&g.expr, &mut factors);
        let mut typer = d.typing.typer().clone();
        let mut parts = Vec::new();
        for f in factors {
            let s = typer.infer(f)?;
            parts.push(format!("({})", typer.resolve(s)));
        }
        out.push_str(&format!("d/d{}: {} = {}\n", g.wrt, parts.join(""), g.shape));
    }
    Ok(out)
}

fn flatten<'e>(e: &'e Expr, out: &mut Vec<&'e Expr>) {
    match &e.kind {
        ExprKind::Binary { op: BinOp::Mul, lhs, rhs, .. } => {
            flatten(lhs, out);
            flatten(rhs, out);
        }
        _ => out.push(e),
    }
}
